"""`mcd <command>`: one subcommand per job.

Each subcommand lives in the module that does the job; that module exposes `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `mcd synth` never pays for
importing transformers and a broken optional backend cannot break unrelated commands.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("mcd.synth.cli", "generate the synthetic MUSIC-AVQA-format benchmark"),
    "synth-contrast": ("mcd.synth.foreign", "render the out-of-domain detector's sound contrast set (foreign music)"),
    "pretrain-encoders": ("mcd.encoders.pretrain", "pretrain the synth visual/audio encoders on a benchmark"),
    "extract": ("mcd.data.extract", "extract encoder features for a dataset into a cache"),
    "train": ("mcd.training.train", "train MCD from a config recipe"),
    "calibrate": ("mcd.training.calibrate", "choose the grounded expert's weight per question type on val (in place)"),
    "calibrate-ood": ("mcd.serving.calibrate_ood", "fit the out-of-domain detector (in place)"),
    "evaluate": ("mcd.evaluation.evaluate", "evaluate a checkpoint or a predictions file, print the per-type table"),
    "predict": ("mcd.serving.predict", "answer questions about one clip, print JSON"),
    "reproduce": ("mcd.training.reproduce", "run every stage of a recipe and publish the checkpoint with its model card"),
}


class CLIError(Exception):
    """An error whose message is meant for the person at the terminal (no traceback)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcd", description="MCD audio-visual question answering toolkit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name in _selected_commands():
            importlib.import_module(module).add_arguments(p)
    return parser


def _selected_commands() -> set[str]:
    # Only the command being run imports its module (keeps `mcd --help` fast and robust).
    return {a for a in sys.argv[1:2] if a in COMMANDS}


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    args = build_parser().parse_args(sys.argv[1:])
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except CLIError as exc:
        print(f"mcd {args.command}: error: {exc}", file=sys.stderr)
        return 2

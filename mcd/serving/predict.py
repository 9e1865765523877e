"""`mcd predict --checkpoint DIR --video FILE --question Q [--question Q ...]`: answers as JSON.

One JSON object, the answer contract (`AnswerSet.to_json`, docs/contracts.md): the clip summary and, per question,
what it was understood as (`understood_as`, `status`, `similarity`), answer, confidence, top-5, teacher answer,
agreement, type, keywords and a clue summary. A question that is not answered (status `out_of_scope`,
`unknown_instrument` or `invalid`, e.g. an empty `--question ""`) has a null answer and a note; the others are still
answered. The demo's JSON panel and its API events emit the same object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mcd.serving.pipeline import DEFAULT_CHECKPOINT

    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint folder")
    p.add_argument("--video", required=True, type=Path, help="clip to ask about")
    p.add_argument("--question", action="append", default=[], help="a question (repeatable)")
    p.add_argument("--questions-file", type=Path, help="a text file with one question per line")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:N]",
                   help="where the model and encoders run (default: auto = CUDA when present)")


def run(args: argparse.Namespace) -> int:
    from mcd import media
    from mcd.model.checkpoint import CheckpointError
    from mcd.cli import CLIError
    from mcd.device import resolve_device
    from mcd.serving.pipeline import Pipeline, QuestionsError

    device = resolve_device(args.device, announce=True)
    questions = list(args.question)
    if args.questions_file:
        if not args.questions_file.exists():
            raise CLIError(f"questions file {args.questions_file} does not exist")
        questions += [line for line in args.questions_file.read_text().splitlines() if line.strip()]
    try:
        pipe = Pipeline(args.checkpoint, device=device)
        answers = pipe.answer(args.video, questions)
    except (CheckpointError, QuestionsError) as exc:
        raise CLIError(str(exc)) from exc
    except media.MediaError as exc:
        raise CLIError(exc.user_message) from exc
    text = json.dumps(answers.to_json(), indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0

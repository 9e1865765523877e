"""`mcd synth`: generate the synthetic MUSIC-AVQA-format benchmark, or report on one.

    mcd synth --out OUT --videos N --seed S [--splits train=0.8,val=0.1,test=0.1] [--workers W]
              [--style default|held-out] [--sound-bank procedural|fluidr3|musescore]
    mcd synth --report OUT

--style default draws with OpenMoji or Fluent 3D glyphs on drawn or textured backgrounds and plays the FluidR3
soundfont; --style held-out draws with Noto Color Emoji on painted backgrounds and plays the MuseScore soundfont
(never for training). --sound-bank overrides the style's bank among those it allows (default: fluidr3 or
procedural; held-out: musescore).

Writes OUT/videos/<video_id>.mp4, OUT/avqa-{split}.json (MUSIC-AVQA records), OUT/scenes.jsonl (scene graphs)
and OUT/synth_config.json (the settings). The annotation files are written last, so a folder with them is
complete.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from mcd.cli import CLIError

OWNED = ("avqa-train.json", "avqa-val.json", "avqa-test.json", "scenes.jsonl", "synth_config.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, metavar="OUT", help="output folder")
    parser.add_argument("--videos", type=int, default=100, help="number of clips (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    parser.add_argument("--splits", default="train=0.8,val=0.1,test=0.1",
                        help="split fractions by video, e.g. train=0.8,val=0.1,test=0.1 or test=1")
    parser.add_argument("--questions-per-video", type=int, default=8,
                        help="questions asked per clip before balancing drops some (default 8)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="rendering processes (default: all cores); the output does not depend on it")
    parser.add_argument("--style", default="default", choices=("default", "held-out"),
                        help="default: OpenMoji/Fluent 3D glyphs, drawn/textured backgrounds, FluidR3 sound; "
                             "held-out: Noto glyphs, painted backgrounds, MuseScore sound (never train on it)")
    parser.add_argument("--sound-bank", default=None, choices=("procedural", "fluidr3", "musescore"),
                        help="override the style's sound bank (default style: fluidr3 or procedural; "
                             "held-out: musescore)")
    parser.add_argument("--no-video", action="store_true", help="write annotations and scene graphs only")
    parser.add_argument("--force", action="store_true", help="replace a benchmark already in OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--report", type=Path, metavar="OUT",
                        help="print per-template answer distributions and the question-only prior of OUT")


def _prepare(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    existing = [name for name in OWNED if (out / name).exists()]
    videos = out / "videos"
    if videos.is_dir() and any(videos.glob("*.mp4")):
        existing.append("videos/*.mp4")
    if existing and not force:
        raise CLIError(f"{out} already holds a benchmark ({', '.join(existing)}); use --force to replace it")
    for name in OWNED:
        (out / name).unlink(missing_ok=True)
    if videos.is_dir():
        for f in videos.glob("*.mp4"):
            f.unlink()
    out.mkdir(parents=True, exist_ok=True)


def run(args: argparse.Namespace) -> int:
    from mcd.synth.generate import SPLIT_NAMES, SynthError, parse_splits, plan, render_all
    from mcd.synth.report import ReportError, build_report
    from mcd.synth.writer import write_json, write_scenes

    if args.report is not None:
        try:
            print(build_report(args.report))
        except ReportError as e:
            raise CLIError(str(e)) from None
        return 0
    if args.out is None:
        raise CLIError("give --out OUT to generate a benchmark (or --report OUT to inspect one)")
    if args.workers < 1:
        raise CLIError(f"--workers must be at least 1, got {args.workers}")
    if args.questions_per_video < 1:
        raise CLIError(f"--questions-per-video must be at least 1, got {args.questions_per_video}")
    from mcd.synth.glyphs import AssetError
    from mcd.synth.scene import SceneError
    from mcd.synth.world import INSTRUMENT_SETS, STYLES, bank_instruments

    try:
        splits = parse_splits(args.splits)
        start = time.perf_counter()
        the_plan = plan(args.videos, args.seed, splits, args.questions_per_video, style=args.style,
                        sound_bank=args.sound_bank)
    except (SynthError, SceneError) as e:
        raise CLIError(str(e)) from None
    planned = time.perf_counter() - start
    _prepare(args.out, args.force)

    render_s = 0.0
    if not args.no_video:
        try:
            render_s = render_all(the_plan.scenes, args.out / "videos", args.workers, progress=not args.quiet)
        except AssetError as e:
            raise CLIError(str(e)) from None
    write_scenes(args.out / "scenes.jsonl", the_plan.scenes)
    bank = args.sound_bank or STYLES[args.style].default_bank
    known = bank_instruments(bank)
    settings = {"videos": args.videos, "seed": args.seed, "splits": splits,
                "questions_per_video": args.questions_per_video, "videos_rendered": not args.no_video,
                "world": 2, "style": args.style, "sound_bank": bank,
                # the instruments this benchmark's questions and sounds range over: a checkpoint trained on it
                # records this list (mcd.synth.world.INSTRUMENT_SETS; v1's 10 are a prefix of v2's 22)
                "instrument_set": next(k for k, v in INSTRUMENT_SETS.items() if v == known),
                "instruments": list(known)}
    (args.out / "synth_config.json").write_text(json.dumps(settings) + "\n", encoding="utf-8")
    next_id = 1
    counts = []
    for split in SPLIT_NAMES:
        if split in splits:
            records = the_plan.records(split, next_id)
            next_id += len(records)
            write_json(args.out / f"avqa-{split}.json", records)
            counts.append(f"{split} {len(records)}")
    print(f"wrote {args.videos} scenes and {next_id - 1} questions ({', '.join(counts)}) to {args.out}; "
          f"planning {planned:.1f} s")
    if not args.no_video:
        print(f"rendered {args.videos} clips in {render_s:.1f} s with {args.workers} worker(s): "
              f"{args.videos / max(render_s, 1e-9):.2f} clips/s")
    return 0

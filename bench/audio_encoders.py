"""Audio CNN variants pretrained on the same decoded windows, scored on the same held-out clips. Prints one table.

    python bench/audio_encoders.py --data data/synth-default --max-videos 1000 \
        --variant 'recipe={}' --variant 'mix={"mix": 0.5}' \
        --variant 'fine={"mix": 0.5, "arch": {"freq_strides": [2, 1, 2, 1]}}'

Why: the counting questions about sound need the set of instruments that sound in each second, and the shipped
audio features get that set right in only about three windows of four (`bench/audio_mixtures.py`). Each variant
is `mcd pretrain-encoders`' own audio training (`train_audio`, `evaluate_audio`) with some of its settings
changed: `arch` (fields of the synth audio architecture), `steps`, `batch`, `lr`, `mix` (`--audio-mix`). The clips
are decoded once for all variants (the train split's first `--max-videos`, as pretraining takes them, and the
held-out split pretraining scores on), so the rows differ only in what the variant changes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcd.encoders.labels import LabelSpace, read_scenes  # noqa: E402
from mcd.encoders.pretrain import evaluate_audio, load_clips, rate_stats, split_scenes, train_audio  # noqa: E402
from mcd.encoders.synth import SynthAudioEncoder, SynthVisualEncoder  # noqa: E402

SETTINGS = {"arch", "steps", "batch", "lr", "mix", "dim"}


def parse_variant(text: str) -> tuple[str, dict]:
    name, sep, body = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--variant wants NAME=JSON, got {text!r}")
    try:
        settings = json.loads(body)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--variant {name}: not JSON ({e})") from None
    if not isinstance(settings, dict) or set(settings) - SETTINGS:
        raise SystemExit(f"--variant {name}: an object with keys among {sorted(SETTINGS)}, got {body}")
    return name, settings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="benchmark folder written by `mcd synth`")
    p.add_argument("--variant", action="append", required=True, help="NAME=JSON settings (see the docstring)")
    p.add_argument("--max-videos", type=int, default=1000)
    p.add_argument("--steps", type=int, default=2000, help="audio steps of a variant that does not set its own")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    variants = [parse_variant(v) for v in args.variant]

    scenes = read_scenes(args.data / "scenes.jsonl")
    space = LabelSpace.from_scenes(scenes)
    train_scenes, held_scenes, held_name = split_scenes(scenes)
    visual, audio = SynthVisualEncoder(), SynthAudioEncoder()   # only their preprocessing is used to decode
    train, _ = load_clips(train_scenes[: args.max_videos], args.data, space, visual, audio, args.T, args.workers,
                          "decode train", keep_waves=any(s.get("mix", 0) > 0 for _, s in variants))
    held, _ = load_clips(held_scenes, args.data, space, visual, audio, args.T, args.workers, f"decode {held_name}")
    stats = rate_stats(train)

    rows = []
    for name, s in variants:
        torch.manual_seed(args.seed)
        enc = SynthAudioEncoder(s.get("dim", 128), s.get("arch"))
        start = time.perf_counter()
        head = train_audio(enc, train, len(space.audio), s.get("steps", args.steps), s.get("batch", args.batch),
                           s.get("lr", args.lr), args.seed, mix=s.get("mix", 0.0))
        seconds = time.perf_counter() - start
        m = evaluate_audio(enc, head, held, stats)
        rows.append((name, json.dumps(s), sum(p.numel() for p in enc.parameters()), seconds, m))
        print(f"{name}: exact match {m['segment_exact_match']:.3f} ({seconds:.0f} s)", flush=True)

    print(f"\nheld out: {held_name}, {len(held.video_ids)} clips, {len(held)} windows; "
          f"trained on {len(train.video_ids)} clips ({len(train)} windows)\n")
    print("| variant | settings | params | train s | labels | exact match | loudness MAE | log-rate MAE |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, settings, params, seconds, m in rows:
        print(f"| {name} | `{settings}` | {params:,} | {seconds:.0f} | {m['label_accuracy']:.3f} | "
              f"{m['segment_exact_match']:.3f} | {m['loudness_mae']:.3f} | {m['log_rate_mae']:.3f} |")


if __name__ == "__main__":
    main()

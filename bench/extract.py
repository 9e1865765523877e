"""Throughput of feature extraction on this machine: decode, each encoder, and `mcd extract` end to end.

    python bench/extract.py --data data/synth-default --encoders runs/synth-default/encoders [--videos 100]

Prints a table of clips/s per stage and the projected time for 6,000 clips (issue 4's target: <= 20 minutes).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from mcd import media  # noqa: E402
from mcd.data.extract import benchmark_videos, encoder_meta, extract, load_encoders  # noqa: E402
from mcd.data.features import FeatureCache  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--encoders", required=True, type=Path)
    ap.add_argument("--videos", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--T", type=int, default=10)
    args = ap.parse_args()
    videos = dict(list(benchmark_videos(args.data).items())[: args.videos])
    encoders = load_encoders(args.encoders)
    stages = {"decode": [], "visual encoder": [], "audio encoder": []}
    for path in list(videos.values())[:30]:
        t0 = time.perf_counter()
        clip = media.decode(path, T=args.T)
        t1 = time.perf_counter()
        with torch.no_grad():
            encoders.visual.encode(clip.frames)
            t2 = time.perf_counter()
            encoders.audio.encode(clip.audio_segments)
        t3 = time.perf_counter()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
            stages[name].append(dt)
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp, meta=encoder_meta(encoders, args.T))
        result = extract(videos, encoders, cache, args.T, workers=args.workers, progress=False)
    print(f"| stage | median ms/clip | clips/s | 6,000 clips |")
    print("|---|---:|---:|---:|")
    for name, times in stages.items():
        med = statistics.median(times)
        print(f"| {name} | {1000 * med:.1f} | {1 / med:.1f} | {6000 * med / 60:.1f} min |")
    rate = result["clips_per_s"]
    print(f"| `mcd extract` end to end ({len(videos)} clips, {args.workers} decode workers) | "
          f"{1000 / rate:.1f} | {rate:.2f} | {6000 / rate / 60:.1f} min |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

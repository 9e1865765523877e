"""Are the 10 procedural timbres separable? Accuracy and confusion of a simple classifier on held-out clips.

    .venv/bin/python bench/timbres.py [--train-clips 20] [--test-clips 10] [--seconds 10]

Single-instrument clips with random pitch, note rate and loudness are cut into 1-s segments; a multinomial
logistic regression on gain-invariant spectral statistics (mcd.synth.separability) is trained on the segments of
some clips and scored on the segments of other clips. The benchmark requires >= 95%.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcd.synth.separability import evaluate_separability  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-clips", type=int, default=20, help="training clips per instrument")
    ap.add_argument("--test-clips", type=int, default=10, help="held-out clips per instrument")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start = time.perf_counter()
    result = evaluate_separability(args.train_clips, args.test_clips, args.seed, args.seconds)
    print(result.table())
    print(f"({time.perf_counter() - start:.0f} s; requirement >= 95%: {'ok' if result.accuracy >= 0.95 else 'FAILED'})")


if __name__ == "__main__":
    main()

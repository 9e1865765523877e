"""Forward time of MCD for N questions about one clip, and parameter counts per module.

    python bench/model_speed.py                 # synth encoder dims: visual 128, audio 128, text 384
    python bench/model_speed.py --visual-dim 512 --audio-dim 128 --text-dim 512 --d 512

"shared" passes the clip once (batch 1, broadcast inside the model), which is what the pipeline does;
"copied" materialises N copies of the clip, to show what the sharing saves. Times are the median of
--runs forward passes in eval mode under no_grad, after --warmup passes.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from mcd.model.config import MCDConfig
from mcd.model import MCD


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--visual-dim", type=int, default=128)
    p.add_argument("--audio-dim", type=int, default=128)
    p.add_argument("--text-dim", type=int, default=384)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--P", type=int, default=49)
    p.add_argument("--L", type=int, default=14, help="question tokens")
    p.add_argument("--K", type=int, default=4, help="text objects (keywords + 2 type words)")
    p.add_argument("--questions", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    return p.parse_args()


def median_ms(fn, runs: int, warmup: int, device: str) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = MCDConfig(visual_dim=args.visual_dim, audio_dim=args.audio_dim, text_dim=args.text_dim, d=args.d,
                    T=args.T, P=args.P)
    dev = args.device
    model = MCD(cfg).to(dev).eval()
    clip_v = torch.randn(1, cfg.T, cfg.P, cfg.visual_dim, device=dev)
    clip_a = torch.randn(1, cfg.T, cfg.audio_dim, device=dev)

    print(f"MCD forward, eval + no_grad, device={dev}, threads={torch.get_num_threads()}, "
          f"T={cfg.T} P={cfg.P} d={cfg.d} Dv={cfg.visual_dim} Da={cfg.audio_dim} Dt={cfg.text_dim} "
          f"L={args.L} K={args.K}, median of {args.runs} runs")
    print(f"{'questions':>9} | {'shared clip ms':>14} | {'ms/question':>11} | {'copied clip ms':>14}")
    print(f"{'-' * 9}-+-{'-' * 14}-+-{'-' * 11}-+-{'-' * 14}")
    for n in args.questions:
        q = dict(question=torch.randn(n, args.L, cfg.text_dim, device=dev),
                 question_mask=torch.ones(n, args.L, dtype=torch.bool, device=dev),
                 objects=torch.randn(n, args.K, cfg.text_dim, device=dev),
                 objects_mask=torch.ones(n, args.K, dtype=torch.bool, device=dev),
                 objects_kind=torch.tensor([0] * (args.K - 2) + [1, 1], device=dev).expand(n, -1))
        copied_v, copied_a = clip_v.repeat(n, 1, 1, 1), clip_a.repeat(n, 1, 1)
        with torch.no_grad():
            shared = median_ms(lambda: model(clip_v, clip_a, **q), args.runs, args.warmup, dev)
            copied = median_ms(lambda: model(copied_v, copied_a, **q), args.runs, args.warmup, dev)
        print(f"{n:>9} | {shared:>14.1f} | {shared / n:>11.2f} | {copied:>14.1f}")

    counts = model.parameter_counts()
    print(f"\n{'module':<16} | {'parameters':>10}")
    print(f"{'-' * 16}-+-{'-' * 10}")
    for name, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{name:<16} | {count:>10,}")
    print(f"{'total':<16} | {sum(counts.values()):>10,}")


if __name__ == "__main__":
    main()

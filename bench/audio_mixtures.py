"""How well do cached audio features tell which instruments sound in a window of a mixture? Prints one table.

    python bench/audio_mixtures.py --data data/synth-default --features cache/synth-default

Why: the counting questions about sound ("How many instruments were heard?", "How many types of instruments
sound?") lose the shipped checkpoint the most points, and they need the set of sounding classes per second. A
linear multi-label probe per 1-s window (the pretraining head's shape) is fitted on the `train` clips' cached
features and scored on the `test` clips, overall and by how many sources sound in the window, and per clip as
"the set of classes that sound at all". The same probe scored on its own training windows shows whether the
features separate mixtures they were fitted on but not new ones (memorised mixtures rather than learnt sounds).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoders import fit_linear  # noqa: E402  (bench/encoders.py: the same probe on freshly encoded clips)
from mcd.encoders.labels import PRESENT, LabelSpace, audio_targets, read_scenes  # noqa: E402


def windows(scenes, split: str, features: Path, space: LabelSpace) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached audio features [clips, T, D] and per-window class fractions [clips, T, C] of one split."""
    xs, ys = [], []
    for s in scenes:
        if s.split != split:
            continue
        x = load_file(str(features / f"{s.video_id}.safetensors"))["audio"].float()
        xs.append(x)
        ys.append(torch.from_numpy(audio_targets(s, np.arange(len(x)) + 0.5, space).presence))
    if not xs:
        raise SystemExit(f"no {split!r} clips in the benchmark")
    return torch.stack(xs), torch.stack(ys)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="benchmark folder (scenes.jsonl)")
    p.add_argument("--features", type=Path, required=True, help="`mcd extract` cache of that benchmark")
    p.add_argument("--steps", type=int, default=1500)
    args = p.parse_args()
    torch.set_num_threads(1)  # a 128 -> C linear map: threads only wait on each other
    scenes = read_scenes(args.data / "scenes.jsonl")
    space = LabelSpace.from_scenes(scenes)
    x_train, y_train = windows(scenes, "train", args.features, space)
    x_test, y_test = windows(scenes, "test", args.features, space)
    fitted = fit_linear(x_train.flatten(0, 1), (y_train >= PRESENT).float().flatten(0, 1), len(space.audio),
                        multilabel=True, steps=args.steps, seed=0)
    probe = lambda x: fitted(x.flatten(0, 1)).view(*x.shape[:2], -1)  # noqa: E731  [clips, T, D] -> [clips, T, C]
    instruments = slice(0, len(space.audio) - 1)  # the last class is the voiceover
    print(f"{args.features}: {len(x_train)} train clips, {len(x_test)} test clips, classes {', '.join(space.audio)}\n")
    print("| windows | n | (window, class) right | whole set right |\n|---|---:|---:|---:|")
    with torch.no_grad():
        for name, x, y in (("train (fitted on)", x_train, y_train), ("test", x_test, y_test)):
            right = (probe(x).sigmoid() >= 0.5) == (y >= PRESENT)
            print(f"| {name}, all | {right.shape[0] * right.shape[1]} | {right.float().mean():.3f} | "
                  f"{right.all(-1).float().mean():.3f} |")
            sources = (y[..., instruments] > 0).sum(-1)
            for k in range(int(sources.max()) + 1):
                m = sources == k
                if m.any() and name == "test":
                    print(f"| test, {k} instrument(s) sounding | {int(m.sum())} | {right[m].float().mean():.3f} | "
                          f"{right[m].all(-1).float().mean():.3f} |")
        guess = (probe(x_test).sigmoid() >= 0.5)[..., instruments].any(1)
        truth = (y_test >= PRESENT)[..., instruments].any(1)
    sets = (guess == truth).all(-1).float().mean()
    counts = (guess.sum(-1) == truth.sum(-1)).float().mean()
    print(f"\nper test clip: the set of instrument classes that sound at all right {sets:.3f}, their number {counts:.3f}")


if __name__ == "__main__":
    main()

"""Is the audio really the soundfont's? A linear probe on log-mel features, trained on one bank, tested on another.

    PYTHONPATH=. .venv/bin/python bench/synth_probe.py [--train-clips 24] [--test-clips 12] [--seconds 4]

For every one of the 22 instruments, single-instrument clips are made the way the generator makes them (a scene
with one source at a random loudness 0.3-1.0, note rate 0.6-5/s, pitch and position, mixed by mcd.synth.mixer in
stereo and downmixed as the decoders do), cut into 1-s segments, and described by gain-invariant log-mel
statistics (torchaudio MelSpectrogram, 64 bands: per-band mean and spread over the frames within 40 dB of the
segment's loudest, after subtracting that loudest frame's level). A multinomial logistic regression (torch, L2)
is trained on clips of the default style's bank (FluidR3) and tested on:

- other FluidR3 clips (same bank, new melodies, loudness, positions): how separable the instruments are;
- MuseScore clips, the held-out style's bank, which the probe never saw (another soundfont, a room reverb, a tenor
  saxophone and a room drum kit; many presets share Fluid R3 Mono's recordings, see mcd/synth/soundfont.py);
- and the reverse (trained on MuseScore, tested on FluidR3).

Chance is 1/22 = 4.5%. Prints the accuracies, per-instrument held-out accuracy and the commonest confusions.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torchaudio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcd.synth.mixer import mix  # noqa: E402
from mcd.synth.scene import (LOUDNESS_RANGE, PITCH_RANGE, RATE_RANGE, Player, Scene, Source,  # noqa: E402
                             VISIBLE_INSTRUMENTS, WORLD_INSTRUMENTS)
from mcd.synth.soundfont import ensure_bank  # noqa: E402

SR = 16000
MEL = torchaudio.transforms.MelSpectrogram(SR, n_fft=512, hop_length=160, n_mels=64, f_min=40.0, f_max=8000.0)


def clip(instrument: str, bank: str, seconds: float, rng: np.random.Generator, index: int) -> np.ndarray:
    """The decoded-mono soundtrack of a one-source clip (a silent visible player when the instrument has no glyph)."""
    lo, hi = PITCH_RANGE[instrument]
    src = dict(loudness=round(float(rng.uniform(*LOUDNESS_RANGE)), 2),
               rate=round(float(np.exp(rng.uniform(*np.log(RATE_RANGE)))), 2),
               pitch=int(rng.integers(lo, hi + 1)), intervals=[(0.0, seconds)])
    position = ("left", "middle", "right")[int(rng.integers(3))]
    style = {"name": "default" if bank != "musescore" else "held-out", "glyphs": "openmoji", "sound_bank": bank,
             "backdrop": "drawn"}
    if instrument in VISIBLE_INSTRUMENTS:
        players, off = [Player(instrument, **src, position=position, bbox=(0, 0, 10, 10))], None
    else:
        players = [Player("violin", 0.5, 1.0, 60, [], position=position, bbox=(0, 0, 10, 10))]
        off = Source(instrument, **src)
    scene = Scene(f"probe{index}", "indoor", players, offscreen=off, duration=seconds, style=style,
                  seed=int(rng.integers(2**31))).validate()
    return mix(scene)


def features(x: np.ndarray) -> np.ndarray:
    """[segments, 128]: per 1-s segment, log-mel band means and spreads over its sounding frames."""
    out = []
    for s in range(0, len(x) - SR + 1, SR):
        m = MEL(torch.from_numpy(x[s:s + SR].copy())).clamp_min(1e-10).log10().mul(10.0)   # dB [64, frames]
        frame_db = m.max(dim=0).values
        keep = frame_db >= frame_db.max() - 40.0
        m = m[:, keep] - frame_db.max()
        out.append(torch.cat([m.mean(dim=1), m.std(dim=1, unbiased=False)]).numpy())
    return np.stack(out)


def dataset(bank: str, clips: int, seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for k, inst in enumerate(WORLD_INSTRUMENTS):
        rng = np.random.default_rng([seed, k])
        for c in range(clips):
            f = features(clip(inst, bank, seconds, rng, c))
            xs.append(f)
            ys += [k] * len(f)
    return np.concatenate(xs).astype(np.float32), np.asarray(ys)


def fit(x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-3, steps: int = 400):
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd)
    yt = torch.from_numpy(y)
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.LBFGS(lin.parameters(), lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt), yt) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda z: lin(torch.from_numpy((z - mu) / sd)).argmax(1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-clips", type=int, default=24, help="clips per instrument to train on")
    ap.add_argument("--test-clips", type=int, default=12, help="clips per instrument to test on")
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length (1-s segments)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    for bank in ("fluidr3", "musescore"):
        ensure_bank(bank)
    t0 = time.perf_counter()
    x_tr, y_tr = dataset("fluidr3", args.train_clips, args.seconds, args.seed)
    x_same, y_same = dataset("fluidr3", args.test_clips, args.seconds, args.seed + 1)
    x_ms_tr, y_ms_tr = dataset("musescore", args.train_clips, args.seconds, args.seed + 2)
    x_ho, y_ho = dataset("musescore", args.test_clips, args.seconds, args.seed + 3)
    made = time.perf_counter() - t0
    k = len(WORLD_INSTRUMENTS)
    probe = fit(x_tr, y_tr, k)
    reverse = fit(x_ms_tr, y_ms_tr, k)
    acc = lambda p, y: float((p == y).mean())  # noqa: E731
    p_same, p_ho, p_rev = probe(x_same), probe(x_ho), reverse(x_same)
    print(f"{k} instruments; {len(y_tr)} training segments (FluidR3, {args.train_clips} clips x {args.seconds:g} s "
          f"each), {len(y_ho)} test segments per bank; features made in {made:.0f} s; chance {100 / k:.1f}%")
    print(f"train FluidR3 -> test FluidR3 (new clips):           {100 * acc(p_same, y_same):5.1f}%")
    print(f"train FluidR3 -> test MuseScore (held-out bank):     {100 * acc(p_ho, y_ho):5.1f}%")
    print(f"train MuseScore -> test FluidR3 (the reverse):       {100 * acc(p_rev, y_same):5.1f}%")
    print("held-out accuracy per instrument (train FluidR3, test MuseScore), and its commonest confusion:")
    for i, inst in enumerate(WORLD_INSTRUMENTS):
        m = y_ho == i
        wrong = Counter(WORLD_INSTRUMENTS[j] for j in p_ho[m] if j != i).most_common(1)
        conf = f"  (-> {wrong[0][0]} {wrong[0][1]})" if wrong else ""
        print(f"  {inst:16s} {100 * acc(p_ho[m], y_ho[m]):5.1f}%{conf}")


if __name__ == "__main__":
    main()

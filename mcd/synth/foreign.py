"""Music the synthetic world never plays: melody and chords on General MIDI programs that none of its instruments
use, rendered by fluidsynth. It is the out-of-domain detector's sound contrast set (`mcd synth-contrast`, rendered
from the training soundfont) and one of bench/ood_negatives.py's categories (rendered from a soundfont training
never plays). To the encoders such music is the world's own kind of sound (soundfont instruments playing tonal
lines), so no distance to the training clips separates it; a read-out fitted against it can (mcd.serving.ood).

    mcd synth-contrast --out DIR [--clips 240] [--seed 99] [--soundfont PATH]

writes DIR/NNN.mp4: 10-s clips whose sound is such music and whose picture is a flat grey frame (the contrast set
is read for its sound only), and DIR/contrast.json (the settings).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from mcd.synth.midi import Note, write_midi
from mcd.synth.soundfont import BANK_OVERRIDES, VOICES, fluidsynth_program, font_path

SR = 16000
DURATION_S = 10.0
FPS = 8
SIZE = 224


def foreign_programs() -> list[int]:
    """The melodic General MIDI programs (0-111) that none of the world's voices, in any bank, uses."""
    world = {v.program for v in VOICES.values()} | {v.program for o in BANK_OVERRIDES.values() for v in o.values()}
    return [p for p in range(112) if p not in world]


def read_wav(path: Path, sr: int = SR) -> np.ndarray:
    """Mono float32 at `sr` from a 16-bit PCM wav (resampled linearly if needed)."""
    with wave.open(str(path)) as w:
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    x = x.reshape(-1, ch).mean(1)
    if rate != sr:
        t = np.arange(int(len(x) * sr / rate)) / sr
        x = np.interp(t, np.arange(len(x)) / rate, x).astype(np.float32)
    return x


def foreign_music(rng: np.random.Generator, soundfont: Path, work: Path) -> np.ndarray:
    """About 10 s of a random melody over chords, on two programs drawn from `foreign_programs`, rendered from
    `soundfont` with fluidsynth's reverb; mono float32 at SR, peak 0.3-0.8."""
    foreign = foreign_programs()
    programs = [int(rng.choice(foreign)) for _ in range(2)]
    key = int(rng.integers(48, 60))
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    beat = int(rng.integers(250, 600))
    melody = [Note(t, int(beat * rng.uniform(0.6, 1.0)), key + 12 + int(rng.choice(scale)), int(rng.integers(70, 110)))
              for t in range(0, 10_000, beat)]
    chords = [Note(t, 4 * beat, key + d + int(rng.choice([0, 5, 7])), 60)
              for t in range(0, 10_000, 4 * beat) for d in (0, 4, 7)]
    mixes = []
    for program, notes in zip(programs, (melody, chords)):
        mid, wav = work / f"m{program}.mid", work / f"m{program}.wav"
        write_midi(mid, notes, program)
        subprocess.run([fluidsynth_program(), "-ni", "-g", "0.8", "-R", "1", "-r", str(SR), "-F", str(wav),
                        str(soundfont), str(mid)], check=True, capture_output=True)
        mixes.append(read_wav(wav))
    n = max(len(m) for m in mixes)
    out = sum(np.pad(m, (0, n - len(m))) for m in mixes)
    return out / max(1e-6, np.abs(out).max()) * rng.uniform(0.3, 0.8)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Loop or cut to n samples."""
    x = np.asarray(x, np.float32)
    if len(x) == 0:
        return np.zeros(n, np.float32)
    return np.tile(x, int(np.ceil(n / len(x))))[:n]


def write_contrast_set(out: Path, clips: int, seed: int, soundfont: Path) -> list[Path]:
    """`clips` contrast clips in `out` (kept where already there: the folder is resumable); clip i's sound is drawn
    from numpy's generator seeded [seed, 0, i]."""
    from mcd.synth.writer import write_clip

    out.mkdir(parents=True, exist_ok=True)
    grey = [np.full((SIZE, SIZE, 3), 128, np.uint8)] * int(DURATION_S * FPS)
    paths = []
    for i in range(clips):
        path = out / f"{i:03d}.mp4"
        paths.append(path)
        if path.is_file():
            continue
        rng = np.random.default_rng([seed, 0, i])
        with tempfile.TemporaryDirectory() as tmp:
            sound = fit_length(foreign_music(rng, soundfont, Path(tmp)), int(DURATION_S * SR))
        write_clip(path, grey, sound, FPS, SR, comment="contrast set: music on programs the world never plays")
    (out / "contrast.json").write_text(json.dumps({"clips": clips, "seed": seed, "soundfont": str(soundfont),
                                                   "programs": foreign_programs()}, indent=1) + "\n")
    return paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output folder (clips already there are kept)")
    p.add_argument("--clips", type=int, default=240)
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--soundfont", type=Path, help="default: the training soundfont (FluidR3_GM)")


def run(args: argparse.Namespace) -> int:
    from mcd.cli import CLIError
    from mcd.synth.glyphs import AssetError
    if args.clips < 1:
        raise CLIError(f"--clips must be at least 1, got {args.clips}")
    try:
        soundfont = args.soundfont or font_path("fluidr3")
        if not Path(soundfont).is_file():
            raise CLIError(f"--soundfont {soundfont} is not a file")
        paths = write_contrast_set(args.out, args.clips, args.seed, Path(soundfont))
    except AssetError as exc:
        raise CLIError(str(exc)) from exc
    print(f"{len(paths)} contrast clips in {args.out}")
    return 0

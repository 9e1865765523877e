"""Sampled instruments: a note bank rendered once from a General MIDI soundfont, melodies assembled in numpy.

Two soundfonts, both Debian packages rendered with the `fluidsynth` program (LGPL-2.1+, run as a program):

| bank | soundfont | Debian package | licence | style |
|---|---|---|---|---|
| `fluidr3` | FluidR3_GM.sf2 (Frank Wen) | fluid-soundfont-gm | MIT | default |
| `musescore` | MuseScore_General_Lite.sf3 (S. C. Collins) | musescore-general-soundfont-small | MIT, parts PD/CC0 | held-out |

Caveat, from the package's own sample-source table: most MuseScore General melodic presets are built on Fluid R3
*Mono*, i.e. mono versions of the same recordings; the grand piano (AKAI "Splendid Grand", public domain) and a
few others are other recordings. The held-out bank therefore also differs on purpose: it is rendered with
fluidsynth's reverb (another room), plays the saxophone as a tenor (not alto) and the drum with the Room kit. It
measures robustness to another soundfont and room more than to other instruments (docs/synth.md, Limits).

The bank: for every instrument, every note of its range at two velocities, each note held as long as the world
ever holds it (3 s for sustained instruments, the natural length for plucked/struck ones) and released, rendered
at 16 kHz (the default bank dry; the held-out bank with fluidsynth's reverb, a room of its own), downmixed to
mono, onset-aligned and stored as float16 `.npy` files under
`$MCD_CACHE_DIR/notebank/<bank>-<soundfont id>-<settings id>/` (default `~/.cache/mcd`; the ids hash the font and
the rendering settings, so another font version or voice table builds another bank). Built on first use or by
`scripts/setup.sh`, with a progress bar (`python -m mcd.synth.soundfont --build`). Generation then only slices,
fades and adds notes.

Loudness contract (as for the procedural timbres): every note, cut to the length it is played, is normalised to a
peak 40-ms RMS of 1 before the source's `loudness_gain`, so "louder" in the scene graph is louder in the signal.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mcd.synth.glyphs import SETUP_HINT, AssetError, asset_file_id, cache_root
from mcd.synth.midi import Note, write_midi
from mcd.synth.scene import Source, note_onsets
from mcd.synth.sound import _SCALE, gate, normalise_note
from mcd.synth.world import PITCH_RANGE, SAMPLE_RATE, WORLD_INSTRUMENTS

SR = SAMPLE_RATE
BANK_VERSION = 1
VELOCITIES = (80, 112)
SUSTAIN_HOLD = 3.0      # seconds a sustained note is held in the bank (the world never holds one longer)
END_FADE = 0.03         # seconds of fade where a note is cut short


@dataclass(frozen=True)
class FontSpec:
    name: str
    paths: tuple[str, ...]       # first existing one is used
    package: str
    env: str                     # environment variable that overrides the path
    attribution: str
    effects: tuple[str, ...] = ("-R", "0", "-C", "0")   # fluidsynth options: dry by default
    tail: float = 0.35           # seconds kept after a note-off (release, and reverb where there is one)


SOUNDFONTS: dict[str, FontSpec] = {
    "fluidr3": FontSpec("fluidr3", ("/usr/share/sounds/sf2/FluidR3_GM.sf2",), "fluid-soundfont-gm",
                        "MCD_SOUNDFONT_FLUIDR3", "FluidR3_GM soundfont (c) 2000-2002, 2008 Frank Wen, MIT"),
    "musescore": FontSpec("musescore", ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
                                        "/usr/share/sounds/sf3/MuseScore_General.sf3"),
                          "musescore-general-soundfont-small", "MCD_SOUNDFONT_MUSESCORE",
                          "MuseScore_General soundfont (c) 2018-2021 S. Christian Collins, MIT (parts PD/CC0)",
                          # another room: fluidsynth's reverb (a medium hall), as a recording made elsewhere
                          effects=("-R", "1", "-C", "0", "-o", "synth.reverb.room-size=0.55",
                                   "-o", "synth.reverb.damp=0.35", "-o", "synth.reverb.width=1.0",
                                   "-o", "synth.reverb.level=0.45"),
                          tail=0.6),
}


@dataclass(frozen=True)
class Voice:
    """How a bank plays an instrument: General MIDI program (or drum kit), playable range, note length."""

    program: int
    lo: int                       # lowest and highest MIDI note played (melodies fold into this range)
    hi: int
    natural: float | None         # seconds a plucked/struck note rings; None: sustained (held to the next note)
    ring: float = 0.0             # how long a decaying note may ring on after the next one starts
    drums: tuple[int, ...] = ()   # percussion: the kit's notes this instrument plays (channel 10)


#: General MIDI program per MUSIC-AVQA instrument (0-based program numbers). Stand-ins where GM has no such
#: instrument: erhu -> Fiddle, guzheng -> Koto, pipa -> Shamisen, suona -> Shenai, ukulele -> Nylon-string guitar
#: played high, drum -> the standard kit's kick/snare/toms, congas -> the kit's three conga notes.
VOICES: dict[str, Voice] = {
    "violin": Voice(40, 55, 100, None), "acoustic_guitar": Voice(25, 40, 84, 1.5, 0.05),
    "piano": Voice(0, 21, 108, 2.0, 2.0), "trumpet": Voice(56, 52, 84, None), "saxophone": Voice(65, 49, 81, None),
    "drum": Voice(0, 35, 50, 0.8, 0.3, drums=(36, 38, 41, 43, 45, 47, 48, 50)),
    "accordion": Voice(21, 41, 89, None), "banjo": Voice(105, 48, 84, 0.8, 0.1),
    "congas": Voice(0, 62, 64, 0.8, 0.3, drums=(62, 63, 64)), "flute": Voice(73, 60, 96, None),
    "cello": Voice(42, 36, 76, None), "pipa": Voice(106, 45, 86, 1.0, 0.05), "ukulele": Voice(24, 60, 81, 1.0, 0.05),
    "clarinet": Voice(71, 50, 91, None), "guzheng": Voice(107, 38, 88, 2.0, 0.5), "bagpipe": Voice(109, 67, 81, None),
    "bassoon": Voice(70, 34, 75, None), "electric_bass": Voice(33, 28, 67, 1.5, 0.05),
    "erhu": Voice(110, 62, 93, None), "xylophone": Voice(13, 65, 108, 1.0, 1.0), "tuba": Voice(58, 28, 65, None),
    "suona": Voice(111, 60, 90, None),
}
#: Where the held-out bank plays an instrument with another preset than the default bank.
BANK_OVERRIDES: dict[str, dict[str, Voice]] = {
    "musescore": {"saxophone": Voice(66, 44, 76, None),     # tenor instead of alto saxophone
                  "drum": Voice(8, 35, 50, 0.8, 0.3, drums=(36, 38, 41, 43, 45, 47, 48, 50))},   # room kit
}
assert set(VOICES) == set(WORLD_INSTRUMENTS)


def voice(bank: str, instrument: str) -> Voice:
    return BANK_OVERRIDES.get(bank, {}).get(instrument, VOICES[instrument])


def note_range(bank: str, instrument: str) -> tuple[int, int]:
    """The notes the bank holds for an instrument: its playable range where the world's melodies reach."""
    v = voice(bank, instrument)
    if v.drums:
        return min(v.drums), max(v.drums)
    plo, phi = PITCH_RANGE[instrument]
    lo, hi = max(v.lo, plo - 13), min(v.hi, phi + 11)
    assert hi - lo >= 11, (bank, instrument, lo, hi)   # folding by octaves always lands inside
    return lo, hi


def fold(midi: int, lo: int, hi: int) -> int:
    """Move a note by octaves into lo..hi."""
    while midi < lo:
        midi += 12
    while midi > hi:
        midi -= 12
    return midi


# ------------------------------------------------------------------------------------------------ locating assets

def fluidsynth_program() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise AssetError(f"the soundfont sound banks need the `fluidsynth` program (Debian package fluidsynth): "
                         f"{SETUP_HINT}, or use --sound-bank procedural")
    return exe


def font_path(bank: str) -> Path:
    spec = SOUNDFONTS.get(bank)
    if spec is None:
        raise AssetError(f"unknown soundfont bank {bank!r}; expected one of {', '.join(SOUNDFONTS)}")
    env = os.environ.get(spec.env)
    for p in ((env,) if env else spec.paths):
        if Path(p).is_file():
            return Path(p)
    raise AssetError(f"the {bank!r} sound bank needs {' or '.join((env,) if env else spec.paths)} (Debian package "
                     f"{spec.package}): {SETUP_HINT}")


@lru_cache(maxsize=None)
def font_id(bank: str) -> str:
    return asset_file_id(font_path(bank))


def _settings_id(bank: str) -> str:
    """A hash of everything that shapes the rendered notes besides the font (voices, velocities, effects)."""
    spec = SOUNDFONTS[bank]
    text = repr((BANK_VERSION, SR, VELOCITIES, SUSTAIN_HOLD, spec.effects, spec.tail,
                 sorted((i, voice(bank, i)) for i in WORLD_INSTRUMENTS)))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def bank_dir(bank: str) -> Path:
    return cache_root() / "notebank" / f"{bank}-{font_id(bank)}-{_settings_id(bank)}"


def note_length(v: Voice, bank: str) -> tuple[float, float]:
    """(seconds held before the note-off, seconds stored per note)."""
    hold = SUSTAIN_HOLD if v.natural is None else v.natural
    return hold, hold + SOUNDFONTS[bank].tail


# ------------------------------------------------------------------------------------------------ building

def _render_instrument(bank: str, instrument: str, work: Path) -> tuple[np.ndarray, dict]:
    """Render all notes x velocities of one instrument: float16 [velocities, notes, samples] and its metadata."""
    v = voice(bank, instrument)
    lo, hi = note_range(bank, instrument)
    pitches = list(v.drums) if v.drums else list(range(lo, hi + 1))
    hold, length = note_length(v, bank)
    slot = int(round((length + 0.5) * 1000))
    notes = [Note(k * slot, int(round(hold * 1000)), p, vel)
             for k, (vel, p) in enumerate((vel, p) for vel in VELOCITIES for p in pitches)]
    mid, raw = work / f"{instrument}.mid", work / f"{instrument}.raw"
    channel = 9 if v.drums else 0
    write_midi(mid, notes, v.program, channel=channel, bank=0)
    cmd = [fluidsynth_program(), "-ni", "-q", *SOUNDFONTS[bank].effects, "-g", "0.5", "-r", str(SR),
           "-T", "raw", "-O", "float", "-F", str(raw), str(font_path(bank)), str(mid)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not raw.is_file():
        raise AssetError(f"fluidsynth failed rendering {instrument} from {font_path(bank)}: "
                         f"{(result.stderr or result.stdout).strip()[-500:]}")
    audio = np.fromfile(raw, dtype="<f4").reshape(-1, 2).mean(axis=1)
    n = int(round(length * SR))
    out = np.zeros((len(VELOCITIES), len(pitches), n), np.float16)
    for k, note in enumerate(notes):
        a = int(round(note.start_ms * SR / 1000))
        seg = audio[a: a + n + 800]
        peak = float(np.abs(seg).max()) if seg.size else 0.0
        if peak <= 1e-6:
            raise AssetError(f"{bank}: {instrument} note {note.pitch} velocity {note.velocity} renders silent")
        start = max(0, int(np.argmax(np.abs(seg) > 1e-3 * peak)) - 16)   # onset-aligned (block timing jitters)
        seg = seg[start: start + n]
        out[k // len(pitches), k % len(pitches), : seg.size] = (seg / peak).astype(np.float16)
    meta = {"instrument": instrument, "program": v.program, "drum_kit": bool(v.drums), "pitches": pitches,
            "velocities": list(VELOCITIES), "hold": hold, "samples": n, "font": str(font_path(bank)),
            "font_id": font_id(bank)}
    return out, meta


def bank_ready(bank: str) -> bool:
    d = bank_dir(bank)
    return all((d / f"{i}.npy").is_file() and (d / f"{i}.json").is_file() for i in WORLD_INSTRUMENTS)


def ensure_bank(bank: str, progress: bool = True) -> float:
    """Build the note bank if any instrument is missing (atomically per file); returns the seconds it took."""
    if bank == "procedural":
        return 0.0
    d = bank_dir(bank)
    missing = [i for i in WORLD_INSTRUMENTS if not ((d / f"{i}.npy").is_file() and (d / f"{i}.json").is_file())]
    if not missing:
        return 0.0
    from tqdm import tqdm

    start = time.perf_counter()
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mcd-notebank-") as tmp:
        for instrument in tqdm(missing, desc=f"note bank {bank}", unit="instrument", disable=not progress):
            arr, meta = _render_instrument(bank, instrument, Path(tmp))
            part = d / f".{instrument}.{os.getpid()}.npy"
            np.save(part, arr)
            os.replace(part, d / f"{instrument}.npy")
            part = d / f".{instrument}.{os.getpid()}.json"
            part.write_text(json.dumps(meta) + "\n")
            os.replace(part, d / f"{instrument}.json")
    return time.perf_counter() - start


class NoteBank:
    """The rendered notes of one bank, memory-mapped (worker processes share the page cache)."""

    def __init__(self, bank: str):
        self.bank = bank
        self.dir = bank_dir(bank)
        self._arrays: dict[str, np.ndarray] = {}
        self._meta: dict[str, dict] = {}

    def _load(self, instrument: str) -> tuple[np.ndarray, dict]:
        if instrument not in self._arrays:
            npy, meta = self.dir / f"{instrument}.npy", self.dir / f"{instrument}.json"
            if not (npy.is_file() and meta.is_file()):
                raise AssetError(f"the {self.bank!r} note bank has no {instrument} in {self.dir}: build it with "
                                 f"`python -m mcd.synth.soundfont --build {self.bank}` (scripts/setup.sh does)")
            self._arrays[instrument] = np.load(npy, mmap_mode="r")
            self._meta[instrument] = json.loads(meta.read_text())
        return self._arrays[instrument], self._meta[instrument]

    def note(self, instrument: str, pitch: int, velocity: int, samples: int) -> np.ndarray:
        """The first `samples` of a note (float32), faded out over END_FADE where it is cut short."""
        arr, meta = self._load(instrument)
        k = meta["pitches"].index(pitch)
        n = min(samples, arr.shape[-1])
        x = np.asarray(arr[velocity, k, :n], dtype=np.float32)
        if n < arr.shape[-1]:
            f = min(n, int(END_FADE * SR))
            x[n - f:] *= np.linspace(1.0, 0.0, f, dtype=np.float32)
        return x


@lru_cache(maxsize=None)
def get_bank(bank: str) -> NoteBank:
    return NoteBank(bank)


def source_signal(src: Source, rng: np.random.Generator, duration: float, bank: str) -> np.ndarray:
    """One source from the note bank at unit loudness (peak window RMS 1 per note), silent outside its intervals.

    The melody is world v1's (a pentatonic random walk around the source's pitch, one note per onset), folded
    into the instrument's range; every note gets a random velocity layer. Drum kits alternate kick and snare
    with tom fills; congas walk over the kit's three conga notes.
    """
    n = int(round(duration * SR))
    out = np.zeros(n, np.float32)
    notes = get_bank(bank)
    v = voice(bank, src.instrument)
    lo, hi = note_range(bank, src.instrument)
    onsets = note_onsets(src)
    degree = int(rng.integers(len(_SCALE)))
    for i, onset in enumerate(onsets):
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, len(_SCALE) + 2))
        velocity = int(rng.integers(len(VELOCITIES)))
        if v.drums and len(v.drums) > 3:      # a drum kit
            pitch = int(v.drums[2 + int(rng.integers(len(v.drums) - 2))]) if rng.random() < 0.2 \
                else int(v.drums[i % 2])
        elif v.drums:                         # congas
            pitch = int(v.drums[degree % len(v.drums)])
        else:
            octave, step = divmod(degree, len(_SCALE))
            pitch = fold(src.pitch + 12 * octave + int(_SCALE[step]) - 5, lo, hi)
        nxt = onsets[i + 1] if i + 1 < len(onsets) and onsets[i + 1] - onset < 1.5 / src.rate else np.inf
        if v.natural is None:
            length = min(nxt - onset, SUSTAIN_HOLD) + END_FADE
        else:
            length = min(v.natural + SOUNDFONTS[bank].tail, nxt - onset + v.ring)
        a = int(round(onset * SR))
        m = min(n - a, max(1, int(round(length * SR))))
        if m <= 16:
            continue
        out[a:a + m] += normalise_note(notes.note(src.instrument, pitch, velocity, m))
    return out * gate(src.intervals, n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build (or locate) the soundfont note banks.")
    ap.add_argument("--build", nargs="*", default=None, metavar="BANK",
                    help=f"build these banks (default: all of {', '.join(SOUNDFONTS)})")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    for bank in (args.build or list(SOUNDFONTS)):
        took = ensure_bank(bank, progress=not args.quiet)
        size = sum(f.stat().st_size for f in bank_dir(bank).glob("*.npy"))
        print(f"{bank}: {bank_dir(bank)} ({size / 2**20:.0f} MiB){f', built in {took:.1f} s' if took else ', ready'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Constants of the synthetic world and its styles: instruments, slots, clip format, what each style draws with.

Everything else in `mcd.synth` imports from here; this module imports nothing from the package, which is what
keeps the package free of import cycles (scene -> render -> sound -> scene was one).
"""
from __future__ import annotations

from dataclasses import dataclass

#: World v1's 10 instruments, in the order the v1 checkpoints' grounding heads index them (mcd.synth.grounding).
#: They are also the instruments with a glyph in every glyph set: the only ones that can be seen.
SYNTH_INSTRUMENTS: tuple[str, ...] = (
    "violin", "acoustic_guitar", "piano", "trumpet", "saxophone",
    "drum", "accordion", "banjo", "congas", "flute",
)
#: World v2: all 22 MUSIC-AVQA instruments. The first 10 are SYNTH_INSTRUMENTS in the same order, so a head
#: trained on the v1 list indexes its classes identically here (a prefix); the other 12 are only heard
#: (off-screen), since no glyph set draws them.
WORLD_INSTRUMENTS: tuple[str, ...] = SYNTH_INSTRUMENTS + (
    "cello", "pipa", "ukulele", "clarinet", "guzheng", "bagpipe",
    "bassoon", "electric_bass", "erhu", "xylophone", "tuba", "suona",
)
VISIBLE_INSTRUMENTS: tuple[str, ...] = SYNTH_INSTRUMENTS
#: Named instrument lists, for a checkpoint or a benchmark to record which instruments it knows.
INSTRUMENT_SETS: dict[str, tuple[str, ...]] = {"v1": SYNTH_INSTRUMENTS, "v2": WORLD_INSTRUMENTS}

POSITIONS: tuple[str, ...] = ("left", "middle", "right")
BACKGROUNDS: tuple[str, ...] = ("indoor", "outdoor")

DURATION = 10.0      # seconds per clip
FPS = 8              # frames per second (decoders pick the frame at each segment centre)
SIZE = 224           # frame width and height in pixels
SAMPLE_RATE = 16000  # audio sample rate (stereo since world v2; decoders downmix to mono)

#: MIDI pitch range (centre of a player's melody) per instrument. The first 10 are world v1's; the melody walks
#: about an octave either side, and soundfont banks fold notes into each instrument's playable range.
PITCH_RANGE: dict[str, tuple[int, int]] = {
    "violin": (55, 76), "acoustic_guitar": (40, 57), "piano": (57, 81), "trumpet": (58, 74),
    "saxophone": (50, 66), "drum": (40, 48), "accordion": (55, 70), "banjo": (69, 86),
    "congas": (58, 66), "flute": (74, 90),
    "cello": (48, 60), "pipa": (60, 74), "ukulele": (67, 76), "clarinet": (62, 74), "guzheng": (55, 72),
    "bagpipe": (68, 72), "bassoon": (46, 58), "electric_bass": (40, 48), "erhu": (72, 80),
    "xylophone": (77, 89), "tuba": (40, 48), "suona": (70, 80),
}
RATE_RANGE = (0.6, 5.0)       # notes per second, sampled log-uniformly
LOUDNESS_RANGE = (0.3, 1.0)   # 1.0 = 0 dB; see sound.loudness_gain
TIME_STEP = 0.1               # interval ends are multiples of this (exact ties mean "simultaneously")

# ----------------------------------------------------------------------------------------------------- styles

GLYPH_SETS: tuple[str, ...] = ("openmoji", "fluent3d", "noto")
SOUND_BANKS: tuple[str, ...] = ("procedural", "fluidr3", "musescore")
#: Background families: v1's flat drawings, the same scenes with texture and light, and the held-out paintings.
BACKDROPS: tuple[str, ...] = ("drawn", "textured", "painted")


@dataclass(frozen=True)
class StyleSpec:
    """What a style may draw and play with. Clips pick their glyph set and backdrop among these (uniformly)."""

    name: str
    glyph_sets: tuple[str, ...]
    backdrops: tuple[str, ...]
    sound_banks: tuple[str, ...]   # the first is the default; `--sound-bank` may pick another one of these

    @property
    def default_bank(self) -> str:
        return self.sound_banks[0]


STYLES: dict[str, StyleSpec] = {
    "default": StyleSpec("default", ("openmoji", "fluent3d"), ("drawn", "textured"), ("fluidr3", "procedural")),
    # never used for training: other glyphs, other backgrounds, another soundfont
    "held-out": StyleSpec("held-out", ("noto",), ("painted",), ("musescore",)),
}
#: The style of a scene record written before styles existed (world v1): OpenMoji, procedural timbres, drawings.
V1_STYLE: dict[str, str] = {"name": "v1", "glyphs": "openmoji", "sound_bank": "procedural", "backdrop": "drawn"}


def bank_instruments(sound_bank: str) -> tuple[str, ...]:
    """The instruments a sound bank can play: the procedural timbres exist for the 10 v1 instruments only."""
    return SYNTH_INSTRUMENTS if sound_bank == "procedural" else WORLD_INSTRUMENTS


def style_spec(name: str) -> StyleSpec:
    try:
        return STYLES[name]
    except KeyError:
        raise ValueError(f"unknown style {name!r}; expected one of {', '.join(STYLES)}") from None

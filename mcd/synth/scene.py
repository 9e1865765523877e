"""Scene graphs of the synthetic world and how they are sampled.

A scene graph is the exact ground truth of one clip: who is visible where, what each source sounds like
(instrument, loudness, note rate, pitch) and when it sounds. Questions are answered from it (`qa.py`), frames
and audio are rendered from it (`render.py`, `sound.py`), and it is written to `scenes.jsonl` as the labels for
encoder pretraining (docs/contracts.md; fields may be added there, never renamed or removed).

Sampling is a pure function of a seed: the same (seed, index) always gives the same scene, whichever worker
or process asks for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The 10 instruments of the world: OpenMoji glyphs that are also MUSIC-AVQA answers (DESIGN §6).
SYNTH_INSTRUMENTS: tuple[str, ...] = (
    "violin", "acoustic_guitar", "piano", "trumpet", "saxophone",
    "drum", "accordion", "banjo", "congas", "flute",
)
POSITIONS: tuple[str, ...] = ("left", "middle", "right")
BACKGROUNDS: tuple[str, ...] = ("indoor", "outdoor")

DURATION = 10.0      # seconds per clip
FPS = 8              # frames per second (decoders pick the frame at each segment centre)
SIZE = 224           # frame width and height in pixels
SAMPLE_RATE = 16000  # mono audio

#: MIDI pitch range (centre of a player's melody) per instrument; disjoint-ish ranges help the timbres apart.
PITCH_RANGE: dict[str, tuple[int, int]] = {
    "violin": (55, 76), "acoustic_guitar": (40, 57), "piano": (57, 81), "trumpet": (58, 74),
    "saxophone": (50, 66), "drum": (40, 48), "accordion": (55, 70), "banjo": (69, 86),
    "congas": (58, 66), "flute": (74, 90),
}
RATE_RANGE = (0.6, 5.0)       # notes per second, sampled log-uniformly
LOUDNESS_RANGE = (0.3, 1.0)   # 1.0 = 0 dB; see sound.loudness_gain
TIME_STEP = 0.1               # interval ends are multiples of this (exact ties mean "simultaneously")


class SceneError(ValueError):
    """A scene graph (hand-built or read from scenes.jsonl) that breaks the world's rules."""


@dataclass
class Source:
    """Something that plays an instrument: loudness 0..1, note rate (notes/s), MIDI pitch, sounding intervals."""

    instrument: str
    loudness: float
    rate: float
    pitch: int
    intervals: list[tuple[float, float]]

    @property
    def sounds(self) -> bool:
        return bool(self.intervals)

    @property
    def onset(self) -> float:
        """When the source first sounds (inf for a silent source, so it sorts last)."""
        return self.intervals[0][0] if self.intervals else float("inf")

    @property
    def sounding_time(self) -> float:
        return float(sum(e - s for s, e in self.intervals))

    def always(self, duration: float = DURATION) -> bool:
        """Sounds without a break from the first to the last second."""
        return len(self.intervals) == 1 and self.intervals[0][0] <= 0.0 and self.intervals[0][1] >= duration


@dataclass
class Player(Source):
    """A visible source: its slot (left/middle/right) and its bounding box at rest (pixels, x0 y0 x1 y1)."""

    position: str = "middle"
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class Voiceover:
    """A speech-like voice heard but not seen; f0 is the speaker's mean pitch in Hz."""

    intervals: list[tuple[float, float]]
    loudness: float = 0.7
    f0: float = 140.0


@dataclass
class Scene:
    """One clip's ground truth. `players` are ordered left to right; `seed` drives the rendering details
    (background, colours, motion, note pitches), so a scene record alone rebuilds its clip."""

    video_id: str
    background: str
    players: list[Player]
    offscreen: Source | None = None
    voiceover: Voiceover | None = None
    split: str = "train"
    seed: int = 0
    duration: float = DURATION
    fps: int = FPS
    size: int = SIZE

    @property
    def sources(self) -> list[Source]:
        """Every instrument that can be heard or seen: the visible players, then the off-screen one."""
        return [*self.players, *([self.offscreen] if self.offscreen is not None else [])]

    def player_at(self, position: str) -> Player | None:
        return next((p for p in self.players if p.position == position), None)

    def validate(self) -> "Scene":
        """Raise SceneError for anything the renderers and the question answerer rely on."""
        if self.background not in BACKGROUNDS:
            raise SceneError(f"{self.video_id}: background {self.background!r} is not one of {BACKGROUNDS}")
        if not 1 <= len(self.players) <= 3:
            raise SceneError(f"{self.video_id}: {len(self.players)} players; the world has 1 to 3")
        positions = [p.position for p in self.players]
        if any(p not in POSITIONS for p in positions):
            raise SceneError(f"{self.video_id}: player positions {positions} must be among {POSITIONS}")
        if positions != sorted(set(positions), key=POSITIONS.index):
            raise SceneError(f"{self.video_id}: player positions {positions} must be distinct and left to right")
        for src in self.sources:
            if src.instrument not in SYNTH_INSTRUMENTS:
                raise SceneError(f"{self.video_id}: instrument {src.instrument!r} is not one of {SYNTH_INSTRUMENTS}")
            if not 0.0 <= src.loudness <= 1.0 or src.rate <= 0:
                raise SceneError(f"{self.video_id}: {src.instrument} needs loudness in 0..1 and a positive rate")
            _check_intervals(src.intervals, self.duration, f"{self.video_id}: {src.instrument}")
        if self.offscreen is not None and not self.offscreen.sounds:
            raise SceneError(f"{self.video_id}: an off-screen instrument must sound (it is only heard)")
        if self.voiceover is not None:
            _check_intervals(self.voiceover.intervals, self.duration, f"{self.video_id}: voiceover")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The scenes.jsonl record (docs/contracts.md), plus the fields the renderers need to rebuild the clip."""
        def source(s: Source) -> dict[str, Any]:
            return {"instrument": s.instrument, "loudness": s.loudness, "rate": s.rate, "pitch": s.pitch,
                    "intervals": [[a, b] for a, b in s.intervals]}

        return {
            "video_id": self.video_id, "split": self.split, "duration": self.duration, "fps": self.fps,
            "size": self.size, "background": self.background,
            "players": [{**source(p), "position": p.position, "bbox": list(p.bbox)} for p in self.players],
            "offscreen": source(self.offscreen) if self.offscreen is not None else None,
            "voiceover": ({"intervals": [[a, b] for a, b in self.voiceover.intervals],
                           "loudness": self.voiceover.loudness, "f0": self.voiceover.f0}
                          if self.voiceover is not None else None),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scene":
        """Inverse of to_dict; raises SceneError (not KeyError) for a malformed record."""
        try:
            def intervals(v: Any) -> list[tuple[float, float]]:
                return [(float(a), float(b)) for a, b in v]

            def source(s: dict[str, Any]) -> Source:
                return Source(s["instrument"], float(s["loudness"]), float(s["rate"]), int(s.get("pitch", 60)),
                              intervals(s["intervals"]))

            players = [Player(**vars(source(p)), position=p["position"], bbox=tuple(int(x) for x in p["bbox"]))
                       for p in d["players"]]
            off = source(d["offscreen"]) if d.get("offscreen") else None
            vo = d.get("voiceover")
            voice = (Voiceover(intervals(vo["intervals"]), float(vo.get("loudness", 0.7)), float(vo.get("f0", 140.0)))
                     if vo else None)
            scene = cls(video_id=str(d["video_id"]), background=d["background"], players=players, offscreen=off,
                        voiceover=voice, split=d.get("split", "train"), seed=int(d.get("seed", 0)),
                        duration=float(d.get("duration", DURATION)), fps=int(d.get("fps", FPS)),
                        size=int(d.get("size", SIZE)))
        except (KeyError, TypeError, ValueError) as e:
            raise SceneError(f"malformed scene record {d.get('video_id', '?') if isinstance(d, dict) else d!r}: "
                             f"{type(e).__name__}: {e}") from None
        return scene.validate()


def _check_intervals(intervals: list[tuple[float, float]], duration: float, what: str) -> None:
    end = 0.0
    for s, e in intervals:
        if not (0.0 <= s < e <= duration) or s < end:
            raise SceneError(f"{what}: intervals {intervals} must be sorted, disjoint and inside 0..{duration}")
        end = e


def video_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The generator for one video's scene (stream 0): a function of (seed, index) only, so independent of the
    number of workers and of which videos were generated before. Rendering uses the scene's own `seed`."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream)]))


def video_id_of(index: int) -> str:
    return f"synth_{index:06d}"


def _q(t: float) -> float:
    """Snap a time to the TIME_STEP grid (so equal onsets are exactly equal)."""
    return round(round(t / TIME_STEP) * TIME_STEP, 3)


def sample_intervals(rng: np.random.Generator, allow_silent: bool,
                     duration: float = DURATION) -> list[tuple[float, float]]:
    """A sounding pattern: whole clip, late entry, early stop, a middle stretch, a gap, or (rarely) silence.

    Gaps and shortenings are at least 1.5 s long so "always playing" and "playing longer" are audible.
    """
    kinds = ["full", "late", "early", "middle", "gap", "silent"]
    weights = np.array([0.34, 0.24, 0.10, 0.10, 0.10, 0.14 if allow_silent else 0.0])
    kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
    d = duration
    if kind == "full":
        return [(0.0, d)]
    if kind == "late":
        return [(_q(rng.uniform(1.0, 7.0)), d)]
    if kind == "early":
        return [(0.0, _q(rng.uniform(3.0, d - 1.5)))]
    if kind == "middle":
        s = _q(rng.uniform(1.0, 5.0))
        return [(s, _q(rng.uniform(s + 2.5, d - 1.5)))]
    if kind == "gap":
        a = _q(rng.uniform(2.0, 6.0))
        b = _q(a + rng.uniform(1.5, 3.0))
        return [(0.0, a), (b, d)]
    return []


def _sample_source(rng: np.random.Generator, instrument: str, allow_silent: bool) -> Source:
    lo, hi = PITCH_RANGE[instrument]
    rate = float(np.exp(rng.uniform(np.log(RATE_RANGE[0]), np.log(RATE_RANGE[1]))))
    return Source(instrument=instrument, loudness=round(float(rng.uniform(*LOUDNESS_RANGE)), 2),
                  rate=round(rate, 2), pitch=int(rng.integers(lo, hi + 1)),
                  intervals=sample_intervals(rng, allow_silent))


def _positions(rng: np.random.Generator, n: int) -> list[str]:
    if n == 3:
        return list(POSITIONS)
    if n == 2:
        return [["left", "right"], ["left", "middle"], ["middle", "right"]][rng.choice(3, p=[0.5, 0.25, 0.25])]
    return [POSITIONS[rng.choice(3, p=[0.25, 0.5, 0.25])]]


def sample_scene(seed: int, index: int, split: str = "train") -> Scene:
    """The scene of video `index` under `seed`: 1-3 players, background, maybe an off-screen source or a voice.

    Instruments repeat on purpose (two violins) so "which violin sounds first" questions exist; an off-screen
    instrument is always one nobody on screen holds, so "is this sound from the instrument in the video" needs
    both the audio and the picture.
    """
    from mcd.synth.render import layout_players  # the layout needs glyph shapes; imported lazily

    rng = video_rng(seed, index, 0)
    n = int(rng.choice([1, 2, 3], p=[0.25, 0.35, 0.40]))
    instruments: list[str] = []
    for _ in range(n):
        if instruments and rng.random() < 0.22:
            instruments.append(instruments[int(rng.integers(len(instruments)))])
        else:
            choices = [i for i in SYNTH_INSTRUMENTS if i not in instruments]
            instruments.append(choices[int(rng.integers(len(choices)))])
    sources = [_sample_source(rng, inst, allow_silent=True) for inst in instruments]
    offscreen = None
    if rng.random() < 0.25:
        hidden = [i for i in SYNTH_INSTRUMENTS if i not in instruments]
        offscreen = _sample_source(rng, hidden[int(rng.integers(len(hidden)))], allow_silent=False)
    if offscreen is None and not any(s.sounds for s in sources):
        sources[int(rng.integers(n))].intervals = [(0.0, DURATION)]
    voiceover = None
    if rng.random() < 0.3:
        s = _q(rng.uniform(0.0, 5.0))
        e = _q(min(DURATION, s + rng.uniform(2.5, 6.0)))
        voiceover = Voiceover([(s, e)], loudness=round(float(rng.uniform(0.5, 0.9)), 2),
                              f0=round(float(rng.uniform(95.0, 220.0)), 1))
    background = BACKGROUNDS[int(rng.integers(2))]
    positions = _positions(rng, n)
    boxes = layout_players(rng, instruments, positions)
    players = [Player(**vars(src), position=pos, bbox=box) for src, pos, box in zip(sources, positions, boxes)]
    return Scene(video_id=video_id_of(index), background=background, players=players, offscreen=offscreen,
                 voiceover=voiceover, split=split, seed=int(rng.integers(2**31))).validate()

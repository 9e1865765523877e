"""Scene graphs of the synthetic world and how they are sampled.

A scene graph is the exact ground truth of one clip: who is visible where, what each source sounds like
(instrument, loudness, note rate, pitch) and when it sounds, and the clip's style (glyph set, sound bank,
backdrop) and camera zoom. Questions are answered from it (`qa.py`), frames and audio are rendered from it
(`render.py`, `mixer.py`), and it is written to `scenes.jsonl` as the labels for encoder pretraining
(docs/contracts.md; fields may be added there, never renamed or removed).

Sampling is a pure function of (seed, index, style, sound bank): the same arguments always give the same scene,
whichever worker or process asks for it, and no asset (font, image, soundfont) is read to sample it: the glyph
shapes the layout needs are a table here, checked against the assets by tests/test_synth_world.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcd.synth.world import (BACKDROPS, BACKGROUNDS, DURATION, FPS, GLYPH_SETS, INSTRUMENT_SETS, LOUDNESS_RANGE,
                             PITCH_RANGE, POSITIONS, RATE_RANGE, SAMPLE_RATE, SIZE, SOUND_BANKS, STYLES,
                             SYNTH_INSTRUMENTS, TIME_STEP, V1_STYLE, VISIBLE_INSTRUMENTS, WORLD_INSTRUMENTS,
                             bank_instruments, style_spec)

__all__ = ["BACKGROUNDS", "DURATION", "FPS", "INSTRUMENT_SETS", "LOUDNESS_RANGE", "PITCH_RANGE", "POSITIONS",
           "RATE_RANGE", "SAMPLE_RATE", "SIZE", "SYNTH_INSTRUMENTS", "TIME_STEP", "WORLD_INSTRUMENTS",
           "GLYPH_ASPECT", "Player", "Scene", "SceneError", "Source", "Voiceover", "layout_players", "note_onsets",
           "sample_intervals", "sample_scene", "video_id_of", "video_rng"]

#: Width / height of each instrument glyph's visible pixels per glyph set (measured from the assets; the test
#: suite re-measures them). A table, so that sampling a scene needs no font or image.
GLYPH_ASPECT: dict[str, dict[str, float]] = {
    "openmoji": {"violin": 1.0128, "acoustic_guitar": 1.0821, "piano": 1.0000, "trumpet": 1.4435, "saxophone": 0.7159,
                 "drum": 0.9597, "accordion": 1.6364, "banjo": 1.0258, "congas": 0.5906, "flute": 1.0000},
    "fluent3d": {"violin": 0.9955, "acoustic_guitar": 1.0321, "piano": 1.0000, "trumpet": 1.0179, "saxophone": 0.9866,
                 "drum": 1.0000, "accordion": 1.0878, "banjo": 1.0000, "congas": 0.7411, "flute": 0.9905},
    "noto": {"violin": 1.0083, "acoustic_guitar": 0.9917, "piano": 1.0000, "trumpet": 1.0517, "saxophone": 1.0708,
             "drum": 0.9587, "accordion": 1.1509, "banjo": 1.0167, "congas": 0.9421, "flute": 1.0083},
}
SLOT_X = {"left": 42, "middle": 112, "right": 182}   # slot centres in a 224-pixel frame at zoom 1
ZOOM_RANGE = (1.0, 1.12)                             # camera zoom about the frame centre (world v2 styles)
OFFSCREEN_P = {"v1": 0.25, "v2": 0.4}                # chance of an off-screen instrument (v2: 22 instruments)
HEARD_ONLY_P = 0.75    # v2: chance that the off-screen instrument is one without a glyph (so they get asked about)


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


def _v1_style() -> dict[str, str]:
    return dict(V1_STYLE)


@dataclass
class Scene:
    """One clip's ground truth. `players` are ordered left to right; `seed` drives the rendering details
    (background, colours, motion, note pitches, lighting, camera shake), so a scene record alone rebuilds its clip.

    `style` names the clip's look and sound: {"name": default | held-out | v1, "glyphs": openmoji | fluent3d |
    noto, "sound_bank": procedural | fluidr3 | musescore, "backdrop": drawn | textured | painted}. `zoom` is the
    camera zoom about the frame centre; the boxes are in frame pixels, zoom included."""

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
    style: dict[str, str] = field(default_factory=_v1_style)
    zoom: float = 1.0

    @property
    def sources(self) -> list[Source]:
        """Every instrument that can be heard or seen: the visible players, then the off-screen one."""
        return [*self.players, *([self.offscreen] if self.offscreen is not None else [])]

    @property
    def sound_bank(self) -> str:
        return self.style.get("sound_bank", "procedural")

    @property
    def instruments(self) -> tuple[str, ...]:
        """The instruments this scene's world can hold (its sound bank's): the `<Object>` slot domain."""
        return bank_instruments(self.sound_bank)

    def player_at(self, position: str) -> Player | None:
        return next((p for p in self.players if p.position == position), None)

    def validate(self) -> "Scene":
        """Raise SceneError for anything the renderers and the question answerer rely on."""
        if self.background not in BACKGROUNDS:
            raise SceneError(f"{self.video_id}: background {self.background!r} is not one of {BACKGROUNDS}")
        _check_style(self.style, self.video_id)
        if not 1 <= len(self.players) <= 3:
            raise SceneError(f"{self.video_id}: {len(self.players)} players; the world has 1 to 3")
        positions = [p.position for p in self.players]
        if any(p not in POSITIONS for p in positions):
            raise SceneError(f"{self.video_id}: player positions {positions} must be among {POSITIONS}")
        if positions != sorted(set(positions), key=POSITIONS.index):
            raise SceneError(f"{self.video_id}: player positions {positions} must be distinct and left to right")
        for p in self.players:
            if p.instrument not in VISIBLE_INSTRUMENTS:
                raise SceneError(f"{self.video_id}: {p.instrument!r} has no glyph, so it cannot be a visible player "
                                 f"(visible: {VISIBLE_INSTRUMENTS}); it may sound off screen")
        playable = self.instruments
        for src in self.sources:
            if src.instrument not in playable:
                raise SceneError(f"{self.video_id}: instrument {src.instrument!r} is not one the "
                                 f"{self.sound_bank!r} sound bank plays ({playable})")
            if not 0.0 <= src.loudness <= 1.0 or src.rate <= 0:
                raise SceneError(f"{self.video_id}: {src.instrument} needs loudness in 0..1 and a positive rate")
            _check_intervals(src.intervals, self.duration, f"{self.video_id}: {src.instrument}")
        if self.offscreen is not None and not self.offscreen.sounds:
            raise SceneError(f"{self.video_id}: an off-screen instrument must sound (it is only heard)")
        if self.voiceover is not None:
            _check_intervals(self.voiceover.intervals, self.duration, f"{self.video_id}: voiceover")
        if not 0.5 <= self.zoom <= 2.0:
            raise SceneError(f"{self.video_id}: camera zoom {self.zoom} outside 0.5..2")
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
            "style": dict(self.style),
            "zoom": self.zoom,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scene":
        """Inverse of to_dict; raises SceneError (not KeyError) for a malformed record. A record without a
        style (written by world v1) gets the v1 style: OpenMoji, procedural timbres, drawn backgrounds."""
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
            style = d.get("style") or V1_STYLE
            scene = cls(video_id=str(d["video_id"]), background=d["background"], players=players, offscreen=off,
                        voiceover=voice, split=d.get("split", "train"), seed=int(d.get("seed", 0)),
                        duration=float(d.get("duration", DURATION)), fps=int(d.get("fps", FPS)),
                        size=int(d.get("size", SIZE)), style={str(k): str(v) for k, v in dict(style).items()},
                        zoom=float(d.get("zoom", 1.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise SceneError(f"malformed scene record {d.get('video_id', '?') if isinstance(d, dict) else d!r}: "
                             f"{type(e).__name__}: {e}") from None
        return scene.validate()


def _check_style(style: dict[str, str], what: str) -> None:
    if not isinstance(style, dict) or set(style) < {"name", "glyphs", "sound_bank", "backdrop"}:
        raise SceneError(f"{what}: style {style!r} needs name, glyphs, sound_bank and backdrop")
    for key, allowed in (("glyphs", GLYPH_SETS), ("sound_bank", SOUND_BANKS), ("backdrop", BACKDROPS),
                         ("name", (*STYLES, "v1"))):
        if style[key] not in allowed:
            raise SceneError(f"{what}: style {key} {style[key]!r} is not one of {allowed}")


def _check_intervals(intervals: list[tuple[float, float]], duration: float, what: str) -> None:
    end = 0.0
    for s, e in intervals:
        if not (0.0 <= s < e <= duration) or s < end:
            raise SceneError(f"{what}: intervals {intervals} must be sorted, disjoint and inside 0..{duration}")
        end = e


def note_onsets(src: Source) -> np.ndarray:
    """Regular note onsets (seconds) at the source's rate inside each sounding interval.

    Deterministic from the scene graph alone, so the renderer can move a player exactly when it plays.
    """
    out = [np.arange(s, e - 0.05, 1.0 / src.rate) for s, e in src.intervals]
    return np.concatenate(out) if out else np.zeros(0)


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


def layout_players(rng: np.random.Generator, instruments: list[str], positions: list[str],
                   glyph_set: str = "openmoji", zoom: float = 1.0,
                   size_range: tuple[float, float] = (50.0, 66.0)) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x0, y0, x1, y1) of the instrument glyphs at rest, in frame pixels: jittered size and
    place per slot, the whole layout scaled by the camera zoom about the frame centre."""
    boxes = []
    c = SIZE / 2
    for inst, pos in zip(instruments, positions):
        if pos not in SLOT_X:
            raise SceneError(f"unknown position {pos!r}; expected one of {POSITIONS}")
        aspect = GLYPH_ASPECT[glyph_set][inst]
        longest = float(rng.uniform(*size_range)) * zoom
        w, h = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
        cx = c + (SLOT_X[pos] + float(rng.uniform(-7.0, 7.0)) - c) * zoom
        bottom = min(c + (float(rng.uniform(178.0, 206.0)) - c) * zoom, SIZE - 3.0)
        x0 = int(round(min(max(cx - w / 2, 2.0), SIZE - 2 - w)))
        y0 = int(round(bottom - h))
        boxes.append((x0, y0, x0 + int(round(w)), y0 + int(round(h))))
    return boxes


def sample_scene(seed: int, index: int, split: str = "train", style: str = "default",
                 sound_bank: str | None = None) -> Scene:
    """The scene of video `index` under `seed` in `style`: 1-3 players, background, maybe an off-screen source
    or a voice, and the clip's glyph set, backdrop and camera zoom.

    Instruments repeat on purpose (two violins) so "which violin sounds first" questions exist; an off-screen
    instrument is always one nobody on screen holds, so "is this sound from the instrument in the video" needs
    both the audio and the picture. With a soundfont bank the off-screen instrument may be any of the 22
    (most have no glyph, so they can only be heard); the procedural bank plays the 10 v1 instruments.
    """
    spec = style_spec(style)
    bank = sound_bank or spec.default_bank
    if bank not in spec.sound_banks:
        raise SceneError(f"the {style!r} style plays {' or '.join(spec.sound_banks)}, not {bank!r}")
    audible = bank_instruments(bank)
    rng = video_rng(seed, index, 0)
    glyph_set = spec.glyph_sets[int(rng.integers(len(spec.glyph_sets)))]
    backdrop = spec.backdrops[int(rng.integers(len(spec.backdrops)))]
    zoom = round(float(rng.uniform(*ZOOM_RANGE)), 3)
    n = int(rng.choice([1, 2, 3], p=[0.25, 0.35, 0.40]))
    instruments: list[str] = []
    for _ in range(n):
        if instruments and rng.random() < 0.22:
            instruments.append(instruments[int(rng.integers(len(instruments)))])
        else:
            choices = [i for i in VISIBLE_INSTRUMENTS if i not in instruments]
            instruments.append(choices[int(rng.integers(len(choices)))])
    sources = [_sample_source(rng, inst, allow_silent=True) for inst in instruments]
    offscreen = None
    if rng.random() < OFFSCREEN_P["v1" if audible == SYNTH_INSTRUMENTS else "v2"]:
        hidden = [i for i in audible if i not in instruments]
        heard_only = [i for i in hidden if i not in VISIBLE_INSTRUMENTS]
        if heard_only and rng.random() < HEARD_ONLY_P:
            hidden = heard_only
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
    boxes = layout_players(rng, instruments, positions, glyph_set, zoom, size_range=(46.0, 68.0))
    players = [Player(**vars(src), position=pos, bbox=box) for src, pos, box in zip(sources, positions, boxes)]
    style_record = {"name": spec.name, "glyphs": glyph_set, "sound_bank": bank, "backdrop": backdrop}
    return Scene(video_id=video_id_of(index), background=background, players=players, offscreen=offscreen,
                 voiceover=voiceover, split=split, seed=int(rng.integers(2**31)), style=style_record,
                 zoom=zoom).validate()

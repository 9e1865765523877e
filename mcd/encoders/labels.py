"""Pretraining targets of the synth encoders, computed from a benchmark's `scenes.jsonl` (docs/contracts.md).

Visual: the class of each 7x7 grid cell of a frame: the instrument of the player whose bounding box covers
most of the cell, else the background (`background:indoor` / `background:outdoor`, so "Where is the performance?"
stays answerable from the frozen features). Audio: for each 1-s window, the fraction of the window in which
each instrument (and the voiceover) sounds, plus the loudness and note rate of the sounding instruments, so the
comparative questions ("louder", "more rhythmic") stay answerable too.

Only the documented scene fields are read; the generator may add others.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mcd.encoders.base import GRID

VOICEOVER = "voiceover"
#: cell labelling: covered >= CORE -> instrument, <= CLEAR -> background, else IGNORE (see cell_labels)
CORE, CLEAR, IGNORE = 0.4, 0.1, -100
#: a class counts as present in a window when it sounds for at least this fraction of it (for accuracies)
PRESENT = 0.5


class SceneLabelError(ValueError):
    """scenes.jsonl is missing, not JSON, or a record lacks a field the labels need."""


@dataclass
class SceneRecord:
    video_id: str
    split: str
    duration: float
    size: int
    background: str
    players: list[dict[str, Any]]       # instrument, bbox [x0, y0, x1, y1], loudness, rate, intervals
    sources: list[dict[str, Any]]       # players + off-screen instrument: everything that can sound
    voiceover: list[tuple[float, float]]  # its intervals ([] when none)


def _intervals(value: Any) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in value]


def parse_scene(d: dict[str, Any]) -> SceneRecord:
    """One scenes.jsonl record -> SceneRecord; raises KeyError/TypeError/ValueError on a malformed record."""
    def source(s: dict[str, Any]) -> dict[str, Any]:
        return {"instrument": str(s["instrument"]), "loudness": float(s["loudness"]), "rate": float(s["rate"]),
                "intervals": _intervals(s["intervals"])}

    players = []
    for p in d["players"]:
        bbox = [float(x) for x in p["bbox"]]
        if len(bbox) != 4:
            raise ValueError(f"bbox must be [x0, y0, x1, y1], got {p['bbox']}")
        players.append({**source(p), "bbox": bbox})
    off = d.get("offscreen")
    vo = d.get("voiceover")
    return SceneRecord(
        video_id=str(d["video_id"]), split=str(d.get("split", "train")), duration=float(d.get("duration", 10.0)),
        size=int(d.get("size", 224)), background=str(d["background"]), players=players,
        sources=players + ([source(off)] if off else []),
        voiceover=_intervals(vo["intervals"]) if vo else [],
    )


def read_scenes(path: str | Path) -> list[SceneRecord]:
    path = Path(path)
    if not path.is_file():
        raise SceneLabelError(f"{path} does not exist; pass the folder written by `mcd synth` (it holds scenes.jsonl)")
    scenes = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                scenes.append(parse_scene(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise SceneLabelError(f"{path}:{n}: malformed scene record ({type(e).__name__}: {e})") from None
    if not scenes:
        raise SceneLabelError(f"{path} holds no scene records")
    return scenes


@dataclass(frozen=True)
class LabelSpace:
    """Class lists of both tasks; fixed before training and stored in the encoders' provenance."""

    visual: tuple[str, ...]   # backgrounds first, then instruments
    audio: tuple[str, ...]    # instruments, then "voiceover"

    @classmethod
    def from_scenes(cls, scenes: Iterable[SceneRecord]) -> "LabelSpace":
        scenes = list(scenes)
        backgrounds = sorted({s.background for s in scenes})
        seen = sorted({p["instrument"] for s in scenes for p in s.players})
        heard = sorted({p["instrument"] for s in scenes for p in s.sources})
        return cls(tuple(f"background:{b}" for b in backgrounds) + tuple(seen), tuple(heard) + (VOICEOVER,))

    @property
    def num_backgrounds(self) -> int:
        return sum(c.startswith("background:") for c in self.visual)


def bbox_cover(bbox: list[float], size: int) -> np.ndarray:
    """[49] fraction of each grid cell (row-major) that the box [x0, y0, x1, y1] covers in a size x size frame."""
    cell = size / GRID
    lo = np.arange(GRID) * cell
    x0, y0, x1, y1 = bbox
    fx = np.clip(np.minimum(lo + cell, x1) - np.maximum(lo, x0), 0, None) / cell
    fy = np.clip(np.minimum(lo + cell, y1) - np.maximum(lo, y0), 0, None) / cell
    return np.outer(fy, fx).reshape(-1)


def cell_labels(scene: SceneRecord, space: LabelSpace) -> np.ndarray:
    """[49] int64 class per grid cell (row-major) from the players' rest bounding boxes.

    A cell at least CORE-covered by a box is that player's instrument; a cell touched by no box by more than
    CLEAR is background; the cells in between are IGNORE: whether a quarter-covered cell "is" the instrument is
    a coin toss that would only add label noise to training and to the probe's score.
    """
    labels = np.full(GRID * GRID, space.visual.index(f"background:{scene.background}"), dtype=np.int64)
    best = np.zeros(GRID * GRID)
    for p in scene.players:
        cover = bbox_cover(p["bbox"], scene.size)
        take = cover > best
        best[take] = cover[take]
        labels[take & (cover >= CORE)] = space.visual.index(p["instrument"])
    labels[(best > CLEAR) & (best < CORE)] = IGNORE
    return labels


def overlap(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] covered by the (disjoint) intervals."""
    return sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in intervals)


@dataclass
class AudioTargets:
    presence: np.ndarray   # [T, C] float: fraction of the 1-s window in which each class sounds
    loudness: np.ndarray   # [T, C] float: loudness (0..1) of the loudest sounding source of that class
    log_rate: np.ndarray   # [T, C] float: log note rate of that source
    mask: np.ndarray       # [T, C] bool: loudness/rate defined (an instrument sounds in the window)


def audio_targets(scene: SceneRecord, timestamps: np.ndarray, space: LabelSpace) -> AudioTargets:
    T, C = len(timestamps), len(space.audio)
    presence = np.zeros((T, C), dtype=np.float32)
    loudness = np.zeros((T, C), dtype=np.float32)
    log_rate = np.zeros((T, C), dtype=np.float32)
    for t, centre in enumerate(timestamps):
        lo, hi = centre - 0.5, centre + 0.5
        for s in scene.sources:
            c = space.audio.index(s["instrument"])
            frac = min(1.0, overlap(s["intervals"], lo, hi))
            if frac > 0 and s["loudness"] >= loudness[t, c]:
                loudness[t, c], log_rate[t, c] = s["loudness"], math.log(s["rate"])
            presence[t, c] = max(presence[t, c], frac)
        presence[t, -1] = min(1.0, overlap(scene.voiceover, lo, hi))
    mask = presence > 0
    mask[:, -1] = False  # the voiceover has no instrument loudness or rate
    return AudioTargets(presence, loudness, log_rate, mask)


def single_instrument(targets: AudioTargets) -> np.ndarray:
    """[T] class index of the only source sounding through the whole window, else -1 (the probe's test set)."""
    p = targets.presence
    full = p >= 0.999
    silent_others = (p > 0).sum(axis=1) == 1
    out = np.full(len(p), -1, dtype=np.int64)
    ok = full[:, :-1].any(axis=1) & silent_others & (p[:, -1] == 0)
    out[ok] = p[ok, :-1].argmax(axis=1)
    return out

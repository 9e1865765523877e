"""Grounding targets for a batch's keywords, from the benchmark's scene graphs (see mcd.model.grounding for why).

Only synthetic benchmarks have scene graphs (`scenes.jsonl` beside the annotations); MUSIC-AVQA has none, so
`object_grounding` is for synth recipes. What a keyword points at is decided by `mcd.synth.qa.keyword_referent`,
the rules the generator answers questions by, so the head is taught exactly the sense the questions use.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from mcd.encoders.labels import overlap
from mcd.model.grounding import GROUNDING_POSITIONS, GROUNDING_SCALARS, IGNORE, GroundingTargets
from mcd.synth.qa import keyword_referent
from mcd.synth.scene import WORLD_INSTRUMENTS, Player, Scene, SceneError, Source
from mcd.synth.writer import read_scenes

#: the instrument classes the grounding head predicts, in head order
GROUNDING_INSTRUMENTS: tuple[str, ...] = WORLD_INSTRUMENTS   # world v1 checkpoints: its first 10


class GroundingError(ValueError):
    """No scene graphs to ground keywords in, or a clip missing from them."""


def referent_attributes(source: Source, duration: float, T: int) -> dict:
    """The head's targets for one referent: class, position, scalars [S] and per-segment sounding fraction [T]."""
    seg = duration / T
    segments = [min(1.0, overlap(source.intervals, t * seg, (t + 1) * seg) / seg) for t in range(T)]
    sounds = source.sounds
    scalars = [source.loudness, math.log(source.rate), source.onset / duration if sounds else 0.0,
               source.sounding_time / duration]
    position = source.position if isinstance(source, Player) else "offscreen"
    return {"instrument": GROUNDING_INSTRUMENTS.index(source.instrument)
            if source.instrument in GROUNDING_INSTRUMENTS else IGNORE,
            "position": GROUNDING_POSITIONS.index(position), "scalars": scalars, "segments": segments,
            "sounds": float(sounds)}


def absent_attributes(instrument: str, T: int) -> dict:
    """The targets of an instrument named but not in the clip: neither seen nor heard."""
    return {"instrument": GROUNDING_INSTRUMENTS.index(instrument), "position": GROUNDING_POSITIONS.index("absent"),
            "scalars": [0.0] * len(GROUNDING_SCALARS), "segments": [0.0] * T, "sounds": 0.0}


class SceneGrounding:
    """Scene graphs by video id; `targets` builds a batch's GroundingTargets aligned with its text objects."""

    def __init__(self, scenes: Sequence[Scene], T: int):
        self.scenes = {s.video_id: s for s in scenes}
        self.T = T
        self._attributes: dict[tuple[str, str], dict | None] = {}   # (video, keyword) -> targets, every epoch's

    def scene(self, video_id: str) -> Scene:
        """The clip's scene graph; a clip the benchmark's scenes.jsonl lacks is a GroundingError."""
        scene = self.scenes.get(video_id)
        if scene is None:
            raise GroundingError(f"clip {video_id} has no scene graph in scenes.jsonl")
        return scene

    def attributes(self, video_id: str, word: str) -> dict | None:
        """What `word` points at in the clip (referent_attributes / absent_attributes, the lists as tensors), None
        if nothing. Kept: training asks the same questions every epoch, and building these anew was half of the
        time a batch took to collate."""
        key = (video_id, word)
        if key not in self._attributes:
            scene = self.scene(video_id)
            source = keyword_referent(scene, word)
            if source is not None:
                a = referent_attributes(source, scene.duration, self.T)
            elif word in GROUNDING_INSTRUMENTS and all(s.instrument != word for s in scene.sources):
                a = absent_attributes(word, self.T)
            else:
                a = None
            if a is not None:
                a = {**a, "scalars": torch.tensor(a["scalars"]), "segments": torch.tensor(a["segments"])}
            self._attributes[key] = a
        return self._attributes[key]

    @classmethod
    def from_benchmark(cls, root: str | Path, T: int) -> "SceneGrounding":
        path = Path(root) / "scenes.jsonl"
        if not path.is_file():
            raise GroundingError(f"object_grounding needs the scene graphs of a synthetic benchmark; {path} does not "
                                 "exist (MUSIC-AVQA has none: switch object_grounding off for it)")
        try:
            return cls(read_scenes(path), T)
        except SceneError as exc:
            raise GroundingError(str(exc)) from None

    def targets(self, video_ids: Sequence[str], keywords: Sequence[Sequence[str]], K: int) -> GroundingTargets:
        """Targets [B,K,...] for B questions: question i's j-th keyword sits in object slot j (keywords come first
        in the object list, mcd.data.text_bank.object_phrases); type-word slots and padding name nothing."""
        B, T = len(video_ids), self.T
        out = GroundingTargets(instrument=torch.full((B, K), IGNORE, dtype=torch.long),
                               position=torch.full((B, K), IGNORE, dtype=torch.long),
                               scalars=torch.zeros(B, K, len(GROUNDING_SCALARS)), segments=torch.zeros(B, K, T),
                               sounds=torch.zeros(B, K))
        for i, (video_id, words) in enumerate(zip(video_ids, keywords, strict=True)):
            self.scene(video_id)   # a clip without a scene graph is an error even when it names no keyword
            for j, word in enumerate(words[:K]):
                a = self.attributes(video_id, word)
                if a is None:
                    continue
                out.instrument[i, j], out.position[i, j] = a["instrument"], a["position"]
                out.scalars[i, j] = a["scalars"]
                out.segments[i, j] = a["segments"]
                out.sounds[i, j] = a["sounds"]
        return out

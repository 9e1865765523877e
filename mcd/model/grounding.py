"""Keyword grounding (our extension, `object_grounding`): each keyword's clue learns what the keyword points at.

Why: the shipped model answers its own training questions at 94% and fresh ones at 81% (README). Every template
that names a thing ("the violin", "the instrument on the left", "the first sounding instrument") must learn, from
its own few hundred answers, how to read that thing's position, loudness or rhythm out of the keyword's clue. The
same read-out serves all of them, and in synthetic scenes we know what every keyword points at. So a small head on
each keyword's clue [clue_v ; clue_a] predicts its referent's attributes, and every question that mentions
"left" teaches "left" the same thing, whatever it asks. With `object_grounding` alone answering never reads the
head; `grounded_answer` also hands its read-outs (`GroundingHead.features`) to the answer (see MCD).

Targets (built by mcd.synth.grounding; -100 / a False mask where a keyword names nothing or an attribute does not
apply, e.g. the loudness of a silent player):
  instrument [B,K]   class of the referent (the config's `grounding_classes` instruments)
  position   [B,K]   left / middle / right / off-screen, or absent (an instrument named but not in the clip)
  scalars    [B,K,S] loudness, log note rate, onset and sounding time as fractions of the clip
  segments   [B,K,T] fraction of each segment in which the referent sounds
  sounds     [B,K]   the referent sounds at all (0/1); scalars count only where it does
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from mcd.model.association import ClipGroups
from mcd.model.slots import object_slots, read_slots

IGNORE = -100
GROUNDING_POSITIONS = ("left", "middle", "right", "offscreen", "absent")
GROUNDING_SCALARS = ("loudness", "log_rate", "onset", "sounding_time")


@dataclass
class GroundingTargets:
    """What each keyword of a batch points at; see the module docstring for the fields."""

    instrument: torch.Tensor   # [B,K] long, IGNORE where no referent
    position: torch.Tensor     # [B,K] long, IGNORE where no referent
    scalars: torch.Tensor      # [B,K,S] float
    segments: torch.Tensor     # [B,K,T] float in [0,1]
    sounds: torch.Tensor       # [B,K] float 0/1

    @property
    def has_referent(self) -> torch.Tensor:
        """[B,K] bool: the keyword names one thing in this clip."""
        return self.position != IGNORE

    def to(self, device: torch.device | str) -> "GroundingTargets":
        return GroundingTargets(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class GroundingHead(nn.Module):
    """One linear map from a keyword's clue [clue_v ; clue_a] to its referent's attributes."""

    def __init__(self, d: int, classes: int, T: int):
        super().__init__()
        self.sizes = (classes, len(GROUNDING_POSITIONS), len(GROUNDING_SCALARS), T, 1)
        self.proj = nn.Linear(2 * d, sum(self.sizes))

    def forward(self, clue_v: torch.Tensor, clue_a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[B,K,d] x2 -> (instrument, position, scalars, segment, sounds) logits/values, each [B,K,n]. The model
        runs this once per forward and passes the result to `read` and `grounding_loss`."""
        return self.proj(torch.cat([clue_v, clue_a], dim=-1)).split(self.sizes, dim=-1)

    @property
    def width(self) -> int:
        """Features per keyword in `features`."""
        return sum(self.sizes)

    def scalar_columns(self) -> torch.Tensor:
        """bool [width]: which of `features`' columns are the scalars (loudness, log rate, onset, sounding time)."""
        mask = torch.zeros(self.width, dtype=torch.bool)
        start = self.sizes[0] + self.sizes[1]
        mask[start:start + self.sizes[2]] = True
        return mask

    @staticmethod
    def read(raw: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """What each keyword is predicted to point at, as probabilities (the demo's "keywords point at" line):
        instrument [B,K,C] and position [B,K,5] distributions, sounds [B,K] and segments [B,K,T] sigmoids,
        scalars [B,K,S] as regressed. `raw` is `forward`'s output."""
        instrument, position, scalars, segments, sounds = raw
        return {"instrument": instrument.softmax(-1), "position": position.softmax(-1), "scalars": scalars,
                "segments": segments.sigmoid(), "sounds": sounds[..., 0].sigmoid()}

    @staticmethod
    def features(read: dict[str, torch.Tensor]) -> torch.Tensor:
        """`read`'s arrays side by side, [B,K,width]: the bounded, low-dimensional description of each referent
        that `grounded_answer` hands to the answer."""
        return torch.cat([read["instrument"], read["position"], read["scalars"], read["segments"],
                          read["sounds"][..., None]], dim=-1)


class ReferentQuery(nn.Module):
    """The instrument a keyword is read to name looks the clip up again, in both modalities (`referent_query`).

    Why (our extension): one aggregation round reads a keyword's clue from text alone, so "left" finds the left
    player's patches but not that player's loudness (sounds are heard per instrument, not per side), and "first"
    hears which instrument comes in first but not where its player sits. The grounding head already knows the
    referent's instrument (97% on held-out clips for "first", 100% for the sides); turning that distribution
    into a query over the patch tokens and the audio segments is the missing second hop, and costs one
    single-head dot product per keyword (no key/value projections: the contexts are read as they are).
    What each query gathers is gated per channel by the instrument (the bilinear read-out of `Aggregator`'s
    gate), so the head can keep the named instrument's loudness out of the mixture's features.
    """

    def __init__(self, d: int, classes: int, audio_detector: bool = False):
        super().__init__()
        self.audio_detector = audio_detector
        self.query = nn.Sequential(nn.Linear(classes, d), nn.LayerNorm(d))
        self.q_visual = nn.Linear(d, d)
        self.q_audio = nn.Linear(d, d)
        self.gate_visual = nn.Linear(classes, d)
        self.gate_audio = nn.Linear(classes, d)

    @staticmethod
    def _lookup(q: torch.Tensor, context: torch.Tensor, clip_index: torch.Tensor | None,
                detector: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """q [B,K,d] reads context [B|1|V,N,d] (row clip_index[i] for query i when given) -> (what it gathered
        [B,K,d], where it looked [B,K,N]); the weights are the demo's referent-query clues. Attention weights sum
        to 1 over N; with `detector` each is an independent sigmoid and the gathered vector is Σ w·context / N,
        so it shrinks when the context tokens the query fires on are taken away instead of re-normalising."""
        if clip_index is not None:  # each clip's keywords read it in one product (no per-question copy)
            groups = ClipGroups(clip_index)
            parts = [ReferentQuery._lookup(q_clip, context[c:c + 1], None, detector)
                     for c, q_clip in zip(groups.clips, groups.split(q))]
            return groups.merge([g for g, _ in parts]), groups.merge([w for _, w in parts])
        if context.shape[0] == 1 and q.shape[0] > 1:
            B, K, d = q.shape
            gathered, weights = ReferentQuery._lookup(q.reshape(1, B * K, d), context, None, detector)
            return gathered.view(B, K, d), weights.view(B, K, -1)
        if context.shape[0] != q.shape[0]:
            context = context.expand(q.shape[0], -1, -1)
        scores = q @ context.transpose(1, 2) / math.sqrt(q.shape[-1])
        if detector:
            weights = scores.sigmoid()
            return weights @ context / context.shape[1], weights
        weights = scores.softmax(dim=-1)
        return weights @ context, weights

    def forward(self, instrument: torch.Tensor, visual: torch.Tensor, audio: torch.Tensor,
                clip_index: torch.Tensor | None = None, return_weights: bool = False):
        """instrument [B,K,C] (probabilities), visual [.,N,d] patch (or segment) tokens, audio [.,T,d] segment
        tokens -> what each keyword's instrument gathers from each, [B,K,d] twice; with `return_weights` also
        where it looked, [B,K,N] and [B,K,T] (the weights it read with, so returning them changes nothing
        computed)."""
        q = self.query(instrument)
        g_v, w_v = self._lookup(self.q_visual(q), visual, clip_index)
        g_a, w_a = self._lookup(self.q_audio(q), audio, clip_index, self.audio_detector)
        r_v, r_a = g_v * self.gate_visual(instrument), g_a * self.gate_audio(instrument)
        return (r_v, r_a, w_v, w_a) if return_weights else (r_v, r_a)


class GroundedExpert(nn.Module):
    """A second answerer that sees only the question and what the grounding head read for each keyword
    (`grounded_expert`); MCD adds its log-probabilities, times `expert_weight`, to the student's (a product of
    experts).

    Why (our extension): on v6's val clips the sign of the head's two loudness read-outs answers "Is the instrument
    on the left louder than the instrument on the right?" 81% right, the answer 51% (bench/grounding.py's last
    table). The answer reads the clues too, 256 numbers per keyword besides ~60 named, bounded ones, and what it
    learns from them on training clips does not carry to new clips. A small MLP trained on the frozen v6's question
    and read-outs alone reached 78-84% on val for most comparison templates. Its inputs are detached, so it learns
    to answer from the read-outs without teaching the model anything (and `mcd calibrate` can refit it alone:
    mcd.training.refit).

    With `comparator` (`expert_comparator`) the question also weighs each keyword's scalar read-outs (loudness, log
    note rate, onset, sounding time; every reading's) into one number that is added to "yes" and taken from "no".
    Why: "Is the X louder than the Y?" is loudness(X) - loudness(Y), a product of what the question asks and what
    the head read. The MLP can only sum the two before its nonlinearity: refit on v8's read-outs of the train split,
    it answered "Is the X louder than the Y?" on the fresh test set 73.8% right where the plain sign of the
    referent query's two loudness read-outs was right 91% of the time; with the comparator, 79.4%
    (bench/expert_refit.py; README, "The expert refit after training").
    """

    def __init__(self, d: int, width: int, num_answers: int, slots: int,
                 comparator: tuple[torch.Tensor, int, int] | None = None):
        """`comparator` = (bool mask [width] of the scalar features it may weigh, index of "yes", index of "no")."""
        super().__init__()
        self.question = nn.Linear(d, d)
        self.slot_maps = nn.Parameter(torch.randn(slots, width, d) / math.sqrt(width))   # one map per keyword slot
        self.out = nn.Linear(d, num_answers)
        self.comparator = None
        if comparator is not None:
            mask, yes, no = comparator
            if tuple(mask.shape) != (width,):
                raise ValueError(f"comparator mask must have shape ({width},), got {tuple(mask.shape)}")
            self.register_buffer("scalar_mask", mask.float(), persistent=False)
            sign = torch.zeros(num_answers)
            sign[yes], sign[no] = 1.0, -1.0
            self.register_buffer("answer_sign", sign, persistent=False)   # +1 on "yes", -1 on "no"
            self.comparator = nn.Linear(d, slots * width)
            nn.init.zeros_(self.comparator.weight)    # starts as the plain expert
            nn.init.zeros_(self.comparator.bias)

    def forward(self, question: torch.Tensor, referents: torch.Tensor) -> torch.Tensor:
        """question [B,d] (the pooled question tokens), referents [B,K,width] (`GroundingHead.features` per keyword,
        zero where a keyword is padding or a type word; keyword k uses slot min(k, slots-1)) -> logits [B,C]."""
        B, K, width = referents.shape
        logits = self.out(F.gelu(self.question(question) + read_slots(referents, self.slot_maps)))
        if self.comparator is not None:
            slots = object_slots(K, referents.device, self.slot_maps.shape[0])
            weights = self.comparator(question).view(B, -1, width)[:, slots]                      # [B,K,width]
            t = (weights * referents * self.scalar_mask).sum(dim=(1, 2))
            logits = logits + t[:, None] * self.answer_sign
        return logits


def detector_loss(weights: torch.Tensor, targets: GroundingTargets, o_mask: torch.Tensor) -> torch.Tensor:
    """BCE of the referent query's per-second sigmoids weights [B,K,T] (`referent_audio` "detector") against the
    fraction of each second the keyword's referent sounds in, over the real keywords that name something."""
    keep = targets.has_referent & o_mask
    if not bool(keep.any()):
        return weights.sum() * 0.0
    return F.binary_cross_entropy(weights[keep].clamp(1e-6, 1 - 1e-6), targets.segments[keep])


def grounding_loss(raw: tuple[torch.Tensor, ...], targets: GroundingTargets) -> torch.Tensor:
    """Mean over keywords with a referent of CE(instrument) + CE(position) + BCE(sounds) + BCE(segments) +
    MSE(scalars, where the referent sounds), from the head's `forward` output `raw`. Zero (with a graph) when no
    keyword of the batch names anything."""
    instrument, position, scalars, segments, sounds = raw
    has = targets.has_referent
    if not bool(has.any()):
        return instrument.sum() * 0.0
    loss = F.cross_entropy(position[has], targets.position[has])
    named = has & (targets.instrument != IGNORE)
    if bool(named.any()):
        loss = loss + F.cross_entropy(instrument[named], targets.instrument[named])
    loss = loss + F.binary_cross_entropy_with_logits(sounds[has][:, 0], targets.sounds[has])
    loss = loss + F.binary_cross_entropy_with_logits(segments[has], targets.segments[has])
    loud = has & (targets.sounds > 0)
    if bool(loud.any()):
        loss = loss + F.mse_loss(scalars[loud], targets.scalars[loud])
    return loss

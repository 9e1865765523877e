"""Our extensions to MCD, attached to the paper's model as one module (`MCD.keywords`): keywords that gather clues
of their own, read out per slot, and (with scene-graph supervision) keyword grounding and the grounded expert.

The paper fuses text objects into the question; it does not say how "X louder than Y" becomes a difference of
two instruments' loudness. These parts give the keywords that structure. docs/model.md says what each adds on the
synthetic benchmark and which need labels only the generator has (`grounding.*`: what every keyword points at).

    objects -> + slot embedding (object_clues) -> the aggregators also query with them -> their clues
    clues ---> object_readout: Σ_slot map_slot · clue -> added to the pooled question
          \\-> grounding head (per keyword: instrument, position, loudness, rhythm, onset, seconds it sounds)
               \\-> referent_query: the named instrument looks the clip up again -> the head reads that too
               \\-> grounded_answer: Σ_slot map_slot · read-outs -> added to the pooled question
               \\-> expert: question + read-outs -> logits, added as log-probabilities (weight per type)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from mcd.model.aggregator import BranchOutput
from mcd.model.config import MCDConfig
from mcd.model.grounding import (GroundedExpert, GroundingHead, GroundingTargets, ReferentQuery,
                                 detector_loss, grounding_loss)
from mcd.model.slots import MAX_OBJECT_SLOTS, object_slots, read_slots
from mcd.task.questions import per_type_table
from mcd.task.vocab import answer_to_index

KEYWORD, TYPE_WORD = 0, 1   # values of `objects_kind`


@dataclass
class KeywordReadings:
    """What the keyword parts read in one forward (kept for the answer, the losses and the demo)."""

    raw: list[tuple[torch.Tensor, ...]] = field(default_factory=list)    # grounding head outputs, one per reading
    referents: list[dict[str, torch.Tensor]] = field(default_factory=list)
    features: torch.Tensor | None = None                                  # [B,K,referent_width]
    referent_weights: tuple[torch.Tensor, torch.Tensor] | None = None     # where each referent query looked

    def mean_referents(self) -> dict[str, torch.Tensor]:
        """The mean of every reading (the keyword's clue, then its referent query), as the demo shows them."""
        if not self.referents:
            return {}
        return {k: torch.stack([r[k] for r in self.referents]).mean(dim=0) for k in self.referents[0]}


class KeywordExtensions(nn.Module):
    """Slot embeddings and read-outs of keyword clues, the grounding head and the grounded expert.

    Built only when `extensions.object_clues` is on and the model fuses text objects; the parameters keep the
    names they had at the top of MCD before, under `keywords.` (mcd.model.checkpoint maps format-1 files)."""

    def __init__(self, cfg: MCDConfig):
        super().__init__()
        ext, d = cfg.extensions, cfg.d
        self.cfg = cfg
        self.object_slot = nn.Embedding(MAX_OBJECT_SLOTS, d)     # slot order: "X louder than Y"
        if ext.object_readout:
            # one map per keyword slot, so "X than Y" can be read as clue(X) - clue(Y)
            self.object_readout = nn.Parameter(torch.randn(MAX_OBJECT_SLOTS, 2 * d, d) / math.sqrt(2 * d))
        g = ext.grounding
        if g.enabled:
            self.grounding = GroundingHead(d, g.classes, cfg.T)
            if g.referent_query:
                self.referent_query = ReferentQuery(d, g.classes, g.referent_audio == "detector")
            if g.grounded_answer:
                w = self.referent_width
                self.referent_readout = nn.Parameter(torch.randn(MAX_OBJECT_SLOTS, w, d) / math.sqrt(w))
        # the expert (g.expert) is attached by MCD after every other module, so the rest starts as without it

    # -- construction helpers ---------------------------------------------------------------------------------
    @property
    def referent_width(self) -> int:
        """Features per keyword that `grounded_answer` and the expert read: the head's, once per reading."""
        return self.grounding.width * (2 if self.cfg.extensions.grounding.referent_query else 1)

    def build_expert(self, comparator: bool) -> GroundedExpert:
        """A fresh grounded expert for these read-outs (with the comparator over every reading's scalar columns);
        the model's own at construction, and mcd.training.refit's."""
        spec = None
        if comparator:
            readings = 2 if self.cfg.extensions.grounding.referent_query else 1
            spec = (self.grounding.scalar_columns().repeat(readings), answer_to_index("yes"), answer_to_index("no"))
        return GroundedExpert(self.cfg.d, self.referent_width, self.cfg.num_answers, MAX_OBJECT_SLOTS, spec)

    # -- the forward's hooks ----------------------------------------------------------------------------------
    def tag_slots(self, objects: torch.Tensor) -> torch.Tensor:
        """objects [B,K,d] + the embedding of each object's slot (its position in the list)."""
        return objects + self.object_slot(object_slots(objects.shape[1], objects.device))

    def read(self, pooled: torch.Tensor, br_v: BranchOutput, br_a: BranchOutput, hat_v: torch.Tensor,
             low_v: torch.Tensor | None, x_a: torch.Tensor, clip_index: torch.Tensor | None,
             o_mask: torch.Tensor, o_kind: torch.Tensor) -> tuple[torch.Tensor, KeywordReadings]:
        """The pooled question [B,d] plus what the keywords' clues say, and the readings for `answer`/`loss`."""
        g = self.cfg.extensions.grounding
        readings = KeywordReadings()
        if br_v.object_clues is None:
            return pooled, readings
        if g.enabled:
            readings.raw.append(self.grounding(br_v.object_clues, br_a.object_clues))
            readings.referents.append(GroundingHead.read(readings.raw[0]))
            if g.referent_query:
                r_v, r_a, w_v, w_a = self.referent_query(readings.referents[0]["instrument"],
                                                         hat_v if low_v is None else low_v, x_a, clip_index,
                                                         return_weights=True)
                readings.referent_weights = (w_v, w_a)
                readings.raw.append(self.grounding(r_v, r_a))
                readings.referents.append(GroundingHead.read(readings.raw[1]))
        if self.cfg.extensions.object_readout:
            clues = torch.cat([br_v.object_clues, br_a.object_clues], dim=-1)               # [B,K,2d]
            pooled = pooled + self.read_objects(clues, self.object_readout, o_mask, o_kind)
        if readings.referents and (g.grounded_answer or g.expert):
            readings.features = torch.cat([GroundingHead.features(r) for r in readings.referents], dim=-1)
        if g.grounded_answer and readings.referents:
            pooled = pooled + self.read_objects(readings.features, self.referent_readout, o_mask, o_kind)
        return pooled, readings

    def answer(self, student_logits: torch.Tensor, q_pool: torch.Tensor, readings: KeywordReadings,
               o_mask: torch.Tensor, o_kind: torch.Tensor, question_type: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the answer's logits, the expert's own logits or None). With the expert, the answer is
        log p_student + w · log p_expert, w per question type; its inputs are detached, so it learns from the
        model and never teaches it."""
        if not (self.cfg.extensions.grounding.expert and readings.referents):
            return student_logits, None
        expert_logits = self.expert(q_pool.detach(), self.expert_inputs(readings.features, o_mask, o_kind))
        weight = self.expert_weights(question_type, student_logits.shape[0], student_logits.device)
        return student_logits.log_softmax(-1) + weight * expert_logits.log_softmax(-1), expert_logits

    def loss(self, readings: KeywordReadings, targets: GroundingTargets, o_mask: torch.Tensor) -> torch.Tensor:
        """The grounding head's loss over every reading (the caller weighs it by `grounding.loss_weight`)."""
        if tuple(targets.position.shape) != tuple(o_mask.shape):
            raise ValueError(f"grounding targets must be [B, K] = {tuple(o_mask.shape)}, "
                             f"got {tuple(targets.position.shape)}")
        loss = sum(grounding_loss(raw, targets) for raw in readings.raw)
        if self.cfg.extensions.grounding.referent_audio == "detector" and readings.referent_weights is not None:
            loss = loss + detector_loss(readings.referent_weights[1], targets, o_mask)
        return loss

    # -- pieces used by training and calibration ---------------------------------------------------------------
    def expert_weights(self, question_type: torch.Tensor | None, B: int, device: torch.device) -> torch.Tensor:
        """[B,1] weight of each question's expert log-probabilities: its type's in `expert_type_weights`, else
        `expert_weight`. Why per type: one weight cannot serve all; on v7's val clips the expert added 9 points to
        AV-Comparative at weight 2 but took 0.7 from Visual/Counting, where the student alone was right 97.8%."""
        g = self.cfg.extensions.grounding
        if question_type is None or not g.expert_type_weights:
            return torch.full((B, 1), g.expert_weight, device=device)
        table = torch.tensor(per_type_table(g.expert_type_weights, g.expert_weight), device=device)
        return table[question_type.long()][:, None]

    @staticmethod
    def expert_inputs(feats: torch.Tensor, o_mask: torch.Tensor, o_kind: torch.Tensor) -> torch.Tensor:
        """[B,K,referent_width] what the grounded expert reads: the read-outs of the real keywords, detached (type
        words and padding zero). mcd.training.refit keeps these to refit the expert without the rest of the model."""
        return feats.detach() * (o_mask & (o_kind == KEYWORD)).to(feats.dtype)[..., None]

    @staticmethod
    def read_objects(per_object: torch.Tensor, maps: torch.Tensor, o_mask: torch.Tensor,
                     o_kind: torch.Tensor) -> torch.Tensor:
        """Σ_slot maps[slot] per_object[slot] over the real keywords: per_object [B,K,c], maps [MAX_OBJECT_SLOTS,c,d].

        Why: the question tokens reach the objects through a softmax, whose weights are all positive, so
        "X louder than Y" must be routed through separate heads before it can become a difference, and training
        sits at chance for epochs. A linear map per slot makes clue(X) - clue(Y) one weight away. The grounding
        head's read-outs are read the same way (`grounded_answer`): a few-hundred-question template cannot find
        the one loudness direction among the clue's dimensions, but among ~30 named, bounded features it can.
        """
        keep = (o_mask & (o_kind == KEYWORD)).to(per_object.dtype)[..., None]               # [B,K,1]
        return read_slots(per_object * keep, maps)

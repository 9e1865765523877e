"""MCD, Mutual Correlation Distillation (DESIGN §3): the whole model in one forward.

    features -> projections -> association (2T segment tokens) --------------------+
                     |                                                            |
    question ------> aggregator(visual) + aggregator(audio) -> f̂_q -> student header -> logits (the answer)
                     |                                          |
                     +-> question-attended f̂_v, f̂_a -> z_v, z_a -- KD --> z_q
                                                  \\-> teacher head -> teacher_logits (agreement only)

B questions about one clip are cheap: pass visual/audio with batch size 1, or `.expand(B, ...)` views of one
clip (stride 0 on the batch dim); the audio-visual part then runs once and broadcasts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from mcd.config import MCDConfig
from mcd.model.aggregator import Aggregator, BranchOutput, QuestionBlocks, masked_token_mean
from mcd.model.approximation import SemanticApproximation, distillation_loss, logit_distillation_loss
from mcd.model.association import Association, MultiHeadAttention, info_nce
from mcd.model.dropout import Dropout
from mcd.model.grounding import GroundedExpert, GroundingHead, GroundingTargets, ReferentQuery, grounding_loss
from mcd.model.heads import PredictionHeader, TeacherHead
from mcd.model.slots import MAX_OBJECT_SLOTS, object_slots, read_slots
from mcd.questions import QUESTION_TYPES, per_type_table
from mcd.vocab import answer_to_index

KEYWORD, TYPE_WORD = 0, 1   # values of `objects_kind`


class SoundingPatches(nn.Module):
    """(W_v patch) ⊙ (W_a audio of the patch's segment), mapped back to d: how this patch's content sounds now.

    Why (our extension; off = DESIGN §3): the patch tokens are the only place that knows *where* things are, but
    they are built from vision alone, and the association stack sees patches pooled per frame. So "Where is the
    first sounding instrument?" or "Is the instrument on the left louder ...?" must bind a position to a sound,
    and one aggregation round queries patches with text only. A per-patch product with the same-time audio
    feature is the spatial grounding map of audio-visual localisation (AVST's audio-guided visual attention) in
    its plainest form: large where the instrument in the patch is the one sounding, scaled by how loud it is.
    """

    def __init__(self, d: int):
        super().__init__()
        self.visual = nn.Linear(d, d)
        self.audio = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def forward(self, patches: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """patches [B,T,P,d], audio [B,T,d] (the projected unimodal features) -> [B,T,P,d]."""
        return self.out(self.visual(patches) * self.audio(audio)[:, :, None])


class MCDInputError(ValueError):
    """A forward input with the wrong shape, dtype or value; the message names the argument."""


@dataclass
class MCDOutput:
    """Everything one forward produces. `loss`/`losses` are set only when labels are given.

    clues (each averaged over heads and real question tokens; a distribution over its axis):
      association [B,2T,2T] rows over the 2T segment tokens (visual first), averaged over blocks too;
      visual_low [B,T,P] over all T·P patches jointly; audio_low, visual_high, audio_high [B,T];
      objects [B,K] over the real, enabled text objects (averaged over both branches).
    A level that the configuration switches off (hierarchy, text_objects) is all zeros, as is `objects`
    for a question with no usable object.
    """

    logits: torch.Tensor                 # [B,C] the prediction: the student's (with grounded_expert, log-probabilities
                                         # of student + w · expert, w per question type: `_expert_weights`)
    teacher_logits: torch.Tensor         # [B,C] decision-level fusion: agreement only
    z_q: torch.Tensor                    # [B,d_z]
    z_v: torch.Tensor
    z_a: torch.Tensor
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    clues: dict[str, torch.Tensor] = field(default_factory=dict)
    referents: dict[str, torch.Tensor] = field(default_factory=dict)   # GroundingHead.read (mean of its readings)
    expert_logits: torch.Tensor | None = None   # [B,C] the grounded expert's own (grounded_expert)


class MCD(nn.Module):
    def __init__(self, config: MCDConfig):
        super().__init__()
        config.validate()
        self.config = cfg = config
        d = cfg.d
        self.uses_low = cfg.hierarchy in ("both", "low")
        self.uses_objects = cfg.text_objects != "none"
        # the grounding head needs keywords that gather clues: a text_objects="none" ablation builds none
        self.uses_grounding = self.uses_objects and cfg.object_clues and cfg.object_grounding

        # basic-encoder projections [F]; the same text projection serves question tokens and text objects,
        # because the same text encoder produced both
        self.visual_proj = nn.Sequential(nn.Linear(cfg.visual_dim, d), nn.LayerNorm(d))
        self.audio_proj = nn.Sequential(nn.Linear(cfg.audio_dim, d), nn.LayerNorm(d))
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.LayerNorm(d))
        self.drop = Dropout(cfg.dropout)
        self.pos_t = nn.Parameter(torch.randn(cfg.T, d) * 0.02)          # segment position
        self.mod_v = nn.Parameter(torch.randn(d) * 0.02)                 # modality embeddings e_v, e_a
        self.mod_a = nn.Parameter(torch.randn(d) * 0.02)
        if self.uses_low:
            self.pos_p = nn.Parameter(torch.randn(cfg.P, d) * 0.02)      # patch position (spatial clues)
            if cfg.sounding_patches:
                self.sounding = SoundingPatches(d)
        if self.uses_objects:
            self.object_kind = nn.Embedding(2, d)                        # keyword vs type word
            if cfg.object_clues:
                self.object_slot = nn.Embedding(MAX_OBJECT_SLOTS, d)     # slot order: "X louder than Y"
                if cfg.object_readout:
                    # one map per keyword slot, so "X than Y" can be read as clue(X) - clue(Y)
                    self.object_readout = nn.Parameter(torch.randn(MAX_OBJECT_SLOTS, 2 * d, d) / math.sqrt(2 * d))
                if cfg.object_grounding:
                    self.grounding = GroundingHead(d, cfg.grounding_classes, cfg.T)
                    if cfg.referent_query:
                        self.referent_query = ReferentQuery(d, cfg.grounding_classes)
                    if cfg.grounded_answer:
                        # one map per keyword slot, so "X louder than Y" is loudness(X) - loudness(Y) read directly
                        w = self.referent_width
                        self.referent_readout = nn.Parameter(torch.randn(MAX_OBJECT_SLOTS, w, d) / math.sqrt(w))

        self.association = Association(d, cfg.n_heads, cfg.n_blocks, cfg.ffn_mult, cfg.dropout,
                                       cfg.association_residual)
        make_agg = lambda: Aggregator(d, cfg.n_heads, cfg.ffn_mult, cfg.dropout, cfg.hierarchy, cfg.hints,
                                      self.uses_objects, cfg.clue_gate, cfg.object_clues)
        self.aggregator = make_agg()                                     # visual branch, or both if shared
        if not cfg.shared_aggregator:
            self.aggregator_audio = make_agg()
        self.combine = nn.Linear(2 * d, d)                               # f̂_q = LN(f_q + W[t_v ; t_a])
        self.combine_ln = nn.LayerNorm(d)
        # further aggregation rounds (our extension, see `_aggregate`); round 1 keeps the names above
        self.extra_hops = nn.ModuleList()
        for _ in range(cfg.hops - 1):
            hop = nn.ModuleDict({"aggregator": make_agg(), "combine": nn.Linear(2 * d, d), "combine_ln": nn.LayerNorm(d)})
            if not cfg.shared_aggregator:
                hop["aggregator_audio"] = make_agg()
            self.extra_hops.append(hop)
        if cfg.question_blocks:
            self.question_blocks = QuestionBlocks(d, cfg.n_heads, cfg.ffn_mult, cfg.dropout, cfg.question_blocks)

        self.av_pool = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)   # question-attended f̂_v, f̂_a
        self.approximation = SemanticApproximation(d, cfg.d_z)
        self.header = PredictionHeader(3 * d if cfg.decision_fusion else d, d, cfg.num_answers, cfg.dropout)
        self.teacher_head = TeacherHead(d, cfg.d_z, cfg.num_answers, cfg.dropout)
        if cfg.grounded_expert and self.uses_grounding:  # built last: other weights start as they would without it
            self.expert = self.build_expert(cfg.expert_comparator)

    def build_expert(self, comparator: bool) -> GroundedExpert:
        """A fresh grounded expert for this model's read-outs (with the comparator over their scalar columns, every
        reading's); the model's own at construction, and mcd.expert_refit's."""
        spec = None
        if comparator:
            readings = 2 if self.config.referent_query else 1
            spec = (self.grounding.scalar_columns().repeat(readings), answer_to_index("yes"), answer_to_index("no"))
        return GroundedExpert(self.config.d, self.referent_width, self.config.num_answers, MAX_OBJECT_SLOTS, spec)

    @property
    def referent_width(self) -> int:
        """Features per keyword that `grounded_answer` and `grounded_expert` read: the head's, once per reading."""
        return self.grounding.width * (2 if self.config.referent_query else 1)

    # ------------------------------------------------------------------------------------------------
    def forward(self, visual: torch.Tensor, audio: torch.Tensor, question: torch.Tensor,
                question_mask: torch.Tensor | None = None, objects: torch.Tensor | None = None,
                objects_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                video_index: torch.Tensor | None = None, objects_kind: torch.Tensor | None = None,
                grounding: GroundingTargets | None = None, question_type: torch.Tensor | None = None) -> MCDOutput:
        """visual [B|1,T,P,Dv], audio [B|1,T,Da], question [B,L,Dt], question_mask [B,L] (True = real token;
        None = all real), objects [B,K,Dt] with objects_mask [B,K] and objects_kind [B,K] (0 keyword,
        1 type word; None = all keywords), labels [B] answer indices, video_index [B] (equal = same clip;
        None = every row its own clip, or one clip when visual/audio are shared), grounding: what each keyword
        points at (training with `object_grounding`; adds losses["grounding"] when labels are given too),
        question_type [B] index into mcd.questions.QUESTION_TYPES (-1 = unknown; None = all unknown): which of
        `expert_type_weights` weighs the grounded expert's answer.
        """
        cfg = self.config
        q_mask, objects, o_mask, o_kind, av_shared = self._check_inputs(
            visual, audio, question, question_mask, objects, objects_mask, labels, video_index, objects_kind)
        B, T, P, d = question.shape[0], cfg.T, cfg.P, cfg.d
        if question_type is not None:
            self._check_question_type(question_type, B)
        # per-clip features: visual/audio hold V clips and video_index maps each question to its clip
        clip_index = video_index if (not av_shared and visual.shape[0] != B) else None
        if av_shared:
            visual, audio = visual[:1], audio[:1]
        elif clip_index is None and visual.shape[0] != audio.shape[0]:
            visual, audio = visual.expand(B, -1, -1, -1), audio.expand(B, -1, -1)
        if not cfg.visual_enabled:
            visual = torch.zeros_like(visual)
        if not cfg.audio_enabled:
            audio = torch.zeros_like(audio)

        # projections and association (batch 1 when the clip is shared)
        f_v = self.drop(self.visual_proj(visual.mean(dim=2)))                     # [Bav,T,d]
        f_a = self.drop(self.audio_proj(audio))                                   # [Bav,T,d]
        x_a = f_a + self.mod_a + self.pos_t
        x0 = torch.cat([f_v + self.mod_v + self.pos_t, x_a], dim=1)               # [Bav,2T,d]
        assoc, assoc_map = self.association(x0)
        hat_v, hat_a = assoc[:, :T], assoc[:, T:]
        low_v = None
        if self.uses_low:
            f_vp = self.drop(self.visual_proj(visual))                            # [Bav,T,P,d]
            low_v = f_vp + self.mod_v + self.pos_t[:, None] + self.pos_p
            if cfg.sounding_patches:
                low_v = low_v + self.drop(self.sounding(f_vp, f_a))
            low_v = low_v.reshape(-1, T * P, d)

        # question and text objects
        f_q = self.drop(self.text_proj(question))                                 # [B,L,d]
        query_rows = torch.cat([q_mask, o_mask], dim=1)   # real tokens and objects: the rows gathering clues
        obj = None
        if self.uses_objects and objects.shape[1] > 0:
            obj = self.drop(self.text_proj(objects)) + self.object_kind(o_kind)
            if cfg.object_clues:
                obj = obj + self.object_slot(object_slots(obj.shape[1], obj.device))
            if cfg.text_objects == "keywords":
                o_mask = o_mask & (o_kind == KEYWORD)
            elif cfg.text_objects == "types":
                o_mask = o_mask & (o_kind == TYPE_WORD)

        # aggregators: the question gathers clues from each modality, then fuses text objects
        hat_q, br_v, br_a = self._aggregate(f_q, low_v, x_a, hat_v, hat_a, obj, o_mask, clip_index, query_rows)
        if cfg.question_blocks:
            hat_q = self.question_blocks(hat_q, q_mask)
        pooled = masked_token_mean(hat_q, q_mask)                                 # [B,d]
        grounding_raw, referents = [], []      # one entry per reading: the keyword's clue, then its referent query
        if cfg.object_grounding and br_v.object_clues is not None:
            grounding_raw.append(self.grounding(br_v.object_clues, br_a.object_clues))
            referents.append(GroundingHead.read(grounding_raw[0]))
            if cfg.referent_query:
                r_v, r_a = self.referent_query(referents[0]["instrument"], hat_v if low_v is None else low_v, x_a,
                                               clip_index)
                grounding_raw.append(self.grounding(r_v, r_a))
                referents.append(GroundingHead.read(grounding_raw[1]))
        if cfg.object_readout and br_v.object_clues is not None:
            clues = torch.cat([br_v.object_clues, br_a.object_clues], dim=-1)               # [B,K,2d]
            pooled = pooled + self._read_objects(clues, self.object_readout, o_mask, o_kind)
        feats = None                                                                   # [B,K,referent_width]
        if referents and (cfg.grounded_answer or cfg.grounded_expert):
            feats = torch.cat([GroundingHead.features(r) for r in referents], dim=-1)
        if cfg.grounded_answer and referents:
            pooled = pooled + self._read_objects(feats, self.referent_readout, o_mask, o_kind)

        # teachers: question-attended associated features -> latents -> decision-level fusion
        q_pool = masked_token_mean(f_q, q_mask)
        att_v = self.av_pool(q_pool[:, None], hat_v, context_index=clip_index)[0][:, 0]   # [B,d]
        att_a = self.av_pool(q_pool[:, None], hat_a, context_index=clip_index)[0][:, 0]
        z_q, z_v, z_a = self.approximation(att_v, att_a, pooled)
        header_in = torch.cat([pooled, att_v, att_a], dim=-1) if cfg.decision_fusion else pooled
        student_logits = logits = self.header(header_in)
        teacher_logits = self.teacher_head(q_pool, z_v, z_a)
        expert_logits = None
        if cfg.grounded_expert and referents:   # detached: the expert learns from the model, never teaches it
            expert_logits = self.expert(q_pool.detach(), self.expert_inputs(feats, o_mask, o_kind))
            weight = self._expert_weights(question_type, B, question.device)
            logits = student_logits.log_softmax(-1) + weight * expert_logits.log_softmax(-1)

        out = MCDOutput(logits, teacher_logits, z_q, z_v, z_a, expert_logits=expert_logits,
                        clues=self._clues(B, assoc_map if clip_index is None else assoc_map[clip_index],
                                          br_v, br_a, q_mask, o_mask, objects.shape[1]))
        if referents:  # with referent_query, the mean of both readings (v6 val position 94.8%: clue 92.2, query 87.6)
            out.referents = {k: torch.stack([r[k] for r in referents]).mean(dim=0) for k in referents[0]}
        if labels is not None:
            if video_index is None and av_shared:
                video_index = torch.zeros(B, dtype=torch.long, device=question.device)
            self._add_losses(out, student_logits, labels, video_index, hat_v, hat_a, B,
                             per_clip=clip_index is not None)
            if grounding is not None and grounding_raw:
                if tuple(grounding.position.shape) != tuple(o_mask.shape):
                    raise MCDInputError(f"grounding targets must be [B, K] = {tuple(o_mask.shape)}, "
                                        f"got {tuple(grounding.position.shape)}")
                out.losses["grounding"] = sum(grounding_loss(raw, grounding) for raw in grounding_raw)
                out.loss = out.loss + cfg.lambda_grounding * out.losses["grounding"]
        return out

    def _expert_weights(self, question_type: torch.Tensor | None, B: int, device: torch.device) -> torch.Tensor:
        """[B,1] weight of each question's expert log-probabilities: its type's in `expert_type_weights`, else
        `expert_weight`. Why per type: one weight cannot serve all; on v7's val clips the expert added 9 points to
        AV-Comparative at weight 2 but took 0.7 from Visual/Counting, where the student alone was right 97.8%."""
        cfg = self.config
        if question_type is None or not cfg.expert_type_weights:
            return torch.full((B, 1), cfg.expert_weight, device=device)
        table = torch.tensor(per_type_table(cfg.expert_type_weights, cfg.expert_weight), device=device)
        return table[question_type.long()][:, None]

    @staticmethod
    def expert_inputs(feats: torch.Tensor, o_mask: torch.Tensor, o_kind: torch.Tensor) -> torch.Tensor:
        """[B,K,referent_width] what the grounded expert reads: the read-outs of the real keywords, detached (type
        words and padding zero). mcd.expert_refit keeps these to refit the expert without the rest of the model."""
        return feats.detach() * (o_mask & (o_kind == KEYWORD)).to(feats.dtype)[..., None]

    @staticmethod
    def _check_question_type(question_type, B: int) -> None:
        if (not isinstance(question_type, torch.Tensor) or tuple(question_type.shape) != (B,)
                or question_type.is_floating_point()):
            raise MCDInputError(f"question_type must be an integer tensor of shape ({B},), "
                                f"got {getattr(question_type, 'shape', type(question_type).__name__)}")
        if bool(((question_type < -1) | (question_type >= len(QUESTION_TYPES))).any()):
            raise MCDInputError(f"question_type values must be -1 (unknown) or 0..{len(QUESTION_TYPES) - 1}")

    @staticmethod
    def _read_objects(per_object: torch.Tensor, maps: torch.Tensor, o_mask: torch.Tensor,
                      o_kind: torch.Tensor) -> torch.Tensor:
        """Σ_slot maps[slot] per_object[slot] over the real keywords: per_object [B,K,c], maps [MAX_OBJECT_SLOTS,c,d].

        Why (our extension): the question tokens reach the objects through a softmax, whose weights are all
        positive, so "X louder than Y" must be routed through separate heads before it can become a difference,
        and training sits at chance for epochs. A linear map per slot makes clue(X) - clue(Y) one weight away.
        `object_readout` reads the keywords' clues [clue_v ; clue_a] this way. `grounded_answer` reads what the
        grounding head says each keyword points at (`GroundingHead.features`) through `referent_readout`: on
        clips it never saw, the sign of v5's two loudness read-outs answered "Is the X louder than the Y?" 86%
        right where the answer, reading the 256-wide clues, got 75%; a few-hundred-question template cannot find
        the one loudness direction among the clue's dimensions, but here it is one of ~30 named, bounded features.
        """
        keep = (o_mask & (o_kind == KEYWORD)).to(per_object.dtype)[..., None]               # [B,K,1]
        return read_slots(per_object * keep, maps)

    def _aggregate(self, f_q, low_v, x_a, hat_v, hat_a, obj, o_mask, clip_index, query_rows=None
                   ) -> tuple[torch.Tensor, BranchOutput, BranchOutput]:
        """f̂_q = LN(q + W[t_v ; t_a]) for q = f_q, then (with `hops` > 1) again with q = the previous f̂_q.

        Why rounds (our extension; hops = 1 is DESIGN §3): the two branches read the clip in parallel from the
        same f_q, so no token can use what it heard to decide where to look. "Where is the loudest instrument?"
        must first find the loudest sound (audio) and then the player of that instrument (visual patches);
        "Is the instrument on the left louder ...?" goes the other way. A second round queries both branches
        again with the clue-attached tokens. The returned branch maps are averaged over rounds, so the clues
        stay distributions over the same axes.
        """
        cfg = self.config
        rounds = [{"aggregator": self.aggregator, "combine": self.combine, "combine_ln": self.combine_ln,
                   "aggregator_audio": self.aggregator if cfg.shared_aggregator else self.aggregator_audio}]
        for hop in self.extra_hops:
            rounds.append({**hop, "aggregator_audio": hop["aggregator"] if cfg.shared_aggregator
                           else hop["aggregator_audio"]})
        q, outs = f_q, []
        for r in rounds:
            br_v = r["aggregator"](q, low_v, hat_v, obj, o_mask, clip_index, query_rows)
            br_a = r["aggregator_audio"](q, x_a, hat_a, obj, o_mask, clip_index, query_rows)
            q = r["combine_ln"](q + self.drop(r["combine"](torch.cat([br_v.tokens, br_a.tokens], dim=-1))))
            if br_v.object_clues is not None and len(outs) + 1 < len(rounds):
                # objects that gathered clues query the next round with them, as the question tokens do
                clues = torch.cat([br_v.object_clues, br_a.object_clues], dim=-1)
                obj = r["combine_ln"](obj + self.drop(r["combine"](clues)))
            outs.append((br_v, br_a))
        if len(outs) == 1:
            return q, outs[0][0], outs[0][1]

        def mean_maps(branches: list[BranchOutput]) -> BranchOutput:
            def m(ws):
                return None if ws[0] is None else torch.stack(ws).mean(dim=0)
            return BranchOutput(branches[-1].tokens, m([b.low for b in branches]), m([b.high for b in branches]),
                                m([b.objects for b in branches]), branches[-1].object_clues)
        return q, mean_maps([o[0] for o in outs]), mean_maps([o[1] for o in outs])

    def _add_losses(self, out: MCDOutput, student_logits: torch.Tensor, labels: torch.Tensor,
                    video_index: torch.Tensor | None, hat_v: torch.Tensor, hat_a: torch.Tensor, B: int,
                    per_clip: bool = False) -> None:
        """The training losses of DESIGN §3.7 on the student's own logits (plus the grounded expert's CE)."""
        cfg = self.config
        zero = student_logits.new_zeros(())
        losses = {"ce_student": F.cross_entropy(student_logits, labels),
                  "ce_teacher": F.cross_entropy(out.teacher_logits, labels),
                  "contrastive": zero, "kd": zero, "logit_kd": zero}
        if cfg.contrastive_enabled:
            if per_clip:  # one row per distinct clip: no same-video pairs to mask
                losses["contrastive"] = info_nce(hat_v.mean(dim=1), hat_a.mean(dim=1), cfg.contrastive_temperature,
                                                 None)
            else:
                m_v = hat_v.mean(dim=1).expand(B, -1)
                m_a = hat_a.mean(dim=1).expand(B, -1)
                losses["contrastive"] = info_nce(m_v, m_a, cfg.contrastive_temperature, video_index)
        if cfg.lambda_kd > 0:
            losses["kd"] = distillation_loss(out.z_q, out.z_v, out.z_a, cfg.kd_mode, cfg.kd_temperature,
                                             cfg.contrastive_temperature, video_index)
        if cfg.teacher_logit_kd and cfg.lambda_logit_kd > 0:
            losses["logit_kd"] = logit_distillation_loss(out.teacher_logits, student_logits, cfg.kd_temperature)
        if out.expert_logits is not None:
            losses["ce_expert"] = F.cross_entropy(out.expert_logits, labels)
        out.losses = losses
        out.loss = (losses["ce_student"] + losses["ce_teacher"] + cfg.lambda_con * losses["contrastive"]
                    + cfg.lambda_kd * losses["kd"] + cfg.lambda_logit_kd * losses["logit_kd"]
                    + losses.get("ce_expert", zero))

    def _clues(self, B: int, assoc_map: torch.Tensor, br_v: BranchOutput, br_a: BranchOutput,
               q_mask: torch.Tensor, o_mask: torch.Tensor, K: int) -> dict[str, torch.Tensor]:
        """Attention maps averaged over real question tokens (heads were averaged by the attention)."""
        cfg = self.config
        T, P = cfg.T, cfg.P
        dev, dt = q_mask.device, assoc_map.dtype

        def avg(w: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
            if w is None:
                return torch.zeros(B, *shape, device=dev, dtype=dt)
            return masked_token_mean(w.expand(B, *w.shape[1:]), q_mask).reshape(B, *shape)

        if br_v.objects is not None:
            objects = 0.5 * (avg(br_v.objects, (K,)) + avg(br_a.objects, (K,)))
        else:
            objects = torch.zeros(B, K, device=dev, dtype=dt)
        return {"association": assoc_map.expand(B, -1, -1),
                "visual_low": avg(br_v.low, (T, P)), "audio_low": avg(br_a.low, (T,)),
                "visual_high": avg(br_v.high, (T,)), "audio_high": avg(br_a.high, (T,)),
                "objects": objects}

    # ------------------------------------------------------------------------------------------------
    def _check_inputs(self, visual, audio, question, question_mask, objects, objects_mask, labels,
                      video_index, objects_kind):
        """Validate shapes/dtypes up front so a caller's mistake reads as one sentence, not a matmul error."""
        cfg = self.config

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise MCDInputError(msg)

        def shape(t: torch.Tensor) -> tuple[int, ...]:
            return tuple(t.shape)

        for name, t in (("visual", visual), ("audio", audio), ("question", question)):
            need(isinstance(t, torch.Tensor) and t.is_floating_point(), f"{name} must be a float tensor")
        need(question.dim() == 3 and question.shape[2] == cfg.text_dim and question.shape[1] >= 1,
             f"question must be [B, L>=1, {cfg.text_dim}], got {shape(question)}")
        B, L = question.shape[:2]
        need(visual.dim() == 4 and visual.shape[1:] == (cfg.T, cfg.P, cfg.visual_dim),
             f"visual must be [B, T={cfg.T}, P={cfg.P}, {cfg.visual_dim}], got {shape(visual)}")
        need(audio.dim() == 3 and audio.shape[1:] == (cfg.T, cfg.audio_dim),
             f"audio must be [B, T={cfg.T}, {cfg.audio_dim}], got {shape(audio)}")
        per_clip = (video_index is not None and visual.shape[0] == audio.shape[0]
                    and visual.shape[0] not in (1, B))
        need(per_clip or (visual.shape[0] in (1, B) and audio.shape[0] in (1, B)),
             f"visual/audio batch ({visual.shape[0]}, {audio.shape[0]}) must be 1, the question batch {B}, "
             "or the number of clips indexed by video_index")
        if per_clip:
            need(isinstance(video_index, torch.Tensor) and not video_index.is_floating_point()
                 and int(video_index.min()) >= 0 and int(video_index.max()) < visual.shape[0],
                 f"video_index must index the {visual.shape[0]} clips of visual/audio")
        av_shared = all(x.shape[0] == 1 or x.stride(0) == 0 for x in (visual, audio))

        def as_mask(m: torch.Tensor, name: str, want: tuple[int, ...]) -> torch.Tensor:
            need(isinstance(m, torch.Tensor) and shape(m) == want, f"{name} must have shape {want}, "
                 f"got {shape(m) if isinstance(m, torch.Tensor) else type(m).__name__}")
            need(m.dtype == torch.bool or not (m.is_floating_point() or m.is_complex()),
                 f"{name} must be a bool (or 0/1 integer) tensor, got {m.dtype}")
            return m.bool()

        q_mask = (torch.ones(B, L, dtype=torch.bool, device=question.device) if question_mask is None
                  else as_mask(question_mask, "question_mask", (B, L)))
        need(bool(q_mask.any(dim=1).all()), "every question needs at least one real token in question_mask")
        if objects is None:
            need(objects_mask is None and objects_kind is None, "objects_mask/objects_kind given without objects")
            objects = question.new_zeros(B, 0, cfg.text_dim)
        need(isinstance(objects, torch.Tensor) and objects.is_floating_point() and objects.dim() == 3
             and objects.shape[0] == B and objects.shape[2] == cfg.text_dim,
             f"objects must be a float tensor [B={B}, K, {cfg.text_dim}], got {shape(objects)}")
        K = objects.shape[1]
        o_mask = (torch.ones(B, K, dtype=torch.bool, device=question.device) if objects_mask is None
                  else as_mask(objects_mask, "objects_mask", (B, K)))
        if objects_kind is None:
            o_kind = torch.full((B, K), KEYWORD, dtype=torch.long, device=question.device)
        else:
            need(isinstance(objects_kind, torch.Tensor) and shape(objects_kind) == (B, K)
                 and not objects_kind.is_floating_point(),
                 f"objects_kind must be an integer tensor of shape {(B, K)}, got {shape(objects_kind)}")
            need(bool(((objects_kind == KEYWORD) | (objects_kind == TYPE_WORD)).all()),
                 "objects_kind values must be 0 (keyword) or 1 (type word)")
            o_kind = objects_kind.long()
        if labels is not None:
            need(isinstance(labels, torch.Tensor) and shape(labels) == (B,) and not labels.is_floating_point(),
                 f"labels must be an integer tensor of shape ({B},), got {shape(labels)}")
            need(bool(((labels >= 0) & (labels < cfg.num_answers)).all()),
                 f"labels must be answer indices in 0..{cfg.num_answers - 1}")
        if video_index is not None:
            need(isinstance(video_index, torch.Tensor) and shape(video_index) == (B,)
                 and not video_index.is_floating_point(),
                 f"video_index must be an integer tensor of shape ({B},), got {shape(video_index)}")
        return q_mask, objects, o_mask, o_kind, av_shared

    # ------------------------------------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per top-level part (for the bench and the model card)."""
        counts: dict[str, int] = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                part = name.split(".")[0]
                counts[part] = counts.get(part, 0) + p.numel()
        return counts

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> None:
        """Write a checkpoint folder (see mcd.checkpoint.save_checkpoint for the keyword arguments)."""
        from mcd.checkpoint import save_checkpoint
        save_checkpoint(directory, self, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> "MCD":
        """Load a checkpoint folder's model, in eval mode (extra tensors: use mcd.checkpoint.load_checkpoint)."""
        from mcd.checkpoint import load_checkpoint
        return load_checkpoint(directory, map_location=map_location).model

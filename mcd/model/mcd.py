"""MCD, Mutual Correlation Distillation (Ye, Yu, Liu, arXiv 2403.06679), as its overview figure draws it.

    features -> projections -> association (2T segment tokens) --------------------+
                     |                                                            |
    question ------> aggregator(visual) + aggregator(audio) -> f̂_q -> student header -> logits (the answer)
                     |                                          |
                     +-> question-attended f̂_v, f̂_a -> z_v, z_a -- KD --> z_q
                                                  \\-> teacher head -> teacher_logits (agreement only)

`MCD.forward` follows the figure in numbered steps. Our extensions (keyword clues, keyword grounding and the
grounded expert; mcd.model.keywords) attach at steps 4, 6 and 8 when `config.extensions` turns them on; with
every extension off this file is the paper's model and nothing else.

B questions about one clip are cheap: pass visual/audio with batch size 1, or `.expand(B, ...)` views of one
clip (stride 0 on the batch dim); the audio-visual part then runs once and broadcasts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from mcd.model.aggregator import Aggregator, BranchOutput, masked_token_mean
from mcd.model.approximation import SemanticApproximation, distillation_loss, logit_distillation_loss
from mcd.model.association import Association, MultiHeadAttention, info_nce
from mcd.model.config import MCDConfig
from mcd.model.dropout import Dropout
from mcd.model.grounding import GroundingTargets
from mcd.model.heads import PredictionHeader, TeacherHead
from mcd.model.keywords import KEYWORD, TYPE_WORD, KeywordExtensions
from mcd.task.questions import QUESTION_TYPES


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

    object_clues (with `object_clues`; per text object, heads averaged; padding rows zero): visual_low [B,K,T,P],
      audio_low, visual_high, audio_high [B,K,T] = where each keyword or type word looked itself; with
      `referent_query` also referent_visual [B,K,T,P] (or [B,K,T] without the low level) and referent_audio
      [B,K,T] = where the instrument the grounding head read for each object looked in the second hop. Kept
      apart from `clues` because they are one map per object, not per question.
    """

    logits: torch.Tensor                 # [B,C] the prediction: the student's (with the grounded expert,
                                         # log p_student + w · log p_expert: KeywordExtensions.answer)
    teacher_logits: torch.Tensor         # [B,C] decision-level fusion: agreement only
    z_q: torch.Tensor                    # [B,d_z]
    z_v: torch.Tensor
    z_a: torch.Tensor
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    clues: dict[str, torch.Tensor] = field(default_factory=dict)
    referents: dict[str, torch.Tensor] = field(default_factory=dict)   # what keywords point at (extensions)
    object_clues: dict[str, torch.Tensor] = field(default_factory=dict)  # per text object (extensions)
    expert_logits: torch.Tensor | None = None   # [B,C] the grounded expert's own (extensions)


class MCD(nn.Module):
    """The whole model; `forward` returns one MCDOutput (answers, teacher, latents, losses, clues)."""

    def __init__(self, config: MCDConfig):
        super().__init__()
        config.validate()
        self.config = cfg = config
        ext, d = cfg.extensions, cfg.d
        self.uses_low = cfg.hierarchy in ("both", "low")
        self.uses_objects = cfg.text_objects != "none"

        # 1. basic-encoder projections [F]; the same text projection serves question tokens and text objects,
        #    because the same text encoder produced both
        self.visual_proj = nn.Sequential(nn.Linear(cfg.visual_dim, d), nn.LayerNorm(d))
        self.audio_proj = nn.Sequential(nn.Linear(cfg.audio_dim, d), nn.LayerNorm(d))
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.LayerNorm(d))
        self.drop = Dropout(cfg.dropout)
        self.pos_t = nn.Parameter(torch.randn(cfg.T, d) * 0.02)          # segment position
        self.mod_v = nn.Parameter(torch.randn(d) * 0.02)                 # modality embeddings e_v, e_a
        self.mod_a = nn.Parameter(torch.randn(d) * 0.02)
        if self.uses_low:
            self.pos_p = nn.Parameter(torch.randn(cfg.P, d) * 0.02)      # patch position (spatial clues)
        if self.uses_objects:
            self.object_kind = nn.Embedding(2, d)                        # keyword vs type word
        # our extensions, one module (None = the paper's model); built here so its parameters start as before
        self.keywords = KeywordExtensions(cfg) if self.uses_objects and ext.object_clues else None
        # 2. association blocks [F]
        self.association = Association(d, cfg.n_heads, cfg.n_blocks, cfg.ffn_mult, cfg.dropout,
                                       cfg.association_residual)
        # 3. aggregator [F], shared by the visual and the audio branch unless the ablation separates them
        make_agg = lambda: Aggregator(d, cfg.n_heads, cfg.ffn_mult, cfg.dropout, cfg.hierarchy, cfg.hints,
                                      self.uses_objects, ext.clue_gate, ext.object_clues)
        self.aggregator = make_agg()                                     # visual branch, or both if shared
        if not cfg.shared_aggregator:
            self.aggregator_audio = make_agg()
        self.combine = nn.Linear(2 * d, d)                               # f̂_q = LN(f_q + W[t_v ; t_a])
        self.combine_ln = nn.LayerNorm(d)
        # 4. semantic approximation [F]: question-attended f̂_v, f̂_a and the pooled f̂_q -> z_v, z_a, z_q
        self.av_pool = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        self.approximation = SemanticApproximation(d, cfg.d_z)
        # 5. prediction header [F] (the student) and 6. the teacher head (ours: decision-level fusion)
        self.header = PredictionHeader(3 * d if cfg.decision_fusion else d, d, cfg.num_answers, cfg.dropout)
        self.teacher_head = TeacherHead(d, cfg.d_z, cfg.num_answers, cfg.dropout)
        if self.keywords is not None and ext.grounding.expert:
            # the expert is built last, so every other weight starts as it would without it
            self.keywords.expert = self.keywords.build_expert(ext.grounding.comparator)

    @property
    def expert(self) -> nn.Module | None:
        """The grounded expert (an extension: mcd.model.keywords), or None when the config has none."""
        return getattr(self.keywords, "expert", None)

    # ------------------------------------------------------------------------------------------------
    def forward(self, visual: torch.Tensor, audio: torch.Tensor, question: torch.Tensor,
                question_mask: torch.Tensor | None = None, objects: torch.Tensor | None = None,
                objects_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                video_index: torch.Tensor | None = None, objects_kind: torch.Tensor | None = None,
                grounding: GroundingTargets | None = None, question_type: torch.Tensor | None = None) -> MCDOutput:
        """visual [B|1,T,P,Dv], audio [B|1,T,Da], question [B,L,Dt], question_mask [B,L] (True = real token;
        None = all real), objects [B,K,Dt] with objects_mask [B,K] and objects_kind [B,K] (0 keyword,
        1 type word; None = all keywords), labels [B] answer indices, video_index [B] (equal = same clip;
        None = every row its own clip, or one clip when visual/audio are shared). Extensions only: grounding =
        what each keyword points at (adds losses["grounding"] with labels), question_type [B] index into
        QUESTION_TYPES (-1 unknown) for the grounded expert's weight per type.
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

        # 1. project the frozen encoders' features to width d
        if cfg.frame_features:
            f_v = self.drop(self.visual_proj(visual.mean(dim=2)))                 # [Bav,T,d] pooled frames
        else:   # the visual segment tokens hold only modality and position: the patches carry the picture
            f_v = visual.new_zeros(visual.shape[0], T, d)
        f_a = self.drop(self.audio_proj(audio))                                   # [Bav,T,d]
        f_q = self.drop(self.text_proj(question))                                 # [B,L,d]

        # 2. association: self-attention over the 2T segment tokens [f_v + e_v ; f_a + e_a] + pos -> f̂_v, f̂_a
        x_a = f_a + self.mod_a + self.pos_t
        assoc, assoc_map = self.association(torch.cat([f_v + self.mod_v + self.pos_t, x_a], dim=1))
        hat_v, hat_a = assoc[:, :T], assoc[:, T:]

        # 3. the low level of the visual branch: the T·P patch tokens (where the spatial clues come from)
        low_v = None
        if self.uses_low:
            low_v = self.drop(self.visual_proj(visual)) + self.mod_v + self.pos_t[:, None] + self.pos_p
            low_v = low_v.reshape(-1, T * P, d)

        # 4. text objects: keywords and type words, through the same text projection [F]
        query_rows = torch.cat([q_mask, o_mask], dim=1)   # real tokens and objects: the rows gathering clues
        obj = None
        if self.uses_objects and objects.shape[1] > 0:
            obj = self.drop(self.text_proj(objects)) + self.object_kind(o_kind)
            if self.keywords is not None:
                obj = self.keywords.tag_slots(obj)
            if cfg.text_objects == "keywords":
                o_mask = o_mask & (o_kind == KEYWORD)
            elif cfg.text_objects == "types":
                o_mask = o_mask & (o_kind == TYPE_WORD)

        # 5. aggregators [F]: the question queries low then high level of each modality, the hint is written
        #    back into its tokens, then it fuses the text objects: f̂_q = LN(f_q + W[t_v ; t_a])
        br_v = self.aggregator(f_q, low_v, hat_v, obj, o_mask, clip_index, query_rows)
        br_a = (self.aggregator if cfg.shared_aggregator else self.aggregator_audio)(f_q, x_a, hat_a, obj, o_mask, clip_index, query_rows)
        hat_q = self.combine_ln(f_q + self.drop(self.combine(torch.cat([br_v.tokens, br_a.tokens], dim=-1))))
        pooled = masked_token_mean(hat_q, q_mask)                                 # [B,d]

        # 6. (extensions) what the keywords' own clues say joins the pooled question
        readings = None
        if self.keywords is not None:
            pooled, readings = self.keywords.read(pooled, br_v, br_a, hat_v, low_v, x_a, clip_index, o_mask, o_kind)

        # 7. semantic approximation [F]: teachers z_v, z_a from question-attended f̂_v, f̂_a; student z_q from f̂_q
        q_pool = masked_token_mean(f_q, q_mask)
        att_v = self.av_pool(q_pool[:, None], hat_v, context_index=clip_index)[0][:, 0]   # [B,d]
        att_a = self.av_pool(q_pool[:, None], hat_a, context_index=clip_index)[0][:, 0]
        z_q, z_v, z_a = self.approximation(att_v, att_a, pooled)

        # 8. prediction header [F]: the answer from the clue-attached question alone (no AV feature enters it);
        #    the teacher head fuses at decision level and is only compared with it
        header_in = torch.cat([pooled, att_v, att_a], dim=-1) if cfg.decision_fusion else pooled
        student_logits = logits = self.header(header_in)
        teacher_logits = self.teacher_head(q_pool, z_v, z_a)
        expert_logits = None
        if readings is not None:
            logits, expert_logits = self.keywords.answer(student_logits, q_pool, readings, o_mask, o_kind,
                                                         question_type)

        out = MCDOutput(logits, teacher_logits, z_q, z_v, z_a, expert_logits=expert_logits,
                        clues=self._clues(B, assoc_map if clip_index is None else assoc_map[clip_index],
                                          br_v, br_a, q_mask, o_mask, objects.shape[1]))
        if readings is not None:
            out.referents = readings.mean_referents()
            out.object_clues = self._object_clues(br_v, br_a, readings, B)

        # 9. losses: CE(student) + CE(teacher) + λ_con·InfoNCE(m_v, m_a) + λ_kd·KD(z_q ← z_v, z_a) [F]
        if labels is not None:
            if video_index is None and av_shared:
                video_index = torch.zeros(B, dtype=torch.long, device=question.device)
            self._add_losses(out, student_logits, labels, video_index, hat_v, hat_a, B,
                             per_clip=clip_index is not None)
            if grounding is not None and readings is not None and readings.raw:
                try:
                    out.losses["grounding"] = self.keywords.loss(readings, grounding, o_mask)
                except ValueError as exc:
                    raise MCDInputError(str(exc)) from None
                out.loss = out.loss + cfg.extensions.grounding.loss_weight * out.losses["grounding"]
        return out

    @staticmethod
    def _check_question_type(question_type, B: int) -> None:
        if (not isinstance(question_type, torch.Tensor) or tuple(question_type.shape) != (B,)
                or question_type.is_floating_point()):
            raise MCDInputError(f"question_type must be an integer tensor of shape ({B},), "
                                f"got {getattr(question_type, 'shape', type(question_type).__name__)}")
        if bool(((question_type < -1) | (question_type >= len(QUESTION_TYPES))).any()):
            raise MCDInputError(f"question_type values must be -1 (unknown) or 0..{len(QUESTION_TYPES) - 1}")

    def _add_losses(self, out: MCDOutput, student_logits: torch.Tensor, labels: torch.Tensor,
                    video_index: torch.Tensor | None, hat_v: torch.Tensor, hat_a: torch.Tensor, B: int,
                    per_clip: bool = False) -> None:
        """The training losses (docs/model.md) on the student's own logits (plus the grounded expert's CE)."""
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

    def _object_clues(self, br_v: BranchOutput, br_a: BranchOutput, readings, B: int) -> dict[str, torch.Tensor]:
        """Each text object's own attention and its referent query's (MCDOutput.object_clues): the maps the demo
        shows for the keyword the model reads as the referent, already computed by this forward."""
        T, P = self.config.T, self.config.P
        out = {}
        for name, w in (("visual_low", br_v.object_low), ("audio_low", br_a.object_low),
                        ("visual_high", br_v.object_high), ("audio_high", br_a.object_high)):
            if w is not None:
                out[name] = w.expand(B, *w.shape[1:])
        if "visual_low" in out:
            out["visual_low"] = out["visual_low"].reshape(B, -1, T, P)
        if readings.referent_weights is not None:
            w_v, w_a = readings.referent_weights
            out["referent_visual"] = w_v.reshape(B, -1, T, P) if w_v.shape[-1] == T * P else w_v
            out["referent_audio"] = w_a
        return out

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

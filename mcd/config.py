"""Configuration dataclasses, with a strict JSON round trip.

Configs travel inside checkpoints (`config.json`), so reading one must be strict: an unknown key means the file
was written by other code (or mistyped by hand) and silently ignoring it would build a different model than the
one that was trained. Missing keys take their defaults, so older files stay readable when a field is added.

Only configs live here. (The training config is added next to `MCDConfig` by the training issue.)
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from mcd.questions import QUESTION_TYPES
from mcd.vocab import NUM_ANSWERS


class ConfigError(ValueError):
    """A config value or a config file that cannot be used; the message names the field."""


HIERARCHY_CHOICES = ("both", "low", "high")
TEXT_OBJECT_CHOICES = ("both", "keywords", "types", "none")
KD_MODE_CHOICES = ("kl", "mutual", "cos", "nce")


def _extension(default: Any, what: str) -> Any:
    """A config field that extends DESIGN §3; `what` (the field's metadata "extension") is the model card's words."""
    return dataclasses.field(default=default, metadata={"extension": what})


@dataclass
class MCDConfig:
    """Everything that determines the MCD module's shape and behaviour (DESIGN §3).

    Feature dims default to the `synth` encoders (visual 128, audio 128) and MiniLM text (384). Every
    reconstruction choice that DESIGN §3 lists as an alternative is a field here so ablations are configs,
    not code edits.
    """

    # input feature dims (from the frozen basic encoders)
    visual_dim: int = 128
    audio_dim: int = 128
    text_dim: int = 384
    # widths and sizes
    d: int = 256                    # hidden width
    d_z: int = 128                  # shared latent space of the semantic approximation
    T: int = 10                     # segments per clip
    P: int = 49                     # visual patches per frame (7x7, row-major)
    n_heads: int = 4
    n_blocks: int = 2               # association blocks (0 = no association)
    ffn_mult: int = 4
    dropout: float = 0.1
    num_answers: int = NUM_ANSWERS
    # loss
    contrastive_temperature: float = 0.07   # also used by kd_mode="nce"
    kd_temperature: float = 4.0
    lambda_con: float = 0.5
    lambda_kd: float = 1.0
    lambda_logit_kd: float = 1.0            # only used when teacher_logit_kd
    # ablation flags (defaults = the full MCD)
    association_residual: bool = True       # outer residual of the association stack ("enhanced")
    contrastive: bool = True                # InfoNCE between mean-pooled associated audio / visual
    hierarchy: str = "both"                 # aggregator levels: both | low | high
    hints: bool = True                      # write the AV clue back into the question tokens
    text_objects: str = "both"              # fuse text objects: both | keywords | types | none
    shared_aggregator: bool = True          # one aggregator for both branches (False: one per branch)
    kd_mode: str = "kl"                     # kl | mutual | cos | nce
    decision_fusion: bool = False           # keep decision-level AV fusion in the student's header
    teacher_logit_kd: bool = False          # extra KD from teacher logits to student logits
    # reconstruction extensions (not in the figure; off = DESIGN §3 exactly; README "where we differ"). The text
    # of each is what the model card says a recipe switches on (mcd.model_card.extensions_note).
    clue_gate: bool = _extension(False, "each query gates the clue it gathered, FiLM-style")
    question_blocks: int = _extension(0, "self-attention over the clue-attached question before pooling")
    hops: int = _extension(1, "the aggregators run again with the clue-attached question")
    object_clues: bool = _extension(False, "keywords gather their own clues and carry slot order")
    object_readout: bool = _extension(False, "the pooled question adds the keywords' clues, one map per slot")
    sounding_patches: bool = _extension(
        False, "each patch token carries how its content matches the sound of its segment")
    object_grounding: bool = _extension(
        False, "in training, each keyword's clue also predicts what the keyword points at in the scene")
    grounding_classes: int = 0              # instrument classes of that head (set by training from the data)
    lambda_grounding: float = 1.0
    referent_query: bool = _extension(
        False, "the instrument each keyword is read to name looks up the patches and the audio again")
    grounded_answer: bool = _extension(
        False, "the pooled question adds what the grounding head reads for each keyword, one map per slot")
    grounded_expert: bool = _extension(
        False, "a second answerer reads only the question and what the grounding head reads for each keyword; "
               "its log-probabilities join the answer's")
    expert_comparator: bool = _extension(
        False, "the grounded expert also weighs each keyword's loudness, rhythm, onset and length read-outs, as "
               "the question asks, into yes against no")
    expert_weight: float = 2.0              # weight of the grounded expert's log-probabilities in the answer
    # per question type ("Audio/Counting", ...) weights chosen on val after training (`mcd calibrate`); a type
    # that is not listed, or a question whose type is not known, uses `expert_weight`
    expert_type_weights: dict = dataclasses.field(default_factory=dict)
    # baselines: a removed modality is fed as zeros (same architecture, same harness)
    use_visual: bool = True
    use_audio: bool = True
    question_only: bool = False             # both modalities removed and no contrastive loss

    _CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "hierarchy": HIERARCHY_CHOICES, "text_objects": TEXT_OBJECT_CHOICES, "kd_mode": KD_MODE_CHOICES,
    }

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field."""
        for f in fields(self):
            value = getattr(self, f.name)
            _check_type(f.name, value, f.type)
            if f.type in ("float", float) and isinstance(value, int):
                setattr(self, f.name, float(value))  # JSON writes 0.0 as 0; keep the field a float
        for name in ("visual_dim", "audio_dim", "text_dim", "d", "d_z", "T", "P", "n_heads", "ffn_mult",
                     "num_answers", "hops"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_blocks", "question_blocks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.d % self.n_heads:
            raise ConfigError(f"d ({self.d}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("contrastive_temperature", "kd_temperature"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("lambda_con", "lambda_kd", "lambda_logit_kd", "lambda_grounding", "expert_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.object_readout and not self.object_clues:
            raise ConfigError("object_readout needs object_clues (the keywords must gather clues to be read)")
        if self.object_grounding and not self.object_clues:
            raise ConfigError("object_grounding needs object_clues (the head reads the clue each keyword gathered)")
        if self.referent_query and not self.object_grounding:
            raise ConfigError("referent_query needs object_grounding (the query is the head's instrument read-out)")
        if self.grounded_answer and not self.object_grounding:
            raise ConfigError("grounded_answer needs object_grounding (it reads the grounding head's output)")
        if self.grounded_expert and not self.object_grounding:
            raise ConfigError("grounded_expert needs object_grounding (it reads the grounding head's output)")
        if not isinstance(self.expert_type_weights, dict):
            raise ConfigError(f"expert_type_weights must be an object {{type: weight}}, "
                              f"got {type(self.expert_type_weights).__name__}")
        for kind, weight in self.expert_type_weights.items():
            if kind not in QUESTION_TYPES:
                raise ConfigError(f"expert_type_weights: unknown question type {kind!r} "
                                  f"(known: {', '.join(QUESTION_TYPES)})")
            _check_type(f"expert_type_weights[{kind!r}]", weight, float)
            if weight < 0:
                raise ConfigError(f"expert_type_weights[{kind!r}] must be >= 0, got {weight}")
        self.expert_type_weights = {k: float(v) for k, v in self.expert_type_weights.items()}
        if self.expert_comparator and not self.grounded_expert:
            raise ConfigError("expert_comparator needs grounded_expert (it is part of the expert)")
        if self.expert_type_weights and not self.grounded_expert:
            raise ConfigError("expert_type_weights needs grounded_expert (they weight the expert's answer)")
        if self.object_grounding and self.grounding_classes < 1:
            raise ConfigError(f"object_grounding needs grounding_classes >= 1, got {self.grounding_classes}")
        if self.sounding_patches and self.hierarchy == "high":
            raise ConfigError("sounding_patches needs the low level (hierarchy 'both' or 'low'): "
                              "it adds to the patch tokens")
        for name, choices in self._CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}")

    # -- effective switches (what the model actually does) ---------------------------------------------
    @property
    def visual_enabled(self) -> bool:
        return self.use_visual and not self.question_only

    @property
    def audio_enabled(self) -> bool:
        return self.use_audio and not self.question_only

    @property
    def contrastive_enabled(self) -> bool:
        return self.contrastive and not self.question_only and self.lambda_con > 0

    # -- JSON round trip -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MCDConfig":
        """Build from a dict; unknown keys are an error (they would be silently dropped otherwise)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(unknown)} "
                              f"(known keys: {', '.join(sorted(known))})")
        return cls(**data)

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load_json(cls, path: str | Path) -> "MCDConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
        return cls.from_dict(data)


def _check_type(name: str, value: Any, annotation: Any) -> None:
    """Strict scalar type check: JSON `true` must not become d=1, and `"256"` must not be accepted as a width."""
    expected = {"int": int, "float": float, "bool": bool, "str": str}.get(
        annotation if isinstance(annotation, str) else getattr(annotation, "__name__", ""))
    if expected is None:
        return
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f"{name} must be {expected.__name__}, got {value!r} ({type(value).__name__})")

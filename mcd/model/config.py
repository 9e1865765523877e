"""Configuration dataclasses, with a strict JSON round trip.

Configs travel inside checkpoints (`config.json`), so reading one must be strict: an unknown key means the file
was written by other code (or mistyped by hand) and silently ignoring it would build a different model than the
one that was trained. Missing keys take their defaults, so older files stay readable when a field is added.

`MCDConfig` holds the paper's model and its ablation switches; `ExtensionConfig` (nested as `extensions`) holds
ours, so a reader sees at a glance what is the paper and what is not.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from mcd.task.questions import QUESTION_TYPES
from mcd.task.vocab import NUM_ANSWERS


class ConfigError(ValueError):
    """A config value or a config file that cannot be used; the message names the field."""


HIERARCHY_CHOICES = ("both", "low", "high")
TEXT_OBJECT_CHOICES = ("both", "keywords", "types", "none")
KD_MODE_CHOICES = ("kl", "mutual", "cos", "nce")


@dataclass
class MCDConfig:
    """Everything that determines the MCD module's shape and behaviour (docs/model.md).

    Feature dims default to the `synth` encoders (visual 128, audio 128) and MiniLM text (384). Every
    reconstruction choice that docs/model.md lists as an alternative is a field here so ablations are configs,
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
    frame_features: bool = True             # segment tokens carry the frame's mean feature (False: the picture
                                            # reaches the answer only through attention over the patch tokens)
    # our extensions (not in the paper's figure); all off = the paper's MCD (docs/model.md)
    extensions: ExtensionConfig = dataclasses.field(default_factory=lambda: ExtensionConfig())
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
                     "num_answers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_blocks < 0:
            raise ConfigError(f"n_blocks must be >= 0, got {self.n_blocks}")
        if self.d % self.n_heads:
            raise ConfigError(f"d ({self.d}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("contrastive_temperature", "kd_temperature"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("lambda_con", "lambda_kd", "lambda_logit_kd"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if isinstance(self.extensions, dict):
            self.extensions = ExtensionConfig.from_dict(self.extensions)
        if not isinstance(self.extensions, ExtensionConfig):
            raise ConfigError(f"extensions must be an object, got {type(self.extensions).__name__}")
        self.extensions.validate()
        if not self.frame_features and self.hierarchy == "high":
            raise ConfigError("frame_features=false needs the patch tokens (hierarchy 'both' or 'low'): "
                              "with hierarchy 'high' no visual feature would reach the answer")
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
    @property
    def ext(self) -> "ExtensionConfig":
        """Short name for `extensions` (the model reads it often)."""
        return self.extensions

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MCDConfig":
        """Build from a dict; unknown keys are an error (they would be silently dropped otherwise).

        Configs written before the extensions had their own section (checkpoint format 1, older recipes) hold
        the extension switches at the top level; `migrate_flat_extensions` moves them into `extensions`."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        data = migrate_flat_extensions(data)
        _refuse_unknown(cls, data)
        data = dict(data)
        if "extensions" in data:
            data["extensions"] = ExtensionConfig.from_dict(data["extensions"])
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


REFERENT_AUDIO = ("attention", "detector")


@dataclass
class GroundingConfig:
    """Keyword grounding and what is built on it (mcd.model.keywords). It needs, in training, what every keyword
    points at in the scene: supervision that only the synthetic generator's scene graphs give (MUSIC-AVQA has
    none), so a MUSIC-AVQA recipe leaves `enabled` off."""

    enabled: bool = False                  # a head on each keyword's clue predicts its referent (training loss)
    classes: int = 0                       # instrument classes of the head (set by training from the data)
    loss_weight: float = 1.0
    referent_query: bool = False           # the instrument a keyword names looks up patches and audio again
    # how that query reads the audio: "attention" (a softmax over the seconds) or "detector" (an independent
    # sigmoid per second, trained on the seconds the referent sounds in; what it gathers is their sum over T)
    referent_audio: str = "attention"
    grounded_answer: bool = False          # the pooled question adds the head's read-outs, one map per slot
    expert: bool = False                   # a second answerer on the question + read-outs; log-probs join
    comparator: bool = False               # the expert weighs loudness/rhythm/onset/length read-outs into yes/no
    expert_weight: float = 2.0             # weight of the expert's log-probabilities in the answer
    # per question type ("Audio/Counting", ...) weights chosen on val by `mcd calibrate`; unlisted types and
    # questions of unknown type use `expert_weight`
    expert_type_weights: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        for f in fields(self):
            _check_type(f"grounding.{f.name}", getattr(self, f.name), f.type)
        for name in ("loss_weight", "expert_weight"):
            setattr(self, name, float(getattr(self, name)))
            if getattr(self, name) < 0:
                raise ConfigError(f"grounding.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("referent_query", "grounded_answer", "expert"):
            if getattr(self, name) and not self.enabled:
                raise ConfigError(f"grounding.{name} needs grounding.enabled (it reads the grounding head's output)")
        if self.referent_audio not in REFERENT_AUDIO:
            raise ConfigError(f"grounding.referent_audio must be one of {', '.join(REFERENT_AUDIO)}, "
                              f"got {self.referent_audio!r}")
        if self.referent_audio != "attention" and not self.referent_query:
            raise ConfigError("grounding.referent_audio needs grounding.referent_query (it is how that query listens)")
        if self.comparator and not self.expert:
            raise ConfigError("grounding.comparator needs grounding.expert (it is part of the expert)")
        if self.enabled and self.classes < 1:
            raise ConfigError(f"grounding.enabled needs grounding.classes >= 1, got {self.classes}")
        if not isinstance(self.expert_type_weights, dict):
            raise ConfigError(f"grounding.expert_type_weights must be an object {{type: weight}}, "
                              f"got {type(self.expert_type_weights).__name__}")
        for kind, weight in self.expert_type_weights.items():
            if kind not in QUESTION_TYPES:
                raise ConfigError(f"grounding.expert_type_weights: unknown question type {kind!r} "
                                  f"(known: {', '.join(QUESTION_TYPES)})")
            _check_type(f"grounding.expert_type_weights[{kind!r}]", weight, float)
            if weight < 0:
                raise ConfigError(f"grounding.expert_type_weights[{kind!r}] must be >= 0, got {weight}")
        self.expert_type_weights = {k: float(v) for k, v in self.expert_type_weights.items()}
        if self.expert_type_weights and not self.expert:
            raise ConfigError("grounding.expert_type_weights needs grounding.expert (they weight its answer)")

    @classmethod
    def from_dict(cls, data: Any) -> "GroundingConfig":
        return data if isinstance(data, cls) else cls(**_section(cls, data, "grounding"))


@dataclass
class ExtensionConfig:
    """Our extensions to the paper's model (mcd.model.keywords; all off = the paper's MCD). `clue_gate`,
    `object_clues` and `object_readout` need no labels beyond the answers; everything under `grounding` needs
    scene graphs (synthetic data only)."""

    clue_gate: bool = False        # each query gates the clue it gathered, FiLM-style (in the aggregator)
    object_clues: bool = False     # keywords gather their own clues and carry slot order
    object_readout: bool = False   # the pooled question adds the keywords' clues, one map per slot
    grounding: GroundingConfig = dataclasses.field(default_factory=GroundingConfig)

    def validate(self) -> None:
        for f in fields(self):
            if f.name != "grounding":
                _check_type(f.name, getattr(self, f.name), f.type)
        if isinstance(self.grounding, dict):
            self.grounding = GroundingConfig.from_dict(self.grounding)
        if not isinstance(self.grounding, GroundingConfig):
            raise ConfigError(f"extensions.grounding must be an object, got {type(self.grounding).__name__}")
        self.grounding.validate()
        if self.object_readout and not self.object_clues:
            raise ConfigError("object_readout needs object_clues (the keywords must gather clues to be read)")
        if self.grounding.enabled and not self.object_clues:
            raise ConfigError("grounding.enabled needs object_clues (the head reads the clue each keyword gathered)")

    @property
    def any(self) -> bool:
        """True when any extension is on (False = the paper's model)."""
        return self != ExtensionConfig()

    @property
    def needs_scene_graphs(self) -> bool:
        return self.grounding.enabled

    @classmethod
    def from_dict(cls, data: Any) -> "ExtensionConfig":
        if isinstance(data, cls):
            return data
        data = _section(cls, data, "extensions")
        if "grounding" in data:
            data["grounding"] = GroundingConfig.from_dict(data["grounding"])
        return cls(**data)


#: flat key of format-1 configs -> (section path under `extensions`, key); removed switches must be at their default
_FLAT_EXTENSION_KEYS = {
    "clue_gate": ((), "clue_gate"), "object_clues": ((), "object_clues"), "object_readout": ((), "object_readout"),
    "object_grounding": (("grounding",), "enabled"), "grounding_classes": (("grounding",), "classes"),
    "lambda_grounding": (("grounding",), "loss_weight"), "referent_query": (("grounding",), "referent_query"),
    "grounded_answer": (("grounding",), "grounded_answer"), "grounded_expert": (("grounding",), "expert"),
    "expert_comparator": (("grounding",), "comparator"), "expert_weight": (("grounding",), "expert_weight"),
    "expert_type_weights": (("grounding",), "expert_type_weights"),
}
_REMOVED_KEYS = {"hops": 1, "question_blocks": 0, "sounding_patches": False}


def migrate_flat_extensions(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 model config (extension switches at the top level) in the nested form; others unchanged.

    Switches that were removed because no recipe used them (`hops`, `question_blocks`, `sounding_patches`) are
    accepted only at the value that meant "off"."""
    flat = [k for k in data if k in _FLAT_EXTENSION_KEYS or k in _REMOVED_KEYS]
    if not flat:
        return data
    out = {k: v for k, v in data.items() if k not in flat}
    ext = json.loads(json.dumps(out.get("extensions", {})))
    for key in flat:
        if key in _REMOVED_KEYS:
            if data[key] != _REMOVED_KEYS[key]:
                raise ConfigError(f"{key}={data[key]!r} is no longer supported (it was removed; only "
                                  f"{_REMOVED_KEYS[key]!r}, off, can be read)")
            continue
        path, name = _FLAT_EXTENSION_KEYS[key]
        section = ext
        for part in path:
            section = section.setdefault(part, {})
        section[name] = data[key]
    out["extensions"] = ext
    return out


def grounding_section(model: dict[str, Any]) -> dict[str, Any]:
    """The `extensions.grounding` part of a (nested or format-1 flat) model config dict, {} when absent."""
    return migrate_flat_extensions(model).get("extensions", {}).get("grounding", {})


def _section(cls: type, data: Any, where: str) -> dict[str, Any]:
    """A copy of a nested config section's dict, checked to be an object with known keys only."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} expects a JSON object, got {type(data).__name__}")
    _refuse_unknown(cls, data)
    return dict(data)


def _refuse_unknown(cls: type, data: dict[str, Any]) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(unknown)} "
                          f"(known keys: {', '.join(sorted(known))})")


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

"""Training recipes: one JSON file says which data, which encoders, which model and how to train it.

`mcd/model/config.py` holds the model's own config (what a checkpoint needs to rebuild the network); a recipe adds
what only training needs (paths, optimisation, seeds). Paths in a recipe are relative to the working directory
(the repository root in the documented commands). `--set section.key=value` overrides any field, which is how
`bench/ablations.py` derives its variants from one recipe.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mcd.model.config import ConfigError, migrate_flat_extensions


class RecipeError(ValueError):
    """A recipe file that is missing, not JSON, or has fields we do not know."""


@dataclass
class DataSection:
    root: str = "data/synth"            # benchmark folder: avqa-<split>.json (+ videos/)
    features: str = "cache/synth"       # FeatureCache folder written by `mcd extract`
    format: str = "cache"               # "cache" (mcd extract) or "released" (MUSIC-AVQA .npy features)
    audio_dir: str | None = None        # released features only
    visual_dir: str | None = None
    spatial_dir: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"


@dataclass
class SynthSection:
    """How `scripts/reproduce.sh` generates the benchmark for this recipe (ignored by `mcd train`)."""
    videos: int = 3000
    seed: int = 0
    splits: str = "train=0.8,val=0.1,test=0.1"
    questions_per_video: int = 8
    test_videos: int = 300
    test_seed: int = 12345


@dataclass
class TrainSection:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 0
    head: str = "student"               # which head decides at evaluation ("teacher" = decision-level baseline)
    patience: int | None = None         # stop after this many epochs without a better val accuracy
    mirror: bool = False                # see each training clip left-right mirrored in about half the epochs
    ema: float | None = None            # evaluate, keep and publish a moving average of the weights (decay)
    expert_refit_epochs: int = 0        # `mcd calibrate` refits the grounded expert for this many epochs first
    processes: int = 1                  # `mcd train` runs this many data-parallel processes (torchrun: gloo on
                                        # the CPU, nccl with one GPU each on CUDA); they share out the clips of
                                        # each batch, so the steps stay the same
    device: str = "auto"                # auto (CUDA when present), cpu, cuda, cuda:N; `mcd train --device` wins
    amp: str = "off"                    # "bf16": the forward under bf16 autocast on CUDA cards that support it
    init: str | None = None             # start from this checkpoint's weights (a fine-tune), else from scratch
    faithfulness: dict | None = None    # scene-graph deletion terms (mcd/training/scene_deletion.py), e.g.
                                        # {"context": 1, "oracle": 1}; needs model.extensions.grounding


@dataclass
class Recipe:
    name: str = "unnamed"
    description: str = ""
    data: DataSection = field(default_factory=DataSection)
    synth: SynthSection = field(default_factory=SynthSection)
    encoders: str = "runs/encoders"     # `mcd pretrain-encoders` folder (or a checkpoint) with the frozen encoders
    pretrain: dict = field(default_factory=dict)  # `mcd pretrain-encoders` options for reproduce (e.g. visual_steps)
    model: dict = field(default_factory=dict)   # MCDConfig overrides (feature dims come from the encoders), nested
    train: TrainSection = field(default_factory=TrainSection)
    out: str = "runs/unnamed"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        d = copy.deepcopy(d)
        sections = {"data": DataSection, "synth": SynthSection, "train": TrainSection}
        _check_keys(d, cls, "recipe")
        kwargs = {}
        for k, v in d.items():
            if k in sections:
                if not isinstance(v, dict):
                    raise RecipeError(f"recipe section {k!r} must be an object, got {type(v).__name__}")
                _check_keys(v, sections[k], f"recipe section {k!r}")
                kwargs[k] = sections[k](**v)
            elif k == "model":
                if not isinstance(v, dict):
                    raise RecipeError(f"recipe section 'model' must be an object, got {type(v).__name__}")
                try:
                    kwargs[k] = migrate_flat_extensions(v)   # older recipes: extension switches at the top
                except ConfigError as exc:
                    raise RecipeError(f"recipe section 'model': {exc}") from None
            else:
                kwargs[k] = v
        return cls(**kwargs)


def _check_keys(d: dict, cls, where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise RecipeError(f"{where} has unknown fields {unknown}; known: {sorted(known)}")


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"recipe {path} does not exist (see configs/ for the shipped recipes)")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RecipeError(f"recipe {path} is not valid JSON: {exc}") from exc
    for item in overrides or []:
        apply_override(d, item)
    return Recipe.from_dict(d)


def apply_override(d: dict, item: str) -> None:
    """`section.key=value` (value parsed as JSON when it parses, else kept as a string)."""
    if "=" not in item:
        raise RecipeError(f"--set wants section.key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    parts = key.split(".")
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise RecipeError(f"--set {key}: {p!r} is not a section")
    node[parts[-1]] = value

"""Checkpoint folders: `config.json` + `model.safetensors` (+ optional `metrics.json`).

A checkpoint is what the demo, the evaluator and other people's machines load, so loading is strict and
never unpickles: every mismatch (format, version, answer order, tensor names and shapes, damaged file) is a
CheckpointError whose message names the problem. Writing goes to a temporary sibling folder that is renamed
into place, so a crash mid-write never leaves a half-written checkpoint under the real name.

config.json:
    {"format": "mcd-avqa", "format_version": 2, "model": <MCDConfig dict>, "answers": [the 42 answers],
     "model_sha256": <hex digest of model.safetensors>, ...free-form sections from the caller
     ("encoders", "provenance", "T", ...)}
model.safetensors: the model state under `model.*`; extra tensors (e.g. encoder weights `encoders.visual.*`)
    under their own names.

Format 1 (before the extensions had their own module and config section) is still read: its flat extension
switches move into `extensions` (MCDConfig.from_dict) and its extension tensors gain the `keywords.` prefix.
This is the one way to persist a model: `save_checkpoint(dir, model)` and `load_checkpoint(dir).model`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mcd.model.config import ConfigError, MCDConfig
from mcd.model.mcd import MCD
from mcd.task.vocab import ANSWERS

FORMAT = "mcd-avqa"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: top-level module names of format 1 that now live in MCD.keywords
FORMAT1_KEYWORD_PARTS = ("object_slot", "object_readout", "grounding", "referent_query", "referent_readout", "expert")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
MODEL_PREFIX = "model."
RESERVED_KEYS = ("format", "format_version", "model", "answers", "model_sha256")


class CheckpointError(Exception):
    """A checkpoint folder that cannot be written or loaded; the message says what is wrong and where."""


@dataclass
class LoadedCheckpoint:
    model: MCD                                   # in eval mode, on map_location
    config: dict[str, Any]                       # the whole config.json
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None        # metrics.json, when present


# ---------------------------------------------------------------------------------------------------------
def save_checkpoint(directory: str | Path, model: MCD, extra_config: dict[str, Any] | None = None,
                    extra_tensors: dict[str, torch.Tensor] | None = None,
                    metrics: dict[str, Any] | None = None) -> Path:
    """Write `model` (and the caller's extra config sections / tensors / metrics) as a checkpoint folder.

    An existing folder is replaced only if it is empty or already an MCD checkpoint, so a mistyped path
    cannot wipe unrelated files. Returns the folder path.
    """
    directory = Path(directory)
    extra_config = dict(extra_config or {})
    clash = sorted(set(extra_config) & set(RESERVED_KEYS))
    if clash:
        raise CheckpointError(f"extra_config may not set reserved key(s) {clash}")
    tensors = {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    for name, t in (extra_tensors or {}).items():
        if name.startswith(MODEL_PREFIX):
            raise CheckpointError(f"extra tensor name {name!r} uses the reserved prefix {MODEL_PREFIX!r}")
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"extra tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
        tensors[name] = t
    if directory.exists():
        _check_replaceable(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        _save_weights(tensors, tmp / WEIGHTS_FILE)
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.config.to_dict(),
                  "answers": list(ANSWERS), "model_sha256": _sha256(tmp / WEIGHTS_FILE), **extra_config}
        _write_json(tmp / CONFIG_FILE, config)
        if metrics is not None:
            _write_json(tmp / METRICS_FILE, metrics)
        _swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def update_checkpoint(directory: str | Path, model_config: MCDConfig, metrics: dict[str, Any] | None = None,
                      model: MCD | None = None) -> Path:
    """Rewrite a checkpoint's model config (and metrics.json); without `model` the weights file keeps its bytes.

    For what is chosen after training (`mcd calibrate`'s expert_type_weights, and with `model` its refit expert,
    whose weights replace the `model.*` tensors while the extra tensors stay). The config must build the modules
    of the weights, which loading the result checks. Every other file of the folder (a model card, the training
    log) is kept. The folder is copied, edited and swapped into place like save_checkpoint's, so a failure leaves
    the old checkpoint whole.
    """
    directory = Path(directory)
    config = _read_config(directory)
    config["model"] = model_config.to_dict()

    def edit(tmp: Path) -> None:
        if model is not None:
            tensors = {k: v for k, v in load_file(str(directory / WEIGHTS_FILE)).items()
                       if not k.startswith(MODEL_PREFIX)}
            tensors.update({MODEL_PREFIX + k: v for k, v in model.state_dict().items()})
            _save_weights(tensors, tmp / WEIGHTS_FILE)
            config["model_sha256"] = _sha256(tmp / WEIGHTS_FILE)
            config["format_version"] = FORMAT_VERSION      # the tensors now carry today's names
        _write_json(tmp / CONFIG_FILE, config)
        if metrics is not None:
            _write_json(tmp / METRICS_FILE, metrics)

    return _rewrite_in_place(directory, edit)


def update_config_section(directory: str | Path, key: str, value: Any,
                          tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Set one free-form section of a checkpoint's config.json (e.g. `ood`, written by `mcd calibrate-ood`) and,
    with `tensors`, replace every tensor named `<key>.*` in model.safetensors by them (arrays too large for JSON
    travel as tensors; `None` leaves the weights file alone). The model's tensors, every other extra tensor and
    every other config key keep their values; `model_sha256` follows the new weights file. The model's own
    entries cannot be set this way. Copied, edited and swapped into place like `update_checkpoint`, so a failure
    leaves the old checkpoint whole."""
    if key in RESERVED_KEYS:
        raise CheckpointError(f"config section {key!r} belongs to the model; it is not set by update_config_section")
    prefix = f"{key}."
    for name, t in (tensors or {}).items():
        if not name.startswith(prefix):
            raise CheckpointError(f"tensor {name!r} of section {key!r} must be named {prefix}*")
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
    directory = Path(directory)
    config = _read_config(directory)
    config[key] = value

    def edit(tmp: Path) -> None:
        if tensors is not None:
            weights = {k: v for k, v in load_file(str(tmp / WEIGHTS_FILE), device="cpu").items()
                       if not k.startswith(prefix)}
            _save_weights({**weights, **tensors}, tmp / WEIGHTS_FILE)
            config["model_sha256"] = _sha256(tmp / WEIGHTS_FILE)
        _write_json(tmp / CONFIG_FILE, config)

    return _rewrite_in_place(directory, edit)


def _rewrite_in_place(directory: Path, edit) -> Path:
    """Copy the checkpoint folder, let `edit(copy)` change files in the copy, check that the copy loads, then swap
    it into place: a failure at any step leaves the old checkpoint whole."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        shutil.copytree(directory, tmp, dirs_exist_ok=True)
        edit(tmp)
        load_checkpoint(tmp)
        _swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _check_replaceable(directory: Path) -> None:
    if not directory.is_dir():
        raise CheckpointError(f"cannot write a checkpoint to {directory}: it exists and is not a folder")
    if not any(directory.iterdir()):
        return
    try:
        fmt = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != FORMAT:
        raise CheckpointError(f"refusing to replace {directory}: it is not empty and not an MCD checkpoint folder")


def _swap_into_place(tmp: Path, directory: Path) -> None:
    """Rename the finished temp folder to `directory`; an old checkpoint is moved aside first, then deleted."""
    old = None
    if directory.exists():
        old = directory.parent / f".{directory.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.rename(directory, old)
    try:
        os.rename(tmp, directory)
    except BaseException:
        if old is not None:
            os.rename(old, directory)        # put the previous checkpoint back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _save_weights(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write the weights file. Private CPU copies (safetensors refuses shared or non-contiguous storage). One
    metadata key: safetensors writes metadata in hash order, so with two keys two saves of the same weights came
    out with the keys swapped and the files differed in bytes."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={"format": f"{FORMAT}/{FORMAT_VERSION}"})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------
def load_checkpoint(directory: str | Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Read a checkpoint folder written by save_checkpoint; every problem is a CheckpointError naming it."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {directory}")
    config = _read_config(directory)
    try:
        model_config = MCDConfig.from_dict(config["model"])
    except ConfigError as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: bad model config: {e}") from None
    except TypeError as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: bad model config: {e}") from None

    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS_FILE}")
    expected_hash = config.get("model_sha256")
    if expected_hash is not None and _sha256(weights) != expected_hash:
        raise CheckpointError(f"{weights} is corrupted: its SHA-256 does not match the one in {CONFIG_FILE}")
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights} is corrupted or not a safetensors file: {e}") from None

    model = MCD(model_config)
    state = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    if config["format_version"] == 1:
        state = migrate_format1_state(state)
    extra = {k: v for k, v in tensors.items() if not k.startswith(MODEL_PREFIX)}
    _check_state(model, state, weights)
    model.load_state_dict(state, strict=True)
    model.to(map_location).eval()
    extra = {k: v.to(map_location) for k, v in extra.items()}
    metrics = None
    if (directory / METRICS_FILE).is_file():
        metrics = _read_json(directory / METRICS_FILE)
    return LoadedCheckpoint(model, config, extra, metrics)


def migrate_format1_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Format-1 tensor names -> today's: the extension parts moved from the top of MCD into `MCD.keywords`."""
    return {("keywords." + k if k.split(".")[0] in FORMAT1_KEYWORD_PARTS else k): v for k, v in state.items()}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {CONFIG_FILE}")
    config = _read_json(path)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{path} is not an MCD-AVQA checkpoint (format {got!r}, expected {FORMAT!r})")
    version = config.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: unsupported format_version {version!r} "
                              f"(this code reads format_version {', '.join(map(str, READABLE_VERSIONS))})")
    answers = config.get("answers")
    if answers != list(ANSWERS):
        raise CheckpointError(f"{path}: {_answer_difference(answers)}; the model's classifier rows would "
                              f"map to the wrong answers")
    if not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path} has no 'model' config section")
    return config


def _answer_difference(answers: Any) -> str:
    if not isinstance(answers, list):
        return f"'answers' must be the list of the {len(ANSWERS)} canonical answers, got {type(answers).__name__}"
    if len(answers) != len(ANSWERS):
        return f"answer list has {len(answers)} entries, expected the {len(ANSWERS)} canonical answers"
    i = next(i for i, (a, b) in enumerate(zip(answers, ANSWERS)) if a != b)
    return f"answer list differs from the canonical order at index {i}: {answers[i]!r} instead of {ANSWERS[i]!r}"


def _check_state(model: MCD, state: dict[str, torch.Tensor], weights: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))

    def names(keys: list[str]) -> str:
        shown = ", ".join(MODEL_PREFIX + k for k in keys[:8])
        return shown + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")

    if missing:
        raise CheckpointError(f"{weights} is missing tensor(s) {names(missing)} (config and weights disagree)")
    if unexpected:
        raise CheckpointError(f"{weights} has unexpected tensor(s) {names(unexpected)} "
                              f"that this model config does not have")
    for k, t in expected.items():
        if tuple(state[k].shape) != tuple(t.shape):
            raise CheckpointError(f"shape mismatch for tensor {MODEL_PREFIX}{k}: {tuple(state[k].shape)} in "
                                  f"{weights}, but the model config expects {tuple(t.shape)}")

"""The one interface per modality for the frozen "basic encoders", and the registry.

Every encoder is frozen (eval mode, no gradients) and runs batched on the CPU by default. It carries
`.id` (stable name used for feature caches and checkpoints), `.dim` (output width) and `.spec()` (a JSON
dict stored in checkpoints). `build_encoder(spec, state_dict)` rebuilds the same encoder from that dict, so
a checkpoint never has to pickle code. Backends are imported lazily: loading a `synth` encoder never pays
for (or breaks on) transformers, and vice versa.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

#: samples per audio segment (1 s at 16 kHz, see contracts.md `audio_segments`)
SAMPLE_RATE = 16000
SEGMENT_SAMPLES = 16000
#: side of the visual patch grid; P = GRID * GRID = 49 patches per frame, row-major
GRID = 7
NUM_PATCHES = GRID * GRID

MODALITIES = ("visual", "audio", "text")

#: (modality, backend) -> "module:Class"; the class must have `from_spec(spec, state_dict, device)`.
REGISTRY: dict[tuple[str, str], str] = {
    ("visual", "synth"): "mcd.encoders.synth:SynthVisualEncoder",
    ("audio", "synth"): "mcd.encoders.synth:SynthAudioEncoder",
    ("visual", "hf-clip"): "mcd.encoders.hf_clip:HFClipVisualEncoder",
    ("audio", "hf-ast"): "mcd.encoders.hf_ast:HFASTAudioEncoder",
    ("visual", "efficientnet-lite0"): "mcd.encoders.efficientnet_lite:EfficientNetLite0Encoder",
    ("audio", "musicnn"): "mcd.encoders.musicnn:MusiCNNEncoder",
    ("visual", "joined"): "mcd.encoders.joined:JoinedVisualEncoder",
    ("audio", "joined"): "mcd.encoders.joined:JoinedAudioEncoder",
    ("text", "minilm"): "mcd.encoders.text:MiniLMTextEncoder",
    ("text", "hf-clip"): "mcd.encoders.text:HFClipTextEncoder",
}


class EncoderError(Exception):
    """Base of every encoder error; the message is meant for a person."""


class EncoderSpecError(EncoderError, ValueError):
    """A spec (from a checkpoint or the command line) that names no known encoder or is malformed."""


class EncoderLoadError(EncoderError, OSError):
    """Weights or tokenizer files could not be found or read (missing path, no network for a hub id...)."""


class EncoderInputError(EncoderError, ValueError):
    """Input of the wrong dtype, rank or size for `encode`."""


class Encoder:
    """What every backend shares. Subclasses set `modality`, `backend`, `dim` and implement `spec()`."""

    modality: str = ""
    backend: str = ""
    dim: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def id(self) -> str:
        """Stable name; equal ids mean equal features (feature caches are keyed by it)."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable dict from which `build_encoder` rebuilds this encoder."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Weights that must travel inside a checkpoint (empty for encoders loaded from a path)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, dim={self.dim})"


class PathSpecMixin:
    """For encoders rebuilt from a model folder or hub id alone (no weights in the checkpoint): the spec is the
    path and the feature width, and the id is `id_prefix:path`. Listed before the modality base class."""

    id_prefix: str = ""

    @classmethod
    def from_spec(cls, spec: dict, state_dict=None, device=torch.device("cpu")):
        expect_keys(spec, "path")
        enc = cls(spec["path"], device)
        check_dim(spec, enc.dim)
        return enc

    @property
    def id(self) -> str:
        return f"{self.id_prefix}:{self.path}"

    def spec(self) -> dict[str, Any]:
        return {"modality": self.modality, "backend": self.backend, "path": self.path, "dim": self.dim}


class VisualEncoder(Encoder):
    modality = "visual"
    num_patches: int = NUM_PATCHES

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames [T,H,W,3] (any H, W) -> float32 patch features [T, 49, dim] on the CPU."""
        raise NotImplementedError


class AudioEncoder(Encoder):
    modality = "audio"

    def encode(self, audio_segments: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 mono 16 kHz windows [T, 16000] -> float32 features [T, dim] on the CPU."""
        raise NotImplementedError


class TextEncoder(Encoder):
    modality = "text"

    def encode_questions(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (token states [N, L, dim] float32, mask [N, L] bool, True = real token)."""
        raise NotImplementedError

    def encode_phrases(self, texts: Sequence[str]) -> torch.Tensor:
        """-> one vector per phrase [N, dim] (mean over its real tokens), cached by string."""
        raise NotImplementedError

    def sentence_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """-> one vector per sentence [N, dim] for comparing sentences (the question matcher), never a model input;
        an encoder may compute it at lower precision than `encode_phrases`."""
        return self.encode_phrases(texts)


# ----------------------------------------------------------------------------- registry


def build_encoder(
    spec: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
) -> Encoder:
    """Rebuild an encoder from its `spec()` (and, for `synth`, its weights)."""
    if not isinstance(spec, Mapping):
        raise EncoderSpecError(f"an encoder spec must be a dict, got {type(spec).__name__}")
    modality, backend = spec.get("modality"), spec.get("backend")
    if modality not in MODALITIES:
        raise EncoderSpecError(f"encoder spec has modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    target = REGISTRY.get((modality, backend))
    if target is None:
        known = sorted(b for m, b in REGISTRY if m == modality)
        raise EncoderSpecError(
            f"no {modality} encoder backend {backend!r}; known {modality} backends: {', '.join(known)}"
        )
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.from_spec(dict(spec), state_dict, torch.device(device))


def expect_keys(spec: Mapping[str, Any], *keys: str) -> None:
    """Fail with the name of the missing field instead of a KeyError deep inside a backend."""
    missing = [k for k in keys if k not in spec]
    if missing:
        raise EncoderSpecError(
            f"{spec.get('modality')} encoder spec for backend {spec.get('backend')!r} lacks {', '.join(missing)}"
        )


def check_dim(spec: Mapping[str, Any], actual: int) -> None:
    """A spec written with one model and loaded with another must not silently change feature widths."""
    want = spec.get("dim")
    if want is not None and int(want) != int(actual):
        raise EncoderSpecError(
            f"{spec.get('modality')} encoder {spec.get('backend')!r} gives {actual}-d features "
            f"but the spec (checkpoint) expects {want}-d"
        )


def frozen(net: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """`net` for inference only (eval mode, no gradients) on `device`: pretrained encoders are never trained here."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(torch.device(device))


def spec_with_defaults(spec: Mapping[str, Any], defaults: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """`defaults` updated by `spec`; a field the backend does not know is an error (a typo is never ignored)."""
    extra = set(spec) - set(defaults)
    if extra:
        raise EncoderSpecError(f"unknown {backend} fields {sorted(extra)}; known: {sorted(defaults)}")
    return {**defaults, **spec}


@functools.lru_cache(maxsize=8)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path) -> str:
    """sha256 of a weights file, computed once per (path, mtime, size): encoders are built often, files rarely
    change."""
    st = os.stat(path)
    return _sha256(str(path), st.st_mtime_ns, st.st_size)


def load_file_strict(net: torch.nn.Module, path, read, what: str) -> None:
    """`read(path)` -> a state dict, loaded strictly into `net`; an unreadable file is an EncoderLoadError too."""
    try:
        state = read(path)
    except Exception as exc:  # noqa: BLE001 - pickle, zip, header and IO errors all mean "unusable file"
        raise EncoderLoadError(f"could not read the {what} weights {path}: {exc}") from exc
    load_state_strict(net, state, path, what)


def load_state_strict(net: torch.nn.Module, state: Mapping[str, torch.Tensor], path, what: str) -> None:
    """Strict load: a missing, unexpected or mis-shaped tensor is an error, never random weights."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EncoderLoadError(f"{path} does not match {what}: {str(exc)[:300]}") from exc


def check_weights_sha256(spec: Mapping[str, Any], sha256: str, what: str, hint: str = "") -> None:
    """A spec records the sha256 of the weights file it was written with; other bytes are other features."""
    want = (spec.get("weights") or {}).get("sha256")
    if want is not None and want != sha256:
        raise EncoderLoadError(f"{what} (sha256 {sha256[:12]}) are not the ones this spec was written with "
                               f"({want[:12]}){hint}")


def weights_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Short content hash of weights: retraining a synth encoder must change its id (and thus caches)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:10]


# ----------------------------------------------------------------------------- input checks


def as_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Validate uint8 RGB frames [T,H,W,3] and return them as a uint8 tensor (no copy when possible)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise EncoderInputError(f"frames must be a numpy array or a tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise EncoderInputError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise EncoderInputError(f"frames must have shape [T, H, W, 3], got {list(frames.shape)}")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise EncoderInputError(f"frames must be non-empty, got shape {list(frames.shape)}")
    return frames


def as_segments(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Validate mono 16 kHz windows [T, 16000] and return a float32 tensor."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if not isinstance(audio, torch.Tensor):
        raise EncoderInputError(f"audio segments must be a numpy array or a tensor, got {type(audio).__name__}")
    if not audio.dtype.is_floating_point:
        raise EncoderInputError(f"audio segments must be float waveforms in [-1, 1], got dtype {audio.dtype}")
    if audio.ndim != 2 or audio.shape[1] != SEGMENT_SAMPLES or audio.shape[0] == 0:
        raise EncoderInputError(
            f"audio segments must have shape [T, {SEGMENT_SAMPLES}] (1-s mono windows at 16 kHz), "
            f"got {list(audio.shape)}"
        )
    audio = audio.to(torch.float32)
    if not torch.isfinite(audio).all():
        raise EncoderInputError("audio segments contain NaN or infinite samples")
    return audio


def as_texts(texts: Sequence[str]) -> list[str]:
    """A list of strings; a bare string is a common slip and would be iterated per character."""
    if isinstance(texts, str):
        raise EncoderInputError("pass a list of strings, not a single string")
    texts = list(texts)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise EncoderInputError(f"texts must be strings, got {type(bad[0]).__name__}")
    return texts


def chunks(n: int, size: int) -> list[slice]:
    """Batch slices over n items, so memory stays bounded for long inputs."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


# ----------------------------------------------------------------------------- transformers loading


def load_hf_model(model_cls, path: str, local_files_only: bool, what: str):
    """`model_cls.from_pretrained(path)`, failing when any weight is missing instead of silently running with
    random ones (a folder of the wrong model loads 'fine' otherwise). Unused weights, such as the text tower
    of a full CLIP checkpoint loaded as CLIPVisionModel, are expected and not reported."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = model_cls.from_pretrained(path, local_files_only=local_files_only, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise EncoderLoadError(
            f"could not load {what} from {path!r}: {exc}. Pass a local folder written by save_pretrained, "
            "or a hub id while the network is available."
        ) from exc
    finally:
        hf_logging.set_verbosity(level)
    missing = list(info.get("missing_keys", [])) + [k for k, *_ in info.get("mismatched_keys", [])]
    if missing:
        raise EncoderLoadError(
            f"{path!r} does not hold {what}: {len(missing)} weights are missing or mis-shaped "
            f"(e.g. {', '.join(map(str, missing[:3]))})"
        )
    return model

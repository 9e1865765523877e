"""`synth` visual and audio encoders: small CNNs for the synthetic world.

They stand in for ImageNet/AudioSet backbones: `mcd pretrain-encoders` trains them on the benchmark's
per-cell / per-segment labels and freezes them, and their weights travel in the checkpoint. They must be
cheap: extracting 6,000 clips on 2 CPU cores has a 20-minute budget, so the visual net runs a 112x112
frame in a few tens of MFLOPs and the audio net a 64-mel spectrogram in about ten.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from mcd.encoders.base import (
    GRID,
    SAMPLE_RATE,
    AudioEncoder,
    EncoderSpecError,
    VisualEncoder,
    as_frames,
    as_segments,
    check_dim,
    chunks,
    weights_digest,
)

VISUAL_DEFAULTS: dict[str, Any] = {"input_size": 112, "widths": [24, 48, 96, 128]}
AUDIO_DEFAULTS: dict[str, Any] = {
    "n_mels": 64, "n_fft": 512, "win_length": 400, "hop_length": 160, "widths": [16, 32, 64, 128],
    "freq_strides": [2, 2, 2, 2],
}


def conv_bn(cin: int, cout: int, stride: int | tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SynthVisualNet(nn.Module):
    """112x112 RGB -> [dim, 7, 7]: four stride-2 stages (16x down), extra 3x3 convs at 14x14 and 7x7 so each
    cell sees ~80 px of context, enough to recognise a player that straddles cells."""

    def __init__(self, dim: int = 128, widths: Sequence[int] = (24, 48, 96, 128)):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.features = nn.Sequential(
            conv_bn(3, w0, 2),     # 56
            conv_bn(w0, w1, 2),    # 28
            conv_bn(w1, w2, 2),    # 14
            conv_bn(w2, w2, 1),
            conv_bn(w2, w3, 2),    # 7
            conv_bn(w3, w3, 1),
        )
        self.proj = nn.Conv2d(w3, dim, 1)  # linear output: features live where a linear probe can read them

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x))


class SynthAudioNet(nn.Module):
    """Log-mel [1, n_mels, frames] -> [dim]. The input BatchNorm is a fixed affine at inference, so absolute
    level (loudness) survives; pooling is over time only, keeping where in frequency the energy sits.

    Each of the four downsampling stages halves time; `freq_strides` says how much it divides frequency. The
    original [2, 2, 2, 2] leaves 4 frequency bins of 16 mel bands each, which tells one instrument from another
    but not which of three or four overlapping ones sound (`bench/audio_mixtures.py`). The default recipe's
    [2, 1, 2, 2] keeps 8 bins: held-out exact match of the sounding set 0.771 -> 0.794 with mixing, where
    [2, 1, 2, 1] (16 bins, 1.6x the parameters) gave 0.782 (`bench/audio_encoders.py`, README).
    """

    def __init__(self, dim: int = 128, n_mels: int = 64, widths: Sequence[int] = (16, 32, 64, 128),
                 freq_strides: Sequence[int] = (2, 2, 2, 2)):
        super().__init__()
        w0, w1, w2, w3 = widths
        f0, f1, f2, f3 = (int(f) for f in freq_strides)
        self.norm = nn.BatchNorm2d(1)
        self.features = nn.Sequential(
            conv_bn(1, w0, (f0, 2)),
            conv_bn(w0, w1, (f1, 2)),
            conv_bn(w1, w1, 1),
            conv_bn(w1, w2, (f2, 2)),
            conv_bn(w2, w2, 1),
            conv_bn(w2, w3, (f3, 2)),
        )
        freq = n_mels
        for f in (f0, f1, f2, f3):
            freq = (freq + f - 1) // f
        self.proj = nn.Linear(2 * w3 * freq, dim)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        h = self.features(self.norm(logmel))          # [B, C, F', T']
        pooled = torch.cat([h.mean(dim=3), h.amax(dim=3)], dim=1)  # [B, 2C, F']
        return self.proj(pooled.flatten(1))


class LogMel:
    """1-s waveform -> log-mel [1, n_mels, frames]. A plain object (not an nn.Module) so its fixed buffers stay
    out of the encoder's state_dict and therefore out of checkpoints."""

    def __init__(self, n_mels: int, n_fft: int, win_length: int, hop_length: int):
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            f_min=20.0, f_max=SAMPLE_RATE / 2, n_mels=n_mels, power=2.0,
        )

    def to(self, device: torch.device) -> "LogMel":
        self.mel = self.mel.to(device)
        return self

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(audio) + 1e-6).unsqueeze(1)


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [T,H,W,3] -> float [T,3,size,size] in 0..255 (squashed, not cropped: players at the frame's edges
    stay in view). Pretraining resizes with this same function, so training and extraction see equal pixels."""
    x = frames.permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def normalise_frames(x: torch.Tensor) -> torch.Tensor:
    """0..255 -> roughly zero-mean unit-variance input for the CNN."""
    return (x / 255.0 - 0.5) / 0.25


def _arch(spec: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    arch = dict(defaults)
    extra = set(spec.get("arch", {})) - set(defaults)
    if extra:
        raise EncoderSpecError(f"unknown synth architecture fields {sorted(extra)}; known: {sorted(defaults)}")
    arch.update(spec.get("arch", {}))
    if len(arch["widths"]) != 4:
        raise EncoderSpecError(f"synth widths must list 4 stage widths, got {arch['widths']}")
    strides = arch.get("freq_strides")   # audio only
    if strides is not None and (len(strides) != 4 or any(type(f) is not int or f not in (1, 2) for f in strides)):
        raise EncoderSpecError(f"synth freq_strides must list 4 strides of 1 or 2, got {strides}")
    return arch


def _load(module: nn.Module, state_dict: Mapping[str, torch.Tensor] | None, what: str) -> None:
    if state_dict is None:
        return
    try:
        result = module.load_state_dict(dict(state_dict), strict=False)
    except RuntimeError as e:  # shape mismatch: torch lists every tensor; the first line is enough
        first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e)[:200])
        raise EncoderSpecError(f"synth {what} encoder weights do not match its spec: {first}") from None
    if result.missing_keys or result.unexpected_keys:
        raise EncoderSpecError(
            f"synth {what} encoder weights do not match its spec: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def _check_digest(enc, spec: Mapping[str, Any], state_dict) -> Any:
    """Weights from one training run must not be paired with the spec of another (features would silently
    differ from the ones the checkpoint's model was trained on)."""
    want = spec.get("digest")
    if state_dict is not None and want is not None and enc.id.rsplit("-", 1)[-1] != want:
        raise EncoderSpecError(
            f"synth {enc.modality} encoder weights (digest {enc.id.rsplit('-', 1)[-1]}) are not the ones its spec "
            f"was written with (digest {want})"
        )
    return enc


class _SynthEncoder(nn.Module):
    """What the two synth encoders share: persistence (spec + weights, checked by digest), the digest id and
    freezing. Listed before the modality base class."""

    backend = "synth"

    @classmethod
    def from_spec(cls, spec: dict, state_dict=None, device=torch.device("cpu")):
        enc = cls(spec.get("dim", 128), spec.get("arch"), spec.get("provenance"))
        check_dim(spec, enc.dim)
        _load(enc, state_dict, cls.modality)
        return _check_digest(enc.freeze(), spec, state_dict).to(device)

    def spec(self) -> dict[str, Any]:
        spec = {"modality": self.modality, "backend": "synth", "dim": self.dim, "arch": dict(self.arch),
                "digest": self.id.rsplit("-", 1)[-1]}
        if self.provenance:
            spec["provenance"] = self.provenance
        return spec

    def freeze(self):
        """Eval mode, no gradients; called after (pre)training, which also invalidates the weight-digest id."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        self._id = None
        return self

    @property
    def id(self) -> str:
        if self._id is None:  # weights are frozen, so the digest is computed once
            self._id = f"synth-{self.modality}-{weights_digest(self.state_dict())}"
        return self._id

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return next(self.parameters()).device


class SynthVisualEncoder(_SynthEncoder, VisualEncoder):
    """Frames of any size -> resized to 112x112 -> [T, 49, dim] cell features (row-major 7x7)."""

    def __init__(self, dim: int = 128, arch: Mapping[str, Any] | None = None, provenance: Mapping | None = None):
        nn.Module.__init__(self)
        self.arch = _arch({"arch": dict(arch or {})}, VISUAL_DEFAULTS)
        self.dim = int(dim)
        self.provenance = dict(provenance or {})
        self.net = SynthVisualNet(self.dim, self.arch["widths"])
        self.batch_size = 64
        self._id: str | None = None
        self.freeze()

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [T,H,W,3] -> normalised float [T,3,S,S]."""
        frames = as_frames(frames).to(self.device, non_blocking=True)   # asynchronous from pinned memory
        return normalise_frames(resize_frames(frames, self.arch["input_size"]))

    @torch.inference_mode()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        frames = as_frames(frames)
        out = []
        for sl in chunks(frames.shape[0], self.batch_size):
            grid = self.net(self.preprocess(frames[sl]))            # [b, dim, 7, 7]
            if grid.shape[-2:] != (GRID, GRID):
                grid = F.adaptive_avg_pool2d(grid, GRID)
            out.append(grid.flatten(2).transpose(1, 2).float().cpu())  # [b, 49, dim]
        return torch.cat(out)


class SynthAudioEncoder(_SynthEncoder, AudioEncoder):
    """1-s mono windows at 16 kHz -> log-mel (64 bands) -> [T, dim]."""

    def __init__(self, dim: int = 128, arch: Mapping[str, Any] | None = None, provenance: Mapping | None = None):
        nn.Module.__init__(self)
        self.arch = _arch({"arch": dict(arch or {})}, AUDIO_DEFAULTS)
        self.dim = int(dim)
        self.provenance = dict(provenance or {})
        a = self.arch
        self.logmel = LogMel(a["n_mels"], a["n_fft"], a["win_length"], a["hop_length"])
        self.net = SynthAudioNet(self.dim, a["n_mels"], a["widths"], a["freq_strides"])
        self.batch_size = 128
        self._id: str | None = None
        self.freeze()

    def to(self, *args, **kwargs) -> "SynthAudioEncoder":  # the log-mel object is not a submodule
        super().to(*args, **kwargs)
        self.logmel.to(self.device)
        return self

    def preprocess(self, audio_segments: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[T, 16000] waveforms -> log-mel [T, 1, n_mels, frames] (training caches this)."""
        return self.logmel(as_segments(audio_segments).to(self.device, non_blocking=True))

    @torch.inference_mode()
    def encode(self, audio_segments: np.ndarray | torch.Tensor) -> torch.Tensor:
        audio = as_segments(audio_segments)
        out = [self.net(self.preprocess(audio[sl])).float().cpu() for sl in chunks(audio.shape[0], self.batch_size)]
        return torch.cat(out)

"""`musicnn` audio encoder: a PyTorch port of musicnn's `MTT_musicnn` music tagger.

`MTT_musicnn` (Pons & Serra, PyPI `musicnn` 0.1.0, ISC) is a CNN trained on MagnaTagATune (real recordings, 50
tags including guitar, piano, violin, cello, flute, drums, harp, sitar). `scripts/port_musicnn.py` read its
TensorFlow-1 checkpoint once into `mcd/encoders/weights/musicnn_mtt.safetensors` (+ the tag names in
`musicnn_mtt.json`); this module needs neither TensorFlow nor librosa.

Network (musicnn/models.py, `build_musicnn` with 1.6 front-end filters, 64 mid-end filters, 200 back-end units):
- input: log-mel [B, 187 frames, 96 bands] (3 s at 16 kHz, n_fft 512, hop 256, slaney mel, power 2, float16,
  log10(10000 x + 1)); a BatchNorm on the single input channel;
- front end: timbral convs 7x38 and 7x67 (204 filters each, time padded by 3) and temporal convs 128x1, 64x1,
  32x1 (51 filters each, TF 'same' padding), each conv -> ReLU -> BatchNorm -> max over frequency: 561 channels;
- mid end: three 1-D convs over time (kernel 7, 64 filters, ReLU -> BatchNorm), the last two residual; the front
  end and the three outputs concatenated: 753 channels per frame;
- back end: max and mean over time, interleaved per channel (TF flattens [753, 2]) -> BatchNorm -> dense 200
  (ReLU -> BatchNorm: the `penultimate` features) -> dense 50 (tag logits; sigmoid gives the taggram).

Per-second embeddings: the model was trained on 3-s patches, but the encoder interface gives 1-s windows
[T, 16000] (a clip's segments need not be adjacent). `context` picks how each window becomes the model's input
(`bench/encoders_pretrained.py` measured the choices): "tile" repeats the window to 3 s (187 frames), "self"
feeds its 63 frames alone (the network is fully convolutional, pooling over time), "neighbours" places the
previous and next windows of the same call around it (only meaningful when the T windows are contiguous audio).
`layer` picks the output: "penultimate" (200), "pool" (max + mean over time of the front and mid end, 2 x 753),
"taggram" (50 sigmoid tag probabilities). Defaults: "self" and "pool" (see DEFAULTS for the measurement).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mcd.encoders.base import (
    file_sha256,
    load_file_strict,
    spec_with_defaults,
    check_weights_sha256,
    frozen,
    SAMPLE_RATE,
    SEGMENT_SAMPLES,
    AudioEncoder,
    EncoderInputError,
    EncoderLoadError,
    EncoderSpecError,
    as_segments,
    check_dim,
    chunks,
)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "musicnn_mtt.safetensors"
META_FILE = "musicnn_mtt.json"

N_FFT, HOP, N_MELS = 512, 256, 96
#: frames of a 3-s patch, as musicnn computes it: time_to_frames(3 s) + 1
PATCH_FRAMES = 187
PATCH_SAMPLES = 3 * SAMPLE_RATE
BN_EPS = 1e-3  # tf.layers.batch_normalization's default

LAYER_DIMS = {"penultimate": 200, "pool": 2 * 753, "taggram": 50}
CONTEXTS = ("tile", "self", "neighbours")
#: chosen by `bench/encoders_pretrained.py --probe` (240 synth clips): "self" matched "tile" (single-instrument
#: top-1 0.979 vs 0.979 with "pool") at a fifth of the cost (13 vs 72 ms per window on one thread); "neighbours"
#: was within noise (0.988) at the cost of "tile" and breaks batch independence. "pool" beat "penultimate" in every
#: context (multi-label accuracy 0.947 vs 0.931); the taggram was worst (0.840).
DEFAULTS: dict[str, Any] = {"layer": "pool", "context": "self"}


# ----------------------------------------------------------------------------- front end


class MelFrontEnd:
    """Waveform [B, N] at 16 kHz -> musicnn's log-mel [B, frames, 96] (librosa.feature.melspectrogram defaults:
    centred frames, periodic Hann window, power 2, slaney mel scale and area normalisation; musicnn stores the mel
    power as float16, then log10(10000 x + 1)). `pad_mode` "reflect" is librosa < 0.10's default, which musicnn
    was trained with. A plain object: its buffers stay out of state dicts."""

    def __init__(self, pad_mode: str = "reflect"):
        import torchaudio

        self.pad_mode = pad_mode
        self.window = torch.hann_window(N_FFT, periodic=True)
        self.fbank = torchaudio.functional.melscale_fbanks(
            N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney")  # [257, 96]

    def to(self, device: torch.device) -> "MelFrontEnd":
        self.window, self.fbank = self.window.to(device), self.fbank.to(device)
        return self

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, N_FFT, HOP, N_FFT, self.window, center=True, pad_mode=self.pad_mode,
                          return_complex=True)                       # [B, 257, frames]
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(power.transpose(1, 2), self.fbank)       # [B, frames, 96]
        mel = mel.to(torch.float16).to(torch.float32)
        return torch.log10(10000.0 * mel + 1.0)


# ----------------------------------------------------------------------------- network


def _bn1d(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=BN_EPS)


class FrontBranch(nn.Module):
    """conv -> ReLU -> BatchNorm -> max over frequency. `pad` is (before, after) zero padding of time."""

    def __init__(self, filters: int, kernel: tuple[int, int], pad: tuple[int, int]):
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = nn.BatchNorm2d(filters, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # x [B, 1, time, freq]
        h = self.bn(F.relu(self.conv(F.pad(x, (0, 0, *self.pad)))))
        return h.amax(dim=3)                                       # [B, filters, time]


class MidConv(nn.Module):
    def __init__(self, cin: int, cout: int = 64):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, 7, padding=3)
        self.bn = _bn1d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class MusiCNN(nn.Module):
    """MTT_musicnn. `forward(logmel [B, frames, 96])` -> dict of 'taggram' (logits), 'penultimate', 'max_pool',
    'mean_pool' (the names of musicnn's extractor)."""

    def __init__(self, n_mels: int = N_MELS, num_classes: int = 50):
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        timbral, temporal = int(1.6 * 128), int(1.6 * 32)
        # TF 'same' for an even kernel k pads (k-1)//2 before and k//2 after
        self.front = nn.ModuleList([
            FrontBranch(timbral, (7, int(0.4 * n_mels)), (3, 3)),
            FrontBranch(timbral, (7, int(0.7 * n_mels)), (3, 3)),
            FrontBranch(temporal, (128, 1), (63, 64)),
            FrontBranch(temporal, (64, 1), (31, 32)),
            FrontBranch(temporal, (32, 1), (15, 16)),
        ])
        front = 2 * timbral + 3 * temporal                          # 561
        self.mid = nn.ModuleList([MidConv(front), MidConv(64), MidConv(64)])
        pooled = 2 * (front + 3 * 64)                               # 1506
        self.pool_bn = _bn1d(pooled)
        self.dense = nn.Linear(pooled, 200)
        self.dense_bn = _bn1d(200)
        self.out = nn.Linear(200, num_classes)

    def forward(self, logmel: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.input_bn(logmel.unsqueeze(1))                     # [B, 1, time, freq]
        front = torch.cat([branch(x) for branch in self.front], dim=1)   # [B, 561, time]
        m1 = self.mid[0](front)
        m2 = self.mid[1](m1) + m1
        m3 = self.mid[2](m2) + m2
        feats = torch.cat([front, m1, m2, m3], dim=1)               # [B, 753, time]
        max_pool, mean_pool = feats.amax(dim=2), feats.mean(dim=2)
        flat = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # TF's flatten of [753, 2]: interleaved
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(flat))))
        return {"taggram": self.out(penultimate), "penultimate": penultimate,
                "max_pool": max_pool, "mean_pool": mean_pool}


# ----------------------------------------------------------------------------- weights


def weights_path() -> Path:
    path = WEIGHTS_DIR / WEIGHTS_FILE
    if not path.is_file():
        raise EncoderLoadError(f"the musicnn encoder's weights {path} are missing; run scripts/port_musicnn.py")
    return path


def tag_names() -> list[str]:
    return list(json.loads((WEIGHTS_DIR / META_FILE).read_text())["tags"])


def load_weights(net: nn.Module, path: Path) -> None:
    """Strict: every tensor of the file is used and every parameter/buffer comes from it."""
    from safetensors.torch import load_file

    load_file_strict(net, path, lambda p: load_file(str(p)), "musicnn")


def _arch(spec: Mapping[str, Any]) -> dict[str, Any]:
    arch = spec_with_defaults(spec, DEFAULTS, "musicnn")
    if arch["layer"] not in LAYER_DIMS:
        raise EncoderSpecError(f"musicnn layer {arch['layer']!r}; known: {', '.join(LAYER_DIMS)}")
    if arch["context"] not in CONTEXTS:
        raise EncoderSpecError(f"musicnn context {arch['context']!r}; known: {', '.join(CONTEXTS)}")
    return arch


# ----------------------------------------------------------------------------- encoder


def context_windows(audio: torch.Tensor, context: str) -> torch.Tensor:
    """[T, 16000] 1-s windows -> the waveforms the model sees: [T, 48000] ('tile', 'neighbours') or the windows
    themselves ('self'). At the ends of 'neighbours' the missing neighbour is the window itself."""
    if context == "self":
        return audio
    if context == "tile":
        return audio.repeat(1, 3)
    prev = torch.cat([audio[:1], audio[:-1]])
    nxt = torch.cat([audio[1:], audio[-1:]])
    return torch.cat([prev, audio, nxt], dim=1)


class MusiCNNEncoder(AudioEncoder):
    """1-s mono windows at 16 kHz [T, 16000] -> [T, dim]. Not an nn.Module on purpose: the weights ship with the
    code (a fixed file whose hash the spec records), so an EncoderSet keeps them out of checkpoints."""

    backend = "musicnn"

    def __init__(self, layer: str = DEFAULTS["layer"], context: str = DEFAULTS["context"],
                 device: torch.device = torch.device("cpu"), batch_size: int = 32):
        arch = _arch({"layer": layer, "context": context})
        self.layer, self.context = arch["layer"], arch["context"]
        self.path = weights_path()
        self.sha256 = file_sha256(self.path)
        self.net = MusiCNN()
        load_weights(self.net, self.path)
        self.device = torch.device(device)
        frozen(self.net, self.device)
        self.mel = MelFrontEnd().to(self.device)
        self.dim = LAYER_DIMS[self.layer]
        self.batch_size = batch_size

    @classmethod
    def from_spec(cls, spec: dict, state_dict=None, device=torch.device("cpu")) -> "MusiCNNEncoder":
        arch = _arch({k: spec[k] for k in DEFAULTS if k in spec})
        enc = cls(arch["layer"], arch["context"], device)
        check_dim(spec, enc.dim)
        check_weights_sha256(spec, enc.sha256, "the musicnn weights here")
        return enc

    @property
    def id(self) -> str:
        return f"musicnn-mtt-{self.layer}-{self.context}-{self.sha256[:10]}"

    def spec(self) -> dict[str, Any]:
        return {"modality": "audio", "backend": self.backend, "dim": self.dim, "layer": self.layer,
                "context": self.context,
                "weights": {"model": "MTT_musicnn", "source": "musicnn 0.1.0 (PyPI), ported by scripts/port_musicnn.py",
                            "file": f"mcd/encoders/weights/{WEIGHTS_FILE}", "sha256": self.sha256}}

    def logmel(self, waves: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> log-mel [B, frames, 96]; 3-s inputs give exactly musicnn's 187 frames."""
        mel = self.mel(waves.to(self.device))
        return mel[:, :PATCH_FRAMES] if waves.shape[1] == PATCH_SAMPLES else mel

    def _select(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.layer == "penultimate":
            return out["penultimate"]
        if self.layer == "taggram":
            return torch.sigmoid(out["taggram"])
        return torch.cat([out["max_pool"], out["mean_pool"]], dim=1)

    @torch.inference_mode()
    def encode(self, audio_segments: np.ndarray | torch.Tensor) -> torch.Tensor:
        audio = as_segments(audio_segments)
        waves = context_windows(audio, self.context)
        out = [self._select(self.net(self.logmel(waves[sl]))).float().cpu()
               for sl in chunks(waves.shape[0], self.batch_size)]
        return torch.cat(out)

    @torch.inference_mode()
    def tags(self, waves: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Tag probabilities [B, 50] of waveforms [B, N] (3-s patches as musicnn's tagger uses; for checks)."""
        waves = torch.as_tensor(waves, dtype=torch.float32)
        if waves.ndim != 2 or waves.shape[1] < SEGMENT_SAMPLES // 4:
            raise EncoderInputError(f"tags() wants waveforms [B, N] of at least 0.25 s, got {list(waves.shape)}")
        return torch.sigmoid(self.net(self.logmel(waves))["taggram"]).cpu()

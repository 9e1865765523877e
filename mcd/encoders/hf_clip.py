"""`hf-clip` visual encoder: CLIPVisionModel patch tokens pooled to the 7x7 grid (the MUSIC-AVQA route).

Frames are resized to the model's square input without centre-cropping: cropping would cut away the left and
right players that location questions ask about. Normalisation constants come from the saved image processor.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mcd.encoders.base import (
    GRID,
    EncoderSpecError,
    PathSpecMixin,
    VisualEncoder,
    as_frames,
    chunks,
    load_hf_model,
)

#: OpenAI CLIP's constants, used when a folder has no preprocessor_config.json
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _image_stats(path: str, local_files_only: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(path, local_files_only=local_files_only)
    except (OSError, ValueError):
        return CLIP_MEAN, CLIP_STD
    return tuple(processor.image_mean), tuple(processor.image_std)


class HFClipVisualEncoder(PathSpecMixin, VisualEncoder):
    backend = "hf-clip"
    id_prefix = "hf-clip-visual"

    def __init__(self, path: str | Path, device: torch.device = torch.device("cpu"), batch_size: int = 32):
        from transformers import CLIPVisionModel

        self.path = str(path)
        if not self.path:
            raise EncoderSpecError("the hf-clip visual encoder needs a model path or hub id")
        local = Path(self.path).exists()
        self.model = load_hf_model(CLIPVisionModel, self.path, local, "a CLIP vision model")
        self.device = device
        self.model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        mean, std = _image_stats(self.path, local)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.image_size = int(self.model.config.image_size)
        self.patch_size = int(self.model.config.patch_size)
        self.dim = int(self.model.config.hidden_size)
        self.batch_size = batch_size

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0
        size = self.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp(0.0, 1.0)
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        frames = as_frames(frames)
        out = []
        for sl in chunks(frames.shape[0], self.batch_size):
            hidden = self.model(pixel_values=self.preprocess(frames[sl])).last_hidden_state  # [b, 1+N, D]
            patches = hidden[:, 1:]                       # drop the class token
            side = math.isqrt(patches.shape[1])
            grid = patches.transpose(1, 2).reshape(patches.shape[0], self.dim, side, side)
            grid = F.adaptive_avg_pool2d(grid, GRID)      # [b, D, 7, 7]
            out.append(grid.flatten(2).transpose(1, 2).float().cpu())
        return torch.cat(out)

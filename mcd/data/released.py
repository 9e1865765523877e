"""Read the released MUSIC-AVQA features (one .npy per video and feature kind) as clip features.

The MUSIC-AVQA authors (and later works) publish per-second features of every 60-s clip, one file per video,
named `<video_id>.npy`, one folder per kind:

    audio     VGGish                         [60, 128]      one row per second
    visual    ResNet-18 / CLIP frame features [60, D]       (D = 512), one frame per second
    spatial   feature maps, either layout:   [60, D, H, W]  channels first, as ResNet maps are saved
                                                            (e.g. res18_14x14: [60, 512, 14, 14])
                                             [60, P, D]     patch tokens, patch-major (e.g. CLIP patches)

`ReleasedFeatures(...)(video_id)` returns the clip-feature contract `{"visual": [T,P,Dv], "audio": [T,Da]}`, so
it plugs into `QADataset` exactly where a `FeatureCache.load` would.

Time: the N per-second rows are subsampled to T by the same rule as `media.decode` — T equal segments over the
clip, and the row that covers each segment's centre: row `floor((i + 0.5) * N / T)` for segment i (N = 60,
T = 10 picks seconds 3, 9, 15, ..., 57). Each file is subsampled on its own time axis, so a file with fewer rows
than the others still spans the same clip; with N < T rows repeat, as frames repeat when decoding a short clip.

Space: without spatial maps visual is the frame feature as a single patch, `[T, 1, D]`. With spatial maps they
are the visual patches (the frame-feature folder is then not read: the contract's pooled visual feature is the
mean over patches): `[D, H, W]` maps become `H*W` patches in row-major order (the contract's patch order), and
`[P, D]` tokens are kept as given. `spatial_grid=g` average-pools square maps to g x g (14x14 -> 7x7 gives the
model's default P = 49 and a 4x cheaper patch attention).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class ReleasedFeatureError(ValueError):
    """A released feature file that is missing, unreadable or not in the documented shape."""


class MissingFeatureError(ReleasedFeatureError):
    """A video has no file in one of the feature folders."""


def segment_rows(n_rows: int, T: int) -> np.ndarray:
    """Indices of the rows that cover the centres of T equal segments over `n_rows` per-second rows."""
    if n_rows < 1 or T < 1:
        raise ValueError(f"need at least one row and one segment, got n_rows={n_rows}, T={T}")
    centres = (np.arange(T) + 0.5) * n_rows / T
    return np.minimum(np.floor(centres).astype(np.int64), n_rows - 1)


class ReleasedFeatures:
    """`video_id -> {"visual": [T,P,Dv], "audio": [T,Da]}` over the released per-video .npy folders.

    `visual_dir` holds frame features `[N, D]`; `spatial_dir`, when given, holds spatial maps that become the
    visual patches instead. Give at least one of them. Feature widths are pinned by the first video read (or by
    `audio_dim` / `visual_dim`), so a stray file from another extractor fails loudly instead of mixing in.
    """

    def __init__(self, audio_dir: str | os.PathLike, visual_dir: str | os.PathLike | None,
                 spatial_dir: str | os.PathLike | None = None, T: int = 10, spatial_grid: int | None = None,
                 audio_dim: int | None = None, visual_dim: int | None = None):
        if not isinstance(T, int) or isinstance(T, bool) or T < 1:
            raise ValueError(f"T must be a positive integer, got {T!r}")
        if spatial_grid is not None and (not isinstance(spatial_grid, int) or spatial_grid < 1):
            raise ValueError(f"spatial_grid must be a positive integer or None, got {spatial_grid!r}")
        if visual_dir is None and spatial_dir is None:
            raise ValueError("give visual_dir (frame features) or spatial_dir (spatial maps), or both")
        self.audio_dir = _folder(audio_dir, "audio")
        self.visual_dir = _folder(visual_dir, "visual") if visual_dir is not None else None
        self.spatial_dir = _folder(spatial_dir, "spatial") if spatial_dir is not None else None
        self.T, self.spatial_grid = T, spatial_grid
        self.audio_dim, self.visual_dim = audio_dim, visual_dim

    def __call__(self, video_id: str) -> dict[str, torch.Tensor]:
        audio = self._load(self.audio_dir, video_id, "audio")
        if audio.ndim != 2:
            raise ReleasedFeatureError(
                f"audio features of video {video_id!r} ({self.audio_dir}) have shape {audio.shape}; "
                "expected [seconds, Da] (VGGish: [60, 128])")
        audio = audio[segment_rows(audio.shape[0], self.T)]

        if self.spatial_dir is not None:
            visual = self._spatial(video_id)
        else:
            frames = self._load(self.visual_dir, video_id, "visual")
            if frames.ndim != 2:
                raise ReleasedFeatureError(
                    f"frame features of video {video_id!r} ({self.visual_dir}) have shape {frames.shape}; "
                    "expected [seconds, D] (ResNet-18 / CLIP: [60, 512]); spatial maps go in spatial_dir")
            visual = frames[segment_rows(frames.shape[0], self.T)][:, None, :]

        self.audio_dim = _pin(self.audio_dim, audio.shape[-1], "audio", video_id, self.audio_dir)
        source = self.spatial_dir if self.spatial_dir is not None else self.visual_dir
        self.visual_dim = _pin(self.visual_dim, visual.shape[-1], "visual", video_id, source)
        return {"visual": torch.from_numpy(np.ascontiguousarray(visual, dtype=np.float32)),
                "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))}

    def _spatial(self, video_id: str) -> np.ndarray:
        maps = self._load(self.spatial_dir, video_id, "spatial")
        if maps.ndim == 4:          # [N, D, H, W]: channels first
            n, d, h, w = maps.shape
            maps = maps[segment_rows(n, self.T)]
            if self.spatial_grid is not None:
                maps = _pool(maps, self.spatial_grid)
                h = w = self.spatial_grid
            return maps.reshape(self.T, d, h * w).transpose(0, 2, 1)   # row-major patches: [T, H*W, D]
        if maps.ndim == 3:          # [N, P, D]: patch tokens
            maps = maps[segment_rows(maps.shape[0], self.T)]
            if self.spatial_grid is not None:
                p, d = maps.shape[1:]
                side = math.isqrt(p)
                if side * side != p:
                    raise ReleasedFeatureError(
                        f"spatial features of video {video_id!r} ({self.spatial_dir}) have {p} patches, not a "
                        f"square grid, so they cannot be pooled to {self.spatial_grid}x{self.spatial_grid} "
                        "(drop a class token first, or use spatial_grid=None)")
                grid = maps.reshape(self.T, side, side, d).transpose(0, 3, 1, 2)
                maps = _pool(grid, self.spatial_grid).reshape(self.T, d, -1).transpose(0, 2, 1)
            return maps
        raise ReleasedFeatureError(
            f"spatial features of video {video_id!r} ({self.spatial_dir}) have shape {maps.shape}; expected "
            "[seconds, D, H, W] (e.g. res18_14x14: [60, 512, 14, 14]) or [seconds, P, D]")

    @staticmethod
    def _load(folder: Path, video_id: str, kind: str) -> np.ndarray:
        path = folder / f"{video_id}.npy"
        if not path.is_file():
            raise MissingFeatureError(f"no {kind} features for video {video_id!r}: {path.name} is not in {folder}")
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ReleasedFeatureError(f"cannot read {kind} features of video {video_id!r} ({path}): {exc}") from exc
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number) \
                or np.issubdtype(array.dtype, np.complexfloating):
            raise ReleasedFeatureError(
                f"{kind} features of video {video_id!r} ({path}) are not a real-valued array "
                f"(dtype {getattr(array, 'dtype', type(array).__name__)})")
        if array.ndim == 0 or array.shape[0] == 0 or 0 in array.shape:
            raise ReleasedFeatureError(f"{kind} features of video {video_id!r} ({path}) are empty: shape {array.shape}")
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise ReleasedFeatureError(
                f"{kind} features of video {video_id!r} ({path}) contain {bad} NaN/Inf value(s); re-extract them")
        return array


def _folder(path: str | os.PathLike, kind: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise ReleasedFeatureError(f"{kind} feature folder {folder} does not exist or is not a folder")
    return folder


def _pin(expected: int | None, got: int, kind: str, video_id: str, folder: Path) -> int:
    if expected is not None and got != expected:
        raise ReleasedFeatureError(
            f"{kind} features of video {video_id!r} ({folder}) are {got}-d but {expected}-d were expected "
            "(earlier videos or the configured width); are two extractors' files mixed in one folder?")
    return got


def _pool(maps: np.ndarray, grid: int) -> np.ndarray:
    """Average-pool `[T, D, H, W]` maps to `[T, D, grid, grid]` (adaptive, as torchvision pools to a fixed size)."""
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)), grid)
    return pooled.numpy()

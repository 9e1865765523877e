"""The per-video feature cache written by `mcd extract` and read by training and evaluation.

One safetensors file per video (fp16, `visual [T,P,Dv]`, `audio [T,Da]`) plus `meta.json` naming the encoders
and T. fp16 halves the disk and page-cache footprint; training casts back to float32. One file per video makes
extraction resumable (a video is done when its file exists) and shardable across machines without coordination.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mcd.atomic import write_text_atomic


class FeatureCacheError(ValueError):
    """The cache is missing, was written by other encoders, or holds a damaged file."""


class FeatureCache:
    """A folder of per-video feature files. `meta` pins the encoders so features of different encoders never mix."""

    META = "meta.json"

    def __init__(self, root: str | os.PathLike, meta: dict | None = None):
        self.root = Path(root)
        meta_path = self.root / self.META
        if meta is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            if meta_path.exists():
                old = json.loads(meta_path.read_text())
                if old != meta:
                    raise FeatureCacheError(
                        f"{self.root} holds features of other encoders or T ({_diff(old, meta)}); "
                        "use another --cache folder or delete it")
            else:
                write_text_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True))
            self.meta = meta
        else:
            if not meta_path.exists():
                raise FeatureCacheError(f"{self.root} is not a feature cache (no {self.META}); run `mcd extract` first")
            self.meta = json.loads(meta_path.read_text())

    def check_meta(self, expected: dict, source: str | os.PathLike) -> None:
        """Refuse features extracted with other encoders or T than `source` (a checkpoint) expects."""
        if self.meta != expected:
            raise FeatureCacheError(f"{self.root} was extracted with other encoders or T than {source}")

    def path(self, video_id: str) -> Path:
        return self.root / f"{video_id}.safetensors"

    def has(self, video_id: str) -> bool:
        return self.path(video_id).exists()

    def save(self, video_id: str, visual: torch.Tensor, audio: torch.Tensor) -> None:
        """Write one video's features atomically (a crash never leaves a truncated file that looks done)."""
        tensors = {"visual": visual.detach().to(torch.float16).contiguous(),
                   "audio": audio.detach().to(torch.float16).contiguous()}
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp)
            os.replace(tmp, self.path(video_id))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load(self, video_id: str) -> dict[str, torch.Tensor]:
        """`{"visual": [T,P,Dv], "audio": [T,Da]}` as float32."""
        path = self.path(video_id)
        if not path.exists():
            raise FeatureCacheError(f"no features for video {video_id!r} in {self.root}; run `mcd extract` on it")
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError) as exc:
            raise FeatureCacheError(f"damaged feature file {path}: {exc}; delete it and re-run `mcd extract`") from exc
        return {k: v.float() for k, v in tensors.items()}

    def video_ids(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.safetensors"))


def _diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} != {new.get(k)!r}" for k in keys[:3])


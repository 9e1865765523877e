"""Out-of-domain score of a clip: how unlike the training clips its encoded features are.

Per-dimension statistics of the clip-pooled visual and audio features of the training set are stored in the
checkpoint; a clip's score is the mean |z| of its pooled features. The warning threshold is the 99th percentile of
the training clips' own scores, so about 1% of in-domain clips trip it and real-world footage far more.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch


def pooled(visual: torch.Tensor, audio: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return visual.float().mean(dim=(0, 1)).numpy(), audio.float().mean(dim=0).numpy()


def calibrate(features: Iterable[dict], quantile: float = 0.99) -> dict:
    """Statistics and threshold from `{"visual": [T,P,Dv], "audio": [T,Da]}` of the training clips."""
    vs, as_ = zip(*(pooled(f["visual"], f["audio"]) for f in features))
    vs, as_ = np.stack(vs), np.stack(as_)
    stats = {"visual_mean": vs.mean(0).tolist(), "visual_std": (vs.std(0) + 1e-6).tolist(),
             "audio_mean": as_.mean(0).tolist(), "audio_std": (as_.std(0) + 1e-6).tolist()}
    scores = [_score(stats, v, a) for v, a in zip(vs, as_)]
    stats["threshold"] = float(np.quantile(scores, quantile))
    stats["n_clips"] = len(scores)
    return stats


def _score(stats: dict, v: np.ndarray, a: np.ndarray) -> float:
    z_v = np.abs((v - np.asarray(stats["visual_mean"])) / np.asarray(stats["visual_std"]))
    z_a = np.abs((a - np.asarray(stats["audio_mean"])) / np.asarray(stats["audio_std"]))
    return float(np.concatenate([z_v, z_a]).mean())


def score(stats: dict | None, visual: torch.Tensor, audio: torch.Tensor) -> float:
    """The clip's score (0.0 when the checkpoint has no calibration)."""
    if not stats:
        return 0.0
    return _score(stats, *pooled(visual, audio))

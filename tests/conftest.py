"""Helpers shared by the test modules: a small MCD config, random model inputs, one torch thread for tiny models,
and the repository root on sys.path (the tests import `tests.media_factory` and `app`)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from mcd.model.config import MCDConfig

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SMALL = dict(visual_dim=12, audio_dim=10, text_dim=16, d=32, d_z=16, T=4, P=4, n_heads=4, ffn_mult=2,
             dropout=0.0)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest single-threaded; on a shared 2-core box extra threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_config(**overrides) -> MCDConfig:
    """A small config; extension switches may be given flat (`clue_gate=True`): from_dict nests them."""
    return MCDConfig.from_dict({**SMALL, **overrides})


def make_batch(cfg: MCDConfig, B: int = 4, L: int = 5, K: int = 3, seed: int = 0, labels: bool = True):
    """Random inputs; question row i has L - i % 2 real tokens, object row i has its last object padded if i odd.

    Objects alternate keyword / type word so both kinds are exercised.
    """
    g = torch.Generator().manual_seed(seed)
    batch = dict(
        visual=torch.randn(B, cfg.T, cfg.P, cfg.visual_dim, generator=g),
        audio=torch.randn(B, cfg.T, cfg.audio_dim, generator=g),
        question=torch.randn(B, L, cfg.text_dim, generator=g),
        question_mask=torch.ones(B, L, dtype=torch.bool),
        objects=torch.randn(B, K, cfg.text_dim, generator=g),
        objects_mask=torch.ones(B, K, dtype=torch.bool),
        objects_kind=(torch.arange(K) % 2).expand(B, K).clone(),
        video_index=torch.arange(B),
    )
    if L > 1:
        batch["question_mask"][1::2, -1] = False
    if K > 1:
        batch["objects_mask"][1::2, -1] = False
    if labels:
        batch["labels"] = torch.randint(0, cfg.num_answers, (B,), generator=g)
    return batch

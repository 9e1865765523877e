"""Dropout whose masks come from packed random bits: four 15-bit draws out of each 64-bit random number.

Why: on the CPU, `nn.Dropout` draws one random number per element (`bernoulli_`), and the attention weights
over T·P patch tokens are the model's largest tensors: in a profile of one training step of the shipped recipe
(batch 64, two threads) `bernoulli_` took 25-30% of the time, more than all the matmuls together. One 64-bit draw
fills four lanes here, and a mask costs about a fifth as much (`python bench/train_step.py` times a whole
training step with each).

The keep probability is quantised to 1/32768 (p = 0.1 becomes 3277/32768 = 0.10001) and the kept values are
scaled by the inverse of that exact probability, so the expectation is unchanged, as with nn.Dropout. The
module has no state, so a checkpoint trained with nn.Dropout loads into it and evaluates identically.

The packed bits are a CPU trick. On any other device (CUDA) the masks come from the standard operation instead:
`F.dropout` (one fused kernel on the GPU, nothing to gain from packing) or, for a mask drawn in another shape
(`drawn_as`), `bernoulli_`; both with the same quantised probability p = threshold / 32768 and the same scale
1 / (1 - p), so the keep rate, the scaling and hence mean and variance are those of the packed masks
(tests/test_dropout.py and tests/test_device.py compare them on the CPU). `MASKS` (or the environment variable
MCD_DROPOUT_MASKS when the module is imported) chooses: "auto" (packed on the CPU, standard elsewhere), "packed"
or "standard" everywhere; `mask_source` sets it for a block.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

LANES = 32768   # each 16-bit lane keeps 15 random bits (int64 `random_` leaves the top bit of its draws zero)
MASK_SOURCES = ("auto", "packed", "standard")
MASKS = os.environ.get("MCD_DROPOUT_MASKS", "auto")
if MASKS not in MASK_SOURCES:
    raise ValueError(f"MCD_DROPOUT_MASKS must be one of {MASK_SOURCES}, not {MASKS!r}")


def uses_packed(device: torch.device | str) -> bool:
    """Whether masks on `device` come from packed bits (MASKS, see the module docstring)."""
    if MASKS == "auto":
        return torch.device(device).type == "cpu"
    return MASKS == "packed"


@contextlib.contextmanager
def mask_source(source: str):
    """Draw every Dropout's masks from `source` ("auto", "packed" or "standard") inside the block."""
    global MASKS
    if source not in MASK_SOURCES:
        raise ValueError(f"mask source must be one of {MASK_SOURCES}, not {source!r}")
    before, MASKS = MASKS, source
    try:
        yield
    finally:
        MASKS = before


def keep_mask(shape: torch.Size | tuple[int, ...], threshold: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool [shape], each element True with probability 1 - threshold / LANES, from the default generator."""
    n = math.prod(shape)
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()
    lanes = draws.view(torch.int16)[:n] & (LANES - 1)
    return (lanes >= threshold).view(shape)


def standard_keep_mask(shape: torch.Size | tuple[int, ...], threshold: int,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool [shape] with the same keep probability 1 - threshold / LANES as `keep_mask`, from `bernoulli_`."""
    return torch.empty(tuple(shape), device=device).bernoulli_(1 - threshold / LANES).bool()


class Dropout(nn.Module):
    """A drop-in for nn.Dropout(p) (training: zero each element with probability ~p, scale the rest; eval: identity)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * LANES)
        self.scale = LANES / (LANES - self.threshold)      # 1 / the exact keep probability

    def forward(self, x: torch.Tensor, drawn_as: tuple[int, ...] | None = None,
                layout: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """With `drawn_as` and `layout`, the mask is drawn in the shape `drawn_as` and `layout` turns it into x's:
        a caller that keeps a tensor in another memory layout than before still drops the same elements. One
        without the other is an error: a mask drawn in another shape would broadcast, or fail, somewhere else."""
        if (drawn_as is None) != (layout is None):
            raise ValueError("Dropout: drawn_as and layout come together (the mask's drawn shape and the map to x's)")
        if not self.training or self.threshold == 0:
            return x
        if not uses_packed(x.device):
            if drawn_as is None:     # nn.Dropout's own operation, with the quantised probability
                return F.dropout(x, self.threshold / LANES, training=True)
            mask = standard_keep_mask(drawn_as, self.threshold, x.device)
            return x * layout(mask).to(x.dtype).mul_(self.scale)
        mask = keep_mask(drawn_as or x.shape, self.threshold, x.device)
        if layout is not None:
            mask = layout(mask)
        return x * mask.to(x.dtype).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"

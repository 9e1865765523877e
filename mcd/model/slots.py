"""Keyword slots: each text object is read through a map of its own position in the object list.

Why a module of its own: the model (`object_readout`, `grounded_answer`) and the grounded expert both read
"keyword k through map k", and the expert lives in mcd.model.grounding, which mcd.model.mcd imports.
"""
from __future__ import annotations

import torch

MAX_OBJECT_SLOTS = 8        # objects past the 8th share the last slot (templates have at most 4 keywords)


def object_slots(K: int, device: torch.device, slots: int = MAX_OBJECT_SLOTS) -> torch.Tensor:
    """[K] slot index of each text object (its position in the list), the last of `slots` shared past it."""
    return torch.arange(K, device=device).clamp_max(slots - 1)


def read_slots(per_object: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Σ_k maps[slot(k)] per_object[k]: per_object [B,K,c], maps [slots,c,d] -> [B,d]. Objects that must not be read
    (padding, type words) are zero in per_object."""
    return torch.einsum("bkc,kcd->bd", per_object, maps[object_slots(per_object.shape[1], per_object.device,
                                                                     maps.shape[0])])

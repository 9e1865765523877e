"""Semantic approximation: three projections into a shared latent space and the KD between them.

projection_1 and projection_2 give the audio-visual teachers z_v, z_a; projection_3 gives the student z_q from
the clue-attached question. Distillation pulls z_q toward both teachers so the question side learns to carry
what the audio-visual side knows.

Reconstruction note (differs from the design's "projection_1(mean f_v)"): the teachers project the
*question-attended* associated features, and the teacher head decides from z_v, z_a. With teachers detached
(the default KL mode) a projection of mean f_v would get no gradient at all and stay a random map; feeding
the teacher head from z_v, z_a trains them to hold answer-relevant audio-visual semantics, which is what the
student should be pulled toward.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mcd.model.association import info_nce


def projection(d_in: int, d_z: int) -> nn.Module:
    """Linear-ReLU-Linear, the shape the figure draws for all three projections."""
    return nn.Sequential(nn.Linear(d_in, d_in), nn.ReLU(), nn.Linear(d_in, d_z))


class SemanticApproximation(nn.Module):
    def __init__(self, d: int, d_z: int):
        super().__init__()
        self.proj_v = projection(d, d_z)   # projection_1
        self.proj_a = projection(d, d_z)   # projection_2
        self.proj_q = projection(d, d_z)   # projection_3

    def forward(self, v: torch.Tensor, a: torch.Tensor, q: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """v, a, q [B,d] -> (z_q, z_v, z_a) [B,d_z]."""
        return self.proj_q(q), self.proj_v(v), self.proj_a(a)


def _kl(target_logits: torch.Tensor, student_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 * KL(softmax(target/tau) || softmax(student/tau)), batch mean (Hinton scaling)."""
    return F.kl_div(F.log_softmax(student_logits / tau, dim=-1), F.log_softmax(target_logits / tau, dim=-1),
                    reduction="batchmean", log_target=True) * tau * tau


def distillation_loss(z_q: torch.Tensor, z_v: torch.Tensor, z_a: torch.Tensor, mode: str, tau: float,
                      nce_temperature: float, video_index: torch.Tensor | None = None) -> torch.Tensor:
    """Pull the student z_q toward both teachers; averaged over the two teachers.

    kl: tau^2-scaled KL over softmax(z/tau), teachers detached (one-way distillation).
    mutual: symmetric KL, nothing detached (teachers also move toward the student).
    cos: 1 - cosine similarity, teachers detached.
    nce: InfoNCE student -> teacher over the batch, same-video rows not negatives, teachers detached.
    """
    losses = []
    for z_t in (z_v, z_a):
        if mode == "kl":
            losses.append(_kl(z_t.detach(), z_q, tau))
        elif mode == "mutual":
            losses.append(0.5 * (_kl(z_t, z_q, tau) + _kl(z_q, z_t, tau)))
        elif mode == "cos":
            losses.append((1.0 - F.cosine_similarity(z_q, z_t.detach(), dim=-1)).mean())
        elif mode == "nce":
            losses.append(info_nce(z_q, z_t.detach(), nce_temperature, video_index, symmetric=False))
        else:
            raise ValueError(f"unknown kd_mode {mode!r}")
    return 0.5 * (losses[0] + losses[1])


def logit_distillation_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                            tau: float) -> torch.Tensor:
    """Optional teacher -> student KD on the answer logits (teacher detached)."""
    return _kl(teacher_logits.detach(), student_logits, tau)

"""Answer heads.

The student's prediction header sees only the pooled clue-attached question: MCD discards decision-level
audio-visual integration at inference [F]. The teacher head is the decision-level fusion that the student is
compared against; it is trained for the training signal and the demo's agreement view, never to decide.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from mcd.model.dropout import Dropout


class PredictionHeader(nn.Module):
    """Student: pooled f̂_q -> Dropout -> activation -> MLP -> C logits (the order the figure draws).

    `d_in` is d, or 3d when the `decision_fusion` ablation keeps attended audio/visual features in the header.
    """

    def __init__(self, d_in: int, d: int, num_answers: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(Dropout(dropout), nn.GELU(), nn.Linear(d_in, d), nn.GELU(),
                                 nn.Linear(d, num_answers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TeacherHead(nn.Module):
    """Teacher: decision-level fusion [pooled f_q ; z_v ; z_a] -> MLP -> C logits."""

    def __init__(self, d: int, d_z: int, num_answers: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d + 2 * d_z, d), nn.GELU(), Dropout(dropout),
                                 nn.Linear(d, num_answers))

    def forward(self, q: torch.Tensor, z_v: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([q, z_v, z_a], dim=-1))

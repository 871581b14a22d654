"""Small layers shared by several models."""

from __future__ import annotations

from torch import Tensor, nn


class Maxout(nn.Module):
    """Maxout (Goodfellow et al. 2013): `units` outputs, each the max over `pieces` linear pieces."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(-1)  # [B, units]

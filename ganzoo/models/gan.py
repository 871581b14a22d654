"""GAN — Goodfellow et al., "Generative Adversarial Nets", arXiv:1406.2661
(official code: goodfeli/adversarial, mnist.yaml).

Nets as the official MNIST model: G is an MLP z(100) → 1200 ReLU → 1200 ReLU → C·H·W; D is
maxout 240×5 → maxout 240×5 → 1 logit, with dropout (input keep 0.8, hidden keep 0.5). Loss: BCE on
logits with the non-saturating G loss −log D(G(z)) that the paper recommends in §3.

Deviations (chosen for the shared recipe, see docs/models.md): Adam lr 2e-4, β1 0.5 and N(0, 0.02)
init instead of SGD with momentum 0.5→0.7, lr 0.1 with exponential decay and uniform ±0.05/±0.005
init; z ~ U(−1, 1); the G output is tanh over [−1, 1] images instead of a sigmoid over [0, 1]
(tanh(x) = 2σ(2x) − 1, the same family).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..data.base import DataInfo
from ..nn.layers import Maxout
from ..registry import MODELS
from .base import UnconditionalGAN, init_normal


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, out_shape: tuple[int, int, int], hidden: int = 1200):
        super().__init__()
        self.out_shape = out_shape
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(True), nn.Linear(hidden, hidden), nn.ReLU(True),
                                 nn.Linear(hidden, math.prod(out_shape)), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MaxoutDiscriminator(nn.Module):
    def __init__(self, in_features: int, units: int = 240, pieces: int = 5, drop_in: float = 0.2,
                 drop_hidden: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Dropout(drop_in), Maxout(in_features, units, pieces),
                                 nn.Dropout(drop_hidden), Maxout(units, units, pieces), nn.Dropout(drop_hidden),
                                 nn.Linear(units, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)  # logits [B]


@MODELS.register("gan")
class GAN(UnconditionalGAN):
    """The original GAN (Goodfellow et al. 2014): MLP generator, maxout discriminator."""


    def __init__(self, data: DataInfo, *, z_dim: int = 100, g_hidden: int = 1200, d_units: int = 240,
                 d_pieces: int = 5, drop_in: float = 0.2, drop_hidden: float = 0.5):
        super().__init__(data)
        self.z_dim = z_dim
        shape = (data.channels, data.resolution, data.resolution)
        self.G = MLPGenerator(z_dim, shape, g_hidden)
        self.D = MaxoutDiscriminator(math.prod(shape), d_units, d_pieces, drop_in, drop_hidden)
        init_normal(self)

"""DCGAN generator and discriminator (Radford et al. 2015, arXiv:1511.06434), sized from the data.

Following Newmu/dcgan_code (faces/train_uncond_dcgan.py): G projects z with a linear layer to
`start`×`start`×C, batch-norms and ReLUs it, then doubles the resolution with 5×5 stride-2
transposed convs (BN + ReLU) down to `img_channels` with tanh; D mirrors it with 5×5 stride-2 convs
(LeakyReLU 0.2, BN on all but the first) and a linear layer to one logit. No pooling, no hidden FC.

The number of stages follows the resolution: R = start · 2^k with 3 ≤ start ≤ 7, so 28 px uses
7→14→28, 32 px 4→8→16→32, 64 px 4→…→64. The widest layer has `ngf · 2^(k-1)` channels (64 px with
ngf=128 gives the paper's 1024).
"""

from __future__ import annotations

from torch import Tensor, nn


def stages_for(resolution: int) -> tuple[int, int]:
    """(start, k) with resolution == start * 2**k, 3 <= start <= 7, k >= 1."""
    k, start = 0, resolution
    while start > 7 and start % 2 == 0:
        start, k = start // 2, k + 1
    if k == 0 or not 3 <= start <= 7:
        raise ValueError(f"resolution {resolution} is not start·2^k with start in 3..7 (use 28, 32, 64, 128, ...)")
    return start, k


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, img_channels: int, resolution: int, ngf: int = 64, kernel: int = 5,
                 in_extra: int = 0):
        super().__init__()
        start, k = stages_for(resolution)
        ch = [ngf * 2 ** (k - 1 - i) for i in range(k)] + [img_channels]  # e.g. 512, 256, 128, 64, 3
        self.start, self.top = start, ch[0]
        self.project = nn.Sequential(nn.Linear(z_dim + in_extra, ch[0] * start * start, bias=False),
                                     nn.BatchNorm1d(ch[0] * start * start), nn.ReLU(True))
        layers: list[nn.Module] = []
        pad = (kernel - 1) // 2
        for i in range(k):
            layers.append(nn.ConvTranspose2d(ch[i], ch[i + 1], kernel, 2, pad, output_padding=1, bias=i == k - 1))
            layers += [nn.BatchNorm2d(ch[i + 1]), nn.ReLU(True)] if i < k - 1 else [nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(z.shape[0], self.top, self.start, self.start)
        return self.body(h)  # [B, C, R, R] in [-1, 1]


class DCGANDiscriminator(nn.Module):
    """Returns logits [B]; `features(x)` gives the flattened last conv features [B, F]."""

    def __init__(self, img_channels: int, resolution: int, ndf: int = 64, kernel: int = 5, out_dim: int = 1):
        super().__init__()
        start, k = stages_for(resolution)
        ch = [img_channels] + [ndf * 2**i for i in range(k)]  # e.g. 3, 64, 128, 256, 512
        pad = (kernel - 1) // 2
        layers: list[nn.Module] = []
        for i in range(k):
            layers.append(nn.Conv2d(ch[i], ch[i + 1], kernel, 2, pad, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch[i + 1]))
            layers.append(nn.LeakyReLU(0.2, True))
        self.body = nn.Sequential(*layers)
        self.feature_dim = ch[-1] * start * start
        self.head = nn.Linear(self.feature_dim, out_dim)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(-1)

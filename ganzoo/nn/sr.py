"""Super-resolution building blocks shared by `srresnet` and `srgan` (Ledig et al. 2017, arXiv:1609.04802).

- `downscale` / `upscale_bicubic`: THE resampling kernel, one for training and evaluation. The LR image
  is made from the HR image by antialiased bicubic downscaling (Keys cubic with a = -0.5, the kernel
  of MATLAB's `imresize` and PIL's BICUBIC, widened by the scale factor so it low-passes before it
  subsamples), clamped to [-1, 1] and rounded to 8-bit levels, as an LR image stored on disk would be.
  `torch.nn.functional.interpolate(mode="bicubic", antialias=True)` implements exactly that kernel
  (PIL's resampling code; without `antialias` torch uses a = -0.75 and no widening). The bicubic
  baseline upsamples with the same kernel.
- `SRResNetGenerator` (the paper's Fig. 4 G), `SRDiscriminator` (its D).
- `upscale_tiled`: G applied tile by tile with a context margin, so memory is bounded for any input.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

SCALES = (2, 4, 8)


def quantize(x: Tensor) -> Tensor:
    """Round [-1, 1] images to the 256 levels of an 8-bit image (what saving and reloading does)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def downscale(hr: Tensor, scale: int) -> Tensor:
    """HR [N, C, H, W] in [-1, 1] (H, W multiples of `scale`) -> LR [N, C, H/scale, W/scale]: antialiased
    bicubic (a = -0.5), clamped and rounded to 8-bit levels (see the module doc)."""
    h, w = hr.shape[-2:]
    lr = F.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return quantize(lr)


def upscale_bicubic(lr: Tensor, scale: int) -> Tensor:
    """LR -> bicubic upsample by `scale` with the same kernel (not clamped: G's residual path uses it)."""
    h, w = lr.shape[-2:]
    return F.interpolate(lr, size=(h * scale, w * scale), mode="bicubic", antialias=True, align_corners=False)


class ResidualBlock(nn.Module):
    """conv3-BN-PReLU-conv3-BN + skip (the paper's B residual blocks, after Gross & Wilber)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.PReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRResNetGenerator(nn.Module):
    """9x9 conv, PReLU -> B residual blocks -> conv3, BN, + long skip -> log2(scale) x [conv3 to 4*width,
    PixelShuffle(2), PReLU] -> 9x9 conv to C (linear output, as the paper's figure: no tanh).

    `residual=True` (not in the paper) adds a bicubic upsample of the input to the output and starts the
    last conv at zero, so the net starts as bicubic and learns the detail bicubic misses."""

    def __init__(self, channels: int, *, n_blocks: int = 16, width: int = 64, scale: int = 4, residual: bool = False):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale {scale} is not one of {', '.join(map(str, SCALES))}")
        self.scale, self.residual = scale, residual
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(n_blocks)])
        self.trunk_end = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        ups = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.PReLU()]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        if residual:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, lr: Tensor) -> Tensor:  # [N, C, h, w] -> [N, C, h*scale, w*scale]
        x = self.head(lr)
        x = x + self.trunk_end(self.blocks(x))  # long skip over the residual blocks
        out = self.tail(self.upsample(x))
        return out + upscale_bicubic(lr, self.scale) if self.residual else out

    @property
    def context(self) -> int:
        """LR pixels on each side that one output pixel depends on (the receptive-field radius)."""
        lr_convs = 4 + 2 * len(self.blocks) + 1  # 9x9 head, two 3x3 per block, the trunk's 3x3
        up = sum(1.0 / 2**i for i in range(int(math.log2(self.scale))))  # stage i's 3x3 runs at 2^i x LR
        return lr_convs + math.ceil(up + 4 / self.scale) + 1  # + the 9x9 tail at HR, + 1 for sub-pixel offsets


class SRDiscriminator(nn.Module):
    """8 3x3 convs ndf x (1, 1, 2, 2, 4, 4, 8, 8) with strides 1, 2 alternating, LeakyReLU 0.2, BN on all
    but the first -> dense 1024, LeakyReLU 0.2 -> dense 1 (a logit: BCE on logits, no sigmoid)."""

    def __init__(self, channels: int, resolution: int, *, ndf: int = 64, dense: int = 1024):
        super().__init__()
        layers, c_in = [], channels
        for i, mult in enumerate((1, 1, 2, 2, 4, 4, 8, 8)):
            c_out = ndf * mult
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=1 + i % 2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = resolution
        for _ in range(4):  # four stride-2 convs with padding 1: ceil(side / 2) each
            side = (side + 1) // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, dense), nn.LeakyReLU(0.2),
                                  nn.Linear(dense, 1))

    def forward(self, x: Tensor) -> Tensor:  # [N, C, R, R] -> logits [N]
        return self.head(self.features(x)).squeeze(1)


def upscale_tiled(G: nn.Module, lr: Tensor, scale: int, *, tile: int = 128, overlap: int = 16) -> Tensor:
    """G(lr) computed on tiles of `tile` LR px, each run with `overlap` px of real context on every side
    (less at the image border, exactly as the untiled run sees it) and only its centre kept, so memory
    is bounded by the tile size whatever the input size. The result equals G(lr) exactly when `overlap`
    covers G's receptive field (BN in eval mode); with less, pixels near tile seams differ slightly.
    An input of up to tile + 2 * overlap px a side (one tile with its context) runs in one piece."""
    n, c, h, w = lr.shape
    if h <= tile + 2 * overlap and w <= tile + 2 * overlap:
        return G(lr)
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            cy0, cx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            cy1, cx1 = min(h, y1 + overlap), min(w, x1 + overlap)
            sr = G(lr[:, :, cy0:cy1, cx0:cx1])
            if out is None:
                out = sr.new_empty(n, sr.shape[1], h * scale, w * scale)
            oy, ox = (y0 - cy0) * scale, (x0 - cx0) * scale
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                sr[:, :, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out

"""Pixelwise domain maps: the functions that turn an image of one domain into its counterpart in a
derived domain (MNIST digits -> their edge maps, -> their negatives). The built-in two-domain digit
sets build their B domain with one of these, record its name in `DataInfo.domain_map`, and metrics
that compare a pair of generated images (CoGAN's pixel agreement) apply the same map.

Each map takes and returns uint8 [N, C, H, W] (same shape)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

EDGE_THRESHOLD = 1.0  # Sobel magnitude on [0, 1] intensities (its maximum is 4 * sqrt(2))


def edge_map(images: torch.Tensor, threshold: float = EDGE_THRESHOLD) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, H, W] binary edge maps (255 on the outlines), per channel."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernel = torch.stack([kx, kx.t()])[:, None]  # [2, 1, 3, 3]: d/dx, d/dy
    n, c, h, w = images.shape
    flat = images.reshape(n * c, 1, h, w)
    out = torch.empty_like(flat)
    for i in range(0, flat.shape[0], 8192):  # chunks keep the float copy small
        x = F.pad(flat[i:i + 8192].float() / 255, (1, 1, 1, 1), mode="replicate")
        g = F.conv2d(x, kernel)  # [n, 2, H, W]
        out[i:i + 8192] = (g.square().sum(1, keepdim=True).sqrt() > threshold).to(torch.uint8) * 255
    return out.reshape(n, c, h, w)


def negative(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> 255 - uint8 (white digits on black -> black digits on white)."""
    return 255 - images


DOMAIN_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"edges": edge_map, "negative": negative}

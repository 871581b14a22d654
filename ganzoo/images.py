"""Image edges: float tensors in [-1, 1] <-> uint8 PNG files, grids."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from .storage import atomic_write


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] float [.., C, H, W] -> uint8 [.., C, H, W] on the CPU."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def to_pil(image: Tensor) -> Image.Image:
    """One uint8 or [-1, 1] float image [C, H, W] -> PIL (L for 1 channel, RGB for 3)."""
    if image.dtype != torch.uint8:
        image = to_uint8(image)
    arr = image.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def _save_png(img: Image.Image, path: Path) -> None:
    atomic_write(path, lambda f: img.save(f, format="PNG"))


def grid(images: Tensor, nrow: int) -> Tensor:
    """[-1, 1] images [N, C, H, W] -> one uint8 grid image [C, H', W'] with 2-px black padding."""
    from torchvision.utils import make_grid  # imported here: torchvision costs ~2 s at start-up

    g = make_grid(to_uint8(images), nrow=nrow, padding=2, pad_value=0)
    return g[:1] if images.shape[1] == 1 else g  # make_grid makes 1-channel images RGB


def save_grid(images: Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    path = Path(path)
    nrow = nrow or max(1, int(round(images.shape[0] ** 0.5)))
    _save_png(to_pil(grid(images, nrow)), path)
    return path


def save_images(images: Tensor, folder: str | os.PathLike, prefix: str = "", names: list[str] | None = None
                ) -> list[Path]:
    folder = Path(folder)
    out = []
    for i, img in enumerate(to_uint8(images)):
        p = folder / (names[i] if names else f"{prefix}{i:05d}.png")
        _save_png(to_pil(img), p)
        out.append(p)
    return out

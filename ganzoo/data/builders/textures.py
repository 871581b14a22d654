"""Built-in offline `textures`: procedural HR images for super-resolution demos and tests.

Each image is a smooth two-colour gradient background with a low-frequency colour field, over which
3-7 layers are composited. A layer is a region — a convex polygon (3-5 half-planes) or an ellipse,
with an antialiased sharp edge — filled with a flat colour, a linear gradient, a sinusoidal grating,
square-wave stripes or a checkerboard (periods from ~3 px to a quarter of the image, random
orientation); with probability 0.5 an image also gets a line of "text": glyphs of 1-2 short strokes
1-2.5 px wide on a baseline. So every image has what SR must restore: flat areas, smooth ramps,
sharp edges at all angles, periodic textures near the Nyquist limit and thin strokes.

Rendering is analytic (signed distances with a one-pixel smooth edge) at 2x supersampling, then 2x2
box-averaged. All parameters are drawn up front from one seeded generator, rendering runs on one
thread in float32: deterministic for a seed. 1,000 images of 128 px take ~13 s (one thread); results are cached
under `data_home(root)/textures/` like the digits.

Splits: `train` is `num_train` images of `size` px, random-cropped to `resolution` and flipped by the
loader; `test` is `num_test` images of `test_size` px (a different seed), kept whole for `ganzoo eval`
(`hr_images()`).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from ganzoo.data.base import (
    Augment,
    DataError,
    DataInfo,
    TensorImageDataset,
    fingerprint,
)
from ganzoo.registry import DATASETS
from ganzoo.storage import atomic_write, data_home

GENERATOR_VERSION = 1
SPLITS = ("train", "test")
_SS = 1  # supersampling factor (the edges are antialiased analytically)
_LAYERS = 7  # at most this many region layers per image
_GLYPHS, _STROKES = 10, 2  # at most 10 glyphs of 2 strokes in the text line


class HRTensorDataset(TensorImageDataset):
    """Stacked HR images; `hr_images()` yields the whole images for SR evaluation."""

    def hr_images(self):
        for i in range(len(self)):
            yield f"{self.info.name}_{i:04d}", self.images[i]


def _smooth_edge(sd: torch.Tensor, px: float) -> torch.Tensor:
    """Coverage of a region from its signed distance (negative inside), antialiased over one pixel."""
    return (0.5 - sd / px).clamp(0, 1)


def _render_batch(g: torch.Generator, b: int, size: int, channels: int) -> torch.Tensor:
    """b images [b, C, size, size] float in [0, 1]."""
    P = size * _SS
    px = 1.0 / P  # one fine pixel in image units ([0, 1] across)
    t = (torch.arange(P, dtype=torch.float32) + 0.5) / P
    y, x = t.view(1, P, 1), t.view(1, 1, P)  # broadcast to [b, P, P]

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(b, *shape, generator=g)

    def colour():
        c = torch.rand(b, channels, generator=g)
        return c.view(b, channels, 1, 1)

    def unit(theta):
        return torch.cos(theta).view(b, 1, 1), torch.sin(theta).view(b, 1, 1)

    # background: a two-colour ramp along a random direction + a low-frequency colour field
    dx, dy = unit(u(0, 2 * math.pi))
    ramp = ((x - 0.5) * dx + (y - 0.5) * dy + 0.5).clamp(0, 1)[:, None]
    img = colour() + (colour() - colour()) * ramp
    for _ in range(2):
        fx, fy = unit(u(0, 2 * math.pi))
        f, ph = u(0.5, 2.0).view(b, 1, 1), u(0, 2 * math.pi).view(b, 1, 1)
        wave = torch.sin(2 * math.pi * f * (x * fx + y * fy) + ph)[:, None]
        img = img + 0.08 * (2 * torch.rand(b, channels, 1, 1, generator=g) - 1) * wave

    n_layers = torch.randint(3, _LAYERS + 1, (b,), generator=g)
    for k in range(_LAYERS):
        active = (k < n_layers).float().view(b, 1, 1, 1)
        cx, cy = u(0.1, 0.9).view(b, 1, 1), u(0.1, 0.9).view(b, 1, 1)
        # region: convex polygon (max of half-plane distances) or ellipse
        radius = u(0.08, 0.4)
        sides = torch.randint(3, 6, (b,), generator=g)
        base = u(0, 2 * math.pi)
        poly = torch.full((b, P, P), -math.inf)
        for j in range(5):
            nx, ny = unit(base + 2 * math.pi * j / 5 + u(-0.4, 0.4))
            d = (x - cx) * nx + (y - cy) * ny - (radius * u(0.6, 1.2)).view(b, 1, 1)
            poly = torch.where((j < sides).view(b, 1, 1), torch.maximum(poly, d), poly)
        ex, ey = unit(u(0, math.pi))
        ra, rb = radius.view(b, 1, 1), (radius * u(0.3, 1.0)).view(b, 1, 1)
        pa, pb = (x - cx) * ex + (y - cy) * ey, -(x - cx) * ey + (y - cy) * ex
        ell = (torch.sqrt((pa / ra) ** 2 + (pb / rb) ** 2) - 1) * rb  # ~ signed distance near the edge
        shape_kind = torch.rand(b, generator=g) < 0.5
        mask = _smooth_edge(torch.where(shape_kind.view(b, 1, 1), poly, ell), px)[:, None]  # [b, 1, P, P]
        # fill: flat, linear gradient, sine grating, square stripes, checkerboard
        gx, gy = unit(u(0, 2 * math.pi))
        period_px = torch.exp(u(math.log(3.0), math.log(size / 4))).view(b, 1, 1)  # in output pixels
        freq = size / period_px  # cycles per image
        ph = u(0, 2 * math.pi).view(b, 1, 1)
        along, across = x * gx + y * gy, -x * gy + y * gx
        s1 = torch.sin(2 * math.pi * freq * along + ph)
        s2 = torch.sin(2 * math.pi * freq * across + ph)
        sharp = period_px * _SS / (2 * math.pi)  # slope that makes a square wave's edge ~1 fine px wide
        # kinds: 0 flat (c1 = c0), 1 linear gradient, 2 sine grating, 3 square stripes, 4 checkerboard
        kind = torch.randint(0, 5, (b,), generator=g).view(b, 1, 1)
        slope = torch.where(kind >= 3, sharp, torch.ones_like(sharp))
        s1 = torch.where(kind == 4, s1 * s2, s1)
        wave = (0.5 + 0.5 * slope * s1).clamp_(0, 1)
        ramp_fill = ((along - (cx * gx + cy * gy)) / (2 * radius.view(b, 1, 1)) + 0.5).clamp_(0, 1)
        w = torch.where(kind == 1, ramp_fill, wave)[:, None]  # [b, 1, P, P]
        c0, c1 = colour(), colour()
        c1 = torch.where((kind == 0).view(b, 1, 1, 1), c0, c1)
        layer = c0 + (c1 - c0) * w
        img = img + active * mask * (layer - img)

    # a line of text-like glyphs on half of the images
    has_text = (torch.rand(b, generator=g) < 0.5).float().view(b, 1, 1, 1)
    height = u(6, 18).view(b, 1) / size  # glyph height
    width_px = u(1.0, 2.5).view(b, 1) / size  # stroke width
    x0, y0 = u(0.05, 0.4).view(b, 1), u(0.2, 0.85).view(b, 1)
    n_glyphs = torch.randint(3, _GLYPHS + 1, (b, 1), generator=g)
    dist = torch.full((b, P, P), math.inf)
    for j in range(_GLYPHS):
        gx0 = x0 + j * height * 0.75
        for _ in range(_STROKES):
            ax, ay = gx0 + u(0, 0.5, 1) * height, y0 - u(0, 1, 1) * height
            bx, by = gx0 + u(0, 0.5, 1) * height, y0 - u(0, 1, 1) * height
            on = (j < n_glyphs) & (torch.rand(b, 1, generator=g) < 0.8)
            vx, vy = (bx - ax).view(b, 1, 1), (by - ay).view(b, 1, 1)
            wx, wy = x - ax.view(b, 1, 1), y - ay.view(b, 1, 1)
            h = ((wx * vx + wy * vy) / (vx * vx + vy * vy + 1e-12)).clamp(0, 1)
            d2 = (wx - h * vx).square_() + (wy - h * vy).square_()
            dist = torch.where(on.view(b, 1, 1), torch.minimum(dist, d2), dist)
    ink = _smooth_edge(dist.sqrt() - width_px.view(b, 1, 1) / 2, px)[:, None]
    img = img + has_text * ink * (colour() - img)

    img = F.avg_pool2d(img.clamp(0, 1), _SS)  # [b, C, size, size]
    return img


def render_textures(n: int, seed: int, size: int, channels: int = 3) -> torch.Tensor:
    """n images uint8 [n, C, size, size]; deterministic in (seed, size, channels) (one thread, float32)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(seed)
        batch = max(1, (64 * 128 * 128) // (size * size))
        out = torch.empty(n, channels, size, size, dtype=torch.uint8)
        for start in range(0, n, batch):
            b = min(batch, n - start)
            out[start:start + b] = (_render_batch(g, b, size, channels) * 255).round().to(torch.uint8)
        return out
    finally:
        torch.set_num_threads(threads)


def _load(path, shape: tuple) -> torch.Tensor | None:
    try:
        im = torch.load(path, map_location="cpu", weights_only=True)["images"]
        return im if im.dtype == torch.uint8 and tuple(im.shape) == shape else None
    except Exception:  # missing / corrupt / foreign file: regenerate
        return None


@DATASETS.register("textures")
def build_textures(*, split: str = "train", seed: int = 0, root: str | None = None, num_train: int = 1000,
                   num_test: int = 8, size: int = 128, test_size: int = 256, resolution: int = 96,
                   channels: int = 3, flip: bool = True) -> HRTensorDataset:
    """The built-in procedural HR images (see the module doc); cached after the first call."""
    del seed  # the data does not change with the training seed
    if split not in SPLITS:
        raise DataError(f"textures: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if channels not in (1, 3):
        raise DataError(f"textures: channels must be 1 or 3 (got {channels}); set dataset.channels")
    n, s = (int(num_train), int(size)) if split == "train" else (int(num_test), int(test_size))
    if n < 1:
        raise DataError(f"textures: num_{split} must be >= 1 (got {n}); set dataset.num_{split}")
    if not 8 <= int(resolution) <= int(size):
        raise DataError(f"textures: dataset.resolution={resolution} must be in 8..dataset.size={size}: the crops "
                        "are cut from the images")
    if s < 8:
        raise DataError(f"textures: image size {s} is below 8 px; set dataset.size / dataset.test_size")
    params = {"dataset": "textures", "version": GENERATOR_VERSION, "split": split, "size": s, "n": n,
              "channels": channels}
    fp = fingerprint(params)
    path = data_home(root) / "textures" / f"{split}-{fp[:16]}.pt"
    images = _load(path, (n, channels, s, s))
    if images is None:
        images = render_textures(n, int(fingerprint({"textures": split})[:15], 16), s, channels)
        try:
            atomic_write(path, lambda f: torch.save({"images": images, "params": params}, f))
        except OSError as e:  # the cache is an optimisation
            warnings.warn(f"textures: could not write cache {path}: {e}", stacklevel=2)
    info = DataInfo(name="textures", channels=channels, resolution=int(resolution), size=n, fingerprint=fp)
    augment = Augment(crop=int(resolution) if s > int(resolution) else None, flip=bool(flip))
    return HRTensorDataset(info, images, augment=augment)

"""The `super_resolution` suite: metrics with the protocol of the SR papers (Ledig et al. 2017 and the benchmarks
they report on): PSNR and SSIM on the luminance (Y) channel, `scale` pixels shaved off every border.

Per image: the HR image is cropped to a multiple of the scale (top-left kept, as MATLAB's `modcrop`);
LR = `nn.sr.downscale(HR)` (the training kernel: antialiased bicubic, 8-bit); SR = the model's
`translate(LR)` and the baseline = bicubic upsampling of the same LR, each rounded to 8 bits; then
- Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B in [0, 1] (ITU-R BT.601 as MATLAB's
  `rgb2ycbcr`, values in [16, 235]); one-channel images are used as they are;
- PSNR = 10 log10(255² / MSE) over the shaved Y (inf for identical images);
- SSIM (Wang et al. 2004): 11x11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, statistics
  over each window with weights summing to 1 (biased variances), valid positions only, mean of the map
  (as the authors' `ssim_index.m` and `skimage.metrics.structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)`).
Means over images are means of the per-image values (as the papers' tables). All in float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..build import Splits
from ..data.base import DataError
from ..data.builders.hr_folder import folder_images
from ..images import to_uint8
from ..models.base import GANModel
from ..nn.sr import downscale, upscale_bicubic
from ..registry import SUITES
from .suite import EvalOptions, MetricSuite

_Y = (65.481, 128.553, 24.966)


def y_channel(img: Tensor) -> Tensor:
    """uint8 [C, H, W] -> float64 [H, W]: BT.601 luma in [16, 235] for RGB, the values for one channel."""
    x = img.to(torch.float64)
    if x.shape[0] == 1:
        return x[0]
    x = x / 255.0
    return 16.0 + _Y[0] * x[0] + _Y[1] * x[1] + _Y[2] * x[2]


def crop_to_multiple(img: Tensor, scale: int) -> Tensor:
    """[C, H, W] -> [C, H - H % scale, W - W % scale] (the top-left part)."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def shave(y: Tensor, border: int) -> Tensor:
    return y[border:-border, border:-border] if border > 0 else y


def psnr(a: Tensor, b: Tensor, data_range: float = 255.0) -> float:
    """PSNR in dB of two float images of the same shape; inf when they are identical."""
    mse = (a.to(torch.float64) - b.to(torch.float64)).square().mean().item()
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """[size, size] float64 weights summing to 1."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: Tensor, b: Tensor, data_range: float = 255.0, size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean SSIM of two float images [H, W] (see the module doc); images smaller than the window: the
    window is the whole image's size (odd), as there is no valid position otherwise."""
    x, y = a.to(torch.float64)[None, None], b.to(torch.float64)[None, None]
    size = min(size, *(d - (1 - d % 2) for d in x.shape[-2:]))
    w = gaussian_window(size, sigma)[None, None]
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    var_x = F.conv2d(x * x, w) - mu_x**2
    var_y = F.conv2d(y * y, w) - mu_y**2
    cov = F.conv2d(x * y, w) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean().item()


def y_metrics(sr: Tensor, hr: Tensor, border: int) -> tuple[float, float]:
    """(PSNR, SSIM) on Y of two uint8 images [C, H, W], `border` px shaved."""
    ys, yh = shave(y_channel(sr), border), shave(y_channel(hr), border)
    return psnr(ys, yh), ssim(ys, yh)


@torch.no_grad()
def evaluate_sr(model, images: Iterable[tuple[str, Tensor]]) -> dict:
    """Per-image and mean Y-PSNR/SSIM of `model.translate` and of bicubic on whole HR images (uint8)."""
    s, dev = model.scale, model.device
    rows = []
    for name, hr in images:
        hr = crop_to_multiple(hr, s)
        if min(hr.shape[-2:]) < 2 * s + 1:
            continue  # nothing left after the border crop
        lr = downscale(hr[None].to(dev).float() / 127.5 - 1, s)
        sr = to_uint8(model.translate(lr))[0]
        bic = to_uint8(upscale_bicubic(lr, s))[0]
        p, q = y_metrics(sr, hr, s)
        bp, bq = y_metrics(bic, hr, s)
        rows.append({"name": name, "size": list(hr.shape[-2:]), "psnr_y": p, "ssim_y": q, "bicubic_psnr_y": bp,
                     "bicubic_ssim_y": bq})
    if not rows:
        raise ValueError("no image is large enough to evaluate")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y")}
    return {"scale": s, "border": s, "images": len(rows), **mean,
            "psnr_gain_over_bicubic": mean["psnr_y"] - mean["bicubic_psnr_y"], "per_image": rows}


@SUITES.register("super_resolution")
class SuperResolution(MetricSuite):
    """`evaluate_sr` on a folder of HR images (`EvalOptions.data`, `ganzoo eval data=<folder>`), else on
    the whole images of the test split; built once, called by `ganzoo eval` and every
    `trainer.eval_every` steps (the trainer logs the means as eval/psnr_y, eval/ssim_y, ...)."""

    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        self.scale = model.scale
        if opts.data is not None:
            self.images, self.where = list(folder_images(opts.data, model.data.channels)), str(opts.data)
        else:
            try:
                test = splits.test
            except DataError as e:
                raise DataError(f"{str(e).rstrip('.')}; or give ganzoo eval data=<folder of HR images>") from None
            self.images, self.where = list(test.hr_images()), f"{test.info.name} test split"

    def metrics(self, model: GANModel) -> dict:
        try:
            return {"data": self.where, **evaluate_sr(model, self.images)}
        except ValueError as e:
            raise DataError(f"{self.where}: {e} (at least {2 * self.scale + 1} px after cropping to a multiple of "
                            f"{self.scale}): give data=<folder of larger HR images>") from None


def sr_table(metrics: dict):
    """A rich table: one row per image, then the means."""
    from rich.table import Table

    t = Table(title=f"{metrics['model']} x{metrics['scale']} on {metrics['data']} (step {metrics['step']}; Y channel, "
                    f"{metrics['border']}-px border cropped)", title_justify="left")
    for col in ("image", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM"):
        t.add_column(col, style="bold cyan" if col == "image" else None, justify="left" if col == "image" else "right")
    for r in metrics["per_image"]:
        t.add_row(r["name"], f"{r['psnr_y']:.2f}", f"{r['ssim_y']:.4f}", f"{r['bicubic_psnr_y']:.2f}",
                  f"{r['bicubic_ssim_y']:.4f}")
    t.add_row(f"mean of {metrics['images']}", f"{metrics['psnr_y']:.2f}", f"{metrics['ssim_y']:.4f}",
              f"{metrics['bicubic_psnr_y']:.2f}", f"{metrics['bicubic_ssim_y']:.4f}", style="bold")
    return t

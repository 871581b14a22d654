"""pix2pix — Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional Adversarial
Networks", arXiv:1611.07004 (official code: junyanz/pytorch-CycleGAN-and-pix2pix, `pix2pix_model.py`).

Nets (`ganzoo.nn`): G `unet_256` (U-Net with skips, batch norm, dropout 0.5 in the three innermost
non-bottleneck ups), D `basic` (70×70 PatchGAN) on the pair concat(A, B); N(0, 0.02) init.
Loss: a conditional GAN with BCE on logits (`gan_mode: vanilla`; G non-saturating) plus
λ_L1 = 100 · L1(G(A), B); D's loss is halved, (BCE(D(A, G(A)), 0) + BCE(D(A, B), 1)) / 2, which
slows D relative to G (paper §3.3). One iteration: one G forward, then the D step (on the detached
fake, fake first then real as the reference), then the G step through the same forward.
Defaults (conf/model/pix2pix.yaml, as the reference's train options): Adam lr 2e-4, β (0.5, 0.999),
batch 1, 100 epochs at the initial lr then 100 of linear decay to zero.

`direction: BtoA` trains B -> A (the reference's --direction). Inference (`translate`, the training
grids) runs G as the paper (§3.3) and the reference's test.py without --eval do: dropout on, batch
norm with each image's own statistics (one image at a time, as test.py's batch of 1); `eval_mode: true`
uses the running statistics and no dropout instead (test.py --eval).

Deviations (and why):
- The LR decays linearly per step, not per epoch: the reference lowers the LR once per epoch, to
  1 − k/(n_epochs_decay + 1) in decay epoch k (never exactly 0); here it falls smoothly from
  `decay_start` to 0 at the last step (the trainer counts steps; epochs are converted by
  `trainer.max_epochs` / `optim.decay_start_epochs`).
- The G net is checked against the data's resolution at build time (the reference fails inside the
  forward pass): unet_<R> needs sides that are multiples of R; `model.netG=unet_32` for 32-px data.
  The yaml's `netG: auto` picks the deepest U-Net up to unet_256 that fits (unet_256 at the paper's
  256 px, unet_32 on the built-in digits_pairs), so that `ganzoo train model=pix2pix` runs as is.
- The inference dropout masks draw from torch's global generator; training grids fork it, so drawing
  them does not change the training run (exact resume).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.base import DataInfo
from ..errors import UserError
from ..losses import bce, lsgan
from ..nn.norm import run_as_trained
from ..nn.translation import (
    build_discriminator,
    build_generator,
    check_discriminator_fits,
    check_generator_fits,
    fitting_unet,
)
from ..registry import MODELS
from .base import DIRECTIONS, TRANSLATE, Batch, GANModel, Phase

GAN_LOSSES = {"vanilla": bce, "lsgan": lsgan}  # on raw D outputs: BCE on logits / least squares


def _rgb(x: Tensor, channels: int) -> Tensor:
    return x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x


@MODELS.register("pix2pix")
class Pix2Pix(GANModel):
    """Paired image-to-image translation (Isola et al. 2017): U-Net G, PatchGAN D on (A, B), cGAN + L1."""

    needs: ClassVar[frozenset[str]] = frozenset({"A", "B"})
    capabilities = frozenset({TRANSLATE})
    suites = ("translation",)
    pad_multiple: int = 256  # unet_256; set from the net in __init__
    scale: int = 1

    def __init__(self, data: DataInfo, *, netG: str = "unet_256", netD: str = "basic", n_layers_D: int = 3,
                 ngf: int = 64, ndf: int = 64, norm: str = "batch", use_dropout: bool = True,
                 init_type: str = "normal", init_gain: float = 0.02, gan_mode: str = "vanilla",
                 lambda_L1: float = 100.0, direction: str = "AtoB", eval_mode: bool = False):  # noqa: N803
        super().__init__(data)
        if not data.aligned:
            raise ValueError("pix2pix learns from pairs, and this dataset is unpaired: use a paired dataset "
                             "(dataset=digits_pairs, facades, maps, edges2shoes, ...) or model=cyclegan")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r}: use AtoB or BtoA")
        if gan_mode not in GAN_LOSSES:
            raise ValueError(f"gan_mode={gan_mode!r}: use {' or '.join(GAN_LOSSES)}")
        if netG == "auto":
            netG = fitting_unet(data.resolution)  # noqa: N806
        check_generator_fits(netG, data.resolution)
        check_discriminator_fits(netD, n_layers_D, data.resolution)
        self.direction, self.lambda_L1, self.eval_mode = direction, lambda_L1, eval_mode
        self.src, self.dst = ("A", "B") if direction == "AtoB" else ("B", "A")
        c_src, c_dst = (data.channels, data.channels_b) if direction == "AtoB" else (data.channels_b, data.channels)
        self.G = build_generator(netG, c_src, c_dst, ngf=ngf, norm=norm, use_dropout=use_dropout, init_type=init_type,
                                 init_gain=init_gain)
        self.D = build_discriminator(netD, c_src + c_dst, ndf=ndf, n_layers=n_layers_D, norm=norm,
                                     init_type=init_type, init_gain=init_gain)
        self.gan = GAN_LOSSES[gan_mode]
        self.pad_multiple = self.G.pad_multiple

    # -- training -------------------------------------------------------------------------------
    def prepare(self, batch: Batch) -> dict:
        real_a = batch[self.src]
        return {"real_A": real_a, "real_B": batch[self.dst], "fake_B": self.G(real_a)}  # the one G forward

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("G",), self.g_loss)]

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        real_a = ctx["real_A"]
        loss_fake = self.gan(self.D(torch.cat([real_a, ctx["fake_B"].detach()], 1)), False)
        loss_real = self.gan(self.D(torch.cat([real_a, ctx["real_B"]], 1)), True)
        return {"loss": 0.5 * (loss_fake + loss_real), "real": loss_real, "fake": loss_fake}

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        fake_b = ctx["fake_B"]
        loss_gan = self.gan(self.D(torch.cat([ctx["real_A"], fake_b], 1)), True)
        loss_l1 = F.l1_loss(fake_b, ctx["real_B"])
        return {"loss": loss_gan + self.lambda_L1 * loss_l1, "gan": loss_gan, "L1": loss_l1}

    # -- inference ------------------------------------------------------------------------------
    def directions(self) -> tuple[str, ...]:
        return (self.direction,)  # one G: the trained direction only

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str | None = None) -> Tensor:
        """[N, C_src, H, W] in [-1, 1] -> [N, C_dst, H, W]; H, W multiples of `pad_multiple`."""
        if direction is not None and direction != self.direction:
            raise UserError(f"this pix2pix model translates {self.direction} only: drop direction= or use "
                            f"direction={self.direction}")
        if self.eval_mode:
            was = self.G.training
            self.G.eval()
            try:
                return self.G(x)
            finally:
                self.G.train(was)
        return run_as_trained(self.G, x)  # the paper's inference: dropout on, each image's own BN statistics

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator, batch: Batch) -> Tensor:
        """Rows of input | output | target from the fixed real batch (3 images per row)."""
        real_a, real_b = batch[self.src][:n], batch[self.dst][:n]
        seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))
        devices = list(range(torch.cuda.device_count())) if real_a.is_cuda else []
        with torch.random.fork_rng(devices=devices):  # dropout draws must not move the training RNG
            torch.manual_seed(seed)
            fake_b = self.translate(real_a)
        c = max(real_a.shape[1], real_b.shape[1])
        return torch.stack([_rgb(real_a, c), _rgb(fake_b, c), _rgb(real_b, c)], 1).flatten(0, 1)

    def grid_nrow(self, n: int) -> int:
        return 3

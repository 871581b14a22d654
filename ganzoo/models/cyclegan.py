"""CycleGAN — Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", arXiv:1703.10593 (official code: junyanz/pytorch-CycleGAN-and-pix2pix,
`cycle_gan_model.py`, `util/image_pool.py`).

Nets (`ganzoo.nn`, the reference's names): G_A: A -> B and G_B: B -> A, `resnet_9blocks` (instance
norm, reflection padding, no dropout); D_A judges B images, D_B judges A images, each a 70×70
PatchGAN with instance norm; N(0, 0.02) init.
Losses (LSGAN, `gan_mode: lsgan`): G: (D_A(G_A(a)) − 1)² + (D_B(G_B(b)) − 1)²
+ λ_A‖G_B(G_A(a)) − a‖₁ + λ_B‖G_A(G_B(b)) − b‖₁ + λ_idt·(λ_B‖G_A(b) − b‖₁ + λ_A‖G_B(a) − a‖₁), with
λ_A = λ_B = 10, λ_idt = 0.5. D_X: ½[(D_X(real) − 1)² + D_X(fake)²], the fake drawn from a pool of the
last 50 generated images per D (`ganzoo.nn.image_pool`, saved in checkpoints).
One iteration, as the reference: the four translations G_A(a), G_B(G_A(a)), G_B(b), G_A(G_B(b))
once; the G step on both Gs (Ds frozen; the two identity passes G_A(b), G_B(a) happen here); then the
D step on both Ds, each from its pool. G_A and G_B run 3 times each per iteration.
Defaults (conf/model/cyclegan.yaml, the reference's train options): Adam lr 2e-4, β (0.5, 0.999),
batch 1, 100 epochs at the initial lr, then 100 of linear decay to zero.

`direction: BtoA` swaps the dataset's domains (the reference's --direction): G_A then maps dataset B
to dataset A. `translate(x, direction)` picks the G for the asked dataset direction.

Deviations (and why):
- The LR decays linearly per step, not once per epoch (the reference reaches 1/(n_epochs_decay + 1),
  never 0, in its last epoch): the trainer counts steps; epochs are converted by `trainer.max_epochs`
  and `optim.decay_start_epochs`.
- The pool is part of the model state (checkpointed, restored on resume) and draws from torch's
  global generator (checkpointed) instead of Python's `random`; the reference's `--continue_train`
  starts with an empty pool.
- Nets are checked against the data's resolution at build time; an identity loss with A and B of
  different channel counts is refused (the reference asserts input_nc == output_nc).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.base import DataInfo
from ..errors import UserError
from ..losses import bce, lsgan
from ..nn.image_pool import ImagePool
from ..nn.norm import run_as_trained
from ..nn.translation import (
    build_discriminator,
    build_generator,
    check_discriminator_fits,
    check_generator_fits,
)
from ..registry import MODELS
from .base import DIRECTIONS, TRANSLATE, Batch, GANModel, Phase

GAN_LOSSES = {"lsgan": lsgan, "vanilla": bce}  # on raw D outputs: least squares / BCE on logits


def _rgb(x: Tensor, channels: int) -> Tensor:
    return x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x


@MODELS.register("cyclegan")
class CycleGAN(GANModel):
    """Unpaired image-to-image translation (Zhu et al. 2017): two ResNet Gs, two PatchGAN Ds, LSGAN +
    cycle and identity L1, image pools of 50."""

    needs: ClassVar[frozenset[str]] = frozenset({"A", "B"})
    capabilities = frozenset({TRANSLATE})
    suites = ("translation",)
    ema_nets: ClassVar[tuple[str, ...]] = ("G_A", "G_B")
    pad_multiple: int = 4  # resnet generators; set from the net in __init__
    scale: int = 1

    def __init__(self, data: DataInfo, *, netG: str = "resnet_9blocks", netD: str = "basic", n_layers_D: int = 3,
                 ngf: int = 64, ndf: int = 64, norm: str = "instance", use_dropout: bool = False,
                 init_type: str = "normal", init_gain: float = 0.02, gan_mode: str = "lsgan",
                 lambda_A: float = 10.0, lambda_B: float = 10.0, lambda_identity: float = 0.5,  # noqa: N803
                 pool_size: int = 50, direction: str = "AtoB", eval_mode: bool = False):
        super().__init__(data)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r}: use AtoB or BtoA")
        if gan_mode not in GAN_LOSSES:
            raise ValueError(f"gan_mode={gan_mode!r}: use {' or '.join(GAN_LOSSES)}")
        check_generator_fits(netG, data.resolution)
        check_discriminator_fits(netD, n_layers_D, data.resolution)
        self.src, self.dst = ("A", "B") if direction == "AtoB" else ("B", "A")
        c_a, c_b = (data.channels, data.channels_b) if direction == "AtoB" else (data.channels_b, data.channels)
        if lambda_identity > 0 and c_a != c_b:
            raise ValueError(f"the identity loss feeds B images to G_A (A -> B), so A and B need the same channels "
                             f"(here {c_a} and {c_b}): set model.lambda_identity=0")
        self.direction, self.eval_mode = direction, eval_mode
        self.lambda_A, self.lambda_B, self.lambda_identity = lambda_A, lambda_B, lambda_identity
        g = {"ngf": ngf, "norm": norm, "use_dropout": use_dropout, "init_type": init_type, "init_gain": init_gain}
        d = {"ndf": ndf, "n_layers": n_layers_D, "norm": norm, "init_type": init_type, "init_gain": init_gain}
        self.G_A = build_generator(netG, c_a, c_b, **g)
        self.G_B = build_generator(netG, c_b, c_a, **g)
        self.D_A = build_discriminator(netD, c_b, **d)
        self.D_B = build_discriminator(netD, c_a, **d)
        r = data.resolution
        self.fake_B_pool = ImagePool(pool_size, (c_b, r, r))  # fakes shown to D_A
        self.fake_A_pool = ImagePool(pool_size, (c_a, r, r))  # fakes shown to D_B
        self.gan = GAN_LOSSES[gan_mode]
        self.pad_multiple = self.G_A.pad_multiple

    # -- training -------------------------------------------------------------------------------
    def prepare(self, batch: Batch) -> dict:
        real_a, real_b = batch[self.src], batch[self.dst]
        fake_b = self.G_A(real_a)
        fake_a = self.G_B(real_b)
        return {"real_A": real_a, "real_B": real_b, "fake_B": fake_b, "rec_A": self.G_B(fake_b),
                "fake_A": fake_a, "rec_B": self.G_A(fake_a)}

    def phases(self) -> list[Phase]:
        return [Phase("G", ("G_A", "G_B"), self.g_loss), Phase("D", ("D_A", "D_B"), self.d_loss)]

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        real_a, real_b = ctx["real_A"], ctx["real_B"]
        out = {"gan_A": self.gan(self.D_A(ctx["fake_B"]), True),
               "gan_B": self.gan(self.D_B(ctx["fake_A"]), True),
               "cycle_A": self.lambda_A * F.l1_loss(ctx["rec_A"], real_a),
               "cycle_B": self.lambda_B * F.l1_loss(ctx["rec_B"], real_b)}
        if self.lambda_identity > 0:  # G_A should leave a B image alone, G_B an A image
            out["idt_A"] = self.lambda_B * self.lambda_identity * F.l1_loss(self.G_A(real_b), real_b)
            out["idt_B"] = self.lambda_A * self.lambda_identity * F.l1_loss(self.G_B(real_a), real_a)
        return {"loss": sum(out.values()), **out}

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        fake_b = self.fake_B_pool.query(ctx["fake_B"])  # detached; may be older fakes
        fake_a = self.fake_A_pool.query(ctx["fake_A"])
        d_a = 0.5 * (self.gan(self.D_A(ctx["real_B"]), True) + self.gan(self.D_A(fake_b), False))
        d_b = 0.5 * (self.gan(self.D_B(ctx["real_A"]), True) + self.gan(self.D_B(fake_a), False))
        return {"loss": d_a + d_b, "D_A": d_a, "D_B": d_b}

    # -- inference ------------------------------------------------------------------------------
    def directions(self) -> tuple[str, ...]:
        return (self.direction, _other(self.direction))  # G_A: the trained direction, G_B: back

    def generator_for(self, direction: str | None = None) -> torch.nn.Module:
        """G_A for the trained direction (dataset A -> B under AtoB), G_B for the other."""
        direction = direction or self.direction
        if direction not in DIRECTIONS:
            raise UserError(f"direction={direction}: use AtoB or BtoA")
        return self.G_A if direction == self.direction else self.G_B

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str | None = None) -> Tensor:
        """[N, C, H, W] in [-1, 1] -> the other domain; H, W multiples of `pad_multiple`."""
        g = self.generator_for(direction)
        if self.eval_mode:
            was = g.training
            g.eval()
            try:
                return g(x)
            finally:
                g.train(was)
        return run_as_trained(g, x)  # as the reference's test.py (same as eval mode with the default nets)

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator, batch: Batch) -> Tensor:
        """Rows of real A | G_A(A) | G_B(G_A(A)) | real B | G_B(B) | G_A(G_B(B)) (model domains)."""
        real_a, real_b = batch[self.src][:n], batch[self.dst][:n]
        seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))
        devices = list(range(torch.cuda.device_count())) if real_a.is_cuda else []
        with torch.random.fork_rng(devices=devices):  # dropout draws (if any) must not move the training RNG
            torch.manual_seed(seed)
            fake_b = self.translate(real_a, self.direction)
            rec_a = self.translate(fake_b, _other(self.direction))
            fake_a = self.translate(real_b, _other(self.direction))
            rec_b = self.translate(fake_a, self.direction)
        cols = [real_a, fake_b, rec_a, real_b, fake_a, rec_b]
        c = max(x.shape[1] for x in cols)
        return torch.stack([_rgb(x, c) for x in cols], 1).flatten(0, 1)

    def grid_nrow(self, n: int) -> int:
        return 6


def _other(direction: str) -> str:
    return "BtoA" if direction == "AtoB" else "AtoB"

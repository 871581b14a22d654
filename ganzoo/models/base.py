"""The model contract: models return losses, the trainer acts.

A model is an `nn.Module` whose trainable networks are attributes (`self.G`, `self.D`, ...). It never
calls backward/step/zero_grad, never moves itself to a device, never logs, prints or saves. Per
iteration the trainer calls `prepare(batch)` once (work shared by the phases, e.g. the fakes, so an
iteration does no more generator passes than the paper's reference code) and then, for each
`Phase` in order, enables gradients only on the phase's nets, evaluates `phase.loss(batch, ctx)`,
backpropagates `out["loss"]` and steps the phase's optimizer. Every other entry of `out` is a scalar
logged as "<phase>/<key>".

A model class is registered under its name (`@MODELS.register("dcgan")`), its constructor takes
keyword arguments only (the keys of conf/model/<name>.yaml) plus `data: DataInfo` (shape facts from
the dataset), and `ARGS` are saved in checkpoints so that sample/translate/eval rebuild it from the
run folder alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..data.base import DataInfo
from ..losses import accuracy_real_fake, d_bce, g_nonsaturating

Batch = dict[str, Tensor]
LossFn = Callable[[Batch, dict], dict[str, Tensor]]


@dataclass(frozen=True)
class Phase:
    name: str  # "D", "G", "Q": optimizer key and log prefix ("D/loss")
    nets: tuple[str, ...]  # attribute names trained by this phase = the optimizer's parameters
    loss: LossFn  # (batch, ctx) -> {"loss": scalar, **scalars to log}
    every: int = 1  # run on steps where step % every == 0 (n_critic, lazy regularisation)


class GANModel(nn.Module):
    """Base class. Subclasses set `needs`, build nets in __init__ and implement `phases`, and
    `generate` (noise -> images) and/or `translate` (images -> images)."""

    needs: ClassVar[frozenset[str]] = frozenset({"image"})  # batch fields required from the dataset
    ema_nets: ClassVar[tuple[str, ...]] = ("G",)  # nets the trainer keeps an EMA copy of
    unconditional: ClassVar[bool] = True  # False: generate() needs labels

    def __init__(self, data: DataInfo):
        super().__init__()
        self.data = data

    # -- training -------------------------------------------------------------------------------
    def prepare(self, batch: Batch) -> dict:
        """Work shared by the phases of one iteration (done once). Default: nothing."""
        return {}

    def health(self, step: int, stats: dict[str, float]) -> str | None:
        """A warning about the run read off the means of the last log window (`stats`: host floats,
        so no extra sync), or None. The trainer prints the first one of a run. Default: none."""
        return None

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    # -- inference ------------------------------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not generate from noise")

    def generate(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None,
                 z: Tensor | None = None) -> Tensor:
        """n images in [-1, 1], [n, C, H, W]."""
        raise NotImplementedError(f"{type(self).__name__} does not generate from noise")

    def preview(self, n: int, *, generator: torch.Generator, batch: Batch) -> Tensor:
        """Images for the periodic training grid; same `generator` seed -> same inputs every time.
        `batch` is a fixed batch of real data (for image-to-image models). Conditional models show
        one row per class (`class_rows`)."""
        if self.unconditional:
            return self.generate(n, generator=generator)
        labels = class_rows(self.data.num_classes, self.grid_nrow(n), self.device)
        return self.generate(labels.shape[0], labels=labels, generator=generator)

    def grid_nrow(self, n: int) -> int:
        """Images per grid row for n images: square for unconditional models, n // classes (one row
        per class) for conditional ones."""
        if self.unconditional or not self.data.num_classes:
            return max(1, int(round(n**0.5)))
        return max(1, n // self.data.num_classes)

    def default_labels(self, n: int) -> Tensor:
        """Labels when a conditional model is asked for n images without labels: 0, 1, ..., K-1, 0, ..."""
        return torch.arange(n, device=self.device) % self.data.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def class_rows(num_classes: int, per_class: int, device=None) -> Tensor:
    """Labels [K * per_class]: per_class 0s, then per_class 1s, ... (one grid row per class)."""
    return torch.arange(num_classes, device=device).repeat_interleave(per_class)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN init: conv/linear weights N(0, std), norm weights N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class UnconditionalGAN(GANModel):
    """The shared unconditional recipe of GAN and DCGAN: one G forward per iteration (`prepare`),
    then a D step on real and detached fake with BCE on logits, then a G step with the
    non-saturating loss -log σ(D(G(z))). Subclasses build `self.G`, `self.D` and set `z_dim`."""

    z_dim: int

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, self.z_dim, generator=generator, device=self.device) * 2 - 1  # U(-1, 1)

    def prepare(self, batch: Batch) -> dict:
        return {"fake": self.G(self.sample_latent(batch["image"].shape[0]))}

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("G",), self.g_loss)]

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        logits_real = self.D(batch["image"])
        logits_fake = self.D(ctx["fake"].detach())
        return {"loss": d_bce(logits_real, logits_fake), "acc": accuracy_real_fake(logits_real, logits_fake)}

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        return {"loss": g_nonsaturating(self.D(ctx["fake"]))}

    @torch.no_grad()
    def generate(self, n, *, labels=None, generator=None, z=None) -> Tensor:
        z = self.sample_latent(n, generator) if z is None else z
        return self.G(z)

"""cGAN — Mirza & Osindero, "Conditional Generative Adversarial Nets", arXiv:1411.1784.

The class label y (one-hot) is an extra input of both nets. The paper's nets (§4.1, MNIST; here
`net: maxout`, not the default — see below):
- G: z (100-d, uniform) → 200 ReLU; y → 1000 ReLU; the two concatenated → 1200 ReLU → C·H·W
  outputs.
- D: x → maxout 240 units × 5 pieces; y → maxout 50 × 5; the two concatenated → maxout 240 × 4 → 1
  logit. Dropout 0.5 "applied to both the generator and discriminator".
Sizes follow the data: C·H·W outputs / inputs (784 for MNIST), K = num_classes one-hot inputs.
Loss: the minimax game conditioned on y, written as BCE on logits (never sigmoid then BCE); G uses
the non-saturating −log D(G(z|y)|y), as in the GAN paper's §3 advice. Fake labels are uniform over
the classes, drawn once per iteration with z; G runs once per iteration (the D phase sees the
detached fakes). Init N(0, 0.02), biases 0.

Default nets (`net: deep`) — the main deviation, and why: G = [z, one-hot y] → 128 → 256 → 512 →
1024 (batch norm from the second layer, LeakyReLU 0.2) → C·H·W tanh; D = [x, one-hot y] → 512 → 512
→ 512 (LeakyReLU 0.2, dropout 0.4 after the 2nd and 3rd) → 1 logit. The label enters both nets as in
the paper (a one-hot input; a learned embedding concatenated to the input is the same linear map).
The paper's nets (`net: maxout`, every size below) train with its SGD recipe and pylearn2's weight
norm constraints, which we do not have; under Adam they fail, measured on MNIST: with the defaults
D wins outright (D loss → 0 by 4k steps, conditional accuracy 9.8 %), with batch norm in G
(`g_batchnorm`) the game stays balanced but G ignores z within a class (17 % at 2k steps), with
20 % input dropout in D (`d_input_dropout`) or D's lr halved D still wins (D accuracy > 0.96 by
750 steps); the paper's SGD (lr 0.1, momentum 0.5/0.7) without the norm constraints gives NaN in
250 steps. The deep nets reached 57 % conditional accuracy at 2k steps (the maxout nets: 10-17 %) and
pass the ≥ 90 % floor (docs/models.md). Batch 64 (the paper: 100).

Deviations of the paper's nets (net: maxout) (and why):
- Adam lr 2e-4, β (0.5, 0.999) and N(0, 0.02) init instead of SGD (batch 100 is kept, lr 0.1
  decayed ×1/1.00004 per step to 1e-6, momentum 0.5 → 0.7): the shared recipe of the other models;
  an MLP cGAN with BCE on logits and Adam reaches 92% conditional accuracy at 12k steps
  (model-specs §13).
- tanh output over [−1, 1] images instead of a sigmoid over [0, 1] (tanh(x) = 2σ(2x) − 1).
- z ~ U(−1, 1)^100 (zero-mean, as gan/dcgan) instead of the paper's "unit hypercube" U(0, 1)^100.
  Measured on the built-in digits, one run each ("spread" = mean per-pixel std over 20 samples of
  one label, eval mode): with U(0, 1), G ignored z (spread 0.018 after 829 steps: every sample one
  image); with U(−1, 1) the spread was 0.16-0.24 after 600-700 steps.
- No dropout in G by default (`g_dropout: 0.0`; the paper used 0.5 in both nets, and
  `model.g_dropout=0.5` restores it). With it, G used its dropout masks as its noise and ignored z:
  after 663 steps the spread over z was 0.014 with dropout off (eval mode, how samples are drawn)
  against 0.29 from the masks alone, so all eval-mode samples were one image.
- Dropout placement is not stated in the paper: D (and G when g_dropout > 0) drops the outputs of
  every hidden layer, as goodfeli/adversarial does for its hidden layers; no input dropout.
  Samples are drawn in eval mode (no dropout).
Not copied from popular ports: eriklindernoren/PyTorch-GAN's cgan uses an MSE (LSGAN) loss and a
label embedding; here the loss is BCE and y is one-hot, as the paper.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..data.base import DataInfo
from ..losses import accuracy_real_fake, d_bce, g_nonsaturating
from ..nn.conditional import checked_labels, one_hot, random_labels
from ..nn.layers import Maxout
from ..registry import MODELS
from .base import CONDITIONAL, GENERATE, GANModel, Phase, init_normal


class CondMLPGenerator(nn.Module):
    """z → z_units ReLU, y → y_units ReLU, concat → units ReLU → C·H·W tanh (dropout after each hidden layer)."""

    def __init__(self, z_dim: int, num_classes: int, out_shape: tuple[int, int, int], z_units: int = 200,
                 y_units: int = 1000, units: int = 1200, dropout: float = 0.5, batchnorm: bool = False):
        super().__init__()
        self.num_classes, self.out_shape = num_classes, out_shape

        def hidden(n_in: int, n_out: int) -> list[nn.Module]:
            norm = [nn.BatchNorm1d(n_out)] if batchnorm else []
            return [nn.Linear(n_in, n_out, bias=not batchnorm), *norm, nn.ReLU(True), nn.Dropout(dropout)]

        self.z_path = nn.Sequential(*hidden(z_dim, z_units))
        self.y_path = nn.Sequential(*hidden(num_classes, y_units))
        self.joint = nn.Sequential(*hidden(z_units + y_units, units), nn.Linear(units, math.prod(out_shape)),
                                   nn.Tanh())

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        h = torch.cat([self.z_path(z), self.y_path(one_hot(y, self.num_classes, z))], 1)
        return self.joint(h).view(z.shape[0], *self.out_shape)


class CondMaxoutDiscriminator(nn.Module):
    """x → maxout, y → maxout, concat → maxout → 1 logit (dropout after each maxout layer)."""

    def __init__(self, in_features: int, num_classes: int, x_units: int = 240, x_pieces: int = 5,
                 y_units: int = 50, y_pieces: int = 5, units: int = 240, pieces: int = 4, dropout: float = 0.5,
                 input_dropout: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.x_path = nn.Sequential(nn.Flatten(), nn.Dropout(input_dropout), Maxout(in_features, x_units, x_pieces),
                                    nn.Dropout(dropout))
        self.y_path = nn.Sequential(Maxout(num_classes, y_units, y_pieces), nn.Dropout(dropout))
        self.joint = nn.Sequential(Maxout(x_units + y_units, units, pieces), nn.Dropout(dropout),
                                   nn.Linear(units, 1))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = torch.cat([self.x_path(x), self.y_path(one_hot(y, self.num_classes, x))], 1)
        return self.joint(h).squeeze(-1)  # logits [B]


class DeepCondGenerator(nn.Module):
    """[z, one-hot y] → 128 → 256 → 512 → 1024 (BN from the second layer, LeakyReLU 0.2) → C·H·W tanh."""

    def __init__(self, z_dim: int, num_classes: int, out_shape: tuple[int, int, int],
                 widths: tuple[int, ...] = (128, 256, 512, 1024)):
        super().__init__()
        self.num_classes, self.out_shape = num_classes, out_shape
        layers, n_in = [], z_dim + num_classes
        for i, w in enumerate(widths):
            norm = [nn.BatchNorm1d(w)] if i else []
            layers += [nn.Linear(n_in, w, bias=not norm), *norm, nn.LeakyReLU(0.2, True)]
            n_in = w
        self.net = nn.Sequential(*layers, nn.Linear(n_in, math.prod(out_shape)), nn.Tanh())

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([z, one_hot(y, self.num_classes, z)], 1)).view(z.shape[0], *self.out_shape)


class DeepCondDiscriminator(nn.Module):
    """[x, one-hot y] → 512 → 512 → 512 (LeakyReLU 0.2, dropout after the 2nd and 3rd) → 1 logit."""

    def __init__(self, in_features: int, num_classes: int, width: int = 512, dropout: float = 0.4):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(nn.Linear(in_features + num_classes, width), nn.LeakyReLU(0.2, True),
                                 nn.Linear(width, width), nn.Dropout(dropout), nn.LeakyReLU(0.2, True),
                                 nn.Linear(width, width), nn.Dropout(dropout), nn.LeakyReLU(0.2, True),
                                 nn.Linear(width, 1))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([x.flatten(1), one_hot(y, self.num_classes, x)], 1)).squeeze(-1)


@MODELS.register("cgan")
class CGAN(GANModel):
    """Conditional GAN (Mirza & Osindero 2014): the class label is an input of both G and D."""

    needs = frozenset({"image", "label"})
    capabilities = frozenset({GENERATE, CONDITIONAL})
    suites = ("class_accuracy",)

    def __init__(self, data: DataInfo, *, z_dim: int = 100, g_z_units: int = 200, g_y_units: int = 1000,
                 g_units: int = 1200, g_dropout: float = 0.0, d_x_units: int = 240, d_x_pieces: int = 5,
                 d_y_units: int = 50, d_y_pieces: int = 5, d_units: int = 240, d_pieces: int = 4,
                 d_dropout: float = 0.5, d_input_dropout: float = 0.0, g_batchnorm: bool = False,
                 net: str = "deep"):
        super().__init__(data)
        if data.num_classes < 2:
            raise ValueError(f"cgan needs a dataset with 2 or more classes, not {data.num_classes}")
        self.z_dim, k = z_dim, data.num_classes
        shape = (data.channels, data.resolution, data.resolution)
        if net == "maxout":
            self.G = CondMLPGenerator(z_dim, k, shape, g_z_units, g_y_units, g_units, g_dropout, g_batchnorm)
            self.D = CondMaxoutDiscriminator(math.prod(shape), k, d_x_units, d_x_pieces, d_y_units, d_y_pieces,
                                             d_units, d_pieces, d_dropout, d_input_dropout)
        elif net == "deep":
            self.G = DeepCondGenerator(z_dim, k, shape)
            self.D = DeepCondDiscriminator(math.prod(shape), k)
        else:
            raise ValueError(f"unknown net {net!r} (known: maxout, deep): set model.net")
        init_normal(self)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, self.z_dim, generator=generator, device=self.device) * 2 - 1  # U(-1, 1)

    def prepare(self, batch):
        n = batch["image"].shape[0]
        z, y_fake = self.sample_latent(n), random_labels(n, self.data.num_classes, self.device)
        return {"fake": self.G(z, y_fake), "y_fake": y_fake}

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("G",), self.g_loss)]

    def d_loss(self, batch, ctx) -> dict[str, Tensor]:
        logits_real = self.D(batch["image"], batch["label"])
        logits_fake = self.D(ctx["fake"].detach(), ctx["y_fake"])
        return {"loss": d_bce(logits_real, logits_fake), "acc": accuracy_real_fake(logits_real, logits_fake)}

    def g_loss(self, batch, ctx) -> dict[str, Tensor]:
        return {"loss": g_nonsaturating(self.D(ctx["fake"], ctx["y_fake"]))}

    @torch.no_grad()
    def generate(self, n, *, labels=None, generator=None, z=None) -> Tensor:
        n = n if z is None else z.shape[0]
        y = checked_labels(labels, n, self.data.num_classes, self.default_labels(n))
        return self.G(self.sample_latent(n, generator) if z is None else z.to(self.device), y)

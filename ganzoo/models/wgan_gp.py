"""WGAN-GP — Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved Training of Wasserstein
GANs", arXiv:1704.00028 (official code: igul222/improved_wgan_training, gan_mnist.py and gan_cifar.py).

Algorithm 1 of the paper: the critic D (no sigmoid: a real-valued score) minimises
    D(x̃) − D(x) + λ·(‖∇D(x̂)‖₂ − 1)²,  x̂ = ε·x + (1 − ε)·x̃,  ε ~ U[0, 1] per sample, λ = 10,
the generator minimises −D(G(z)), and the critic takes n_critic = 5 steps per generator step, each
on a fresh real batch; Adam α = 1e-4, β1 = 0, β2 = 0.9 (conf/model/wgan_gp.yaml), batch m = 64.

Here one trainer step is one critic iteration: the critic phase runs every step and the G phase
`every=n_critic` steps (on steps 0, 5, 10, ...). Each step brings a fresh real batch and a fresh fake,
so 5 steps are Algorithm 1's 5 critic iterations.

Nets. G: `ganzoo.nn.dcgan.DCGANGenerator` (linear → BN, ReLU → 5×5 stride-2 deconvs with BN and ReLU
→ tanh), as the official CIFAR-10 generator; z ~ N(0, I)^128 as the official code. D: `WGANCritic`
below, the DCGAN discriminator's shape (5×5 stride-2 convs, LeakyReLU 0.2, a linear layer to one
score, sized from the data: 28 px = 28→14→7, 32 px = 32→16→8→4) with no batch norm: batch norm makes
each score depend on the rest of the batch, which the per-sample gradient penalty forbids (the
paper's §4, "No critic batch normalization"). The default `critic_norm: none` is the official
MNIST and CIFAR-10 critics (no normalisation at all); `critic_norm: layer` is the paper's suggested
drop-in, layer norm over (C, H, W) with a per-channel scale and offset on every conv but the first
(= `nn.GroupNorm(1, C)`, eps 1e-5, which is exactly tflib's Layernorm as gan_64x64.py uses it).

The penalty runs in float32 with autocast off: the gradient of D at x̂ is built with
`create_graph=True` and differentiated again, and bf16/fp16 rounding in that double backward would
bias the norm that the penalty pins to 1.

Deviations (and why):
- The G step reuses this step's fake (`prepare`: one G forward per iteration, the trainer's rule);
  Algorithm 1 draws a fresh z for the G step. The z is still fresh each step, but the critic has just
  taken its step on these very fakes (detached), so the G step meets a critic slightly tuned to its own
  batch. A fresh z would cost a second G forward on every G step; with n_critic = 5 the critic sees
  25 fakes per G step either way.
- G steps fall on steps 0, 5, 10, ...: the first comes after one critic step, then every 5 (the
  official loop also steps G at the start of each iteration from iteration 1 on).
- 28-px data: both nets have two stride-2 stages (G: 2·ngf maps at 7×7 → ngf at 14×14 → 28×28;
  critic: ndf at 14×14 → 2·ndf at 7×7), one fewer than the official MNIST nets (G: 4·DIM at 4×4 →
  2·DIM at 8×8 cropped to 7×7 → ...; critic ... → 4·DIM at 4×4): ganzoo's DCGAN sizing (`stages_for`) instead of a
  hand-cropped 28-px net.
  The official MNIST G has no batch norm and a sigmoid output over [0, 1]; here G is the CIFAR-10 one
  (BN, tanh over ganzoo's [−1, 1] images). At 32 px the nets are the official CIFAR-10 ones at
  ngf = ndf = DIM.
- β1 = 0 as the paper's Algorithm 1; the official gan_mnist.py and gan_cifar.py use β1 = 0.5
  (`optim.betas=[0.5,0.9]`; no measured difference after 5,000 steps on the digits, docs/models.md).
- Initialisation: PyTorch's defaults (fan-in scaled uniform); the paper states none, the official
  tflib draws fan-scaled uniform weights too (He for convs, Glorot for linears), not DCGAN's N(0, 0.02).
- ngf = ndf = 64 by default (the official MNIST DIM; its CIFAR-10 file uses 128 and notes that 64 is
  better).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.base import DataInfo
from ..nn.dcgan import DCGANGenerator, stages_for
from ..registry import MODELS
from .base import GENERATE, Batch, Phase, UnconditionalGAN

CRITIC_NORMS = ("none", "layer")


class WGANCritic(nn.Module):
    """DCGAN-shaped critic without batch norm: one real-valued score per image, [B]."""

    def __init__(self, img_channels: int, resolution: int, ndf: int = 64, kernel: int = 5, norm: str = "none"):
        super().__init__()
        if norm not in CRITIC_NORMS:
            raise ValueError(f"unknown critic_norm {norm!r} (known: {', '.join(CRITIC_NORMS)}): set model.critic_norm")
        start, k = stages_for(resolution)
        ch = [img_channels] + [ndf * 2**i for i in range(k)]  # e.g. 1, 64, 128 (28 px); 3, 64, 128, 256 (32 px)
        pad = (kernel - 1) // 2
        layers: list[nn.Module] = []
        for i in range(k):
            layers.append(nn.Conv2d(ch[i], ch[i + 1], kernel, 2, pad))
            if norm == "layer" and i > 0:
                layers.append(nn.GroupNorm(1, ch[i + 1], eps=1e-5))  # per-sample statistics over (C, H, W)
            layers.append(nn.LeakyReLU(0.2))  # not in-place: the penalty differentiates through it twice
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch[-1] * start * start, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).flatten(1)).squeeze(-1)  # [B]


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """(E[(‖∇D(x̂)‖₂ − 1)²], the mean ‖∇D(x̂)‖₂) over x̂ = ε·real + (1 − ε)·fake, ε ~ U[0, 1] per sample.
    In float32 with autocast off; `fake` must be detached (the penalty trains the critic only)."""
    with torch.autocast(real.device.type, enabled=False):
        real, fake = real.float(), fake.float()
        eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)  # [N, 1, 1, 1]
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        # scores are independent across the batch, so d(sum of scores)/dx̂_i = ∇D(x̂_i)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        norm = grad.flatten(1).norm(2, dim=1)  # [N]
        return (norm - 1).square().mean(), norm.detach().mean()


@MODELS.register("wgan_gp")
class WGANGP(UnconditionalGAN):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): a batch-norm-free critic, n_critic = 5."""

    capabilities = frozenset({GENERATE})
    suites = ("histogram",)

    def __init__(self, data: DataInfo, *, z_dim: int = 128, ngf: int = 64, ndf: int = 64, kernel: int = 5,
                 critic_norm: str = "none", gp_lambda: float = 10.0, n_critic: int = 5):
        super().__init__(data)
        if n_critic < 1:
            raise ValueError(f"n_critic={n_critic}: the critic needs at least 1 step per generator step")
        self.z_dim, self.gp_lambda, self.n_critic = z_dim, gp_lambda, n_critic
        self.G = DCGANGenerator(z_dim, data.channels, data.resolution, ngf, kernel)
        self.D = WGANCritic(data.channels, data.resolution, ndf, kernel, critic_norm)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.z_dim, generator=generator, device=self.device)  # N(0, I), as the official code

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("G",), self.g_loss, every=self.n_critic)]

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        real, fake = batch["image"], ctx["fake"].detach()
        wasserstein = self.D(real).mean() - self.D(fake).mean()  # the critic's estimate of W(P_r, P_g)
        gp, grad_norm = gradient_penalty(self.D, real, fake)
        return {"loss": -wasserstein + self.gp_lambda * gp, "wasserstein": wasserstein.detach(), "gp": gp.detach(),
                "grad_norm": grad_norm}

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        return {"loss": -self.D(ctx["fake"]).mean()}

"""UNIT — Liu, Breuel & Kautz, "Unsupervised Image-to-Image Translation Networks", arXiv:1703.00848
(official code: mingyuliutw/UNIT; the paper's own code is its branch version_02, `cocogan_nets.py`
`COCOResGen` / `COCODis`, `cocogan_trainer.py`, `exps/unit/corgi2husky.yaml`).

Shared-latent assumption: a pair of VAE-GANs whose encoders E_A, E_B share their last block(s) and
whose generators G_A, G_B share their first block(s) — the same Parameter objects (`E_A.shared is
E_B.shared`, `G_A.shared is G_B.shared`), updated once per step by the trainer.
- E_X: 7×7 stride-1 conv + LeakyReLU (no norm), (n_enc_front_blk − 1) stride-2 3×3 convs + InstanceNorm
  + ReLU, n_enc_res_blk InstanceNorm residual blocks; then the shared n_enc_shared_blk residual blocks.
  Its output is μ, the mean of q(z|x) = N(μ, I): in training z = μ + ε, ε ~ N(0, I) (the code's
  GaussianNoiseLayer), at test z = μ. KL(q ‖ N(0, I)) reduces to ½‖μ‖² + const; the code's loss is mean(μ²).
- G_X: the shared n_gen_shared_blk residual blocks, n_gen_res_blk residual blocks, (n_gen_front_blk − 1)
  stride-2 3×3 transposed convs + InstanceNorm + ReLU, a 1×1 transposed conv and tanh.
- D_X (judges domain X): n_layer stride-2 3×3 convs + LeakyReLU (no norm), a 1×1 conv to one logit per
  output cell. LeakyReLU slope 0.01 (PyTorch's default, as the code). Every conv weight N(0, 0.02), biases
  at PyTorch's default (the code's gaussian_weights_init).
Losses (the code's gen_update / dis_update; the paper's λ0..λ4 = 10, 0.1, 100, 0.1, 100):
  G: gan_w·[BCE(D_A(x_ba), 1) + BCE(D_B(x_ab), 1)] + recon_kl_w·[mean μ_a² + mean μ_b²]
     + recon_x_w·[‖x_aa − a‖₁ + ‖x_bb − b‖₁] + recon_kl_cyc_w·[mean μ_aba² + mean μ_bab²]
     + recon_x_cyc_w·[‖x_aba − a‖₁ + ‖x_bab − b‖₁],
  with x_aa = G_A(z_a), x_ab = G_B(z_a), x_aba = G_A(E_B(x_ab) + ε) (μ_aba = E_B(x_ab)), and the same for b.
  D: gan_w·[BCE(D_A(a), 1) + BCE(D_A(x_ba), 0) + BCE(D_B(b), 1) + BCE(D_B(x_ab), 0)].
One iteration, as the code's loop: the D update, then the G update (E_A, E_B, G_A, G_B together).
`prepare` encodes a and b once, decodes [z_a; z_b] once per generator (x_aa, x_ba from G_A; x_ab, x_bb
from G_B, one batched call each, as the code), then the two cycle passes: E_A, E_B, G_A, G_B run twice
each. Both updates use these translations (the D step detached); the code recomputes them in
dis_update, a third pass per net that changes nothing but the noise draw (the D step does not touch
the generators), so it is not repeated here.
Optimiser: Adam lr 1e-4, β (0.5, 0.999), weight decay 1e-4, both nets (the code's trainer).

Digit settings (conf/model/unit.yaml). The paper's translation configs are for 216-256 px photos (ch 64,
3 front blocks, 3 private residual blocks a side around 1 shared block each way, a 6-layer D, batch 1);
its digit nets (CoVAE32x32, domain adaptation, other losses and no cycle term) keep only the lowest
layers private — the first conv of each encoder, the last transposed conv (+ 1×1 output conv) of each
generator — and share everything above. The defaults put that split into the COCOResGen layout at 32 px:
ch 32, 2 front blocks (private: 7×7 conv + one stride-2 conv, 32 → 16 px, 64 channels), no private
residual blocks, 2 shared residual blocks each way, the generator's private part one stride-2 transposed
conv + the 1×1 output conv; D with 4 stride-2 layers (a 2×2 logit map, as corgi2husky's 6 layers give a
small map at 216 px); batch 1 and 500k iterations as the code (on one CPU thread batch 1 makes ~4x the
updates per CPU-second of batch 8, and progress per update was about the same). The photo layout is `n_enc_front_blk=3 n_gen_front_blk=3 n_enc_res_blk=3
n_gen_res_blk=3 n_enc_shared_blk=1 n_gen_shared_blk=1 ch=64 dis_n_layer=6`. With the photo split
(3 front blocks, 1 private + 1 shared residual block a side) the translations were still at chance
after 500 steps on MNIST digits -> edges (each G drew one glyph for every input): the private layers
could map the two domains to separate parts of the latent space. The paper's λs, optimiser and init
are kept.

Deviations (and why):
- The direct KL is taken on μ (as the code's master branch); version_02 takes mean(z²) on z = μ + ε,
  whose gradient has the same expectation (2μ) and whose value is offset by ~1.
- The D step reuses `prepare`'s translations instead of a fresh generator pass (see above).
- The noise comes from torch's global generator (checkpointed), so resume is exact.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.base import DataInfo
from ..errors import UserError
from ..losses import bce
from ..registry import MODELS
from .base import DIRECTIONS, RECONSTRUCT, TRANSLATE, Batch, GANModel, Phase


def init_conv_normal(net: nn.Module, std: float = 0.02) -> None:
    """The code's gaussian_weights_init: conv weights N(0, std); biases keep PyTorch's default."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)


class ResBlock(nn.Module):
    """The code's INSResBlock: x + IN(conv3×3(ReLU(IN(conv3×3(x))))) (InstanceNorm without affine)."""

    def __init__(self, ch: int):
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.InstanceNorm2d(ch), nn.ReLU(True),
                                   nn.Conv2d(ch, ch, 3, 1, 1), nn.InstanceNorm2d(ch))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.model(x)


def _conv_in_relu(c_in: int, c_out: int, transposed: bool = False) -> nn.Sequential:
    conv = (nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1) if transposed
            else nn.Conv2d(c_in, c_out, 3, 2, 1))
    return nn.Sequential(conv, nn.InstanceNorm2d(c_out), nn.ReLU(True))


class Encoder(nn.Module):
    """E_X: the domain's own front (`front`), then the block shared with the other encoder (`shared`) -> μ."""

    def __init__(self, in_channels: int, ch: int, n_front: int, n_res: int, shared: nn.Module):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 7, 1, 3), nn.LeakyReLU(inplace=True)]
        for _ in range(n_front - 1):
            layers.append(_conv_in_relu(ch, ch * 2))
            ch *= 2
        layers += [ResBlock(ch) for _ in range(n_res)]
        self.front, self.shared = nn.Sequential(*layers), shared

    def forward(self, x: Tensor) -> Tensor:
        return self.shared(self.front(x))  # μ [N, ch·2^(n_front-1), R/2^(n_front-1), same]


class Generator(nn.Module):
    """G_X: the block shared with the other generator (`shared`), then the domain's own back (`back`)."""

    def __init__(self, out_channels: int, ch: int, n_front: int, n_res: int, shared: nn.Module):
        super().__init__()
        ch = ch * 2 ** (n_front - 1)
        layers: list[nn.Module] = [ResBlock(ch) for _ in range(n_res)]
        for _ in range(n_front - 1):
            layers.append(_conv_in_relu(ch, ch // 2, transposed=True))
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, out_channels, 1, 1, 0), nn.Tanh()]
        self.shared, self.back = shared, nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.back(self.shared(z))


class Discriminator(nn.Module):
    """The code's COCODis for one domain: n_layer stride-2 3×3 conv + LeakyReLU, a 1×1 conv -> logits [N·cells]."""

    def __init__(self, in_channels: int, ch: int, n_layer: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 3, 2, 1), nn.LeakyReLU(inplace=True)]
        for _ in range(n_layer - 1):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1), nn.LeakyReLU(inplace=True)]
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, 1, 1, 0))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).flatten()


def kl_unit_gaussian(mu: Tensor) -> Tensor:
    """The code's KL term for q(z|x) = N(μ, I) against N(0, I): mean(μ²) (= 2·KL/dims up to a constant)."""
    return mu.square().mean()


@MODELS.register("unit")
class UNIT(GANModel):
    """Two VAE-GANs with a shared latent space (Liu et al. 2017): E_A, E_B share their last blocks,
    G_A, G_B their first; D_A, D_B; GAN + KL + L1 reconstruction + cycle terms."""

    needs: ClassVar[frozenset[str]] = frozenset({"A", "B"})
    capabilities = frozenset({TRANSLATE, RECONSTRUCT})
    suites = ("translation", "reconstruction")
    ema_nets: ClassVar[tuple[str, ...]] = ("E_A", "E_B", "G_A", "G_B")
    scale: int = 1

    def __init__(self, data: DataInfo, *, ch: int = 32, n_enc_front_blk: int = 2, n_enc_res_blk: int = 0,
                 n_enc_shared_blk: int = 2, n_gen_shared_blk: int = 2, n_gen_res_blk: int = 0,
                 n_gen_front_blk: int = 2, dis_ch: int = 64, dis_n_layer: int = 4, gan_w: float = 10.0,
                 recon_x_w: float = 100.0, recon_kl_w: float = 0.1, recon_x_cyc_w: float = 100.0,
                 recon_kl_cyc_w: float = 0.1):
        super().__init__(data)
        if n_enc_front_blk < 1 or n_enc_front_blk != n_gen_front_blk:
            raise ValueError(f"model.n_enc_front_blk={n_enc_front_blk} and model.n_gen_front_blk={n_gen_front_blk}: "
                             f"set both to the same number >= 1 (the decoder undoes the encoder's downsampling)")
        if n_enc_shared_blk < 1 or n_gen_shared_blk < 0 or n_enc_res_blk < 0 or n_gen_res_blk < 0:
            raise ValueError("model.n_enc_shared_blk must be >= 1 (the shared latent) and the other block counts >= 0")
        if dis_n_layer < 1:
            raise ValueError(f"model.dis_n_layer={dis_n_layer} must be at least 1")
        self.pad_multiple = 2 ** (n_enc_front_blk - 1)
        if data.resolution % self.pad_multiple or data.resolution < 2 ** dis_n_layer:
            raise ValueError(f"UNIT with model.n_enc_front_blk={n_enc_front_blk} and model.dis_n_layer={dis_n_layer} "
                             f"needs a resolution divisible by {self.pad_multiple} and at least {2 ** dis_n_layer} px, "
                             f"the data is {data.resolution} px: set dataset.resolution (e.g. 32)")
        c_a, c_b = data.channels, data.channels_b or data.channels
        latent = ch * 2 ** (n_enc_front_blk - 1)
        enc_shared = nn.Sequential(*(ResBlock(latent) for _ in range(n_enc_shared_blk)))  # E_A.shared is E_B.shared
        dec_shared = nn.Sequential(*(ResBlock(latent) for _ in range(n_gen_shared_blk)))  # G_A.shared is G_B.shared
        self.E_A = Encoder(c_a, ch, n_enc_front_blk, n_enc_res_blk, enc_shared)
        self.E_B = Encoder(c_b, ch, n_enc_front_blk, n_enc_res_blk, enc_shared)
        self.G_A = Generator(c_a, ch, n_gen_front_blk, n_gen_res_blk, dec_shared)
        self.G_B = Generator(c_b, ch, n_gen_front_blk, n_gen_res_blk, dec_shared)
        self.D_A = Discriminator(c_a, dis_ch, dis_n_layer)
        self.D_B = Discriminator(c_b, dis_ch, dis_n_layer)
        init_conv_normal(self)
        self.gan_w, self.recon_x_w, self.recon_kl_w = gan_w, recon_x_w, recon_kl_w
        self.recon_x_cyc_w, self.recon_kl_cyc_w = recon_x_cyc_w, recon_kl_cyc_w

    # -- training -------------------------------------------------------------------------------
    def prepare(self, batch: Batch) -> dict:
        a, b = batch["A"], batch["B"]
        n = a.shape[0]
        mu_a, mu_b = self.E_A(a), self.E_B(b)
        z = torch.cat([mu_a, mu_b])
        z = z + torch.randn_like(z)  # z ~ q(z|x) = N(μ, I)
        x_aa, x_ba = self.G_A(z).split(n)  # [N, C_A, R, R] each: a reconstructed, b translated to A
        x_ab, x_bb = self.G_B(z).split(n)
        mu_aba, mu_bab = self.E_B(x_ab), self.E_A(x_ba)  # the translations encoded back
        x_aba = self.G_A(mu_aba + torch.randn_like(mu_aba))
        x_bab = self.G_B(mu_bab + torch.randn_like(mu_bab))
        return {"mu_a": mu_a, "mu_b": mu_b, "x_aa": x_aa, "x_ba": x_ba, "x_ab": x_ab, "x_bb": x_bb,
                "mu_aba": mu_aba, "mu_bab": mu_bab, "x_aba": x_aba, "x_bab": x_bab}

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D_A", "D_B"), self.d_loss), Phase("G", ("E_A", "E_B", "G_A", "G_B"), self.g_loss)]

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        a, b = batch["A"], batch["B"]
        n = a.shape[0]
        # real and fake in one pass, as the code (no batch statistics in D)
        real_a, fake_a = self.D_A(torch.cat([a, ctx["x_ba"].detach()])).view(2 * n, -1).split(n)
        real_b, fake_b = self.D_B(torch.cat([b, ctx["x_ab"].detach()])).view(2 * n, -1).split(n)
        d_a = bce(real_a, True) + bce(fake_a, False)
        d_b = bce(real_b, True) + bce(fake_b, False)
        return {"loss": self.gan_w * (d_a + d_b), "D_A": d_a, "D_B": d_b}

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        a, b = batch["A"], batch["B"]
        out = {"gan": self.gan_w * (bce(self.D_A(ctx["x_ba"]), True) + bce(self.D_B(ctx["x_ab"]), True)),
               "kl": self.recon_kl_w * (kl_unit_gaussian(ctx["mu_a"]) + kl_unit_gaussian(ctx["mu_b"])),
               "recon": self.recon_x_w * (F.l1_loss(ctx["x_aa"], a) + F.l1_loss(ctx["x_bb"], b)),
               "kl_cyc": self.recon_kl_cyc_w * (kl_unit_gaussian(ctx["mu_aba"]) + kl_unit_gaussian(ctx["mu_bab"])),
               "cycle": self.recon_x_cyc_w * (F.l1_loss(ctx["x_aba"], a) + F.l1_loss(ctx["x_bab"], b))}
        return {"loss": sum(out.values()), **out}

    # -- inference (z = μ, as the code's sample/test) ---------------------------------------------
    def directions(self) -> tuple[str, ...]:
        return DIRECTIONS

    def _pair(self, direction: str | None) -> tuple[nn.Module, nn.Module]:
        direction = direction or "AtoB"
        if direction not in DIRECTIONS:
            raise UserError(f"direction={direction}: use AtoB or BtoA")
        return (self.E_A, self.G_B) if direction == "AtoB" else (self.E_B, self.G_A)

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str | None = None) -> Tensor:
        """[N, C, H, W] in [-1, 1] -> the other domain: G_B(E_A(x)) for AtoB, G_A(E_B(x)) for BtoA."""
        enc, gen = self._pair(direction)
        return gen(enc(x))

    @torch.no_grad()
    def reconstruct(self, x: Tensor, domain: str) -> Tensor:
        """Images of `domain` ("A" or "B") through their own VAE: G_X(E_X(x))."""
        if domain not in ("A", "B"):
            raise UserError(f"domain={domain!r}: use A or B")
        return self.G_A(self.E_A(x)) if domain == "A" else self.G_B(self.E_B(x))

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator, batch: Batch) -> Tensor:
        """Rows of a | recon a | a→B | a→B→A | b | recon b | b→A | b→A→B, as the code's training images."""
        a, b = batch["A"][:n], batch["B"][:n]
        ab, ba = self.translate(a, "AtoB"), self.translate(b, "BtoA")
        cols = [a, self.reconstruct(a, "A"), ab, self.translate(ab, "BtoA"),
                b, self.reconstruct(b, "B"), ba, self.translate(ba, "AtoB")]
        c = max(x.shape[1] for x in cols)
        return torch.stack([x.expand(-1, c, -1, -1) for x in cols], 1).flatten(0, 1)

    def grid_nrow(self, n: int) -> int:
        return 8

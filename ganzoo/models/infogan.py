"""InfoGAN — Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel, "InfoGAN: Interpretable Representation
Learning by Information Maximizing Generative Adversarial Nets", arXiv:1606.03657 (official code:
openai/InfoGAN, `regularized_gan.py`, `infogan_trainer.py`, `run_mnist_exp.py`).

Latents (as `run_mnist_exp.py`): z ~ U(-1, 1)^62, one categorical code c1 ~ Cat(10) (one-hot) and two
continuous codes c2, c3 ~ U(-1, 1); G's input is [z, onehot(c1), c2, c3] (74-d). Names follow the
paper: c1 is the categorical code, c2, c3, ... the continuous ones (`ganzoo sample traverse=c2`).

Nets (the MNIST nets of `regularized_gan.py`, sized from the data: 28 px -> 7x7, 32 px -> 8x8 at
the FC/conv boundary; 1 or 3 channels):
  D body: conv 4x4 s2 ndf, lReLU -> conv 4x4 s2 2·ndf, BN, lReLU -> FC fc_dim, BN, lReLU
  D head: FC 1 (logit).  Q head (on D's body features): FC q_dim, BN, lReLU -> cat_dim logits + cont_dim means
  G: FC fc_dim, BN, ReLU -> FC (res/4)²·2·ngf, BN, ReLU -> deconv 4x4 s2 ngf, BN, ReLU -> deconv 4x4 s2 C, tanh
with ngf = ndf = 64, fc_dim = 1024, q_dim = 128 by default (the official sizes). Q shares D's body:
`self.Q` is the Q head only, applied to `self.D.body` features, so D's and Q's parameters are
disjoint and the D phase trains ("D", "Q") — the official `d_` variables (body, D head, Q head).

Loss (`infogan_trainer.py`, constants dropped): with CE = cross-entropy of Q's c1 logits and
NLL = 0.5·Σ(c_cont − μ)² (a unit-std factored Gaussian, `fix_std=True`; the official logli up to a
constant; `cont_std: learned` is the official `Gaussian(fix_std=False)`: Q also emits log-variances and
NLL = Σ log σ + ½((c − μ)/σ)²), both on the fakes,
  D: BCE(real, fake) + λ_cat·CE + λ_cont·NLL   (= BCE − λ·MI + const; trains D's body, D head, Q head)
  G: −log σ(D(G(z))) + λ_cat·CE + λ_cont·NLL    (non-saturating; trains G)
The D phase evaluates D and Q in one body pass on `fake.detach()` (G is not trained in that phase,
so this is the official D-phase gradient for D and Q); the G phase in one body pass on the live fake.
Defaults (conf/model/infogan.yaml): λ = 1 for all codes (`info_reg_coeff`), Adam β1 0.5, D lr 2e-4,
G lr 1e-3, batch 128, init N(0, 0.02) (BN γ ~ N(1, 0.02)).

Deviations (and why):
- G ends in tanh over [-1, 1] images instead of a sigmoid Bernoulli mean over [0, 1]: ganzoo's data are
  [-1, 1] (tanh(x) = 2σ(2x) − 1, the same family); D's BCE on logits is unchanged. `output: sigmoid` is the
  official range (G ends in a sigmoid; D and Q see real and fake images in [0, 1]; `generate`, `traverse` and
  `predict_codes` still speak [-1, 1]). Measured on the floor recipe: seeds 0 and 1 at 77.9 and 92.4 % code
  accuracy, against 90.1 and 78.6 % in tanh: it moves which seeds entangle, not how many, so tanh stays.
- lReLU slope 0.01 (`leaky_rectify`'s default in the official code), not the paper table's 0.1.
- None in the step itself: the G step draws fresh codes and runs G again (`g_codes: fresh`, the default),
  as the official trainer does (its two `sess.run` calls each sample the latent prior: two G passes per
  iteration; ~10 % slower a step on CPU). `g_codes: shared` reuses the D step's fake (one G pass, the
  ganzoo default elsewhere, and this model's default before). Measured on the floor recipe (half-width
  nets, batch 64, 5,000 steps, seeds 0-4): categorical-code accuracy 78.4-86.2 % (median 79.8 %) shared,
  76.6-88.9 % (median 81.4 %) fresh — the official draw alone does not make the code disentangle on
  every seed (docs/models.md, "Floors over seeds").
- Q outputs only the continuous means: the official net also emits std parameters that `fix_std`
  ignores (they get no gradient either way). `cont_std: learned` emits and uses them (the official
  `Gaussian(fix_std=False)`); on MNIST its unbounded log σ term outweighs the GAN loss (code accuracy
  24-25 % on seeds 1 and 3), so the official MNIST setting, a fixed std, is the default. λ_cont = 0.1 (the
  paper's "smaller λ for continuous codes") moved the five seeds' median from 86.8 to 81.5 %; λ = 1 stays.
- Convs followed by BN have no bias (BN cancels it).
- `q_bn: false` drops the BN of Q's hidden layer (a bias instead; the official head and the paper's table have
  it, so true is the default). Measured on the floor recipe on the two worst seeds: seed 3 69.1 -> 95.3 %, seed 1
  78.6 -> 85.0 % (4/9 and 3/5 still share codes), so it does not make every seed disentangle either.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.base import DataInfo
from ..losses import accuracy_real_fake, d_bce, g_nonsaturating
from ..registry import MODELS
from .base import (
    CODES,
    GENERATE,
    TRAVERSE,
    Batch,
    GANModel,
    Phase,
    class_rows,
    from_unit,
    init_normal,
    to_unit,
)


def _quarter(resolution: int) -> int:
    if resolution % 4:
        raise ValueError(f"infogan needs a resolution divisible by 4 (28, 32, 64, ...), got {resolution}")
    return resolution // 4


class InfoGANGenerator(nn.Module):
    def __init__(self, in_dim: int, channels: int, resolution: int, ngf: int = 64, fc_dim: int = 1024,
                 out: nn.Module | None = None):
        super().__init__()
        self.s, self.top = _quarter(resolution), 2 * ngf
        self.fc = nn.Sequential(nn.Linear(in_dim, fc_dim, bias=False), nn.BatchNorm1d(fc_dim), nn.ReLU(True),
                                nn.Linear(fc_dim, self.top * self.s**2, bias=False),
                                nn.BatchNorm1d(self.top * self.s**2), nn.ReLU(True))
        self.conv = nn.Sequential(nn.ConvTranspose2d(self.top, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf),
                                  nn.ReLU(True), nn.ConvTranspose2d(ngf, channels, 4, 2, 1),
                                  nn.Tanh() if out is None else out)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.fc(x).view(x.shape[0], self.top, self.s, self.s))


class InfoGANDiscriminator(nn.Module):
    """`body(x)` -> features [B, fc_dim] (shared with Q); `forward(x)` -> logits [B]."""

    def __init__(self, channels: int, resolution: int, ndf: int = 64, fc_dim: int = 1024, slope: float = 0.01):
        super().__init__()
        s = _quarter(resolution)
        self.body = nn.Sequential(nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(slope, True),
                                  nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ndf),
                                  nn.LeakyReLU(slope, True), nn.Flatten(),
                                  nn.Linear(2 * ndf * s * s, fc_dim, bias=False), nn.BatchNorm1d(fc_dim),
                                  nn.LeakyReLU(slope, True))
        self.head = nn.Linear(fc_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x)).squeeze(1)


class QHead(nn.Module):
    """Q's own layers, applied to D's body features: -> (categorical logits [B, K], continuous means [B, M], or
    with `learned_std` means then log-variances [B, 2M])."""

    def __init__(self, fc_dim: int, cat_dim: int, cont_dim: int, q_dim: int = 128, slope: float = 0.01,
                 learned_std: bool = False, bn: bool = True):
        super().__init__()
        self.cat_dim = cat_dim
        cont_out = 2 * cont_dim if learned_std else cont_dim  # means, then log-variances (the official layout)
        # bn=False drops Q's own batch norm (a bias instead); the module indices, and so the state-dict keys, stay
        self.net = nn.Sequential(nn.Linear(fc_dim, q_dim, bias=not bn), nn.BatchNorm1d(q_dim) if bn else nn.Identity(),
                                 nn.LeakyReLU(slope, True), nn.Linear(q_dim, cat_dim + cont_out))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(categorical logits [B, K], continuous params [B, M] means, or [B, 2M] means then log-variances)."""
        out = self.net(h)
        return out[:, :self.cat_dim], out[:, self.cat_dim:]


@MODELS.register("infogan")
class InfoGAN(GANModel):
    """InfoGAN (Chen et al. 2016): a GAN whose Q head (on D's body) recovers latent codes from the fakes."""

    # c1 is a latent code, not a label (not CONDITIONAL); generate(labels=...) sets it when given
    capabilities = frozenset({GENERATE, CODES, TRAVERSE})
    suites = ("code_accuracy", "histogram")

    def __init__(self, data: DataInfo, *, z_dim: int = 62, cat_dim: int = 10, cont_dim: int = 2,
                 lambda_cat: float = 1.0, lambda_cont: float = 1.0, ngf: int = 64, ndf: int = 64,
                 fc_dim: int = 1024, q_dim: int = 128, slope: float = 0.01, g_codes: str = "fresh",
                 cont_std: str = "fixed", output: str = "tanh", q_bn: bool = True):
        super().__init__(data)
        if output not in ("tanh", "sigmoid"):
            raise ValueError(f"unknown output {output!r} (known: tanh, sigmoid): set model.output")
        # sigmoid: the official range. G ends in a sigmoid and D and Q see [0, 1] images; generate() maps back
        self.unit = output == "sigmoid"
        if g_codes not in ("fresh", "shared"):
            raise ValueError(f"unknown g_codes {g_codes!r} (known: fresh, shared): set model.g_codes")
        if cont_std not in ("fixed", "learned"):
            raise ValueError(f"unknown cont_std {cont_std!r} (known: fixed, learned): set model.cont_std")
        self.fresh_codes = g_codes == "fresh"
        self.learned_std = cont_std == "learned"
        if cat_dim < 1 or cont_dim < 0 or z_dim < 0:
            raise ValueError(f"infogan needs cat_dim >= 1, cont_dim >= 0, z_dim >= 0 (got {cat_dim}, {cont_dim}, "
                             f"{z_dim})")
        self.z_dim, self.cat_dim, self.cont_dim = z_dim, cat_dim, cont_dim
        self.lambda_cat, self.lambda_cont = lambda_cat, lambda_cont
        self.G = InfoGANGenerator(z_dim + cat_dim + cont_dim, data.channels, data.resolution, ngf, fc_dim,
                                  nn.Sigmoid() if self.unit else None)
        self.D = InfoGANDiscriminator(data.channels, data.resolution, ndf, fc_dim, slope)
        self.Q = QHead(fc_dim, cat_dim, cont_dim, q_dim, slope, self.learned_std, q_bn)
        init_normal(self)

    # -- latents --------------------------------------------------------------------------------
    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(z [n, z_dim] ~ U(-1, 1), c1 [n] ~ Cat(cat_dim), continuous codes [n, cont_dim] ~ U(-1, 1))."""
        dev = self.device
        z = torch.rand(n, self.z_dim, generator=generator, device=dev) * 2 - 1
        cat = torch.randint(self.cat_dim, (n,), generator=generator, device=dev)
        cont = torch.rand(n, self.cont_dim, generator=generator, device=dev) * 2 - 1
        return z, cat, cont

    def latent(self, z: Tensor, cat: Tensor, cont: Tensor) -> Tensor:
        """G's input [z, onehot(c1), c2, c3, ...]."""
        return torch.cat([z, F.one_hot(cat, self.cat_dim).to(z.dtype), cont], 1)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.latent(*self.sample_codes(n, generator))

    # -- training -------------------------------------------------------------------------------
    def _fakes(self, n: int) -> dict:
        """{"fake": G of n fresh codes, "cat": c1, "cont": the continuous codes}."""
        z, cat, cont = self.sample_codes(n)
        return {"fake": self.G(self.latent(z, cat, cont)), "cat": cat, "cont": cont}

    def prepare(self, batch: Batch) -> dict:
        return self._fakes(batch["image"].shape[0])

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D", "Q"), self.d_loss), Phase("G", ("G",), self.g_loss)]

    def discriminate(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One pass of D's body -> (D logits [B], Q categorical logits [B, K], Q continuous params: means [B, M],
        then log-variances [B, M] with `cont_std: learned`)."""
        h = self.D.body(x)
        cat_logits, cont_q = self.Q(h)
        return self.D.head(h).squeeze(1), cat_logits, cont_q

    def q(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Q(c | x): Q's head on D's body features (x in D's range: G's own output)."""
        return self.Q(self.D.body(x))

    def d_range(self, x: Tensor) -> Tensor:
        """Images in ganzoo's [-1, 1] -> the range D and G work in ([0, 1] with `output: sigmoid`)."""
        return to_unit(x) if self.unit else x

    def data_range(self, x: Tensor) -> Tensor:
        """G's output -> ganzoo's [-1, 1]."""
        return from_unit(x) if self.unit else x

    def predict_codes(self, x: Tensor) -> Tensor:
        """Q's logits of the categorical code c1 [N, cat_dim] for images x in [-1, 1]."""
        return self.q(self.d_range(x))[0]

    def info_terms(self, cat_logits: Tensor, cont_q: Tensor, cat: Tensor, cont: Tensor) -> dict[str, Tensor]:
        """The mutual-information penalty λ_cat·CE + λ_cont·NLL (= −λ·MI + const) and its parts. NLL is the
        factored Gaussian's, constants dropped: Σ ½(c − μ)² with unit std (`cont_std: fixed`), or
        Σ log σ + ½((c − μ)/σ)² with σ = √exp(Q's log-variance output) (`learned`, the official `Gaussian`)."""
        ce = F.cross_entropy(cat_logits.float(), cat)
        if not self.cont_dim:
            nll = ce.new_zeros(())
        elif self.learned_std:
            mean, logvar = cont_q.float().split(self.cont_dim, 1)
            nll = (0.5 * logvar + 0.5 * (cont - mean).square() * torch.exp(-logvar)).sum(1).mean()
        else:
            nll = 0.5 * (cont_q.float() - cont).square().sum(1).mean()
        return {"info": self.lambda_cat * ce + self.lambda_cont * nll, "q_ce": ce, "q_nll": nll}

    def info_loss(self, fake: Tensor, cat: Tensor, cont: Tensor) -> Tensor:
        """The MI term alone on images `fake` made from codes (cat, cont)."""
        return self.info_terms(*self.q(fake), cat, cont)["info"]

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        logits_real = self.D(self.d_range(batch["image"]))
        logits_fake, cat_logits, cont_q = self.discriminate(ctx["fake"].detach())
        info = self.info_terms(cat_logits, cont_q, ctx["cat"], ctx["cont"])
        with torch.no_grad():
            q_acc = (cat_logits.argmax(1) == ctx["cat"]).float().mean()
            mi_cat = math.log(self.cat_dim) - info["q_ce"]  # lower bound on I(c1; G(z, c)) in nats
        return {"loss": d_bce(logits_real, logits_fake) + info["info"], "acc": accuracy_real_fake(logits_real, logits_fake),
                "q_ce": info["q_ce"].detach(), "q_acc": q_acc, "q_nll": info["q_nll"].detach(), "mi_cat": mi_cat}

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        # the official G step draws z and the codes afresh (a second G pass); shared reuses the D step's
        g = self._fakes(batch["image"].shape[0]) if self.fresh_codes else ctx
        logits_fake, cat_logits, cont_q = self.discriminate(g["fake"])
        adv = g_nonsaturating(logits_fake)
        info = self.info_terms(cat_logits, cont_q, g["cat"], g["cont"])
        return {"loss": adv + info["info"], "adv": adv.detach(), "q_ce": info["q_ce"].detach()}

    # -- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None,
                 z: Tensor | None = None) -> Tensor:
        """n images from random codes; `labels` [n] sets c1 (the categorical code) when given; `z` is
        G's whole input [n, z_dim + cat_dim + cont_dim] (then `labels` is ignored)."""
        if z is None:
            noise, cat, cont = self.sample_codes(n, generator)
            if labels is not None:
                cat = labels.to(cat.device, torch.long)
            z = self.latent(noise, cat, cont)
        return self.data_range(self.G(z))

    def grid_nrow(self, n: int) -> int:
        """One row per c1 value when n is a multiple of cat_dim (the preview grid), else square."""
        if n % self.cat_dim == 0:
            return n // self.cat_dim
        return max(1, int(round(n**0.5)))

    def preview(self, n: int, *, generator: torch.Generator, batch: Batch) -> Tensor:
        """One row per c1 value (max(1, n // cat_dim) images each, from random z and continuous codes)."""
        labels = class_rows(self.cat_dim, max(1, n // self.cat_dim), self.device)
        return self.generate(labels.shape[0], labels=labels, generator=generator)

    def traverse_codes(self) -> list[str]:
        """The continuous codes `traverse` accepts: c2, c3, ... (c1 is the categorical code)."""
        return [f"c{i + 2}" for i in range(self.cont_dim)]

    @torch.no_grad()
    def traverse(self, code: str, steps: int = 10, generator: torch.Generator | None = None,
                 lo: float = -2.0, hi: float = 2.0) -> tuple[Tensor, int]:
        """A grid (images [cat_dim · steps, C, H, W], images per row = steps): c1 = 0..cat_dim-1 down the
        rows, continuous code `code` from lo to hi across the columns; z and the other continuous codes
        are drawn once (from `generator`) and fixed for the whole grid."""
        codes = self.traverse_codes()
        if code not in codes:
            raise ValueError(f"unknown code {code!r} (continuous codes: {', '.join(codes) or 'none'})")
        if steps < 1:
            raise ValueError(f"steps={steps}: need at least one column")
        k = codes.index(code)
        z, _, cont = self.sample_codes(1, generator)
        rows = self.cat_dim
        cat = class_rows(rows, steps, self.device)  # [rows · steps]: 0 x steps, 1 x steps, ...
        cont = cont.repeat(rows * steps, 1)
        cont[:, k] = torch.linspace(lo, hi, steps, device=self.device).repeat(rows)
        return self.data_range(self.G(self.latent(z.expand(rows * steps, -1), cat, cont))), steps

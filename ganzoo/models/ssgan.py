"""SSGAN — Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen, "Improved Techniques for Training
GANs", arXiv:1606.03498, semi-supervised learning with feature matching (§3.1, §5); official code:
openai/improved-gan, mnist_svhn_cifar10/train_mnist_feature_matching.py (+ its nn.py).

Truly semi-supervised: the run sees the labels of a fixed, balanced subset only
(`dataset.labels_per_class` per class — conf/model/ssgan.yaml sets 10, i.e. 100 labels on
MNIST/digits — chosen by `ganzoo.data.loader.balanced_subset` from `dataset.label_seed`, independent
of the training seed). The model `needs` the fields "image", "image_l" and "label_l": the data layer
provides them when `dataset.labels_per_class` is set (`ganzoo.data.loader.with_labeled_subset`); the
trainer names no model. Every training image is still used unlabeled (the normal stream, which in
this mode carries no "label" field); each iteration also carries a labeled batch ("image_l",
"label_l") resampled from the subset by the BatchStream (its own seeded permutations, resumed exactly). (eriklindernoren's "sgan" trains on every label: not semi-supervised.)

D is a K-class classifier whose (K+1)-th "fake" logit is fixed at 0. With logits l(x) ∈ R^K and
Z(x) = Σ_k exp l_k(x), lse(x) = log Z(x):
    p(y = k | x, real) = softmax(l(x))_k,   D(x) = p(real | x) = Z / (Z + 1) = σ(lse(x)).
Losses, as the official code (`loss_lab`, `loss_unl`, `loss_gen`):
    L_lab = CE(l(x_lab), y) = −E[l_y(x_lab)] + E[lse(x_lab)]
    L_unl = ½(−E log D(x_unl)) + ½(−E log(1 − D(G(z))))
          = ½(−E[lse(x_unl)] + E[softplus(lse(x_unl))]) + ½ E[softplus(lse(G(z)))]
            (−log D = −lse + log(Z + 1) = −lse + softplus(lse);  −log(1 − D) = log(Z + 1) = softplus(lse))
    L_D   = L_lab + unlabeled_weight · L_unl
    L_G   = ‖E f(x_unl) − E f(G(z))‖² (mean over units) — feature matching on f = D's last hidden layer
            (the last 250-unit ReLU output, before its noise: `layers[-3]` in the official code).
The official code has the ½ factors in L_unl (the issue's formula omits them; we follow the code).

Nets (MNIST, official; adapted to any C×H×W by flattening):
  G: z ~ U(0, 1)^100 → dense 500 (no bias), BN (shift only), softplus → dense 500, BN, softplus →
     dense C·H·W weight-normalised (trainable scale, bias) → 2σ(a) − 1 = tanh(a/2): exactly the
     official sigmoid image rescaled from [0, 1] to our [−1, 1].
  D: x ∈ [−1, 1] is mapped back to [0, 1] ((x + 1)/2, so the noise and init see the official input
     scale) → Gaussian noise σ 0.3 → dense 1000-500-250-250-250, each weight-normalised
     (W = θ·g/‖θ‖, g fixed after the init as in the official nn.DenseLayer), ReLU, then Gaussian noise
     σ 0.5 → dense K, weight-normalised with a trainable scale. Noise only in training mode.
  Init as the official code: θ ~ N(0, 0.1) in D, Glorot-uniform in G; D's data-dependent init
  (g ← 1/std, b ← −mean/std per unit, layer by layer, noise on) runs once, on 500 training images
  (`data_init_size`, the official `init_param(trainx[:500])`), when the trainer starts a fresh run
  (before its EMA copy; a flag buffer in D records it, and `prepare` runs it on its first batch for a
  model trained outside the trainer).
Defaults (conf/model/ssgan.yaml): Adam lr 3e-3, β (0.5, 0.999) with the official update (eps 1e-8 inside the
square root: `optim.eps_in_sqrt=true`, ganzoo.optimizers); 100 labeled, 100 + 100 unlabeled and 100 fake images
per iteration.

Known failure (`health`): in some seeds D wins around step 1k — D/loss_unl near 0, the feature-matching
loss climbing past 20 — and G's tanh output saturates into one binary image for every z; no gradient
passes a saturated tanh, so it never recovers and D falls back to about the labels-only accuracy
(docs/models.md: 2 of 10 seeds on 2 threads with D's init on the first 200-image batch and torch's fused Adam,
0 of 10 with the official 500-image init and Adam update, now the defaults). The trainer prints the warning once.

Evaluation (the `ssl_accuracy` suite, `ganzoo.metrics.classify`): `classify(x)` returns the K logits;
the suite reports the test accuracy with the live D and, when the run kept an EMA
(`trainer.ema=true`; `ema_nets` = G and D here), with the EMA D — the official code tests with
parameter averages of D (rate 1e-4 ⇔ `trainer.ema_decay=0.9999`), which needs long runs; the trainer's
EMA copy is made after the data-dependent init. Train accuracy on each labeled batch is logged as D/acc.

Feature-matching batches (`fm_batches`): `separate` (default, as the official code) — each iteration's
unlabeled batch of `trainer.batch_size` = 200 images is split in two halves, the first for the D step
and the second as the feature-matching target of the G step (the official code's two independently
shuffled copies of the data), and the G step draws fresh z (2 G forwards per iteration, as the
official code); the labeled and fake batches are 100. `shared` — one G forward and one unlabeled
batch for both steps (the trainer's usual one-pass recipe; measured slower to learn, see
docs/models.md).

Deviations (and why): the D pass on labeled, unlabeled and fake images is one fused forward (no batch
statistics in D, so this changes nothing but speed). Torch's fused Adam (eps outside the square root:
`optim.eps_in_sqrt=false optim.eps=1e-4`) is ~25 % faster a step on CPU but not the official update; 2 of
10 seeds collapsed with it and the earlier 200-image init. G's BN eps 1e-6 as the official code; samples
use BN running statistics (eval mode), the official code always uses batch statistics. A batch without
"image_l" (e.g. a plain BatchStream, as in the shared model tests) trains the unsupervised terms only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.base import DataInfo
from ..losses import feature_matching
from ..registry import MODELS
from .base import CLASSIFY, GENERATE, Batch, GANModel, Phase, to_unit


def unsupervised_loss(logits_unl: Tensor, logits_fake: Tensor) -> Tensor:
    """½(−E log D(x_unl)) + ½(−E log(1 − D(G(z)))) with D = Z/(Z+1), Z = Σ exp l_k (fake logit 0):
    ½(−mean lse(l_unl) + mean softplus(lse(l_unl))) + ½ mean softplus(lse(l_fake))."""
    lse_unl = torch.logsumexp(logits_unl, dim=1)
    lse_fake = torch.logsumexp(logits_fake, dim=1)
    return 0.5 * (-lse_unl.mean() + F.softplus(lse_unl).mean()) + 0.5 * F.softplus(lse_fake).mean()


class GaussianNoise(nn.Module):
    """x + N(0, σ²) in training mode; the identity in eval mode (official nn.GaussianNoiseLayer)."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.sigma > 0:
            return x + self.sigma * torch.randn_like(x)
        return x

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class WNLinear(nn.Module):
    """Weight-normalised dense layer (Salimans & Kingma 2016): W_j = g_j θ_j / ‖θ_j‖ per output unit j.
    `g` is a parameter when `train_scale`, else a buffer (fixed after the data-dependent init, as
    the official nn.DenseLayer's hidden layers)."""

    def __init__(self, in_features: int, out_features: int, *, train_scale: bool = False, init: str = "normal",
                 std: float = 0.1):
        super().__init__()
        theta = torch.empty(out_features, in_features)
        if init == "glorot":
            nn.init.xavier_uniform_(theta)
        else:
            nn.init.normal_(theta, 0.0, std)
        self.weight = nn.Parameter(theta)
        scale = torch.ones(out_features)
        if train_scale:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def factor(self) -> Tensor:
        """g / ‖θ‖ per output unit."""
        return self.scale / torch.linalg.vector_norm(self.weight, dim=1).clamp_min(1e-6)

    def forward(self, x: Tensor) -> Tensor:
        # x·(θ diag(g/‖θ‖))ᵀ + b = (x·θᵀ) ⊙ g/‖θ‖ + b: the scaling is done on the [B, out] output, not on θ
        return torch.addcmul(self.bias, F.linear(x, self.weight), self.factor())

    @torch.no_grad()
    def data_init(self, x: Tensor) -> Tensor:
        """Official init: a = x·W (no bias); g ← g/std(a), b ← −mean(a)/std(a); returns (a − mean)/std."""
        a = F.linear(x, self.weight) * self.factor()
        m = a.mean(0)
        s = (a - m).square().mean(0).add(1e-8).sqrt()
        self.scale.div_(s)
        self.bias.copy_(-m / s)
        return (a - m) / s

    def extra_repr(self) -> str:
        trainable = isinstance(self.scale, nn.Parameter)
        return f"{self.weight.shape[1]} -> {self.weight.shape[0]}, trainable scale={trainable}"


class ShiftBatchNorm(nn.BatchNorm1d):
    """BN without a learned scale, with a learned shift (official nn.batch_norm(..., g=None))."""

    def __init__(self, features: int):
        super().__init__(features, eps=1e-6, affine=False)
        self.shift = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + self.shift


class SSGANGenerator(nn.Module):
    def __init__(self, z_dim: int, out_shape: tuple[int, int, int], hidden: int = 500):
        super().__init__()
        self.out_shape = out_shape
        fc1, fc2 = nn.Linear(z_dim, hidden, bias=False), nn.Linear(hidden, hidden, bias=False)
        for fc in (fc1, fc2):
            nn.init.xavier_uniform_(fc.weight)  # lasagne's default GlorotUniform
        self.net = nn.Sequential(fc1, ShiftBatchNorm(hidden), nn.Softplus(), fc2, ShiftBatchNorm(hidden), nn.Softplus())
        self.out = WNLinear(hidden, math.prod(out_shape), train_scale=True, init="glorot")

    def forward(self, z: Tensor) -> Tensor:
        a = self.out(self.net(z))
        return torch.tanh(0.5 * a).view(z.shape[0], *self.out_shape)  # = 2σ(a) − 1: the official sigmoid in [−1, 1]


class SSGANDiscriminator(nn.Module):
    """Returns the K class logits (fake logit fixed at 0, implicit) and, on request, the last hidden
    layer's features (the feature-matching target)."""

    def __init__(self, in_features: int, num_classes: int, hidden: tuple[int, ...] = (1000, 500, 250, 250, 250),
                 input_noise: float = 0.3, hidden_noise: float = 0.5):
        super().__init__()
        sizes = [in_features, *hidden]
        self.input_noise = GaussianNoise(input_noise)
        self.layers = nn.ModuleList(WNLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.noises = nn.ModuleList(GaussianNoise(hidden_noise) for _ in hidden)
        self.out = WNLinear(sizes[-1], num_classes, train_scale=True)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))  # data-dependent init done

    @staticmethod
    def _input(x: Tensor) -> Tensor:
        return to_unit(x.flatten(1))  # [−1, 1] -> the official [0, 1] pixel scale

    def forward(self, x: Tensor, features: bool = False):
        h = self.input_noise(self._input(x))
        f = h
        for layer, noise in zip(self.layers, self.noises):
            f = F.relu(layer(h))
            h = noise(f)
        logits = self.out(h)
        return (logits, f) if features else logits

    @torch.no_grad()
    def data_init(self, x: Tensor) -> None:
        """The official data-dependent init, layer by layer on a batch of real images (noise on)."""
        h = self.input_noise(self._input(x.float()))
        for layer, noise in zip(self.layers, self.noises):
            h = noise(F.relu(layer.data_init(h)))
        self.out.data_init(h)
        self.initialized.fill_(True)


@MODELS.register("ssgan")
class SSGAN(GANModel):
    """Semi-supervised GAN (Salimans et al. 2016): K-class D with the fake logit at 0, feature matching, 100 labels."""

    needs = frozenset({"image", "image_l", "label_l"})
    data_init_size = 500  # D's data-dependent init: the official init_param(trainx[:500])
    ema_nets = ("G", "D")  # the official code tests with averaged D parameters
    capabilities = frozenset({GENERATE, CLASSIFY})
    suites = ("ssl_accuracy",)

    def __init__(self, data: DataInfo, *, z_dim: int = 100, g_hidden: int = 500,
                 d_hidden: tuple[int, ...] = (1000, 500, 250, 250, 250), input_noise: float = 0.3,
                 hidden_noise: float = 0.5, unlabeled_weight: float = 1.0, fm_batches: str = "separate"):
        super().__init__(data)
        if data.num_classes < 2:
            raise ValueError("SSGAN needs a labeled dataset with at least 2 classes")
        if fm_batches not in ("separate", "shared"):
            raise ValueError(f"unknown fm_batches {fm_batches!r} (known: separate, shared): set model.fm_batches")
        self.z_dim, self.unlabeled_weight = z_dim, unlabeled_weight
        self.fm_separate = fm_batches == "separate"
        shape = (data.channels, data.resolution, data.resolution)
        self.G = SSGANGenerator(z_dim, shape, g_hidden)
        self.D = SSGANDiscriminator(math.prod(shape), data.num_classes, tuple(d_hidden), input_noise, hidden_noise)
        self._init_checked = False  # host-side: D.initialized is read once per process, not every step

    # -- training -------------------------------------------------------------------------------
    def batch_size_of(self, field: str, batch_size: int) -> int:
        # separate: each batch of B unlabeled images is split in two halves — the D step's and the G step's
        # (the official code's two shuffled copies), and the G step draws fresh z; so the labeled batch is B/2
        if field in ("image_l", "label_l") and self.fm_separate:
            return batch_size // 2
        return batch_size

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, self.z_dim, generator=generator, device=self.device)  # U(0, 1), as the official code

    def data_init(self, batch: Batch) -> None:
        with torch.autocast(batch["image"].device.type, enabled=False):
            self.D.data_init(batch["image"])

    def prepare(self, batch: Batch) -> dict:
        if not self._init_checked and self.training:
            self._init_checked = True
            if not bool(self.D.initialized):  # a fresh run (a resumed one restores the flag)
                with torch.autocast(batch["image"].device.type, enabled=False):
                    self.D.data_init(batch["image"])
        return {"fake": self.G(self.sample_latent(self._halves(batch["image"])[0].shape[0]))}

    def _halves(self, x_unl: Tensor) -> tuple[Tensor, Tensor]:
        """(the D step's unlabeled images, the G step's): two halves of the batch, or the batch twice."""
        if not self.fm_separate:
            return x_unl, x_unl
        half = x_unl.shape[0] // 2
        return x_unl[:half], x_unl[half:2 * half]

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("G",), self.g_loss)]

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        x_unl, fake = self._halves(batch["image"])[0], ctx["fake"].detach()
        x_lab = batch.get("image_l")
        parts = [x_unl, fake] if x_lab is None else [x_lab, x_unl, fake]
        logits = self.D(torch.cat([p.to(x_unl.dtype) for p in parts]))  # one fused pass: D has no batch statistics
        n_lab = 0 if x_lab is None else x_lab.shape[0]
        l_lab, l_unl, l_fake = logits[:n_lab], logits[n_lab:n_lab + x_unl.shape[0]], logits[n_lab + x_unl.shape[0]:]
        loss_unl = unsupervised_loss(l_unl, l_fake)
        out = {"loss_unl": loss_unl.detach()}
        loss = self.unlabeled_weight * loss_unl
        if x_lab is not None:
            y = batch["label_l"]
            loss_lab = F.cross_entropy(l_lab.float(), y)  # −l_y + lse(l)
            loss = loss + loss_lab
            out["loss_lab"] = loss_lab.detach()
            out["acc"] = (l_lab.detach().argmax(1) == y).float().mean()  # train accuracy on the labeled batch
        return {"loss": loss, **out}

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        x_unl = self._halves(batch["image"])[1]
        fake = self.G(self.sample_latent(x_unl.shape[0])) if self.fm_separate else ctx["fake"]
        _, f = self.D(torch.cat([x_unl.to(fake.dtype), fake]), features=True)
        return {"loss": feature_matching(f[:x_unl.shape[0]].detach(), f[x_unl.shape[0]:])}

    COLLAPSE_CHECK_FROM = 2500  # steps; healthy runs have D/loss_unl > 0.1 and G/loss < 10 from ~2k on

    def health(self, step: int, stats: dict[str, float]) -> str | None:
        """Warns when G has collapsed: D tells every fake apart (D/loss_unl near 0) while feature
        matching diverges (G/loss > 20). G's tanh output is then saturated — every z gives the same
        binary image — no gradient brings it back, and the test accuracy falls back towards the
        labels-only level (measured: docs/models.md, SSGAN row)."""
        unl, fm = stats.get("D/loss_unl"), stats.get("G/loss")
        if step < self.COLLAPSE_CHECK_FROM or unl is None or fm is None or not (unl < 0.02 and fm > 20):
            return None
        return (f"ssgan: the generator has collapsed by step {step} (D/loss_unl {unl:.4f}, feature-matching "
                f"G/loss {fm:.1f}): the unlabeled images no longer help D and test accuracy will fall back "
                f"towards the labels-only level; restart with another seed (seed=1)")

    # -- inference ------------------------------------------------------------------------------
    def classify(self, x: Tensor) -> Tensor:
        """The K class logits of images x in [−1, 1] (call in eval mode for test-time predictions)."""
        return self.D(x)

    @torch.no_grad()
    def generate(self, n, *, labels=None, generator=None, z=None) -> Tensor:
        return self.G(self.sample_latent(n, generator) if z is None else z)


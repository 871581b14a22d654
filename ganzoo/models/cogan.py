"""CoGAN — Liu & Tuzel, "Coupled Generative Adversarial Networks", arXiv:1606.07536 (official code:
mingyuliutw/CoGAN, `cogan_pytorch/src/net_cogan_mnistedge.py`, `net_cogan_mnist2usps.py` and their
trainers; the Caffe `mnist.edge.cogan` model has the same nets).

Two GANs, one per domain, learn the joint distribution of two domains from unpaired images by
sharing weights: the generators G1 (domain A) and G2 (domain B) share their first layers (the
high-level semantics, decoded from one z), the discriminators D1 and D2 their last layers. A shared
layer is one module held by both nets, so its Parameters are the same objects: the trainer gives each
one Adam update per step, its EMA copy stays shared (the EMA nets are deep-copied together) and a
checkpoint restores one tensor into both.

Nets (the official 28×28 digit nets):
  trunk (shared by G1, G2): z ~ N(0, I)^100 → tconv 4×4 → 8·ngf (4×4) → tconv 3×3 s2 p1 → 4·ngf (7×7)
      → 2·ngf (13×13) → ngf (25×25), each followed by BatchNorm (affine=False) and PReLU; ngf = 128;
  heads (one per G): tconv 6×6 p1 → C channels (28×28), sigmoid;
  stems (one per D): conv 5×5 → 20, maxpool 2;
  tail (shared by D1, D2): conv 5×5 → 50, maxpool 2 → conv 4×4 → 500, PReLU → conv 1×1 → 2 logits
      (fake, real); with `adapt` also conv 1×1 → num_classes class logits on the 500-d feature.
  Init: Xavier-uniform (gain √2) on every conv/tconv, biases 0.1 (the official `xavier_weights_init`).
Losses (2-way softmax cross-entropy, over the concatenated A|B batch, as the official trainers):
  L_D = CE(D(real), real) + CE(D(G(z)), fake),  L_G = CE(D(G(z)), real)  (non-saturating).
Defaults (conf/model/cogan.yaml, the official PyTorch configs): Adam lr 2e-4, β (0.5, 0.999), weight
decay 5e-4 on both players, batch 64 per domain, 5000 iterations (mnistedge_cogan.yaml), images in
[0, 1] (the nets see (x + 1) / 2 of our [-1, 1] images; G's sigmoid output is returned as 2y − 1).

Unsupervised domain adaptation (`adapt: true`; `trainer_cogan_mnist2usps.py`, A = the labeled
source, B = the unlabeled target): the shared tail gets a class head, and the D step adds
cls_weight · CE(class(D1 feature of real A), label) + mse_weight · Σ_features ‖h1(G1(z)) − h2(G2(z))‖²
(mean over the batch; h = the shared 500-d feature), cls_weight 10, mse_weight 0.01. The target
classifier is D2's stem + the shared tail + the class head: `classify(x)` takes B-domain images, and
the `target_accuracy` suite scores it on the target test images (their labels used for scoring
only). `source_only: true` is the baseline without adaptation: the same class net (D1's stem, the
tail, the head) trained on labeled A alone (no GAN, no B image), then applied to B images as they are.

Evaluation: `pair_agreement` (`ganzoo.metrics.coupled`) — the paper's pixel agreement between G2(z)
and the dataset's A→B map of G1(z) (`DataInfo.domain_map`), both binarised at 0.5; `target_accuracy`
with `adapt`. `generate` gives domain A; `generate_domains` the pair from one z (`ganzoo sample`
shows them side by side).

Deviations (and why):
- One z per iteration: the fakes of `prepare` serve the D step (detached) and the G step, as every
  ganzoo model; the official trainer draws a second z for its G step (two G forwards per iteration).
- The shared trunk runs once per iteration for both heads (the official G does the same in one
  module); D1 and D2 run their tail separately (the official D concatenates the two stems' outputs
  first: the same numbers, D has no batch statistics).
- The class loss reuses the D step's features of the real A batch (the official code runs a second
  `classify_a` pass over the same images: the same numbers, one pass fewer).
- 32-px images (the built-in `digits_unpaired` default: MNIST's 28-px digits zero-padded) get a 10×10
  head kernel and a 5×5 conv before the 500-d feature, so the nets keep their layers and strides;
  `dataset.resolution=28` gives the paper's nets exactly (the floor runs use it). Other sizes are
  refused: the paper's digit nets are for digits.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.base import DataInfo
from ..registry import MODELS
from .base import CLASSIFY, GENERATE, JOINT, Batch, GANModel, Phase, from_unit, side_by_side, to_unit

RESOLUTIONS = {28: (6, 4), 32: (10, 5)}  # image side -> (G head kernel, D's 500-unit conv kernel)
REAL, FAKE = 1, 0  # the official class indices of the 2-way D output


def xavier_init(module: nn.Module) -> None:
    """The official `xavier_weights_init`: every conv/tconv (and the 1×1 convs written as Linear)
    Xavier-uniform with gain √2, bias 0.1. `modules()` lists a shared layer once."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight, gain=2**0.5)
            nn.init.constant_(m.bias, 0.1)


def _trunk(z_dim: int, ngf: int) -> nn.Sequential:
    """z [N, z_dim] -> features [N, ngf, 25, 25]: the generators' shared layers."""
    layers: list[nn.Module] = [nn.Unflatten(1, (z_dim, 1, 1))]
    chans = [z_dim, 8 * ngf, 4 * ngf, 2 * ngf, ngf]
    for i, (c_in, c_out) in enumerate(zip(chans, chans[1:])):
        conv = nn.ConvTranspose2d(c_in, c_out, 4, 1) if i == 0 else nn.ConvTranspose2d(c_in, c_out, 3, 2, 1)
        layers += [conv, nn.BatchNorm2d(c_out, affine=False), nn.PReLU()]
    return nn.Sequential(*layers)


class CoupledGenerator(nn.Module):
    """One generator of the pair: the shared `trunk` and its own `head`. `forward(z)` runs both;
    `forward(h=trunk(z))` only the head, so two heads can share one trunk pass. Output in [0, 1]."""

    def __init__(self, trunk: nn.Module, ngf: int, channels: int, kernel: int):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Sequential(nn.ConvTranspose2d(ngf, channels, kernel, 1, 1), nn.Sigmoid())

    def forward(self, z: Tensor | None = None, *, h: Tensor | None = None) -> Tensor:
        return self.head(self.trunk(z) if h is None else h)


class SharedTail(nn.Module):
    """The discriminators' shared layers: stem features [N, c1, S, S] -> the feature h [N, c3]; `adv`
    (h -> 2 logits) and, for domain adaptation, `cls` (h -> class logits)."""

    def __init__(self, channels: tuple[int, int, int], kernel: int, num_classes: int):
        super().__init__()
        c1, c2, c3 = channels
        self.body = nn.Sequential(nn.Conv2d(c1, c2, 5), nn.MaxPool2d(2), nn.Conv2d(c2, c3, kernel), nn.PReLU(),
                                  nn.Flatten())
        self.adv = nn.Linear(c3, 2)  # the official 1×1 conv on a 1×1 map
        self.cls = nn.Linear(c3, num_classes) if num_classes else None

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class CoupledDiscriminator(nn.Module):
    """One discriminator of the pair: its own `stem` and the shared `tail`. Input in [0, 1]."""

    def __init__(self, channels: int, stem_channels: int, tail: SharedTail):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, stem_channels, 5), nn.MaxPool2d(2))
        self.tail = tail

    def features(self, x: Tensor) -> Tensor:
        return self.tail(self.stem(x))  # [N, 500]

    def forward(self, x: Tensor) -> Tensor:
        return self.tail.adv(self.features(x))  # [N, 2]


@MODELS.register("cogan")
class CoGAN(GANModel):
    """Coupled GANs (Liu & Tuzel 2016): G1/G2 share their first layers, D1/D2 their last; optionally
    the unsupervised domain adaptation variant (a shared class head on D)."""

    needs: ClassVar[frozenset[str]] = frozenset({"A", "B"})
    ema_nets: ClassVar[tuple[str, ...]] = ("G1", "G2")
    capabilities = frozenset({GENERATE, JOINT})
    suites = ("pair_agreement",)

    def __init__(self, data: DataInfo, *, z_dim: int = 100, ngf: int = 128, d_channels: tuple[int, ...] = (20, 50, 500),
                 adapt: bool = False, source_only: bool = False, cls_weight: float = 10.0, mse_weight: float = 0.01):
        super().__init__(data)
        if data.resolution not in RESOLUTIONS:
            raise ValueError(f"CoGAN's digit nets take 28 px images (the paper) or 32 px, not {data.resolution}: set "
                             f"dataset.resolution=28")
        if len(d_channels) != 3:
            raise ValueError(f"model.d_channels={list(d_channels)}: give the 3 conv widths of D, e.g. [20, 50, 500]")
        if source_only and not adapt:
            raise ValueError("model.source_only=true is the baseline of the adaptation variant: set model.adapt=true")
        if adapt and (data.num_classes < 2 or "label" not in data.fields):
            raise ValueError("model.adapt=true trains a classifier on labeled domain-A images: use a dataset whose A "
                             "images have labels (e.g. dataset=digits_unpaired)")
        self.z_dim, self.adapt, self.source_only = z_dim, adapt, source_only
        self.cls_weight, self.mse_weight = cls_weight, mse_weight
        g_kernel, d_kernel = RESOLUTIONS[data.resolution]
        trunk = _trunk(z_dim, ngf)
        self.G1 = CoupledGenerator(trunk, ngf, data.channels, g_kernel)
        self.G2 = CoupledGenerator(trunk, ngf, data.channels_b or data.channels, g_kernel)
        tail = SharedTail(tuple(d_channels), d_kernel, data.num_classes if adapt else 0)
        self.D1 = CoupledDiscriminator(data.channels, d_channels[0], tail)
        self.D2 = CoupledDiscriminator(data.channels_b or data.channels, d_channels[0], tail)
        xavier_init(self)
        if adapt:  # an instance-level declaration: only the adaptation variant classifies
            self.capabilities = frozenset({*type(self).capabilities, CLASSIFY})

    def metric_suites(self) -> tuple[str, ...]:
        if self.source_only:
            return ("target_accuracy",)  # no GAN is trained
        return ("pair_agreement", "target_accuracy") if self.adapt else ("pair_agreement",)

    # -- training -------------------------------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.z_dim, generator=generator, device=self.device)

    def _pair(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(G1(z), G2(z)) in [0, 1], the shared trunk run once."""
        h = self.G1.trunk(z)
        return self.G1(h=h), self.G2(h=h)

    def prepare(self, batch: Batch) -> dict:
        if self.source_only:
            return {}
        fake_a, fake_b = self._pair(self.sample_latent(batch["A"].shape[0]))
        return {"fake_A": fake_a, "fake_B": fake_b}

    def phases(self) -> list[Phase]:
        if self.source_only:
            return [Phase("D", ("D1",), self.source_loss)]
        return [Phase("D", ("D1", "D2"), self.d_loss), Phase("G", ("G1", "G2"), self.g_loss)]

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        real_a, real_b = to_unit(batch["A"]), to_unit(batch["B"])
        n = real_a.shape[0]
        h1 = self.D1.features(torch.cat([real_a, ctx["fake_A"].detach()]))  # [2N, 500]: real A | fake A
        h2 = self.D2.features(torch.cat([real_b, ctx["fake_B"].detach()]))
        logits = self.D1.tail.adv(torch.cat([h1[:n], h2[:n], h1[n:], h2[n:]]))  # real A|B, then fake A|B
        target = torch.full((4 * n,), REAL, device=logits.device)
        target[2 * n:] = FAKE
        gan_real = F.cross_entropy(logits[:2 * n], target[:2 * n])
        gan_fake = F.cross_entropy(logits[2 * n:], target[2 * n:])
        acc = (logits.argmax(1) == target).float().mean()
        out = {"gan_real": gan_real, "gan_fake": gan_fake}
        if self.adapt:
            cls_logits = self.D1.tail.cls(h1[:n])
            out["cls"] = self.cls_weight * F.cross_entropy(cls_logits, batch["label"])
            # Σ over the 500 features, mean over the batch (the official MSELoss × feature count)
            out["feat"] = self.mse_weight * (h1[n:] - h2[n:]).square().sum(1).mean()
            out["cls_acc"] = (cls_logits.argmax(1) == batch["label"]).float().mean()
        return {"loss": sum(out.values()), **out, "acc": acc}

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        logits = torch.cat([self.D1(ctx["fake_A"]), self.D2(ctx["fake_B"])])
        return {"loss": F.cross_entropy(logits, torch.full((logits.shape[0],), REAL, device=logits.device))}

    def source_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        """The source-only baseline: the class net (D1's stem, the tail, the head) on labeled A alone."""
        logits = self.D1.tail.cls(self.D1.features(to_unit(batch["A"])))
        return {"loss": self.cls_weight * F.cross_entropy(logits, batch["label"]),
                "cls_acc": (logits.argmax(1) == batch["label"]).float().mean()}

    # -- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_domains(self, n: int, *, generator: torch.Generator | None = None,
                         z: Tensor | None = None) -> tuple[Tensor, ...]:
        """(G1(z), G2(z)): n images of domain A and of domain B from the same z, in [-1, 1]."""
        z = self.sample_latent(n, generator) if z is None else z
        return tuple(from_unit(x) for x in self._pair(z))

    @torch.no_grad()
    def generate(self, n, *, labels=None, generator=None, z=None) -> Tensor:
        """Domain A images G1(z) in [-1, 1]."""
        return self.generate_domains(n, generator=generator, z=z)[0]

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """Class logits of target (domain B) images in [-1, 1]: D2's stem + the shared tail + the class
        head (source_only: D1's stem, i.e. the source classifier applied as it is)."""
        d = self.D1 if self.source_only else self.D2
        return d.tail.cls(d.features(to_unit(x)))

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator, batch: Batch) -> Tensor:
        """n pairs from one z each, side by side: G1(z) | G2(z)."""
        return side_by_side(self.generate_domains(n, generator=generator))

    def grid_nrow(self, n: int) -> int:
        """n images = n / 2 pairs: a square of pairs, each pair side by side."""
        return 2 * max(1, int(round((n / 2) ** 0.5)))


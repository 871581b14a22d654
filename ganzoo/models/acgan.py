"""ACGAN — Odena, Olah & Shlens, "Conditional Image Synthesis with Auxiliary Classifier GANs",
arXiv:1610.09585 (no official code; nets from the paper's CIFAR-10 appendix table).

G(z, c): z ⊕ one-hot(c) (100 + K = 110 for CIFAR) → linear to 384 maps, ReLU → three 5×5 stride-2
transposed convs 192 → 96 (BN, ReLU) → C, tanh. D(x): six 3×3 convs 16 (stride 2), 32 (1), 64 (2),
128 (1), 256 (2), 512 (1), each LeakyReLU 0.2 and dropout 0.5, BN on all but the first; then two
linear heads on the flattened features: the source (1 logit) and the class (K logits). The paper's
single "linear 11" output is these two heads side by side.

Losses (paper §3): L_S = E log P(S=real | x_real) + E log P(S=fake | x_fake),
L_C = E log P(C=c | x_real) + E log P(C=c | x_fake). D maximises L_S + L_C; G maximises L_C − L_S,
written in the non-saturating form: D minimises BCE_src(real, fake) + CE(real, y) + CE(fake, c);
G minimises −log σ(src(G(z, c))) + CE(fake, c). Equal weights; the class term uses the fakes too.
Both losses take raw logits: BCE-with-logits and cross-entropy on the class head's logits (no
softmax anywhere in the nets). Fake classes c are uniform, drawn once per iteration with z; G runs
once per iteration and the D phase uses the detached fakes. Init N(0, 0.02) (paper: "isotropic
gaussian, σ = 0.02"), BN γ ~ N(1, 0.02). Adam lr 2e-4, β (0.5, 0.999), batch 100 (as the paper).

How the CIFAR nets adapt to 28/32 px and 1/3 channels: G always keeps the three 5×5 stride-2
transposed convs and their widths; the linear layer outputs 384 maps of S0×S0 with
S0 = ⌈R/8⌉, and each transposed conv doubles the size (output_padding 1) or doubles minus one
(output_padding 0) to land exactly on R: 4→8→16→32 at 32 px (the paper's), 4→7→14→28 at 28 px.
D keeps its six convs (padding 1); a stride-2 conv maps S to ⌈S/2⌉, so both 32 and 28 px end at
4×4×512 before the heads. The first conv takes C = 1 or 3 channels, G's last outputs C.
Widths scale with `ngf` (G: 4·ngf, 2·ngf, ngf = 384, 192, 96 at ngf=96) and `ndf` (D: ndf·2^i,
16 … 512 at ndf=16).

Deviations (and why):
- The paper's table lists the first G layer as "linear, 384" without a spatial size; three
  stride-2 layers reach 32 px only from 4×4, so it outputs 384 maps of 4×4 (⌈R/8⌉² in general).
- The paper does not state the noise distribution: z ~ U(−1, 1)^100 as our DCGAN.
- Samples are drawn with BN in eval mode (running stats) and D's dropout off.
Not copied from popular ports: eriklindernoren/PyTorch-GAN's acgan applies nn.Softmax before
CrossEntropyLoss (a double softmax) and uses BatchNorm2d(n, 0.8), i.e. eps = 0.8; here the class
head returns logits and BN keeps eps = 1e-5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.base import DataInfo
from ..losses import accuracy_real_fake, d_bce, g_nonsaturating
from ..nn.conditional import checked_labels, class_accuracy, one_hot, random_labels
from ..registry import MODELS
from .base import CONDITIONAL, GENERATE, GANModel, Phase, init_normal


def up_sizes(resolution: int, n_up: int = 3) -> list[int]:
    """Spatial sizes [S0, ..., R] of G's maps: S_{i} = ⌈S_{i+1}/2⌉ (e.g. 28 -> [4, 7, 14, 28])."""
    sizes = [resolution]
    for _ in range(n_up):
        sizes.insert(0, (sizes[0] + 1) // 2)
    if sizes[0] < 2:
        raise ValueError(f"resolution {resolution} is too small for three stride-2 layers (use 16 or more)")
    return sizes


class ACGANGenerator(nn.Module):
    def __init__(self, z_dim: int, num_classes: int, img_channels: int, resolution: int, ngf: int = 96,
                 kernel: int = 5):
        super().__init__()
        self.num_classes = num_classes
        self.sizes = up_sizes(resolution)
        ch = [4 * ngf, 2 * ngf, ngf, img_channels]  # 384, 192, 96, C
        s0 = self.sizes[0]
        self.top = ch[0]
        self.project = nn.Sequential(nn.Linear(z_dim + num_classes, ch[0] * s0 * s0), nn.ReLU(True))
        layers: list[nn.Module] = []
        pad = (kernel - 1) // 2
        for i in range(3):
            out_pad = self.sizes[i + 1] - 2 * self.sizes[i] + 1  # 1: double; 0: double minus one
            last = i == 2
            layers.append(nn.ConvTranspose2d(ch[i], ch[i + 1], kernel, 2, pad, output_padding=out_pad, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(ch[i + 1]), nn.ReLU(True)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        h = self.project(torch.cat([z, one_hot(c, self.num_classes, z)], 1))
        return self.body(h.view(z.shape[0], self.top, self.sizes[0], self.sizes[0]))  # [B, C, R, R]


class ACGANDiscriminator(nn.Module):
    """`forward(x)` returns (source logits [B], class logits [B, K]) — raw logits, no softmax."""

    STRIDES = (2, 1, 2, 1, 2, 1)

    def __init__(self, img_channels: int, resolution: int, num_classes: int, ndf: int = 16,
                 dropout: float = 0.5):
        super().__init__()
        ch = [img_channels] + [ndf * 2**i for i in range(len(self.STRIDES))]  # C, 16, 32, ..., 512
        layers: list[nn.Module] = []
        size = resolution
        for i, s in enumerate(self.STRIDES):
            layers.append(nn.Conv2d(ch[i], ch[i + 1], 3, s, 1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch[i + 1]))
            layers += [nn.LeakyReLU(0.2, True), nn.Dropout(dropout)]
            size = (size - 1) // s + 1
        self.body = nn.Sequential(*layers)
        self.feature_dim = ch[-1] * size * size
        self.src = nn.Linear(self.feature_dim, 1)  # real/fake logit
        self.cls = nn.Linear(self.feature_dim, num_classes)  # class logits

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(x).flatten(1)
        return self.src(h).squeeze(-1), self.cls(h)


@MODELS.register("acgan")
class ACGAN(GANModel):
    """Auxiliary-classifier GAN (Odena et al. 2016): D also classifies real and fake images."""

    needs = frozenset({"image", "label"})
    capabilities = frozenset({GENERATE, CONDITIONAL})
    suites = ("class_accuracy",)

    def __init__(self, data: DataInfo, *, z_dim: int = 100, ngf: int = 96, ndf: int = 16, kernel: int = 5,
                 dropout: float = 0.5):
        super().__init__(data)
        if data.num_classes < 2:
            raise ValueError(f"acgan needs a dataset with 2 or more classes, not {data.num_classes}")
        self.z_dim = z_dim
        self.G = ACGANGenerator(z_dim, data.num_classes, data.channels, data.resolution, ngf, kernel)
        self.D = ACGANDiscriminator(data.channels, data.resolution, data.num_classes, ndf, dropout)
        init_normal(self)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, self.z_dim, generator=generator, device=self.device) * 2 - 1  # U(-1, 1)

    def prepare(self, batch):
        n = batch["image"].shape[0]
        z, c = self.sample_latent(n), random_labels(n, self.data.num_classes, self.device)
        return {"fake": self.G(z, c), "y_fake": c}

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("G",), self.g_loss)]

    def d_loss(self, batch, ctx) -> dict[str, Tensor]:
        src_real, cls_real = self.D(batch["image"])
        src_fake, cls_fake = self.D(ctx["fake"].detach())
        src = d_bce(src_real, src_fake)
        cls = F.cross_entropy(cls_real, batch["label"]) + F.cross_entropy(cls_fake, ctx["y_fake"])  # on logits
        return {"loss": src + cls, "src": src.detach(), "cls": cls.detach(),
                "acc": accuracy_real_fake(src_real, src_fake), "cls_acc": class_accuracy(cls_real, batch["label"]),
                "cls_acc_fake": class_accuracy(cls_fake, ctx["y_fake"])}

    def g_loss(self, batch, ctx) -> dict[str, Tensor]:
        src_fake, cls_fake = self.D(ctx["fake"])
        src, cls = g_nonsaturating(src_fake), F.cross_entropy(cls_fake, ctx["y_fake"])
        return {"loss": src + cls, "src": src.detach(), "cls": cls.detach()}

    @torch.no_grad()
    def generate(self, n, *, labels=None, generator=None, z=None) -> Tensor:
        n = n if z is None else z.shape[0]
        c = checked_labels(labels, n, self.data.num_classes, self.default_labels(n))
        return self.G(self.sample_latent(n, generator) if z is None else z.to(self.device), c)

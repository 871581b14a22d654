"""DTN — Taigman, Polyak & Wolf, "Unsupervised Cross-Domain Image Generation", arXiv:1611.02200
(ICLR 2017). No official code; yunjey/domain-transfer-network is a popular port (read for shapes only).

G = g∘f maps a source image x_s (dataset domain A, labeled) to the target domain (B): f is a
pretrained, frozen encoder, g a learned decoder. f is never trained by the GAN: it is a classifier of
the labeled source domain, trained once before the run (`fit_f`: f plus a linear head, cross-entropy,
the head then dropped) and cached under the data home, keyed by the data's fingerprint and f's
architecture (source "fit" of `ganzoo.build.load_pretrained`); or taken from an earlier DTN run
(`f_run=<run dir>`). f stays in eval mode with gradients off, so neither its weights nor its
batch-norm statistics move; it is `kept` in the checkpoint, so translate/eval/resume need only the run.

Nets (digits, section 5.1, at 32x32): f: four convs 64-128-256-128 (`f_width` w: w, 2w, 4w, 2w) with
batch norm, ReLU and max-pooling, giving a 128-d representation; g: four transposed-conv blocks
1 -> 4 -> 8 -> 16 -> 32 px (512-256-128-C: 4·ngf, 2·ngf, ngf), batch norm and ReLU, tanh at the end;
D: four convs (128-256-512, `ndf`), batch norm and ReLU, ending in 3 logits: the ternary D.

Losses (eq. 3-7): with G(x) = g(f(x)), D's classes 1: G(x_s), 2: G(x_t), 3: real x_t,
  L_D    = -E_s log D_1(G(x_s)) - E_t log D_2(G(x_t)) - E_t log D_3(x_t)
  L_GANG = -E_s log D_3(G(x_s)) - E_t log D_3(G(x_t))
  L_CONST = E_s ‖f(x_s) - f(G(x_s))‖²  (f-constancy),  L_TID = E_t ‖x_t - G(x_t)‖²  (target identity)
  L_G = L_GANG + α L_CONST + β L_TID + γ L_TV;  digits: α = β = 15, γ = 0 (faces: 100, 1, 0.05).
One iteration: f on x_s and x_t (no gradients) and ONE g pass on [f(x_s); f(x_t)] (`prepare`), a D step
on the three classes (one D pass on the detached fakes and x_t), then a G step (g only; f frozen).

Deviations (and why):
- Distances are means (over the batch and the pixels / feature entries), not sums, as the port's
  `reduce_mean(square(.)) * 15`: the paper's α = β = 15 were corroborated only with that scale.
- f's fourth conv is a 4x4 "valid" conv on the 4x4 map (the port's), which gives the 128-d vector
  directly; a max-pool after it would act on 1x1. f's training recipe (Adam 1e-3, batch 128,
  `f_epochs` epochs over the source domain's train split, fixed seed) is ours: the paper trained f
  on SVHN's extra set and gives no recipe.
- g and D use DCGAN's 4x4 stride-2 (transposed) convs and N(0, 0.02) init (the port: 3x3, Xavier);
  the D widths 128-256-512 are the port's (the paper gives none).
- Source and target batches share one g pass and one D pass (concatenated): one set of batch-norm
  statistics for both, so eval-mode running statistics describe what g saw in training.
- The update schedule is one D step then one G step per iteration (the alternation of the paper's
  min-max); Adam lr 3e-4, β (0.9, 0.999) as the port (the paper's optimiser settings are not given).
- Gray targets with an RGB f (MNIST from SVHN) are repeated to 3 channels before f, as the port.
- Other sizes than 32 px (8·2^k) add or drop stride-2 blocks at the edge widths, so the model builds
  for any power-of-two set; the paper's face nets (DeepFace f, 152 px) are not reproduced.
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.base import DataInfo, ImageDataset
from ..data.loader import to_float
from ..errors import UserError
from ..registry import MODELS
from .base import TRANSLATE, Batch, GANModel, Phase, Pretrained, init_normal

F_VERSION = 1  # part of f's cache key: a changed f or recipe is trained again, never mixed with old weights
SOURCE_S, SOURCE_T, REAL_T = 0, 1, 2  # the ternary D's classes (the paper's D_1, D_2, D_3)


def _blocks(resolution: int) -> int:
    """Stride-2 steps between `resolution` and the 4x4 map every net turns into (3 at 32 px)."""
    n = resolution.bit_length() - 3
    if resolution < 8 or resolution != 4 << n:
        raise ValueError(f"DTN's nets take square images of 8, 16, 32, 64, ... px, not {resolution}: set "
                         "dataset.resolution=32 (the paper's digits)")
    return n


class ContentEncoder(nn.Module):
    """f: [N, C, R, R] -> [N, 2w]. At 32 px (w = 64) the paper's 64-128-256-128: three conv-BN-ReLU-
    max-pool blocks to 4x4, then a 4x4 conv to the 128-d representation."""

    def __init__(self, channels: int, width: int = 64, resolution: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(_blocks(resolution)):
            c_out = min(width << i, 4 * width)
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.dim = 2 * width
        layers += [nn.Conv2d(c_in, self.dim, 4, 1, 0), nn.BatchNorm2d(self.dim), nn.ReLU(), nn.Flatten()]  # 4x4 -> 1x1
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def decoder(dim: int, channels: int, ngf: int, resolution: int = 32) -> nn.Sequential:
    """g: [N, dim, 1, 1] -> [N, channels, R, R] in [-1, 1]. At 32 px: 1 -> 4 -> 8 -> 16 -> 32 with
    4·ngf, 2·ngf, ngf, C channels (512-256-128-C at ngf = 128)."""
    layers: list[nn.Module] = [nn.ConvTranspose2d(dim, 4 * ngf, 4, 1, 0), nn.BatchNorm2d(4 * ngf), nn.ReLU()]  # 4x4
    c_in = 4 * ngf
    for i in range(_blocks(resolution) - 1):
        c_out = max(ngf, (4 * ngf) >> (i + 1))
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers, nn.ConvTranspose2d(c_in, channels, 4, 2, 1), nn.Tanh())


def ternary_discriminator(channels: int, ndf: int, resolution: int = 32) -> nn.Sequential:
    """D: [N, channels, R, R] -> 3 logits [N, 3] (G(x_s), G(x_t), real x_t). At 32 px: conv-BN-ReLU
    blocks of ndf, 2·ndf, 4·ndf (128-256-512) to 4x4, then a 4x4 conv to the logits."""
    layers: list[nn.Module] = []
    c_in = channels
    for i in range(_blocks(resolution)):
        c_out = min(ndf << i, 4 * ndf)
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers, nn.Conv2d(c_in, 3, 4, 1, 0), nn.Flatten())  # 1x1 -> [N, 3]


def ternary_d_loss(logits_s: Tensor, logits_t: Tensor, logits_real: Tensor) -> Tensor:
    """L_D = -E_s log D_1(G(x_s)) - E_t log D_2(G(x_t)) - E_t log D_3(x_t) (softmax over the 3 logits)."""
    def ce(logits: Tensor, cls: int) -> Tensor:
        return F.cross_entropy(logits, torch.full((logits.shape[0],), cls, device=logits.device))
    return ce(logits_s, SOURCE_S) + ce(logits_t, SOURCE_T) + ce(logits_real, REAL_T)


def ternary_g_loss(logits_s: Tensor, logits_t: Tensor) -> Tensor:
    """L_GANG = -E_s log D_3(G(x_s)) - E_t log D_3(G(x_t))."""
    return -(logits_s.log_softmax(1)[:, REAL_T].mean() + logits_t.log_softmax(1)[:, REAL_T].mean())


def total_variation(x: Tensor) -> Tensor:
    """L_TV with B = 1: mean over pixels of sqrt((x[i,j+1]-x[i,j])² + (x[i+1,j]-x[i,j])²)."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.square() + dy.square() + 1e-8).sqrt().mean()


@MODELS.register("dtn")
class DTN(GANModel):
    """Domain Transfer Network (Taigman et al. 2017): G = g∘f with f frozen, ternary D, f-constancy and
    target identity."""

    needs: ClassVar[frozenset[str]] = frozenset({"A", "B"})
    capabilities = frozenset({TRANSLATE})
    suites = ("translation", "target_identity")
    ema_nets: ClassVar[tuple[str, ...]] = ("g",)

    def __init__(self, data: DataInfo, *, f_width: int = 64, ngf: int = 128, ndf: int = 128, alpha: float = 15.0,
                 beta: float = 15.0, gamma: float = 0.0, f_run: str | None = None, f_epochs: int = 2,
                 f_lr: float = 1e-3):
        super().__init__(data)
        self.fixed_size = data.resolution  # g(f(x)): f's dense feature fixes the input size
        r = data.resolution
        _blocks(r)
        if not data.channels_b:
            raise ValueError("DTN maps a source domain (A) to a target domain (B): use a two-domain dataset "
                             "(e.g. dataset=digits_unpaired)")
        self.c_s, self.c_t = data.channels, data.channels_b
        if self.c_t != self.c_s and (self.c_t, self.c_s) != (1, 3):
            raise ValueError(f"f takes the source's {self.c_s} channels and the target's {self.c_t} cannot be "
                             "adapted to them (only gray targets for an RGB source)")
        if f_epochs < 1:
            raise ValueError(f"f_epochs={f_epochs}: f needs at least one epoch of training")
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.f_width, self.f_run, self.f_epochs, self.f_lr = f_width, f_run, f_epochs, f_lr
        self.f = ContentEncoder(self.c_s, f_width, r)
        self.g = decoder(self.f.dim, self.c_t, ngf, r)
        self.D = ternary_discriminator(self.c_t, ndf, r)
        init_normal(self.g)
        init_normal(self.D)
        self.f.requires_grad_(False).eval()  # frozen from the start; `fit_f` alone ever trains it

    # -- f: pretrained, frozen ---------------------------------------------------------------------
    def pretrained(self) -> list[Pretrained]:
        """f from an earlier DTN run (`f_run`) or trained on this data's labeled source domain (cached)."""
        if self.f_run:
            return [Pretrained("f", "run", self.f_run, net="f", kept=True, arg="f_run", accepts=("dtn",),
                               hint="train a dtn run first, or drop model.f_run to train f here",
                               mismatch_hint="use the same model.f_width and source channels")]
        return [Pretrained("f", "fit", self.f_key(), kept=True, arg="f_epochs", fit=self.fit_f,
                           hint="drop model.f_run or give a run on this data")]

    def f_key(self) -> str:
        """f's cache key: the data's fingerprint and everything that defines f and its training."""
        facts = {"data": self.data.fingerprint, "channels": self.c_s, "width": self.f_width, "classes":
                 self.data.num_classes, "epochs": self.f_epochs, "lr": self.f_lr, "version": F_VERSION}
        digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
        return f"dtn-f-{self.data.fingerprint[:16]}-w{self.f_width}-e{self.f_epochs}-{digest}"

    def fit_f(self, data: ImageDataset) -> None:
        """Train f (plus a linear head, dropped after) as a classifier of the labeled source images."""
        images, labels = data.domain("A")  # uint8 [n, C, S, S]: the centre R x R when stored larger
        r = self.data.resolution
        top, left = (images.shape[-2] - r) // 2, (images.shape[-1] - r) // 2
        images = images[..., top:top + r, left:left + r]
        if labels is None or self.data.num_classes < 2:
            raise UserError(f"dataset {data.info.name!r}: f is a classifier of the source domain (A), which has no "
                            "labels here: give model.f_run=<a dtn run> or a dataset with labeled A images")
        dev = self.device
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            torch.manual_seed(0)  # the same f for the same data, whatever the run's seed; its stream untouched
            head = nn.Linear(self.f.dim, self.data.num_classes).to(dev)
            params = [*self.f.parameters(), *head.parameters()]
            opt = torch.optim.Adam(params, self.f_lr)
            self.f.train()
            with torch.enable_grad():
                for p in params:
                    p.requires_grad_(True)
                for _ in range(self.f_epochs):
                    for idx in torch.randperm(len(labels)).split(128):
                        x = to_float(images[idx].to(dev))
                        loss = F.cross_entropy(head(self.f(x)), labels[idx].to(dev))
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
            self.f.eval()

    def _f(self, x: Tensor) -> Tensor:
        """f of source or target images (gray targets repeated to f's RGB)."""
        return self.f(x.expand(-1, self.c_s, -1, -1) if x.shape[1] != self.c_s else x)

    # -- training -------------------------------------------------------------------------------
    def prepare(self, batch: Batch) -> dict:
        x_s, x_t = batch["A"], batch["B"]
        n = x_s.shape[0]
        with torch.no_grad():  # f is frozen: its outputs are constants (and the targets of L_CONST)
            f_s, f_t = self._f(x_s), self._f(x_t)
        fake = self.g(torch.cat([f_s, f_t])[:, :, None, None])  # one g pass for both domains
        return {"x_t": x_t, "f_s": f_s, "fake_s": fake[:n], "fake_t": fake[n:], "fake": fake}

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("g",), self.g_loss)]

    def d_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        n_s, n_t = ctx["fake_s"].shape[0], ctx["x_t"].shape[0]
        logits = self.D(torch.cat([ctx["fake"].detach(), ctx["x_t"]]))  # one D pass, one set of BN statistics
        logits_s, logits_t, logits_real = logits.split([n_s, n_t, n_t])
        with torch.no_grad():
            acc = torch.cat([logits_s.argmax(1) == SOURCE_S, logits_t.argmax(1) == SOURCE_T,
                             logits_real.argmax(1) == REAL_T]).float().mean()
        return {"loss": ternary_d_loss(logits_s, logits_t, logits_real), "acc": acc}

    def g_loss(self, batch: Batch, ctx: dict) -> dict[str, Tensor]:
        n_s = ctx["fake_s"].shape[0]
        logits_s, logits_t = self.D(ctx["fake"]).split([n_s, ctx["fake_t"].shape[0]])
        out = {"gang": ternary_g_loss(logits_s, logits_t),
               "const": (self._f(ctx["fake_s"]) - ctx["f_s"]).square().mean(),  # f-constancy, in f's space
               "tid": (ctx["fake_t"] - ctx["x_t"]).square().mean()}  # target identity
        loss = out["gang"] + self.alpha * out["const"] + self.beta * out["tid"]
        if self.gamma:
            out["tv"] = total_variation(ctx["fake"])
            loss = loss + self.gamma * out["tv"]
        return {"loss": loss, **{k: v.detach() for k, v in out.items()}}

    # -- inference ------------------------------------------------------------------------------
    def directions(self) -> tuple[str, ...]:
        return ("AtoB",)  # source -> target; target images given to it map to themselves (L_TID)

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str | None = None) -> Tensor:
        """Source (or target) images [N, C, R, R] in [-1, 1] -> target images G(x) = g(f(x)), g in eval mode."""
        if direction not in (None, "AtoB"):
            raise UserError(f"direction={direction}: DTN maps its source domain to its target (AtoB) only")
        r = self.fixed_size
        if tuple(x.shape[-2:]) != (r, r):
            raise UserError(f"this DTN translates {r}x{r} images, not {x.shape[-2]}x{x.shape[-1]}: pass resize={r}")
        was = self.g.training
        self.g.eval()  # running statistics: the preview during training leaves them alone too
        try:
            return self.g(self._f(x)[:, :, None, None])
        finally:
            self.g.train(was)

    def source_channels(self, direction: str) -> int:
        return self.c_s

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator, batch: Batch) -> Tensor:
        """Rows of x_s | G(x_s) | x_t | G(x_t) (target images; G(x_t) should equal x_t)."""
        x_s, x_t = batch["A"][:n], batch["B"][:n]
        cols = [x_s, self.translate(x_s), x_t, self.translate(x_t)]
        c = max(t.shape[1] for t in cols)
        return torch.stack([t.expand(-1, c, -1, -1) for t in cols], 1).flatten(0, 1)

    def grid_nrow(self, n: int) -> int:
        return 4

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

What a model can do is declared, never probed: `capabilities` (a subset of `CAPABILITIES`; other
layers ask `model.can(GENERATE)`), the optional methods below with their defaults (`generate`,
`translate` + `directions`, `reconstruct`, `classify`, `predict_codes`, `traverse` + `traverse_codes`,
`generate_domains`), the metric
suites that apply (`suites`, names in `ganzoo.metrics`), the batch fields it trains on (`needs`),
and the parts whose weights come from outside the run (`pretrained()`: frozen parts are kept out of
every optimizer, the EMA, `train()` and (unless `kept`) the checkpoint; `ganzoo.build.load_pretrained`
fills them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.base import DataInfo, ImageDataset
from ..errors import UserError
from ..losses import accuracy_real_fake, d_bce, g_nonsaturating
from ..nn.sr import SRResNetGenerator, downscale, upscale_bicubic, upscale_tiled

Batch = dict[str, Tensor]
LossFn = Callable[[Batch, dict], dict[str, Tensor]]


# capabilities: what `model.can(...)` answers
GENERATE = "generate"  # generate(n, labels=, generator=, z=): noise -> images
CONDITIONAL = "conditional"  # generate() is class-conditional (labels 0..num_classes-1; defaults when omitted)
TRANSLATE = "translate"  # translate(x, direction) for each of directions(): images -> images
CLASSIFY = "classify"  # classify(x) -> class logits [N, num_classes]
CODES = "codes"  # predict_codes(x) -> logits of a categorical latent code [N, K] (InfoGAN's c1)
TRAVERSE = "traverse"  # traverse(code, steps, generator) over traverse_codes()
JOINT = "joint"  # generate_domains(n, generator=, z=): one image per domain from each latent (CoGAN's pairs)
RECONSTRUCT = "reconstruct"  # reconstruct(x, domain): images of a dataset domain through the model's autoencoder
CAPABILITIES = (GENERATE, CONDITIONAL, TRANSLATE, CLASSIFY, CODES, TRAVERSE, JOINT, RECONSTRUCT)
DIRECTIONS = ("AtoB", "BtoA")  # dataset directions: AtoB maps the dataset's A images to B


@dataclass(frozen=True)
class Pretrained:
    """A part of the model (the module attribute `attr`) whose weights come from outside the run,
    filled by one resolver (`ganzoo.build.load_pretrained`):
    - source "run": net `net` of the ganzoo run folder `ref` (its EMA copy when the run kept one);
    - source "file": a weights file, `ref` a path or a name the part's `load_file` resolves
      (e.g. SRGAN's "imagenet" VGG19), read by `load_file(path_or_name)`;
    - source "fit": trained by `fit(train_data)` on the run's training set the first time (e.g. DTN's
      f, a classifier of the labeled source domain), then cached as `data_home()/pretrained/<ref>.pt`:
      `ref` is a key the model derives from the data's fingerprint and the part's architecture, so a
      later run on the same data loads the cache instead of training the part again.
    `frozen` parts are out of every optimizer, the EMA, `train()` and the checkpoint; otherwise the
    weights only initialise a trainable net (SRGAN's `init_from`). `kept` frozen parts are saved in
    the checkpoint all the same (the run's own copy: filled when a fresh run starts, then resume,
    sample, translate and eval need only the run folder). `when`: "train" parts are needed to train
    only (a finished run still evaluates without them), "always" ones for inference too."""

    attr: str
    source: Literal["run", "file", "fit"]
    ref: str
    net: str = "G"
    frozen: bool = True
    when: Literal["train", "always"] = "train"
    load_file: Callable[[str], None] | None = None
    arg: str = ""  # the model option that names `ref` (for messages: "model.<arg>=<ref>: ...")
    accepts: tuple[str, ...] = ()  # source "run": the model names whose runs fit (empty: any)
    hint: str = ""  # how to make `ref` exist (e.g. "train the SRResNet stage first: ...")
    mismatch_hint: str = ""  # source "run": which options must agree when the net's shapes differ
    kept: bool = False  # frozen, yet in the checkpoint (see above)
    fit: Callable[[ImageDataset], None] | None = None  # source "fit": trains the part in place on the train set


@dataclass(frozen=True)
class Phase:
    name: str  # "D", "G", "Q": optimizer key and log prefix ("D/loss")
    nets: tuple[str, ...]  # attribute names trained by this phase = the optimizer's parameters
    loss: LossFn  # (batch, ctx) -> {"loss": scalar, **scalars to log}
    every: int = 1  # run on steps where step % every == 0 (n_critic, lazy regularisation)


class GANModel(nn.Module):
    """Base class. Subclasses set `needs`, `capabilities` and `suites`, build nets in __init__ and
    implement `phases`, and `generate` (noise -> images) and/or `translate` (images -> images)."""

    needs: ClassVar[frozenset[str]] = frozenset({"image"})  # batch fields required from the dataset
    ema_nets: ClassVar[tuple[str, ...]] = ("G",)  # nets the trainer keeps an EMA copy of
    capabilities: ClassVar[frozenset[str]] = frozenset()  # a subset of CAPABILITIES
    suites: ClassVar[tuple[str, ...]] = ()  # metric suites that apply (`ganzoo.metrics.SUITES` names)
    pad_multiple: int = 1  # translate(): input sides must be multiples of this
    fixed_size: int | None = None  # translate(): inputs must be exactly this square side (a dense bottleneck: DTN)
    scale: int = 1  # translate(): output side / input side (super-resolution > 1)
    data_init_size: int = 0  # images a data-dependent init needs before step 1 (`data_init`); 0: none

    def __init__(self, data: DataInfo):
        super().__init__()
        self.data = data

    # -- what the model declares ------------------------------------------------------------------
    def can(self, capability: str) -> bool:
        """Whether the model declares `capability` (one of CAPABILITIES)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r} (known: {', '.join(CAPABILITIES)})")
        return capability in self.capabilities

    def metric_suites(self) -> tuple[str, ...]:
        """The metric suites `ganzoo eval` and `trainer.eval_every` compute for this model (names in
        `ganzoo.metrics.SUITES`). Default: the class's `suites`; override when they depend on args."""
        return tuple(self.suites)

    def pretrained(self) -> list[Pretrained]:
        """The parts whose weights come from outside the run (see `Pretrained`). Default: none."""
        return []

    def frozen_nets(self) -> tuple[str, ...]:
        return tuple(p.attr for p in self.pretrained() if p.frozen)

    def unsaved_nets(self) -> tuple[str, ...]:
        """The frozen parts left out of the checkpoint (all but the `kept` ones)."""
        return tuple(p.attr for p in self.pretrained() if p.frozen and not p.kept)

    def batch_size_of(self, field: str, batch_size: int) -> int:
        """Items of batch field `field` per iteration when the main batch is `batch_size` (a field
        drawn from its own stream, e.g. the labeled "image_l" of semi-supervised runs). Default: the same."""
        return batch_size

    # -- frozen parts: eval mode always, in the checkpoint only when kept -------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen_nets():
            getattr(self, name).eval()
        return self

    def state_dict(self, *args, **kwargs):
        sd = super().state_dict(*args, **kwargs)
        frozen = tuple(f"{kwargs.get('prefix', '')}{n}." for n in self.unsaved_nets())
        if frozen:
            for k in [k for k in sd if k.startswith(frozen)]:
                del sd[k]
        return sd

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        frozen = tuple(f"{n}." for n in self.unsaved_nets())
        if not frozen:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        result = super().load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(frozen)},
                                         strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith(frozen)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: missing keys "
                               f"{missing}, unexpected keys {result.unexpected_keys}")
        return result

    # -- training -------------------------------------------------------------------------------
    def data_init(self, batch: Batch) -> None:
        """A data-dependent init on `data_init_size` training images (`batch`, a fixed seeded choice),
        run once by the trainer on a fresh run before its EMA copy (a resumed run loads its weights over
        it). Default: none."""

    def prepare(self, batch: Batch) -> dict:
        """Work shared by the phases of one iteration (done once). Default: nothing."""
        return {}

    def health(self, step: int, stats: dict[str, float]) -> str | None:
        """A warning about the run read off the means of the last log window (`stats`: host floats,
        so no extra sync), or None. The trainer prints the first one of a run. Default: none."""
        return None

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    # -- inference (each raises unless the model declares the capability) ---------------------------
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not generate from noise")

    def generate(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None,
                 z: Tensor | None = None) -> Tensor:
        """GENERATE: n images in [-1, 1], [n, C, H, W]."""
        raise NotImplementedError(f"{type(self).__name__} does not generate from noise")

    def generate_domains(self, n: int, *, generator: torch.Generator | None = None,
                         z: Tensor | None = None) -> tuple[Tensor, ...]:
        """JOINT: one batch of n images in [-1, 1] per domain (dataset A first), image i of every batch
        drawn from the same latent i; `side_by_side` lays them out for a grid."""
        raise NotImplementedError(f"{type(self).__name__} does not generate images of several domains jointly")

    def directions(self) -> tuple[str, ...]:
        """TRANSLATE: the dataset directions `translate` accepts, the trained one first. Default: none."""
        return ()

    def translate(self, x: Tensor, direction: str | None = None) -> Tensor:
        """TRANSLATE: images [N, C_src, H, W] in [-1, 1] (H, W multiples of `pad_multiple`) -> the other
        domain [N, C_dst, H * scale, W * scale]; `direction` one of directions() (None: the first)."""
        raise NotImplementedError(f"{type(self).__name__} does not translate images")

    def tiling(self, direction: str | None = None) -> tuple[int, int] | None:
        """TRANSLATE: (tile, margin) in input px when `translate` may run tile by tile: on a tile of up to
        `tile` px a side with `margin` px of the real image around it, it runs in one piece and gives, for
        the tile's centre, exactly the whole image's output (no per-image statistics, a receptive field
        within the margin), so `ganzoo translate` tiles any size with bounded memory. None (default): an
        output pixel depends on the whole image (per-image batch or instance norm statistics, a
        bottleneck that sees everything), so the image is translated whole."""
        return None

    def source_channels(self, direction: str) -> int:
        """Channels of the images `translate(x, direction)` takes: the dataset's B images for BtoA."""
        return self.data.channels_b if direction == "BtoA" and self.data.channels_b else self.data.channels

    def reconstruct(self, x: Tensor, domain: str) -> Tensor:
        """RECONSTRUCT: images [N, C, H, W] in [-1, 1] of dataset domain `domain` ("A" or "B"; "A" for a
        one-domain set) encoded and decoded by the model's autoencoder for that domain -> [N, C, H, W]."""
        raise NotImplementedError(f"{type(self).__name__} does not reconstruct images")

    def classify(self, x: Tensor) -> Tensor:
        """CLASSIFY: class logits [N, num_classes] of images in [-1, 1] (call in eval mode)."""
        raise NotImplementedError(f"{type(self).__name__} does not classify images")

    def predict_codes(self, x: Tensor) -> Tensor:
        """CODES: logits [N, K] of the categorical latent code that images x in [-1, 1] were drawn with."""
        raise NotImplementedError(f"{type(self).__name__} has no categorical code to predict")

    def traverse_codes(self) -> list[str]:
        """TRAVERSE: the continuous codes `traverse` accepts. Default: none."""
        return []

    def traverse(self, code: str, steps: int = 10, generator: torch.Generator | None = None) -> tuple[Tensor, int]:
        """TRAVERSE: (a grid of images varying `code` across each row, images per row)."""
        raise NotImplementedError(f"{type(self).__name__} has no latent codes to traverse")

    def preview(self, n: int, *, generator: torch.Generator, batch: Batch) -> Tensor:
        """Images for the periodic training grid; same `generator` seed -> same inputs every time.
        `batch` is a fixed batch of real data (for image-to-image models). Conditional models show
        one row per class (`class_rows`)."""
        if not self.can(CONDITIONAL):
            return self.generate(n, generator=generator)
        labels = class_rows(self.data.num_classes, self.grid_nrow(n), self.device)
        return self.generate(labels.shape[0], labels=labels, generator=generator)

    def grid_nrow(self, n: int) -> int:
        """Images per grid row for n images: square for unconditional models, n // classes (one row
        per class) for conditional ones."""
        if not self.can(CONDITIONAL) or not self.data.num_classes:
            return max(1, int(round(n**0.5)))
        return max(1, n // self.data.num_classes)

    def default_labels(self, n: int) -> Tensor:
        """Labels when a conditional model is asked for n images without labels: 0, 1, ..., K-1, 0, ..."""
        return torch.arange(n, device=self.device) % self.data.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def side_by_side(domains: tuple[Tensor, ...]) -> Tensor:
    """`generate_domains`' batches [n, C_k, H, W] -> [n * K, C, H, W], the K images of each latent next to
    each other (grids with a multiple of K columns show them side by side); 1-channel images are
    repeated to the largest channel count."""
    c = max(x.shape[1] for x in domains)
    return torch.stack([x.expand(-1, c, -1, -1) if x.shape[1] != c else x for x in domains], 1).flatten(0, 1)


def to_unit(x: Tensor) -> Tensor:
    """ganzoo's [-1, 1] images -> [0, 1], for nets built on [0, 1] data (a sigmoid output, as CoGAN's and the
    official InfoGAN's)."""
    return (x + 1) / 2


def from_unit(y: Tensor) -> Tensor:
    """[0, 1] images (a sigmoid output) -> ganzoo's [-1, 1]."""
    return 2 * y - 1


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


# -- shared recipes (a model file subclasses one of these, never another model file) ----------------


class UnconditionalGAN(GANModel):
    """The shared unconditional recipe of GAN and DCGAN: one G forward per iteration (`prepare`),
    then a D step on real and detached fake with BCE on logits, then a G step with the
    non-saturating loss -log σ(D(G(z))). Subclasses build `self.G`, `self.D` and set `z_dim`."""

    z_dim: int
    capabilities = frozenset({GENERATE})
    suites = ("histogram",)

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


class SRModel(GANModel):
    """Shared by SRResNet and SRGAN: batches carry only HR crops ("image"); `prepare` makes the LR input on
    the device with `downscale` and runs G once. Subclasses build `self.G` and set `self.scale`."""

    needs: ClassVar[frozenset[str]] = frozenset({"image"})
    ema_nets: ClassVar[tuple[str, ...]] = ("G",)
    capabilities = frozenset({TRANSLATE})
    suites = ("super_resolution",)
    pad_multiple: ClassVar[int] = 1  # any LR size works
    scale: int = 4
    tile: ClassVar[int] = 128  # translate(): LR tile size (see upscale_tiled); the margin is G's receptive field
    G: SRResNetGenerator

    def prepare(self, batch: dict) -> dict:
        hr = batch["image"]  # [N, C, R, R] in [-1, 1]
        if hr.shape[-1] % self.scale or hr.shape[-2] % self.scale:
            raise UserError(f"HR crops of {hr.shape[-1]} px are not a multiple of model.scale={self.scale}: set "
                            f"dataset.resolution to a multiple of {self.scale} (e.g. 96)")
        lr = downscale(hr, self.scale)
        return {"lr": lr, "sr": self.G(lr)}

    def directions(self) -> tuple[str, ...]:
        return ("AtoB",)  # LR -> HR

    def tiling(self, direction: str | None = None) -> tuple[int, int] | None:
        return self.tile, self.G.context  # BN in eval mode, a finite receptive field: tiling is exact

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str | None = None, *, tile: int | None = None,
                  overlap: int | None = None) -> Tensor:
        """LR images [N, C, h, w] in [-1, 1] (any h, w) -> SR [N, C, h*scale, w*scale] in [-1, 1]."""
        if direction not in (None, "AtoB"):
            raise UserError(f"direction={direction}: super-resolution has one direction (LR -> HR); drop direction=")
        return upscale_tiled(self.G, x, self.scale, tile=tile or self.tile,
                             overlap=self.G.context if overlap is None else overlap).clamp(-1, 1)

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator, batch: dict) -> Tensor:
        """Rows of LR (nearest upsample) | bicubic | SR | HR for the first n // 4 images of the fixed batch."""
        hr = batch["image"][: max(1, n // 4)]
        lr = downscale(hr, self.scale)
        nearest = F.interpolate(lr, scale_factor=self.scale, mode="nearest")
        bicubic = upscale_bicubic(lr, self.scale).clamp(-1, 1)
        rows = torch.stack([nearest, bicubic, self.translate(lr), hr], 1)  # [rows, 4, C, R, R]
        return rows.flatten(0, 1)

    def grid_nrow(self, n: int) -> int:
        return 4

"""Speed and memory of ganzoo's trainer against a bare hand-written PyTorch loop, and sampling speed.

For each config (GAN: MLP G / maxout D at 28 px, 1 channel; DCGAN at 28 px, 1 channel; DCGAN at 64 px,
3 channels, batch 64 for these; pix2pix (U-Net-64 / U-Net-256 + 70x70 PatchGAN) and CycleGAN (two
ResNet-9 Gs, two PatchGANs, pools of 50) at 64 and 256 px, RGB -> RGB, the reference's batch 1) and
each device (CPU always, CUDA when available) it measures:

* ganzoo steps/s — a real `ganzoo.trainer.Trainer` fed by a `BatchStream` over a preloaded synthetic
  `TensorImageDataset` (random uint8 images + labels, generated here, no files), stepped with
  `trainer.train_step(next(stream))`, with `trainer.flush_stats()` (the loop's one host sync) every
  50 steps as `Trainer.fit` does. This is exactly the training loop's per-step work, minus the
  progress bar, sample grids and checkpoints.
* bare steps/s — the textbook PyTorch loop on identical nets (a deep copy taken before any step), the
  same batch size, the same optimizers (`make_optimizer` with the same `OptimSettings`: fused Adam,
  lr 2e-4, betas (0.5, 0.999), the model yaml's weight decay) and the same preloaded uint8 tensor
  (a random-permutation slice, converted to float in [-1, 1]): z ~ U(-1, 1); fake = G(z); a D step on
  real and fake.detach() with BCE-with-logits; a G step with the non-saturating loss on D(fake).
  Nothing else. For pix2pix and CycleGAN the bare loop is the reference's `optimize_parameters`
  written out (`BarePix2Pix`, `BareCycleGAN`: the same passes, losses and weights, D frozen with
  requires_grad in the G step as the reference does, CycleGAN's pools as the reference's Python list).
* overhead = bare steps/s / ganzoo steps/s (1.00: no overhead; the target is <= 1.05).
* peak memory of each loop, each measured in a fresh subprocess that builds only that loop and runs
  a few steps: peak RSS on CPU (VmHWM from /proc/self/status; `getrusage(...).ru_maxrss` elsewhere —
  on Linux ru_maxrss carries the parent's RSS over fork + exec, see `_peak_mb`),
  `torch.cuda.max_memory_allocated` on CUDA. Both include the interpreter, torch and the preloaded
  data, which are the same for both loops.
* sampling images/s — `model.eval()` then `model.generate(256)` under `torch.no_grad()`, repeated
  (image-to-image models: `model.translate` of 16 images at 64 px, 4 at 256 px).

Fairness: both loops warm up first; then timing rounds alternate ganzoo, bare, ganzoo, bare, ... with
the same number of steps per round (sized from the warm-up so that a round takes about `--round-s`
seconds, 3 on CPU; 3 to 5 rounds each, as fit in about 30 s per config); each loop's best (shortest)
round counts, so a burst of load from other processes only costs a round. Torch threads are set
explicitly (default: the usable cores) and are the same for both; on CUDA the device is synchronized
before each timer read.

One difference is the trainer's by design: it switches off gradients of the nets a phase does not
train, so its G step does not compute D's weight gradients, which the textbook loop computes and
throws away. An overhead below 1 (ganzoo faster) on compute-bound configs comes from that.

Usage: python benchmarks/bench.py [--device cpu|cuda|all] [--models gan,dcgan28,...,cyclegan256] [--quick]
                                  [--json out.json] [--threads N] [--round-s S] [--rounds R] [--no-memory]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ganzoo.data.base import DataInfo, ImageDataset, TensorImageDataset
from ganzoo.data.builders.two_domain import TensorPairDataset
from ganzoo.data.loader import BatchStream
from ganzoo.models.base import TRANSLATE, GANModel
from ganzoo.models.cyclegan import CycleGAN
from ganzoo.models.dcgan import DCGAN
from ganzoo.models.gan import GAN
from ganzoo.models.pix2pix import Pix2Pix
from ganzoo.runtime import pick_device
from ganzoo.settings import OptimSettings, TrainerSettings
from ganzoo.trainer import Trainer, make_optimizer

SEED = 0
N_ITEMS = 4096  # synthetic dataset size: 64 batches of 64 per epoch
LOG_EVERY = 50  # Trainer.fit's default log_every: one flush_stats() (host sync) per 50 steps
SAMPLE_N = 256
OVERHEAD_TARGET = 1.05


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    model: type[GANModel]
    channels: int
    resolution: int
    batch: int = 64
    weight_decay: float = 0.0  # as conf/model/<name>.yaml (dcgan: 1e-5; gan: the optim default 0)
    args: tuple[tuple[str, object], ...] = ()  # model constructor arguments (default: the model's own)
    items: int = N_ITEMS  # synthetic dataset size
    sample_n: int = SAMPLE_N  # images per generate()/translate() call when measuring inference

    @property
    def two_domain(self) -> bool:
        return {"A", "B"} <= self.model.needs


CONFIGS: dict[str, Config] = {
    "gan": Config("gan", "GAN (MLP) 28px 1ch", GAN, 1, 28),
    "dcgan28": Config("dcgan28", "DCGAN 28px 1ch", DCGAN, 1, 28, weight_decay=1e-5),
    "dcgan64": Config("dcgan64", "DCGAN 64px 3ch", DCGAN, 3, 64, weight_decay=1e-5),
    # image-to-image at the reference's batch 1, RGB -> RGB, the reference nets and losses
    "pix2pix64": Config("pix2pix64", "pix2pix U-Net-64 64px", Pix2Pix, 3, 64, batch=1, args=(("netG", "unet_64"),),
                        items=64, sample_n=16),
    "pix2pix256": Config("pix2pix256", "pix2pix U-Net-256 256px", Pix2Pix, 3, 256, batch=1, items=16, sample_n=4),
    "cyclegan64": Config("cyclegan64", "CycleGAN ResNet-9 64px", CycleGAN, 3, 64, batch=1, items=64, sample_n=16),
    "cyclegan256": Config("cyclegan256", "CycleGAN ResNet-9 256px", CycleGAN, 3, 256, batch=1, items=16, sample_n=4),
    # not in the default set: the sizes between, for where a speed switch starts to pay (switches.py)
    "pix2pix32": Config("pix2pix32", "pix2pix U-Net-32 32px", Pix2Pix, 3, 32, batch=1, args=(("netG", "unet_32"),),
                        items=64, sample_n=16),
    "pix2pix128": Config("pix2pix128", "pix2pix U-Net-128 128px", Pix2Pix, 3, 128, batch=1,
                         args=(("netG", "unet_128"),), items=16, sample_n=4),
    "cyclegan32": Config("cyclegan32", "CycleGAN ResNet-9 32px", CycleGAN, 3, 32, batch=1, items=64, sample_n=16),
    "cyclegan128": Config("cyclegan128", "CycleGAN ResNet-9 128px", CycleGAN, 3, 128, batch=1, items=16, sample_n=4),
}
DEFAULT_MODELS = "gan,dcgan28,dcgan64,pix2pix64,pix2pix256,cyclegan64,cyclegan256"


@dataclass
class Plan:
    """How much to run: warm-up, the length and number of timing rounds, memory probe and sampling."""

    warmup_s: float = 1.0  # after each loop's first step, more warm-up steps until this long has passed
    warmup_max: int = 50  # ...but at most this many
    calib_s: float = 0.5  # steps per round come from blocks of at least this long (see seconds_per_step)
    round_s: float = 3.0  # target length of one timing round
    budget_s: float = 30.0  # timing rounds of both loops together stop at about this long...
    min_rounds: int = 3  # ...but never fewer rounds per loop than this
    max_rounds: int = 5
    min_steps: int = 1
    max_steps: int = 10_000
    probe_steps: int = 2  # steps run by each memory probe (the 2nd has grads, Adam state and activations live)
    sample_s: float = 1.0  # length of one sampling round
    sample_rounds: int = 3

    @classmethod
    def quick(cls) -> Plan:
        """Tiny step counts: a smoke test of the whole path, not a measurement."""
        return cls(warmup_s=0.0, warmup_max=0, calib_s=0.0, round_s=0.0, budget_s=0.0, min_rounds=2, max_rounds=2,
                   min_steps=2, max_steps=2, probe_steps=2, sample_s=0.0, sample_rounds=1)

    def rounds_for(self, round_time: float) -> int:
        fit = int(self.budget_s / max(2 * round_time, 1e-9))
        return max(self.min_rounds, min(self.max_rounds, fit))


@dataclass
class Result:
    config: str
    label: str
    device: str
    batch: int
    threads: int
    steps_per_round: int
    rounds: int
    ganzoo_steps_per_s: float
    bare_steps_per_s: float
    overhead: float  # bare / ganzoo
    ganzoo_round_s: list[float] = field(default_factory=list)
    bare_round_s: list[float] = field(default_factory=list)
    memory_kind: str = ""
    ganzoo_mem_mb: float | None = None
    bare_mem_mb: float | None = None
    ganzoo_setup_mem_mb: float | None = None  # the same measure right before the first step
    bare_setup_mem_mb: float | None = None
    sample_images_per_s: float = 0.0
    elapsed_s: float = 0.0  # wall time of all of this config's measurements, probes included


# -- setup ---------------------------------------------------------------------------------------


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_dataset(cfg: Config) -> ImageDataset:
    """Random uint8 images and labels, the same for a given config (seeded), held in memory; for the
    image-to-image configs two domains A and B (paired for pix2pix, unpaired for CycleGAN)."""
    g = torch.Generator().manual_seed(SEED)
    shape = (cfg.items, cfg.channels, cfg.resolution, cfg.resolution)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    if cfg.two_domain:
        info = DataInfo(name=f"synthetic-{cfg.key}", channels=cfg.channels, resolution=cfg.resolution, size=cfg.items,
                        fields=("A", "B"), channels_b=cfg.channels, aligned=cfg.model is Pix2Pix)
        return TensorPairDataset(info, images, torch.randint(0, 256, shape, dtype=torch.uint8, generator=g))
    labels = torch.randint(0, 10, (cfg.items,), generator=g)
    info = DataInfo(name=f"synthetic-{cfg.key}", channels=cfg.channels, resolution=cfg.resolution,
                    num_classes=10, size=cfg.items, fields=("image", "label"))
    return TensorImageDataset(info, images, labels)


def optim_settings(cfg: Config) -> OptimSettings:
    return OptimSettings(name="adam", lr=2e-4, betas=[0.5, 0.999], weight_decay=cfg.weight_decay)


def make_model(cfg: Config, info: DataInfo, device: torch.device) -> GANModel:
    torch.manual_seed(SEED)
    return cfg.model(info, **dict(cfg.args)).to(device).train()


def make_trainer(cfg: Config, model: GANModel, dataset: ImageDataset, device: torch.device) -> Trainer:
    stream = BatchStream(dataset, batch_size=cfg.batch, seed=SEED, device=device, preload=True)
    settings = TrainerSettings(max_steps=10**9, batch_size=cfg.batch, device=str(device), log_every=LOG_EVERY,
                               sample_every=0, ckpt_every=0, tensorboard=False, progress=False)
    run_dir = Path(tempfile.gettempdir()) / "ganzoo-bench-unused"  # train_step never writes there
    return Trainer(model, stream, settings=settings, optim=optim_settings(cfg), run_dir=run_dir, seed=SEED,
                   device=device, meta={})


class GanzooLoop:
    """The trainer's per-step work, as `Trainer.fit` does it (without progress bar, grids, checkpoints)."""

    name = "ganzoo"

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def step(self) -> None:
        t = self.trainer
        t.train_step(next(t.stream))
        if t.step % LOG_EVERY == 0:
            t.flush_stats()


class BareLoop:
    """The hand-written PyTorch loop: same nets, optimizers and data; nothing else."""

    name = "bare"

    def __init__(self, cfg: Config, model: GANModel, images: torch.Tensor, device: torch.device):
        self.G, self.D, self.z_dim = model.G, model.D, model.z_dim
        self.images, self.batch, self.device = images, cfg.batch, device
        s = optim_settings(cfg)
        self.opt_g = make_optimizer(list(self.G.parameters()), s, {})
        self.opt_d = make_optimizer(list(self.D.parameters()), s, {})
        self.ones = torch.ones(cfg.batch, device=device)
        self.zeros = torch.zeros(cfg.batch, device=device)
        self.perm = torch.randperm(len(images), device=device)
        self.pos = 0

    def step(self) -> None:
        b = self.batch
        if self.pos + b > len(self.perm):
            self.perm, self.pos = torch.randperm(len(self.images), device=self.device), 0
        idx = self.perm[self.pos : self.pos + b]
        self.pos += b
        real = self.images[idx].float().div_(127.5).sub_(1.0)
        z = torch.rand(b, self.z_dim, device=self.device) * 2 - 1
        fake = self.G(z)

        self.opt_d.zero_grad(set_to_none=True)
        loss_d = (F.binary_cross_entropy_with_logits(self.D(real), self.ones)
                  + F.binary_cross_entropy_with_logits(self.D(fake.detach()), self.zeros))
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        loss_g = F.binary_cross_entropy_with_logits(self.D(fake), self.ones)
        loss_g.backward()
        self.opt_g.step()


class _PairBatches:
    """Random batches of the preloaded uint8 A/B tensors as floats in [-1, 1]: one permutation for A,
    and for B the same one (paired) or its own (unpaired), as the loader does."""

    def __init__(self, data: dict[str, torch.Tensor], batch: int, paired: bool, device: torch.device):
        self.a, self.b, self.batch, self.paired, self.device = data["A"], data["B"], batch, paired, device
        self.pos = len(self.a)  # start with a fresh permutation

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        n, b = len(self.a), self.batch
        if self.pos + b > n:
            self.perm_a = torch.randperm(n, device=self.device)
            self.perm_b = self.perm_a if self.paired else torch.randperm(n, device=self.device)
            self.pos = 0
        ia, ib = self.perm_a[self.pos : self.pos + b], self.perm_b[self.pos : self.pos + b]
        self.pos += b
        return self.a[ia].float().div_(127.5).sub_(1.0), self.b[ib].float().div_(127.5).sub_(1.0)


def _ganzoo_optimizer(cfg: Config):
    """params -> ganzoo's optimizer for them (`make_optimizer` with the config's `OptimSettings`)."""
    settings = optim_settings(cfg)
    return lambda params: make_optimizer(params, settings, {})


def _requires_grad(nets, on: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(on)


class BarePix2Pix:
    """pix2pix_model.py's optimize_parameters written out: fake = G(A); D step on (A, fake.detach()) and
    (A, B), BCE on logits × 0.5; G step (D frozen) on BCE(D(A, fake), 1) + 100 · L1(fake, B)."""

    name = "bare"

    def __init__(self, cfg: Config, model: GANModel, data: dict[str, torch.Tensor] | None, device: torch.device,
                 optimizer=None):
        """`optimizer(params)` makes each net's optimizer (default ganzoo's `make_optimizer`); `data` None:
        the caller feeds batches to `train_on` itself (the reference-style loop of reference.py)."""
        self.G, self.D = model.G, model.D
        self.batches = _PairBatches(data, cfg.batch, True, device) if data is not None else None
        optimizer = optimizer or _ganzoo_optimizer(cfg)
        self.opt_g = optimizer(list(self.G.parameters()))
        self.opt_d = optimizer(list(self.D.parameters()))
        self.one, self.zero = torch.ones((), device=device), torch.zeros((), device=device)

    def step(self) -> dict[str, torch.Tensor]:
        return self.train_on(*self.batches.next())

    def train_on(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        fake_b = self.G(real_a)
        _requires_grad([self.D], True)
        self.opt_d.zero_grad(set_to_none=True)
        pred_fake = self.D(torch.cat([real_a, fake_b.detach()], 1))
        pred_real = self.D(torch.cat([real_a, real_b], 1))
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(pred_fake, self.zero.expand_as(pred_fake))
                        + F.binary_cross_entropy_with_logits(pred_real, self.one.expand_as(pred_real)))
        loss_d.backward()
        self.opt_d.step()
        _requires_grad([self.D], False)
        self.opt_g.zero_grad(set_to_none=True)
        pred_fake = self.D(torch.cat([real_a, fake_b], 1))
        loss_g = (F.binary_cross_entropy_with_logits(pred_fake, self.one.expand_as(pred_fake))
                  + 100.0 * F.l1_loss(fake_b, real_b))
        loss_g.backward()
        self.opt_g.step()
        return {"D": loss_d.detach(), "G": loss_g.detach()}


class _ListPool:
    """util/image_pool.py as the reference writes it: a Python list and Python's `random`."""

    def __init__(self, size: int):
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                j = random.randint(0, self.size - 1)
                out.append(self.images[j].clone())
                self.images[j] = image
            else:
                out.append(image)
        return torch.cat(out)


class BareCycleGAN:
    """cycle_gan_model.py's optimize_parameters written out: the four translations; the G step (Ds frozen)
    on LSGAN + 10 · cycle L1 + 5 · identity L1 (two more G passes); the D step on real and pooled fakes."""

    name = "bare"

    def __init__(self, cfg: Config, model: GANModel, data: dict[str, torch.Tensor] | None, device: torch.device,
                 optimizer=None):
        """`optimizer` and `data` as BarePix2Pix's."""
        self.G_A, self.G_B, self.D_A, self.D_B = model.G_A, model.G_B, model.D_A, model.D_B
        self.batches = _PairBatches(data, cfg.batch, False, device) if data is not None else None
        optimizer = optimizer or _ganzoo_optimizer(cfg)
        self.opt_g = optimizer([*self.G_A.parameters(), *self.G_B.parameters()])
        self.opt_d = optimizer([*self.D_A.parameters(), *self.D_B.parameters()])
        self.pool_a, self.pool_b = _ListPool(50), _ListPool(50)
        self.one, self.zero = torch.ones((), device=device), torch.zeros((), device=device)

    def _gan(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        return F.mse_loss(pred, (self.one if real else self.zero).expand_as(pred))

    def step(self) -> dict[str, torch.Tensor]:
        return self.train_on(*self.batches.next())

    def train_on(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        fake_b = self.G_A(real_a)
        rec_a = self.G_B(fake_b)
        fake_a = self.G_B(real_b)
        rec_b = self.G_A(fake_a)
        _requires_grad([self.D_A, self.D_B], False)
        self.opt_g.zero_grad(set_to_none=True)
        loss_idt = 5.0 * (F.l1_loss(self.G_A(real_b), real_b) + F.l1_loss(self.G_B(real_a), real_a))
        loss_g = (self._gan(self.D_A(fake_b), True) + self._gan(self.D_B(fake_a), True)
                  + 10.0 * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b)) + loss_idt)
        loss_g.backward()
        self.opt_g.step()
        _requires_grad([self.D_A, self.D_B], True)
        self.opt_d.zero_grad(set_to_none=True)
        losses = {"G": loss_g.detach()}
        for name, d, real, fake in (("D_A", self.D_A, real_b, self.pool_b.query(fake_b)),
                                    ("D_B", self.D_B, real_a, self.pool_a.query(fake_a))):
            loss_d = 0.5 * (self._gan(d(real), True) + self._gan(d(fake), False))
            loss_d.backward()
            losses[name] = loss_d.detach()
        self.opt_d.step()
        return losses


def build_loops(cfg: Config, device: torch.device, which: tuple[str, ...] = ("ganzoo", "bare")) -> dict:
    """The loops named in `which`, on identical nets (same seed, and the bare one a deep copy) and data."""
    dataset = make_dataset(cfg)
    model = make_model(cfg, dataset.info, device)
    loops = {}
    if "ganzoo" in which:
        # the bare loop gets a deep copy taken before any step: identical weights, separate state
        bare_model = copy.deepcopy(model) if "bare" in which else None
        loops["ganzoo"] = GanzooLoop(make_trainer(cfg, model, dataset, device))
        data = loops["ganzoo"].trainer.stream.data  # the very tensors the stream indexes
    else:
        bare_model, data = model, {k: v.to(device) for k, v in dataset.tensors().items()}
    if "bare" in which:
        if cfg.model is Pix2Pix:
            loops["bare"] = BarePix2Pix(cfg, bare_model, data, device)
        elif cfg.model is CycleGAN:
            loops["bare"] = BareCycleGAN(cfg, bare_model, data, device)
        else:
            loops["bare"] = BareLoop(cfg, bare_model, data["image"], device)
    return loops


# -- measurements --------------------------------------------------------------------------------


def time_steps(loop, n: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        loop.step()
    sync(device)
    return time.perf_counter() - t0


def warm_up(loop, device: torch.device, plan: Plan) -> list[float]:
    """The loop's first step (allocations, optimizer state, kernel choice), then single steps until
    `warmup_s` has passed; returns those steps' times (not the first's)."""
    time_steps(loop, 1, device)
    times: list[float] = []
    while len(times) < plan.warmup_max and sum(times) < plan.warmup_s:
        times.append(time_steps(loop, 1, device))
    return times


def seconds_per_step(loop, device: torch.device, plan: Plan, warm: list[float]) -> float:
    """Seconds per step, for sizing the rounds: a warm-up step if one alone lasted `calib_s` (slow
    configs), else blocks of 2, 4, 8, ... steps until one lasts `calib_s`, that block taken twice more
    and the fastest of the three kept (a burst of load elsewhere only makes a block slower)."""
    if warm and max(warm) >= plan.calib_s:
        return min(warm)
    n = 2
    while True:
        t = time_steps(loop, n, device)
        if t >= plan.calib_s or n >= plan.max_steps:
            break
        n *= 2
    if plan.calib_s > 0:
        t = min(t, *(time_steps(loop, n, device) for _ in range(2)))
    return t / n


def time_loops(loops: dict, device: torch.device, plan: Plan) -> tuple[dict[str, list[float]], int]:
    """Warm each loop up, size the rounds from the fastest, then alternate timing rounds of all the loops
    (as fit in the plan's budget); returns ({loop: [round seconds]}, steps per round)."""
    warm = {name: warm_up(lp, device, plan) for name, lp in loops.items()}
    per_step = min(seconds_per_step(lp, device, plan, warm[name]) for name, lp in loops.items())
    steps = int(min(plan.max_steps, max(plan.min_steps, round(plan.round_s / max(per_step, 1e-9)))))
    times: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(plan.rounds_for(steps * per_step * len(loops) / 2)):  # rounds_for counts a pair of loops
        for name, lp in loops.items():
            times[name].append(time_steps(lp, steps, device))
    return times, steps


def measure_speed(cfg: Config, device: torch.device, plan: Plan) -> tuple[dict, int, GANModel]:
    """Alternating timing rounds of both loops; returns ({loop: [round seconds]}, steps per round, model)."""
    loops = build_loops(cfg, device)
    times, steps = time_loops(loops, device, plan)
    return times, steps, loops["ganzoo"].trainer.model


@torch.no_grad()
def measure_sampling(model: GANModel, device: torch.device, plan: Plan, n: int = SAMPLE_N) -> float:
    """Best images/s of `model.generate(n)` in eval mode over a few rounds; for image-to-image models
    `model.translate` of n random images (pix2pix: one at a time with batch statistics, as the paper)."""
    was_training = model.training
    model.eval()
    if model.can(TRANSLATE):
        x = torch.rand(n, model.data.channels, model.data.resolution, model.data.resolution, device=device) * 2 - 1

        def infer():
            model.translate(x)
    else:
        def infer():
            model.generate(n)
    try:
        sync(device)
        t0 = time.perf_counter()
        infer()  # warm-up
        sync(device)
        per_call = time.perf_counter() - t0
        calls = max(1, round(plan.sample_s / max(per_call, 1e-9)))
        best = math.inf
        for _ in range(plan.sample_rounds):
            sync(device)
            t0 = time.perf_counter()
            for _ in range(calls):
                infer()
            sync(device)
            best = min(best, time.perf_counter() - t0)
        return calls * n / best
    finally:
        model.train(was_training)


def _peak_mb(device: torch.device) -> float:
    """Peak memory of this process so far: CUDA allocations, else the resident set's high-water mark.

    On Linux this reads VmHWM (/proc/self/status), not getrusage's ru_maxrss: ru_maxrss survives
    fork + exec, so a child started by a 1 GB parent reports at least 1 GB whatever it does itself.
    VmHWM belongs to the process's own address space, which exec makes fresh."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def memory_probe(config: str, loop: str, device: str, steps: int, threads: int) -> dict:
    """Build only one loop in this process and run `steps` steps; the peak memory (MB) before and after.
    Meant to run in a fresh process (see `probe_in_subprocesses`): RSS peaks are per process."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    cfg = CONFIGS[config]
    lp = build_loops(cfg, dev, (loop,))[loop]
    sync(dev)
    setup = _peak_mb(dev)
    for _ in range(steps):
        lp.step()
    sync(dev)
    return {"setup_mb": setup, "peak_mb": _peak_mb(dev),
            "kind": "max_memory_allocated" if dev.type == "cuda" else "peak RSS (VmHWM)"}


def probe_in_subprocesses(config: str, device: str, steps: int, threads: int,
                          loops: tuple[str, ...] = ("ganzoo", "bare")) -> dict[str, dict]:
    """`memory_probe` for each loop, each in its own fresh interpreter (`python bench.py --probe ...`).
    The probes run side by side: each one's peak is its own, and startup (importing torch) overlaps."""
    procs = {}
    for loop in loops:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", config, loop, device, str(steps),
               "--threads", str(threads)]
        procs[loop] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for loop, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"memory probe {config}/{loop}/{device} failed:\n{stderr[-2000:]}")
        out[loop] = json.loads(stdout.strip().splitlines()[-1])
    return out


def run_config(key: str, device: torch.device, plan: Plan, threads: int, memory: bool = True) -> Result:
    """All measurements of one config on one device."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    cfg = CONFIGS[key]
    times, steps, model = measure_speed(cfg, device, plan)
    images_per_s = measure_sampling(model, device, plan, cfg.sample_n)
    del model
    g_best, b_best = min(times["ganzoo"]), min(times["bare"])
    g_sps, b_sps = steps / g_best, steps / b_best
    r = Result(config=key, label=cfg.label, device=device.type, batch=cfg.batch, threads=threads,
               steps_per_round=steps, rounds=len(times["ganzoo"]), ganzoo_steps_per_s=g_sps, bare_steps_per_s=b_sps,
               overhead=b_sps / g_sps, ganzoo_round_s=times["ganzoo"], bare_round_s=times["bare"],
               sample_images_per_s=images_per_s)
    if memory:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        for loop, m in probe_in_subprocesses(key, str(device), plan.probe_steps, threads).items():
            r.memory_kind = m["kind"]
            setattr(r, f"{loop}_mem_mb", m["peak_mb"])
            setattr(r, f"{loop}_setup_mem_mb", m["setup_mb"])
    r.elapsed_s = time.perf_counter() - t0
    return r


# -- reporting -----------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_avg() -> float | None:
    """1-minute load average (other processes on the CPU make timings noisy), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def _mb(peak: float | None, setup: float | None) -> str:
    if peak is None:
        return "—"
    return f"{peak:,.0f} (+{peak - setup:,.0f})" if setup is not None else f"{peak:,.0f}"


def render(results: list[Result], header: dict, load_end: float | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(150, Console().width))
    load = header.get("load_avg_start")
    console.print(f"torch {header['torch']} | python {header['python']} | torch threads {header['threads']} | "
                  + " | ".join(f"{d}: {n}" for d, n in header["devices"].items())
                  + (f" | load avg {load} → {load_end}" if load is not None else ""))
    if load is not None and load > 0.5 * header["threads"]:  # at the start: the end's counts this run
        console.print("[yellow]other processes are using the CPU: CPU timings are noisy (each loop's best "
                      "round is kept)[/yellow]")
    table = Table(title="ganzoo Trainer vs bare PyTorch loop — best round of each")
    for col in ["config", "device", "batch", "steps × rounds", "ganzoo steps/s", "bare steps/s", "overhead",
                "ganzoo peak MB (+train)", "bare peak MB (+train)", "sample/translate img/s"]:
        table.add_column(col, justify="left" if col in ("config", "device") else "right")
    for r in results:
        style = "red" if r.overhead > OVERHEAD_TARGET else "green"
        table.add_row(r.label, r.device, str(r.batch), f"{r.steps_per_round} × {r.rounds}", f"{r.ganzoo_steps_per_s:.2f}",
                      f"{r.bare_steps_per_s:.2f}", f"[{style}]{r.overhead:.3f}[/{style}]",
                      _mb(r.ganzoo_mem_mb, r.ganzoo_setup_mem_mb), _mb(r.bare_mem_mb, r.bare_setup_mem_mb),
                      f"{r.sample_images_per_s:,.0f}")
    console.print(table)
    kinds = sorted({f"{r.device}: {r.memory_kind}" for r in results if r.memory_kind})
    console.print(f"overhead = bare steps/s ÷ ganzoo steps/s (target ≤ {OVERHEAD_TARGET}; < 1: ganzoo faster). "
                  f"memory = {'; '.join(kinds) or 'not measured'}, each loop alone in a fresh process; "
                  "(+train) = peak minus the peak before the first step (torch, nets, data).")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="all", choices=["cpu", "cuda", "all"],
                   help="all: CPU, and CUDA when available (default)")
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated, from {','.join(CONFIGS)}")
    p.add_argument("--quick", action="store_true", help="tiny step counts (a smoke test, not a measurement)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch threads (default: usable cores)")
    p.add_argument("--round-s", type=float, help="target seconds per timing round (default 3 on CPU, 1 on CUDA)")
    p.add_argument("--rounds", type=int, help="timing rounds per loop (default: 3 to 5, as fit in ~30 s)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory probes (subprocesses)")
    p.add_argument("--probe", nargs=4, metavar=("CONFIG", "LOOP", "DEVICE", "STEPS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.models.split(",")) - set(CONFIGS)
    if unknown:
        p.error(f"unknown --models {sorted(unknown)} (known: {', '.join(CONFIGS)})")
    return args


def devices_for(choice: str) -> list[torch.device]:
    if choice == "cpu":
        return [torch.device("cpu")]
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: CUDA is not available here")
        return [pick_device("cuda")]
    return [torch.device("cpu")] + ([pick_device("cuda")] if torch.cuda.is_available() else [])


def plan_for(device: torch.device, args: argparse.Namespace) -> Plan:
    if args.quick:
        plan = Plan.quick()
    elif device.type == "cpu":
        plan = Plan()
    else:  # CUDA: a step is milliseconds; more warm-up steps, shorter rounds
        plan = Plan(warmup_s=2.0, warmup_max=200, round_s=1.0, budget_s=10.0, max_rounds=5, probe_steps=3)
    if args.round_s is not None:
        plan.round_s = args.round_s
    if args.rounds is not None:
        plan.min_rounds = plan.max_rounds = args.rounds
    return plan


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    if args.probe:
        config, loop, device, steps = args.probe
        print(json.dumps(memory_probe(config, loop, device, int(steps), args.threads)))
        return []
    torch.set_num_threads(args.threads)
    devices = devices_for(args.device)
    header = {"torch": torch.__version__, "threads": args.threads, "python": platform.python_version(),
              "devices": {d.type: device_name(d) for d in devices}, "load_avg_start": load_avg()}
    results = []
    t0 = time.perf_counter()
    for device in devices:
        plan = plan_for(device, args)
        for key in args.models.split(","):
            print(f"measuring {key} on {device} ...", end="", file=sys.stderr, flush=True)
            results.append(run_config(key, device, plan, args.threads, memory=not args.no_memory))
            print(f" {results[-1].elapsed_s:.0f} s", file=sys.stderr, flush=True)
    header["load_avg_end"] = load_avg()
    render(results, header, header["load_avg_end"])
    print(f"total benchmark time {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "results": [asdict(r) for r in results]}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

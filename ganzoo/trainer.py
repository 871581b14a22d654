"""THE training loop. It names no model: it runs any `GANModel`'s phases.

Per iteration: one batch; `model.prepare(batch)` once; then for each phase due this step: gradients on
the phase's nets only, its loss under autocast, backward (through the GradScaler for fp16), its
optimizer step; then the LR schedules, the EMA update and the step counter. Logged scalars are summed
on the device and synced once per `log_every` steps — there is no host-device sync per step.

The full state (nets, EMA, optimizers, schedulers, scaler, step, data position, log accumulators, RNG
streams) goes into each checkpoint, so that resuming is exact: on CPU, N steps + resume + M steps
gives bitwise the weights and logged losses of N + M steps in one go.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .checkpoint import FORMAT_VERSION, save_checkpoint
from .data.loader import BatchStream
from .images import grid, save_grid
from .models.base import GANModel, Phase
from .runlog import RunLog
from .settings import OptimSettings, TrainerSettings


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(_tuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def make_optimizer(params: list[nn.Parameter], s: OptimSettings, overrides: dict) -> torch.optim.Optimizer:
    o = {**{k: getattr(s, k) for k in ("name", "lr", "betas", "eps", "weight_decay", "momentum")}, **overrides}
    fused = {"foreach": True}
    if o["name"] in ("adam", "adamw"):
        cls = torch.optim.Adam if o["name"] == "adam" else torch.optim.AdamW
        return cls(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"], **fused)
    if o["name"] == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"], **fused)
    raise ValueError(f"unknown optimizer {o['name']!r} (known: adam, adamw, sgd): set optim.name")


def lr_lambda(schedule: str, decay_start: int, max_steps: int):
    """Multiplier of the initial LR at step t: constant, or a linear/cosine decay to 0 at max_steps."""
    span = max(1, max_steps - decay_start)
    if schedule == "constant":
        return lambda t: 1.0
    if schedule == "linear":
        return lambda t: 1.0 - min(1.0, max(0, t - decay_start) / span)
    if schedule == "cosine":
        return lambda t: 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, t - decay_start) / span)))
    raise ValueError(f"unknown schedule {schedule!r} (known: constant, linear, cosine): set optim.schedule")


class Trainer:
    def __init__(self, model: GANModel, stream: BatchStream, *, settings: TrainerSettings, optim: OptimSettings,
                 run_dir: str | Path, seed: int, device: torch.device, meta: dict):
        self.model, self.stream, self.s, self.device = model, stream, settings, device
        self.run_dir, self.seed, self.meta = Path(run_dir), seed, meta
        self.phases: list[Phase] = model.phases()
        names = {n for p in self.phases for n in p.nets}
        unknown = set(optim.phases) - {p.name for p in self.phases}
        if unknown:
            raise ValueError(f"optim.phases has {sorted(unknown)}, but this model's phases are "
                             f"{[p.name for p in self.phases]}")
        self.nets = {n: getattr(model, n) for n in sorted(names)}
        self._params = {n: list(m.parameters()) for n, m in self.nets.items()}
        self._trainable: dict[str, bool] = {}
        self.opt = {p.name: make_optimizer([q for n in p.nets for q in getattr(model, n).parameters()], optim,
                                           dict(optim.phases.get(p.name, {}))) for p in self.phases}
        lam = lr_lambda(optim.schedule, optim.decay_start, settings.max_steps)
        self.sched = {k: torch.optim.lr_scheduler.LambdaLR(o, lam) for k, o in self.opt.items()}
        if settings.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"unknown trainer.amp {settings.amp!r} (known: none, bf16, fp16)")
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[settings.amp]
        self.scaler = torch.amp.GradScaler(device.type, enabled=settings.amp == "fp16")
        self.ema = ({n: copy.deepcopy(getattr(model, n)).requires_grad_(False).eval()
                     for n in model.ema_nets} if settings.ema else {})
        self.step = 0
        self._acc: dict[str, torch.Tensor] = {}
        self._cnt: dict[str, int] = {}
        self.fixed = stream.fixed_batch(settings.n_samples)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"format": FORMAT_VERSION, "ganzoo_version": __version__, "torch_version": str(torch.__version__),
                **self.meta, "step": self.step,
                "nets": self.model.state_dict(),
                "ema": {n: m.state_dict() for n, m in self.ema.items()} or None,
                "optim": {k: o.state_dict() for k, o in self.opt.items()},
                "sched": {k: s.state_dict() for k, s in self.sched.items()},
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "data_state": self.stream.state(),
                "log_acc": {"sum": dict(self._acc), "count": dict(self._cnt)},
                "rng": rng_state()}

    def load_state_dict(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["nets"])
        if self.ema:
            if ckpt.get("ema"):
                for n, m in self.ema.items():
                    m.load_state_dict(ckpt["ema"][n])
            else:  # EMA switched on at resume: start it from the current weights
                for n, m in self.ema.items():
                    m.load_state_dict(getattr(self.model, n).state_dict())
        for k, o in self.opt.items():
            o.load_state_dict(ckpt["optim"][k])
        for k, s in self.sched.items():
            s.load_state_dict(ckpt["sched"][k])
        if self.scaler.is_enabled() and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.stream.load_state(ckpt["data_state"])
        self._acc = {k: v.to(self.device) for k, v in ckpt["log_acc"]["sum"].items()}
        self._cnt = dict(ckpt["log_acc"]["count"])
        set_rng_state(ckpt["rng"])  # last: nothing after this may draw random numbers before the loop

    def save(self) -> Path:
        return save_checkpoint(self.run_dir, self.step, self.state_dict(), keep=self.s.keep_ckpts)

    # -- one iteration --------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _set_trainable(self, nets: tuple[str, ...] | None) -> None:
        for n, params in self._params.items():
            on = nets is None or n in nets
            if self._trainable.get(n) != on:  # only flip what changes: ~5 µs instead of ~100 µs per step
                for p in params:
                    p.requires_grad_(on)
                self._trainable[n] = on

    def train_step(self, batch: dict) -> None:
        self._set_trainable(None)  # prepare() may build graphs that later phases backprop through
        with self._autocast():
            ctx = self.model.prepare(batch)
        for phase in self.phases:
            if self.step % phase.every:
                continue
            self._set_trainable(phase.nets)
            opt = self.opt[phase.name]
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                out = phase.loss(batch, ctx)
            self.scaler.scale(out["loss"]).backward()
            self.scaler.step(opt)
            for k, v in out.items():
                key = f"{phase.name}/{k}"
                v = v.detach().float()
                self._acc[key] = self._acc[key] + v if key in self._acc else v.clone()
                self._cnt[key] = self._cnt.get(key, 0) + 1
        self.scaler.update()
        for s in self.sched.values():
            s.step()
        self._update_ema()
        self.step += 1

    @torch.no_grad()
    def _update_ema(self) -> None:
        if not self.ema:
            return
        decay = self.s.ema_decay if self.step >= self.s.ema_start else 0.0
        for n, ema in self.ema.items():
            live = getattr(self.model, n)
            ema_p, live_p = list(ema.parameters()), list(live.parameters())
            torch._foreach_lerp_(ema_p, live_p, 1.0 - decay)
            for b_ema, b in zip(ema.buffers(), live.buffers()):
                b_ema.copy_(b)

    # -- reporting ------------------------------------------------------------------------------
    def flush_stats(self) -> dict[str, float]:
        keys = list(self._acc)
        values = torch.stack([self._acc[k] for k in keys]).tolist() if keys else []  # the one sync
        out = {k: v / self._cnt[k] for k, v in zip(keys, values)}
        for k, o in self.opt.items():
            out[f"lr/{k}"] = o.param_groups[0]["lr"]
        self._acc, self._cnt = {}, {}
        return out

    def _log(self, log: RunLog, t0: float, step0: int, partial: bool = False) -> tuple[float, int]:
        values = self.flush_stats()
        now = time.perf_counter()
        values["steps_per_s"] = (self.step - step0) / max(now - t0, 1e-9)
        if partial:  # a window cut short by the end of the run; dropped from the log on resume
            values["partial"] = True
        log.scalars(self.step, values)
        return now, self.step

    @contextlib.contextmanager
    def inference_model(self) -> Iterator[GANModel]:
        """The model in eval mode with EMA weights swapped in (when EMA is on)."""
        live = {n: getattr(self.model, n) for n in self.ema}
        was_training = self.model.training
        for n, m in self.ema.items():
            setattr(self.model, n, m)
        self.model.eval()
        try:
            yield self.model
        finally:
            for n, m in live.items():
                setattr(self.model, n, m)
            self.model.train(was_training)

    @torch.no_grad()
    def write_samples(self, log: RunLog | None = None) -> Path:
        g = torch.Generator(self.device).manual_seed(self.seed + 1)  # the same inputs at every step
        with self.inference_model() as m:
            images = m.preview(self.s.n_samples, generator=g, batch=self.fixed)
        path = save_grid(images, self.run_dir / "samples" / f"step_{self.step:08d}.png")
        if log is not None:
            log.image(self.step, "samples", grid(images, max(1, int(round(images.shape[0] ** 0.5)))))
        return path

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> None:
        s = self.s
        log = RunLog(self.run_dir, total_steps=s.max_steps, start_step=self.step, tensorboard=s.tensorboard,
                     progress=s.progress)
        self.model.train()
        t0, step0 = time.perf_counter(), self.step
        try:
            while self.step < s.max_steps:
                self.train_step(next(self.stream))
                log.advance(self.step)
                if self.step % s.log_every == 0:
                    t0, step0 = self._log(log, t0, step0)
                if s.sample_every and self.step % s.sample_every == 0:
                    self.write_samples(log)
                if s.ckpt_every and self.step % s.ckpt_every == 0 and self.step < s.max_steps:
                    self.save()
            if not s.sample_every or self.step % s.sample_every:
                self.write_samples(log)
            self.save()  # before the final partial log line, so a resumed run continues the same window
            if self._cnt:
                self._log(log, t0, step0, partial=True)
        finally:
            log.close()

"""THE training loop. It names no model: it runs any `GANModel`'s phases.

Per iteration: one batch; `model.prepare(batch)` once; then for each phase due this step: gradients on
the phase's nets only, its loss under autocast, backward (through the GradScaler for fp16), its
optimizer step; then the LR schedules, the EMA update and the step counter. Logged scalars are summed
on the device and synced once per `log_every` steps — there is no host-device sync per step.

The full state (nets, EMA, optimizers, schedulers, scaler, step, data position, log accumulators, RNG
streams) goes into each checkpoint, so that resuming is exact: on CPU, N steps + resume + M steps
gives bitwise the weights and logged losses of N + M steps in one go.

Data-parallel (`world.size` > 1, `ganzoo.distributed`): every rank runs this loop on its stride of the
global batch; each phase's gradients are averaged over the ranks before its optimizer step, the logged
scalars are reduced at `log_every` only, a stop signal seen by any rank stops all at the same step, and
rank 0 alone writes checkpoints (with every rank's RNG state), stats, samples and evaluations.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from . import __version__
from . import distributed as dist
from .checkpoint import FORMAT_VERSION, find_latest, load_checkpoint, save_checkpoint
from .data.base import DataError
from .data.loader import BatchStream, worker_failure
from .distributed import SINGLE, World
from .errors import UserError
from .images import grid, save_grid
from .interrupts import interrupted_at_start_up
from .models.base import GANModel, Phase
from .optimizers import AdamEpsInSqrt
from .runlog import RunLog
from .runtime import Interrupted, StopRequest, amp_choice, rng_state, set_rng_state
from .settings import OptimSettings, TrainerSettings
from .storage import OutputError, output_error


def make_optimizer(params: list[nn.Parameter], s: OptimSettings, overrides: dict) -> torch.optim.Optimizer:
    """One optimizer. Fused kernels where the device has them (CPU, CUDA): one launch per step, and
    a step with non-finite gradients can be skipped on the device (`found_inf`) without a host sync."""
    keys = ("name", "lr", "betas", "eps", "eps_in_sqrt", "weight_decay", "momentum")
    o = {**{k: getattr(s, k) for k in keys}, **overrides}
    device = params[0].device.type if params else "cpu"
    fused = {"fused": True} if device in ("cpu", "cuda") else {"foreach": True}
    if o["eps_in_sqrt"]:
        if o["name"] != "adam":
            raise ValueError(f"optim.eps_in_sqrt is an Adam option, and optim.name is {o['name']!r}: set "
                             f"optim.name=adam or optim.eps_in_sqrt=false")
        return AdamEpsInSqrt(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"])
    if o["name"] in ("adam", "adamw"):
        cls = torch.optim.Adam if o["name"] == "adam" else torch.optim.AdamW
        return cls(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"], **fused)
    if o["name"] == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"], **fused)
    raise ValueError(f"unknown optimizer {o['name']!r} (known: adam, adamw, sgd): set optim.name")


def skips_on_device(opt: torch.optim.Optimizer) -> bool:
    """Whether `opt.step()` honours `opt.found_inf` on the device (torch's fused kernels; AdamEpsInSqrt)."""
    return bool(opt.defaults.get("fused")) or getattr(opt, "skips_on_device", False)


def lr_lambda(schedule: str, decay_start: int, max_steps: int, decay_factor: float = 0.1):
    """Multiplier of the initial LR at step t: constant, a linear/cosine decay to 0 at max_steps, or
    `step`: x decay_factor from decay_start on (SRGAN's 1e-4 then 1e-5)."""
    span = max(1, max_steps - decay_start)
    if schedule == "constant":
        return lambda t: 1.0
    if schedule == "step":
        return lambda t: 1.0 if t < decay_start else decay_factor
    if schedule == "linear":
        return lambda t: 1.0 - min(1.0, max(0, t - decay_start) / span)
    if schedule == "cosine":
        return lambda t: 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, t - decay_start) / span)))
    raise ValueError(f"unknown schedule {schedule!r} (known: constant, linear, cosine, step): set optim.schedule")


class Diverged(UserError):
    """Non-finite losses, gradients or weights under on_nan=stop (or rollbacks exhausted)."""

    exit_code = 3


_UNSET = object()


def _unique(params) -> list[nn.Parameter]:
    """The parameters in order, each once (a parameter shared by several nets is listed once)."""
    seen: set[int] = set()
    return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


def _tensors(tree, prefix: str):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _tensors(v, f"{prefix}.{k}")
        elif torch.is_tensor(v):
            yield f"{prefix}.{k}", v


class _NoLog:
    """What ranks > 0 report: nothing (rank 0 writes the run's stats, samples and messages)."""

    def advance(self, step: int) -> None: ...
    def scalars(self, step: int, values: dict) -> None: ...
    def image(self, step: int, tag: str, grid_uint8) -> None: ...
    def message(self, text: str) -> None: ...
    def done(self, step: int, checkpoint) -> None: ...
    def close(self, quiet: bool = False) -> None: ...


class Trainer:
    def __init__(self, model: GANModel, stream: BatchStream, *, settings: TrainerSettings, optim: OptimSettings,
                 run_dir: str | Path, seed: int, device: torch.device, meta: dict,
                 evaluator: Callable[[Callable, bool], dict[str, float]] | None = None, world: World = SINGLE):
        self.model, self.stream, self.s, self.device, self.world = model, stream, settings, device, world
        # every `eval_every` steps: evaluator(open_model, has_ema) -> {"eval/<name>": value}, where
        # open_model(ema: bool) is a context giving the model to score (`inference_model`)
        self.evaluator = evaluator
        self.run_dir, self.seed, self.meta = Path(run_dir), seed, meta
        self.phases: list[Phase] = model.phases()
        names = {n for p in self.phases for n in p.nets}
        unknown = set(optim.phases) - {p.name for p in self.phases}
        if unknown:
            raise ValueError(f"optim.phases has {sorted(unknown)}, but this model's phases are "
                             f"{[p.name for p in self.phases]}")
        frozen = set(model.frozen_nets())
        if frozen & (names | set(model.ema_nets)):
            raise ValueError(f"frozen pretrained parts {sorted(frozen & (names | set(model.ema_nets)))} are trained by a "
                             f"phase or kept in the EMA: a frozen part is in neither")
        for n in frozen:
            getattr(model, n).requires_grad_(False)
        self.nets = {n: getattr(model, n) for n in sorted(names)}
        # parameters shared by several nets (CoGAN, UNIT) are one entry each: one update per step
        phase_params = {p.name: _unique(q for n in p.nets for q in getattr(model, n).parameters()) for p in self.phases}
        owner: dict[int, str] = {}
        for name, params in phase_params.items():
            for q in params:
                if owner.setdefault(id(q), name) != name:
                    raise ValueError(f"a parameter is trained by phases {owner[id(q)]} and {name}: it would be updated "
                                     f"twice per step; share it only between nets of one phase")
        self._phase_params = phase_params
        self._params = _unique(q for n in self.nets.values() for q in n.parameters())
        index = {id(q): i for i, q in enumerate(self._params)}
        self._net_params = {n: frozenset(index[id(q)] for q in m.parameters()) for n, m in self.nets.items()}
        self._grad_key: object = _UNSET  # the nets whose gradients are on now (None: every phase's nets)
        self._grad_flips: dict[tuple, list[tuple[nn.Parameter, bool]]] = {}
        self.opt = {p.name: make_optimizer(phase_params[p.name], optim, dict(optim.phases.get(p.name, {})))
                    for p in self.phases}
        lam = lr_lambda(optim.schedule, optim.decay_start, settings.max_steps, optim.decay_factor)
        self.sched = {k: torch.optim.lr_scheduler.LambdaLR(o, lam) for k, o in self.opt.items()}
        # auto -> bf16 or none, for this device and image size
        self.amp, self.amp_reason = amp_choice(settings.amp, device, stream.info.resolution, settings.amp_auto_min_px)
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == "fp16")
        if model.data_init_size:  # before the EMA copy (it starts from the initialised weights) and the
            with torch.no_grad():  # broadcast (every rank then starts from rank 0's init); a resume loads over it
                model.data_init(stream.fixed_batch(model.data_init_size))
        # one deepcopy of all EMA nets together: parameters they share stay shared in the copies
        self.ema = ({n: m.requires_grad_(False).eval() for n, m in
                     copy.deepcopy({n: getattr(model, n) for n in model.ema_nets}).items()} if settings.ema else {})
        self._ema_pairs = self._pairs(lambda m: m.parameters())
        self._ema_buffers = self._pairs(lambda m: m.buffers())
        if settings.compile:  # after the EMA deep copy: a copy of a compiled module would call the original
            for net in self.nets.values():
                net.compile(backend=settings.compile_backend)
        if world.active:  # every rank starts from rank 0's weights (the same seed built them; this makes sure)
            tensors = {id(t): t for t in (*model.parameters(), *model.buffers(), *self._ema_pairs[0],
                                          *self._ema_buffers[0])}
            dist.broadcast_tensors(list(tensors.values()))
        self.step = 0
        self._acc: dict[str, torch.Tensor] = {}
        self._cnt: dict[str, int] = {}
        self._bad: dict[str, torch.Tensor] = {}  # non-finite steps per phase since the last log (device)
        self._one = torch.ones((), device=device)
        self.nonfinite_total = 0  # host-side count, updated at each log
        self.rollbacks = 0
        if settings.on_nan not in ("skip", "stop", "rollback"):
            raise ValueError(f"unknown trainer.on_nan {settings.on_nan!r} (known: skip, stop, rollback)")
        if settings.on_save_error not in ("stop", "continue"):
            raise ValueError(f"unknown trainer.on_save_error {settings.on_save_error!r} (known: stop, continue)")
        self.save_failures = 0
        self._health_warned = False  # model.health's first warning of this process is printed
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
                "log_acc": {"sum": dict(self._acc), "count": dict(self._cnt), "nonfinite": dict(self._bad)},
                "rng": rng_state(), "world_size": self.world.size,
                **({"rng_ranks": dist.gather(rng_state())} if self.world.active else {})}

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
        self._bad = {k: v.to(self.device) for k, v in ckpt["log_acc"].get("nonfinite", {}).items()}
        ranks = ckpt.get("rng_ranks") or [ckpt["rng"]]
        # last: nothing after this may draw random numbers before the loop
        set_rng_state(ranks[self.world.rank] if self.world.rank < len(ranks) else ckpt["rng"])

    def save(self, final: bool = False) -> Path | None:
        """Write a checkpoint. Refuses non-finite weights (Diverged). A failed write (disk full)
        stops the run, or with on_save_error=continue is reported and training goes on, up to
        max_save_failures in a row; the final save must succeed."""
        state = self.state_dict()
        bad = [k for part in ("nets", "ema") for k, v in _tensors(state.get(part) or {}, part)
               if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            kept = find_latest(self.run_dir)
            where = (f"the last good checkpoint ({kept.name}) is kept" if kept is not None else
                     "no checkpoint was written before (nothing to resume)")
            raise Diverged(f"refusing to save non-finite weights at step {self.step} ({bad[0]}, ...): {where}; "
                           f"lower optim.lr or set trainer.on_nan=rollback")
        state["log_acc"]["sum"] = {k: torch.nan_to_num(v) for k, v in state["log_acc"]["sum"].items()}
        if self.world.active:
            self._check_in_step()
        try:
            path = None
            if self.world.main:  # the other ranks hold the same weights: rank 0 writes
                path = save_checkpoint(self.run_dir, self.step, state, keep=self.s.keep_ckpts)
            self._saved_everywhere(failed=False)
        except OSError as e:
            self._saved_everywhere(failed=True)
            self.save_failures += 1
            if final or self.s.on_save_error == "stop" or self.save_failures >= self.s.max_save_failures:
                raise
            warnings.warn(f"{e} — training goes on without this checkpoint (failure {self.save_failures} of "
                          f"at most {self.s.max_save_failures}; trainer.on_save_error=continue)", stacklevel=2)
            return None
        self.save_failures = 0
        return path

    @torch.no_grad()
    def _check_in_step(self) -> None:
        """Data-parallel runs, at each save: every rank holds the same weights (a sum per rank, compared;
        a difference is a bug in the synchronisation, never written into a checkpoint)."""
        total = sum(float(p.double().sum()) for p in self._params)
        sums = dist.gather(total)
        if len(set(sums)) > 1:
            raise RuntimeError(f"data-parallel ranks hold different weights at step {self.step} (sums {sums})")

    def _saved_everywhere(self, failed: bool) -> None:
        """Data-parallel runs: every rank learns whether rank 0's write failed, and follows the same
        policy (a failure on rank 0 is raised on the others as an OSError naming it)."""
        if not self.world.active:
            return
        if dist.max_int(int(failed)) and not failed:
            raise OSError(f"rank 0 could not write the checkpoint of step {self.step}")

    # -- one iteration --------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _on(self, key) -> frozenset[int]:
        if key is None:
            return frozenset(range(len(self._params)))
        return frozenset().union(*(self._net_params[n] for n in key))

    def _set_trainable(self, nets: tuple[str, ...] | None) -> None:
        """Gradients on for the parameters of `nets` (None: of every phase's nets), off for the others.
        Only what changes is flipped (~5 µs instead of ~100 µs per step); the flips between two keys are
        worked out once. By parameter, not by net, so a parameter shared by two nets is never half on."""
        key = nets
        if key == self._grad_key:
            return
        flips = self._grad_flips.get((self._grad_key, key))
        if flips is None:
            on = self._on(key)
            before = None if self._grad_key is _UNSET else self._on(self._grad_key)
            flips = [(p, i in on) for i, p in enumerate(self._params) if before is None or (i in on) != (i in before)]
            self._grad_flips[(self._grad_key, key)] = flips
        for p, flag in flips:
            p.requires_grad_(flag)
        self._grad_key = key

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
            loss = out["loss"]
            self.scaler.scale(loss).backward()
            if self.world.active:
                dist.average_grads(self._phase_params[phase.name], self.world.size)
            bad = self._nonfinite(opt, loss)
            self._step(opt, bad)
            self._bad[phase.name] = self._bad[phase.name] + bad if phase.name in self._bad else bad
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
    def _nonfinite(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
        """1.0 (a device tensor) if this phase's loss or gradients are not finite, else 0.0.

        Without fp16, a fused optimizer is told to skip such a step on the device (the `found_inf`
        protocol GradScaler uses), so the weights and Adam moments stay untouched and nothing syncs.
        With fp16 the GradScaler finds overflowing gradients itself, skips the step and backs off
        the scale (overflow is routine there); only a non-finite loss is counted."""
        found = (~torch.isfinite(loss.detach().float())).float()
        if self.scaler.is_enabled():
            return found
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, self._one)
        if skips_on_device(opt):
            opt.found_inf, opt.grad_scale = found, None
        return found

    def _step(self, opt: torch.optim.Optimizer, bad: torch.Tensor) -> None:
        if self.scaler.is_enabled() or skips_on_device(opt):
            self.scaler.step(opt)  # skips on the device when `bad` (or the scaler's own check) is set
        elif not bool(bad):  # no fused kernels on this device (e.g. mps): one host sync per phase
            opt.step()

    @torch.no_grad()
    def _update_ema(self) -> None:
        if not self.ema:
            return
        decay = self.s.ema_decay if self.step >= self.s.ema_start else 0.0
        ema_p, live_p = self._ema_pairs
        torch._foreach_lerp_(ema_p, live_p, 1.0 - decay)
        for b_ema, b in zip(*self._ema_buffers):
            b_ema.copy_(b)

    def _pairs(self, tensors) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(EMA tensors, live tensors) of every EMA net, each shared tensor once (one update per step)."""
        seen: set[int] = set()
        ema, live = [], []
        for n, m in self.ema.items():
            for e, t in zip(tensors(m), tensors(getattr(self.model, n))):
                if id(e) not in seen:
                    seen.add(id(e))
                    ema.append(e)
                    live.append(t)
        return ema, live

    # -- reporting ------------------------------------------------------------------------------
    def flush_stats(self) -> dict[str, float]:
        keys, bad_keys = list(self._acc), list(self._bad)
        tensors = [self._acc[k] for k in keys] + [self._bad[k] for k in bad_keys]
        stacked = torch.stack(tensors) if tensors else None
        if stacked is not None and self.world.active:  # the mean over ranks (every rank has the same counts)
            stacked = dist.sum_(stacked) / self.world.size
        values = stacked.tolist() if stacked is not None else []  # the one sync
        out = {k: v / self._cnt[k] for k, v in zip(keys, values)}
        for k, v in zip(bad_keys, values[len(keys):]):
            out[f"nonfinite/{k}"] = round(v)
        for k, o in self.opt.items():
            out[f"lr/{k}"] = o.param_groups[0]["lr"]
        self._acc, self._cnt, self._bad = {}, {}, {}
        return out

    def _after_nonfinite(self, values: dict, log: RunLog) -> None:
        """The on_nan policy, applied at the log step that reports skipped non-finite steps."""
        bad = {k[len("nonfinite/"):]: v for k, v in values.items() if k.startswith("nonfinite/") and v}
        if not bad:
            return
        self.nonfinite_total += sum(bad.values())
        what = ", ".join(f"{n} in phase {k}" for k, n in bad.items())
        policy = self.s.on_nan
        if policy == "rollback" and self.rollbacks < self.s.max_rollbacks:
            path = find_latest(self.run_dir)
            if path is not None:
                self.rollback(load_checkpoint(path, map_location=self.device))
                log.message(f"[yellow]non-finite loss or gradients ({what} steps, skipped); rolled back to "
                            f"{path.name} with learning rates x{self.s.nan_lr_factor}[/]")
                return
        if policy in ("stop", "rollback"):
            raise Diverged(f"non-finite loss or gradients at step ~{self.step} ({what} of the last "
                           f"{self.s.log_every} steps; skipped, the weights are finite): lower optim.lr, use "
                           f"trainer.amp=none, or trainer.on_nan=skip to carry on")
        log.message(f"[yellow]skipped {what} step(s) with non-finite loss or gradients "
                    f"(total {self.nonfinite_total})[/]")

    def rollback(self, ckpt: dict) -> None:
        """Reload a checkpoint and lower every learning rate by `nan_lr_factor` (kept in the schedulers)."""
        # from the rates in use now (already lowered by earlier rollbacks), not the checkpoint's
        lowered = {k: [lr * self.s.nan_lr_factor for lr in s.base_lrs] for k, s in self.sched.items()}
        self.load_state_dict(ckpt)
        for k, s in self.sched.items():
            s.base_lrs = lowered[k]
            for group, base, lam in zip(self.opt[k].param_groups, s.base_lrs, s.lr_lambdas):
                group["lr"] = base * lam(s.last_epoch)
        self.rollbacks += 1

    def _log(self, log: RunLog, t0: float, step0: int, partial: bool = False) -> tuple[float, int]:
        values = self.flush_stats()
        now = time.perf_counter()
        values["steps_per_s"] = (self.step - step0) / max(now - t0, 1e-9)
        if partial:  # a window cut short by the end of the run; dropped from the log on resume
            values["partial"] = True
        warning = None if self._health_warned else self.model.health(self.step, values)
        if warning:  # printed once, and kept in that stats.jsonl line
            values["warning"] = warning
            self._health_warned = True
        log.scalars(self.step, values)
        if warning:
            log.message(f"[yellow]{warning}[/]")
        self._after_nonfinite(values, log)
        return now, self.step

    @contextlib.contextmanager
    def inference_model(self, ema: bool = True) -> Iterator[GANModel]:
        """The model in eval mode with EMA weights swapped in (when EMA is on and `ema`)."""
        swap = self.ema if ema else {}
        live = {n: getattr(self.model, n) for n in swap}
        was_training = self.model.training
        for n, m in swap.items():
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
        nrow = self.model.grid_nrow(images.shape[0])
        path = save_grid(images, self.run_dir / "samples" / f"step_{self.step:08d}.png", nrow)
        if log is not None:
            log.image(self.step, "samples", grid(images, nrow))
        return path

    def evaluate(self, log: RunLog) -> dict[str, float]:
        """The evaluation callable's numbers for the inference model (it opens the model with EMA weights
        when kept, and the live ones where its metrics want both), logged as given (eval/<name>): what
        `ganzoo eval` would write for a checkpoint of this step."""
        values = self.evaluator(self.inference_model, bool(self.ema))
        log.scalars(self.step, values)
        return values

    @contextlib.contextmanager
    def _reporting(self):
        """A failed write of stats, TensorBoard events or a sample grid (a full disk, a read-only
        folder) stops the run with one line, after trying to save a checkpoint of this step."""
        try:
            yield
        except OSError as e:
            err = output_error(e)
            if err is None:
                raise
            if self.world.active:  # a save is collective and the other ranks are not here: the last one is kept
                raise OutputError(f"{err}; the last checkpoint is kept") from None
            try:
                path = self.save()
                saved = (f"saved {path} at step {self.step}; continue with: ganzoo train resume={self.run_dir}"
                         if path is not None else f"no checkpoint at step {self.step} either")
            except OSError as e2:
                saved = f"the checkpoint of step {self.step} could not be written either: {e2}"
            raise OutputError(f"{err}; {saved}") from None

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> None:
        s, main = self.s, self.world.main
        log = (RunLog(self.run_dir, total_steps=s.max_steps, start_step=self.step, tensorboard=s.tensorboard,
                      progress=s.progress) if main else _NoLog())
        self.model.train()
        t0, step0 = time.perf_counter(), self.step
        stop = StopRequest(second_interrupt=not self.world.active)
        try:
            stop.install()
            if interrupted_at_start_up():  # a Ctrl-C during start-up whose KeyboardInterrupt was swallowed
                raise KeyboardInterrupt
            while self.step < s.max_steps:
                self.train_step(next(self.stream))
                log.advance(self.step)
                signum = stop.signum
                if self.world.active:  # a signal seen by any rank stops every rank at this step
                    signum = dist.max_int(signum or 0) or None
                if signum is not None:  # SIGINT/TERM/HUP/USR1/USR2: save at this step boundary, exit
                    path = self.save()
                    log.message(f"[yellow]{signal.Signals(signum).name}: saved {path} at step {self.step}; "
                                f"continue with: ganzoo train resume={self.run_dir}[/]")
                    raise Interrupted(signum, then=stop.previous(signum))
                with self._reporting():
                    if self.step % s.log_every == 0:
                        t0, step0 = self._log(log, t0, step0)
                    if main and s.sample_every and self.step % s.sample_every == 0:
                        self.write_samples(log)
                    if main and self.evaluator is not None and s.eval_every and self.step % s.eval_every == 0:
                        self.evaluate(log)
                if s.ckpt_every and self.step % s.ckpt_every == 0 and self.step < s.max_steps:
                    self.save()
            with self._reporting():
                if main and (not s.sample_every or self.step % s.sample_every):
                    self.write_samples(log)
                if main and self.evaluator is not None and s.eval_every and self.step % s.eval_every:
                    self.evaluate(log)
            final = self.save(final=True)  # before the final partial log line, so a resumed run continues that window
            with self._reporting():
                if self._cnt:
                    self._log(log, t0, step0, partial=True)
                log.done(self.step, final)
                log.close()
        except RuntimeError as e:  # a worker's death is raised by a SIGCHLD handler wherever the loop is
            msg = worker_failure(e, s.worker_timeout)
            if msg is None:
                raise
            raise DataError(msg) from None
        finally:
            stop.uninstall()
            log.close(quiet=True)  # after an error: that error is the one to report

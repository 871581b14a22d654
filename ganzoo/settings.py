"""Plain settings dataclasses for the trainer and optimizers.

These are the schemas of the `trainer` and `optim` config groups (registered with Hydra in
`ganzoo.config`), and what the trainer receives: code below the command layer never sees a config
object.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, List, Optional  # noqa: UP035 - OmegaConf reads these forms

from .errors import UserError


@dataclass
class TrainerSettings:
    max_steps: Optional[int] = 5000  # noqa: UP045 - optimizer iterations (one batch each); null: use max_epochs
    max_epochs: Optional[float] = None  # noqa: UP045 - the run's length in epochs (with max_steps null)
    batch_size: int = 64
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:1 | mps
    amp: str = "none"  # none | auto | bf16 | fp16 (fp16 uses a GradScaler)
    amp_auto_min_px: int = 0  # amp=auto: bf16 (on a device with native bf16) only for images of at least this size
    ema: bool = False  # keep an exponential moving average of the generator(s)
    ema_decay: float = 0.999
    ema_start: int = 0  # steps before the EMA starts averaging (it copies the weights until then)
    log_every: int = 50  # steps between stats lines (the only host-device sync of the loop)
    sample_every: int = 500  # steps between PNG sample grids (0: only at the end)
    ckpt_every: int = 1000  # steps between checkpoints (0: only at the end and at a stop signal; warned)
    keep_ckpts: int = 3  # checkpoints kept (at least 2)
    n_samples: int = 64  # images in each sample grid
    eval_every: int = 0  # steps between evaluations of the live (EMA) model, `ganzoo eval`'s metrics (0: off)
    eval_n_per_class: int = 100  # generated images per class for those evaluations
    eval_metrics: Optional[List[str]] = None  # noqa: UP006, UP045 - suites to compute (null: the model's own), e.g. [fid]
    eval_samples: int = 10000  # generated images for fid/kid/is/pr at each evaluation
    eval_feature_extractor: str = "inception"  # fid/kid/is/pr feature network: inception | judge (digit sets)
    num_workers: int = 0  # DataLoader workers when the data is not preloaded
    preload: Optional[bool] = None  # noqa: UP045 - null: preload when the dataset fits in preload_max_mb
    preload_max_mb: int = 2048
    worker_timeout: float = 120.0  # seconds a DataLoader worker may take for one batch
    channels_last: bool = False
    tensorboard: bool = True
    on_nan: str = "skip"  # non-finite loss/grads: skip (the step, on the device) | stop | rollback
    nan_lr_factor: float = 0.5  # rollback: multiply every learning rate by this after reloading
    max_rollbacks: int = 3  # rollback: stop after this many
    on_save_error: str = "stop"  # a checkpoint write fails (disk full): stop | continue (training)
    max_save_failures: int = 3  # continue: stop after this many failed saves in a row
    progress: bool = True  # rich progress bar (on a terminal; plain lines otherwise)
    devices: int = 1  # data-parallel processes on this node (one per GPU; gloo processes on the CPU)
    sync_bn: bool = False  # data-parallel on CUDA: batch norm statistics over the global batch (else per process)
    compile: bool = False  # torch.compile the trained nets (in place: same state-dict keys; EMA copies stay eager)
    compile_backend: str = "inductor"  # torch.compile backend (inductor | aot_eager | eager | ...)
    cudnn_benchmark: bool = False  # CUDA: let cuDNN time its algorithms for the run's shapes (not bitwise reproducible)

    def __post_init__(self):  # OmegaConf.to_object and every direct construction pass here
        check_all("trainer", {f.name: getattr(self, f.name) for f in fields(self)}, TRAINER_CHECKS)


@dataclass
class OptimSettings:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 2e-4
    betas: List[float] = field(default_factory=lambda: [0.5, 0.999])  # noqa: UP006
    eps: float = 1e-8
    eps_in_sqrt: bool = False  # adam: divide by sqrt(v + eps) as Theano-era code (improved-gan), not sqrt(v) + eps
    weight_decay: float = 0.0
    momentum: float = 0.0  # sgd only
    schedule: str = "constant"  # constant | linear (to zero at max_steps) | cosine | step (x decay_factor)
    decay_start: int = 0  # steps at the initial lr before a linear/cosine decay starts (step: the step)
    decay_factor: float = 0.1  # step schedule: the lr multiplier from decay_start on
    decay_start_epochs: Optional[float] = None  # noqa: UP045 - decay_start in epochs (pix2pix/CycleGAN: n_epochs)
    phases: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006 - per-phase overrides, e.g. {G: {lr: 1e-3}}

    def __post_init__(self):
        check_all("optim", {f.name: getattr(self, f.name) for f in fields(self)}, OPTIM_CHECKS)
        for phase, overrides in (self.phases or {}).items():
            if not isinstance(overrides, Mapping):
                raise UserError(f"optim.phases.{phase}={overrides!r}: give a mapping of optimizer keys, "
                                f"e.g. optim.phases.{phase}.lr=1e-3")
            unknown = sorted(set(overrides) - PHASE_KEYS)
            if unknown:
                raise UserError(f"optim.phases.{phase}.{unknown[0]}: not a per-phase key (known: "
                                f"{', '.join(sorted(PHASE_KEYS))})")
            check_all(f"optim.phases.{phase}", overrides, OPTIM_CHECKS)


@dataclass(frozen=True)
class Check:
    """The valid values of one setting: a number range (`lo`/`hi`, inclusive unless `*_open`), a set
    of names (`choices`) or a pattern; `null` allows None. `describe()` is what the error message says."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    text: str = ""  # the pattern's description
    null: bool = False

    def ok(self, v: Any) -> bool:
        if v is None:
            return self.null
        if self.choices:
            return v in self.choices
        if self.pattern is not None:
            return isinstance(v, str) and re.fullmatch(self.pattern, v) is not None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (self.integer and not isinstance(v, int)):
            return False
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def describe(self) -> str:
        if self.choices:
            what = "one of " + ", ".join(self.choices)
        elif self.pattern is not None:
            what = self.text
        else:
            kind = "an integer" if self.integer else "a number"
            lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
            hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
            if lo and hi:
                what = f"{kind} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
            else:
                what = " ".join(x for x in (kind, lo or hi) if x)
        return what + (" or null" if self.null else "")


def at_least(lo: float, *, integer: bool = True, null: bool = False, open_: bool = False) -> Check:
    return Check(lo=lo, lo_open=open_, integer=integer, null=null)


DEVICE = Check(pattern=r"auto|cpu|mps|cuda(:\d+)?", text="auto, cpu, cuda, cuda:<index> or mps")
TRAINER_CHECKS: dict[str, Check] = {
    "max_steps": at_least(1, null=True),
    "max_epochs": at_least(0, integer=False, open_=True, null=True),
    "batch_size": at_least(1),
    "device": DEVICE,
    "amp": Check(choices=("none", "auto", "bf16", "fp16")),
    "amp_auto_min_px": at_least(0),
    "ema_decay": Check(lo=0.0, hi=1.0, hi_open=True),  # 1 would never move the average off its start
    "ema_start": at_least(0),
    "log_every": at_least(1),
    "sample_every": at_least(0),
    "ckpt_every": at_least(0),
    "keep_ckpts": at_least(2),
    "n_samples": at_least(1),
    "eval_every": at_least(0),
    "eval_n_per_class": at_least(1),
    "eval_samples": at_least(2),
    "num_workers": at_least(0),
    "preload_max_mb": at_least(0),
    "worker_timeout": at_least(0, integer=False, open_=True),
    "on_nan": Check(choices=("skip", "stop", "rollback")),
    "nan_lr_factor": Check(lo=0.0, lo_open=True, hi=1.0),
    "max_rollbacks": at_least(0),
    "on_save_error": Check(choices=("stop", "continue")),
    "max_save_failures": at_least(1),
    "devices": at_least(1),
}
OPTIM_CHECKS: dict[str, Check] = {
    "name": Check(choices=("adam", "adamw", "sgd")),
    "lr": at_least(0, integer=False, open_=True),
    "eps": at_least(0, integer=False),
    "weight_decay": at_least(0, integer=False),
    "momentum": Check(lo=0.0, hi=1.0, hi_open=True),
    "schedule": Check(choices=("constant", "linear", "cosine", "step")),
    "decay_start": at_least(0),
    "decay_factor": at_least(0, integer=False, open_=True),
    "decay_start_epochs": at_least(0, integer=False, null=True),
}
BETA = Check(lo=0.0, hi=1.0, hi_open=True)
PHASE_KEYS = frozenset({"name", "lr", "betas", "eps", "eps_in_sqrt", "weight_decay", "momentum"})


def check_all(prefix: str, values: Mapping[str, Any], checks: Mapping[str, Check]) -> None:
    """Refuse the first value outside its range, in one line naming `<prefix>.<key>` and the valid
    values (UserError: exit 2). Called where settings enter (the dataclasses above, the commands'
    arguments), before anything is built or written; keys without a check pass."""
    dot = f"{prefix}." if prefix else ""
    for key, v in values.items():
        if key == "betas":
            if v is not None and not (isinstance(v, (list, tuple)) and len(v) == 2 and all(BETA.ok(b) for b in v)):
                raise UserError(f"{dot}betas={_show(v)}: must be two numbers in [0, 1), "
                                f"e.g. {dot}betas=[0.5,0.999]")
            continue
        c = checks.get(key)
        if c is not None and not c.ok(v):
            raise UserError(f"{dot}{key}={_show(v)}: must be {c.describe()}")


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "null" if v is None else str(v).replace("\n", " ")


def length_given(trainer: TrainerSettings, given: set[str]) -> TrainerSettings:
    """The run's length named on the command line wins over the config's other one: `trainer.max_steps=N`
    counts in steps even where the model's yaml counts in epochs (pix2pix, CycleGAN: `max_epochs: 200`),
    `trainer.max_epochs=E` counts in epochs over the default `max_steps`. `given`: the keys of the
    command line's overrides. Both given (or both set by configs): `resolve_epochs` refuses them."""
    steps, epochs = "trainer.max_steps" in given, "trainer.max_epochs" in given
    if steps and not epochs and trainer.max_steps is not None:
        return replace(trainer, max_epochs=None)
    if epochs and not steps and trainer.max_epochs is not None:
        return replace(trainer, max_steps=None)
    return trainer


def resolve_epochs(trainer: TrainerSettings, optim: OptimSettings, steps_per_epoch: int
                   ) -> tuple[TrainerSettings, OptimSettings]:
    """Settings with the epoch counts turned into steps (the trainer counts steps only).

    The reference code of pix2pix and CycleGAN counts epochs (`n_epochs` at the initial lr, then
    `n_epochs_decay` of linear decay); their configs say `trainer.max_steps: null`,
    `trainer.max_epochs: n_epochs + n_epochs_decay`, `optim.decay_start_epochs: n_epochs`, and this
    makes them max_steps = ceil(max_epochs x steps_per_epoch) and decay_start = round(decay_start_epochs
    x steps_per_epoch). Exactly one of max_steps/max_epochs must be set, and decay_start_epochs only
    with decay_start 0, so that no value given on the command line is silently ignored."""
    if (trainer.max_steps is None) == (trainer.max_epochs is None):
        if trainer.max_steps is None:
            raise UserError("set trainer.max_steps or trainer.max_epochs (both are null)")
        raise UserError(f"trainer.max_steps={trainer.max_steps} and trainer.max_epochs={trainer.max_epochs:g} are both "
                        f"set: set one of them to null (e.g. trainer.max_epochs=null to count in steps)")
    if trainer.max_epochs is not None:
        if trainer.max_epochs <= 0:
            raise UserError(f"trainer.max_epochs={trainer.max_epochs:g}: train for more than 0 epochs")
        trainer = replace(trainer, max_steps=max(1, math.ceil(trainer.max_epochs * steps_per_epoch)), max_epochs=None)
    if optim.decay_start_epochs is not None:
        if optim.decay_start:
            raise UserError(f"optim.decay_start={optim.decay_start} and optim.decay_start_epochs="
                            f"{optim.decay_start_epochs:g} are both set: set optim.decay_start_epochs=null or drop "
                            f"optim.decay_start")
        optim = replace(optim, decay_start=round(optim.decay_start_epochs * steps_per_epoch), decay_start_epochs=None)
    return trainer, optim

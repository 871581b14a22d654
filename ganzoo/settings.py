"""Plain settings dataclasses for the trainer and optimizers.

These are the schemas of the `trainer` and `optim` config groups (registered with Hydra in
`ganzoo.config`), and what the trainer receives: code below the command layer never sees a config
object.
"""

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional  # noqa: UP035 - OmegaConf reads these forms

from .errors import UserError


@dataclass
class TrainerSettings:
    max_steps: Optional[int] = 5000  # noqa: UP045 - optimizer iterations (one batch each); null: use max_epochs
    max_epochs: Optional[float] = None  # noqa: UP045 - the run's length in epochs (with max_steps null)
    batch_size: int = 64
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:1 | mps
    amp: str = "none"  # none | bf16 | fp16 (fp16 uses a GradScaler)
    ema: bool = False  # keep an exponential moving average of the generator(s)
    ema_decay: float = 0.999
    ema_start: int = 0  # steps before the EMA starts averaging (it copies the weights until then)
    log_every: int = 50  # steps between stats lines (the only host-device sync of the loop)
    sample_every: int = 500  # steps between PNG sample grids (0: only at the end)
    ckpt_every: int = 1000  # steps between checkpoints (0: only at the end)
    keep_ckpts: int = 3  # checkpoints kept (at least 2)
    n_samples: int = 64  # images in each sample grid
    eval_every: int = 0  # steps between evaluations of the live (EMA) model, `ganzoo eval`'s metrics (0: off)
    eval_n_per_class: int = 100  # generated images per class for those evaluations
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

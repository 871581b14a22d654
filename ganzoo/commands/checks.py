"""Settings checked before a command builds or writes anything.

`CheckSettings` is a Hydra callback (conf/train.yaml `hydra.callbacks`): `on_run_start` runs after
the config is composed and before Hydra creates the run folder, so `ganzoo train trainer.batch_size=-4`
leaves no folder behind. It builds the `trainer`/`optim` dataclasses (their `__post_init__` checks
every range) and looks for the device. Under -m/--multirun each job's values are checked again when
the job builds them (the sweep's job folder exists by then). The sample/eval/translate commands check
their arguments with `check_args` first thing.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ganzoo.errors import UserError
from ganzoo.settings import DEVICE, Check, at_least, check_all

SAMPLE_CHECKS: dict[str, Check] = {"n": at_least(1), "nrow": at_least(1, null=True),
                                   "per_class": at_least(1, null=True), "batch_size": at_least(1), "device": DEVICE}
EVAL_CHECKS: dict[str, Check] = {"n_per_class": at_least(1), "batch_size": at_least(1), "judge_epochs": at_least(1),
                                 "device": DEVICE, "n_samples": at_least(2),
                                 "reference": Check(choices=("train", "test")),
                                 "step": Check(lo=0, integer=True, null=True)}
# direction= is checked first thing by translate.translate itself (AtoB | BtoA)
TRANSLATE_CHECKS: dict[str, Check] = {"batch_size": at_least(1), "device": DEVICE}

EXPORT_CHECKS: dict[str, Check] = {"format": Check(choices=("onnx", "torchscript", "safetensors")),
                                   "atol": at_least(0, integer=False)}
SERVE_CHECKS: dict[str, Check] = {"port": Check(lo=0, hi=65535, integer=True), "max_upload_mb": at_least(1),
                                  "max_pixels": at_least(1), "max_grid": at_least(1), "device": DEVICE}


def check_args(args: dict[str, Any], checks: dict[str, Check]) -> None:
    """A command's top-level arguments against their ranges (UserError naming the key)."""
    check_all("", args, checks)


class CheckSettings(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns an Exception from a callback into a warning; SystemExit passes (exit 2, one line)
        # torch: only once a run is really about to start
        from ganzoo.runtime import check_devices, pick_device

        from .run_folder import launcher_world

        try:
            trainer = OmegaConf.to_object(config.trainer)
            OmegaConf.to_object(config.optim)
            device = pick_device(trainer.device, key="trainer.device")
            check_devices(trainer.devices, device, trainer.batch_size, trainer.sync_bn, launcher_world())
            if trainer.eval_metrics is not None:
                from ganzoo.metrics.suite import check_names

                check_names(trainer.eval_metrics)
        except UserError as e:
            print(f"Error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

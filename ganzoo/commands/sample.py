"""`ganzoo sample`: the Hydra entry point (writes nothing but the images)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors
from .checks import SAMPLE_CHECKS, check_args


@hydra.main(config_path="pkg://ganzoo.conf", config_name="sample", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from ganzoo import run
    from ganzoo.runlog import stderr_console

    args = OmegaConf.to_container(cfg, resolve=True)
    check_args(args, SAMPLE_CHECKS)
    path = run.sample(**args)
    stderr_console().print(f"wrote {path}", markup=False)

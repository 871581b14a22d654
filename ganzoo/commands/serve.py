"""`ganzoo serve`: the Hydra entry point (a local web page; writes nothing)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors
from .checks import SERVE_CHECKS, check_args


@hydra.main(config_path="pkg://ganzoo.conf", config_name="serve", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from ganzoo.serve import serve

    args = OmegaConf.to_container(cfg, resolve=True)
    check_args(args, SERVE_CHECKS)
    serve(**args)

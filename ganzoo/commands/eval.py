"""`ganzoo eval`: the Hydra entry point (writes nothing but the metrics JSON: `<run>/metrics.json`,
`<run>/metrics_<data folder>.json` with data=, or `out`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors
from .checks import EVAL_CHECKS, check_args


@hydra.main(config_path="pkg://ganzoo.conf", config_name="eval", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from rich.console import Console

    from ganzoo.metrics.evaluate import evaluate, table

    args = OmegaConf.to_container(cfg, resolve=True)
    check_args(args, EVAL_CHECKS)
    metrics, path = evaluate(**args, on_metrics=lambda m: Console().print(table(m)))  # printed before written
    Console(stderr=True).print(f"wrote {path}")

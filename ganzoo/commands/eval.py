"""`ganzoo eval`: the Hydra entry point (writes nothing but the metrics JSON: `<run>/metrics.json`,
`<run>/metrics_<data folder>.json` with data=, or `out`)."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors
from .checks import EVAL_CHECKS, check_args


@hydra.main(config_path="pkg://ganzoo.conf", config_name="eval", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from rich.console import Console

    from ganzoo.metrics.evaluate import evaluate, table
    from ganzoo.runlog import stderr_console

    args = OmegaConf.to_container(cfg, resolve=True)
    check_args(args, EVAL_CHECKS)
    # eval's Hydra logging is off: show the judge's lines (its first training takes minutes) on stderr
    judge_log, shown = logging.getLogger("ganzoo.metrics.judge"), logging.StreamHandler(sys.stderr)
    shown.setFormatter(logging.Formatter("%(message)s"))
    judge_log.addHandler(shown)
    level, disabled = judge_log.level, judge_log.disabled
    judge_log.setLevel(logging.INFO)
    judge_log.disabled = False  # Hydra's disabled logging turns off the loggers that exist when it starts
    try:
        metrics, path = evaluate(**args, on_metrics=lambda m: Console().print(table(m)))  # printed before written
    finally:
        judge_log.removeHandler(shown)
        judge_log.setLevel(level)
        judge_log.disabled = disabled
    stderr_console().print(f"wrote {path}", markup=False)

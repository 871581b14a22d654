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
    # and the reference statistics' (computed once per dataset, minutes on a CPU)
    shown = logging.StreamHandler(sys.stderr)
    shown.setFormatter(logging.Formatter("%(message)s"))
    loggers = [logging.getLogger(f"ganzoo.metrics.{m}") for m in ("judge", "reference")]
    saved = [(lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.addHandler(shown)
        lg.setLevel(logging.INFO)
        lg.disabled = False  # Hydra's disabled logging turns off the loggers that exist when it starts
    try:
        metrics, path = evaluate(**args, on_metrics=lambda m: Console().print(table(m)))  # printed before written
    finally:
        for lg, (level, disabled) in zip(loggers, saved):
            lg.removeHandler(shown)
            lg.setLevel(level)
            lg.disabled = disabled
    stderr_console().print(f"wrote {path}", markup=False)

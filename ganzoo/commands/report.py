"""`ganzoo report`: the Hydra entry point (writes the report files into the run or sweep folder)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors


@hydra.main(config_path="pkg://ganzoo.conf", config_name="report", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.measure import Measurement

    from ganzoo.errors import UserError
    from ganzoo.report.run_report import run_report
    from ganzoo.report.sweep_report import rich_table, sweep_report
    from ganzoo.runlog import stderr_console

    args = OmegaConf.to_container(cfg, resolve=True)
    if (args["run"] is None) == (args["sweep"] is None):
        raise UserError("give one folder: ganzoo report run=<run dir> or ganzoo report sweep=<multirun dir>")
    err = stderr_console()
    if args["run"] is not None:
        if args["sort"] is not None or args["order"] is not None:
            raise UserError("sort= and order= are for sweep reports: drop them, or give sweep=<multirun dir>")
        report = run_report(args["run"])
        for note in report.notes:
            err.print(f"note: {note}", markup=False, highlight=False)
        err.print(f"wrote {report.html}", markup=False, highlight=False)
        return
    report = sweep_report(args["sweep"], sort=args["sort"], order=args["order"])
    table, out = rich_table(report.table, report.written[0].parent), Console(highlight=False)
    if not out.is_terminal:  # a file or a pipe: the whole table, unfolded (a terminal folds it to fit)
        out.width = max(out.width, Measurement.get(out, out.options.update_width(10**4), table).maximum)
    out.print(table)
    err.print(f"wrote {' '.join(str(p) for p in report.written if p.suffix != '.png')}", markup=False,
              highlight=False)

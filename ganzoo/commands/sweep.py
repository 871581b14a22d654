"""Sweeps (`ganzoo train -m ...`) that go on past a failing job and end with a summary.

Hydra's sweeper stops at the first job whose function raises (and a `SystemExit` from a job's one-line
error ends the whole process). So in a recorded sweep every job ends normally: `one_line_errors`
prints a failing job's error, writes how each job ended into its own folder (`job_status.json`:
number, overrides, status, exit code, reason) and returns. `SweepRecorder`, a Hydra callback named
in conf/train.yaml, notes the sweep folder and the jobs it will run when the sweep starts; once
Hydra returns (or a Ctrl-C stops the sweep), cli.py calls `finish()`: every job — done, failed,
interrupted or never run — in a table, printed and written to `<sweep dir>/sweep_summary.json`, the
sweep's report written (`ganzoo report sweep=`: report.html/.md/.csv; a failure is one warning), and
the exit code (0 when every job is done, else the first failed job's: 2 bad input, 3 diverged, 1 a bug).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganzoo.storage import atomic_write

STATUS_FILE = "job_status.json"
SUMMARY_FILE = "sweep_summary.json"
RECORDER = "ganzoo_sweep"  # the callback's key under hydra.callbacks
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
_sweeps: list[dict] = []  # sweeps begun in this process and not yet summarized: {"dir", "jobs"}


class SweepRecorder(Callback):
    """Notes the sweep folder and the overrides of every job it will run (BasicSweeper's expansion)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _sweeps.append({"dir": Path(str(config.hydra.sweep.dir)), "jobs": planned_jobs(config)})


def planned_jobs(config: DictConfig) -> list[list[str]]:
    """The overrides of each job, in job-number order, as the basic sweeper expands them; [] under
    another sweeper (the summary then lists the jobs that left a status)."""
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return []
    # BasicSweeper.split_arguments is Hydra's own expansion: the job numbers match by construction
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    args = params + list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    try:
        parsed = OverridesParser.create().parse_overrides(args)
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception:  # an override only the config loader can expand (glob): list what ran instead
        return []


def recorded_job() -> bool:
    """Whether this is a job of a sweep with the recorder on: a failure is then recorded, not raised."""
    if not HydraConfig.initialized():
        return False
    hc = HydraConfig.get()
    return hc.mode == RunMode.MULTIRUN and RECORDER in (hc.get("callbacks") or {})


def record(status: str, exit_code: int, reason: str = "") -> None:
    """Write this job's `job_status.json` into its folder (best effort: a folder that cannot be
    written shows the job as "not run" in the summary, which is then wrong only in its reason)."""
    hc = HydraConfig.get()
    rec = {"num": int(hc.job.num), "overrides": list(hc.overrides.task), "status": status,
           "exit_code": exit_code, "reason": reason}
    try:
        atomic_write(Path(hc.runtime.output_dir) / STATUS_FILE, json.dumps(rec, indent=2) + "\n")
    except OSError as e:
        print(f"Error: cannot record the job's status in {hc.runtime.output_dir}: {e}", file=sys.stderr)


def summarize(sweep_dir: Path, planned: list[list[str]]) -> list[dict]:
    """One row per job: the planned ones in order (never run: "not run"), then any other recorded one."""
    found: dict[int, dict] = {}
    for path in sweep_dir.rglob(STATUS_FILE):
        try:
            rec = json.loads(path.read_text())
            found[int(rec["num"])] = rec
        except (OSError, ValueError, KeyError, TypeError):
            continue
    rows = [found.pop(i, {"num": i, "overrides": job, "status": "not run", "exit_code": None, "reason": ""})
            for i, job in enumerate(planned)]
    return rows + [found[i] for i in sorted(found)]


def write_report(sweep_dir: Path) -> None:
    """The sweep's report (`ganzoo report sweep=<dir>`: report.html, .md, .csv); a failure to write it
    is one warning line and never fails the sweep."""
    try:
        from ganzoo.report.sweep_report import sweep_report

        written = sweep_report(str(sweep_dir)).written
    except Exception as e:  # the jobs' results are safe in their folders whatever goes wrong here
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"warning: sweep report not written ({first}); try: ganzoo report sweep={sweep_dir}", file=sys.stderr)
        return
    print(f"wrote {' '.join(str(p) for p in written if p.suffix != '.png')}", file=sys.stderr)


def finish() -> int:
    """Summarize the sweeps begun in this process: print each table, write its sweep_summary.json;
    returns the exit code (0: every job done)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    code = 0
    while _sweeps:
        sweep = _sweeps.pop(0)
        rows = summarize(sweep["dir"], sweep["jobs"])
        if all(r["status"] == "not run" for r in rows):  # stopped before any job (a config error): no table
            continue
        table = Table(title=f"sweep {sweep['dir']}", title_justify="left")
        for col in ("job", "overrides", "status", "reason"):
            table.add_column(col, overflow="fold")
        common = set.intersection(*(set(r["overrides"]) for r in rows)) if len(rows) > 1 else set()
        if common:  # the table shows what differs between jobs; the JSON file has every override
            table.caption = f"every job: {' '.join(o for o in rows[0]['overrides'] if o in common)}"
        for r in rows:
            style = {"done": "green", "failed": "red"}.get(r["status"], "yellow")
            table.add_row(str(r["num"]), Text(" ".join(o for o in r["overrides"] if o not in common)), Text(r["status"], style=style),
                          Text(r["reason"]))
        Console(stderr=True, highlight=False).print(table)
        try:
            path = atomic_write(sweep["dir"] / SUMMARY_FILE, json.dumps({"jobs": rows}, indent=2) + "\n")
            print(f"wrote {path}", file=sys.stderr)
        except OSError as e:
            print(f"Error: cannot write {sweep['dir'] / SUMMARY_FILE}: {e.strerror or e}", file=sys.stderr)
            code = code or 2
        write_report(sweep["dir"])
        failed = [r for r in rows if r["status"] != "done"]
        if failed and not code:
            code = next((r["exit_code"] for r in failed if r["exit_code"]), 1)
    return code

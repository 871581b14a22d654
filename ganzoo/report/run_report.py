"""`ganzoo report run=<run>`: a run's curves, metrics and latest samples in `<run>/report.html`
(self-contained: images as data URIs), the plots also as PNG files in `<run>/report/`.

Works on a finished run, one still training (it reads what is written so far) and an interrupted one
(a torn last stats line is skipped); a run without stats yet gets a page that says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..storage import atomic_write
from . import page
from .plots import curves, pyplot
from .stats import (
    Series,
    check_folder,
    config_value,
    direction,
    is_count,
    latest_grid,
    overrides,
    read_metrics,
    read_stats,
)

HTML = "report.html"
FIGURES = "report"


@dataclass
class RunReport:
    html: Path
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the page warns about (no stats yet, torn lines)


def split_keys(series: dict[str, Series]) -> dict[str, list[str]]:
    """stats.jsonl keys by kind: losses (`*/loss`), other training scalars, learning rates (`lr/`),
    non-finite counts (`nonfinite/`), evaluations during training (`eval/`)."""
    kinds: dict[str, list[str]] = {"loss": [], "scalar": [], "lr": [], "nonfinite": [], "eval": []}
    for key in series:
        head = key.split("/", 1)[0]
        if head in ("lr", "nonfinite", "eval") and "/" in key:
            kinds[head].append(key)
        elif key.endswith("loss"):
            kinds["loss"].append(key)
        else:
            kinds["scalar"].append(key)
    return kinds


def _cumulative(s: Series) -> Series:
    total, values = 0.0, []
    for v in s.values:
        total += v
        values.append(total)
    return Series(list(s.steps), values)


def _status(run: Path, facts: dict) -> str:
    max_steps = config_value(run, "trainer.max_steps")
    last = facts["last_step"]
    if last is None:
        return "no stats yet"
    if isinstance(max_steps, int):
        state = "finished" if last >= max_steps else "in progress or stopped"
        return f"step {last} of {max_steps} ({state})"
    return f"step {last}"


def figures(series: dict[str, Series]) -> dict[str, bytes]:
    """The run's plots as {file stem: PNG}; a kind the run did not log has no plot."""
    kinds = split_keys(series)
    out: dict[str, bytes] = {}
    if kinds["loss"]:
        out["losses"] = curves({"losses": {k: series[k] for k in kinds["loss"]}}, cols=1)
    if kinds["scalar"]:
        out["scalars"] = curves({k: {k: series[k]} for k in kinds["scalar"]})
    evals = [k for k in kinds["eval"] if not is_count(k)]
    if evals:
        out["eval"] = curves({k: {k: series[k]} for k in evals})
    if kinds["lr"]:
        out["learning_rates"] = curves({"learning rates": {k: series[k] for k in kinds["lr"]}}, cols=1,
                                       step_plot=True)
    if kinds["nonfinite"]:
        out["nonfinite"] = curves({"non-finite steps skipped (cumulative)":
                                   {k: _cumulative(series[k]) for k in kinds["nonfinite"]}}, cols=1, step_plot=True)
    return out


_TITLES = {"losses": "Losses", "scalars": "Other training scalars", "eval": "Evaluations during training",
           "learning_rates": "Learning rates", "nonfinite": "Non-finite steps"}


def run_report(path: str) -> RunReport:
    """Write `<run>/report.html` and `<run>/report/*.png`; returns what was written and the notes."""
    run = check_folder(path, "run")
    pyplot()  # matplotlib present: else one line naming the extra, before anything is written
    series, facts = read_stats(run)
    metrics = read_metrics(run)
    kinds = split_keys(series)
    report = RunReport(html=run / HTML)
    if not series:
        report.notes.append(f"no stats yet: {run / 'stats.jsonl'} is missing or empty (the trainer writes a line "
                            f"every trainer.log_every steps); run the report again later")
    if facts["skipped"]:
        report.notes.append(f"{facts['skipped']} unreadable line(s) of stats.jsonl skipped (a run killed while "
                            f"writing, or still writing)")

    body = [f'<p class="note">{page.esc(n)}</p>' for n in report.notes]
    rows = []
    for kind in ("eval", "loss", "scalar", "nonfinite"):
        for key in kinds[kind]:
            s = series[key]
            if kind == "nonfinite":
                rows.append([key, sum(s.values), "", "total"])
                continue
            way = direction(key)
            rows.append([key, s.final(), s.best(way), {"min": "lower", "max": "higher"}.get(way or "", "")])
    if rows:
        body += ["<h2>Summary</h2>", page.table(["metric", "final", "best", "better"], rows)]
    if metrics:
        body += ["<h2>Metrics (ganzoo eval)</h2>",
                 page.table(["metric", "value", "better"],
                            [[k, v, {"min": "lower", "max": "higher"}.get(direction(k) or "", "")]
                             for k, v in metrics.items()])]
    skipped = sum(sum(series[k].values) for k in kinds["nonfinite"])
    titles = {**_TITLES, "nonfinite": f"Non-finite steps ({page.fmt(skipped) if skipped else 'none'} skipped)"}
    for stem, png in figures(series).items():
        target = atomic_write(run / FIGURES / f"{stem}.png", png)
        report.figures.append(target)
        body += [f"<h2>{page.esc(titles[stem])}</h2>", page.image(png, stem)]
    grid = latest_grid(run)
    if grid is not None:
        body += [f"<h2>Latest samples ({page.esc(grid.name)})</h2>", page.image(grid.read_bytes(), grid.name, "grid")]
    ovr = overrides(run)
    body += ["<h2>Overrides</h2>", "<p>" + (" ".join(f"<code>{page.esc(o)}</code>" for o in ovr) or "none") + "</p>"]

    model, dataset = config_value(run, "model.name"), config_value(run, "dataset.name")
    title = f"{model} on {dataset}" if model and dataset else run.name
    wall = f", {facts['time'] / 60:.1f} min since its last start" if facts["time"] is not None else ""
    subtitle = f"{run} — {_status(run, facts)}{wall} — report of {time.strftime('%Y-%m-%d %H:%M:%S')}"
    atomic_write(report.html, page.page(f"ganzoo run report: {title}", subtitle, body))
    return report

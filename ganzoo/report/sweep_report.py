"""`ganzoo report sweep=<multirun dir>`: every job of a sweep in one table — the overrides that vary
between jobs against each job's final and best metrics, sorted by a chosen metric — as
`report.md`, `report.csv` and a self-contained `report.html` with plots (each metric against each
swept parameter; the curves of all jobs on one axis), PNGs also in `report/`.

Jobs come from the job folders (`job_status.json` of a recorded sweep, else `.hydra/overrides.yaml`)
and from `sweep_summary.json` (jobs that never ran have no folder): a failed, interrupted, never run
or still running job is a row with its status and reason, never dropped.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..storage import atomic_write
from . import page
from .plots import against_parameters, curves, pyplot
from .run_report import split_keys
from .stats import STATUS, Series, check_folder, direction, is_count, overrides, read_metrics, read_stats

SUMMARY = "sweep_summary.json"
NO_STATUS = "no status"  # a job folder without job_status.json: still running, killed, or an unrecorded sweep
MAX_PLOTTED = 8  # metrics plotted (the table and the CSV have them all)


@dataclass
class Job:
    num: int | None
    folder: Path | None
    overrides: list[str]
    status: str
    reason: str = ""
    series: dict[str, Series] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    last_step: int | None = None

    def params(self) -> dict[str, str]:
        out = {}
        for o in self.overrides:
            key, _, value = o.partition("=")
            out[key.lstrip("+~")] = value
        return out

    def final(self, metric: str) -> float | None:
        if metric in self.metrics:
            return self.metrics[metric]
        return self.series[metric].final() if metric in self.series else None

    def best(self, metric: str) -> float | None:
        return self.series[metric].best(direction(metric)) if metric in self.series else None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _job_folders(sweep: Path) -> list[Path]:
    found = {p.parent for p in sweep.rglob(STATUS)} | {p.parent.parent for p in sweep.rglob(".hydra/overrides.yaml")}
    return sorted(found)


def load_jobs(sweep: Path) -> list[Job]:
    """Every job of the sweep, in job-number order (jobs without a number last, by folder)."""
    jobs: dict[int | str, Job] = {}
    for folder in _job_folders(sweep):
        rec = _read_json(folder / STATUS)
        if isinstance(rec, dict) and "status" in rec:
            job = Job(rec.get("num"), folder, [str(o) for o in rec.get("overrides") or []], str(rec["status"]),
                      str(rec.get("reason") or ""))
        else:
            num = _hydra_num(folder)
            job = Job(num, folder, overrides(folder), NO_STATUS,
                      "no job_status.json: still running, killed, or a sweep run without the recorder")
        job.series, facts = read_stats(folder)
        job.metrics = read_metrics(folder)
        job.last_step = facts["last_step"]
        jobs[job.num if job.num is not None else str(folder)] = job
    summary = _read_json(sweep / SUMMARY)
    for row in (summary or {}).get("jobs", []) if isinstance(summary, dict) else []:
        num = row.get("num")
        if isinstance(num, int) and num not in jobs:
            reason = row.get("reason") or ("the sweep stopped before it" if row.get("status") == "not run" else
                                           "its folder is gone")
            jobs[num] = Job(num, None, [str(o) for o in row.get("overrides") or []], str(row.get("status")), reason)
    return sorted(jobs.values(), key=lambda j: (j.num is None, j.num if j.num is not None else 0, str(j.folder)))


def _hydra_num(folder: Path) -> int | None:
    path = folder / ".hydra" / "hydra.yaml"
    if path.is_file():
        import yaml

        try:
            num = (yaml.safe_load(path.read_text()) or {}).get("hydra", {}).get("job", {}).get("num")
            if isinstance(num, int):
                return num
        except (OSError, yaml.YAMLError, AttributeError):
            pass
    return int(folder.name) if folder.name.isdigit() else None


def varying(jobs: list[Job]) -> tuple[list[str], list[str]]:
    """(keys whose value differs between jobs, overrides every job shares), in the jobs' order."""
    params = [j.params() for j in jobs]
    keys = list(dict.fromkeys(k for p in params for k in p))
    vary = [k for k in keys if len({p.get(k) for p in params}) > 1]
    common = [o for o in (jobs[0].overrides if jobs else []) if o.partition("=")[0].lstrip("+~") not in vary]
    return vary, common


def metric_names(jobs: list[Job]) -> tuple[list[str], list[str]]:
    """(the table's metrics: ganzoo eval's, evaluations during training, losses; every metric), by first
    appearance."""
    shown, every = {}, {}
    for j in jobs:
        kinds = split_keys(j.series)
        for k in [*j.metrics, *kinds["eval"], *kinds["loss"]]:
            if not is_count(k):
                shown[k] = None
        for k in [*j.metrics, *kinds["eval"], *kinds["loss"], *kinds["scalar"]]:
            every[k] = None
    return list(shown), list(every)


@dataclass
class SweepTable:
    jobs: list[Job]  # in the table's order
    params: list[str]
    common: list[str]
    metrics: list[str]  # the table's metric columns (final and best each)
    every_metric: list[str]
    sort: str | None
    order: str | None  # "min" | "max"
    note: str = ""

    def columns(self, metrics: list[str], csv: bool = False) -> list[tuple[str, str, str]]:
        """(header, metric, "final" | "best" | "cell") of each metric column. The CSV: final and best of
        every metric; the table: one cell per metric, its final value, and "(best x)" after it for an
        evaluation logged during training whose best differs."""
        if not csv:
            return [(m, m, "cell") for m in metrics]
        cols = []
        for m in metrics:
            cols.append((f"{m} final", m, "final"))
            if direction(m) is not None and any(m in j.series for j in self.jobs):
                cols.append((f"{m} best", m, "best"))
        return cols

    @staticmethod
    def cell(j: Job, m: str):
        final = j.final(m)
        best = j.best(m) if split_keys({m: Series()})["eval"] else None
        if final is None or best is None or page.fmt(best) == page.fmt(final):
            return final
        return f"{page.fmt(final)} (best {page.fmt(best)})"

    def headers(self, metrics: list[str], csv: bool = False) -> list[str]:
        return ["job", *self.params, "status", "step", *(c[0] for c in self.columns(metrics, csv))]

    def rows(self, metrics: list[str], csv: bool = False) -> list[list]:
        cols = self.columns(metrics, csv)
        out = []
        for j in self.jobs:
            p = j.params()
            out.append(["" if j.num is None else j.num, *[p.get(k, "") for k in self.params], j.status, j.last_step,
                        *(j.final(m) if kind == "final" else j.best(m) if kind == "best" else self.cell(j, m)
                          for _, m, kind in cols)])
        return out

    def unfinished(self) -> list[Job]:
        return [j for j in self.jobs if j.status != "done"]


def default_sort(metrics: list[str]) -> str | None:
    """The first metric of ganzoo eval or of the evaluations during training whose direction is known."""
    for m in metrics:
        if direction(m) and not m.endswith("loss"):
            return m
    return None


def build_table(sweep: Path, sort: str | None = None, order: str | None = None) -> SweepTable:
    """The sweep's jobs, sorted by the final value of `sort` (`order` min: lowest first; default by the
    metric's name), jobs without a value last."""
    if order not in (None, "min", "max"):
        raise UserError(f"order={order}: use order=min (lower is better) or order=max (higher is better)")
    jobs = load_jobs(sweep)
    if not jobs:
        raise UserError(f"sweep={sweep} has no job folders and no {SUMMARY}: give a folder made by ganzoo train -m")
    params, common = varying(jobs)
    shown, every = metric_names(jobs)
    note = ""
    if sort is not None and sort not in every:
        known = ", ".join(every) or "none yet"
        raise UserError(f"sort={sort}: no job has this metric (known: {known})")
    if sort is not None and sort not in shown:
        shown.append(sort)
    sort = sort or default_sort(shown)
    if sort is not None:
        way = order or direction(sort)
        if way is None:
            way = "min"
            note = f"the direction of {sort} is unknown: sorted lowest first (order=max for highest first)"
        order = way

        def key(j: Job):
            v = j.final(sort)
            missing = v is None or not math.isfinite(v)
            return (missing, 0.0 if missing else (v if way == "min" else -v))

        jobs = sorted(jobs, key=key)
    return SweepTable(jobs, params, common, shown, every, sort, order, note)


def _sort_line(t: SweepTable) -> str:
    if t.sort is None:
        return "in job order (no evaluation metric to sort by: sort=<metric>)"
    way = "lowest" if t.order == "min" else "highest"
    return f"sorted by the final {t.sort}, {way} first" + (f" ({t.note})" if t.note else "")


LEGEND = ("each metric's final value (the last logged, or ganzoo eval's metrics.json), with the best value logged "
          "during training in brackets where it differs")


def markdown(t: SweepTable, sweep: Path) -> str:
    def cell(v) -> str:
        return page.fmt(v).replace("|", "\\|")

    headers, rows = t.headers(t.metrics), t.rows(t.metrics)
    lines = [f"# Sweep report: {sweep}", "", f"{len(t.jobs)} jobs, {_sort_line(t)}; {LEGEND}."]
    if t.common:
        lines += ["", "Every job: " + " ".join(f"`{o}`" for o in t.common)]
    lines += ["", "| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    bad = t.unfinished()
    lines += ["", "## Jobs that did not finish", ""]
    if bad:
        lines += [f"- job {j.num if j.num is not None else j.folder}: **{j.status}** — {j.reason or 'no reason recorded'}"
                  f" (`{_label(j, t.params)}`)" for j in bad]
    else:
        lines += ["none: every job is done."]
    return "\n".join(lines) + "\n"


def csv_text(t: SweepTable) -> str:
    """Every metric (final and best), every job, its folder and reason."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*t.headers(t.every_metric, csv=True), "reason", "folder", "overrides"])
    for j, row in zip(t.jobs, t.rows(t.every_metric, csv=True)):
        w.writerow([page.fmt(v) if isinstance(v, float) else ("" if v is None else v) for v in row]
                   + [j.reason, "" if j.folder is None else str(j.folder), " ".join(j.overrides)])
    return buf.getvalue()


def _label(j: Job, params: list[str]) -> str:
    p = j.params()
    return " ".join(f"{k}={p[k]}" for k in params if k in p) or f"job {j.num}"


def figures(t: SweepTable) -> dict[str, bytes]:
    """{"curves": every job's curve of each metric on one axis, "parameters": each metric against each
    swept parameter}; either left out when there is nothing to draw."""
    out: dict[str, bytes] = {}
    ran = [j for j in t.jobs if j.series or j.metrics]
    logged = [m for m in t.metrics if any(m in j.series for j in ran)][:MAX_PLOTTED]
    if logged:
        out["curves"] = curves({m: {_label(j, t.params): j.series[m] for j in sorted(ran, key=lambda j: j.num or 0)
                                    if m in j.series} for m in logged}, shared_legend=True)
    if t.params and ran:
        metrics = {m: [j.final(m) for j in ran] for m in t.metrics[:MAX_PLOTTED]}
        params = {k: [j.params().get(k, "") for j in ran] for k in t.params}
        out["parameters"] = against_parameters(params, metrics, {m: direction(m) for m in metrics})
    return out


def html(t: SweepTable, sweep: Path, figs: dict[str, bytes]) -> str:
    body = [f"<p>{len(t.jobs)} jobs, {page.esc(_sort_line(t))}; {page.esc(LEGEND)}.</p>"]
    if t.common:
        body.append("<p>Every job: " + " ".join(f"<code>{page.esc(o)}</code>" for o in t.common) + "</p>")
    classes = ["" if j.status == "done" else "failed" if j.status == "failed" else "other" for j in t.jobs]
    body.append(page.table(t.headers(t.metrics), t.rows(t.metrics), classes))
    body.append("<h2>Jobs that did not finish</h2>")
    bad = t.unfinished()
    if bad:
        body.append("<ul>" + "".join(
            f"<li>job {page.esc(j.num if j.num is not None else j.folder)}: <b>{page.esc(j.status)}</b> — "
            f"{page.esc(j.reason or 'no reason recorded')} (<code>{page.esc(_label(j, t.params))}</code>)</li>"
            for j in bad) + "</ul>")
    else:
        body.append("<p>none: every job is done.</p>")
    titles = {"curves": "Curves of all jobs", "parameters": "Final metrics against the swept parameters"}
    for stem, png in figs.items():
        body += [f"<h2>{titles[stem]}</h2>", page.image(png, stem)]
    return page.page(f"ganzoo sweep report: {sweep.name}", str(sweep), body)


def rich_table(t: SweepTable, sweep: Path):
    from rich.table import Table

    table = Table(title=f"sweep {sweep}", title_justify="left", caption_justify="left")
    headers = t.headers(t.metrics)
    for h in headers:
        left = h in ("status", *t.params)
        table.add_column(h, overflow="fold", justify="left" if left else "right", no_wrap=h in ("job", "status", "step"))
    for j, row in zip(t.jobs, t.rows(t.metrics)):
        style = {"done": None, "failed": "red"}.get(j.status, "yellow")
        table.add_row(*[page.fmt(v) for v in row], style=style)
    table.caption = f"{len(t.jobs)} jobs, {_sort_line(t)}" + ("; every job: " + " ".join(t.common) if t.common else "")
    return table


@dataclass
class SweepReport:
    table: SweepTable
    written: list[Path]


def sweep_report(path: str, sort: str | None = None, order: str | None = None) -> SweepReport:
    """Write `<sweep>/report.{md,csv,html}` and `<sweep>/report/*.png`."""
    sweep = check_folder(path, "sweep")
    pyplot()  # matplotlib present: else one line naming the extra, before anything is written
    t = build_table(sweep, sort, order)
    figs = figures(t)
    written = [atomic_write(sweep / "report.md", markdown(t, sweep)), atomic_write(sweep / "report.csv", csv_text(t))]
    written += [atomic_write(sweep / "report" / f"{stem}.png", png) for stem, png in figs.items()]
    written.append(atomic_write(sweep / "report.html", html(t, sweep, figs)))
    return SweepReport(t, written)

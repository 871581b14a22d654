"""The report's figures as PNG bytes: curves against step (one axis per group of keys, or small
multiples when the scales differ) and a metric against a swept parameter. matplotlib (the
`ganzoo[report]` extra) with its headless Agg backend: no display, no GUI toolkit."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from ..errors import UserError
from .stats import Series

EXTRA = "pip install 'ganzoo[report]'"


def pyplot():
    """matplotlib.pyplot on the Agg backend; a UserError naming the extra when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise UserError(f"ganzoo report draws its plots with matplotlib, which is not installed: {EXTRA}") from None
    matplotlib.use("Agg", force=True)  # headless: never a window, also with DISPLAY set
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def _finite(s: Series) -> tuple[list[int], list[float]]:
    pairs = [(x, y) for x, y in zip(s.steps, s.values) if math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _grid(n: int, cols: int = 3):
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def curves(groups: dict[str, dict[str, Series]], *, ylabel: str = "", step_plot: bool = False,
           log_y: bool = False, cols: int = 3, shared_legend: bool = False) -> bytes:
    """One axis per group (its title), one line per labelled series of the group, against step.
    `shared_legend`: the groups have the same labels (a sweep's jobs): one legend for the figure, and
    each label keeps its colour on every axis."""
    fig, axes = _grid(len(groups), cols)
    colours = {}
    if shared_legend:
        labels = list(dict.fromkeys(label for lines in groups.values() for label in lines))
        colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for ax, (title, lines) in zip(axes, groups.items()):
        for label, s in lines.items():
            x, y = _finite(s)
            if not x:
                continue
            draw = ax.step if step_plot else ax.plot
            kw = {"where": "post"} if step_plot else {"marker": "o", "markersize": 3} if len(x) < 3 else {}
            if label in colours:
                kw["color"] = colours[label]
            draw(x, y, label=label, linewidth=1.2, **kw)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        if ylabel:
            ax.set_ylabel(ylabel, fontsize=9)
        if log_y and all(v > 0 for s in lines.values() for v in _finite(s)[1]) and ax.has_data():
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if len(lines) > 1 and ax.has_data() and not shared_legend:
            ax.legend(fontsize=7, loc="best")
    if colours:
        from matplotlib.lines import Line2D

        fig.legend([Line2D([], [], color=c) for c in colours.values()], list(colours), loc="outside right upper",
                   fontsize=8)
    return _png(fig)


def _numeric(values: Sequence[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


FEW = 6  # a parameter with at most this many values: evenly spaced ticks, one per value


def _axis(raw: Sequence[str]) -> tuple[list[float], list[float] | None, list[str] | None, bool]:
    """(x of each job, tick positions, tick labels, log scale) for a swept parameter's values: numbers
    on a numeric axis (log when they span a decade or more), a few values or non-numbers as evenly
    spaced ticks (numbers in numeric order, others in order of appearance)."""
    nums = _numeric(raw)
    distinct = list(dict.fromkeys(raw))
    if nums is not None and len(distinct) > FEW:
        return nums, None, None, min(nums) > 0 and max(nums) / min(nums) >= 10
    if nums is not None:
        distinct.sort(key=float)
    return [float(distinct.index(v)) for v in raw], list(range(len(distinct))), distinct, False


def against_parameters(params: dict[str, list[str]], metrics: dict[str, list[float | None]],
                       best: dict[str, str | None]) -> bytes:
    """A grid: one row per metric, one column per swept parameter; each point a job (its final value).
    A parameter's axis: see `_axis`."""
    plt = pyplot()
    rows, cols = len(metrics), len(params)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False, layout="constrained")
    for j, (param, raw) in enumerate(params.items()):
        xs, ticks, labels, log = _axis(raw)
        for i, (metric, ys) in enumerate(metrics.items()):
            ax = axes[i][j]
            points = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
            if points:
                ax.scatter([p[0] for p in points], [p[1] for p in points], s=22, alpha=0.8)
            if ticks is not None:
                ax.set_xticks(ticks, labels, fontsize=8)
                ax.set_xlim(-0.5, len(ticks) - 0.5)
            if log:
                ax.set_xscale("log")
            if i == 0:
                ax.set_title(param, fontsize=10)
            if i == rows - 1:
                ax.set_xlabel(param, fontsize=9)
            if j == 0:
                way = {"min": "\n(lower is better)", "max": "\n(higher is better)"}.get(best.get(metric) or "", "")
                ax.set_ylabel(metric + way, fontsize=8)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
    return _png(fig)

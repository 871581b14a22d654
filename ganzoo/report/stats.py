"""What a run folder says about itself, read without torch: the stats.jsonl series (a torn last line
of a run still writing or killed is skipped), the metrics of `ganzoo eval` (metrics*.json), the
latest sample grid, the Hydra overrides, and which way each metric is better."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

STATS = "stats.jsonl"
STATUS = "job_status.json"
_NOT_SERIES = ("step", "time", "partial")

# which way is better, by the tokens of a metric's name, its last component first (G/loss -> loss, cycle_l1 -> l1)
LOWER = ("loss", "fid", "kid", "l1", "l2", "mse", "lpips", "nonfinite", "error", "err")
HIGHER = ("acc", "accuracy", "is", "psnr", "ssim", "precision", "recall", "confidence", "recognisable",
          "share", "gain", "density", "coverage")


# bookkeeping numbers an evaluation logs beside its metrics (how many samples, the SR scale): in the
# CSV and a run's summary, not in the sweep table's columns or the plots
COUNTS = ("samples", "images", "test_images", "scale", "border", "n")


def is_count(key: str) -> bool:
    return key.rsplit("/", 1)[-1].rsplit(":", 1)[-1] in COUNTS or key.split("/", 1)[0] == "test_images"


def direction(metric: str) -> str | None:
    """"min" (lower is better), "max" (higher is better) or None (unknown) for a metric name."""
    for part in reversed(metric.lower().split("/")):  # the last part first: eval/fid, D/real_acc, nonfinite/D
        for t in re.split(r"[_\-. :]", part):
            if t in LOWER:
                return "min"
            if t in HIGHER:
                return "max"
    return None


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class Series:
    """One scalar against step: the training log's and the evaluations' values, in step order."""
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def final(self) -> float | None:
        return self.values[-1] if self.values else None

    def best(self, way: str | None) -> float | None:
        finite = [v for v in self.values if math.isfinite(v)]
        if not finite or way is None:
            return None
        return min(finite) if way == "min" else max(finite)


def read_stats(run: Path) -> tuple[dict[str, Series], dict]:
    """{key: Series} of stats.jsonl, and facts: lines read, torn lines skipped, last step, wall time."""
    series: dict[str, Series] = {}
    facts = {"lines": 0, "skipped": 0, "last_step": None, "time": None}
    path = run / STATS
    if not path.is_file():
        return series, facts
    with open(path, errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
                step = int(rec["step"])
            except (ValueError, KeyError, TypeError):
                facts["skipped"] += line.strip() != ""
                continue
            facts["lines"] += 1
            facts["last_step"] = max(step, facts["last_step"] or 0)
            if is_number(rec.get("time")):
                facts["time"] = rec["time"]
            for key, value in rec.items():
                if key in _NOT_SERIES or not is_number(value):
                    continue
                s = series.setdefault(key, Series())
                s.steps.append(step)
                s.values.append(float(value))
    return series, facts


def read_metrics(run: Path) -> dict[str, float]:
    """The numbers of `ganzoo eval`'s files: metrics.json as is, metrics_<data>.json under `<data>:` (an
    older checkpoint's metrics_stepN.json under `stepN:`);
    one level of nested numbers as `outer/inner`; lists, the step and the class count left out."""
    out: dict[str, float] = {}
    for path in sorted(run.glob("metrics*.json")):
        prefix = "" if path.name == "metrics.json" else path.stem[len("metrics_"):] + ":"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        for key, value in data.items():
            if key in ("step", "num_classes"):
                continue
            if is_number(value):
                out[prefix + key] = float(value)
            elif isinstance(value, dict):
                out.update({f"{prefix}{key}/{k}": float(v) for k, v in value.items() if is_number(v)})
    return out


def latest_grid(run: Path) -> Path | None:
    """The newest `samples/step_*.png` (by step, from its name), else None."""
    grids = sorted((run / "samples").glob("step_*.png"))
    return grids[-1] if grids else None


def overrides(run: Path) -> list[str]:
    """The run's Hydra overrides (`.hydra/overrides.yaml`, a YAML list of strings), [] if none."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    import yaml  # PyYAML (Hydra's own dependency): a plain list, no config object

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(x) for x in data] if isinstance(data, list) else []


def config_value(run: Path, dotted: str):
    """A value of the run's composed config (`.hydra/config.yaml`), None if absent."""
    path = run / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        node = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def is_run(folder: Path) -> bool:
    return any((folder / p).exists() for p in (STATS, ".hydra", "checkpoints"))


def is_sweep(folder: Path) -> bool:
    if (folder / "multirun.yaml").is_file() or (folder / "sweep_summary.json").is_file():
        return True
    return any(is_run(d) for d in folder.iterdir() if d.is_dir())


def check_folder(path: str, kind: str) -> Path:
    """The folder `path` as a run (kind "run") or a sweep ("sweep"); a UserError naming the fix otherwise."""
    folder = Path(path).expanduser()
    if not folder.exists():
        made_by = "a run folder of ganzoo train" if kind == "run" else "a sweep folder of ganzoo train -m (multirun/<time>)"
        raise UserError(f"{kind}={path}: no such folder (give {made_by})")
    if not folder.is_dir():
        raise UserError(f"{kind}={path} is a file, not a folder: give the {kind} folder")
    if kind == "run" and not is_run(folder):
        if is_sweep(folder):
            raise UserError(f"run={path} is a sweep folder: use ganzoo report sweep={path}")
        raise UserError(f"run={path} is not a run folder (no stats.jsonl, .hydra/ or checkpoints/): "
                        f"give a folder made by ganzoo train")
    if kind == "sweep" and not is_sweep(folder):
        if is_run(folder):
            raise UserError(f"sweep={path} is a run folder: use ganzoo report run={path}")
        raise UserError(f"sweep={path} is not a sweep folder (no multirun.yaml, sweep_summary.json or job "
                        f"folders): give a folder made by ganzoo train -m")
    return folder

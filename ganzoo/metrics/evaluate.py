"""`ganzoo eval`: the metric suites a run's model declares, written to `<run>/metrics.json`
(`<run>/metrics_<folder>.json` for a super-resolution run evaluated on `data=<folder>`; with `ema=false`
on a run that kept an EMA of its generator, the live weights are scored, into `<run>/metrics_live.json`).

The suites (`metrics.suite`; each module documents its metrics):
- `class_accuracy` (cGAN, ACGAN): conditional accuracy by the judge, per class, and the within-class
  diversity ratio (`metrics.generation`);
- `histogram` (unconditional generators): the judge's class histogram and recognisable share;
- `code_accuracy` (InfoGAN): the categorical code's accuracy after the best code -> class matching
  (`metrics.codes`);
- `ssl_accuracy` (SSGAN): the classifier's test accuracy, live and EMA weights (`metrics.classify`);
- `translation` (pix2pix, CycleGAN, UNIT): L1 to the target, judged translations, test cycle error
  (`metrics.translation`);
- `pair_agreement` (CoGAN): pixel agreement of each generated pair with the domain map; `target_accuracy`
  (CoGAN with `model.adapt=true`): the target classifier on the B test images (`metrics.coupled`);
- `reconstruction` (UNIT): L1 of each domain's test images through its own autoencoder
  (`metrics.reconstruction`);
- `super_resolution` (SRResNet, SRGAN): Y-channel PSNR/SSIM vs bicubic on the test images or
  `data=<folder>` (`metrics.sr`).
- `fid`, `kid`, `is`, `pr` (any model that generates from noise or translates between two domains;
  asked by name: `metrics=[fid,kid]`): feature-space scores against real images (`metrics.fid`).

The checkpoint is loaded (and its hash checked) once; the live and EMA models are rebuilt from it in
memory, and each split of the run's dataset is built once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..build import Splits, model_from_checkpoint
from ..checkpoint import load_run
from ..errors import UserError
from ..runtime import pick_device
from ..storage import atomic_write
from .sr import sr_table
from .suite import EvalOptions, Evaluation, check_names, fixed_models


def evaluate(*, run: str, n_per_class: int = 1000, batch_size: int = 500, device: str = "auto",
             judge_epochs: int = 2, seed: int = 0, out: str | None = None,
             data: str | None = None, metrics: list[str] | None = None, n_samples: int = 10000,
             reference: str = "train", feature_extractor: str = "inception", inception_weights: str | None = None,
             step: int | None = None, ema: bool = True, on_metrics: Callable[[dict], object] | None = None) -> tuple[dict, Path]:
    """The metrics of a run's newest checkpoint, or of its checkpoint at `step` (see the module doc);
    returns them and the JSON file written. `metrics`: the suites to compute (default: the model's own).
    `data=<folder of HR images>`: super-resolution runs only. `on_metrics(metrics)` runs before the file
    is written (the command prints them: a failed write loses nothing)."""
    if metrics is not None:
        check_names(metrics)  # before the checkpoint is read: a typo costs nothing
    dev = pick_device(device)
    ckpt = load_run(run, map_location=dev, step=step)
    has_ema = bool(ckpt.get("ema"))
    live = has_ema and not ema  # ema=false on a run that kept an EMA: the live weights, into their own file
    model = model_from_checkpoint(ckpt, device=dev, ema=ema)  # the EMA only where kept and wanted
    name = ckpt["model"]["name"]
    if data is not None and "super_resolution" not in (metrics or model.metric_suites()):
        raise UserError(f"data={data} is for super-resolution runs and run {run} is a {name} run: drop data=")
    opts = EvalOptions(device=dev, n_per_class=n_per_class, batch_size=batch_size, judge_epochs=judge_epochs,
                       seed=seed, model_name=name, data=data, n_samples=n_samples, reference=reference,
                       feature_extractor=feature_extractor, inception_weights=inception_weights)
    evaluation = Evaluation(model, Splits(ckpt["dataset"]), opts, names=metrics)
    open_model = fixed_models(lambda: model_from_checkpoint(ckpt, device=dev, ema=False),
                              lambda: model)
    metrics: dict = {"run": str(run), "model": name, "dataset": model.data.name, "step": ckpt["step"],
                     "num_classes": model.data.num_classes, **evaluation.run(open_model, has_ema and ema)}
    if on_metrics is not None:
        on_metrics(metrics)
    return metrics, _write(metrics, run, out, data, step, live)


def metrics_path(run: str, out: str | None, data: str | None = None, step: int | None = None,
                 live: bool = False) -> Path:
    """`out`, else <run>/metrics.json; with `data=<folder>` (super-resolution on another test set)
    <run>/metrics_<folder name>.json, so that each test set keeps its own file; with `step=N` (an older
    checkpoint) `_stepN` before `.json`, so that the newest checkpoint's file is not overwritten; the live
    weights of a run with an EMA (`live`, eval's ema=false) `_live` after `metrics`, so that the EMA's file is kept."""
    if out:
        return Path(out)
    name = "metrics_live" if live else "metrics"
    name = name if data is None else f"{name}_{Path(data).resolve().name}"
    return Path(run) / (f"{name}_step{step}.json" if step is not None else f"{name}.json")


def _write(metrics: dict, run: str, out: str | None, data: str | None = None, step: int | None = None,
           live: bool = False) -> Path:
    """The metrics as JSON (`metrics_path`), written atomically."""
    return atomic_write(metrics_path(run, out, data, step, live), json.dumps(metrics, indent=2) + "\n")


def table(metrics: dict):
    """A rich table of the metrics (lists and the confusion matrix shortened; SR: one row per image)."""
    from rich.table import Table

    if "per_image" in metrics:
        return sr_table(metrics)

    t = Table(title=f"{metrics['model']} on {metrics['dataset']} (step {metrics['step']})", title_justify="left")
    t.add_column("metric", style="bold cyan", no_wrap=True)
    t.add_column("value")
    for key, value in metrics.items():
        if key in ("run", "model", "dataset", "step", "code_confusion"):
            continue
        if isinstance(value, float):
            text = f"{value:.4f}"
        elif isinstance(value, list):
            text = " ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
        elif isinstance(value, dict):
            text = " ".join(f"{a}->{b}" for a, b in value.items())
        else:
            text = str(value)
        t.add_row(key, text)
    return t

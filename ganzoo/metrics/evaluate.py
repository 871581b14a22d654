"""`ganzoo eval`: the metrics that fit a run's model, written to `<run>/metrics.json`.

- class-conditional models (cGAN, ACGAN): conditional accuracy — the judge (`metrics.judge`)
  classifies `n_per_class` samples generated for each label — overall and per class, beside the
  judge's own test accuracy;
- InfoGAN (a categorical code, `cat_dim`): accuracy of the code predicted by Q on the real test split
  after the best one-to-one code -> class matching (Hungarian algorithm), and that matching;
- SSGAN (`classify`): the discriminator's test accuracy (live and EMA weights when the run has them);
- unconditional generators: the class histogram of judge predictions on n = n_per_class x K samples
  and the share classified with confidence >= 0.9.

Every metric needs the labels of the run's dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..build import build_dataset
from ..data.loader import to_float
from ..errors import UserError
from ..models.base import class_rows
from ..trainer import pick_device
from .hungarian import hungarian
from .judge import predict, real_images, train_judge

CONFIDENT = 0.9


def _generate(model, n: int, batch_size: int, generator: torch.Generator, labels: torch.Tensor | None = None):
    return torch.cat([model.generate(min(batch_size, n - i), generator=generator,
                                     labels=None if labels is None else labels[i:i + batch_size]).cpu()
                      for i in range(0, n, batch_size)])


def code_accuracy(model, test, batch_size: int) -> dict:
    """InfoGAN: Q's categorical code on the real test split vs the labels, after the best matching."""
    x, y = real_images(test)
    k, dev = model.data.num_classes, model.device
    with torch.no_grad():
        codes = torch.cat([model.q(to_float(b.to(dev)))[0].argmax(1).cpu() for b in x.split(batch_size)])
    m = max(model.cat_dim, k)
    counts = torch.zeros(m, m, dtype=torch.long)
    counts.index_put_((codes, y), torch.ones_like(codes), accumulate=True)
    assign = hungarian((-counts).tolist())  # code -> class, maximising the matched count
    matched = sum(int(counts[c, assign[c]]) for c in range(m))
    matching = {str(c): assign[c] for c in range(model.cat_dim) if assign[c] < k}
    return {"code_accuracy": matched / len(y), "code_matching": matching,
            "code_confusion": counts[:model.cat_dim, :k].tolist()}


def evaluate(*, run: str, n_per_class: int = 1000, batch_size: int = 500, device: str = "auto",
             judge_epochs: int = 2, seed: int = 0, out: str | None = None) -> tuple[dict, Path]:
    """The metrics of a run (see the module doc); returns them and the JSON file written."""
    from ..run import load_model

    if n_per_class < 1 or batch_size < 1:
        raise UserError(f"n_per_class={n_per_class}, batch_size={batch_size}: both must be at least 1")
    dev = pick_device(device)
    model, ckpt = load_model(run, device=dev, ema=True)
    info, name = model.data, ckpt["model"]["name"]
    is_infogan = hasattr(model, "cat_dim") and hasattr(model, "q")
    is_ssl = hasattr(model, "classify")
    conditional = not model.unconditional
    if info.num_classes < 1 or "label" not in info.fields:
        needs = []
        if conditional:
            needs.append("conditional accuracy (judge classifier)")
        if is_infogan:
            needs.append("InfoGAN code accuracy")
        if is_ssl:
            needs.append("SSGAN test accuracy")
        if not needs:
            needs.append("the judge's class histogram")
        raise UserError(f"run {run}: dataset {info.name!r} has no labels, and {', '.join(needs)} "
                        f"need{'s' if len(needs) == 1 else ''} them: evaluate a run on a labeled dataset "
                        f"(e.g. dataset=digits or dataset=mnist)")
    k = info.num_classes
    metrics: dict = {"run": str(run), "model": name, "dataset": info.name, "step": ckpt["step"],
                     "num_classes": k}
    test = build_dataset(ckpt["dataset"], split="test")
    if is_ssl:
        from ..models.ssgan import test_accuracy

        live = load_model(run, device=dev, ema=False)[0]
        metrics["test_accuracy"] = test_accuracy(live, test, batch_size=batch_size)
        if ckpt.get("ema") and "D" in ckpt["ema"]:
            metrics["test_accuracy_ema"] = test_accuracy(model, test, batch_size=batch_size)
    if is_infogan:
        metrics.update(code_accuracy(model, test, batch_size))
    torch.set_grad_enabled(False)
    try:
        train = build_dataset(ckpt["dataset"], split="train")
        judge, judge_acc = train_judge(train, test, epochs=judge_epochs, device=dev)
        metrics["judge_test_accuracy"] = judge_acc
        g = torch.Generator(dev).manual_seed(seed)
        if conditional:
            labels = class_rows(k, n_per_class, dev)
            pred = predict(judge, _generate(model, len(labels), batch_size, g, labels), batch_size).argmax(1)
            labels = labels.cpu()
            metrics["conditional_accuracy"] = (pred == labels).float().mean().item()
            metrics["conditional_accuracy_per_class"] = [(pred[labels == c] == c).float().mean().item()
                                                         for c in range(k)]
        else:
            n = n_per_class * k
            conf, cls = predict(judge, _generate(model, n, batch_size, g), batch_size).max(1)
            hist = torch.bincount(cls, minlength=k).tolist()
            metrics.update({"samples": n, "class_histogram": hist, "min_class_share": min(hist) / n,
                            "recognisable": (conf >= CONFIDENT).float().mean().item(),
                            "mean_confidence": conf.mean().item()})
    finally:
        torch.set_grad_enabled(True)
    path = Path(out) if out else Path(run) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    tmp.replace(path)
    return metrics, path


def table(metrics: dict):
    """A rich table of the metrics (lists and the confusion matrix shortened)."""
    from rich.table import Table

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

"""`ganzoo eval`: the metrics that fit a run's model, written to `<run>/metrics.json`.

- class-conditional models (cGAN, ACGAN): conditional accuracy — the judge (`metrics.judge`)
  classifies `n_per_class` samples generated for each label — overall and per class, beside the
  judge's own test accuracy; and the within-class diversity ratio — per class, the mean L2 distance
  between two distinct samples generated for that label over the same for two real test images of the
  class (research/model-specs.md §4: a model that draws one image per label scores ~0 however
  accurate; ≥ 0.5 is the collapse check), per class and its mean;
- InfoGAN (a categorical code, `cat_dim`): accuracy of the code predicted by Q on the real test split
  after the best one-to-one code -> class matching (Hungarian algorithm), and that matching;
- SSGAN (`classify`): the discriminator's test accuracy (live and EMA weights when the run has them);
- unconditional generators: the class histogram of judge predictions on n = n_per_class x K samples
  and the share classified with confidence >= 0.9;
- super-resolution models (`scale` > 1): Y-channel PSNR and SSIM of the model and of bicubic, per
  image and mean, on the run's test images or `data=<folder>` (`metrics.sr`, no labels needed).
- image-to-image models (pix2pix, CycleGAN): L1 to the target on paired sets, the judge's accuracy on
  translated images against its accuracy on real ones (labeled sets), the test cycle error when the
  model translates both ways (`metrics.translation`).

Every other metric needs the labels of the run's dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..build import build_dataset
from ..data.loader import to_float
from ..errors import UserError
from ..models.base import class_rows
from ..storage import atomic_write
from ..trainer import pick_device
from .hungarian import hungarian
from .judge import predict, real_images, train_judge

CONFIDENT = 0.9
DIVERSITY_REAL_PER_CLASS = 1000  # real test images per class for the reference within-class distance


def mean_pairwise_l2(x: torch.Tensor) -> float:
    """Mean L2 distance over the n(n − 1) ordered pairs of distinct rows of x [n, ...] (n ≥ 2)."""
    f = x.flatten(1).float()
    n = f.shape[0]
    if n < 2:
        raise ValueError("mean_pairwise_l2 needs at least 2 images")
    d = torch.cdist(f, f)
    return ((d.sum() - d.diagonal().sum()) / (n * (n - 1))).item()  # the diagonal is 0 up to rounding


def class_spread(images: torch.Tensor, labels: torch.Tensor, k: int) -> list[float]:
    """mean_pairwise_l2 of the images of each class 0..k−1 (float images in [−1, 1])."""
    return [mean_pairwise_l2(images[labels == c]) for c in range(k)]


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


class Evaluator:
    """The metrics of a model held in memory, for its dataset: built once (the test split loaded, the
    judge trained or read from its cache), then called on the model as often as wanted — by
    `ganzoo eval` on a run's checkpoint, and by the trainer every `trainer.eval_every` steps on the
    live (EMA) model. Draws its random numbers from its own generators, never the global stream, so
    evaluating during training changes nothing in the run (resume stays exact)."""

    def __init__(self, dataset_cfg: dict, info, *, device: torch.device, n_per_class: int = 1000,
                 batch_size: int = 500, judge_epochs: int = 2, seed: int = 0, model_name: str = "model",
                 conditional: bool = False, infogan: bool = False, ssl: bool = False):
        if n_per_class < 1 or batch_size < 1:
            raise UserError(f"n_per_class={n_per_class}, batch_size={batch_size}: both must be at least 1")
        if info.num_classes < 1 or "label" not in info.fields:
            needs = []
            if conditional:
                needs.append("conditional accuracy (judge classifier)")
            if infogan:
                needs.append("InfoGAN code accuracy")
            if ssl:
                needs.append("SSGAN test accuracy")
            if not needs:
                needs.append("the judge's class histogram")
            raise UserError(f"model {model_name!r} on dataset {info.name!r}: the dataset has no labels, and "
                            f"{', '.join(needs)} need{'s' if len(needs) == 1 else ''} them: use a labeled "
                            f"dataset (e.g. dataset=digits or dataset=mnist)")
        self.info, self.device, self.seed = info, device, seed
        self.n_per_class, self.batch_size = n_per_class, batch_size
        self.test = build_dataset(dataset_cfg, split="test")
        self.judge, self.judge_acc = (None, None)
        if not ssl or conditional:  # SSGAN is judged by its own test accuracy only
            self.judge, self.judge_acc = train_judge(build_dataset(dataset_cfg, split="train"), self.test,
                                                     epochs=judge_epochs, device=device)
        self.real_spread = self._real_spread() if conditional else None

    def _real_spread(self) -> list[float] | None:
        """The within-class mean L2 distance of (up to DIVERSITY_REAL_PER_CLASS) real test images per class;
        None when some class has fewer than 2 test images."""
        x, y = real_images(self.test)
        keep = torch.cat([torch.nonzero(y == c).flatten()[:DIVERSITY_REAL_PER_CLASS]
                          for c in range(self.info.num_classes)])
        if min(torch.bincount(y[keep], minlength=self.info.num_classes).tolist()) < 2:
            return None
        return class_spread(to_float(x[keep]), y[keep], self.info.num_classes)

    @classmethod
    def for_model(cls, model, dataset_cfg: dict, **kw) -> Evaluator:
        from .translation import TranslationEvaluator, translates

        if getattr(model, "scale", 1) > 1:  # super-resolution: Y-PSNR/SSIM vs bicubic (metrics.sr)
            from .sr import SREvaluator

            return SREvaluator(dataset_cfg, model, **kw)
        if translates(model):  # image-to-image models: L1, judged translations, cycle error (metrics.translation)
            return TranslationEvaluator(dataset_cfg, model, **kw)
        return cls(dataset_cfg, model.data, conditional=not model.unconditional, infogan=_is_infogan(model),
                   ssl=hasattr(model, "classify"), **kw)

    @staticmethod
    def wants_live(model) -> bool:
        """Whether a run with an EMA is also scored with its live weights: a classifier (SSGAN) reports
        the live D's test accuracy beside the EMA D's; generators are scored with the EMA only."""
        return hasattr(model, "classify")

    @staticmethod
    def with_live(ema: dict, live: dict) -> dict:
        """The metrics of the EMA model with the live model's test accuracy put first: the EMA D's
        accuracy becomes `test_accuracy_ema` and the live D's is `test_accuracy` (as `ganzoo eval`)."""
        rest = {k: v for k, v in ema.items() if k != "test_accuracy"}
        return {"test_accuracy": live["test_accuracy"], "test_accuracy_ema": ema["test_accuracy"], **rest}

    def __call__(self, model) -> dict:
        """The metrics of `model` (put in eval mode for the call, then restored)."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return self._metrics(model)
        finally:
            model.train(was_training)

    def _metrics(self, model) -> dict:
        k, out = self.info.num_classes, {}
        if hasattr(model, "classify"):
            from ..models.ssgan import test_accuracy

            out["test_accuracy"] = test_accuracy(model, self.test, batch_size=self.batch_size)
        if _is_infogan(model):
            out.update(code_accuracy(model, self.test, self.batch_size))
        if self.judge is None:
            return out
        out["judge_test_accuracy"] = self.judge_acc
        g = torch.Generator(self.device).manual_seed(self.seed)
        if not model.unconditional:
            labels = class_rows(k, self.n_per_class, self.device)
            images = _generate(model, len(labels), self.batch_size, g, labels)
            pred = predict(self.judge, images, self.batch_size).argmax(1)
            labels = labels.cpu()
            out["conditional_accuracy"] = (pred == labels).float().mean().item()
            out["conditional_accuracy_per_class"] = [(pred[labels == c] == c).float().mean().item()
                                                     for c in range(k)]
            if self.real_spread is not None and self.n_per_class >= 2:
                ratios = [fake / real if real > 0 else float("nan")
                          for fake, real in zip(class_spread(images, labels, k), self.real_spread)]
                out["diversity_ratio"] = sum(ratios) / k
                out["diversity_ratio_per_class"] = ratios
        else:
            n = self.n_per_class * k
            conf, cls = predict(self.judge, _generate(model, n, self.batch_size, g), self.batch_size).max(1)
            hist = torch.bincount(cls, minlength=k).tolist()
            out.update({"samples": n, "class_histogram": hist, "min_class_share": min(hist) / n,
                        "recognisable": (conf >= CONFIDENT).float().mean().item(),
                        "mean_confidence": conf.mean().item()})
        return out


def _is_infogan(model) -> bool:
    return hasattr(model, "cat_dim") and hasattr(model, "q")


def scalars(metrics: dict) -> dict[str, float]:
    """The single numbers of a metrics dict (for stats.jsonl and TensorBoard), as "eval/<name>"."""
    return {f"eval/{k}": float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "judge_test_accuracy"}


def evaluate(*, run: str, n_per_class: int = 1000, batch_size: int = 500, device: str = "auto",
             judge_epochs: int = 2, seed: int = 0, out: str | None = None,
             data: str | None = None) -> tuple[dict, Path]:
    """The metrics of a run's newest checkpoint (see the module doc); returns them and the JSON file
    written. SSGAN runs report the test accuracy of the live D and, when kept, of the EMA D.
    Super-resolution runs (`scale` > 1): Y-channel PSNR/SSIM of the model and of bicubic (`metrics.sr`)
    on the run's test images or on `data=<folder of HR images>`."""
    from ..run import load_model

    dev = pick_device(device)
    model, ckpt = load_model(run, device=dev, ema=True)
    name = ckpt["model"]["name"]
    if getattr(model, "scale", 1) > 1:
        from .sr import evaluate_run

        metrics = {"run": str(run), "model": name, "dataset": model.data.name, "step": ckpt["step"],
                   **evaluate_run(model, ckpt, data)}
        return metrics, _write(metrics, run, out)
    if data is not None:
        raise UserError(f"data={data} is for super-resolution runs and run {run} is a {name} run: drop data=")
    ev = Evaluator.for_model(model, ckpt["dataset"], device=dev, n_per_class=n_per_class, batch_size=batch_size,
                             judge_epochs=judge_epochs, seed=seed, model_name=name)
    metrics: dict = {"run": str(run), "model": name, "dataset": model.data.name, "step": ckpt["step"],
                     "num_classes": model.data.num_classes}
    result = ev(model)
    if ckpt.get("ema") and Evaluator.wants_live(model):
        result = Evaluator.with_live(result, ev(load_model(run, device=dev, ema=False)[0]))
    metrics.update(result)
    return metrics, _write(metrics, run, out)


def _write(metrics: dict, run: str, out: str | None) -> Path:
    """metrics.json (or `out`), written atomically."""
    path = Path(out) if out else Path(run) / "metrics.json"
    return atomic_write(path, json.dumps(metrics, indent=2) + "\n")


def table(metrics: dict):
    """A rich table of the metrics (lists and the confusion matrix shortened; SR: one row per image)."""
    from rich.table import Table

    if "per_image" in metrics:
        from .sr import sr_table

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

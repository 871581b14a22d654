"""Suites for models that generate from noise, scored by the judge (`metrics.judge`: a CNN trained on
the dataset's real labeled train split, cached by its fingerprint).

- `class_accuracy` (class-conditional models): conditional accuracy — the judge classifies
  `n_per_class` samples generated for each label — overall and per class, beside the judge's own test
  accuracy; and the within-class diversity ratio — per class, the mean L2 distance between two distinct
  samples generated for that label over the same for two real test images of the class
  (research/model-specs.md §4: a model that draws one image per label scores ~0 however accurate;
  ≥ 0.5 is the collapse check), per class and its mean.
- `histogram` (unconditional generators): the class histogram of judge predictions on n = n_per_class x K
  samples and the share classified with confidence >= 0.9.
"""

from __future__ import annotations

import torch

from ..build import Splits
from ..data.loader import to_float
from ..models.base import CONDITIONAL, GANModel, class_rows
from ..registry import SUITES
from .judge import predict, real_images, train_judge
from .suite import EvalOptions, MetricSuite, labeled_test

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


def generate(model: GANModel, n: int, batch_size: int, generator: torch.Generator,
             labels: torch.Tensor | None = None) -> torch.Tensor:
    """n images from the model in batches (CPU)."""
    return torch.cat([model.generate(min(batch_size, n - i), generator=generator,
                                     labels=None if labels is None else labels[i:i + batch_size]).cpu()
                      for i in range(0, n, batch_size)])


class _Judged(MetricSuite):
    """The test split and the judge of a labeled dataset."""

    what = "the judge classifier"

    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        self.test = labeled_test(model, splits, opts, self.what)
        self.k = self.test.info.num_classes
        self.judge, self.judge_acc = train_judge(splits.train, self.test, epochs=opts.judge_epochs,
                                                 device=opts.device)

    def _generator(self) -> torch.Generator:
        return torch.Generator(self.opts.device).manual_seed(self.opts.seed)


@SUITES.register("class_accuracy")
class ClassAccuracy(_Judged):
    what = "conditional accuracy (judge classifier)"

    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        if not model.can(CONDITIONAL):
            raise ValueError(f"class_accuracy scores class-conditional generators; {opts.model_name} is not one")
        self.real_spread = self._real_spread()

    def _real_spread(self) -> list[float] | None:
        """The within-class mean L2 distance of (up to DIVERSITY_REAL_PER_CLASS) real test images per class;
        None when some class has fewer than 2 test images."""
        x, y = real_images(self.test)
        keep = torch.cat([torch.nonzero(y == c).flatten()[:DIVERSITY_REAL_PER_CLASS] for c in range(self.k)])
        if min(torch.bincount(y[keep], minlength=self.k).tolist()) < 2:
            return None
        return class_spread(to_float(x[keep]), y[keep], self.k)

    def metrics(self, model: GANModel) -> dict:
        k, o = self.k, self.opts
        out: dict = {"judge_test_accuracy": self.judge_acc}
        labels = class_rows(k, o.n_per_class, o.device)
        images = generate(model, len(labels), o.batch_size, self._generator(), labels)
        pred = predict(self.judge, images, o.batch_size).argmax(1)
        labels = labels.cpu()
        out["conditional_accuracy"] = (pred == labels).float().mean().item()
        out["conditional_accuracy_per_class"] = [(pred[labels == c] == c).float().mean().item() for c in range(k)]
        if self.real_spread is not None and o.n_per_class >= 2:
            ratios = [fake / real if real > 0 else float("nan")
                      for fake, real in zip(class_spread(images, labels, k), self.real_spread)]
            out["diversity_ratio"] = sum(ratios) / k
            out["diversity_ratio_per_class"] = ratios
        return out


@SUITES.register("histogram")
class Histogram(_Judged):
    what = "the judge's class histogram"

    def metrics(self, model: GANModel) -> dict:
        o = self.opts
        n = o.n_per_class * self.k
        conf, cls = predict(self.judge, generate(model, n, o.batch_size, self._generator()), o.batch_size).max(1)
        hist = torch.bincount(cls, minlength=self.k).tolist()
        return {"judge_test_accuracy": self.judge_acc, "samples": n, "class_histogram": hist,
                "min_class_share": min(hist) / n, "recognisable": (conf >= CONFIDENT).float().mean().item(),
                "mean_confidence": conf.mean().item()}

"""`ssl_accuracy` (models that classify, CLASSIFY: SSGAN's K-class D): the test accuracy of
`model.classify` on every item of the test split (centre crop, no flip, eval mode: no noise). With an
EMA the live weights are scored too (`live_too`): `test_accuracy` is the live D's and
`test_accuracy_ema` the EMA D's (the official improved-gan code tests with averaged parameters)."""

from __future__ import annotations

import torch

from ..build import Splits
from ..data.base import ImageDataset
from ..data.loader import augment_batch, to_float
from ..models.base import CLASSIFY, GANModel
from ..registry import SUITES
from .suite import EvalOptions, MetricSuite, labeled_test


@torch.no_grad()
def test_accuracy(model: GANModel, dataset: ImageDataset, *, batch_size: int = 1000) -> float:
    """Accuracy of `model.classify` (eval mode) on every item of `dataset` (centre crop, no flip)."""
    was_training = model.training
    model.eval()
    data = dataset.tensors()
    room = dataset.item_size - dataset.info.resolution
    correct, device = 0, model.device
    for i in range(0, len(dataset), batch_size):
        img = data["image"][i:i + batch_size].to(device)
        b = img.shape[0]
        img = augment_batch(img, dataset.augment, torch.zeros(b, dtype=torch.bool, device=device),
                            torch.full((b, 2), room // 2, device=device), dataset.info.resolution)
        pred = model.classify(to_float(img)).argmax(1)
        correct += int((pred == data["label"][i:i + batch_size].to(device)).sum())
    model.train(was_training)
    return correct / len(dataset)


@SUITES.register("ssl_accuracy")
class ClassifierAccuracy(MetricSuite):
    live_too = True

    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        if not model.can(CLASSIFY):
            raise ValueError(f"ssl_accuracy scores models that classify; {opts.model_name} does not")
        self.test = labeled_test(model, splits, opts, "the classifier's test accuracy")

    def metrics(self, model: GANModel) -> dict:
        return {"test_accuracy": test_accuracy(model, self.test, batch_size=self.opts.batch_size)}

"""`code_accuracy` (models with a categorical latent code, CODES: InfoGAN's c1): the accuracy of the
code the model predicts for the real test images (`predict_codes`) against their labels, after the
best one-to-one code -> class matching (Hungarian algorithm), with that matching and the confusion
counts. A code that disentangles the classes scores near the judge's accuracy; chance is 1/K."""

from __future__ import annotations

import torch

from ..build import Splits
from ..data.loader import to_float
from ..models.base import CODES, GANModel
from ..registry import SUITES
from .hungarian import hungarian
from .judge import real_images
from .suite import EvalOptions, MetricSuite, labeled_test


@SUITES.register("code_accuracy")
class CodeAccuracy(MetricSuite):
    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        if not model.can(CODES):
            raise ValueError(f"code_accuracy scores models with a categorical code; {opts.model_name} has none")
        self.x, self.y = real_images(labeled_test(model, splits, opts, "InfoGAN code accuracy"))
        self.k = splits.test.info.num_classes

    def metrics(self, model: GANModel) -> dict:
        dev, bs = self.opts.device, self.opts.batch_size
        logits = [model.predict_codes(to_float(b.to(dev))) for b in self.x.split(bs)]
        cat_dim = logits[0].shape[1]
        codes = torch.cat([t.argmax(1).cpu() for t in logits])
        m = max(cat_dim, self.k)
        counts = torch.zeros(m, m, dtype=torch.long)
        counts.index_put_((codes, self.y), torch.ones_like(codes), accumulate=True)
        assign = hungarian((-counts).tolist())  # code -> class, maximising the matched count
        matched = sum(int(counts[c, assign[c]]) for c in range(m))
        matching = {str(c): assign[c] for c in range(cat_dim) if assign[c] < self.k}
        return {"code_accuracy": matched / len(self.y), "code_matching": matching,
                "code_confusion": counts[:cat_dim, :self.k].tolist()}

"""Suites of models that learn two domains jointly (CoGAN):

- `pair_agreement` (JOINT models on a two-domain set whose B is a pixelwise map of A,
  `DataInfo.domain_map`): the paper's pixel agreement — for pairs (x1, x2) = generate_domains(z),
  the share of pixels where x2 and the dataset's map T of x1 (`data.domains.DOMAIN_MAPS`) agree after
  both are binarised at 0.5 on [0, 1], averaged over n = n_per_class x classes latents
  (`pixel_agreement`). Beside it `pixel_agreement_unpaired`: the same score with x2 taken from the
  next latent (a pair that shares no z), the level an uncoupled pair of GANs would reach by the
  background alone (most pixels of an edge map are black in any two images).
- `target_accuracy` (CLASSIFY models on a labeled two-domain set, the adaptation variant): the
  accuracy of `model.classify` on every B (target) image of the test split, scored with the B labels
  (`label_b`; the model never trains on them).

Latents come from a generator seeded with `seed`, so evaluating during training leaves the run's
random stream untouched.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..build import Splits
from ..data.domains import DOMAIN_MAPS
from ..data.loader import to_float
from ..errors import UserError
from ..images import to_uint8
from ..models.base import CLASSIFY, JOINT, GANModel
from ..registry import SUITES
from .suite import EvalOptions, MetricSuite
from .translation import domain_view


def pixel_agreement(x1: Tensor, x2: Tensor, domain_map: str) -> Tensor:
    """Per pair, the share of pixels where T(x1) and x2 agree, both binarised at 0.5 on [0, 1]: x1, x2
    [N, C, H, W] in [-1, 1], T = DOMAIN_MAPS[domain_map] (on uint8 images, as the dataset built B) -> [N]."""
    mapped = DOMAIN_MAPS[domain_map](to_uint8(x1))
    on1, on2 = mapped.float() / 255 > 0.5, to_uint8(x2).float() / 255 > 0.5
    return (on1 == on2).flatten(1).float().mean(1)


@SUITES.register("pair_agreement")
class PairAgreement(MetricSuite):
    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        if not model.can(JOINT):
            raise ValueError(f"pair_agreement scores models that generate domains jointly; {opts.model_name} does not")
        info = model.data
        if info.domain_map not in DOMAIN_MAPS:
            raise UserError(f"model {opts.model_name!r} on dataset {info.name!r}: pixel agreement needs a dataset whose "
                            f"B images are a pixelwise map of A (DataInfo.domain_map): use dataset=digits_unpaired")
        self.domain_map, self.n = info.domain_map, opts.n_per_class * max(1, info.num_classes)

    def metrics(self, model: GANModel) -> dict:
        g = torch.Generator(model.device).manual_seed(self.opts.seed)
        paired, unpaired = [], []
        for i in range(0, self.n, self.opts.batch_size):
            x1, x2 = model.generate_domains(min(self.opts.batch_size, self.n - i), generator=g)[:2]
            x1, x2 = x1.float().cpu(), x2.float().cpu()
            paired.append(pixel_agreement(x1, x2, self.domain_map))
            unpaired.append(pixel_agreement(x1, x2.roll(1, 0), self.domain_map))
        return {"pixel_agreement": torch.cat(paired).mean().item(),
                "pixel_agreement_unpaired": torch.cat(unpaired).mean().item(), "pairs": self.n}


@SUITES.register("target_accuracy")
class TargetAccuracy(MetricSuite):
    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        if not model.can(CLASSIFY):
            raise ValueError(f"target_accuracy scores models that classify; {opts.model_name} does not")
        info = model.data
        if not info.channels_b or info.num_classes < 1 or "label_b" not in info.fields:
            raise UserError(f"model {opts.model_name!r} on dataset {info.name!r}: target accuracy needs a two-domain "
                            f"set with labels on B (label_b) to score with: use dataset=digits_unpaired")
        target = domain_view(splits.test, "B").tensors()
        self.images, self.labels = target["image"], target["label"]

    def metrics(self, model: GANModel) -> dict:
        correct = 0
        for i in range(0, len(self.labels), self.opts.batch_size):
            x = to_float(self.images[i:i + self.opts.batch_size].to(model.device))
            correct += int((model.classify(x).argmax(1).cpu() == self.labels[i:i + self.opts.batch_size]).sum())
        return {"target_accuracy": correct / len(self.labels), "target_images": len(self.labels)}

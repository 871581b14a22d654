"""The `reconstruction` suite: how well a model's autoencoders give back their own domain's images
(UNIT's VAEs: G_A(E_A(a)) and G_B(E_B(b))), on the dataset's test split.

For each domain X of a two-domain set (A and B): `recon_l1_<X>` = mean |reconstruct(x, X) − x| on a
[0, 1] intensity scale over the first `n_per_class × classes` test images of that domain (all of them
for unlabeled sets), and `recon_l1`, the mean of the two. The model
is asked through the contract (`model.can(RECONSTRUCT)`, `model.reconstruct`), never probed. The
reconstruction is deterministic (the posterior mean, eval mode), so no random numbers are drawn.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..build import Splits
from ..data.loader import to_float
from ..errors import UserError
from ..models.base import RECONSTRUCT, GANModel
from ..registry import SUITES
from .suite import EvalOptions, MetricSuite
from .translation import domain_view, test_changes


@SUITES.register("reconstruction")
class Reconstruction(MetricSuite):
    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        if not model.can(RECONSTRUCT):
            raise UserError(f"model {opts.model_name!r} does not reconstruct images: drop the reconstruction suite")
        info = model.data
        if not info.channels_b:
            raise UserError(f"model {opts.model_name!r} on dataset {info.name!r}: reconstruction metrics need a "
                            f"two-domain dataset (A and B images)")
        test = splits.get("test", **test_changes(splits.cfg))
        limit = opts.n_per_class * info.num_classes if info.num_classes else None
        self.images = {d: domain_view(test, d).images[:limit] for d in ("A", "B")}  # uint8 [n, C, R, R]
        self.device, self.batch_size = opts.device, opts.batch_size

    def metrics(self, model: GANModel) -> dict:
        out: dict = {}
        for d, images in self.images.items():
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for b in images.split(self.batch_size):
                x = to_float(b.to(self.device))
                total += F.l1_loss(model.reconstruct(x, d).float(), x, reduction="sum").double()
            out[f"recon_l1_{d}"] = (total / images.numel() / 2).item()  # [-1, 1] -> [0, 1] scale
        out["recon_l1"] = sum(out.values()) / len(out)
        return out

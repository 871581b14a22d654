"""The `target_identity` suite: how well a source -> target translator leaves target images alone.

For a model that maps its dataset's source domain to a target domain and is trained to map target
images to themselves too (DTN's L_TID: G(x_t) ≈ x_t), `<dir>_target_identity_l1` is the mean
|translate(x_t, dir) − x_t| over the target test images, on a [0, 1] intensity scale (the DTN quick
check's floor: <= 0.1). The target images are those of the `translation` suite (the test split at the
training resolution, the first `n_per_class x classes` of a labeled set). Asks the contract only:
`directions()` (the first, trained one) and `translate`.
"""

from __future__ import annotations

import torch.nn.functional as F

from ..build import Splits
from ..data.loader import to_float
from ..errors import UserError
from ..models.base import GANModel
from ..registry import SUITES
from .suite import EvalOptions, MetricSuite
from .translation import DIRECTIONS, domain_view, test_changes


@SUITES.register("target_identity")
class TargetIdentity(MetricSuite):
    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        info = model.data
        direction = next((d for d in model.directions() if d in DIRECTIONS), None)
        if not info.channels_b or direction is None:
            raise UserError(f"model {opts.model_name!r} on dataset {info.name!r}: target identity needs a "
                            f"two-domain dataset and a model that translates it")
        self.direction, self.device, self.batch_size = direction, opts.device, opts.batch_size
        dst = DIRECTIONS[direction][1]
        images = domain_view(splits.get("test", **test_changes(splits.cfg)), dst).images
        limit = opts.n_per_class * info.num_classes if info.num_classes else None
        self.target = images[:limit]

    def metrics(self, model: GANModel) -> dict:
        total, n = 0.0, 0
        for b in self.target.split(self.batch_size):
            x = to_float(b.to(self.device))
            total += F.l1_loss(model.translate(x, self.direction).float(), x, reduction="sum").item() / 2  # [0, 1]
            n += x.numel()
        return {f"{self.direction}_target_identity_l1": total / n}

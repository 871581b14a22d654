"""The `translation` suite: metrics of image-to-image models (pix2pix, CycleGAN) on their dataset's test split.

For every direction the model translates (`model.directions()`), with src -> dst its dataset domains:
- `<dir>_l1` (aligned sets): mean |G(src) - dst| of the pairs, on a [0, 1] intensity scale;
- labeled sets (the built-in `digits_pairs` / `digits_unpaired`): `<dir>_accuracy`, the share of
  translated images that a judge of the dst domain (the `metrics.judge` CNN, trained on the dst
  images of the train split, cached per domain) classifies as their source's class; `<dir>_real_accuracy`,
  the same judge's accuracy on the real dst test images (the same number of them); and
  `<dir>_accuracy_ratio`, their ratio (the floors of the pix2pix/CycleGAN quick checks: >= 0.95 and
  >= 0.80);
- models that translate both ways: the test cycle error `cycle_l1_A` = mean |G_BA(G_AB(a)) - a| and
  `cycle_l1_B`, on a [0, 1] scale, and their mean `cycle_l1`.

Test images are the items of the test split at the training resolution: preprocess=resize_and_crop
sets are rebuilt with load_size = crop_size (the reference's test options do the same, so nothing is
cropped away at test), others are centre-cropped. Labeled sets use the first `n_per_class x classes`
test images (all by default). Inference draws (pix2pix's dropout) come from a generator seeded with
`seed` inside a forked RNG, so evaluating during training leaves the run's random stream untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..build import Splits
from ..data.base import Augment, DataInfo, ImageDataset, TensorImageDataset, fingerprint
from ..data.loader import augment_batch, to_float
from ..errors import UserError
from ..models.base import GANModel
from ..registry import SUITES
from .judge import predict, train_judge
from .suite import EvalOptions, MetricSuite

DIRECTIONS = {"AtoB": ("A", "B"), "BtoA": ("B", "A")}


def domain_images(dataset: ImageDataset, which: str) -> tuple[Tensor, Tensor | None]:
    """Every item of one domain once, centre-cropped to the training resolution: (uint8 [n, C, R, R], labels)."""
    images, labels = dataset.domain(which)
    r = dataset.info.resolution
    if tuple(images.shape[-2:]) != (r, r):
        n = images.shape[0]
        top, left = (images.shape[-2] - r) // 2, (images.shape[-1] - r) // 2
        images = augment_batch(images, Augment(crop=r), torch.zeros(n, dtype=torch.bool),
                               torch.tensor([[top, left]]).expand(n, 2), r)
    return images, labels


def domain_view(dataset: ImageDataset, which: str) -> TensorImageDataset:
    """One labeled domain of a two-domain set as a plain labeled image set (for `train_judge`)."""
    images, labels = domain_images(dataset, which)
    info = dataset.info
    view = DataInfo(name=f"{info.name}:{which}", channels=images.shape[1], resolution=info.resolution,
                    num_classes=info.num_classes, size=images.shape[0], fields=("image", "label"),
                    fingerprint=fingerprint({"two_domain": info.fingerprint, "domain": which}))
    return TensorImageDataset(view, images, labels)


def test_changes(dataset_cfg: dict) -> dict:
    """The changes to the dataset config for the test view: as the reference's test options, no random crop."""
    if dataset_cfg.get("preprocess", "resize_and_crop") == "resize_and_crop" and "crop_size" in dataset_cfg \
            and "load_size" in dataset_cfg:
        return {"load_size": dataset_cfg["crop_size"]}
    return {}


def _l1(x: Tensor, y: Tensor) -> float:
    return (F.l1_loss(x.float(), y.float()) / 2).item()  # [-1, 1] -> [0, 1] scale


@SUITES.register("translation")
class Translation(MetricSuite):
    """Built once per dataset (test images loaded, judges trained or read from their cache), then
    called on the model as often as wanted (`ganzoo eval`, and `trainer.eval_every`)."""

    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        info: DataInfo = model.data
        if not info.channels_b:
            raise UserError(f"model {opts.model_name!r} on dataset {info.name!r}: translation metrics need a "
                            f"two-domain dataset (A and B images)")
        self.info, self.device, self.batch_size, self.seed = info, opts.device, opts.batch_size, opts.seed
        self.test = splits.get("test", **test_changes(splits.cfg))
        self.labeled = info.num_classes > 0 and "label" in info.fields
        limit = opts.n_per_class * info.num_classes if self.labeled else None
        self.real = {k: tuple(None if t is None else t[:limit] for t in domain_images(self.test, k)) for k in ("A", "B")}
        self.directions = [d for d in model.directions() if d in DIRECTIONS]
        if not self.directions:
            raise UserError(f"model {opts.model_name!r} translates in neither direction of dataset {info.name!r}")
        self.judges: dict[str, torch.nn.Module] = {}
        if self.labeled:
            for dst in sorted({DIRECTIONS[d][1] for d in self.directions}):
                self.judges[dst] = train_judge(domain_view(splits.train, dst), domain_view(self.test, dst),
                                               epochs=opts.judge_epochs, device=opts.device)[0]
        self._real_acc: dict[str, float] = {}

    def _real_accuracy(self, dst: str) -> float:
        """The judge's accuracy on the real dst test images in use (the same subset as the translations')."""
        if dst not in self._real_acc:
            x, y = self.real[dst]
            pred = predict(self.judges[dst], to_float(x), self.batch_size).argmax(1)
            self._real_acc[dst] = (pred == y).float().mean().item()
        return self._real_acc[dst]

    def _devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def _translate(self, model, x: Tensor, direction: str) -> Tensor:
        """uint8 or float images (CPU) -> translated float images in [-1, 1] (CPU), in batches."""
        x = to_float(x) if x.dtype == torch.uint8 else x
        return torch.cat([model.translate(b.to(self.device), direction).float().cpu()
                          for b in x.split(self.batch_size)])

    def metrics(self, model: GANModel) -> dict:
        with torch.random.fork_rng(devices=self._devices()):  # pix2pix's test-time dropout draws
            torch.manual_seed(self.seed)
            return self._metrics(model)

    def _metrics(self, model: GANModel) -> dict:
        out: dict = {"directions": list(self.directions), "test_images": {k: len(v[0]) for k, v in self.real.items()}}
        fakes = {}
        for d in self.directions:
            src, dst = DIRECTIONS[d]
            x, labels = self.real[src]
            fake = fakes[d] = self._translate(model, x, d)
            if self.info.aligned:
                out[f"{d}_l1"] = _l1(fake, to_float(self.real[dst][0]))
            if dst in self.judges and labels is not None:
                judge = self.judges[dst]
                acc = (predict(judge, fake, self.batch_size).argmax(1) == labels).float().mean().item()
                real_acc = self._real_accuracy(dst)
                out[f"{d}_accuracy"], out[f"{d}_real_accuracy"] = acc, real_acc
                if real_acc > 0:  # a judge that recognises nothing gives no ratio
                    out[f"{d}_accuracy_ratio"] = acc / real_acc
        if len(self.directions) == 2:
            for d, back in (("AtoB", "BtoA"), ("BtoA", "AtoB")):
                src = DIRECTIONS[d][0]
                out[f"cycle_l1_{src}"] = _l1(self._translate(model, fakes[d], back), to_float(self.real[src][0]))
            out["cycle_l1"] = (out["cycle_l1_A"] + out["cycle_l1_B"]) / 2
        return out

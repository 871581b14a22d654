"""The data contract: what every dataset builder returns and what the trainer may rely on.

A dataset is a map-style `torch.utils.data.Dataset` whose items are dicts of tensors:
    {"image": uint8 [C, S, S], "label": int64 []}     ("label" only when `info.num_classes > 0`)
where S = `item_size` (the stored/loaded size). Random crop to `info.resolution` and horizontal flip
are batch operations done by the loader on the training device (`Augment`), so that preloaded and
worker-fed data share one augmentation path and resume stays exact. Images are uint8 until the
loader converts them to float in [-1, 1].

Shape facts flow from here to the model: channels, resolution, number of classes and the fields a
batch carries (`DataInfo`).

A builder is a function registered in `ganzoo.registry.DATASETS` under the name used in
`conf/dataset/<name>.yaml` (its `name:` key); it is called with the YAML's other keys as keyword
arguments plus `split="train"|"test"` and `seed`, and returns an `ImageDataset`. Builders raise
`DataError` for missing/corrupt data with a one-line message naming the fix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch.utils.data import Dataset

from ..errors import UserError


class DataError(UserError):
    """Bad or missing data. str() is one line that names the fix; the CLI prints it and exits 2."""


@dataclass(frozen=True)
class DataInfo:
    name: str
    channels: int
    resolution: int  # square training resolution (after crop)
    num_classes: int = 0  # 0 = unlabeled
    size: int = 0  # number of items in this split
    fields: tuple[str, ...] = ("image",)
    fingerprint: str = ""  # sha256 of what defines the data (generator params, file list + sizes, ...)
    channels_b: int = 0  # image-to-image sets: channels of "B" ("A" has `channels`); 0 = not a two-domain set
    aligned: bool = False  # two-domain sets: True when A[i] and B[i] are a pair (pix2pix), False if unpaired
    domain_map: str = ""  # two-domain sets whose B is a pixelwise function of A ("edges", "negative"; see
    # ganzoo.data.domains.DOMAIN_MAPS): what the image of an A looks like in B, "" when B is not such a map

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fields"] = list(self.fields)
        return d


@dataclass(frozen=True)
class Augment:
    """Batch augmentation done on the device: random square crop to `crop` px and horizontal flip."""

    crop: int | None = None  # None: no crop (item_size == resolution)
    flip: bool = False


class ImageDataset(Dataset):
    """Base class for datasets. Subclasses set `info`, `item_size`, `augment` and implement
    `__len__` and `__getitem__`. `tensors()` may be overridden with a fast path for preloading."""

    info: DataInfo
    item_size: int
    augment: Augment = Augment()
    labeled_subset: torch.Tensor | None = None  # semi-supervised view: the indices whose labels a run sees

    def tensors(self) -> dict[str, torch.Tensor]:
        """All items stacked: {"image": uint8 [N, C, S, S], "label": int64 [N]} (for preloading)."""
        items = [self[i] for i in range(len(self))]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def nbytes(self) -> int:
        return len(self) * self.info.channels * self.item_size * self.item_size

    def hr_images(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, uint8 [C, H, W]) of every whole image, for super-resolution evaluation. Default: the
        items; sets that crop patches from larger images yield the whole images."""
        for i in range(len(self)):
            yield f"{self.info.name}_{i:05d}", self[i]["image"]


class TensorImageDataset(ImageDataset):
    """A dataset held in memory as uint8 tensors (built-in and torchvision sets)."""

    def __init__(self, info: DataInfo, images: torch.Tensor, labels: torch.Tensor | None = None,
                 augment: Augment = Augment()):
        assert images.dtype == torch.uint8 and images.ndim == 4, images.shape
        self.info, self.images, self.labels, self.augment = info, images, labels, augment
        self.item_size = images.shape[-1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"image": self.images[i]}
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"image": self.images}
        if self.labels is not None:
            out["label"] = self.labels
        return out


def fingerprint(obj) -> str:
    """sha256 of a JSON-able description of a dataset (parameters, file names and sizes)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()

"""Two-domain (image-to-image) datasets: the item contract shared by the paired and unpaired sets.

Items are dicts {"A": uint8 [Ca, H, W], "B": uint8 [Cb, H, W]} (H = W for most sets), plus
"label" (int64, the class of A; of the pair when aligned) and, for unaligned sets, "label_b" (the
class of B) when the set has classes. `DataInfo.channels` is Ca, `channels_b` is Cb, `aligned` says
whether A[i] and B[i] are a pair.

- aligned (pix2pix): A[i] and B[i] are a pair; the loader gives B the crop and flip of A.
- unaligned (CycleGAN): the domains have their own sizes nA and nB (`size_a`, `size_b`); the dataset
  length is max(nA, nB), as the official UnalignedDataset. `dataset[i]` pairs A[i % nA] with
  B[i % nB] (the official `serial_batches` pairing, used for preloading and preview grids) and
  `dataset[(i, j)]` pairs A[i % nA] with B[j % nB]: the loader draws j from a seeded per-epoch
  permutation of the B domain, so B is independent of A and resume stays exact.
"""

from __future__ import annotations

import torch

from ganzoo.data.base import Augment, DataInfo, ImageDataset

Key = int | tuple[int, int]


def split_key(key: Key) -> tuple[int, int]:
    """(A index, B index) of an item key: `i` means (i, i), `(i, j)` is explicit."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return int(key), int(key)


def item_hw(dataset: ImageDataset) -> tuple[int, int]:
    s = dataset.item_size
    return (s, s) if isinstance(s, int) else (int(s[0]), int(s[1]))


def two_domain_nbytes(dataset: ImageDataset) -> int:
    h, w = item_hw(dataset)
    return len(dataset) * (dataset.info.channels + dataset.info.channels_b) * h * w


class TensorPairDataset(ImageDataset):
    """A two-domain set held in memory as uint8 tensors (the built-in sets)."""

    def __init__(self, info: DataInfo, a: torch.Tensor, b: torch.Tensor, label_a: torch.Tensor | None = None,
                 label_b: torch.Tensor | None = None, augment: Augment = Augment()):
        assert a.dtype == torch.uint8 and b.dtype == torch.uint8 and a.ndim == b.ndim == 4, (a.shape, b.shape)
        assert a.shape[-2:] == b.shape[-2:], (a.shape, b.shape)
        assert not info.aligned or a.shape[0] == b.shape[0], "an aligned set needs as many A as B"
        self.info, self.a, self.b, self.augment = info, a, b, augment
        self.label_a, self.label_b = label_a, (None if info.aligned else label_b)
        self.size_a, self.size_b = int(a.shape[0]), int(b.shape[0])
        h, w = a.shape[-2:]
        self.item_size = int(h) if h == w else (int(h), int(w))

    def __len__(self) -> int:
        return max(self.size_a, self.size_b)

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor]:
        i, j = split_key(key)
        i, j = i % self.size_a, j % self.size_b
        item = {"A": self.a[i], "B": self.b[j]}
        if self.label_a is not None:
            item["label"] = self.label_a[i]
        if self.label_b is not None:
            item["label_b"] = self.label_b[j]
        return item

    def tensors(self) -> dict[str, torch.Tensor]:
        """Row i = item i (the serial pairing); the shorter domain repeats to the dataset length."""
        n = len(self)

        def rows(t: torch.Tensor) -> torch.Tensor:
            return t if t.shape[0] == n else t[torch.arange(n) % t.shape[0]]

        out = {"A": rows(self.a), "B": rows(self.b)}
        if self.label_a is not None:
            out["label"] = rows(self.label_a)
        if self.label_b is not None:
            out["label_b"] = rows(self.label_b)
        return out

    def nbytes(self) -> int:
        return two_domain_nbytes(self)

    def domain(self, which: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every item of one domain once: (uint8 [n, C, H, W], int64 labels [n] or None)."""
        if which == "A":
            return self.a, self.label_a
        return self.b, (self.label_a if self.info.aligned else self.label_b)


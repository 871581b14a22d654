"""Built-in offline two-domain sets made from digits: `digits_pairs` (paired) and `digits_unpaired`.

The digits come from the built-in procedural `digits` (source=digits, offline, default) or from real
MNIST (source=mnist, read by the `mnist` builder from `root`, e.g. ../shared/data). The 28 px digits
are zero-padded to 32 px (the U-Net and ResNet generators need a size divisible by their stride;
MNIST's own digits live in the centre 20 x 20, so nothing is cut), then resized (antialiased bicubic)
when `resolution` is not 32. The edge map of a digit is its Sobel gradient magnitude (on [0, 1]
intensities, replicate-padded) thresholded at `EDGE_THRESHOLD`: white outlines on black, as the
"edge map -> digit" check of the pix2pix quick test (research/model-specs.md section 7).

- `digits_pairs` (aligned): A = the edge map of a digit, B = the digit ("edges2digits", as
  edges2shoes). Items {"A", "B", "label"}.
- `digits_unpaired` (unaligned): A = the digits of the first half of the split, B = the edge maps of
  the second half (or, with domain=negative, their negatives: `ganzoo.data.domains`), so no B is the
  map of an A (the halves are disjoint). Items {"A", "B", "label" (A's digit), "label_b" (B's
  digit)}; `info.domain_map` names the map.

The labels let `ganzoo eval` judge translated images (does G(A) still show A's digit?). No flips: a
mirrored digit is another glyph (or none), which would corrupt the labels the judge checks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganzoo.data.base import DataError, DataInfo, fingerprint
from ganzoo.data.builders.two_domain import TensorPairDataset
from ganzoo.data.domains import DOMAIN_MAPS, EDGE_THRESHOLD, edge_map
from ganzoo.registry import DATASETS

SOURCES = ("digits", "mnist")
VERSION = 1  # bump when the edge maps or the padding change (it is part of the fingerprint)


def _digits(source: str, split: str, seed: int, root: str | None, download: bool, num: int,
            resolution: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(uint8 digits [n, 1, R, R], labels [n], the source's fingerprint)."""
    from ganzoo.data.builders.digits import build_digits
    from ganzoo.data.builders.torchvision_sets import build_mnist, resize_uint8

    if source == "digits":
        ds = build_digits(split=split, seed=seed, root=root, resolution=28, num_train=num, num_test=num)
    else:
        ds = build_mnist(split=split, root=root, download=download, resolution=28)
    images, labels = ds.images[:num], ds.labels[:num]
    images = resize_uint8(F.pad(images, (2, 2, 2, 2)), resolution)
    return images, labels, ds.info.fingerprint


def _check(source: str, split: str, resolution: int, num: int, key: str) -> None:
    if source not in SOURCES:
        raise DataError(f"dataset.source={source!r} is not one of {', '.join(SOURCES)}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: the built-in digit sets have the splits train and test")
    if resolution < 16:
        raise DataError(f"dataset.resolution={resolution} must be at least 16")
    if num < 2:
        raise DataError(f"dataset.{key}={num} must be at least 2")


@DATASETS.register("digits_pairs")
def build_digits_pairs(*, split: str = "train", seed: int = 0, source: str = "digits", root: str | None = None,
                       download: bool = True, resolution: int = 32, num_train: int = 60000,
                       num_test: int = 10000) -> TensorPairDataset:
    """Paired edges -> digits (A = edge map, B = digit). `num_train`/`num_test`: digits rendered
    (source=digits) or the first ones kept (source=mnist). `download`: source=mnist only."""
    num = int(num_train if split == "train" else num_test)
    _check(source, split, int(resolution), num, f"num_{split}")
    digits, labels, src_fp = _digits(source, split, seed, root, download, num, int(resolution))
    fp = fingerprint({"builder": "digits_pairs", "version": VERSION, "source": src_fp, "split": split,
                      "resolution": int(resolution), "size": len(labels), "edge": EDGE_THRESHOLD})
    info = DataInfo(name="digits_pairs", channels=1, channels_b=1, aligned=True, resolution=int(resolution),
                    num_classes=10, size=len(labels), fields=("A", "B", "label"), fingerprint=fp)
    return TensorPairDataset(info, edge_map(digits), digits, labels)


@DATASETS.register("digits_unpaired")
def build_digits_unpaired(*, split: str = "train", seed: int = 0, source: str = "digits", root: str | None = None,
                          download: bool = True, resolution: int = 32, num_train: int = 60000,
                          num_test: int = 10000, domain: str = "edges") -> TensorPairDataset:
    """Unpaired digits <-> a derived domain from disjoint halves (A = digits of the first half, B = the
    `domain` map of the second: "edges" (default) or "negative"). `num_train`/`num_test` count both
    halves together."""
    num = int(num_train if split == "train" else num_test)
    _check(source, split, int(resolution), num, f"num_{split}")
    if domain not in DOMAIN_MAPS:
        raise DataError(f"dataset.domain={domain!r} is not one of {', '.join(DOMAIN_MAPS)}")
    digits, labels, src_fp = _digits(source, split, seed, root, download, num, int(resolution))
    half = digits.shape[0] // 2
    facts = {"builder": "digits_unpaired", "version": VERSION, "source": src_fp, "split": split,
             "resolution": int(resolution), "size": len(labels), "edge": EDGE_THRESHOLD}
    if domain != "edges":  # keeps the fingerprint of existing edge runs
        facts["domain"] = domain
    info = DataInfo(name="digits_unpaired", channels=1, channels_b=1, aligned=False, resolution=int(resolution),
                    num_classes=10, size=max(half, len(labels) - half), fields=("A", "B", "label", "label_b"),
                    fingerprint=fingerprint(facts), domain_map=domain)
    return TensorPairDataset(info, digits[:half], DOMAIN_MAPS[domain](digits[half:]), labels[:half], labels[half:])

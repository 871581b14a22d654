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
  the second half, so no B is the edge map of an A (the halves are disjoint). Items {"A", "B",
  "label" (A's digit), "label_b" (B's digit)}.

The labels let `ganzoo eval` judge translated images (does G(A) still show A's digit?). No flips: a
mirrored digit is another glyph (or none), which would corrupt the labels the judge checks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganzoo.data.base import DataError, DataInfo, fingerprint
from ganzoo.data.builders.two_domain import TensorPairDataset
from ganzoo.registry import DATASETS

EDGE_THRESHOLD = 1.0  # Sobel magnitude on [0, 1] intensities (its maximum is 4 * sqrt(2))
SOURCES = ("digits", "mnist")
VERSION = 1  # bump when the edge maps or the padding change (it is part of the fingerprint)


def edge_map(images: torch.Tensor, threshold: float = EDGE_THRESHOLD) -> torch.Tensor:
    """uint8 [N, 1, H, W] digits -> uint8 [N, 1, H, W] binary edge maps (255 on the outlines)."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernel = torch.stack([kx, kx.t()])[:, None]  # [2, 1, 3, 3]: d/dx, d/dy
    out = torch.empty_like(images)
    for i in range(0, images.shape[0], 8192):  # chunks keep the float copy small
        x = F.pad(images[i:i + 8192].float() / 255, (1, 1, 1, 1), mode="replicate")
        g = F.conv2d(x, kernel)  # [n, 2, H, W]
        out[i:i + 8192] = (g.square().sum(1, keepdim=True).sqrt() > threshold).to(torch.uint8) * 255
    return out


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
                          num_test: int = 10000) -> TensorPairDataset:
    """Unpaired digits <-> edge maps from disjoint halves (A = digits of the first half, B = edge maps
    of the second). `num_train`/`num_test` count both halves together."""
    num = int(num_train if split == "train" else num_test)
    _check(source, split, int(resolution), num, f"num_{split}")
    digits, labels, src_fp = _digits(source, split, seed, root, download, num, int(resolution))
    half = digits.shape[0] // 2
    fp = fingerprint({"builder": "digits_unpaired", "version": VERSION, "source": src_fp, "split": split,
                      "resolution": int(resolution), "size": len(labels), "edge": EDGE_THRESHOLD})
    info = DataInfo(name="digits_unpaired", channels=1, channels_b=1, aligned=False, resolution=int(resolution),
                    num_classes=10, size=max(half, len(labels) - half), fields=("A", "B", "label", "label_b"),
                    fingerprint=fp)
    return TensorPairDataset(info, digits[:half], edge_map(digits[half:]), labels[:half], labels[half:])

"""`aligned` (pix2pix) and `unaligned` (CycleGAN) image folders, with the official preprocessing.

Layouts (as junyanz/pytorch-CycleGAN-and-pix2pix):
    aligned:    <root>/train/*, <root>/val/*, <root>/test/*   each image is A|B side by side
    unaligned:  <root>/trainA, trainB, testA, testB            the two domains, unpaired
Splits: aligned has train, val and test; split="test" reads test/ and falls back to val/ when there
is no test/ (maps, edges2shoes, edges2handbags ship only train/ and val/). unaligned has train and test.
Images are found recursively (sorted, hidden names skipped) and all fully decoded once at build time
(`scan_images`): bad files fail the build (on_bad_images=fail) or are dropped (skip).

Preprocessing (`preprocess`, as the official `get_transform`): the deterministic resize happens here,
per item, with PIL's bicubic (what torchvision's Resize does on PIL images); the random crop to
`crop_size` and the flip happen on the device in the loader (`Augment`), so that an aligned pair gets
one crop and one flip and resume is exact.
    resize_and_crop       resize to load_size x load_size, random crop crop_size (default 286 -> 256)
    crop                  no resize, random crop crop_size
    scale_width           width to load_size, height keeps the aspect (at least crop_size); no crop
    scale_width_and_crop  as scale_width, then random crop crop_size
    none                  no resize beyond rounding each side to a multiple of 4 (bicubic); no crop
Items are batched, so every item of a set must come out of the resize step with one size (always
true for resize_and_crop, and for the standard sets, whose images share a size); otherwise the build
names two files that differ and suggests resize_and_crop. The training resolution is crop_size when
cropping, else the item size, which must then be square. An aligned image of odd width W gives
A = columns [0, W//2) and B = [W//2, 2*(W//2)) (the official code gives B one more column); so A and B
always share a size.

`input_nc` is the number of channels of A and `output_nc` that of B (1: greyscale by ITU-R 601-2 luma,
3: RGB); the dataset does not know a model's direction (with model.direction=BtoA, B is the input).

`root` null or without the data, and `download` a manifest name: the data is fetched and verified
with `ganzoo.data.fetch.download.ensure(download, root)` on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import ExifTags, Image

from ganzoo.data.base import Augment, DataError, DataInfo, ImageDataset, fingerprint
from ganzoo.data.builders.folder import _to_tensor, find_images
from ganzoo.data.builders.two_domain import Key, item_hw, split_key, two_domain_nbytes
from ganzoo.data.files.bad_images import check_policy, keep_good_images
from ganzoo.data.files.imagecheck import IMAGE_EXTENSIONS, convert_image, load_image
from ganzoo.registry import DATASETS

PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class Preprocess:
    """The deterministic part of the official get_transform (the random crop and flip are the loader's)."""

    mode: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256

    @property
    def crops(self) -> bool:
        return "crop" in self.mode

    def size(self, w: int, h: int) -> tuple[int, int]:
        """(W, H) of a W x H image after the resize step."""
        if self.mode == "resize_and_crop":
            return self.load_size, self.load_size
        if "scale_width" in self.mode:  # official __scale_width
            if w == self.load_size and h >= self.crop_size:
                return w, h
            return self.load_size, int(max(self.load_size * h / w, self.crop_size))
        if self.mode == "none":  # official __make_power_2 with base 4
            return int(round(w / 4) * 4), int(round(h / 4) * 4)
        return w, h  # crop

    def apply(self, img: Image.Image) -> Image.Image:
        size = self.size(*img.size)
        return img if size == img.size else img.resize(size, Image.Resampling.BICUBIC)


def _check_args(preprocess: str, load_size: int, crop_size: int, input_nc: int, output_nc: int,
                on_bad_images: str) -> Preprocess:
    if preprocess not in PREPROCESS:
        raise DataError(f"dataset.preprocess={preprocess!r} is not one of {', '.join(PREPROCESS)}")
    for key, c in (("input_nc", input_nc), ("output_nc", output_nc)):
        if c not in (1, 3):
            raise DataError(f"dataset.{key}={c} is not supported: set dataset.{key}=1 (greyscale) or 3 (RGB)")
    check_policy(on_bad_images)
    if load_size < 1 or crop_size < 1:
        raise DataError(f"dataset.load_size={load_size} and dataset.crop_size={crop_size} must be positive")
    if preprocess in ("resize_and_crop", "scale_width_and_crop") and load_size < crop_size:
        raise DataError(f"dataset.load_size={load_size} is smaller than dataset.crop_size={crop_size}: "
                        f"set dataset.load_size >= crop_size")
    return Preprocess(preprocess, int(load_size), int(crop_size))


def locate(root: str | None, download: str | None, has_data, layout: str) -> Path:
    """The folder holding the set: `root` when it has the data (`has_data(path)`), else what
    `ensure(download, root)` fetches (or its only subfolder with the data)."""
    base = None if root in (None, "", "???") else Path(os.path.expanduser(str(root)))
    if base is not None and has_data(base):
        return base
    if not download:
        if base is None:
            raise DataError(f"no dataset.root given: set dataset.root=<folder with {layout}> "
                            "(or dataset.download=<name>, see ganzoo data list)")
        what = "does not exist" if not base.exists() else f"has no {layout}"
        raise DataError(f"dataset folder {base} {what}: set dataset.root=<folder with {layout}> "
                        "(or dataset.download=<name>, see ganzoo data list)")
    from ganzoo.data.fetch.download import ensure

    got = Path(ensure(str(download), base))
    if has_data(got):
        return got
    inner = [d for d in got.iterdir() if d.is_dir() and has_data(d)] if got.is_dir() else []
    if len(inner) == 1:
        return inner[0]
    raise DataError(f"the downloaded {download!r} in {got} has no {layout}: remove {got} and run "
                    f"ganzoo data download {download} again")


def _oriented_size(path: str) -> tuple[int, int]:
    """(W, H) as `load_image` will return the image: from the header, EXIF rotations applied."""
    with Image.open(path) as img:
        w, h = img.size
        try:
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        except Exception:  # noqa: BLE001 - broken EXIF: load_image keeps the pixels as stored
            orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _files(folder: Path, on_bad_images: str) -> list[str]:
    """The good image files under `folder` (recursively, sorted); bad ones fail or are skipped."""
    files = find_images(folder)
    if not files:
        raise DataError(f"no images ({' '.join(sorted(IMAGE_EXTENSIONS))}) found in {folder}: "
                        "set dataset.root=<dataset folder>")
    return [str(p) for p in keep_good_images(files, folder, on_bad_images, stacklevel=3)]


def _item_size(pre: Preprocess, groups: list[list[str]], half: bool) -> tuple[int, int]:
    """(H, W) of every item after the resize step; DataError when the files disagree."""
    if pre.mode == "resize_and_crop":
        return pre.load_size, pre.load_size
    first: tuple[tuple[int, int], str] | None = None
    for files in groups:
        for f in files:
            w, h = _oriented_size(f)
            size = pre.size(w // 2 if half else w, h)
            if first is None:
                first = (size, f)
            elif size != first[0]:
                raise DataError(f"preprocess={pre.mode} keeps the images' own sizes, but {first[1]} gives "
                                f"{first[0][0]}x{first[0][1]} and {f} gives {size[0]}x{size[1]}: set "
                                f"dataset.preprocess=resize_and_crop (one size for all)")
    w, h = first[0]
    return h, w


def _resolution(pre: Preprocess, hw: tuple[int, int]) -> int:
    h, w = hw
    if pre.crops:
        if h < pre.crop_size or w < pre.crop_size:
            raise DataError(f"the images are {w}x{h} after preprocess={pre.mode}, smaller than "
                            f"dataset.crop_size={pre.crop_size}: lower dataset.crop_size")
        return pre.crop_size
    if h != w:
        raise DataError(f"preprocess={pre.mode} trains on the whole {w}x{h} image, which is not square: set "
                        f"dataset.preprocess=resize_and_crop or scale_width_and_crop (square crops)")
    return h


def _loaded(img: Image.Image, pre: Preprocess, hw: tuple[int, int], channels: int, path: str) -> torch.Tensor:
    """Resize step, conversion to `channels`, uint8 [C, H, W]; a file whose size differs is refused."""
    img = pre.apply(convert_image(img, channels))
    if (img.size[1], img.size[0]) != hw:
        raise DataError(f"{path} is {img.size[0]}x{img.size[1]} after preprocess={pre.mode}, the other images "
                        f"{hw[1]}x{hw[0]}: set dataset.preprocess=resize_and_crop")
    return _to_tensor(img)


class AlignedFolder(ImageDataset):
    """A|B images; both halves go through the same resize (the loader then crops and flips both alike)."""

    def __init__(self, info: DataInfo, files: list[str], pre: Preprocess, hw: tuple[int, int], augment: Augment):
        self.info, self.files, self.pre, self.augment = info, files, pre, augment
        self.item_size = hw[0] if hw[0] == hw[1] else hw
        self.size_a = self.size_b = len(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor]:
        path = self.files[split_key(key)[0]]
        ab = load_image(path, 3 if 3 in (self.info.channels, self.info.channels_b) else 1)
        w, h = ab.size
        w2 = w // 2
        hw = item_hw(self)
        return {"A": _loaded(ab.crop((0, 0, w2, h)), self.pre, hw, self.info.channels, path),
                "B": _loaded(ab.crop((w2, 0, 2 * w2, h)), self.pre, hw, self.info.channels_b, path)}

    def nbytes(self) -> int:
        return two_domain_nbytes(self)

    def domain(self, which: str) -> tuple[torch.Tensor, None]:
        return torch.stack([self[i][which] for i in range(len(self))]), None


class UnalignedFolder(ImageDataset):
    """trainA/trainB: len = max(nA, nB); `dataset[(i, j)]` = (A[i % nA], B[j % nB]) (see two_domain.py)."""

    def __init__(self, info: DataInfo, files_a: list[str], files_b: list[str], pre: Preprocess,
                 hw: tuple[int, int], augment: Augment):
        self.info, self.files_a, self.files_b, self.pre, self.augment = info, files_a, files_b, pre, augment
        self.item_size = hw[0] if hw[0] == hw[1] else hw
        self.size_a, self.size_b = len(files_a), len(files_b)

    def __len__(self) -> int:
        return max(self.size_a, self.size_b)

    def _load(self, path: str, channels: int) -> torch.Tensor:
        return _loaded(load_image(path, channels), self.pre, item_hw(self), channels, path)

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor]:
        i, j = split_key(key)
        return {"A": self._load(self.files_a[i % self.size_a], self.info.channels),
                "B": self._load(self.files_b[j % self.size_b], self.info.channels_b)}

    def nbytes(self) -> int:
        return two_domain_nbytes(self)

    def domain(self, which: str) -> tuple[torch.Tensor, None]:
        files, c = (self.files_a, self.info.channels) if which == "A" else (self.files_b, self.info.channels_b)
        return torch.stack([self._load(f, c) for f in files]), None


def _rel(files: list[str], folder: Path) -> list:
    return [[Path(f).relative_to(folder).as_posix(), os.path.getsize(f)] for f in files]


def _aligned_split(root: Path, split: str) -> Path:
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}: aligned datasets have the splits train, val and test")
    if split == "test" and not (root / "test").is_dir() and (root / "val").is_dir():
        return root / "val"  # maps, edges2shoes, edges2handbags: no test/, val/ is their test set
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist: an aligned dataset has {split}/ (A|B images) under "
                        "dataset.root")
    return folder


@DATASETS.register("aligned")
def build_aligned(*, split: str = "train", seed: int = 0, root: str | None = None, download: str | None = None,
                  preprocess: str = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                  flip: bool = True, input_nc: int = 3, output_nc: int = 3,
                  on_bad_images: str = "fail") -> AlignedFolder:
    """pix2pix A|B folders (see the module doc). `seed` is unused (the data is deterministic)."""
    del seed
    pre = _check_args(preprocess, load_size, crop_size, input_nc, output_nc, on_bad_images)
    base = locate(root, download, lambda p: (p / "train").is_dir() or (p / split).is_dir(),
                  "train/ (A|B images side by side)")
    folder = _aligned_split(base, split)
    files = _files(folder, on_bad_images)
    hw = _item_size(pre, [files], half=True)
    resolution = _resolution(pre, hw)
    fp = fingerprint({"builder": "aligned", "split": split, "preprocess": pre.mode, "load_size": pre.load_size,
                      "crop_size": pre.crop_size, "flip": flip, "nc": [input_nc, output_nc],
                      "files": _rel(files, folder)})
    name = str(download) if download else "aligned"
    info = DataInfo(name=name, channels=input_nc, channels_b=output_nc, aligned=True, resolution=resolution,
                    size=len(files), fields=("A", "B"), fingerprint=fp)
    augment = Augment(crop=resolution if pre.crops else None, flip=bool(flip))
    return AlignedFolder(info, files, pre, hw, augment)


@DATASETS.register("unaligned")
def build_unaligned(*, split: str = "train", seed: int = 0, root: str | None = None, download: str | None = None,
                    preprocess: str = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                    flip: bool = True, input_nc: int = 3, output_nc: int = 3,
                    on_bad_images: str = "fail") -> UnalignedFolder:
    """CycleGAN trainA/trainB/testA/testB folders (see the module doc). `seed` is unused."""
    del seed
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: unaligned datasets have the splits train and test")
    pre = _check_args(preprocess, load_size, crop_size, input_nc, output_nc, on_bad_images)
    base = locate(root, download, lambda p: (p / f"{split}A").is_dir() or (p / "trainA").is_dir(),
                  "trainA/, trainB/, testA/, testB/")
    folders = [base / f"{split}{d}" for d in ("A", "B")]
    for f in folders:
        if not f.is_dir():
            raise DataError(f"{f} does not exist: an unaligned dataset has {split}A/ and {split}B/ under "
                            "dataset.root")
    files_a, files_b = (_files(f, on_bad_images) for f in folders)
    hw = _item_size(pre, [files_a, files_b], half=False)
    resolution = _resolution(pre, hw)
    fp = fingerprint({"builder": "unaligned", "split": split, "preprocess": pre.mode, "load_size": pre.load_size,
                      "crop_size": pre.crop_size, "flip": flip, "nc": [input_nc, output_nc],
                      "A": _rel(files_a, folders[0]), "B": _rel(files_b, folders[1])})
    name = str(download) if download else "unaligned"
    info = DataInfo(name=name, channels=input_nc, channels_b=output_nc, aligned=False, resolution=resolution,
                    size=max(len(files_a), len(files_b)), fields=("A", "B"), fingerprint=fp)
    augment = Augment(crop=resolution if pre.crops else None, flip=bool(flip))
    return UnalignedFolder(info, files_a, files_b, pre, hw, augment)


__all__ = ["PREPROCESS", "Preprocess", "build_aligned", "build_unaligned", "locate"]

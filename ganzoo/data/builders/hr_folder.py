"""`hr_folder`: any folder of high-resolution images (any sizes, not square) for super-resolution.

SR trains on random HR crops (96 px in the paper) of whole photos. The loader crops square items of
one stored size on the device (`Augment`), so the builder cuts every image once into square patches
of `patch` px (default 192) on a grid with step `stride` (default = patch; the last row and column
are moved in to end at the border, so every pixel is in some patch) — the sub-image extraction
BasicSR does for DIV2K. The loader then takes a random `resolution` crop (96) of a random patch and
flips it. The patches are cached once as one uint8 `.npy` under `data_home(root)/hr_folder/`
(memory-mapped: random access without decoding, safe in DataLoader workers, and preloaded to the
device when small); the cache is keyed by the folder, the files (names, sizes, mtimes) and the
patch grid. Images smaller than `patch` are skipped with a warning (lower dataset.patch).

Splits: `train` from `path` (or the extracted manifest entry `download`); `test` from `test_path`
(or `test_download`, or `<path>/test` when `path` has train/ and test/ subfolders). The test split is
not cut: `hr_images()` yields the whole images for `ganzoo eval` (which crops them to a multiple of
the scale; `folder_images(folder)` is what `ganzoo eval data=<folder>` reads); its items are centre
crops, for the preview grids of `ganzoo sample`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ganzoo.data.base import Augment, DataError, DataInfo, ImageDataset, fingerprint
from ganzoo.data.builders.folder import find_images
from ganzoo.data.files.bad_images import check_policy, keep_good_images
from ganzoo.data.files.imagecheck import IMAGE_EXTENSIONS, load_image
from ganzoo.registry import DATASETS
from ganzoo.storage import atomic_write, data_home, resolve_data_path

CACHE_VERSION = 1


def _to_tensor(img: Image.Image) -> torch.Tensor:
    t = torch.from_numpy(np.array(img, dtype=np.uint8))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def grid_starts(length: int, patch: int, stride: int) -> list[int]:
    """Patch offsets along one side: 0, stride, ... and a last one ending at the border."""
    if length < patch:
        return []
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def hr_images(files: list[Path], channels: int, base: Path | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, uint8 [C, H, W]) of each whole image, decoded one at a time."""
    for f in files:
        name = f.relative_to(base).as_posix() if base else f.name
        yield name, _to_tensor(load_image(f, channels))


def folder_images(folder: str | os.PathLike, channels: int = 3) -> Iterator[tuple[str, torch.Tensor]]:
    """The whole images of any folder (for `ganzoo eval data=<folder>`); DataError when there are none."""
    base = Path(os.path.expanduser(str(folder)))
    if not base.is_dir():
        raise DataError(f"data={folder}: not a folder: give data=<folder of HR images>")
    files = find_images(base)
    if not files:
        raise DataError(f"no images ({' '.join(sorted(IMAGE_EXTENSIONS))}) in {base}: give data=<folder of HR images>")
    return hr_images(files, channels, base)


class HRPatchDataset(ImageDataset):
    """Square uint8 patches [C, patch, patch] from a memory-mapped cache file."""

    def __init__(self, info: DataInfo, cache: Path, count: int, patch: int, augment: Augment,
                 files: list[Path], base: Path):
        self.info, self.cache, self.count, self.item_size, self.augment = info, cache, count, patch, augment
        self.files, self.base = files, base
        self._arr = None  # opened lazily in each process

    def __getstate__(self):
        return {**self.__dict__, "_arr": None}

    def _array(self) -> np.ndarray:
        if self._arr is None:
            self._arr = np.load(self.cache, mmap_mode="r")
        return self._arr

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": torch.from_numpy(np.array(self._array()[i]))}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"image": torch.from_numpy(np.array(self._array()))}

    def hr_images(self) -> Iterator[tuple[str, torch.Tensor]]:
        return hr_images(self.files, self.info.channels, self.base)


class HRImageFiles(ImageDataset):
    """The test split: `hr_images()` yields the whole images (for `ganzoo eval`); an item is the image's
    centre `patch` crop (resized to fit when the image is smaller), for preview grids (`ganzoo sample`)."""

    def __init__(self, info: DataInfo, files: list[Path], base: Path, patch: int, augment: Augment):
        self.info, self.files, self.base, self.item_size, self.augment = info, files, base, patch, augment

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img = load_image(self.files[i], self.info.channels)
        p = self.item_size
        if min(img.size) < p:
            img = ImageOps.fit(img, (p, p), method=Image.Resampling.BICUBIC)
        left, top = (img.size[0] - p) // 2, (img.size[1] - p) // 2
        return {"image": _to_tensor(img.crop((left, top, left + p, top + p)))}

    def hr_images(self) -> Iterator[tuple[str, torch.Tensor]]:
        return hr_images(self.files, self.info.channels, self.base)


def _folder(path: str | None, download: str | None, root: str | None, what: str) -> Path:
    if path is not None and str(path).strip() not in ("", "???"):
        base = resolve_data_path(str(path), root)
        if not base.is_dir():
            raise DataError(f"HR image folder {base} does not exist: set dataset.{what}=<folder of HR images>")
        return base
    if download:
        from ganzoo.data.fetch.download import ensure

        return Path(ensure(download, root))
    raise DataError(f"hr_folder needs a folder: set dataset.{what}=<folder of HR images>")


def _size(f: Path) -> tuple[int, int]:
    """(H, W) as `load_image` will return it, from the header (EXIF orientations 5-8 swap the sides)."""
    with Image.open(f) as im:
        w, h = im.size
        try:
            turned = im.getexif().get(274, 1) in (5, 6, 7, 8)  # 274: Orientation
        except Exception:  # noqa: BLE001 - broken EXIF: load_image keeps the pixels as stored too
            turned = False
    return (w, h) if turned else (h, w)


def _cut(files: list[Path], grids: list, channels: int, patch: int, path: Path) -> int:
    """Decode each image once and write its patches to `path` (.npy, atomically). Returns the count."""
    count = sum(len(ys) * len(xs) for ys, xs in grids)

    def write(fh) -> None:  # the .npy header, then the patches in C order, one image decoded at a time
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": (count, channels, patch, patch)}
        np.lib.format.write_array_header_1_0(fh, header)
        for f, (ys, xs) in zip(files, grids):
            if not ys or not xs:
                continue
            img = np.array(load_image(f, channels), dtype=np.uint8)
            img = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
            for y in ys:
                for x in xs:
                    fh.write(np.ascontiguousarray(img[:, y:y + patch, x:x + patch]).tobytes())

    atomic_write(path, write)
    return count


@DATASETS.register("hr_folder")
def build_hr_folder(*, path: str | None = None, split: str = "train", seed: int = 0, root: str | None = None,
                    download: str | None = None, test_path: str | None = None, test_download: str | None = None,
                    patch: int = 192, stride: int | None = None, resolution: int = 96, channels: int = 3,
                    flip: bool = True, on_bad_images: str = "fail") -> ImageDataset:
    """A folder of HR images cut into cached patches (train) or kept whole (test); see the module doc."""
    del seed
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: hr_folder has the splits train and test")
    if channels not in (1, 3):
        raise DataError(f"dataset.channels={channels} is not supported: set dataset.channels=1 or 3")
    check_policy(on_bad_images)
    patch, resolution = int(patch), int(resolution)
    stride = patch if stride is None else int(stride)
    if not 1 <= resolution <= patch or stride < 1:
        raise DataError(f"dataset.resolution={resolution} must be in 1..dataset.patch={patch} and dataset.stride "
                        "at least 1: the training crops are cut from the patches")
    if split == "train":
        base = _folder(path, download, root, "path")
        folder = base / "train" if (base / "train").is_dir() and (base / "test").is_dir() else base
    elif test_path or test_download:
        folder = base = _folder(test_path, test_download, root, "test_path")
    else:
        base = _folder(path, download, root, "path")
        folder = base / "test"
        if not ((base / "train").is_dir() and folder.is_dir()):
            raise DataError(f"{base} has no test split: set dataset.test_path=<folder of HR test images>, or give "
                            "ganzoo eval data=<folder>")
    files = find_images(folder)
    if not files:
        raise DataError(f"no images ({' '.join(sorted(IMAGE_EXTENSIONS))}) in {folder}: set dataset.path=<folder of "
                        "HR images>")
    files = keep_good_images(files, folder, on_bad_images)
    stats = [f.stat() for f in files]
    described = [[f.relative_to(folder).as_posix(), st.st_size] for f, st in zip(files, stats)]
    augment = Augment(crop=resolution if patch > resolution else None, flip=bool(flip))
    if split == "test":
        fp = fingerprint({"builder": "hr_folder", "split": split, "channels": channels, "files": described})
        info = DataInfo(name="hr_folder", channels=channels, resolution=resolution, size=len(files), fingerprint=fp)
        return HRImageFiles(info, files, folder, patch, augment)

    grids = [(grid_starts(h, patch, stride), grid_starts(w, patch, stride)) for h, w in map(_size, files)]
    small = [f for f, (ys, xs) in zip(files, grids) if not ys or not xs]
    if len(small) == len(files):
        raise DataError(f"every image in {folder} is smaller than dataset.patch={patch} px: lower dataset.patch")
    if small:
        warnings.warn(f"hr_folder: skipping {len(small)} image(s) smaller than dataset.patch={patch} px "
                      f"(first {small[0].name})", stacklevel=2)
    fp = fingerprint({"builder": "hr_folder", "split": split, "channels": channels, "patch": patch,
                      "stride": stride, "files": described})
    key = fingerprint({"v": CACHE_VERSION, "fp": fp, "folder": str(folder.resolve()),
                       "mtimes": [st.st_mtime_ns for st in stats]})
    cache = data_home(root) / "hr_folder" / f"{key[:20]}.npy"
    count = sum(len(ys) * len(xs) for ys, xs in grids)
    try:
        ok = tuple(np.load(cache, mmap_mode="r").shape) == (count, channels, patch, patch)
    except Exception:  # missing or corrupt: cut again
        ok = False
    if not ok:
        _cut(files, grids, channels, patch, cache)
    info = DataInfo(name="hr_folder", channels=channels, resolution=resolution, size=count, fingerprint=fp)
    return HRPatchDataset(info, cache, count, patch, augment, files, folder)

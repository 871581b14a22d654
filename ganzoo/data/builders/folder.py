"""`image_folder`: any folder of images (png, jpg, bmp, gif, webp, tif), optionally labeled by subfolder.

Layout:
    path/**/*.png                       unlabeled, everything is the "train" split
    path/train/**, path/test/**         both present: the two splits
    path/[train|test/]<class>/**        labeled=true: the first-level subfolder names the class

Files and folders whose name starts with "." are ignored (.git, .ipynb_checkpoints, macOS "._x.jpg").
Every file is fully decoded once at build time (`scan_images`, a thread pool): bad files fail the
build (on_bad_images=fail) or are dropped with one warning (on_bad_images=skip).

Items are decoded on access (`load_image`: consistent conversion of every mode to L/RGB), resized so
the shorter side is `load_size` (antialiased bicubic) and centre-cropped to load_size x load_size;
the loader then random-crops to `resolution` (when load_size > resolution) and flips. No file handle
is kept open between items, so the dataset is safe in DataLoader worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ganzoo.data.base import Augment, DataError, DataInfo, ImageDataset, fingerprint
from ganzoo.data.files.bad_images import check_policy, keep_good_images
from ganzoo.data.files.imagecheck import IMAGE_EXTENSIONS, is_image_file, load_image
from ganzoo.registry import DATASETS
from ganzoo.storage import data_home, resolve_data_path


def _hidden(name: str) -> bool:
    return name.startswith(".")


def find_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under `folder` (by extension, case-insensitive), hidden names skipped, sorted by
    their path relative to `folder` (so the order is the same on every machine)."""
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            found.extend(Path(dirpath, f) for f in filenames if not _hidden(f) and is_image_file(f))
    else:
        found = [p for p in folder.iterdir() if p.is_file() and not _hidden(p.name) and is_image_file(p.name)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _fit(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to `size` and centre-crop to size x size in one antialiased resample."""
    if img.size == (size, size):
        return img
    return ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


def _to_tensor(img: Image.Image) -> torch.Tensor:
    t = torch.from_numpy(np.array(img, dtype=np.uint8))  # a writable copy, [H, W] or [H, W, C]
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


class FolderImageDataset(ImageDataset):
    """Decodes one file per item. Holds only path strings (cheap to pickle to workers). No `tensors()`
    fast path on purpose: the loader then preloads through DataLoader worker processes."""

    def __init__(self, info: DataInfo, files: list[str], labels: list[int] | None, load_size: int,
                 augment: Augment):
        self.info, self.files, self.load_size, self.augment = info, files, load_size, augment
        self.labels = None if labels is None else torch.tensor(labels, dtype=torch.int64)
        self.item_size = load_size

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> torch.Tensor:
        img = load_image(self.files[i], self.info.channels, draft_size=self.load_size)
        return _to_tensor(_fit(img, self.load_size))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"image": self.load(i)}
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item


@DATASETS.register("image_folder")
def build_image_folder(*, path: str, split: str = "train", seed: int = 0, root: str | None = None,
                       channels: int = 3, resolution: int = 64, load_size: int | None = None,
                       flip: bool = True, labeled: bool = False, on_bad_images: str = "fail",
                       recursive: bool = True) -> ImageDataset:
    """A folder of images; see the module doc. `seed` is unused (the data is deterministic)."""
    del seed
    if path is None or str(path).strip() in ("", "???"):
        raise DataError("image_folder needs a folder: set dataset.path=<folder of images>")
    check_policy(on_bad_images)
    if channels not in (1, 3):
        raise DataError(f"dataset.channels={channels} is not supported: set dataset.channels=1 or 3")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: image_folder has the splits train and test")
    resolution = int(resolution)
    load_size = resolution if load_size is None else int(load_size)
    if resolution < 1 or load_size < resolution:
        raise DataError(f"dataset.load_size={load_size} is smaller than dataset.resolution={resolution}: "
                        "set dataset.load_size >= resolution (or null for = resolution)")

    base = resolve_data_path(str(path), root)
    if not base.is_dir():
        hint = "" if Path(os.path.expanduser(str(path))).is_absolute() else f" (nor under {data_home(root)})"
        what = "is not a folder" if base.exists() else "does not exist"
        raise DataError(f"image folder {base} {what}{hint}: set dataset.path=<folder of images>")

    has_splits = (base / "train").is_dir() and (base / "test").is_dir()
    if has_splits:
        folder = base / split
    elif split == "test":
        raise DataError(f"image folder {base} has no test split (no train/ and test/ subfolders; the whole "
                        "folder is the train split): use split=train, or add train/ and test/ subfolders")
    else:
        folder = base

    classes: list[str] = []
    if labeled:
        files, labels, classes = _labeled_files(base, folder, has_splits, recursive)
    else:
        files, labels = find_images(folder, recursive), None
    if not files:
        how = "" if recursive else " directly (dataset.recursive=false)"
        raise DataError(f"no images ({' '.join(sorted(IMAGE_EXTENSIONS))}) found{how} in {folder}: "
                        "set dataset.path=<folder of images>")

    good = keep_good_images(files, folder, on_bad_images)
    if labels is not None and len(good) < len(files):
        kept = set(good)
        labels = [label for p, label in zip(files, labels) if p in kept]
    files = good

    rel_files = [p.relative_to(folder).as_posix() for p in files]
    fp = fingerprint({
        "builder": "image_folder", "split": split, "channels": channels, "resolution": resolution,
        "load_size": load_size, "flip": flip, "labeled": labeled, "classes": classes,
        "files": [[r, p.stat().st_size] for r, p in zip(rel_files, files)],
    })
    info = DataInfo(
        name="image_folder", channels=channels, resolution=resolution,
        num_classes=len(classes) if labeled else 0, size=len(files),
        fields=("image", "label") if labeled else ("image",), fingerprint=fp,
    )
    augment = Augment(crop=resolution if load_size > resolution else None, flip=bool(flip))
    return FolderImageDataset(info, [str(p) for p in files], labels, load_size, augment)


def _class_dirs(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not _hidden(d.name))


def _labeled_files(base: Path, folder: Path, has_splits: bool,
                   recursive: bool) -> tuple[list[Path], list[int], list[str]]:
    """Files and class indices; the class list is the union over both splits (when there are splits)
    of the first-level subfolders holding images, so an index means the same class in train and test."""
    top = find_images(folder, recursive=False)
    if top:
        raise DataError(f"labeled=true but {len(top)} image(s) lie directly in {folder} (e.g. {top[0].name}), "
                        "not in a class subfolder: move them into one subfolder per class, "
                        "or set dataset.labeled=false")
    split_dirs = [base / "train", base / "test"] if has_splits else [folder]
    per_class: dict[str, list[Path]] = {}
    names: set[str] = set()
    for sd in split_dirs:
        for name in _class_dirs(sd):
            imgs = find_images(sd / name, recursive)
            if imgs:
                names.add(name)
                if sd == folder:
                    per_class[name] = imgs
    classes = sorted(names)
    index = {c: i for i, c in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for name in sorted(per_class):
        files.extend(per_class[name])
        labels.extend([index[name]] * len(per_class[name]))
    return files, labels, classes

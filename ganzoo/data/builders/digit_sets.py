"""svhn and usps: the digit sets of the domain-transfer papers (DTN: SVHN -> MNIST; CoGAN/UNIT: MNIST
<-> USPS), read from their published files, which ganzoo downloads and verifies itself.

The files are the manifest's data files (`ganzoo.data.fetch.manifest`, kind "file"): `svhn/train`,
`svhn/test`, `usps/train`, `usps/test`, in `data_home(root)/svhn/` and `.../usps/`. Each build checks
the file's SHA-256 (SVHN's is pinned from TFDS's checksum list; USPS publishes none, so the first
download records it and later ones are checked against that record) and puts the digest into the
dataset fingerprint. With `download=false` a missing file is a one-line error naming where to put it.

- SVHN "cropped digits" (format 2): `train_32x32.mat` / `test_32x32.mat`, MATLAB v5 files read with
  scipy.io.loadmat. scipy is an optional extra (`pip install 'ganzoo[svhn]'`), not a base dependency:
  only this set needs it, and a well-kept MAT reader beats one of our own. Label 10 means the digit 0
  (as torchvision). RGB 32 px; the `extra` split (531k images, 1.3 GB) is not offered.
- USPS: `usps.bz2` / `usps.t.bz2` from the LIBSVM collection (torchvision's source): bz2 libsvm text
  lines `<class 1..10> <index>:<value> ...`, 256 values in [-1, 1] per 16 x 16 grey image; class k is
  the digit k - 1, value v is the intensity round((v + 1) / 2 * 255) (torchvision truncates instead).
"""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np
import torch

from ganzoo.data.base import DataError, DataInfo, TensorImageDataset, fingerprint
from ganzoo.data.builders.torchvision_sets import _one_line, resize_uint8
from ganzoo.data.fetch import manifest
from ganzoo.data.fetch.download import prepare, recorded_sha256
from ganzoo.registry import DATASETS
from ganzoo.storage import data_home, sha256_file

SPLITS = ("train", "test")


def _file(key: str, split: str, root: str | None, download: bool) -> tuple[Path, str]:
    """(the verified file of `key/split`, its SHA-256), downloading it first when allowed."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: {key} has the splits {' and '.join(SPLITS)}")
    entry = manifest.get(f"{key}/{split}")
    home = data_home(root)
    target = home / entry.path
    if not download and not target.is_file():
        raise DataError(f"{key}: {target} is missing: set dataset.download=true, or place {entry.filename} "
                        f"(from {entry.url}) in {target.parent}, or set dataset.root=<folder containing {key}/>")
    try:
        outcome = prepare(entry.name, root)
    except OSError as e:  # a read-only data home (a shared copy): check the file without writing a lock or record
        if not target.is_file():
            raise DataError(f"{key}: cannot download into {target.parent} ({e.strerror or e}): set "
                            f"dataset.root=<a writable folder>, or place {entry.filename} there") from None
        return target, _verify_in_place(entry, home)
    return outcome.path, str(outcome.sha256)


def _verify_in_place(entry: manifest.Entry, home: Path) -> str:
    """The SHA-256 of the entry's file in `home`, checked against the pinned or recorded digest if any."""
    target = home / entry.path
    expected = entry.sha256 or recorded_sha256(entry, home)
    digest = sha256_file(target)
    if expected and digest != expected:
        raise DataError(f"{target} does not match the {'pinned' if entry.sha256 else 'recorded'} sha256 of "
                        f"{entry.name}: expected {expected}, got {digest}; replace it with the file from {entry.url}")
    return digest


def _dataset(key: str, split: str, images: torch.Tensor, labels: torch.Tensor, digest: str,
             resolution: int) -> TensorImageDataset:
    native = int(images.shape[-1])
    images = resize_uint8(images, resolution)
    info = DataInfo(name=key, channels=int(images.shape[1]), resolution=resolution, num_classes=10,
                    size=int(images.shape[0]), fields=("image", "label"),
                    fingerprint=fingerprint({"builder": key, "split": split, "resolution": resolution,
                                             "native": native, "size": int(images.shape[0]), "sha256": digest}))
    return TensorImageDataset(info, images, labels)


def _check_resolution(resolution: int) -> int:
    if int(resolution) < 1:
        raise DataError(f"dataset.resolution={resolution} must be positive")
    return int(resolution)


def _loadmat():
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError("svhn: reading its .mat files needs scipy: pip install 'ganzoo[svhn]'") from None
    return loadmat


def read_svhn(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, 3, 32, 32] and int64 labels [N] (0-9) of an SVHN cropped-digits .mat file."""
    loadmat = _loadmat()
    try:
        mat = loadmat(str(path), variable_names=("X", "y"))
        x, y = mat["X"], mat["y"]
    except Exception as e:  # noqa: BLE001 - scipy raises ValueError/KeyError/OSError/... on a bad file
        raise DataError(f"svhn: cannot read {path} ({_one_line(e)}): delete it and set dataset.download=true") from e
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8 or y.size != x.shape[3]:
        raise DataError(f"svhn: {path} holds X {x.shape} {x.dtype} and y {y.shape}, not SVHN's [32, 32, 3, N] "
                        f"uint8 images with N labels: delete it and set dataset.download=true")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))  # [32, 32, 3, N] -> [N, 3, 32, 32]
    labels = torch.from_numpy(y.reshape(-1).astype(np.int64) % 10)  # 10 is the digit 0
    return images, labels


def read_usps(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, 1, 16, 16] and int64 labels [N] (0-9) of a USPS libsvm file (bz2 text)."""
    rows, labels, n = [], [], 0
    try:
        with bz2.open(path, "rt", encoding="ascii") as f:
            for line in f:
                n += 1  # the line number, for the message
                parts = line.split()
                if not parts:
                    continue
                row = np.zeros(256, dtype=np.float32)  # libsvm: an absent index is 0 (mid-grey here)
                for pair in parts[1:]:
                    index, value = pair.split(":")
                    row[int(index) - 1] = float(value)
                labels.append(int(float(parts[0])) - 1)
                rows.append(row)
    except (OSError, EOFError, ValueError, IndexError, UnicodeDecodeError) as e:
        where = f" line {n}" if n else ""
        raise DataError(f"usps: cannot read {path}{where} ({_one_line(e)}): delete it and set "
                        f"dataset.download=true") from None
    if not rows or min(labels) < 0 or max(labels) > 9:
        raise DataError(f"usps: {path} holds {len(rows)} images with classes outside 1-10: not a USPS file; "
                        f"delete it and set dataset.download=true")
    values = np.stack(rows).reshape(-1, 1, 16, 16)
    images = np.clip(np.rint((values + 1) / 2 * 255), 0, 255).astype(np.uint8)
    return torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64)


@DATASETS.register("svhn")
def build_svhn(*, split: str = "train", seed: int = 0, root: str | None = None, download: bool = True,
               resolution: int = 32) -> TensorImageDataset:
    """SVHN cropped digits, 3 channels, 10 classes (native 32 px); needs scipy (ganzoo[svhn])."""
    del seed
    resolution = _check_resolution(resolution)
    _loadmat()  # before a 182 MB download that could not be read
    path, digest = _file("svhn", split, root, download)
    return _dataset("svhn", split, *read_svhn(path), digest, resolution)


@DATASETS.register("usps")
def build_usps(*, split: str = "train", seed: int = 0, root: str | None = None, download: bool = True,
               resolution: int = 16) -> TensorImageDataset:
    """USPS handwritten digits, 1 channel, 10 classes (native 16 px)."""
    del seed
    resolution = _check_resolution(resolution)
    path, digest = _file("usps", split, root, download)
    return _dataset("usps", split, *read_usps(path), digest, resolution)

"""image_folder and the torchvision sets (mnist, fashion_mnist, cifar10), offline, on files made here."""

from __future__ import annotations

import inspect
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from ganzoo.data.base import Augment, DataError
from ganzoo.data.builders.folder import build_image_folder, find_images
from ganzoo.data.builders.torchvision_sets import build_cifar10, build_fashion_mnist, build_mnist
from ganzoo.registry import DATASETS

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def _img(path: Path, w: int = 20, h: int = 16, color=(128, 64, 32), mode: str = "RGB", fmt: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (w, h), color).save(path, fmt)
    return path


# -- image_folder ------------------------------------------------------------------------------------


def test_registered_and_configs_match_builders():
    for name in ("image_folder", "mnist", "fashion_mnist", "cifar10"):
        cfg = OmegaConf.load(CONF / f"{name}.yaml")
        first = (CONF / f"{name}.yaml").read_text().splitlines()[0]
        assert first.startswith("# ") and len(first) > 10
        assert cfg.name == name
        builder = DATASETS.get(name)
        params = set(inspect.signature(builder).parameters) - {"split", "seed"}
        assert set(cfg) - {"name"} == params, name
    assert OmegaConf.is_missing(OmegaConf.load(CONF / "image_folder.yaml"), "path")


def test_recursive_discovery_sorted_and_filtered(tmp_path):
    _img(tmp_path / "b.png")
    _img(tmp_path / "A.JPG", fmt="JPEG")
    _img(tmp_path / "sub" / "deeper" / "c.bmp")
    _img(tmp_path / "sub" / "a.webp")
    _img(tmp_path / ".hidden" / "x.png")
    _img(tmp_path / "._mac.png")
    (tmp_path / "notes.txt").write_text("not an image")
    rel = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert rel == ["A.JPG", "b.png", "sub/a.webp", "sub/deeper/c.bmp"]
    ds = build_image_folder(path=str(tmp_path), resolution=8)
    assert len(ds) == 4 and ds.info.size == 4
    assert [Path(f).relative_to(tmp_path).as_posix() for f in ds.files] == rel
    flat = build_image_folder(path=str(tmp_path), resolution=8, recursive=False)
    assert len(flat) == 2


def test_items_size_crop_flip_and_augment(tmp_path):
    _img(tmp_path / "one.png", 40, 30)
    ds = build_image_folder(path=str(tmp_path), resolution=16)
    assert ds.item_size == 16 and ds.augment == Augment(crop=None, flip=True)
    item = ds[0]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 16, 16) and "label" not in item
    assert item["image"][:, 8, 8].tolist() == [128, 64, 32]
    ds = build_image_folder(path=str(tmp_path), resolution=16, load_size=20, flip=False, channels=1)
    assert ds.item_size == 20 and ds.augment == Augment(crop=16, flip=False)
    assert ds[0]["image"].shape == (1, 20, 20)
    assert ds.info.resolution == 16 and ds.info.channels == 1 and ds.info.fields == ("image",)
    assert ds.nbytes() == 400
    with pytest.raises(DataError, match="load_size"):
        build_image_folder(path=str(tmp_path), resolution=16, load_size=8)


def test_resize_shorter_side_then_centre_crop(tmp_path):
    a = np.zeros((20, 60, 3), dtype=np.uint8)  # 60 wide, 20 high: left third red, middle green, right blue
    a[:, :20, 0] = 255
    a[:, 20:40, 1] = 255
    a[:, 40:, 2] = 255
    Image.fromarray(a).save(tmp_path / "wide.png")
    img = build_image_folder(path=str(tmp_path), resolution=10)[0]["image"]
    assert img.shape == (3, 10, 10)
    assert (img[1] > 200).all() and (img[0] < 60).all() and (img[2] < 60).all()  # only the middle kept


def test_modes_in_folder_give_same_pixels(tmp_path):
    _img(tmp_path / "l.png", color=128, mode="L")
    _img(tmp_path / "rgb.jpg", color=(128, 128, 128), fmt="JPEG")
    _img(tmp_path / "cmyk.tif", color=(0, 0, 0, 127), mode="CMYK")
    Image.fromarray(np.full((16, 20), 128 * 257, dtype=np.uint16)).save(tmp_path / "g16.png")
    for channels in (1, 3):
        ds = build_image_folder(path=str(tmp_path), resolution=8, channels=channels)
        x = ds.tensors()["image"].int()
        assert x.shape == (4, channels, 8, 8)
        assert x.min() >= 127 and x.max() <= 129


def test_labeled_subfolders(tmp_path):
    for cls, n in (("cat", 2), ("dog", 3), ("ant", 1)):
        for i in range(n):
            _img(tmp_path / cls / f"{i}.png", color=(10 * i, 0, 0))
    _img(tmp_path / "dog" / "nested" / "x.png")
    (tmp_path / "empty").mkdir()
    ds = build_image_folder(path=str(tmp_path), resolution=8, labeled=True)
    assert ds.info.num_classes == 3 and ds.info.fields == ("image", "label")
    assert ds.labels.tolist() == [0, 1, 1, 2, 2, 2, 2]  # ant, cat, dog (with dog/nested)
    assert ds[1]["label"].dtype == torch.int64 and int(ds[1]["label"]) == 1
    t = ds.tensors()
    assert t["image"].shape == (7, 3, 8, 8) and t["label"].tolist() == ds.labels.tolist()
    assert build_image_folder(path=str(tmp_path), resolution=8, labeled=True, recursive=False).info.size == 6
    _img(tmp_path / "stray.png")
    with pytest.raises(DataError, match="stray.png.*labeled=false"):
        build_image_folder(path=str(tmp_path), resolution=8, labeled=True)


def test_splits(tmp_path):
    flat = tmp_path / "flat"
    _img(flat / "a.png")
    assert len(build_image_folder(path=str(flat), resolution=8, split="train")) == 1
    with pytest.raises(DataError, match="no test split"):
        build_image_folder(path=str(flat), resolution=8, split="test")

    both = tmp_path / "both"
    for split, classes in (("train", ("x", "y", "z")), ("test", ("x", "z"))):
        for c in classes:
            _img(both / split / c / "0.png")
            _img(both / split / c / "1.png")
    tr = build_image_folder(path=str(both), resolution=8, split="train", labeled=True)
    te = build_image_folder(path=str(both), resolution=8, split="test", labeled=True)
    assert len(tr) == 6 and len(te) == 4
    assert tr.info.num_classes == te.info.num_classes == 3
    assert te.labels.tolist() == [0, 0, 2, 2]  # "z" is class 2 in both splits
    assert tr.info.fingerprint != te.info.fingerprint
    with pytest.raises(DataError, match="split"):
        build_image_folder(path=str(both), resolution=8, split="val")


def test_bad_images_fail_or_skip(tmp_path):
    _img(tmp_path / "good1.png")
    _img(tmp_path / "good2.jpg", fmt="JPEG")
    (tmp_path / "broken.png").write_bytes(b"")
    (tmp_path / "z" / "text.jpg").parent.mkdir()
    (tmp_path / "z" / "text.jpg").write_text("hello")
    with pytest.raises(DataError) as err:
        build_image_folder(path=str(tmp_path), resolution=8)
    msg = str(err.value)
    assert "2 bad" in msg and "broken.png" in msg and "zero-byte file" in msg
    assert "dataset.on_bad_images=skip" in msg and "\n" not in msg
    with pytest.warns(UserWarning, match="2 bad") as rec:
        ds = build_image_folder(path=str(tmp_path), resolution=8, on_bad_images="skip")
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    assert len(ds) == 2 and [Path(f).name for f in ds.files] == ["good1.png", "good2.jpg"]
    with pytest.raises(DataError, match="on_bad_images"):
        build_image_folder(path=str(tmp_path), resolution=8, on_bad_images="ignore")


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope.*dataset\.path"):
        build_image_folder(path=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images.*empty"):
        build_image_folder(path=str(tmp_path / "empty"))


def test_fingerprint_tracks_files_and_params(tmp_path):
    _img(tmp_path / "a.png")
    fp1 = build_image_folder(path=str(tmp_path), resolution=8).info.fingerprint
    assert build_image_folder(path=str(tmp_path), resolution=8).info.fingerprint == fp1
    assert build_image_folder(path=str(tmp_path), resolution=8, channels=1).info.fingerprint != fp1
    _img(tmp_path / "b.png")
    assert build_image_folder(path=str(tmp_path), resolution=8).info.fingerprint != fp1


def test_pickles_for_worker_processes(tmp_path):
    _img(tmp_path / "c" / "a.png")
    _img(tmp_path / "c" / "b.png", color=(1, 2, 3))
    ds = build_image_folder(path=str(tmp_path), resolution=8, labeled=True)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[1]["image"], ds[1]["image"]) and int(clone[1]["label"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ResourceWarning: files are closed after each item
        for i in range(len(ds)):
            ds[i]


# -- torchvision sets ----------------------------------------------------------------------------------


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """MNIST's idx format: big-endian int32 magic (2051 images / 2049 labels), dims, then uint8 data."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 2051, n, h, w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n) + labels.tobytes())


def _fake_mnist(root: Path, cls_dir: str = "MNIST", n_train: int = 6, n_test: int = 4):
    rng = np.random.default_rng(0)
    raw = root / cls_dir / "raw"
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(raw, prefix, images, labels)
        data[prefix] = (images, labels)
    return data


def test_mnist_from_local_idx_files(tmp_path):
    data = _fake_mnist(tmp_path)
    ds = build_mnist(root=str(tmp_path), download=False)
    assert len(ds) == 6 and ds.item_size == 28
    assert ds.info.channels == 1 and ds.info.num_classes == 10 and ds.info.fields == ("image", "label")
    assert ds.augment == Augment(crop=None, flip=False)
    t = ds.tensors()
    assert t["image"].dtype == torch.uint8 and t["image"].shape == (6, 1, 28, 28)
    assert np.array_equal(t["image"][:, 0].numpy(), data["train"][0])
    assert t["label"].dtype == torch.int64 and t["label"].tolist() == data["train"][1].tolist()
    te = build_mnist(root=str(tmp_path), download=False, split="test")
    assert len(te) == 4 and te.info.fingerprint != ds.info.fingerprint
    assert build_mnist(root=str(tmp_path), download=False).info.fingerprint == ds.info.fingerprint


def test_mnist_resized_once(tmp_path):
    _fake_mnist(tmp_path)
    ds = build_mnist(root=str(tmp_path), download=False, resolution=32)
    assert ds.images.shape == (6, 1, 32, 32) and ds.item_size == 32 and ds.info.resolution == 32
    assert ds.images.dtype == torch.uint8
    assert build_mnist(root=str(tmp_path), download=False, resolution=16).images.shape == (6, 1, 16, 16)
    assert ds.info.fingerprint != build_mnist(root=str(tmp_path), download=False).info.fingerprint


def test_fashion_mnist_layout(tmp_path):
    _fake_mnist(tmp_path, "FashionMNIST", n_train=3, n_test=2)
    ds = build_fashion_mnist(root=str(tmp_path), download=False)
    assert len(ds) == 3 and ds.info.name == "fashion_mnist" and ds.info.num_classes == 10


def test_mnist_missing_files_name_the_fix(tmp_path):
    with pytest.raises(DataError) as err:
        build_mnist(root=str(tmp_path), download=False)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg
    assert "dataset.download=true" in msg and "dataset.root=" in msg and "\n" not in msg
    _fake_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        build_mnist(root=str(tmp_path), download=False)


def test_cifar10_missing_files_name_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*dataset\.download=true"):
        build_cifar10(root=str(tmp_path), download=False)

"""Two-domain data: `aligned` / `unaligned` folders with each preprocessing mode, pairs under crop and
flip, unaligned B draws and exact resume, grey/RGB channels, errors; the built-in digit sets."""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from ganzoo.data.base import DataError
from ganzoo.data.builders.digits_translation import build_digits_pairs, build_digits_unpaired, edge_map
from ganzoo.data.builders.translation_folders import build_aligned, build_unaligned
from ganzoo.data.loader import BatchStream
from ganzoo.registry import DATASETS

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
CPU = torch.device("cpu")
STANDARD = ["horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo", "cezanne2photo",
            "ukiyoe2photo", "vangogh2photo", "iphone2dslr_flower", "facades_unpaired", "maps_unpaired",
            "facades", "maps", "edges2shoes", "edges2handbags", "night2day"]


def _noise(seed: int, w: int, h: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _aligned_folder(root: Path, split: str = "train", n: int = 6, w: int = 24, h: int = 24, fmt: str = "png",
                    sub: str = "") -> Path:
    """A|B images whose B half is a copy of the A half (so a pair is recognisable after crop/flip)."""
    folder = root / split / sub
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = _noise(hash((split, sub, i)) % 2**32, w, h)
        Image.fromarray(np.concatenate([a, a], axis=1)).save(folder / f"{i:03d}.{fmt}")
    return root


def _domain(folder: Path, n: int, base: int, w: int = 20, h: int = 20) -> None:
    """n images, each a distinct left-to-right ramp (so flips are visible) offset by its id."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ramp = np.tile(np.arange(w, dtype=np.uint8)[None, :, None] * 3, (h, 1, 3))
        ramp[..., 0] = base + i
        Image.fromarray(ramp).save(folder / f"{i:02d}.png")


def _unaligned_folder(root: Path, na: int = 5, nb: int = 3, **kw) -> Path:
    for split in ("train", "test"):
        _domain(root / f"{split}A", na, 0, **kw)
        _domain(root / f"{split}B", nb, 100, **kw)
    return root


def _batches(ds, n: int, batch_size: int = 2, seed: int = 0, **kw) -> list[dict]:
    s = BatchStream(ds, batch_size=batch_size, seed=seed, device=CPU, **kw)
    return [next(s) for _ in range(n)]


def _same(xs: list[dict], ys: list[dict]) -> bool:
    return all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(xs, ys))


# -- configs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["aligned", "unaligned", "digits_pairs", "digits_unpaired", *STANDARD])
def test_configs_match_builders(name):
    path = CONF / f"{name}.yaml"
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and len(first) > 20
    cfg = OmegaConf.load(path)
    builder = DATASETS.get(cfg.name)
    assert set(cfg) - {"name"} == set(inspect.signature(builder).parameters) - {"split", "seed"}, name
    if name in STANDARD:
        assert cfg.download == name and cfg.root is None
        assert cfg.name == ("aligned" if name in ("facades", "maps", "edges2shoes", "edges2handbags", "night2day")
                            else "unaligned")
    if name in ("aligned", "unaligned"):
        assert OmegaConf.is_missing(cfg, "root") and cfg.download is None


# -- aligned -----------------------------------------------------------------------------------------


def test_aligned_pairs_stay_pairs_under_crop_and_flip(tmp_path):
    _aligned_folder(tmp_path, n=6, w=24, h=24)
    ds = build_aligned(root=str(tmp_path), load_size=20, crop_size=16)
    assert ds.info.aligned and ds.info.channels == ds.info.channels_b == 3 and ds.info.fields == ("A", "B")
    assert len(ds) == 6 and ds.item_size == 20 and ds.info.resolution == 16 and ds.nbytes() == 6 * 6 * 20 * 20
    item = ds[0]
    assert item["A"].dtype == torch.uint8 and item["A"].shape == item["B"].shape == (3, 20, 20)
    assert torch.equal(item["A"], item["B"])
    pre = _batches(ds, 9, preload=True)
    for b in pre:
        assert b["A"].shape == (2, 3, 16, 16) and torch.equal(b["A"], b["B"])
    # the crops and flips really vary (else "pairs stay pairs" would be trivially true)
    flat = torch.cat([b["A"] for b in pre]).flatten(1)
    assert len({tuple(r[:8].tolist()) for r in flat}) > 6
    assert _same(pre, _batches(ds, 9, preload=False))  # the worker path reads the same batches
    assert _same(pre, _batches(ds, 9, preload=False, num_workers=1))


def test_aligned_preprocess_modes(tmp_path):
    sq = _aligned_folder(tmp_path / "sq", n=2, w=23, h=23)  # odd width: B = columns [23, 46) of 47
    for mode, kw, item, res in [
        ("resize_and_crop", {"load_size": 20, "crop_size": 16}, 20, 16),
        ("crop", {"crop_size": 16}, 23, 16),
        ("scale_width", {"load_size": 16, "crop_size": 8}, 16, 16),
        ("scale_width_and_crop", {"load_size": 20, "crop_size": 16}, 20, 16),
        ("none", {}, 24, 24),  # 23 rounded to a multiple of 4
    ]:
        ds = build_aligned(root=str(sq), preprocess=mode, **kw)
        assert ds.item_size == item and ds.info.resolution == res, mode
        assert ds[1]["A"].shape == (3, item, item) and torch.equal(ds[1]["A"], ds[1]["B"]), mode
        b = _batches(ds, 2)[0]
        assert b["A"].shape == (2, 3, res, res) and torch.equal(b["A"], b["B"]), mode
    # scale_width keeps the aspect: 24 wide x 36 high -> 20 x 30 items, square crops from them
    tall = _aligned_folder(tmp_path / "tall", n=3, w=24, h=36)
    ds = build_aligned(root=str(tall), preprocess="scale_width_and_crop", load_size=20, crop_size=16)
    assert ds.item_size == (30, 20) and ds[0]["A"].shape == (3, 30, 20)
    for b in _batches(ds, 4):
        assert b["A"].shape == (2, 3, 16, 16) and torch.equal(b["A"], b["B"])
    with pytest.raises(DataError, match="not square.*scale_width_and_crop"):
        build_aligned(root=str(tall), preprocess="scale_width", load_size=20, crop_size=16)
    with pytest.raises(DataError, match="crop_size"):
        build_aligned(root=str(sq), preprocess="crop", crop_size=32)
    with pytest.raises(DataError, match="load_size=8 is smaller"):
        build_aligned(root=str(sq), load_size=8, crop_size=16)
    with pytest.raises(DataError, match="preprocess='zoom' is not one of"):
        build_aligned(root=str(sq), preprocess="zoom")


def test_aligned_sizes_must_agree_without_resize(tmp_path):
    _aligned_folder(tmp_path, n=2, w=24, h=24)
    _aligned_folder(tmp_path, n=1, w=30, h=24, sub="other")
    assert len(build_aligned(root=str(tmp_path), load_size=16, crop_size=16)) == 3  # resized: fine
    with pytest.raises(DataError, match="set dataset.preprocess=resize_and_crop"):
        build_aligned(root=str(tmp_path), preprocess="crop", crop_size=16)


def test_aligned_channels_and_jpeg(tmp_path):
    _aligned_folder(tmp_path, n=2, w=16, h=16, fmt="jpg")
    ds = build_aligned(root=str(tmp_path), load_size=16, crop_size=16, input_nc=1, output_nc=3)
    assert ds.info.channels == 1 and ds.info.channels_b == 3 and ds.nbytes() == 2 * 4 * 16 * 16
    it = ds[0]
    assert it["A"].shape == (1, 16, 16) and it["B"].shape == (3, 16, 16)
    rgb = Image.fromarray(it["B"].permute(1, 2, 0).numpy())  # A is B's ITU-R 601-2 luma, up to JPEG noise
    assert (torch.from_numpy(np.array(rgb.convert("L"))).int() - it["A"][0].int()).abs().float().mean() < 8
    b = _batches(ds, 1)[0]
    assert b["A"].shape == (2, 1, 16, 16) and b["B"].shape == (2, 3, 16, 16)
    with pytest.raises(DataError, match="input_nc=2 is not supported"):
        build_aligned(root=str(tmp_path), input_nc=2)


def test_aligned_splits_and_val_fallback(tmp_path):
    _aligned_folder(tmp_path, "train", n=3)
    _aligned_folder(tmp_path, "val", n=2)
    assert len(build_aligned(root=str(tmp_path), split="test", load_size=16, crop_size=16)) == 2  # no test/: val/
    _aligned_folder(tmp_path, "test", n=1)
    assert len(build_aligned(root=str(tmp_path), split="test", load_size=16, crop_size=16)) == 1
    assert len(build_aligned(root=str(tmp_path), split="val", load_size=16, crop_size=16)) == 2
    with pytest.raises(DataError, match="unknown split 'dev'"):
        build_aligned(root=str(tmp_path), split="dev")


def test_aligned_errors_are_one_line(tmp_path):
    for kwargs, pattern in [(dict(root=str(tmp_path / "nope")), "nope does not exist: set dataset.root="),
                            (dict(root=None), "no dataset.root given: set dataset.root="),
                            (dict(root=str(tmp_path)), "has no train/")]:
        with pytest.raises(DataError, match=pattern) as e:
            build_aligned(**kwargs)
        assert "\n" not in str(e.value)
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no images"):
        build_aligned(root=str(tmp_path))
    _aligned_folder(tmp_path, "train", n=2)
    (tmp_path / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match="1 bad image file.*on_bad_images=skip"):
        build_aligned(root=str(tmp_path))
    with pytest.warns(UserWarning, match="skipping 1 bad"):
        assert len(build_aligned(root=str(tmp_path), on_bad_images="skip", load_size=16, crop_size=16)) == 2


def test_download_hook_is_used_when_root_has_no_data(tmp_path, monkeypatch):
    calls = []
    data = tmp_path / "fetched"

    def ensure(name, root=None):
        calls.append((name, root))
        _aligned_folder(data / "facades", n=2)  # the archive's own top folder
        return data

    monkeypatch.setitem(sys.modules, "ganzoo.data.fetch.download", types.SimpleNamespace(ensure=ensure))
    ds = build_aligned(root=None, download="facades", load_size=16, crop_size=16)
    assert len(ds) == 2 and ds.info.name == "facades" and calls == [("facades", None)]
    here = _aligned_folder(tmp_path / "mine", n=3)
    assert len(build_aligned(root=str(here), download="facades", load_size=16, crop_size=16)) == 3
    assert len(calls) == 1  # root had the data: no download


# -- unaligned ---------------------------------------------------------------------------------------


def test_unaligned_items_and_independent_b(tmp_path):
    _unaligned_folder(tmp_path, na=5, nb=3)
    ds = build_unaligned(root=str(tmp_path), load_size=20, crop_size=16)
    assert not ds.info.aligned and len(ds) == 5 and ds.size_a == 5 and ds.size_b == 3
    assert ds[4]["B"][0, 0, 0] == 100 + 4 % 3 and ds[(1, 2)]["A"][0, 0, 0] == 1 and ds[(1, 2)]["B"][0, 0, 0] == 102
    s = BatchStream(ds, batch_size=1, seed=3, device=CPU)
    seen_b, a_flip_ne_b_flip = [], 0
    for _ in range(5 * 8):  # 8 epochs of 5 positions
        b = next(s)
        a_id = round((b["A"][0, 0, 0, 0].item() + 1) * 127.5)
        b_id = round((b["B"][0, 0, 0, 0].item() + 1) * 127.5) - 100
        assert 0 <= a_id < 5 and 0 <= b_id < 3
        seen_b.append(b_id)
        a_up = b["A"][0, 1, 0, -1] > b["A"][0, 1, 0, 0]  # the ramp rises left to right unless flipped
        b_up = b["B"][0, 1, 0, -1] > b["B"][0, 1, 0, 0]
        a_flip_ne_b_flip += int(a_up != b_up)
    assert set(seen_b) == {0, 1, 2} and 0 < a_flip_ne_b_flip < 40  # independent flips
    for e in range(8):  # each epoch's B draws go through the B domain as permutations
        assert sorted(seen_b[e * 5:e * 5 + 3]) == [0, 1, 2]


def test_unaligned_resume_is_exact_with_preload_and_workers(tmp_path):
    _unaligned_folder(tmp_path, na=7, nb=4)
    ds = build_unaligned(root=str(tmp_path), load_size=20, crop_size=16)
    full = _batches(ds, 10, batch_size=2, seed=5, preload=True)
    for kw in ({"preload": True}, {"preload": False}, {"preload": False, "num_workers": 1}):
        s = BatchStream(ds, batch_size=2, seed=5, device=CPU, **kw)
        head = [next(s) for _ in range(4)]
        state = s.state()
        resumed = BatchStream(ds, batch_size=2, seed=5, device=CPU, **kw)
        resumed.load_state(state)
        assert _same(full, head + [next(resumed) for _ in range(6)]), kw
    other = _batches(ds, 10, batch_size=2, seed=6)
    assert not _same(full, other)


def test_unaligned_grey_and_modes(tmp_path):
    _unaligned_folder(tmp_path, na=2, nb=2, w=24, h=20)
    ds = build_unaligned(root=str(tmp_path), input_nc=1, output_nc=1, preprocess="crop", crop_size=16)
    assert ds.item_size == (20, 24) and ds[0]["A"].shape == (1, 20, 24) and ds.info.resolution == 16
    b = _batches(ds, 2)[0]
    assert b["A"].shape == b["B"].shape == (2, 1, 16, 16)
    with pytest.raises(DataError, match="trains on the whole 24x20 image, which is not square"):
        build_unaligned(root=str(tmp_path), split="test", preprocess="none")


def test_unaligned_errors_are_one_line(tmp_path):
    _domain(tmp_path / "trainA", 2, 0)
    with pytest.raises(DataError, match="missing does not exist: set dataset.root=<folder with trainA/") as e:
        build_unaligned(root=str(tmp_path / "missing"))
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="has no trainA/, trainB/, testA/, testB/"):
        build_unaligned(root=str(tmp_path / "trainA"))
    with pytest.raises(DataError, match=r"trainB does not exist: an unaligned dataset has trainA/ and trainB/"):
        build_unaligned(root=str(tmp_path))
    _domain(tmp_path / "trainB", 2, 100)
    with pytest.raises(DataError, match="testA does not exist"):
        build_unaligned(root=str(tmp_path), split="test")
    with pytest.raises(DataError, match="unknown split 'val'"):
        build_unaligned(root=str(tmp_path), split="val")
    assert len(build_unaligned(root=str(tmp_path), load_size=16, crop_size=16)) == 2


def test_fingerprint_tracks_files_and_args(tmp_path):
    _unaligned_folder(tmp_path, na=2, nb=2)
    fp = build_unaligned(root=str(tmp_path), load_size=16, crop_size=16).info.fingerprint
    assert fp == build_unaligned(root=str(tmp_path), load_size=16, crop_size=16).info.fingerprint
    assert fp != build_unaligned(root=str(tmp_path), load_size=18, crop_size=16).info.fingerprint
    _domain(tmp_path / "trainB" / "more", 1, 50)
    assert fp != build_unaligned(root=str(tmp_path), load_size=16, crop_size=16).info.fingerprint


# -- built-in digit sets -----------------------------------------------------------------------------


def test_digits_pairs():
    ds = build_digits_pairs(num_train=40, num_test=20)
    assert ds.info.aligned and ds.info.fields == ("A", "B", "label") and ds.info.num_classes == 10
    assert len(ds) == 40 and ds.item_size == 32 and ds.info.resolution == 32
    it = ds[3]
    assert it["A"].shape == it["B"].shape == (1, 32, 32) and it["label"].dtype == torch.int64
    assert set(ds.a.unique().tolist()) <= {0, 255}  # binary edge maps
    assert torch.equal(ds.a, edge_map(ds.b))  # A is the edge map of its own B
    assert ds.b[:, :, :2].max() == 0 and ds.b[:, :, :, -2:].max() == 0  # the 28 px digit, padded
    assert 0.03 < (ds.a > 0).float().mean() < 0.4
    test = build_digits_pairs(split="test", num_train=40, num_test=20)
    assert len(test) == 20 and test.info.fingerprint != ds.info.fingerprint
    big = build_digits_pairs(num_train=40, resolution=64)
    assert big.a.shape == (40, 1, 64, 64) and torch.equal(big.label_a, ds.label_a)
    b = _batches(ds, 2, batch_size=8)[1]
    assert b["A"].shape == (8, 1, 32, 32) and b["label"].shape == (8,)
    with pytest.raises(DataError, match="source='svhn' is not one of digits, mnist"):
        build_digits_pairs(source="svhn")


def test_digits_unpaired_negative_domain():
    edges = build_digits_unpaired(num_train=40, num_test=20)
    neg = build_digits_unpaired(num_train=40, num_test=20, domain="negative")
    assert edges.info.domain_map == "edges" and neg.info.domain_map == "negative"
    assert torch.equal(neg.a, edges.a) and torch.equal(neg.b, 255 - build_digits_pairs(num_train=40).b[20:])
    assert neg.info.fingerprint != edges.info.fingerprint
    with pytest.raises(DataError, match="dataset.domain='blur' is not one of edges, negative"):
        build_digits_unpaired(num_train=40, domain="blur")


def test_digits_unpaired_halves_are_disjoint():
    ds = build_digits_unpaired(num_train=41, num_test=20)
    pairs = build_digits_pairs(num_train=41, num_test=20)  # the same 41 digits
    assert not ds.info.aligned and ds.info.fields == ("A", "B", "label", "label_b")
    assert ds.size_a == 20 and ds.size_b == 21 and len(ds) == 21
    assert torch.equal(ds.a, pairs.b[:20]) and torch.equal(ds.b, pairs.a[20:])  # digits | edges of the rest
    assert torch.equal(ds.label_a, pairs.label_a[:20]) and torch.equal(ds.label_b, pairs.label_a[20:])
    a_edges = {bytes(x.flatten().tolist()) for x in edge_map(ds.a)}
    assert not a_edges & {bytes(x.flatten().tolist()) for x in ds.b}  # no B is the edge map of an A
    it = ds[(3, 7)]
    assert torch.equal(it["A"], ds.a[3]) and torch.equal(it["B"], ds.b[7]) and it["label_b"] == ds.label_b[7]
    t = ds.tensors()
    assert t["A"].shape[0] == t["B"].shape[0] == 21 and torch.equal(t["A"][20], ds.a[0])
    s = BatchStream(ds, batch_size=7, seed=0, device=CPU)
    bs = [next(s) for _ in range(6)]
    assert {k for k in bs[0]} == {"A", "B", "label", "label_b"}
    for b in bs:  # each B batch row is a B item with its own label
        for x, y in zip(b["B"], b["label_b"]):
            hits = [i for i in range(21) if torch.equal(((x + 1) * 127.5).round().to(torch.uint8), ds.b[i])]
            assert hits and any(ds.label_b[i] == y for i in hits)

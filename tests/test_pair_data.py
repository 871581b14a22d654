"""The `pair` dataset (two registered datasets as the domains of an unpaired set) and the `svhn` / `usps`
digit sets: shapes, channels and sizes, labels, disjoint halves and the recorded domain map, the
fingerprint, the exact resume of the stream, one-line errors; the svhn/usps files in their real
formats (USPS bz2 libsvm text, SVHN MATLAB .mat when scipy is there), their verification and their
download from a local HTTP server; a 2-step `ganzoo train model=cyclegan dataset=pair` on the built-in
digits."""

from __future__ import annotations

import bz2
import hashlib
import inspect
import json
import struct
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from ganzoo.build import build_dataset
from ganzoo.data.base import DataError
from ganzoo.data.builders.digit_sets import build_svhn, build_usps
from ganzoo.data.builders.pair import LUMA, build_pair
from ganzoo.data.domains import edge_map, negative
from ganzoo.data.fetch import download, manifest
from ganzoo.data.loader import BatchStream
from ganzoo.registry import DATASETS

from .conftest import invoke, local_http_server, tiny_model_overrides

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
CPU = torch.device("cpu")
SMALL = {"num_train": 64, "num_test": 16}  # the built-in digits, small


def _digits_pair(**kw):
    return build_pair(**{"A": "digits", "B": "digits", "A_args": SMALL, "B_args": SMALL, **kw})


def _batches(ds, n: int, batch_size: int = 4, seed: int = 0) -> list[dict]:
    s = BatchStream(ds, batch_size=batch_size, seed=seed, device=CPU)
    return [next(s) for _ in range(n)]


def _same(xs: list[dict], ys: list[dict]) -> bool:
    return all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(xs, ys))


def _rgb_folder(root: Path, n: int = 5, size: int = 20) -> Path:
    """n RGB images (size x size), each a distinct colour, no classes."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (size, size), (40 * i, 200 - 30 * i, 100)).save(root / f"{i}.png")
    return root


def _fake_mnist(root: Path, n_train: int = 12, n_test: int = 6) -> None:
    """MNIST's raw idx files (random pixels, classes 0-9) in root/MNIST/raw."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n) + labels.tobytes())


# -- config -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pair", "svhn", "usps"])
def test_configs_match_builders(name):
    text = (CONF / f"{name}.yaml").read_text()
    assert text.startswith("# ") and len(text.splitlines()[0]) > 20
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg.name == name
    params = set(inspect.signature(DATASETS.get(name)).parameters) - {"split", "seed"}
    assert set(cfg) - {"name"} == params


# -- pair: the built-in digits on both sides ----------------------------------------------------------


def test_same_source_takes_disjoint_halves_and_records_the_map():
    ds = _digits_pair(B_map="edges")
    src = DATASETS.get("digits")(resolution=32, **SMALL)
    assert ds.info.domain_map == "edges" and not ds.info.aligned
    assert (ds.size_a, ds.size_b) == (32, 32) and len(ds) == 32
    assert ds.info.fields == ("A", "B", "label", "label_b") and ds.info.num_classes == 10
    assert torch.equal(ds.a, src.images[:32]) and torch.equal(ds.b, edge_map(src.images[32:]))
    assert torch.equal(ds.label_a, src.labels[:32]) and torch.equal(ds.label_b, src.labels[32:])
    item = ds[(3, 5)]
    assert item["A"].shape == item["B"].shape == (1, 32, 32) and item["B"].dtype == torch.uint8
    assert int(item["label"]) == int(src.labels[3]) and int(item["label_b"]) == int(src.labels[32 + 5])
    # no B is the map of an A
    edges_of_a = edge_map(ds.a).flatten(1)
    assert not (edges_of_a[:, None] == ds.b.flatten(1)[None]).all(-1).any()
    neg = _digits_pair(B_map="negative")
    assert neg.info.domain_map == "negative" and torch.equal(neg.b, negative(src.images[32:]))
    # the map is recorded only when B = map(A's source): not when A is mapped too, not for other sources
    assert _digits_pair(A_map="negative", B_map="edges").info.domain_map == ""
    assert _digits_pair(B_args={**SMALL, "num_train": 80}).info.domain_map == ""


def test_sides_of_other_sources_keep_all_their_items():
    ds = build_pair(A="digits", B="digits", A_args=SMALL, B_args={"num_train": 40, "num_test": 8}, B_map="edges")
    assert (ds.size_a, ds.size_b) == (64, 40) and len(ds) == 64 and ds.info.domain_map == ""


def test_resolution_and_channels(tmp_path):
    folder = _rgb_folder(tmp_path / "rgb", n=5, size=20)
    args = {"A": "digits", "A_args": SMALL, "B": "image_folder", "B_args": {"path": str(folder)}}
    with pytest.warns(UserWarning, match="labels are dropped"):
        ds = build_pair(resolution=24, **args)
    assert ds.info.channels == 1 and ds.info.channels_b == 3 and ds.info.resolution == 24
    assert ds.a.shape == (64, 1, 24, 24) and ds.b.shape == (5, 3, 24, 24)
    assert ds.info.fields == ("A", "B") and ds.info.num_classes == 0 and "label" not in ds[0]
    with pytest.warns(UserWarning):
        rgb = build_pair(resolution=24, channels=3, **args)
    assert rgb.info.channels == rgb.info.channels_b == 3 and torch.equal(rgb.a, ds.a.expand(-1, 3, -1, -1))
    with pytest.warns(UserWarning):
        grey = build_pair(resolution=24, channels=1, **args)
    assert grey.info.channels == grey.info.channels_b == 1
    luma = (ds.b.float() * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True).round()
    assert torch.equal(grey.b, luma.to(torch.uint8))
    assert len({ds.info.fingerprint, rgb.info.fingerprint, grey.info.fingerprint}) == 3


def test_labels_kept_only_when_the_classes_agree(tmp_path):
    _fake_mnist(tmp_path)
    ds = build_pair(A="digits", A_args=SMALL, B="mnist", root=str(tmp_path), download=False)
    assert ds.info.fields == ("A", "B", "label", "label_b") and ds.info.num_classes == 10
    assert ds.size_b == 12 and ds.b.shape == (12, 1, 32, 32)  # built-in digits <-> MNIST, resized to 32
    assert ds.label_b.tolist() == [i % 10 for i in range(12)]
    labeled = _rgb_folder(tmp_path / "lab" / "cat", n=2)
    _rgb_folder(labeled.parent / "dog", n=2)
    with pytest.warns(UserWarning, match="digits has 10 classes and image_folder 2"):
        mixed = build_pair(A="digits", A_args=SMALL, B="image_folder",
                           B_args={"path": str(tmp_path / "lab"), "labeled": True})
    assert mixed.info.num_classes == 0 and mixed.label_a is None and mixed.label_b is None


def test_fingerprint_covers_both_sides_and_every_option():
    base = _digits_pair(B_map="edges").info.fingerprint
    assert _digits_pair(B_map="edges").info.fingerprint == base
    others = [_digits_pair(B_map="negative"), _digits_pair(), _digits_pair(B_map="edges", resolution=28),
              _digits_pair(B_map="edges", channels=3), _digits_pair(B_map="edges", A_map="negative"),
              _digits_pair(B_map="edges", A_args={**SMALL, "num_train": 48}),
              _digits_pair(B_map="edges", B_args={**SMALL, "num_train": 48}),
              build_pair(A="digits", B="digits", A_args=SMALL, B_args=SMALL, B_map="edges", seed=1),
              build_pair(A="digits", B="digits", A_args=SMALL, B_args=SMALL, B_map="edges", split="test")]
    fps = [d.info.fingerprint for d in others]
    assert base not in fps and len(set(fps)) == len(fps)


def test_stream_is_seeded_and_resumes_exactly():
    ds = build_pair(A="digits", B="digits", A_args=SMALL, B_args={"num_train": 40, "num_test": 8}, B_map="edges")
    full = _batches(ds, 12, seed=3)
    assert full[0]["A"].shape == (4, 1, 32, 32) and set(full[0]) == {"A", "B", "label", "label_b"}
    assert full[0]["A"].dtype == torch.float32 and full[0]["B"].min() >= -1 and full[0]["B"].max() <= 1
    for preload in (True, False):
        s = BatchStream(ds, batch_size=4, seed=3, device=CPU, preload=preload)
        head = [next(s) for _ in range(7)]  # into the second epoch (16 batches... 64 // 4 = 16 per epoch)
        state = s.state()
        resumed = BatchStream(ds, batch_size=4, seed=3, device=CPU, preload=preload)
        resumed.load_state(state)
        assert _same(full, head + [next(resumed) for _ in range(5)]), preload
    assert not _same(full, _batches(ds, 12, seed=4))
    assert _same(full, _batches(build_pair(A="digits", B="digits", A_args=SMALL,
                                           B_args={"num_train": 40, "num_test": 8}, B_map="edges"), 12, seed=3))


def test_build_dataset_and_hydra_spelling(tmp_path):
    """`dataset=pair dataset.A=... +dataset.A_args.KEY=...` composes to what the builder takes."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="ganzoo.conf", version_base="1.3"):
        cfg = compose("train", overrides=["dataset=pair", "dataset.A=digits", "dataset.B=digits", "dataset.B_map=edges",
                                          "+dataset.A_args.num_train=64", "+dataset.B_args.num_train=64",
                                          "+dataset.A_args.num_test=16", "+dataset.B_args.num_test=16"])
    data_cfg = OmegaConf.to_container(cfg.dataset, resolve=True)
    ds = build_dataset(data_cfg)
    assert ds.info.domain_map == "edges" and ds.info.fingerprint == _digits_pair(B_map="edges").info.fingerprint
    test = build_dataset(data_cfg, split="test")
    assert (test.size_a, test.size_b) == (8, 8)


@pytest.mark.filterwarnings("ignore:pair. the labels are dropped")
def test_cyclegan_on_grey_and_rgb_sides_resumes_exactly(tmp_path):
    """CycleGAN between grey digits (1 channel) and RGB images (3): 3 steps in one go == 2 + resume + 1."""
    from ganzoo import run
    from ganzoo.settings import OptimSettings

    from .conftest import tiny_model_cfg, tiny_trainer_settings

    folder = _rgb_folder(tmp_path / "rgb", n=6, size=20)
    data_cfg = {"name": "pair", "A": "digits", "A_args": SMALL, "B": "image_folder", "B_args": {"path": str(folder)},
                "resolution": 24}
    model_cfg = tiny_model_cfg("cyclegan", lambda_identity=0.0)  # identity needs equal channels (a clear error)

    def train(run_dir, resume=None):
        return run.train(model_cfg=model_cfg, dataset_cfg=data_cfg,
                         trainer=tiny_trainer_settings(max_steps=3, batch_size=4), optim=OptimSettings(), seed=3,
                         run_dir=run_dir, config={}, resume=resume)

    straight, split = tmp_path / "straight", tmp_path / "split"
    a = train(straight)
    run.train(model_cfg=model_cfg, dataset_cfg=data_cfg,
              trainer=tiny_trainer_settings(max_steps=2, batch_size=4), optim=OptimSettings(), seed=3,
              run_dir=split, config={})
    b = train(split, resume=str(split))
    assert a.step == b.step == 3 and a.model.translate(torch.zeros(1, 1, 24, 24)).shape == (1, 3, 24, 24)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    def losses(d):
        return [{k: v for k, v in json.loads(x).items() if k not in ("time", "steps_per_s")}
                for x in (d / "stats.jsonl").read_text().splitlines()]

    assert losses(straight) == losses(split)


# -- pair: bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    ({"A": "nope"}, r"dataset\.A='nope' is not a dataset \(known: .*mnist"),
    ({"B": "digits_unpaired"}, r"dataset\.B=digits_unpaired is a two-domain set: name a single-domain dataset"),
    ({"B": "horse2zebra"}, r"dataset\.B=horse2zebra is a two-domain set"),
    ({"A": "pair"}, r"dataset\.A=pair is itself a pair of datasets"),
    ({"B_args": {"nope": 1}}, r"dataset\.B_args\.nope is not an option of dataset 'digits' \(options: root, "),
    ({"B_map": "blur"}, r"dataset\.B_map='blur' is not one of edges, negative"),
    ({"channels": 2}, r"dataset\.channels=2 must be 1, 3 or null"),
    ({"resolution": 4}, r"dataset\.resolution=4 must be at least 8"),
    ({"B": "image_folder", "B_args": {}}, r"dataset\.B=image_folder needs path: add \+dataset\.B_args\.path=<value>"),
    ({"B_args": {"num_train": 1, "num_test": 1}, "A_args": {"num_train": 1, "num_test": 1}},
     r"both digits with 1 item\(s\): two halves need at least 2"),
])
def test_bad_input_is_one_line(kw, match):
    args = {"A": "digits", "B": "digits", "A_args": SMALL, "B_args": SMALL, **kw}
    with pytest.raises(DataError, match=match) as err:
        build_pair(**args)
    assert "\n" not in str(err.value)


def test_side_errors_name_the_side(tmp_path):
    with pytest.raises(DataError, match=r"^dataset\.B=mnist: mnist: 4 file\(s\) missing in .*dataset\.download=true"):
        build_pair(A="digits", A_args=SMALL, B="mnist", root=str(tmp_path), download=False)
    folder = _rgb_folder(tmp_path / "flat")  # no train/ and test/: no test split
    with pytest.raises(DataError, match=r"^dataset\.B=image_folder: image folder .* has no test split"):
        build_pair(A="digits", A_args=SMALL, B="image_folder", B_args={"path": str(folder)}, split="test")
    with pytest.raises(DataError, match=r"^dataset\.A=digits: digits: unknown split 'val'"):
        build_pair(A="digits", A_args=SMALL, B="digits", split="val")


def test_pair_cli_train_smoke(cli_runner, tmp_path):
    """2 CycleGAN steps on built-in digits <-> their edges (disjoint halves), from the command line."""
    run_dir = tmp_path / "run"
    r = invoke(cli_runner, ["train", "model=cyclegan", "dataset=pair", "dataset.A=digits", "dataset.B=digits",
                            "dataset.B_map=edges", *[f"+dataset.{s}_args.{k}={v}" for s in "AB" for k, v in SMALL.items()],
                            *tiny_model_overrides("cyclegan"), "trainer.max_steps=2", "trainer.batch_size=4",
                            "trainer.log_every=1", "trainer.sample_every=0", "trainer.n_samples=2",
                            "trainer.tensorboard=false", "trainer.progress=false", "trainer.device=cpu",
                            f"hydra.run.dir={run_dir}"])
    assert r.exit_code == 0, r.output
    stats = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats if "step" in s][:2] == [1, 2]
    assert any((run_dir / "checkpoints").iterdir())
    r = invoke(cli_runner, ["train", "model=cyclegan", "dataset=pair", "dataset.A=digits_pairs",
                            f"hydra.run.dir={tmp_path / 'bad'}"])
    assert r.exit_code == 2 and "dataset.A=digits_pairs is a two-domain set" in r.stderr
    assert "Traceback" not in r.output


# -- usps / svhn files ---------------------------------------------------------------------------------


def _usps_bytes(n: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A USPS file in its real format: bz2 libsvm text, class 1-10, 256 values in [-1, 1]."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1, 1, (n, 256)).round(6)
    classes = np.arange(n) % 10 + 1
    lines = [f"{c} " + " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(row)) for c, row in zip(classes, values)]
    return bz2.compress(("\n".join(lines) + "\n").encode()), values, classes - 1


def _svhn_bytes(n: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """An SVHN cropped-digits file in its real format: a MATLAB .mat with X [32, 32, 3, n], y [n, 1] (10 = 0)."""
    import io

    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)
    buf = io.BytesIO()
    savemat(buf, {"X": x, "y": y})
    return buf.getvalue(), x, y.reshape(-1) % 10


def _pin(monkeypatch, files: dict[str, bytes], base: str = "http://127.0.0.1:9") -> None:
    """Manifest entries of the digit files pointing at `base`, pinned to the given contents' SHA-256."""
    entries = dict(manifest.ENTRIES)
    for name, data in files.items():
        real = manifest.ENTRIES[name]
        entries[name] = manifest.Entry(name, f"{base}/{real.filename}", hashlib.sha256(data).hexdigest(), len(data),
                                       "file", "", real.description)
    monkeypatch.setattr(manifest, "ENTRIES", entries)


def test_usps_reads_its_real_format(monkeypatch, tmp_path):
    train, values, labels = _usps_bytes(12)
    test, _, _ = _usps_bytes(5, seed=1)
    (tmp_path / "usps").mkdir()
    (tmp_path / "usps" / "usps.bz2").write_bytes(train)
    (tmp_path / "usps" / "usps.t.bz2").write_bytes(test)
    _pin(monkeypatch, {"usps/train": train, "usps/test": test})
    ds = build_usps(root=str(tmp_path), download=False)
    assert ds.images.shape == (12, 1, 16, 16) and ds.info.channels == 1 and ds.info.num_classes == 10
    assert ds.labels.tolist() == labels.tolist()
    want = np.clip(np.rint((values + 1) / 2 * 255), 0, 255).astype(np.uint8).reshape(12, 1, 16, 16)
    assert np.array_equal(ds.images.numpy(), want)
    te = build_usps(root=str(tmp_path), download=False, split="test")
    assert len(te) == 5 and te.info.fingerprint != ds.info.fingerprint
    assert build_usps(root=str(tmp_path), download=False, resolution=32).images.shape == (12, 1, 32, 32)
    # MNIST <-> USPS as a pair (the CoGAN / UNIT digit task), both at 32 px
    _fake_mnist(tmp_path)
    pair = build_pair(A="mnist", B="usps", root=str(tmp_path), download=False)
    assert pair.a.shape == (12, 1, 32, 32) and pair.b.shape == (12, 1, 32, 32) and pair.info.num_classes == 10


def test_usps_without_a_published_hash_records_then_enforces(monkeypatch, tmp_path):
    train, _, _ = _usps_bytes(6)
    (tmp_path / "usps").mkdir()
    (tmp_path / "usps" / "usps.bz2").write_bytes(train)
    first = build_usps(root=str(tmp_path), download=False)
    record = json.loads(download.lock_path(tmp_path).read_text())["entries"]["usps/train"]
    assert record["sha256"] == hashlib.sha256(train).hexdigest()
    (tmp_path / "usps" / "usps.bz2").write_bytes(_usps_bytes(6, seed=3)[0])  # changed behind our back
    with pytest.raises(DataError, match=r"usps\.bz2 does not match the recorded sha256 of usps/train") as err:
        build_usps(root=str(tmp_path), download=False)
    assert "\n" not in str(err.value) and len(first) == 6


def test_a_read_only_data_home_is_checked_without_writing(monkeypatch, tmp_path):
    """A shared, read-only copy (the lock file and the hash record cannot be written): the file is
    still verified against the pinned digest, and a changed file is still refused."""
    from ganzoo.data.builders import digit_sets

    train, _, labels = _usps_bytes(6)
    (tmp_path / "usps").mkdir()
    (tmp_path / "usps" / "usps.bz2").write_bytes(train)
    _pin(monkeypatch, {"usps/train": train})

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(digit_sets, "prepare", read_only)
    assert build_usps(root=str(tmp_path), download=False).labels.tolist() == labels.tolist()
    _pin(monkeypatch, {"usps/train": b"other"})
    with pytest.raises(DataError, match=r"usps\.bz2 does not match the pinned sha256 of usps/train"):
        build_usps(root=str(tmp_path), download=False)
    with pytest.raises(DataError, match=r"usps: cannot download into .*Permission denied.*dataset\.root=<a writable"):
        build_usps(root=str(tmp_path / "empty"))
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob(".*.lock"))


def test_digit_set_files_missing_or_corrupt_are_one_line(monkeypatch, tmp_path):
    for build, key, name in ((build_usps, "usps", "usps.bz2"), (build_svhn, "svhn", "train_32x32.mat")):
        if key == "svhn":
            pytest.importorskip("scipy.io")
        with pytest.raises(DataError) as err:
            build(root=str(tmp_path), download=False)
        msg = str(err.value)
        assert "\n" not in msg and str(tmp_path / key / name) in msg and f"place {name}" in msg
        assert "dataset.download=true" in msg and f"dataset.root=<folder containing {key}/>" in msg
    with pytest.raises(DataError, match=r"unknown split 'extra': usps has the splits train and test"):
        build_usps(root=str(tmp_path), split="extra")
    (tmp_path / "usps").mkdir()
    bad = bz2.compress(b"1 1:0.5 2:oops\n")
    (tmp_path / "usps" / "usps.bz2").write_bytes(bad)
    _pin(monkeypatch, {"usps/train": bad})
    with pytest.raises(DataError, match=r"usps: cannot read .*usps\.bz2 line 1 .*delete it"):
        build_usps(root=str(tmp_path), download=False)


def test_svhn_reads_its_real_format(monkeypatch, tmp_path):
    pytest.importorskip("scipy.io")
    train, x, labels = _svhn_bytes(12)
    test, _, _ = _svhn_bytes(3, seed=1)
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn" / "train_32x32.mat").write_bytes(train)
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(test)
    with pytest.raises(DataError, match=r"does not match the pinned sha256 of svhn/train"):
        build_svhn(root=str(tmp_path), download=False)  # the real pinned digest: a fake file is refused
    _pin(monkeypatch, {"svhn/train": train, "svhn/test": test})
    ds = build_svhn(root=str(tmp_path), download=False)
    assert ds.images.shape == (12, 3, 32, 32) and ds.info.channels == 3 and ds.info.num_classes == 10
    assert np.array_equal(ds.images.numpy(), x.transpose(3, 2, 0, 1)) and ds.labels.tolist() == labels.tolist()
    assert 0 in ds.labels.tolist()  # label 10 is the digit 0
    assert len(build_svhn(root=str(tmp_path), download=False, split="test")) == 3
    # SVHN -> MNIST (DTN's digit task): RGB SVHN with grey MNIST, both grey on request
    _fake_mnist(tmp_path)
    pair = build_pair(A="svhn", B="mnist", root=str(tmp_path), download=False)
    assert pair.info.channels == 3 and pair.info.channels_b == 1
    grey = build_pair(A="svhn", B="mnist", root=str(tmp_path), download=False, channels=1)
    assert grey.a.shape == (12, 1, 32, 32)


def test_svhn_without_scipy_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # import scipy.io -> ImportError
    with pytest.raises(DataError, match=r"^svhn: reading its \.mat files needs scipy: pip install 'ganzoo\[svhn\]'$"):
        build_svhn(root=str(tmp_path))
    assert not (tmp_path / "svhn").exists()  # refused before any download


class _Files(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.files.get(self.path)
        self.server.log.append(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    with local_http_server(_Files) as srv:
        srv.files, srv.log = {}, []
        yield srv


def test_usps_downloads_and_verifies_from_a_server(monkeypatch, server, tmp_path):
    train, _, labels = _usps_bytes(8)
    server.files["/usps.bz2"] = train
    _pin(monkeypatch, {"usps/train": train}, base=server.url)
    ds = build_usps(root=str(tmp_path))
    assert ds.labels.tolist() == labels.tolist() and (tmp_path / "usps" / "usps.bz2").read_bytes() == train
    assert server.log == ["/usps.bz2"]
    build_usps(root=str(tmp_path))  # present: verified, not fetched again
    assert server.log == ["/usps.bz2"]
    server.files["/usps.bz2"] = _usps_bytes(8, seed=5)[0]  # tampered in transit
    with pytest.raises(DataError, match=r"sha256 mismatch for usps/train .*nothing was changed"):
        build_usps(root=str(tmp_path / "other"))
    assert not (tmp_path / "other" / "usps" / "usps.bz2").exists()


def test_svhn_downloads_from_a_server(monkeypatch, server, tmp_path):
    pytest.importorskip("scipy.io")
    train, x, _ = _svhn_bytes(4)
    server.files["/train_32x32.mat"] = train
    _pin(monkeypatch, {"svhn/train": train}, base=server.url)
    ds = build_svhn(root=str(tmp_path))
    assert np.array_equal(ds.images.numpy(), x.transpose(3, 2, 0, 1))
    with pytest.raises(DataError, match=r"cannot download svhn/test from .*place test_32x32\.mat in"):
        _pin(monkeypatch, {"svhn/train": train, "svhn/test": b"x"}, base=server.url)
        build_svhn(root=str(tmp_path), split="test")

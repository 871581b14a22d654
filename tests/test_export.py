"""`ganzoo export`: every model that generates or translates (the registry, tiny nets) exports to ONNX,
TorchScript and safetensors within atol of the PyTorch model; the check can fail; safetensors files
load in sample/translate with no pickle and hostile ones are refused in one line."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo import run
from ganzoo.build import build_model
from ganzoo.data.base import DataInfo
from ganzoo.errors import UserError
from ganzoo.export import FORMATS, export
from ganzoo.graphs import graphs, inference_mode, reference
from ganzoo.models.base import GENERATE, TRANSLATE
from ganzoo.portable import read_weights, require
from ganzoo.registry import MODELS
from ganzoo.translate import translate

from .conftest import invoke, tiny_runs

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
st = pytest.importorskip("safetensors.torch")

CPU = torch.device("cpu")
EXPORTABLE = [n for n in MODELS.names() if {GENERATE, TRANSLATE} & set(MODELS.get(n).capabilities)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny 2-step run (EMA on) per exportable model, trained on first use."""
    return tiny_runs(tmp_path_factory, ema=True)


def test_every_generating_or_translating_model_is_exported():
    assert {"dcgan", "cgan", "infogan", "pix2pix", "cyclegan", "srresnet"} <= set(EXPORTABLE)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("name", EXPORTABLE)
def test_export_matches_the_model(runs, name, fmt, tmp_path):
    done = export(run=str(runs(name)), format=fmt, out=str(tmp_path / f"m{FORMATS[fmt]}"))
    model, _ = run.load_model(runs(name), device=CPU)
    n_graphs = (model.can(GENERATE)) + (len(model.directions()) if model.can(TRANSLATE) else 0)
    assert len(done) == (1 if fmt == "safetensors" else n_graphs)
    for e in done:
        assert e.path.is_file() and e.max_abs_diff <= 1e-4, e
    assert not list(tmp_path.glob(".*.tmp"))
    if fmt == "onnx":  # dynamic axes and the label input, as the issue asks
        session = ort.InferenceSession(str(done[0].path), providers=["CPUExecutionProvider"])
        inputs = {i.name: i.shape for i in session.get_inputs()}
        if done[0].graph == "generate":
            assert list(inputs) == (["z", "label"] if model.can("conditional") else ["z"])
            assert isinstance(inputs["z"][0], str)  # a named, free batch axis
        else:
            sides = inputs["image"][2:]  # free, or the one size a net with a dense bottleneck takes (DTN)
            assert list(inputs) == ["image"] and isinstance(inputs["image"][0], str)
            assert all(isinstance(d, str) for d in sides) if not model.fixed_size else sides == [model.fixed_size] * 2
        meta = {p.key: p.value for p in onnx.load(str(done[0].path)).metadata_props}
        assert meta["model"] == name and meta["ema"] == "true" and len(meta["source_sha256"]) == 64


@pytest.mark.parametrize("name", EXPORTABLE)
def test_safetensors_weights_sample_and_translate_as_the_run(runs, name, tmp_path):
    (e,) = export(run=str(runs(name)), format="safetensors", out=str(tmp_path / "m.safetensors"))
    model, _ = run.load_model(runs(name), device=CPU)
    if model.can(TRANSLATE):
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24), dtype=np.uint8)).save(tmp_path / "x.png")
        size = {"resize": model.fixed_size} if model.fixed_size else {}  # DTN takes one size
        a = translate(run=str(runs(name)), input=str(tmp_path / "x.png"), out=str(tmp_path / "a"), device="cpu", **size)
        b = translate(weights=str(e.path), input=str(tmp_path / "x.png"), out=str(tmp_path / "b"), device="cpu", **size)
        assert np.array_equal(np.array(Image.open(a.out / "x.png")), np.array(Image.open(b.out / "x.png")))
    else:
        a = run.sample(run=str(runs(name)), n=4, out=str(tmp_path / "a.png"), device="cpu")
        b = run.sample(weights=str(e.path), n=4, out=str(tmp_path / "b.png"), device="cpu")
        assert np.array_equal(np.array(Image.open(a)), np.array(Image.open(b)))


def test_pix2pix_is_exported_as_translate_runs_it_with_dropout_off():
    """unet_256 (dropout in its inner blocks): the graph is translate's per-image batch norm with dropout
    off, checked on a batch of 3 at 256x512 (traced at 2 x 256x256); far from the eval-mode graph."""
    info = DataInfo(name="pairs", channels=3, resolution=256, channels_b=3, fields=("A", "B"), aligned=True)
    torch.manual_seed(0)
    model = build_model("pix2pix", {"ngf": 4, "ndf": 4}, info).eval()
    (g,) = graphs(model)
    with torch.no_grad():
        g.module(*g.trace_inputs)
        facts = inference_mode(g)
        assert "per-image" in facts["batch_norm"] and facts["dropout"].startswith("off")
        x = g.check_inputs[1][0]
        assert tuple(x.shape) == (3, 3, 256, 512)
        ours, ref = g.module(x), reference(model, g)(x)
        assert (ours - ref).abs().max() < 1e-4
        eval_mode = model.G.eval()(x)
        assert (ours - eval_mode).abs().max() > 0.1


def test_a_mismatch_is_an_error_and_leaves_no_file(runs, tmp_path, monkeypatch):
    import ganzoo.export as ex

    monkeypatch.setattr(ex, "reference", lambda model, graph: lambda *x: torch.zeros(()))
    for fmt in ("onnx", "torchscript"):
        with pytest.raises(UserError, match="differs from the PyTorch model"):
            export(run=str(runs("dcgan")), format=fmt, out=str(tmp_path / f"m{FORMATS[fmt]}"))
    assert not list(tmp_path.iterdir())  # neither the file nor its temp file


def test_cli_prints_the_difference_and_refuses_bad_settings(runs, cli_runner, tmp_path):
    r = invoke(cli_runner, ["export", f"run={runs('dcgan')}", "format=onnx", f"out={tmp_path}"])
    assert r.exit_code == 0, r.output
    assert "max abs difference" in r.stderr and (tmp_path / "model.onnx").is_file()
    for bad, words in ((["format=tflite"], "format"), (["format=onnx", "out=x.pt"], ".onnx"),
                       (["format=onnx", "atol=-1"], "atol")):
        r = invoke(cli_runner, ["export", f"run={runs('dcgan')}", *bad])
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and words in lines[0], r.output
    r = invoke(cli_runner, ["export", f"run={tmp_path / 'nothing'}", "format=onnx"])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_a_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"pip install 'ganzoo\[export\]'"):
        require("onnxruntime")
    with pytest.raises(UserError, match=r"pip install 'ganzoo\[serve\]'"):
        require("ganzoo_no_such_module", "serve")


# -- hostile or damaged safetensors files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(runs, tmp_path_factory):
    (e,) = export(run=str(runs("cgan")), format="safetensors",
                  out=str(tmp_path_factory.mktemp("w") / "cgan.safetensors"))
    with st.safe_open(str(e.path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def _rewrite(weights, tmp_path, *, tensors=None, **meta):
    t, m = weights
    path = tmp_path / "hostile.safetensors"
    st.save_file(tensors or t, str(path), metadata={k: v for k, v in {**m, **meta}.items() if v is not None})
    return path


@pytest.mark.parametrize("change,words", [
    ({"model": "os.system"}, "does not build"),
    ({"args": json.dumps({"__class__": "x"})}, "does not build"),
    ({"args": json.dumps({"g_units": "32; rm -rf /"})}, "does not build"),
    ({"args": "__import__('os').system('id')"}, "not JSON"),
    ({"data": json.dumps({"name": "d", "channels": "3", "resolution": 28})}, "channels"),
    ({"data": json.dumps({"name": "d", "channels": 1, "resolution": 28, "loader": "pickle"})}, "unknown field"),
    ({"nets": json.dumps(["D", "__dict__"])}, "not nets of model"),
    ({"pickle": "cos\nsystem\n"}, "unknown metadata field"),
    ({"format": None}, "not a ganzoo weights file"),
    ({"step": "1e400"}, "not a int"),
    ({"args": "x" * 70000}, "characters long"),
])
def test_hostile_metadata_is_refused_in_one_line(weights, tmp_path, change, words):
    path = _rewrite(weights, tmp_path, **change)
    with pytest.raises(UserError) as e:
        read_weights(path, device=CPU)
    assert words in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)


def test_wrong_tensors_are_refused(weights, tmp_path):
    t, _ = weights
    key = next(iter(t))
    for tensors, words in (({**t, key: torch.zeros(3, 3)}, "has shape"),
                           ({**t, key: t[key].double()}, "is F64"),
                           ({k: v for k, v in t.items() if k != key}, "is missing"),
                           ({**t, "G.extra": torch.zeros(1)}, "not one of the model")):
        with pytest.raises(UserError, match=words):
            read_weights(_rewrite(weights, tmp_path, tensors=tensors), device=CPU)


def test_a_pickle_or_a_missing_file_is_not_loaded(tmp_path, cli_runner):
    torch.save({"x": torch.zeros(1)}, tmp_path / "fake.safetensors")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        read_weights(tmp_path / "fake.safetensors", device=CPU)
    r = invoke(cli_runner, ["sample", f"weights={tmp_path / 'fake.safetensors'}", f"out={tmp_path / 'g.png'}"])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "not a readable safetensors file" in lines[0], r.output
    r = invoke(cli_runner, ["sample", f"weights={tmp_path / 'none.safetensors'}"])
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = invoke(cli_runner, ["sample", "n=4"])
    assert r.exit_code == 2 and "give run=" in r.stderr

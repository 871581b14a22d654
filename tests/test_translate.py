"""`ganzoo translate`: padding and cropping, batching by size, names and sizes kept, grey/RGB inputs,
runs of pix2pix and CycleGAN, official weights, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo import run
from ganzoo.errors import UserError
from ganzoo.images import to_uint8
from ganzoo.models.base import TRANSLATE, GANModel
from ganzoo.settings import OptimSettings
from ganzoo.translate import Translator, reflect_pad, translate, translate_batch

from .conftest import TINY_DIGITS, invoke, tiny_data_cfg, tiny_model_cfg, tiny_trainer_settings


def _train(name: str, run_dir, **model_args):
    data = tiny_data_cfg(name)
    if data == TINY_DIGITS:  # dcgan: its run only shows translate's refusal, 64 digits are enough
        data = {"name": "digits", "num_train": 64, "num_test": 16}
    run.train(model_cfg=tiny_model_cfg(name, **model_args), dataset_cfg=data,
              trainer=tiny_trainer_settings(batch_size=4, n_samples=2), optim=OptimSettings(), seed=1,
              run_dir=run_dir, config={})
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"pix2pix": _train("pix2pix", root / "pix2pix"), "cyclegan": _train("cyclegan", root / "cyclegan"),
            "dcgan": _train("dcgan", root / "dcgan")}


def _save(path, h: int, w: int, mode: str = "RGB", seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (h, w) if mode == "L" else (h, w, 3)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def _folder(root):
    _save(root / "a.png", 37, 50)  # odd sizes, RGB
    _save(root / "sub" / "b.jpg", 20, 20, "L", 1)
    _save(root / "sub" / "deeper" / "c.png", 20, 20, "L", 2)
    _save(root / "sub" / "d.png", 9, 70, "RGB", 3)
    _save(root / ".hidden" / "e.png", 8, 8)
    (root / "notes.txt").write_text("not an image")
    return ["a.png", "sub/b.jpg", "sub/d.png", "sub/deeper/c.png"]


def tensor2im(y):
    """The reference's util.tensor2im for one image (no grey -> RGB tiling): [-1, 1] -> uint8 [H, W, C]."""
    image_numpy = y[0].detach().cpu().float().numpy()
    return ((np.transpose(image_numpy, (1, 2, 0)) + 1) / 2.0 * 255.0).astype(np.uint8)


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- padding, cropping, batching -----------------------------------------------------------------------


def test_reflect_pad_mirrors_again_when_the_pad_exceeds_the_image():
    x = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 1, 3)
    y = reflect_pad(x, 0, 0, 0, 5)
    assert y.flatten().tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    y = reflect_pad(x, 2, 1, 1, 0)  # a 1-pixel-high image: its rows repeat
    assert y.shape == (1, 1, 4, 4) and all(r == [1, 0, 1, 2] for r in y[0, 0].tolist())
    x = torch.arange(12.0).view(1, 1, 3, 4)
    assert torch.equal(reflect_pad(x, 1, 1, 2, 1), torch.nn.functional.pad(x, (2, 1, 1, 1), mode="reflect"))


@pytest.mark.parametrize("scale", [1, 2])
def test_translate_batch_pads_to_the_multiple_and_crops_back(scale):
    seen = []

    def fn(x):  # a stand-in model: needs multiples of 16, works pixel by pixel, upscales by `scale`
        seen.append(tuple(x.shape[-2:]))
        assert x.shape[-2] % 16 == 0 and x.shape[-1] % 16 == 0
        return (-x).repeat_interleave(scale, -2).repeat_interleave(scale, -1)

    t = Translator(fn, 3, pad_multiple=16, scale=scale, name="toy")
    x = torch.rand(2, 3, 7, 21) * 2 - 1
    y = translate_batch(t, x)
    assert seen == [(16, 32)] and y.shape == (2, 3, 7 * scale, 21 * scale)
    assert torch.equal(y, (-x).repeat_interleave(scale, -2).repeat_interleave(scale, -1))  # the content, not the pad
    bad = Translator(lambda x: x[..., :-1], 3, pad_multiple=4, name="toy")
    with pytest.raises(RuntimeError, match="toy returned"):
        translate_batch(bad, x)


def test_batches_by_size_with_a_trivial_model(tmp_path, monkeypatch):
    import ganzoo.translate as tr

    calls = []

    def fn(x):
        calls.append(tuple(x.shape))
        return x.flip(-1)

    monkeypatch.setattr(tr, "from_run", lambda run, **kw: (Translator(fn, 1, 4, 1, torch.device("cpu"), "toy"), "AtoB"))
    for i in range(5):
        _save(tmp_path / "in" / f"s{i}.png", 8, 8, "L", i)
    for i in range(2):
        _save(tmp_path / "in" / f"t{i}.png", 5, 9, "RGB", 10 + i)
    n, out, _ = translate(run="unused", input=str(tmp_path / "in"), out=str(tmp_path / "out"), batch_size=2,
                          rounding="round")
    assert n == 7 and out == tmp_path / "out"
    assert sorted(calls) == sorted([(2, 1, 8, 8), (2, 1, 8, 8), (1, 1, 8, 8), (2, 1, 8, 12)])
    for i in range(5):  # the output is the model's, cropped back (here: a mirrored image)
        src = np.array(Image.open(tmp_path / "in" / f"s{i}.png"))
        assert np.array_equal(np.array(Image.open(tmp_path / "out" / f"s{i}.png")), src[:, ::-1])
    t0 = Image.open(tmp_path / "out" / "t0.png")
    assert t0.size == (9, 5) and t0.mode == "L"  # RGB input converted to the model's one channel


# -- runs -----------------------------------------------------------------------------------------------


def test_pix2pix_run_on_a_folder_keeps_names_and_sizes(runs, tmp_path, cli_runner):
    names = _folder(tmp_path / "in")
    r = invoke(cli_runner, ["translate", f"run={runs['pix2pix']}", f"input={tmp_path / 'in'}", f"out={tmp_path / 'out'}",
                            "batch_size=2", "device=cpu"])
    assert r.exit_code == 0, r.output
    pngs = [n.replace(".jpg", ".png") for n in names]  # a folder out= gets PNGs, as the reference's test.py
    assert _files(tmp_path / "out") == pngs
    for name, png in zip(names, pngs):
        src, got = Image.open(tmp_path / "in" / name), Image.open(tmp_path / "out" / png)
        assert got.size == src.size and got.mode == "L"  # digits_pairs: 1-channel B
        assert got.format == "PNG"
    again = tmp_path / "again"
    assert translate(run=str(runs["pix2pix"]), input=str(tmp_path / "in"), out=str(again), device="cpu")[0] == 4
    a, b = (np.array(Image.open(d / "a.png")) for d in (tmp_path / "out", again))
    assert np.array_equal(a, b)  # dropout at inference is seeded: repeatable


def test_unwritable_out_is_one_line(runs, tmp_path, cli_runner):
    _folder(tmp_path / "in")
    (tmp_path / "a_file").write_text("not a folder")  # ENOTDIR: chmod does not stop root
    bad = tmp_path / "a_file" / "out"
    r = invoke(cli_runner, ["translate", f"run={runs['pix2pix']}", f"input={tmp_path / 'in'}", f"out={bad}",
                            "device=cpu"])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.exit_code == 2 and lines[-1].startswith("Error: ") and str(tmp_path / "a_file") in lines[-1], r.output
    assert "Not a directory" in lines[-1] and "Traceback" not in r.output


def test_cyclegan_run_matches_the_model_and_has_two_directions(runs, tmp_path):
    _save(tmp_path / "in" / "x.png", 32, 32, "L")
    outs = {}
    for d in ("AtoB", "BtoA"):
        n, out, _ = translate(run=str(runs["cyclegan"]), input=str(tmp_path / "in" / "x.png"),
                           out=str(tmp_path / d / "y.png"), direction=d, device="cpu")
        assert n == 1 and out == tmp_path / d / "y.png"
        outs[d] = np.array(Image.open(out))
    model, _ = run.load_model(runs["cyclegan"], device=torch.device("cpu"))
    x = (torch.from_numpy(np.array(Image.open(tmp_path / "in" / "x.png")))[None, None].float() / 255 - 0.5) / 0.5
    for d in ("AtoB", "BtoA"):
        assert np.array_equal(outs[d], tensor2im(model.translate(x, d))[..., 0])
    assert not np.array_equal(outs["AtoB"], outs["BtoA"])
    default = translate(run=str(runs["cyclegan"]), input=str(tmp_path / "in"), device="cpu")[1]
    assert default == runs["cyclegan"] / "translated" and (default / "x.png").is_file()


def test_out_inside_input_is_not_translated_again(runs, tmp_path):
    _save(tmp_path / "in" / "x.png", 16, 16, "L")
    for _ in range(2):
        res = translate(run=str(runs["cyclegan"]), input=str(tmp_path / "in"), out=str(tmp_path / "in" / "t"),
                        device="cpu")
        assert res.written == 1
    assert _files(tmp_path / "in") == ["t/x.png", "x.png"]


def test_unreadable_images_are_skipped_with_a_warning(runs, tmp_path, cli_runner):
    _save(tmp_path / "in" / "good.png", 16, 16, "L")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    r = invoke(cli_runner, ["translate", f"run={runs['cyclegan']}", f"input={tmp_path / 'in'}",
                            f"out={tmp_path / 'out'}", "device=cpu"])
    assert r.exit_code == 0 and _files(tmp_path / "out") == ["good.png"]
    assert "skipped 1 unreadable image, first: cannot load image" in r.stderr and "broken.png" in r.stderr
    assert "translated 1 image -> " in r.stderr
    (tmp_path / "in" / "good.png").unlink()
    with pytest.raises(UserError, match="none of the 1 images could be read"):
        translate(run=str(runs["cyclegan"]), input=str(tmp_path / "in"), out=str(tmp_path / "out2"), device="cpu")


# -- official weights ---------------------------------------------------------------------------------


def test_official_weights_file_and_download_name(tmp_path, monkeypatch):
    from ganzoo.nn.translation import build_generator

    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", 3, 3, ngf=4, norm="instance")
    torch.save(net.state_dict(), tmp_path / "g.pth")
    _save(tmp_path / "in" / "p.png", 13, 17, "RGB")
    n, out, _ = translate(weights=str(tmp_path / "g.pth"), model="cyclegan", input=str(tmp_path / "in"),
                       out=str(tmp_path / "out"), device="cpu")
    assert n == 1
    got = np.array(Image.open(tmp_path / "out" / "p.png"))
    x = (torch.from_numpy(np.array(Image.open(tmp_path / "in" / "p.png"))).permute(2, 0, 1)[None].float() / 255
         - 0.5) / 0.5
    with torch.no_grad():
        want = translate_batch(Translator(net.eval(), 3, 4), x)
    assert got.shape == (13, 17, 3) and np.array_equal(got, tensor2im(want))

    asked = []

    def ensure(name, root=None):
        asked.append(name)
        return tmp_path / "g.pth"

    import ganzoo.translate

    monkeypatch.setattr(ganzoo.translate.download, "ensure", ensure)
    assert translate(weights="horse2zebra", model="cyclegan", input=str(tmp_path / "in"),
                     out=str(tmp_path / "out2"), device="cpu")[0] == 1
    assert asked == ["cyclegan_model/horse2zebra"]
    with pytest.raises(UserError, match="neither a file nor an official cyclegan generator.*horse2zebra"):
        translate(weights="no_such_set", model="cyclegan", input=str(tmp_path / "in"), out=str(tmp_path / "o3"))


# -- errors ---------------------------------------------------------------------------------------------


def test_errors_are_one_line_exit_2(runs, tmp_path, cli_runner):
    _save(tmp_path / "in" / "x.png", 16, 16)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "w.pth").write_bytes(b"not a state dict")
    p2p, dcgan = runs["pix2pix"], runs["dcgan"]
    cases = [
        ([f"run={p2p}", f"input={tmp_path / 'missing'}"], "does not exist: give an image file or a folder"),
        ([f"run={p2p}", f"input={tmp_path / 'empty'}"], "no images found in"),
        ([f"run={p2p}", f"input={tmp_path / 'notes.txt'}"], "is not an image file"),
        ([f"run={dcgan}", f"input={tmp_path / 'in'}"], "generates from noise and does not translate images: use "
                                                       "ganzoo sample"),
        ([f"run={p2p}", f"weights={tmp_path / 'w.pth'}", "model=pix2pix", f"input={tmp_path / 'in'}"], "one of them"),
        ([f"input={tmp_path / 'in'}"], "give run=<run folder> or weights="),
        ([f"run={p2p}", "model=cyclegan", f"input={tmp_path / 'in'}"], "model= goes with weights="),
        ([f"weights={tmp_path / 'w.pth'}", f"input={tmp_path / 'in'}", f"out={tmp_path / 'o'}"],
         "model=cyclegan or model=pix2pix"),
        ([f"weights={tmp_path / 'w.pth'}", "model=pix2pix", f"input={tmp_path / 'in'}", f"out={tmp_path / 'o'}"],
         "is not a PyTorch state dict"),
        ([f"weights={tmp_path / 'w.pth'}", "model=cyclegan", "direction=BtoA", f"input={tmp_path / 'in'}",
          f"out={tmp_path / 'o'}"], "translates the one way it was trained"),
        ([f"run={p2p}", "direction=sideways", f"input={tmp_path / 'in'}"], "direction=sideways: use AtoB or BtoA"),
        ([f"run={p2p}", "direction=BtoA", f"input={tmp_path / 'in'}"], "translates AtoB only"),
        ([f"run={p2p}", f"input={tmp_path / 'in'}", f"out={tmp_path / 'in'}"], "is the input folder"),
        ([f"run={p2p}", f"input={tmp_path / 'in'}", f"out={tmp_path / 'one.png'}", "batch_size=0"], "batch_size=0"),
        ([f"run={tmp_path / 'in'}", f"input={tmp_path / 'in'}"], ""),  # not a run folder: the checkpoint loader says so
    ]
    for args, pattern in cases:
        r = invoke(cli_runner, ["translate", *args])
        assert r.exit_code == 2, (args, r.output)
        err = r.stderr.strip()
        assert err.startswith("Error: ") and "\n" not in err and pattern in err, (args, err)
    _save(tmp_path / "in" / "y.png", 16, 16)
    r = invoke(cli_runner, ["translate", f"run={p2p}", f"input={tmp_path / 'in'}", f"out={tmp_path / 'one.png'}"])
    assert r.exit_code == 2 and "is one image file but input has 2 images" in r.stderr


# -- ganzoo eval on translation runs ----------------------------------------------------------------------


class _Stub(GANModel):
    """A stand-in translation model with known outputs: AtoB = the Sobel edge map (exactly how the
    built-in sets make their edge domain), BtoA = identity, or refused."""

    capabilities = frozenset({TRANSLATE})

    def __init__(self, data, both: bool = True):
        super().__init__(data)
        self.both = both
        self.w = torch.nn.Parameter(torch.zeros(1))

    def directions(self):
        return ("AtoB", "BtoA") if self.both else ("AtoB",)

    def translate(self, x, direction=None):
        from ganzoo.data.builders.digits_translation import edge_map

        if direction == "BtoA":
            if not self.both:
                raise UserError("one way only")
            return x
        return edge_map(to_uint8(x)).to(x.device).float() / 127.5 - 1


def test_translation_metrics_of_known_translations():
    from ganzoo.build import Splits
    from ganzoo.data.builders.digits_translation import edge_map
    from ganzoo.metrics.suite import EvalOptions
    from ganzoo.metrics.translation import Translation

    cfg = {"name": "digits_unpaired", "num_train": 3000, "num_test": 800}
    splits = Splits(cfg)
    test = splits.test
    ev = Translation(_Stub(test.info), splits, EvalOptions(batch_size=128, judge_epochs=1))
    m = ev(_Stub(test.info))
    assert m["directions"] == ["AtoB", "BtoA"] and m["test_images"] == {"A": 400, "B": 400}
    assert "AtoB_l1" not in m  # unpaired: no targets
    assert m["AtoB_real_accuracy"] > 0.3  # the edge-map judge (1 epoch on 1500 images) recognises edge maps ...
    assert 0.8 < m["AtoB_accuracy_ratio"] < 1.25  # ... and about as well the exact edge maps of the A digits
    assert m["BtoA_accuracy_ratio"] < m["AtoB_accuracy_ratio"]  # edge maps shown as digits: worse
    a = test.a.float()  # the cycle A -> edges -> (identity) vs A, on a [0, 1] scale
    assert m["cycle_l1_A"] == pytest.approx(((edge_map(test.a).float() - a).abs() / 255).mean().item(), abs=1e-5)
    assert m["cycle_l1_B"] == pytest.approx(((edge_map(test.b).float() - test.b.float()).abs() / 255).mean().item(),
                                            abs=1e-5)
    assert m["cycle_l1"] == pytest.approx((m["cycle_l1_A"] + m["cycle_l1_B"]) / 2)

    pcfg = {"name": "digits_pairs", "num_train": 500, "num_test": 400}
    psplits = Splits(pcfg)
    ptest = psplits.test
    one_way = _Stub(ptest.info, both=False)  # AtoB: edges of the edge maps; L1 against the digits
    m = Translation(one_way, psplits, EvalOptions(n_per_class=10, batch_size=128, judge_epochs=1))(one_way)
    assert m["directions"] == ["AtoB"] and m["test_images"] == {"A": 100, "B": 100} and "cycle_l1" not in m
    want = ((edge_map(ptest.a[:100]).float() - ptest.b[:100].float()).abs() / 255).mean().item()
    assert m["AtoB_l1"] == pytest.approx(want, abs=1e-5)


def test_eval_on_translation_runs(runs, cli_runner):
    for name, directions in (("pix2pix", ["AtoB"]), ("cyclegan", ["AtoB", "BtoA"])):
        r = invoke(cli_runner, ["eval", f"run={runs[name]}", "device=cpu", "judge_epochs=1", "batch_size=64"])
        assert r.exit_code == 0, r.output
        m = json.loads((runs[name] / "metrics.json").read_text())
        assert m["model"] == name and m["directions"] == directions
        for d in directions:
            assert 0 <= m[f"{d}_accuracy"] <= 1 and 0 <= m[f"{d}_real_accuracy"] <= 1
        assert ("AtoB_l1" in m) == (name == "pix2pix") and ("cycle_l1" in m) == (name == "cyclegan")


def test_translation_metrics_during_training(tmp_path):
    settings = tiny_trainer_settings(batch_size=4, n_samples=2, eval_every=2, eval_n_per_class=2)
    run.train(model_cfg=tiny_model_cfg("cyclegan"), dataset_cfg=tiny_data_cfg("cyclegan"), trainer=settings,
              optim=OptimSettings(), seed=1, run_dir=tmp_path, config={})
    lines = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    evals = [x for x in lines if "eval/cycle_l1" in x]
    assert evals and 0 <= evals[-1]["eval/cycle_l1"] <= 1 and "eval/AtoB_accuracy" in evals[-1]


def test_super_resolution_run_scales_any_size(tmp_path):
    sr = _train("srresnet", tmp_path / "sr")
    _save(tmp_path / "in" / "lr.png", 13, 7, "RGB")
    res = translate(run=str(sr), input=str(tmp_path / "in"), out=str(tmp_path / "out"), device="cpu")
    assert res.written == 1 and Image.open(tmp_path / "out" / "lr.png").size == (14, 26)  # x2, (W, H)
    with pytest.raises(UserError, match="translates one way only"):
        translate(run=str(sr), input=str(tmp_path / "in"), out=str(tmp_path / "o2"), direction="BtoA", device="cpu")


# -- item 4: overwrite, memory, progress -------------------------------------------------------------


def test_an_output_that_is_its_input_is_refused(runs, tmp_path, monkeypatch):
    src = _save(tmp_path / "in" / "a.png", 16, 16, "L")
    before = src.read_bytes()
    (tmp_path / "link.png").symlink_to(src)
    monkeypatch.chdir(tmp_path)
    for out in [str(src), "in/a.png", "./in/../in/a.png", str(tmp_path / "link.png"), str(tmp_path / "in")]:
        with pytest.raises(UserError, match="would overwrite the input"):
            translate(run=str(runs["cyclegan"]), input=str(src), out=out, device="cpu")
    with pytest.raises(UserError, match="would overwrite the input"):  # the input through a symlink
        translate(run=str(runs["cyclegan"]), input=str(tmp_path / "link.png"), out=str(src), device="cpu")
    assert src.read_bytes() == before
    _save(tmp_path / "in" / "a.jpg", 16, 16, "L")
    with pytest.raises(UserError, match="would both be written to"):  # a.jpg and a.png -> out/a.png
        translate(run=str(runs["cyclegan"]), input=str(tmp_path / "in"), out=str(tmp_path / "out"), device="cpu")


def test_super_resolution_is_tiled_exactly_into_uint8_with_progress(tmp_path, monkeypatch, capsys):
    import ganzoo.translate as tr

    sr = _train("srresnet", tmp_path / "sr")
    _save(tmp_path / "in" / "big.png", 300, 170, "RGB")
    seen = []
    real = tr.translate_batch
    monkeypatch.setattr(tr, "translate_batch", lambda t, x: seen.append(tuple(x.shape[-2:])) or real(t, x))
    monkeypatch.setattr(tr, "PROGRESS_EVERY_S", 0.0)
    assert translate(run=str(sr), input=str(tmp_path / "in"), out=str(tmp_path / "out"), device="cpu").written == 1
    model, _ = run.load_model(sr, device=torch.device("cpu"))
    tile, margin = model.tiling()
    assert len(seen) > 1 and max(max(hw) for hw in seen) <= tile + 2 * margin  # never the whole image at once
    x = tr.to_model_input(torch.from_numpy(np.array(Image.open(tmp_path / "in" / "big.png"))).permute(2, 0, 1)[None])
    with torch.no_grad():
        whole = model.G(x).clamp(-1, 1)  # untiled
    got = np.array(Image.open(tmp_path / "out" / "big.png"))
    assert got.shape == (600, 340, 3) and np.array_equal(got, tensor2im(whole))
    assert f"big.png: tile {len(seen)}/{len(seen)}" in capsys.readouterr().err


def test_untiled_models_refuse_large_inputs_naming_resize(runs, tmp_path):
    _save(tmp_path / "in" / "x.png", 40, 50, "L")
    for name in ("pix2pix", "cyclegan"):
        with pytest.raises(UserError, match=r"x.png is 50x40 px, above max_pixels=1000: .* use resize=256"):
            translate(run=str(runs[name]), input=str(tmp_path / "in"), out=str(tmp_path / name), device="cpu",
                      max_pixels=1000)
        res = translate(run=str(runs[name]), input=str(tmp_path / "in"), out=str(tmp_path / name), device="cpu",
                        max_pixels=1000, resize=24)
        assert res.written == 1 and Image.open(tmp_path / name / "x.png").size == (24, 24)


# -- item 9: parity with the reference's test pipeline -----------------------------------------------


def test_pix2pix_input_is_contiguous_nchw_and_outputs_truncate_as_tensor2im(runs, tmp_path):
    _save(tmp_path / "in" / "x.png", 32, 32, "RGB")
    outs = {}
    for rounding in ("truncate", "round"):
        translate(run=str(runs["pix2pix"]), input=str(tmp_path / "in" / "x.png"), out=str(tmp_path / f"{rounding}.png"),
                  device="cpu", seed=3, rounding=rounding)
        outs[rounding] = np.array(Image.open(tmp_path / f"{rounding}.png"))
    model, _ = run.load_model(runs["pix2pix"], device=torch.device("cpu"))
    img = np.array(Image.open(tmp_path / "in" / "x.png").convert("L"))
    x = (torch.from_numpy(img)[None, None].float() / 255 - 0.5) / 0.5  # ToTensor + Normalize: contiguous NCHW
    torch.manual_seed(3)
    y = model.translate(x)
    assert np.array_equal(outs["truncate"], tensor2im(y)[..., 0])  # the same dropout masks, truncated
    assert np.array_equal(outs["round"], to_uint8(y)[0, 0].numpy())
    assert not np.array_equal(outs["truncate"], outs["round"])


def test_folder_out_is_png_single_file_out_keeps_its_extension_and_resize(runs, tmp_path):
    _save(tmp_path / "in" / "p.jpg", 20, 30, "L")
    translate(run=str(runs["cyclegan"]), input=str(tmp_path / "in"), out=str(tmp_path / "out"), device="cpu")
    assert _files(tmp_path / "out") == ["p.png"] and Image.open(tmp_path / "out" / "p.png").format == "PNG"
    translate(run=str(runs["cyclegan"]), input=str(tmp_path / "in"), out=str(tmp_path / "q.jpg"), device="cpu",
              resize="32")
    got = Image.open(tmp_path / "q.jpg")
    assert got.format == "JPEG" and got.size == (32, 32)
    for bad in ("0", "big"):
        with pytest.raises(UserError, match=f"resize={bad}: give a side in pixels"):
            translate(run=str(runs["cyclegan"]), input=str(tmp_path / "in"), out=str(tmp_path / "o"), resize=bad)


def test_eval_mode_applies_to_official_pix2pix_weights_and_dropout_sees_nchw(tmp_path, cli_runner, runs, monkeypatch):
    from ganzoo.nn.norm import run_as_trained
    from ganzoo.nn.translation import build_generator

    torch.manual_seed(0)
    net = build_generator("unet_64", 3, 3, ngf=4, norm="batch", use_dropout=True)  # 6 downs: a dropout block
    torch.save(net.state_dict(), tmp_path / "g.pth")
    _save(tmp_path / "in" / "p.png", 64, 64, "RGB")
    outs = {}
    for mode in ("false", "true"):
        r = invoke(cli_runner, ["translate", f"weights={tmp_path / 'g.pth'}", "model=pix2pix", f"model.eval_mode={mode}",
                                f"input={tmp_path / 'in'}", f"out={tmp_path / mode}", "device=cpu"])
        assert r.exit_code == 0, r.output
        outs[mode] = np.array(Image.open(tmp_path / mode / "p.png"))
    x = (torch.from_numpy(np.array(Image.open(tmp_path / "in" / "p.png"))).permute(2, 0, 1)[None].float() / 255
         - 0.5) / 0.5
    with torch.no_grad():
        assert np.array_equal(outs["true"], tensor2im(net.eval()(x)))  # running statistics, no dropout
    torch.manual_seed(0)  # the verb's default seed, set once the generator is built
    assert np.array_equal(outs["false"], tensor2im(run_as_trained(net, x)))  # the same dropout masks as the reference
    import ganzoo.translate as tr

    seen = []
    real = tr.translate_batch
    monkeypatch.setattr(tr, "translate_batch", lambda t, x: seen.append(x.is_contiguous()) or real(t, x))
    translate(weights=str(tmp_path / "g.pth"), model="pix2pix", input=str(tmp_path / "in"), out=str(tmp_path / "c"))
    assert seen == [True]  # NCHW as the reference's ToTensor (a channels_last view draws masks in another order)
    assert not np.array_equal(outs["true"], outs["false"])
    r = invoke(cli_runner, ["translate", f"run={runs['pix2pix']}", "model.eval_mode=true", f"input={tmp_path / 'in'}",
                            f"out={tmp_path / 'o'}"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "model.eval_mode" in r.stderr  # refused, not ignored
    with pytest.raises(UserError, match="model.eval_mode= goes with weights="):
        translate(run=str(runs["pix2pix"]), input=str(tmp_path / "in"), out=str(tmp_path / "o"), eval_mode=True)

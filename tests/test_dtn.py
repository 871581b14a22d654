"""DTN: the ternary losses on known inputs, f frozen through training (weights and batch-norm
statistics), the f cache (trained once, reused, a misfit refused) and f taken from a run."""

from __future__ import annotations

import math

import pytest
import torch

from ganzoo import run
from ganzoo.build import build_dataset, build_model, fitted_path, load_pretrained
from ganzoo.checkpoint import load_run
from ganzoo.errors import UserError
from ganzoo.models import dtn
from ganzoo.settings import OptimSettings

from .conftest import tiny_data_cfg, tiny_model_args, tiny_model_cfg, tiny_trainer_settings


def _train(run_dir, steps=2, resume=None, **model):
    return run.train(model_cfg=tiny_model_cfg("dtn", **model), dataset_cfg=tiny_data_cfg("dtn"),
                     trainer=tiny_trainer_settings(max_steps=steps), optim=OptimSettings(), seed=1, run_dir=run_dir,
                     config={}, resume=resume)


def _f_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.f.state_dict().items()}


def test_ternary_losses_on_known_inputs():
    # softmax of (ln 2, 0, 0) is (1/2, 1/4, 1/4)
    logits = torch.tensor([[math.log(2), 0.0, 0.0]])
    zero = torch.zeros(1, 3)  # (1/3, 1/3, 1/3)
    # L_D = -log D_1(G(x_s)) - log D_2(G(x_t)) - log D_3(x_t)
    assert dtn.ternary_d_loss(logits, zero, zero).item() == pytest.approx(math.log(2) + 2 * math.log(3))
    assert dtn.ternary_d_loss(zero, logits.roll(1, 1), logits.roll(2, 1)).item() == pytest.approx(
        math.log(3) + 2 * math.log(2))
    # L_GANG = -log D_3(G(x_s)) - log D_3(G(x_t)): both fakes should look like real targets
    assert dtn.ternary_g_loss(logits, zero).item() == pytest.approx(math.log(4) + math.log(3))
    sure = torch.tensor([[0.0, 0.0, 50.0]])
    assert dtn.ternary_g_loss(sure, sure).item() == pytest.approx(0.0, abs=1e-6)
    # batch means: two rows of the same logits give the loss of one
    assert dtn.ternary_d_loss(logits.repeat(2, 1), zero.repeat(2, 1), zero.repeat(2, 1)).item() == pytest.approx(
        math.log(2) + 2 * math.log(3))


def test_g_loss_weights_const_and_tid_by_alpha_and_beta(tmp_path):
    data = build_dataset(tiny_data_cfg("dtn"))
    batch = {k: v[:4].float() / 127.5 - 1 for k, v in data.tensors().items() if k in ("A", "B")}
    torch.manual_seed(0)
    m = build_model("dtn", {**tiny_model_args("dtn"), "alpha": 2.0, "beta": 3.0}, data.info)
    ctx = m.prepare(batch)
    out = m.g_loss(batch, ctx)
    assert out["loss"].item() == pytest.approx((out["gang"] + 2 * out["const"] + 3 * out["tid"]).item(), rel=1e-5)
    assert out["tid"].item() == pytest.approx((ctx["fake_t"] - batch["B"]).square().mean().item(), rel=1e-5)
    assert "tv" not in out  # gamma = 0 for digits


def test_nets_are_the_papers_at_32_px():
    info = build_dataset(tiny_data_cfg("dtn")).info
    m = build_model("dtn", {}, info)  # the paper's widths
    convs = [c.out_channels for c in m.f.modules() if isinstance(c, torch.nn.Conv2d)]
    assert convs == [64, 128, 256, 128] and m.f(torch.zeros(2, 1, 32, 32)).shape == (2, 128)
    tconvs = [c.out_channels for c in m.g.modules() if isinstance(c, torch.nn.ConvTranspose2d)]
    assert tconvs == [512, 256, 128, 1]
    assert [c.out_channels for c in m.D.modules() if isinstance(c, torch.nn.Conv2d)] == [128, 256, 512, 3]
    assert m.alpha == m.beta == 15.0 and m.gamma == 0.0


def test_f_is_frozen_in_training_and_kept_in_the_checkpoint(tmp_path):
    t = _train(tmp_path / "a", steps=3)
    model = t.model
    cached = torch.load(fitted_path(model.pretrained()[0]), weights_only=True)["state"]
    now = model.f.state_dict()
    for k, v in cached.items():  # weights and BN running statistics (and their counters) unmoved
        assert torch.equal(now[k].cpu(), v), k
    assert not model.f.training and all(not p.requires_grad for p in model.f.parameters())
    assert "f" not in t.ema
    f_params = {id(p) for p in model.f.parameters()}
    assert not any(id(p) in f_params for o in t.opt.values() for g in o.param_groups for p in g["params"])
    nets = load_run(tmp_path / "a")["nets"]
    assert all(torch.equal(nets[f"f.{k}"], v) for k, v in cached.items())  # the run's own copy


def test_f_cache_is_trained_once_reused_and_a_misfit_refused(tmp_path, monkeypatch):
    calls = []
    fit = dtn.DTN.fit_f
    monkeypatch.setattr(dtn.DTN, "fit_f", lambda self, data: (calls.append(1), fit(self, data))[1])
    args = {"f_epochs": 2}  # a key of its own: no other test has trained this f
    a = _train(tmp_path / "a", **args)
    b = _train(tmp_path / "b", **args)
    assert len(calls) == 1  # the second run read the cache
    assert all(torch.equal(x, y) for x, y in zip(a.model.f.state_dict().values(), b.model.f.state_dict().values()))
    _train(tmp_path / "b", steps=3, resume=str(tmp_path / "b"), **args)  # a resume takes f from its checkpoint
    assert len(calls) == 1
    # a cache file that does not fit (another architecture under this key) is refused in one line
    path = fitted_path(a.model.pretrained()[0])
    other = build_model("dtn", {**tiny_model_args("dtn"), "f_width": 2, **args}, a.model.data)
    torch.save({"key": a.model.f_key(), "state": other.f.state_dict()}, path)
    with pytest.raises(UserError, match="does not fit this model") as e:
        _train(tmp_path / "c", **args)
    assert "\n" not in str(e.value) and "delete the file" in str(e.value)
    # the key names the data and f's architecture
    assert other.f_key() != a.model.f_key()
    assert a.model.data.fingerprint[:16] in a.model.f_key()


def test_f_from_a_run_and_a_mismatched_run_refused(tmp_path):
    a = _train(tmp_path / "a")
    b = _train(tmp_path / "b", f_run=str(tmp_path / "a"), f_epochs=3)  # f_epochs unused: f comes from the run
    assert all(torch.equal(x, y) for x, y in zip(a.model.f.state_dict().values(), b.model.f.state_dict().values()))
    with pytest.raises(UserError, match="does not match this f") as e:
        _train(tmp_path / "c", f_run=str(tmp_path / "a"), f_width=2)
    assert "\n" not in str(e.value) and "f_width" in str(e.value)
    with pytest.raises(UserError, match="model.f_run="):
        _train(tmp_path / "d", f_run=str(tmp_path / "nowhere"))


def test_translate_and_target_identity_without_the_cache(tmp_path, monkeypatch):
    from ganzoo.build import load_model

    _train(tmp_path / "a")
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path / "empty-home"))  # no cached f: the checkpoint has it
    model, _ = load_model(tmp_path / "a", device=torch.device("cpu"))
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    y = model.translate(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    with pytest.raises(UserError, match="AtoB"):
        model.translate(x, "BtoA")
    load_pretrained(model, training=False)  # nothing to load for inference


def test_dtn_refuses_what_it_cannot_take():
    from ganzoo.data.base import DataInfo

    info = DataInfo("x", 1, 28, 10, 10, ("A", "B"), channels_b=1)
    with pytest.raises(UserError, match="dataset.resolution=32"):
        build_model("dtn", {}, info)
    with pytest.raises(UserError, match="gray targets"):
        build_model("dtn", {}, DataInfo("x", 1, 32, 10, 10, ("A", "B"), channels_b=3))


def test_translate_command_maps_source_images_to_the_target(tmp_path, cli_runner):
    from PIL import Image

    from .conftest import invoke

    _train(tmp_path / "run")
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray((torch.rand(32, 32) * 255).to(torch.uint8).numpy(), "L").save(tmp_path / "in" / f"d{i}.png")
    r = invoke(cli_runner, ["translate", f"run={tmp_path / 'run'}", f"input={tmp_path / 'in'}",
                            f"out={tmp_path / 'out'}", "device=cpu"])
    assert r.exit_code == 0, r.output
    outs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outs == ["d0.png", "d1.png", "d2.png"] and Image.open(tmp_path / "out" / "d0.png").size == (32, 32)
    r = invoke(cli_runner, ["translate", f"run={tmp_path / 'run'}", f"input={tmp_path / 'in'}", "direction=BtoA",
                            f"out={tmp_path / 'out2'}", "device=cpu"])
    err = r.stderr.strip()
    assert r.exit_code == 2 and "\n" not in err and "AtoB" in err, r.output
    Image.fromarray((torch.rand(28, 28) * 255).to(torch.uint8).numpy(), "L").save(tmp_path / "in" / "d0.png")
    r = invoke(cli_runner, ["translate", f"run={tmp_path / 'run'}", f"input={tmp_path / 'in' / 'd0.png'}",
                            f"out={tmp_path / 'o.png'}", "device=cpu"])
    assert r.exit_code == 2 and "resize=32" in r.stderr, r.output  # a 28 px digit: the fix is named
    r = invoke(cli_runner, ["translate", f"run={tmp_path / 'run'}", f"input={tmp_path / 'in' / 'd0.png'}",
                            f"out={tmp_path / 'o.png'}", "resize=32", "device=cpu"])
    assert r.exit_code == 0 and Image.open(tmp_path / "o.png").size == (32, 32), r.output


def test_f_needs_labeled_source_images_or_a_cache(tmp_path):
    from ganzoo.data.builders.two_domain import TensorPairDataset

    full = build_dataset(tiny_data_cfg("dtn"))
    unlabeled = TensorPairDataset(full.info, full.a, full.b)  # the same set without its labels
    m = build_model("dtn", {**tiny_model_args("dtn"), "f_epochs": 5}, full.info)  # a key no other test trains
    with pytest.raises(UserError, match="not in its cache") as e:
        load_pretrained(m, training=True)  # no training set handed over, nothing cached
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="has no labels here: give model.f_run="):
        load_pretrained(m, training=True, data=unlabeled)
    assert not fitted_path(m.pretrained()[0]).exists()  # nothing half-written

"""The class-conditional models (cGAN, ACGAN): what the papers specify and what the CLI promises.

ACGAN's class loss reaches D from the real AND the fake batch and is part of G's loss; both models'
outputs depend on the label; class heads return logits (no softmax); unlabeled data is refused;
`ganzoo sample` gives one row per class, exactly the labels asked for, and a one-line error for a
label out of range."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ganzoo import run
from ganzoo.build import build_dataset, build_model
from ganzoo.data.base import DataInfo
from ganzoo.errors import UserError
from ganzoo.losses import d_bce, g_nonsaturating
from ganzoo.models import base as contract
from ganzoo.registry import MODELS
from ganzoo.settings import OptimSettings

from .conftest import TINY_DIGITS, invoke, tiny_model_args, tiny_model_cfg, tiny_trainer_settings

CONDITIONAL = ["acgan", "cgan"]
DIGITS_INFO = DataInfo("digits", 1, 28, 10, 100, ("image", "label"))


def _batch(n: int = 8) -> dict:
    data = build_dataset(dict(TINY_DIGITS), seed=0)
    items = [data[i] for i in range(n)]
    return {"image": torch.stack([it["image"] for it in items]).float() / 127.5 - 1,
            "label": torch.stack([it["label"] for it in items])}


@pytest.mark.parametrize("name", CONDITIONAL)
def test_conditional_contract(name):
    cls = MODELS.get(name)
    assert cls.needs == frozenset({"image", "label"}) and contract.CONDITIONAL in cls.capabilities


def _class_logits_recorder(model) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    model.D.cls.register_forward_hook(lambda _m, _i, out: seen.append(out))
    return seen


def test_acgan_class_loss_uses_real_and_fake_in_d_and_g():
    torch.manual_seed(0)
    model = build_model("acgan", tiny_model_args("acgan"), DIGITS_INFO)
    batch = _batch()
    seen = _class_logits_recorder(model)
    ctx = model.prepare(batch)
    d_out = model.d_loss(batch, ctx)
    assert len(seen) == 2  # D on the real batch, then on the fake batch
    g_real, g_fake = torch.autograd.grad(d_out["loss"], seen, retain_graph=True)
    # the class head's output reaches the loss only through the class term: non-zero grads on both
    assert g_real.abs().sum() > 0 and g_fake.abs().sum() > 0
    # and it is exactly CE on the raw logits: d(CE)/d(logits) = (softmax - onehot) / B, rows sum to 0
    n = batch["label"].shape[0]
    for g, y, logits in ((g_real, batch["label"], seen[0]), (g_fake, ctx["y_fake"], seen[1])):
        want = (logits.detach().softmax(-1) - F.one_hot(y, 10).float()) / n
        torch.testing.assert_close(g, want)
    # G: its loss includes the class term on the fakes, and that term alone reaches G's weights
    seen.clear()
    g_out = model.g_loss(batch, ctx)
    assert len(seen) == 1
    (g_cls,) = torch.autograd.grad(g_out["loss"], seen, retain_graph=True)
    want = (seen[0].detach().softmax(-1) - F.one_hot(ctx["y_fake"], 10).float()) / n
    torch.testing.assert_close(g_cls, want)
    ce_only = F.cross_entropy(seen[0], ctx["y_fake"])
    grads = torch.autograd.grad(ce_only, list(model.G.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_acgan_losses_are_the_paper_sums_on_logits():
    """Eval mode (no dropout, BN running stats) so that D is deterministic: the loss values equal
    BCE_src + CE(real) + CE(fake) for D and non-saturating src + CE(fake) for G, all on raw outputs."""
    torch.manual_seed(0)
    model = build_model("acgan", tiny_model_args("acgan"), DIGITS_INFO).eval()
    batch = _batch()
    ctx = model.prepare(batch)
    with torch.no_grad():
        sr, cr = model.D(batch["image"])
        sf, cf = model.D(ctx["fake"])
        d_want = d_bce(sr, sf) + F.cross_entropy(cr, batch["label"]) + F.cross_entropy(cf, ctx["y_fake"])
        g_want = g_nonsaturating(sf) + F.cross_entropy(cf, ctx["y_fake"])
        torch.testing.assert_close(model.d_loss(batch, ctx)["loss"], d_want)
        torch.testing.assert_close(model.g_loss(batch, ctx)["loss"], g_want)
    assert cr.shape == (8, 10) and sr.shape == (8,)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_no_softmax_anywhere(name):
    model = build_model(name, {}, DIGITS_INFO)
    banned = (nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Sigmoid)
    assert not [m for m in model.modules() if isinstance(m, banned)]
    if name == "acgan":  # the class head is a plain linear layer: its outputs are logits, unbounded
        assert isinstance(model.D.cls, nn.Linear) and model.D.cls.out_features == 10
        _, logits = model.eval().D(torch.randn(4, 1, 28, 28) * 50)
        assert not torch.allclose(logits.sum(-1), torch.ones(4))


@pytest.mark.parametrize("name", CONDITIONAL)
def test_output_changes_with_the_label_for_a_fixed_z(name):
    torch.manual_seed(0)
    model = build_model(name, {}, DIGITS_INFO).eval()
    z = model.sample_latent(4, torch.Generator().manual_seed(1))
    a = model.generate(4, labels=torch.tensor([3, 3, 3, 3]), z=z)
    again = model.generate(4, labels=torch.tensor([3, 3, 3, 3]), z=z)
    b = model.generate(4, labels=torch.tensor([5, 5, 5, 5]), z=z)
    assert a.shape == (4, 1, 28, 28) and torch.equal(a, again)
    assert (a - b).abs().amax(dim=(1, 2, 3)).min() > 1e-4, "the label does not change the output"
    default = model.generate(4, z=z)  # labels default to 0, 1, 2, 3
    torch.testing.assert_close(default, model.generate(4, labels=torch.arange(4), z=z))
    with pytest.raises(ValueError, match="0..9"):
        model.generate(2, labels=torch.tensor([0, 10]))


@pytest.mark.parametrize("name", CONDITIONAL)
def test_unlabeled_dataset_is_refused(name):
    with pytest.raises(UserError, match=r"needs label.*labeled dataset.*dataset=digits"):
        build_model(name, {}, DataInfo("image_folder", 3, 32, 0, 10, ("image",)))


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cgan_run")
    run.train(model_cfg=tiny_model_cfg("cgan"), dataset_cfg=dict(TINY_DIGITS),
              trainer=tiny_trainer_settings(n_samples=20), optim=OptimSettings(), seed=0, run_dir=run_dir, config={})
    return run_dir


def test_training_grid_has_one_row_per_class(cgan_run):
    grid = Image.open(next((cgan_run / "samples").glob("step_*.png")))
    assert grid.size == (2 * 30 + 2, 10 * 30 + 2)  # 20 images: 10 rows (classes) of 2


def test_sample_per_class_gives_one_row_per_class(cli_runner, cgan_run, tmp_path):
    r = invoke(cli_runner, ["sample", f"run={cgan_run}", "per_class=3", f"out={tmp_path / 'grid.png'}"])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "grid.png").size == (3 * 30 + 2, 10 * 30 + 2)  # 3 columns, 10 rows


def test_sample_labels_gives_those_images(cli_runner, cgan_run, tmp_path):
    r = invoke(cli_runner, ["sample", f"run={cgan_run}", "labels=[1,1,7]", f"out={tmp_path / 'pngs'}"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 3


@pytest.mark.parametrize("labels", ["labels=[1,10]", "labels=[-1]"])
def test_sample_label_out_of_range_is_one_line(cli_runner, cgan_run, tmp_path, labels):
    r = invoke(cli_runner, ["sample", f"run={cgan_run}", labels, f"out={tmp_path / 'x.png'}"])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "0..9" in lines[0], r.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("net", ["maxout", "deep"])
def test_cgan_nets_take_the_label_and_train(net, tmp_path):
    """Both cGAN nets (the paper's maxout pair and the deep BN-MLP pair) condition on the label,
    and a 2-step run trains both nets."""
    torch.manual_seed(0)
    model = build_model("cgan", {"net": net}, DIGITS_INFO).eval()
    z = model.sample_latent(2, torch.Generator().manual_seed(1))
    a, b = model.generate(2, labels=torch.tensor([1, 1]), z=z), model.generate(2, labels=torch.tensor([7, 7]), z=z)
    assert (a - b).abs().amax() > 1e-4
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert not torch.equal(model.D(x, torch.tensor([0, 0, 0, 0])), model.D(x, torch.tensor([5, 5, 5, 5])))
    t = run.train(model_cfg={"name": "cgan", "net": net}, dataset_cfg=dict(TINY_DIGITS),
                  trainer=tiny_trainer_settings(), optim=OptimSettings(), seed=0, run_dir=tmp_path, config={})
    assert t.step == 2
    with pytest.raises(UserError, match="unknown net 'mlp'"):
        build_model("cgan", {"net": "mlp"}, DIGITS_INFO)

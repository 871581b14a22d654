"""InfoGAN (Chen et al. 2016, openai/InfoGAN): the MI term trains G and Q, Q shares D's body, the
official learning rates reach the optimizers, and `ganzoo sample traverse=<code>`."""

from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from PIL import Image

from ganzoo import run
from ganzoo.build import build_dataset, build_model, split_name
from ganzoo.data.base import DataInfo
from ganzoo.data.loader import BatchStream
from ganzoo.settings import OptimSettings
from ganzoo.trainer import Trainer

from .conftest import TINY_DIGITS, invoke, tiny_model_args, tiny_model_cfg, tiny_trainer_settings

TINY = tiny_model_args("infogan")
INFO = DataInfo("digits", 1, 28, 10, 100, ("image", "label"))


def _g_inputs(model):
    """Record G's inputs (the latent [z, onehot(c1), c2, c3])."""
    seen = []
    model.G.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach().clone()))
    return seen


def _grads(module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_official_mnist_nets():
    """regularized_gan.py: G 74 -> 1024 -> 7·7·128 -> deconv 64 -> 1; D conv 64, 128, FC 1024; Q FC 128."""
    m = build_model("infogan", {}, INFO)
    lin = [x for x in m.G.modules() if isinstance(x, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in lin] == [(74, 1024), (1024, 7 * 7 * 128)]
    deconv = [x for x in m.G.modules() if isinstance(x, torch.nn.ConvTranspose2d)]
    assert [(x.out_channels, x.kernel_size, x.stride) for x in deconv] == [(64, (4, 4), (2, 2)), (1, (4, 4), (2, 2))]
    conv = [x for x in m.D.body.modules() if isinstance(x, torch.nn.Conv2d)]
    assert [(x.out_channels, x.kernel_size, x.stride) for x in conv] == [(64, (4, 4), (2, 2)), (128, (4, 4), (2, 2))]
    assert [x.out_features for x in m.D.modules() if isinstance(x, torch.nn.Linear)] == [1024, 1]
    assert [x.out_features for x in m.Q.modules() if isinstance(x, torch.nn.Linear)] == [128, 10 + 2]
    assert {x.negative_slope for x in m.modules() if isinstance(x, torch.nn.LeakyReLU)} == {0.01}
    assert m.generate(3).shape == (3, 1, 28, 28)
    m3 = build_model("infogan", TINY, DataInfo("x", 3, 32))
    assert m3.generate(2).shape == (2, 3, 32, 32) and m3.D(torch.zeros(2, 3, 32, 32)).shape == (2,)


def test_q_shares_d_body_heads_separate():
    m = build_model("infogan", TINY, INFO)
    d_ids, q_ids = {id(p) for p in m.D.parameters()}, {id(p) for p in m.Q.parameters()}
    assert not d_ids & q_ids  # the D phase's optimizer gets every parameter once
    body, head = list(m.D.body.parameters()), list(m.D.head.parameters())
    x = torch.randn(4, 1, 28, 28)
    cat_logits, cont = m.q(x)
    g = torch.autograd.grad(cat_logits.sum() + cont.sum(), body + head + list(m.Q.parameters()), allow_unused=True)
    nb, nh = len(body), len(head)
    assert all(t is not None and t.abs().sum() > 0 for t in g[:nb])  # Q reads D's body: the same Parameters
    assert all(t is None for t in g[nb:nb + nh])  # but not D's head
    assert all(t is not None for t in g[nb + nh:])
    logit, cat2, cont2 = m.discriminate(x)  # one body pass for both heads == the separate paths
    assert torch.allclose(logit, m.D(x)) and torch.allclose(cat2, cat_logits) and torch.allclose(cont2, cont)


def test_mi_term_trains_g_and_q():
    torch.manual_seed(0)
    m = build_model("infogan", TINY, INFO)
    ctx = m.prepare({"image": torch.zeros(8, 1, 28, 28)})
    m.info_loss(ctx["fake"], ctx["cat"], ctx["cont"]).backward()
    assert _grads(m.G) and _grads(m.Q) and _grads(m.D.body)
    assert not _grads(m.D.head)


@pytest.mark.parametrize("g_codes", ["fresh", "shared"])
def test_the_g_step_draws_fresh_codes_as_the_official_trainer(tmp_path, g_codes):
    """fresh (default): the G step runs G again on a new draw of z and codes (the official trainer's two
    sess.run calls each sample the prior); shared: it reuses the D step's fake and codes."""
    data = build_dataset(dict(TINY_DIGITS), seed=0)
    m = build_model("infogan", {**TINY, "g_codes": g_codes}, data.info)
    seen = _g_inputs(m)
    stream = BatchStream(data, batch_size=8, seed=0, device=torch.device("cpu"))
    t = Trainer(m, stream, settings=tiny_trainer_settings(), optim=OptimSettings(), run_dir=tmp_path, seed=0,
                device=torch.device("cpu"), meta={})
    t.train_step(next(stream))
    assert len(seen) == (2 if g_codes == "fresh" else 1)
    if g_codes == "fresh":
        assert not torch.equal(seen[0], seen[1])


def test_an_unknown_g_codes_names_the_key():
    from ganzoo.errors import UserError

    with pytest.raises(UserError, match=r"unknown g_codes 'reused' \(known: fresh, shared\): set model.g_codes"):
        build_model("infogan", {**TINY, "g_codes": "reused"}, INFO)


def test_info_terms_are_ce_plus_unit_gaussian_nll():
    m = build_model("infogan", {**TINY, "lambda_cont": 0.5}, INFO)
    t = m.info_terms(torch.zeros(3, 10), torch.zeros(3, 2), torch.tensor([0, 4, 9]), torch.ones(3, 2))
    assert t["q_ce"].item() == pytest.approx(math.log(10))
    assert t["q_nll"].item() == pytest.approx(1.0)  # 0.5 · Σ_d (1 − 0)², d = 2
    assert t["info"].item() == pytest.approx(math.log(10) + 0.5)


def test_learned_std_is_the_official_gaussian_nll():
    m = build_model("infogan", {**TINY, "cont_std": "learned"}, INFO)
    cat_logits, cont_q = m.q(torch.randn(4, 1, 28, 28))
    assert cat_logits.shape == (4, 10) and cont_q.shape == (4, 4)  # means, then log-variances
    mean, logvar = torch.zeros(3, 2), torch.full((3, 2), math.log(4.0))  # σ = 2
    t = m.info_terms(torch.zeros(3, 10), torch.cat([mean, logvar], 1), torch.tensor([0, 4, 9]), torch.ones(3, 2))
    # Σ_d log σ + ½((c − μ)/σ)² = 2 · (log 2 + ⅛): the official logli up to ½ log 2π a dimension
    assert t["q_nll"].item() == pytest.approx(2 * (math.log(2) + 0.125))
    fixed = build_model("infogan", TINY, INFO)
    assert fixed.q(torch.randn(4, 1, 28, 28))[1].shape == (4, 2)
    from ganzoo.errors import UserError

    with pytest.raises(UserError, match=r"unknown cont_std 'free' \(known: fixed, learned\): set model.cont_std"):
        build_model("infogan", {**TINY, "cont_std": "free"}, INFO)


def test_sigmoid_output_is_the_official_range():
    """`output: sigmoid` (regularized_gan.py's MeanBernoulli): G ends in a sigmoid, D and Q see [0, 1] images,
    and what leaves the model (generate, traverse, predict_codes' input) stays in ganzoo's [-1, 1]."""
    torch.manual_seed(0)
    m = build_model("infogan", {**TINY, "output": "sigmoid"}, INFO).eval()
    assert isinstance(m.G.conv[-1], torch.nn.Sigmoid)
    z = m.sample_latent(6, torch.Generator().manual_seed(1))
    raw = m.G(z)
    assert raw.min() >= 0 and raw.max() <= 1
    torch.testing.assert_close(m.generate(6, z=z), raw * 2 - 1)
    x = torch.rand(5, 1, 28, 28) * 2 - 1  # images as the data layer gives them
    torch.testing.assert_close(m.predict_codes(x), m.q((x + 1) / 2)[0])
    grid, _ = m.traverse("c2", 3, torch.Generator().manual_seed(2))
    assert grid.min() >= -1 and grid.max() <= 1 and grid.min() < 0  # mapped back, not left in [0, 1]
    seen = []
    m.D.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    m.train().d_loss({"image": x}, m.prepare({"image": x}))
    torch.testing.assert_close(seen[0], (x + 1) / 2)  # the real batch reaches D in [0, 1]
    assert isinstance(build_model("infogan", TINY, INFO).G.conv[-1], torch.nn.Tanh)  # the default
    from ganzoo.errors import UserError

    with pytest.raises(UserError, match=r"unknown output 'relu' \(known: tanh, sigmoid\): set model.output"):
        build_model("infogan", {**TINY, "output": "relu"}, INFO)


def test_q_bn_false_drops_only_qs_batch_norm():
    """`q_bn: false` replaces the BN of Q's hidden layer by a bias (D's body keeps its BN); true is the official
    head, and both keep the same state-dict keys for the layers they share."""
    from ganzoo.errors import UserError

    off = build_model("infogan", {**TINY, "q_bn": False}, INFO)
    on = build_model("infogan", TINY, INFO)
    assert not any(isinstance(mod, torch.nn.BatchNorm1d) for mod in off.Q.modules())
    assert any(isinstance(mod, torch.nn.BatchNorm1d) for mod in on.Q.modules())
    assert off.Q.net[0].bias is not None and on.Q.net[0].bias is None
    assert sum(isinstance(mod, torch.nn.BatchNorm1d) for mod in off.D.modules()) == \
        sum(isinstance(mod, torch.nn.BatchNorm1d) for mod in on.D.modules()) > 0
    assert {k for k in off.state_dict() if not k.startswith("Q.net.1")} - {"Q.net.0.bias"} == \
        {k for k in on.state_dict() if not k.startswith("Q.net.1")}
    h = torch.randn(4, TINY.get("fc_dim", 1024))  # in training mode the head alone is per-sample only without BN
    torch.testing.assert_close(off.Q.train()(h)[0][:2], off.Q(h[:2])[0])
    assert not torch.allclose(on.Q.train()(h)[0][:2], on.Q(h[:2])[0])
    with pytest.raises(UserError, match=r"model.q_bn='maybe' has the wrong type: model 'infogan' expects bool"):
        build_model("infogan", {**TINY, "q_bn": "maybe"}, INFO)


def test_phases_and_logged_scalars(tmp_path):
    data = build_dataset(dict(TINY_DIGITS), seed=0)
    m = build_model("infogan", TINY, data.info)
    assert [(p.name, p.nets) for p in m.phases()] == [("D", ("D", "Q")), ("G", ("G",))]
    stream = BatchStream(data, batch_size=8, seed=0, device=torch.device("cpu"))
    t = Trainer(m, stream, settings=tiny_trainer_settings(), optim=OptimSettings(), run_dir=tmp_path, seed=0,
                device=torch.device("cpu"), meta={})
    t.train_step(next(stream))
    stats = t.flush_stats()
    for k in ("D/loss", "D/acc", "D/q_ce", "D/q_acc", "D/mi_cat", "D/q_nll", "G/loss", "G/adv", "G/q_ce"):
        assert math.isfinite(stats[k]), k
    assert 0 <= stats["D/q_acc"] <= 1


def test_official_learning_rates_reach_the_optimizers(tmp_path):
    with initialize_config_module(config_module="ganzoo.conf", version_base="1.3"):
        cfg = compose("train", ["model=infogan"])
    c = OmegaConf.to_container(cfg, resolve=True)
    assert c["optim"]["lr"] == 2e-4 and c["optim"]["phases"] == {"G": {"lr": 1e-3}}
    assert c["optim"]["betas"][0] == 0.5 and c["trainer"]["batch_size"] == 128
    name, args = split_name(c["model"], "model")
    assert (args["z_dim"], args["cat_dim"], args["cont_dim"]) == (62, 10, 2)
    assert args["lambda_cat"] == args["lambda_cont"] == 1.0
    data = build_dataset(dict(TINY_DIGITS), seed=0)
    m = build_model(name, {**args, **TINY}, data.info)
    stream = BatchStream(data, batch_size=8, seed=0, device=torch.device("cpu"))
    t = Trainer(m, stream, settings=tiny_trainer_settings(), optim=OptimSettings(**c["optim"]), run_dir=tmp_path,
                seed=0, device=torch.device("cpu"), meta={})
    assert t.opt["D"].param_groups[0]["lr"] == 2e-4 and t.opt["G"].param_groups[0]["lr"] == 1e-3
    assert t.opt["D"].param_groups[0]["betas"] == (0.5, 0.999) == t.opt["G"].param_groups[0]["betas"]
    d_params = {id(p) for p in t.opt["D"].param_groups[0]["params"]}
    assert d_params == {id(p) for p in [*m.D.parameters(), *m.Q.parameters()]}  # Q trains with D's lr


def test_generate_labels_set_the_categorical_code_and_preview_rows():
    m = build_model("infogan", TINY, INFO).eval()
    seen = _g_inputs(m)
    m.generate(4, labels=torch.tensor([3, 3, 7, 0]))
    assert seen[-1][:, 62:72].argmax(1).tolist() == [3, 3, 7, 0]
    g = torch.Generator().manual_seed(1)
    images = m.preview(20, generator=g, batch={})
    assert images.shape[0] == 20 and m.grid_nrow(20) == 2  # one row of 2 per code value
    assert seen[-1][:, 62:72].argmax(1).tolist() == [i // 2 for i in range(20)]
    assert m.grid_nrow(64) == 8  # random codes: a square grid


def test_traverse_grid():
    torch.manual_seed(0)
    m = build_model("infogan", TINY, INFO).eval()
    seen = _g_inputs(m)
    images, nrow = m.traverse("c3", 5, torch.Generator().manual_seed(0))
    assert images.shape == (10 * 5, 1, 28, 28) and nrow == 5
    x = seen[-1].view(10, 5, -1)  # rows x columns x latent
    assert (x[:, :, :62] == x[0, 0, :62]).all()  # z fixed for the whole grid
    assert (x[:, :, 62:72].argmax(-1) == torch.arange(10)[:, None]).all()  # c1 down the rows
    assert torch.allclose(x[:, :, 73], torch.linspace(-2, 2, 5).expand(10, 5))  # c3 across the columns
    assert (x[:, :, 72] == x[0, 0, 72]).all()  # the other continuous code fixed
    grid = images.view(10, 5, -1)
    assert (grid[:, 1:] - grid[:, :-1]).abs().amax(-1).min() > 0  # images change across columns
    assert (grid[1:] - grid[:-1]).abs().amax(-1).min() > 0  # and down the rows
    with pytest.raises(ValueError, match="c2, c3"):
        m.traverse("c1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name in ("infogan", "dcgan"):
        run.train(model_cfg=tiny_model_cfg(name), dataset_cfg=dict(TINY_DIGITS), trainer=tiny_trainer_settings(),
                  optim=OptimSettings(), seed=0, run_dir=root / name, config={})
    return root


def _one_error_line(r, needle: str) -> None:
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], r.stderr


def test_cli_traverse(cli_runner, runs, tmp_path):
    out = tmp_path / "trav.png"
    r = invoke(cli_runner, ["sample", f"run={runs / 'infogan'}", "traverse=c2", f"out={out}"])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (10 * 30 + 2, 10 * 30 + 2)  # 10 columns (default) x 10 code rows, 2-px pad
    r = invoke(cli_runner, ["sample", f"run={runs / 'infogan'}", "traverse=c3", "nrow=4", f"out={out}"])
    assert r.exit_code == 0 and Image.open(out).size == (4 * 30 + 2, 10 * 30 + 2)
    r = invoke(cli_runner, ["sample", f"run={runs / 'infogan'}", "traverse=c9", f"out={out}"])
    _one_error_line(r, "codes: c2, c3")
    r = invoke(cli_runner, ["sample", f"run={runs / 'dcgan'}", "traverse=c2", f"out={out}"])
    _one_error_line(r, "model 'dcgan' has no latent codes to traverse")

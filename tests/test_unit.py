"""UNIT as the paper and mingyuliutw/UNIT specify it: the shared blocks (one Parameter object in both
nets, in the EMA copies and after a resume), the KL term, every loss term and weight on known inputs,
the update order, both translation directions, and the reconstruction suite."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo import checkpoint, run
from ganzoo.build import Splits, build_dataset, build_model
from ganzoo.data.base import DataInfo
from ganzoo.data.loader import BatchStream, to_float
from ganzoo.errors import UserError
from ganzoo.metrics.reconstruction import Reconstruction
from ganzoo.metrics.suite import EvalOptions
from ganzoo.models.base import RECONSTRUCT, TRANSLATE
from ganzoo.models.unit import kl_unit_gaussian
from ganzoo.settings import OptimSettings
from ganzoo.trainer import Trainer

from .conftest import invoke, tiny_data_cfg, tiny_model_args, tiny_model_cfg, tiny_trainer_settings

CPU = torch.device("cpu")
INFO = DataInfo("digits_unpaired", 1, 32, 10, 64, ("A", "B", "label"), channels_b=1)


def _model(**kw):
    torch.manual_seed(0)
    return build_model("unit", {**tiny_model_args("unit"), **kw}, INFO)


def _trainer(model, tmp_path, steps=3, **kw) -> Trainer:
    data = build_dataset(tiny_data_cfg("unit"), seed=0)
    stream = BatchStream(data, batch_size=4, seed=0, device=CPU)
    meta = {"model": {"name": "unit", "args": {}}, "dataset": {}, "data": INFO.to_dict(), "config": {}}
    return Trainer(model, stream, settings=tiny_trainer_settings(max_steps=steps, batch_size=4, **kw),
                   optim=OptimSettings(weight_decay=1e-4), run_dir=tmp_path, seed=0, device=CPU, meta=meta)


def _shared(model) -> list[nn.Parameter]:
    return [*model.E_A.shared.parameters(), *model.G_A.shared.parameters()]


def test_encoders_share_their_last_block_generators_their_first():
    m = _model(n_enc_shared_blk=3, n_gen_shared_blk=1)
    assert m.E_A.shared is m.E_B.shared and m.G_A.shared is m.G_B.shared
    assert len(m.E_A.shared) == 3 and len(m.G_A.shared) == 1
    assert all(any(p is q for q in m.E_B.parameters()) for p in m.E_A.shared.parameters())
    assert not any(p is q for p in m.E_A.front.parameters() for q in m.E_B.parameters())  # the fronts are their own
    assert not any(p is q for p in m.G_A.back.parameters() for q in m.G_B.parameters())
    # the shared block is the last of the encoder and the first of the generator
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(m.E_A(x), m.E_A.shared(m.E_A.front(x)))
    z = torch.randn(2, 8, 16, 16)  # ch 4 x 2 after one downsampling
    assert torch.equal(m.G_B(z), m.G_B.back(m.G_A.shared(z)))


def test_shared_blocks_are_updated_once_per_step_and_stay_shared_in_the_ema_and_after_resume(tmp_path):
    m = _model()
    t = _trainer(m, tmp_path, ema=True, ema_decay=0.5)
    g_params = t.opt["G"].param_groups[0]["params"]
    assert len(g_params) == len({id(p) for p in g_params})  # each shared Parameter once
    shared = _shared(m)
    assert all(sum(p is q for q in g_params) == 1 for p in shared)
    before = [p.detach().clone() for p in shared]
    t.fit()
    assert all(not torch.equal(b, p) for b, p in zip(before, shared))
    assert all(int(t.opt["G"].state[p]["step"]) == 3 for p in shared)  # one Adam step per training step
    assert m.E_A.shared is m.E_B.shared and m.G_A.shared is m.G_B.shared
    assert t.ema["E_A"].shared is t.ema["E_B"].shared and t.ema["G_A"].shared is t.ema["G_B"].shared
    assert t.ema["E_A"].shared is not m.E_A.shared
    # resume: one object again, with the saved weights, EMA and Adam state
    again = _model()
    t2 = _trainer(again, tmp_path / "again", ema=True, ema_decay=0.5)
    t2.load_state_dict(checkpoint.load_run(tmp_path))
    assert again.E_A.shared is again.E_B.shared and again.G_A.shared is again.G_B.shared
    assert t2.ema["E_A"].shared is t2.ema["E_B"].shared and t2.ema["G_A"].shared is t2.ema["G_B"].shared
    for p, q in zip(_shared(again), shared):
        assert torch.equal(p, q) and int(t2.opt["G"].state[p]["step"]) == 3
    for p, q in zip(t2.ema["G_B"].shared.parameters(), t.ema["G_B"].shared.parameters()):
        assert torch.equal(p, q)


def test_kl_is_the_mean_of_mu_squared():
    mu = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert kl_unit_gaussian(mu).item() == pytest.approx(7.5)
    assert kl_unit_gaussian(torch.zeros(3, 4, 2, 2)).item() == 0


class _ConstD(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full((x.shape[0] * 4,), self.value)


def test_losses_on_known_inputs():
    """Each term with its weight (λ0..λ4 = 10, 0.1, 100, 0.1, 100), against numbers worked out by hand."""
    m = _model()
    m.D_A, m.D_B = _ConstD(0.0), _ConstD(2.0)  # BCE(0, real) = log 2; BCE(2, real) = softplus(-2)
    a, b = torch.full((2, 1, 4, 4), 0.5), torch.full((2, 1, 4, 4), -0.5)
    ctx = {"mu_a": torch.full((2, 3), 1.0), "mu_b": torch.full((2, 3), 2.0),
           "x_aa": torch.full((2, 1, 4, 4), 0.25), "x_bb": torch.full((2, 1, 4, 4), -1.0),
           "x_ab": torch.zeros(2, 1, 4, 4), "x_ba": torch.zeros(2, 1, 4, 4),
           "mu_aba": torch.full((2, 3), 3.0), "mu_bab": torch.zeros(2, 3),
           "x_aba": torch.full((2, 1, 4, 4), 0.5), "x_bab": torch.full((2, 1, 4, 4), 0.5)}
    out = m.g_loss({"A": a, "B": b}, ctx)
    assert out["gan"].item() == pytest.approx(10 * (math.log(2) + F.softplus(torch.tensor(-2.0)).item()))
    assert out["kl"].item() == pytest.approx(0.1 * (1 + 4))
    assert out["recon"].item() == pytest.approx(100 * (0.25 + 0.5))
    assert out["kl_cyc"].item() == pytest.approx(0.1 * (9 + 0))
    assert out["cycle"].item() == pytest.approx(100 * (0 + 1.0))
    assert out["loss"].item() == pytest.approx(sum(out[k].item() for k in ("gan", "kl", "recon", "kl_cyc", "cycle")))
    d = m.d_loss({"A": a, "B": b}, ctx)  # D_A: log 2 real + log 2 fake; D_B: softplus(-2) + softplus(2)
    assert d["D_A"].item() == pytest.approx(2 * math.log(2))
    assert d["D_B"].item() == pytest.approx(F.softplus(torch.tensor(-2.0)).item() + F.softplus(torch.tensor(2.0)).item())
    assert d["loss"].item() == pytest.approx(10 * (d["D_A"].item() + d["D_B"].item()))


def test_d_sees_real_then_detached_translations_and_the_g_step_comes_after():
    m = _model()
    assert [(p.name, p.nets) for p in m.phases()] == [("D", ("D_A", "D_B")), ("G", ("E_A", "E_B", "G_A", "G_B"))]
    seen = []
    m.D_A.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    batch = {"A": torch.rand(2, 1, 32, 32) * 2 - 1, "B": torch.rand(2, 1, 32, 32) * 2 - 1}
    ctx = m.prepare(batch)
    m.d_loss(batch, ctx)
    x = seen[0]
    assert x.shape[0] == 4 and torch.equal(x[:2], batch["A"]) and torch.equal(x[2:], ctx["x_ba"].detach())
    assert not x.requires_grad


def test_prepare_decodes_the_noisy_code_and_the_cycle_goes_through_the_other_encoder():
    m = _model()
    batch = {"A": torch.rand(2, 1, 32, 32) * 2 - 1, "B": torch.rand(2, 1, 32, 32) * 2 - 1}
    torch.manual_seed(3)
    ctx = m.prepare(batch)
    torch.manual_seed(3)
    mu_a, mu_b = m.E_A(batch["A"]), m.E_B(batch["B"])
    z = torch.cat([mu_a, mu_b])
    z = z + torch.randn_like(z)
    x_aa, x_ba = m.G_A(z).split(2)
    x_ab, x_bb = m.G_B(z).split(2)
    mu_aba = m.E_B(x_ab)
    assert torch.equal(ctx["mu_a"], mu_a) and torch.equal(ctx["x_aa"], x_aa) and torch.equal(ctx["x_ab"], x_ab)
    assert torch.equal(ctx["x_ba"], x_ba) and torch.equal(ctx["x_bb"], x_bb) and torch.equal(ctx["mu_aba"], mu_aba)
    assert not torch.equal(ctx["x_aa"], m.G_A(mu_a))  # the noise is there in training


def test_translate_both_ways_from_the_posterior_mean():
    m = _model().eval()
    assert m.can(TRANSLATE) and m.can(RECONSTRUCT) and m.directions() == ("AtoB", "BtoA")
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert torch.equal(m.translate(x, "AtoB"), m.G_B(m.E_A(x)))
    assert torch.equal(m.translate(x, "BtoA"), m.G_A(m.E_B(x)))
    assert torch.equal(m.translate(x), m.translate(x, "AtoB"))  # deterministic: z = μ
    assert torch.equal(m.reconstruct(x, "B"), m.G_B(m.E_B(x)))
    with pytest.raises(UserError, match="use AtoB or BtoA"):
        m.translate(x, "AtoC")


@pytest.mark.parametrize("kw,match", [({"n_enc_front_blk": 3}, "same number"), ({"dis_n_layer": 6}, "at least 64 px")])
def test_nets_that_do_not_fit_are_refused_naming_the_setting(kw, match):
    with pytest.raises(UserError, match=match):
        _model(**kw)


class _Recon(nn.Module):
    """Stands in for a model: reconstructs A exactly and B as its negative."""

    data = INFO
    training = False

    def reconstruct(self, x, domain):
        return x if domain == "A" else -x


def test_reconstruction_suite_on_known_reconstructions():
    splits = Splits(tiny_data_cfg("unit", num_test=64))  # halves of 32: A and B
    suite = Reconstruction(_model(), splits, EvalOptions(n_per_class=2, batch_size=7))
    assert {k: v.shape[0] for k, v in suite.images.items()} == {"A": 20, "B": 20}  # n_per_class x 10 classes
    m = suite.metrics(_Recon())
    want_b = to_float(suite.images["B"]).abs().mean().item()  # |(-x) - x| / 2 on the [0, 1] scale
    assert m["recon_l1_A"] == 0 and m["recon_l1_B"] == pytest.approx(want_b)
    assert m["recon_l1"] == pytest.approx(want_b / 2)


def test_reconstruction_suite_refuses_a_model_that_does_not_reconstruct():
    splits = Splits(tiny_data_cfg("cyclegan"))
    model = build_model("cyclegan", tiny_model_args("cyclegan"), INFO)
    with pytest.raises(UserError, match="does not reconstruct"):
        Reconstruction(model, splits, EvalOptions())


def test_cli_translates_a_unit_run_both_ways_and_odd_sizes(tmp_path, cli_runner):
    """`ganzoo translate` on a UNIT run: AtoB is G_B∘E_A, BtoA is G_A∘E_B; a side that is not a multiple
    of 4 (the two downsamplings) is padded and cropped back."""
    import numpy as np
    from PIL import Image

    run_dir = tmp_path / "run"
    run.train(model_cfg=tiny_model_cfg("unit"), dataset_cfg=tiny_data_cfg("unit"),
              trainer=tiny_trainer_settings(batch_size=4, n_samples=2), optim=OptimSettings(), seed=1,
              run_dir=run_dir, config={})
    (tmp_path / "in").mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "in" / "x.png")
    Image.fromarray(pixels[:30, :27], "L").save(tmp_path / "in" / "odd.png")
    model, _ = run.load_model(run_dir, device=CPU)
    x = torch.from_numpy(pixels)[None, None].float() / 127.5 - 1
    outs = {}
    for d in ("AtoB", "BtoA"):
        r = invoke(cli_runner, ["translate", f"run={run_dir}", f"input={tmp_path / 'in'}", f"out={tmp_path / d}",
                                f"direction={d}", "device=cpu"])
        assert r.exit_code == 0, r.stderr
        outs[d] = np.array(Image.open(tmp_path / d / "x.png"))
        want = ((model.translate(x, d)[0, 0] + 1) / 2 * 255).to(torch.uint8).numpy()  # tensor2im: truncated
        assert outs[d].shape == (32, 32) and np.abs(outs[d].astype(int) - want.astype(int)).max() <= 1
        assert np.array(Image.open(tmp_path / d / "odd.png")).shape == (30, 27)
    assert not np.array_equal(outs["AtoB"], outs["BtoA"])
    r = invoke(cli_runner, ["translate", f"run={run_dir}", f"input={tmp_path / 'in'}", "direction=AtoC", "device=cpu"])
    assert r.exit_code != 0 and "AtoB" in r.stderr and len(r.stderr.strip().splitlines()) == 1

"""AdamEpsInSqrt (optim.eps_in_sqrt): the improved-gan update p -= lr * m_hat / sqrt(v_hat + eps), and
a step skipped on the device when the trainer sets found_inf."""

from __future__ import annotations

import pytest
import torch

from ganzoo.optimizers import AdamEpsInSqrt
from ganzoo.settings import OptimSettings
from ganzoo.trainer import make_optimizer, skips_on_device

from .test_reliability import _poison_d_step_3, _stats, _train


def _reference(p, grads, lr, b1, b2, eps, wd):
    """The update written out as openai/improved-gan's nn.adam_updates (plus L2 weight decay)."""
    p, m, v = p.clone(), torch.zeros_like(p), torch.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / torch.sqrt(v / (1 - b2 ** t) + eps)
    return p


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_update_is_the_official_formula_with_eps_inside_the_root(wd):
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    # gradient sizes across the range where eps inside and outside the root disagree
    grads = [torch.randn(5, 3, generator=g, dtype=torch.float64) * s for s in (1e-6, 1e-4, 1e-2, 1.0, 1e-5)]
    p = torch.nn.Parameter(p0.clone())
    opt = AdamEpsInSqrt([p], lr=3e-3, betas=(0.5, 0.999), eps=1e-8, weight_decay=wd)
    for gr in grads:
        p.grad = gr.clone()
        opt.step()
    want = _reference(p0, grads, 3e-3, 0.5, 0.999, 1e-8, wd)
    assert torch.allclose(p.detach(), want, rtol=0, atol=1e-12)
    if wd:
        return  # weight decay makes every gradient large: there both updates agree
    torch_adam = torch.nn.Parameter(p0.clone())
    other = torch.optim.Adam([torch_adam], lr=3e-3, betas=(0.5, 0.999), eps=1e-8, weight_decay=wd)
    for gr in grads:
        torch_adam.grad = gr.clone()
        other.step()
    assert not torch.allclose(torch_adam.detach(), want, rtol=0, atol=1e-4)  # torch's: sqrt(v) + eps


@pytest.mark.parametrize("first", [True, False])
def test_found_inf_makes_the_step_a_no_op_even_with_nan_gradients(first):
    p = torch.nn.Parameter(torch.ones(4))
    opt = AdamEpsInSqrt([p], lr=0.1)
    if not first:
        p.grad = torch.full((4,), 0.5)
        opt.step()
    before = p.detach().clone()
    state = {k: v.clone() for k, v in opt.state[p].items()} if not first else None
    p.grad = torch.tensor([float("nan"), float("inf"), 1.0, -1.0])
    opt.found_inf = torch.ones(())
    opt.step()
    assert torch.equal(p.detach(), before)
    if state is not None:
        assert all(torch.equal(opt.state[p][k], v) for k, v in state.items())
    else:
        assert float(opt.state[p]["step"]) == 0 and torch.isfinite(opt.state[p]["exp_avg_sq"]).all()
    p.grad, opt.found_inf = torch.full((4,), 0.5), torch.zeros(())  # the next good step proceeds
    opt.step()
    assert not torch.equal(p.detach(), before) and torch.isfinite(p).all()


def test_make_optimizer_builds_it_only_for_adam():
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = make_optimizer(params, OptimSettings(eps_in_sqrt=True, lr=1e-3, eps=1e-8), {})
    assert isinstance(opt, AdamEpsInSqrt) and skips_on_device(opt)
    assert not isinstance(make_optimizer(params, OptimSettings(), {}), AdamEpsInSqrt)
    with pytest.raises(ValueError, match="optim.name=adam or optim.eps_in_sqrt=false"):
        make_optimizer(params, OptimSettings(name="sgd", eps_in_sqrt=True), {})


def test_trainer_skips_a_nan_step_on_the_device_and_resumes_exactly(tmp_path):
    optim = OptimSettings(eps_in_sqrt=True)
    snap = {}
    t = _train(tmp_path / "a", hook=_poison_d_step_3(snap), optim=optim)
    assert isinstance(t.opt["D"], AdamEpsInSqrt)
    assert all(torch.equal(a, b) for a, b in zip(snap["before"], snap["after"])), "the bad D step changed D"
    assert sum(r.get("nonfinite/D", 0) for r in _stats(tmp_path / "a")) == 1
    # stop at 3, resume to 6: the same weights as one run of 6 steps
    full = _train(tmp_path / "full", optim=optim)
    _train(tmp_path / "half", optim=optim, max_steps=3)
    resumed = _train(tmp_path / "half", optim=optim, resume=str(tmp_path / "half"))
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

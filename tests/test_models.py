"""Every registered model, through the real trainer: trains, saves, resumes exactly, samples; each
phase's gradients reach only its own nets; model-specific facts from the papers."""

from __future__ import annotations

import json

import pytest
import torch

from ganzoo import run
from ganzoo.build import build_dataset, build_model
from ganzoo.checkpoint import load_run
from ganzoo.data.loader import BatchStream
from ganzoo.registry import MODELS
from ganzoo.settings import OptimSettings
from ganzoo.trainer import Trainer

from .conftest import (
    tiny_data_cfg,
    tiny_generator_forwards,
    tiny_model_args,
    tiny_model_cfg,
    tiny_trainer_settings,
)

ALL_MODELS = MODELS.names()


def _train(name: str, run_dir, resume=None, **kw):
    return run.train(model_cfg=tiny_model_cfg(name), dataset_cfg=tiny_data_cfg(name),
                     trainer=tiny_trainer_settings(**kw), optim=OptimSettings(), seed=3, run_dir=run_dir, config={},
                     resume=resume)


def _losses(run_dir) -> list[dict]:
    lines = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in rec.items() if k not in ("time", "steps_per_s")} for rec in lines]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_trains_saves_resumes_exactly_and_samples(name, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    a = _train(name, straight, max_steps=4)
    _train(name, split, max_steps=2)
    b = _train(name, split, resume=str(split), max_steps=4)
    assert a.step == b.step == 4
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs after resume"
    for ka, kb in zip(a.opt.values(), b.opt.values()):
        for (_pa, sta), (_pb, stb) in zip(ka.state.items(), kb.state.items()):
            for key in sta:
                assert torch.equal(sta[key], stb[key]) if torch.is_tensor(sta[key]) else sta[key] == stb[key]
    assert _losses(straight) == _losses(split)
    ck = load_run(split)
    assert ck["step"] == 4 and ck["model"]["name"] == name
    out = run.sample(run=str(split), n=6, out=str(tmp_path / "s.png"), device="cpu")
    assert out.exists() and out.stat().st_size > 100


def _tiny_trainer(name: str, tmp_path, args: dict | None = None) -> Trainer:
    data = build_dataset(tiny_data_cfg(name), seed=0)
    model = build_model(name, tiny_model_args(name) if args is None else args, data.info)
    stream = BatchStream(data, batch_size=8, seed=0, device=torch.device("cpu"))
    return Trainer(model, stream, settings=tiny_trainer_settings(), optim=OptimSettings(), run_dir=tmp_path, seed=0,
                   device=torch.device("cpu"), meta={})


@pytest.mark.parametrize("name", ALL_MODELS)
def test_each_phase_grads_reach_only_its_nets(name, tmp_path):
    t = _tiny_trainer(name, tmp_path)
    model, stream = t.model, t.stream
    batch = next(stream)
    t._set_trainable(None)
    ctx = model.prepare(batch)
    for phase in t.phases:
        model.zero_grad(set_to_none=True)
        t._set_trainable(phase.nets)
        phase.loss(batch, ctx)["loss"].backward(retain_graph=True)
        for net_name, net in t.nets.items():
            has_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
            assert has_grad == (net_name in phase.nets), f"phase {phase.name}: grads in {net_name}={has_grad}"


def _check_generator_forwards(name: str, args: dict, tmp_path) -> None:
    t = _tiny_trainer(name, tmp_path, args)
    model, stream = t.model, t.stream
    expected = tiny_generator_forwards(name, args)
    calls = {net: 0 for net in expected}
    for net in expected:
        getattr(model, net).register_forward_hook(lambda *a, net=net: calls.__setitem__(net, calls[net] + 1))
    t.train_step(next(stream))
    assert calls == expected


@pytest.mark.parametrize("name", ALL_MODELS)
def test_one_generator_forward_per_iteration(name, tmp_path):
    """No more G passes per iteration than the reference code (1 for GAN/DCGAN). A model with other
    generators or passes has its own row in tests/tiny.py's G_FORWARDS = {net name: forwards per
    iteration} (CycleGAN: G_A 3, G_B 3; SSGAN with separate feature-matching batches: G 2, as the
    official code's fresh z for the G step)."""
    _check_generator_forwards(name, tiny_model_args(name), tmp_path)


@pytest.mark.parametrize("name,extra", [("cyclegan", {"lambda_identity": 0.0}), ("ssgan", {"fm_batches": "shared"}),
                                        ("infogan", {"g_codes": "shared"})])
def test_generator_forwards_of_the_non_default_variants(name, extra, tmp_path):
    """G_FORWARDS' other branches: CycleGAN without identity loss 2 per G, SSGAN with shared batches 1,
    InfoGAN with shared codes 1."""
    _check_generator_forwards(name, {**tiny_model_args(name), **extra}, tmp_path)


def test_resume_refuses_a_different_model(tmp_path):
    _train("dcgan", tmp_path, max_steps=1)
    from ganzoo.errors import UserError

    with pytest.raises(UserError, match=r"model dcgan -> gan.*resume_force=true"):
        _train("gan", tmp_path, resume=str(tmp_path), max_steps=2)


def test_dcgan_adapts_to_size_and_channels():
    from ganzoo.data.base import DataInfo

    for res, ch in [(28, 1), (32, 3), (64, 3), (64, 1)]:
        m = build_model("dcgan", tiny_model_args("dcgan"), DataInfo("x", ch, res))
        assert m.generate(2).shape == (2, ch, res, res)
        assert m.D(torch.zeros(2, ch, res, res)).shape == (2,)


def test_dcgan_paper_facts():
    """Newmu/dcgan_code: 64 px, ngf=128 -> 4x4x1024 projection, 5x5 kernels, N(0, 0.02) init."""
    from ganzoo.data.base import DataInfo

    torch.manual_seed(0)
    m = build_model("dcgan", {"ngf": 128, "ndf": 128}, DataInfo("x", 3, 64))
    assert m.G.project[0].out_features == 4 * 4 * 1024
    convs = [mod for mod in m.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert all(c.kernel_size == (5, 5) for c in convs)
    w = torch.cat([c.weight.flatten() for c in convs])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002


def test_gan_paper_facts():
    """goodfeli/adversarial mnist.yaml: G 100-1200-1200-784, D maxout 240x5 twice."""
    from ganzoo.data.base import DataInfo
    from ganzoo.nn.layers import Maxout

    m = build_model("gan", {}, DataInfo("x", 1, 28))
    lin = [mod for mod in m.G.modules() if isinstance(mod, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in lin] == [(100, 1200), (1200, 1200), (1200, 784)]
    mx = [mod for mod in m.D.modules() if isinstance(mod, Maxout)]
    assert [(x.units, x.pieces) for x in mx] == [(240, 5), (240, 5)]

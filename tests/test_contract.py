"""The model contract's second step, on small stand-in models: parameters shared by two nets (CoGAN,
UNIT) get one update per step and stay shared through the EMA and a resume; frozen pretrained parts
stay out of every optimizer, the EMA, train() and the checkpoint, and are filled by the one resolver."""

from __future__ import annotations

import torch
from torch import nn

from ganzoo import checkpoint
from ganzoo.build import load_pretrained
from ganzoo.data.base import DataInfo
from ganzoo.data.loader import BatchStream
from ganzoo.losses import d_bce, g_nonsaturating
from ganzoo.models.base import GENERATE, GANModel, Phase, Pretrained
from ganzoo.settings import OptimSettings, TrainerSettings
from ganzoo.trainer import Trainer

from .conftest import TINY_DIGITS

CPU = torch.device("cpu")
INFO = DataInfo("digits", 1, 28, 10, 256, ("image", "label"))


class SharedPair(GANModel):
    """Two generators sharing their first layer (CoGAN-style), one discriminator; optionally a frozen
    feature net `f` (DTN-style) whose weights come from another run."""

    capabilities = frozenset({GENERATE})
    ema_nets = ("G1", "G2")

    def __init__(self, data: DataInfo, frozen_from: str | None = None):
        super().__init__(data)
        shared = nn.Linear(8, 32)
        self.G1 = nn.Sequential(shared, nn.ReLU(), nn.Linear(32, 28 * 28), nn.Tanh())
        self.G2 = nn.Sequential(shared, nn.ReLU(), nn.Linear(32, 28 * 28), nn.Tanh())
        self.D = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 1))
        self.f = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 4), nn.BatchNorm1d(4))
        self.frozen_from = frozen_from

    def pretrained(self) -> list[Pretrained]:
        return [Pretrained("f", "run", self.frozen_from, net="f", when="always")] if self.frozen_from else []

    def prepare(self, batch):
        z = torch.randn(batch["image"].shape[0], 8)
        return {"fake1": self.G1(z).view(-1, 1, 28, 28), "fake2": self.G2(z).view(-1, 1, 28, 28)}

    def phases(self):
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("G1", "G2"), self.g_loss)]

    def d_loss(self, batch, ctx):
        real = batch["image"]
        feat = self.f(real)  # the frozen part runs in every step (its BN statistics must not move)
        return {"loss": d_bce(self.D(real), self.D(ctx["fake1"].detach())) + 0 * feat.sum()}

    def g_loss(self, batch, ctx):
        return {"loss": g_nonsaturating(self.D(ctx["fake1"])) + g_nonsaturating(self.D(ctx["fake2"]))}

    def generate(self, n, *, labels=None, generator=None, z=None):
        return self.G1(torch.randn(n, 8, generator=generator)).view(-1, 1, 28, 28)


def _trainer(model: GANModel, tmp_path, steps: int = 3, **kw) -> Trainer:
    from ganzoo.build import build_dataset

    s = TrainerSettings(max_steps=steps, batch_size=8, log_every=1, sample_every=0, ckpt_every=0, n_samples=4,
                        progress=False, tensorboard=False, device="cpu", **kw)
    stream = BatchStream(build_dataset(dict(TINY_DIGITS)), batch_size=8, seed=0, device=CPU)
    return Trainer(model, stream, settings=s, optim=OptimSettings(), run_dir=tmp_path, seed=0, device=CPU,
                   meta={"model": {"name": "shared", "args": {}}, "dataset": {}, "data": INFO.to_dict(),
                         "config": {}})


def test_a_shared_layer_is_one_parameter_updated_once_per_step(tmp_path):
    torch.manual_seed(0)
    model = SharedPair(INFO)
    t = _trainer(model, tmp_path, ema=True, ema_decay=0.5)
    g_params = t.opt["G"].param_groups[0]["params"]
    assert len(g_params) == len({id(p) for p in g_params}) == 6  # shared w, b + 2 heads' w, b
    shared = model.G1[0].weight
    before = shared.detach().clone()
    t.fit()
    assert not torch.equal(before, shared)
    assert int(t.opt["G"].state[shared]["step"]) == 3  # one Adam step per training step
    assert model.G1[0] is model.G2[0]
    assert t.ema["G1"][0].weight is t.ema["G2"][0].weight  # the EMA copy shares it too
    # resume: the shared layer is one object again, with the saved weights and optimizer state
    again = SharedPair(INFO)
    t2 = _trainer(again, tmp_path / "again", ema=True, ema_decay=0.5)
    t2.load_state_dict(checkpoint.load_run(tmp_path))
    assert again.G1[0] is again.G2[0] and torch.equal(again.G1[0].weight, shared)
    assert t2.ema["G1"][0].weight is t2.ema["G2"][0].weight
    assert torch.equal(t2.ema["G1"][0].weight, t.ema["G1"][0].weight)
    assert int(t2.opt["G"].state[again.G1[0].weight]["step"]) == 3


def test_a_parameter_in_two_phases_is_refused(tmp_path):
    model = SharedPair(INFO)
    model.D = nn.Sequential(model.G1[0], nn.Linear(32, 1))  # D shares G's layer: two updates a step
    model.d_loss = lambda batch, ctx: {"loss": model.D(torch.zeros(2, 8)).mean()}
    try:
        _trainer(model, tmp_path)
    except ValueError as e:
        assert "updated twice per step" in str(e)
    else:
        raise AssertionError("a parameter trained by two phases was accepted")


def test_frozen_part_is_loaded_from_a_run_and_never_trained_or_saved(tmp_path):
    torch.manual_seed(0)
    source = SharedPair(INFO)
    with torch.no_grad():
        source.f[1].weight.fill_(0.5)
        source.f[2].running_mean.fill_(3.0)
    src = _trainer(source, tmp_path / "source", steps=1)  # a run that holds an f
    src.fit()
    want = {k: v.clone() for k, v in checkpoint.load_run(tmp_path / "source")["nets"].items() if k.startswith("f.")}
    assert want  # a plain run saves its f; the frozen one below does not

    model = SharedPair(INFO, frozen_from=str(tmp_path / "source"))
    load_pretrained(model, training=True)
    assert torch.equal(model.f[1].weight, want["f.1.weight"])
    assert all(not p.requires_grad for p in model.f.parameters())
    t = _trainer(model, tmp_path / "frozen", ema=True)
    assert "f" not in t.ema and all(p is not q for o in t.opt.values() for g in o.param_groups
                                    for p in g["params"] for q in model.f.parameters())
    t.fit()
    assert not model.f.training and model.training  # train() keeps the frozen part in eval mode
    assert torch.equal(model.f[1].weight, want["f.1.weight"])
    assert torch.equal(model.f[2].running_mean, want["f.2.running_mean"])  # BN statistics did not move
    nets = checkpoint.load_run(tmp_path / "frozen")["nets"]
    assert not any(k.startswith("f.") for k in nets) and any(k.startswith("G1.") for k in nets)
    # rebuilt for inference, the "always" part is filled again by the resolver
    rebuilt = SharedPair(INFO, frozen_from=str(tmp_path / "source"))
    rebuilt.load_state_dict(nets)
    load_pretrained(rebuilt, training=False)
    assert torch.equal(rebuilt.f[2].running_mean, want["f.2.running_mean"])

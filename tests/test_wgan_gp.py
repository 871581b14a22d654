"""WGAN-GP (Gulrajani et al. 2017, Algorithm 1): the penalty is exactly (‖∇D(x̂)‖₂ − 1)² on per-sample
interpolates of real and fake, in float32 under autocast; the critic loss and the generator loss are
the paper's; G steps once per n_critic = 5 trainer steps; the critic has no batch norm; the config is
the paper's. (Training, bitwise resume, sampling and per-phase gradient isolation run in
tests/test_models.py for every model.)"""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_module
from torch import nn

from ganzoo.build import build_dataset, build_model
from ganzoo.data.base import DataInfo
from ganzoo.data.loader import BatchStream
from ganzoo.errors import UserError
from ganzoo.models.wgan_gp import gradient_penalty
from ganzoo.settings import OptimSettings, TrainerSettings
from ganzoo.trainer import Trainer

from .conftest import TINY_DIGITS, tiny_model_args

INFO = DataInfo("digits", 1, 28, 10, 100, ("image", "label"))
TINY = tiny_model_args("wgan_gp")


class LinearCritic(nn.Module):
    """D(x) = w·x: ∇D(x) = w everywhere, so ‖∇D(x̂)‖₂ = ‖w‖₂ for every interpolate. Keeps its inputs."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return x.flatten(1) @ self.w.flatten()


def _critic(norm: float, seed: int = 0) -> LinearCritic:
    w = torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(seed))
    return LinearCritic(w * (norm / w.norm()))


def _real_fake(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.rand(n, 1, 28, 28, generator=g) * 2 - 1


@pytest.mark.parametrize("norm", [0.0, 0.5, 1.0, 3.0])
def test_penalty_is_squared_distance_of_the_gradient_norm_from_one(norm):
    real, fake = _real_fake()
    gp, grad_norm = gradient_penalty(_critic(norm), real, fake)
    assert gp.item() == pytest.approx((norm - 1) ** 2, abs=1e-5)
    assert grad_norm.item() == pytest.approx(norm, abs=1e-5)


def test_penalty_interpolates_with_one_uniform_eps_per_sample():
    real, fake = _real_fake(n=64)
    critic = _critic(2.0)
    gradient_penalty(critic, real, fake)
    (x_hat,) = critic.inputs
    d, h = (real - fake).flatten(1), (x_hat - fake).flatten(1)
    eps = (h * d).sum(1) / (d * d).sum(1)  # the least-squares ε of each sample
    assert torch.allclose(h, eps[:, None] * d, atol=1e-6)  # x̂ = ε·real + (1 − ε)·fake, one ε per sample
    assert (eps >= 0).all() and (eps <= 1).all()
    assert eps.std() > 0.15 and 0.3 < eps.mean() < 0.7  # U[0, 1]: std 0.29, mean 0.5


def test_penalty_is_float32_under_bf16_autocast():
    real, fake = _real_fake()
    critic = _critic(3.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert critic(real).dtype == torch.bfloat16  # the critic alone would run in bf16 here
        gp, _ = gradient_penalty(critic, real, fake)
    assert gp.dtype == torch.float32
    assert gp.item() == pytest.approx(4.0, abs=1e-5)  # in bf16: 3.9983
    assert critic.inputs[-1].dtype == torch.float32


def test_critic_and_generator_losses_are_the_papers():
    torch.manual_seed(0)
    model = build_model("wgan_gp", TINY, INFO)
    model.D = _critic(3.0)
    real, fake = _real_fake()
    out = model.d_loss({"image": real}, {"fake": fake})
    d_real, d_fake = model.D(real).mean(), model.D(fake).mean()
    assert out["loss"].item() == pytest.approx((d_fake - d_real).item() + 10 * (3.0 - 1) ** 2, abs=1e-4)
    assert out["wasserstein"].item() == pytest.approx((d_real - d_fake).item(), abs=1e-5)
    assert out["gp"].item() == pytest.approx(4.0, abs=1e-5)
    assert model.g_loss({"image": real}, {"fake": fake})["loss"].item() == pytest.approx(-d_fake.item(), abs=1e-5)


def test_generator_steps_once_per_five_critic_steps(tmp_path):
    data = build_dataset(TINY_DIGITS, seed=0)
    model = build_model("wgan_gp", TINY, data.info)
    stream = BatchStream(data, batch_size=8, seed=0, device=torch.device("cpu"))
    settings = TrainerSettings(max_steps=10, batch_size=8, sample_every=0, ckpt_every=0, n_samples=4,
                               progress=False, tensorboard=False, device="cpu")
    t = Trainer(model, stream, settings=settings, optim=OptimSettings(), run_dir=tmp_path, seed=0,
                device=torch.device("cpu"), meta={})
    assert [(p.name, p.nets, p.every) for p in t.phases] == [("D", ("D",), 1), ("G", ("G",), 5)]
    steps = {"D": 0, "G": 0}
    for name, opt in t.opt.items():
        opt.register_step_post_hook(lambda *a, name=name: steps.__setitem__(name, steps[name] + 1))
    g_before = None
    for i in range(10):
        t.train_step(next(stream))
        g_now = [p.detach().clone() for p in model.G.parameters()]
        if i in (2, 3, 4, 6, 7, 8, 9) and g_before is not None:  # no G step on steps 1-4, 6-9
            assert all(torch.equal(a, b) for a, b in zip(g_before, g_now)), f"G changed on step {i}"
        g_before = g_now
    assert steps == {"D": 10, "G": 2}  # steps 0 and 5
    assert all(s["step"].item() == 2 for s in t.opt["G"].state.values())
    assert all(s["step"].item() == 10 for s in t.opt["D"].state.values())


@pytest.mark.parametrize("critic_norm", ["none", "layer"])
def test_critic_has_no_batch_norm_and_scores_each_sample_alone(critic_norm):
    torch.manual_seed(0)
    for info in (INFO, DataInfo("cifar", 3, 32)):
        model = build_model("wgan_gp", {**TINY, "critic_norm": critic_norm}, info).train()
        mods = list(model.D.modules())
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in mods)
        groups = [m for m in mods if isinstance(m, nn.GroupNorm)]
        assert all(m.num_groups == 1 for m in groups)  # layer norm over (C, H, W), per sample
        convs = sum(isinstance(m, nn.Conv2d) for m in mods)
        assert len(groups) == (0 if critic_norm == "none" else convs - 1)  # every conv but the first
        x = torch.randn(5, info.channels, info.resolution, info.resolution)
        assert torch.allclose(model.D(x)[:2], model.D(x[:2]), atol=1e-5)  # no batch statistics


def test_unknown_critic_norm_names_the_options():
    with pytest.raises(UserError, match=r"critic_norm 'batch'.*none, layer"):
        build_model("wgan_gp", {**TINY, "critic_norm": "batch"}, INFO)


def test_config_holds_the_papers_defaults():
    with initialize_config_module(config_module="ganzoo.conf", version_base="1.3"):
        cfg = compose("train", overrides=["model=wgan_gp"])
    assert (cfg.model.gp_lambda, cfg.model.n_critic, cfg.model.critic_norm) == (10.0, 5, "none")
    assert cfg.optim.name == "adam" and cfg.optim.lr == 1e-4 and list(cfg.optim.betas) == [0.0, 0.9]
    assert cfg.trainer.batch_size == 64

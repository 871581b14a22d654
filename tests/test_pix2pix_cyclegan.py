"""pix2pix and CycleGAN as the papers and junyanz/pytorch-CycleGAN-and-pix2pix specify them: the image
pool, passes per iteration, each loss term and its weight, direction, the epoch-based LR schedule,
and the translation inference contract."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from ganzoo import run
from ganzoo.build import build_dataset, build_model
from ganzoo.checkpoint import load_run
from ganzoo.data.base import DataInfo
from ganzoo.data.loader import BatchStream
from ganzoo.errors import UserError
from ganzoo.nn.image_pool import ImagePool
from ganzoo.settings import OptimSettings, TrainerSettings, length_given, resolve_epochs
from ganzoo.trainer import Trainer

from .conftest import invoke, tiny_data_cfg, tiny_model_args, tiny_model_overrides, tiny_trainer_settings

PAIRS = tiny_data_cfg("pix2pix")
UNPAIRED = tiny_data_cfg("cyclegan")
TINY_P2P = tiny_model_args("pix2pix")
# smaller than the table's CycleGAN (one residual block) and with the default pools of 50
TINY_CYC = {"netG": "resnet_1blocks", "ngf": 8, "ndf": 8}


def info(ca=1, cb=1, res=32, aligned=True) -> DataInfo:
    return DataInfo("pairs", ca, res, 0, 16, ("A", "B"), channels_b=cb, aligned=aligned)


def batch(n=2, ca=1, cb=1, res=32, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, ca, res, res, generator=g) * 2 - 1, "B": torch.rand(n, cb, res, res, generator=g) * 2 - 1}


# -- the image pool (util/image_pool.py) ------------------------------------------------------------

def test_pool_returns_the_first_50_as_they_are_then_swaps_half():
    torch.manual_seed(0)
    pool = ImagePool(50, (1, 1, 1))
    first = torch.arange(50.0).view(50, 1, 1, 1)
    for i in range(0, 50, 5):  # batches of 5: all kept, all returned as they are
        assert torch.equal(pool.query(first[i:i + 5]), first[i:i + 5])
    assert torch.equal(pool.images, first) and int(pool.count) == 50
    swapped, stored = 0, set(range(50))
    for k in range(400):
        new = torch.full((1, 1, 1, 1), 1000.0 + k)
        before = pool.images.clone()
        got = pool.query(new)
        if torch.equal(got, new):  # returned as it is; the pool unchanged
            assert torch.equal(pool.images, before)
        else:  # an older image comes back and the new one takes its slot
            swapped += 1
            slot = int((pool.images != before).flatten().nonzero())
            assert got.item() == before[slot].item() and int(got.item()) in stored
            assert pool.images[slot].item() == new.item()
            stored.discard(int(got.item()))
            stored.add(int(new.item()))
    assert 160 < swapped < 240  # p = 1/2: 200 ± 4 sd


def test_pool_draws_from_torchs_global_generator():
    def run_pool(seed):
        torch.manual_seed(seed)
        pool = ImagePool(3, (1, 1, 1))
        return torch.cat([pool.query(torch.full((2, 1, 1, 1), float(k))) for k in range(30)]).flatten().tolist()
    assert run_pool(1) == run_pool(1) != run_pool(2)
    assert torch.equal(ImagePool(0, (1, 1, 1)).query(torch.ones(2, 1, 1, 1)), torch.ones(2, 1, 1, 1))


def test_pool_contents_survive_a_checkpoint_resume(tmp_path):
    """1 step + resume + 1 step leaves the pools exactly as 2 steps in one go; the checkpoint holds them."""
    args = {**TINY_CYC, "pool_size": 12}

    def train(run_dir, steps, resume=None):
        return run.train(model_cfg={"name": "cyclegan", **args}, dataset_cfg=UNPAIRED,
                         trainer=tiny_trainer_settings(max_steps=steps), optim=OptimSettings(), seed=0, run_dir=run_dir,
                         config={}, resume=resume)

    straight = train(tmp_path / "straight", 2).model
    train(tmp_path / "split", 1)
    nets = load_run(tmp_path / "split")["nets"]
    assert int(nets["fake_B_pool.count"]) == 8 and int(nets["fake_A_pool.count"]) == 8  # one batch of 8 so far
    assert nets["fake_B_pool.images"][:8].abs().sum() > 0 and nets["fake_B_pool.images"][8:].eq(0).all()
    resumed = train(tmp_path / "split", 2, resume=str(tmp_path / "split")).model
    for pool in ("fake_A_pool", "fake_B_pool"):
        a, b = getattr(straight, pool), getattr(resumed, pool)
        assert a._count == b._count == 12 and torch.equal(a.images, b.images) and torch.equal(a.count, b.count)


# -- passes per iteration ---------------------------------------------------------------------------

def _trainer(name: str, args: dict, data: dict, tmp_path) -> Trainer:
    ds = build_dataset(data, seed=0)
    model = build_model(name, args, ds.info)
    stream = BatchStream(ds, batch_size=4, seed=0, device=torch.device("cpu"))
    return Trainer(model, stream, settings=tiny_trainer_settings(), optim=OptimSettings(), run_dir=tmp_path, seed=0,
                   device=torch.device("cpu"), meta={})


def _count_forwards(t: Trainer, nets: list[str]) -> dict[str, int]:
    calls = {n: 0 for n in nets}
    for n in nets:
        getattr(t.model, n).register_forward_hook(lambda *a, n=n: calls.__setitem__(n, calls[n] + 1))
    t.train_step(next(t.stream))
    return calls


def test_pix2pix_passes(tmp_path):
    # one G forward; D: fake and real in its step, the fake again in G's step
    assert _count_forwards(_trainer("pix2pix", TINY_P2P, PAIRS, tmp_path), ["G", "D"]) == {"G": 1, "D": 3}


@pytest.mark.parametrize("identity,g", [(0.5, 3), (0.0, 2)])
def test_cyclegan_passes(tmp_path, identity, g):
    t = _trainer("cyclegan", {**TINY_CYC, "lambda_identity": identity}, UNPAIRED, tmp_path)
    assert _count_forwards(t, ["G_A", "G_B", "D_A", "D_B"]) == {"G_A": g, "G_B": g, "D_A": 3, "D_B": 3}


# -- losses -----------------------------------------------------------------------------------------

def test_pix2pix_losses():
    torch.manual_seed(0)
    m = build_model("pix2pix", {**TINY_P2P, "use_dropout": False}, info(1, 3))
    assert m.D.model[0].in_channels == 4  # D sees concat(A, B)
    b = batch(ca=1, cb=3)
    ctx = m.prepare(b)
    fake = ctx["fake_B"]
    assert torch.equal(fake, m.G(b["A"]))
    d = m.d_loss(b, ctx)
    logits_fake, logits_real = m.D(torch.cat([b["A"], fake], 1)), m.D(torch.cat([b["A"], b["B"]], 1))
    bce_fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    bce_real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
    assert torch.allclose(d["loss"], 0.5 * (bce_fake + bce_real), atol=1e-6)
    gl = m.g_loss(b, ctx)
    l1 = (fake - b["B"]).abs().mean()
    gan = F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))
    assert torch.allclose(gl["loss"], gan + 100 * l1, atol=1e-5) and torch.allclose(gl["L1"], l1)
    m.lambda_L1 = 0.0
    assert torch.allclose(m.g_loss(b, ctx)["loss"], gan, atol=1e-6)


def test_cyclegan_losses_on_a_hand_made_batch():
    torch.manual_seed(0)
    m = build_model("cyclegan", {**TINY_CYC, "pool_size": 0}, info(aligned=False))
    b = batch(seed=3)
    a, bb = b["A"], b["B"]
    ctx = m.prepare(b)
    fake_b, fake_a = m.G_A(a), m.G_B(bb)
    for key, want in [("fake_B", fake_b), ("rec_A", m.G_B(fake_b)), ("fake_A", fake_a), ("rec_B", m.G_A(fake_a))]:
        assert torch.allclose(ctx[key], want, atol=1e-6), key
    gl = m.g_loss(b, ctx)
    want = {"gan_A": ((m.D_A(fake_b) - 1) ** 2).mean(), "gan_B": ((m.D_B(fake_a) - 1) ** 2).mean(),
            "cycle_A": 10 * (m.G_B(fake_b) - a).abs().mean(), "cycle_B": 10 * (m.G_A(fake_a) - bb).abs().mean(),
            "idt_A": 10 * 0.5 * (m.G_A(bb) - bb).abs().mean(), "idt_B": 10 * 0.5 * (m.G_B(a) - a).abs().mean()}
    for k, v in want.items():
        assert torch.allclose(gl[k], v, atol=1e-5), k
    assert torch.allclose(gl["loss"], sum(want.values()), atol=1e-4)
    dl = m.d_loss(b, ctx)
    d_a = 0.5 * (((m.D_A(bb) - 1) ** 2).mean() + (m.D_A(fake_b) ** 2).mean())
    d_b = 0.5 * (((m.D_B(a) - 1) ** 2).mean() + (m.D_B(fake_a) ** 2).mean())
    assert torch.allclose(dl["D_A"], d_a, atol=1e-6) and torch.allclose(dl["loss"], d_a + d_b, atol=1e-6)


def test_identity_loss_gradients():
    m = build_model("cyclegan", TINY_CYC, info(aligned=False))
    b = batch()
    gl = m.g_loss(b, m.prepare(b))
    for term, own, other in [("idt_A", m.G_A, m.G_B), ("idt_B", m.G_B, m.G_A)]:
        m.zero_grad(set_to_none=True)
        gl[term].backward(retain_graph=True)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in own.parameters()), term
        assert all(p.grad is None for p in other.parameters()), term
    off = build_model("cyclegan", {**TINY_CYC, "lambda_identity": 0.0}, info(aligned=False))
    assert "idt_A" not in off.g_loss(b, off.prepare(b))
    with pytest.raises(UserError, match="lambda_identity=0"):
        build_model("cyclegan", TINY_CYC, info(1, 3, aligned=False))
    build_model("cyclegan", {**TINY_CYC, "lambda_identity": 0.0}, info(1, 3, aligned=False))


# -- direction ------------------------------------------------------------------------------------

def test_pix2pix_direction_swaps_the_domains():
    b = batch(ca=1, cb=3)
    fwd = build_model("pix2pix", TINY_P2P, info(1, 3))
    assert (fwd.G.in_channels, fwd.G.out_channels) == (1, 3) and torch.equal(fwd.prepare(b)["real_A"], b["A"])
    back = build_model("pix2pix", {**TINY_P2P, "direction": "BtoA"}, info(1, 3))
    assert (back.G.in_channels, back.G.out_channels) == (3, 1)
    ctx = back.prepare(b)
    assert torch.equal(ctx["real_A"], b["B"]) and torch.equal(ctx["real_B"], b["A"]) and ctx["fake_B"].shape[1] == 1
    assert back.translate(b["B"], "BtoA").shape == (2, 1, 32, 32)
    with pytest.raises(UserError, match="translates BtoA only"):
        back.translate(b["B"], "AtoB")
    with pytest.raises(UserError, match="direction='up'"):
        build_model("pix2pix", {**TINY_P2P, "direction": "up"}, info())


def test_cyclegan_direction_picks_the_generator():
    args = {**TINY_CYC, "lambda_identity": 0.0}
    m = build_model("cyclegan", {**args, "direction": "BtoA"}, info(1, 3, aligned=False))
    assert (m.G_A.in_channels, m.G_A.out_channels) == (3, 1)  # G_A maps the dataset's B to its A
    assert m.generator_for("BtoA") is m.G_A and m.generator_for("AtoB") is m.G_B and m.generator_for() is m.G_A
    assert m.translate(torch.zeros(1, 1, 32, 32), "AtoB").shape == (1, 3, 32, 32)
    assert m.translate(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    fwd = build_model("cyclegan", args, info(1, 3, aligned=False))
    assert fwd.generator_for("AtoB") is fwd.G_A and fwd.G_A.in_channels == 1


def test_pix2pix_needs_pairs_and_a_fitting_net():
    with pytest.raises(UserError, match="unpaired: use a paired dataset"):
        build_model("pix2pix", TINY_P2P, info(aligned=False))
    with pytest.raises(UserError, match="needs A, B .*use an image-to-image dataset .*dataset=digits_pairs"):
        build_model("pix2pix", TINY_P2P, DataInfo("digits", 1, 32, 10, 16, ("image", "label")))
    with pytest.raises(UserError, match="model.netG=unet_32"):
        build_model("pix2pix", {}, info())


# -- the epoch schedule ---------------------------------------------------------------------------

def test_lr_constant_then_linear_to_zero(tmp_path):
    """64 pairs at batch 8 = 8 steps per epoch: max_epochs 1, decay from epoch 0.5 = step 4."""
    run.train(model_cfg={"name": "pix2pix", **TINY_P2P}, dataset_cfg=PAIRS,
              trainer=tiny_trainer_settings(max_steps=None, max_epochs=1.0),
              optim=OptimSettings(schedule="linear", decay_start_epochs=0.5), seed=0, run_dir=tmp_path, config={})
    lines = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    got = [(rec["step"], round(rec["lr/G"] / 2e-4, 6), round(rec["lr/D"] / 2e-4, 6)) for rec in lines]
    want = [1, 1, 1, 1, 0.75, 0.5, 0.25, 0]  # the multiplier after step s: 1 - max(0, s - 4) / 4
    assert got == [(s, w, w) for s, w in zip(range(1, 9), want)]


def test_resolve_epochs():
    t, o = resolve_epochs(TrainerSettings(max_steps=None, max_epochs=200), OptimSettings(decay_start_epochs=100), 400)
    assert (t.max_steps, t.max_epochs, o.decay_start, o.decay_start_epochs) == (80_000, None, 40_000, None)
    t, o = resolve_epochs(TrainerSettings(max_steps=7), OptimSettings(decay_start=3), 400)
    assert (t.max_steps, o.decay_start) == (7, 3)
    assert resolve_epochs(TrainerSettings(max_steps=None, max_epochs=0.001), OptimSettings(), 10)[0].max_steps == 1
    with pytest.raises(UserError, match="both set: set one of them to null"):
        resolve_epochs(TrainerSettings(max_steps=10, max_epochs=2), OptimSettings(), 10)
    with pytest.raises(UserError, match="set trainer.max_steps or trainer.max_epochs"):
        resolve_epochs(TrainerSettings(max_steps=None), OptimSettings(), 10)
    with pytest.raises(UserError, match="decay_start_epochs=2 are both set"):
        resolve_epochs(TrainerSettings(), OptimSettings(decay_start=5, decay_start_epochs=2), 10)


# -- inference contract ---------------------------------------------------------------------------

def test_translate_contract_and_pad_multiple():
    p2p = build_model("pix2pix", {**TINY_P2P, "use_dropout": False}, info(1, 3))
    cyc = build_model("cyclegan", TINY_CYC, info(aligned=False))
    assert (p2p.pad_multiple, p2p.scale, cyc.pad_multiple, cyc.scale) == (32, 1, 4, 1)
    assert build_model("pix2pix", {"ngf": 4, "ndf": 4}, info(res=256)).pad_multiple == 256
    assert p2p.translate(torch.zeros(1, 1, 32, 96)).shape == (1, 3, 32, 96)
    assert cyc.translate(torch.zeros(2, 1, 12, 20)).shape == (2, 1, 12, 20)


def test_pix2pix_inference_uses_each_images_own_statistics():
    torch.manual_seed(0)
    m = build_model("pix2pix", {**TINY_P2P, "use_dropout": False}, info(1, 3))
    m.eval()
    x = batch(n=3, cb=3)["A"]
    running = [b.clone() for b in m.G.buffers()]
    out = m.translate(x)
    assert torch.allclose(out[1:2], m.translate(x[1:2]), atol=1e-6)  # independent of the rest of the batch
    assert all(torch.equal(a, b) for a, b in zip(running, m.G.buffers()))  # running stats untouched
    assert not m.G.training  # the mode is restored
    m.eval_mode = True
    with torch.no_grad():
        assert torch.allclose(m.translate(x), m.G(x), atol=1e-6)  # eval mode: the running statistics


@pytest.mark.parametrize("name,args,aligned,cols", [("pix2pix", TINY_P2P, True, 3), ("cyclegan", TINY_CYC, False, 6)])
def test_preview_rows_and_rng(name, args, aligned, cols):
    m = build_model(name, args, info(1, 3 if name == "pix2pix" else 1, aligned=aligned))
    b = batch(n=4, cb=3 if name == "pix2pix" else 1)
    state = torch.get_rng_state()
    grid = m.preview(2, generator=torch.Generator().manual_seed(5), batch=b)
    assert torch.equal(torch.get_rng_state(), state)  # training RNG untouched (dropout draws are forked)
    assert grid.shape == (2 * cols, 3 if name == "pix2pix" else 1, 32, 32) and m.grid_nrow(2 * cols) == cols
    again = m.preview(2, generator=torch.Generator().manual_seed(5), batch=b)
    assert torch.equal(grid, again)
    assert torch.equal(grid[0], b["A"][0].expand_as(grid[0])) and torch.equal(grid[cols], b["A"][1].expand_as(grid[0]))


def test_sample_on_a_translation_run_writes_the_grid(tmp_path):
    run.train(model_cfg={"name": "pix2pix", **TINY_P2P}, dataset_cfg=PAIRS, trainer=tiny_trainer_settings(max_steps=1),
              optim=OptimSettings(), seed=0, run_dir=tmp_path, config={})
    out = run.sample(run=str(tmp_path), n=4, out=str(tmp_path / "g.png"), device="cpu")
    from PIL import Image

    with Image.open(out) as im:
        assert im.size == (3 * 34 + 2, 4 * 34 + 2)  # 3 columns x 4 rows of 32 px with 2-px padding


def test_max_steps_given_wins_over_the_yamls_epochs(cli_runner, tmp_path):
    """pix2pix/CycleGAN count in epochs (`trainer.max_epochs: 200`): `trainer.max_steps=2` on the command
    line runs 2 steps without `trainer.max_epochs=null`; both given stays a one-line error."""
    tiny = [*tiny_model_overrides("pix2pix"), "dataset.num_train=64", "dataset.num_test=16", "trainer.log_every=1",
            "trainer.sample_every=0", "trainer.n_samples=2", "trainer.tensorboard=false", "trainer.device=cpu"]
    r = invoke(cli_runner, ["train", "model=pix2pix", "trainer.max_steps=2", *tiny, f"hydra.run.dir={tmp_path / 'a'}"])
    assert r.exit_code == 0, r.output
    stats = [json.loads(x) for x in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2]
    r = invoke(cli_runner, ["train", "model=pix2pix", "trainer.max_steps=2", "trainer.max_epochs=1", *tiny,
                            f"hydra.run.dir={tmp_path / 'b'}"])
    assert r.exit_code == 2 and "are both set" in r.stderr, r.output


def test_length_given_on_the_command_line_wins():
    epochs = TrainerSettings(max_steps=3, max_epochs=200)  # the yaml's epochs + the command line's steps
    assert length_given(epochs, {"trainer.max_steps"}) == TrainerSettings(max_steps=3, max_epochs=None)
    steps = TrainerSettings(max_steps=5000, max_epochs=0.5)  # the default steps + the command line's epochs
    assert length_given(steps, {"trainer.max_epochs"}) == TrainerSettings(max_steps=None, max_epochs=0.5)
    assert length_given(steps, {"trainer.max_epochs", "trainer.max_steps"}) == steps  # both: resolve_epochs refuses
    assert length_given(steps, set()) == steps

"""The shared trainer: schedules, EMA, AMP, per-phase optimizers, no host sync per step; the loader:
exact positions with preloading and with DataLoader workers."""

from __future__ import annotations

import json

import pytest
import torch

from ganzoo import run
from ganzoo.build import build_dataset, build_model
from ganzoo.checkpoint import load_run
from ganzoo.data.base import Augment, DataInfo, TensorImageDataset
from ganzoo.data.loader import BatchStream
from ganzoo.settings import OptimSettings
from ganzoo.trainer import Trainer, lr_lambda

from .conftest import TINY_DIGITS, tiny_model_args, tiny_model_cfg, tiny_trainer_settings

CPU = torch.device("cpu")


def _trainer(tmp_path, model="dcgan", optim=None, **kw) -> Trainer:
    s = tiny_trainer_settings(**{"max_steps": 4, "log_every": 2, **kw})
    data = build_dataset(dict(TINY_DIGITS), seed=0)
    args = tiny_model_args("dcgan") if model == "dcgan" else {"g_hidden": 32, "d_units": 16}
    m = build_model(model, args, data.info)
    stream = BatchStream(data, batch_size=s.batch_size, seed=0, device=CPU)
    return Trainer(m, stream, settings=s, optim=optim or OptimSettings(), run_dir=tmp_path, seed=0, device=CPU,
                   meta={"model": {"name": model, "args": {}}, "dataset": TINY_DIGITS, "data": data.info.to_dict(),
                         "config": {}})


def test_linear_and_cosine_schedules_reach_zero():
    lin = lr_lambda("linear", 10, 110)
    assert lin(0) == lin(10) == 1.0 and lin(60) == pytest.approx(0.5) and lin(110) == 0.0
    cos = lr_lambda("cosine", 0, 100)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="known: constant, linear, cosine, step"):
        lr_lambda("exponential", 0, 1)


def test_per_phase_optimizer_overrides_and_schedule(tmp_path):
    t = _trainer(tmp_path, optim=OptimSettings(lr=2e-4, phases={"G": {"lr": 1e-3}}, schedule="linear"))
    assert t.opt["D"].param_groups[0]["lr"] == pytest.approx(2e-4)
    assert t.opt["G"].param_groups[0]["lr"] == pytest.approx(1e-3)
    for _ in range(4):
        t.train_step(next(t.stream))
    assert t.opt["G"].param_groups[0]["lr"] == 0.0
    with pytest.raises(ValueError, match="optim.phases has"):
        _trainer(tmp_path, optim=OptimSettings(phases={"Q": {"lr": 1.0}}))


def test_phase_every_skips_steps(tmp_path):
    t = _trainer(tmp_path)
    from dataclasses import replace

    t.phases = [replace(p, every=2) if p.name == "G" else p for p in t.phases]
    for _ in range(4):
        t.train_step(next(t.stream))
    assert t._cnt == {"D/loss": 4, "D/acc": 4, "G/loss": 2}


def test_ema_is_saved_and_used_for_sampling(tmp_path):
    t = run.train(model_cfg=tiny_model_cfg("dcgan"), dataset_cfg=dict(TINY_DIGITS),
                  trainer=tiny_trainer_settings(max_steps=3, ema=True, ema_decay=0.5),
                  optim=OptimSettings(), seed=0, run_dir=tmp_path, config={})
    ck = load_run(tmp_path)
    live, ema = ck["nets"], ck["ema"]["G"]
    assert any(not torch.equal(live[f"G.{k}"], v) for k, v in ema.items() if v.is_floating_point())
    model_ema, _ = run.load_model(tmp_path, device=CPU, ema=True)
    model_live, _ = run.load_model(tmp_path, device=CPU, ema=False)
    z = torch.zeros(2, 100)
    assert not torch.equal(model_ema.generate(2, z=z), model_live.generate(2, z=z))
    # decay 0.5 over 3 steps: ema = 0.5*ema + 0.5*live, starting from the init copy
    assert torch.equal(t.ema["G"].state_dict()["project.0.weight"], ema["project.0.weight"])


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_modes_train_and_keep_scaler_state(tmp_path, amp):
    t = run.train(model_cfg=tiny_model_cfg("dcgan"), dataset_cfg=dict(TINY_DIGITS),
                  trainer=tiny_trainer_settings(amp=amp),
                  optim=OptimSettings(), seed=0, run_dir=tmp_path, config={})
    ck = load_run(tmp_path)
    assert (ck["scaler"] is not None) == (amp == "fp16")
    assert all(torch.isfinite(v).all() for v in ck["nets"].values() if v.is_floating_point())
    assert t.step == 2


@pytest.mark.parametrize("native,min_px,expected", [(True, 16, "bf16"), (True, 128, "none"), (False, 16, "none")])
def test_amp_auto_is_bf16_only_on_native_bf16_and_big_enough_images(tmp_path, monkeypatch, caplog, native, min_px,
                                                                    expected):
    """trainer.amp=auto: bf16 autocast on a device with native bf16 (AVX512-BF16/AMX, a bf16 GPU) for images
    of at least trainer.amp_auto_min_px, float32 otherwise; the run's first line says which and why."""
    import logging

    from ganzoo import runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    logger = logging.getLogger("ganzoo")  # an earlier in-process Hydra job may have reconfigured it
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "propagate", True)
    with caplog.at_level(logging.INFO, logger="ganzoo"):
        t = run.train(model_cfg=tiny_model_cfg("dcgan"), dataset_cfg=dict(TINY_DIGITS),
                      trainer=tiny_trainer_settings(amp="auto", amp_auto_min_px=min_px), optim=OptimSettings(),
                      seed=0, run_dir=tmp_path, config={})
    assert t.amp == expected and t.amp_dtype == (torch.bfloat16 if expected == "bf16" else None)
    assert not t.scaler.is_enabled()
    px = t.stream.info.resolution
    assert px >= 16 and px < 128  # the tiny digits sit between the two thresholds
    why = {"bf16": "bf16 autocast (trainer.amp=auto: native bf16 on cpu)",
           "none": (f"float32 (trainer.amp=auto: {px} px is below trainer.amp_auto_min_px=128)" if native
                    else "float32 (trainer.amp=auto: no native bf16 on cpu)")}[expected]
    assert why in caplog.text


def test_amp_choice_keeps_explicit_choices_and_names_the_known_ones():
    from ganzoo.runtime import amp_choice, native_bf16

    for amp in ("none", "bf16", "fp16"):
        assert amp_choice(amp, CPU, 8, 128) == (amp, f"trainer.amp={amp}")  # given explicitly: no size rule
    assert amp_choice("auto", CPU, 256, 128)[0] == ("bf16" if native_bf16(CPU) else "none")
    assert amp_choice("auto", CPU, 64, 128)[0] == "none"
    assert amp_choice("auto", torch.device("meta")) == ("none", "trainer.amp=auto: no native bf16 on meta")
    with pytest.raises(ValueError, match="known: none, auto, bf16, fp16"):
        amp_choice("bf8", CPU)


def test_compiled_nets_train_with_the_same_checkpoint_keys_and_eager_ema(tmp_path):
    """trainer.compile compiles the live nets in place (aot_eager here: dynamo's tracing without inductor's
    minutes of C++ codegen on a test machine): the checkpoint keys are a plain run's, the EMA copies stay
    eager, and the first step's losses are the eager ones."""
    plain, comp = tmp_path / "plain", tmp_path / "comp"
    args = {"model_cfg": tiny_model_cfg("dcgan"), "dataset_cfg": dict(TINY_DIGITS), "optim": OptimSettings(),
            "seed": 0, "config": {}}
    run.train(**args, trainer=tiny_trainer_settings(ema=True), run_dir=plain)
    t = run.train(**args, trainer=tiny_trainer_settings(ema=True, compile=True, compile_backend="aot_eager"),
                  run_dir=comp)
    assert t.model.G._compiled_call_impl is not None and t.ema["G"]._compiled_call_impl is None
    a, b = load_run(plain), load_run(comp)
    assert set(a["nets"]) == set(b["nets"]) and set(a["ema"]["G"]) == set(b["ema"]["G"])
    first = [(tmp_path / x / "stats.jsonl").read_text().splitlines()[0] for x in ("plain", "comp")]
    loss = [{k: v for k, v in json.loads(x).items() if k.endswith("loss")} for x in first]
    assert loss[0] == pytest.approx(loss[1], rel=1e-5)


def test_no_host_sync_inside_a_training_step(tmp_path, monkeypatch):
    t = _trainer(tmp_path)
    t.train_step(next(t.stream))  # warm-up (lazy init)

    import sys

    def guard(name):
        original = getattr(torch.Tensor, name)

        def forbidden(self, *a, **k):
            # Adam reads its step counter, a CPU tensor even when training on CUDA: not a device sync
            if "torch/optim" in sys._getframe(1).f_code.co_filename and self.device.type == "cpu":
                return original(self, *a, **k)
            raise AssertionError(f"host-device sync in the training step: Tensor.{name}")

        return forbidden

    for name in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, guard(name))
    for _ in range(2):
        t.train_step(next(t.stream))
    monkeypatch.undo()
    assert set(t.flush_stats()) >= {"D/loss", "G/loss", "lr/D", "lr/G"}


def _synthetic(n=40, size=12, resolution=8) -> TensorImageDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)  # each image carries its index
    return TensorImageDataset(DataInfo("syn", 1, resolution, 10, n, ("image", "label")), images,
                              torch.arange(n) % 10, Augment(crop=resolution, flip=True))


class _NoFastPath(TensorImageDataset):
    """Forces the DataLoader-worker path (no tensors() fast path, not preloaded)."""

    tensors = TensorImageDataset.__mro__[1].tensors


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_resumes_mid_epoch_exactly(workers):
    data = _synthetic()
    if workers:
        data.__class__ = _NoFastPath

    def make():
        return BatchStream(data, batch_size=6, seed=5, device=CPU, preload=not workers, num_workers=workers)

    full = make()
    straight = [next(full) for _ in range(14)]  # 14 batches = 2 epochs of 6 + 2 (drop_last)
    part = make()
    for _ in range(8):
        next(part)
    state = part.state()
    resumed = make()
    resumed.load_state(state)
    rest = [next(resumed) for _ in range(6)]
    for a, b in zip(straight[8:], rest):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert straight[0]["image"].shape == (6, 1, 8, 8)
    assert -1.0 <= straight[0]["image"].min() and straight[0]["image"].max() <= 1.0


def test_stream_epochs_cover_every_item_once():
    data = TensorImageDataset(DataInfo("syn", 1, 4, 0, 30), torch.arange(30, dtype=torch.uint8).view(30, 1, 1, 1)
                              .expand(30, 1, 4, 4).contiguous())
    s = BatchStream(data, batch_size=5, seed=1, device=CPU)
    seen = torch.cat([next(s)["image"][:, 0, 0, 0] for _ in range(6)])
    ids = ((seen + 1) * 127.5).round().long()
    assert sorted(ids.tolist()) == list(range(30))
    second = torch.cat([next(s)["image"][:, 0, 0, 0] for _ in range(6)])
    assert not torch.equal(seen, second), "epoch 2 must be reshuffled"


def test_runlog_summary_on_a_terminal_and_unwrapped_messages(tmp_path, capsys):
    """The end-of-run summary prints with the progress bar too; a message off a terminal is not wrapped."""
    import io

    from rich.console import Console

    from ganzoo.runlog import RunLog

    buf = io.StringIO()
    log = RunLog(tmp_path, total_steps=4, tensorboard=False, console=Console(file=buf, force_terminal=True, width=60))
    log.scalars(4, {"D/loss": 0.5, "G/loss": 1.25})
    log.done(4, tmp_path / "checkpoints" / "step_00000004.pt")
    log.close()
    assert "done: 4 steps" in buf.getvalue() and "G/loss 1.250" in buf.getvalue()
    assert "step_00000004.pt" in buf.getvalue()
    plain = RunLog(tmp_path / "p", total_steps=4, tensorboard=False)  # stderr, captured: not a terminal
    long = "continue with: ganzoo train resume=" + "/deep" * 30
    plain.message(long)
    plain.close()
    assert long in capsys.readouterr().err.splitlines()

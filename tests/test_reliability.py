"""Reliability promises of the trainer (docs/reliability.md): graceful stop on signals, non-finite
losses/gradients under each on_nan policy, fp16 overflow, failed checkpoint writes, config skew."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganzoo import run
from ganzoo.checkpoint import load_run
from ganzoo.errors import UserError
from ganzoo.settings import OptimSettings, TrainerSettings
from ganzoo.trainer import Diverged, StopRequest

from .conftest import TINY_DIGITS, TINY_OVERRIDES, tiny_model_cfg, tiny_model_overrides, tiny_trainer_settings

MODEL = tiny_model_cfg("dcgan")


def _settings(**kw) -> TrainerSettings:
    return tiny_trainer_settings(**{"max_steps": 6, "ckpt_every": 2, **kw})


def _train(run_dir, *, hook=None, optim=None, resume=None, **kw):
    """run.train with an optional hook(trainer) applied right before fit()."""
    from ganzoo import trainer as trainer_mod

    if hook is not None:
        original = trainer_mod.Trainer.fit

        def fit(self):
            hook(self)
            return original(self)

        trainer_mod.Trainer.fit = fit
    try:
        return run.train(model_cfg=dict(MODEL), dataset_cfg=dict(TINY_DIGITS), trainer=_settings(**kw),
                         optim=optim or OptimSettings(), seed=0, run_dir=run_dir, config={}, resume=resume)
    finally:
        if hook is not None:
            trainer_mod.Trainer.fit = original


def _poison_loss(phase: str, at_steps: set[int]):
    """Hook: the phase's loss becomes NaN the first time each given step runs."""

    def hook(t):
        for i, p in enumerate(t.phases):
            if p.name == phase:
                loss_fn = p.loss

                def bad(batch, ctx, loss_fn=loss_fn):
                    out = loss_fn(batch, ctx)
                    if t.step in at_steps:  # once per step number (a rollback replays it cleanly)
                        at_steps.discard(t.step)
                        out["loss"] = out["loss"] * float("nan")
                    return out

                t.phases[i] = type(p)(p.name, p.nets, bad, p.every)

    return hook


def _stats(run_dir) -> list[dict]:
    return [json.loads(x) for x in (Path(run_dir) / "stats.jsonl").read_text().splitlines()]


def _poison_d_step_3(snap: dict):
    """Hook: D's loss is NaN at step 3; D's weights are kept in `snap` before and after that step."""

    def hook(t):
        _poison_loss("D", {3})(t)
        original = t.train_step

        def step(batch):
            if t.step == 3:
                snap["before"] = [p.detach().clone() for p in t.model.D.parameters()]
            original(batch)
            if t.step == 4:
                snap["after"] = [p.detach().clone() for p in t.model.D.parameters()]

        t.train_step = step

    return hook


def test_nan_loss_is_skipped_on_device_and_counted(tmp_path):
    snap = {}
    t = _train(tmp_path, hook=_poison_d_step_3(snap))
    assert all(torch.equal(a, b) for a, b in zip(snap["before"], snap["after"])), "the bad D step changed D"
    counts = {r["step"]: r.get("nonfinite/D", 0) for r in _stats(tmp_path)}
    assert counts[4] == 1 and sum(counts.values()) == 1
    assert t.step == 6 and t.nonfinite_total == 1
    ck = load_run(tmp_path)
    assert all(torch.isfinite(v).all() for v in ck["nets"].values() if v.is_floating_point())


def test_inf_gradient_with_finite_loss_is_skipped(tmp_path):
    def hook(t):
        w = next(t.model.G.parameters())
        w.register_hook(lambda g: g * float("inf") if t.step == 2 else g)

    t = _train(tmp_path, hook=hook)
    assert {r["step"]: r.get("nonfinite/G", 0) for r in _stats(tmp_path)}[3] == 1
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_on_nan_stop_exits_with_a_one_line_error(tmp_path):
    with pytest.raises(Diverged, match=r"non-finite loss or gradients at step ~4 \(1 in phase D"):
        _train(tmp_path, hook=_poison_loss("D", {3}), on_nan="stop")
    assert load_run(tmp_path)["step"] == 2  # the last good checkpoint is kept


def test_on_nan_rollback_reloads_and_lowers_lr(tmp_path):
    t = _train(tmp_path, hook=_poison_loss("D", {3}), on_nan="rollback", nan_lr_factor=0.5)
    assert t.rollbacks == 1 and t.step == 6
    assert t.opt["D"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert load_run(tmp_path)["sched"]["D"]["base_lrs"] == [pytest.approx(1e-4)]


def test_checkpoint_never_holds_non_finite_weights(tmp_path):
    def hook(t):
        with torch.no_grad():
            next(t.model.G.parameters())[0].fill_(float("nan"))

    with pytest.raises(Diverged, match="refusing to save non-finite weights"):
        _train(tmp_path, hook=hook, ckpt_every=1, max_steps=1)


def test_fp16_overflow_backs_off_the_scale_and_the_scaler_survives_resume(tmp_path):
    def hook(t):
        w = next(t.model.D.parameters())
        w.register_hook(lambda g: g * float("inf") if t.step == 0 else g)

    t = _train(tmp_path, hook=hook, amp="fp16", max_steps=2, ckpt_every=0)
    scale = t.scaler.get_scale()
    assert scale < 65536.0  # backed off from the initial scale after the overflow
    assert load_run(tmp_path)["scaler"]["scale"] == scale
    t2 = _train(tmp_path, amp="fp16", max_steps=3, ckpt_every=0, resume=str(tmp_path))
    assert t2.step == 3 and t2.scaler.get_scale() >= scale


def test_failed_saves_continue_or_stop_by_policy(tmp_path, monkeypatch):
    from ganzoo import trainer as trainer_mod

    real = trainer_mod.save_checkpoint
    calls = {"n": 0}

    def flaky(run_dir, step, payload, keep=3):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(run_dir, step, payload, keep=keep)

    monkeypatch.setattr(trainer_mod, "save_checkpoint", flaky)
    with pytest.warns(UserWarning, match="training goes on without this checkpoint"):
        t = _train(tmp_path / "a", on_save_error="continue")
    assert t.step == 6 and load_run(tmp_path / "a")["step"] == 6
    calls["n"] = 0
    with pytest.raises(OSError, match="No space left"):
        _train(tmp_path / "b", on_save_error="stop")


def test_resume_refuses_changed_data_shape_and_lists_it(tmp_path):
    _train(tmp_path, max_steps=2)
    with pytest.raises(UserError, match=r"data shape 1x28x28 -> 1x32x32.*resume_force=true"):
        run.train(model_cfg=dict(MODEL), dataset_cfg={**TINY_DIGITS, "resolution": 32}, trainer=_settings(max_steps=4),
                  optim=OptimSettings(), seed=0, run_dir=tmp_path, config={}, resume=str(tmp_path))


def test_stop_request_sets_a_flag_then_second_ctrl_c_raises():
    stop = StopRequest()
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    finally:
        stop.uninstall()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGUSR1, 138), (signal.SIGUSR2, 140),
                                       (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_signal_saves_at_the_next_step_and_resume_continues(tmp_path, sig, code):
    exe = Path(sys.executable).with_name("ganzoo")
    run_dir = tmp_path / "run"
    proc = _train_proc(tmp_path, run_dir)
    _wait_for(proc, run_dir / "stats.jsonl", lines=3)
    sent = time.time()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert time.time() - sent < 10, "graceful stop took too long"
    assert proc.returncode == code, err
    step = load_run(run_dir)["step"]
    assert 3 <= step < 100000 and "resume=" in err
    r = subprocess.run([str(exe), "train", f"resume={run_dir}", f"trainer.max_steps={step + 2}"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert load_run(run_dir)["step"] == step + 2


def _train_proc(tmp_path, run_dir, ignore: tuple = ()):
    """`ganzoo train` (tiny DCGAN, 100,000 steps) in a process started with the signals `ignore` ignored and
    every other stop signal at its default, however this suite was started (`nohup make test` ignores SIGHUP,
    a background job SIGINT and SIGQUIT, and ganzoo keeps an ignored signal ignored)."""
    exe = Path(sys.executable).with_name("ganzoo")
    args = [str(exe), "train", *TINY_OVERRIDES, *tiny_model_overrides("dcgan"), "trainer.max_steps=100000",
            "trainer.ckpt_every=0", f"hydra.run.dir={run_dir}"]

    def dispositions():
        for sig in StopRequest.SIGNALS:
            signal.signal(sig, signal.SIG_IGN if sig in ignore else signal.SIG_DFL)

    return subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=dispositions)


def _wait_for(proc, path: Path, lines: int = 0) -> None:
    deadline = time.time() + 120
    while not (path.exists() and path.read_text().count("\n") >= lines):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)


def test_signals_the_job_was_started_with_ignored_stay_ignored():
    """`nohup` starts a job with SIGHUP ignored, a script's background job has SIGINT ignored: a closed
    terminal or the terminal's Ctrl-C must not stop such a run. The other signals still stop it."""
    from ganzoo.commands.launch import forwarded

    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert "SIGHUP" in forwarded().split(",")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stop = StopRequest()
    try:
        assert "SIGHUP" not in forwarded().split(",") and "SIGTERM" in forwarded().split(",")
        stop.install()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        assert stop.signum is None
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.signum == signal.SIGTERM
    finally:
        stop.uninstall()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.signal(signal.SIGHUP, before)


def test_a_nohup_run_trains_on_after_a_hangup(tmp_path):
    run_dir = tmp_path / "run"
    proc = _train_proc(tmp_path, run_dir, ignore=(signal.SIGHUP,))  # as `nohup ganzoo train ...`
    stats = run_dir / "stats.jsonl"
    _wait_for(proc, stats, lines=3)
    proc.send_signal(signal.SIGHUP)
    seen = stats.read_text().count("\n")
    _wait_for(proc, stats, lines=seen + 3)  # still training
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err


def test_ctrl_c_during_start_up_exits_130_with_one_line(tmp_path):
    """Hydra has written the run's config and the job is importing torch / building data: no handler of
    the training loop yet. Click would say 'Aborted!' and exit 1."""
    run_dir = tmp_path / "run"
    proc = _train_proc(tmp_path, run_dir)
    _wait_for(proc, run_dir / ".hydra" / "config.yaml")
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # The run trained on as if no signal had come. Seen in every full-suite run started as a background
        # job (SIGINT ignored, inherited by the child; _train_proc now starts it at the default) and not
        # otherwise: a KeyboardInterrupt swallowed on the way is remembered (the test below) and stops the run.
        proc.kill()
        pytest.fail(f"the start-up Ctrl-C was lost (SIGINT in this process: {signal.getsignal(signal.SIGINT)}): "
                    f"{proc.communicate()[1][-3000:]}")
    assert proc.returncode == 130, err
    if (run_dir / "checkpoints").exists():  # a loaded machine held this test back until training ran
        pytest.skip("the SIGINT came after start-up (graceful stop, also 130): the test lost its race")
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines[-1].startswith("Interrupted") and "Aborted" not in err and "Traceback" not in err, err


def test_a_start_up_ctrl_c_that_was_swallowed_still_stops_the_run_before_its_first_step(tmp_path):
    """The lost start-up SIGINT of test_ctrl_c_during_start_up: its KeyboardInterrupt raised where
    nothing lets it out (here a bare `except:`, as in a finalizer or a library). The handler that
    `ganzoo train` installs remembers it, and the loop stops before training a step."""
    from ganzoo.interrupts import watch_start_up

    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watch_start_up()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        except:  # noqa: E722 -- the swallowing library
            pass
        with pytest.raises(KeyboardInterrupt):
            _train(tmp_path, max_steps=3)
        assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "stats.jsonl").exists()
        t = _train(tmp_path / "again", max_steps=1)  # remembered once: the next run trains
        assert t.step == 1
    finally:
        signal.signal(signal.SIGINT, before)


def test_quick_second_ctrl_c_exits_130_at_once(tmp_path, monkeypatch):
    """A second Ctrl-C makes StopRequest raise KeyboardInterrupt wherever the loop is (see
    test_stop_request_sets_a_flag_then_second_ctrl_c_raises); it leaves the job as such, and the
    command exits 130 with one line. (In-process: two real SIGINTs sent back to back may merge into one.)"""
    from click.testing import CliRunner

    from .conftest import invoke

    def interrupted_in_the_loop(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "train", interrupted_in_the_loop)
    r = invoke(CliRunner(), ["train", *TINY_OVERRIDES, "trainer.max_steps=1", f"hydra.run.dir={tmp_path}"])
    assert r.exit_code == 130, r.output
    assert [x for x in r.stderr.splitlines() if x.strip()][-1].startswith("Interrupted"), r.stderr
    assert "Aborted" not in r.output


def test_resume_mid_epoch_with_dataloader_workers_is_bitwise_exact(tmp_path):
    """Image folder read by 2 DataLoader workers (not preloaded): 3 steps + resume + 7 steps (crossing
    an epoch boundary at step 8) equals 10 steps straight."""
    from ganzoo.build import build_dataset
    from ganzoo.images import save_images

    digits = build_dataset(dict(TINY_DIGITS))
    imgs = digits.tensors()["image"][:64].float() / 127.5 - 1
    save_images(imgs, tmp_path / "pngs", prefix="d")
    folder = {"name": "image_folder", "path": str(tmp_path / "pngs"), "channels": 1, "resolution": 28,
              "flip": True}
    settings = dict(batch_size=8, preload=False, num_workers=2, ckpt_every=0, log_every=1)

    def train(run_dir, steps, resume=None):
        return run.train(model_cfg=dict(MODEL), dataset_cfg=dict(folder), trainer=_settings(max_steps=steps, **settings),
                         optim=OptimSettings(), seed=1, run_dir=run_dir, config={}, resume=resume)

    a = train(tmp_path / "straight", 10)
    assert not a.stream.preloaded
    train(tmp_path / "split", 3)
    b = train(tmp_path / "split", 10, resume=str(tmp_path / "split"))
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    drop = ("time", "steps_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in _stats(tmp_path / "straight")] == \
        [{k: v for k, v in r.items() if k not in drop} for r in _stats(tmp_path / "split")]


def _under_a_file(tmp_path) -> Path:
    """A path whose parent is a regular file: ENOTDIR for root too (chmod does not stop root)."""
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path / "a_file" / "sub"


def test_unwritable_output_is_one_line_in_train_sample_and_eval(tmp_path):
    """train (Hydra's run folder), sample and eval (out=): exit 2, one line naming the path and the OS
    error; eval prints its metrics before it tries to write them."""
    from click.testing import CliRunner

    from .conftest import invoke

    bad = _under_a_file(tmp_path)
    tiny = [*TINY_OVERRIDES, *tiny_model_overrides("dcgan"), "trainer.max_steps=2"]
    for args in (["train", *tiny, f"hydra.run.dir={bad}"],):
        r = invoke(CliRunner(), args)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and str(bad) in lines[0], r.output
        assert "Not a directory" in lines[0] and "Traceback" not in r.output
    run_dir = tmp_path / "run"
    assert invoke(CliRunner(), ["train", *tiny, f"hydra.run.dir={run_dir}"]).exit_code == 0
    for args in (["sample", f"run={run_dir}", "n=4", f"out={bad / 'grid.png'}"],
                 ["eval", f"run={run_dir}", "n_per_class=4", "batch_size=64", "device=cpu", "judge_epochs=1",
                  f"out={bad / 'metrics.json'}"]):
        r = invoke(CliRunner(), args)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.exit_code == 2, r.output
        assert lines[-1].startswith("Error: ") and str(bad) in lines[-1] and "Not a directory" in lines[-1], r.stderr
        assert "Traceback" not in r.output
        if args[0] == "eval":
            assert "recognisable" in r.stdout or "accuracy" in r.stdout or "histogram" in r.stdout, r.stdout


def _disk_full_after(monkeypatch, module, target: str, calls: int):
    """module.open(...) of a path ending in `target` fails with ENOSPC after `calls` good calls."""
    import builtins

    seen = {"n": 0}

    def fake_open(file, *args, **kwargs):
        if str(file).endswith(target):
            seen["n"] += 1
            if seen["n"] > calls:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # no file name, as a failed write
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(module, "open", fake_open, raising=False)


def test_failed_stats_write_saves_a_checkpoint_and_stops_with_one_line(tmp_path, monkeypatch):
    from ganzoo import runlog

    _disk_full_after(monkeypatch, runlog, "stats.jsonl", calls=2)
    with pytest.raises(UserError) as e:
        _train(tmp_path, max_steps=6, ckpt_every=0)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "stats.jsonl") in msg and "No space left on device" in msg, msg
    assert "saved" in msg and "resume=" in msg, msg
    assert load_run(tmp_path)["step"] == 3  # the failed log step's checkpoint


def test_failed_grid_write_when_the_checkpoint_fails_too_says_so(tmp_path, monkeypatch):
    from ganzoo import checkpoint, images

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(images, "atomic_write", full)
    monkeypatch.setattr(checkpoint, "atomic_write", full)
    with pytest.raises(UserError) as e:
        _train(tmp_path, max_steps=6, ckpt_every=0, sample_every=2)
    msg = str(e.value)
    assert "\n" not in msg and "step_00000002.png" in msg and "could not be written either" in msg, msg


def test_tensorboard_disk_full_is_one_line_without_a_thread_traceback(tmp_path, monkeypatch, capfd):
    """TensorBoard writes in a thread: a full disk there was a long threaded traceback and no save."""
    from tensorboard.summary.writer import record_writer

    calls = {"n": 0}
    original = record_writer.RecordWriter.write

    def write(self, data):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    with pytest.raises(UserError) as e:  # the thread fails on its own; a later TensorBoard call raises it again
        _train(tmp_path / "run", max_steps=400, ckpt_every=0, tensorboard=True)
    msg = str(e.value)
    assert "No space left on device" in msg and str(tmp_path / "run" / "tb") in msg and "saved" in msg, msg
    assert "Exception in thread" not in capfd.readouterr().err

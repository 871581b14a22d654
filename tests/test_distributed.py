"""trainer.devices=N on the CPU (gloo): one Hydra job, N processes from torch's elastic launcher.

Real processes, so each launch costs a few seconds: the cases are grouped to launch as few as possible.
Covered: the checkpoint keys of a one-process run, bitwise-exact resume, one writer (rank 0), a stop
signal stopping every rank at one step with one checkpoint, resume=auto after it, and the one-line
refusals (a batch that does not divide, a resume with another process count, sync_bn on the CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganzoo.checkpoint import load_run

from .conftest import TINY_OVERRIDES, tiny_model_overrides

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")
EXE = str(Path(sys.executable).with_name("ganzoo"))
TINY = [*TINY_OVERRIDES, *tiny_model_overrides("dcgan"), "trainer.device=cpu", "trainer.ckpt_every=0"]


def _train(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "train", *TINY, *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def _nets(run: Path) -> dict[str, torch.Tensor]:
    return load_run(run)["nets"]


def test_two_processes_train_and_resume_exactly(tmp_path):
    whole, split, single = tmp_path / "whole", tmp_path / "split", tmp_path / "single"
    r = _train(tmp_path, "trainer.devices=2", "trainer.max_steps=4", f"hydra.run.dir={whole}")
    assert r.returncode == 0, r.stderr
    assert "2 x cpu" in r.stderr  # one line from rank 0, not one per process
    lines = [json.loads(x) for x in (whole / "stats.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]  # one writer: no line twice
    ckpt = load_run(whole)
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2
    assert not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])  # each rank its noise
    r = _train(tmp_path, "trainer.max_steps=1", f"hydra.run.dir={single}")
    assert r.returncode == 0, r.stderr
    assert set(_nets(single)) == set(ckpt["nets"])  # the same keys as a one-process run: no DDP "module."
    r = _train(tmp_path, "trainer.devices=2", "trainer.max_steps=2", f"hydra.run.dir={split}")
    assert r.returncode == 0, r.stderr
    r = subprocess.run([EXE, "train", f"resume={split}", "trainer.max_steps=4"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr  # the run's own overrides, trainer.devices=2 among them
    for k, v in _nets(whole).items():
        assert torch.equal(v, _nets(split)[k]), k
    # the same run under one process is another run: refused, naming the difference
    r = subprocess.run([EXE, "train", f"resume={split}", "trainer.devices=1", "trainer.max_steps=6"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "trainer.devices 2 -> 1" in lines[0], r.stderr


def test_a_stop_signal_stops_every_rank_at_one_step_and_resume_auto_continues(tmp_path):
    run = tmp_path / "job"
    args = [EXE, "train", *TINY, "trainer.devices=2", "trainer.max_steps=100000", "resume=auto",
            f"hydra.run.dir={run}"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stats = run / "stats.jsonl"
    deadline = time.time() + 240
    while not (stats.exists() and stats.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGUSR2)  # submitit's preemption signal, to the job: forwarded to the ranks
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 140, err
    assert err.count("Error") == 0 and err.count("SIGUSR2: saved") == 1, err  # rank 0 speaks once
    step = load_run(run)["step"]
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 1
    r = subprocess.run([*args[:-3], f"trainer.max_steps={step + 2}", "resume=auto", f"hydra.run.dir={run}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert load_run(run)["step"] == step + 2
    assert [json.loads(x)["step"] for x in stats.read_text().splitlines()][-2:] == [step + 1, step + 2]


def _workers(pid: int) -> list[int]:
    """The training processes the job started (its children that run multiprocessing's spawn entry)."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids if "spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace")]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the ranks")
def test_sigterm_to_one_rank_stops_every_rank_with_one_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([EXE, "train", *TINY, "trainer.devices=2", "trainer.max_steps=100000",
                             f"hydra.run.dir={run}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    stats = run / "stats.jsonl"
    deadline = time.time() + 240
    while not (stats.exists() and stats.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    workers = _workers(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[-1], signal.SIGTERM)  # one rank only
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 1 and load_run(run)["step"] >= 3


@pytest.mark.parametrize("args, needle", [
    (["trainer.devices=3"], "trainer.batch_size=8 is the global batch and does not divide over 3 processes"),
    (["trainer.devices=2", "trainer.sync_bn=true"], "trainer.sync_bn=true needs CUDA"),
    (["trainer.devices=0"], "trainer.devices=0: must be"),
])
def test_bad_device_counts_are_one_line_before_anything_starts(tmp_path, args, needle):
    r = _train(tmp_path, "trainer.max_steps=1", *args, f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "run").exists()


def test_under_an_external_launcher_the_folder_must_be_given(tmp_path):
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([EXE, "train", *TINY, "trainer.max_steps=1"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=env)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "hydra.run.dir=<folder>" in lines[0], r.stderr
    assert not (tmp_path / "outputs").exists()


PAIRS = ["dataset.num_train=64", "dataset.num_test=16", "trainer.batch_size=8", "trainer.log_every=1",
         "trainer.sample_every=0", "trainer.n_samples=4", "trainer.progress=false", "trainer.tensorboard=false",
         "trainer.device=cpu", "trainer.max_epochs=null", "trainer.max_steps=3",
         # SGD with small steps: an update linear in the gradient, so the float rounding of the reordered sums
         # stays at rounding size (a missed average would move weights by ~1e-4). Under Adam a gradient that
         # is zero up to rounding (a bias before instance norm) still moves its weight by +-lr, in a direction
         # set by that rounding; with large SGD steps CycleGAN's first steps are chaotic and amplify it
         "optim.name=sgd", "optim.lr=1e-5",
         "trainer.amp=none"]  # float32 whatever a yaml says: the equality is of the reduction, not of bf16 rounding


@pytest.mark.parametrize("model", [
    # no batch norm and no noise: instance norm, no dropout (pix2pix), no image pool (CycleGAN)
    ["model=pix2pix", "dataset=digits_pairs", "model.netG=unet_32", "model.ngf=8", "model.ndf=8",
     "model.norm=instance", "model.use_dropout=false"],
    ["model=cyclegan", "dataset=digits_unpaired", "model.netG=resnet_2blocks", "model.ngf=8", "model.ndf=8",
     "model.pool_size=0"],
], ids=["pix2pix", "cyclegan"])
def test_two_ranks_of_half_the_batch_train_as_one_process_of_the_whole(tmp_path, model):
    one, two = tmp_path / "one", tmp_path / "two"
    for run, devices in ((one, 1), (two, 2)):
        r = subprocess.run([EXE, "train", *model, *PAIRS, f"trainer.devices={devices}", f"hydra.run.dir={run}"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    a, b = _nets(one), _nets(two)
    assert set(a) == set(b)
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point() and a[k].numel())
    assert worst < 1e-6, worst

"""Crash safety (R1, R13): SIGKILL a real training run at each point of a checkpoint save, then resume.

`ganzoo train` runs 6 steps with ckpt_every=2, keep_ckpts=2: it saves at step 2 (save 1), step 4
(save 2) and step 6 (the final save 3; the first one with something to prune). GANZOO_FAULT=<point>@<n>
makes checkpoint.py SIGKILL the process at that point of save n (see ganzoo/checkpoint.py).

Which checkpoint survives a kill during save 2 (step 4), and why:
    tmp_partial      step 2   step 4 is half a temp file; nothing names it
    tmp_written      step 2   step 4 is a complete temp file, never renamed into place
    sidecar_written  step 2   step 4's .sha256 exists, its .pt does not
    renamed          step 2   step_00000004.pt is complete and verifies, but latest.json (the commit
                              point) still names step 2, and find_latest trusts latest.json first
    latest_written   step 4   latest.json names step 4: the save is committed
and during save 3 (step 6):
    pruning@3        step 6   step 6 is committed; step 2's .pt is deleted, its sidecar left behind
After each, `ganzoo train resume=<run>` finishes the run, leaves no temp file or orphan sidecar, and
its final weights are bitwise those of an uninterrupted 6-step run.

The killed runs are subprocesses (they must die); the resumes and the reference run go through the same
CLI in-process (`invoke`), which saves ~5 s of Python/torch start-up each.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from ganzoo import checkpoint as ck
from ganzoo import storage

from .conftest import TINY_OVERRIDES, invoke, tiny_model_overrides

ARGS = [*TINY_OVERRIDES, *tiny_model_overrides("dcgan"), "trainer.max_steps=6", "trainer.ckpt_every=2",
        "trainer.keep_ckpts=2"]

# (point, the save it hits, the step load_run must give after the kill)
POINTS = [("tmp_partial", 2, 2), ("tmp_written", 2, 2), ("sidecar_written", 2, 2), ("renamed", 2, 2),
          ("latest_written", 2, 4), ("pruning", 3, 6)]


def _ganzoo_killed(run_dir: Path, fault: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("ganzoo")
    env = {**os.environ, "GANZOO_FAULT": fault,
           # the same intra-op thread count as this process, so the steps before the kill are bitwise
           # those of the in-process reference run
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.run([str(exe), "train", *ARGS, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent,
                          capture_output=True, text=True, timeout=300, env=env)


def _steps(run_dir) -> list[int]:
    return [s for s, _ in ck.list_checkpoints(run_dir)]


def _tmp_files(run_dir) -> list[Path]:
    return sorted(ck.ckpt_dir(run_dir).glob(".*.tmp"))


def _latest_step(run_dir) -> int:
    return json.loads((ck.ckpt_dir(run_dir) / "latest.json").read_text())["step"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The final checkpoint of an uninterrupted 6-step run (same overrides)."""
    from click.testing import CliRunner

    run_dir = tmp_path_factory.mktemp("reference") / "run"
    r = invoke(CliRunner(), ["train", *ARGS, f"hydra.run.dir={run_dir}"])
    assert r.exit_code == 0, r.output
    ckpt = ck.load_run(run_dir)
    assert ckpt["step"] == 6
    return ckpt


def _check_leftovers(point: str, run_dir: Path) -> None:
    """What the kill left behind: proof that it struck where it was meant to."""
    d = ck.ckpt_dir(run_dir)
    tmps = _tmp_files(run_dir)
    if point in ("tmp_partial", "tmp_written", "sidecar_written"):
        assert len(tmps) == 1 and tmps[0].name.startswith(".step_00000004.pt."), tmps
        assert _steps(run_dir) == [2] and _latest_step(run_dir) == 2
        full = (d / "step_00000002.pt").stat().st_size
        if point == "tmp_partial":
            assert 0 < tmps[0].stat().st_size < full, "the kill should land half-way through the temp file"
            with pytest.raises(ck.CheckpointError):
                ck.load_checkpoint(tmps[0])
        else:  # complete, only never renamed into place
            assert torch.load(tmps[0], weights_only=True)["step"] == 4
        side = d / "step_00000004.pt.sha256"
        if point == "sidecar_written":
            assert side.read_text().strip() == ck.sha256_file(tmps[0])
        else:
            assert not side.exists()
    elif point == "renamed":
        assert not tmps and _steps(run_dir) == [4, 2] and _latest_step(run_dir) == 2
        assert ck.verify(d / "step_00000004.pt") is None  # complete, just not committed by latest.json
    elif point == "latest_written":
        assert not tmps and _steps(run_dir) == [4, 2] and _latest_step(run_dir) == 4
    elif point == "pruning":
        assert not tmps and _steps(run_dir) == [6, 4] and _latest_step(run_dir) == 6
        assert (d / "step_00000002.pt.sha256").exists()  # killed between the .pt and its sidecar
    else:
        raise AssertionError(point)


@pytest.mark.parametrize("point, save, survivor", POINTS, ids=[p for p, _, _ in POINTS])
def test_sigkill_during_save_then_resume(point, save, survivor, tmp_path, reference, cli_runner, monkeypatch):
    monkeypatch.delenv("GANZOO_FAULT", raising=False)
    run_dir = tmp_path / "run"
    r = _ganzoo_killed(run_dir, f"{point}@{save}")
    assert r.returncode == -signal.SIGKILL, f"rc={r.returncode}\n{r.stderr[-2000:]}"
    _check_leftovers(point, run_dir)

    # the run loads: latest.json names a complete file, so nothing is skipped (a warning would be an error)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = ck.find_latest(run_dir)
        ckpt = ck.load_run(run_dir)
    assert path is not None and ck.verify(path) is None and ck._NAME.match(path.name)
    assert ckpt["step"] == survivor
    assert torch.load(path, weights_only=True)["step"] == survivor
    if survivor < 6:  # the comparison below is not vacuous: the surviving weights are not the final ones
        assert any(not torch.equal(ckpt["nets"][k], v) for k, v in reference["nets"].items())

    # resume (no fault) finishes the run
    r = invoke(cli_runner, ["train", f"resume={run_dir}"])
    assert r.exit_code == 0, r.output
    assert ck.load_run(run_dir)["step"] == 6
    d = ck.ckpt_dir(run_dir)
    assert not _tmp_files(run_dir)
    assert _steps(run_dir) == [6, 4] and _latest_step(run_dir) == 6
    for _, p in ck.list_checkpoints(run_dir):
        assert ck.verify(p) is None, p
    assert sorted(p.name for p in d.glob("*.sha256")) == ["step_00000004.pt.sha256", "step_00000006.pt.sha256"]

    # resume is exact even after a kill
    final = ck.load_run(run_dir)
    assert final["nets"].keys() == reference["nets"].keys()
    for k, v in reference["nets"].items():
        assert torch.equal(final["nets"][k], v), k


def _payload(step: int) -> dict:
    return {"format": ck.FORMAT_VERSION, "step": step, "w": torch.full((4,), float(step))}


def test_disk_full_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("GANZOO_FAULT", raising=False)
    p1 = ck.save_checkpoint(tmp_path, 10, _payload(10))
    before = {p.name: p.read_bytes() for p in ck.ckpt_dir(tmp_path).iterdir()}

    def full_disk(obj, f):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(ck.CheckpointWriteError) as info:
        ck.save_checkpoint(tmp_path, 20, _payload(20))
    monkeypatch.undo()
    e = info.value
    msg = str(e)
    assert "\n" not in msg
    assert str(ck.ckpt_dir(tmp_path) / "step_00000020.pt") in msg
    assert "No space left" in msg and "free" in msg and f"{p1.name} is intact" in msg, msg
    assert isinstance(e, ck.CheckpointError) and isinstance(e, OSError) and e.errno == errno.ENOSPC
    assert isinstance(e.__cause__, OSError)
    after = {p.name: p.read_bytes() for p in ck.ckpt_dir(tmp_path).iterdir()}
    assert after == before  # no temp file, no sidecar, the previous checkpoint byte-identical
    assert ck.load_run(tmp_path)["step"] == 10


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_real_enospc_inside_torch_save_is_reported_too(tmp_path, monkeypatch):
    """The temp file is /dev/full: the kernel's ENOSPC surfaces from torch.save as a RuntimeError of
    its own; the OSError under it is what gets reported."""
    monkeypatch.delenv("GANZOO_FAULT", raising=False)
    ck.save_checkpoint(tmp_path, 1, _payload(1))
    real_open = open

    def open_full(path, mode="r", *args, **kwargs):
        return real_open("/dev/full", mode) if str(path).endswith(".tmp") and "b" in mode else \
            real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(storage, "open", open_full, raising=False)  # the temp file is opened there
    for n in (10, 300_000):  # fails at the flush after torch.save, or inside it
        with pytest.raises(ck.CheckpointWriteError, match=r"step_00000002\.pt: \[Errno 28\] No space left on device "
                                                          r"\(.* free on that disk\); the previous checkpoint "
                                                          r"step_00000001\.pt is intact"):
            ck.save_checkpoint(tmp_path, 2, {"format": 1, "w": torch.zeros(n)})
    monkeypatch.undo()
    assert not _tmp_files(tmp_path) and _steps(tmp_path) == [1] and ck.load_run(tmp_path)["step"] == 1


def test_fault_spec(monkeypatch):
    monkeypatch.setattr(ck, "_saves", 2)
    monkeypatch.delenv("GANZOO_FAULT", raising=False)
    assert not ck._fault_armed("renamed")
    for spec, armed in (("renamed@2", True), ("renamed", False), ("renamed@1", False), ("renamed@3", False),
                        ("renamedx@2", False), ("tmp_written@2", False), ("", False)):
        monkeypatch.setenv("GANZOO_FAULT", spec)
        assert ck._fault_armed("renamed") is armed, spec
    monkeypatch.setattr(ck, "_saves", 1)
    monkeypatch.setenv("GANZOO_FAULT", "renamed")
    assert ck._fault_armed("renamed")

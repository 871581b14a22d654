"""Who owns a run folder (docs/reliability.md R23, R24): one writer per folder, a fresh run never
writes over another run, a failed start leaves nothing behind, and a refused resume leaves the run
as it was (its `.hydra/` included), whatever form its path takes on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from ganzoo.storage import FolderLock

from .conftest import TINY_OVERRIDES, invoke, tiny_model_overrides

TINY = [*TINY_OVERRIDES, *tiny_model_overrides("dcgan")]


def _train(cli_runner, *args):
    return invoke(cli_runner, ["train", *TINY, *args])


def _one_line(r, needle: str) -> str:
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], r.stderr
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run2(cli_runner, tmp_path) -> Path:
    """A finished 2-step run."""
    run_dir = tmp_path / "run"
    r = _train(cli_runner, "trainer.max_steps=2", f"hydra.run.dir={run_dir}")
    assert r.exit_code == 0, r.output
    return run_dir


# -- item 2: run folders have an owner --------------------------------------------------------------
def test_fresh_run_refuses_a_folder_that_holds_a_run_unless_overwrite(cli_runner, run2):
    before = _snapshot(run2)
    r = _train(cli_runner, "trainer.max_steps=1", f"hydra.run.dir={run2}")
    line = _one_line(r, "already holds a run")
    assert f"resume={run2}" in line and "overwrite=true" in line
    assert _snapshot(run2) == before  # nothing written, not even .hydra/
    r = _train(cli_runner, "trainer.max_steps=1", "overwrite=true", f"hydra.run.dir={run2}")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["step"] for x in (run2 / "stats.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in (run2 / "checkpoints").glob("step_*.pt")) == ["step_00000001.pt"]
    assert not (run2 / FolderLock.NAME).exists()


def test_a_second_writer_is_refused_naming_the_holder(cli_runner, run2):
    lock = FolderLock(run2)
    assert lock.acquire() is None
    try:
        before = _snapshot(run2)
        line = _one_line(_train(cli_runner, f"resume={run2}", "trainer.max_steps=4"), "is in use by")
        assert f"pid {os.getpid()}" in line
        assert _snapshot(run2) == before
    finally:
        lock.release()
    assert _train(cli_runner, f"resume={run2}", "trainer.max_steps=4").exit_code == 0


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_notice(cli_runner, run2):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run2 / FolderLock.NAME).write_text(f"pid {dead.stdout.strip()} on host here since then\n")
    r = _train(cli_runner, f"resume={run2}", "trainer.max_steps=4")
    assert r.exit_code == 0, r.output
    assert f"left by pid {dead.stdout.strip()}" in r.stderr and "taking it over" in r.stderr
    assert not (run2 / FolderLock.NAME).exists()


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_start_leaves_no_folder_behind(cli_runner, tmp_path, existing):
    target = tmp_path / "a" / "b" if not existing else tmp_path / "empty"
    if existing:
        target.mkdir()
    _one_line(_train(cli_runner, "trainer.batch_size=100000", f"hydra.run.dir={target}"), "lower trainer.batch_size")
    if existing:
        assert target.is_dir() and list(target.iterdir()) == []
    else:
        assert not (tmp_path / "a").exists()


def test_default_run_folders_of_the_same_second_differ():
    with initialize_config_module(config_module="ganzoo.conf", version_base="1.3"):
        dirs = [OmegaConf.select(compose("train", return_hydra_config=True), "hydra.run.dir") for _ in range(2)]
    assert dirs[0] != dirs[1] and sorted(dirs) == dirs


# -- item 3: a refused resume leaves the run as it was ------------------------------------------------
def test_a_refused_resume_keeps_the_runs_overrides(cli_runner, run2):
    hydra_before = _snapshot(run2 / ".hydra")
    _one_line(_train(cli_runner, f"resume={run2}", "model.ngf=16"), "model.ngf 8 -> 16")
    assert _snapshot(run2 / ".hydra") == hydra_before
    r = invoke(cli_runner, ["train", f"resume={run2}", "trainer.max_steps=3"])  # the plain resume still works
    assert r.exit_code == 0, r.output
    assert "model.ngf=8" in yaml.safe_load((run2 / ".hydra" / "overrides.yaml").read_text())
    assert not (run2 / ".hydra" / "pending").exists()


def test_resume_refuses_a_changed_batch_size(cli_runner, run2):
    line = _one_line(_train(cli_runner, f"resume={run2}", "trainer.batch_size=32", "trainer.max_steps=3"),
                     "trainer.batch_size")
    assert "resume_force=true" in line


@pytest.mark.parametrize("quote", ['"', "'"])
def test_a_quoted_resume_path_finds_the_runs_overrides(cli_runner, tmp_path, quote):
    run_dir = tmp_path / "my é run"
    r = _train(cli_runner, "trainer.max_steps=2", f"hydra.run.dir={quote}{run_dir}{quote}")
    assert r.exit_code == 0, r.output
    r = invoke(cli_runner, ["train", f"resume={quote}{run_dir}{quote}", "trainer.max_steps=3"])
    assert r.exit_code == 0, r.output
    assert (run_dir / "checkpoints" / "step_00000003.pt").exists()


def test_resume_of_a_checkpoint_file_or_a_missing_folder_is_one_line(cli_runner, run2, tmp_path):
    ckpt = next((run2 / "checkpoints").glob("step_*.pt"))
    _one_line(invoke(cli_runner, ["train", f"resume={ckpt}"]), f"give its run folder, resume={run2}")
    missing = tmp_path / "nope"
    _one_line(invoke(cli_runner, ["train", f"resume={missing}"]), "no such run folder")
    assert not missing.exists()


# -- resume=auto: a requeued cluster job continues its own run ----------------------------------------
def test_resume_auto_starts_then_continues_its_own_folder(cli_runner, tmp_path):
    run_dir = tmp_path / "job"
    r = _train(cli_runner, "trainer.max_steps=2", "resume=auto", f"hydra.run.dir={run_dir}")
    assert r.exit_code == 0, r.output  # nothing to continue: a fresh run
    r = _train(cli_runner, "trainer.max_steps=4", "resume=auto", f"hydra.run.dir={run_dir}")
    assert r.exit_code == 0, r.output  # the same command again (a requeue): continues from step 2
    assert [json.loads(x)["step"] for x in (run_dir / "stats.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    (run_dir / "checkpoints" / "latest.json").unlink()  # a job that died before its first checkpoint
    for p in (run_dir / "checkpoints").iterdir():
        p.unlink()
    r = _train(cli_runner, "trainer.max_steps=1", "resume=auto", f"hydra.run.dir={run_dir}")
    assert r.exit_code == 0, r.output  # starts afresh over what it left
    assert [json.loads(x)["step"] for x in (run_dir / "stats.jsonl").read_text().splitlines()] == [1]


def test_resume_auto_needs_a_fixed_folder_and_no_overwrite(cli_runner, tmp_path):
    _one_line(_train(cli_runner, "trainer.max_steps=1", "resume=auto"), "give that folder, hydra.run.dir=")
    _one_line(_train(cli_runner, "trainer.max_steps=1", "resume=auto", "overwrite=true",
                     f"hydra.run.dir={tmp_path / 'x'}"), "give resume=auto or overwrite=true, not both")
    assert not (tmp_path / "x").exists()

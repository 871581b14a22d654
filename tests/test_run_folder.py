"""Who owns a run folder (docs/reliability.md R16, R17): one writer per folder, a fresh run never
writes over another run, a failed start leaves nothing behind, and a refused resume leaves the run
as it was (its `.hydra/` included), whatever form its path takes on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

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

"""The command line: Hydra behaviour through Click, one-line errors, multirun, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ganzoo.overrides import flags_first, with_resume

from .conftest import TINY_DATA, TINY_OVERRIDES, invoke, tiny_model_overrides


def test_version_and_help(cli_runner):
    r = invoke(cli_runner, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("ganzoo ")
    r = invoke(cli_runner, ["--help"])
    assert r.exit_code == 0
    for word in ("train", "sample", "list", "model", "dcgan", "gan", "dataset", "digits", "trainer"):
        assert word in r.stdout


def test_list_describes_every_model_and_dataset(cli_runner):
    from ganzoo.cli import group_options

    r = invoke(cli_runner, ["list"])
    assert r.exit_code == 0
    for group in ("model", "dataset"):
        for opt in group_options(group):
            assert opt in r.stdout
    assert "Radford" in r.stdout and "procedural" in r.stdout
    assert "ganzoo[svhn]" in " ".join(r.stdout.split())  # descriptions are text, not rich markup


@pytest.mark.parametrize("args, needle", [
    (["model=nonexistent"], "Could not find 'model/nonexistent' (available: "),
    (["dataset=nope"], "available: "),
    (["trainer.max_steps=abc"], "could not be converted to Integer"),
    (["trainer.max_step=5"], "Key 'max_step' not in 'TrainerSettings'"),
    (["optim.lr=1e-4,2e-4"], "to sweep add -m/--multirun"),
    (["model.foo=1"], "Could not override 'model.foo'"),
    (["model=[dcgan"], "model=[dcgan"),
    (["model.ngf=abc"], "model.ngf='abc' has the wrong type"),
    (["model.z_dim=0.5"], "model.z_dim=0.5 has the wrong type"),
    (["dataset=image_folder", "dataset.path=/definitely/not/here"], "/definitely/not/here"),
    (["trainer.batch_size=100000"], "lower trainer.batch_size"),
    (["optim.name=rmsprop"], "optim.name=rmsprop: must be one of adam, adamw, sgd"),
])
def test_bad_overrides_print_one_line_and_exit_2(cli_runner, tmp_path, args, needle):
    tiny = [o for o in TINY_OVERRIDES if o not in TINY_DATA] if "dataset=image_folder" in args else TINY_OVERRIDES
    r = invoke(cli_runner, ["train", *tiny, "trainer.max_steps=1", *args, f"hydra.run.dir={tmp_path}"])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in r.output


def test_sample_bad_run_is_one_line(cli_runner, tmp_path):
    r = invoke(cli_runner, ["sample", f"run={tmp_path / 'missing'}"])
    assert r.exit_code == 2 and "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_flags_before_or_after_overrides():
    assert flags_first(["model=gan", "-m", "seed=0,1"]) == ["-m", "model=gan", "seed=0,1"]
    assert flags_first(["a=1", "--cfg", "job", "-p", "trainer"]) == ["--cfg", "job", "-p", "trainer", "a=1"]
    assert flags_first(["-cd", "my", "x=1"]) == ["-cd", "my", "x=1"]
    assert flags_first(["x=1", "--info", "defaults"]) == ["--info", "defaults", "x=1"]
    assert flags_first(["x=1", "--info"]) == ["--info", "x=1"]


def test_with_resume_reuses_the_runs_overrides(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- model=gan\n- trainer.max_steps=10\n- seed=4\n")
    got = with_resume([f"resume={tmp_path}", "trainer.max_steps=20"])
    assert got == ["model=gan", "seed=4", f"resume={tmp_path}", "trainer.max_steps=20", f"hydra.run.dir={tmp_path}"]


def test_cfg_job_prints_config_after_overrides(cli_runner):
    r = invoke(cli_runner, ["train", "model=gan", "--cfg", "job", "-p", "model"])
    assert r.exit_code == 0 and "d_units: 240" in r.stdout


def test_user_config_dir_adds_a_model(cli_runner, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "dcgan_small.yaml").write_text(
        "# @package _global_\n# a smaller DCGAN\ndefaults:\n  - /model/dcgan@_global_\n  - _self_\nmodel:\n  ngf: 8\n")
    r = invoke(cli_runner, ["train", "-cd", str(tmp_path), "model=dcgan_small", "--cfg", "job", "-p", "model"])
    assert r.exit_code == 0, r.output
    assert "ngf: 8" in r.stdout and "name: dcgan" in r.stdout


def test_multirun_creates_one_folder_per_job(cli_runner, tmp_path):
    r = invoke(cli_runner, ["train", "seed=0,1", "-m", "trainer.max_steps=1", *TINY_OVERRIDES,
                            f"hydra.sweep.dir={tmp_path}"])
    assert r.exit_code == 0, r.output
    jobs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != "report")  # report/: its plots
    assert jobs == ["0", "1"] and (tmp_path / "report.html").is_file()
    for j in jobs:
        assert (tmp_path / j / "checkpoints" / "latest.json").exists()
        assert (tmp_path / j / ".hydra" / "overrides.yaml").read_text().count("seed=") == 1


def test_sweep_goes_on_past_a_failing_job_and_ends_with_a_summary(cli_runner, tmp_path):
    """Job 1 (cyclegan on the digits, given explicitly: they have no A/B images) fails; jobs 0 and 2 still
    run; the summary names each job's status and job 1's reason; the exit code is the failed job's (2)."""
    r = invoke(cli_runner, ["train", "-m", "model=dcgan,cyclegan,dcgan", "dataset=digits", "trainer.max_steps=1",
                            *TINY_OVERRIDES,
                            "model.ngf=8", "model.ndf=8", f"hydra.sweep.dir={tmp_path}"])
    assert r.exit_code == 2, r.output
    for job in ("0", "2"):
        assert (tmp_path / job / "checkpoints" / "latest.json").exists(), r.output
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())["jobs"]
    assert [j["status"] for j in summary] == ["done", "failed", "done"], summary
    assert [j["num"] for j in summary] == [0, 1, 2]
    assert "model=cyclegan" in summary[1]["overrides"] and summary[1]["exit_code"] == 2
    assert summary[1]["reason"] and summary[1]["reason"] in r.stderr, r.stderr
    assert "sweep_summary.json" in r.stderr and "failed" in r.stderr and "Traceback" not in r.output


def _ganzoo(*args, cwd, env=None):
    exe = Path(sys.executable).with_name("ganzoo")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_console_script_unwritable_run_folder_is_one_line(tmp_path):
    """Off the in-process runner, a run folder under a file is one stderr line too (no Hydra callback warning)."""
    (tmp_path / "a_file").write_text("x")
    r = _ganzoo("train", "trainer.max_steps=1", *TINY_OVERRIDES, *tiny_model_overrides("dcgan"),
                f"hydra.run.dir={tmp_path / 'a_file' / 'sub'}", cwd=tmp_path)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: cannot write") and "Not a directory" in lines[0]


def test_console_script_train_then_sample_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    r = _ganzoo("train", "trainer.max_steps=3", *TINY_OVERRIDES, *tiny_model_overrides("dcgan"),
                f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / "stats.jsonl").exists()
    r = _ganzoo("sample", f"run={run_dir}", "n=16", "out=grid.png", "seed=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    img = Image.open(tmp_path / "grid.png")
    assert img.size == (4 * 30 + 2, 4 * 30 + 2)
    lo, hi = img.getextrema()
    assert hi - lo > 50, "the grid is blank"
    r = _ganzoo("sample", f"run={run_dir}", "n=3", "out=pngs", cwd=tmp_path)
    assert r.returncode == 0 and len(list((tmp_path / "pngs").glob("*.png"))) == 3
    # resume continues in the same folder, with the run's own overrides, to the new max_steps
    r = _ganzoo("train", f"resume={run_dir}", "trainer.max_steps=5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = [int(p.name[5:13]) for p in (run_dir / "checkpoints").glob("step_*.pt")]
    assert max(steps) == 5
    r = subprocess.run([sys.executable, "-m", "ganzoo", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "ganzoo" in r.stdout


def test_home_folder_in_a_value_is_expanded(cli_runner):
    """`dataset.root=~/data` (as the README writes it) is a Hydra lexer error unless expanded first."""
    from ganzoo.overrides import expand_home

    r = invoke(cli_runner, ["train", "dataset.root=~/x", "--cfg", "job", "-p", "dataset"])
    assert r.exit_code == 0, r.output
    assert f"root: {Path('~/x').expanduser()}" in r.stdout
    home = str(Path("~").expanduser())
    assert expand_home(["a=~", "b=~/p", "c=x~y", "~d", "-cd", "e=~x y"]) == \
        ["a=" + home, f"b={home}/p", "c=x~y", "~d", "-cd", "e=~x y"]


def test_console_script_messages_unwrapped_warnings_one_line_plain_rate_and_summary(tmp_path):
    """Off a terminal: step lines carry steps/s and ETA, the run ends with a summary line, nothing is
    wrapped at 80 columns (paths whole), and ganzoo's warnings print as `warning: <message>`."""
    run_dir = tmp_path / ("a_long_folder_name_that_pushes_every_path_past_eighty_columns_" * 2) / "run"
    r = _ganzoo("train", "trainer.max_steps=2", "trainer.ckpt_every=1", *TINY_OVERRIDES, *tiny_model_overrides("dcgan"),
                f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = [x for x in r.stderr.splitlines() if x.startswith("step ")]
    assert len(steps) == 2 and all(" steps/s  eta " in x for x in steps), r.stderr
    done = [x for x in r.stderr.splitlines() if x.startswith("done: ")]
    assert len(done) == 1 and "2 steps" in done[0] and "G/loss" in done[0], r.stderr
    assert done[0].endswith(f"checkpoint {run_dir / 'checkpoints' / 'step_00000002.pt'}"), done[0]
    newest = run_dir / "checkpoints" / "step_00000002.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # damaged: sample falls back to step 1, with a warning
    out = tmp_path / ("another_long_name_for_the_grid_file_so_the_message_passes_eighty_columns" * 2 + ".png")
    r = _ganzoo("sample", f"run={run_dir}", "n=4", f"out={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert f"wrote {out}" in lines, r.stderr
    warned = [x for x in lines if x.startswith("warning: skipping checkpoint")]
    assert len(warned) == 1 and str(newest) in warned[0], r.stderr
    assert "UserWarning" not in r.stderr and "warnings.warn" not in r.stderr, r.stderr

"""Cluster sweeps: Hydra's submitit launcher (the `cluster` extra) runs a real sweep here with
`submitit_local`; the shipped SLURM example composes into the sbatch script a cluster would get; and
a stop signal is handed on, after the checkpoint, to the handler a cluster launcher installed (submitit
requeues the job there, and the requeued job continues with resume=auto)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ganzoo.checkpoint import load_run

from .conftest import TINY_OVERRIDES, tiny_model_overrides

TINY = [*TINY_OVERRIDES, *tiny_model_overrides("dcgan"), "trainer.device=cpu"]
EXE = str(Path(sys.executable).with_name("ganzoo"))


def test_a_submitit_local_sweep_runs_every_job(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    r = subprocess.run([EXE, "train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", *TINY,
                        "trainer.max_steps=2", "seed=0,1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["done", "done"], summary
    assert [load_run(sweep / str(i))["step"] for i in (0, 1)] == [2, 2]
    assert (sweep / ".submitit").is_dir()  # run by submitit's own job processes


def test_the_slurm_example_makes_one_task_per_job_with_a_warning_signal(monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import submitit
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    class Submitted(Exception):
        pass

    def capture(self, fn, *args):
        text = self._executor._make_submission_file_text("python -u -m submitit.core._submit /x", "uid")
        raise Submitted(text)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # as if srun were here
    with initialize_config_module("ganzoo.conf", version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=ganzoo_slurm", "trainer.devices=2", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        launcher = instantiate(cfg.hydra.launcher)
        launcher.config, launcher.task_function = cfg, None
        launcher.params = {k: v for k, v in cfg.hydra.launcher.items() if k != "_target_"}
        with pytest.raises(Submitted) as got:
            launcher.launch([["seed=0"]], initial_job_idx=0)
    script = str(got.value)
    for line in ("#SBATCH --signal=USR2@120", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --time=240", "#SBATCH --partition=gpu"):
        assert line in script, script


def test_a_stop_signal_is_handed_on_after_the_checkpoint(tmp_path):
    """As under submitit: a Python handler for SIGUSR2 is installed before ganzoo starts."""
    run, marker = tmp_path / "run", tmp_path / "requeued"
    code = (f"import signal, sys\n"
            f"def requeue(signum, frame):\n"
            f"    open({str(marker)!r}, 'w').write(str(signum))\n"
            f"    sys.exit(77)\n"
            f"signal.signal(signal.SIGUSR2, requeue)\n"
            f"from ganzoo.cli import main\n"
            f"sys.argv = ['ganzoo', 'train', *{TINY!r}, 'trainer.max_steps=100000', 'trainer.ckpt_every=0',\n"
            f"            'resume=auto', 'hydra.run.dir={run}']\n"
            f"main()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stats = run / "stats.jsonl"
    deadline = time.time() + 120
    while not (stats.exists() and stats.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGUSR2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 77, err  # the launcher's handler ran, and exited as it chose
    assert marker.read_text() == str(int(signal.SIGUSR2))
    assert load_run(run)["step"] >= 3  # after the checkpoint

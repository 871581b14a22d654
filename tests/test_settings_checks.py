"""Settings are checked where they enter (docs/reliability.md, "Settings out of range"): every numeric
and enumerated key of trainer/optim and of the sample/eval/translate commands refuses a bad value in
one line naming the key and the valid values (exit 2), before anything is built or written."""

from __future__ import annotations

import pytest
import torch

from ganzoo.commands.checks import EVAL_CHECKS, EXPORT_CHECKS, SAMPLE_CHECKS, SERVE_CHECKS, TRANSLATE_CHECKS
from ganzoo.settings import OPTIM_CHECKS, TRAINER_CHECKS, Check, OptimSettings, TrainerSettings

from .conftest import TINY_OVERRIDES, invoke


def _bad_values(check: Check) -> list[object]:
    """Values just outside `check` (as override strings)."""
    if check.choices:
        return ["bogus"]
    if check.pattern is not None:
        return ["gpu"]
    bad: list[object] = []
    if check.lo is not None:
        bad.append(check.lo if check.lo_open else check.lo - 1)
    if check.hi is not None:
        bad.append(check.hi + 1 if not check.hi_open else check.hi)
    if not check.integer:
        bad.append("nan")
    return bad


def _cases(prefix: str, checks: dict[str, Check]) -> list[tuple[str, object]]:
    return [(f"{prefix}{key}", v) for key, c in checks.items() for v in _bad_values(c)]


# the outside test run's cases first, then every checked key just outside its range
TRAIN_CASES = [("trainer.batch_size", -4), ("trainer.batch_size", 0), ("trainer.log_every", 0),
               ("trainer.max_steps", -1), ("trainer.ema_decay", 2), ("trainer.keep_ckpts", 1),
               ("optim.betas", "[0.5,1.5]"), ("optim.betas", "[0.5]"), ("optim.phases.G.lr", -1),
               *_cases("trainer.", TRAINER_CHECKS), *_cases("optim.", OPTIM_CHECKS)]


def _one_line(r, key: str) -> str:
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"Error: {key}=") and "must be" in lines[0], lines[0]
    assert "Traceback" not in r.output
    return lines[0]


@pytest.mark.parametrize("key, bad", TRAIN_CASES, ids=[f"{k}={v}" for k, v in TRAIN_CASES])
def test_train_refuses_out_of_range_settings_before_the_run_folder(cli_runner, tmp_path, key, bad):
    run_dir = tmp_path / "run"
    extra = ["trainer.max_epochs=1"] if key == "trainer.max_steps" and bad is None else []
    add = "+" if ".phases." in key else ""  # a per-phase key is new to the config
    r = invoke(cli_runner, ["train", *TINY_OVERRIDES, "trainer.device=cpu", *extra, f"{add}{key}={bad}",
                            f"hydra.run.dir={run_dir}"])
    _one_line(r, key)
    assert not run_dir.exists(), sorted(p.name for p in run_dir.rglob("*"))


def test_every_setting_with_a_range_is_walked():
    numeric = {f.name for cls in (TrainerSettings, OptimSettings) for f in cls.__dataclass_fields__.values()
               if f.type in ("int", "float", "str", "Optional[int]", "Optional[float]")}
    checked = set(TRAINER_CHECKS) | set(OPTIM_CHECKS)
    assert numeric <= checked, numeric - checked
    walked = {k.split(".", 1)[1] for k, _ in TRAIN_CASES}
    assert checked <= walked


COMMAND_CASES = [(cmd, key, v) for cmd, checks in (("sample", SAMPLE_CHECKS), ("eval", EVAL_CHECKS),
                                                    ("translate", TRANSLATE_CHECKS), ("export", EXPORT_CHECKS),
                                                    ("serve", SERVE_CHECKS))
                 for key, c in checks.items() for v in _bad_values(c)]


@pytest.mark.parametrize("cmd, key, bad", COMMAND_CASES, ids=[f"{c}-{k}={v}" for c, k, v in COMMAND_CASES])
def test_commands_refuse_out_of_range_arguments_first(cli_runner, tmp_path, cmd, key, bad):
    run = tmp_path / "no_run"  # checked before the run is even looked for
    args = [f"run={run}", f"{key}={bad}"] + ([f"input={tmp_path}"] if cmd == "translate" else []) \
        + (["format=onnx"] if cmd == "export" and key != "format" else [])
    _one_line(invoke(cli_runner, [cmd, *args]), key)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("device, attr", [("cuda", "cuda"), ("cuda:1", "cuda"), ("mps", "mps")])
def test_a_device_this_machine_lacks_is_one_line(cli_runner, tmp_path, monkeypatch, device, attr):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    run_dir = tmp_path / "run"
    r = invoke(cli_runner, ["train", *TINY_OVERRIDES, f"trainer.device={device}", f"hydra.run.dir={run_dir}"])
    assert r.exit_code == 2 and not run_dir.exists()
    what = "CUDA" if attr == "cuda" else "MPS"
    assert r.stderr.strip() == (f"Error: trainer.device={device} but no {what} device is available: "
                                f"use trainer.device=auto or cpu")
    r = invoke(cli_runner, ["sample", f"run={tmp_path}", f"device={device}"])
    assert r.exit_code == 2 and f"device={device} but no {what} device" in r.stderr


def test_ckpt_every_zero_warns_that_only_the_end_is_saved(tmp_path, caplog, monkeypatch):
    import logging

    from ganzoo import run

    logger = logging.getLogger("ganzoo")  # an earlier in-process Hydra job may have reconfigured it
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "propagate", True)

    from .conftest import TINY_DIGITS, tiny_model_cfg, tiny_trainer_settings

    with caplog.at_level("WARNING", logger="ganzoo"):
        run.train(model_cfg=tiny_model_cfg("dcgan"), dataset_cfg=dict(TINY_DIGITS),
                  trainer=tiny_trainer_settings(max_steps=1, ckpt_every=0), optim=OptimSettings(), seed=0,
                  run_dir=tmp_path, config={})
    assert "trainer.ckpt_every=0: one checkpoint at the end" in caplog.text

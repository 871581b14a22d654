"""Every registered model, end to end through the contract: a 2-step run, then `ganzoo eval` writes the
metrics of each suite the model declares; every declared suite and capability exists."""

from __future__ import annotations

import json

import pytest

from ganzoo import run
from ganzoo.models.base import CAPABILITIES
from ganzoo.registry import MODELS, SUITES
from ganzoo.settings import OptimSettings

from .conftest import invoke, tiny_data_cfg, tiny_model_cfg, tiny_trainer_settings

# one metric each suite always writes
SUITE_KEYS = {"histogram": "recognisable", "class_accuracy": "conditional_accuracy",
              "code_accuracy": "code_accuracy", "ssl_accuracy": "test_accuracy", "translation": "directions",
              "super_resolution": "psnr_y", "fid": "fid", "kid": "kid", "is": "is", "pr": "precision",
              "pair_agreement": "pixel_agreement", "target_accuracy": "target_accuracy",
              "target_identity": "AtoB_target_identity_l1", "reconstruction": "recon_l1"}


def test_every_suite_has_a_smoke_key():
    assert set(SUITES.names()) == set(SUITE_KEYS)


@pytest.mark.parametrize("name", MODELS.names())
def test_declarations_name_known_suites_and_capabilities(name):
    cls = MODELS.get(name)
    assert cls.suites and set(cls.suites) <= set(SUITES.names())
    assert cls.capabilities and set(cls.capabilities) <= set(CAPABILITIES)


@pytest.mark.parametrize("name", MODELS.names())
def test_two_steps_then_eval_writes_the_declared_metrics(name, tmp_path, cli_runner):
    run.train(model_cfg=tiny_model_cfg(name), dataset_cfg=tiny_data_cfg(name), trainer=tiny_trainer_settings(),
              optim=OptimSettings(), seed=0, run_dir=tmp_path, config={})
    r = invoke(cli_runner, ["eval", f"run={tmp_path}", "n_per_class=4", "judge_epochs=1", "batch_size=64",
                            "device=cpu"])
    assert r.exit_code == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["model"] == name and m["step"] == 2
    for suite in MODELS.get(name).suites:
        assert SUITE_KEYS[suite] in m, (suite, sorted(m))

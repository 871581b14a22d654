"""The smaller defects of the outside test run (docs/reliability.md): sample's out= extension, the
divergence message without a checkpoint, checkpoints without a .sha256 sidecar, SR metrics per test
set, run folders named by the dataset config, https downloads."""

from __future__ import annotations

import json

import pytest
import torch

from ganzoo import checkpoint as ck

from .conftest import invoke


def test_sample_refuses_an_out_with_a_non_image_extension(cli_runner, tmp_path):
    r = invoke(cli_runner, ["sample", f"run={tmp_path / 'run'}", f"out={tmp_path / 'grid.xyz'}"])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().startswith("Error: out=") and ".png" in r.stderr and "(no extension)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "grid.xyz").exists()


def test_divergence_before_any_checkpoint_does_not_claim_one_is_kept(tmp_path):
    from ganzoo import run
    from ganzoo.settings import OptimSettings
    from ganzoo.trainer import Diverged, Trainer

    from .conftest import TINY_DIGITS, tiny_model_cfg, tiny_trainer_settings

    original = Trainer.fit

    def fit(self):
        with torch.no_grad():
            next(self.model.G.parameters())[0].fill_(float("nan"))
        return original(self)

    Trainer.fit = fit
    try:
        with pytest.raises(Diverged) as e:
            run.train(model_cfg=tiny_model_cfg("dcgan"), dataset_cfg=dict(TINY_DIGITS),
                      trainer=tiny_trainer_settings(max_steps=1), optim=OptimSettings(), seed=0, run_dir=tmp_path,
                      config={})
    finally:
        Trainer.fit = original
    assert "no checkpoint was written before" in str(e.value) and "last good" not in str(e.value)


def _payload(step: int) -> dict:
    return {"format": ck.FORMAT_VERSION, "step": step, "w": torch.full((4,), float(step))}


def test_a_checkpoint_without_its_sidecar_is_used_with_a_warning(tmp_path):
    p = ck.save_checkpoint(tmp_path, 1, _payload(1))
    p.with_name(p.name + ".sha256").unlink()
    with pytest.warns(UserWarning, match="no .sha256 beside it: used unverified"):
        assert ck.load_run(tmp_path)["step"] == 1


def test_a_corrupt_newest_without_sidecar_still_falls_back(tmp_path):
    ck.save_checkpoint(tmp_path, 1, _payload(1))
    p2 = ck.save_checkpoint(tmp_path, 2, _payload(2))
    p2.with_name(p2.name + ".sha256").unlink()
    p2.write_bytes(p2.read_bytes()[: p2.stat().st_size // 2])
    with pytest.warns(UserWarning, match="skipping checkpoint .*no .sha256"):
        assert ck.load_run(tmp_path)["step"] == 1


def test_sr_metrics_on_another_test_set_get_their_own_file(tmp_path):
    from ganzoo.metrics.evaluate import metrics_path

    run = tmp_path / "run"
    assert metrics_path(str(run), None) == run / "metrics.json"
    assert metrics_path(str(run), None, str(tmp_path / "Set14")) == run / "metrics_Set14.json"
    assert metrics_path(str(run), None, str(tmp_path / "BSD100") + "/") == run / "metrics_BSD100.json"
    assert metrics_path(str(run), str(tmp_path / "m.json"), str(tmp_path / "Set14")) == tmp_path / "m.json"


@pytest.mark.parametrize("dataset", ["div2k", "horse2zebra", "facades", "digits"])
def test_run_folder_is_named_by_the_dataset_config(dataset):
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_module(config_module="ganzoo.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"dataset={dataset}"], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        assert cfg.hydra.run.dir.split("/")[:3] == ["outputs", cfg.model.name, dataset]


def test_downloads_come_over_https_and_data_list_says_so(cli_runner, tmp_path):
    from ganzoo.data.fetch import manifest

    # plain http only for a file checked against a published digest (SVHN's host has no https listing)
    plain = [e.name for e in manifest.ENTRIES.values() if not e.url.startswith("https://") and not e.sha256]
    assert plain == []
    r = invoke(cli_runner, ["data", "list", "--root", str(tmp_path)])
    assert r.exit_code == 0 and "via" in r.stdout and "https" in r.stdout


def test_a_hash_recorded_over_http_still_holds_over_https(tmp_path):
    from ganzoo.data.fetch import download, manifest

    entry = manifest.ENTRIES["cyclegan_model/horse2zebra"]
    record = {"entries": {entry.name: {"url": entry.url.replace("https://", "http://"), "sha256": "ab" * 32,
                                       "size": 1, "recorded": "2026-01-01T00:00:00+00:00"}}}
    download.lock_path(tmp_path).write_text(json.dumps(record))
    assert download.recorded_sha256(entry, tmp_path) == "ab" * 32

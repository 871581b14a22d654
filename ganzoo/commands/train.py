"""`ganzoo train`: the Hydra entry point (module name = hydra.job.name = "train")."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors
from .run_folder import claim, launcher_rank, resolve_auto


@hydra.main(config_path="pkg://ganzoo.conf", config_name="train", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    if launcher_rank():  # rank > 0 of an external launcher (torchrun): rank 0 owns the folder and writes
        resume, _ = resolve_auto(Path(run_dir), cfg.resume, cfg.overwrite)
        _train(cfg, run_dir, resume=resume, on_start=None)
        return
    folder = claim(run_dir, resume=cfg.resume, overwrite=cfg.overwrite)  # taken by the callback before Hydra wrote
    try:
        if cfg.trainer.devices > 1:
            _launch(cfg, run_dir, folder)
        else:
            _train(cfg, run_dir, resume=folder.resume, on_start=folder.start)  # resume=auto resolved by the claim
    finally:
        folder.end()


def _arguments(cfg: DictConfig, run_dir: str, resume: Path | None) -> dict:
    """run.train's arguments (plain, picklable: a data-parallel run sends them to its processes)."""
    from ganzoo.settings import length_given

    given = {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}  # keys given: length_given
    return {"model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
            "dataset_cfg": OmegaConf.to_container(cfg.dataset, resolve=True),
            "trainer": length_given(OmegaConf.to_object(cfg.trainer), given), "optim": OmegaConf.to_object(cfg.optim),
            "seed": cfg.seed, "run_dir": run_dir, "config": OmegaConf.to_container(cfg, resolve=True),
            "resume": None if resume is None else str(resume), "resume_force": cfg.resume_force}


def _train(cfg: DictConfig, run_dir: str, *, resume: Path | None, on_start) -> None:
    from ganzoo import distributed, run  # torch is imported only once a job really runs

    run.train(**_arguments(cfg, run_dir, resume), on_start=on_start, world=distributed.from_env())


def _launch(cfg: DictConfig, run_dir: str, folder) -> None:
    """trainer.devices=N: N processes started by torch's elastic launcher (commands/launch.py)."""
    from ganzoo.runtime import check_devices, pick_device

    from .launch import spawn

    t = cfg.trainer
    check_devices(t.devices, pick_device(t.device, key="trainer.device"), t.batch_size, t.sync_bn)
    try:
        spawn(t.devices, _arguments(cfg, run_dir, folder.resume), folder.starter())
    finally:
        folder.started_elsewhere()

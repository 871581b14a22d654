"""`ganzoo train`: the Hydra entry point (module name = hydra.job.name = "train")."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors
from .run_folder import claim


@hydra.main(config_path="pkg://ganzoo.conf", config_name="train", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    folder = claim(run_dir, resume=cfg.resume, overwrite=cfg.overwrite)  # taken by the callback before Hydra wrote
    try:
        _train(cfg, run_dir, folder)
    finally:
        folder.end()


def _train(cfg: DictConfig, run_dir: str, folder) -> None:
    from ganzoo import run  # torch is imported only once a job really runs
    from ganzoo.settings import length_given

    hydra_cfg = HydraConfig.get()
    given = {o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.task}  # keys given: length_given
    run.train(model_cfg=OmegaConf.to_container(cfg.model, resolve=True),
              dataset_cfg=OmegaConf.to_container(cfg.dataset, resolve=True),
              trainer=length_given(OmegaConf.to_object(cfg.trainer), given), optim=OmegaConf.to_object(cfg.optim),
              seed=cfg.seed, run_dir=run_dir, config=OmegaConf.to_container(cfg, resolve=True),
              resume=None if folder.resume is None else str(folder.resume),  # resume=auto resolved by the claim
              resume_force=cfg.resume_force, on_start=folder.start)

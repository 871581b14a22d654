"""`ganzoo train`: the Hydra entry point (module name = hydra.job.name = "train")."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors


@hydra.main(config_path="pkg://ganzoo.conf", config_name="train", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from ganzoo import run  # torch is imported only once a job really runs

    run.train(model_cfg=OmegaConf.to_container(cfg.model, resolve=True),
              dataset_cfg=OmegaConf.to_container(cfg.dataset, resolve=True),
              trainer=OmegaConf.to_object(cfg.trainer), optim=OmegaConf.to_object(cfg.optim), seed=cfg.seed,
              run_dir=HydraConfig.get().runtime.output_dir, config=OmegaConf.to_container(cfg, resolve=True),
              resume=cfg.resume, resume_force=cfg.resume_force)

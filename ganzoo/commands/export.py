"""`ganzoo export`: the Hydra entry point (writes the exported files and nothing else)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors
from .checks import EXPORT_CHECKS, check_args


@hydra.main(config_path="pkg://ganzoo.conf", config_name="export", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from ganzoo.export import export
    from ganzoo.runlog import stderr_console

    args = OmegaConf.to_container(cfg, resolve=True)
    check_args(args, EXPORT_CHECKS)
    err = stderr_console(highlight=False)
    for e in export(**args):
        err.print(f"wrote {e.path} ({e.graph}): max abs difference {e.max_abs_diff:.2e} from the PyTorch model "
                  f"(atol {args['atol']:g}), {e.seconds:.1f} s", markup=False)

"""`ganzoo translate`: the Hydra entry point (writes nothing but the translated images)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from . import one_line_errors
from .checks import TRANSLATE_CHECKS, check_args


@hydra.main(config_path="pkg://ganzoo.conf", config_name="translate", version_base="1.3")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from ganzoo.runlog import stderr_console
    from ganzoo.translate import translate

    args = OmegaConf.to_container(cfg, resolve=True)
    check_args(args, TRANSLATE_CHECKS)
    model = args.pop("model")
    args.pop("optim"), args.pop("trainer"), args.pop("dataset")
    model = model if isinstance(model, dict) else {"name": model}  # model=<name> composes conf/model/<name>.yaml
    n, path, skipped = translate(**args, model=model.get("name"), eval_mode=model.get("eval_mode"))
    err = stderr_console(highlight=False)
    if skipped:
        err.print(f"skipped {len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''}, first: {skipped[0]}",
                  markup=False)
    err.print(f"translated {n} image{'s' if n != 1 else ''} -> {path}", markup=False)

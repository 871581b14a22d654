"""The commands' work, below the config layer: `train` and `sample` from explicit arguments."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from . import __version__
from .build import (
    SUBSET_KEYS,
    Splits,
    build_dataset,
    build_model,
    labeled_subset_args,
    load_model,  # noqa: F401 - part of this module's API (run.load_model)
    load_pretrained,
    split_name,
)
from .checkpoint import load_run
from .data.base import DataInfo
from .data.loader import BatchStream
from .distributed import SINGLE, World
from .distributed import init as init_world
from .errors import UserError
from .images import save_grid, save_images
from .metrics.suite import EvalOptions, Evaluation, scalars
from .models.base import CONDITIONAL, JOINT, TRANSLATE, TRAVERSE, class_rows, side_by_side
from .portable import load_inference_model
from .runtime import check_devices, pick_device, rank_seed, seed_everything
from .settings import OptimSettings, TrainerSettings, resolve_epochs
from .trainer import Trainer

log = logging.getLogger("ganzoo")


def resume_differences(ckpt: dict, model_name: str, model_args: dict, dataset_cfg: dict, info: DataInfo,
                       *, batch_size: int | None = None, seed: int | None = None, world_size: int = 1) -> list[str]:
    """What differs between a checkpoint and the run about to continue it (empty: compatible).
    `batch_size` and `seed` (when given) are compared with the run's config: either one changes the
    order of the data from the resumed position on, so the resume would no longer be exact; so does the
    number of data-parallel processes (each rank's share of the batch and its random stream)."""
    diffs = []
    old_world = int(ckpt.get("world_size", 1))
    if old_world != world_size:
        diffs.append(f"trainer.devices {old_world} -> {world_size} (each process's share of the batch and its "
                     f"random stream would change)")
    cfg = ckpt.get("config") or {}
    old_batch = (cfg.get("trainer") or {}).get("batch_size")
    if batch_size is not None and old_batch is not None and old_batch != batch_size:
        diffs.append(f"trainer.batch_size {old_batch} -> {batch_size} (the data order would change)")
    if seed is not None and cfg.get("seed") is not None and cfg["seed"] != seed:
        diffs.append(f"seed {cfg['seed']} -> {seed} (the data order would change)")
    old = ckpt["model"]
    if old["name"] != model_name:
        diffs.append(f"model {old['name']} -> {model_name}")
    for k in sorted(set(old["args"]) | set(model_args)):
        if old["args"].get(k) != model_args.get(k):
            diffs.append(f"model.{k} {old['args'].get(k)!r} -> {model_args.get(k)!r}")
    if ckpt["dataset"].get("name") != dataset_cfg.get("name"):
        diffs.append(f"dataset {ckpt['dataset'].get('name')} -> {dataset_cfg.get('name')}")
    d = ckpt["data"]
    old_shape = f"{d['channels']}x{d['resolution']}x{d['resolution']}"
    new_shape = f"{info.channels}x{info.resolution}x{info.resolution}"
    if old_shape != new_shape:
        diffs.append(f"data shape {old_shape} -> {new_shape}")
    if d.get("num_classes") != info.num_classes:
        diffs.append(f"classes {d.get('num_classes')} -> {info.num_classes}")
    for key in SUBSET_KEYS:  # the labeled subset of a semi-supervised run
        if ckpt["dataset"].get(key) != dataset_cfg.get(key):
            diffs.append(f"dataset.{key} {ckpt['dataset'].get(key)!r} -> {dataset_cfg.get(key)!r}")
    if d.get("fingerprint") and info.fingerprint and d["fingerprint"] != info.fingerprint and not diffs:
        diffs.append(f"dataset contents (fingerprint {d['fingerprint'][:12]} -> {info.fingerprint[:12]})")
    return diffs


def train(*, model_cfg: dict, dataset_cfg: dict, trainer: TrainerSettings, optim: OptimSettings, seed: int,
          run_dir: str | os.PathLike, config: dict, resume: str | None = None, resume_force: bool = False,
          on_start: Callable[[], object] | None = None, world: World = SINGLE) -> Trainer:
    """Build, check and train. `on_start` is called once everything is checked, right before the
    first write to `run_dir` (the command layer then keeps the run's new config and its folder).
    `world`: this process's place in a data-parallel run (`ganzoo.distributed`; rank 0 writes)."""
    run_dir = Path(run_dir)
    ckpt = load_run(resume) if resume else None  # fail fast, before building anything
    device = pick_device(trainer.device, key="trainer.device")
    check_devices(1 if world.active else trainer.devices, device, trainer.batch_size, trainer.sync_bn and world.active,
                  world.size)
    device = init_world(world, device)
    if trainer.cudnn_benchmark:
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        else:
            log.warning("trainer.cudnn_benchmark=true does nothing on %s (a CUDA switch)", device.type)
    seed_everything(seed)
    data = build_dataset(dataset_cfg, split="train")  # the data does not change with the training seed
    model_name, model_args = split_name(model_cfg, "model")
    model = build_model(model_name, model_args, data.info).to(device)
    if trainer.sync_bn and world.active:  # batch statistics over the global batch; same state-dict keys
        for name, child in list(model.named_children()):
            setattr(model, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))
    if trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if ckpt is not None:
        diffs = resume_differences(ckpt, model_name, model_args, dataset_cfg, data.info,
                                   batch_size=trainer.batch_size, seed=seed, world_size=world.size)
        if diffs and not resume_force:
            raise UserError(f"cannot resume {resume}: {'; '.join(diffs)} (pass resume_force=true to resume anyway)")
        for key, now in (("torch_version", str(torch.__version__)), ("ganzoo_version", __version__)):
            if ckpt.get(key) != now:
                log.warning("resuming a checkpoint written by %s %s with %s", key.split("_")[0], ckpt.get(key), now)
    load_pretrained(model, training=True, fresh=ckpt is None, data=data)
    if data.labeled_subset is not None:
        per_class, label_seed = labeled_subset_args(dataset_cfg)
        log.info("labeled subset: %d of %d images (%d per class, label_seed %d); every image is used unlabeled",
                 data.labeled_subset.numel(), len(data), per_class, label_seed)
    stream = BatchStream(data, batch_size=trainer.batch_size, seed=seed, device=device, preload=trainer.preload,
                         preload_max_mb=trainer.preload_max_mb, num_workers=trainer.num_workers,
                         worker_timeout=trainer.worker_timeout, channels_last=trainer.channels_last,
                         labeled_batch_size=model.batch_size_of("image_l", trainer.batch_size),
                         rank=world.rank, world=world.size)
    trainer, optim = resolve_epochs(trainer, optim, stream.steps_per_epoch)  # epoch counts -> steps
    if not trainer.ckpt_every:
        log.warning("trainer.ckpt_every=0: one checkpoint at the end (and at a stop signal) only; a crash before "
                    "then leaves nothing to resume (set trainer.ckpt_every=<steps>)")
    meta = {"model": {"name": model_name, "args": model_args}, "dataset": dict(dataset_cfg),
            "data": data.info.to_dict(), "config": config}
    evaluator = None
    if trainer.eval_every and world.main:
        with torch.random.fork_rng(devices=[]):  # a judge trained now must not shift the run's random stream
            evaluation = Evaluation(model, Splits(dataset_cfg, train=data),
                                    EvalOptions(device=device, n_per_class=trainer.eval_n_per_class,
                                                model_name=model_name, n_samples=trainer.eval_samples,
                                                feature_extractor=trainer.eval_feature_extractor),
                                    names=trainer.eval_metrics)

        def evaluator(open_model, has_ema: bool) -> dict[str, float]:
            return scalars(evaluation.run(open_model, has_ema))
    if world.rank:  # rank 0 keeps the run's own random stream; the others draw their own noise
        seed_everything(rank_seed(seed, world.rank))
    try:
        t = Trainer(model, stream, settings=trainer, optim=optim, run_dir=run_dir, seed=seed, device=device,
                    meta=meta, evaluator=evaluator, world=world)
    except ValueError as e:
        raise UserError(str(e)) from None
    if ckpt is not None:
        t.load_state_dict(ckpt)
        log.info("resumed %s at step %d", resume, t.step)
    if on_start is not None and world.main:
        on_start()
    if world.main:
        where = f"{world.size} x {device.type}" if world.active else str(device)
        precision = {"none": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[t.amp]
        if trainer.amp == "auto":
            precision += f" ({t.amp_reason})"
        log.info("training %s on %s (%d images, %s) on %s in %s for %d steps -> %s", model_name, data.info.name,
                 len(data), "preloaded" if stream.preloaded else f"{trainer.num_workers} workers", where,
                 precision, trainer.max_steps, run_dir)
    t.fit()
    return t


@torch.no_grad()
def sample(*, run: str | None = None, weights: str | None = None, n: int, out: str | None = None, seed: int = 0, ema: bool = True, nrow: int | None = None,
           labels: list[int] | None = None, per_class: int | None = None, batch_size: int = 256,
           device: str = "auto", traverse: str | None = None) -> Path:
    """n images (or one per entry of `labels`, or `per_class` per class, one row each) as a PNG grid
    (`out` ending in .png) or a folder of PNGs. `traverse=<code>` (models with latent codes, e.g.
    InfoGAN's c2): a grid with one row per categorical code value and `nrow` columns (default 10)
    that vary the continuous code from -2 to 2, everything else fixed (`n` is not used). Image-to-image
    models (with `translate`): their training grid (input | output | ...) on n images of the test split.
    `weights=<file.safetensors>` (written by `ganzoo export`) instead of `run`: the model from that file;
    the default output then goes beside it.
    Models that generate several domains jointly (JOINT, CoGAN): n latents, the images of each latent
    side by side (2n images for two domains)."""
    if n < 1:
        raise UserError(f"n={n}: ask for at least one image (n=64)")
    _check_out(out)
    dev = pick_device(device)
    model, ckpt = load_inference_model(run, weights, device=dev, ema=ema)
    folder = Path(run) / "samples" if run is not None else Path(weights).parent / f"{Path(weights).stem}_samples"
    name, k = ckpt["model"]["name"], model.data.num_classes
    if model.can(TRANSLATE):  # image-to-image: the training grid on n test images
        test = BatchStream(build_dataset(ckpt["dataset"], split="test"), batch_size=1, seed=seed, device=dev)
        images = model.preview(n, generator=torch.Generator(dev).manual_seed(seed), batch=test.fixed_batch(n))
        return _write(images.cpu(), out, folder / f"sample_step{ckpt['step']}_seed{seed}.png",
                      nrow or model.grid_nrow(images.shape[0]), "sample_")
    if traverse is not None:
        if not model.can(TRAVERSE):
            raise UserError(f"model {name!r} has no latent codes to traverse: drop traverse=")
        if labels is not None or per_class is not None:
            raise UserError("give traverse=<code> or labels=/per_class=, not both")
        codes = model.traverse_codes()
        if traverse not in codes:
            raise UserError(f"traverse={traverse}: model {name!r} has no continuous code {traverse!r} "
                            f"(codes: {', '.join(codes) or 'none'})")
        steps = 10 if nrow is None else nrow
        if steps < 1:
            raise UserError(f"nrow={steps}: a traversal needs at least one column")
        images, nrow = model.traverse(traverse, steps, torch.Generator(dev).manual_seed(seed))
        return _write(images.cpu(), out, folder / f"traverse_{traverse}_step{ckpt['step']}_seed{seed}.png",
                      nrow, f"traverse_{traverse}_")
    label_t = None
    if labels is not None or per_class is not None:
        if not model.can(CONDITIONAL):
            raise UserError(f"model {name!r} is unconditional: drop labels= and per_class=")
        if labels is not None and per_class is not None:
            raise UserError("give labels=[...] or per_class=<k>, not both")
        if per_class is not None:
            if per_class < 1:
                raise UserError(f"per_class={per_class}: ask for at least one image per class")
            label_t, nrow = class_rows(k, per_class, dev), nrow or per_class
        else:
            bad = [x for x in labels if not 0 <= x < k]
            if bad or not labels:
                raise UserError(f"labels={labels}: each label must be in 0..{k - 1} for model {name!r}")
            label_t = torch.tensor(labels, device=dev)
        n = label_t.shape[0]
    elif model.can(CONDITIONAL):
        label_t = model.default_labels(n)
    g = torch.Generator(dev).manual_seed(seed)
    if model.can(JOINT):  # n latents, each drawn in every domain: the images of one latent side by side
        images = torch.cat([side_by_side(model.generate_domains(min(batch_size, n - i), generator=g)).cpu()
                            for i in range(0, n, batch_size)])
    else:
        images = torch.cat([model.generate(min(batch_size, n - i), generator=g,
                                           labels=None if label_t is None else label_t[i:i + batch_size]).cpu()
                            for i in range(0, n, batch_size)])
    return _write(images, out, folder / f"sample_step{ckpt['step']}_seed{seed}.png",
                  nrow or model.grid_nrow(images.shape[0]), "sample_")


def _check_out(out: str | None) -> None:
    """`out` is a .png (one grid), a name without an extension or an existing folder (one PNG per image):
    anything else (grid.jpg, grid.xyz) would silently become a folder of that name."""
    if out is None:
        return
    target = Path(out)
    if target.suffix and target.suffix.lower() != ".png" and not target.is_dir():
        raise UserError(f"out={out}: {target.suffix} is not a format sample writes; use out=<name>.png for one grid "
                        f"or out=<folder> (no extension) for one PNG per image")


def _write(images: torch.Tensor, out: str | None, default: Path, nrow: int, prefix: str) -> Path:
    """One PNG grid when the target ends in .png, else a folder of one PNG per image."""
    target = Path(out) if out else default
    if target.suffix.lower() == ".png":
        return save_grid(images, target, nrow)
    save_images(images, target, prefix=prefix)
    return target

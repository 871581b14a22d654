"""Build datasets and models from plain config dicts, checking them against the code's signatures;
rebuild a run's model from its folder; fill a model's pretrained parts (the one resolver).

Each YAML key must be a keyword of the dataset builder / model constructor, and its value must fit
the annotation (int, float, bool, str, optional, list); anything else is a one-line `UserError`
naming the key and the options.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
import types
import typing
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import load_run
from .data.base import DataInfo, ImageDataset
from .data.loader import LABELED_FIELDS, with_labeled_subset
from .errors import UserError
from .models.base import GANModel, Pretrained
from .registry import DATASETS, MODELS, UnknownName
from .storage import atomic_write, data_home

log = logging.getLogger(__name__)


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def call_checked(fn, kind: str, name: str, kwargs: dict, fixed: dict | None = None):
    """fn(**fixed, **kwargs) after checking kwargs against fn's keyword parameters and annotations."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    params = {k: p for k, p in inspect.signature(target).parameters.items()
              if p.kind == p.KEYWORD_ONLY and k not in (fixed or {})}
    hints = typing.get_type_hints(target)
    for k, v in kwargs.items():
        if k not in params:
            raise UserError(f"{kind}.{k} is not an option of {kind} {name!r} (options: {', '.join(params)})")
        if not _fits(v, hints.get(k, Any)):
            want = getattr(hints[k], "__name__", str(hints[k]))
            raise UserError(f"{kind}.{k}={v!r} has the wrong type: {kind} {name!r} expects {want}")
    return fn(**(fixed or {}), **kwargs)


def split_name(cfg: dict, kind: str) -> tuple[str, dict]:
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if not name:
        raise UserError(f"the {kind} config has no 'name' key: add name: <registered {kind}>")
    return name, cfg


# dataset keys every labeled dataset takes, handled by the data layer (not the builder): the fixed,
# seeded labeled subset of semi-supervised runs (`ganzoo.data.loader.balanced_subset`)
SUBSET_KEYS = ("labels_per_class", "label_seed")


def labeled_subset_args(cfg: dict) -> tuple[int | None, int]:
    """(labels_per_class or None for "every label", label_seed) of a dataset config."""
    per_class, seed = cfg.get("labels_per_class"), cfg.get("label_seed", 0)
    for key, v in (("labels_per_class", per_class), ("label_seed", seed)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise UserError(f"dataset.{key}={v!r} has the wrong type: expects an integer")
    return per_class, seed


def build_dataset(cfg: dict, *, split: str = "train", seed: int = 0) -> ImageDataset:
    """The dataset of a config for one split. `dataset.labels_per_class` makes the train split the
    semi-supervised view (`with_labeled_subset`: fields image, image_l, label_l)."""
    name, args = split_name(cfg, "dataset")
    per_class, label_seed = labeled_subset_args(cfg)
    for key in SUBSET_KEYS:
        args.pop(key, None)
    try:
        builder = DATASETS.get(name)
    except UnknownName as e:
        raise UserError(str(e)) from None
    data = call_checked(builder, "dataset", name, args, {"split": split, "seed": seed})
    if per_class is not None and split == "train":
        data = with_labeled_subset(data, per_class, label_seed)
    return data


class Splits:
    """The splits of one dataset config, each built once per command on first use and handed down
    (the trainer's train split is passed in, so an evaluator never builds it again). `get(split,
    **changes)` builds a variant of the config (e.g. a test view without random crops) once too."""

    def __init__(self, cfg: dict, **built: ImageDataset):
        self.cfg = dict(cfg)
        self._built: dict[tuple, ImageDataset] = {(k, ()): v for k, v in built.items()}

    def get(self, split: str, **changes) -> ImageDataset:
        key = (split, tuple(sorted(changes.items())))
        if key not in self._built:
            self._built[key] = build_dataset({**self.cfg, **changes}, split=split)
        return self._built[key]

    @property
    def train(self) -> ImageDataset:
        return self.get("train")

    @property
    def test(self) -> ImageDataset:
        return self.get("test")


def _field_hint(missing: set[str]) -> str:
    if missing & {"A", "B"}:
        return "use an image-to-image dataset (e.g. dataset=digits_pairs or dataset=digits_unpaired)"
    return "use a labeled dataset (e.g. dataset=digits or dataset=mnist)"


def build_model(name: str, args: dict, info: DataInfo, *, check_fields: bool = True) -> GANModel:
    """The model `name` built from `args` for data `info`. `check_fields`: refuse a dataset whose
    batches lack a field the model trains on (off when rebuilding a finished run for inference)."""
    try:
        cls = MODELS.get(name)
    except UnknownName as e:
        raise UserError(str(e)) from None
    if check_fields:
        if set(LABELED_FIELDS) <= set(cls.needs) and not set(LABELED_FIELDS) <= set(info.fields) \
                and "label" in info.fields:
            raise UserError(f"model {name!r} is semi-supervised: set dataset.labels_per_class (e.g. "
                            f"+dataset.labels_per_class=10 for 100 labels on MNIST)")
        if "image_l" in info.fields and "image_l" not in cls.needs:
            semi = [n for n, c in MODELS.items() if set(LABELED_FIELDS) <= set(c.needs)]
            raise UserError(f"dataset.labels_per_class is for semi-supervised models (model="
                            f"{'|'.join(semi)}); model {name!r} uses every label: drop dataset.labels_per_class")
        missing = set(cls.needs) - set(info.fields)
        if missing & {"image_l", "label_l"}:  # a dataset without labels: name the field it lacks
            missing = (missing - {"image_l", "label_l"}) | {"label"}
        if missing:
            raise UserError(f"model {name!r} needs {', '.join(sorted(missing))} in each batch but dataset "
                            f"{info.name!r} provides only {', '.join(info.fields)}: {_field_hint(missing)}")
    try:
        return call_checked(cls, "model", name, args, {"data": info})
    except ValueError as e:  # shape facts the nets cannot take (e.g. an unsupported resolution)
        raise UserError(f"model {name!r} cannot be built for dataset {info.name!r}: {e}") from None


# -- weights from elsewhere: run folders and pretrained parts -------------------------------------------


def net_state(ckpt: dict, net: str, *, ema: bool = True) -> dict[str, Tensor]:
    """The state dict of net `net` in a checkpoint: its EMA copy when kept and wanted, else the live net."""
    kept = (ckpt.get("ema") or {}).get(net) if ema else None
    if kept is not None:
        return kept
    prefix = f"{net}."
    return {k[len(prefix):]: v for k, v in ckpt["nets"].items() if k.startswith(prefix)}


def model_from_checkpoint(ckpt: dict, *, device: torch.device, ema: bool = True) -> GANModel:
    """A run's model rebuilt from a loaded checkpoint (EMA weights when kept and wanted), in eval mode,
    with the pretrained parts it needs for inference."""
    info = DataInfo(**{**ckpt["data"], "fields": tuple(ckpt["data"]["fields"])})
    model = build_model(ckpt["model"]["name"], ckpt["model"]["args"], info, check_fields=False).to(device)
    model.load_state_dict(ckpt["nets"])
    if ema and ckpt.get("ema"):
        kept = set(ckpt["ema"])
        for name, net in model.named_children():  # the nets the run kept an EMA copy of
            if name in kept:
                net.load_state_dict(ckpt["ema"][name])
    load_pretrained(model, training=False)
    return model.eval()


def load_model(run: str | os.PathLike, *, device: torch.device, ema: bool = True) -> tuple[GANModel, dict]:
    """Rebuild a run's model from its newest checkpoint alone (EMA weights when present and wanted)."""
    ckpt = load_run(run, map_location=device)
    return model_from_checkpoint(ckpt, device=device, ema=ema), ckpt


def load_pretrained(model: GANModel, *, training: bool, fresh: bool = True, data: ImageDataset | None = None) -> None:
    """Fill the model's declared pretrained parts (`GANModel.pretrained`): every frozen part needed now
    (`when` "always", or "train" when `training`), and, for a fresh training run (`fresh`), the parts
    whose weights the checkpoint holds (trainable initialisations, `kept` frozen parts): a resumed run
    has those in its checkpoint. `data`: the run's training set, for the parts trained on it (source
    "fit") when their cache is empty. Frozen parts end with gradients off. Problems are one-line
    UserErrors naming the option."""
    for p in model.pretrained():
        if (p.when == "train" and not training) or ((not p.frozen or p.kept) and not fresh):
            continue
        part = getattr(model, p.attr)  # declared by the model itself
        if p.source == "run":
            part.load_state_dict(_run_part(p, part))
        elif p.source == "fit":
            _fit_part(p, part, data)
        elif p.load_file is not None:
            p.load_file(p.ref)
        else:
            raise ValueError(f"pretrained part {p.attr!r}: a 'file' source needs load_file")
        if p.frozen:
            part.requires_grad_(False).eval()


def fitted_path(p: Pretrained) -> Path:
    """Where a part of source "fit" is cached: under the data home, named by the model's key."""
    return data_home() / "pretrained" / f"{p.ref}.pt"


def _fit_part(p: Pretrained, part: torch.nn.Module, data: ImageDataset | None) -> None:
    """Load the cached part, or train it on `data` with the model's `fit` and cache it (atomically)."""
    path = fitted_path(p)
    own = part.state_dict()
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = saved.get("state", {}) if isinstance(saved, dict) else {}
        if saved.get("key") != p.ref or state.keys() != own.keys() or \
                any(state[k].shape != own[k].shape for k in own):
            raise UserError(f"{path} holds a {p.attr} that does not fit this model (another key or architecture): "
                            f"delete the file to train {p.attr} again{f', or {p.hint}' if p.hint else ''}")
        part.load_state_dict(state)
        return
    if data is None or p.fit is None:
        raise UserError(f"{p.attr} is trained from the training set and is not in its cache {path}: "
                        f"{p.hint or 'train a run on this data first'}")
    log.info("training %s on %s (once; cached in %s) ...", p.attr, data.info.name, path)
    t0 = time.perf_counter()
    p.fit(data)
    state = {"key": p.ref, "state": {k: v.detach().cpu() for k, v in part.state_dict().items()}}
    atomic_write(path, lambda f: torch.save(state, f))
    log.info("%s trained in %.0f s", p.attr, time.perf_counter() - t0)


def _run_part(p: Pretrained, part: torch.nn.Module) -> dict[str, Tensor]:
    what = f"model.{p.arg or p.attr}={p.ref}"
    try:
        ckpt = load_run(p.ref)
    except UserError as e:
        raise UserError(f"{what}: {e}{f' ({p.hint})' if p.hint else ''}") from None
    if p.accepts and ckpt["model"]["name"] not in p.accepts:
        raise UserError(f"{what} is a {ckpt['model']['name']} run: give a run of model {' or '.join(p.accepts)}")
    state, own = net_state(ckpt, p.net), part.state_dict()
    if state.keys() != own.keys() or any(state[k].shape != own[k].shape for k in own):
        args = ", ".join(f"{k}={v}" for k, v in ckpt["model"]["args"].items()) or "defaults"
        raise UserError(f"{what}: its {p.net} ({args}, {ckpt['data']['channels']} channels) does not match this "
                        f"{p.attr}{f': {p.mismatch_hint}' if p.mismatch_hint else ''}")
    return state

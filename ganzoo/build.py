"""Build datasets and models from plain config dicts, checking them against the code's signatures.

Each YAML key must be a keyword of the dataset builder / model constructor, and its value must fit
the annotation (int, float, bool, str, optional, list); anything else is a one-line `UserError`
naming the key and the options.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from .data.base import DataInfo, ImageDataset
from .errors import UserError
from .models.base import GANModel
from .registry import DATASETS, MODELS, UnknownName


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
    name, args = split_name(cfg, "dataset")
    for key in SUBSET_KEYS:
        args.pop(key, None)
    try:
        builder = DATASETS.get(name)
    except UnknownName as e:
        raise UserError(str(e)) from None
    return call_checked(builder, "dataset", name, args, {"split": split, "seed": seed})


def build_model(name: str, args: dict, info: DataInfo) -> GANModel:
    try:
        cls = MODELS.get(name)
    except UnknownName as e:
        raise UserError(str(e)) from None
    missing = set(cls.needs) - set(info.fields)
    if missing:
        hint = ("an image-to-image dataset (e.g. dataset=digits_pairs or dataset=digits_unpaired)"
                if missing & {"A", "B"} else "a labeled dataset (e.g. dataset=digits or dataset=mnist)")
        raise UserError(f"model {name!r} needs {', '.join(sorted(missing))} in each batch but dataset "
                        f"{info.name!r} provides only {', '.join(info.fields)}: use {hint}")
    try:
        return call_checked(cls, "model", name, args, {"data": info})
    except ValueError as e:  # shape facts the nets cannot take (e.g. an unsupported resolution)
        raise UserError(f"model {name!r} cannot be built for dataset {info.name!r}: {e}") from None

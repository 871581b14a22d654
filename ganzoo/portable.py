"""Portable weights: a run's inference nets as one safetensors file, read back with no pickle.

`save_weights` writes the tensors of the nets a model's inference runs (its generators or
translators, found by running `generate`/`translate` once with hooks on the model's child nets, so a
new family needs no entry here), EMA weights when the checkpoint had them, plus text metadata:
model name and constructor args, the data facts (`DataInfo`), the dataset config, the ganzoo and
torch versions, the source checkpoint's SHA-256 and step. `read_weights` rebuilds the model from
that file alone: every metadata field is parsed as JSON (never unpickled) and checked (type,
registered model name, constructor keywords, data facts), every tensor's name, shape and dtype is
checked against the rebuilt nets, and anything off is a one-line `UserError` naming the file.
Frozen parts used by inference (declared by `GANModel.pretrained`) travel inside the file too, so a
file needs nothing else to run.

safetensors is an optional dependency (`pip install 'ganzoo[export]'`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from . import __version__
from .build import build_model, load_model
from .data.base import DataInfo
from .errors import UserError
from .models.base import GANModel
from .storage import atomic_write

FORMAT = "ganzoo-weights/1"
PORTABLE_SUFFIX = ".safetensors"
META_KEYS = ("format", "model", "args", "data", "dataset", "nets", "ema", "step", "source_sha256",
             "ganzoo_version", "torch_version", "inference")
JSON_KEYS = ("args", "data", "dataset", "nets", "ema", "step", "inference")
MAX_FIELD = 65536  # characters of one metadata field: far above what ganzoo writes


def require(module: str, extra: str = "export"):
    """Import an optional dependency, or a one-line UserError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{module} is not installed: pip install 'ganzoo[{extra}]'") from None


def inference_nets(model: GANModel) -> tuple[str, ...]:
    """The model's child nets that its inference calls (generate, translate in each direction), in
    declaration order: found by running it once on tiny inputs with hooks, RNG state untouched."""
    from .models.base import GENERATE, TRANSLATE  # the contract's names only

    children = dict(model.named_children())
    used: set[str] = set()
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: used.add(name))
             for name, m in children.items()]
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            if model.can(GENERATE):
                model.generate(2)
            if model.can(TRANSLATE):
                side = model.fixed_size or max(8, model.pad_multiple)
                for d in model.directions():
                    model.translate(torch.zeros(1, model.source_channels(d), side, side, device=model.device), d)
    finally:
        for h in hooks:
            h.remove()
    return tuple(name for name in children if name in used)


def _net_tensors(model: GANModel, nets: tuple[str, ...]) -> dict[str, Tensor]:
    children = dict(model.named_children())
    return {f"{net}.{k}": v for net in nets for k, v in nn.Module.state_dict(children[net]).items()}


def save_weights(model: GANModel, meta: dict, path: str | os.PathLike, *,
                 before_replace: Callable[[], object] | None = None) -> Path:
    """The inference nets of `model` and `meta` (keys model, args, data, dataset, ema, step,
    source_sha256, inference) as a safetensors file, written atomically (`before_replace`: a check
    of the complete temp file, `ganzoo.storage.temp_path(path)`, before it takes the name)."""
    st = require("safetensors.torch")
    nets = inference_nets(model)
    # clones: safetensors refuses tensors that share memory (nets sharing layers, CoGAN-style)
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in _net_tensors(model, nets).items()}
    text = {"format": FORMAT, "model": meta["model"], "ganzoo_version": __version__,
            "torch_version": str(torch.__version__), "source_sha256": meta.get("source_sha256", ""),
            **{k: json.dumps(meta.get(k)) for k in JSON_KEYS if k != "nets"}, "nets": json.dumps(list(nets))}
    return atomic_write(path, st.save(tensors, metadata=text), before_replace=before_replace)


# -- reading ------------------------------------------------------------------------------------


def _refuse(path, what: str) -> UserError:
    return UserError(f"{path}: {what}; it was not loaded (export a run again with ganzoo export "
                     f"format=safetensors)")


def _json_field(path, meta: dict, key: str, kind: type):
    raw = meta.get(key)
    if raw is None:
        raise _refuse(path, f"metadata field {key!r} is missing")
    if len(raw) > MAX_FIELD:
        raise _refuse(path, f"metadata field {key!r} is {len(raw)} characters long")
    try:
        value = json.loads(raw)
    except ValueError:
        raise _refuse(path, f"metadata field {key!r} is not JSON") from None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise _refuse(path, f"metadata field {key!r} is not a {kind.__name__}")
    return value


def _data_info(path, data: dict) -> DataInfo:
    """DataInfo from the file's data facts, each field of the right type (no other keys)."""
    hints = typing.get_type_hints(DataInfo)
    known = {f.name for f in dataclasses.fields(DataInfo)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _refuse(path, f"data facts has unknown field {unknown[0]!r}")
    for key, value in data.items():
        hint = hints[key]
        ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)) if key == "fields" else \
            isinstance(value, hint) and not (hint is int and isinstance(value, bool))
        if not ok or (hint is int and value < 0):
            raise _refuse(path, f"data fact {key}={value!r} is not a valid {getattr(hint, '__name__', hint)}")
    if "name" not in data or data.get("channels", 0) < 1 or data.get("resolution", 0) < 1:
        raise _refuse(path, "data facts lack name, channels or resolution")
    return DataInfo(**{**data, "fields": tuple(data.get("fields", ("image",)))})


def read_metadata(path: str | os.PathLike) -> tuple[dict, dict[str, tuple[list[int], str]]]:
    """(checked metadata, {tensor name: (shape, dtype)}) of a ganzoo safetensors file."""
    st = require("safetensors")
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise UserError(f"weights={path} does not exist: give a .safetensors file written by ganzoo export")
    try:
        with st.safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            shapes = {k: (list(f.get_slice(k).get_shape()), str(f.get_slice(k).get_dtype())) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - a damaged header: one line whatever the library raised
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise _refuse(path, f"not a readable safetensors file ({first})") from None
    if meta.get("format") != FORMAT:
        raise _refuse(path, f"not a ganzoo weights file (format {str(meta.get('format'))[:40]!r}, expected {FORMAT!r})")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise _refuse(path, f"unknown metadata field {unknown[0][:40]!r}")
    out = {"model": {"name": meta.get("model", ""), "args": _json_field(path, meta, "args", dict)},
           "data": _json_field(path, meta, "data", dict), "dataset": _json_field(path, meta, "dataset", dict),
           "nets": _json_field(path, meta, "nets", list), "ema": _json_field(path, meta, "ema", bool),
           "step": _json_field(path, meta, "step", int), "inference": _json_field(path, meta, "inference", dict),
           "source_sha256": meta.get("source_sha256", ""), "ganzoo_version": meta.get("ganzoo_version", ""),
           "torch_version": meta.get("torch_version", "")}
    if not all(isinstance(k, str) for k in out["model"]["args"]):
        raise _refuse(path, "model args are not keyword arguments")
    return out, shapes


def load_inference_model(run: str | None, weights: str | None, *, device: torch.device,
                         ema: bool = True) -> tuple[GANModel, dict]:
    """A model for inference from a run folder (EMA weights when kept and `ema`) or a ganzoo weights file,
    and its checkpoint-shaped metadata (model, data, dataset, step)."""
    if (run is None) == (weights is None):
        raise UserError("give run=<run folder> or weights=<file.safetensors written by ganzoo export> (one of them)")
    if run is not None:
        return load_model(run, device=device, ema=ema)
    if not str(weights).endswith(PORTABLE_SUFFIX):
        raise UserError(f"weights={weights}: give a {PORTABLE_SUFFIX} file written by ganzoo export "
                        f"format=safetensors")
    return read_weights(weights, device=device)


def read_weights(path: str | os.PathLike, *, device: torch.device) -> tuple[GANModel, dict]:
    """(the model rebuilt from a ganzoo safetensors file, in eval mode, on `device`; its metadata in
    the shape of a checkpoint: model, data, dataset, step)."""
    meta, shapes = read_metadata(path)
    info = _data_info(path, meta["data"])
    name = meta["model"]["name"]
    try:
        model = build_model(name, meta["model"]["args"], info, check_fields=False)
    except UserError as e:
        raise _refuse(path, f"its model does not build ({e})") from None
    children = dict(model.named_children())
    nets = meta["nets"]
    bad = [n for n in nets if not isinstance(n, str) or n not in children]
    if bad or not nets:
        raise _refuse(path, f"nets {nets!r} are not nets of model {name!r} ({', '.join(children)})")
    want = _net_tensors(model, tuple(nets))
    missing, extra = sorted(set(want) - set(shapes)), sorted(set(shapes) - set(want))
    if missing or extra:
        raise _refuse(path, f"tensor {(missing or extra)[0]!r} is {'missing' if missing else 'not one of the model'}")
    for k, v in want.items():
        shape, dtype = shapes[k]
        if shape != list(v.shape):
            raise _refuse(path, f"tensor {k!r} has shape {shape}, the model needs {list(v.shape)}")
        if dtype.lower() != _ST_DTYPES.get(v.dtype, "?"):
            raise _refuse(path, f"tensor {k!r} is {dtype}, the model needs {_ST_DTYPES.get(v.dtype, v.dtype)}")
    tensors = require("safetensors.torch").load_file(str(Path(os.path.expanduser(str(path)))), device="cpu")
    for net in nets:
        prefix = f"{net}."
        nn.Module.load_state_dict(children[net], {k[len(prefix):]: t for k, t in tensors.items()
                                                  if k.startswith(prefix)})
    for p in model.pretrained():  # frozen parts came from the file: keep them frozen
        if p.frozen and p.attr in nets:
            children[p.attr].requires_grad_(False)
    return model.to(device).eval(), meta


_ST_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
              torch.int64: "i64", torch.int32: "i32", torch.uint8: "u8", torch.bool: "bool", torch.int8: "i8"}

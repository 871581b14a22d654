"""`ganzoo export`: a run's generator or translator as an ONNX, TorchScript or safetensors file, each
checked right after writing against the PyTorch model.

- safetensors (`ganzoo.portable`): the inference nets' tensors and text metadata; `ganzoo sample` /
  `ganzoo translate weights=<file>` rebuild the model from it with no pickle. Checked by rebuilding a
  fresh model from the written file and comparing its inference with the run's.
- torchscript: `torch.jit.trace` of each inference graph (`ganzoo.graphs`), metadata as the extra
  file `ganzoo.json`; checked with `torch.jit.load`.
- onnx: torch's TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`), opset 17, one
  file (weights inside; ganzoo's nets are far below the 2 GB protobuf limit, and a larger graph is
  refused); dynamic batch and, for translators, dynamic height and width; conditional models take the
  label as a second input. The dynamo exporter (`torch.export`) cannot take the conditional models:
  their `generate` checks the labels' range on the host (`int(labels.min())`), a data-dependent guard
  torch.export refuses, and a traced graph is what TorchScript already needs. Metadata goes into the
  model's `metadata_props`. Checked with onnxruntime (CPU).

A generator graph maps (z, label) to images, a translator graph one direction's images to images
(two-way models give one file per direction, `<out>_AtoB.onnx`, `<out>_BtoA.onnx`). Checks run on
inputs of other batch sizes and image sizes than the traced ones (`ganzoo.graphs`), the max abs
difference is printed, and a difference above `atol` (default 1e-4 on [-1, 1]) is an error: the
file is written under a temporary name and only renamed into place once it passes, so a file that
failed its check is never left behind. EMA weights are exported when the run kept them (ema=true).
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from .build import model_from_checkpoint
from .checkpoint import find_latest, load_checkpoint, load_run, sha256_file
from .errors import UserError
from .graphs import Graph, graphs, inference_mode, reference
from .models.base import GENERATE, TRANSLATE, GANModel
from .portable import read_weights, require, save_weights
from .storage import atomic_write, temp_path

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
OPSET = 17
ONNX_LIMIT = 2 * 1024**3  # protobuf's limit for one file


@dataclass
class Exported:
    path: Path
    graph: str  # "generate", "translate_AtoB", ... or "nets" (safetensors)
    max_abs_diff: float
    seconds: float  # writing and checking


def load_source(run: str, *, ema: bool) -> tuple[GANModel, dict]:
    """The run's model on the CPU (EMA weights when kept and wanted) and the metadata of an export."""
    load_run(run)  # the one-line errors for a missing folder or no usable checkpoint
    path = find_latest(run)
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, device=torch.device("cpu"), ema=ema)
    name = ckpt["model"]["name"]
    if not (model.can(GENERATE) or model.can(TRANSLATE)):
        raise UserError(f"run {run} holds a {name} model, which neither generates nor translates: nothing to export")
    meta = {"model": name, "args": ckpt["model"]["args"], "data": ckpt["data"], "dataset": ckpt["dataset"],
            "ema": bool(ema and ckpt.get("ema")), "step": int(ckpt["step"]), "source_sha256": sha256_file(path)}
    return model, meta


@torch.no_grad()
def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def _check(what: str, diff: float, atol: float, path: Path) -> None:
    if not diff <= atol:  # also NaN
        raise UserError(f"{path.name}: the {what} differs from the PyTorch model by {diff:.3g} (> atol={atol:g}); "
                        f"the file was not written (report this, or pass atol= to accept it)")


def _text_meta(meta: dict, graph: Graph, fmt: str) -> dict[str, str]:
    facts = {**graph.facts, **inference_mode(graph)}
    return {"ganzoo_format": f"ganzoo-{fmt}/1", "model": meta["model"], "graph": graph.name,
            "inputs": json.dumps(list(graph.input_names)), "args": json.dumps(meta["args"]),
            "data": json.dumps(meta["data"]), "ema": json.dumps(meta["ema"]), "step": str(meta["step"]),
            "source_sha256": meta["source_sha256"], "ganzoo_version": __version__,
            "torch_version": str(torch.__version__), **{k: json.dumps(v) if not isinstance(v, str) else v
                                                         for k, v in facts.items()}}


# -- formats -------------------------------------------------------------------------------------------


def _torchscript(graph: Graph, ref, meta: dict, path: Path, atol: float) -> float:
    # warnings: TracerWarnings about host reads of the labels' range (see module doc), and torch's notice
    # that TorchScript is deprecated in favour of torch.export (docs/deploy.md says so)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph.module, graph.trace_inputs, check_trace=False)
        extra = {"ganzoo.json": json.dumps(_text_meta(meta, graph, "torchscript"))}
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files=extra)
    result = {}

    def check() -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(str(temp_path(path)), map_location="cpu")
            result["diff"] = max(max_diff(loaded(*x), ref(*x)) for x in graph.check_inputs)
        _check("TorchScript module", result["diff"], atol, path)

    atomic_write(path, buf.getvalue(), before_replace=check)
    return result["diff"]


def _onnx(graph: Graph, ref, meta: dict, path: Path, atol: float) -> float:
    onnx = require("onnx")
    ort = require("onnxruntime")
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.module, graph.trace_inputs, buf, dynamo=False, opset_version=OPSET,
                          input_names=list(graph.input_names), output_names=["image" if graph.name == "generate"
                                                                             else "output"],
                          dynamic_axes=graph.dynamic_axes)
    proto = onnx.load_model_from_string(buf.getvalue())
    for k, v in _text_meta(meta, graph, "onnx").items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    data = proto.SerializeToString()
    if len(data) >= ONNX_LIMIT:
        raise UserError(f"{path.name}: the graph is {len(data) / 1e9:.1f} GB, above ONNX's 2 GB single-file limit")
    result = {}

    def check() -> None:
        session = ort.InferenceSession(str(temp_path(path)), providers=["CPUExecutionProvider"])
        diffs = []
        for x in graph.check_inputs:
            feeds = {n: t.cpu().numpy() for n, t in zip(graph.input_names, x)}
            diffs.append(max_diff(torch.from_numpy(session.run(None, feeds)[0]), ref(*x)))
        result["diff"] = max(diffs)
        _check("ONNX graph run by onnxruntime", result["diff"], atol, path)

    atomic_write(path, data, before_replace=check)
    return result["diff"]


def _safetensors(model: GANModel, meta: dict, path: Path, atol: float, seed: int) -> float:
    inference = {}
    for graph in graphs(model, seed=seed):  # trace nothing: run each graph once to learn its inference mode
        with torch.no_grad():
            graph.module(*graph.trace_inputs)
        inference[graph.name] = {**graph.facts, **inference_mode(graph)}
    result = {}

    def check() -> None:
        fresh, _ = read_weights(temp_path(path), device=torch.device("cpu"))
        diffs = []
        for graph, again in zip(graphs(model, seed=seed), graphs(fresh, seed=seed)):
            ref, got = reference(model, graph), reference(fresh, again)
            diffs += [max_diff(got(*x), ref(*x)) for x in graph.check_inputs]
        result["diff"] = max(diffs)
        _check("model rebuilt from the file", result["diff"], atol, path)

    save_weights(model, {**meta, "inference": inference}, path, before_replace=check)
    return result["diff"]


# -- the command ----------------------------------------------------------------------------------------


def _out_path(out: str | None, run: str, fmt: str) -> Path:
    suffix = FORMATS[fmt]
    if out is None:
        return Path(run) / "export" / f"model{suffix}"
    p = Path(os.path.expanduser(out))
    if p.is_dir() or not p.suffix:
        return p / f"model{suffix}"
    if p.suffix.lower() != suffix:
        raise UserError(f"out={out}: a {fmt} file ends in {suffix} (out=<name>{suffix}, or a folder)")
    return p


def export(*, run: str, format: str, out: str | None = None, ema: bool = True, atol: float = 1e-4,
           seed: int = 0) -> list[Exported]:
    """Write the run's model in `format` (onnx | torchscript | safetensors), checking each file."""
    if format not in FORMATS:
        raise UserError(f"format={format}: use one of {', '.join(FORMATS)}")
    if not atol >= 0:
        raise UserError(f"atol={atol}: give a tolerance >= 0 (the default 1e-4 suits images in [-1, 1])")
    for module in {"onnx": ("onnx", "onnxruntime"), "safetensors": ("safetensors",)}.get(format, ()):
        require(module)  # before loading anything: a missing extra is one line naming it
    target = _out_path(out, run, format)
    model, meta = load_source(run, ema=ema)
    done = []
    if format == "safetensors":
        t0 = time.perf_counter()
        diff = _safetensors(model, meta, target, atol, seed)
        return [Exported(target, "nets", diff, time.perf_counter() - t0)]
    found = graphs(model, seed=seed)
    for graph in found:
        path = target
        if len(found) > 1:
            path = target.with_name(f"{target.stem}_{graph.name.removeprefix('translate_')}{target.suffix}")
        t0 = time.perf_counter()
        diff = (_onnx if format == "onnx" else _torchscript)(graph, reference(model, graph), meta, path, atol)
        done.append(Exported(path, graph.name, diff, time.perf_counter() - t0))
    return done

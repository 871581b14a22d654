"""Inference graphs: a model's `generate` / `translate` as plain modules that a tracer can record, and
the fixed inputs an export is checked on. Built from the model contract alone (`model.can(...)`,
`directions()`, `sample_latent`, `source_channels`, `pad_multiple`, `scale`), so every family that
declares those is exportable with no entry here.

The exported function is the model's inference with test-time dropout off (an export must be a
function of its inputs). One rewrite makes it one batched graph: pix2pix's inference runs batch norm
"in the training mode" one image at a time (`ganzoo.nn.norm.run_as_trained`); batch statistics of one
image are that image's per-channel statistics, i.e. instance norm with the batch norm's scale and
shift, so in the exported copy every BatchNorm2d becomes `ExportNorm`, which computes exactly that in
training mode (on the whole batch at once, each image with its own statistics) and ordinary running-
statistics batch norm in eval mode. Each export is then checked against the untouched model
(`reference`) on other batch sizes and image sizes than the traced ones, so a rewrite that changed the
function, or a shape baked into a trace, is caught.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models.base import CONDITIONAL, GENERATE, TRANSLATE, GANModel


class ExportNorm(nn.Module):
    """A BatchNorm2d as the exported graph runs it (see the module docstring). Shares the tensors of
    the norm it replaces; records whether it ran with per-image statistics (for the metadata)."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.per_image = False

    def forward(self, x: Tensor) -> Tensor:
        if self.training or self.running_mean is None:
            self.per_image = True
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class NoDropout(nn.Module):
    """Dropout off: the identity; records whether the model ran it in training mode (dropout at inference)."""

    def __init__(self):
        super().__init__()
        self.was_on = False

    def forward(self, x: Tensor) -> Tensor:
        self.was_on = self.was_on or self.training
        return x


def _replace(module: nn.Module, norms: bool) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.dropout._DropoutNd):
            setattr(module, name, NoDropout())
        elif norms and isinstance(child, nn.BatchNorm2d):
            setattr(module, name, ExportNorm(child))
        else:
            _replace(child, norms)


def without_dropout(model: GANModel, *, batched_norms: bool = False) -> GANModel:
    """A copy of `model` with every dropout layer off and, when `batched_norms`, each BatchNorm2d as `ExportNorm`."""
    clone = copy.deepcopy(model)
    _replace(clone, batched_norms)
    return clone.eval()


class GenerateGraph(nn.Module):
    """(z [N, latent], label [N] int64 for conditional models) -> images [N, C, H, W] in [-1, 1]."""

    def __init__(self, model: GANModel):
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, label: Tensor | None = None) -> Tensor:
        return self.model.generate(z.shape[0], z=z, labels=label)


class TranslateGraph(nn.Module):
    """images [N, C, H, W] in [-1, 1] (H, W multiples of pad_multiple) -> [N, C', H * scale, W * scale]."""

    def __init__(self, model: GANModel, direction: str):
        super().__init__()
        self.model, self.direction = model, direction

    def forward(self, x: Tensor) -> Tensor:
        return self.model.translate(x, self.direction)


@dataclass
class Graph:
    """One exportable function of a model: the module, its input names, the inputs it is traced on,
    the inputs it is checked on (other batch and image sizes), the axes that stay free and facts for
    the metadata."""

    name: str  # "generate" or "translate_AtoB", ...
    module: nn.Module
    input_names: tuple[str, ...]
    trace_inputs: tuple[Tensor, ...]
    check_inputs: list[tuple[Tensor, ...]]
    dynamic_axes: dict[str, dict[int, str]]
    facts: dict


def _side(model: GANModel) -> int:
    """The smallest image side that is a multiple of the net's stride and at least 16 px."""
    m = max(1, model.pad_multiple)
    return m * max(1, -(-16 // m))


def graphs(model: GANModel, *, seed: int = 0) -> list[Graph]:
    """The exportable functions of `model` (eval mode, dropout off, norms batched), with fixed inputs."""
    g = torch.Generator(model.device).manual_seed(seed)
    out = []
    if model.can(GENERATE):
        net = without_dropout(model, batched_norms=True)
        cond = model.can(CONDITIONAL)

        def inputs(n: int) -> tuple[Tensor, ...]:
            z = model.sample_latent(n, g)
            if not cond:
                return (z,)
            return z, torch.randint(model.data.num_classes, (n,), generator=g, device=model.device)

        names = ("z", "label") if cond else ("z",)
        axes = {k: {0: "batch"} for k in (*names, "image")}
        out.append(Graph("generate", GenerateGraph(net), names, inputs(2), [inputs(1), inputs(5)], axes,
                         {"latent_dim": int(inputs(1)[0].shape[1]), "num_classes": model.data.num_classes if cond else 0}))
    if model.can(TRANSLATE):
        net = without_dropout(model, batched_norms=True)
        fixed = model.fixed_size  # a net that takes one input size only (DTN): batch stays free, sides do not
        s = fixed or _side(model)
        for d in model.directions():
            c = model.source_channels(d)

            def images(n: int, h: int, w: int, c=c) -> tuple[Tensor]:
                return (torch.rand(n, c, h, w, generator=g, device=model.device) * 2 - 1,)

            axes = ({"image": {0: "batch"}, "output": {0: "batch"}} if fixed else
                    {"image": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height_out",
                                                                               3: "width_out"}})
            out.append(Graph(f"translate_{d}", TranslateGraph(net, d), ("image",), images(2, s, s),
                             [images(1, s, s), images(3, s, s if fixed else 2 * s)], axes,
                             {"direction": d, "in_channels": c, "pad_multiple": model.pad_multiple,
                              "fixed_size": fixed or 0,
                              "scale": model.scale}))
    return out


def reference(model: GANModel, graph: Graph):
    """The untouched model's function for `graph` with dropout off (the export's ground truth)."""
    plain = without_dropout(model)
    if graph.name == "generate":
        return lambda z, label=None: plain.generate(z.shape[0], z=z, labels=label)
    direction = graph.name.removeprefix("translate_")
    return lambda x: plain.translate(x, direction)


def inference_mode(graph: Graph) -> dict[str, str]:
    """What the traced graph does differently from the training forward, read off the rewritten layers
    (call after tracing): batch norm with per-image statistics, dropout removed."""
    norms = [m for m in graph.module.modules() if isinstance(m, ExportNorm)]
    drops = [m for m in graph.module.modules() if isinstance(m, NoDropout)]
    facts = {}
    if any(m.per_image for m in norms):
        facts["batch_norm"] = ("per-image statistics, as ganzoo translate runs it (each image normalised by its "
                               "own mean and variance; exported as instance norm with the batch norm's scale and shift)")
    elif norms:
        facts["batch_norm"] = "running statistics (eval mode)"
    if any(m.was_on for m in drops):
        facts["dropout"] = "off (the model's test-time dropout is removed so that the export is a function of its inputs)"
    return facts

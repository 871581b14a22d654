"""Metric suites: the protocol, and the evaluation of a model by the suites it declares.

A suite is a class registered in `ganzoo.registry.SUITES` under the name a model lists in
`GANModel.suites` (class_accuracy, code_accuracy, histogram, ssl_accuracy, translation,
super_resolution, pair_agreement, target_accuracy). It is built once per command from the model (its
declared capabilities and data facts), the dataset's `Splits` (each split built once and handed down) and `EvalOptions` — test
images loaded, judges trained or read from their cache — then called on the model as often as wanted:
by `ganzoo eval` on a run's checkpoint and by the trainer every `trainer.eval_every` steps. A suite
draws its random numbers from its own generators, never the global stream, so evaluating during
training changes nothing in the run (resume stays exact).

`Evaluation` builds the model's suites and scores the inference model (EMA weights when kept); a
suite with `live_too` (a classifier's test accuracy) also scores the live weights: its metrics then
hold the live numbers and the EMA ones under `<name>_ema`. Suites ask the model contract
(`model.can(...)`, `directions()`, `classify`, ...), never probe attributes, and import no model file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from ..build import Splits
from ..errors import UserError
from ..models.base import GANModel
from ..registry import SUITES, UnknownName

OpenModel = Callable[[bool], AbstractContextManager[GANModel]]  # ema: bool -> a context giving the model to score


@dataclass(frozen=True)
class EvalOptions:
    device: torch.device = torch.device("cpu")
    n_per_class: int = 1000  # generated samples per class (unconditional: n_per_class x classes)
    batch_size: int = 500
    judge_epochs: int = 2
    seed: int = 0
    model_name: str = "model"
    data: str | None = None  # super-resolution: a folder of HR images instead of the run's test split
    # FID/KID/IS/precision-recall (`metrics.fid`)
    n_samples: int = 10000  # generated images scored (the common protocol: 10k against the train split)
    reference: str = "train"  # the split of real images generators are compared with (translators: test)
    feature_extractor: str = "inception"  # a name in `metrics.features.EXTRACTORS`
    inception_weights: str | None = None  # the FID Inception weights file (default: the data home's)

    def __post_init__(self):
        if self.n_per_class < 1 or self.batch_size < 1:
            raise UserError(f"n_per_class={self.n_per_class}, batch_size={self.batch_size}: both must be at least 1")
        if self.n_samples < 2:
            raise UserError(f"n_samples={self.n_samples}: FID/KID/IS/precision-recall need at least 2 images")
        if self.reference not in ("train", "test"):
            raise UserError(f"reference={self.reference}: use train or test")


class MetricSuite:
    """Base of the suites: `__init__(model, splits, opts)` does the one-off work, `metrics(model)` the
    per-call work (called in eval mode under no_grad, the model's train mode restored after)."""

    live_too = False  # with an EMA, also score the live weights (the live numbers are the main ones)

    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        self.opts = opts

    def metrics(self, model: GANModel) -> dict:
        raise NotImplementedError

    def absorb(self, name: str) -> bool:
        """Whether this suite also computes suite `name` (requested with it), so that one pass of
        samples serves several metrics (FID, KID, IS and precision/recall share their features)."""
        return False

    def __call__(self, model: GANModel) -> dict:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return self.metrics(model)
        finally:
            model.train(was_training)


def labeled_test(model: GANModel, splits: Splits, opts: EvalOptions, what: str):
    """The test split, refused in one line when the dataset has no labels (`what` needs them)."""
    test = splits.test if model.data.num_classes >= 1 else None
    if test is None or test.info.num_classes < 1 or "label" not in test.info.fields:
        raise UserError(f"model {opts.model_name!r} on dataset {model.data.name!r}: the dataset has no labels, and "
                        f"{what} needs them: use a labeled dataset (e.g. dataset=digits or dataset=mnist)")
    return test


class Evaluation:
    """The suites a model declares, built once for its dataset; `run(open_model, has_ema)` scores it."""

    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions, names: list[str] | None = None):
        """`names`: the suites to compute (default: those the model declares). A suite refuses a model it
        does not apply to with ValueError: for a declared suite that is a bug, for a named one bad input."""
        chosen = names is not None
        if names is None:
            names = list(model.metric_suites())
            if not names:
                raise UserError(f"model {opts.model_name!r} declares no metric suite: nothing to evaluate")
        check_names(names)
        self.suites: list[MetricSuite] = []
        for name in names:
            if any(s.absorb(name) for s in self.suites):
                continue
            try:
                self.suites.append(SUITES.get(name)(model, splits, opts))
            except ValueError as e:
                if not chosen:
                    raise
                raise UserError(f"metrics: {e} (its suites: {', '.join(model.metric_suites()) or 'none'})") from None

    def run(self, open_model: OpenModel, has_ema: bool) -> dict:
        out: dict = {}
        with open_model(True) as m:
            for suite in self.suites:
                out.update(suite(m))
        live = [s for s in self.suites if s.live_too]
        if has_ema and live:
            with open_model(False) as m:
                live_out = {k: v for s in live for k, v in s(m).items()}
            ema = {f"{k}_ema": out.pop(k) for k in live_out}
            out = {**live_out, **ema, **out}
        return out


def check_names(names: list[str]) -> None:
    """Refuse an empty list or an unknown suite name in one line listing the known ones."""
    if not names:
        raise UserError(f"metrics=[]: name at least one metric suite (known: {', '.join(SUITES.names())})")
    for name in names:
        try:
            SUITES.get(name)
        except UnknownName as e:
            raise UserError(f"metrics: {e}") from None


def fixed_models(live: Callable[[], GANModel], ema: Callable[[], GANModel]) -> OpenModel:
    """An OpenModel over two model factories (each called at most once), for models held outside a trainer."""
    cache: dict[bool, GANModel] = {}

    def open_model(use_ema: bool):
        if use_ema not in cache:
            cache[use_ema] = (ema if use_ema else live)()
        return contextlib.nullcontext(cache[use_ema])

    return open_model


def scalars(metrics: dict) -> dict[str, float]:
    """The single numbers of a metrics dict (for stats.jsonl and TensorBoard), as "eval/<name>"."""
    return {f"eval/{k}": float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "judge_test_accuracy"}

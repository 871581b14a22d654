"""The suites `fid`, `kid`, `is` and `pr` (precision/recall): feature-space scores of generated images
against real ones (`metrics.feature_scores` holds the math, `metrics.features` the networks).

Asked together (`ganzoo eval metrics=[fid,kid,is,pr]`, or `trainer.eval_metrics`), they are one suite:
the samples are generated and passed through the feature network once.

- Noise -> image models (`can(GENERATE)`): `n_samples` images (10,000 by default, the common protocol),
  from a generator seeded with `seed`; class-conditional models get balanced labels (0, 1, ..., K-1,
  0, ...). They are compared with every image of the `reference` split (default: train, as
  StudioGAN and most papers; `reference=test` for the held-out split).
- Translators (`can(TRANSLATE)` on a two-domain set): for each direction, the src test images (up to
  `n_samples`) are translated and compared with the real dst test images, as CycleGAN users compute
  it; the keys are prefixed with the direction (`AtoB_fid`).

Samples go to the network as uint8 (the [-1, 1] output rounded as a PNG would be, without writing
one). The real images' statistics are cached (`metrics.reference`). `fid_protocol` records n, the
reference, the extractor, its resize mode and the weights' SHA-256.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

import torch
from torch import Tensor

from ..build import Splits
from ..data.base import ImageDataset
from ..data.loader import to_float
from ..errors import UserError
from ..models.base import CONDITIONAL, GENERATE, TRANSLATE, GANModel
from ..registry import SUITES
from .feature_scores import (
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    mean_cov,
    precision_recall,
)
from .features import FeatureExtractor, build_extractor
from .judge import dataset_images
from .reference import Reference, reference_stats
from .suite import EvalOptions, MetricSuite
from .translation import DIRECTIONS, domain_images, domain_view, test_changes

NAMES = ("fid", "kid", "is", "pr")


def _uint8(images: Tensor) -> Tensor:
    """[-1, 1] -> uint8 as `images.to_uint8` (the levels a PNG of the samples stores), on the device."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class _RealDomain:
    """The real images one kind of sample is compared with, its extractor, and (lazily) its statistics."""

    def __init__(self, reference: Callable[[], ImageDataset], what: str, extractor: FeatureExtractor, opts: EvalOptions):
        self._reference, self.what, self.extractor, self.opts = reference, what, extractor, opts
        self._stats: Reference | None = None

    def stats(self) -> Reference:
        if self._stats is None:
            ref = self._reference()
            self._stats = reference_stats(dataset_images(ref), ref.info.fingerprint, self.what, self.extractor,
                                          keep=self.opts.n_samples, batch_size=self.opts.batch_size)
        return self._stats


class FeatureMetrics(MetricSuite):
    name: ClassVar[str] = "fid"

    def __init__(self, model: GANModel, splits: Splits, opts: EvalOptions):
        super().__init__(model, splits, opts)
        self.wants = {self.name}
        info = model.data
        if model.can(GENERATE):
            self.directions: list[str] = []
            ref = opts.reference
            extractor = build_extractor(opts.feature_extractor, lambda: splits.train, lambda: splits.test, opts)
            self.domains = {"": _RealDomain(lambda: splits.get(ref), f"{info.name} {ref}", extractor, opts)}
        elif model.can(TRANSLATE) and info.channels_b:
            self.test = splits.get("test", **test_changes(splits.cfg))
            self.directions = [d for d in model.directions() if d in DIRECTIONS]
            if not self.directions:
                raise UserError(f"model {opts.model_name!r} translates in neither direction of dataset {info.name!r}")
            self.domains = {}
            for d in self.directions:
                dst = DIRECTIONS[d][1]
                def train_view(dst=dst):
                    return domain_view(splits.train, dst)

                def test_view(dst=dst):
                    return domain_view(self.test, dst)

                extractor = build_extractor(opts.feature_extractor, train_view, test_view, opts)
                self.domains[d] = _RealDomain(test_view, f"{info.name} test {dst}", extractor, opts)
        else:
            raise UserError(f"metrics={self.name}: model {opts.model_name!r} neither generates images from noise "
                            f"nor translates between two domains (its own suites: drop metrics=)")

    def absorb(self, name: str) -> bool:
        if name in NAMES:
            self.wants.add(name)
            return True
        return False

    def _devices(self) -> list[int]:
        dev = self.opts.device
        return [dev.index or 0] if dev.type == "cuda" else []

    def metrics(self, model: GANModel) -> dict:
        with torch.random.fork_rng(devices=self._devices()):  # test-time dropout draws; the run's stream untouched
            torch.manual_seed(self.opts.seed)
            if not self.directions:
                out, protocol = self._score(self._generated(model), self.domains[""], "")
                return {**out, "fid_protocol": protocol}
            out, protocols = {}, {}
            for d in self.directions:
                scores, protocols[d] = self._score(self._translated(model, d), self.domains[d], f"{d}_")
                out.update(scores)
            return {**out, "fid_protocol": protocols}

    def _generated(self, model: GANModel) -> Iterator[Tensor]:
        """uint8 samples in batches: `n_samples`, balanced labels for conditional models."""
        o = self.opts
        g = torch.Generator(o.device).manual_seed(o.seed)
        k = model.data.num_classes if model.can(CONDITIONAL) else 0
        for i in range(0, o.n_samples, o.batch_size):
            b = min(o.batch_size, o.n_samples - i)
            labels = (torch.arange(i, i + b, device=o.device) % k) if k else None
            yield _uint8(model.generate(b, labels=labels, generator=g))

    def _translated(self, model: GANModel, direction: str) -> Iterator[Tensor]:
        """uint8 translations of the src test images (up to `n_samples`), in batches."""
        src = domain_images(self.test, DIRECTIONS[direction][0])[0][:self.opts.n_samples]
        for b in src.split(self.opts.batch_size):
            yield _uint8(model.translate(to_float(b).to(self.opts.device), direction))

    def _score(self, batches: Iterator[Tensor], real: _RealDomain, prefix: str) -> tuple[dict, dict]:
        ex = real.extractor
        feats, logits = [], []
        for b in batches:
            f, lg = ex(b)
            feats.append(f)
            logits.append(lg)
        x = torch.cat(feats)
        n = x.shape[0]
        out: dict = {}
        protocol = {"n": n, "extractor": ex.name, "resize": ex.resize, "weights_sha256": ex.digest}
        if self.wants - {"is"}:
            ref = real.stats()
            protocol.update(reference=ref.what, reference_subset=ref.features.shape[0])
            if "fid" in self.wants:
                out[f"{prefix}fid"] = frechet_distance(*mean_cov(x), ref.mu, ref.sigma)
            if "kid" in self.wants:
                out[f"{prefix}kid"], out[f"{prefix}kid_std"] = kernel_inception_distance(ref.features, x,
                                                                                         seed=self.opts.seed)
            if "pr" in self.wants:
                out[f"{prefix}precision"], out[f"{prefix}recall"] = precision_recall(ref.features, x)
        if "is" in self.wants:
            if logits[0] is None:
                raise UserError(f"metrics=is: feature_extractor={ex.name} gives no class logits")
            out[f"{prefix}is"], out[f"{prefix}is_std"] = inception_score(torch.cat(logits), splits=min(10, n))
        return out, protocol


@SUITES.register("fid")
class FID(FeatureMetrics):
    name = "fid"


@SUITES.register("kid")
class KID(FeatureMetrics):
    name = "kid"


@SUITES.register("is")
class InceptionScore(FeatureMetrics):
    name = "is"


@SUITES.register("pr")
class PrecisionRecall(FeatureMetrics):
    name = "pr"

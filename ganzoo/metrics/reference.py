"""Reference statistics of real images for FID/KID/precision-recall, computed once and cached.

For one set of real images (a dataset split, or one domain of a two-domain split) and one feature
extractor: the mean and covariance of the features of every image (float64, accumulated batch by
batch), plus the features of a fixed random subset of `keep` images (KID and precision/recall compare
sets of features, not Gaussians). Cached under `data_home()/fid_stats/`, keyed by the images'
dataset fingerprint, the extractor's name, weights hash and resize mode, and `keep`: a changed
dataset, network or resize is recomputed, never mixed with old numbers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..storage import atomic_write, data_home
from .feature_scores import RunningStats
from .features import FeatureExtractor

log = logging.getLogger(__name__)

STATS_VERSION = 1  # part of the cache key


@dataclass(frozen=True)
class Reference:
    mu: Tensor  # float64 [D]
    sigma: Tensor  # float64 [D, D]
    n: int  # images behind mu and sigma
    features: Tensor  # float32 [keep, D]: a fixed random subset, for KID and precision/recall
    what: str  # e.g. "mnist train (60000 images)"


def stats_path(fingerprint: str, extractor: FeatureExtractor, keep: int) -> Path:
    return (data_home() / "fid_stats" / f"{fingerprint[:16]}-{extractor.name}-{extractor.digest[:12]}-"
            f"{extractor.resize}-k{keep}-v{STATS_VERSION}.pt")


def reference_stats(images: Tensor, fingerprint: str, what: str, extractor: FeatureExtractor, *,
                    keep: int, batch_size: int) -> Reference:
    """The reference statistics of uint8 `images` [N, C, H, W] (read from the cache when there)."""
    if not fingerprint:
        raise ValueError(f"{what}: no dataset fingerprint to cache reference statistics under")
    keep = min(keep, images.shape[0])
    path = stats_path(fingerprint, extractor, keep)
    what = f"{what} ({images.shape[0]} images)"
    if path.exists():
        s = torch.load(path, map_location="cpu", weights_only=True)
        return Reference(s["mu"], s["sigma"], s["n"], s["features"], what)
    log.info("computing the %s reference statistics of %s (once; cached in %s) ...", extractor.name, what, path)
    t0 = time.perf_counter()
    chosen = torch.zeros(images.shape[0], dtype=torch.bool)
    chosen[torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))[:keep]] = True
    stats, kept = RunningStats(), []
    for batch, pick in zip(images.split(batch_size), chosen.split(batch_size)):
        feats, _ = extractor(batch)
        stats.add(feats)
        kept.append(feats[pick])
    mu, sigma = stats.result()
    state = {"mu": mu, "sigma": sigma, "n": stats.n, "features": torch.cat(kept)}
    atomic_write(path, lambda f: torch.save(state, f))
    log.info("reference statistics of %s computed in %.0f s", what, time.perf_counter() - t0)
    return Reference(mu, sigma, stats.n, state["features"], what)

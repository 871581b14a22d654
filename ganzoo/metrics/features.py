"""Feature extractors for FID, KID, IS and precision/recall: uint8 images in, (features, logits) out.

- `inception` (the default): the TF-ported FID Inception v3 (pt_inception-2015-12-05, the network and
  weights of pytorch-fid, torch-fidelity and StudioGAN's default), taken from torch-fidelity's
  `FeatureExtractorInceptionV3` (the optional extra `ganzoo[fid]`) together with its resize: the
  uint8 images are resized to 299x299 with TensorFlow 1.x's bilinear interpolation (the resize the
  published FIDs were computed with; `resize` = "tf1-bilinear-299"), grayscale repeated to 3 channels.
  Features: the 2048-d pool3 activations (FID, KID, precision/recall); logits: the 1008 unbiased
  logits (pool3 @ W without the bias, as the original IS code) for IS. The weights file comes
  through ganzoo's download manifest (`fid_inception`, SHA-256 pinned) into the data home, or from
  `inception_weights=<file>` (checked against the same digest): never a hidden hub download.
  torch-fidelity reads the file with `torch.load(weights_only=False)` (a pickle): the digest is
  checked before, so only the published file is ever unpickled.
- `judge`: a stand-in for small labeled sets (MNIST, the built-in digits), where the ImageNet network
  is slow on a CPU and sees 28 px digits upscaled ~10x: the dataset's judge classifier
  (`metrics.judge`, trained once on the train split and cached), features its 1152-d penultimate
  layer, logits its K classes. Like the LeNet-based "FID" of some MNIST papers, its numbers are only
  comparable with numbers from the same judge (`weights_sha256` in metrics.json says which).

Others plug in with `@register_extractor(name)`: a factory `(train, test, opts) -> FeatureExtractor`,
where train/test are zero-argument functions giving the reference domain's splits (built only when an
extractor trained on the data asks for them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data.base import ImageDataset
from ..data.fetch import manifest
from ..data.fetch.download import ensure
from ..data.loader import to_float
from ..errors import UserError
from ..storage import sha256_file
from .judge import train_judge
from .suite import EvalOptions

WEIGHTS = "fid_inception"  # the manifest entry of the Inception weights
INCEPTION_BATCH = 50  # images per Inception forward: ~0.5 GB of activations at 299 px (the first conv's 64 x 147²)


@dataclass
class FeatureExtractor:
    """`net(uint8 [N, C, H, W] on `device`) -> (features [N, D], logits [N, K] or None)`."""

    name: str
    net: Callable[[Tensor], tuple[Tensor, Tensor | None]]
    digest: str  # SHA-256 of the weights: part of the reference-statistics cache key, recorded in metrics.json
    resize: str  # how images reach the network's input ("tf1-bilinear-299", "none")
    device: torch.device
    max_batch: int = 0  # images per forward (0: any): bounds the memory of a large network

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """uint8 images (any device) -> float32 features and logits on the CPU."""
        feats, logits = [], []
        for chunk in images.split(self.max_batch or images.shape[0]):
            f, lg = self.net(chunk.to(self.device))
            feats.append(f.float().cpu())
            logits.append(None if lg is None else lg.float().cpu())
        return torch.cat(feats), None if logits[0] is None else torch.cat(logits)


Split = Callable[[], ImageDataset]
Factory = Callable[[Split, Split, EvalOptions], FeatureExtractor]
EXTRACTORS: dict[str, Factory] = {}


def register_extractor(name: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        if name in EXTRACTORS and EXTRACTORS[name] is not factory:
            raise ValueError(f"duplicate feature extractor name {name!r}")
        EXTRACTORS[name] = factory
        return factory

    return deco


def build_extractor(name: str, train: Split, test: Split, opts: EvalOptions) -> FeatureExtractor:
    if name not in EXTRACTORS:
        raise UserError(f"unknown feature_extractor {name!r} (known: {', '.join(sorted(EXTRACTORS))})")
    return EXTRACTORS[name](train, test, opts)


def inception_weights(path: str | None = None) -> Path:
    """The verified FID Inception weights file: `path` when given, else the manifest's `fid_inception`
    in the data home (downloaded on first use; offline, a one-line error says where to put the file)."""
    entry = manifest.get(WEIGHTS)
    if path is None:
        return ensure(WEIGHTS)
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"inception_weights={path}: no such file (download {entry.url}, or drop inception_weights= "
                        f"to use the data home's copy)")
    digest = sha256_file(p)
    if digest != entry.sha256:
        raise UserError(f"inception_weights={path}: sha256 {digest} is not the FID Inception's {entry.sha256} "
                        f"(FIDs are only comparable with {entry.filename} from {entry.url})")
    return p


def _to_rgb(images: Tensor) -> Tensor:
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise UserError(f"the Inception network takes 1- or 3-channel images, not {images.shape[1]} channels "
                        f"(use feature_extractor=judge, or another registered extractor)")
    return images


@register_extractor("inception")
def inception(train: Split, test: Split, opts: EvalOptions) -> FeatureExtractor:
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise UserError("feature_extractor=inception needs torch-fidelity: pip install 'ganzoo[fid]' (or use "
                        "feature_extractor=judge, the stand-in for labeled digit sets)") from None
    path = inception_weights(opts.inception_weights)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(path)).to(opts.device)

    def run(images: Tensor) -> tuple[Tensor, Tensor]:
        return net(_to_rgb(images))

    return FeatureExtractor("inception", run, manifest.get(WEIGHTS).sha256, "tf1-bilinear-299", opts.device,
                            max_batch=INCEPTION_BATCH)


def state_digest(net: nn.Module) -> str:
    """SHA-256 of a net's parameters and buffers (names, shapes and bytes)."""
    h = hashlib.sha256()
    for k, t in sorted(net.state_dict().items()):
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def split_classifier(net: nn.Sequential, name: str, device: torch.device) -> FeatureExtractor:
    """An extractor from a classifier whose last module is the final linear layer: features are its
    input, logits its output; images are scaled to [-1, 1] and not resized."""
    body, head = net[:-1].eval(), net[-1].eval()

    def run(images: Tensor) -> tuple[Tensor, Tensor]:
        feats = body(to_float(images))
        return feats, head(feats)

    return FeatureExtractor(name, run, state_digest(net), "none", device)


@register_extractor("judge")
def judge(train: Split, test: Split, opts: EvalOptions) -> FeatureExtractor:
    data = train()
    if data.info.num_classes < 1 or "label" not in data.info.fields:
        raise UserError(f"feature_extractor=judge needs a labeled dataset to train its classifier on, and "
                        f"{data.info.name!r} has no labels: use feature_extractor=inception")
    net, _ = train_judge(data, test(), epochs=opts.judge_epochs, device=opts.device)
    return split_classifier(net, "judge", opts.device)

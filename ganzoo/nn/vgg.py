"""A frozen VGG19 feature extractor for content (perceptual) losses, with torchvision's ImageNet weights.

SRGAN's content loss (Ledig et al. 2017, eq. 5) compares φ_i,j: "the feature map obtained by the j-th
convolution (after activation) before the i-th maxpooling layer" of VGG19; φ5,4 = relu5_4 =
torchvision `vgg19().features[:36]`, φ2,2 = relu2_2 = `features[:9]`. Inputs in [-1, 1] are mapped to
[0, 1] and normalised with the ImageNet mean and std that the torchvision weights were trained with;
one-channel images are repeated to three.

The weights (torchvision's `vgg19-dcbb9e9d.pth`, 548 MB, of which the convolutions up to relu5_4 are
80 MB) are fetched once into the data home (`data_home()/vgg19-dcbb9e9d.pth`) through the download
manifest (`ganzoo.data.fetch.download.ensure("vgg19")`: resumable, SHA-256 verified), or taken from
torch.hub's own cache when a torchvision user already has them there. Offline without them: one `DataError` line saying where to put the file and
that `model.content_loss=mse` trains without VGG.

The net is held outside the module tree (not a submodule): it is not in `state_dict()` (checkpoints stay
small and never carry a copy of ImageNet weights), not in `parameters()` (no optimizer or EMA sees it),
and `train()` never switches it out of eval mode; `_apply` forwards `.to()`/`.half()` to it so that it
follows the model to its device.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data.base import DataError
from ..storage import data_home, sha256_file

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_SHA256_PREFIX = "dcbb9e9d"  # torchvision file names carry the first 8 hex digits of the SHA-256
# torchvision's VGG19 ("E") features: conv widths and "M" for 2x2 max-pooling
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def feature_cut(layer: str) -> int:
    """The length of `features` that ends with relu<i>_<j> ("5_4" -> 36, "2_2" -> 9)."""
    try:
        block, conv = (int(v) for v in layer.split("_"))
    except ValueError:
        block = conv = -1
    idx, b, c = 0, 1, 0
    for v in _CFG:
        if v == "M":
            b, c = b + 1, 0
            idx += 1
            continue
        c += 1
        idx += 2  # conv, relu
        if (b, c) == (block, conv):
            return idx
    raise ValueError(f"VGG19 has no layer relu{layer}: use i_j with block i in 1..5 and conv j (e.g. 5_4 or 2_2)")


def vgg19_features(cut: int) -> nn.Sequential:
    """torchvision's `vgg19().features[:cut]`, same layer indices (so its state-dict keys load as they are)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = v
    net = nn.Sequential(*layers[:cut])
    for m in net.modules():  # torchvision's VGG init (what "random" content weights mean in tests)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def _hub_cache() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def _offline(cause: str, folder: Path) -> DataError:
    return DataError(f"VGG19 ImageNet weights for the content loss are not available ({cause}): put {VGG19_FILE} "
                     f"(from {VGG19_URL}) in {folder}, or train without VGG with model.content_loss=mse")


def _check(path: Path, folder: Path) -> Path:
    if not sha256_file(path).startswith(VGG19_SHA256_PREFIX):
        raise _offline(f"{path} does not have the published SHA-256 (a partial or different file?)", folder)
    return path


def vgg19_weights_file(root: str | os.PathLike | None = None) -> Path:
    """The verified torchvision VGG19 weights file: in the data home, in torch.hub's cache, or downloaded
    (resumable, SHA-256 verified) through the download manifest."""
    from ..data.fetch.download import ensure

    folder = data_home(root)  # where the download manifest puts weights files
    for candidate in (folder / VGG19_FILE, _hub_cache()):
        if candidate.is_file():
            return _check(candidate, folder)
    try:
        return Path(ensure("vgg19", root))
    except DataError as e:
        raise _offline(str(e).splitlines()[0].rstrip("."), folder) from None
    except OSError as e:  # a full disk, an unwritable data home
        raise _offline(f"{type(e).__name__}: {e}", folder) from None


class VGGFeatures(nn.Module):
    """Frozen VGG19 features up to relu<layer> of [-1, 1] images; see the module doc."""

    def __init__(self, layer: str = "5_4"):
        super().__init__()
        self.layer = layer
        net = vgg19_features(feature_cut(layer)).requires_grad_(False).eval()
        object.__setattr__(self, "net", net)  # outside the module tree on purpose (module doc)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.loaded = False  # ImageNet weights copied in (False: random init)

    def _apply(self, fn, *args, **kwargs):
        self.net._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Copy a torchvision VGG19 state dict's `features.*` tensors in (into the tensors on their device)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        prefix = "features."
        feats = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        own = self.net.state_dict()
        missing = [k for k in own if k not in feats]
        if missing:
            raise DataError(f"{path} is not a torchvision VGG19 state dict (no features.{missing[0]}): "
                            f"delete it and let ganzoo fetch {VGG19_FILE} again")
        self.net.load_state_dict({k: feats[k] for k in own})
        self.loaded = True

    def forward(self, x: Tensor) -> Tensor:  # [N, C, H, W] in [-1, 1] -> [N, 512, H/16, W/16] for 5_4
        x = (x + 1) * 0.5
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net((x - self.mean) / self.std)

"""`ganzoo translate`: image-to-image inference on a file or a folder, from a run folder or from the
official pretrained CycleGAN/pix2pix generators.

Every image under `input` (recursively, sorted, hidden names skipped) is translated by default, and
written under `out` with its own relative path and file name (the format follows the extension: PNG
lossless, JPEG at quality 95), each file atomically (temp file, fsync, rename), so an interrupted
run leaves only whole images. Images of any size: each is reflect-padded to the model's
`pad_multiple` (e.g. 4 for ResNet generators, 256 for unet_256; mirrored repeatedly when the pad
is larger than the image) and the output cropped back to the input's size times the model's `scale`
(super-resolution models). Images are batched by size (`batch_size` per forward) and converted to
the channels of the model's input domain (grey <-> RGB, see `ganzoo.data.files.imagecheck.convert_image`).

The model comes from the run folder alone (`ganzoo.build.load_model`; EMA weights when the run has
them and `ema` is on), or, with `weights=<.pth file or download name>` and `model=cyclegan|pix2pix`,
from an official generator (`ganzoo.nn.translation.load_official_generator`): pix2pix's runs as the
reference's test.py (dropout on, each image's own batch statistics), CycleGAN's in eval mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .build import load_model
from .data.builders.folder import find_images
from .data.builders.translation_folders import _oriented_size
from .data.fetch import download, manifest
from .data.files.imagecheck import is_image_file, load_image
from .errors import UserError
from .images import to_uint8
from .models.base import TRANSLATE
from .nn.norm import run_as_trained
from .nn.translation import load_official_generator
from .runtime import pick_device
from .storage import atomic_write

DIRECTIONS = ("AtoB", "BtoA")
OFFICIAL_MODELS = ("cyclegan", "pix2pix")
_JPEG = {".jpg", ".jpeg"}


class Result(NamedTuple):
    written: int  # images written
    out: Path  # the output folder (or file, for one image)
    skipped: list[str]  # one line per unreadable input file (the others are translated)


@dataclass
class Translator:
    """What the command needs of a model: x [N, in_channels, H, W] in [-1, 1] (H, W multiples of
    `pad_multiple`) -> [N, C', H * scale, W * scale]."""

    fn: Callable[[Tensor], Tensor]
    in_channels: int
    pad_multiple: int = 1
    scale: int = 1
    device: torch.device = torch.device("cpu")
    name: str = ""


# -- inputs and outputs ------------------------------------------------------------------------------


def collect_inputs(input: str, out: Path) -> tuple[Path, list[Path]]:
    """(the folder the names are relative to, the image files) of `input` (a file or a folder)."""
    src = Path(os.path.expanduser(str(input)))
    if not src.exists():
        raise UserError(f"input={input} does not exist: give an image file or a folder of images")
    if src.is_file():
        if not is_image_file(src.name):
            raise UserError(f"input={input} is not an image file (by its extension): give a .png, .jpg, ... or a folder")
        return src.parent, [src]
    if out.resolve() == src.resolve():
        raise UserError(f"out={out} is the input folder: the translations would replace the originals; "
                        "choose another out=")
    out_abs = out.resolve()
    files = [f for f in find_images(src) if out_abs not in f.resolve().parents]  # never re-translate outputs
    if not files:
        raise UserError(f"no images found in {src} (png, jpg, jpeg, bmp, gif, webp, tif): give a folder of images")
    return src, files


def _size(path: Path) -> tuple[int, int] | None:
    """(H, W) of an image as `load_image` returns it (EXIF rotation applied), from the header; None if unreadable."""
    try:
        w, h = _oriented_size(str(path))
    except Exception:  # noqa: BLE001 - reported when the file is loaded
        return None
    return h, w


def save_image(image: Tensor, path: Path) -> Path:
    """One [-1, 1] image [C, H, W] to `path` (format from the extension), atomically and durably."""
    arr = to_uint8(image).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else np.ascontiguousarray(arr))
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    options = {"quality": 95} if path.suffix.lower() in _JPEG else {}
    return atomic_write(path, lambda f: img.save(f, format=fmt, **options))


# -- padding ---------------------------------------------------------------------------------------


def reflect_pad(x: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """Mirror-pad [N, C, H, W]; pads larger than the image mirror again (torch's reflect mode takes
    at most side - 1 at a time); a 1-pixel side repeats its pixel."""
    while top or bottom or left or right:
        h, w = x.shape[-2:]
        step = [min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1)]
        if not any(step):  # a 1-pixel side: nothing to mirror
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        x = F.pad(x, step, mode="reflect")
        left, right, top, bottom = left - step[0], right - step[1], top - step[2], bottom - step[3]
    return x


@torch.no_grad()
def translate_batch(t: Translator, x: Tensor) -> Tensor:
    """[N, C, H, W] in [-1, 1], any H, W -> the model's output cropped back to [N, C', H*s, W*s]."""
    h, w = x.shape[-2:]
    m = max(1, t.pad_multiple)
    ph, pw = -h % m, -w % m
    top, left = ph // 2, pw // 2
    y = t.fn(reflect_pad(x, top, ph - top, left, pw - left))
    s = t.scale
    if y.shape[-2:] != ((h + ph) * s, (w + pw) * s):
        raise RuntimeError(f"{t.name} returned {tuple(y.shape[-2:])} for a {(h + ph, w + pw)} input (scale {s})")
    return y[..., top * s:(top + h) * s, left * s:(left + w) * s]


# -- models ----------------------------------------------------------------------------------------


def from_run(run: str, *, device: torch.device, ema: bool, direction: str | None) -> tuple[Translator, str]:
    """The run's model as a Translator, and the direction it will translate."""
    model, ckpt = load_model(run, device=device, ema=ema)
    name = ckpt["model"]["name"]
    if not model.can(TRANSLATE):
        raise UserError(f"run {run} holds a {name} model, which generates from noise and does not translate "
                        f"images: use ganzoo sample run={run}")
    directions = model.directions()
    direction = direction or directions[0]
    if direction not in DIRECTIONS:
        raise UserError(f"direction={direction}: use AtoB or BtoA")
    if direction not in directions:
        if len(directions) == 1 and not model.data.channels_b:
            raise UserError(f"a {name} model translates one way only: drop direction={direction}")
        raise UserError(f"this {name} model translates {', '.join(directions)} only: drop direction= or use "
                        f"direction={directions[0]}")

    def fn(x: Tensor) -> Tensor:
        return model.translate(x, direction)

    return Translator(fn, model.source_channels(direction), model.pad_multiple, model.scale, device, name), direction


def _weights_file(weights: str, model: str) -> Path:
    """A .pth path, or a download name (`horse2zebra` with model=cyclegan = `cyclegan_model/horse2zebra`)."""
    path = Path(os.path.expanduser(weights))
    if path.is_file() or path.suffix == ".pth":
        return path  # a missing .pth is reported by load_official_generator
    name = weights if weights.startswith(f"{model}_model/") else f"{model}_model/{weights}"
    if name not in manifest.names():
        known = [n.split("/", 1)[1] for n in manifest.names() if n.startswith(f"{model}_model/")]
        raise UserError(f"weights={weights} is neither a file nor an official {model} generator "
                        f"(known: {', '.join(known)}): give a .pth path or one of those names")
    return download.ensure(name)


def from_weights(weights: str, model: str | None, *, device: torch.device,
                 direction: str | None) -> tuple[Translator, str]:
    """An official generator (.pth or download name) as a Translator."""
    if model not in OFFICIAL_MODELS:
        raise UserError(f"weights= loads an official generator: say which with model=cyclegan or model=pix2pix"
                        f"{'' if model is None else f' (not {model})'}")
    if direction not in (None, "AtoB"):
        raise UserError(f"an official generator translates the one way it was trained: drop direction={direction}")
    net = load_official_generator(_weights_file(weights, model)).to(device)
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]

    def fn(x: Tensor) -> Tensor:
        return run_as_trained(net, x) if model == "pix2pix" else net(x)

    return Translator(fn, convs[0].in_channels, int(getattr(net, "pad_multiple", 4)), 1, device,
                      f"{model} generator {weights}"), "AtoB"


# -- the command ------------------------------------------------------------------------------------


def translate(*, input: str, out: str | None = None, run: str | None = None, weights: str | None = None,
              model: str | None = None, direction: str | None = None, batch_size: int = 8,
              device: str = "auto", ema: bool = True, seed: int = 0) -> Result:
    """Translate every image of `input`; returns the count written, where, and the files skipped."""
    if (run is None) == (weights is None):
        raise UserError("give run=<run folder> or weights=<official .pth> model=cyclegan|pix2pix (one of them)")
    if run is not None and model is not None:
        raise UserError("model= goes with weights=; a run folder knows its model: drop model=")
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: use at least 1")
    if direction is not None and direction not in DIRECTIONS:
        raise UserError(f"direction={direction}: use AtoB or BtoA")
    if out is None:
        if run is None:
            raise UserError("give out=<folder> for the translated images")
        out = str(Path(run) / "translated")
    out_path = Path(os.path.expanduser(out))
    single_file_out = is_image_file(out_path.name) and not out_path.is_dir()
    base, files = collect_inputs(input, out_path)
    if single_file_out and len(files) > 1:
        raise UserError(f"out={out} is one image file but input has {len(files)} images: give a folder as out=")
    dev = pick_device(device)
    torch.manual_seed(seed)  # pix2pix keeps dropout on at inference: make its outputs repeatable
    t, direction = (from_run(run, device=dev, ema=ema, direction=direction) if run is not None
                    else from_weights(weights, model, device=dev, direction=direction))
    if t.in_channels not in (1, 3):
        raise UserError(f"{t.name} takes {t.in_channels}-channel images; image files give 1 (grey) or 3 (RGB)")
    groups: dict[tuple[int, int], list[Path]] = {}
    for f in files:
        groups.setdefault(_size(f) or (0, 0), []).append(f)
    written, bad = 0, []
    for _, group in sorted(groups.items()):
        for i in range(0, len(group), batch_size):
            chunk, images = [], []
            for f in group[i:i + batch_size]:
                try:
                    img = load_image(f, t.in_channels)
                except UserError as e:
                    bad.append(str(e))
                    continue
                images.append(torch.from_numpy(np.array(img, dtype=np.uint8)).reshape(img.size[1], img.size[0], -1))
                chunk.append(f)
            for hw in {im.shape[:2] for im in images}:  # a header that lied about the size: its own batch
                pick = [k for k, im in enumerate(images) if im.shape[:2] == hw]
                x = torch.stack([images[k] for k in pick]).permute(0, 3, 1, 2).to(dev).float().div_(127.5).sub_(1)
                y = translate_batch(t, x).cpu()
                for k, img in zip(pick, y):
                    target = out_path if single_file_out else out_path / chunk[k].relative_to(base)
                    save_image(img, target)
                    written += 1
    if bad and not written:
        raise UserError(f"none of the {len(bad)} images could be read (first: {bad[0]})")
    return Result(written, out_path, bad)


__all__ = ["Result", "Translator", "collect_inputs", "reflect_pad", "save_image", "translate", "translate_batch"]

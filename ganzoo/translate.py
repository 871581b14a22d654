"""`ganzoo translate`: image-to-image inference on a file or a folder, from a run folder or from the
official pretrained CycleGAN/pix2pix generators.

Every image under `input` (recursively, sorted, hidden names skipped) is translated by default, and
written under `out` with its own relative path and name as a PNG (lossless; the reference's test.py
writes PNG too); a single out file keeps the extension asked for (JPEG at quality 95). Each file is
written atomically (temp file, fsync, rename), so an interrupted run leaves only whole images; an
output that would replace its input is refused. Images of any size: each is reflect-padded to the
model's `pad_multiple` (e.g. 4 for ResNet generators, 256 for unet_256; mirrored repeatedly when the
pad is larger than the image) and the output cropped back to the input's size times the model's
`scale` (super-resolution models); `resize=<side>` instead resizes every input to side x side with
PIL's bicubic, as the reference's test pipeline does (`--load_size 256`). Images are batched by size
(`batch_size` per forward) and converted to the channels of the model's input domain (grey <-> RGB,
see `ganzoo.data.files.imagecheck.convert_image`).

Memory. A model that can be tiled exactly (`model.tiling(direction)`: super-resolution) runs
tile by tile with that margin of real context around each tile, and the tiles are written straight
into the uint8 output: no full-size float copy, memory bounded for any size. pix2pix and CycleGAN
cannot be tiled faithfully (per-image batch / instance norm statistics; unet_256's bottleneck sees
the whole image), so an input above `max_pixels` is refused in one line naming `resize=`.
Outputs are quantized as the reference's `util.tensor2im` ((y + 1) / 2 * 255, truncated) unless
`rounding=round`. A tiled image longer than a few seconds reports its progress on stderr.

The model comes from the run folder alone (`ganzoo.build.load_model`; EMA weights when the run has
them and `ema` is on), or, with `weights=<.pth file or download name>` and `model=cyclegan|pix2pix`,
from an official generator (`ganzoo.nn.translation.load_official_generator`): pix2pix's runs as the
reference's test.py (dropout on, each image's own batch statistics), CycleGAN's in eval mode;
`model.eval_mode=true` runs either in eval mode (test.py --eval: running statistics, no dropout).
"""

from __future__ import annotations

import os
import sys
import time
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
from .models.base import DIRECTIONS, TRANSLATE, GANModel
from .nn.norm import run_as_trained
from .nn.translation import load_official_generator
from .portable import PORTABLE_SUFFIX, read_weights
from .runtime import pick_device
from .storage import atomic_write

OFFICIAL_MODELS = ("cyclegan", "pix2pix")
ROUNDINGS = ("truncate", "round")
_JPEG = {".jpg", ".jpeg"}
MAX_PIXELS = 2048 * 2048  # default limit of an untiled input (pix2pix, CycleGAN), after resize
PROGRESS_EVERY_S = 5.0  # seconds between two progress lines of a tiled image


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
    tiling: tuple[int, int] | None = None  # (tile, margin) in input px for exact tiling; None: translate whole


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


def to_model_input(x: Tensor) -> Tensor:
    """uint8 [N, C, H, W] -> float in [-1, 1] as the reference's ToTensor + Normalize(0.5, 0.5) compute it
    (v / 255 - 0.5) / 0.5, bit for bit (v / 127.5 - 1 differs in the last bit for some levels)."""
    return x.float().div_(255).sub_(0.5).div_(0.5)


def to_uint8(y: Tensor, rounding: str = "truncate") -> Tensor:
    """[-1, 1] float [..., C, H, W] -> uint8 [..., H, W, C] on the CPU. `truncate` is the reference's
    `util.tensor2im`: float32 (y + 1) / 2 * 255 in that order, then `astype(np.uint8)` (toward zero);
    `round` takes the nearest level (`ganzoo.images.to_uint8`)."""
    y = y.detach().float().clamp(-1, 1)
    y = ((y + 1) * 127.5).round() if rounding == "round" else (y + 1) / 2.0 * 255.0
    return y.to(torch.uint8).movedim(-3, -1).cpu()


def save_image(arr: np.ndarray, path: Path) -> Path:
    """One uint8 image [H, W, C] to `path` (format from the extension), atomically and durably."""
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else np.ascontiguousarray(arr))
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    options = {"quality": 95} if path.suffix.lower() in _JPEG else {}
    return atomic_write(path, lambda f: img.save(f, format=fmt, **options))


def output_paths(files: list[Path], base: Path, out: Path, single_file_out: bool) -> dict[Path, Path]:
    """input -> output file: `out` itself for one image with an image-file name (its extension kept),
    else `out/<relative path>.png`; refuses an output that is its input (symlinks and relative paths
    resolved) and two inputs written to one name (a.jpg and a.png)."""
    targets = {f: out if single_file_out else (out / f.relative_to(base)).with_suffix(".png") for f in files}
    seen: dict[Path, Path] = {}
    for f, target in targets.items():
        dst = target.resolve()
        if dst == f.resolve() or (target.exists() and os.path.samefile(target, f)):
            raise UserError(f"out={out} would overwrite the input {f}: choose another out=")
        if dst in seen:
            raise UserError(f"{seen[dst]} and {f} would both be written to {target}: rename one, or translate "
                            "them into different out= folders")
        seen[dst] = f
    return targets


class Progress:
    """A line on stderr at most every PROGRESS_EVERY_S seconds while a tiled image is translated."""

    def __init__(self, n_images: int):
        self.n_images, self.done, self.last = n_images, 0, time.monotonic()

    def tile(self, name: str, k: int, n: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or (k == n and PROGRESS_EVERY_S <= 0):
            self.last = now
            print(f"translate: {name}: tile {k}/{n} (image {self.done + 1}/{self.n_images})", file=sys.stderr,
                  flush=True)


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


def translate_tiled(t: Translator, image: np.ndarray, rounding: str, progress: Progress | None = None,
                    name: str = "") -> np.ndarray:
    """One uint8 image [H, W, C] -> the uint8 output [H*s, W*s, C'] of a tileable translator: tiles of
    `t.tiling` = (tile, margin) input px, each translated with `margin` px of real context on every side (less
    at the image border, exactly what the whole image's run sees) and only its centre kept, written
    straight into the uint8 output. Memory: the two uint8 images and one tile's activations."""
    h, w = image.shape[:2]
    tile, m = t.tiling
    s = t.scale
    starts = [(y0, x0) for y0 in range(0, h, tile) for x0 in range(0, w, tile)]
    out = None
    for k, (y0, x0) in enumerate(starts, 1):
        y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
        cy0, cx0, cy1, cx1 = max(0, y0 - m), max(0, x0 - m), min(h, y1 + m), min(w, x1 + m)
        x = torch.from_numpy(np.ascontiguousarray(image[cy0:cy1, cx0:cx1])).permute(2, 0, 1)[None].contiguous()
        y = translate_batch(t, to_model_input(x.to(t.device)))
        oy, ox = (y0 - cy0) * s, (x0 - cx0) * s
        part = to_uint8(y[0, :, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s], rounding).numpy()
        if out is None:
            out = np.empty((h * s, w * s, part.shape[-1]), np.uint8)
        out[y0 * s:y1 * s, x0 * s:x1 * s] = part
        if progress is not None:
            progress.tile(name, k, len(starts))
    return out


# -- models ----------------------------------------------------------------------------------------


def from_run(run: str, *, device: torch.device, ema: bool, direction: str | None) -> tuple[Translator, str]:
    """The run's model as a Translator, and the direction it will translate."""
    model, ckpt = load_model(run, device=device, ema=ema)
    return from_model(model, ckpt["model"]["name"], direction, source=f"run {run}", sample=f"run={run}")


def from_model(model: GANModel, name: str, direction: str | None, *, source: str,
               sample: str) -> tuple[Translator, str]:
    """A loaded model (from a run folder or a ganzoo weights file) as a Translator, and its direction."""
    if not model.can(TRANSLATE):
        raise UserError(f"{source} holds a {name} model, which generates from noise and does not translate "
                        f"images: use ganzoo sample {sample}")
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

    return (Translator(fn, model.source_channels(direction), model.pad_multiple, model.scale, model.device, name,
                       model.tiling(direction)), direction)


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


def from_weights(weights: str, model: str | None, *, device: torch.device, direction: str | None,
                 eval_mode: bool = False) -> tuple[Translator, str]:
    """An official generator (.pth or download name) as a Translator: pix2pix's as the paper and test.py
    (dropout on, each image's own batch statistics), CycleGAN's in eval mode (the same function for its
    instance-norm, dropout-free nets); `eval_mode` runs either in eval mode (test.py --eval)."""
    if str(weights).endswith(PORTABLE_SUFFIX):  # a ganzoo export: the file names its model
        if model is not None or eval_mode:
            raise UserError(f"weights={weights} is a ganzoo weights file, which knows its model: drop model= "
                            "and model.eval_mode=")
        net, meta = read_weights(weights, device=device)
        return from_model(net, meta["model"]["name"], direction, source=f"weights={weights}", sample=f"weights={weights}")
    if model not in OFFICIAL_MODELS:
        raise UserError(f"weights= loads an official generator: say which with model=cyclegan or model=pix2pix"
                        f"{'' if model is None else f' (not {model})'}")
    if direction not in (None, "AtoB"):
        raise UserError(f"an official generator translates the one way it was trained: drop direction={direction}")
    net = load_official_generator(_weights_file(weights, model)).to(device)
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]

    def fn(x: Tensor) -> Tensor:
        return run_as_trained(net, x) if model == "pix2pix" and not eval_mode else net(x)

    return Translator(fn, convs[0].in_channels, int(getattr(net, "pad_multiple", 4)), 1, device,
                      f"{model} generator {weights}"), "AtoB"


# -- the command ------------------------------------------------------------------------------------


def _resize_side(resize) -> int | None:
    """resize= as given: none/null -> None (keep the size), a positive int -> that side."""
    if resize is None or str(resize).lower() in ("none", "null", "false"):
        return None
    try:
        side = int(resize)
    except (TypeError, ValueError):
        side = 0
    if side < 1:
        raise UserError(f"resize={resize}: give a side in pixels (resize=256, the reference's load size) or "
                        "resize=none to keep each image's size")
    return side


def translate(*, input: str, out: str | None = None, run: str | None = None, weights: str | None = None,
              model: str | None = None, direction: str | None = None, batch_size: int = 8,
              device: str = "auto", ema: bool = True, seed: int = 0, resize: int | str | None = None,
              rounding: str = "truncate", max_pixels: int = MAX_PIXELS, eval_mode: bool | None = None) -> Result:
    """Translate every image of `input`; returns the count written, where, and the files skipped."""
    if (run is None) == (weights is None):
        raise UserError("give run=<run folder> or weights=<official .pth> model=cyclegan|pix2pix (one of them)")
    if run is not None and model is not None:
        raise UserError("model= goes with weights=; a run folder knows its model: drop model=")
    if run is not None and eval_mode is not None:
        raise UserError("model.eval_mode= goes with weights=; a run keeps the eval_mode it was trained with: "
                        "drop model.eval_mode=")
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size}: use at least 1")
    if direction is not None and direction not in DIRECTIONS:
        raise UserError(f"direction={direction}: use AtoB or BtoA")
    if rounding not in ROUNDINGS:
        raise UserError(f"rounding={rounding}: use truncate (the reference's tensor2im) or round")
    side = _resize_side(resize)
    if out is None:
        if run is None:
            raise UserError("give out=<folder> for the translated images")
        out = str(Path(run) / "translated")
    out_path = Path(os.path.expanduser(out))
    single_file_out = is_image_file(out_path.name) and not out_path.is_dir()
    base, files = collect_inputs(input, out_path)
    if single_file_out and len(files) > 1:
        raise UserError(f"out={out} is one image file but input has {len(files)} images: give a folder as out=")
    targets = output_paths(files, base, out_path, single_file_out)
    dev = pick_device(device)
    t, direction = (from_run(run, device=dev, ema=ema, direction=direction) if run is not None
                    else from_weights(weights, model, device=dev, direction=direction, eval_mode=bool(eval_mode)))
    # pix2pix keeps dropout on at inference: seeded after the model is built (building draws initial
    # weights), so the masks depend on the seed alone
    torch.manual_seed(seed)
    if t.in_channels not in (1, 3):
        raise UserError(f"{t.name} takes {t.in_channels}-channel images; image files give 1 (grey) or 3 (RGB)")
    groups: dict[tuple[int, int], list[Path]] = {}
    for f in files:
        hw = (side, side) if side else _size(f) or (0, 0)
        if t.tiling is None and hw[0] * hw[1] > max_pixels:
            raise UserError(f"{f} is {hw[1]}x{hw[0]} px, above max_pixels={max_pixels}: {t.name} is not tiled "
                            "(each output pixel depends on the whole image's statistics), so memory grows with "
                            "the image; use resize=256 (the reference's test size), or raise max_pixels= if "
                            "memory allows")
        groups.setdefault(hw, []).append(f)
    written, bad, progress = 0, [], Progress(len(files))
    for _, group in sorted(groups.items()):
        for i in range(0, len(group), batch_size):
            chunk, images = [], []
            for f in group[i:i + batch_size]:
                try:
                    img = load_image(f, t.in_channels)
                except UserError as e:
                    bad.append(str(e))
                    continue
                if side:  # the reference's transforms.Resize([load_size, load_size], Image.BICUBIC)
                    img = img.resize((side, side), Image.BICUBIC)
                images.append(np.array(img, dtype=np.uint8).reshape(img.size[1], img.size[0], -1))
                chunk.append(f)
            tiled = [k for k, im in enumerate(images)
                     if t.tiling is not None and max(im.shape[:2]) > t.tiling[0]]
            for k in tiled:  # one image at a time, tile by tile, into its uint8 output
                save_image(translate_tiled(t, images[k], rounding, progress, chunk[k].name), targets[chunk[k]])
                written, progress.done = written + 1, progress.done + 1
            whole = [k for k in range(len(images)) if k not in tiled]
            for hw in {images[k].shape[:2] for k in whole}:  # a header that lied about the size: its own batch
                pick = [k for k in whole if images[k].shape[:2] == hw]
                # contiguous NCHW, as the reference's ToTensor: dropout masks are drawn in memory order
                x = torch.from_numpy(np.stack([images[k] for k in pick])).permute(0, 3, 1, 2).contiguous()
                y = to_uint8(translate_batch(t, to_model_input(x.to(dev))), rounding).numpy()
                for k, arr in zip(pick, y):
                    save_image(arr, targets[chunk[k]])
                    written, progress.done = written + 1, progress.done + 1
    if bad and not written:
        raise UserError(f"none of the {len(bad)} images could be read (first: {bad[0]})")
    return Result(written, out_path, bad)


__all__ = ["Result", "Translator", "collect_inputs", "output_paths", "reflect_pad", "save_image", "to_uint8",
           "translate", "translate_batch", "translate_tiled"]

"""Image file validation and consistent decoding (for image-folder datasets).

`check_image` fully decodes a file and answers None (good) or a short reason; `scan_images` does it
for many files on a thread pool (Pillow's decoders release the GIL); `load_image` opens a file and
converts any mode Pillow reads to "L" or "RGB" the same way everywhere:

- alpha (RGBA, LA, PA, P with transparency): composited on BLACK, then alpha dropped. Fully
  transparent pixels therefore become black whatever colour they hide, so the result is defined.
- palette (P), CMYK, YCbCr, LAB, HSV, 1-bit: Pillow's conversion to RGB (CMYK is converted naively,
  without ICC profiles: C,M,Y,K = 0,0,0,k becomes grey 255-k).
- 16-bit greyscale (I;16*, and "I" which is assumed to hold 16-bit values): scaled to 8 bits
  (v / 257, rounded), never clipped (Pillow's own I;16 -> L conversion clips at 255).
- 32-bit float "F": Pillow's conversion (values taken as 0..255, clipped).
- EXIF orientation is applied (photos from cameras and phones come out upright).
- RGB -> L (channels=1) uses Pillow's ITU-R 601-2 luma; L -> RGB (channels=3) repeats the channel.
Multi-frame files (GIF, TIFF) give their first frame.

Decompression bombs: a file whose header claims more than `max_pixels` (default: Pillow's error
limit, 2 x `PIL.Image.MAX_IMAGE_PIXELS`) is refused before any pixel is decoded; Pillow's
`DecompressionBombWarning` is never let out of this module.

Note: if some code sets `PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True` process-wide, Pillow pads
truncated files silently and `check_image` can no longer see them.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ganzoo.data.base import DataError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# extension -> Pillow formats the content may have (a .jpg from a phone is often an MPO)
_EXPECTED_FORMATS: dict[str, frozenset[str]] = {
    ".png": frozenset({"PNG"}),
    ".jpg": frozenset({"JPEG", "MPO"}),
    ".jpeg": frozenset({"JPEG", "MPO"}),
    ".bmp": frozenset({"BMP", "DIB"}),
    ".gif": frozenset({"GIF"}),
    ".webp": frozenset({"WEBP"}),
    ".tif": frozenset({"TIFF"}),
    ".tiff": frozenset({"TIFF"}),
}


def is_image_file(path: str | os.PathLike) -> bool:
    """True if the file name has one of `IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def default_max_pixels() -> int | None:
    """Pillow's hard limit (2 x MAX_IMAGE_PIXELS, read now), or None where Pillow's is off."""
    m = Image.MAX_IMAGE_PIXELS
    return None if m is None else 2 * int(m)


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return f"{type(e).__name__}: {s[0]}" if s else type(e).__name__


def _header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """Width and height from the header alone, without Pillow's bomb check (whose error hides
    them). Uses the format plugins registered with Pillow; None where that fails."""
    try:
        Image.init()
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                if accept is not None and not accept(prefix):
                    continue
                fp.seek(0)
                try:
                    im = factory(fp, os.fspath(path))
                except Exception:  # noqa: BLE001 - not this format
                    continue
                return im.size
    except Exception:  # noqa: BLE001
        pass
    return None


def _bomb_reason(size: tuple[int, int] | None, pixels: int | None = None) -> str:
    if size is not None:
        return f"decompression bomb ({size[0]}×{size[1]} px)"
    return f"decompression bomb ({pixels} px)" if pixels else "decompression bomb"


def _check(path: str | os.PathLike, max_pixels: int | None) -> str | None:
    """check_image without the warnings guard (the caller holds one; catch_warnings is process-wide
    state, so worker threads must not enter it themselves)."""
    try:
        if os.path.getsize(path) == 0:
            return "zero-byte file"
    except OSError as e:
        return f"unreadable: {_first_line(e)}"
    try:
        with Image.open(path) as img:
            w, h = img.size
            if max_pixels is not None and max(1, w) * max(1, h) > max_pixels:
                return _bomb_reason((w, h))
            fmt = img.format
            img.load()  # full decode: truncation and corrupt data only show up here
    except Image.DecompressionBombError as e:  # beyond Pillow's own limit
        m = re.search(r"\((\d+) pixels\)", str(e))
        return _bomb_reason(_header_size(path), int(m.group(1)) if m else None)
    except UnidentifiedImageError:
        return "not an image (unidentified format)"
    except (OSError, SyntaxError, EOFError, ValueError) as e:
        msg = str(e)
        if isinstance(e, EOFError) or "truncated" in msg.lower() or "broken data stream" in msg.lower():
            return "truncated"
        return f"decode error: {_first_line(e)}"
    except Exception as e:  # noqa: BLE001 - any other decoder failure is a bad file too
        return f"decode error: {_first_line(e)}"
    ext = os.path.splitext(os.fspath(path))[1].lower()
    expected = _EXPECTED_FORMATS.get(ext)
    if expected is not None and fmt not in expected:
        return f"extension {ext} but content is {fmt}"
    return None


def check_image(path: str | os.PathLike, max_pixels: int | None = None) -> str | None:
    """None if `path` is a good image (it fully decodes and its content matches its extension),
    else a short reason: "zero-byte file", "not an image (unidentified format)", "truncated",
    "decompression bomb (W×H px)", "extension .png but content is JPEG", "decode error: ...".
    `max_pixels`: refuse larger images (default `default_max_pixels()`)."""
    limit = default_max_pixels() if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning, EXIF and palette warnings
        return _check(path, limit)


def scan_images(paths: Iterable[str | os.PathLike], workers: int | None = None,
                max_pixels: int | None = None) -> list[tuple[str | os.PathLike, str]]:
    """Check many files in parallel; returns [(path, reason)] for the bad ones, in input order.
    `workers`: threads (default min(16, cpus + 4))."""
    paths = list(paths)
    if not paths:
        return []
    limit = default_max_pixels() if max_pixels is None else max_pixels
    if workers is None:
        workers = min(16, (os.cpu_count() or 1) + 4)
    workers = max(1, min(workers, len(paths)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if workers == 1:
            reasons = [_check(p, limit) for p in paths]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="imagecheck") as pool:
                reasons = list(pool.map(lambda p: _check(p, limit), paths, chunksize=16))
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit greyscale ("I;16*", "I") -> "L", scaling 0..65535 to 0..255."""
    a = np.asarray(img).astype(np.int64)
    a = (np.clip(a, 0, 65535) * 255 + 32767) // 65535
    return Image.fromarray(a.astype(np.uint8), mode="L")


def convert_image(img: Image.Image, channels: int) -> Image.Image:
    """Convert a loaded image of any mode to "L" (channels=1) or "RGB" (channels=3); see module doc."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        img = _to_8bit(img)
    elif mode == "F" or mode == "1":
        img = img.convert("L")
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info) \
            or (mode in ("L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba).convert("RGB")
    elif mode not in ("L", "RGB"):
        img = img.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def load_image(path: str | os.PathLike, channels: int, draft_size: int | None = None) -> Image.Image:
    """Open, fully decode and convert `path` to "L" (channels=1) or "RGB" (channels=3); the file is
    closed on return. `draft_size`: let JPEG decode at a reduced scale whose shorter side is still
    >= draft_size (faster for big photos; deterministic). Raises DataError for bad files."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                limit = default_max_pixels()
                if limit is not None and img.size[0] * img.size[1] > limit:
                    raise DataError(f"{path}: {_bomb_reason(img.size)}")
                if draft_size and img.format == "JPEG":
                    img.draft(None, (draft_size, draft_size))
                img.load()
                try:
                    if img.getexif().get(ExifTags.Base.Orientation, 1) not in (1, None):
                        img = ImageOps.exif_transpose(img)
                except Exception:  # noqa: BLE001 - broken EXIF: keep the pixels as stored
                    pass
                return convert_image(img, channels)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        reason = check_image(path) or _first_line(e)
        raise DataError(f"cannot load image {path}: {reason}") from e


__all__ = ["IMAGE_EXTENSIONS", "check_image", "convert_image", "default_max_pixels", "is_image_file",
           "load_image", "scan_images"]

"""The one `dataset.on_bad_images` policy of the image-folder builders: fail (default) or skip.

Every file is fully decoded once at build time (`scan_images`). With `fail`, a folder holding a bad
file is refused with one line naming the first one and the fix; with `skip`, the bad files are dropped
with one warning. A folder whose files are all bad is refused either way.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from ganzoo.data.base import DataError
from ganzoo.data.files.imagecheck import scan_images

BAD_IMAGE_POLICIES = ("fail", "skip")

P = TypeVar("P", str, Path)


def check_policy(on_bad_images: str) -> None:
    """DataError unless `on_bad_images` is one of BAD_IMAGE_POLICIES (builders call it before any I/O)."""
    if on_bad_images not in BAD_IMAGE_POLICIES:
        raise DataError(f"dataset.on_bad_images={on_bad_images!r} is not one of {', '.join(BAD_IMAGE_POLICIES)}")


def keep_good_images(files: Sequence[P], folder: str | os.PathLike, on_bad_images: str, *,
                     stacklevel: int = 2) -> list[P]:
    """`files` (all under `folder`) without the bad ones, in order; see the module doc.
    `stacklevel`: as warnings.warn's, counted from the caller (2: the warning names the caller's caller)."""
    check_policy(on_bad_images)
    bad = scan_images(files)
    if not bad:
        return list(files)
    first, reason = bad[0]
    rel = Path(first).relative_to(folder).as_posix()
    msg = f"{len(bad)} bad image file(s) of {len(files)} in {folder}, first {rel}: {reason}"
    if on_bad_images == "fail":
        raise DataError(f"{msg}; set dataset.on_bad_images=skip to skip them")
    drop = {str(p) for p, _ in bad}
    good = [p for p in files if str(p) not in drop]
    if not good:
        raise DataError(f"all {len(bad)} image files in {folder} are bad (first {rel}: {reason})")
    warnings.warn(f"skipping {msg}", stacklevel=stacklevel + 1)
    return good

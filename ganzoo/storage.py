"""Where files live and how they are written: the data home and the one atomic write.

`data_home(root)` is the folder for datasets, caches and downloaded weights. `atomic_write(path, data)`
is the only way ganzoo replaces a file whose loss or truncation would hurt (checkpoints, metrics.json,
caches, PNGs): it writes a temp file `.<name>.<pid>.tmp` in the same folder, flushes and fsyncs it,
then `os.replace`s it into place, so a reader sees the old file or the new one, never half of one.
On any failure the temp file is removed and the old file is untouched.

`FolderLock(folder)` makes one process the only writer of a folder (a run folder): an flock'ed file
that names its holder (pid, host); the kernel drops the flock when the holder dies, so a lock left by
a killed process is taken over, never waited on.

On any failure the temp file is removed and the old file is untouched, and the OSError names `path`.

`output_error(e)`: an OSError of a failed write (read-only folder, disk full, a path under a file) as
the one-line `OutputError` (exit 2) naming the path and the OS error; None for other OSErrors.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import UserError

# what a full disk, a read-only folder or a path under a file gives; not a missing input (ENOENT)
WRITE_ERRNOS = frozenset(getattr(errno, n) for n in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR",
                                                     "EISDIR", "EFBIG") if hasattr(errno, n))


class OutputError(UserError):
    """A file could not be written: one line naming the path and the OS error (exit 2)."""


def output_error(e: BaseException, action: str = "cannot write") -> OutputError | None:
    """`e` as one line naming the path and the OS error, if it is a failed write; else None."""
    if not isinstance(e, OSError) or isinstance(e, UserError) or e.errno not in WRITE_ERRNOS:
        return None
    where = f" {e.filename}" if e.filename else ""
    return OutputError(f"{action}{where}: {e.strerror or e} (make the folder writable, free some space or "
                       f"choose another output)")


def data_home(root: str | os.PathLike | None = None) -> Path:
    """Where datasets and caches live: `root`, else $GANZOO_DATA, else ~/.cache/ganzoo/data."""
    if root:
        return Path(os.path.expanduser(str(root)))
    return Path(os.environ.get("GANZOO_DATA") or "~/.cache/ganzoo/data").expanduser()  # empty = unset


def resolve_data_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """An absolute path as is; a relative one against the working directory if it exists there,
    else against the data home (`root`, $GANZOO_DATA, ~/.cache/ganzoo/data)."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_absolute() or p.exists():
        return p
    alt = data_home(root) / p
    return alt if alt.exists() else p


def temp_path(path: Path) -> Path:
    """The temp file `atomic_write` uses for `path` (hidden, same folder, ends in .tmp)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in `folder` durable; silently skipped where a folder cannot be opened or synced."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object], *,
                 before_replace: Callable[[], object] | None = None, sync_dir: bool = False) -> Path:
    """Write `path` atomically and durably; returns it as a Path.

    `data`: bytes, str (UTF-8), or a callable that writes into the binary file object it is given
    (`lambda f: torch.save(obj, f)`, `lambda f: img.save(f, format="PNG")`). The parent folder is
    created. `before_replace` runs after the temp file is complete and fsynced, before the rename
    (checkpoint.py writes the hash sidecar there). `sync_dir`: also fsync the folder after the
    rename, so that the new name survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        if sync_dir:
            fsync_dir(path.parent)
    except OSError as e:
        if e.filename is None or str(e.filename) == str(tmp):  # name the file the caller asked for, not the temp file
            e.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


class FolderBusy(Exception):
    """The folder is locked by a live process; str() names the holder ("pid 12 on host h since ...")."""


class FolderLock:
    """One writer per folder: `<folder>/run.lock`, flock'ed while held and naming its holder.

    `acquire()` returns None, or the line of a previous holder that is gone (its process died
    without releasing: the file is there, its flock is not), or raises FolderBusy naming the live
    holder. `release()` deletes the file, then drops the flock; process exit drops it too."""

    NAME = "run.lock"

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / self.NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> str | None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_fd(fd)
                os.close(fd)
                raise FolderBusy(holder or "another process") from None
            try:  # a releasing holder may have deleted the file between our open and flock: retry
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_fd(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self._fd = fd
        return previous or None

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _read_fd(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 512, 0).decode(errors="replace").strip()
    return ""


__all__ = ["WRITE_ERRNOS", "FolderBusy", "FolderLock", "OutputError", "atomic_write", "data_home", "fsync_dir",
           "output_error", "temp_path"]


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks (checkpoints, downloads, weights files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

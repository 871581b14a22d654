"""Safe extraction of .zip, .tar and .tar.gz archives into a new folder.

Why not `extractall`: torchvision's `_extract_tar` calls `tar.extractall` with no filter
(pytorch/vision#9517), PEP 706's `data` filter had bypasses until mid-2025 (CVE-2025-4517 and
friends), and neither zipfile nor tarfile bounds the output size (zip bombs). So the whole archive
is refused, with nothing written, when any member is unsafe:

- an absolute path (`/x`, `C:x`), a `..` component, an empty name or a NUL byte;
- a symbolic or hard link, a device, a FIFO, a sparse or any other non-regular, non-folder member;
- a name used twice, or a member inside a member that is a file;
- more than `Limits.max_members` members, or more than `Limits.max_bytes` unpacked in total;
- a compression ratio above `Limits.max_ratio` (a zip member, or the whole archive), and zip
  members whose compressed data overlap (the "non-recursive" zip bomb).

These checks read only the headers and run before anything is written. Headers can lie, so the
copy enforces them again while streaming: a member that unpacks to more (or fewer) bytes than its
header says, or a running total above the limit, aborts the extraction. Any failure removes the
destination folder (which must not exist beforehand), so there is never partial output. Files are
created with O_EXCL | O_NOFOLLOW and plain modes (0644, folders 0755); archive permissions, owners
and times are ignored.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..base import DataError

_CHUNK = 1 << 20
_ZIP_LOCAL_HEADER = 30  # fixed part of a zip local file header, in bytes
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Limits:
    max_members: int = 1_000_000
    max_bytes: int = 64 << 30  # unpacked total (the largest standard set, edges2handbags, is ~9 GB)
    max_ratio: float = 100.0  # unpacked / packed; photos and PNGs barely compress (~1:1)
    ratio_min_bytes: int = 1 << 20  # smaller members (or archives) are not ratio-checked: text compresses well


@dataclass(frozen=True)
class _Member:
    name: str  # safe relative POSIX path
    is_dir: bool
    size: int  # bytes the header promises
    ref: zipfile.ZipInfo | tarfile.TarInfo


def archive_format(path: Path) -> str:
    """'zip', 'tar.gz' or 'tar', from the file's first bytes (never from its name)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if tarfile.is_tarfile(path):
        return "tar"
    raise DataError(f"{path} is not a .zip, .tar or .tar.gz archive")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, limits: Limits = Limits()) -> int:
    """Extract `archive` into the new folder `dest` (its parent must exist); returns the number of
    files written. Raises DataError (one line naming the offending member) and leaves no `dest`
    when the archive is unsafe, too large or corrupt."""
    archive, dest = Path(archive), Path(dest)
    if os.path.lexists(dest):
        raise DataError(f"cannot extract {archive.name} into {dest}: it already exists (extraction needs a new folder)")
    fmt = archive_format(archive)
    created = False
    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zf:
                members = _scan_zip(zf, archive, limits)
                dest.mkdir()
                created = True
                return _write(dest, archive, limits, ((m, lambda m=m: zf.open(m.ref)) for m in members))
        mode = "r:gz" if fmt == "tar.gz" else "r:"
        with tarfile.open(archive, mode) as tf:
            _scan_tar(tf, archive, limits, compressed=fmt == "tar.gz")
        with tarfile.open(archive, mode) as tf:  # a second pass: tarfile can only stream forward
            dest.mkdir()
            created = True
            return _write(dest, archive, limits, _tar_stream(tf, archive, limits))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise DataError(f"cannot extract {archive.name}: corrupt or truncated archive ({_one_line(e)}); "
                        f"delete it and download it again") from None
    except OSError as e:  # disk full, permissions, ...
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise DataError(f"cannot extract {archive.name} into {dest}: {_one_line(e)}") from None
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _refuse(archive: Path, member: str, why: str) -> DataError:
    return DataError(f"refusing to extract {archive.name}: member {member!r} {why}; nothing was extracted")


def _safe_name(raw: str, archive: Path) -> str | None:
    """The member's path as a safe relative POSIX path; None for the archive's root folder."""
    if not raw or "\x00" in raw:
        raise _refuse(archive, raw, "has an empty name or a NUL byte")
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise _refuse(archive, raw, "has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, raw, "has a '..' path component")
    return "/".join(parts) or None


class _Tally:
    """Header checks shared by zip and tar: member count, total size, duplicates, file/folder clashes."""

    def __init__(self, archive: Path, limits: Limits):
        self.archive, self.limits = archive, limits
        self.count = self.total = 0
        self.kinds: dict[str, bool] = {}  # name -> is_dir
        self.largest = ("", 0)

    def add(self, raw: str, name: str, is_dir: bool, size: int) -> None:
        lim = self.limits
        self.count += 1
        if self.count > lim.max_members:
            raise _refuse(self.archive, raw, f"is one of more than {lim.max_members} members (the limit)")
        if size < 0:
            raise _refuse(self.archive, raw, f"has a negative size ({size})")
        self.total += size
        if self.total > lim.max_bytes:
            raise _refuse(self.archive, raw, f"takes the unpacked size past the limit of {lim.max_bytes} bytes")
        if size > self.largest[1]:
            self.largest = (raw, size)
        if name in self.kinds:
            if is_dir and self.kinds[name]:
                return  # a folder listed twice is harmless
            raise _refuse(self.archive, raw, "appears twice")
        self.kinds[name] = is_dir

    def finish(self, packed: int | None) -> None:
        """Whole-archive checks: a file used as a folder, and the overall compression ratio."""
        for name in self.kinds:
            parent = name.rpartition("/")[0]
            while parent:
                if self.kinds.get(parent) is False:
                    raise _refuse(self.archive, name, f"lies inside {parent!r}, which is a file")
                parent = parent.rpartition("/")[0]
        lim = self.limits
        if packed is not None and self.total >= lim.ratio_min_bytes and self.total > lim.max_ratio * max(packed, 1):
            raise _refuse(self.archive, self.largest[0],
                          f"is the largest of {self.total} unpacked bytes from {packed} packed "
                          f"(ratio {self.total / max(packed, 1):.0f}:1, limit {lim.max_ratio:.0f}:1: a bomb)")


def _scan_zip(zf: zipfile.ZipFile, archive: Path, limits: Limits) -> list[_Member]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise _refuse(archive, infos[limits.max_members].filename,
                      f"is one of {len(infos)} members (limit {limits.max_members})")
    tally, members = _Tally(archive, limits), []
    for info in infos:
        raw = info.filename
        name = _safe_name(raw, archive)
        ftype = stat.S_IFMT(info.external_attr >> 16)  # Unix mode, when the zip was made on Unix
        if ftype == stat.S_IFLNK:
            raise _refuse(archive, raw, "is a symbolic link")
        if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse(archive, raw, "is not a regular file or folder (device, FIFO or socket)")
        if info.flag_bits & 0x1:
            raise _refuse(archive, raw, "is encrypted")
        is_dir = info.is_dir() or ftype == stat.S_IFDIR
        size = 0 if is_dir else info.file_size
        if size >= limits.ratio_min_bytes and size > limits.max_ratio * max(info.compress_size, 1):
            raise _refuse(archive, raw, f"unpacks {info.compress_size} bytes to {size} "
                          f"(ratio {size / max(info.compress_size, 1):.0f}:1, limit {limits.max_ratio:.0f}:1: a zip bomb)")
        if name is None:
            continue
        tally.add(raw, name, is_dir, size)
        members.append(_Member(name, is_dir, size, info))
    # members whose compressed data overlap: one stream counted many times (a non-recursive zip bomb)
    spans = sorted(infos, key=lambda i: i.header_offset)
    for a, b in zip(spans, spans[1:]):
        if b.header_offset < a.header_offset + _ZIP_LOCAL_HEADER + a.compress_size:
            raise _refuse(archive, b.filename, f"overlaps the data of {a.filename!r} (a zip bomb)")
    tally.finish(packed=os.path.getsize(archive))
    return members


def _tar_member(m: tarfile.TarInfo, archive: Path) -> tuple[str | None, bool]:
    name = _safe_name(m.name, archive)
    if m.issym():
        raise _refuse(archive, m.name, f"is a symbolic link (to {m.linkname!r})")
    if m.islnk():
        raise _refuse(archive, m.name, f"is a hard link (to {m.linkname!r})")
    if m.ischr() or m.isblk():
        raise _refuse(archive, m.name, "is a device file")
    if m.isfifo():
        raise _refuse(archive, m.name, "is a FIFO")
    if m.issparse():
        raise _refuse(archive, m.name, "is a sparse file")
    if not (m.isreg() or m.isdir()):
        raise _refuse(archive, m.name, f"has an unsupported type ({m.type!r})")
    return name, m.isdir()


def _scan_tar(tf: tarfile.TarFile, archive: Path, limits: Limits, *, compressed: bool) -> None:
    tally = _Tally(archive, limits)
    while (m := tf.next()) is not None:  # one header at a time: a huge member list stops at the limit
        name, is_dir = _tar_member(m, archive)
        if name is not None:
            tally.add(m.name, name, is_dir, 0 if is_dir else m.size)
    tally.finish(packed=os.path.getsize(archive) if compressed else None)


def _tar_stream(tf: tarfile.TarFile, archive: Path, limits: Limits) -> Iterator[tuple[_Member, object]]:
    """The members again, re-checked (the second pass reads the same bytes, but trusts nothing)."""
    while (m := tf.next()) is not None:
        name, is_dir = _tar_member(m, archive)
        if name is None:
            continue
        yield _Member(name, is_dir, 0 if is_dir else m.size, m), (lambda m=m: tf.extractfile(m))


def _write(dest: Path, archive: Path, limits: Limits, members) -> int:
    root = os.path.realpath(dest)
    budget, files = limits.max_bytes, 0
    for m, opener in members:
        path = dest / m.name
        if m.is_dir:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            continue
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if os.path.commonpath([root, os.path.realpath(path.parent)]) != root:  # belt and braces
            raise _refuse(archive, m.name, "resolves outside the destination")
        with opener() as src:
            budget -= copy_limited(src, path, declared=m.size, budget=budget, archive=archive, member=m.name)
        files += 1
    return files


def copy_limited(src: BinaryIO, path: Path, *, declared: int, budget: int, archive: Path, member: str) -> int:
    """Copy `src` into the new file `path`, refusing more bytes than the header `declared` or than
    the remaining `budget`, and fewer than declared. Returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > declared:
                raise _refuse(archive, member, f"unpacks to more than the {declared} bytes its header declares")
            if written > budget:
                raise _refuse(archive, member, "takes the unpacked size past the limit while extracting")
            out.write(chunk)
    if written != declared:
        raise _refuse(archive, member, f"unpacks to {written} bytes, not the {declared} its header declares")
    return written

"""Verified, resumable downloads and the ready-to-use datasets and weights of the manifest.

`fetch(url, dest, sha256)` downloads one file: it streams into `<dest>.part`, resumes an
interrupted `.part` with an HTTP Range request (and starts over when the server ignores Range),
retries transient failures (timeouts, resets, 5xx) with backoff, checks the SHA-256 BEFORE the
file takes its name, and renames it into place atomically. A mismatch deletes the part file and
raises DataError naming the expected and the actual digest; an earlier good `dest` is untouched.

`ensure(name, root)` returns the ready folder (datasets) or file (weights, data files) of manifest entry
`name` under the data home (`data_home(root)`: root, else $GANZOO_DATA, else ~/.cache/ganzoo/data),
downloading, verifying and safely extracting it (`archive.safe_extract`) on first use. The archive
is extracted into a hidden temporary folder next to the target and renamed into place only when
complete, so a failed, tampered or interrupted download never leaves a half-extracted set, and
never deletes an earlier good copy. An archive placed by hand in the data home is verified and
used instead of downloading (offline machines); a weights or data file already in place is verified on
every call (a dataset folder already in place is used as is). Without a published hash the first download
records its digest in `<data home>/manifest.lock.json`, and later downloads are checked against it.

Concurrent calls for the same name wait for each other (an advisory lock file per name).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from ... import __version__
from ...storage import atomic_write, data_home, fsync_dir, sha256_file
from ..base import DataError
from . import manifest
from .archive import safe_extract

TIMEOUT = 30.0  # seconds a connect or a read may stall before the attempt counts as failed
RETRY_DELAYS = (1.0, 4.0, 15.0)  # seconds before each retry of a transient failure (resumes the part)
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
LOCK_FILE = "manifest.lock.json"
_CHUNK = 1 << 20
_USER_AGENT = f"ganzoo/{__version__} (python-urllib)"


class DownloadError(DataError):
    """The file could not be fetched (offline, refused, HTTP error, retries exhausted)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"cannot download {url} ({reason})")
        self.url, self.reason = url, reason


class HashMismatch(DataError):
    def __init__(self, what: str, url: str, expected: str, actual: str):
        super().__init__(f"sha256 mismatch for {what} from {url}: expected {expected}, got {actual}; "
                         f"the file was deleted (corrupted or tampered in transit: download it again, "
                         f"and report it if the mismatch persists)")
        self.what, self.url, self.expected, self.actual = what, url, expected, actual


class _Transient(Exception):
    """A failure worth retrying (the part file is kept and resumed)."""


# ---------------------------------------------------------------------------------------- fetch


def fetch(url: str, dest: str | os.PathLike, sha256: str | None, *, progress: bool = True) -> Path:
    """Download `url` to `dest` (resumable, verified against `sha256` when given, atomic)."""
    dest = Path(dest)
    _download(url, dest, sha256, progress=progress)
    return dest


def _download(url: str, dest: Path, expected: str | None, *, progress: bool) -> str:
    """`fetch`, returning the SHA-256 of what was written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    expected = expected.lower() if expected else None
    bar = _Bar(dest.name, url, progress)
    retries, fresh_start = 0, False
    try:
        while True:
            try:
                digest, resumed = _transfer(url, part, bar)
            except _Transient as e:
                if retries >= len(RETRY_DELAYS):
                    raise DownloadError(url, f"{e}; gave up after {retries + 1} attempts") from None
                bar.note(f"{e}; retrying in {RETRY_DELAYS[retries]:g} s")
                time.sleep(RETRY_DELAYS[retries])
                retries += 1
                continue
            if expected and digest != expected:
                part.unlink(missing_ok=True)
                if resumed and not fresh_start:  # the old part may be the bad half: once more, from zero
                    fresh_start = True
                    bar.note("sha256 mismatch after resuming; downloading again from the start")
                    continue
                raise HashMismatch(dest.name, url, expected, digest)
            os.replace(part, dest)
            fsync_dir(dest.parent)
            bar.done(digest, verified=bool(expected))
            return digest
    finally:
        bar.close()


def _transfer(url: str, part: Path, bar: _Bar) -> tuple[str, bool]:
    """One attempt: continue (or start) `part`; returns (sha256 of the whole part, resumed?)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=TIMEOUT)
    except HTTPError as e:
        if e.code == 416 and have:  # the range starts at or past the end: complete, or a stale part
            m = re.search(r"/(\d+)\s*$", e.headers.get("Content-Range") or "")  # "bytes */<size>"
            if m and int(m.group(1)) == have:
                return sha256_file(part), True
            part.unlink(missing_ok=True)
            raise _Transient("server refused the resume range; starting over") from None
        if e.code in RETRY_STATUS:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(url, f"HTTP {e.code} {e.reason}") from None
    except URLError as e:
        if isinstance(e.reason, socket.gaierror):  # no name resolution: offline, retrying will not help
            raise DownloadError(url, f"cannot resolve {_host(url)}: {e.reason.strerror or e.reason}") from None
        raise _Transient(_reason(e.reason)) from None
    except (OSError, http.client.HTTPException) as e:  # timeouts, resets, bad status lines
        raise _Transient(_reason(e)) from None
    with resp:
        resumed = False
        if have and resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:  # not the bytes we asked for: start over
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start}, not {have}")
            hasher, mode, resumed = _hasher_of(part), "ab", True
            if total is None:
                total = _int(resp.headers.get("Content-Length"), have)
        elif resp.status == 206:
            part.unlink(missing_ok=True)
            raise _Transient("server sent a partial response to a full request")
        else:  # 200: a fresh start, or a server that ignores Range
            if have:
                bar.note("server ignored the resume request; downloading from the start")
            have, hasher, mode = 0, hashlib.sha256(), "wb"
            total = _int(resp.headers.get("Content-Length"), 0)
        bar.start(total, have)
        with open(part, mode) as f:
            while True:
                try:
                    chunk = resp.read(_CHUNK)
                except (OSError, http.client.HTTPException) as e:  # IncompleteRead, timeout, reset
                    f.flush()
                    raise _Transient(_reason(e)) from None
                if not chunk:
                    break
                try:
                    f.write(chunk)
                except OSError as e:  # disk full, ...: not worth retrying; the part is kept for a resume
                    raise DataError(f"cannot write {part}: {_reason(e)} (the partial download is kept: "
                                    f"free space and run again to resume)") from None
                hasher.update(chunk)
                have += len(chunk)
                bar.update(have)
            f.flush()
            os.fsync(f.fileno())
    if total is not None and have < total:
        raise _Transient(f"connection closed after {have} of {total} bytes")
    return hasher.hexdigest(), resumed


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """'bytes 100-199/1000' -> (100, 1000); the total is None when the server writes '*'."""
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) != "*" else None)


def _int(value: str | None, offset: int) -> int | None:
    return offset + int(value) if value and value.isdigit() else None


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


def _reason(e: object) -> str:
    if isinstance(e, http.client.IncompleteRead):
        return f"connection closed early ({len(e.partial)} bytes of the last read)"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"timed out after {TIMEOUT:g} s"
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())


def _hasher_of(path: Path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h


class _Bar:
    """A rich progress bar on a terminal; a few plain lines on stderr otherwise (logs, CI)."""

    def __init__(self, label: str, url: str, enabled: bool):
        self.label, self.url, self.enabled = label, url, enabled
        self.rich = None
        self.total: int | None = None
        self.next_pct = 10
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich import progress as rp

            self.rich = rp.Progress(rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(),
                                    rp.TransferSpeedColumn(), rp.TimeRemainingColumn(), console=console)
            self.rich.start()
            self.task = self.rich.add_task(label, total=None)
        else:
            self._say(f"downloading {url}")

    def _say(self, line: str) -> None:
        if self.rich is not None:
            self.rich.console.print(line)
        elif self.enabled:
            print(line, file=sys.stderr, flush=True)

    def note(self, line: str) -> None:
        self._say(f"{self.label}: {line}")

    def start(self, total: int | None, done: int) -> None:
        self.total = total
        if self.rich is not None:
            self.rich.update(self.task, total=total, completed=done)
        elif self.enabled and done:
            self._say(f"{self.label}: resuming at {_mb(done)}")

    def update(self, done: int) -> None:
        if self.rich is not None:
            self.rich.update(self.task, completed=done)
        elif self.enabled and self.total:
            pct = 100 * done // self.total
            if pct >= self.next_pct:
                self._say(f"{self.label}: {pct}% of {_mb(self.total)}")
                self.next_pct = pct // 10 * 10 + 10

    def done(self, digest: str, verified: bool) -> None:
        self._say(f"{self.label}: sha256 {digest[:16]}… {'verified' if verified else '(not checked: no hash given)'}")

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()
            self.rich = None


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# ------------------------------------------------------------------------------ recorded hashes


def lock_path(home: Path) -> Path:
    return home / LOCK_FILE


def _read_lock(home: Path) -> dict:
    path = lock_path(home)
    if not path.exists():
        return {"version": 1, "entries": {}}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data.get("entries"), dict):
            raise ValueError("no 'entries' table")
        return data
    except (ValueError, AttributeError) as e:
        raise DataError(f"{path} is not a valid hash record ({e}): fix or delete it "
                        f"(hashes are then recorded again on the next download)") from None


def recorded_sha256(entry: manifest.Entry, home: Path) -> str | None:
    """The digest recorded by an earlier download of `entry` from the same URL, if any (http and https
    of one host and path are the same file: a hash recorded over http still holds after the switch)."""
    rec = _read_lock(home)["entries"].get(entry.name)
    same = isinstance(rec, dict) and _sans_scheme(str(rec.get("url"))) == _sans_scheme(entry.url)
    return rec["sha256"] if same else None


def _sans_scheme(url: str) -> str:
    return url.split("://", 1)[-1]


def _record(entry: manifest.Entry, home: Path, digest: str, size: int) -> None:
    with _flock(home / ".manifest.lock.json.lock"):
        data = _read_lock(home)
        data["entries"][entry.name] = {"url": entry.url, "sha256": digest, "size": size,
                                       "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write(lock_path(home), json.dumps(data, indent=1, sort_keys=True) + "\n", sync_dir=True)


def hash_policy(entry: manifest.Entry, home: Path) -> str:
    """'pinned' (published digest in the manifest), 'recorded' (first download's) or 'unknown'."""
    if entry.sha256:
        return "pinned"
    return "recorded" if recorded_sha256(entry, home) else "unknown"


# ------------------------------------------------------------------------------------- ensure


@dataclass(frozen=True)
class Outcome:
    path: Path  # the ready folder (datasets) or file (weights)
    action: str  # "present" | "downloaded" | "from archive" (an archive placed by hand)
    sha256: str | None  # digest of the file fetched or checked (None: a dataset folder already present)
    policy: str  # "pinned" | "recorded" (verified against the record) | "recorded now" (first download)


def target_of(entry: manifest.Entry, home: Path) -> Path:
    return home / entry.path


def is_present(entry: manifest.Entry, home: Path) -> bool:
    target = target_of(entry, home)
    return target.is_dir() if entry.kind == "dataset" else target.is_file()


def ensure(name: str, root: str | os.PathLike | None = None, *, force: bool = False,
           progress: bool = True) -> Path:
    """The ready folder (datasets) or file (weights) of manifest entry `name` under
    `data_home(root)`; downloads, verifies and extracts it when missing (or when `force`)."""
    return prepare(name, root, force=force, progress=progress).path


def prepare(name: str, root: str | os.PathLike | None = None, *, force: bool = False,
            progress: bool = True) -> Outcome:
    """`ensure`, also saying what was done (for `ganzoo data download`)."""
    entry = manifest.get(name)
    home = data_home(root)
    home.mkdir(parents=True, exist_ok=True)
    target = target_of(entry, home)
    flat = entry.name.replace("/", "_")
    with _flock(home / f".{flat}.lock", waiting=f"another ganzoo is fetching {name}; waiting"):
        if entry.kind == "dataset" and target.is_dir() and not force:  # a folder is not hashed again
            return Outcome(target, "present", None, hash_policy(entry, home))
        expected = entry.sha256 or recorded_sha256(entry, home)
        policy = "pinned" if entry.sha256 else "recorded" if expected else "recorded now"
        into = target if entry.kind != "dataset" else home / entry.filename
        placed = into.is_file() and not force  # a file in place, or an archive put there by hand: verify
        if placed:
            digest = sha256_file(into)
            if expected and digest != expected:
                raise DataError(f"{into} does not match the {policy} sha256 of {name}: expected {expected}, "
                                f"got {digest}; delete it (or replace it with the file from {entry.url})")
        else:
            try:
                digest = _download(entry.url, into, expected, progress=progress)
            except HashMismatch as e:
                raise DataError(f"sha256 mismatch for {name} ({entry.filename} from {entry.url}): expected "
                                f"{e.expected}, got {e.actual}; the download was deleted and nothing was changed "
                                f"(run `ganzoo data download {name}` to try again; report it if it persists)") from None
            except DownloadError as e:
                where = into.parent
                raise DataError(f"cannot download {name} from {entry.url} ({e.reason}): run `ganzoo data "
                                f"download {name}` on a machine with internet, or place {entry.filename} "
                                f"in {where}") from None
        size = into.stat().st_size
        if entry.kind == "dataset":
            try:
                _install(into, target, entry, home, flat, progress=progress)
            finally:
                if not placed:  # used (the folder is what is read) or refused: either way not kept
                    into.unlink(missing_ok=True)
        if not expected:  # only a download that fully worked is recorded
            _record(entry, home, digest, size)
            if progress:
                print(f"{name}: no published sha256; recorded {digest} in {lock_path(home)} "
                      f"(later downloads are verified against it)", file=sys.stderr, flush=True)
        action = "downloaded" if not placed else "present" if entry.kind != "dataset" else "from archive"
        return Outcome(target, action, digest, policy)


def _install(archive: Path, target: Path, entry: manifest.Entry, home: Path, flat: str, *,
             progress: bool) -> None:
    """Extract into a hidden temporary folder next to `target`; rename into place when complete
    (an existing `target` is swapped out only after the new copy is whole)."""
    for stale in home.glob(f".{flat}.extract-*"):  # left by a killed run; we hold the name's lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = home / f".{flat}.extract-{os.getpid()}"
    if progress:
        print(f"{entry.name}: extracting {archive.name}", file=sys.stderr, flush=True)
    try:
        safe_extract(archive, tmp)
        src = tmp / entry.layout if entry.layout else tmp
        if not src.is_dir():
            raise DataError(f"{archive.name} has no top folder {entry.layout!r} (found: "
                            f"{', '.join(sorted(p.name for p in tmp.iterdir())[:5]) or 'nothing'}); "
                            f"nothing was installed")
        if target.exists():  # force: swap, keeping the old copy until the new one is in place
            old = home / f".{flat}.old-{os.getpid()}"
            os.replace(target, old)
            try:
                os.replace(src, target)
            except BaseException:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(src, target)
        fsync_dir(home)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _flock(path: Path, waiting: str | None = None):
    """An advisory exclusive lock on `path` (POSIX); a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock
        yield
        return
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

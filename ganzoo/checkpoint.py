"""Checkpoints: one plain dict per file, written atomically, verified on load.

Layout of <run>/checkpoints/:
    step_00001000.pt          the checkpoint (torch.save of a plain dict; loads with weights_only=True)
    step_00001000.pt.sha256   its SHA-256 (written before the .pt appears)
    latest.json               {"file", "step", "sha256"}: the newest complete checkpoint (atomic replace)

A save writes a temp file in the same folder, fsyncs it, renames it into place, fsyncs the folder,
then moves `latest.json`, then prunes all but the newest `keep` (≥ 2). A crash at any point leaves the
previous checkpoint and a `latest.json` naming a complete file; stray temp files are removed by the
next save (and so are sidecars whose .pt is gone). Loading verifies the hash; a corrupt newest file
makes `find_latest` fall back to the previous good one with a warning. A .pt without a sidecar (copied
alone, written by other code) is used with a warning when it loads as a ganzoo checkpoint, and skipped
like a corrupt one when it does not. A write that fails (disk full)
raises `CheckpointWriteError`: one line with the path, the OS error and the free space; the temp file
is removed and the previous checkpoint is untouched.

Test hook (fault injection): if the environment variable GANZOO_FAULT is "<point>" or "<point>@<n>",
the process SIGKILLs itself at that point of its n-th save (1-based, default 1), to test that a crash
anywhere leaves a loadable run. Points, in order: tmp_partial (half the bytes in the temp file),
tmp_written (temp file complete and fsynced), sidecar_written (.sha256 written, before the rename),
renamed (the .pt in place, before latest.json), latest_written (before pruning), pruning (the first
old .pt deleted, not yet its sidecar). Unset, it costs one dict lookup per point.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import warnings
from pathlib import Path

import torch

from .errors import UserError
from .storage import atomic_write, sha256_file  # noqa: F401 - sha256_file: also imported from here

FORMAT_VERSION = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(UserError):
    """A missing or unusable checkpoint; str() is one line naming the fix."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (disk full, ...). Also an OSError, with the cause's errno."""

    def __str__(self) -> str:  # the one-line message, not OSError's "[Errno n] strerror"
        return str(self.args[0]) if self.args else ""


_saves = 0  # save_checkpoint calls in this process, for GANZOO_FAULT=<point>@<n>


def _fault_armed(point: str) -> bool:
    spec = os.environ.get("GANZOO_FAULT")
    if not spec:
        return False
    name, _, n = spec.partition("@")
    return name == point and _saves == (int(n) if n else 1)


def _fault(point: str) -> None:
    """Test hook: SIGKILL this process here if GANZOO_FAULT names this point (see the module docstring)."""
    if _fault_armed(point):
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def ckpt_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


class _HashingWriter:
    """File wrapper that hashes what passes through (so the bytes are read once). Remembers the
    OSError of a failed write: torch.save reports it as a RuntimeError of its own."""

    def __init__(self, f, fault_at: int | None = None):
        self.f, self.h, self.error = f, hashlib.sha256(), None
        self.n, self.fault_at = 0, fault_at

    def write(self, b) -> int:
        self.h.update(b)
        try:
            n = self.f.write(b)
        except OSError as e:
            self.error = e
            raise
        if self.fault_at is not None:
            self.n += n
            if self.n >= self.fault_at:
                self.f.flush()
                _fault("tmp_partial")
        return n

    def flush(self) -> None:
        self.f.flush()


class _CountingSink:
    """Counts the bytes torch.save writes (only to place the tmp_partial fault half-way)."""

    def __init__(self):
        self.n = 0

    def write(self, b) -> int:
        n = memoryview(b).nbytes
        self.n += n
        return n

    def flush(self) -> None:
        pass


def list_checkpoints(run_dir) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file, newest first."""
    d = ckpt_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1000
    return ""


def _write_error(d: Path, path: Path, e: OSError, run_dir) -> CheckpointWriteError:
    try:
        free = f"{_human(shutil.disk_usage(d).free)} free on that disk"
    except OSError:
        free = "free space unknown"
    try:
        prev = json.loads((d / "latest.json").read_text())["file"]
    except (OSError, ValueError, KeyError, TypeError):
        prev = None
    if prev and (d / prev).is_file() and (prev != path.name or verify(d / prev) is None):
        kept = f"the previous checkpoint {prev} is intact"
    elif prev:  # re-saving the same step, failed after its sidecar was replaced
        kept = f"the previous checkpoint {prev} may not verify (an older one will be used)"
    else:
        kept = "there is no earlier checkpoint"
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        kept += f"; free some space, then continue with resume={run_dir}"
    reason = f"[Errno {e.errno}] {e.strerror}" if e.errno is not None and e.strerror else str(e)
    err = CheckpointWriteError(f"could not write checkpoint {path}: {reason} ({free}); {kept}")
    err.errno, err.strerror = e.errno, e.strerror
    return err


def save_checkpoint(run_dir, step: int, payload: dict, keep: int = 3) -> Path:
    global _saves
    _saves += 1
    d = ckpt_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    for stray in d.glob(".*.tmp"):
        stray.unlink(missing_ok=True)
    for side in d.glob("step_*.pt.sha256"):  # left by a crash between deleting a .pt and its sidecar
        if not side.with_name(side.name[: -len(".sha256")]).exists():
            side.unlink(missing_ok=True)
    path = d / f"step_{step:08d}.pt"
    fault_at = None
    if _fault_armed("tmp_partial"):  # test hook only: size the payload to die half-way through it
        sink = _CountingSink()
        torch.save(payload, sink)
        fault_at = max(1, sink.n // 2)
    w = None

    def write(f) -> None:
        nonlocal w
        w = _HashingWriter(f, fault_at)
        torch.save(payload, w)

    def sidecar() -> None:  # the temp file is complete and fsynced; the .pt is not in place yet
        _fault("tmp_written")
        atomic_write(path.with_name(path.name + ".sha256"), w.h.hexdigest() + "\n")
        _fault("sidecar_written")

    try:
        atomic_write(path, write, before_replace=sidecar, sync_dir=True)
        _fault("renamed")
        latest = {"file": path.name, "step": step, "sha256": w.h.hexdigest()}
        atomic_write(d / "latest.json", json.dumps(latest) + "\n", sync_dir=True)
    except Exception as e:
        cause = e if isinstance(e, OSError) else (w.error if w is not None else None)
        if cause is None:
            raise
        raise _write_error(d, path, cause, run_dir) from cause
    _fault("latest_written")
    for _, old in list_checkpoints(run_dir)[max(2, keep):]:
        old.unlink(missing_ok=True)
        _fault("pruning")
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    return path


def _expected_hash(path: Path) -> str | None:
    side = path.with_name(path.name + ".sha256")
    try:
        return side.read_text().strip() or None
    except OSError:
        return None


NO_SIDECAR = "no .sha256 beside it"


def verify(path: Path) -> str | None:
    """None if the file matches its recorded SHA-256, else the reason."""
    want = _expected_hash(path)
    if want is None:
        return NO_SIDECAR
    try:
        got = sha256_file(path)
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return None if got == want else "SHA-256 mismatch (truncated or corrupted)"


def find_latest(run_dir) -> Path | None:
    """The newest checkpoint that verifies; warns about each newer one skipped as corrupt."""
    d = ckpt_dir(run_dir)
    candidates = [p for _, p in list_checkpoints(run_dir)]
    try:
        named = d / json.loads((d / "latest.json").read_text())["file"]
        if named in candidates:  # latest.json first; it can only lag behind a newer complete file
            candidates.remove(named)
            candidates.insert(0, named)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for p in candidates:
        reason = unusable(p)
        if reason is None:
            return p
        warnings.warn(f"skipping checkpoint {p}: {reason}", stacklevel=2)
    return None


def unusable(path: Path) -> str | None:
    """None if the checkpoint can be used (it verifies, or has no sidecar but loads: then with a warning),
    else the reason."""
    reason = verify(path)
    # a save writes the sidecar before the .pt appears and prunes the .pt first, so a .pt without one
    # was copied or written by hand: usable, unverified, when it loads (one extra load, this case only)
    if reason == NO_SIDECAR and _loads(path):
        warnings.warn(f"checkpoint {path} has no .sha256 beside it: used unverified (it loads as a ganzoo "
                      f"checkpoint); copy the sidecar along with a checkpoint to keep the check", stacklevel=3)
        return None
    return reason


def _loads(path: Path) -> bool:
    try:
        load_checkpoint(path)
    except CheckpointError:
        return False
    return True


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint dict without running any pickled code (weights_only=True)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        if "weights only load failed" in str(e).lower():  # torch's text goes on to advise weights_only=False
            raise CheckpointError(f"{path} was not loaded: it is not a ganzoo checkpoint and may be hostile (it "
                                  f"pickles objects that could run code); use a checkpoint written by ganzoo "
                                  f"train") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load checkpoint {path}: {first[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a ganzoo checkpoint of format {FORMAT_VERSION}")
    return ckpt


def find_step(run_dir, step: int) -> Path:
    """The run's checkpoint of `step`, verified, or a one-line CheckpointError naming the steps it has."""
    have = list_checkpoints(run_dir)
    path = dict(have).get(step)
    if path is None:
        steps = ", ".join(str(s) for s, _ in sorted(have)) or "none"
        raise CheckpointError(f"no checkpoint of step {step} in {ckpt_dir(run_dir)} (it keeps steps: {steps}): "
                              f"pass one of those, or drop step= for the newest")
    reason = unusable(path)
    if reason is not None:
        raise CheckpointError(f"checkpoint {path} is unusable: {reason}; pick another step= (or drop it)")
    return path


def load_run(run_dir, map_location="cpu", step: int | None = None) -> dict:
    """The newest good checkpoint of a run folder (or, with `step`, that step's), or a one-line
    CheckpointError."""
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"run folder {run} does not exist: pass run=<a folder made by ganzoo train>")
    if step is not None:
        return load_checkpoint(find_step(run, step), map_location)
    path = find_latest(run)
    if path is None:
        raise CheckpointError(f"no usable checkpoint in {ckpt_dir(run)}: train longer, or check the run folder")
    return load_checkpoint(path, map_location)

"""Checkpoints: one plain dict per file, written atomically, verified on load.

Layout of <run>/checkpoints/:
    step_00001000.pt          the checkpoint (torch.save of a plain dict; loads with weights_only=True)
    step_00001000.pt.sha256   its SHA-256 (written before the .pt appears)
    latest.json               {"file", "step", "sha256"}: the newest complete checkpoint (atomic replace)

A save writes a temp file in the same folder, fsyncs it, renames it into place, fsyncs the folder,
then moves `latest.json`, then prunes all but the newest `keep` (≥ 2). A crash at any point leaves the
previous checkpoint and a `latest.json` naming a complete file; stray temp files are removed by the
next save. Loading verifies the hash; a corrupt newest file makes `find_latest` fall back to the
previous good one with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import torch

from .errors import UserError

FORMAT_VERSION = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(UserError):
    """A missing or unusable checkpoint; str() is one line naming the fix."""


def ckpt_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


class _HashingWriter:
    """File wrapper that hashes what passes through (so the bytes are read once)."""

    def __init__(self, f):
        self.f, self.h = f, hashlib.sha256()

    def write(self, b) -> int:
        self.h.update(b)
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def list_checkpoints(run_dir) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file, newest first."""
    d = ckpt_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def save_checkpoint(run_dir, step: int, payload: dict, keep: int = 3) -> Path:
    d = ckpt_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    for stray in d.glob(".*.tmp"):
        stray.unlink(missing_ok=True)
    path = d / f"step_{step:08d}.pt"
    tmp = d / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            w = _HashingWriter(f)
            torch.save(payload, w)
            f.flush()
            os.fsync(f.fileno())
        digest = w.h.hexdigest()
        _write_text_atomic(path.with_name(path.name + ".sha256"), digest + "\n")
        os.replace(tmp, path)
        _fsync_dir(d)
    finally:
        tmp.unlink(missing_ok=True)
    _write_text_atomic(d / "latest.json", json.dumps({"file": path.name, "step": step, "sha256": digest}) + "\n")
    _fsync_dir(d)
    for _, old in list_checkpoints(run_dir)[max(2, keep):]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    return path


def _expected_hash(path: Path) -> str | None:
    side = path.with_name(path.name + ".sha256")
    try:
        return side.read_text().strip() or None
    except OSError:
        return None


def verify(path: Path) -> str | None:
    """None if the file matches its recorded SHA-256, else the reason."""
    want = _expected_hash(path)
    if want is None:
        return "no .sha256 beside it"
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
        reason = verify(p)
        if reason is None:
            return p
        warnings.warn(f"skipping checkpoint {p}: {reason}", stacklevel=2)
    return None


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint dict without running any pickled code (weights_only=True)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load checkpoint {path}: {first[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a ganzoo checkpoint of format {FORMAT_VERSION}")
    return ckpt


def load_run(run_dir, map_location="cpu") -> dict:
    """The newest good checkpoint of a run folder, or a one-line CheckpointError."""
    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"run folder {run} does not exist: pass run=<a folder made by ganzoo train>")
    path = find_latest(run)
    if path is None:
        raise CheckpointError(f"no usable checkpoint in {ckpt_dir(run)}: train longer, or check the run folder")
    return load_checkpoint(path, map_location)

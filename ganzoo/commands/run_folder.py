"""Who owns a run folder: one writer per folder, claimed before Hydra writes anything into it.

`ClaimRunFolder` is a Hydra callback (conf/train.yaml, `hydra.callbacks.run_folder`). Its
`on_run_start` runs after composition and before Hydra creates the output folder and writes
`.hydra/`, so a start it refuses leaves the disk as it was. It:

- checks `resume=`: a missing folder or a file is refused in one line (no folder is created);
  `resume=auto` continues the run in the job's own folder when it holds a checkpoint and starts it
  otherwise (a requeued cluster job picks up where it stopped; `resolve_auto`);
- takes `<run>/run.lock` (`storage.FolderLock`): a second writer is refused naming the holder; a
  lock whose process died is taken over with a notice;
- refuses a fresh run in a folder that already holds a run (`checkpoints/` or `stats.jsonl`) unless
  it resumes that run (`resume=<run>`) or is told `overwrite=true`;
- points Hydra's config files at `.hydra/pending/` when the folder already has a `.hydra/`, so that
  a refused resume cannot replace the run's own overrides (the next `resume=<run>` reads them).

The job then runs `run.train(..., on_start=claim.start)`: once everything is checked, `start()`
moves the pending config files into `.hydra/` and, with `overwrite=true`, deletes the old run's
checkpoints, samples and logs. `end()` (the job's `finally`, and at exit) releases the lock; a start
that never reached `start()` is undone: the folder it created is removed (an empty folder it was
given is emptied again; a folder that held something keeps it), and `.hydra/pending/` is dropped.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from ganzoo.errors import UserError
from ganzoo.overrides import AUTO, unquote
from ganzoo.storage import FolderBusy, FolderLock, atomic_write, output_error

PENDING = "pending"
RUN_OUTPUTS = ("checkpoints", "stats.jsonl", "samples", "tb")  # what overwrite=true deletes

_claims: dict[Path, RunFolderClaim] = {}  # the folders this process holds, by absolute path


def holds_run(folder: Path) -> bool:
    return (folder / "checkpoints").is_dir() or (folder / "stats.jsonl").exists()


def check_resume(resume: str) -> Path:
    """The run folder `resume=` names, or a one-line UserError."""
    path = Path(unquote(resume)).expanduser()
    if path.is_file():
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        raise UserError(f"resume={resume} is a file: give its run folder, resume={run}")
    if not path.is_dir():
        raise UserError(f"resume={resume}: no such run folder (give a folder made by ganzoo train)")
    return path


def resolve_auto(folder: Path, resume: str | None, overwrite: bool) -> tuple[Path | None, bool]:
    """(the run folder to resume or None, overwrite) for `resume=` given to a run in `folder`.
    `resume=auto`: the folder itself when it holds a checkpoint; else a fresh start there (what a
    run that died before its first checkpoint left behind is replaced: there is nothing to continue)."""
    if resume != AUTO:
        return (check_resume(resume) if resume else None), overwrite
    if overwrite:
        raise UserError("give resume=auto or overwrite=true, not both")
    if (folder / "checkpoints" / "latest.json").is_file():
        return folder, False
    return None, holds_run(folder)


@dataclass(frozen=True)
class FolderStart:
    """What starting a run does to its folder: move the new config files from `.hydra/pending/` into
    `.hydra/`, and with `clear` (overwrite=true, not a resume) delete the previous run's outputs."""

    folder: Path
    pending: Path | None
    hydra_subdir: str | None
    clear: bool

    def __call__(self) -> None:
        if self.pending is not None:
            pending = self.folder / self.pending
            for f in sorted(pending.glob("*.yaml")):
                atomic_write(self.folder / self.hydra_subdir / f.name, f.read_bytes())
            shutil.rmtree(pending, ignore_errors=True)
        if self.clear:
            for name in RUN_OUTPUTS:
                p = self.folder / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()


class RunFolderClaim:
    """This process's hold on one run folder (see the module docstring)."""

    def __init__(self, folder: Path, *, resume: Path | None, overwrite: bool, hydra_subdir: str | None):
        self.folder, self.resume, self.overwrite = folder, resume, overwrite
        self.lock = FolderLock(folder)
        self.created: Path | None = None  # the topmost folder this claim created
        self.was_empty = False
        self.hydra_subdir = hydra_subdir  # where the run's config files live (".hydra")
        self.pending: Path | None = None  # where Hydra writes them until start()
        self.started = self.ended = False

    def claim(self) -> None:
        """Take the folder or raise UserError (leaving the disk as it was)."""
        if self.resume is not None and self.overwrite:
            raise UserError("give resume=<run> or overwrite=true, not both")
        top = self.folder
        while not top.parent.exists() and top.parent != top:
            top = top.parent
        self.created = None if self.folder.exists() else top
        if self.created is None and not self.folder.is_dir():
            raise UserError(f"hydra.run.dir={self.folder} is a file: give a folder")
        self.was_empty = self.created is None and not any(self.folder.iterdir())
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            previous = self.lock.acquire()
        except FolderBusy as e:  # the holder made or took the folder: nothing of it is ours to undo
            raise UserError(f"{self.folder} is in use by {e} (its run.lock): wait for that run to end or "
                            f"stop it, or give another folder (hydra.run.dir=...)") from None
        if previous:
            print(f"note: {self.folder}/run.lock was left by {previous}, which is gone: taking it over",
                  file=sys.stderr, flush=True)
        resuming_here = self.resume is not None and self.resume.resolve() == self.folder.resolve()
        if holds_run(self.folder) and not resuming_here and not self.overwrite:
            self.end()
            raise UserError(f"{self.folder} already holds a run: continue it with resume={self.folder}, start over "
                            f"with overwrite=true (its checkpoints and logs are deleted), or give another folder")
        if self.hydra_subdir and (self.folder / self.hydra_subdir).exists():
            self.pending = Path(self.hydra_subdir) / PENDING
            shutil.rmtree(self.folder / self.pending, ignore_errors=True)  # left by a killed start
        _claims[self.folder.resolve()] = self

    def start(self) -> None:
        """The run is checked and about to write: its new config files replace the old ones, and
        overwrite=true deletes the previous run's outputs (`FolderStart`)."""
        if self.started:
            return
        self.started = True
        self.starter()()

    def starter(self) -> FolderStart:
        """`start`'s file work as a picklable callable, for a data-parallel run's rank 0 (another process)."""
        return FolderStart(self.folder, self.pending, self.hydra_subdir, self.overwrite and self.resume is None)

    def started_elsewhere(self) -> None:
        """After a data-parallel run: whether its rank 0 called the `starter` (so nothing is undone)."""
        if self.pending is not None:
            self.started = not (self.folder / self.pending).exists()
        else:
            self.started = holds_run(self.folder)

    def end(self) -> None:
        """Release the folder; a start that never began training is undone. Once: a later call (at
        exit) must not undo a folder that another run of this process has written since."""
        if self.ended:
            return
        self.ended = True
        atexit.unregister(self.end)
        if not self.started:
            self._undo()
        self.lock.release()
        _claims.pop(self.folder.resolve(), None)

    def _undo(self) -> None:
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        elif self.was_empty:  # everything in it was written by this start (the lock kept others out)
            for p in self.folder.iterdir():
                if p.name != FolderLock.NAME:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        elif self.pending is not None:
            shutil.rmtree(self.folder / self.pending, ignore_errors=True)


def claim(folder: str | Path, *, resume: str | None, overwrite: bool,
          hydra_subdir: str | None = ".hydra") -> RunFolderClaim:
    """This process's claim on `folder`: the one the callback took, or a new one (a multirun job,
    whose folder Hydra made before any callback could claim it)."""
    folder = Path(folder).absolute()
    held = _claims.get(folder.resolve())
    if held is not None:
        return held
    resume_dir, overwrite = resolve_auto(folder, resume, overwrite)
    c = RunFolderClaim(folder, resume=resume_dir, overwrite=overwrite, hydra_subdir=None)
    c.claim()
    atexit.register(c.end)
    return c


def launcher_world() -> int:
    """The processes an external launcher (torchrun, srun with its env) started, 1 when none did."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def launcher_rank() -> int:
    """This process's rank under an external launcher (0 when none started it)."""
    return int(os.environ.get("RANK", "0") or 0) if launcher_world() > 1 else 0


def _run_dir_given() -> bool:
    """Whether hydra.run.dir was given (else the folder is a fresh time-stamped one)."""
    return any(o.split("=", 1)[0].lstrip("+~") == "hydra.run.dir" for o in HydraConfig.get().overrides.hydra)


def _refuse(e: UserError) -> None:
    # callbacks' exceptions are turned into warnings by Hydra: exit here, as one_line_errors does in a job
    print(f"Error: {e}", file=sys.stderr, flush=True)
    raise SystemExit(e.exit_code) from None


class ClaimRunFolder(Callback):
    """Hydra callback (conf/train.yaml): claims the run folder before Hydra writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)  # so that ${hydra:...} in hydra.run.dir resolves
        folder = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
        resume, overwrite = config.get("resume"), bool(config.get("overwrite", False))
        subdir = OmegaConf.select(config, "hydra.output_subdir")
        if launcher_world() > 1 and not _run_dir_given():  # every rank composes Hydra: ${now:} would differ
            _refuse(UserError(f"this process is one of {launcher_world()} started by a launcher (WORLD_SIZE): give "
                              f"the run's folder, hydra.run.dir=<folder>, so that every process uses the same one"))
        if launcher_rank():  # rank > 0: rank 0 owns the folder; this process writes nothing into it
            with read_write(config.hydra):
                config.hydra.output_subdir = None
                handlers = OmegaConf.select(config, "hydra.job_logging.root.handlers")
                if handlers is not None:
                    config.hydra.job_logging.root.handlers = [h for h in handlers if h != "file"]
            return
        try:
            if resume == AUTO and not _run_dir_given():
                raise UserError("resume=auto continues the run in its own folder: give that folder, "
                                "hydra.run.dir=<folder> (a -m sweep's job folders are fixed already)")
            resume_dir, overwrite = resolve_auto(folder, resume, overwrite)
            c = RunFolderClaim(folder, resume=resume_dir, overwrite=overwrite,
                               hydra_subdir=None if subdir is None else str(subdir))
            c.claim()
        except UserError as e:
            _refuse(e)
        except OSError as e:  # an unwritable output folder: one line here, not Hydra's callback warning
            err = output_error(e)
            if err is None:
                raise
            _refuse(err)
        atexit.register(c.end)
        if c.pending is not None:
            with read_write(config.hydra):
                config.hydra.output_subdir = str(c.pending)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
        held = _claims.get(folder.resolve())
        if held is not None:
            held.end()

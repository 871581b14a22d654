"""What a run reports: a rich progress bar, stats.jsonl and TensorBoard events.

Values arrive already synced (the trainer syncs once per `log_every` steps), so nothing here touches
the device. On resume, stats lines and TensorBoard events past the resumed step are dropped so the
logs read as one uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def _naming(path: Path):
    """An OSError without a file name (a write that failed, e.g. ENOSPC) gets `path`'s."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


_default_excepthook = threading.excepthook


def _quiet_tensorboard_thread(args) -> None:
    """TensorBoard writes in a thread of its own; a failed write there (disk full) is raised again by the
    next TensorBoard call in the main thread, which the trainer reports in one line: no thread traceback."""
    if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(args.exc_value, OSError):
        return
    _default_excepthook(args)


def stderr_console(**kwargs) -> Console:
    """A console for messages on stderr that never wraps them: off a terminal rich would wrap at 80
    columns and split paths and commands (`continue with: ganzoo train resume=<run>`)."""
    return Console(stderr=True, soft_wrap=True, **kwargs)


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt(values: dict[str, float]) -> str:
    keys = [k for k in values if k.endswith("/loss")] or list(values)[:4]
    return "  ".join(f"{k} {values[k]:.3f}" for k in keys)


class RunLog:
    def __init__(self, run_dir: Path, *, total_steps: int, start_step: int = 0, tensorboard: bool = True,
                 progress: bool = True, console: Console | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.stats_path = self.run_dir / "stats.jsonl"
        self.console = console or stderr_console()
        self._truncate(start_step)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: ~1 s

            threading.excepthook = _quiet_tensorboard_thread
            with _naming(self.run_dir / "tb"):
                self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        self.progress = None
        if progress and self.console.is_terminal:
            self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[losses]}"), console=self.console, transient=False)
            self.task = self.progress.add_task("train", total=total_steps, completed=start_step, losses="")
            self.progress.start()
        self.total = total_steps
        self._t0 = time.time()
        self._start = start_step
        self._last = (self._t0, start_step)  # (time, step) of the last plain line: its steps/s
        self._losses = ""
        self._summary: str | None = None

    def _truncate(self, start_step: int) -> None:
        if not self.stats_path.exists():
            return
        keep = []
        for line in self.stats_path.read_text().splitlines():
            try:
                rec = json.loads(line)
                if rec.get("step", 0) <= start_step and not rec.get("partial"):
                    keep.append(line)
            except ValueError:
                continue  # a torn last line from a killed run
        self.stats_path.write_text("".join(k + "\n" for k in keep))

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        rec = {"step": step, "time": round(time.time() - self._t0, 3), **values}
        with _naming(self.stats_path), open(self.stats_path, "a") as f:
            f.write(json.dumps(rec, allow_nan=True) + "\n")
        if self.tb is not None:
            with _naming(self.run_dir / "tb"):
                for k, v in values.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                        self.tb.add_scalar(k, v, step)
        if any(k.endswith("/loss") for k in values):
            self._losses = _fmt(values)
        if self.progress is not None:
            self.progress.update(self.task, completed=step, losses=_fmt(values))
            return
        now, (then, step0) = time.time(), self._last
        rate = ""
        if step > step0:  # an evaluation line at the same step has no rate of its own
            per_s = (step - step0) / max(now - then, 1e-9)
            rate = f"  {per_s:.2f} steps/s  eta {_hms((self.total - step) / per_s)}"
            self._last = (now, step)
        print(f"step {step}/{self.total}{rate}  {_fmt(values)}", file=sys.stderr, flush=True)

    def image(self, step: int, tag: str, grid_uint8) -> None:
        if self.tb is not None:
            with _naming(self.run_dir / "tb"):
                self.tb.add_image(tag, grid_uint8, step)

    def message(self, text: str) -> None:
        self.console.print(text)

    def done(self, step: int, checkpoint: Path | None) -> None:
        """The run finished: `close` prints one summary line (steps, wall time, final losses, checkpoint)."""
        wall = time.time() - self._t0
        steps = step - self._start
        where = f"checkpoint {checkpoint}" if checkpoint is not None else "no checkpoint saved"
        self._summary = (f"done: {steps} steps (step {step}/{self.total}) in {_hms(wall)} "
                         f"({steps / max(wall, 1e-9):.2f} steps/s); {self._losses or 'no losses logged'}; {where}")

    def close(self, quiet: bool = False) -> None:
        """Stop the progress bar, print the summary of a finished run (`done`), flush and close TensorBoard
        (once). `quiet`: a failed flush is not raised (used after another error, which is the one to report)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        summary, self._summary = self._summary, None
        if summary is not None:
            self.console.print(summary, markup=False, highlight=False)
        tb, self.tb = self.tb, None
        if tb is not None:
            try:
                with _naming(self.run_dir / "tb"):
                    tb.close()
            except OSError:
                if not quiet:
                    raise

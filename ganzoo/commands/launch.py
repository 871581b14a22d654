"""`trainer.devices=N`: one Hydra job, N training processes, started by torch's elastic launcher.

The Hydra job stays one process with one run folder, one `.hydra/` and one `run.lock`; it starts N
workers on this node with `torch.distributed.launcher.elastic_launch` (what `torchrun --standalone`
runs: a c10d rendezvous on a free local port, no restarts) and waits. Each worker calls `run.train`
with its `World` (rank 0 writes; see `ganzoo.distributed`). Workers inherit the terminal, so rank 0's
progress bar and messages appear as in a one-process run.

Stop signals: the launcher forwards SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 to the workers, which
stop together at the next step with one checkpoint; the job then exits 128 + signal, as a one-process
run does. A worker's one-line error (a refused resume, bad data) is written by rank 0 to a small result
file and raised again here, so it is printed once and the exit status is the worker's.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
import uuid
from pathlib import Path

from ganzoo.errors import UserError
from ganzoo.storage import output_error

FORWARDED = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2"


def forwarded() -> str:
    """FORWARDED less the signals this process was started with ignored (`nohup`'s SIGHUP, a background job's
    SIGINT): those stay ignored here and, inherited, in the ranks (runtime.StopRequest keeps them so)."""
    return ",".join(n for n in FORWARDED.split(",")
                    if hasattr(signal, n) and signal.getsignal(getattr(signal, n)) is not signal.SIG_IGN)


class WorkerFailed(UserError):
    """A worker stopped with a one-line error (printed by the command layer) and its exit status."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def spawn(devices: int, payload: dict, on_start) -> None:
    """Run `run.train(**payload)` in `devices` processes; `on_start` (picklable) is called by rank 0."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from ganzoo.runtime import Interrupted

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its own reports: ours are below
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=devices, run_id=f"ganzoo-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.2,
                          start_method="spawn", signals_to_handle=forwarded())
    before = {int(getattr(signal, n)): signal.getsignal(getattr(signal, n)) for n in FORWARDED.split(",")
              if hasattr(signal, n)}  # a cluster launcher's handlers (submitit's), handed the signal after the save
    with tempfile.TemporaryDirectory(prefix="ganzoo-launch-") as results:
        failed_code = None
        try:
            elastic_launch(config, worker)(payload, on_start, results)
        except SignalException as e:
            failed_code = 128 + int(e.sigval)
        except ChildFailedError as e:
            codes = {rank: f.exitcode for rank, f in e.failures.items()}
            failed_code = codes.get(0, next(iter(codes.values())))
        if failed_code is None:
            return
        # rank 0's account first; a rank stopped by the launcher while it was exiting may have written none
        found = [_read(Path(results) / f"rank{r}.json") for r in range(devices)]
        result = next((x for x in found if x), {})
    signum = int(result.get("signum") or 0)
    if not signum and not result.get("message") and (failed_code >= 128 or failed_code < 0):
        signum = failed_code - 128 if failed_code >= 128 else -failed_code  # 128 + signal, or killed by it
    if signum:
        previous = before.get(signum)
        raise Interrupted(signum, then=previous if callable(previous) else None)
    if result.get("message"):
        raise WorkerFailed(result["message"], int(result.get("exit_code", failed_code)))
    raise RuntimeError(f"a training process failed with exit status {failed_code} (its traceback is above)")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def worker(payload: dict, on_start, results: str) -> None:
    """One training process (the launcher's entry point; importable, so that `spawn` can start it)."""
    from ganzoo import distributed, run
    from ganzoo.runtime import Interrupted

    world = distributed.from_env()
    if world.main:  # the job's log set-up (Hydra's console format, the run's train.log) in this new process
        fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
        handlers = [logging.StreamHandler(), logging.FileHandler(Path(payload["run_dir"]) / "train.log")]
        for h in handlers:
            h.setFormatter(fmt)
        logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    else:
        logging.getLogger("ganzoo").setLevel(logging.ERROR)  # rank 0 reports for the run
    out = Path(results) / f"rank{world.rank}.json"
    try:
        run.train(**payload, world=world, on_start=on_start if world.main else None)
    except UserError as e:
        out.write_text(json.dumps({"message": str(e), "exit_code": getattr(e, "exit_code", 2)}))
        sys.exit(getattr(e, "exit_code", 2))
    except Interrupted as e:
        out.write_text(json.dumps({"signum": e.signum}))
        sys.exit(128 + e.signum)
    except OSError as e:  # an unwritable output: one line, as in a one-process run
        err = output_error(e)
        if err is None:
            raise
        out.write_text(json.dumps({"message": str(err), "exit_code": err.exit_code}))
        sys.exit(err.exit_code)
    finally:
        distributed.shutdown()

"""One Hydra entry point per Hydra-driven command (train, sample, ...). Only this package, cli.py and
config.py import hydra or omegaconf."""

from __future__ import annotations

import functools
import sys
import traceback


def one_line_errors(fn):
    """Inside a Hydra job: a UserError becomes 'Error: <one line>' on stderr and exit code 2 (3 for
    divergence), and so does a failed write (an OSError such as EACCES, ENOSPC, ENOTDIR: the path and
    the OS error); a signal-stopped run (checkpoint saved) exits 128 + signum.

    SystemExit passes through Hydra's job runner untouched (it catches Exception), so the user sees
    the message alone rather than Hydra's 'Error executing job' preamble and a traceback.

    In a recorded sweep (`commands/sweep.py`) a job's failure — a UserError or a bug — is printed,
    recorded in the job's folder and the sweep goes on; a signal or Ctrl-C stops the whole sweep."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ganzoo.commands import sweep
        from ganzoo.errors import UserError
        from ganzoo.storage import output_error
        from ganzoo.trainer import Interrupted

        def call():
            try:
                return fn(*args, **kwargs)
            except OSError as e:  # a read-only folder, a full disk: one line, not a traceback
                err = output_error(e)
                if err is None:
                    raise
                raise err from None

        in_sweep = sweep.recorded_job()
        try:
            result = call()
        except UserError as e:
            print(f"Error: {e}", file=sys.stderr, flush=True)
            code = getattr(e, "exit_code", 2)
            if in_sweep:
                sweep.record("failed", code, str(e))
                return None
            raise SystemExit(code) from None
        except Interrupted as e:  # a checkpoint was saved; 128 + signum, as a shell reports a signal
            if in_sweep:
                sweep.record("interrupted", 128 + e.signum, f"{e} (checkpoint saved)")
            e.hand_on()  # a cluster launcher's own handler (submitit: requeue, then exit)
            raise SystemExit(128 + e.signum) from None
        except KeyboardInterrupt:
            if in_sweep:
                sweep.record("interrupted", 130, "Ctrl-C")
            raise
        except Exception as e:
            if not in_sweep:
                raise
            traceback.print_exc()
            first = (str(e).strip().splitlines() or [""])[0]
            sweep.record("failed", 1, f"{type(e).__name__}: {first}".rstrip(": "))
            return None
        if in_sweep:
            sweep.record("done", 0)
        return result

    return wrapper

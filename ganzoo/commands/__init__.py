"""One Hydra entry point per Hydra-driven command (train, sample, ...). Only this package, cli.py and
config.py import hydra or omegaconf."""

from __future__ import annotations

import functools
import sys


def one_line_errors(fn):
    """Inside a Hydra job: a UserError becomes 'Error: <one line>' on stderr and exit code 2 (3 for
    divergence); a signal-stopped run (checkpoint saved) exits 128 + signum.

    SystemExit passes through Hydra's job runner untouched (it catches Exception), so the user sees
    the message alone rather than Hydra's 'Error executing job' preamble and a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ganzoo.errors import UserError
        from ganzoo.trainer import Interrupted

        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"Error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(getattr(e, "exit_code", 2)) from None
        except Interrupted as e:  # a checkpoint was saved; 128 + signum, as a shell reports a signal
            raise SystemExit(128 + e.signum) from None

    return wrapper

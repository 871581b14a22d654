"""A Ctrl-C during a job's start-up that nothing may lose. Bottom layer: the standard library only (the
CLI installs it before torch is imported).

Between the start of `ganzoo train` and the training loop's own handlers (runtime.StopRequest), a
SIGINT raises KeyboardInterrupt wherever the job is, as Python's default handler does. CPython drops an
exception raised inside a finalizer (`__del__`, a weakref callback) with only an "Exception ignored"
line, and a library's bare `except:` swallows it too; the run then trained on as if no Ctrl-C had come
(seen in clean-clone CI runs). `watch_start_up` installs a handler that raises KeyboardInterrupt at
once, exactly as the default, and also remembers the signal; the training loop asks
`interrupted_at_start_up` before its first step and stops if an interrupt was swallowed on the way.
"""

from __future__ import annotations

import signal
import threading

_seen: int | None = None


def _raise_and_remember(signum, frame) -> None:
    global _seen
    _seen = signum
    raise KeyboardInterrupt


def watch_start_up() -> None:
    """Replace Python's default SIGINT handler (only that: a launcher's or test runner's own handler is
    kept) with one that also remembers the interrupt; forget any earlier one."""
    global _seen
    _seen = None
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _raise_and_remember):
        signal.signal(signal.SIGINT, _raise_and_remember)


def interrupted_at_start_up() -> bool:
    """True when a start-up SIGINT came (and its KeyboardInterrupt was lost on the way); clears it."""
    global _seen
    seen, _seen = _seen, None
    return seen is not None

"""`ganzoo serve`: a local web page to sample from a generator or translate uploads with a translator,
served by Starlette on uvicorn (the `serve` extra). The page (`page.html`) carries its own CSS and
JavaScript and loads nothing from the network. It binds to 127.0.0.1 unless told otherwise; see
docs/deploy.md for what changes when it is exposed.
"""

from __future__ import annotations

import sys

from ..errors import UserError
from ..portable import load_inference_model, require
from ..runtime import pick_device


def build(*, run: str | None = None, weights: str | None = None, ema: bool = True, device: str = "auto",
          max_upload_mb: int = 20, max_pixels: int = 4194304, max_grid: int = 64):
    """The Starlette app for a run folder or a ganzoo weights file."""
    require("starlette", "serve"), require("multipart", "serve")
    from .app import Session, make_app

    model, meta = load_inference_model(run, weights, device=pick_device(device), ema=ema)
    session = Session(model, meta["model"]["name"], max_upload_bytes=max_upload_mb * 2**20,
                      max_pixels=max_pixels, max_grid=max_grid)
    return make_app(session)


def serve(*, host: str = "127.0.0.1", port: int = 7860, **kwargs) -> None:
    """Serve the page until Ctrl-C."""
    uvicorn = require("uvicorn", "serve")
    _check_port(host, port)
    app = build(**kwargs)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: host={host} exposes the page to the network (no login, no TLS; see docs/deploy.md)",
              file=sys.stderr, flush=True)
    print(f"serving on http://{'[' + host + ']' if ':' in host else host}:{port}/ (Ctrl-C stops)", file=sys.stderr,
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _check_port(host: str, port: int) -> None:
    """One line for a port that is taken or a host that is not this machine's (uvicorn would log a
    traceback-free error and exit 1 without naming the fix)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e} (choose another port= or host=)") from None

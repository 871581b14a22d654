"""The Starlette app behind `ganzoo serve`: one page (page.html, no assets from the network) and a
small JSON/PNG API that asks the model contract what to offer.

    GET  /                the page
    GET  /api/info        what the model can do: generate (conditional: classes; codes to traverse) or
                          translate (directions, input channels)
    GET  /api/grid        ?seed=0&n=16[&label=3][&code=c2&value=0.5] -> PNG grid (generators)
    POST /api/translate   multipart image [+ direction, seed] -> PNG (translators; any size, as
                          `ganzoo translate`: padded to the net's stride, tiled where exact)

Bad input (a non-image upload, an image above the size limits, a seed that is not a number) is a JSON
`{"error": "<one line>"}` with a 4xx status; the page shows the line and the server keeps serving.
Model calls run one at a time (a lock) in a worker thread, so the event loop keeps answering.
"""

from __future__ import annotations

import io
import tempfile
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.files.imagecheck import load_image
from ..errors import UserError
from ..images import grid, to_pil
from ..models.base import CONDITIONAL, GENERATE, TRANSLATE, TRAVERSE, GANModel, class_rows
from ..translate import from_model, to_model_input, to_uint8, translate_batch, translate_tiled

TRAVERSE_STEPS = 21  # slider positions over [-2, 2] (the range `ganzoo sample traverse=` shows)
TRAVERSE_RANGE = 2.0


class BadRequest(Exception):
    """A request the page should explain: one line and an HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _png(image: torch.Tensor | np.ndarray) -> bytes:
    img = to_pil(image) if isinstance(image, torch.Tensor) else \
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _int(params, key: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{key}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{key}={value} is out of range: use {lo}..{hi}")
    return value


class Session:
    """The model and the limits of one `ganzoo serve`; every method is one request's work."""

    def __init__(self, model: GANModel, name: str, *, max_upload_bytes: int, max_pixels: int, max_grid: int):
        self.model, self.name = model, name
        self.max_upload_bytes, self.max_pixels, self.max_grid = max_upload_bytes, max_pixels, max_grid
        self.lock = threading.Lock()

    def info(self) -> dict:
        m = self.model
        out = {"model": self.name, "generate": m.can(GENERATE), "translate": m.can(TRANSLATE),
               "max_grid": self.max_grid, "max_upload_mb": self.max_upload_bytes // 2**20}
        if m.can(GENERATE):
            out["num_classes"] = m.data.num_classes if m.can(CONDITIONAL) else 0
            out["codes"] = m.traverse_codes() if m.can(TRAVERSE) else []
            out["code_range"] = [-TRAVERSE_RANGE, TRAVERSE_RANGE]
        if m.can(TRANSLATE):
            out["directions"] = list(m.directions())
        return out

    @torch.no_grad()
    def grid(self, params) -> bytes:
        m = self.model
        if not m.can(GENERATE):
            raise BadRequest(f"this {self.name} model translates images: upload one instead", 404)
        seed = _int(params, "seed", 0, 0, 2**63 - 1)
        n = _int(params, "n", 16, 1, self.max_grid)
        code = params.get("code") or None
        with self.lock:
            g = torch.Generator(m.device).manual_seed(seed)
            if code is not None:
                if code not in (m.traverse_codes() if m.can(TRAVERSE) else []):
                    raise BadRequest(f"code={code!r}: this model has no such continuous code")
                value = self._value(params.get("value"))
                images, steps = m.traverse(code, TRAVERSE_STEPS, g)
                col = round((value + TRAVERSE_RANGE) / (2 * TRAVERSE_RANGE) * (steps - 1))
                images = images[col::steps]  # one image per categorical value, the code at `value`
                return _png(grid(images.cpu(), images.shape[0]))
            every_class = m.can(CONDITIONAL) and params.get("label") in (None, "", "all")
            labels = self._labels(params.get("label"), n)
            images = m.generate(labels.shape[0] if labels is not None else n, labels=labels, generator=g)
        nrow = n if every_class else max(1, round(n**0.5))  # every class: one row per class
        return _png(grid(images.cpu(), nrow))

    def _value(self, raw) -> float:
        try:
            value = float(raw if raw not in (None, "") else 0)
        except ValueError:
            raise BadRequest(f"value={raw!r} is not a number") from None
        if not -TRAVERSE_RANGE <= value <= TRAVERSE_RANGE:
            raise BadRequest(f"value={value} is out of range: use {-TRAVERSE_RANGE:g}..{TRAVERSE_RANGE:g}")
        return value

    def _labels(self, raw, n: int) -> torch.Tensor | None:
        m = self.model
        if not m.can(CONDITIONAL):
            if raw not in (None, "", "all"):
                raise BadRequest(f"this {self.name} model is unconditional: it takes no class")
            return None
        k = m.data.num_classes
        if raw in (None, "", "all"):  # one row per class, n per row
            return class_rows(k, n, m.device)
        try:
            label = int(raw)
        except ValueError:
            raise BadRequest(f"class {raw!r} is not a class number") from None
        if not 0 <= label < k:
            raise BadRequest(f"class {label} is out of range: use 0..{k - 1}")
        return torch.full((n,), label, dtype=torch.long, device=m.device)

    @torch.no_grad()
    def translate(self, data: bytes, filename: str, direction: str | None, seed: int) -> bytes:
        m = self.model
        if not m.can(TRANSLATE):
            raise BadRequest(f"this {self.name} model generates from noise: it takes no upload", 404)
        if direction not in (None, "") and direction not in m.directions():
            raise BadRequest(f"direction={direction}: this model translates {', '.join(m.directions())}")
        try:
            t, direction = from_model(m, self.name, direction or None, source="this model", sample="")
        except UserError as e:
            raise BadRequest(str(e)) from None
        with tempfile.TemporaryDirectory() as tmp:  # load_image reads a file: the checks of `ganzoo translate`
            path = Path(tmp) / (Path(filename).name or "upload")
            path.write_bytes(data)
            try:
                img = load_image(path, t.in_channels)
            except UserError as e:
                raise BadRequest(f"{Path(filename).name or 'the upload'} is not an image we can read: "
                                 f"{str(e).split(': ', 1)[-1]}", 415) from None
        arr = np.array(img, dtype=np.uint8).reshape(img.size[1], img.size[0], -1)
        h, w = arr.shape[:2]
        tiled = t.tiling is not None and max(h, w) > t.tiling[0]
        if t.tiling is None and h * w > self.max_pixels:
            raise BadRequest(f"the image is {w}x{h} px, above this server's limit of {self.max_pixels} px for "
                             f"{self.name} (it is translated whole): send a smaller image", 413)
        with self.lock:
            torch.manual_seed(seed)  # pix2pix keeps dropout on at inference, as `ganzoo translate`
            if tiled:
                out = translate_tiled(t, arr, "truncate")
            else:
                x = torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous().to(m.device)
                out = to_uint8(translate_batch(t, to_model_input(x)), "truncate")[0].numpy()
        return _png(out)


def page() -> str:
    return (resources.files("ganzoo.serve") / "page.html").read_text(encoding="utf-8")


def make_app(session: Session):
    """The Starlette application serving `session`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    def error(e: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=e.status)

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page())

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(session.info())

    async def grid_png(request: Request) -> Response:
        try:
            return Response(await run_in_threadpool(session.grid, request.query_params), media_type="image/png")
        except BadRequest as e:
            return error(e)

    async def translate_png(request: Request) -> Response:
        try:
            size = int(request.headers.get("content-length") or 0)
            if size > session.max_upload_bytes + 65536:
                raise BadRequest(f"the upload is {size / 2**20:.1f} MB, above this server's limit of "
                                 f"{session.max_upload_bytes // 2**20} MB", 413)
            try:
                form = await request.form(max_files=1, max_fields=8)
            except Exception as e:  # noqa: BLE001 - a malformed body: one line for the page
                raise BadRequest(f"could not read the upload: {e}") from None
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise BadRequest("no image in the upload: choose a file first")
            data = await upload.read(session.max_upload_bytes + 1)
            if len(data) > session.max_upload_bytes:
                raise BadRequest(f"the upload is above this server's limit of "
                                 f"{session.max_upload_bytes // 2**20} MB", 413)
            seed = _int(form, "seed", 0, 0, 2**63 - 1)
            direction = form.get("direction") if isinstance(form.get("direction"), str) else None
            png = await run_in_threadpool(session.translate, data, upload.filename or "", direction, seed)
            return Response(png, media_type="image/png")
        except BadRequest as e:
            return error(e)

    return Starlette(routes=[Route("/", index), Route("/api/info", info),
                             Route("/api/grid", grid_png), Route("/api/translate", translate_png, methods=["POST"])])

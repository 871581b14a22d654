"""`ganzoo serve`: the API's answers and error statuses (Starlette's TestClient), then the page in a
real browser (Playwright driving the system's chromium; skipped when either is absent)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from ganzoo.errors import UserError
from ganzoo.export import export
from ganzoo.serve import _check_port, build

from .conftest import invoke, tiny_runs

pytest.importorskip("starlette")
pytest.importorskip("multipart")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny 2-step run per model, trained on first use."""
    return tiny_runs(tmp_path_factory)


def client(folder, **limits):
    from starlette.testclient import TestClient

    return TestClient(build(run=str(folder), device="cpu", **limits))


def png(w: int, h: int, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w),
                                                      dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def image(content: bytes) -> Image.Image:
    return Image.open(io.BytesIO(content))


def test_generator_api(runs):
    c = client(runs("cgan"))
    assert "<script>" in c.get("/").text and "http" not in c.get("/").text.split("<script>")[1]  # offline
    info = c.get("/api/info").json()
    assert info["generate"] and not info["translate"] and info["num_classes"] == 10
    every = c.get("/api/grid?seed=1&n=3")
    assert every.status_code == 200 and every.headers["content-type"] == "image/png"
    assert image(every.content).size == (3 * 30 + 2, 10 * 30 + 2)  # one row per class, 28 px + 2 px padding
    one = c.get("/api/grid?seed=1&n=4&label=3").content
    assert one != c.get("/api/grid?seed=1&n=4&label=4").content
    assert one == c.get("/api/grid?seed=1&n=4&label=3").content  # the seed fixes the grid
    assert one != c.get("/api/grid?seed=2&n=4&label=3").content
    for query, status, words in (("seed=x", 400, "not a whole number"), ("n=0", 400, "out of range"),
                                 ("n=1000", 400, "out of range"), ("label=10", 400, "0..9"),
                                 ("label=cat", 400, "not a class"), ("code=c2", 400, "no such continuous code")):
        r = c.get(f"/api/grid?{query}")
        assert r.status_code == status and words in r.json()["error"], (query, r.text)
    r = c.post("/api/translate", files={"image": ("a.png", png(8, 8), "image/png")})
    assert r.status_code == 404 and "generates from noise" in r.json()["error"]


def test_traverse_slider(runs):
    c = client(runs("infogan"))
    assert c.get("/api/info").json()["codes"] == ["c2", "c3"]
    lo, hi = (c.get(f"/api/grid?seed=0&code=c2&value={v}") for v in (-2, 2))
    assert lo.status_code == hi.status_code == 200 and lo.content != hi.content
    assert image(lo.content).size == (10 * 30 + 2, 32)  # one image per categorical value c1
    r = c.get("/api/grid?code=c2&value=5")
    assert r.status_code == 400 and "-2..2" in r.json()["error"]


def test_translator_api_and_errors(runs):
    c = client(runs("cyclegan"), max_upload_mb=1, max_pixels=64 * 64)
    info = c.get("/api/info").json()
    assert info["translate"] and info["directions"] == ["AtoB", "BtoA"]
    outs = {}
    for d in info["directions"]:  # any size: 37 x 23 is not a multiple of the net's stride
        r = c.post("/api/translate", files={"image": ("a.png", png(37, 23), "image/png")}, data={"direction": d})
        assert r.status_code == 200 and image(r.content).size == (37, 23)
        outs[d] = r.content
    assert outs["AtoB"] != outs["BtoA"]
    for files, data, status, words in (
            ({"image": ("a.txt", b"hello", "text/plain")}, {}, 415, "not an image"),
            ({"image": ("a.png", png(100, 100), "image/png")}, {}, 413, "above this server's limit"),
            ({"image": ("a.png", b"0" * (2 * 2**20), "image/png")}, {}, 413, "MB"),
            ({}, {"direction": "AtoB"}, 400, "no image"),
            ({"image": ("a.png", png(8, 8), "image/png")}, {"direction": "sideways"}, 400, "AtoB, BtoA"),
            ({"image": ("a.png", png(8, 8), "image/png")}, {"seed": "x"}, 400, "whole number")):
        r = c.post("/api/translate", files=files or None, data=data)
        assert r.status_code == status and words in r.json()["error"], (words, r.text)
    r = c.post("/api/translate", files={"image": ("a.png", png(16, 16), "image/png")})
    assert r.status_code == 200  # still serving after the errors


def test_serve_refuses_a_taken_port_and_a_non_translator_in_one_line(runs, cli_runner):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UserError, match="choose another port"):
            _check_port("127.0.0.1", port)
        r = invoke(cli_runner, ["serve", f"run={runs('dcgan')}", f"port={port}"])
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and "choose another port" in lines[0], r.output
    r = invoke(cli_runner, ["serve", f"run={runs('dcgan')}", "port=70000"])
    assert r.exit_code == 2 and "port" in r.stderr


def test_serve_from_a_weights_file(runs, tmp_path):
    (e,) = export(run=str(runs("dcgan")), format="safetensors", out=str(tmp_path / "d.safetensors"))
    from starlette.testclient import TestClient

    a = client(runs("dcgan")).get("/api/grid?seed=4&n=4").content
    b = TestClient(build(weights=str(e.path), device="cpu")).get("/api/grid?seed=4&n=4").content
    assert a == b


# -- the page in a real browser ------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in (os.environ.get("GANZOO_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    path = _chromium()
    if path is None:
        pytest.skip("no chromium on PATH (apt-get install chromium; or set GANZOO_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def server():
    """serve(app) -> its URL: uvicorn in a thread on a free port, stopped after the test."""
    import uvicorn

    servers = []

    def start(app) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        servers.append((srv, thread))
        deadline = time.monotonic() + 30
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}/"

    yield start
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(10)


SHOTS = os.environ.get("GANZOO_SCREENSHOTS")  # a folder: keep a screenshot of each page state to look at


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def _loaded(page, selector: str) -> None:
    page.wait_for_function(f"() => {{ const i = document.querySelector('{selector}'); "
                           "return i && i.complete && i.naturalWidth > 0; }", timeout=30000)


def test_page_samples_a_grid_picks_a_class_and_changes_the_seed(runs, browser, server):
    page = browser.new_page()
    page.goto(server(build(run=str(runs("cgan")), device="cpu")))
    _loaded(page, "#grid")
    assert page.inner_text("#title") == "ganzoo: cgan"
    first = page.get_attribute("#grid", "src")
    _shot(page, "generator_every_class")
    page.select_option("#label", "3")
    page.wait_for_function(f"() => document.querySelector('#grid').src !== '{first}'")
    _loaded(page, "#grid")
    picked = page.get_attribute("#grid", "src")
    _shot(page, "generator_class_3")
    page.fill("#seed", "7")
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#grid').dataset.seed === '7'")
    _loaded(page, "#grid")
    assert page.get_attribute("#grid", "src") not in (first, picked)
    assert not page.is_visible("#error")
    _shot(page, "generator_seed_7")
    page.fill("#n", "999")  # above max_grid: the server's message on the page
    page.click("#generate")
    page.wait_for_selector("#error", state="visible")
    assert "out of range" in page.inner_text("#error")
    _shot(page, "generator_error")


def test_page_slides_a_continuous_code(runs, browser, server):
    page = browser.new_page()
    page.goto(server(build(run=str(runs("infogan")), device="cpu")))
    _loaded(page, "#grid")
    page.wait_for_selector("#code-box", state="visible")
    page.select_option("#code", "c2")
    page.wait_for_function("() => document.querySelector('#grid').naturalHeight === 32")  # one row: c1 = 0..9
    before = page.get_attribute("#grid", "src")
    page.eval_on_selector("#value", "e => { e.value = '1.6'; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function(f"() => document.querySelector('#grid').src !== '{before}'")
    assert page.inner_text("#value-text") == "1.6" and not page.is_visible("#error")
    _shot(page, "generator_code_slider")


def test_page_translates_an_upload_and_shows_errors(runs, browser, server, tmp_path):
    page = browser.new_page()
    page.goto(server(build(run=str(runs("cyclegan")), device="cpu")))
    page.wait_for_selector("#direction-box", state="visible")
    (tmp_path / "photo.png").write_bytes(png(40, 30))
    page.select_option("#direction", "BtoA")
    page.set_input_files("#file", str(tmp_path / "photo.png"))
    _loaded(page, "#result")
    _loaded(page, "#input-preview")
    size = page.evaluate("() => [document.querySelector('#result').naturalWidth, "
                         "document.querySelector('#result').naturalHeight]")
    assert size == [40, 30]
    assert page.is_visible("#download") and page.get_attribute("#download", "download") == "photo_translated.png"
    with page.expect_download() as d:
        page.click("#download")
    assert Image.open(d.value.path()).size == (40, 30)
    _shot(page, "translator_result")
    (tmp_path / "notes.png").write_bytes(b"this is not an image")
    page.set_input_files("#file", str(tmp_path / "notes.png"))
    page.wait_for_selector("#error", state="visible")
    assert "not an image" in page.inner_text("#error")
    assert not page.is_visible("#download")
    _shot(page, "translator_error")
    page.set_input_files("#file", str(tmp_path / "photo.png"))  # the server kept serving
    _loaded(page, "#result")
    page.wait_for_selector("#error", state="hidden")

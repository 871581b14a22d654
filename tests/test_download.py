"""Downloads against a local HTTP server (Range support, truncation, tampering, refusal): verified
before use, resumed with Range, nothing half-extracted, earlier good copies kept; offline errors are
one line naming the fix; `ganzoo data list` / `data download` through the CLI."""

from __future__ import annotations

import hashlib
import io
import random
import re
import shutil
import socket
import zipfile
from http.server import BaseHTTPRequestHandler

import pytest

from ganzoo.data.base import DataError
from ganzoo.data.fetch import download, manifest
from ganzoo.data.fetch.download import ensure, fetch, prepare

from .conftest import invoke, local_http_server


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


_RNG = random.Random(0)
SET = {"toy/trainA/a.txt": b"horse\n", "toy/trainB/b.txt": _RNG.randbytes(20_000), "toy/testA/c.txt": _RNG.randbytes(70_000)}
GOOD = _zip_bytes(SET)
TAMPERED = _zip_bytes({**SET, "toy/trainA/a.txt": b"evil!\n"})
WEIGHTS = bytes(range(256)) * 400
SHA = {"good": hashlib.sha256(GOOD).hexdigest(), "weights": hashlib.sha256(WEIGHTS).hexdigest()}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and self.path not in srv.ignore_range:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        data = body[start:]
        if srv.cut.get(self.path, 0) > 0:  # promise everything, send half, hang up
            srv.cut[self.path] -= 1
            data = data[: len(data) // 2]
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    with local_http_server(_Handler) as srv:
        srv.files = {"/good.zip": GOOD, "/tampered.zip": TAMPERED, "/w/model.pth": WEIGHTS}
        srv.log, srv.cut, srv.ignore_range = [], {}, set()
        yield srv


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    monkeypatch.setattr(download, "RETRY_DELAYS", (0.0, 0.0, 0.0))


def _entries(monkeypatch, *entries):
    monkeypatch.setattr(manifest, "ENTRIES", {e.name: e for e in entries})


def _dataset(server, path="/good.zip", sha256=SHA["good"], name="toyset"):
    return manifest.Entry(name, server.url + path, sha256, len(GOOD), "dataset", "toy", "a toy set")


def _weights(server, path="/w/model.pth", sha256=SHA["weights"], name="toy_model/model"):
    return manifest.Entry(name, server.url + path, sha256, len(WEIGHTS), "weights", "", "toy weights")


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _leftovers(home):
    """Anything but the ready items, lock files and the hash record: parts, archives, temp folders."""
    return sorted(p.name for p in home.iterdir()
                  if not p.name.endswith(".lock") and p.name not in ("toyset", "toy_model", "manifest.lock.json"))


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_good_download_verified_and_extracted(server, monkeypatch, tmp_path):
    _entries(monkeypatch, _dataset(server))
    out = prepare("toyset", tmp_path, progress=False)
    assert out.path == tmp_path / "toyset" and out.action == "downloaded" and out.policy == "pinned"
    assert out.sha256 == SHA["good"]
    assert _tree(out.path) == {k.removeprefix("toy/"): v for k, v in SET.items()}
    assert _leftovers(tmp_path) == []  # no archive, .part or temp folder left
    assert ensure("toyset", tmp_path, progress=False) == out.path  # present: no second request
    assert len(server.log) == 1


def test_weights_are_a_verified_file(server, monkeypatch, tmp_path):
    _entries(monkeypatch, _weights(server))
    path = ensure("toy_model/model", tmp_path, progress=False)
    assert path == tmp_path / "toy_model" / "model.pth" and path.read_bytes() == WEIGHTS
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pth"]


def test_tampered_download_refused_and_nothing_kept(server, monkeypatch, tmp_path):
    _entries(monkeypatch, _dataset(server, "/tampered.zip"))
    with pytest.raises(DataError) as err:
        ensure("toyset", tmp_path, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "sha256 mismatch for toyset" in msg
    assert f"expected {SHA['good']}" in msg and f"got {hashlib.sha256(TAMPERED).hexdigest()}" in msg
    assert not (tmp_path / "toyset").exists()
    assert _leftovers(tmp_path) == []


def test_tampered_redownload_keeps_the_earlier_good_copy(server, monkeypatch, tmp_path):
    _entries(monkeypatch, _dataset(server), _weights(server))
    folder = ensure("toyset", tmp_path, progress=False)
    weights = ensure("toy_model/model", tmp_path, progress=False)
    before, before_w = _tree(folder), weights.read_bytes()
    server.files["/good.zip"] = TAMPERED  # the host now serves something else
    server.files["/w/model.pth"] = WEIGHTS[::-1]
    for name in ("toyset", "toy_model/model"):
        with pytest.raises(DataError, match="sha256 mismatch"):
            prepare(name, tmp_path, force=True, progress=False)
    assert _tree(folder) == before and weights.read_bytes() == before_w
    assert _leftovers(tmp_path) == [] and sorted(p.name for p in weights.parent.iterdir()) == ["model.pth"]


def test_forced_good_redownload_replaces_the_copy(server, monkeypatch, tmp_path):
    _entries(monkeypatch, _dataset(server))
    folder = ensure("toyset", tmp_path, progress=False)
    (folder / "stale.txt").write_text("from the old copy")
    assert prepare("toyset", tmp_path, force=True, progress=False).action == "downloaded"
    assert not (folder / "stale.txt").exists() and (folder / "trainA" / "a.txt").read_bytes() == b"horse\n"
    assert _leftovers(tmp_path) == []


def test_truncated_download_resumes_with_range(server, tmp_path):
    server.cut["/good.zip"] = 1  # the first response stops halfway
    dest = fetch(server.url + "/good.zip", tmp_path / "good.zip", SHA["good"], progress=False)
    assert dest.read_bytes() == GOOD and not (tmp_path / "good.zip.part").exists()
    (path1, range1), (path2, range2) = server.log
    assert range1 is None and range2 == f"bytes={len(GOOD) // 2}-"


def test_part_left_by_a_killed_run_is_resumed(server, tmp_path):
    (tmp_path / "good.zip.part").write_bytes(GOOD[:1000])
    fetch(server.url + "/good.zip", tmp_path / "good.zip", SHA["good"], progress=False)
    assert (tmp_path / "good.zip").read_bytes() == GOOD
    assert server.log == [("/good.zip", "bytes=1000-")]


def test_server_ignoring_range_restarts(server, tmp_path):
    server.ignore_range.add("/good.zip")
    (tmp_path / "good.zip.part").write_bytes(GOOD[:1000])
    fetch(server.url + "/good.zip", tmp_path / "good.zip", SHA["good"], progress=False)
    assert (tmp_path / "good.zip").read_bytes() == GOOD and len(server.log) == 1


def test_complete_part_is_verified_without_refetching(server, tmp_path):
    (tmp_path / "good.zip.part").write_bytes(GOOD)  # killed between the last byte and the rename
    fetch(server.url + "/good.zip", tmp_path / "good.zip", SHA["good"], progress=False)
    assert (tmp_path / "good.zip").read_bytes() == GOOD
    assert server.log == [("/good.zip", f"bytes={len(GOOD)}-")]  # answered 416: nothing left to send


def test_corrupt_part_is_refetched_from_scratch(server, tmp_path):
    (tmp_path / "good.zip.part").write_bytes(b"\0" * 1000)  # wrong bytes: the resumed file fails the hash
    fetch(server.url + "/good.zip", tmp_path / "good.zip", SHA["good"], progress=False)
    assert (tmp_path / "good.zip").read_bytes() == GOOD
    assert server.log == [("/good.zip", "bytes=1000-"), ("/good.zip", None)]


def test_unknown_hash_is_recorded_then_enforced(server, monkeypatch, tmp_path, capsys):
    _entries(monkeypatch, _dataset(server, sha256=None))
    assert download.hash_policy(manifest.get("toyset"), tmp_path) == "unknown"
    out = prepare("toyset", tmp_path)
    assert out.policy == "recorded now" and out.sha256 == SHA["good"]
    assert "no published sha256; recorded " + SHA["good"] in capsys.readouterr().err
    record = download._read_lock(tmp_path)["entries"]["toyset"]
    assert record["sha256"] == SHA["good"] and record["url"] == server.url + "/good.zip"
    assert download.hash_policy(manifest.get("toyset"), tmp_path) == "recorded"
    lock_bytes = download.lock_path(tmp_path).read_bytes()

    server.files["/good.zip"] = TAMPERED  # a later download is checked against the record
    with pytest.raises(DataError, match=f"expected {SHA['good']}"):
        prepare("toyset", tmp_path, force=True, progress=False)
    assert download.lock_path(tmp_path).read_bytes() == lock_bytes
    assert _tree(tmp_path / "toyset")["trainA/a.txt"] == b"horse\n"
    server.files["/good.zip"] = GOOD
    assert prepare("toyset", tmp_path, force=True, progress=False).policy == "recorded"


def test_offline_is_one_line_naming_the_fix(monkeypatch, tmp_path, cli_runner):
    url = f"http://127.0.0.1:{_closed_port()}/toy.zip"
    _entries(monkeypatch, manifest.Entry("toyset", url, None, None, "dataset", "toy", "a toy set"))
    with pytest.raises(DataError) as err:
        ensure("toyset", tmp_path, progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"cannot download toyset from {url} (")
    assert msg.endswith(f"run `ganzoo data download toyset` on a machine with internet, or place toy.zip in {tmp_path}")
    assert "refused" in msg.lower()
    assert _leftovers(tmp_path) == [] and not (tmp_path / "toyset").exists()
    r = invoke(cli_runner, ["data", "download", "toyset", "--root", str(tmp_path)])
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1].startswith("Error: cannot download toyset")
    assert "Traceback" not in r.output


def test_http_error_is_not_retried(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        fetch(server.url + "/nope.zip", tmp_path / "nope.zip", None, progress=False)
    assert len(server.log) == 1 and not list(tmp_path.iterdir())


def test_archive_placed_by_hand_is_verified_and_used(monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/good.zip"
    _entries(monkeypatch, manifest.Entry("toyset", url, SHA["good"], None, "dataset", "toy", "a toy set"))
    (tmp_path / "good.zip").write_bytes(TAMPERED)
    with pytest.raises(DataError, match="does not match the pinned sha256 of toyset"):
        ensure("toyset", tmp_path, progress=False)
    assert not (tmp_path / "toyset").exists()
    (tmp_path / "good.zip").write_bytes(GOOD)
    out = prepare("toyset", tmp_path, progress=False)
    assert out.action == "from archive" and (out.path / "trainB" / "b.txt").is_file()
    assert (tmp_path / "good.zip").is_file()  # the user's file is left alone


def test_unsafe_or_misshapen_archive_installs_nothing(server, monkeypatch, tmp_path):
    evil = _zip_bytes({"toy/trainA/a.txt": b"x", "../escape.txt": b"x"})
    server.files["/evil.zip"] = evil
    _entries(monkeypatch, _dataset(server, "/evil.zip", None),  # unpinned: a refused set must not be recorded
             manifest.Entry("other", server.url + "/good.zip", SHA["good"], None, "dataset", "elsewhere", "wrong"))
    with pytest.raises(DataError, match="'../escape.txt' has a '..' path component"):
        ensure("toyset", tmp_path, progress=False)
    with pytest.raises(DataError, match="has no top folder 'elsewhere'"):
        ensure("other", tmp_path, progress=False)
    assert not (tmp_path / "toyset").exists() and not (tmp_path / "other").exists()
    assert not (tmp_path.parent / "escape.txt").exists()
    leftovers = _leftovers(tmp_path)
    assert leftovers == [], leftovers  # no archive, part or temp folder
    assert download.recorded_sha256(manifest.get("toyset"), tmp_path) is None


def test_unknown_name_lists_known_ones(cli_runner, monkeypatch, server):
    _entries(monkeypatch, _dataset(server), _weights(server))
    with pytest.raises(DataError, match=r"unknown download 'nope' \(known: toyset, toy_model/model\)"):
        ensure("nope")
    r = invoke(cli_runner, ["data", "download", "toyset", "nope"])
    assert r.exit_code == 2 and "unknown download 'nope' (known: toyset, toy_model/model)" in r.stderr
    assert server.log == []  # refused before anything was fetched


def test_cli_list_and_download(cli_runner, monkeypatch, server, tmp_path):
    _entries(monkeypatch, _dataset(server), _weights(server, sha256=None))
    home = str(tmp_path)

    def rows():
        r = invoke(cli_runner, ["data", "list", "--root", home])
        assert r.exit_code == 0, r.output
        return {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:] if line.strip()}

    before = rows()
    size = f"{len(GOOD) / 1e3:.1f}"
    assert before["toyset"][1:6] == ["dataset", size, "kB", "absent", "pinned"]
    assert before["toy_model/model"][1:2] + before["toy_model/model"][4:6] == ["weights", "absent", "unknown"]

    r = invoke(cli_runner, ["data", "download", "toyset", "toy_model/model", "--root", home])
    assert r.exit_code == 0, r.output
    assert f"toyset: {tmp_path / 'toyset'} (downloaded, sha256 verified (pinned))" in r.stdout
    assert f"recorded {SHA['weights']}" in r.stdout
    after = rows()
    assert after["toyset"][4:6] == ["present", "pinned"] and after["toy_model/model"][4:6] == ["present", "recorded"]

    r = invoke(cli_runner, ["data", "download", "toyset", "--root", home])
    assert r.exit_code == 0 and "(already present)" in r.stdout

    shutil.rmtree(tmp_path / "toyset")
    (tmp_path / "good.zip.part").write_bytes(GOOD[:3000])
    assert rows()["toyset"][4:7] == ["partial", "(3.0", "kB)"]


def test_weights_in_place_are_verified_every_time(monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/w/model.pth"
    pinned = manifest.Entry("toy_model/model", url, SHA["weights"], None, "weights", "", "toy weights")
    _entries(monkeypatch, pinned)
    path = tmp_path / "toy_model" / "model.pth"
    path.parent.mkdir()
    path.write_bytes(WEIGHTS[:-1] + b"\0")  # a damaged copy placed by hand
    with pytest.raises(DataError, match=f"does not match the pinned sha256 of toy_model/model: expected {SHA['weights']}"):
        ensure("toy_model/model", tmp_path, progress=False)
    assert path.read_bytes() == WEIGHTS[:-1] + b"\0"  # never deleted for the user
    path.write_bytes(WEIGHTS)
    out = prepare("toy_model/model", tmp_path, progress=False)
    assert (out.action, out.sha256, out.policy) == ("present", SHA["weights"], "pinned")

    _entries(monkeypatch, manifest.Entry("toy_model/model", url, None, None, "weights", "", "toy weights"))
    assert prepare("toy_model/model", tmp_path, progress=False).policy == "recorded now"
    assert download.recorded_sha256(manifest.get("toy_model/model"), tmp_path) == SHA["weights"]
    path.write_bytes(WEIGHTS[::-1])
    with pytest.raises(DataError, match="does not match the recorded sha256"):
        ensure("toy_model/model", tmp_path, progress=False)

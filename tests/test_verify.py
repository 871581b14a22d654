"""`ganzoo data verify`: every bad file listed with its reason, the counts, the exit status."""

from __future__ import annotations

from .conftest import invoke
from .test_imagecheck import _encoded, _noise, _png_claiming

BAD = {
    "cut.jpg": "truncated",
    "empty.png": "zero-byte file",
    "notes.jpg": "not an image (unidentified format)",
    "sub/photo.png": "extension .png but content is JPEG",
    "sub/deeper/bomb.png": "decompression bomb (100000×100000 px)",
}


def _good_folder(root):
    (root / "sub" / "deeper").mkdir(parents=True)
    _noise(32, 24, seed=1).save(root / "a.png")
    _noise(32, 24, seed=2).save(root / "b.JPG")
    (root / "sub" / "c.jpeg").write_bytes(_encoded(_noise(32, 24, seed=3), "JPEG"))
    return root


def _bad_folder(root):
    _good_folder(root)
    cut = _encoded(_noise(64, 64), "JPEG")
    (root / "cut.jpg").write_bytes(cut[: len(cut) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("this is not an image\n")
    (root / "sub" / "photo.png").write_bytes(_encoded(_noise(), "JPEG"))
    (root / "sub" / "deeper" / "bomb.png").write_bytes(_png_claiming(100_000, 100_000))
    (root / "readme.txt").write_text("not an image extension: skipped, not an error\n")
    (root / ".hidden.png").write_bytes(b"")  # hidden, as training ignores it
    return root


def _row(stdout: str, rel: str, reason: str) -> bool:
    return any(rel in line and reason in line for line in stdout.splitlines())


def test_lists_every_bad_file_with_its_reason(cli_runner, tmp_path):
    folder = _bad_folder(tmp_path / "imgs")
    r = invoke(cli_runner, ["data", "verify", str(folder)])
    assert r.exit_code == 1, r.output
    for rel, reason in BAD.items():
        assert _row(r.stdout, rel, reason), (rel, reason, r.stdout)
    assert "5 of 8 images bad, 1 file skipped (not an image extension)" in r.stdout
    for good in ("a.png", "b.JPG", "c.jpeg", "readme.txt", ".hidden"):
        assert good not in r.stdout
    assert "Traceback" not in r.output


def test_clean_folder_exits_0(cli_runner, tmp_path):
    folder = _good_folder(tmp_path / "imgs")
    (folder / "labels.csv").write_text("a,1\n")
    (folder / "more.txt").write_text("x\n")
    r = invoke(cli_runner, ["data", "verify", str(folder), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "0 of 3 images bad, 2 files skipped (not an image extension)"


def test_max_pixels_option(cli_runner, tmp_path):
    folder = _good_folder(tmp_path / "imgs")
    r = invoke(cli_runner, ["data", "verify", "--max-pixels", "500", str(folder)])
    assert r.exit_code == 1, r.output
    assert _row(r.stdout, "sub/c.jpeg", "decompression bomb (32×24 px)")
    assert "3 of 3 images bad" in r.stdout


def test_missing_folder_is_one_line_exit_2(cli_runner, tmp_path):
    r = invoke(cli_runner, ["data", "verify", str(tmp_path / "missing")])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "does not exist" in lines[0], r.stderr


def test_unknown_name_lists_the_datasets(cli_runner, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    r = invoke(cli_runner, ["data", "verify", "digitz"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "does not exist" in r.stderr and "digits" in r.stderr


def test_folder_without_images_is_an_error(cli_runner, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    r = invoke(cli_runner, ["data", "verify", str(tmp_path)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no images" in r.stderr and "1 other file skipped" in r.stderr


def test_in_memory_dataset_has_nothing_to_check(cli_runner):
    r = invoke(cli_runner, ["data", "verify", "digits"])
    assert r.exit_code == 0, r.output
    assert "generated in memory" in r.stdout and "no image files to check" in r.stdout
    r = invoke(cli_runner, ["data", "verify", "mnist"])
    assert r.exit_code == 0 and "verified by checksum" in r.stdout
    r = invoke(cli_runner, ["data", "verify", "pair"])
    assert r.exit_code == 0 and "made of two datasets (A=digits, B=mnist): verify each" in r.stdout


def test_image_folder_dataset_without_path(cli_runner):
    r = invoke(cli_runner, ["data", "verify", "image_folder"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no path configured" in r.stderr


def test_image_folder_dataset_uses_its_configured_path(tmp_path, monkeypatch):
    from ganzoo.data.files.verify import _dataset_target, verify_folder

    _bad_folder(tmp_path / "faces")
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path))  # a relative path is found under the data home
    monkeypatch.chdir(tmp_path / "faces" / "sub")
    target = _dataset_target("faces", {"name": "image_folder", "path": "faces", "recursive": False})
    assert target.folder == tmp_path / "faces" and not target.recursive
    report = verify_folder(target.folder, recursive=target.recursive)
    assert report.checked == 5 and [rel for rel, _ in report.bad] == ["cut.jpg", "empty.png", "notes.jpg"]
    assert report.skipped == ["readme.txt"]


def test_help_shows_the_group(cli_runner):
    r = invoke(cli_runner, ["--help"])
    assert r.exit_code == 0 and "data" in r.stdout
    r = invoke(cli_runner, ["data", "verify", "--help"])
    assert r.exit_code == 0 and "--workers" in r.stdout and "--max-pixels" in r.stdout

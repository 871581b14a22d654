"""Image validation (check_image, scan_images) and consistent mode conversion (load_image)."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from ganzoo.data.base import DataError
from ganzoo.data.files.imagecheck import IMAGE_EXTENSIONS, check_image, is_image_file, load_image, scan_images


def _noise(w: int = 32, h: int = 24, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h greyscale pixels (the data is a few hundred bytes)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 256))
            + _png_chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("GIF", "gif"),
                                     ("WEBP", "webp"), ("TIFF", "tif")])
def test_good_images_pass(tmp_path, fmt, ext):
    p = tmp_path / f"ok.{ext}"
    p.write_bytes(_encoded(_noise(), fmt))
    assert check_image(p) is None


def test_extensions_case_insensitive(tmp_path):
    assert {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"} <= set(IMAGE_EXTENSIONS)
    assert is_image_file("a/B.JPG") and is_image_file("x.TiFf") and not is_image_file("notes.txt")
    p = tmp_path / "UPPER.JPEG"
    p.write_bytes(_encoded(_noise(), "JPEG"))
    assert check_image(p) is None


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png")])
def test_truncated(tmp_path, fmt, ext):
    data = _encoded(_noise(64, 64), fmt)
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(data[: len(data) // 2])
    assert check_image(p) == "truncated"


def test_zero_byte(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    assert check_image(p) == "zero-byte file"


def test_text_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not an image\n")
    assert check_image(p) == "not an image (unidentified format)"


def test_mislabelled_extension(tmp_path):
    p = tmp_path / "photo.png"
    p.write_bytes(_encoded(_noise(), "JPEG"))
    assert check_image(p) == "extension .png but content is JPEG"
    q = tmp_path / "pic.jpg"
    q.write_bytes(_encoded(_noise(), "PNG"))
    assert check_image(q) == "extension .jpg but content is PNG"


def test_decompression_bomb_header(tmp_path):
    """A 300-byte PNG claiming 100000 x 100000 px is refused by size, before any decoding, silently."""
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_claiming(100_000, 100_000))
    assert p.stat().st_size < 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_image(p) == "decompression bomb (100000×100000 px)"


def test_decompression_bomb_configurable_limit(tmp_path):
    p = tmp_path / "big.png"
    _noise(64, 48).save(p)
    assert check_image(p) is None
    assert check_image(p, max_pixels=1000) == "decompression bomb (64×48 px)"


def test_pillow_bomb_warning_does_not_escape(tmp_path, monkeypatch):
    """Between Pillow's warning limit and its error limit an image passes, without the warning."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    ok, bomb = tmp_path / "ok.png", tmp_path / "bomb.png"
    _noise(40, 40).save(ok)  # 1600 px: above 1000 (Pillow warns), below 2000 (Pillow's error)
    _noise(50, 50).save(bomb)  # 2500 px: Pillow raises
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_image(ok) is None
        assert check_image(bomb) == "decompression bomb (50×50 px)"
        assert scan_images([ok, bomb], workers=2) == [(bomb, "decompression bomb (50×50 px)")]
        assert load_image(ok, 3).size == (40, 40)


def test_scan_images_reports_only_bad_in_order(tmp_path):
    paths, expected = [], []
    for i in range(12):
        p = tmp_path / f"{i:02d}.png"
        if i % 4 == 1:
            p.write_bytes(b"")
            expected.append((p, "zero-byte file"))
        elif i % 4 == 3:
            p.write_text("nope")
            expected.append((p, "not an image (unidentified format)"))
        else:
            _noise(8, 8, seed=i).save(p)
        paths.append(p)
    assert scan_images(paths, workers=3) == expected
    assert scan_images(paths, workers=1) == expected
    assert scan_images([]) == []


# -- conversion: the same mid-grey in every mode gives the same uint8 value (±1) ---------------------


def _grey_files(tmp_path) -> dict[str, object]:
    """Mid-grey (128, or 127 where the mode cannot hold 128 exactly) saved in many modes."""
    files = {}
    Image.new("L", (6, 4), 128).save(files.setdefault("L", tmp_path / "l.png"))
    Image.new("RGB", (6, 4), (128, 128, 128)).save(files.setdefault("RGB", tmp_path / "rgb.png"))
    Image.new("RGBA", (6, 4), (128, 128, 128, 255)).save(files.setdefault("RGBA", tmp_path / "rgba.png"))
    Image.new("LA", (6, 4), (128, 255)).save(files.setdefault("LA", tmp_path / "la.png"))
    Image.new("CMYK", (6, 4), (0, 0, 0, 127)).save(files.setdefault("CMYK-tif", tmp_path / "cmyk.tif"))
    Image.new("CMYK", (6, 4), (0, 0, 0, 127)).save(files.setdefault("CMYK-jpg", tmp_path / "cmyk.jpg"),
                                                      quality=100)
    pal = Image.new("P", (6, 4), 1)
    pal.putpalette([255, 0, 0] + [128, 128, 128] + [0, 0, 0] * 254)
    pal.save(files.setdefault("P", tmp_path / "p.png"))
    pal.save(files.setdefault("P-transparency", tmp_path / "pt.png"), transparency=0)  # index 0 unused
    pal.save(files.setdefault("P-gif", tmp_path / "p.gif"))
    g16 = Image.fromarray(np.full((4, 6), 128 * 257, dtype=np.uint16))
    assert g16.mode == "I;16"
    g16.save(files.setdefault("I;16", tmp_path / "g16.png"))
    Image.fromarray(np.full((4, 6), 128 * 257, dtype=np.int32)).save(files.setdefault("I", tmp_path / "i32.tif"))
    return files


@pytest.mark.parametrize("channels", [1, 3])
def test_modes_convert_consistently(tmp_path, channels):
    files = _grey_files(tmp_path)
    opened = {}
    for k, p in files.items():
        with Image.open(p) as im:
            opened[k] = im.mode
    assert opened["I;16"].startswith("I;16") and opened["I"] == "I" and opened["CMYK-tif"] == "CMYK"
    assert opened["P-transparency"] == "P" and opened["LA"] == "LA"
    for kind, path in files.items():
        img = load_image(path, channels)
        assert img.mode == ("L" if channels == 1 else "RGB"), kind
        a = np.asarray(img)
        assert a.shape[:2] == (4, 6), kind
        assert a.min() >= 127 and a.max() <= 129, (kind, a.min(), a.max())


def test_sixteen_bit_scaled_not_clipped(tmp_path):
    vals = np.array([[0, 1000, 32896, 65535]], dtype=np.uint16)
    p = tmp_path / "ramp16.png"
    Image.fromarray(vals).save(p)
    got = np.asarray(load_image(p, 1))[0].tolist()
    assert got == [0, 4, 128, 255]


def test_alpha_composited_on_black(tmp_path):
    a = np.zeros((2, 2, 4), dtype=np.uint8)
    a[..., :3] = 200
    a[0, 0, 3] = 0  # transparent
    a[0, 1, 3] = 255  # opaque
    a[1, :, 3] = 128  # half
    p = tmp_path / "alpha.png"
    Image.fromarray(a, "RGBA").save(p)
    rgb = np.asarray(load_image(p, 3))
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == [200, 200, 200]
    assert abs(int(rgb[1, 0, 0]) - 100) <= 1
    assert np.asarray(load_image(p, 1))[0, 0] == 0


def test_grey_to_rgb_and_rgb_to_grey(tmp_path):
    p = tmp_path / "l.png"
    Image.fromarray(np.arange(24, dtype=np.uint8).reshape(4, 6) * 10).save(p)
    rgb = np.asarray(load_image(p, 3))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    q = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(q)
    assert (np.asarray(load_image(q, 1)) == rgb[..., 0]).all()


def test_load_image_bad_file_raises_dataerror(tmp_path):
    p = tmp_path / "bad.jpg"
    p.write_bytes(_encoded(_noise(64, 64), "JPEG")[:300])
    with pytest.raises(DataError, match="bad.jpg"):
        load_image(p, 3)


def test_bad_image_policy_fail_skip_and_all_bad(tmp_path):
    from ganzoo.data.files.bad_images import keep_good_images

    (tmp_path / "sub").mkdir()
    good = tmp_path / "a.png"
    _noise().save(good)
    bad = tmp_path / "sub" / "b.png"
    bad.write_bytes(b"")
    files = [good, bad]
    with pytest.raises(DataError, match=r"^1 bad image file\(s\) of 2 in .*, first sub/b\.png: zero-byte file; "
                                        r"set dataset\.on_bad_images=skip to skip them$"):
        keep_good_images(files, tmp_path, "fail")
    with pytest.warns(UserWarning, match="skipping 1 bad") as rec:
        assert keep_good_images(files, tmp_path, "skip") == [good]
    assert len(rec) == 1
    assert keep_good_images([str(good)], tmp_path, "fail") == [str(good)]
    with pytest.raises(DataError, match=r"all 1 image files in .* are bad \(first sub/b\.png: zero-byte file\)"):
        keep_good_images([bad], tmp_path, "skip")
    with pytest.raises(DataError, match=r"dataset\.on_bad_images='ignore' is not one of fail, skip"):
        keep_good_images(files, tmp_path, "ignore")

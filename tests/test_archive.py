"""Safe extraction: every unsafe tar/zip is refused whole, with nothing written outside the target
and no partial output inside it; good archives extract."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import warnings
import zipfile

import pytest

from ganzoo.data.base import DataError
from ganzoo.data.fetch.archive import Limits, copy_limited, safe_extract

GOOD = {"set/trainA/a.txt": b"alpha\n", "set/trainB/b.txt": b"beta\n" * 100, "set/readme": b"r"}
ZEROS = 20 << 20  # 20 MiB of zeros packs to ~20 kB: ratio ~1000:1


def _snapshot(root) -> dict[str, int]:
    """Every path under `root` (links not followed) with its size: what a refused extraction must not change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[p] = os.lstat(p).st_size
    return out


def _tar(path, members, mode="w"):
    """members: list of (TarInfo-like dict, bytes|None)."""
    with tarfile.open(path, mode) as tf:
        for name, data in GOOD.items():  # a good member first: refusal must come before any write
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for spec, data in members:
            ti = tarfile.TarInfo(spec["name"])
            for k, v in spec.items():
                if k != "name":
                    setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    """members: list of (name or ZipInfo, bytes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names warn
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in GOOD.items():
                zf.writestr(name, data)
            for info, data in members:
                zf.writestr(info, data)
    return path


def _zipinfo(name, mode):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    info.external_attr = mode << 16
    return info


def _refused(archive, tmp_path, match, limits=Limits()):
    dest = tmp_path / "work" / "out"
    dest.parent.mkdir(exist_ok=True)
    before = _snapshot(tmp_path)
    with pytest.raises(DataError, match=match) as err:
        safe_extract(archive, dest, limits)
    assert "\n" not in str(err.value)
    assert not os.path.lexists(dest), "partial output left in the target"
    assert _snapshot(tmp_path) == before, "something was written outside the target"
    return str(err.value)


def _tar_cases(tmp_path):
    abs_target = str(tmp_path / "abs_evil.txt")
    return {
        "dotdot": ([({"name": "../evil.txt"}, b"x")], "'../evil.txt'.*'\\.\\.'"),
        "dotdot_nested": ([({"name": "set/../../evil.txt"}, b"x")], "set/../../evil.txt"),
        "absolute": ([({"name": abs_target}, b"x")], "absolute path"),
        "symlink": ([({"name": "set/link", "type": tarfile.SYMTYPE, "linkname": "../../"}, None),
                     ({"name": "set/link/evil.txt"}, b"x")], "'set/link' is a symbolic link"),
        "hardlink": ([({"name": "set/hl", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)],
                     "'set/hl' is a hard link"),
        "chardev": ([({"name": "set/tty", "type": tarfile.CHRTYPE, "devmajor": 5, "devminor": 0}, None)],
                    "'set/tty' is a device"),
        "blockdev": ([({"name": "set/sda", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None)],
                     "'set/sda' is a device"),
        "fifo": ([({"name": "set/pipe", "type": tarfile.FIFOTYPE}, None)], "'set/pipe' is a FIFO"),
        "duplicate": ([({"name": "set/trainA/a.txt"}, b"again")], "appears twice"),
        "file_as_folder": ([({"name": "set/readme/inside.txt"}, b"x")], "inside 'set/readme', which is a file"),
    }


TAR_CASES = ["dotdot", "dotdot_nested", "absolute", "symlink", "hardlink", "chardev", "blockdev", "fifo", "duplicate",
             "file_as_folder"]


@pytest.mark.parametrize("case", TAR_CASES)
@pytest.mark.parametrize("gz", [False, True], ids=["tar", "tar.gz"])
def test_unsafe_tar_refused(tmp_path, case, gz):
    members, match = _tar_cases(tmp_path)[case]
    archive = _tar(tmp_path / ("a.tar.gz" if gz else "a.tar"), members, "w:gz" if gz else "w")
    _refused(archive, tmp_path, match)
    assert not (tmp_path / "abs_evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_tar_bomb_ratio_refused(tmp_path):
    archive = _tar(tmp_path / "bomb.tar.gz", [({"name": "set/zeros"}, bytes(ZEROS))], "w:gz")
    assert archive.stat().st_size < ZEROS / 100
    msg = _refused(archive, tmp_path, "ratio")
    assert "'set/zeros'" in msg


def test_tar_over_size_and_too_many_members_refused(tmp_path):
    big = _tar(tmp_path / "big.tar", [({"name": "set/big"}, os.urandom(4096))])
    _refused(big, tmp_path, "'set/big' takes the unpacked size past the limit of 2000", Limits(max_bytes=2000))
    many = _tar(tmp_path / "many.tar", [({"name": f"set/f{i}"}, b"x") for i in range(5)])
    _refused(many, tmp_path, "more than 4 members", Limits(max_members=4))


def _zip_cases(tmp_path):
    return {
        "dotdot": ([("../evil.txt", b"x")], "'\\.\\./evil.txt'.*'\\.\\.'"),
        "backslash_dotdot": ([("set\\..\\..\\evil.txt", b"x")], "'\\.\\.'"),
        "absolute": ([(zipfile.ZipInfo(str(tmp_path / "abs_evil.txt")), b"x")], "absolute path"),
        "drive": ([("C:/evil.txt", b"x")], "absolute path"),
        "symlink": ([(_zipinfo("set/link", stat.S_IFLNK | 0o777), b"../../")], "'set/link' is a symbolic link"),
        "fifo": ([(_zipinfo("set/pipe", stat.S_IFIFO | 0o644), b"")], "'set/pipe' is not a regular file"),
        "chardev": ([(_zipinfo("set/tty", stat.S_IFCHR | 0o644), b"")], "'set/tty' is not a regular file"),
        "duplicate": ([("set/trainA/a.txt", b"again")], "appears twice"),
    }


@pytest.mark.parametrize("case", ["dotdot", "backslash_dotdot", "absolute", "drive", "symlink", "fifo", "chardev",
                                  "duplicate"])
def test_unsafe_zip_refused(tmp_path, case):
    members, match = _zip_cases(tmp_path)[case]
    archive = _zip(tmp_path / "a.zip", members)
    _refused(archive, tmp_path, match)
    assert not (tmp_path / "abs_evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_bomb_ratio_refused(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", [("set/zeros", bytes(ZEROS))])
    msg = _refused(archive, tmp_path, "'set/zeros' unpacks .*ratio")
    assert "zip bomb" in msg


def test_zip_over_size_and_too_many_members_refused(tmp_path):
    big = _zip(tmp_path / "big.zip", [("set/big", os.urandom(4096))], zipfile.ZIP_STORED)
    _refused(big, tmp_path, "'set/big' takes the unpacked size past the limit", Limits(max_bytes=2000))
    many = _zip(tmp_path / "many.zip", [(f"set/f{i}", b"x") for i in range(5)])
    _refused(many, tmp_path, "members", Limits(max_members=4))


def test_zip_overlapping_members_refused(tmp_path):
    """Two directory entries pointing at one compressed stream (the non-recursive zip bomb)."""
    archive = _zip(tmp_path / "overlap.zip", [("set/x1", b"x" * 1000), ("set/x2", b"x" * 1000)])
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        first = zf.getinfo("set/x1").header_offset
    central = data.rfind(b"PK\x01\x02")  # the last central-directory entry: set/x2
    data[central + 42:central + 46] = first.to_bytes(4, "little")  # its local-header offset
    archive.write_bytes(bytes(data))
    _refused(archive, tmp_path, "'set/x2' overlaps the data of 'set/x1'")


def test_zip_lying_header_refused_while_streaming(tmp_path):
    """The central directory says 10 bytes, the data holds 5000: headers pass, the copy refuses, and the
    good members already written are removed with the target."""
    archive = _zip(tmp_path / "lie.zip", [("set/zz_lie", os.urandom(5000))], zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")  # uncompressed size
    archive.write_bytes(bytes(data))
    _refused(archive, tmp_path, "corrupt.*zz_lie")


def test_streaming_copy_enforces_declared_size_and_budget(tmp_path):
    with pytest.raises(DataError, match="more than the 50 bytes its header declares"):
        copy_limited(io.BytesIO(b"x" * 100), tmp_path / "a", declared=50, budget=10**6, archive=tmp_path / "z",
                     member="m")
    with pytest.raises(DataError, match="past the limit while extracting"):
        copy_limited(io.BytesIO(b"x" * 100), tmp_path / "b", declared=100, budget=60, archive=tmp_path / "z",
                     member="m")
    with pytest.raises(DataError, match="unpacks to 100 bytes, not the 200"):
        copy_limited(io.BytesIO(b"x" * 100), tmp_path / "c", declared=200, budget=10**6, archive=tmp_path / "z",
                     member="m")


def test_corrupt_and_non_archives_refused(tmp_path):
    good = _tar(tmp_path / "t.tar.gz", [], "w:gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[:-40])
    _refused(cut, tmp_path, "corrupt or truncated")
    text = tmp_path / "notes.zip"
    text.write_text("not an archive\n")
    _refused(text, tmp_path, "not a .zip, .tar or .tar.gz archive")


def _check_good(dest):
    got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == GOOD
    assert stat.S_IMODE(os.stat(dest / "set/readme").st_mode) & ~0o644 == 0  # plain modes, never the archive's


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_good_archive_extracts(tmp_path, kind):
    if kind == "zip":
        archive = _zip(tmp_path / "g.zip", [("set/empty_dir/", b"")])
    else:
        archive = _tar(tmp_path / f"g.{kind}", [({"name": "./set/empty_dir", "type": tarfile.DIRTYPE}, None)],
                       "w:gz" if kind == "tar.gz" else "w")
    dest = tmp_path / "out"
    assert safe_extract(archive, dest) == len(GOOD)
    _check_good(dest)
    assert (dest / "set" / "empty_dir").is_dir()


def test_existing_destination_refused(tmp_path):
    archive = _zip(tmp_path / "g.zip", [])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"

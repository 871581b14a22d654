"""Checkpoint files: atomic writes, hash verification, fallback, retention, safe loading."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from ganzoo import checkpoint as ck


def _payload(step: int) -> dict:
    return {"format": ck.FORMAT_VERSION, "step": step, "w": torch.full((4,), float(step))}


def test_save_load_roundtrip_and_latest(tmp_path):
    for step in (1, 2, 3, 4):
        ck.save_checkpoint(tmp_path, step, _payload(step), keep=2)
    files = sorted(p.name for p in ck.ckpt_dir(tmp_path).iterdir())
    assert files == ["latest.json", "step_00000003.pt", "step_00000003.pt.sha256", "step_00000004.pt",
                     "step_00000004.pt.sha256"]
    assert json.loads((ck.ckpt_dir(tmp_path) / "latest.json").read_text())["step"] == 4
    got = ck.load_run(tmp_path)
    assert got["step"] == 4 and torch.equal(got["w"], torch.full((4,), 4.0))


def test_keep_is_at_least_two(tmp_path):
    for step in (1, 2, 3):
        ck.save_checkpoint(tmp_path, step, _payload(step), keep=1)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [3, 2]


def test_failed_write_keeps_previous_latest_loadable(tmp_path, monkeypatch):
    ck.save_checkpoint(tmp_path, 1, _payload(1))
    before = (ck.ckpt_dir(tmp_path) / "latest.json").read_text()

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path, 2, _payload(2))
    monkeypatch.undo()
    assert (ck.ckpt_dir(tmp_path) / "latest.json").read_text() == before
    assert not list(ck.ckpt_dir(tmp_path).glob(".*tmp")), "temp file left behind"
    assert ck.load_run(tmp_path)["step"] == 1


def test_corrupt_newest_falls_back_with_warning(tmp_path):
    ck.save_checkpoint(tmp_path, 1, _payload(1))
    p2 = ck.save_checkpoint(tmp_path, 2, _payload(2))
    data = bytearray(p2.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p2.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="SHA-256 mismatch"):
        assert ck.load_run(tmp_path)["step"] == 1


def test_stray_temp_files_removed_by_next_save(tmp_path):
    d = ck.ckpt_dir(tmp_path)
    d.mkdir(parents=True)
    (d / ".step_00000005.pt.123.tmp").write_bytes(b"junk")
    ck.save_checkpoint(tmp_path, 6, _payload(6))
    assert not list(d.glob(".*.tmp"))


def test_missing_run_and_empty_run_are_one_line_errors(tmp_path):
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.load_run(tmp_path / "nope")
    with pytest.raises(ck.CheckpointError, match="no usable checkpoint"):
        ck.load_run(tmp_path)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/ganzoo-pwned-marker",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = "/tmp/ganzoo-pwned-marker"
    import os

    if os.path.exists(marker):
        os.remove(marker)
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"format": 1, "x": _Evil()}, f)
    with pytest.raises(ck.CheckpointError) as err:
        ck.load_checkpoint(p)
    assert not os.path.exists(marker)
    msg = str(err.value)  # says what the file is, never torch's advice to turn the safety off
    assert "not a ganzoo checkpoint" in msg and "hostile" in msg and "not loaded" in msg
    assert "weights_only" not in msg and "\n" not in msg


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_truncated_or_empty_newest_falls_back(tmp_path, damage):
    ck.save_checkpoint(tmp_path, 1, _payload(1))
    p2 = ck.save_checkpoint(tmp_path, 2, _payload(2))
    data = p2.read_bytes()
    p2.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"")
    with pytest.warns(UserWarning, match="SHA-256 mismatch"):
        assert ck.load_run(tmp_path)["step"] == 1


def test_every_checkpoint_corrupt_is_a_one_line_error_not_a_fresh_start(tmp_path):
    p = ck.save_checkpoint(tmp_path, 1, _payload(1))
    p.write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(ck.CheckpointError, match="no usable checkpoint"):
        ck.load_run(tmp_path)

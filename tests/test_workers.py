"""Reliability R15: a hung or dead DataLoader worker is a one-line DataError, never a hang, and the
stream resumes exactly from its last good batch afterwards."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from ganzoo.data.base import DataError, DataInfo, ImageDataset, TensorImageDataset
from ganzoo.data.loader import BatchStream, worker_failure

N, BATCH = 32, 4


class _Tiny(TensorImageDataset):
    """32 distinct 1x8x8 images, served one item at a time by DataLoader workers (no tensors() fast
    path). `bad`: the index that misbehaves; `once`: a marker file, misbehave only while it exists."""

    tensors = ImageDataset.tensors  # no fast path

    def __init__(self, bad: int | None = None, once: str | None = None):
        images = torch.arange(N, dtype=torch.uint8)[:, None, None, None].expand(N, 1, 8, 8).contiguous()
        info = DataInfo(name="tiny", channels=1, resolution=8, num_classes=N, size=N, fields=("image", "label"))
        super().__init__(info, images, torch.arange(N))
        self.bad, self.once = bad, once

    def misbehaves(self, i: int) -> bool:
        if i != self.bad:
            return False
        if self.once is None:
            return True
        try:
            os.remove(self.once)
            return True
        except FileNotFoundError:
            return False

    def __getitem__(self, i: int):
        if self.misbehaves(i):
            self.act()
        return super().__getitem__(i)

    def act(self) -> None:
        raise NotImplementedError


class _Hangs(_Tiny):
    def act(self) -> None:
        time.sleep(60)  # a read that never returns


class _Dies(_Tiny):
    def act(self) -> None:
        time.sleep(0.5)  # let the main process be waiting for this batch (as in training)
        os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does


def _stream(dataset, **kw) -> BatchStream:
    kw.setdefault("num_workers", 1)
    return BatchStream(dataset, batch_size=BATCH, seed=3, device=torch.device("cpu"), preload=False,
                       worker_timeout=kw.pop("worker_timeout", 10), **kw)


def _bad_index(position: int) -> int:
    """The dataset index that the stream (seed 3) serves at `position` of epoch 0."""
    return int(_stream(_Tiny())._plan(0).perm[position])


@pytest.mark.timeout(60)
def test_hung_worker_times_out_with_one_line():
    stream = _stream(_Hangs(bad=_bad_index(2 * BATCH + 1)), worker_timeout=2)
    assert not stream.preloaded
    t0 = time.monotonic()
    with pytest.raises(DataError) as err:
        for _ in range(N // BATCH):
            next(stream)
    elapsed = time.monotonic() - t0
    assert elapsed < 20, elapsed  # 2 s timeout + up to 5 s to stop the hung worker
    msg = str(err.value)
    assert "\n" not in msg
    assert "trainer.worker_timeout=2s" in msg and "trainer.num_workers=0" in msg, msg
    assert stream.state() == {"epoch": 0, "index": 2 * BATCH}  # the two good batches, no more


@pytest.mark.timeout(60)
def test_killed_worker_is_named_not_hung():
    stream = _stream(_Dies(bad=_bad_index(BATCH + 2)), num_workers=2)
    with pytest.raises(DataError) as err:
        for _ in range(N // BATCH):
            next(stream)
    msg = str(err.value)
    assert "\n" not in msg
    assert "worker died (killed by signal 9 (SIGKILL))" in msg and "trainer.num_workers" in msg, msg
    assert stream.state() == {"epoch": 0, "index": BATCH}


@pytest.mark.timeout(60)
def test_resume_after_dead_worker_is_exact(tmp_path):
    reference = _stream(_Tiny())
    expected = [next(reference) for _ in range(N // BATCH + 2)]  # into the second epoch

    marker = tmp_path / "kill-once"
    marker.touch()
    stream = _stream(_Dies(bad=_bad_index(3 * BATCH), once=str(marker)))
    got = []
    with pytest.raises(DataError, match="worker died"):
        for _ in range(N // BATCH):
            got.append(next(stream))
    assert len(got) == 3 and not marker.exists()
    last_good = stream.state()
    assert last_good == {"epoch": 0, "index": 3 * BATCH}

    fresh = _stream(_Dies(bad=_bad_index(3 * BATCH), once=str(marker)))
    fresh.load_state(last_good)
    got += [next(fresh) for _ in range(len(expected) - 3)]
    assert next(stream)["label"].tolist() == expected[3]["label"].tolist()  # the failed stream goes on too
    for a, b in zip(got, expected):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_errors_raised_by_the_dataset_are_left_alone():
    assert worker_failure(RuntimeError("CUDA error: out of memory"), 2) is None
    assert worker_failure(ValueError("DataLoader timed out after 2 seconds"), 2) is None
    exited = RuntimeError("DataLoader worker (pid(s) 123) exited unexpectedly")
    exited.__cause__ = RuntimeError("DataLoader worker (pid 123) is killed by signal: Bus error. It is possible...")
    assert "SIGBUS" in worker_failure(exited, 2) and "shared memory" in worker_failure(exited, 2)
    code = RuntimeError("DataLoader worker (pid 9) exited unexpectedly with exit code 1. Details are lost")
    assert "exit code 1" in worker_failure(code, 2)


class _Corrupt(_Tiny):
    def act(self) -> None:
        raise DataError("cannot load image x.jpg: truncated")


@pytest.mark.timeout(60)
def test_dataset_error_in_worker_keeps_its_message():
    stream = _stream(_Corrupt(bad=_bad_index(1)))
    with pytest.raises(DataError, match="cannot load image x.jpg: truncated"):
        next(stream)

"""benchmarks/bench.py runs end to end on the smallest config (CPU, tiny step counts).

These check the structure of the results, never the timings: a smoke test, not a measurement.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ganzoo_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


pytestmark = pytest.mark.usefixtures("restore_torch_globals")  # the scripts set threads and seeds (conftest)


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_import_has_no_side_effects(bench, capsys):
    assert bench.__doc__ and "bare" in bench.__doc__
    assert set(bench.DEFAULT_MODELS.split(",")) == {"gan", "dcgan28", "dcgan64", "pix2pix64", "pix2pix256", "cyclegan64",
                                                    "cyclegan256"}
    assert set(bench.CONFIGS) == {*bench.DEFAULT_MODELS.split(","), "pix2pix32", "pix2pix128", "cyclegan32",
                                  "cyclegan128"}
    assert capsys.readouterr().out == ""


def test_quick_run_structure(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = bench.main(["--quick", "--device", "cpu", "--models", "gan", "--no-memory", "--threads", "1",
                          "--json", str(out)])
    assert len(results) == 1
    r = results[0]
    assert (r.config, r.device, r.batch, r.threads) == ("gan", "cpu", 64, 1)
    assert r.steps_per_round == 2 and r.rounds == 2
    assert len(r.ganzoo_round_s) == len(r.bare_round_s) == 2
    assert _positive(r.ganzoo_steps_per_s) and _positive(r.bare_steps_per_s)
    assert r.overhead == pytest.approx(r.bare_steps_per_s / r.ganzoo_steps_per_s)
    assert _positive(r.sample_images_per_s)
    assert r.ganzoo_mem_mb is None and r.bare_mem_mb is None  # --no-memory

    printed = capsys.readouterr().out
    assert "GAN (MLP)" in printed and "overhead" in printed and f"torch {torch.__version__}" in printed
    saved = json.loads(out.read_text())
    assert saved["torch"] == torch.__version__ and saved["threads"] == 1
    assert saved["results"][0]["config"] == "gan"
    assert saved["results"][0]["overhead"] == pytest.approx(r.overhead)


def test_both_loops_start_from_the_same_nets_and_data(bench):
    loops = bench.build_loops(bench.CONFIGS["gan"], torch.device("cpu"))
    trainer, bare = loops["ganzoo"].trainer, loops["bare"]
    for mine, theirs in ((trainer.model.G, bare.G), (trainer.model.D, bare.D)):
        assert mine is not theirs
        for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()
    assert bare.images is trainer.stream.data["image"]
    for opt in (*trainer.opt.values(), bare.opt_g, bare.opt_d):
        group = opt.param_groups[0]
        assert isinstance(opt, torch.optim.Adam) and (group["fused"] or group["foreach"])
        assert (group["lr"], tuple(group["betas"]), group["weight_decay"]) == (2e-4, (0.5, 0.999), 0.0)


def test_memory_probe_in_a_fresh_process(bench):
    m = bench.probe_in_subprocesses("gan", "cpu", steps=1, threads=1, loops=("bare",))
    assert set(m) == {"bare"}
    assert m["bare"]["kind"].startswith("peak RSS")
    assert _positive(m["bare"]["setup_mb"]) and m["bare"]["peak_mb"] >= m["bare"]["setup_mb"]


@pytest.mark.parametrize("key,nets", [("pix2pix64", ("G", "D")), ("cyclegan64", ("G_A", "G_B", "D_A", "D_B"))])
def test_translation_loops_share_nets_and_data_and_step(bench, key, nets):
    loops = bench.build_loops(bench.CONFIGS[key], torch.device("cpu"))
    trainer, bare = loops["ganzoo"].trainer, loops["bare"]
    assert trainer.stream.batch_size == 1 and bare.batches.batch == 1
    assert bare.batches.a is trainer.stream.data["A"] and bare.batches.b is trainer.stream.data["B"]
    before = {}
    for n in nets:
        mine, theirs = getattr(trainer.model, n), getattr(bare, n)
        for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()
        before[n] = [q.detach().clone() for q in theirs.parameters()]
    bare.step()
    for n in nets:  # one bare step trains every net
        assert any(not torch.equal(b, q) for b, q in zip(before[n], getattr(bare, n).parameters())), n

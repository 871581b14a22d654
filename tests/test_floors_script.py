"""benchmarks/floors.py: seed lists, the distribution summary and the budget options (no training); and
benchmarks/switches.py on one small config."""

import importlib.util
import sys
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("floors", Path(__file__).parents[1] / "benchmarks" / "floors.py")
floors = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(floors)


def test_parse_seeds():
    assert floors.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert floors.parse_seeds("0,3,7") == [0, 3, 7]
    assert floors.parse_seeds("1-3,9") == [1, 2, 3, 9]
    for bad in ("a", "1-", "0,0", ""):
        with pytest.raises(SystemExit):
            floors.parse_seeds(bad)


def test_summary_reports_pass_rate_and_worst():
    runs = [{"seed": s, "AtoB_accuracy_ratio": 0.9 + s / 100, "BtoA_accuracy_ratio": 0.85, "cycle_l1": 0.02 + s / 100,
             "met": s < 2} for s in range(4)]
    out = floors.summarise("cyclegan", runs)
    assert out["pass_rate"] == "2/4" and out["passed"] == 2
    assert out["AtoB_accuracy_ratio"]["worst"] == out["AtoB_accuracy_ratio"]["min"] == pytest.approx(0.9)
    assert out["cycle_l1"]["worst"] == out["cycle_l1"]["max"] == pytest.approx(0.05)  # lower is better
    assert out["cycle_l1"]["median"] == pytest.approx(0.035)


def test_every_model_has_a_step_budget():
    assert set(floors.STEPS) == set(floors.RUNS)


@pytest.mark.parametrize("args", [["--steps", "10", "--minutes", "1"], ["--", "seed=3"], ["--jobs", "0"]])
def test_bad_options_exit_before_training(monkeypatch, args):
    monkeypatch.setattr(sys, "argv", ["floors.py", "cgan", *args])
    monkeypatch.setattr(floors, "one_seed", lambda a, seed: pytest.fail("trained despite bad options"))
    with pytest.raises(SystemExit):
        floors.main()


@pytest.mark.usefixtures("restore_torch_globals")  # switches.main sets 1 thread and seeds
def test_the_switch_benchmark_measures_each_switch_and_counts_flops():
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import switches

    (r,) = switches.main(["--models", "gan", "--switches", "bf16,channels_last,cudnn_benchmark", "--steps", "1",
                          "--rounds", "1", "--threads", "1", "--device", "cpu"])
    assert r["baseline_steps_per_s"] > 0 and r["bf16"]["speedup"] > 0 and r["channels_last"]["steps_per_s"] > 0
    assert "cudnn_benchmark" not in r  # a CUDA switch: not measured on the CPU
    assert r["flops_per_step"] > 1e8  # the GAN's 1200-1200 MLPs on a batch of 64, forward and backward


def test_sr_floor_seeds_train_in_their_own_folders_and_srgan_starts_from_its_seeds_srresnet(monkeypatch):
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    spec = importlib.util.spec_from_file_location("sr_floor", Path(__file__).parents[1] / "benchmarks" / "sr_floor.py")
    sr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sr)
    calls = []
    monkeypatch.setattr(sr.subprocess, "run", lambda args, **kw: calls.append(args))
    sr.main(["srgan", "--seeds", "0,2", "--jobs", "1"])
    assert len(calls) == 2
    for seed, args in zip((0, 2), calls, strict=True):
        assert f"seed={seed}" in args
        assert args.index(f"hydra.run.dir={sr.ROOT / 'runs/srgan' / f'seed{seed}'}") > args.index(
            f"hydra.run.dir={sr.ROOT / 'runs/srgan'}")  # the later one wins (Hydra: the last override)
        assert args[-1] == f"model.init_from={sr.ROOT / 'runs/srresnet' / f'seed{seed}'}"
    calls.clear()
    sr.main(["srresnet"])  # no --seeds: seed 0's layout as before
    assert not any(a.startswith("seed=") for a in calls[0])
    with pytest.raises(SystemExit):
        sr.main(["srresnet", "--seeds", "0,0"])

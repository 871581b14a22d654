"""Quality floors on real MNIST: train a model at a fixed step budget on several seeds, then `ganzoo eval`.

    .venv/bin/python benchmarks/floors.py cgan [--seeds 0-4] [--steps N] [--jobs 2] [--threads 1]
        [--data ../shared/data] [--out runs/floors] [-- extra ganzoo overrides ...]
    .venv/bin/python benchmarks/floors.py cgan --minutes 15 [--clock wall|cpu]    # time-to-quality mode

A floor is a property of the recipe, so it is measured at a fixed number of steps (`--steps`, default the
recipe's own budget in `STEPS`: the official run length where there is one, else what an idle 2-core
machine runs in about 15 minutes) over several seeds (`--seeds`: "0-4", "0,3,7", "1-3,9"), and reported
as a distribution: the pass rate, and min / median / max of each floor metric. How fast a step is here
is a different question (`make bench`); each seed's wall time and steps/s are recorded beside it.

Each run uses `--threads` threads (OMP_NUM_THREADS; default 2 with one job, 1 with several) and
`--jobs` runs go side by side (two one-thread runs on 2 cores). A result does not depend on how many
run at once: a run's arithmetic depends on its seed, its step budget and its own thread count only
(the thread count changes the float rounding of reductions, so compare results at the same
`--threads`, which the report records).

`--minutes` keeps the older time-to-quality mode: each run is stopped with SIGTERM — ganzoo's graceful
stop: a checkpoint at the next step boundary — once its budget is spent:

    --clock wall (default)  `--minutes` of wall time since the training process started (its start-up
                            and data loading included). The honest reading on a quiet machine; on a
                            loaded one it only gives the run fewer steps.
    --clock cpu             `--minutes` x `--threads` of the process's CPU time (user + system, from
                            /proc), for a machine shared with other jobs.

The report records the threads, steps, wall and CPU seconds and the 1-minute load average before and
after. Then `ganzoo eval` writes <run>/metrics.json and the floor is checked on every seed:

    cgan    conditional_accuracy >= 0.90        acgan   conditional_accuracy >= 0.95
    infogan code_accuracy >= 0.90               ssgan   test_accuracy >= 0.95 (error <= 5 %) and
                                                        >= 10 points above supervised-only (--baseline)
    pix2pix (MNIST edges -> digits)  AtoB_accuracy_ratio >= 0.95
    cyclegan (MNIST digits <-> edges, disjoint halves)  both accuracy ratios >= 0.80, cycle_l1 <= 0.05
    cogan   (MNIST digits & edges, disjoint halves)     pixel_agreement >= 0.90
    cogan_adapt (MNIST -> negative MNIST)               target_accuracy >= 0.90 and >= 30 points above
                                                        the source-only classifier (--baseline)
    dtn     (MNIST digits -> edges, frozen f)           AtoB_accuracy >= 0.80, AtoB_target_identity_l1 <= 0.1,
                                                        and >= 5 points above alpha = 0 (--baseline)
    unit    (MNIST digits <-> edges, disjoint halves)   AtoB_accuracy >= 0.85, recon_l1 <= 0.05

`--baseline` (the models in BASELINES) also trains each seed without what the run measures — ssgan: the
same D on the 100 labels alone (`model.unlabeled_weight=0`, no G) — at `--baseline-steps` (default
`--steps`) and reports both; the floor asks for the gain BASELINES states. Exit
status 0 when every floor is met on every seed, else 1. Writes <out>/<model>_floor.json and prints
the commands it runs, so each number in docs/models.md can be reproduced by hand.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

MNIST = ["dataset=mnist", "dataset.root={data}", "dataset.download=false"]
# the translation floors: MNIST-derived edges <-> digits at 32 px (research/model-specs.md sections 7, 8)
PAIRS = ["dataset.source=mnist", "dataset.root={data}", "dataset.download=false", "trainer.max_epochs=null"]
# DTN with the paper's 128-d f, g at half and D at quarter width, batch 64 and a fixed step budget (CPU-sized;
# docs/models.md: the 64-d f with a quarter-width g cannot redraw the targets under the identity floor)
DTN_QUICK = ["model.f_width=64", "model.ngf=64", "model.ndf=32", "model.f_epochs=1", "trainer.batch_size=64"]
# model -> (ganzoo overrides for the floor run, [(metric, ">=" | "<=", bound), ...])
# CoGAN: real MNIST digits & a derived domain on disjoint halves (digits_unpaired at 28 px: the paper's nets
# exactly), the shared G trunk at half width (ngf 64: ~4x cheaper than 128)
COGAN = ["model=cogan", "dataset=digits_unpaired", "dataset.source=mnist", "dataset.root={data}",
         "dataset.download=false", "dataset.resolution=28", "model.ngf=64"]
RUNS = {
    "cgan": (["model=cgan", *MNIST], [("conditional_accuracy", ">=", 0.90)]),
    # the paper's CIFAR nets at a third (G) and half (D) width and batch 64: 12.5 steps/s on 2 threads
    "acgan": (["model=acgan", *MNIST, "model.ngf=32", "model.ndf=8", "trainer.batch_size=64"],
              [("conditional_accuracy", ">=", 0.95)]),
    # the official nets at half width (ngf = ndf 32, fc 512; ~4x cheaper: 9 steps/s on one thread), the official
    # batch 128 and run length (5,000 updates); the bar of issue 18 (>= 90 % on every seed), above model-specs' 80 %
    "infogan": (["model=infogan", *MNIST, "model.ngf=32", "model.ndf=32", "model.fc_dim=512"],
                [("code_accuracy", ">=", 0.90)]),
    "ssgan": (["model=ssgan", *MNIST], [("test_accuracy", ">=", 0.95)]),
    "pix2pix": (["model=pix2pix", "dataset=digits_pairs", *PAIRS, "model.netG=unet_32", "model.ngf=32",
                 "model.ndf=32", "trainer.batch_size=16"], [("AtoB_accuracy_ratio", ">=", 0.95)]),
    "cyclegan": (["model=cyclegan", "dataset=digits_unpaired", *PAIRS, "model.netG=resnet_6blocks", "model.ngf=16",
                  "model.ndf=16", "trainer.batch_size=4"],
                 [("AtoB_accuracy_ratio", ">=", 0.80), ("BtoA_accuracy_ratio", ">=", 0.80), ("cycle_l1", "<=", 0.05)]),
    "cogan": ([*COGAN], [("pixel_agreement", ">=", 0.90)]),
    "cogan_adapt": ([*COGAN, "dataset.domain=negative", "model.adapt=true"], [("target_accuracy", ">=", 0.90)]),
    # DTN, MNIST digits -> edges with a frozen f trained on the digit half (once; cached)
    "dtn": (["model=dtn", *PAIRS, *DTN_QUICK], [("AtoB_accuracy", ">=", 0.80), ("AtoB_target_identity_l1", "<=", 0.1)]),
    # UNIT at its defaults (batch 1 as the official code): 0.06-0.08 CPU-s a step on one thread
    "unit": (["model=unit", "dataset=digits_unpaired", *PAIRS], [("AtoB_accuracy", ">=", 0.85), ("recon_l1", "<=", 0.05)]),
}
# model -> the default step budget: the official run length where there is one, else about what an idle
# 2-core machine runs in 15 minutes (docs/models.md, "Measured quality")
STEPS = {"cgan": 50000, "acgan": 11000, "infogan": 5000, "ssgan": 24000, "pix2pix": 2000, "cyclegan": 2700,
         "cogan": 1500, "cogan_adapt": 1500, "dtn": 3000, "unit": 10000}
# --baseline: (folder suffix, the overrides that remove what the run measures, the gain over it the floor asks)
BASELINES = {"ssgan": ("labels_only", ["model.unlabeled_weight=0"], 0.10),  # the same D on the 100 labels alone
             "cogan_adapt": ("source_only", ["model.source_only=true"], 0.30),  # the class net on the source alone
             "dtn": ("alpha0", ["model.alpha=0"], 0.05)}  # no f-constancy (the paper's ablation)
TICK = os.sysconf("SC_CLK_TCK")


def parse_seeds(text: str) -> list[int]:
    """"0-4" -> [0, 1, 2, 3, 4]; "0,3,7"; "1-3,9"."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
        except ValueError:
            raise SystemExit(f"--seeds {text!r}: use a list or ranges of integers, e.g. 0-4 or 0,3,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {text!r}: give each seed once, e.g. 0-4")
    return seeds


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process and its reaped children, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime


def train(name: str, run_dir: Path, data: str, extra: list[str], *, threads: int, steps: int | None = None,
          minutes: float | None = None, clock: str = "wall") -> dict:
    """One training run: to `steps` (it ends by itself), or stopped by SIGTERM after `minutes`."""
    ganzoo = [sys.executable, "-m", "ganzoo"]
    budget = [f"trainer.max_steps={steps if steps else 1000000}"]
    cmd = [*ganzoo, "train", *(o.format(data=data) for o in RUNS[name][0]), *budget, "trainer.progress=false",
           "trainer.log_every=500", "trainer.ckpt_every=2000", "trainer.device=cpu", f"hydra.run.dir={run_dir}",
           "overwrite=true", *extra]  # overwrite: a rerun starts afresh
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print(f"+ OMP_NUM_THREADS={threads}", " ".join(cmd), flush=True)
    load0, t0 = os.getloadavg()[0], time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL if steps else None)
    cpu = 0.0
    try:
        while proc.poll() is None:
            cpu = cpu_seconds(proc.pid)
            spent = cpu / threads if clock == "cpu" else time.time() - t0
            if minutes is not None and spent >= minutes * 60:
                proc.send_signal(signal.SIGTERM)  # graceful: checkpoint at the next step, exit 143
                proc.wait()
                break
            time.sleep(0.5)
    except BaseException:
        proc.kill()
        raise
    if proc.returncode not in (0, 128 + signal.SIGTERM):
        raise RuntimeError(f"training {name} in {run_dir} failed with exit status {proc.returncode}")
    done = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["step"]
    wall = time.time() - t0
    return {"steps": done, "threads": threads, "wall_s": round(wall, 1), "steps_per_s": round(done / wall, 2),
            "cpu_s": round(cpu, 1), "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
            **({"clock": clock, "minutes": minutes} if minutes is not None else {})}


def evaluate(run_dir: Path, threads: int) -> dict:
    cmd = [sys.executable, "-m", "ganzoo", "eval", f"run={run_dir}", "device=cpu"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                   stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


def passes(value: float | None, op: str, bound: float) -> bool:
    return value is not None and (value >= bound if op == ">=" else value <= bound)


def one_seed(a: argparse.Namespace, seed: int) -> dict:
    """Train and evaluate one seed (and its labels-only baseline with --baseline); the seed's report."""
    checks = RUNS[a.model][1]
    budget = {"threads": a.threads, "steps": a.steps, "minutes": a.minutes, "clock": a.clock}
    run_dir = Path(a.out) / a.model / f"seed{seed}"
    report = {"seed": seed, **train(a.model, run_dir, a.data, [f"seed={seed}", *a.extra], **budget)}
    m = evaluate(run_dir, a.threads)
    for metric, _op, _bound in checks:
        report[metric] = m.get(metric)
    if a.model == "ssgan" and "test_accuracy_ema" in m:
        report["test_accuracy_ema"] = m["test_accuracy_ema"]
    ok = all(passes(report[metric], op, bound) for metric, op, bound in checks)
    if a.baseline:
        metric = checks[0][0]
        suffix, change, gain = BASELINES[a.model]
        base_dir = Path(a.out) / a.model / f"seed{seed}_{suffix}"
        base = {**budget, "steps": (a.baseline_steps or a.steps) if a.minutes is None else None,
                "minutes": None if a.minutes is None else (a.baseline_minutes or a.minutes)}
        report["baseline"] = train(a.model, base_dir, a.data, [f"seed={seed}", *a.extra, *change], **base)
        report["baseline"][metric] = evaluate(base_dir, a.threads).get(metric)
        ok = ok and report[metric] is not None and report[metric] - report["baseline"][metric] >= gain
    report["met"] = ok
    print(json.dumps(report), flush=True)
    return report


def summarise(model: str, per_seed: list[dict]) -> dict:
    """Pass rate and min / median / max of each floor metric over the seeds."""
    out = {"seeds": len(per_seed), "passed": sum(r["met"] for r in per_seed)}
    out["pass_rate"] = f"{out['passed']}/{out['seeds']}"
    for metric, op, _bound in RUNS[model][1]:
        vals = sorted(r[metric] for r in per_seed if r.get(metric) is not None)
        if vals:
            worst = vals[0] if op == ">=" else vals[-1]
            out[metric] = {"min": vals[0], "median": statistics.median(vals), "max": vals[-1], "worst": worst}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=sorted(RUNS))
    p.add_argument("--seeds", default="0", help='seeds to run: "0-4", "0,3,7", "1-3,9" (default 0)')
    p.add_argument("--steps", type=int, default=None, help="the step budget (default: STEPS[model])")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side (two one-thread runs on 2 cores)")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS of each run and its eval (default 2 with one job, else 1)")
    p.add_argument("--minutes", type=float, default=None, help="time-to-quality mode: a time budget instead of steps")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="with --minutes: wall time, or minutes x threads of CPU time (a shared machine)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                   help="root holding MNIST/raw (torchvision layout)")
    p.add_argument("--out", default="runs/floors", help="parent folder of the runs")
    p.add_argument("--baseline", action="store_true",
                   help="also train the run without what it measures (BASELINES: ssgan: D on the labels alone)")
    p.add_argument("--baseline-steps", type=int, default=None,
                   help="the baseline's step budget (default: --steps; ssgan's converges in ~3,000)")
    p.add_argument("--baseline-minutes", type=float, default=None, help="with --minutes: the baseline's budget")
    a, extra = p.parse_known_args()
    a.extra = [x for x in extra if x != "--"]  # more ganzoo overrides, e.g. -- trainer.batch_size=64
    if any(x.startswith(("seed=", "trainer.max_steps=")) for x in a.extra):
        raise SystemExit("give seeds with --seeds and the budget with --steps, not as ganzoo overrides")
    seeds = parse_seeds(a.seeds)
    a.threads = a.threads or (2 if a.jobs == 1 else 1)
    if a.minutes is None:
        a.steps = a.steps or STEPS[a.model]
    elif a.steps:
        raise SystemExit("--steps and --minutes are two modes: give one")
    if a.baseline and a.model not in BASELINES:
        raise SystemExit(f"--baseline: {a.model} has none (models with one: {', '.join(sorted(BASELINES))})")
    if a.jobs < 1 or a.threads < 1:
        raise SystemExit("--jobs and --threads must be at least 1")
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        per_seed = list(pool.map(lambda seed: one_seed(a, seed), seeds))
    report = {"model": a.model, "budget": {"steps": a.steps} if a.minutes is None else
              {"minutes": a.minutes, "clock": a.clock}, "threads": a.threads, "jobs": a.jobs,
              "floor": [f"{m} {op} {b}" for m, op, b in RUNS[a.model][1]],
              "summary": summarise(a.model, per_seed), "per_seed": per_seed}
    report["met"] = report["summary"]["passed"] == len(seeds)
    print(json.dumps(report, indent=2))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"{a.model}_floor.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())

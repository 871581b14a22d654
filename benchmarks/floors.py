"""Quality floors on real MNIST: train a model under a time budget, then `ganzoo eval` it.

    .venv/bin/python benchmarks/floors.py cgan [--minutes 15] [--threads 2] [--clock wall|cpu]
        [--data ../shared/data] [--out runs/floors] [-- extra ganzoo overrides ...]

The issue's floors say "after at most 15 minutes of training on 2 CPU cores". The run uses
`--threads` threads (OMP_NUM_THREADS; default 2) and is stopped with SIGTERM — ganzoo's graceful
stop: a checkpoint at the next step boundary — once its budget is spent:

    --clock wall (default)  `--minutes` of wall time since the training process started (its start-up
                            and data loading included). The honest reading on a quiet machine; on a
                            loaded one it only gives the run fewer steps.
    --clock cpu             `--minutes` x `--threads` of the process's CPU time (user + system, from
                            /proc), for a machine shared with other jobs: the run gets what N cores
                            for `--minutes` would give it (busy-waiting threads count against it).

The report records the threads, clock, wall and CPU seconds and the 1-minute load average before and
after, so a number measured on a busy machine can be told from a quiet one. Then `ganzoo eval` writes
<run>/metrics.json and the floor is checked:

    cgan    conditional_accuracy >= 0.90        acgan   conditional_accuracy >= 0.95
    infogan code_accuracy >= 0.80               ssgan   test_accuracy >= 0.95 (error <= 5 %) and
                                                        >= 10 points above supervised-only (--baseline)
    pix2pix (MNIST edges -> digits)  AtoB_accuracy_ratio >= 0.95
    cyclegan (MNIST digits <-> edges, disjoint halves)  both accuracy ratios >= 0.80, cycle_l1 <= 0.05
    unit     (MNIST digits <-> edges, disjoint halves)  AtoB_accuracy >= 0.85, recon_l1 <= 0.05

A run whose overrides fix `trainer.max_steps` (unit) stops there, or at the time budget if that comes
first; the others train until the budget is spent.

`--baseline` (ssgan) also trains the same D on the 100 labels alone (`model.unlabeled_weight=0`, no
G) under the same budget (or `--baseline-minutes`), and reports both. Exit status 0 when every floor
checked is met, else 1.
Prints the commands it runs, so each number in docs/models.md can be reproduced by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MNIST = ["dataset=mnist", "dataset.root={data}", "dataset.download=false"]
# the translation floors: MNIST-derived edges <-> digits at 32 px (research/model-specs.md sections 7, 8)
PAIRS = ["dataset.source=mnist", "dataset.root={data}", "dataset.download=false", "trainer.max_epochs=null"]
# model -> (ganzoo overrides for the floor run, [(metric, ">=" | "<=", bound), ...])
RUNS = {
    "cgan": (["model=cgan", *MNIST], [("conditional_accuracy", ">=", 0.90)]),
    "acgan": (["model=acgan", *MNIST], [("conditional_accuracy", ">=", 0.95)]),
    "infogan": (["model=infogan", *MNIST], [("code_accuracy", ">=", 0.80)]),
    "ssgan": (["model=ssgan", *MNIST], [("test_accuracy", ">=", 0.95)]),
    "pix2pix": (["model=pix2pix", "dataset=digits_pairs", *PAIRS, "model.netG=unet_32", "model.ngf=32",
                 "model.ndf=32", "trainer.batch_size=16"], [("AtoB_accuracy_ratio", ">=", 0.95)]),
    "cyclegan": (["model=cyclegan", "dataset=digits_unpaired", *PAIRS, "model.netG=resnet_6blocks", "model.ngf=16",
                  "model.ndf=16", "trainer.batch_size=4"],
                 [("AtoB_accuracy_ratio", ">=", 0.80), ("BtoA_accuracy_ratio", ">=", 0.80), ("cycle_l1", "<=", 0.05)]),
    # a fixed step budget (batch 1): 0.06-0.08 CPU-s a step on one thread, ~10-13 min (docs/models.md, UNIT)
    "unit": (["model=unit", "dataset=digits_unpaired", *PAIRS, "trainer.max_steps=10000"],
             [("AtoB_accuracy", ">=", 0.85), ("recon_l1", "<=", 0.05)]),
}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process and its reaped children, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime


def train(name: str, run_dir: Path, minutes: float, data: str, extra: list[str], *, threads: int = 2,
          clock: str = "wall") -> dict:
    ganzoo = [sys.executable, "-m", "ganzoo"]
    overrides = [o.format(data=data) for o in RUNS[name][0]]
    until = [] if any(o.startswith("trainer.max_steps=") for o in overrides) else ["trainer.max_steps=1000000"]
    cmd = [*ganzoo, "train", *overrides, *until, "trainer.progress=false", "trainer.log_every=500",
           "trainer.ckpt_every=2000", "trainer.device=cpu", f"hydra.run.dir={run_dir}", "overwrite=true",
           *extra]  # a rerun starts afresh
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print(f"+ OMP_NUM_THREADS={threads}", " ".join(cmd), flush=True)
    load0, t0 = os.getloadavg()[0], time.time()
    proc = subprocess.Popen(cmd, env=env)
    cpu = 0.0
    try:
        while proc.poll() is None:
            cpu = cpu_seconds(proc.pid)
            spent = cpu / threads if clock == "cpu" else time.time() - t0
            if spent >= minutes * 60:
                proc.send_signal(signal.SIGTERM)  # graceful: checkpoint at the next step, exit 143
                proc.wait()
                break
            time.sleep(0.5)
    except BaseException:
        proc.kill()
        raise
    if proc.returncode not in (0, 128 + signal.SIGTERM):
        raise SystemExit(f"training {name} failed with exit status {proc.returncode}")
    steps = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["step"]
    return {"steps": steps, "threads": threads, "clock": clock, "wall_s": round(time.time() - t0, 1),
            "cpu_s": round(cpu, 1), "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}


def evaluate(run_dir: Path, threads: int) -> dict:
    cmd = [sys.executable, "-m", "ganzoo", "eval", f"run={run_dir}", "device=cpu"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=sorted(RUNS))
    p.add_argument("--minutes", type=float, default=15.0, help="time budget of the training run")
    p.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the training and eval processes")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: minutes of wall time; cpu: minutes x threads of CPU time (a shared machine)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                   help="root holding MNIST/raw (torchvision layout)")
    p.add_argument("--out", default="runs/floors", help="parent folder of the runs")
    p.add_argument("--baseline", action="store_true", help="ssgan: also train D on the labels alone")
    p.add_argument("--baseline-minutes", type=float, default=None,
                   help="the baseline's budget (default: --minutes; it converges in ~1k steps)")
    a, extra = p.parse_known_args()
    a.extra = [x for x in extra if x != "--"]  # more ganzoo overrides, e.g. -- trainer.batch_size=64
    out = Path(a.out)
    checks = RUNS[a.model][1]
    run_dir = out / a.model
    budget = {"threads": a.threads, "clock": a.clock}
    report = {"model": a.model, **train(a.model, run_dir, a.minutes, a.data, a.extra, **budget)}
    m = evaluate(run_dir, a.threads)
    ok = True
    for metric, op, bound in checks:
        report[metric] = v = m.get(metric)
        ok = ok and v is not None and (v >= bound if op == ">=" else v <= bound)
    if a.model == "ssgan" and "test_accuracy_ema" in m:
        report["test_accuracy_ema"] = m["test_accuracy_ema"]
    if a.baseline:
        metric = checks[0][0]
        base_dir = out / f"{a.model}_labels_only"
        minutes = a.minutes if a.baseline_minutes is None else a.baseline_minutes
        report["baseline"] = train(a.model, base_dir, minutes, a.data, [*a.extra, "model.unlabeled_weight=0"],
                                   **budget)
        report["baseline"][metric] = evaluate(base_dir, a.threads).get(metric)
        ok = ok and report[metric] - report["baseline"][metric] >= 0.10
    report["floor"], report["met"] = [f"{m} {op} {b}" for m, op, b in checks], ok
    print(json.dumps(report, indent=2))
    (out / f"{a.model}_floor.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

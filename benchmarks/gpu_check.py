"""The one GPU check, ready to run when a GPU is lent (`make bench-gpu`; under 8 minutes on one H100):

1. CUDA smoke of every registered model: 2 training steps with its tiny test sizes, then `sample`
   (or `translate` through `sample`'s grid for image-to-image models), on the GPU.
2. Data-parallel: `ganzoo train trainer.devices=N` with NCCL on the GPUs present (N >= 2; with one GPU
   it says so), including bitwise-identical weights on the ranks (checked at every save).
3. Speed switches (benchmarks/switches.py) for DCGAN-64, pix2pix-256 and CycleGAN-256: fp32 eager,
   bf16, channels_last, compile, cudnn.benchmark, the best together; FLOPs per step counted and the
   share of the GPU's dense bf16 peak.
4. ganzoo (default and bf16) against the reference projects' own loop (benchmarks/reference.py) for
   pix2pix-256 and CycleGAN-256, on the same nets and image files.

Writes one JSON file (`--out`, default $OUT/gpu_check.json or ./gpu_check.json) and prints it.
    .venv/bin/python benchmarks/gpu_check.py [--out FILE] [--budget-s 450]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def peak_for(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def smoke(tmp: Path) -> dict:
    from ganzoo import run
    from ganzoo.registry import MODELS
    from ganzoo.settings import OptimSettings, TrainerSettings
    from tests.tiny import TINY_DATASET, TINY_MODEL_ARGS, TINY_TRAINER

    out = {}
    for name in sorted(MODELS.names()):
        t0 = time.time()
        try:
            cfg = {"name": name, **TINY_MODEL_ARGS[name]}
            settings = TrainerSettings(**{**TINY_TRAINER, "device": "cuda"})
            run.train(model_cfg=cfg, dataset_cfg=dict(TINY_DATASET[name]), trainer=settings, optim=OptimSettings(),
                      seed=0, run_dir=tmp / name, config={})
            run.sample(run=str(tmp / name), n=4, out=str(tmp / f"{name}.png"), device="cuda")
            out[name] = {"ok": True, "s": round(time.time() - t0, 1)}
        except Exception as e:  # noqa: BLE001 - every model is tried; each failure is reported
            out[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:300],
                         "where": traceback.format_exc().splitlines()[-3:]}
    return out


def data_parallel(tmp: Path) -> dict:
    n = torch.cuda.device_count()
    if n < 2:
        return {"skipped": f"{n} GPU: data-parallel needs 2 or more (NCCL refuses two ranks on one GPU)"}
    run_dir = tmp / "ddp"
    cmd = [sys.executable, "-m", "ganzoo", "train", "trainer.device=cuda", f"trainer.devices={n}",
           f"trainer.batch_size={16 * n}", "trainer.max_steps=50", "trainer.progress=false", "model.ngf=32",
           "model.ndf=32", f"hydra.run.dir={run_dir}"]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return {"devices": n, "returncode": r.returncode, "s": round(time.time() - t0, 1), "stderr_tail": r.stderr[-800:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(Path(os.environ.get("OUT", ".")) / "gpu_check.json"))
    p.add_argument("--budget-s", type=float, default=450.0, help="skip the switch timings that would not fit")
    a = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run this on a GPU machine")
    start = time.time()
    name = torch.cuda.get_device_name(0)
    report: dict = {"device": name, "devices": torch.cuda.device_count(), "torch": torch.__version__,
                    "cuda": torch.version.cuda, "bf16": torch.cuda.is_bf16_supported()}
    with tempfile.TemporaryDirectory() as tmp:
        report["smoke"] = smoke(Path(tmp))
        report["data_parallel"] = data_parallel(Path(tmp))
    import switches

    report["switches"] = []
    for key in ("dcgan64", "pix2pix256", "cyclegan256"):
        if time.time() - start > a.budget_s:
            report["switches"].append({"config": key, "skipped": "over the time budget"})
            continue
        peak = peak_for(name)
        args = ["--device", "cuda", "--models", key, "--steps", "20", "--rounds", "3"]
        report["switches"] += switches.main(args + (["--peak-tflops", str(peak)] if peak else []))
    import reference

    if time.time() - start > a.budget_s:  # ganzoo (default, bf16) against the reference's own loop
        report["reference"] = {"skipped": "over the time budget"}
    else:
        report["reference"] = reference.main(["--device", "cuda", "--models", "pix2pix256,cyclegan256", "--rounds", "3"])
    report["elapsed_s"] = round(time.time() - start, 1)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

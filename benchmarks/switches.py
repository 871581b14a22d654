"""Speed switches, each measured: ganzoo's training step with and without trainer.amp=bf16,
trainer.channels_last, trainer.compile and (CUDA) trainer.cudnn_benchmark, one at a time and all that
helped together, on the synthetic configs of bench.py (the same nets, data and optimizers).

    .venv/bin/python benchmarks/switches.py [--device cpu|cuda] [--models dcgan64,pix2pix256,cyclegan256]
        [--switches bf16,channels_last,compile,cudnn_benchmark] [--threads N] [--steps S] [--json out.json]

Per config and switch: steps/s of the best of `--rounds` timing rounds (after a warm-up that includes
torch.compile's compilation, timed apart as compile_s), and the speed-up over the config's baseline
(fp32, contiguous, eager). `flops_per_step` counts one training step's floating-point operations with
torch.utils.flop_counter (what a step does, not an estimate), so `--peak-tflops` (the device's dense
bf16 peak) gives the share of the peak a step reaches.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (benchmarks/ is not a package)

from ganzoo.data.base import ImageDataset  # noqa: E402
from ganzoo.data.loader import BatchStream  # noqa: E402
from ganzoo.settings import TrainerSettings  # noqa: E402
from ganzoo.trainer import Trainer  # noqa: E402

SWITCHES = {
    "bf16": {"amp": "bf16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "cudnn_benchmark": {"cudnn_benchmark": True},
}


def make_trainer(cfg: bench.Config, device: torch.device, data: ImageDataset | None = None, **switches) -> Trainer:
    """ganzoo's trainer on the config's nets with `switches` (TrainerSettings fields) on; `data` default:
    the config's synthetic in-memory set."""
    data = data if data is not None else bench.make_dataset(cfg)
    model = bench.make_model(cfg, data.info, device)
    settings = TrainerSettings(max_steps=10**9, batch_size=cfg.batch, device=str(device), log_every=bench.LOG_EVERY,
                               sample_every=0, ckpt_every=0, tensorboard=False, progress=False, **switches)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = bool(settings.cudnn_benchmark and device.type == "cuda")
    stream = BatchStream(data, batch_size=cfg.batch, seed=bench.SEED, device=device, preload=True,
                         channels_last=settings.channels_last)
    return Trainer(model, stream, settings=settings, optim=bench.optim_settings(cfg),
                   run_dir=Path(tempfile.gettempdir()) / "ganzoo-switches-unused", seed=bench.SEED, device=device,
                   meta={})


def steps_per_s(t: Trainer, device: torch.device, steps: int, rounds: int) -> tuple[float, float]:
    """(best steps/s over `rounds` rounds of `steps` steps, seconds of the warm-up incl. compilation)."""
    loop = bench.GanzooLoop(t)
    t0 = time.perf_counter()
    for _ in range(3):
        loop.step()
    bench.sync(device)
    warm = time.perf_counter() - t0
    best = min(bench.time_steps(loop, steps, device) for _ in range(rounds))
    return steps / best, warm


def count_flops(cfg: bench.Config, device: torch.device) -> int:
    """Floating-point operations of one training step (forward + backward + optimizer), counted."""
    from torch.utils.flop_counter import FlopCounterMode

    t = make_trainer(cfg, device)
    t.train_step(next(t.stream))  # lazy state first
    with FlopCounterMode(display=False) as counter:
        t.train_step(next(t.stream))
    return int(counter.get_total_flops())


def measure(key: str, device: torch.device, switches: list[str], steps: int, rounds: int) -> dict:
    cfg = bench.CONFIGS[key]
    out = {"config": key, "label": cfg.label, "device": str(device), "batch": cfg.batch}
    base, _ = steps_per_s(make_trainer(cfg, device), device, steps, rounds)
    out["baseline_steps_per_s"] = round(base, 3)
    helped: dict = {}
    for name in switches:
        if name == "cudnn_benchmark" and device.type != "cuda":
            continue
        try:
            rate, warm = steps_per_s(make_trainer(cfg, device, **SWITCHES[name]), device, steps, rounds)
        except Exception as e:  # noqa: BLE001 - a switch this device cannot do is a result, not a crash
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            continue
        out[name] = {"steps_per_s": round(rate, 3), "speedup": round(rate / base, 3), "warmup_s": round(warm, 1)}
        if rate > 1.03 * base:
            helped.update(SWITCHES[name])
    if helped:
        rate, warm = steps_per_s(make_trainer(cfg, device, **helped), device, steps, rounds)
        out["best"] = {"switches": helped, "steps_per_s": round(rate, 3), "speedup": round(rate / base, 3)}
    out["flops_per_step"] = count_flops(cfg, device)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="dcgan64,pix2pix256,cyclegan256")
    p.add_argument("--switches", default=",".join(SWITCHES))
    p.add_argument("--threads", type=int, default=bench.default_threads())
    p.add_argument("--steps", type=int, default=5, help="steps per timing round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for the share")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    results = []
    for key in a.models.split(","):
        r = measure(key, device, a.switches.split(","), a.steps, a.rounds)
        if a.peak_tflops:
            best = r.get("best", {}).get("steps_per_s", r["baseline_steps_per_s"])
            r["share_of_peak"] = round(r["flops_per_step"] * best / (a.peak_tflops * 1e12), 4)
        print(json.dumps(r), flush=True)
        results.append(r)
    if a.json:
        Path(a.json).write_text(json.dumps({"threads": a.threads, "load": bench.load_avg(), "torch": torch.__version__,
                                            "device": bench.device_name(device), "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()

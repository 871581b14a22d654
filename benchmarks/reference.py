"""ganzoo against the loop users run today: the reference projects' own style of training loop for pix2pix
and CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix), on the same nets, from the same image files.

    .venv/bin/python benchmarks/reference.py [--models pix2pix256,cyclegan256] [--best bf16] [--threads N]
        [--workers 4] [--rounds R] [--json out.json] [--quick]

Three loops per config, timed in alternating rounds (each loop's best round counts, as in bench.py):

* **reference** — what `python train.py --model pix2pix|cycle_gan` does per iteration: a `DataLoader`
  (batch 1, shuffle, `--workers` worker processes: the reference's `--num_threads 4`) over the image files,
  each item opened with PIL and transformed as `base_dataset.get_transform` does (resize to load_size
  bicubic, random crop, random flip, ToTensor, Normalize 0.5; one crop and flip for both halves of an
  aligned A|B image, independent ones and a random B for unaligned); `set_input` (`.to(device)`); the
  model's `optimize_parameters` written out (bench.py's `BarePix2Pix`/`BareCycleGAN`: the same passes,
  losses, weights, frozen Ds, CycleGAN's list pools); `torch.optim.Adam(lr=2e-4, betas=(0.5, 0.999))` as
  the reference builds it (torch's default implementation: the per-tensor loop on CPU, `foreach` on CUDA);
  and every loss read with `.item()` every step, as the per-batch `print` of the popular loops (the
  reference itself reads them every `print_freq` = 100 steps; on a CPU, which runs synchronously, the
  two cost the same).
* **ganzoo** — `ganzoo train` in float32 (`trainer.amp=none`) on the same files: the `aligned`/`unaligned` dataset
  (decoded and resized once when the run starts, preloaded, cropped and flipped on the device),
  `BatchStream`, `Trainer.train_step` with its fused Adam, stats read every 50 steps.
* **ganzoo best** — the same with the speed switches of `--best` (default: `bf16` where the device
  computes bf16 natively — a CPU with AVX512-BF16/AMX or a CUDA GPU that supports it; none elsewhere;
  pix2pix's default at 256 px there, `trainer.amp: auto`).

Identical nets in all three (one seed, the model's own initialisation), the reference's batch 1.
Left out of the timings, in the reference's favour: its per-epoch worker restart (workers are kept
alive here) and ganzoo's one-off decode at start-up (reported as `ganzoo_setup_s`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (benchmarks/ is not a package)
import switches  # noqa: E402

from ganzoo.build import build_dataset  # noqa: E402
from ganzoo.models.pix2pix import Pix2Pix  # noqa: E402
from ganzoo.runtime import native_bf16  # noqa: E402

MODELS = tuple(k for k in bench.CONFIGS if k.startswith(("pix2pix", "cyclegan")))  # the image-to-image configs


def load_size(resolution: int) -> int:
    """The reference's load_size for a crop of `resolution` (286 for 256: the same 286/256 ratio)."""
    return round(resolution * 286 / 256)


def _photo(g: torch.Generator, resolution: int) -> Image.Image:
    """A smooth random RGB image (low-frequency colour fields and a little noise), so that the JPEG
    files are photo-sized rather than incompressible noise."""
    low = torch.rand(1, 3, 8, 8, generator=g)
    img = F.interpolate(low, size=(resolution, resolution), mode="bicubic", align_corners=False)[0]
    img = (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    return Image.fromarray((img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())


def write_folder(cfg: bench.Config, root: Path) -> Path:
    """cfg.items synthetic JPEGs in the reference's layout: train/ of A|B images (pix2pix), or trainA/
    and trainB/ (CycleGAN). Returns root."""
    g = torch.Generator().manual_seed(bench.SEED)
    r = cfg.resolution
    for i in range(cfg.items):
        if cfg.model is Pix2Pix:
            ab = Image.new("RGB", (2 * r, r))
            ab.paste(_photo(g, r), (0, 0))
            ab.paste(_photo(g, r), (r, 0))
            (root / "train").mkdir(parents=True, exist_ok=True)
            ab.save(root / "train" / f"{i:04d}.jpg", quality=95)
        else:
            for side in "AB":
                (root / f"train{side}").mkdir(parents=True, exist_ok=True)
                _photo(g, r).save(root / f"train{side}" / f"{i:04d}.jpg", quality=95)
    return root


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix in (".jpg", ".png"))


def reference_transform(img: Image.Image, load: int, crop: int, x: int, y: int, flip: bool) -> torch.Tensor:
    """base_dataset.get_transform(opt, params) for preprocess=resize_and_crop: Resize([load, load],
    BICUBIC), the crop at (x, y), the flip, ToTensor, Normalize((0.5,) * 3, (0.5,) * 3)."""
    img = TF.resize(img, [load, load], interpolation=TF.InterpolationMode.BICUBIC)
    img = img.crop((x, y, x + crop, y + crop))
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return TF.normalize(TF.to_tensor(img), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _params(load: int, crop: int) -> tuple[int, int, bool]:
    """base_dataset.get_params: a crop position and a flip, from Python's `random` as the reference."""
    x = random.randint(0, max(0, load - crop))
    y = random.randint(0, max(0, load - crop))
    return x, y, random.random() > 0.5


class ReferenceAligned(Dataset):
    """aligned_dataset.py: one A|B file per item, split in halves; one crop and flip for both."""

    def __init__(self, root: Path, load: int, crop: int):
        self.paths, self.load, self.crop = _files(root / "train"), load, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        ab = Image.open(self.paths[i]).convert("RGB")
        w, h = ab.size
        a, b = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
        params = _params(self.load, self.crop)
        return {"A": reference_transform(a, self.load, self.crop, *params),
                "B": reference_transform(b, self.load, self.crop, *params)}


class ReferenceUnaligned(Dataset):
    """unaligned_dataset.py: A in order, B at random (serial_batches off); each its own crop and flip."""

    def __init__(self, root: Path, load: int, crop: int):
        self.a, self.b = _files(root / "trainA"), _files(root / "trainB")
        self.load, self.crop = load, crop

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, i: int) -> dict:
        path_a, path_b = self.a[i % len(self.a)], self.b[random.randint(0, len(self.b) - 1)]
        return {name: reference_transform(Image.open(path).convert("RGB"), self.load, self.crop,
                                          *_params(self.load, self.crop))
                for name, path in (("A", path_a), ("B", path_b))}


class ReferenceLoop:
    """train.py's iteration: next batch from the DataLoader, set_input, optimize_parameters, read losses."""

    name = "reference"

    def __init__(self, cfg: bench.Config, root: Path, device: torch.device, workers: int):
        kind = ReferenceAligned if cfg.model is Pix2Pix else ReferenceUnaligned
        self.dataset = kind(root, load_size(cfg.resolution), cfg.resolution)
        self.loader = DataLoader(self.dataset, batch_size=cfg.batch, shuffle=True, num_workers=workers,
                                 persistent_workers=workers > 0)
        model = bench.make_model(cfg, bench.make_dataset(cfg).info, device)  # the same shapes, the same seed

        def adam(params):  # models/pix2pix_model.py, cycle_gan_model.py
            return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))

        inner = bench.BarePix2Pix if cfg.model is Pix2Pix else bench.BareCycleGAN
        self.inner = inner(cfg, model, None, device, optimizer=adam)
        self.device, self._it, self.losses = device, iter(self.loader), {}

    def step(self) -> None:
        try:
            data = next(self._it)
        except StopIteration:  # the next epoch
            self._it = iter(self.loader)
            data = next(self._it)
        real_a, real_b = data["A"].to(self.device), data["B"].to(self.device)  # set_input
        losses = self.inner.train_on(real_a, real_b)
        self.losses = {k: v.item() for k, v in losses.items()}  # the per-step loss print


def build_folder(cfg: bench.Config, root: Path):
    """ganzoo's dataset of the folder: `dataset=aligned|unaligned dataset.root=<root>`, the reference sizes."""
    name = "aligned" if cfg.model is Pix2Pix else "unaligned"
    return build_dataset({"name": name, "root": str(root), "load_size": load_size(cfg.resolution),
                          "crop_size": cfg.resolution})


def ganzoo_loop(cfg: bench.Config, root: Path, device: torch.device, **on) -> tuple[bench.GanzooLoop, float]:
    """ganzoo's loop on the folder with the switches `on`, and the seconds its data took to build."""
    t0 = time.perf_counter()
    data = build_folder(cfg, root)
    t = switches.make_trainer(cfg, device, data, **on)
    return bench.GanzooLoop(t), time.perf_counter() - t0


def best_switches(device: torch.device, names: str | None) -> dict:
    """TrainerSettings changes for `--best` (names from switches.SWITCHES); default bf16 where native."""
    if names is None:
        names = "bf16" if native_bf16(device) else ""
    on: dict = {}
    for name in filter(None, names.split(",")):
        if name not in switches.SWITCHES:
            raise SystemExit(f"--best {name!r}: known switches are {', '.join(switches.SWITCHES)}")
        on.update(switches.SWITCHES[name])
    return on


def measure(key: str, device: torch.device, root: Path, best: dict, workers: int, plan: bench.Plan) -> dict:
    cfg = bench.CONFIGS[key]
    write_folder(cfg, root)
    loops, setup = {}, {}
    loops["ganzoo"], setup["ganzoo"] = ganzoo_loop(cfg, root, device)
    if best:
        loops["ganzoo best"], setup["ganzoo best"] = ganzoo_loop(cfg, root, device, **best)
    loops["reference"] = ReferenceLoop(cfg, root, device, workers)
    times, steps = bench.time_loops(loops, device, plan)
    rounds = len(times["reference"])
    rates = {name: steps / min(t) for name, t in times.items()}
    ref = rates["reference"]
    return {"config": key, "label": cfg.label, "device": str(device), "batch": cfg.batch, "steps_per_round": steps,
            "rounds": rounds, "best_switches": best, "workers": workers,
            "steps_per_s": {k: round(v, 4) for k, v in rates.items()},
            "speedup_over_reference": {k: round(v / ref, 3) for k, v in rates.items()},
            "ganzoo_setup_s": round(setup["ganzoo"], 2), "round_s": times,
            "last_losses": loops["reference"].losses}


def render(results: list[dict], header: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    console.print(f"torch {header['torch']} | threads {header['threads']} | {header['device']} | "
                  f"load avg {header['load_start']} → {header['load_end']}")
    table = Table(title="ganzoo vs the reference's loop — best round of each, same nets and files")
    for col in ("config", "loop", "switches", "steps/s", "× reference"):
        table.add_column(col, justify="left" if col in ("config", "loop", "switches") else "right")
    for r in results:
        for loop, rate in r["steps_per_s"].items():
            on = ",".join(f"{k}={v}" for k, v in r["best_switches"].items()) if loop == "ganzoo best" else "—"
            table.add_row(r["label"], loop, on, f"{rate:.3f}", f"{r['speedup_over_reference'][loop]:.2f}")
    console.print(table)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="pix2pix256,cyclegan256", help=f"comma-separated, from {','.join(MODELS)}")
    p.add_argument("--best", default=None, help="switches for 'ganzoo best' (default: bf16 where native)")
    p.add_argument("--threads", type=int, default=bench.default_threads())
    p.add_argument("--workers", type=int, default=4, help="the reference's DataLoader workers (its --num_threads)")
    p.add_argument("--rounds", type=int, default=None, help="timing rounds per loop (default 3 to 5)")
    p.add_argument("--quick", action="store_true", help="2 steps a round, 2 rounds: a smoke test")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    unknown = set(a.models.split(",")) - set(MODELS)
    if unknown:
        p.error(f"unknown --models {sorted(unknown)} (known: {', '.join(MODELS)})")
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    plan = bench.Plan.quick() if a.quick else bench.Plan()
    if a.rounds:
        plan.min_rounds = plan.max_rounds = a.rounds
    best = best_switches(device, a.best)
    header = {"torch": torch.__version__, "threads": a.threads, "device": bench.device_name(device),
              "load_start": bench.load_avg()}
    results = []
    for key in a.models.split(","):
        print(f"measuring {key} on {device} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="ganzoo-reference-") as tmp:
            results.append(measure(key, device, Path(tmp), best, a.workers, plan))
    header["load_end"] = bench.load_avg()
    render(results, header)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({**header, "results": results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

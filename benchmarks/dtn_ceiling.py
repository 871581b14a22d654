"""How well can DTN's G = g∘f redraw target images at all, with its frozen f? A ceiling for the target-identity floor.

    .venv/bin/python benchmarks/dtn_ceiling.py RUN [NGF] [STEPS]      # e.g. runs/floors/dtn/seed0 32 2000

Takes f from a trained DTN run (frozen, eval mode, as in training) and trains a fresh g of DTN's decoder
architecture (width NGF, default the run's own) on L_TID alone: the MSE of g(f(x_t)) against x_t over the
target domain's train images (batch 64, Adam 3e-4 β (0.9, 0.999) as the yaml), no GAN term, no f-constancy.
Prints the target-identity L1 on the target test images — the `target_identity` suite itself, on the run's
model with this g in place of its own (mean |G(x_t) − x_t| on [0, 1], g in eval mode) — at 250, 500, 1,000,
2,000, ... steps. One thread.

If even this g cannot bring the L1 under the floor, the GAN run cannot either: the limit is what f's
features keep of a target image and what a decoder of that width can redraw from them, not the training.
"""

from __future__ import annotations

import sys
import time

import torch

from ganzoo.build import Splits, build_dataset
from ganzoo.data.loader import to_float
from ganzoo.metrics.identity import TargetIdentity
from ganzoo.metrics.suite import EvalOptions
from ganzoo.metrics.translation import domain_view
from ganzoo.models.base import init_normal
from ganzoo.models.dtn import decoder
from ganzoo.run import load_model

REPORT_AT = (250, 500, 1000, 2000, 4000, 8000)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    run = argv[0]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, ckpt = load_model(run, device=torch.device("cpu"))
    ngf = int(argv[1]) if len(argv) > 1 else int(ckpt["model"]["args"].get("ngf", 128))
    steps = int(argv[2]) if len(argv) > 2 else 2000
    cfg = ckpt["dataset"]
    train_b = domain_view(build_dataset(cfg, split="train"), "B").images
    suite = TargetIdentity(model, Splits(cfg), EvalOptions(device=torch.device("cpu"), model_name="dtn"))
    model.g = g = decoder(model.f.dim, model.c_t, ngf, model.data.resolution)  # translate() now runs this g
    init_normal(g)
    opt = torch.optim.Adam(g.parameters(), 3e-4, betas=(0.9, 0.999))

    t0 = time.time()
    for step in range(1, steps + 1):
        x = to_float(train_b[torch.randint(len(train_b), (64,))])
        with torch.no_grad():
            f = model._f(x)
        loss = (g(f[:, :, None, None]) - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in REPORT_AT or step == steps:
            l1 = next(iter(suite.metrics(model).values()))
            print(f"ngf {ngf} step {step} mse {loss.item():.4f} target_identity_l1 {l1:.4f} "
                  f"({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

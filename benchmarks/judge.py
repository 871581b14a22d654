"""Quality check of an unconditional digits/MNIST run with a judge classifier.

Trains (once, cached next to the data) a small CNN on the run's dataset train split — the built-in
digits or MNIST — and reports, for `n` samples of the run: the class histogram (every class should
be present, none collapsed), the fraction classified with confidence ≥ 0.9 ("recognisable"), and
the judge's own test accuracy. Usage:

    python benchmarks/judge.py <run dir> [--n 2000] [--root ../shared/data]
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.build import build_dataset
from ganzoo.data.base import atomic_torch_save, data_home
from ganzoo.run import load_model


def judge_net(channels: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(64, 128, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, 10))


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


def train_judge(dataset_cfg: dict, epochs: int = 2) -> tuple[nn.Module, float]:
    train, test = build_dataset(dataset_cfg, split="train"), build_dataset(dataset_cfg, split="test")
    path = data_home() / "judges" / f"{train.info.fingerprint[:16]}.pt"  # never inside a (read-only) dataset root
    net = judge_net(train.info.channels)
    if path.exists():
        saved = torch.load(path, weights_only=True)
        net.load_state_dict(saved["net"])
        return net.eval(), saved["acc"]
    x, y = train.tensors()["image"], train.tensors()["label"]
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(128):
            loss = F.cross_entropy(net(_float(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    t = test.tensors()
    with torch.no_grad():
        pred = torch.cat([net(_float(b)).argmax(1) for b in t["image"].split(1000)])
    acc = (pred == t["label"]).float().mean().item()
    atomic_torch_save({"net": net.state_dict(), "acc": acc}, path)
    return net, acc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    model, ckpt = load_model(args.run, device=torch.device("cpu"))
    judge, acc = train_judge(ckpt["dataset"])
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(0)
    images = torch.cat([model.generate(500, generator=g) for _ in range(0, args.n, 500)])[: args.n]
    images = F.interpolate(images, size=ckpt["data"]["resolution"]) if images.shape[-1] != 28 else images
    prob = torch.cat([judge(b).softmax(1) for b in images.split(500)])
    conf, cls = prob.max(1)
    hist = torch.bincount(cls, minlength=10).tolist()
    print(f"run {args.run} (step {ckpt['step']}); judge test accuracy {acc:.4f}")
    print(f"class histogram of {args.n} samples: {hist}")
    print(f"min class share {min(hist) / args.n:.3f}; recognisable (judge confidence >= 0.9): "
          f"{(conf >= 0.9).float().mean().item():.3f}; mean confidence {conf.mean().item():.3f}")


if __name__ == "__main__":
    main()

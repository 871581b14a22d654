"""Conditional accuracy of a class-conditional run (cGAN, ACGAN): the judge classifier of
`benchmarks/judge.py` (trained on the run's dataset) classifies `per_class` samples generated for each
label; the score is the fraction classified as the label they were generated for. Usage:

    python benchmarks/cond_accuracy.py <run dir> [--per-class 1000]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from judge import train_judge  # noqa: E402

from ganzoo.models.base import class_rows  # noqa: E402
from ganzoo.run import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--per-class", type=int, default=1000)
    args = ap.parse_args()
    model, ckpt = load_model(args.run, device=torch.device("cpu"))
    judge, judge_acc = train_judge(ckpt["dataset"])
    torch.set_grad_enabled(False)
    labels = class_rows(model.data.num_classes, args.per_class)
    g = torch.Generator().manual_seed(0)
    pred = torch.cat([judge(model.generate(len(b), labels=b, generator=g)).argmax(1) for b in labels.split(500)])
    per_class = [(pred[labels == k] == k).float().mean().item() for k in range(model.data.num_classes)]
    print(f"run {args.run} (step {ckpt['step']}); judge test accuracy {judge_acc:.4f}")
    print(f"conditional accuracy {(pred == labels).float().mean().item():.4f}; per class "
          + " ".join(f"{a:.2f}" for a in per_class))


if __name__ == "__main__":
    main()

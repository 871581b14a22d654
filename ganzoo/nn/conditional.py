"""Small pieces shared by the class-conditional models (cGAN, ACGAN): one-hot codes, uniform fake
labels, and a class-accuracy scalar. Class heads return logits; nothing here applies a softmax."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def one_hot(labels: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """Float one-hot codes [B, K] of integer `labels`, with `like`'s dtype and device (no host sync
    on CUDA: used inside the training step)."""
    return F.one_hot(labels.to(like.device, torch.long), num_classes).to(like.dtype)


def checked_labels(labels: Tensor | None, n: int, num_classes: int, default: Tensor) -> Tensor:
    """The labels `generate(n, labels=...)` uses: `default` when None, else `labels` checked for
    length n and range 0..K-1 (reads them on the host: for inference, not the training step)."""
    if labels is None:
        return default
    labels = torch.as_tensor(labels, device=default.device).long().flatten()
    if labels.shape[0] != n:
        raise ValueError(f"{labels.shape[0]} labels for {n} images")
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {labels.tolist()}")
    return labels


def random_labels(n: int, num_classes: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """n labels drawn uniformly from 0..K-1 (the fake labels of one iteration)."""
    return torch.randint(num_classes, (n,), generator=generator, device=device)


@torch.no_grad()
def class_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of rows whose arg-max logit is the label (a logged scalar, stays on the device)."""
    return (logits.argmax(-1) == labels).float().mean()

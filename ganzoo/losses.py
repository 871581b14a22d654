"""Loss functions shared by the models: pure functions of logits/features, no state.

All adversarial losses take raw logits (never probabilities): BCE-with-logits is the numerically
stable form of -[y log σ(l) + (1-y) log(1-σ(l))].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def d_bce(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator BCE: -log σ(D(x)) - log(1 - σ(D(G(z)))), each term averaged over its batch."""
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


def g_nonsaturating(logits_fake: Tensor) -> Tensor:
    """Non-saturating generator loss: -log σ(D(G(z))) (Goodfellow et al. 2014, §3)."""
    return F.softplus(-logits_fake).mean()


def bce(logits: Tensor, target_is_real: bool) -> Tensor:
    """BCE of logits against an all-real or all-fake target."""
    return F.softplus(-logits).mean() if target_is_real else F.softplus(logits).mean()


def lsgan(pred: Tensor, target_is_real: bool) -> Tensor:
    """Least-squares GAN loss (Mao et al. 2017): (D(x) - 1)^2 for real, D(x)^2 for fake."""
    return (pred - 1).square().mean() if target_is_real else pred.square().mean()


def hinge_d(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean()


def feature_matching(feat_real: Tensor, feat_fake: Tensor) -> Tensor:
    """Salimans et al. 2016 §3.1: ||E f(x) - E f(G(z))||^2 over the batch means."""
    return (feat_real.mean(0) - feat_fake.mean(0)).square().mean()


@torch.no_grad()
def accuracy_real_fake(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Fraction of real and fake correctly told apart by the sign of the logit (a logged scalar)."""
    return 0.5 * ((logits_real > 0).float().mean() + (logits_fake < 0).float().mean())

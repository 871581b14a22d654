"""Normalisation choices, weight init and the paper's inference mode of the image-to-image nets
(pix2pix, CycleGAN), as junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py` defines them.

- `batch`: BatchNorm2d(affine=True, track_running_stats=True); convolutions before it have no bias.
- `instance`: InstanceNorm2d(affine=False, track_running_stats=False) — no parameters, no buffers;
  convolutions before it keep their bias (the reference's rule; the per-channel mean subtraction
  cancels such a bias, so it is inert, but the state_dict keys and parameter counts follow it).
- `none`: an identity layer in the norm's place (so the module indices, hence the state_dict keys,
  do not move) and — a quirk of the reference, kept for key/count parity — no conv bias either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

NORMS = ("batch", "instance", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """channels -> a fresh norm layer of the given kind."""
    if kind == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True)
    if kind == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    if kind == "none":
        return lambda c: nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (known: {', '.join(NORMS)}): set model.norm")


def conv_bias(kind: str) -> bool:
    """Whether a conv followed by this norm has a bias: only for instance norm (the reference's rule)."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r} (known: {', '.join(NORMS)}): set model.norm")
    return kind == "instance"


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> None:
    """The reference's init: conv/linear weights N(0, gain) (or xavier-normal(gain), kaiming-normal
    (fan_in), orthogonal(gain)), their biases 0; BatchNorm weights N(1, gain), biases 0."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type {init_type!r} (known: {', '.join(INIT_TYPES)}): set model.init_type")
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


@contextlib.contextmanager
def batch_statistics(net: nn.Module) -> Iterator[nn.Module]:
    """pix2pix's inference (paper §3.3): run the generator "in exactly the same manner as during
    training" — dropout on, batch norm with the statistics of the test batch — without touching the
    running statistics saved in the weights (BatchNorm in training mode with track_running_stats off
    normalises by the batch and updates nothing). The modes are restored on exit."""
    modes = {m: m.training for m in net.modules()}
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    try:
        for m in bns:
            m.track_running_stats = False
        net.train()
        yield net
    finally:
        for m in bns:
            m.track_running_stats = True
        for m, mode in modes.items():
            m.training = mode


def run_as_trained(net: nn.Module, x: Tensor) -> Tensor:
    """net(x) the paper's way (see `batch_statistics`): a net with batch norm sees one image at a time,
    as the reference's test.py (batch size 1), so an output never depends on the rest of the batch."""
    with batch_statistics(net):
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
            return torch.cat([net(x[i : i + 1]) for i in range(x.shape[0])])
        return net(x)

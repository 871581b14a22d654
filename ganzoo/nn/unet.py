"""The U-Net generator of pix2pix (Isola et al. 2017, arXiv:1611.07004, §3.2.1 and appendix 6.1.1),
laid out as junyanz/pytorch-CycleGAN-and-pix2pix's `UnetGenerator` / `UnetSkipConnectionBlock`.

`num_downs` 4×4 stride-2 convs take an image of 2^num_downs px down to 1×1 (`unet_256`: 8 downs,
`unet_128`: 7). Encoder C64-C128-C256-C512-C512-… (LeakyReLU 0.2 before each conv but the first,
norm after each but the first and the innermost); decoder ReLU → 4×4 stride-2 transposed conv → norm,
dropout 0.5 after the blocks between the innermost and the 512→256 one (the three innermost
non-bottleneck ups of unet_256) when `use_dropout`, and each level's input concatenated to its output
(the skip); the outermost up maps to the output channels with a bias and tanh. unet_256 at ngf 64
with RGB in and out has 54.414 M parameters.

Each block is a module holding one `model` Sequential with the next block nested inside it, so the
state_dict keys are the reference's (`model.model.1.model.3.model.1.weight`, ...) and the official
pretrained pix2pix generators load with `load_state_dict(strict=True)`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .norm import conv_bias, norm_layer

MIN_DOWNS = 5  # the outermost, three fixed-width levels (ngf, 2ngf, 4ngf -> 8ngf) and the innermost


class UnetSkipBlock(nn.Module):
    """One level: down(x) -> [inner levels] -> up, output concat(x, up) (outermost: up only)."""

    def __init__(self, outer: int, inner: int, *, in_channels: int | None = None, sub: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch", use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        down_conv = nn.Conv2d(outer if in_channels is None else in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:  # [conv, sub, ReLU, tconv(+bias), tanh]
            layers = [down_conv, sub, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, stride=2, padding=1),
                      nn.Tanh()]
        elif innermost:  # [lReLU, conv, ReLU, tconv, norm]: the bottleneck has no norm on its down side
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias), make_norm(outer)]
        else:  # [lReLU, conv, norm, sub, ReLU, tconv, norm, (dropout)]
            layers = [nn.LeakyReLU(0.2, True), down_conv, make_norm(inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(2 * inner, outer, 4, stride=2, padding=1, bias=bias), make_norm(outer)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # the skip: [N, outer + outer, H, W]


class UnetGenerator(nn.Module):
    """[N, in_channels, H, W] -> [N, out_channels, H, W] in [-1, 1]; H and W multiples of 2^num_downs."""

    def __init__(self, in_channels: int, out_channels: int, num_downs: int = 8, ngf: int = 64, *,
                 norm: str = "batch", use_dropout: bool = False):
        super().__init__()
        if num_downs < MIN_DOWNS:
            raise ValueError(f"a U-Net needs at least {MIN_DOWNS} downsamplings (unet_32), got {num_downs}")
        self.in_channels, self.out_channels, self.ngf, self.num_downs = in_channels, out_channels, ngf, num_downs
        self.arch = f"unet_{2 ** num_downs}"
        self.pad_multiple = 2**num_downs
        block = UnetSkipBlock(8 * ngf, 8 * ngf, innermost=True, norm=norm)
        for _ in range(num_downs - MIN_DOWNS):  # the extra 8ngf levels, with dropout
            block = UnetSkipBlock(8 * ngf, 8 * ngf, sub=block, norm=norm, use_dropout=use_dropout)
        for mult in (4, 2, 1):
            block = UnetSkipBlock(mult * ngf, 2 * mult * ngf, sub=block, norm=norm)
        self.model = UnetSkipBlock(out_channels, ngf, in_channels=in_channels, sub=block, outermost=True, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

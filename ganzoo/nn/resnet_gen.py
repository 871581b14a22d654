"""The ResNet generator of CycleGAN (Zhu et al. 2017, arXiv:1703.10593, appendix 7.2; after Johnson
et al.'s fast style transfer), laid out as junyanz/pytorch-CycleGAN-and-pix2pix's `ResnetGenerator`.

c7s1-ngf → d(2·ngf) → d(4·ngf) → n_blocks × R(4·ngf) → u(2·ngf) → u(ngf) → c7s1-C → tanh:
7×7 convs behind a 3-px reflection pad; 3×3 stride-2 convs down; residual blocks of two 3×3 convs
(reflection pad 1, norm, ReLU between them, optional dropout 0.5); 3×3 stride-2 transposed convs
(output_padding 1) up. `resnet_9blocks` is the 256-px net (11.378 M parameters at ngf 64, RGB),
`resnet_6blocks` the 128-px one.

The attribute names and the order of layers in the one `model` Sequential are the reference's, so
that its state_dict keys (`model.1.weight`, `model.10.conv_block.1.weight`, ...) are ours and the
official pretrained generators load with `load_state_dict(strict=True)`.
"""

from __future__ import annotations

from torch import Tensor, nn

from .norm import conv_bias, norm_layer

PADDINGS = ("reflect", "replicate", "zero")


def _pad(kind: str, p: int) -> tuple[list[nn.Module], int]:
    """(pad modules, conv padding) for a 3×3 conv that keeps the size."""
    if kind == "reflect":
        return [nn.ReflectionPad2d(p)], 0
    if kind == "replicate":
        return [nn.ReplicationPad2d(p)], 0
    if kind == "zero":
        return [], p
    raise ValueError(f"unknown padding {kind!r} (known: {', '.join(PADDINGS)})")


class ResnetBlock(nn.Module):
    """x + [pad, conv3×3, norm, ReLU, (dropout), pad, conv3×3, norm](x)."""

    def __init__(self, dim: int, *, norm: str, use_dropout: bool, padding: str = "reflect"):
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = []
        for i in range(2):
            pad, p = _pad(padding, 1)
            layers += [*pad, nn.Conv2d(dim, dim, 3, padding=p, bias=bias), make_norm(dim)]
            if i == 0:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """[N, in_channels, H, W] -> [N, out_channels, H, W] in [-1, 1]; H and W multiples of 4."""

    pad_multiple = 4  # two stride-2 downsamplings

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, *, norm: str = "instance",
                 use_dropout: bool = False, n_blocks: int = 9, padding: str = "reflect"):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks={n_blocks}: use 0 or more residual blocks")
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        self.in_channels, self.out_channels, self.ngf, self.n_blocks = in_channels, out_channels, ngf, n_blocks
        self.arch = f"resnet_{n_blocks}blocks"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), make_norm(ngf),
                                   nn.ReLU(True)]
        ch = ngf
        for _ in range(2):  # d128, d256 at ngf 64
            layers += [nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1, bias=bias), make_norm(2 * ch), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch, norm=norm, use_dropout=use_dropout, padding=padding) for _ in range(n_blocks)]
        for _ in range(2):  # u128, u64
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       make_norm(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

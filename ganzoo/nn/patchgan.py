"""PatchGAN and pixel discriminators of pix2pix (Isola et al. 2017, arXiv:1611.07004, §3.2.2) and
CycleGAN, laid out as junyanz/pytorch-CycleGAN-and-pix2pix's `NLayerDiscriminator` and
`PixelDiscriminator` (same attribute names and layer order, so the state_dict keys match).

PatchGAN with `n_layers` = 3 (`basic`, the 70×70 PatchGAN): C64 (4×4 stride 2, no norm) - C128 - C256
(stride 2) - C512 (stride 1) - 4×4 conv to 1 logit per patch; LeakyReLU 0.2, norm on all but the
first; widths ndf·min(2^i, 8). 2.765 M parameters for 3 input channels at ndf 64. It returns a map
of logits [N, 1, h, w]: the losses average over patches (no sigmoid; BCE or MSE on the raw output).
Pixel D (`pixel`, a 1×1 PatchGAN): 1×1 convs C64 - C128 (norm) - 1.
"""

from __future__ import annotations

from torch import Tensor, nn

from .norm import conv_bias, norm_layer


def patch_output_size(resolution: int, n_layers: int) -> int:
    """Side of the logit map for a `resolution` input: each of the max(1, n_layers) stride-2 4×4 convs
    (pad 1) halves (floor), each of the two stride-1 ones takes one pixel off."""
    s = resolution
    for _ in range(max(1, n_layers)):
        s //= 2
    return s - 2


class NLayerDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, *, norm: str = "batch"):
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"n_layers_D={n_layers}: use 0 or more")
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        self.n_layers = n_layers
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in [*range(1, n_layers), n_layers]:  # stride 2, ..., then one stride-1 conv
            out = ndf * min(2**i, 8)
            layers += [nn.Conv2d(ch, out, 4, stride=2 if i < n_layers else 1, padding=1, bias=bias), make_norm(out),
                       nn.LeakyReLU(0.2, True)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)  # logits [N, 1, h, w]


class PixelDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int = 64, *, norm: str = "batch"):
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        self.net = nn.Sequential(nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2, True),
                                 nn.Conv2d(ndf, 2 * ndf, 1, bias=bias), make_norm(2 * ndf), nn.LeakyReLU(0.2, True),
                                 nn.Conv2d(2 * ndf, 1, 1, bias=bias))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # logits [N, 1, H, W]

"""SRResNet — Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
Network", arXiv:1609.04802 (CVPR 2017), the MSE-trained generator ("SRResNet-MSE").

Net: `ganzoo.nn.sr.SRResNetGenerator` — 9x9 conv + PReLU, B = 16 residual blocks (conv3-BN-PReLU-conv3-BN
+ skip), conv3 + BN + a long skip, log2(scale) sub-pixel stages (conv3 to 256, PixelShuffle x2, PReLU),
9x9 conv to the image channels; 64 channels. Loss: pixel MSE between G(LR) and the HR crop. Defaults
(conf/model/srresnet.yaml): x4, Adam lr 1e-4, β1 0.9, batch 16, HR crops 96 (LR 24), 10^6 iterations.

The LR input is made on the device from the HR crop (`nn.sr.downscale`: antialiased bicubic, clamped,
8-bit), the same kernel `ganzoo eval` uses. `translate(x)` upscales LR images of any size, tiled.

Deviations: LR and HR both in [-1, 1] (the paper scales LR to [0, 1] and HR to [-1, 1]: an affine
change of the input that the first conv absorbs); the bicubic downscaling is torch's antialiased
bicubic (a = -0.5, as MATLAB's imresize the paper used, but not bit-identical); PyTorch's default
init (the paper states none) and one PReLU slope per layer. `residual=true` (off by default, not in
the paper) adds a bicubic upsample of the input to G's output with the last conv started at zero:
G starts as bicubic and only learns the missing detail, which is what lets a small G beat bicubic in
minutes on a CPU (see docs/models.md).
"""

from __future__ import annotations

from torch import Tensor

from ..data.base import DataInfo
from ..nn.sr import SRResNetGenerator
from ..registry import MODELS
from .base import Phase, SRModel


@MODELS.register("srresnet")
class SRResNet(SRModel):
    """SRResNet (Ledig et al. 2017): residual-block G with sub-pixel upsampling, trained with pixel MSE."""


    def __init__(self, data: DataInfo, *, scale: int = 4, n_blocks: int = 16, width: int = 64,
                 residual: bool = False):
        super().__init__(data)
        self.scale = scale
        self.G = SRResNetGenerator(data.channels, n_blocks=n_blocks, width=width, scale=scale, residual=residual)

    def phases(self) -> list[Phase]:
        return [Phase("G", ("G",), self.g_loss)]

    def g_loss(self, batch: dict, ctx: dict) -> dict[str, Tensor]:
        mse = (ctx["sr"] - batch["image"]).square().mean()
        return {"loss": mse, "psnr": 10 * (4 / mse.detach()).log10()}  # RGB PSNR of the crop, peak-to-peak 2

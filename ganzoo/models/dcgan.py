"""DCGAN — Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", arXiv:1511.06434 (official code: Newmu/dcgan_code).

Nets: `ganzoo.nn.dcgan` (5×5 strided convs, BN, ReLU/tanh in G, LeakyReLU 0.2 in D), sized from the
dataset's resolution and channels. Loss: BCE on logits, non-saturating G. Init N(0, 0.02), BN gamma
N(1, 0.02). Defaults (conf/model/dcgan.yaml): z ~ U(-1, 1)^100, Adam lr 2e-4, β1 0.5, batch 128,
L2 weight decay 1e-5 (as dcgan_code).

Deviations: ngf = ndf = 64 by default (the 64-px faces model used 128; 64 is the common MNIST/CIFAR
size and 4× cheaper); the G output layer has a bias (dcgan_code's last deconv has none of BN's
shift to rely on either way — harmless). Samples are drawn with BN in eval mode (running stats),
so a sample does not depend on the rest of its batch.
"""

from __future__ import annotations

from ..data.base import DataInfo
from ..nn.dcgan import DCGANDiscriminator, DCGANGenerator
from ..registry import MODELS
from .base import UnconditionalGAN, init_normal


@MODELS.register("dcgan")
class DCGAN(UnconditionalGAN):
    """Deep convolutional GAN (Radford et al. 2015): strided-conv G and D with batch norm."""


    def __init__(self, data: DataInfo, *, z_dim: int = 100, ngf: int = 64, ndf: int = 64, kernel: int = 5):
        super().__init__(data)
        self.z_dim = z_dim
        self.G = DCGANGenerator(z_dim, data.channels, data.resolution, ngf, kernel)
        self.D = DCGANDiscriminator(data.channels, data.resolution, ndf, kernel)
        init_normal(self)

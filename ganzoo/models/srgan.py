"""SRGAN — Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
Network", arXiv:1609.04802 (CVPR 2017).

Nets: G = SRResNet (`nn.sr.SRResNetGenerator`, as `srresnet`); D = `nn.sr.SRDiscriminator`: eight 3x3
convs 64-64-128-128-256-256-512-512 (strides 1, 2 alternating; BN on all but the first; LeakyReLU 0.2)
-> dense 1024, LeakyReLU -> dense 1 (a logit).

Losses (eq. 3-6): G minimises l_X + 1e-3 · l_Gen with the content loss l_X = MSE between VGG19 φ5,4
feature maps (relu5_4, `nn.vgg.VGGFeatures`) of G(LR) and HR, features rescaled by 1/12.75
(`feature_scale`) "to obtain VGG losses of a scale comparable to the MSE loss", and l_Gen =
-log D(G(LR)) (non-saturating, BCE on logits); D minimises BCE on logits of real HR vs G(LR). One D step
then one G step per iteration (k = 1) from one G forward. `content_loss=mse` uses pixel MSE instead
(the paper's SRGAN-MSE; and the way to train offline without the VGG weights), `vgg_layer=2_2` the
paper's SRGAN-VGG22.

The two-stage recipe: SRGAN starts from a trained SRResNet, `init_from=<srresnet run>` (its EMA G when
that run kept one, else its G; declared in `pretrained()` and loaded when a fresh run starts), then 10^5 iterations at lr 1e-4 and 10^5 at 1e-5: conf/model/srgan.yaml
sets `optim.schedule=step`, `optim.decay_start=100000`, `optim.decay_factor=0.1`, `trainer.max_steps=200000`.

Deviations: as `srresnet` (LR in [-1, 1], torch's antialiased bicubic, default init, `residual` option);
the D's dense input is sized from the crop (512·(R/16)² = 18,432 at 96 px); the 1/12.75 is applied to
the features (so the MSE scales by 1/12.75²), which is how the paper words it. The VGG weights are not
part of the model's state (a frozen pretrained part: checkpoints stay small; see nn/vgg.py), loaded when
training starts.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..data.base import DataInfo
from ..errors import UserError
from ..losses import accuracy_real_fake, d_bce, g_nonsaturating
from ..nn.sr import SRDiscriminator, SRResNetGenerator
from ..nn.vgg import VGGFeatures, vgg19_weights_file
from ..registry import MODELS
from .base import Phase, Pretrained, SRModel

CONTENT_LOSSES = ("vgg", "mse")


@MODELS.register("srgan")
class SRGAN(SRModel):
    """SRGAN (Ledig et al. 2017): SRResNet G, VGG19 φ5,4 content loss + 1e-3 adversarial loss."""


    def __init__(self, data: DataInfo, *, scale: int = 4, n_blocks: int = 16, width: int = 64,
                 residual: bool = False, ndf: int = 64, dense: int = 1024, content_loss: str = "vgg",
                 vgg_layer: str = "5_4", content_weights: str = "imagenet", feature_scale: float = 1 / 12.75,
                 adv_weight: float = 1e-3, init_from: str | None = None):
        super().__init__(data)
        if content_loss not in CONTENT_LOSSES:
            raise ValueError(f"content_loss={content_loss!r} is not one of {', '.join(CONTENT_LOSSES)}")
        self.scale, self.adv_weight, self.feature_scale = scale, adv_weight, feature_scale
        self.G = SRResNetGenerator(data.channels, n_blocks=n_blocks, width=width, scale=scale, residual=residual)
        self.D = SRDiscriminator(data.channels, data.resolution, ndf=ndf, dense=dense)
        self.content = VGGFeatures(vgg_layer) if content_loss == "vgg" else None
        self.content_weights = content_weights  # "imagenet" | "random" (tests only) | a path to the .pth
        self.init_from = init_from

    def pretrained(self) -> list[Pretrained]:
        """The SRResNet stage's G (`init_from`, its EMA G when kept: an initialisation, trainable) and the
        frozen VGG19 of the content loss; both needed to train only (`ganzoo.build.load_pretrained`)."""
        parts = []
        if self.init_from:
            parts.append(Pretrained("G", "run", self.init_from, net="G", frozen=False, arg="init_from",
                                    accepts=("srresnet", "srgan"),
                                    hint="train the SRResNet stage first: ganzoo train model=srresnet ...",
                                    mismatch_hint="use the same model.scale, n_blocks, width, residual and "
                                                  "dataset channels"))
        if self.content is not None and self.content_weights != "random":
            parts.append(Pretrained("content", "file", self.content_weights, arg="content_weights",
                                    load_file=self._load_vgg))
        return parts

    def _load_vgg(self, weights: str) -> None:
        path = vgg19_weights_file() if weights == "imagenet" else Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"model.content_weights={weights}: no such file; give the path of vgg19-dcbb9e9d.pth, "
                            "or content_weights=imagenet to fetch it")
        self.content.load_weights(path)

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), self.d_loss), Phase("G", ("G",), self.g_loss)]

    def d_loss(self, batch: dict, ctx: dict) -> dict[str, Tensor]:
        logits_real, logits_fake = self.D(batch["image"]), self.D(ctx["sr"].detach())
        return {"loss": d_bce(logits_real, logits_fake), "acc": accuracy_real_fake(logits_real, logits_fake)}

    def g_loss(self, batch: dict, ctx: dict) -> dict[str, Tensor]:
        sr, hr = ctx["sr"], batch["image"]
        mse = (sr - hr).square().mean()
        if self.content is None:
            content = mse
        else:
            with torch.no_grad():
                target = self.content(hr) * self.feature_scale
            content = (self.content(sr) * self.feature_scale - target).square().mean()
        adv = g_nonsaturating(self.D(sr))
        return {"loss": content + self.adv_weight * adv, "content": content.detach(), "adv": adv.detach(),
                "psnr": 10 * (4 / mse.detach()).log10()}

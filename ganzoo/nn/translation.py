"""The image-to-image nets by name (as junyanz/pytorch-CycleGAN-and-pix2pix `define_G`/`define_D`), the
checks that a net fits the data, and `load_official_generator` for the project's pretrained `.pth` files.

Generators: `resnet_9blocks`, `resnet_6blocks` (any `resnet_<k>blocks`) and `unet_256`, `unet_128`
(any `unet_<2^n>` with n ≥ 5: unet_32 for 32-px data). Discriminators: `basic` (70×70 PatchGAN),
`n_layers` (PatchGAN with `n_layers_D` layers), `pixel`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import UserError
from .norm import init_weights
from .patchgan import NLayerDiscriminator, PixelDiscriminator, patch_output_size
from .resnet_gen import ResnetGenerator
from .unet import MIN_DOWNS, UnetGenerator

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")
DISCRIMINATORS = ("basic", "n_layers", "pixel")
_RESNET = re.compile(r"resnet_(\d+)blocks")
_UNET = re.compile(r"unet_(\d+)")


def parse_netG(name: str) -> tuple[str, int]:
    """("resnet", blocks) or ("unet", num_downs) for a generator name."""
    if m := _RESNET.fullmatch(name):
        return "resnet", int(m.group(1))
    if (m := _UNET.fullmatch(name)) and (size := int(m.group(1))) >= 2**MIN_DOWNS and size & (size - 1) == 0:
        return "unet", size.bit_length() - 1
    raise ValueError(f"unknown netG {name!r} (known: {', '.join(GENERATORS)}; also resnet_<k>blocks and "
                     f"unet_<2^n> from unet_32): set model.netG")


def _deepest_unet(resolution: int) -> str | None:
    n = (resolution & -resolution).bit_length() - 1  # the largest power of two dividing the resolution
    return f"unet_{2**n}" if n >= MIN_DOWNS else None


def fitting_unet(resolution: int, deepest: int = 256) -> str:
    """`netG=auto`: the deepest U-Net, up to the reference's unet_256, whose side divides `resolution`
    (unet_256 on the 256-px sets, unet_32 on 32-px digits)."""
    fit = _deepest_unet(math.gcd(resolution, deepest))
    if fit is None:
        raise ValueError(f"model.netG=auto: no U-Net fits {resolution}-px images (a side divisible by 32 is "
                         f"needed): set dataset.resolution or model.netG=resnet_9blocks")
    return fit


def check_generator_fits(netG: str, resolution: int) -> None:
    """ValueError naming a net that fits when `netG` cannot map `resolution`-px images to their size."""
    kind, n = parse_netG(netG)
    if kind == "resnet":
        if resolution % 4:
            raise ValueError(f"model.netG={netG} needs a resolution divisible by 4, the data is {resolution} px: "
                             f"set dataset.resolution to a multiple of 4")
        return
    if resolution % 2**n:
        fit = _deepest_unet(resolution)
        hint = f"model.netG={fit}" if fit else "a resolution divisible by 32 or model.netG=resnet_9blocks"
        raise ValueError(f"model.netG={netG} needs images whose side is a multiple of {2**n} px, the data is "
                         f"{resolution} px: use {hint}")


def check_discriminator_fits(netD: str, n_layers: int, resolution: int) -> None:
    if netD == "pixel":
        return
    n = 3 if netD == "basic" else n_layers
    if patch_output_size(resolution, n) < 1:
        need = 3 * 2 ** max(1, n)
        raise ValueError(f"model.netD={netD} with {n} layers needs images of at least {need} px, the data is "
                         f"{resolution} px: lower model.n_layers_D with model.netD=n_layers, or use model.netD=pixel")


def build_generator(netG: str, in_channels: int, out_channels: int, *, ngf: int = 64, norm: str = "batch",
                    use_dropout: bool = False, init_type: str = "normal", init_gain: float = 0.02,
                    padding: str = "reflect") -> nn.Module:
    kind, n = parse_netG(netG)
    if kind == "resnet":
        net = ResnetGenerator(in_channels, out_channels, ngf, norm=norm, use_dropout=use_dropout, n_blocks=n,
                              padding=padding)
    else:
        net = UnetGenerator(in_channels, out_channels, n, ngf, norm=norm, use_dropout=use_dropout)
    net.norm = norm
    init_weights(net, init_type, init_gain)
    return net


def build_discriminator(netD: str, in_channels: int, *, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                        init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    if netD == "basic":
        net = NLayerDiscriminator(in_channels, ndf, 3, norm=norm)
    elif netD == "n_layers":
        net = NLayerDiscriminator(in_channels, ndf, n_layers, norm=norm)
    elif netD == "pixel":
        net = PixelDiscriminator(in_channels, ndf, norm=norm)
    else:
        raise ValueError(f"unknown netD {netD!r} (known: {', '.join(DISCRIMINATORS)}): set model.netD")
    init_weights(net, init_type, init_gain)
    return net


# -- the official pretrained generators ------------------------------------------------------------

def _read(source: str | os.PathLike | Mapping[str, Tensor]) -> dict[str, Tensor]:
    if isinstance(source, Mapping):
        sd = dict(source)
    else:
        try:
            sd = torch.load(source, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise UserError(f"no weights file {source}: give the path of a generator .pth "
                            f"(e.g. horse2zebra.pth from the CycleGAN project)") from None
        except Exception as e:  # noqa: BLE001 - pickle/zip errors of all kinds: one line
            raise UserError(f"{source} is not a PyTorch state dict ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}): give a generator .pth file") from None
        if not isinstance(sd, Mapping):
            raise UserError(f"{source} holds a {type(sd).__name__}, not a state dict: give a generator .pth file")
    if not sd or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        raise UserError(f"{source if not isinstance(source, Mapping) else 'the state dict'} is not a generator "
                        f"state dict (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in sd.items()}  # DataParallel-saved files


def infer_generator(sd: Mapping[str, Tensor]) -> dict:
    """The constructor arguments of the generator a reference state dict was saved from: netG, channels,
    ngf, norm, dropout (ResNet: from the keys; U-Net: not visible in the keys, None) and padding."""
    if any(k.startswith("model.model.") for k in sd):  # U-Net: levels nest as model.model(.1|.3).model...
        prefixes = ["model.model"]
        while True:
            nxt = prefixes[-1] + (".1.model" if len(prefixes) == 1 else ".3.model")
            if not any(k.startswith(nxt + ".") for k in sd):
                break
            prefixes.append(nxt)
        first, level2 = sd.get("model.model.0.weight"), prefixes[1] if len(prefixes) > 1 else ""
        if first is None or "model.model.3.weight" not in sd:
            raise UserError("the state dict looks like a U-Net but lacks its outer layers (model.model.0/3.weight)")
        norm = ("batch" if f"{level2}.2.weight" in sd else "instance" if f"{level2}.1.bias" in sd else "none")
        return {"netG": f"unet_{2 ** len(prefixes)}", "in_channels": first.shape[1],
                "out_channels": sd["model.model.3.weight"].shape[1], "ngf": first.shape[0], "norm": norm,
                "use_dropout": None, "padding": "reflect"}
    first = sd.get("model.1.weight")
    if first is None or first.ndim != 4 or first.shape[-1] != 7:
        raise UserError("not a ResNet or U-Net generator of pytorch-CycleGAN-and-pix2pix (no model.1.weight 7x7 "
                        "conv or model.model.* keys): give a generator .pth (not a discriminator's)")
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    b0 = f"model.{blocks[0]}.conv_block" if blocks else ""
    zero = f"{b0}.0.weight" in sd  # zero padding: no pad modules, the convs move down one place
    second_conv = f"{b0}.{4 if zero else 6}.weight"  # where the 2nd conv sits when dropout precedes it
    last = max(int(m.group(1)) for k in sd if (m := re.fullmatch(r"model\.(\d+)\.weight", k)))
    norm = "batch" if "model.2.weight" in sd else "instance" if "model.1.bias" in sd else "none"
    return {"netG": f"resnet_{len(blocks)}blocks", "in_channels": first.shape[1],
            "out_channels": sd[f"model.{last}.weight"].shape[0], "ngf": first.shape[0], "norm": norm,
            "use_dropout": bool(blocks) and second_conv in sd and sd[second_conv].ndim == 4,  # not a BN weight
            "padding": "zero" if zero else "reflect"}


def _patch_instance_norm(sd: dict[str, Tensor], net: nn.Module) -> dict[str, Tensor]:
    """Drop what norm layers without running statistics cannot take: the running_mean/running_var (and
    num_batches_tracked) that InstanceNorm layers saved before PyTorch 0.4 — the reference's
    `__patch_instance_norm_state_dict`. BatchNorm files without num_batches_tracked (also pre-0.4) are
    completed by BatchNorm's own loader, since this dict carries no version metadata."""
    modules = dict(net.named_modules())
    out = {}
    for k, v in sd.items():
        owner, _, leaf = k.rpartition(".")
        m = modules.get(owner)
        if (isinstance(m, (nn.InstanceNorm2d, nn.Identity)) and leaf in ("running_mean", "running_var",
                                                                          "num_batches_tracked")
                and getattr(m, leaf, None) is None):
            continue
        out[k] = v
    return out


def load_official_generator(source: str | os.PathLike | Mapping[str, Tensor], *, netG: str | None = None,
                            norm: str | None = None, use_dropout: bool | None = None) -> nn.Module:
    """A generator of pytorch-CycleGAN-and-pix2pix (e.g. the project's `horse2zebra.pth` or
    `facades_label2photo.pth`) as a ganzoo net, in eval mode, its architecture read from the keys.

    `netG`/`norm`, when given, must agree with what the file holds (a one-line error otherwise).
    Dropout is invisible in a U-Net's keys: it defaults to on (pix2pix's default; it has no weights,
    and matters only when the net runs in training mode as pix2pix's inference does)."""
    sd = _read(source)
    arch = infer_generator(sd)
    for key, given in (("netG", netG), ("norm", norm)):
        if given is not None and given != arch[key]:
            raise UserError(f"{key}={given} was asked for, but the weights hold a {arch['netG']} generator with "
                            f"norm {arch['norm']}: drop {key}= or use {key}={arch[key]}")
    dropout = use_dropout if use_dropout is not None else (arch["use_dropout"] if arch["use_dropout"] is not None
                                                           else True)
    net = build_generator(arch["netG"], arch["in_channels"], arch["out_channels"], ngf=arch["ngf"], norm=arch["norm"],
                          use_dropout=dropout, padding=arch["padding"])
    sd = _patch_instance_norm(sd, net)
    own = net.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items() if k in own and v.shape != own[k].shape]
    if missing or unexpected or wrong:
        raise UserError(f"the weights do not fit a {arch['netG']} generator (norm {arch['norm']}): missing "
                        f"{missing[:2]}, unexpected {unexpected[:2]}, wrong shapes {wrong[:2]}")
    net.load_state_dict(sd, strict=True)  # BatchNorm fills in a num_batches_tracked that pre-0.4 files lack
    return net.eval()

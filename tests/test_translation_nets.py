"""The pix2pix/CycleGAN nets against junyanz/pytorch-CycleGAN-and-pix2pix: parameter counts, the
reference's state_dict layout (so the official pretrained generators load), norms, init, sizes, and
`load_official_generator`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo.errors import UserError
from ganzoo.nn.image_pool import ImagePool
from ganzoo.nn.patchgan import patch_output_size
from ganzoo.nn.translation import (
    build_discriminator,
    build_generator,
    check_discriminator_fits,
    check_generator_fits,
    fitting_unet,
    infer_generator,
    load_official_generator,
    parse_netG,
)


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -- parameter counts (the reference prints 11.378 M, 2.765 M, 54.414 M) ---------------------------

def test_resnet_9blocks_count():
    # instance norm, so every conv has a bias: c7s1-64 3·64·49+64 = 9,472; d128 64·128·9+128 = 73,856;
    # d256 128·256·9+256 = 295,168; 9 blocks × 2 × (256·256·9+256) = 10,621,440; u128 256·128·9+128 =
    # 295,040; u64 128·64·9+64 = 73,792; c7s1-3 64·3·49+3 = 9,411
    g = build_generator("resnet_9blocks", 3, 3, ngf=64, norm="instance")
    assert count(g) == 9_472 + 73_856 + 295_168 + 10_621_440 + 295_040 + 73_792 + 9_411 == 11_378_179


def test_patchgan_70_count():
    # batch norm, no bias before it: C64 3·64·16+64 = 3,136; C128 64·128·16 + BN 256; C256 128·256·16 + 512;
    # C512 256·512·16 + 1,024; out 512·16+1 = 8,193
    d = build_discriminator("basic", 3, ndf=64, norm="batch")
    assert count(d) == 3_136 + 131_072 + 256 + 524_288 + 512 + 2_097_152 + 1_024 + 8_193 == 2_765_633
    # instance norm (CycleGAN): biases instead of BN's affine parameters
    assert count(build_discriminator("basic", 3, ndf=64, norm="instance")) == 2_764_737
    assert count(build_discriminator("n_layers", 3, n_layers=3)) == 2_765_633


def test_unet_256_count():
    # levels (outer, inner), batch norm (no conv bias except the outermost up):
    # outermost (3, 64): 3·64·16 + 128·3·16+3 = 9,219; (64, 128): 131,072 + 256 + 262,144 + 128 = 393,600;
    # (128, 256): 524,288 + 512 + 1,048,576 + 256 = 1,573,632; (256, 512): 2,097,152 + 1,024 + 4,194,304 + 512 =
    # 6,292,992; three (512, 512) with dropout: 3 × (4,194,304 + 1,024 + 8,388,608 + 1,024) = 37,754,880;
    # innermost (512, 512): 4,194,304 + 4,194,304 + 1,024 = 8,389,632
    g = build_generator("unet_256", 3, 3, ngf=64, norm="batch", use_dropout=True)
    assert count(g) == 9_219 + 393_600 + 1_573_632 + 6_292_992 + 37_754_880 + 8_389_632 == 54_413_955
    assert count(build_generator("unet_128", 3, 3, norm="batch")) == 54_413_955 - 12_584_960


# -- shapes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("netG,size", [("unet_128", 128), ("resnet_6blocks", 128), ("unet_32", 32),
                                       ("resnet_2blocks", 36)])
def test_generators_keep_the_size(netG, size):
    g = build_generator(netG, 1, 3, ngf=8, norm="batch").eval()
    with torch.no_grad():
        y = g(torch.randn(2, 1, size, size))
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1
    assert g.pad_multiple == (4 if netG.startswith("resnet") else size)


def test_unet_128_takes_larger_multiples():
    g = build_generator("unet_128", 3, 3, ngf=4).eval()
    with torch.no_grad():
        assert g(torch.randn(1, 3, 128, 256)).shape == (1, 3, 128, 256)


def test_discriminator_outputs():
    d = build_discriminator("basic", 6, ndf=8)
    assert d(torch.randn(2, 6, 256, 256)).shape == (2, 1, 30, 30) and patch_output_size(256, 3) == 30
    assert build_discriminator("pixel", 3, ndf=8)(torch.randn(2, 3, 20, 24)).shape == (2, 1, 20, 24)
    assert build_discriminator("n_layers", 3, ndf=8, n_layers=1)(torch.randn(1, 3, 16, 16)).shape == (1, 1, 6, 6)
    assert patch_output_size(16, 1) == 6
    with pytest.raises(ValueError, match="unknown netD"):
        build_discriminator("huge", 3)


# -- norms and init -------------------------------------------------------------------------------

def _convs_before_norm(net: nn.Module) -> list[nn.Module]:
    mods = [m for m in net.modules() if not isinstance(m, (nn.Sequential,)) and not list(m.children())]
    return [a for a, b in zip(mods, mods[1:])
            if isinstance(a, (nn.Conv2d, nn.ConvTranspose2d))
            and isinstance(b, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.Identity))]


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_norm_choices_follow_the_reference(norm):
    for net in (build_generator("resnet_2blocks", 3, 3, ngf=8, norm=norm),
                build_generator("unet_32", 3, 3, ngf=8, norm=norm),
                build_discriminator("basic", 3, ndf=8, norm=norm)):
        norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))]
        if norm == "batch":
            assert norms and all(m.affine and m.track_running_stats for m in norms)
        elif norm == "instance":
            assert norms and all(isinstance(m, nn.InstanceNorm2d) and not m.affine and not m.track_running_stats
                                 for m in norms)
        else:
            assert not norms
        convs = _convs_before_norm(net)
        assert convs and all((c.bias is not None) == (norm == "instance") for c in convs)
    with pytest.raises(ValueError, match="unknown norm"):
        build_generator("unet_32", 3, 3, norm="group")


def test_init_is_normal_002():
    torch.manual_seed(0)
    g = build_generator("unet_256", 3, 3, ngf=16, norm="batch")
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(w.std().item() - 0.02) < 1e-3 and abs(w.mean().item()) < 1e-3
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1) < 5e-3 and 0.01 < bn.std().item() < 0.03
    biases = [m.bias for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d))
              and m.bias is not None]
    assert biases and all(torch.all(b == 0) for b in biases)
    for kind in ("xavier", "kaiming", "orthogonal"):
        build_generator("resnet_1blocks", 3, 3, ngf=4, init_type=kind)
    with pytest.raises(ValueError, match="init_type"):
        build_generator("resnet_1blocks", 3, 3, ngf=4, init_type="uniform")


def test_dropout_option():
    def drops(net):
        return [m.p for m in net.modules() if isinstance(m, nn.Dropout)]
    assert drops(build_generator("unet_256", 3, 3, ngf=4, use_dropout=True)) == [0.5] * 3
    assert drops(build_generator("unet_256", 3, 3, ngf=4, use_dropout=False)) == []
    assert drops(build_generator("resnet_9blocks", 3, 3, ngf=4, use_dropout=True)) == [0.5] * 9


# -- names and fit checks -------------------------------------------------------------------------

def test_parse_and_fit():
    assert parse_netG("resnet_9blocks") == ("resnet", 9) and parse_netG("unet_256") == ("unet", 8)
    assert parse_netG("unet_32") == ("unet", 5)
    for bad in ("unet_16", "unet_100", "resnet", "vgg"):
        with pytest.raises(ValueError, match="unknown netG"):
            parse_netG(bad)
    with pytest.raises(ValueError, match=r"model.netG=unet_256 .* 32 px: use model.netG=unet_32"):
        check_generator_fits("unet_256", 32)
    with pytest.raises(ValueError, match=r"use model.netG=unet_64"):
        check_generator_fits("unet_128", 192)
    with pytest.raises(ValueError, match="divisible by 4"):
        check_generator_fits("resnet_9blocks", 30)
    check_generator_fits("unet_256", 512)
    check_generator_fits("resnet_6blocks", 28)
    with pytest.raises(ValueError, match="at least 24 px"):
        check_discriminator_fits("basic", 3, 16)
    check_discriminator_fits("pixel", 3, 16)


# -- the reference's state_dict layout --------------------------------------------------------------

def reference_resnet_keys(cin: int, cout: int, ngf: int, n_blocks: int) -> dict[str, tuple]:
    """Keys and shapes of the reference's ResnetGenerator with instance norm (written from its layer
    list: pad, conv, norm, ReLU; 2 × (conv, norm, ReLU); blocks [pad, conv, norm, ReLU, pad, conv, norm];
    2 × (tconv, norm, ReLU); pad, conv, tanh)."""
    keys = {"model.1.weight": (ngf, cin, 7, 7), "model.1.bias": (ngf,),
            "model.4.weight": (2 * ngf, ngf, 3, 3), "model.4.bias": (2 * ngf,),
            "model.7.weight": (4 * ngf, 2 * ngf, 3, 3), "model.7.bias": (4 * ngf,)}
    for b in range(10, 10 + n_blocks):
        for c in (1, 5):
            keys[f"model.{b}.conv_block.{c}.weight"] = (4 * ngf, 4 * ngf, 3, 3)
            keys[f"model.{b}.conv_block.{c}.bias"] = (4 * ngf,)
    i = 10 + n_blocks
    keys |= {f"model.{i}.weight": (4 * ngf, 2 * ngf, 3, 3), f"model.{i}.bias": (2 * ngf,),
             f"model.{i + 3}.weight": (2 * ngf, ngf, 3, 3), f"model.{i + 3}.bias": (ngf,),
             f"model.{i + 7}.weight": (cout, ngf, 7, 7), f"model.{i + 7}.bias": (cout,)}
    return keys


def reference_unet_keys(cin: int, cout: int, ngf: int, num_downs: int) -> dict[str, tuple]:
    """Keys and shapes of the reference's UnetGenerator with batch norm: levels nest as
    model.model (outermost: [conv, sub, ReLU, tconv, tanh]) -> .1.model -> .3.model -> ...
    (middle: [lReLU, conv, norm, sub, ReLU, tconv, norm(, dropout)]; innermost: [lReLU, conv, ReLU,
    tconv, norm])."""
    def bn(prefix, c):
        return {f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")} | {
            f"{prefix}.num_batches_tracked": ()}

    widths = [(ngf, 2 * ngf), (2 * ngf, 4 * ngf), (4 * ngf, 8 * ngf)] + [(8 * ngf, 8 * ngf)] * (num_downs - 4)
    keys = {"model.model.0.weight": (ngf, cin, 4, 4), "model.model.3.weight": (2 * ngf, cout, 4, 4),
            "model.model.3.bias": (cout,)}
    p = "model.model.1.model"
    for level, (outer, inner) in enumerate(widths):
        keys[f"{p}.1.weight"] = (inner, outer, 4, 4)
        if level == len(widths) - 1:  # innermost
            keys[f"{p}.3.weight"] = (inner, outer, 4, 4)
            keys |= bn(f"{p}.4", outer)
        else:
            keys |= bn(f"{p}.2", inner)
            keys[f"{p}.5.weight"] = (2 * inner, outer, 4, 4)
            keys |= bn(f"{p}.6", outer)
            p += ".3.model"
    return keys


def random_state(keys: dict[str, tuple]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else
                torch.rand(s, generator=g) + 0.5 if k.endswith("running_var") else torch.randn(s, generator=g) * 0.02)
            for k, s in keys.items()}


def test_reference_resnet_keys_load_strict():
    keys = reference_resnet_keys(3, 3, 64, 9)
    g = build_generator("resnet_9blocks", 3, 3, ngf=64, norm="instance")
    assert {k: tuple(v.shape) for k, v in g.state_dict().items()} == keys
    sd = random_state(keys)
    g.load_state_dict(sd, strict=True)
    assert torch.equal(g.model[10].conv_block[5].weight, sd["model.10.conv_block.5.weight"])


def test_reference_unet_keys_load_strict():
    keys = reference_unet_keys(3, 3, 64, 8)
    g = build_generator("unet_256", 3, 3, ngf=64, norm="batch", use_dropout=True)
    assert {k: tuple(v.shape) for k, v in g.state_dict().items()} == keys
    g.load_state_dict(random_state(keys), strict=True)


def test_discriminator_keys_are_the_reference_ones():
    d = build_discriminator("basic", 6, ndf=64, norm="batch")
    assert [k for k in d.state_dict() if k.endswith("weight")] == [
        "model.0.weight", "model.2.weight", "model.3.weight", "model.5.weight", "model.6.weight", "model.8.weight",
        "model.9.weight", "model.11.weight"]
    assert list(build_discriminator("pixel", 3, norm="batch").state_dict())[:3] == [
        "net.0.weight", "net.0.bias", "net.2.weight"]


# -- load_official_generator ------------------------------------------------------------------------

def _same_output(a: nn.Module, b: nn.Module, cin: int, size: int) -> bool:
    x = torch.randn(1, cin, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-6)


def test_official_resnet_with_old_instance_norm_keys(tmp_path):
    """Files saved before PyTorch 0.4 carry running_mean/var for each InstanceNorm; the reference
    deletes them on load (__patch_instance_norm_state_dict), and so do we."""
    src = build_generator("resnet_9blocks", 3, 3, ngf=16, norm="instance")
    sd = dict(src.state_dict())
    norms = [n for n, m in src.named_modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 2 * 9 + 5
    for n in norms:
        sd[f"{n}.running_mean"], sd[f"{n}.running_var"] = torch.zeros(4), torch.ones(4)
        sd[f"{n}.num_batches_tracked"] = torch.tensor(0)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        build_generator("resnet_9blocks", 3, 3, ngf=16, norm="instance").load_state_dict(sd, strict=True)
    path = tmp_path / "horse2zebra.pth"
    torch.save(sd, path)
    g = load_official_generator(path)
    assert (g.arch, g.norm, g.ngf, g.in_channels, g.out_channels) == ("resnet_9blocks", "instance", 16, 3, 3)
    assert not g.training and _same_output(src, g, 3, 32)


def test_official_unet_batch_norm_without_num_batches_tracked():
    src = build_generator("unet_128", 1, 3, ngf=8, norm="batch")
    with torch.no_grad():
        for m in src.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    sd = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}  # pre-0.4 file
    g = load_official_generator(sd, netG="unet_128", norm="batch")
    assert (g.arch, g.norm, g.in_channels, g.out_channels) == ("unet_128", "batch", 1, 3)
    assert [m.p for m in g.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]  # pix2pix's default
    assert _same_output(src, g, 1, 128)


@pytest.mark.parametrize("netG,norm,dropout,padding", [
    ("resnet_6blocks", "batch", True, "reflect"), ("resnet_6blocks", "batch", False, "reflect"),
    ("resnet_9blocks", "none", False, "reflect"), ("resnet_2blocks", "batch", False, "zero"),
    ("resnet_2blocks", "instance", True, "zero"), ("unet_64", "instance", False, ""), ("unet_32", "none", True, "")])
def test_infer_architecture(netG, norm, dropout, padding):
    src = build_generator(netG, 3, 1, ngf=4, norm=norm, use_dropout=dropout, padding=padding or "reflect")
    arch = infer_generator(src.state_dict())
    assert (arch["netG"], arch["norm"], arch["in_channels"], arch["out_channels"], arch["ngf"]) == (netG, norm, 3, 1, 4)
    if netG.startswith("resnet"):
        assert (arch["use_dropout"], arch["padding"]) == (dropout, padding)
    g = load_official_generator({f"module.{k}": v for k, v in src.state_dict().items()},
                                use_dropout=None if netG.startswith("resnet") else dropout)
    assert _same_output(src, g, 3, 64)


def test_official_loader_errors(tmp_path):
    sd = build_generator("resnet_2blocks", 3, 3, ngf=4, norm="instance").state_dict()
    with pytest.raises(UserError, match="norm=batch was asked for, but the weights hold a resnet_2blocks generator with norm instance"):
        load_official_generator(sd, norm="batch")
    with pytest.raises(UserError, match="netG=unet_256 was asked for"):
        load_official_generator(sd, netG="unet_256")
    with pytest.raises(UserError, match="no weights file"):
        load_official_generator(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="is not a PyTorch state dict"):
        load_official_generator(tmp_path / "junk.pth")
    with pytest.raises(UserError, match="not a ResNet or U-Net generator"):
        load_official_generator(build_discriminator("basic", 3, ndf=4).state_dict())
    broken = dict(sd)
    broken["model.1.weight"] = torch.zeros(4, 3, 7, 5)
    with pytest.raises(UserError, match="not a ResNet or U-Net"):
        load_official_generator(broken)
    broken = dict(sd)
    del broken["model.10.conv_block.1.bias"]
    with pytest.raises(UserError, match=r"do not fit a resnet_2blocks generator.*missing \['model.10"):
        load_official_generator(broken)


# -- the image pool's state -----------------------------------------------------------------------

def test_pool_is_in_the_state_dict():
    pool = ImagePool(4, (1, 2, 2))
    pool.query(torch.randn(3, 1, 2, 2))
    sd = pool.state_dict()
    assert set(sd) == {"images", "count"} and int(sd["count"]) == 3
    other = ImagePool(4, (1, 2, 2))
    other.load_state_dict(sd)
    assert other._count == 3 and torch.equal(other.images, pool.images)


def test_netG_auto_is_the_papers_unet_256_at_256_px_and_fits_smaller_data():  # noqa: N802
    assert fitting_unet(256) == "unet_256" and fitting_unet(512) == "unet_256"  # the reference's net, no deeper
    assert fitting_unet(32) == "unet_32" and fitting_unet(96) == "unet_32" and fitting_unet(128) == "unet_128"
    with pytest.raises(ValueError, match="model.netG"):
        fitting_unet(48)

"""Super-resolution (SRResNet, SRGAN): the paper's nets and losses, the resampling kernel, the Y-channel
PSNR/SSIM protocol, the two-stage init, tiled upscaling, the data builders and `ganzoo eval`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo import run
from ganzoo.build import build_dataset, build_model, load_pretrained
from ganzoo.data.base import DataError, DataInfo
from ganzoo.errors import UserError
from ganzoo.metrics import sr as M
from ganzoo.nn.sr import SRDiscriminator, SRResNetGenerator, downscale, upscale_bicubic, upscale_tiled
from ganzoo.nn.vgg import VGGFeatures, feature_cut, vgg19_features
from ganzoo.settings import OptimSettings
from ganzoo.trainer import lr_lambda

from .conftest import invoke, tiny_data_cfg, tiny_model_args, tiny_trainer_settings

TINY = tiny_model_args("srresnet")
TEX = tiny_data_cfg("srresnet")


def _n(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _train(tmp_path, name: str, args: dict, steps: int = 2, **kw):
    return run.train(model_cfg={"name": name, **args}, dataset_cfg=dict(TEX),
                     trainer=tiny_trainer_settings(max_steps=steps, **kw), optim=OptimSettings(), seed=0,
                     run_dir=tmp_path, config={})


# -- nets ----------------------------------------------------------------------------------------
def test_generator_parameter_count_and_shapes():
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    bn, prelu = 2 * 64, 1
    block = 2 * conv(64, 64, 3) + 2 * bn + prelu
    expected = (conv(3, 64, 9) + prelu + 16 * block + conv(64, 64, 3) + bn
                + 2 * (conv(64, 256, 3) + prelu) + conv(64, 3, 9))
    G = SRResNetGenerator(3)  # x4, B = 16, 64 channels: the paper's G
    assert _n(G) == expected == 1_549_462  # "1.55 M"
    assert G(torch.zeros(2, 3, 24, 24)).shape == (2, 3, 96, 96)
    for scale, stages in ((2, 1), (8, 3)):
        g = SRResNetGenerator(1, n_blocks=1, width=8, scale=scale)
        assert sum(isinstance(m, torch.nn.PixelShuffle) for m in g.modules()) == stages
        assert g(torch.zeros(1, 1, 5, 7)).shape == (1, 1, 5 * scale, 7 * scale)
    with pytest.raises(ValueError, match="scale 3"):
        SRResNetGenerator(3, scale=3)
    convs = [m for m in G.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].kernel_size == convs[-1].kernel_size == (9, 9)


def test_discriminator_parameter_count_and_shapes():
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731
    widths = [64, 64, 128, 128, 256, 256, 512, 512]
    expected = conv(3, 64) + sum(conv(a, b) + 2 * b for a, b in zip(widths, widths[1:]))
    expected += (512 * 6 * 6) * 1024 + 1024 + 1024 + 1  # dense 1024 on 6x6x512 (96 px crops), dense 1
    D = SRDiscriminator(3, 96)
    assert _n(D) == expected
    assert D(torch.zeros(2, 3, 96, 96)).shape == (2,)
    strides = [m.stride[0] for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides == [1, 2] * 4
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules()) == 7  # not on the first conv
    assert all(m.negative_slope == 0.2 for m in D.modules() if isinstance(m, torch.nn.LeakyReLU))


def test_residual_option_starts_as_bicubic():
    torch.manual_seed(0)
    G = SRResNetGenerator(3, n_blocks=1, width=8, scale=4, residual=True).eval()
    lr = torch.rand(1, 3, 10, 12) * 2 - 1
    assert torch.allclose(G(lr), upscale_bicubic(lr, 4), atol=1e-6)


# -- the resampling kernel ------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 4])
def test_kernel_is_pil_bicubic_and_quantized(scale):
    """Antialiased bicubic = PIL's BICUBIC (Keys a = -0.5, widened when downscaling), both directions."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, 64, 48)
    lr = downscale(x * 2 - 1, scale)
    pil = np.array(Image.fromarray(x[0, 0].numpy(), mode="F").resize((48 // scale, 64 // scale),
                                                                      Image.Resampling.BICUBIC))
    assert lr.shape == (1, 1, 64 // scale, 48 // scale)
    assert np.abs((lr[0, 0].numpy() + 1) / 2 - pil.clip(0, 1)).max() <= 0.5 / 255 + 1e-6  # 8-bit rounding
    assert torch.allclose((lr + 1) * 127.5, ((lr + 1) * 127.5).round(), atol=1e-4)
    small = x[:, :, :16, :12]
    up = upscale_bicubic(small, scale)[0, 0].numpy()
    pil_up = np.array(Image.fromarray(small[0, 0].numpy(), mode="F").resize((12 * scale, 16 * scale),
                                                                             Image.Resampling.BICUBIC))
    assert np.abs(up - pil_up).max() < 1e-5


# -- metrics --------------------------------------------------------------------------------------
def test_y_channel_is_matlab_rgb2ycbcr():
    white, black = torch.full((3, 2, 2), 255, dtype=torch.uint8), torch.zeros(3, 2, 2, dtype=torch.uint8)
    assert torch.allclose(M.y_channel(white), torch.full((2, 2), 235.0, dtype=torch.float64))
    assert torch.allclose(M.y_channel(black), torch.full((2, 2), 16.0, dtype=torch.float64))
    red = torch.zeros(3, 1, 1, dtype=torch.uint8)
    red[0] = 255
    assert M.y_channel(red).item() == pytest.approx(16 + 65.481)
    gray = torch.full((1, 1, 1), 77, dtype=torch.uint8)
    assert M.y_channel(gray).item() == 77


def test_psnr_known_values():
    a = torch.rand(64, 64, dtype=torch.float64) * 200
    assert M.psnr(a, a) == math.inf
    assert M.psnr(a, a + 5) == pytest.approx(10 * math.log10(255**2 / 25))  # constant error 5: MSE 25
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(1024, 1024, generator=g, dtype=torch.float64) * 2 - 1) * 8  # U(-8, 8): MSE 64 / 3
    assert M.psnr(a.repeat(16, 16), a.repeat(16, 16) + noise) == pytest.approx(10 * math.log10(255**2 * 3 / 64),
                                                                               abs=0.02)


def test_ssim_known_values():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(40, 30, generator=g, dtype=torch.float64) * 255
    assert M.ssim(a, a) == pytest.approx(1.0)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = torch.full((20, 20), 100.0, dtype=torch.float64), torch.full((20, 20), 60.0, dtype=torch.float64)
    assert M.ssim(x, y) == pytest.approx((2 * 100 * 60 + c1) / (100**2 + 60**2 + c1))  # only luminance differs
    # one 11x11 window, by hand with the Gaussian weights (sigma 1.5, summing to 1)
    p = a[:11, :11].numpy()
    q = (a[:11, :11] * 0.7 + 20 + torch.rand(11, 11, generator=g, dtype=torch.float64) * 30).numpy()
    t = np.arange(11) - 5.0
    w = np.exp(-(t**2) / 4.5)
    w = np.outer(w, w) / np.outer(w, w).sum()
    mx, my = (w * p).sum(), (w * q).sum()
    vx, vy, cov = (w * (p - mx) ** 2).sum(), (w * (q - my) ** 2).sum(), (w * (p - mx) * (q - my)).sum()
    want = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert M.ssim(torch.from_numpy(p), torch.from_numpy(q)) == pytest.approx(want, rel=1e-9)
    assert 0 < want < 1
    # the reference implementation's value for a fixed pair: skimage 0.26 structural_similarity(a, b,
    # gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255), computed once
    i, j = torch.meshgrid(torch.arange(32), torch.arange(24), indexing="ij")
    a = ((i * 24 + j) * 37 % 256).to(torch.float64)
    b = a * 0.8 + 10 + ((i * j) % 7) * 3.0
    assert M.ssim(a, b) == pytest.approx(0.9707669180905893, abs=1e-12)


def test_y_metrics_shave_the_border():
    hr = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    sr = hr.clone()
    sr[:, :4] = 0  # damage only inside the 4-px border
    assert M.y_metrics(sr, hr, 4) == (math.inf, pytest.approx(1.0))
    assert M.y_metrics(sr, hr, 3)[0] < 40
    assert M.crop_to_multiple(torch.zeros(3, 33, 30), 4).shape == (3, 32, 28)


# -- tiling, translate, preview --------------------------------------------------------------------
def test_tiled_equals_untiled_with_enough_overlap_and_away_from_seams():
    torch.manual_seed(0)
    G = SRResNetGenerator(3, n_blocks=2, width=8, scale=2).eval()
    for m in G.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    lr = torch.rand(2, 3, 45, 38) * 2 - 1
    with torch.no_grad():
        whole = G(lr)
        exact = upscale_tiled(G, lr, 2, tile=16, overlap=G.context)
        short = upscale_tiled(G, lr, 2, tile=16, overlap=3)
    assert exact.shape == whole.shape == (2, 3, 90, 76)
    assert torch.allclose(exact, whole, atol=1e-5)
    assert not torch.allclose(short, whole, atol=1e-5)  # the seams do differ with a short margin
    # ... but only near the seams: pixels whose distance to a tile edge covers the rest of the context
    far = G.context - 3
    rows = [i for i in range(45) if all(abs(i - s) >= far and abs(i + 1 - s) >= far for s in (16, 32))]
    cols = [j for j in range(38) if all(abs(j - s) >= far and abs(j + 1 - s) >= far for s in (16, 32))]
    r = torch.tensor([2 * i + d for i in rows for d in (0, 1)])
    c = torch.tensor([2 * j + d for j in cols for d in (0, 1)])
    if len(r) and len(c):
        assert torch.allclose(short[:, :, r][:, :, :, c], whole[:, :, r][:, :, :, c], atol=1e-5)


def test_translate_preview_and_contract():
    m = build_model("srresnet", dict(TINY), DataInfo("textures", 3, 16)).eval()
    assert m.pad_multiple == 1 and m.scale == 2 and m.ema_nets == ("G",)
    out = m.translate(torch.rand(1, 3, 300, 170) * 2 - 1)  # larger than a tile: tiled internally
    assert out.shape == (1, 3, 600, 340) and out.min() >= -1 and out.max() <= 1
    with pytest.raises(UserError, match="one direction"):
        m.translate(torch.zeros(1, 3, 8, 8), "BtoA")
    hr = torch.rand(8, 3, 16, 16) * 2 - 1
    grid = m.preview(8, generator=torch.Generator(), batch={"image": hr})
    assert grid.shape == (8, 3, 16, 16) and m.grid_nrow(8) == 4  # 2 rows of LR | bicubic | SR | HR
    assert torch.equal(grid[3], hr[0]) and torch.equal(grid[7], hr[1])
    with pytest.raises(UserError, match="multiple of model.scale"):
        m.prepare({"image": torch.zeros(2, 3, 15, 15)})


# -- SRGAN ----------------------------------------------------------------------------------------
def test_srgan_losses_and_vgg_is_frozen_outside_the_state():
    torch.manual_seed(0)
    args = tiny_model_args("srgan")
    m = build_model("srgan", args, DataInfo("textures", 3, 16))
    assert not any(k.startswith("content") for k in m.state_dict())  # VGG never lands in checkpoints
    assert all(p is not q for p in m.parameters() for q in m.content.net.parameters())
    assert not any(p.requires_grad for p in m.content.net.parameters())
    m.train()
    assert not m.content.net.training
    batch = {"image": torch.rand(4, 3, 16, 16) * 2 - 1}
    ctx = m.prepare(batch)
    out = m.g_loss(batch, ctx)
    with torch.no_grad():
        feats = m.content(ctx["sr"]) / 12.75, m.content(batch["image"]) / 12.75
    assert out["content"].item() == pytest.approx((feats[0] - feats[1]).square().mean().item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(out["content"].item() + 1e-3 * out["adv"].item(), rel=1e-5)
    mse = build_model("srgan", {**args, "content_loss": "mse"}, DataInfo("textures", 3, 16))
    assert mse.content is None
    m.double()
    assert m.content.net[0].weight.dtype == torch.float64  # follows .to()/.double() although hidden


def test_vgg_layers_and_weight_loading(tmp_path):
    assert feature_cut("5_4") == 36 and feature_cut("2_2") == 9
    with pytest.raises(ValueError, match="relu6_1"):
        feature_cut("6_1")
    ref = vgg19_features(37)
    state = {f"features.{k}": v for k, v in ref.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "vgg.pth")
    v = VGGFeatures("5_4")
    v.load_weights(tmp_path / "vgg.pth")
    assert v.loaded and torch.equal(v.net[34].weight, ref[34].weight)
    assert v(torch.zeros(1, 1, 32, 32)).shape == (1, 512, 2, 2)  # gray repeated to 3 channels
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(DataError, match="not a torchvision VGG19"):
        VGGFeatures("2_2").load_weights(tmp_path / "bad.pth")


def test_vgg_offline_is_one_line_naming_the_file_and_the_fallback(tmp_path, monkeypatch):
    import ganzoo.data.fetch.download as download
    import ganzoo.nn.vgg as vgg

    def offline(name, root=None, **kw):
        raise DataError(f"cannot download {name} (offline): run `ganzoo data download {name}`")

    monkeypatch.setattr(download, "ensure", offline)
    monkeypatch.setattr(vgg, "_hub_cache", lambda: tmp_path / "none.pth")
    with pytest.raises(UserError) as e:
        _train(tmp_path / "r", "srgan", {**TINY, "ndf": 8, "dense": 16})
    msg = str(e.value)
    assert "\n" not in msg and "vgg19-dcbb9e9d.pth" in msg and "model.content_loss=mse" in msg
    assert "download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg
    m = build_model("srgan", {**TINY, "content_weights": str(tmp_path / "none.pth")}, DataInfo("textures", 3, 16))
    with pytest.raises(UserError, match="content_weights=.*no such file"):
        load_pretrained(m, training=True)


def test_two_stage_init_loads_g_exactly(tmp_path):
    first = _train(tmp_path / "srresnet", "srresnet", dict(TINY), steps=3)
    want = first.model.G.state_dict()
    args = {**TINY, "ndf": 8, "dense": 16, "content_loss": "mse", "init_from": str(tmp_path / "srresnet")}
    m = build_model("srgan", args, first.model.data)
    load_pretrained(m, training=True)  # what a fresh run does before its first step
    for k, v in m.G.state_dict().items():
        assert torch.equal(v, want[k]), k
    # the SRGAN stage trains from it, through the real trainer
    second = _train(tmp_path / "srgan", "srgan", args, steps=2)
    assert second.step == 2
    # problems surface as one line when training starts, not when a finished run is rebuilt
    bad = build_model("srgan", {**args, "width": 16}, first.model.data)
    with pytest.raises(UserError, match=r"does not match this G.*width"):
        load_pretrained(bad, training=True)
    gone = build_model("srgan", {**args, "init_from": str(tmp_path / "nowhere")}, first.model.data)
    gone.load_state_dict(second.model.state_dict())  # rebuilt from its own checkpoint: fine
    load_pretrained(gone, training=False)
    load_pretrained(gone, training=True, fresh=False)  # a resume: the checkpoint has G
    with pytest.raises(UserError, match="init_from=.*nowhere.*does not exist.*model=srresnet"):
        load_pretrained(build_model("srgan", {**args, "init_from": str(tmp_path / "nowhere")}, first.model.data),
                        training=True)


def test_step_schedule():
    lam = lr_lambda("step", 10, 100, 0.1)
    assert lam(0) == lam(9) == 1.0 and lam(10) == lam(99) == 0.1


# -- data -----------------------------------------------------------------------------------------
def test_textures_are_deterministic_and_cached():
    a = build_dataset(dict(TEX))
    b = build_dataset(dict(TEX))
    assert torch.equal(a.images, b.images) and a.images.shape == (32, 3, 24, 24)
    assert a.augment.crop == 16 and a.augment.flip
    assert a.images.float().std() > 20  # not flat
    test = build_dataset(dict(TEX), split="test")
    names = [n for n, _ in test.hr_images()]
    assert names == ["textures_0000", "textures_0001"] and test.images.shape[-1] == 40
    with pytest.raises(DataError, match="resolution"):
        build_dataset({**TEX, "resolution": 30})


def _photo_folder(root, sizes):
    root.mkdir(parents=True)
    g = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        arr = (g.random((h, w, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"img{i}.png")
    return root


def test_hr_folder_patches_cover_images_and_cache(tmp_path):
    folder = _photo_folder(tmp_path / "hr", [(70, 50), (40, 40), (20, 60)])
    cfg = {"name": "hr_folder", "path": str(folder), "patch": 32, "stride": 16, "resolution": 24}
    with pytest.warns(UserWarning, match="smaller than dataset.patch"):
        ds = build_dataset(cfg)
    # 70 x 50: x at 0, 16, 32, 38 and y at 0, 16, 18 -> 12 patches; 40 x 40: 2 x 2 -> 4; 20 px wide: skipped
    assert len(ds) == 16 and ds.item_size == 32 and ds.augment.crop == 24
    img = np.array(Image.open(folder / "img0.png")).transpose(2, 0, 1)
    assert torch.equal(ds[0]["image"], torch.from_numpy(img[:, :32, :32].copy()))
    assert torch.equal(ds[11]["image"], torch.from_numpy(img[:, 18:50, 38:70].copy()))
    assert torch.equal(ds.tensors()["image"][5], ds[5]["image"])
    mtime = ds.cache.stat().st_mtime_ns
    with pytest.warns(UserWarning):
        again = build_dataset(cfg)
    assert again.cache == ds.cache and ds.cache.stat().st_mtime_ns == mtime  # cut once
    import pickle

    assert torch.equal(pickle.loads(pickle.dumps(ds))[3]["image"], ds[3]["image"])  # DataLoader workers
    with pytest.raises(DataError, match="test_path"):
        build_dataset(cfg, split="test")
    test = build_dataset({**cfg, "test_path": str(folder)}, split="test")
    whole = dict(test.hr_images())
    assert whole["img0.png"].shape == (3, 50, 70) and test[2]["image"].shape == (3, 32, 32)


def test_div2k_config_takes_both_splits_from_the_download_manifest(tmp_path, monkeypatch):
    from importlib import resources

    from omegaconf import OmegaConf

    import ganzoo.data.fetch.download as download

    folders = {"div2k_train_hr": _photo_folder(tmp_path / "train", [(64, 48)]),
               "div2k_valid_hr": _photo_folder(tmp_path / "valid", [(50, 40), (40, 50)])}
    monkeypatch.setattr(download, "ensure", lambda name, root=None, **kw: folders[name])
    cfg = OmegaConf.to_container(OmegaConf.load(str(resources.files("ganzoo.conf") / "dataset" / "div2k.yaml")))
    assert (cfg["download"], cfg["test_download"]) == ("div2k_train_hr", "div2k_valid_hr")
    train = build_dataset({**cfg, "patch": 32, "resolution": 24})
    assert len(train) == 2 * 2 and train.info.resolution == 24  # x at 0, 32; y at 0, 16
    test = build_dataset({**cfg, "patch": 32, "resolution": 24}, split="test")
    assert [n for n, _ in test.hr_images()] == ["img0.png", "img1.png"]


# -- ganzoo eval ----------------------------------------------------------------------------------
def test_eval_on_a_folder_and_on_the_test_split(tmp_path, cli_runner):
    _train(tmp_path / "run", "srresnet", dict(TINY))
    folder = _photo_folder(tmp_path / "photos", [(33, 21), (16, 16)])
    r = invoke(cli_runner, ["eval", f"run={tmp_path / 'run'}", f"data={folder}", "device=cpu"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "run" / "metrics_photos.json").read_text())  # named by the test set
    assert not (tmp_path / "run" / "metrics.json").exists() and "metrics_photos.json" in r.stderr.replace("\n", "")
    assert m["images"] == 2 and m["scale"] == m["border"] == 2 and m["model"] == "srresnet"
    assert [p["name"] for p in m["per_image"]] == ["img0.png", "img1.png"]
    assert m["per_image"][0]["size"] == [20, 32]  # cropped to a multiple of the scale
    # the bicubic column, recomputed here from the protocol
    hr = M.crop_to_multiple(torch.from_numpy(np.array(Image.open(folder / "img0.png"))).permute(2, 0, 1), 2)
    bic = ((upscale_bicubic(downscale(hr[None].float() / 127.5 - 1, 2), 2)[0].clamp(-1, 1) + 1) * 127.5).round()
    p, s = M.y_metrics(bic.to(torch.uint8), hr, 2)
    assert m["per_image"][0]["bicubic_psnr_y"] == pytest.approx(p) and m["per_image"][0]["bicubic_ssim_y"] == pytest.approx(s)
    assert m["psnr_y"] == pytest.approx((m["per_image"][0]["psnr_y"] + m["per_image"][1]["psnr_y"]) / 2)
    assert "PSNR" in r.output and "img0.png" in r.output
    r = invoke(cli_runner, ["eval", f"run={tmp_path / 'run'}", "device=cpu", f"out={tmp_path / 'm.json'}"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["images"] == 2 and m["data"] == "textures test split" and math.isfinite(m["psnr_y"])
    r = invoke(cli_runner, ["eval", f"run={tmp_path / 'run'}", f"data={tmp_path / 'nowhere'}", "device=cpu"])
    assert r.exit_code == 2 and "data=" in r.output
    # ganzoo translate upscales a folder by the run's scale, sizes as they are
    r = invoke(cli_runner, ["translate", f"run={tmp_path / 'run'}", f"input={folder}", f"out={tmp_path / 'up'}",
                            "device=cpu"])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "up" / "img0.png").size == (66, 42)

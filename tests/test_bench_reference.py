"""benchmarks/reference.py: the reference projects' style of loop beside ganzoo's, on the same files.

Structure and equivalence only (same nets, same pixels, the reference's optimizer and data path),
never timings: a smoke test of the whole path plus checks that the comparison is a fair one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench  # noqa: E402
import reference  # noqa: E402

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("restore_torch_globals")  # the scripts set threads and seeds (conftest)


@pytest.fixture(scope="module")
def pix2pix_files(tmp_path_factory):
    cfg = bench.CONFIGS["pix2pix64"]
    return cfg, reference.write_folder(cfg, tmp_path_factory.mktemp("facades"))


def test_the_files_are_the_reference_layout(pix2pix_files, tmp_path):
    cfg, root = pix2pix_files
    files = sorted((root / "train").glob("*.jpg"))
    assert len(files) == cfg.items and Image.open(files[0]).size == (2 * cfg.resolution, cfg.resolution)
    cyc = bench.CONFIGS["cyclegan64"]
    reference.write_folder(cyc, tmp_path)
    for side in "AB":
        assert len(list((tmp_path / f"train{side}").glob("*.jpg"))) == cyc.items


def test_the_reference_transform_gives_ganzoos_pixels_for_the_same_crop_and_flip(pix2pix_files):
    """resize to load_size (PIL bicubic), crop, flip, [-1, 1]: the reference per item, ganzoo once at the
    start (resize) and on the device (crop, flip) — the same numbers for the same crop and flip."""
    cfg, root = pix2pix_files
    load, crop = reference.load_size(cfg.resolution), cfg.resolution
    assert (load, reference.load_size(256)) == (72, 286)
    ours = reference.build_folder(cfg, root)
    item = ours[3]["B"]  # uint8, resized to load x load, not yet cropped
    assert item.shape == (3, load, load)
    ab = Image.open(sorted((root / "train").glob("*.jpg"))[3]).convert("RGB")
    b = ab.crop((cfg.resolution, 0, 2 * cfg.resolution, cfg.resolution))
    for x, y, flip in ((0, 0, False), (5, 3, True), (load - crop, load - crop, False)):
        theirs = reference.reference_transform(b, load, crop, x, y, flip)
        mine = item[:, y:y + crop, x:x + crop].float() / 127.5 - 1
        if flip:
            mine = mine.flip(-1)
        assert theirs.shape == (3, crop, crop)
        torch.testing.assert_close(theirs, mine, atol=1e-6, rtol=0)


def test_an_aligned_pair_gets_one_crop_and_flip(tmp_path):
    """aligned_dataset.py: both halves share get_params; an A|A file must give A == B on every draw."""
    img = reference._photo(torch.Generator().manual_seed(1), 64)
    (tmp_path / "train").mkdir()
    ab = Image.new("RGB", (128, 64))
    ab.paste(img, (0, 0))
    ab.paste(img, (64, 0))
    ab.save(tmp_path / "train" / "0.png")  # lossless: the halves stay equal
    data = reference.ReferenceAligned(tmp_path, 72, 64)
    firsts = set()
    for _ in range(20):
        item = data[0]
        assert torch.equal(item["A"], item["B"])
        firsts.add(tuple(item["A"][0, 0, :4].tolist()))
    assert len(firsts) > 1  # the crop and flip are random from draw to draw


def test_the_loops_start_from_the_same_nets_and_differ_in_optimizer_and_data_path(pix2pix_files):
    cfg, root = pix2pix_files
    ganzoo, _ = reference.ganzoo_loop(cfg, root, CPU)
    ref = reference.ReferenceLoop(cfg, root, CPU, workers=0)
    for n in ("G", "D"):
        for p, q in zip(getattr(ganzoo.trainer.model, n).parameters(), getattr(ref.inner, n).parameters(), strict=True):
            assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()
    for opt in (ref.inner.opt_g, ref.inner.opt_d):  # the reference's torch.optim.Adam(lr, betas), torch's defaults
        group = opt.param_groups[0]
        assert type(opt) is torch.optim.Adam and not group["fused"] and not group["foreach"]
        assert (group["lr"], tuple(group["betas"]), group["eps"]) == (2e-4, (0.5, 0.999), 1e-8)
    assert any(g["fused"] for opt in ganzoo.trainer.opt.values() for g in opt.param_groups)
    assert isinstance(ref.dataset, reference.ReferenceAligned) and len(ref.dataset) == cfg.items
    assert ganzoo.trainer.stream.preloaded  # ganzoo decodes once and crops on the device
    before = [p.detach().clone() for p in ref.inner.G.parameters()]
    ref.step()
    assert set(ref.losses) == {"D", "G"} and all(isinstance(v, float) for v in ref.losses.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, ref.inner.G.parameters()))


def test_quick_run_writes_every_loop(tmp_path, capsys):
    out = tmp_path / "ref.json"
    (r,) = reference.main(["--quick", "--models", "pix2pix64", "--threads", "1", "--workers", "0",
                           "--best", "channels_last", "--json", str(out)])
    assert set(r["steps_per_s"]) == {"ganzoo", "ganzoo best", "reference"}
    assert all(v > 0 for v in r["steps_per_s"].values())
    assert r["speedup_over_reference"]["reference"] == 1.0
    assert r["best_switches"] == {"channels_last": True}
    assert r["steps_per_round"] == 2 and all(len(t) == r["rounds"] == 2 for t in r["round_s"].values())
    assert json.loads(out.read_text())["results"][0]["config"] == "pix2pix64"
    assert "ganzoo vs the reference" in capsys.readouterr().out


def test_an_unknown_switch_names_the_known_ones():
    with pytest.raises(SystemExit, match="known switches are bf16"):
        reference.best_switches(CPU, "bf17")

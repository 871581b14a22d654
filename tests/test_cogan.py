"""CoGAN (Liu & Tuzel 2016): the shared layers are one Parameter in both nets (and in the EMA copies),
updated once per step and still shared after a resume; one trunk pass per iteration; the paper's nets;
pixel agreement on known inputs; pairs side by side in `ganzoo sample`; the adaptation variant and its
source-only baseline train and evaluate."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from ganzoo import run
from ganzoo.build import build_dataset, build_model, load_model
from ganzoo.data.base import DataInfo
from ganzoo.data.domains import edge_map
from ganzoo.data.loader import BatchStream, to_float
from ganzoo.errors import UserError
from ganzoo.metrics.coupled import pixel_agreement
from ganzoo.models.base import CLASSIFY, JOINT, side_by_side
from ganzoo.settings import OptimSettings
from ganzoo.trainer import Trainer

from .conftest import invoke, tiny_data_cfg, tiny_model_args, tiny_model_cfg, tiny_trainer_settings

CPU = torch.device("cpu")
INFO = DataInfo("digits_unpaired", channels=1, channels_b=1, resolution=28, num_classes=10, size=32,
                fields=("A", "B", "label", "label_b"), domain_map="edges")


def _train(run_dir, resume=None, model=None, data=None, **kw):
    return run.train(model_cfg=tiny_model_cfg("cogan", **(model or {})), dataset_cfg={**tiny_data_cfg("cogan"), **(data or {})},
                     trainer=tiny_trainer_settings(**kw), optim=OptimSettings(), seed=0, run_dir=run_dir, config={},
                     resume=resume)


def _shared(model) -> list[tuple[str, torch.nn.Parameter, torch.nn.Parameter]]:
    """(name, G1's or D1's parameter, G2's or D2's) for every parameter of the shared trunk and tail."""
    out = [(f"trunk.{n}", p, dict(model.G2.trunk.named_parameters())[n]) for n, p in model.G1.trunk.named_parameters()]
    return out + [(f"tail.{n}", p, dict(model.D2.tail.named_parameters())[n]) for n, p in model.D1.tail.named_parameters()]


def test_shared_layers_are_one_parameter_in_both_nets_the_ema_and_after_resume(tmp_path):
    t = _train(tmp_path, max_steps=3, ema=True, ema_decay=0.5)
    m = t.model
    shared = _shared(m)
    assert shared and all(a is b for _, a, b in shared)
    assert m.G1.head[0].weight is not m.G2.head[0].weight and m.D1.stem[0].weight is not m.D2.stem[0].weight
    # one entry per shared parameter in the optimizer, one Adam step per training step
    g_params = t.opt["G"].param_groups[0]["params"]
    assert len(g_params) == len({id(p) for p in g_params})
    for _, p, _ in shared:
        opt = t.opt["G"] if any(p is q for q in g_params) else t.opt["D"]
        assert int(opt.state[p]["step"]) == 3
    assert t.ema["G1"].trunk is t.ema["G2"].trunk  # the EMA copies share the trunk too
    # resume: the shared parameters are one object again, with the saved weights, EMA and Adam state
    t2 = _train(tmp_path, resume=str(tmp_path), max_steps=3, ema=True, ema_decay=0.5)
    m2 = t2.model
    assert all(a is b for _, a, b in _shared(m2))
    assert t2.ema["G1"].trunk is t2.ema["G2"].trunk
    for (name, a, _), (_, a2, _) in zip(shared, _shared(m2)):
        assert torch.equal(a, a2), name
    assert torch.equal(t2.ema["G1"].trunk[1].weight, t.ema["G1"].trunk[1].weight)
    # a run folder rebuilds a model whose trunk is shared, with the EMA weights in it
    loaded, _ = load_model(tmp_path, device=CPU)
    assert loaded.G1.trunk is loaded.G2.trunk
    assert torch.equal(loaded.G1.trunk[1].weight, t.ema["G1"].trunk[1].weight)


def test_one_trunk_pass_per_iteration(tmp_path):
    data = build_dataset(tiny_data_cfg("cogan"))
    model = build_model("cogan", tiny_model_args("cogan"), data.info)
    t = Trainer(model, BatchStream(data, batch_size=8, seed=0, device=CPU), settings=tiny_trainer_settings(),
                optim=OptimSettings(), run_dir=tmp_path, seed=0, device=CPU, meta={})
    calls = []
    model.G1.trunk.register_forward_hook(lambda *a: calls.append(1))
    t.train_step(next(t.stream))
    assert len(calls) == 1


def test_the_papers_nets():
    """The official 28x28 nets: trunk 1024-512-256-128 (BN without affine, PReLU), 6x6 heads with a
    sigmoid; D stems conv 5x5 -> 20, the shared conv 5x5 -> 50, conv 4x4 -> 500, 2 logits."""
    m = build_model("cogan", {}, INFO)
    tconvs = [x for x in m.G1.trunk if isinstance(x, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in tconvs] == [1024, 512, 256, 128]
    assert all(not b.affine for b in m.G1.trunk if isinstance(b, torch.nn.BatchNorm2d))
    assert m.G1.head[0].kernel_size == (6, 6) and isinstance(m.G1.head[1], torch.nn.Sigmoid)
    assert m.D1.stem[0].out_channels == 20 and m.D1.stem[0].kernel_size == (5, 5)
    body = m.D1.tail.body
    assert (body[0].out_channels, body[2].out_channels, body[2].kernel_size) == (50, 500, (4, 4))
    assert m.D1.tail.adv.out_features == 2 and m.D1.tail.cls is None
    x1, x2 = m.eval().generate_domains(3, generator=torch.Generator().manual_seed(0))
    assert x1.shape == x2.shape == (3, 1, 28, 28) and x1.min() >= -1 and x1.max() <= 1
    assert m.can(JOINT) and not m.can(CLASSIFY)
    adapt = build_model("cogan", {"adapt": True}, INFO)
    assert adapt.can(CLASSIFY) and adapt.D1.tail.cls is adapt.D2.tail.cls and adapt.D1.tail.cls.out_features == 10
    assert build_model("cogan", {}, DataInfo(**{**INFO.to_dict(), "fields": INFO.fields, "resolution": 32})) \
        .generate(2).shape == (2, 1, 32, 32)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(UserError, match="dataset.resolution=28"):
        build_model("cogan", {}, DataInfo(**{**INFO.to_dict(), "fields": INFO.fields, "resolution": 64}))
    with pytest.raises(UserError, match="model.adapt=true"):
        build_model("cogan", {"source_only": True}, INFO)
    unlabeled = DataInfo(**{**INFO.to_dict(), "fields": ("A", "B"), "num_classes": 0})
    with pytest.raises(UserError, match="labels"):
        build_model("cogan", {"adapt": True}, unlabeled)


def test_pixel_agreement_on_known_inputs():
    digits = build_dataset({"name": "digits", "num_train": 8, "num_test": 8, "resolution": 28}).images[:8]
    x1 = to_float(digits)
    edges, neg = to_float(edge_map(digits)), to_float(255 - digits)
    assert torch.equal(pixel_agreement(x1, edges, "edges"), torch.ones(8))  # the map of x1 itself
    assert torch.equal(pixel_agreement(x1, neg, "negative"), torch.ones(8))
    black = -torch.ones_like(x1)
    on = (edge_map(digits).float() > 127.5).flatten(1).float().mean(1)  # share of edge pixels
    assert torch.allclose(pixel_agreement(x1, black, "edges"), 1 - on)
    assert torch.equal(pixel_agreement(black, black, "negative"), torch.zeros(8))  # the negative of black is white
    # binarised at 0.5: 0.45 and 0.55 (on [0, 1]) fall on either side
    grey = torch.full((1, 1, 2, 2), 0.55 * 2 - 1)
    assert pixel_agreement(grey, grey, "negative").item() == 0.0
    assert pixel_agreement(grey, torch.full_like(grey, 0.45 * 2 - 1), "negative").item() == 1.0


def test_side_by_side_interleaves_the_domains():
    a, b = torch.zeros(3, 1, 4, 4), torch.ones(3, 3, 4, 4)
    out = side_by_side((a, b))
    assert out.shape == (6, 3, 4, 4)
    assert (out[0::2] == 0).all() and (out[1::2] == 1).all()


def test_sample_shows_pairs_side_by_side_and_eval_scores_agreement(tmp_path, cli_runner):
    _train(tmp_path, max_steps=2)
    r = invoke(cli_runner, ["sample", f"run={tmp_path}", "n=4", f"out={tmp_path / 's.png'}", "device=cpu"])
    assert r.exit_code == 0, r.stderr
    with Image.open(tmp_path / "s.png") as im:  # 4 pairs = 8 images of 28 px, 2 pairs per row, 2-px padding
        assert im.size == (4 * 30 + 2, 2 * 30 + 2)
    r = invoke(cli_runner, ["eval", f"run={tmp_path}", "n_per_class=2", "batch_size=8", "device=cpu"])
    assert r.exit_code == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 <= m["pixel_agreement"] <= 1 and 0 <= m["pixel_agreement_unpaired"] <= 1 and m["pairs"] == 20
    assert "target_accuracy" not in m


def test_adaptation_variant_trains_and_reports_target_accuracy(tmp_path, cli_runner):
    t = _train(tmp_path, max_steps=2, model={"adapt": True}, data={"domain": "negative"})
    assert set(t.phases[0].nets) == {"D1", "D2"}
    stats = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert "D/cls" in stats[-1] and "D/feat" in stats[-1]
    r = invoke(cli_runner, ["eval", f"run={tmp_path}", "n_per_class=2", "batch_size=8", "device=cpu"])
    assert r.exit_code == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 <= m["target_accuracy"] <= 1 and m["target_images"] == 8 and "pixel_agreement" in m


def test_source_only_baseline_trains_the_class_net_alone(tmp_path, cli_runner):
    t = _train(tmp_path, max_steps=2, model={"adapt": True, "source_only": True}, data={"domain": "negative"})
    assert [(p.name, p.nets) for p in t.phases] == [("D", ("D1",))]
    r = invoke(cli_runner, ["eval", f"run={tmp_path}", "batch_size=8", "device=cpu"])
    assert r.exit_code == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert "target_accuracy" in m and "pixel_agreement" not in m


def test_a_dataset_without_a_domain_map_is_refused_by_eval(tmp_path, cli_runner):
    _train(tmp_path, max_steps=1, data={"name": "digits_pairs"})
    r = invoke(cli_runner, ["eval", f"run={tmp_path}", "device=cpu"])
    assert r.exit_code == 2 and "domain_map" in r.stderr

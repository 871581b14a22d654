"""Every shipped config composes, names a registered model/dataset, and its keys fit the code."""

from __future__ import annotations

import inspect

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from ganzoo.build import SUBSET_KEYS, build_dataset, build_model, split_name
from ganzoo.cli import describe, group_options
from ganzoo.data.base import DataInfo
from ganzoo.data.loader import LABELED_FIELDS
from ganzoo.models.base import TRANSLATE
from ganzoo.registry import DATASETS, MODELS


@pytest.fixture(scope="module")
def hydra_ctx():
    with initialize_config_module(config_module="ganzoo.conf", version_base="1.3"):
        yield


def test_registry_and_configs_match():
    assert set(group_options("model")) == set(MODELS.names())
    assert set(DATASETS.names()) <= {OmegaConf.load(f).name for f in _dataset_files()}


def _dataset_files():
    from importlib import resources

    return [str(p) for p in (resources.files("ganzoo.conf") / "dataset").iterdir() if p.name.endswith(".yaml")]


@pytest.mark.parametrize("model", group_options("model"))
@pytest.mark.parametrize("dataset", group_options("dataset"))
def test_every_model_and_dataset_config_composes(hydra_ctx, model, dataset):
    cfg = compose("train", overrides=[f"model={model}", f"dataset={dataset}"])
    assert cfg.model.name == model and cfg.dataset.name in DATASETS.names()
    assert (cfg.trainer.max_steps or cfg.trainer.max_epochs) > 0 and cfg.optim.lr > 0
    builder = DATASETS.get(cfg.dataset.name)
    params = inspect.signature(builder).parameters
    for key in cfg.dataset:
        assert key == "name" or key in params or key in SUBSET_KEYS, \
            f"dataset {dataset}: key {key} is not a builder argument"


@pytest.mark.parametrize("model", group_options("model"))
def test_every_model_config_builds(hydra_ctx, model):
    cfg = compose("train", overrides=[f"model={model}"])
    name, args = split_name(OmegaConf.to_container(cfg.model, resolve=True), "model")
    info = DataInfo("digits", 1, 28, 10, 100, ("image", "label"))
    if set(LABELED_FIELDS) <= MODELS.get(name).needs:  # semi-supervised: the labeled-subset view
        info = DataInfo("digits", 1, 28, 10, 100, LABELED_FIELDS)
    if {"A", "B"} <= MODELS.get(name).needs:  # image-to-image: a paired RGB set at the reference's 256 px
        info = DataInfo("pairs", 3, 256, 0, 100, ("A", "B"), channels_b=3, aligned=True)
        if TRANSLATE not in MODELS.get(name).capabilities:  # two domains generated jointly (CoGAN's digit nets)
            info = DataInfo("digits_unpaired", 1, 28, 10, 100, ("A", "B", "label", "label_b"), channels_b=1)
    m = build_model(name, args, info)
    assert sum(p.numel() for p in m.parameters()) > 0


@pytest.mark.parametrize("group", ["model", "dataset", "trainer", "optim"])
def test_every_option_has_a_description(group):
    for opt in group_options(group):
        assert len(describe(group, opt)) > 15, f"conf/{group}/{opt}.yaml needs a first-line # description"


def test_sample_config_composes(hydra_ctx):
    cfg = compose("sample", overrides=["run=somewhere", "n=8"])
    assert cfg.run == "somewhere" and cfg.n == 8 and cfg.ema is True


@pytest.mark.parametrize("model", group_options("model"))
def test_every_model_alone_gets_a_dataset_it_trains_on(hydra_ctx, model):
    """`ganzoo train model=<name>` alone: the model's yaml picks a built-in offline dataset whose fields
    its `needs` are, and the model (its yaml's args) builds for that dataset's shape."""
    cfg = OmegaConf.to_container(compose("train", overrides=[f"model={model}"]), resolve=True)
    data_cfg = {**cfg["dataset"], "num_train": 40, "num_test": 4}  # the same set, built small
    if "labels_per_class" in data_cfg:
        data_cfg["labels_per_class"] = 2
    info = build_dataset(data_cfg).info
    assert MODELS.get(model).needs <= set(info.fields), (model, cfg["dataset"]["name"], info.fields)
    name, args = split_name(cfg["model"], "model")
    build_model(name, args, info)


@pytest.mark.parametrize("model, dataset", [("cyclegan", "facades_unpaired"), ("pix2pix", "facades"),
                                            ("srgan", "div2k")])
def test_a_dataset_given_wins_over_the_models_default(hydra_ctx, model, dataset):
    cfg = compose("train", overrides=[f"model={model}", f"dataset={dataset}"])
    assert cfg.dataset == compose("train", overrides=[f"dataset={dataset}"]).dataset


def test_bf16_by_default_only_where_measured(hydra_ctx):
    """trainer.amp=auto where benchmarks/switches.py measured bf16 faster and its floor run held in bf16: pix2pix
    from 256 px (its batch-1 U-Nets are slower in bf16 below); float32 for every other model (CycleGAN's bf16
    floor run met the floor on 2 of 3 seeds; the others' floors were measured in float32 only)."""
    amp = {m: (c.trainer.amp, c.trainer.amp_auto_min_px)
           for m in group_options("model") for c in [compose("train", overrides=[f"model={m}"])]}
    assert amp.pop("pix2pix") == ("auto", 256)
    assert set(amp.values()) == {("none", 0)}

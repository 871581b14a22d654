"""Every shipped config composes, names a registered model/dataset, and its keys fit the code."""

from __future__ import annotations

import inspect

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from ganzoo.build import SUBSET_KEYS, build_model, split_name
from ganzoo.cli import describe, group_options
from ganzoo.data.base import DataInfo
from ganzoo.data.loader import LABELED_FIELDS
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
    m = build_model(name, args, info)
    assert sum(p.numel() for p in m.parameters()) > 0


@pytest.mark.parametrize("group", ["model", "dataset", "trainer", "optim"])
def test_every_option_has_a_description(group):
    for opt in group_options(group):
        assert len(describe(group, opt)) > 15, f"conf/{group}/{opt}.yaml needs a first-line # description"


def test_sample_config_composes(hydra_ctx):
    cfg = compose("sample", overrides=["run=somewhere", "n=8"])
    assert cfg.run == "somewhere" and cfg.n == 8 and cfg.ema is True

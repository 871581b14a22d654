"""tests/tiny.py has a row for every registered model, and nothing else: a new model adds its tiny
constructor args, its tiny dataset and its generator forwards there (the model classes carry none)."""

from __future__ import annotations

import inspect

import pytest

from ganzoo.registry import MODELS

from .conftest import tiny_model_cfg, tiny_trainer_settings
from .tiny import G_FORWARDS, TABLES, TINY_MODEL_ARGS, TINY_TRAINER


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_registered_model_has_a_row(table):
    rows, names = set(TABLES[table]), set(MODELS.names())
    assert not names - rows, f"tests/tiny.py {table}: add a row for {sorted(names - rows)}"
    assert not rows - names, f"tests/tiny.py {table}: {sorted(rows - names)} is not a registered model"


@pytest.mark.parametrize("name", MODELS.names())
def test_tiny_constructor_args_are_keywords(name):
    """Each tiny arg is a keyword of the model's constructor (a renamed argument shows up here, not as a
    TypeError deep in a run), and each row's G_FORWARDS names nets of the model."""
    params = inspect.signature(MODELS.get(name).__init__).parameters
    assert set(TINY_MODEL_ARGS[name]) <= set(params), f"{name}: {set(TINY_MODEL_ARGS[name]) - set(params)}"
    forwards = G_FORWARDS[name](TINY_MODEL_ARGS[name])
    assert forwards and all(isinstance(n, int) and n >= 1 for n in forwards.values())


def test_defaults_the_forwards_assume_are_the_constructors():
    """G_FORWARDS' CycleGAN and SSGAN rows read lambda_identity and fm_batches with the constructors' defaults."""
    cyc = inspect.signature(MODELS.get("cyclegan").__init__).parameters["lambda_identity"].default
    ssgan = inspect.signature(MODELS.get("ssgan").__init__).parameters["fm_batches"].default
    assert G_FORWARDS["cyclegan"]({}) == G_FORWARDS["cyclegan"]({"lambda_identity": cyc})
    assert G_FORWARDS["ssgan"]({}) == G_FORWARDS["ssgan"]({"fm_batches": ssgan})


def test_helpers_hand_out_copies():
    cfg = tiny_model_cfg("ssgan")
    cfg["d_hidden"].append(1)
    assert tiny_model_cfg("ssgan")["d_hidden"] == [32, 16, 16]
    s = tiny_trainer_settings(max_steps=5)
    assert s.max_steps == 5 and s.batch_size == TINY_TRAINER["batch_size"] and s.device == "cpu"

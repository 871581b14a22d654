"""Shared fixtures: a private data home per test session, tiny training settings, a CLI runner."""

from __future__ import annotations

import os

import pytest
import torch

# tests never touch the user's cache or the network
os.environ.setdefault("GANZOO_DATA", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ganzoo-test-{os.getpid()}"))
torch.set_num_threads(min(2, os.cpu_count() or 1))

TINY_DIGITS = {"name": "digits", "root": None, "resolution": 28, "num_train": 256, "num_test": 64}
TINY_DATA = ["dataset.num_train=256", "dataset.num_test=64"]
TINY_OVERRIDES = [*TINY_DATA, "trainer.batch_size=8", "trainer.log_every=1",
                  "trainer.sample_every=0", "trainer.n_samples=4", "trainer.progress=false",
                  "trainer.tensorboard=false"]


@pytest.fixture(scope="session", autouse=True)
def _data_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("data")
    os.environ["GANZOO_DATA"] = str(home)
    return home


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()


def invoke(runner, args: list[str]):
    """Run the ganzoo CLI in-process; returns the click Result (exit_code, stdout, stderr)."""
    from ganzoo.cli import cli

    return runner.invoke(cli, args, catch_exceptions=False)

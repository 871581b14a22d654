"""Shared fixtures: a private data home per test session, tiny training settings, a CLI runner.

The tiny sizes themselves live in tests/tiny.py; the helpers below hand out copies of them."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import threading
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
import torch

from .tiny import (
    G_FORWARDS,
    TINY_DATA,
    TINY_DATASET,
    TINY_DIGITS,
    TINY_MODEL_ARGS,
    TINY_OVERRIDES,
    TINY_TRAINER,
)

if TYPE_CHECKING:
    from ganzoo.settings import TrainerSettings

# tests never touch the user's cache or the network
os.environ.setdefault("GANZOO_DATA", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ganzoo-test-{os.getpid()}"))
torch.set_num_threads(min(2, os.cpu_count() or 1))
# some tests send this process real Ctrl-Cs: give it Python's default SIGINT handling also when the suite was
# started as a background job of a script, which starts with SIGINT ignored (`make test &`, a CI step run that
# way), since ganzoo keeps an ignored SIGINT ignored (runtime.StopRequest). The `ganzoo train` children of the
# signal tests set their own dispositions (test_reliability._train_proc)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

__all__ = ["TINY_DATA", "TINY_DIGITS", "TINY_OVERRIDES", "invoke", "local_http_server", "tiny_data_cfg", "tiny_generator_forwards",
           "tiny_model_args", "tiny_model_cfg", "tiny_model_overrides", "tiny_runs", "tiny_trainer_settings"]


@pytest.fixture
def restore_torch_globals():
    """For tests that run the benchmark scripts, which set torch's thread count and seeds: leave both as
    they were for other tests (`pytestmark = pytest.mark.usefixtures("restore_torch_globals")`)."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def local_http_server(handler):
    """A threaded HTTP server on a free local port serving with `handler` (the offline stand-in for a
    download host), its address as `.url`; shut down and closed on exit."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.url = f"http://127.0.0.1:{srv.server_port}"
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def tiny_trainer_settings(**overrides) -> TrainerSettings:
    """TrainerSettings of a tiny CPU run (tiny.TINY_TRAINER: 2 steps of 8, a stats line each step, no
    samples or checkpoints before the end, no progress bar or TensorBoard), with `overrides` on top."""
    from ganzoo.settings import TrainerSettings

    return TrainerSettings(**{**TINY_TRAINER, **overrides})


def tiny_model_args(name: str) -> dict:
    """A copy of the model's tiny constructor args (tiny.TINY_MODEL_ARGS)."""
    return copy.deepcopy(TINY_MODEL_ARGS[name])


def tiny_model_cfg(name: str, **overrides) -> dict:
    """The model config of a tiny run, `{"name": name, **tiny args, **overrides}`, as run.train takes it."""
    return {"name": name, **tiny_model_args(name), **overrides}


def tiny_model_overrides(name: str) -> list[str]:
    """The model's tiny args as `ganzoo train` overrides (model.ngf=8 ...); the model itself not chosen."""
    return [f"model.{k}={v}" for k, v in TINY_MODEL_ARGS[name].items()]


def tiny_runs(tmp_path_factory, **trainer):
    """get(name) -> the folder of a tiny 2-step run of model `name` (trainer settings `trainer` on top of
    the tiny ones), trained on first use and shared after: for module-scoped fixtures."""
    from ganzoo import run
    from ganzoo.settings import OptimSettings

    made = {}

    def get(name: str):
        if name not in made:
            folder = tmp_path_factory.mktemp(name)
            run.train(model_cfg=tiny_model_cfg(name), dataset_cfg=tiny_data_cfg(name),
                      trainer=tiny_trainer_settings(**trainer), optim=OptimSettings(), seed=0, run_dir=folder,
                      config={})
            made[name] = folder
        return made[name]

    return get


def tiny_data_cfg(name: str, **overrides) -> dict:
    """A copy of the model's tiny dataset config (tiny.TINY_DATASET), with `overrides` on top."""
    return {**copy.deepcopy(TINY_DATASET[name]), **overrides}


def tiny_generator_forwards(name: str, args: dict) -> dict[str, int]:
    """{generator net: forwards in one training iteration} of the model built with `args` (tiny.G_FORWARDS)."""
    return G_FORWARDS[name](args)


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

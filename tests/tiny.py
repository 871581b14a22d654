"""The test suite's tiny sizes, in one place (the model classes carry none of them).

Per registered model (tests/test_tiny_table.py fails when one has no row): `TINY_MODEL_ARGS` (small
constructor args), `TINY_DATASET` (a small dataset config) and `G_FORWARDS` (the forwards of each
generator in one training iteration, a function of the model args, checked by
tests/test_models.py::test_one_generator_forward_per_iteration). Then the trainer settings of a tiny run,
and the same sizes as CLI overrides. Read them through the helpers of tests/conftest.py
(`tiny_trainer_settings`, `tiny_model_cfg`, `tiny_data_cfg`, ...), which hand out copies.
"""

from __future__ import annotations

from collections.abc import Callable

# -- datasets ---------------------------------------------------------------------------------------
TINY_DIGITS = {"name": "digits", "root": None, "resolution": 28, "num_train": 256, "num_test": 64}
TINY_TEXTURES = {"name": "textures", "num_train": 32, "num_test": 2, "size": 24, "test_size": 40, "resolution": 16}
TINY_PAIRS = {"name": "digits_pairs", "root": None, "resolution": 32, "num_train": 64, "num_test": 16}
TINY_UNPAIRED = {**TINY_PAIRS, "name": "digits_unpaired"}

# -- trainer settings (TrainerSettings fields) ------------------------------------------------------
TINY_TRAINER = {"max_steps": 2, "batch_size": 8, "log_every": 1, "sample_every": 0, "ckpt_every": 0, "n_samples": 4,
                "progress": False, "tensorboard": False, "device": "cpu"}

# -- the same sizes as `ganzoo train` overrides ------------------------------------------------------
# (the digits' sizes and the trainer's; not max_steps, ckpt_every or device, which tests set themselves)
TINY_DATA = [f"dataset.{k}={TINY_DIGITS[k]}" for k in ("num_train", "num_test")]
TINY_OVERRIDES = [*TINY_DATA, *(f"trainer.{k}={str(TINY_TRAINER[k]).lower()}"
                                for k in ("batch_size", "log_every", "sample_every", "n_samples", "progress",
                                          "tensorboard"))]

# -- per registered model ---------------------------------------------------------------------------
TINY_MODEL_ARGS: dict[str, dict] = {
    "acgan": {"ngf": 8, "ndf": 2},
    "cogan": {"ngf": 8, "d_channels": [4, 8, 16]},
    "cgan": {"g_z_units": 16, "g_y_units": 16, "g_units": 32, "d_x_units": 16, "d_y_units": 8, "d_units": 16},
    "cyclegan": {"netG": "resnet_2blocks", "ngf": 8, "ndf": 8, "pool_size": 3},
    "dcgan": {"ngf": 8, "ndf": 8},
    "dtn": {"f_width": 4, "ngf": 4, "ndf": 4, "f_epochs": 1},
    "gan": {"g_hidden": 64, "d_units": 32},
    "infogan": {"ngf": 8, "ndf": 8, "fc_dim": 32, "q_dim": 16},
    "pix2pix": {"netG": "unet_32", "ngf": 8, "ndf": 8},
    "srgan": {"n_blocks": 2, "width": 8, "scale": 2, "ndf": 8, "dense": 16, "content_weights": "random"},
    "srresnet": {"n_blocks": 2, "width": 8, "scale": 2},
    "ssgan": {"g_hidden": 32, "d_hidden": [32, 16, 16]},
    "unit": {"ch": 4, "dis_ch": 4, "n_enc_res_blk": 0, "n_gen_res_blk": 0},
    "wgan_gp": {"ngf": 8, "ndf": 8},
}

TINY_DATASET: dict[str, dict] = {
    "acgan": TINY_DIGITS,
    "cgan": TINY_DIGITS,
    "cogan": {**TINY_UNPAIRED, "resolution": 28},  # the paper's 28 px nets
    "cyclegan": TINY_UNPAIRED,
    "dcgan": TINY_DIGITS,
    "dtn": TINY_UNPAIRED,
    "gan": TINY_DIGITS,
    "infogan": TINY_DIGITS,
    "pix2pix": TINY_PAIRS,
    "srgan": TINY_TEXTURES,
    "srresnet": TINY_TEXTURES,
    "ssgan": {**TINY_DIGITS, "labels_per_class": 2, "label_seed": 0},  # a semi-supervised model needs the subset
    "unit": TINY_UNPAIRED,
    "wgan_gp": TINY_DIGITS,
}


def _one_g(args: dict) -> dict[str, int]:
    return {"G": 1}


def _cyclegan(args: dict) -> dict[str, int]:
    """Per G: two translations (fake, reconstruction), and an identity pass while lambda_identity > 0
    (the model's default is 0.5)."""
    n = 3 if args.get("lambda_identity", 0.5) > 0 else 2
    return {"G_A": n, "G_B": n}


def _ssgan(args: dict) -> dict[str, int]:
    """fm_batches=separate (the default, as the official code): a fresh z for the G step, a second G forward."""
    return {"G": 2 if args.get("fm_batches", "separate") == "separate" else 1}


def _cogan(args: dict) -> dict[str, int]:
    """G1 and G2 one forward each (their heads, on one pass of the shared trunk: tests/test_cogan.py counts it)."""
    return {"G1": 1, "G2": 1}


def _unit(args: dict) -> dict[str, int]:
    """Per encoder and generator: the direct pass (each G decodes [z_a; z_b] in one call, as the official
    code) and the cycle pass; the D step reuses them (the code's dis_update does one more pass of each)."""
    return {"E_A": 2, "E_B": 2, "G_A": 2, "G_B": 2}


G_FORWARDS: dict[str, Callable[[dict], dict[str, int]]] = {
    "acgan": _one_g,
    "cgan": _one_g,
    "cogan": _cogan,
    "cyclegan": _cyclegan,
    "dcgan": _one_g,
    "dtn": lambda args: {"g": 1},  # one g pass on the source and target features together
    "gan": _one_g,
    "infogan": lambda args: {"G": 1 if args.get("g_codes") == "shared" else 2},  # fresh codes for the G step
    "pix2pix": _one_g,  # the reference: one netG forward
    "srgan": _one_g,
    "srresnet": _one_g,
    "ssgan": _ssgan,
    "unit": _unit,
    "wgan_gp": _one_g,  # the G phase (every n_critic steps) reuses prepare's fake
}

TABLES = {"TINY_MODEL_ARGS": TINY_MODEL_ARGS, "TINY_DATASET": TINY_DATASET, "G_FORWARDS": G_FORWARDS}

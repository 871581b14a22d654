"""`ganzoo eval`: the Hungarian matching, and the metrics of each model family on 2-step tiny runs."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from ganzoo import run
from ganzoo.checkpoint import load_run
from ganzoo.errors import UserError
from ganzoo.metrics.hungarian import hungarian
from ganzoo.models.base import CONDITIONAL, GENERATE, GANModel
from ganzoo.settings import OptimSettings

from .conftest import TINY_DIGITS, invoke, tiny_data_cfg, tiny_model_cfg, tiny_trainer_settings

FAST = ["n_per_class=4", "batch_size=64", "device=cpu", "judge_epochs=1"]


def test_hungarian_recovers_a_known_permutation():
    perm = [3, 0, 4, 1, 2]
    cost = [[0.0 if perm[i] == j else 1.0 + i + j for j in range(5)] for i in range(5)]
    assert hungarian(cost) == perm
    assert hungarian([]) == [] and hungarian([[7]]) == [0]
    with pytest.raises(ValueError, match="square"):
        hungarian([[1, 2]])


@pytest.mark.parametrize("seed", range(5))
def test_hungarian_matches_brute_force(seed):
    rng = random.Random(seed)
    cost = [[rng.randint(-20, 20) if seed % 2 else rng.random() for _ in range(5)] for _ in range(5)]
    best = min(sum(cost[i][p[i]] for i in range(5)) for p in itertools.permutations(range(5)))
    got = hungarian(cost)
    assert sorted(got) == list(range(5))
    assert sum(cost[i][got[i]] for i in range(5)) == pytest.approx(best)


def _train(name: str, run_dir, max_steps_: int = 2, **kw):
    run.train(model_cfg=tiny_model_cfg(name), dataset_cfg=tiny_data_cfg(name),
              trainer=tiny_trainer_settings(max_steps=max_steps_, **kw), optim=OptimSettings(), seed=3,
              run_dir=run_dir, config={})
    return run_dir


def _eval(cli_runner, run_dir, *extra) -> dict:
    r = invoke(cli_runner, ["eval", f"run={run_dir}", *FAST, *extra])
    assert r.exit_code == 0, r.output
    return json.loads((run_dir / "metrics.json").read_text())


def test_eval_cgan_conditional_accuracy(cli_runner, tmp_path):
    m = _eval(cli_runner, _train("cgan", tmp_path / "cgan"))
    assert 0 <= m["conditional_accuracy"] <= 1 and 0 <= m["judge_test_accuracy"] <= 1
    assert len(m["conditional_accuracy_per_class"]) == 10
    assert all(0 <= a <= 1 for a in m["conditional_accuracy_per_class"])
    assert m["step"] == 2 and m["model"] == "cgan"


def test_eval_infogan_code_accuracy_and_matching(cli_runner, tmp_path):
    m = _eval(cli_runner, _train("infogan", tmp_path / "infogan"))
    assert 0 <= m["code_accuracy"] <= 1
    matching = {int(c): k for c, k in m["code_matching"].items()}
    assert sorted(matching) == list(range(10)) and sorted(matching.values()) == list(range(10))
    assert sum(map(sum, m["code_confusion"])) == tiny_data_cfg("infogan")["num_test"]
    assert "class_histogram" in m  # its generator is unconditional: the judge's histogram too


def test_eval_ssgan_test_accuracy_with_ema(cli_runner, tmp_path):
    out = tmp_path / "elsewhere" / "m.json"
    r = invoke(cli_runner, ["eval", f"run={_train('ssgan', tmp_path / 'ssgan', ema=True)}", *FAST, f"out={out}"])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert 0 <= m["test_accuracy"] <= 1 and 0 <= m["test_accuracy_ema"] <= 1
    assert not (tmp_path / "ssgan" / "metrics.json").exists()


def test_eval_ema_false_scores_the_live_weights_into_their_own_file(cli_runner, tmp_path):
    run_dir = _train("pix2pix", tmp_path / "p2p", 3, ema=True, ema_decay=0.5)
    ema = _eval(cli_runner, run_dir)
    r = invoke(cli_runner, ["eval", f"run={run_dir}", *FAST, "ema=false"])
    assert r.exit_code == 0, r.output
    live = json.loads((run_dir / "metrics_live.json").read_text())
    assert json.loads((run_dir / "metrics.json").read_text()) == ema  # the EMA's file is left alone
    l1 = [k for k in ema if k.endswith("_l1")]
    assert l1 and set(l1) <= set(live)
    assert all(live[k] != pytest.approx(ema[k], rel=1e-6, abs=0) for k in l1)  # other weights, other numbers
    # SSGAN: ema=false is its live classifier alone, the same number the default file gives beside the EMA's
    both = _eval(cli_runner, _train("ssgan", tmp_path / "ssgan", ema=True, ema_decay=0.5))
    r = invoke(cli_runner, ["eval", f"run={tmp_path / 'ssgan'}", *FAST, "ema=false", "step=2"])
    assert r.exit_code == 0, r.output
    only = json.loads((tmp_path / "ssgan" / "metrics_live_step2.json").read_text())
    assert "test_accuracy_ema" not in only and only["test_accuracy"] == both["test_accuracy"]
    # a run without an EMA: ema=false is the default, into metrics.json
    plain = _train("dcgan", tmp_path / "dcgan")
    r = invoke(cli_runner, ["eval", f"run={plain}", *FAST, "ema=false"])
    assert r.exit_code == 0 and (plain / "metrics.json").exists() and not (plain / "metrics_live.json").exists()
    r = invoke(cli_runner, ["eval", f"run={plain}", *FAST, "ema=maybe"])
    assert r.exit_code != 0 and len(r.stderr.strip().splitlines()) == 1 and "ema" in r.stderr, r.stderr


def test_eval_dcgan_histogram(cli_runner, tmp_path):
    m = _eval(cli_runner, _train("dcgan", tmp_path / "dcgan"))
    assert len(m["class_histogram"]) == 10 and sum(m["class_histogram"]) == m["samples"] == 40
    assert 0 <= m["recognisable"] <= 1 and 0 <= m["judge_test_accuracy"] <= 1
    assert "conditional_accuracy" not in m and "code_accuracy" not in m


def test_eval_step_scores_an_older_checkpoint_beside_the_newest(cli_runner, tmp_path):
    run_dir = _train("infogan", tmp_path / "infogan", 4, ckpt_every=1)  # keeps steps 2, 3, 4
    r = invoke(cli_runner, ["eval", f"run={run_dir}", *FAST, "step=3"])
    assert r.exit_code == 0, r.output
    m = json.loads((run_dir / "metrics_step3.json").read_text())
    assert m["step"] == 3 and 0 <= m["code_accuracy"] <= 1
    assert not (run_dir / "metrics.json").exists()  # the newest checkpoint's file is left alone
    assert load_run(run_dir, step=3)["step"] == 3 and load_run(run_dir)["step"] == 4
    # the model at step 3 is not the one at step 4: the step picks the weights, not only the label
    w3, w4 = (load_run(run_dir, step=s)["nets"] for s in (3, 4))
    assert any(not torch.equal(w3[k], w4[k]) for k in w3 if w3[k].is_floating_point())


@pytest.mark.parametrize("step, says", [(1, "keeps steps: 2, 3, 4"), (-1, "step")])
def test_eval_step_it_does_not_keep_is_one_line_exit_2(cli_runner, tmp_path, step, says):
    run_dir = _train("infogan", tmp_path / "infogan", 4, ckpt_every=1)
    r = invoke(cli_runner, ["eval", f"run={run_dir}", *FAST, f"step={step}"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr


def test_eval_step_of_a_corrupt_checkpoint_is_one_line_exit_2(cli_runner, tmp_path):
    run_dir = _train("infogan", tmp_path / "infogan", 4, ckpt_every=1)
    pt = run_dir / "checkpoints" / "step_00000003.pt"
    pt.write_bytes(pt.read_bytes()[:-10])
    r = invoke(cli_runner, ["eval", f"run={run_dir}", *FAST, "step=3"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "SHA-256 mismatch" in r.stderr and "step=" in r.stderr


def test_eval_missing_run_is_one_line_exit_2(cli_runner, tmp_path):
    r = invoke(cli_runner, ["eval", f"run={tmp_path / 'nope'}", *FAST])
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr


def test_eval_help_lists_its_keys(cli_runner):
    r = invoke(cli_runner, ["eval", "--help"])
    assert r.exit_code == 0 and "n_per_class" in r.output and "judge_epochs" in r.output


def test_eval_unlabeled_dataset_is_one_line_exit_2(cli_runner, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(16):
        Image.new("RGB", (16, 16), (i * 15, 0, 255 - i * 15)).save(images / f"{i}.png")
    run_dir = tmp_path / "gan"
    run.train(model_cfg=tiny_model_cfg("gan"),
              dataset_cfg={"name": "image_folder", "path": str(images), "resolution": 16},
              trainer=tiny_trainer_settings(max_steps=1),
              optim=OptimSettings(), seed=0, run_dir=run_dir, config={})
    r = invoke(cli_runner, ["eval", f"run={run_dir}", *FAST])
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "no labels" in r.stderr and "histogram" in r.stderr


# -- the same metrics during training (trainer.eval_every) ------------------------------------------
def _stats(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name,key", [("cgan", "eval/conditional_accuracy"), ("ssgan", "eval/test_accuracy"),
                                      ("infogan", "eval/code_accuracy"), ("dcgan", "eval/recognisable")])
def test_eval_every_logs_metrics_and_changes_nothing_else(name, key, tmp_path):
    """eval_every=2 over 3 steps: metrics at steps 2 and 3 (the end) in stats.jsonl; the weights and the
    logged losses are bitwise those of a run without evaluation (the evaluator's randomness is its own)."""
    _train(name, tmp_path / "plain", max_steps_=3)
    _train(name, tmp_path / "eval", max_steps_=3, eval_every=2, eval_n_per_class=2)
    plain, with_eval = _stats(tmp_path / "plain"), _stats(tmp_path / "eval")
    evals = [r for r in with_eval if any(k.startswith("eval/") for k in r)]
    assert [r["step"] for r in evals] == [2, 3]
    assert all(0 <= r[key] <= 1 for r in evals)
    strip = [{k: v for k, v in r.items() if k not in ("time", "steps_per_s")} for r in with_eval if r not in evals]
    assert strip == [{k: v for k, v in r.items() if k not in ("time", "steps_per_s")} for r in plain]
    a, b = load_run(tmp_path / "plain")["nets"], load_run(tmp_path / "eval")["nets"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_eval_every_on_an_unlabeled_dataset_fails_before_training(tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(8):
        Image.new("RGB", (16, 16), (i * 30, 0, 0)).save(images / f"{i}.png")
    settings = tiny_trainer_settings(max_steps=1, batch_size=4, eval_every=1)
    with pytest.raises(UserError, match="no labels"):
        run.train(model_cfg=tiny_model_cfg("gan"),
                  dataset_cfg={"name": "image_folder", "path": str(images), "resolution": 16}, trainer=settings,
                  optim=OptimSettings(), seed=0, run_dir=tmp_path / "run", config={})
    assert not (tmp_path / "run" / "stats.jsonl").exists()


def test_eval_every_on_super_resolution_logs_psnr(tmp_path):
    _train("srresnet", tmp_path / "plain", max_steps_=2)
    _train("srresnet", tmp_path / "eval", max_steps_=2, eval_every=1)
    evals = [r for r in _stats(tmp_path / "eval") if "eval/psnr_y" in r]
    assert [r["step"] for r in evals] == [1, 2]
    assert all(5 < r["eval/psnr_y"] < 100 and 0 < r["eval/ssim_y"] <= 1 for r in evals)
    assert all("eval/bicubic_psnr_y" in r and "eval/psnr_gain_over_bicubic" in r for r in evals)
    a, b = load_run(tmp_path / "plain")["nets"], load_run(tmp_path / "eval")["nets"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mean_pairwise_l2_is_the_mean_over_distinct_pairs():
    from ganzoo.metrics.generation import mean_pairwise_l2

    x = torch.tensor([[0.0], [3.0], [4.0]])  # distances 3, 4, 1
    assert mean_pairwise_l2(x) == pytest.approx(8 / 3)
    assert mean_pairwise_l2(torch.ones(5, 1, 4, 4)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_l2(torch.zeros(1, 3))


class _ReplayModel(GANModel):
    """A stand-in conditional generator: for label c it returns real test images of class c
    (`collapse`: always the same one)."""

    capabilities = frozenset({GENERATE, CONDITIONAL})

    def __init__(self, test, collapse: bool):
        super().__init__(test.info)
        from ganzoo.data.loader import to_float
        from ganzoo.metrics.judge import real_images

        x, y = real_images(test)
        self.by_class = [to_float(x[y == c]) for c in range(10)]
        self.collapse, self.used = collapse, [0] * 10

    def generate(self, n, *, labels, generator=None):
        out = []
        for c in labels.tolist():
            pool = self.by_class[c]
            out.append(pool[0] if self.collapse else pool[self.used[c] % len(pool)])
            self.used[c] += 1
        return torch.stack(out)


@pytest.mark.parametrize("collapse", [False, True])
def test_diversity_ratio_tells_a_collapsed_generator_from_real_images(collapse):
    from ganzoo.build import Splits
    from ganzoo.metrics.generation import ClassAccuracy
    from ganzoo.metrics.suite import EvalOptions

    splits = Splits(dict(TINY_DIGITS, num_test=200))
    model = _ReplayModel(splits.test, collapse)
    ev = ClassAccuracy(model, splits, EvalOptions(n_per_class=6, batch_size=64, judge_epochs=1))
    m = ev(model)
    assert len(m["diversity_ratio_per_class"]) == 10
    if collapse:  # one image per label: as "accurate" as real images, and no spread at all
        assert m["diversity_ratio"] == pytest.approx(0.0, abs=1e-4)
    else:  # real images of each class: about the real spread (6 of them against up to 1000)
        assert 0.7 < m["diversity_ratio"] < 1.3
    assert all(r >= 0 for r in m["diversity_ratio_per_class"])


def test_eval_every_with_ema_logs_what_ganzoo_eval_writes(cli_runner, tmp_path, monkeypatch):
    """SSGAN with an EMA: the in-training eval logs the live D's test_accuracy and the EMA D's
    test_accuracy_ema, the same numbers `ganzoo eval` writes for the final checkpoint. The accuracy is
    replaced by a number read off D's weights, so the two Ds cannot score alike by chance."""
    from ganzoo.metrics import classify

    monkeypatch.setattr(classify, "test_accuracy", lambda model, data, batch_size=0: float(model.D.out.bias.sum()))
    run_dir = _train("ssgan", tmp_path / "ssgan", max_steps_=3, ema=True, ema_decay=0.5, eval_every=3)
    logged = [r for r in _stats(run_dir) if "eval/test_accuracy" in r]
    assert [r["step"] for r in logged] == [3]
    m = _eval(cli_runner, run_dir)
    ckpt = load_run(run_dir)
    assert m["test_accuracy"] == pytest.approx(float(ckpt["nets"]["D.out.bias"].sum()))
    assert m["test_accuracy_ema"] == pytest.approx(float(ckpt["ema"]["D"]["out.bias"].sum()))
    assert m["test_accuracy"] != pytest.approx(m["test_accuracy_ema"])
    assert logged[0]["eval/test_accuracy"] == pytest.approx(m["test_accuracy"])
    assert logged[0]["eval/test_accuracy_ema"] == pytest.approx(m["test_accuracy_ema"])


def test_first_eval_says_it_trains_the_judge_then_caches_it(cli_runner, tmp_path, monkeypatch):
    run_dir = _train("dcgan", tmp_path / "dcgan")
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path / "home"))  # no judge cached yet
    r = invoke(cli_runner, ["eval", f"run={run_dir}", *FAST])
    assert r.exit_code == 0, r.output
    assert f"training the judge classifier for digits (once; cached in {tmp_path / 'home' / 'judges'}" in r.stderr
    assert "judge classifier for digits trained in" in r.stderr and "test accuracy" in r.stderr
    r = invoke(cli_runner, ["eval", f"run={run_dir}", *FAST])
    assert r.exit_code == 0 and "judge" not in r.stderr, r.stderr  # cached: nothing to wait for

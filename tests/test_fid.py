"""FID, KID, IS and precision/recall: the math against textbook forms and known cases, the feature
extractors (a tiny random stand-in; the real Inception weights only where the file is present), the
reference-statistics cache, and `ganzoo eval metrics=[...]` / `trainer.eval_metrics` end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from ganzoo import run
from ganzoo.data.base import DataError
from ganzoo.data.fetch import download, manifest
from ganzoo.errors import UserError
from ganzoo.images import to_uint8
from ganzoo.metrics import feature_scores as fs
from ganzoo.metrics import features
from ganzoo.metrics.fid import _uint8
from ganzoo.metrics.reference import reference_stats
from ganzoo.metrics.suite import EvalOptions
from ganzoo.settings import OptimSettings

from .conftest import TINY_OVERRIDES, invoke, tiny_data_cfg, tiny_model_cfg, tiny_trainer_settings

# -- the math -------------------------------------------------------------------------------------


def _random_cov(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, 2 * d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / (2 * d)


def _textbook_fid(mu1, s1, mu2, s2) -> float:
    """|mu1 - mu2|² + tr(S1 + S2 - 2 (S1 S2)^½), the square root of the non-symmetric product taken
    from its eigenvalues (real and >= 0 for a product of two SPD matrices)."""
    tr_sqrt = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_sqrt)


@pytest.mark.parametrize("d", [1, 3, 8])
def test_frechet_distance_matches_the_textbook_formula(d):
    g = torch.Generator().manual_seed(d)
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = _random_cov(d, 1), _random_cov(d, 2)
    assert fs.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_textbook_fid(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    # N(mu1, diag(a)) vs N(mu2, diag(b)): |mu1 - mu2|² + sum (sqrt(a) - sqrt(b))²
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    expected = (mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    assert fs.frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(float(expected), abs=1e-12)


def test_fid_of_samples_from_known_gaussians_approaches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    y = torch.randn(200_000, 2, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0]) + torch.tensor([3.0, 0.0])
    # closed form: |(3, 0)|² + (1 - 2)² + (1 - 1)² = 10
    assert fs.frechet_distance(*fs.mean_cov(x), *fs.mean_cov(y)) == pytest.approx(10.0, rel=0.01)


def test_fid_of_a_set_with_itself_is_zero_and_running_stats_ignore_the_batching():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    mu, cov = fs.mean_cov(x)
    assert abs(fs.frechet_distance(mu, cov, mu, cov)) < 1e-9
    for batch in (1, 7, 300):
        stats = fs.RunningStats()
        for b in x.split(batch):
            stats.add(b)
        mu_b, cov_b = stats.result()
        assert torch.allclose(mu_b, mu, atol=1e-10) and torch.allclose(cov_b, cov, atol=1e-9)


def test_kid_is_unbiased_where_the_biased_estimate_is_not():
    # two samples of one distribution: the unbiased MMD² averages to 0 over many draws (values of
    # both signs), whereas the V-statistic (diagonals kept) is positive on every draw
    g = torch.Generator().manual_seed(0)
    values, biased = [], []
    for _ in range(400):
        x, y = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
        values.append(fs.mmd2_unbiased(x, y))
        k = fs._poly_kernel
        biased.append(float(k(x.double(), x.double()).mean() + k(y.double(), y.double()).mean()
                            - 2 * k(x.double(), y.double()).mean()))
    v = torch.tensor(values)
    assert abs(v.mean()) < 3 * v.std() / len(v) ** 0.5
    assert (v < 0).any() and min(biased) > 0


def test_kid_separates_shifted_sets_and_is_seeded():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
    same, _ = fs.kernel_inception_distance(x, y, subsets=20, subset_size=100)
    far, _ = fs.kernel_inception_distance(x, y + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 < far
    assert fs.kernel_inception_distance(x, y, subsets=5, subset_size=50, seed=3) == \
        fs.kernel_inception_distance(x, y, subsets=5, subset_size=50, seed=3)


def test_inception_score_of_uniform_and_of_confident_spread_classifiers():
    mean, std = fs.inception_score(torch.zeros(100, 10))
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)
    confident = torch.nn.functional.one_hot(torch.arange(100) % 5, 10).double() * 100  # 5 classes, evenly
    assert fs.inception_score(confident)[0] == pytest.approx(5.0, rel=1e-6)
    one_class = torch.nn.functional.one_hot(torch.zeros(100, dtype=torch.long), 10).double() * 100
    assert fs.inception_score(one_class)[0] == pytest.approx(1.0, rel=1e-6)


def test_precision_recall_on_separable_and_collapsed_sets():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 4, generator=g)
    assert fs.precision_recall(real, real.clone()) == (1.0, 1.0)
    assert fs.precision_recall(real, torch.randn(200, 4, generator=g) + 100) == (0.0, 0.0)
    collapsed = real[:1] + 0.01 * torch.randn(200, 4, generator=g)  # every fake near one real point
    precision, recall = fs.precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.1


# -- extractors -------------------------------------------------------------------------------------


class TinyFeatures(nn.Module):
    """A fixed random conv net (any channel count: channels averaged first): 32-d features, 10 logits."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Conv2d(1, 8, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
            self.head = nn.Linear(32, 10)

    def forward(self, images):
        feats = self.body(images.float().div(127.5).sub(1).mean(1, keepdim=True))
        return feats, self.head(feats)


@pytest.fixture
def tiny_extractor(monkeypatch):
    calls = []
    net = TinyFeatures().eval()

    def run_net(images):
        calls.append(images.shape[0])
        return net(images)

    def factory(train, test, opts):
        return features.FeatureExtractor("tiny", run_net, features.state_digest(net), "none", opts.device)

    monkeypatch.setitem(features.EXTRACTORS, "tiny", factory)
    return calls


def test_reference_statistics_are_cached_and_do_not_depend_on_the_batch_size(tiny_extractor):
    images = torch.randint(0, 256, (50, 1, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ex = features.build_extractor("tiny", None, None, EvalOptions())
    a = reference_stats(images, "f" * 64, "toy train", ex, keep=20, batch_size=7)
    assert a.n == 50 and a.features.shape == (20, 32) and sum(tiny_extractor) == 50
    again = reference_stats(images, "f" * 64, "toy train", ex, keep=20, batch_size=7)
    assert sum(tiny_extractor) == 50 and torch.equal(again.sigma, a.sigma)  # read from the cache
    b = reference_stats(images, "e" * 64, "toy train", ex, keep=20, batch_size=50)  # another key: recomputed
    assert torch.allclose(a.mu, b.mu, atol=1e-6) and torch.allclose(a.sigma, b.sigma, atol=1e-6)
    assert torch.equal(a.features, b.features)  # the same subset


def test_chunked_extraction_and_device_side_rounding_change_nothing():
    net = TinyFeatures().eval()
    images = torch.randint(0, 256, (10, 1, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    whole = features.FeatureExtractor("tiny", net, "", "none", torch.device("cpu"))(images)
    chunked = features.FeatureExtractor("tiny", net, "", "none", torch.device("cpu"), max_batch=3)(images)
    assert torch.allclose(whole[0], chunked[0], atol=1e-6) and torch.allclose(whole[1], chunked[1], atol=1e-6)
    x = torch.linspace(-1.2, 1.2, 1001).reshape(1, 1, 1, -1)
    assert torch.equal(_uint8(x), to_uint8(x))


def test_unknown_extractor_is_one_line():
    with pytest.raises(UserError, match=r"unknown feature_extractor 'nope' \(known: .*inception.*judge"):
        features.build_extractor("nope", None, None, EvalOptions())


def test_missing_inception_weights_say_where_to_put_the_file(monkeypatch, tmp_path):
    entry = manifest.get(features.WEIGHTS)
    closed = manifest.Entry(entry.name, "https://127.0.0.1:9/" + entry.filename, entry.sha256, entry.size,
                            "weights", "", entry.description)  # port 9: refused at once
    monkeypatch.setitem(manifest.ENTRIES, entry.name, closed)
    monkeypatch.setattr(download, "RETRY_DELAYS", ())
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path))
    with pytest.raises(DataError) as e:
        features.inception_weights()
    msg = str(e.value)
    assert "\n" not in msg and f"place {entry.filename} in {tmp_path}" in msg and "ganzoo data download fid_inception" in msg


def test_a_weights_file_that_is_not_the_fid_inception_is_refused(tmp_path):
    fake = tmp_path / "pt_inception.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(UserError, match="is not the FID Inception's 6726825d"):
        features.inception_weights(str(fake))
    with pytest.raises(UserError, match="no such file"):
        features.inception_weights(str(tmp_path / "absent.pth"))


def test_without_torch_fidelity_the_inception_extractor_says_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(UserError, match=r"pip install 'ganzoo\[fid\]'"):
        features.build_extractor("inception", None, None, EvalOptions())


def _real_weights() -> Path | None:
    default = Path("~/.cache/ganzoo/data").expanduser() / manifest.get(features.WEIGHTS).filename
    path = Path(os.environ.get("GANZOO_FID_WEIGHTS", default))
    return path if path.is_file() else None


@pytest.mark.skipif(_real_weights() is None, reason="the FID Inception weights file is not on this machine "
                                                    "(set GANZOO_FID_WEIGHTS=<pt_inception-2015-12-05-6726825d.pth>)")
def test_real_inception_weights_give_pool3_features_and_logits():
    pytest.importorskip("torch_fidelity")
    ex = features.build_extractor("inception", None, None, EvalOptions(inception_weights=str(_real_weights())))
    images = torch.randint(0, 256, (4, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    feats, logits = ex(images)
    assert feats.shape == (4, 2048) and logits.shape == (4, 1008) and ex.resize == "tf1-bilinear-299"
    assert torch.allclose(ex(images)[0], feats) and (feats >= 0).all()  # pool3 after ReLU


# -- end to end -------------------------------------------------------------------------------------


def _train(name, run_dir, **trainer):
    return run.train(model_cfg=tiny_model_cfg(name), dataset_cfg=tiny_data_cfg(name),
                     trainer=tiny_trainer_settings(**trainer), optim=OptimSettings(), seed=0, run_dir=run_dir, config={})


def _eval(cli_runner, run_dir, *extra):
    return invoke(cli_runner, ["eval", f"run={run_dir}", "device=cpu", "batch_size=16", "judge_epochs=1", *extra])


def test_eval_metrics_fid_kid_is_pr_end_to_end(tiny_extractor, tmp_path, cli_runner):
    _train("dcgan", tmp_path)
    r = _eval(cli_runner, tmp_path, "metrics=[fid,kid,is,pr]", "feature_extractor=tiny", "n_samples=40")
    assert r.exit_code == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall"} <= set(m)
    assert "recognisable" not in m  # metrics= replaces the model's own suites
    p = m["fid_protocol"]
    assert p["n"] == 40 and p["extractor"] == "tiny" and p["resize"] == "none" and len(p["weights_sha256"]) == 64
    assert p["reference"] == "digits train (256 images)" and p["reference_subset"] == 40
    assert m["fid"] > 0 and 1 <= m["is"] <= 10 and 0 <= m["precision"] <= 1
    # one generated pass for the four metrics; the reference (256) from the cache on the second call
    assert sum(tiny_extractor) == 256 + 40
    r = _eval(cli_runner, tmp_path, "metrics=[fid]", "feature_extractor=tiny", "n_samples=40", "batch_size=7")
    assert r.exit_code == 0, r.stderr
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert sum(tiny_extractor) == 256 + 80 and set(again) >= {"fid"} and "kid" not in again
    assert again["fid"] == pytest.approx(m["fid"], rel=1e-6)  # the same samples, batched differently


def test_eval_fid_with_the_judge_stand_in(tmp_path, cli_runner):
    _train("cgan", tmp_path)
    r = _eval(cli_runner, tmp_path, "metrics=[fid,is]", "feature_extractor=judge", "n_samples=30", "reference=test")
    assert r.exit_code == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["fid"] > 0 and m["fid_protocol"]["extractor"] == "judge"
    assert m["fid_protocol"]["reference"] == "digits test (64 images)"


def test_fid_of_translations_against_the_target_domain(tiny_extractor, tmp_path, cli_runner):
    _train("cyclegan", tmp_path)
    r = _eval(cli_runner, tmp_path, "metrics=[fid]", "feature_extractor=tiny", "n_samples=6")
    assert r.exit_code == 0, r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["AtoB_fid"] > 0 and m["BtoA_fid"] > 0
    assert m["fid_protocol"]["AtoB"]["n"] == 6 and m["fid_protocol"]["AtoB"]["reference"].endswith("test B (8 images)")


def test_unknown_metric_is_one_line_listing_the_known_ones(tmp_path, cli_runner):
    r = _eval(cli_runner, tmp_path, "metrics=[fid,fdi]")
    assert r.exit_code != 0
    line = r.stderr.strip()
    known = line.split("(known: ", 1)[1].rstrip(")").split(", ")
    assert "\n" not in line and "'fdi'" in line and {"fid", "histogram", "is", "kid", "pr"} <= set(known)
    assert known == sorted(known)


def test_a_named_suite_that_does_not_apply_to_the_model_is_one_line(tmp_path, cli_runner):
    _train("dcgan", tmp_path)
    r = _eval(cli_runner, tmp_path, "metrics=[code_accuracy]")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "code_accuracy scores models with a categorical code" in lines[0] and "its suites: histogram" in lines[0]


def test_a_model_that_neither_generates_nor_translates_domains_is_refused(tmp_path, cli_runner):
    _train("srresnet", tmp_path)
    r = _eval(cli_runner, tmp_path, "metrics=[fid]", "feature_extractor=tiny")
    assert r.exit_code != 0 and "neither generates images from noise nor translates" in r.stderr


def test_fid_during_training_through_eval_metrics(tiny_extractor, tmp_path):
    _train("dcgan", tmp_path, max_steps=2, eval_every=1, eval_metrics=["fid", "kid"], eval_samples=20,
           eval_feature_extractor="tiny")
    rows = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fid" in r]
    assert len(evals) == 2 and all(r["eval/fid"] > 0 and "eval/kid" in r for r in evals)


def test_unknown_eval_metric_for_training_is_refused_before_the_run_folder(tmp_path, cli_runner):
    run_dir = tmp_path / "run"
    r = invoke(cli_runner, ["train", *TINY_OVERRIDES, "trainer.device=cpu", "trainer.eval_every=1",
                            "trainer.eval_metrics=[fid,fdi]", f"hydra.run.dir={run_dir}"])
    assert r.exit_code == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "'fdi'" in lines[0] and "(known: " in lines[0], r.stderr
    assert not run_dir.exists()

"""`ganzoo report`: run reports (HTML with embedded plots and the latest grid) and sweep reports
(Markdown, CSV, HTML: the varying overrides against final and best metrics, sorted; unfinished jobs
listed), on generated run and sweep folders; a real tiny 2-job sweep writes its report by itself."""

from __future__ import annotations

import csv
import io
import json
import re
import sys

import pytest

from ganzoo.errors import UserError
from ganzoo.report.stats import direction, read_stats

from .conftest import TINY_OVERRIDES, invoke

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path, shade=128):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), shade).save(path)


def fake_run(folder, *, overrides=("seed=0",), steps=(10, 20, 30), g_loss=(1.0, 0.8, 0.9), fid=None, fid_first=None,
             accuracy=None, torn=False, max_steps=30, grid=True, status=None):
    """A run folder as `ganzoo train` leaves it: .hydra/, stats.jsonl (losses, an accuracy, learning
    rates, non-finite counts, an evaluation line), metrics.json, a sample grid; `status`: a job_status.json."""
    hydra = folder / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "config.yaml").write_text(f"model:\n  name: dcgan\ndataset:\n  name: digits\ntrainer:\n  max_steps: {max_steps}\n")
    (hydra / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    lines = []
    for i, (step, g) in enumerate(zip(steps, g_loss)):
        lines.append({"step": step, "time": step / 10, "D/loss": 1.4 - 0.1 * i, "G/loss": g, "D/real_acc": 0.5 + 0.1 * i,
                      "nonfinite/D": int(i == 1), "nonfinite/G": 0, "lr/D": 2e-4, "lr/G": 2e-4})
    if fid is not None:
        lines += [{"step": steps[0], "time": 1.0, "eval/fid": fid + 5 if fid_first is None else fid_first, "eval/samples": 200},
                  {"step": steps[-1], "time": 3.1, "eval/fid": fid, "eval/samples": 200}]
    text = "".join(json.dumps(r) + "\n" for r in lines)
    (folder / "stats.jsonl").write_text(text + ('{"step": 40, "time": 4.0, "D/lo' if torn else ""))
    if accuracy is not None:
        (folder / "metrics.json").write_text(json.dumps({"run": str(folder), "model": "dcgan", "dataset": "digits",
                                                         "step": steps[-1], "num_classes": 10,
                                                         "recognisable": accuracy, "samples": 200,
                                                         "class_histogram": [0.1] * 10}))
    if grid:
        _png(folder / "samples" / f"step_{steps[0]:08d}.png", 0)
        _png(folder / "samples" / f"step_{steps[-1]:08d}.png", 255)
    if status is not None:
        (folder / "job_status.json").write_text(json.dumps(status))
    return folder


def fake_sweep(root):
    """4 jobs over optim.lr x seed (trainer.max_steps the same everywhere); job 2 failed (no stats); job 0's
    FID was best (25) before its final value (30)."""
    root.mkdir()
    (root / "multirun.yaml").write_text("hydra: {}\n")
    fids = {0: 30.0, 1: 12.0, 3: 20.0}
    accs = {0: 0.7, 1: 0.9, 3: 0.6}
    for num, (lr, seed) in enumerate([("1e-4", 0), ("1e-4", 1), ("2e-4", 0), ("2e-4", 1)]):
        ovr = [f"optim.lr={lr}", f"seed={seed}", "trainer.max_steps=30"]
        if num == 2:
            (root / "2" / ".hydra").mkdir(parents=True)
            (root / "2" / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ovr))
            (root / "2" / "job_status.json").write_text(json.dumps(
                {"num": 2, "overrides": ovr, "status": "failed", "exit_code": 2, "reason": "dataset.root: no such folder"}))
            continue
        fake_run(root / str(num), overrides=ovr, fid=fids[num], fid_first=25.0 if num == 0 else None, accuracy=accs[num],
                 status={"num": num, "overrides": ovr, "status": "done", "exit_code": 0, "reason": ""})
    return root


def _self_contained(html: str) -> bool:
    """No script, no stylesheet or image fetched from anywhere: every src is a data URI."""
    srcs = re.findall(r'(?:src|href)="([^"]*)"', html)
    return "<script" not in html and "<link" not in html and "url(" not in html and all(
        s.startswith("data:image/png;base64,") for s in srcs)


def _images(html: str) -> list[str]:
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)


def test_direction_by_name():
    for name in ("G/loss", "fid", "eval/fid", "kid", "AtoB/l1", "cycle_l1", "nonfinite/D"):
        assert direction(name) == "min", name
    for name in ("conditional_accuracy", "D/real_acc", "eval/psnr_y", "ssim_y", "is", "recognisable", "precision"):
        assert direction(name) == "max", name
    assert direction("mean_thing") is None


def test_run_report_embeds_every_plot_and_the_latest_grid(cli_runner, tmp_path):
    import base64

    run = fake_run(tmp_path / "run", fid=10.0, accuracy=0.8)
    r = invoke(cli_runner, ["report", f"run={run}"])
    assert r.exit_code == 0, r.output
    html = (run / "report.html").read_text()
    assert str(run / "report.html") in r.stderr
    for stem in ("losses", "scalars", "eval", "learning_rates", "nonfinite"):
        assert (run / "report" / f"{stem}.png").read_bytes().startswith(PNG), stem
    images = _images(html)
    assert len(images) == 6  # five plots + the grid
    assert base64.b64decode(images[-1]) == (run / "samples" / "step_00000030.png").read_bytes()  # the latest grid
    assert "step_00000030.png" in html and "step_00000010.png" not in html
    assert _self_contained(html)
    assert "dcgan on digits" in html and "step 30 of 30 (finished)" in html
    assert "recognisable" in html and "0.8" in html  # metrics.json
    assert "eval/fid" in html and "nonfinite/D" in html and "Non-finite steps (1 skipped)" in html


def test_run_report_reads_a_run_in_progress_with_a_torn_last_line(cli_runner, tmp_path):
    run = fake_run(tmp_path / "run", torn=True, max_steps=100, grid=False)
    series, facts = read_stats(run)
    assert facts == {"lines": 3, "skipped": 1, "last_step": 30, "time": 3.0}
    assert series["G/loss"].values == [1.0, 0.8, 0.9] and series["G/loss"].best("min") == 0.8
    r = invoke(cli_runner, ["report", f"run={run}"])
    assert r.exit_code == 0, r.output
    html = (run / "report.html").read_text()
    assert "step 30 of 100 (in progress or stopped)" in html and "1 unreadable line" in html
    assert "Latest samples" not in html


def test_run_report_says_when_a_run_has_no_stats_yet(cli_runner, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    r = invoke(cli_runner, ["report", f"run={run}"])
    assert r.exit_code == 0, r.output
    assert "no stats yet" in r.stderr and "no stats yet" in (run / "report.html").read_text()
    assert _images((run / "report.html").read_text()) == []


def _md_rows(md: str) -> list[list[str]]:
    table = [line for line in md.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table if not line.startswith("|---")]


def test_sweep_report_table_sorted_with_varying_keys_and_the_failed_job(cli_runner, tmp_path):
    sweep = fake_sweep(tmp_path / "sweep")
    r = invoke(cli_runner, ["report", f"sweep={sweep}", "sort=eval/fid"])
    assert r.exit_code == 0, r.output
    md = (sweep / "report.md").read_text()
    header, *rows = _md_rows(md)
    assert header[:5] == ["job", "optim.lr", "seed", "status", "step"]  # only the keys that vary
    assert "trainer.max_steps" not in header and "`trainer.max_steps=30`" in md  # shared: said once
    assert {"eval/fid", "recognisable", "G/loss"} <= set(header) and len(header) == 9
    assert [row[0] for row in rows] == ["1", "3", "0", "2"]  # fid 12 < 20 < 30, the failed job last
    assert rows[0][header.index("eval/fid")] == "12" and rows[2][header.index("recognisable")] == "0.7"
    assert rows[2][header.index("eval/fid")] == "30 (best 25)"
    assert rows[3][3] == "failed"
    assert "## Jobs that did not finish" in md and "job 2: **failed** — dataset.root: no such folder" in md
    assert "lowest first" in md

    table = list(csv.DictReader(io.StringIO((sweep / "report.csv").read_text())))
    assert [row["job"] for row in table] == ["1", "3", "0", "2"]
    assert table[3]["reason"] == "dataset.root: no such folder" and table[0]["D/real_acc final"] == "0.7"
    assert table[0]["G/loss best"] == "0.8" and table[0]["eval/fid final"] == "12"
    assert (table[2]["eval/fid final"], table[2]["eval/fid best"]) == ("30", "25")
    assert "D/real_acc" not in header  # the CSV has every metric, the table the main ones
    assert not [h for h in header if "samples" in h] and table[0]["eval/samples final"] == "200"  # a count

    html = (sweep / "report.html").read_text()
    assert len(_images(html)) == 2 and _self_contained(html)
    assert re.findall(r'<tr[^>]*><td class="num">(\d+)</td>', html) == ["1", "3", "0", "2"]
    assert 'class="failed"' in html and "dataset.root: no such folder" in html
    for stem in ("curves", "parameters"):
        assert (sweep / "report" / f"{stem}.png").read_bytes().startswith(PNG)
    assert "optim.lr" in r.stdout and "failed" in r.stdout and "2e-4" in r.stdout  # the rich table in the terminal
    assert "sorted by the final eval/fid, lowest first" in " ".join(r.stdout.split())


def test_sweep_sort_direction_comes_from_the_name_or_order(tmp_path):
    from ganzoo.report.sweep_report import build_table

    sweep = fake_sweep(tmp_path / "sweep")
    assert [j.num for j in build_table(sweep, "recognisable").jobs] == [1, 0, 3, 2]  # higher is better
    assert [j.num for j in build_table(sweep, "recognisable", "min").jobs] == [3, 0, 1, 2]
    assert build_table(sweep).sort == "recognisable"  # default: the first evaluation metric
    t = build_table(sweep, "D/loss")
    assert t.order == "min" and t.sort == "D/loss"


def test_sweep_lists_jobs_that_never_ran_from_the_summary(tmp_path):
    from ganzoo.report.sweep_report import build_table, markdown

    sweep = fake_sweep(tmp_path / "sweep")
    jobs = [{"num": 4, "overrides": ["optim.lr=3e-4", "seed=0"], "status": "not run", "exit_code": None, "reason": ""}]
    (sweep / "sweep_summary.json").write_text(json.dumps({"jobs": jobs}))
    (sweep / "3" / "job_status.json").unlink()  # a killed job leaves no status
    t = build_table(sweep, "eval/fid")
    assert {j.num: j.status for j in t.jobs} == {1: "done", 3: "no status", 0: "done", 2: "failed", 4: "not run"}
    md = markdown(t, sweep)
    assert "job 4: **not run** — the sweep stopped before it" in md and "job 3: **no status**" in md


@pytest.mark.parametrize(("args", "message"), [
    (["run={tmp}/nope"], "no such folder"),
    (["sweep={tmp}/nope"], "no such folder"),
    (["run={tmp}/sweep"], "is a sweep folder: use ganzoo report sweep="),
    (["sweep={tmp}/sweep/0"], "is a run folder: use ganzoo report run="),
    (["run={tmp}/empty"], "is not a run folder"),
    (["sweep={tmp}/empty"], "is not a sweep folder"),
    (["sweep={tmp}/sweep", "sort=bogus"], "sort=bogus: no job has this metric (known: recognisable"),
    (["sweep={tmp}/sweep", "order=up"], "order=up: use order=min"),
    ([], "give one folder"),
    (["run={tmp}/sweep/0", "sort=G/loss"], "sort= and order= are for sweep reports"),
])
def test_bad_input_is_one_line_exit_2(cli_runner, tmp_path, args, message):
    fake_sweep(tmp_path / "sweep")
    (tmp_path / "empty").mkdir()
    r = invoke(cli_runner, ["report", *(a.format(tmp=tmp_path) for a in args)])
    assert r.exit_code == 2, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "sweep" / "report.md").exists()


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    from ganzoo.report.run_report import run_report

    run = fake_run(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(UserError, match=re.escape("pip install 'ganzoo[report]'")):
        run_report(str(run))
    assert not (run / "report.html").exists()


def test_a_failed_sweep_report_is_one_warning_and_not_the_sweeps_failure(tmp_path, monkeypatch, capsys):
    from ganzoo.commands import sweep as sweep_mod
    from ganzoo.report import sweep_report

    sweep = fake_sweep(tmp_path / "sweep")
    (sweep / "2").joinpath("job_status.json").unlink()
    monkeypatch.setattr(sweep_report, "sweep_report", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    sweep_mod._sweeps.append({"dir": sweep, "jobs": []})
    code = sweep_mod.finish()
    err = capsys.readouterr().err
    assert "warning: sweep report not written (boom); try: ganzoo report sweep=" in err
    assert code == 0 and (sweep / "sweep_summary.json").exists()


def test_report_help(cli_runner):
    r = invoke(cli_runner, ["report", "--help"])
    assert r.exit_code == 0 and "sweep=" in r.output and "ganzoo[report]" in r.output


def test_a_real_sweep_writes_its_report(cli_runner, tmp_path):
    r = invoke(cli_runner, ["train", "-m", "seed=0,1", "trainer.max_steps=2", *TINY_OVERRIDES, "model.ngf=8",
                            "model.ndf=8", "trainer.device=cpu", f"hydra.sweep.dir={tmp_path}"])
    assert r.exit_code == 0, r.output
    assert str(tmp_path / "report.html") in r.stderr
    header, *rows = _md_rows((tmp_path / "report.md").read_text())
    assert header[:4] == ["job", "seed", "status", "step"] and "G/loss" in header
    assert sorted((row[1], row[2], row[3]) for row in rows) == [("0", "done", "2"), ("1", "done", "2")]
    assert len(_images((tmp_path / "report.html").read_text())) == 2
    assert (tmp_path / "report.csv").exists()

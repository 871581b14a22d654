"""Shell completion of Hydra overrides: the engine (complete_overrides) and Click's bash/zsh protocol."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

import ganzoo
from ganzoo.completion import complete_overrides, install

# train.yaml's defaults name dataset `digits`: without conf/dataset/digits.yaml nothing composes
_HAS_DEFAULT_DATASET = (resources.files("ganzoo.conf") / "dataset" / "digits.yaml").is_file()
needs_default_dataset = pytest.mark.skipif(not _HAS_DEFAULT_DATASET,
                                           reason="conf/dataset/digits.yaml (train's default dataset) is missing")


def values(command, previous, incomplete):
    return [c if isinstance(c, str) else c.value for c in complete_overrides(command, tuple(previous), incomplete)]


def test_group_options():
    assert {"model=dcgan", "model=gan"} <= set(values("train", (), "model="))
    assert values("train", (), "model=dc") == ["model=dcgan"]
    assert "dataset=mnist" in values("train", (), "dataset=")
    assert "hydra/launcher=basic" in values("train", (), "hydra/launcher=")


@needs_default_dataset
def test_trainer_keys():
    got = values("train", (), "trainer.")
    assert "trainer.max_steps=" in got and "trainer.batch_size=" in got
    assert all(g.startswith("trainer.") for g in got)


def test_pair_sides_complete_dataset_names():
    assert {"dataset.A=", "dataset.A_args.", "dataset.B_map="} <= set(values("train", ("dataset=pair",), "dataset."))
    got = values("train", ("dataset=pair",), "dataset.B=")
    assert {"dataset.B=mnist", "dataset.B=svhn", "dataset.B=usps", "dataset.B=digits"} <= set(got)
    assert values("train", ("dataset=pair",), "dataset.A=us") == ["dataset.A=usps"]


def test_keys_follow_the_chosen_group():
    got = values("train", ("dataset=mnist", "model=gan"), "model.")
    assert "model.d_units=" in got and "model.drop_in=" in got
    assert "trainer.max_steps=" in values("train", ("dataset=mnist",), "trainer.")
    # flags anywhere in the line (Hydra's own parser wants them first) do not break the query
    assert values("train", ("dataset=mnist", "-m"), "trainer.max_st") == ["trainer.max_steps="]


def test_sample_keys():
    got = values("sample", (), "")
    assert {"run=", "n=", "out=", "seed="} <= set(got)
    assert "model=" not in got  # groups that sample's config does not use are not offered
    assert values("sample", (), "n") == ["n=", "nrow="]


def test_config_dir_adds_options_and_paths(tmp_path, monkeypatch):
    (tmp_path / "myconf" / "dataset").mkdir(parents=True)
    (tmp_path / "myconf" / "dataset" / "celeba.yaml").write_text("name: celeba\n")
    (tmp_path / "runs" / "one").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    got = values("train", ("-cd", "myconf"), "dataset=")
    assert "dataset=celeba" in got and "dataset=mnist" in got
    assert [c.type for c in complete_overrides("train", ("-cd",), "my")] == ["dir"]
    assert values("sample", (), "run=ru") == ["run=runs/"]
    assert values("sample", (), "run=runs/") == ["run=runs/one/"]


def test_flag_values_and_bad_input_never_raise():
    assert values("train", ("--cfg",), "") == ["job", "hydra", "all"]
    assert "train" in values("train", ("-cn",), "")
    assert values("nonexistent", (), "x") == []
    assert isinstance(values("train", ("model=[oops",), "trainer."), list)  # broken override: no traceback


@pytest.fixture
def completion(monkeypatch):
    install()
    from ganzoo.cli import cli

    def run(shell, **env):
        for k in ("COMP_LINE", "COMP_POINT", "COMP_WORDS", "COMP_CWORD"):
            monkeypatch.delenv(k, raising=False)
        r = CliRunner().invoke(cli, [], prog_name="ganzoo", env={"_GANZOO_COMPLETE": f"{shell}_complete", **env})
        assert r.exit_code == 0, r.output
        return r.output.splitlines()

    return run


def test_bash_sends_the_line_and_gets_whole_words(completion):
    line = "ganzoo train model="  # bash would split this at '=': the script sends COMP_LINE instead
    from ganzoo.cli import group_options

    got = completion("bash", COMP_LINE=line, COMP_POINT=str(len(line)))
    assert got == [f"plain,model={m}" for m in group_options("model")] and "plain,model=dcgan" in got
    line = "ganzoo train dataset=mnist model=gan model.d_u"
    assert completion("bash", COMP_LINE=line + " trailing", COMP_POINT=str(len(line))) == ["plain,model.d_units="]
    assert "plain,train" in completion("bash", COMP_LINE="ganzoo tr", COMP_POINT="9")
    # the stock protocol still works
    assert "plain,n=" in completion("bash", COMP_WORDS="ganzoo sample ", COMP_CWORD="2")


def test_zsh(completion):
    out = completion("zsh", COMP_WORDS="ganzoo train model=dc", COMP_CWORD="2")
    assert out == ["plain", "model=dcgan", "_"]


def test_sources_carry_the_fixes():
    install()
    from ganzoo.cli import cli

    r = CliRunner().invoke(cli, [], prog_name="ganzoo", env={"_GANZOO_COMPLETE": "bash_source"})
    assert "COMP_LINE" in r.output and "compopt -o nospace" in r.output and "COMP_WORDBREAKS" in r.output
    r = CliRunner().invoke(cli, [], prog_name="ganzoo", env={"_GANZOO_COMPLETE": "zsh_source"})
    assert "-S ''" in r.output


def test_resume_completes_the_runs_own_model_keys(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- dataset=mnist\n- model=gan\n")
    assert values("train", (f"resume={tmp_path}",), "model.d_u") == ["model.d_units="]


def test_completion_reads_the_line_through_overrides_not_cli():
    """completion.py never imports cli.py (cli imports it); overrides.py imports no framework and no
    ganzoo module but errors."""
    def imports(name):  # absolute names, function-local imports included
        found = set()
        for n in ast.walk(ast.parse((Path(ganzoo.__file__).parent / f"{name}.py").read_text())):
            if isinstance(n, ast.ImportFrom):
                base = ".".join(filter(None, ["ganzoo" if n.level else "", n.module or ""]))
                found |= {base} | {f"{base}.{a.name}" for a in n.names}
            elif isinstance(n, ast.Import):
                found |= {a.name for a in n.names}
        return found

    assert not [m for m in imports("completion") if m == "ganzoo.cli" or m.startswith("ganzoo.cli.")]
    assert not [m for m in imports("overrides") if m.split(".")[0] in ("click", "hydra", "omegaconf")
                or (m.startswith("ganzoo") and not m.startswith("ganzoo.errors"))]

"""The `ganzoo` command line: a Click group whose Hydra-driven commands hand the rest of the line to
a normal `@hydra.main` function (by rewriting sys.argv for the call), so Hydra keeps all its
behaviour: multirun and launchers, --cfg, -cd, hydra.run.dir=..., output folders.

This wrapper adds: flags may come before or after overrides (hydra 1.3 needs them first), errors in
the config or the user's input print one line naming the fix and exit 2, `resume=<run>` reuses the
run's overrides and folder, and shell completion of `group=option` and `key.` comes from Hydra.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
import warnings
from importlib import resources
from pathlib import Path

import click

from . import __version__
from .commands.data import register as _register_data_commands
from .completion import complete_overrides
from .completion import install as _install_completion
from .errors import UserError
from .interrupts import watch_start_up
from .overrides import expand_home, flags_first, with_resume
from .storage import output_error

HYDRA_COMMANDS = {"train": ("ganzoo.commands.train", "Train a model: ganzoo train [model=dcgan] [dataset=digits] "
                            "[key=value ...] [-m]"),
                  "sample": ("ganzoo.commands.sample", "Generate images from a run: ganzoo sample run=<dir> n=64 "
                             "[out=grid.png|folder] [seed=0]"),
                  "eval": ("ganzoo.commands.eval", "Evaluate a run: ganzoo eval run=<dir> "
                           "[n_per_class=1000] [out=metrics.json] (accuracy, code matching, class histogram)"),
                  "translate": ("ganzoo.commands.translate", "Translate images with a run: ganzoo translate "
                                "run=<dir> input=<image|folder> [out=<folder>] [direction=AtoB|BtoA]"),
                  "report": ("ganzoo.commands.report", "Plots and tables of a run or a sweep: ganzoo report "
                             "run=<dir> | sweep=<multirun dir> [sort=<metric>] (HTML, Markdown, CSV)"),
                  "export": ("ganzoo.commands.export", "Export a run's generator/translator, checked against the "
                             "model: ganzoo export run=<dir> format=onnx|torchscript|safetensors [out=<file|folder>]"),
                  "serve": ("ganzoo.commands.serve", "A local web page to sample or translate: ganzoo serve "
                            "run=<dir> [port=7860] [host=127.0.0.1]")}
CONFIG_GROUPS = ("model", "dataset", "trainer", "optim")
_DETAIL = re.compile(r"^\s*(full_key|reference_type|object_type|value_type|key|msg):")


class ConfigError(click.ClickException):
    exit_code = 2


def one_line(e: BaseException) -> str:
    """A Hydra/OmegaConf error as one line, with the hint the user needs."""
    para = str(e).strip().split("\n\n")[0].splitlines() or [type(e).__name__]
    msg = ""
    for piece in (x.strip() for x in para if not _DETAIL.match(x)):
        msg += (" " if msg.endswith(".") else ": " if msg else "") + piece
    override = getattr(e, "override", None)
    if isinstance(override, str) and override not in msg:
        msg = f"cannot parse override {override!r}: {msg}"
    options = getattr(e, "options", None)
    if options:
        msg += f" (available: {', '.join(options)})"
    if "Ambiguous value for argument" in msg:
        msg += " (to sweep add -m/--multirun; for a list use key=[a,b])"
    cause = e.__cause__ or e.__context__
    if cause is not None:
        first = (str(cause).strip().splitlines() or [""])[0]
        if first and first not in msg:
            msg += (" " if msg.endswith(".") else ": ") + first
    if "Could not override" in msg:  # a typo, not a wish to add a key: drop Hydra's "+key" advice
        msg = re.sub(r" ?To append to your config use \+\S+", "", msg)
        msg += " (list the valid keys with --cfg job)"
    return msg


def run_hydra(main_fn, prog: str, args: list[str]) -> None:
    # hydra and omegaconf are imported inside the functions that use them: `ganzoo --help` stays fast
    from hydra.errors import HydraException, InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    user_trace = os.environ.get("HYDRA_FULL_ERROR") == "1"
    saved_argv, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [prog, *flags_first(list(args))]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; we format
    try:
        main_fn()
    except Exception as e:
        if user_trace:
            raise
        tb = e.__traceback__  # did it fail inside the job (the user's code) or while composing?
        while tb is not None and tb.tb_frame.f_code.co_name != "run_job":
            tb = tb.tb_next
        if output_error(e) is not None:  # Hydra's own writes (the run folder, .hydra/, the job's log)
            raise ConfigError(str(output_error(e))) from None
        if isinstance(e, InstantiationException) or (
                tb is None and isinstance(e, (HydraException, OmegaConfBaseException, ValueError))):
            raise ConfigError(one_line(e)) from None
        if tb is None:
            raise
        traceback.print_exception(type(e), e, tb.tb_next)
        sys.exit(1)
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env


def group_options(group: str) -> list[str]:
    """Options of a config group from the shipped conf/ (fast: no Hydra start-up)."""
    folder = resources.files("ganzoo.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def describe(group: str, option: str) -> str:
    """The first comment line of conf/<group>/<option>.yaml that is not a package directive."""
    text = (resources.files("ganzoo.conf") / group / f"{option}.yaml").read_text()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#") and not line.lstrip("# ").startswith("@package"):
            return line.lstrip("# ").strip()
    return ""


class GanzooGroup(click.Group):
    def invoke(self, ctx):
        """Every Ctrl-C that reaches here (start-up, before the training loop's handlers; a quick second
        one during training) exits 130 with one line, not Click's "Aborted!" and exit 1."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            print("Interrupted (Ctrl-C); checkpoint writes are atomic: a run resumes from its last checkpoint",
                  file=sys.stderr, flush=True)
            sys.exit(130)

    def format_epilog(self, ctx, formatter):
        with formatter.section("Config groups (use group=option with train)"):
            formatter.write_dl([(g, ", ".join(group_options(g))) for g in CONFIG_GROUPS])
        formatter.write_paragraph()
        formatter.write_text("Help on a command's keys: ganzoo train --help. Shell completion: "
                             'eval "$(_GANZOO_COMPLETE=bash_source ganzoo)" (zsh: zsh_source).')


_PACKAGE = str(Path(__file__).resolve().parent)


def _warning_line(show):
    """warnings.showwarning for the CLI: ganzoo's own warnings as one line, `warning: <message>`
    (Python's default adds the category and the source line); others' warnings as before."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not str(Path(filename).resolve()).startswith(_PACKAGE):
            return show(message, category, filename, lineno, file, line)
        try:
            (file or sys.stderr).write(f"warning: {message}\n")
        except OSError:  # stderr closed: a warning is not worth dying for (as Python's default)
            pass
    return showwarning


@click.group(cls=GanzooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="ganzoo",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """ganzoo: train, sample and evaluate the classic GAN families from one command line."""


def _complete(ctx, param, incomplete):
    return complete_overrides(ctx.info_name, ctx.params.get("overrides") or (), incomplete)


def _hydra_command(name: str, module: str, help_text: str) -> None:
    @cli.command(name, help=help_text, add_help_option=False,
                 context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.argument("overrides", nargs=-1, type=click.UNPROCESSED, shell_complete=_complete)
    def _cmd(overrides: tuple[str, ...]) -> None:
        args = expand_home(list(overrides))
        if name == "train":
            args = with_resume(args)
            watch_start_up()  # a Ctrl-C from here to the training loop is never lost (interrupts.py)
        try:
            run_hydra(importlib.import_module(module).main, f"ganzoo {name}", args)
        finally:  # a sweep (-m): every job's status, also when a Ctrl-C stopped it (commands/sweep.py)
            code = _finish_sweeps()
        if code:
            sys.exit(code)


def _finish_sweeps() -> int:
    if "ganzoo.commands.sweep" not in sys.modules:  # no job ran: nothing to summarize (and no hydra import)
        return 0
    from .commands.sweep import finish

    return finish()


for _name, (_module, _help) in HYDRA_COMMANDS.items():
    _hydra_command(_name, _module, _help)
_install_completion()  # bash/zsh scripts that complete `group=option` and `key.` (see completion.py)


@cli.command("list")
def list_cmd() -> None:
    """List the models and datasets, one line each."""
    from rich.console import Console  # here, not at the top: start-up speed of the other commands
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for group in ("model", "dataset"):
        table = Table(title=f"{group}s (ganzoo train {group}=<name>)", title_justify="left", box=None)
        table.add_column(group, style="bold cyan", no_wrap=True)
        table.add_column("description")
        for opt in group_options(group):
            table.add_row(opt, escape(describe(group, opt)))  # as written: "ganzoo[svhn]" is not markup
        console.print(table)
        console.print()


@cli.group("data")
def data_group() -> None:
    """Datasets and weights: ganzoo data list | download <name>... | verify <folder or dataset name>."""


_register_data_commands(data_group)  # download, list (ganzoo/commands/data.py)


@data_group.command("verify")
@click.argument("target")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Threads decoding images (default: CPU cores + 4, at most 16).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Report images larger than this as decompression bombs (default: Pillow's limit).")
def data_verify(target: str, workers: int | None, max_pixels: int | None) -> None:
    """Check every image of a folder or dataset; list ALL bad files.

    TARGET is a folder, or a dataset name (an image-folder dataset is checked at its configured
    path). Each image is fully decoded; every bad file (zero-byte, truncated, not an image, content
    not matching the extension, decompression bomb, ...) is listed with its reason. Exit status 1 if
    any file is bad, 0 if all are good."""
    from .data.files.verify import run  # here, not at the top: it loads numpy and Pillow (start-up speed)

    try:
        code = run(target, workers=workers, max_pixels=max_pixels)
    except UserError as e:
        raise ConfigError(str(e)) from None
    sys.exit(code)


def main() -> None:
    warnings.showwarning = _warning_line(warnings.showwarning)  # here only: tests calling `cli` keep pytest's
    cli(prog_name="ganzoo")  # Ctrl-C: GanzooGroup.invoke


if __name__ == "__main__":
    main()

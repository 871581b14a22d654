"""`ganzoo data verify`: fully decode every image file of a folder and report ALL the bad ones.

The target is a folder, or the name of a dataset config (conf/dataset/<name>.yaml): an image-folder
dataset (one with a `path:` key) is checked at its configured path, resolved as training resolves it
(the working directory, else the data home); in-memory datasets (procedural digits, torchvision sets
verified by checksum) have no image files to check.

The files are those training would read (`image_folder`'s rules: image extensions, case-insensitive;
names starting with "." skipped; recursive unless the dataset sets recursive=false). Each is checked
by `check_image` (zero-byte, unreadable, truncated, not an image, content not matching the extension,
decompression bomb, decode errors). Other files are counted as skipped, not as errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ganzoo.errors import UserError
from ganzoo.storage import resolve_data_path

from .imagecheck import IMAGE_EXTENSIONS, is_image_file, scan_images

_CHUNK = 256  # files per progress update


@dataclass
class Report:
    folder: Path
    checked: int = 0  # image files checked
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path relative to folder, reason), sorted
    skipped: list[str] = field(default_factory=list)  # files without an image extension (relative)

    @property
    def ok(self) -> bool:
        return not self.bad

    def summary(self) -> str:
        line = f"{len(self.bad)} of {self.checked} images bad"
        k = len(self.skipped)
        if k:
            line += f", {k} file{'s' if k != 1 else ''} skipped (not an image extension)"
        return line


@dataclass(frozen=True)
class Target:
    """What to check: a folder (`folder`, `recursive`), or nothing, with `message` saying why."""

    folder: Path | None
    recursive: bool = True
    message: str = ""


def dataset_names() -> list[str]:
    from importlib import resources

    folder = resources.files("ganzoo.conf") / "dataset"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def dataset_config(name: str) -> dict | None:
    """conf/dataset/<name>.yaml as a dict; None if there is no such dataset."""
    if not name or "/" in name or os.sep in name or name not in dataset_names():
        return None
    from importlib import resources

    import yaml  # PyYAML comes with omegaconf

    return yaml.safe_load((resources.files("ganzoo.conf") / "dataset" / f"{name}.yaml").read_text()) or {}


def resolve_target(target: str) -> Target:
    """A folder path, or a dataset name; UserError (one line) when it is neither."""
    p = Path(os.path.expanduser(target))
    if p.is_dir():
        return Target(p)
    if p.exists():
        raise UserError(f"{p} is not a folder: pass a folder of images or a dataset name")
    cfg = dataset_config(target)
    if cfg is not None:
        return _dataset_target(target, cfg)
    alt = resolve_data_path(target, None)  # a folder under the data home, as dataset.path=<name> finds it
    if alt.is_dir():
        return Target(alt)
    also = "" if ("/" in target or os.sep in target) else f" (nor is {target!r} a dataset: {', '.join(dataset_names())})"
    raise UserError(f"folder {p} does not exist{also}: pass a folder of images or a dataset name")


def _dataset_target(name: str, cfg: dict) -> Target:
    if "path" not in cfg:
        if cfg.get("name") == "pair":
            return Target(None, message=f"dataset {name!r} is made of two datasets (A={cfg.get('A')}, "
                                        f"B={cfg.get('B')}): verify each of them")
        if "download" in cfg:
            how = "downloaded, verified by checksum and held in memory"
        else:
            how = "generated in memory"
        return Target(None, message=f"dataset {name!r} is {how}: it has no image files to check")
    path = cfg.get("path")
    if path is None or str(path).strip() in ("", "???"):
        raise UserError(f"dataset {name!r} has no path configured (path: {path}): "
                        "pass its folder instead: ganzoo data verify <folder of images>")
    base = resolve_data_path(str(path), cfg.get("root"))
    if not base.is_dir():
        what = "is not a folder" if base.exists() else "does not exist"
        raise UserError(f"image folder {base} of dataset {name!r} {what}: set path in conf/dataset/{name}.yaml "
                        "or pass the folder: ganzoo data verify <folder of images>")
    return Target(base, recursive=bool(cfg.get("recursive", True)))


def list_files(folder: Path, recursive: bool = True) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under `folder`, hidden names skipped, each sorted by relative path
    (the same image files as `image_folder`'s `find_images`, in one walk)."""
    images: list[Path] = []
    others: list[Path] = []
    if recursive:
        walk = os.walk(folder, followlinks=True)
    else:
        walk = [(str(folder), [], [e.name for e in os.scandir(folder) if e.is_file()])]
    for dirpath, dirnames, filenames in walk:
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith("."):
                (images if is_image_file(f) else others).append(Path(dirpath, f))

    def key(p: Path) -> str:
        return p.relative_to(folder).as_posix()

    return sorted(images, key=key), sorted(others, key=key)


def verify_folder(folder: Path, *, recursive: bool = True, workers: int | None = None,
                  max_pixels: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Report:
    """Check every image file under `folder`; `progress(done, total)` is called as files are checked."""
    images, others = list_files(folder, recursive)
    report = Report(folder, checked=len(images), skipped=[p.relative_to(folder).as_posix() for p in others])
    step = len(images) if progress is None else _CHUNK
    for start in range(0, len(images), max(1, step)):
        chunk = images[start : start + step]
        for path, reason in scan_images(chunk, workers=workers, max_pixels=max_pixels):
            report.bad.append((Path(path).relative_to(folder).as_posix(), reason))
        if progress is not None:
            progress(start + len(chunk), len(images))
    return report


def print_report(report: Report, console) -> None:
    """Every bad file with its reason in a table, then the summary line (rich `console`)."""
    from rich.table import Table
    from rich.text import Text

    if report.bad:
        table = Table(title=f"bad image files in {report.folder}", title_justify="left")
        table.add_column("file", style="cyan", overflow="fold")
        table.add_column("reason", overflow="fold")
        for rel, reason in report.bad:
            table.add_row(Text(rel), Text(reason))
        console.print(table)
    console.print(Text(report.summary(), style="bold red" if report.bad else "bold green"), soft_wrap=True)


def run(target: str, *, workers: int | None = None, max_pixels: int | None = None) -> int:
    """The command: check `target`, print the report to stdout; exit status 0 (all good) or 1 (bad
    files). UserError for a missing folder, an unknown dataset or a folder without images."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.text import Text

    what = resolve_target(target)
    console = Console()
    if what.folder is None:
        console.print(Text(what.message), soft_wrap=True)
        return 0
    folder = what.folder
    err = Console(stderr=True)
    with Progress(TextColumn("checking images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("check", total=None)
        report = verify_folder(folder, recursive=what.recursive, workers=workers, max_pixels=max_pixels,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    if report.checked == 0:
        k = len(report.skipped)
        skipped = f" ({k} other file{'s' if k != 1 else ''} skipped)" if k else ""
        how = "" if what.recursive else " directly"
        raise UserError(f"no images ({' '.join(sorted(IMAGE_EXTENSIONS))}) found{how} in {folder}{skipped}: "
                        "pass a folder of images")
    if not console.is_terminal and report.bad:  # piped or captured: never wrap a path
        longest = max(len(rel) + len(reason) + 7 for rel, reason in report.bad)
        console = Console(width=max(console.width, longest, len(str(folder)) + 20))
    print_report(report, console)
    return 0 if report.ok else 1


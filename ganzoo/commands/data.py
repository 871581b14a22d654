"""`ganzoo data download <name>...` and `ganzoo data list`: the manifest's datasets and weights.

Added to the `data` Click group of cli.py by `register`. The work is done by ganzoo.data.fetch.download;
this module only parses, prints and turns DataError into the one-line `Error: ...` (exit 2).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import click


class _Exit2(click.ClickException):
    exit_code = 2


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def register(group: click.Group) -> None:
    @group.command("download")
    @click.argument("names", nargs=-1, required=True, metavar="NAME...")
    @click.option("--root", type=click.Path(file_okay=False), default=None,
                  help="Data home to use (default: $GANZOO_DATA, else ~/.cache/ganzoo/data).")
    @click.option("--force", is_flag=True,
                  help="Download again even when present; the old copy is replaced only by a verified one.")
    def data_download(names: tuple[str, ...], root: str | None, force: bool) -> None:
        """Download, verify (SHA-256) and safely extract datasets or weights: ganzoo data list names them.

        Each file goes to the data home (a dataset as the folder <name>/, weights and data files as files),
        resumes after an interruption, and is verified before use. Files without a published hash
        have it recorded on the first download (manifest.lock.json) and checked on later ones."""
        from ganzoo.data.base import DataError
        from ganzoo.data.fetch import manifest
        from ganzoo.data.fetch.download import prepare

        unknown = [n for n in names if n not in manifest.ENTRIES]
        if unknown:
            raise _Exit2(f"unknown download {unknown[0]!r} (known: {', '.join(manifest.names())})")
        for name in names:
            try:
                out = prepare(name, root, force=force)
            except DataError as e:
                raise _Exit2(str(e)) from None
            src = {"present": "already present", "downloaded": "downloaded",
                   "from archive": "from the archive in the data home"}[out.action]
            if out.sha256 is None:  # a dataset folder already in place
                how = src
            else:
                how = {"pinned": f"{src}, sha256 verified (pinned)",
                       "recorded": f"{src}, sha256 verified (recorded on an earlier download)",
                       "recorded now": f"{src}; no published sha256, recorded {out.sha256} "
                                       f"(later downloads are verified against it)"}[out.policy]
            click.echo(f"{name}: {out.path} ({how})")

    @group.command("list")
    @click.option("--root", type=click.Path(file_okay=False), default=None,
                  help="Data home to look in (default: $GANZOO_DATA, else ~/.cache/ganzoo/data).")
    def data_list(root: str | None) -> None:
        """List the downloadable datasets and weights: size, present/absent, hash pinned/recorded/unknown,
        the scheme they come over (https)."""
        from rich.console import Console
        from rich.table import Table

        from ganzoo.data.base import DataError
        from ganzoo.data.fetch import manifest
        from ganzoo.data.fetch.download import hash_policy, is_present, target_of
        from ganzoo.storage import data_home

        home = data_home(root)
        table = Table(title=f"downloads (ganzoo data download <name>; data home {home})", title_justify="left",
                      box=None)
        for col in ("name", "kind", "size", "status", "sha256", "via", "description"):
            table.add_column(col, no_wrap=col != "description", style="bold cyan" if col == "name" else None)
        for e in manifest.ENTRIES.values():
            target = target_of(e, home)
            if is_present(e, home):
                status = "present"
            elif (part := target.parent / (e.filename + ".part")).is_file():  # archive or weights file
                status = f"partial ({_size(part.stat().st_size)})"
            else:
                status = "absent"
            try:
                policy = hash_policy(e, home)
            except DataError as err:
                raise _Exit2(str(err)) from None
            table.add_row(e.name, e.kind, _size(e.size), status, policy, urlsplit(e.url).scheme, e.description)
        Console(width=max(Console().width, 160)).print(table)

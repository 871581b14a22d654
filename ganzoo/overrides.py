"""A Hydra command line read without Hydra: which words are flags (and which take the next word as
their value), an override's key, `~` in a value expanded to the home folder, and `resume=<run>`
expanded into that run's own overrides.

Shared by cli.py (which reorders the line for hydra 1.3 and expands `resume=`) and completion.py
(which reads the line to offer candidates), so that neither imports the other. Only the standard
library here, plus PyYAML inside `with_resume` to read the run's `.hydra/overrides.yaml`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Hydra flags that take a value (so that reordering keeps the value with its flag; not overrides)
VALUE_FLAGS = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name", "-cd",
               "--config-dir", "-sc", "--shell-completion", "--experimental-rerun"}
# `-i/--info` takes the next word only when it is one of these (a bare `--info` means `all`)
INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def takes_value(args: list[str], i: int) -> bool:
    """Whether the flag args[i] takes args[i + 1] as its value."""
    a = args[i]
    return i + 1 < len(args) and (a in VALUE_FLAGS or (a in ("-i", "--info") and args[i + 1] in INFO_CHOICES))


def flags_first(args: list[str]) -> list[str]:
    """Move Hydra flags (and their values) before the overrides: hydra 1.3's parser needs them first."""
    flags, rest, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flags.append(a)
            if takes_value(args, i):
                flags.append(args[i + 1])
                i += 1
        else:
            rest.append(a)
        i += 1
    return flags + rest


_HOME = re.compile(r"~[\w.-]*(/|$)")  # `~/...`, `~`, `~user/...`: a home folder, as a shell would read it


def expand_home(args: list[str]) -> list[str]:
    """`dataset.root=~/data` -> `dataset.root=/home/me/data`: Hydra's grammar has no unquoted `~` in a
    value (a lexer error), so a `~` that starts a value can only mean a home folder; expanded for any key."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and not a.startswith("-") and _HOME.match(value):
            a = f"{key}={os.path.expanduser(value)}"
        out.append(a)
    return out


def _key(override: str) -> str:
    """`+model.lr=0.1` -> `model.lr`: the key an override sets, adds or deletes."""
    return override.split("=", 1)[0].lstrip("+~")


def unquote(value: str) -> str:
    """A Hydra override value as the string it stands for: `"/tmp/my run"` and `'/tmp/é run'` lose
    their quotes (and the backslash of an escaped quote or backslash); anything else is kept as is."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        q = value[0]
        return value[1:-1].replace("\\" + q, q).replace("\\\\", "\\")
    return value


AUTO = "auto"  # resume=auto: continue the run in the job's own folder when it holds a checkpoint, else start


def with_resume(args: list[str]) -> list[str]:
    """`resume=<run>`: the run's own overrides first (the new ones win), and its folder as the output.
    The run's `resume` and `overwrite` are not reused: they were about how that run started."""
    resume = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), None)
    if not resume or resume in ("null", "None", AUTO) or "-m" in args or "--multirun" in args:
        return args  # resume=auto: the job finds its own folder's checkpoint (ganzoo.commands.run_folder)
    saved = Path(unquote(resume)) / ".hydra" / "overrides.yaml"
    old: list[str] = []
    if saved.is_file():
        import yaml  # here, not at the top: only a resume pays for it (PyYAML comes with omegaconf)

        old = [o for o in (yaml.safe_load(saved.read_text()) or []) if _key(o) not in ("resume", "overwrite")]
    new_keys = {_key(a) for a in args if not a.startswith("-")}
    merged = [o for o in old if _key(o) not in new_keys] + list(args)
    if "hydra.run.dir" not in new_keys:
        merged.append(f"hydra.run.dir={resume}")
    return merged

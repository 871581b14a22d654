"""Shell completion of Hydra overrides for `ganzoo train|sample ...` (bash and zsh).

Click runs the completion (`eval "$(_GANZOO_COMPLETE=bash_source ganzoo)"`, or `zsh_source`) and
calls `complete_overrides` for the overrides argument; the candidates come from Hydra's own engine
(`CompletionPlugin._query`, the code behind hydra's `-sc`) over the search path `pkg://ganzoo.conf`
(plus `-cd DIR` when given). Hydra is imported only here, inside the functions, so `ganzoo --help`
stays fast, and any failure yields no candidates rather than a traceback in the user's prompt.

The stock Click scripts need two fixes, made by the classes registered by `install()`:
- bash: `=` and `:` are in COMP_WORDBREAKS, so `model=dc` reaches Click as the words `model`, `=`,
  `dc`. Our script sends COMP_LINE up to the cursor instead, and strips from each candidate the part
  of the token that bash already treats as separate words (`model=`). `-o nospace` when the single
  candidate ends in `=`, `.` or `/` (the user goes on typing the value, key or path).
- zsh: words arrive whole, but `compadd` adds a space; candidates ending in `=`, `.` or `/` are
  added with `-S ''`.
"""

from __future__ import annotations

import os
import re

from click.shell_completion import (
    BashComplete,
    CompletionItem,
    ZshComplete,
    add_completion_class,
    split_arg_string,
)

from .overrides import VALUE_FLAGS, takes_value, with_resume

PRIMARY_CONFIGS = {"train": "train", "sample": "sample"}
CONF_PACKAGE = "pkg://ganzoo.conf"
_CFG_CHOICES = ("job", "hydra", "all")
# keys whose value is a path: complete files and folders after `key=`
PATH_KEYS = {"run", "out", "resume", "hydra.run.dir", "hydra.sweep.dir", "dataset.root", "input", "weights"}
# keys whose value names a dataset config (the two sides of dataset=pair): complete the dataset group
DATASET_KEYS = {"dataset.A", "dataset.B"}
_NO_SPACE = ("=", ".", "/")


# ---------------------------------------------------------------------------------------------------
# the engine (hydra is imported inside these functions: start-up speed, see the docstring)


def _split_previous(previous: tuple[str, ...] | list[str]) -> tuple[list[str], dict[str, str], bool]:
    """Separate Hydra flags from overrides: (overrides, {flag: value}, multirun)."""
    overrides: list[str] = []
    flags: dict[str, str] = {}
    multirun = False
    items = list(previous)
    i = 0
    while i < len(items):
        a = items[i]
        if a.startswith("-") and len(a) > 1:
            name, eq, val = a.partition("=")
            if a in ("-m", "--multirun"):
                multirun = True
            elif eq and name.startswith("--") and name in VALUE_FLAGS:
                flags[name] = val
            elif takes_value(items, i):
                flags[a] = items[i + 1]
                i += 1
        else:
            overrides.append(a)
        i += 1
    return overrides, flags, multirun


def _flag(flags: dict[str, str], short: str, long: str) -> str | None:
    return flags.get(long, flags.get(short))


def _search_path(config_dir: str | None):
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    search_path = create_config_search_path(CONF_PACKAGE)
    if config_dir:
        abs_dir = os.path.abspath(os.path.expanduser(config_dir))
        if os.path.isdir(abs_dir):  # as hydra does for --config-dir
            search_path.prepend(provider="command-line", path=f"file://{abs_dir}",
                                anchor=SearchPathQuery(provider="schema"))
    return search_path


def _plugin(config_dir: str | None):
    """A DefaultCompletionPlugin whose config loader caches compositions, and that offers
    `group=` only for the groups that the command's config uses (so `sample` is not offered
    `model=`); `+group=` still offers them all."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.errors import ConfigCompositionException
    from hydra.plugins.completion_plugin import DefaultCompletionPlugin
    from hydra.types import RunMode

    class CachingLoader:
        def __init__(self, inner):
            self._inner = inner
            self._cache: dict = {}

        def load_configuration(self, config_name, overrides, run_mode, **kw):
            key = (config_name, tuple(overrides), run_mode)
            if key not in self._cache:
                try:
                    self._cache[key] = self._inner.load_configuration(config_name, list(overrides), run_mode, **kw)
                except ConfigCompositionException as e:  # remembered, and raised again for each caller
                    self._cache[key] = e
                except Exception as e:  # _query skips the config keys only on this type
                    self._cache[key] = ConfigCompositionException(str(e))
            hit = self._cache[key]
            if isinstance(hit, Exception):
                raise hit
            return hit

        def __getattr__(self, name):
            return getattr(self._inner, name)

    class Plugin(DefaultCompletionPlugin):
        run_mode = RunMode.RUN

        def _query_config_groups(self, word, config_name, words):
            groups, exact = super()._query_config_groups(word, config_name=config_name, words=words)
            if exact or word.startswith(("+", "~")):
                return groups, exact
            try:
                cfg = self.config_loader.load_configuration(config_name=config_name, overrides=words,
                                                            run_mode=self.run_mode)
            except ConfigCompositionException:
                return groups, exact
            keys = {str(k) for k in cfg.keys()}
            return [g for g in groups if not (g.endswith("=") and "/" not in g and g[:-1] not in keys)], exact

    return Plugin(CachingLoader(ConfigLoaderImpl(config_search_path=_search_path(config_dir)))), RunMode


def _complete_path(key_eq: str, partial: str) -> list[str]:
    """`key=partial` -> `key=<path>` for the files and folders starting with partial (folders end in /)."""
    partial_exp = os.path.expanduser(partial)
    folder, base = os.path.split(partial_exp)
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.startswith(base) or (name.startswith(".") and not base.startswith(".")):
            continue
        full = os.path.join(folder, name)
        shown = partial[: len(partial) - len(base)] + name  # keep the user's own spelling (~/...)
        out.append(f"{key_eq}{shown}{'/' if os.path.isdir(full) else ''}")
    return out


def _query(command: str, previous, incomplete: str) -> list[str]:
    overrides, flags, multirun = _split_previous(previous)
    config_name = _flag(flags, "-cn", "--config-name") or PRIMARY_CONFIGS.get(command, command)
    config_dir = _flag(flags, "-cd", "--config-dir")
    if command == "train" and any(o.startswith("resume=") for o in overrides):
        try:  # the run's own overrides decide its groups (model.<Tab> lists the run's model keys)
            overrides = with_resume(overrides)
        except Exception:
            pass
    # Hydra's line parser splits on whitespace: leave out overrides that hold any
    overrides = [o for o in overrides if o and not re.search(r"\s", o)]

    key, eq, value = incomplete.partition("=")
    if eq and key.lstrip("+~") in PATH_KEYS and not value.startswith(("$", "[", "'", '"')):
        return _complete_path(key + eq, value)

    plugin, run_mode = _plugin(config_dir)
    if eq and key.lstrip("+~") in DATASET_KEYS:
        names = plugin.config_loader.get_group_options("dataset")
        return [f"{key}={n}" for n in names if n.startswith(value) and not n.startswith("_")]
    plugin.run_mode = run_mode.MULTIRUN if multirun else run_mode.RUN
    head = ["-m"] if multirun else []

    def ask(words: list[str]) -> list[str]:
        line = " ".join(head + words + [incomplete])
        try:
            return plugin._query(config_name=config_name, line=line)
        except Exception:  # e.g. an override that does not parse
            return []

    result = ask(overrides)
    if not result and overrides:
        # a broken previous override stops the composition: try again with only the group choices
        groups = [o for o in overrides if re.match(r"^[+~]?[\w/@-]+=[\w./-]*$", o) and "." not in o.split("=")[0]]
        if groups != overrides:
            result = ask(groups)
    return result


def complete_overrides(command: str, previous: tuple[str, ...], incomplete: str) -> list[CompletionItem | str]:
    """Candidates for the word being typed after `ganzoo <command> <previous...>` (never raises)."""
    try:
        if previous and previous[-1] in ("-cd", "--config-dir"):
            return [CompletionItem(incomplete, type="dir")]
        if previous and previous[-1] in ("-c", "--cfg"):
            return [CompletionItem(c) for c in _CFG_CHOICES if c.startswith(incomplete)]
        if previous and previous[-1] in ("-cn", "--config-name"):
            from hydra.core.object_type import ObjectType

            _, flags, _ = _split_previous(previous[:-1])
            plugin, _ = _plugin(_flag(flags, "-cd", "--config-dir"))
            names = plugin.config_loader.get_group_options("", results_filter=ObjectType.CONFIG)
            return [CompletionItem(n) for n in names if n.startswith(incomplete) and not n.endswith("_schema") and not n.startswith("_")]
        if previous and previous[-1] in VALUE_FLAGS:  # -p, -cp, ...: nothing to offer
            return []
        return [CompletionItem(c) for c in _query(command, previous, incomplete)]
    except BaseException:  # incl. SystemExit from Hydra's argparse: no candidates, no traceback
        return []


# ---------------------------------------------------------------------------------------------------
# the shell side

# `local` before the assignment from $(...) would hide its status; bash >= 4.4 (compopt, nosort)
_SOURCE_BASH = r"""%(complete_func)s() {
    local IFS=$'\n'
    local line="${COMP_LINE:0:COMP_POINT}"
    local token="${line##*[[:space:]]}"
    # the part of the token that bash has already split off as separate words (e.g. "model=")
    local prefix="${token%%"${token##*[$COMP_WORDBREAKS]}"}"
    local response completion type value
    response=$(env COMP_LINE="$line" COMP_POINT="${#line}" %(complete_var)s=bash_complete "$1" 2>/dev/null)
    COMPREPLY=()
    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"
        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
            return 0
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
            return 0
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=("${value#"$prefix"}")
        fi
    done
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *[=./] ]]; then
        compopt -o nospace
    fi
    return 0
}

%(complete_func)s_setup() {
    complete -o nosort -F %(complete_func)s %(prog_name)s
}

%(complete_func)s_setup;
"""

_SOURCE_ZSH = r"""#compdef %(prog_name)s

%(complete_func)s() {
    local -a completions
    local -a completions_nospace
    local -a completions_with_descriptions
    local -a response
    (( ! $+commands[%(prog_name)s] )) && return 1

    response=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \
%(complete_var)s=zsh_complete %(prog_name)s 2>/dev/null)}")

    for type key descr in ${response}; do
        if [[ "$type" == "plain" ]]; then
            if [[ "$key" == *[=./] ]]; then
                completions_nospace+=("$key")
            elif [[ "$descr" == "_" ]]; then
                completions+=("$key")
            else
                completions_with_descriptions+=("$key":"$descr")
            fi
        elif [[ "$type" == "dir" ]]; then
            _path_files -/
        elif [[ "$type" == "file" ]]; then
            _path_files -f
        fi
    done

    if [ -n "$completions_with_descriptions" ]; then
        _describe -V unsorted completions_with_descriptions -U
    fi

    if [ -n "$completions" ]; then
        compadd -U -V unsorted -a completions
    fi

    if [ -n "$completions_nospace" ]; then
        compadd -U -V unsorted -S '' -a completions_nospace
    fi
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoload from fpath, call function directly
    %(complete_func)s "$@"
else
    # eval/source/. command, register function for later
    compdef %(complete_func)s %(prog_name)s
fi
"""


class HydraBashComplete(BashComplete):
    """bash: the line up to the cursor (COMP_LINE/COMP_POINT) instead of COMP_WORDS, which bash
    splits at `=` and `:`."""

    source_template = _SOURCE_BASH

    def get_completion_args(self) -> tuple[list[str], str]:
        if "COMP_LINE" not in os.environ:
            return super().get_completion_args()  # the stock COMP_WORDS/COMP_CWORD protocol
        line = os.environ["COMP_LINE"]
        try:
            line = line[: int(os.environ.get("COMP_POINT", len(line)))]
        except ValueError:
            pass
        words = split_arg_string(line)
        incomplete = words.pop() if words and line and not line[-1].isspace() else ""
        return words[1:], incomplete


class HydraZshComplete(ZshComplete):
    """zsh: no space after a candidate ending in `=`, `.` or `/`."""

    source_template = _SOURCE_ZSH


def install() -> None:
    """Register the bash and zsh completion classes with Click (call it when ganzoo.cli is imported)."""
    add_completion_class(HydraBashComplete, "bash")
    add_completion_class(HydraZshComplete, "zsh")

"""The structure, read from the source: imports run one way (down the layers of docs/architecture.md),
no import circle, model files import no other model, and no layer outside ganzoo/models/ probes a
model with hasattr/getattr for an attribute the contract does not declare. Function-local imports
count like module-level ones: a cycle hidden inside a function is still a cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ganzoo"

# bottom up; a module may import modules of its own layer or of a lower one (docs/architecture.md)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("ganzoo", "ganzoo.errors", "ganzoo.interrupts", "ganzoo.registry", "ganzoo.losses", "ganzoo.images", "ganzoo.runtime",
              "ganzoo.distributed", "ganzoo.storage", "ganzoo.runlog", "ganzoo.overrides")),
    ("data, checkpoint, settings, optimizers", ("ganzoo.data", "ganzoo.checkpoint", "ganzoo.settings",
                                                "ganzoo.optimizers")),
    ("nn, models", ("ganzoo.nn", "ganzoo.models")),
    ("build", ("ganzoo.build", "ganzoo.portable")),
    ("metrics", ("ganzoo.metrics",)),
    ("trainer", ("ganzoo.trainer",)),
    ("verbs", ("ganzoo.run", "ganzoo.translate", "ganzoo.report", "ganzoo.graphs", "ganzoo.export", "ganzoo.serve")),
    ("commands, cli", ("ganzoo.commands", "ganzoo.cli", "ganzoo.completion", "ganzoo.config", "ganzoo.__main__")),
]


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PKG.rglob("*.py"):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    return mods


def layer_of(module: str) -> int:
    best, level = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    if level is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS here and to docs/architecture.md")
    return level


def imports(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported ganzoo module, line) for every import in the file, function-local ones included."""
    out = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            cands = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods] or [target]
        elif isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        else:
            continue
        out += [(c, node.lineno) for c in cands if c in mods and c != name]
    return out


def _graph() -> tuple[dict[str, list[tuple[str, int]]], dict[str, Path]]:
    mods = _modules()
    return {name: imports(name, path, mods) for name, path in mods.items()}, mods


def test_every_module_has_a_layer():
    for name in _modules():
        layer_of(name)


def test_imports_point_down():
    graph, mods = _graph()
    upward = [f"{mods[a].relative_to(ROOT)}:{line} imports {b} ({LAYERS[layer_of(b)][0]} is above "
              f"{LAYERS[layer_of(a)][0]})"
              for a, targets in graph.items() for b, line in targets if layer_of(b) > layer_of(a)]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    graph, _ = _graph()
    edges = defaultdict(set)
    for a, targets in graph.items():
        edges[a].update(b for b, _ in targets)
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(" <-> ".join(sorted(comp)))

    for v in list(graph):
        if v not in index:
            strong(v)
    assert not cycles, "\n".join(cycles)


def test_models_import_no_other_model():
    graph, mods = _graph()
    bad = [f"{mods[a].relative_to(ROOT)}:{line} imports {b}" for a, targets in graph.items()
           if a.startswith("ganzoo.models.") and a != "ganzoo.models.base"
           for b, line in targets if b.startswith("ganzoo.models.") and b != "ganzoo.models.base"]
    assert not bad, "\n".join(bad)


PROBES = ("hasattr", "getattr", "callable")


def probes(source: str, where: str) -> list[str]:
    """hasattr/getattr(x, "<name>") and callable(getattr(...)) on an expression naming a model."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PROBES
                and node.args):
            continue
        target = node.args[0]
        if node.func.id == "callable" and isinstance(target, ast.Call) and isinstance(target.func, ast.Name) \
                and target.func.id == "getattr" and target.args:
            target = target.args[0]
        elif node.func.id == "callable" or len(node.args) < 2 or not isinstance(node.args[1], ast.Constant):
            continue
        if "model" in ast.unparse(target).lower():
            found.append(f"{where}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_layer_probes_a_model():
    found = [p for f in sorted(PKG.rglob("*.py")) if "models" not in f.relative_to(PKG).parts[:1]
             for p in probes(f.read_text(), str(f.relative_to(ROOT)))]
    assert not found, "ask the model contract (model.can(...), declared methods) instead:\n" + "\n".join(found)


@pytest.mark.parametrize("source,expected", [
    ("hasattr(model, 'classify')", 1), ("getattr(self.model, 'scale', 1)", 1),
    ("callable(getattr(model, 'translate', None))", 2), ("getattr(model, name)", 0), ("hasattr(net, 'x')", 0),
])
def test_the_probe_finder_finds_probes(source, expected):
    assert len(probes(source, "example.py")) == expected

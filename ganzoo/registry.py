"""Name -> class registries for models and dataset builders.

A registry refuses duplicate names and answers an unknown name with the list of known ones, so a
typo in `model=dcgna` or a forgotten import fails loudly at the boundary, never deep in a run.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """An unknown registry key; str() is a one-line message listing the known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package  # modules under it are imported on first lookup
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"duplicate {self.kind} name {name!r}: {self._items[name]} and {obj}")
            self._items[name] = obj
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")
        self._loaded = True

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise UnknownName(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._items.items())


MODELS: Registry = Registry("model", "ganzoo.models")
DATASETS: Registry = Registry("dataset", "ganzoo.data.builders")
SUITES: Registry = Registry("metric suite", "ganzoo.metrics")  # a model names its suites (GANModel.suites)

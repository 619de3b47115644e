"""A name -> entry registry, filled by a decorator (as timm's ``register_model``), whose built-in
entries are loaded lazily: the registry knows each built-in name and the module that registers it
(:mod:`samembed.plugins`), and imports that module the first time the name is asked for. So
listing names imports nothing, and a command loads only what it uses."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from .errors import UsageError, capped, shortened

T = TypeVar("T")


class Registry(Generic[T]):
    """``@registry.register("name")`` adds an entry; ``registry.get("name")`` returns it or raises
    a one-line :class:`UsageError` that lists the known names."""

    def __init__(self, kind: str, builtins: dict[str, str] | None = None):
        self.kind = kind
        self._builtins = dict(builtins or {})  # name -> module that registers it
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return decorate

    def add(self, name: str, entry: T) -> T:
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        """Every name, built-in or registered, without importing anything."""
        return sorted(set(self._builtins) | set(self._entries))

    def get(self, name: str) -> T:
        if name not in self._entries and name in self._builtins:
            module = self._builtins[name]
            importlib.import_module(module)
            if name not in self._entries:
                raise RuntimeError(f"{module} was expected to register the {self.kind} '{name}' and did not")
        if name not in self._entries:
            raise UsageError(f"unknown {self.kind} '{shortened(name)}'; choose one of: {capped(self.names(), 20)}")
        return self._entries[name]

    def all(self) -> dict[str, T]:
        """Every entry, built-in ones loaded."""
        return {name: self.get(name) for name in self.names()}

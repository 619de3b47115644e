"""A name -> factory registry, filled by a decorator (as timm's ``register_model``)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import UsageError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """``@registry.register("name")`` adds a factory; ``registry.get("name")`` returns it or
    raises a one-line :class:`UsageError` that lists the known names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def decorate(factory: F) -> F:
            self._entries[name] = factory
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> F:
        if name not in self._entries:
            raise UsageError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}")
        return self._entries[name]

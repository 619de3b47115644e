"""Lazy attributes for package ``__init__`` modules: ``samembed.extract`` and friends import
torch, zarr and the models only when they are first used, so ``samembed --help`` and argument
errors answer at once."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(package: str, table: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: attribute name -> the (relative) module that
    defines it, imported on first access."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(table[name], package), name)

    return __getattr__

"""Dataset registry: ``@register_dataset("name")`` on a loader makes ``samembed extract name`` work.

A loader takes ``(data_dir: Path | None, download: bool)`` and returns a :class:`DatasetIndex`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import UsageError
from .base import DatasetIndex

DatasetLoader = Callable[[Path | None, bool], DatasetIndex]
_DATASETS: dict[str, DatasetLoader] = {}


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    def decorate(loader: DatasetLoader) -> DatasetLoader:
        _DATASETS[name] = loader
        return loader

    return decorate


def available_datasets() -> list[str]:
    return sorted(_DATASETS)


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False) -> DatasetIndex:
    """Index dataset ``name`` (see :func:`available_datasets`)."""
    if name not in _DATASETS:
        raise UsageError(f"unknown dataset '{name}'; choose one of: {', '.join(available_datasets())}")
    return _DATASETS[name](Path(data_dir).expanduser() if data_dir is not None else None, download)

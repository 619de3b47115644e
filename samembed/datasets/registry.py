"""Dataset registry: ``@register_dataset("name")`` on a loader makes ``samembed extract name`` work.

A loader takes ``(data_dir: Path | None, download: bool)`` and returns a :class:`DatasetIndex`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..registry import Registry
from .base import DatasetIndex

DatasetLoader = Callable[[Path | None, bool], DatasetIndex]
DATASETS: Registry[DatasetLoader] = Registry("dataset")
register_dataset = DATASETS.register
available_datasets = DATASETS.names


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False) -> DatasetIndex:
    """Index dataset ``name`` (see :func:`available_datasets`)."""
    return DATASETS.get(name)(Path(data_dir).expanduser() if data_dir is not None else None, download)

"""Datasets: each module registers a loader that turns files on disk into a :class:`DatasetIndex`."""

from . import eurosat, folder, segmentation  # noqa: F401  (registration)
from .base import DatasetIndex
from .images import read_rgb
from .registry import available_datasets, load_dataset, register_dataset
from .synthetic import make_synthetic_dataset, make_synthetic_roads

__all__ = [
    "DatasetIndex", "available_datasets", "load_dataset", "make_synthetic_dataset", "make_synthetic_roads", "read_rgb",
    "register_dataset",
]

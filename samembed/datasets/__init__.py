"""Datasets: each module registers a loader that turns files on disk into a :class:`DatasetIndex`
(built-in ones are listed in :mod:`samembed.plugins` and imported when first used)."""

from .base import DatasetIndex
from .images import read_pixels, read_rgb
from .registry import available_datasets, get_dataset, load_dataset, register_dataset
from .synthetic import make_synthetic_dataset, make_synthetic_rasters, make_synthetic_roads, make_synthetic_scene

__all__ = [
    "DatasetIndex", "available_datasets", "get_dataset", "load_dataset", "make_synthetic_dataset",
    "make_synthetic_rasters", "make_synthetic_roads", "make_synthetic_scene",
    "read_pixels", "read_rgb", "register_dataset",
]

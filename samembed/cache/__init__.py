"""The embedding cache: a Zarr store per dataset, a group per encoder and input size."""

from .export import export_h5
from .reader import CacheGroup, list_groups, open_cache
from .store import group_name, store_path

__all__ = ["CacheGroup", "export_h5", "group_name", "list_groups", "open_cache", "store_path"]

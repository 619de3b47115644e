"""The one place search reads cache arrays: rows ``start:stop`` of an array of a group, as stored,
through the group's checked reader. Every block search streams goes through :func:`read_rows`."""

from __future__ import annotations

import numpy as np



def read_rows(group, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` (default: all) of the array ``name`` of ``group`` (a
    :class:`~samembed.cache.CacheGroup`), as stored (float16 embeddings stay float16), through the
    group's checked reader (:meth:`CacheGroup.array`: checksums verified, a missing chunk of a
    stored image refused in one line); one line for a missing array."""
    return np.asarray(group.array(name)[start:stop])


def read_selected(group, name: str, rows) -> np.ndarray:
    """The rows ``rows`` (sorted, unique) of the array ``name``, through the checked reader (zarr
    fetches their chunks together, each chunk once)."""
    return np.asarray(group.array(name).read_rows(np.asarray(rows, np.int64)))


def memo(group, key, compute):
    """``compute()`` once per opened group object: its ids, usable images and rankable cells are
    read on the first search and kept while the group is open (open it again to see changes)."""
    kept = group.__dict__.setdefault("_search_memo", {})
    if key not in kept:
        kept[key] = compute()
    return kept[key]

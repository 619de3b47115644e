"""The one place search reads cache arrays: rows ``start:stop`` of an array of a group, as stored.
Every block search streams goes through :func:`read_rows`, so a checked (checksummed) reader can
replace it in one spot."""

from __future__ import annotations

import numpy as np

from ..errors import CacheError, UsageError


def read_rows(group, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` (default: all) of the array ``name`` of ``group`` (a
    :class:`~samembed.cache.CacheGroup`), as stored (float16 embeddings stay float16); one line
    for a missing array or an unreadable chunk."""
    try:
        array = group.group[name]
    except KeyError:
        raise UsageError(f"{group.where} has no array '{name}'; it has {', '.join(sorted(group.arrays))}") from None
    try:
        return np.asarray(array[start:stop])
    except Exception as err:  # a damaged or missing chunk file
        raise CacheError(f"the array '{name}' of {group.where} cannot be read ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]}); extract the group again with --overwrite") from None


def memo(group, key, compute):
    """``compute()`` once per opened group object: its ids, usable images and rankable cells are
    read on the first search and kept while the group is open (open it again to see changes)."""
    kept = group.__dict__.setdefault("_search_memo", {})
    if key not in kept:
        kept[key] = compute()
    return kept[key]

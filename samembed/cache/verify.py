"""``samembed verify``: read every chunk of every array of a cache and say which parts are
damaged (samembed.cache.integrity)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .integrity import Damage, check_array, has_checksums
from .layout import WRITTEN_AT_CREATION
from .reader import CacheGroup, list_groups


@dataclass
class GroupCheck:
    """What reading a whole group found: ``state`` is ``ok``, ``damaged`` or ``unverifiable``
    (written before checksums: only chunks that cannot be decoded are found)."""

    group: CacheGroup
    state: str
    damages: list[Damage] = field(default_factory=list)
    problem: str | None = None  # damaged metadata

    def line(self) -> str:
        where = f"{self.group.store_name}/{self.group.name}"
        if self.problem:
            return f"{where}: damaged: {self.problem}"
        if self.damages:
            return f"{where}: damaged: " + "; ".join(str(d) for d in self.damages)
        if self.state == "unverifiable":
            return f"{where}: unverifiable (written before checksums; no chunk failed to decode)"
        return f"{where}: ok"


def verify_group(group: CacheGroup, progress: bool = False) -> GroupCheck:
    """Read every chunk of ``group`` and check it (checksums, missing chunks of stored images)."""
    if group.problem:
        return GroupCheck(group, "damaged", problem=group.problem)
    arrays = group.arrays
    checked = all(has_checksums(a) for a in arrays.values())
    try:
        done = group.images_done()
    except Exception as err:  # the done flags themselves
        return GroupCheck(group, "damaged", problem=f"its 'done' flags cannot be read ({err})")
    damages: list[Damage] = []
    total = sum(a.shape[0] for a in arrays.values())
    with tqdm(total=total, desc=f"verifying {group.name}", unit="row", disable=not progress, dynamic_ncols=True) as bar:
        for name, array in sorted(arrays.items()):
            if not checked:  # old groups: chunks equal to the fill value were never written
                damages += check_array(array, name, np.zeros(0, bool), progress=bar.update)
                continue
            block = array.shards[0] if array.shards else array.chunks[0]
            whole = set(range(-(-array.shape[0] // block))) if name in WRITTEN_AT_CREATION else None
            rows = done if name != "done" else np.zeros(0, bool)
            damages += check_array(array, name, rows, expected_blocks=whole, progress=bar.update)
    state = "damaged" if damages else ("ok" if checked else "unverifiable")
    return GroupCheck(group, state, damages)


def verify_cache(cache_dir: str | Path, dataset: str | None = None, encoder: str | None = None,
                 progress: bool = False) -> list[GroupCheck]:
    """Check every group of the cache (of ``dataset``, of groups whose name starts with
    ``encoder``), reading all of it; one :class:`GroupCheck` per group."""
    groups = [g for g in list_groups(cache_dir)
              if (dataset is None or g.store_name == f"{dataset}.zarr") and (encoder is None or g.name.startswith(encoder))]
    return [verify_group(g, progress) for g in groups]

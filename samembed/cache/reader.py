"""Reading the cache: which groups a store holds, and their arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from ..errors import CacheError, UsageError
from .store import FORMAT, store_path


@dataclass
class CacheGroup:
    """A read-only view of one cache group (one dataset, one encoder at one input size)."""

    store: Path
    name: str
    group: zarr.Group

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def signature(self) -> dict:
        return self.attrs["signature"]

    @property
    def dataset(self) -> str:
        return self.signature["dataset"]

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs["class_names"])

    @property
    def task(self) -> str:
        """``classification`` or ``segmentation`` (a group with masks)."""
        return self.signature.get("task", "classification")

    @property
    def img_size(self) -> int | None:
        return self.signature.get("encoder", {}).get("img_size")

    @property
    def num_images(self) -> int:
        return int(self.attrs["num_images"])

    @property
    def arrays(self) -> dict[str, zarr.Array]:
        return dict(self.group.arrays())

    @property
    def shards_done(self) -> tuple[int, int]:
        done = self.group["done"][:]
        return int(done.sum()), len(done)

    @property
    def complete(self) -> bool:
        done, total = self.shards_done
        return done == total

    def read(self, name: str) -> np.ndarray:
        """The whole array ``name`` (``labels``, ``neck``, ``grid``, ...) in memory."""
        if name not in self.group:
            raise UsageError(f"{self.store}/{self.name} has no array '{name}'; it has {', '.join(sorted(self.arrays))}")
        return self.group[name][:]

    def nbytes_stored(self) -> int:
        """Bytes on disk of this group."""
        root = self.store / self.name
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def list_groups(cache_dir: str | Path) -> list[CacheGroup]:
    """Every cache group under ``cache_dir``, sorted by store and name."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    groups = []
    for path in sorted(cache_dir.glob("*.zarr")):
        try:
            root = zarr.open_group(path, mode="r")
        except Exception:  # not a zarr store: not ours
            continue
        if root.attrs.get("format") != FORMAT:
            continue
        for name, group in sorted(root.groups()):
            if "signature" in group.attrs:
                groups.append(CacheGroup(path, name, group))
    return groups


def open_cache(cache_dir: str | Path, dataset: str, encoder: str | None = None) -> CacheGroup:
    """The group of ``dataset`` for ``encoder`` (a group name such as ``sam-vit_b@1024`` or its
    prefix); ``encoder`` may be left out when the store holds one group."""
    path = store_path(cache_dir, dataset)
    groups = [g for g in list_groups(cache_dir) if g.store == path]
    if not groups:
        raise CacheError(f"no cache for dataset '{dataset}' in {cache_dir}; run `samembed extract {dataset}` first")
    names = [g.name for g in groups]
    if encoder is not None:
        groups = [g for g in groups if g.name == encoder] or [g for g in groups if g.name.startswith(encoder)]
    if len(groups) != 1:
        what = "no" if not groups else "several"
        raise UsageError(f"{what} cache groups match for '{dataset}'; choose one with --encoder: {', '.join(names)}")
    return groups[0]

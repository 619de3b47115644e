"""Opening the cache: one Zarr store per dataset (``<cache_dir>/<dataset>.zarr``), one group per
encoder and input size (``<encoder key>@<img_size>``)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path

import zarr

from ..errors import CacheError, SignatureMismatchError
from .layout import create_arrays, num_shards, plan_arrays
from .signature import first_difference

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, one extraction at a time is on the user
    fcntl = None

FORMAT = "samembed-cache"
FORMAT_VERSION = 1


def store_path(cache_dir: str | Path, dataset: str) -> Path:
    return Path(cache_dir) / f"{dataset}.zarr"


def group_name(encoder_key: str, img_size: int) -> str:
    return f"{encoder_key}@{img_size}"


@contextlib.contextmanager
def writer_lock(cache_dir: str | Path, dataset: str):
    """Hold an exclusive lock on a dataset's store for the length of an extraction, so that two
    extractions never write the same shard."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    lock_file = cache_dir / f".{dataset}.zarr.lock"
    with open(lock_file, "w") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CacheError(
                    f"another samembed extraction is writing to {store_path(cache_dir, dataset)}; "
                    "wait for it to finish, or use another --cache-dir"
                ) from None
        yield


def open_group_for_writing(
    cache_dir: str | Path, dataset: str, name: str, signature: dict, *, class_names: list[str],
    image_ids: list[str], labels, pooled_dims: dict[str, int], map_channels: int, grid: int, shard_images: int,
    mask_size: int | None = None, subsets: list[str] | None = None, attrs: dict | None = None,
) -> zarr.Group:
    """The group ``name`` of the dataset's store, created with every array if it is new, else
    checked against ``signature``. Segmentation datasets pass ``mask_size`` and their fixed
    ``subsets``; ``attrs`` are extra attributes, updated on every open (not in the signature).
    Call under :func:`writer_lock`."""
    path = store_path(cache_dir, dataset)
    root = zarr.open_group(path, mode="a")
    if root.attrs.get("format") is None:
        root.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "dataset": dataset})
    if name in root and "signature" not in root[name].attrs:
        # Creation was interrupted before the signature (written last) and so before any data.
        del root[name]
    if name in root:
        group = root[name]
        stored = group.attrs["signature"]
        if group.attrs.get("format_version") != FORMAT_VERSION:
            raise CacheError(f"{path}/{name} was written by another samembed cache format; delete it to start over")
        diff = first_difference(stored, signature)
        if diff:
            key, old, new = diff
            raise SignatureMismatchError(
                f"{path}/{name} was made with {key}={old!r}, not {new!r}; run with the same settings, "
                f"use another --cache-dir, or delete {path / name} to start over"
            )
        if attrs:
            group.attrs.update(attrs)
        return group
    group = root.create_group(name)
    n = len(image_ids)
    specs = plan_arrays(n, pooled_dims, map_channels, grid, shard_images, mask_size, subsets is not None)
    create_arrays(group, specs, num_shards(n, shard_images))
    group["labels"][:] = labels
    group["image_ids"][:] = image_ids
    if subsets is not None:
        group["subset"][:] = subsets
    # Attributes last: a group with a signature has all of its arrays.
    group.attrs.update({
        "format_version": FORMAT_VERSION, "class_names": list(class_names), "num_images": n,
        "grid": grid, "shard_images": shard_images, "pooled": list(pooled_dims), "skipped": [],
        "extraction_runs": [], "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **({"mask_size": mask_size} if mask_size else {}), **(attrs or {}),
        "signature": signature,
    })
    return group


def pending_shards(group: zarr.Group) -> list[int]:
    """Shards not yet written completely."""
    done = group["done"][:]
    return [int(i) for i in (~done).nonzero()[0]]


def record_run(group: zarr.Group, run: dict) -> None:
    group.attrs["extraction_runs"] = list(group.attrs.get("extraction_runs", [])) + [run]

"""Opening the cache: one Zarr store per dataset (``<cache_dir>/<dataset>.zarr``), one group per
encoder and input size (``<encoder key>@<img_size>``); creating, checking and locking groups."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import zarr

from ..errors import CacheError, SamembedError, SignatureMismatchError
from .integrity import writable
from .layout import DONE_PER_IMAGE, create_arrays, images_done, plan_arrays
from .location import CacheLocation, cache_location
from .signature import first_difference

FORMAT = "samembed-cache"
FORMAT_VERSION = 1
BASE_ARRAYS = ("labels", "image_ids", "ok", "orig_hw", "valid_hw", "grid", "done")


def store_path(cache_dir: str | Path | CacheLocation, dataset: str) -> Path | str:
    """The dataset's store: a Path under a local folder, a URL under an object-store URL."""
    return cache_location(cache_dir).store_ref(dataset)


def group_name(encoder_key: str, img_size: int) -> str:
    return f"{encoder_key}@{img_size}"


def writer_lock(cache_dir: str | Path | CacheLocation, dataset: str, note: str = ""):
    """Keep other writers off a dataset's store for the length of an extraction, so that two
    extractions never write the same shard: a file lock in a local folder, a lease on object
    storage (:meth:`CacheLocation.writer_lock`). Yields the lease, or ``None`` for a file lock."""
    return cache_location(cache_dir).writer_lock(dataset, note)


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:200]


def open_root(location: CacheLocation, dataset: str, mode: str = "r") -> zarr.Group:
    """The dataset's store; one line if its metadata is damaged."""
    try:
        return location.open_store(dataset, mode=mode)
    except SamembedError:
        raise
    except Exception as err:  # zarr raises JSON, key and value errors for damaged metadata
        where = location.store_ref(dataset)
        raise CacheError(f"the cache store {where} is damaged ({_one_line(err)}); delete {where} and extract "
                         "again") from None


def child_names(group: zarr.Group) -> list[str]:
    """Names of the nodes directly under ``group``, read from the store's listing, so a child
    with damaged metadata is listed too (zarr's own listing leaves it out)."""
    from zarr.core.sync import sync

    async def listing():
        prefix = f"{group.path}/" if group.path else ""
        return [key async for key in group.store.list_dir(prefix)]

    # zarr writes metadata as zarr.<uuid>.partial and renames it: one left by a killed process is no child
    return sorted(k.rstrip("/") for k in sync(listing())
                  if k != "zarr.json" and not k.startswith(".") and not k.endswith(".partial"))


def required_arrays(attrs: dict) -> list[str]:
    """The arrays a group with these attributes must hold."""
    names = list(BASE_ARRAYS) + list(attrs.get("pooled", []))
    if attrs.get("mask_size"):
        names.append("mask")
    if attrs.get("data_share"):
        names.append("data_share")
    if attrs.get("georef"):
        names += ["window", "scene"]
    if attrs.get("done_unit") == DONE_PER_IMAGE:
        names.append("error")
    names += list(attrs.get("prompt_maps", {}))  # --prompt-features: SAM 2's higher-resolution maps
    return names


def damage(group: zarr.Group) -> str | None:
    """Why ``group`` (one with a signature) cannot be trusted, or ``None``: an array it needs is
    missing, has metadata zarr cannot read, or has the wrong length."""
    attrs = dict(group.attrs)
    try:
        n = int(attrs["num_images"])
        names = required_arrays(attrs)
    except (KeyError, TypeError, ValueError) as err:
        return f"its attributes lack {_one_line(err)}"
    for name in names:
        try:
            array = group[name]
        except KeyError:
            return f"the array '{name}' is missing"
        except Exception as err:
            return f"the metadata of its array '{name}' cannot be read ({_one_line(err)})"
        if not isinstance(array, zarr.Array):
            return f"'{name}' is not an array"
        length = n if name != "done" or attrs.get("done_unit") == DONE_PER_IMAGE else -(-n // int(attrs["shard_images"]))
        if array.shape[:1] != (length,):
            return f"the array '{name}' has shape {array.shape}, not ({length}, ...)"
    return None


def open_group_for_writing(
    cache_dir: str | Path | CacheLocation, dataset: str, name: str, signature: dict, *, class_names: list[str],
    image_ids: list[str], labels, pooled_dims: dict[str, int], map_channels: int, grid: int, shard_images: int,
    mask_size: int | None = None, subsets: list[str] | None = None, attrs: dict | None = None,
    overwrite: bool = False, data_share: bool = False, chips=None, prompt_maps: dict[str, tuple[int, int]] | None = None,
) -> zarr.Group:
    """The group ``name`` of the dataset's store, created with every array if it is new, else
    checked against ``signature``. Segmentation datasets pass ``mask_size`` and their fixed
    ``subsets``, rasters ``data_share`` (store the share of pixels holding data per grid cell),
    chips of scenes their :class:`~samembed.datasets.base.Chips`, SAM 2 with ``--prompt-features``
    its ``prompt_maps`` (name -> (channels, side)); ``attrs`` are extra attributes,
    updated on every open (not in the signature).

    A group that stores no image yet is recreated whenever its signature differs (an earlier run
    stopped before its first image: nothing is lost); one whose creation was interrupted is
    recreated too. ``overwrite`` deletes the group first. A group that holds images made with
    other settings, or damaged metadata, is refused in one line that says how to start over.
    Call under :func:`writer_lock`."""
    location = cache_location(cache_dir)
    path = location.store_ref(dataset)
    root = open_root(location, dataset, mode="a")
    if root.attrs.get("format") is None:
        root.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "dataset": dataset})
    if name in child_names(root):
        if overwrite or _creation_was_interrupted(root, name):
            location.remove_group(dataset, name)
        else:
            group = _check_existing(root, path, name, signature)
            if group is None:  # nothing stored yet, other settings: start afresh
                location.remove_group(dataset, name)
            else:
                if attrs:
                    group.attrs.update(attrs)
                return group
    group = root.create_group(name)
    n = len(image_ids)
    specs = plan_arrays(n, pooled_dims, map_channels, grid, shard_images, mask_size, subsets is not None, data_share,
                        chips is not None, prompt_maps)
    create_arrays(group, specs, shard_images)
    writable(group["labels"])[:] = labels
    writable(group["image_ids"])[:] = np.asarray(image_ids, dtype=object)
    if subsets is not None:
        writable(group["subset"])[:] = np.asarray(subsets, dtype=object)
    if chips is not None:
        writable(group["window"])[:] = np.asarray(chips.windows, dtype=np.int32)
        writable(group["scene"])[:] = np.asarray(chips.scenes, dtype=object)
    # Attributes last: a group with a signature has all of its arrays.
    group.attrs.update({
        "format_version": FORMAT_VERSION, "class_names": list(class_names), "num_images": n,
        "grid": grid, "shard_images": shard_images, "pooled": list(pooled_dims), "done_unit": DONE_PER_IMAGE,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generation": uuid.uuid4().hex[:8],  # new at every (re)creation: readers check it before recording
        **({"mask_size": mask_size} if mask_size else {}), **({"data_share": True} if data_share else {}),
        **({"georef": chips.georef} if chips is not None else {}),
        **({"prompt_maps": {k: list(v) for k, v in prompt_maps.items()}} if prompt_maps else {}), **(attrs or {}),
        "signature": signature,
    })
    return group


def _creation_was_interrupted(root: zarr.Group, name: str) -> bool:
    """Creation writes the signature last, so a group without one holds no data."""
    try:
        return "signature" not in root[name].attrs
    except Exception:  # damaged group metadata: not an interrupted creation, see _check_existing
        return False


def _check_existing(root: zarr.Group, path: Path | str, name: str, signature: dict) -> zarr.Group | None:
    """The existing group if it may be continued; ``None`` if it stores no image and was made
    with other settings; otherwise raises."""
    where = f"{path}/{name}"
    fix = f"run the same command with --overwrite to start {where} over, or use another --cache-dir"
    try:
        group = root[name]
        stored = group.attrs["signature"]
    except Exception as err:
        raise CacheError(f"the cache group {where} is damaged ({_one_line(err)}); {fix}") from None
    if group.attrs.get("format_version") != FORMAT_VERSION:
        raise CacheError(f"{where} was written by another samembed cache format; {fix}")
    problem = damage(group)
    if problem:
        raise CacheError(f"the cache group {where} is damaged: {problem}; {fix}")
    diff = first_difference(stored, signature)
    if diff is None:
        return group
    stored_images = int(images_done(group["done"][:], dict(group.attrs)).sum())
    if stored_images == 0:
        return None
    key, old, new = diff
    other_files = " (other files: give them a store of their own with --name NAME)" if key == "dataset_fingerprint" else ""
    raise SignatureMismatchError(
        f"{where} holds {stored_images} images made with {key}={old!r}, not {new!r}{other_files}; run with the "
        f"same settings, or {fix}"
    )


def stored_signature(cache_dir: str | Path | CacheLocation, dataset: str, name: str) -> dict | None:
    """The signature of group ``name`` if the dataset's store holds it (whole and readable), else
    ``None``; reads only."""
    location = cache_location(cache_dir)
    if f"{dataset}.zarr" not in location.store_names():
        return None
    try:
        if name not in child_names(location.open_store(dataset)):
            return None
        return dict(location.open_store(dataset, path=name).attrs).get("signature")
    except SamembedError:
        raise
    except Exception:  # damaged or not ours: opening it for writing says so
        return None


def pending_images(group: zarr.Group) -> np.ndarray:
    """(k,) int64 indices of the images not yet stored, in order."""
    return np.flatnonzero(~images_done(group["done"][:], dict(group.attrs)))


def pending_shards(group: zarr.Group) -> list[int]:
    """The shards that hold an image not yet stored, in order."""
    return sorted(pending_counts(group))


def pending_counts(group: zarr.Group) -> dict[int, int]:
    """{shard: images of it not yet stored} for every shard that has some."""
    shards, counts = np.unique(pending_images(group) // int(group.attrs["shard_images"]), return_counts=True)
    return dict(zip(shards.tolist(), counts.tolist()))


LOGS = "logs"  # the group's subgroup of run logs, one child group per extraction run


def prepare_run_logs(group: zarr.Group) -> None:
    """Create the group's ``logs/`` subgroup if it is missing, before several processes add
    their logs to it at once."""
    group.require_group(LOGS)


def record_run(group: zarr.Group, run: dict) -> None:
    """Add ``run`` as the log of one extraction run: a child group of its own under ``logs/``
    (its attributes), so writers never rewrite each other's logs."""
    logs = group.require_group(LOGS)
    logs.create_group(f"{run['started'].replace(':', '')}-{uuid.uuid4().hex[:8]}", attributes=run)


def extraction_runs(group: zarr.Group) -> list[dict]:
    """Every extraction run's log, oldest first (groups made before per-run logs kept them in an
    ``extraction_runs`` attribute)."""
    runs = list(group.attrs.get("extraction_runs", []))
    if LOGS in child_names(group):
        logs = group[LOGS]
        runs += [dict(logs[name].attrs) for name in child_names(logs)]
    return sorted(runs, key=lambda run: run.get("started", ""))

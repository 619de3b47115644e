"""``samembed export --format h5``: the same arrays and attributes in one HDF5 file."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..atomic import write_whole
from ..errors import UsageError, storage_error
from .reader import CacheGroup


def export_h5(group: CacheGroup, out: str | Path, images_per_block: int = 1024) -> Path:
    """Write every array of ``group`` to the HDF5 file ``out`` (gzip-compressed, the same
    names and shapes), attributes as JSON strings, and ``usable`` (N,) bool: the images to use
    (:meth:`CacheGroup.usable`: not skipped, not blank; every array keeps all N rows, aligned).
    Refuses an incomplete group. Written to a temporary file first, so ``out`` is never
    half-written."""
    group.require_complete()
    usable = group.usable()
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give the HDF5 file to write, e.g. {out / (group.name + '.h5')}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, f"creating {out.parent}") from None

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for key, value in group.attrs.items():
                f.attrs[key] = json.dumps(value)
            f.attrs["group"] = group.name
            f.create_dataset("usable", data=usable)
            for name, array in group.arrays.items():
                if array.dtype.kind in "OTU" or name == "image_ids":
                    f.create_dataset(name, data=np.asarray(group.read(name), dtype=object), dtype=h5py.string_dtype())
                    continue
                if array.dtype.kind != "f":  # small: read whole, where missing chunk files are checked
                    f.create_dataset(name, data=group.read(name), chunks=True, compression="gzip")
                    continue
                checked = group.array(name)
                ds = f.create_dataset(name, shape=array.shape, dtype=array.dtype, chunks=True, compression="gzip")
                for start in range(0, array.shape[0], images_per_block):
                    ds[start:start + images_per_block] = checked[start:start + images_per_block]
            group.check_generation()  # not one file from two generations of the group

    try:
        return write_whole(out, write)
    except OSError as err:
        raise storage_error(err, f"writing {out}") from None

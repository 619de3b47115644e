"""The cache's arrays: names, shapes, dtypes, chunks and shards (docs/cache-format.md).

Shards split the image axis into blocks of ``shard_images`` images. Every per-image array has
the same shard boundaries, and one writer owns a shard at a time: it writes the shard's rows of
every array and only then sets their ``done`` flags. ``done`` is per image (its chunks are the
shards), so an interrupted run keeps every image it encoded; Zarr writes each chunk or shard
file whole (a temporary file, then a rename), so a partly written shard is never seen. Chunks
are the unit of reading (at least about 1 MiB for the grid maps).

Groups written before per-image flags (no ``done_unit`` attribute) have one flag per shard;
:func:`images_done` reads both."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from .integrity import compressors, fill_value

STORAGE_DTYPE = "float16"  # zarr has no bfloat16; float16 halves float32 and keeps 3 digits
COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
TARGET_CHUNK_BYTES = 1 << 20
TARGET_SHARD_BYTES = 64 << 20
MAX_SHARD_IMAGES = 1024
DONE_PER_IMAGE = "image"  # the ``done_unit`` attribute of groups with a flag per image
WRITTEN_AT_CREATION = ("labels", "image_ids", "subset", "window", "scene")  # whole when the group is made


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    dims: tuple[str, ...]
    per_shard: bool  # written shard by shard during extraction (else at creation)


def default_shard_images(map_channels: int, grid: int, prompt_maps: dict[str, tuple[int, int]] | None = None) -> int:
    """Images per shard: about 64 MiB of grid maps (and prompt maps), at most 1024 images."""
    per_image = map_channels * grid * grid * 2 + sum(c * side * side * 2 for c, side in (prompt_maps or {}).values())
    chunk = grid_chunk_images(map_channels, grid)
    return max(chunk, min(MAX_SHARD_IMAGES, TARGET_SHARD_BYTES // per_image) // chunk * chunk)


def grid_chunk_images(map_channels: int, grid: int) -> int:
    """Images per chunk of the grid array: about 1 MiB, at least one image."""
    return max(1, TARGET_CHUNK_BYTES // (map_channels * grid * grid * 2))


def plan_arrays(
    num_images: int, pooled_dims: dict[str, int], map_channels: int, grid: int, shard_images: int,
    mask_size: int | None = None, subsets: bool = False, data_share: bool = False, chips: bool = False,
    prompt_maps: dict[str, tuple[int, int]] | None = None,
) -> dict[str, ArraySpec]:
    """Every array of one cache group; a segmentation dataset adds ``mask`` (its training targets
    at ``mask_size``) and, with a fixed split, ``subset``; rasters whose pixels may hold no data
    add ``data_share``; chips of scenes add their ``window`` and ``scene``; ``prompt_maps`` (name
    -> (channels, side)) the maps an encoder's own mask decoder reads besides the whole map (SAM 2's
    ``high_res_s4``, ``high_res_s8``), each (N, channels, side, side) float16."""
    n, s = num_images, shard_images
    chunk = min(grid_chunk_images(map_channels, grid), s)
    while s % chunk:  # shards must hold whole chunks
        chunk -= 1
    whole = max(1, min(n, 1 << 16))
    specs = {
        "labels": ArraySpec((n,), "int32", (whole,), None, ("image",), False),
        "image_ids": ArraySpec((n,), "str", (whole,), None, ("image",), False),
        "ok": ArraySpec((n,), "bool", (s,), None, ("image",), True),
        "error": ArraySpec((n,), "str", (s,), None, ("image",), True),
        "orig_hw": ArraySpec((n, 2), "int32", (s, 2), None, ("image", "hw"), True),
        "valid_hw": ArraySpec((n, 2), "int32", (s, 2), None, ("image", "hw"), True),
    }
    for name, dim in pooled_dims.items():
        specs[name] = ArraySpec((n, dim), STORAGE_DTYPE, (s, dim), None, ("image", "channel"), True)
    g = (n, map_channels, grid, grid)
    specs["grid"] = ArraySpec(g, STORAGE_DTYPE, (chunk, map_channels, grid, grid), (s, map_channels, grid, grid),
                              ("image", "channel", "y", "x"), True)
    for name, (channels, side) in (prompt_maps or {}).items():
        per = min(grid_chunk_images(channels, side), s)
        while s % per:
            per -= 1
        specs[name] = ArraySpec((n, channels, side, side), STORAGE_DTYPE, (per, channels, side, side),
                                (s, channels, side, side), ("image", "channel", "y", "x"), True)
    if mask_size:
        specs["mask"] = ArraySpec((n, mask_size, mask_size), "uint8", (chunk, mask_size, mask_size), None,
                                  ("image", "y", "x"), True)
    if subsets:
        specs["subset"] = ArraySpec((n,), "str", (whole,), None, ("image",), False)
    if data_share:
        specs["data_share"] = ArraySpec((n, grid, grid), "uint8", (s, grid, grid), None, ("image", "y", "x"), True)
    if chips:
        specs["window"] = ArraySpec((n, 4), "int32", (whole, 4), None, ("image", "col_row_width_height"), False)
        specs["scene"] = ArraySpec((n,), "str", (whole,), None, ("image",), False)
    return specs


def create_arrays(group: zarr.Group, specs: dict[str, ArraySpec], shard_images: int) -> None:
    for name, spec in specs.items():
        text = spec.dtype == "str"
        group.create_array(
            name, shape=spec.shape, dtype=str if text else spec.dtype, chunks=spec.chunks,
            shards=spec.shards, dimension_names=spec.dims, compressors=compressors(COMPRESSOR, text),
            fill_value=fill_value(spec.dtype),
        )
    # A flag per image, one chunk per shard: a shard's writer never rewrites another shard's flags.
    n = specs["labels"].shape[0]
    group.create_array("done", shape=(n,), dtype="bool", chunks=(shard_images,), fill_value=False,
                       dimension_names=("image",), compressors=compressors(COMPRESSOR, False))


def images_done(done: np.ndarray, attrs: dict) -> np.ndarray:
    """(N,) bool: which images are stored, from the ``done`` flags of either layout."""
    if attrs.get("done_unit") == DONE_PER_IMAGE:
        return np.asarray(done, bool)
    return np.repeat(np.asarray(done, bool), attrs["shard_images"])[: attrs["num_images"]]


def shard_slice(shard: int, shard_images: int, num_images: int) -> slice:
    return slice(shard * shard_images, min(num_images, (shard + 1) * shard_images))


def empty_shard_buffers(specs: dict[str, ArraySpec], rows: int) -> dict[str, np.ndarray]:
    return {
        name: np.full((rows,) + spec.shape[1:], "", dtype=object) if spec.dtype == "str"
        else np.zeros((rows,) + spec.shape[1:], dtype=spec.dtype)
        for name, spec in specs.items() if spec.per_shard
    }

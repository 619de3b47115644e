"""A complete cache group of generated embeddings, written without any encoder: for tests and
benchmarks of everything downstream of extraction (heads, sweeps, reports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from .integrity import writable
from .store import open_group_for_writing


def write_embedding_cache(cache_dir: str | Path, *, classes: int = 5, per_class: int = 40, dim: int = 16, grid: int = 4,
                          noise: float = 0.5, seed: int = 0, dataset: str = "eurosat", name: str = "fake-enc@64",
                          separable: bool = True) -> zarr.Group:
    """A complete cache group of generated embeddings (no encoder): class-dependent means plus
    noise in the pooled vectors and a class-dependent spatial pattern in the grid maps. With
    ``separable=False`` the embeddings carry no information about the labels."""
    rng = np.random.default_rng(seed)
    n = classes * per_class
    labels = np.repeat(np.arange(classes), per_class)
    info = labels if separable else rng.permutation(labels)
    centres = rng.normal(0, 1, (classes, dim))
    patterns = rng.normal(0, 1, (classes, dim, grid, grid))
    class_names = [f"class{c}" for c in range(classes)]
    signature = {"encoder": {"encoder": "fake", "img_size": 64}, "grid": grid, "dataset": dataset, "num_images": n}
    group = open_group_for_writing(
        cache_dir, dataset, name, signature, class_names=class_names,
        image_ids=[f"{class_names[c]}/{i}.jpg" for i, c in enumerate(labels)], labels=labels,
        pooled_dims={"neck": dim, "trunk": dim}, map_channels=dim, grid=grid, shard_images=64,
    )
    writable(group["neck"])[:] = (centres[info] + noise * rng.normal(0, 1, (n, dim))).astype("float16")
    writable(group["trunk"])[:] = (0.5 * centres[info] + noise * rng.normal(0, 1, (n, dim))).astype("float16")
    writable(group["grid"])[:] = (patterns[info] + 2 * noise * rng.normal(0, 1, (n, dim, grid, grid))).astype("float16")
    writable(group["ok"])[:] = True
    writable(group["error"])[:] = np.full(n, "", dtype=object)
    writable(group["orig_hw"])[:] = np.full((n, 2), 64, np.int32)
    writable(group["valid_hw"])[:] = np.full((n, 2), 64, np.int32)
    writable(group["done"])[:] = True
    return group


def synthetic_signature(signature: dict) -> bool:
    """Whether a cache group of this signature holds numbers of no real model: generated
    embeddings (:func:`write_embedding_cache`, encoder ``fake``) or a SAM checkpoint of no
    published architecture (``custom``: samembed's tiny random-weight checkpoints). The report and
    the prompt overlays mark their figures as synthetic data."""
    encoder = signature.get("encoder", {})
    return encoder.get("encoder") == "fake" or encoder.get("variant") == "custom"

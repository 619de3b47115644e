"""Shared fixtures: generated datasets and tiny SAM-format checkpoints with random weights.
Nothing here downloads anything."""

from __future__ import annotations

import pytest
import torch

from samembed.datasets import make_synthetic_dataset
from samembed.encoders import write_tiny_checkpoint


@pytest.fixture(autouse=True)
def _isolated_user_cache(tmp_path, monkeypatch):
    """Keep checkpoint downloads and hash memos inside the test's folder."""
    monkeypatch.setenv("SAMEMBED_HOME", str(tmp_path / "samembed-home"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny SAM (width 32, 2 blocks, the last global; native input 1024), full official format."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_sam.pth")


@pytest.fixture(scope="session")
def eurosat_dir(tmp_path_factory):
    """A synthetic EuroSAT in the ``2750/<Class>/`` layout, 3 images per class (30 images)."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("eurosat"), layout="2750", images_per_class=3)


@pytest.fixture()
def folder_dir(tmp_path):
    """A 3-class folder dataset of non-square images of varied sizes."""
    return make_synthetic_dataset(
        tmp_path / "folder", layout="folder", images_per_class=4, size=(48, 80), classes=["a", "b", "c"],
        vary_size=True, suffix=".png",
    )


def write_embedding_cache(cache_dir, *, classes: int = 5, per_class: int = 40, dim: int = 16, grid: int = 4,
                          noise: float = 0.5, seed: int = 0, dataset: str = "eurosat", name: str = "fake-enc@64",
                          separable: bool = True):
    """A complete cache group of generated embeddings (no encoder): class-dependent means plus
    noise in the pooled vectors and a class-dependent spatial pattern in the grid maps. With
    ``separable=False`` the embeddings carry no information about the labels."""
    import numpy as np

    from samembed.cache.store import open_group_for_writing

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
    group["neck"][:] = (centres[info] + noise * rng.normal(0, 1, (n, dim))).astype("float16")
    group["trunk"][:] = (0.5 * centres[info] + noise * rng.normal(0, 1, (n, dim))).astype("float16")
    group["grid"][:] = (patterns[info] + 2 * noise * rng.normal(0, 1, (n, dim, grid, grid))).astype("float16")
    group["ok"][:] = True
    group["done"][:] = True
    return group


@pytest.fixture()
def embedding_cache(tmp_path):
    """Folder of a complete, separable generated cache for dataset 'eurosat' (5 classes x 40)."""
    write_embedding_cache(tmp_path / "cache")
    return tmp_path / "cache"

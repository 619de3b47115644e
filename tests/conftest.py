"""Shared fixtures: generated datasets and tiny SAM-format checkpoints with random weights.
Nothing here downloads anything."""

from __future__ import annotations

import pytest
import torch

from samembed.datasets import make_synthetic_dataset
from samembed.cache.synthetic import write_embedding_cache  # noqa: F401  (tests import it from here)
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


@pytest.fixture()
def embedding_cache(tmp_path):
    """Folder of a complete, separable generated cache for dataset 'eurosat' (5 classes x 40)."""
    write_embedding_cache(tmp_path / "cache")
    return tmp_path / "cache"

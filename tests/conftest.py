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


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3-compatible server on loopback (a free port), as s3fs's and zarr's own
    test suites start it, for the whole session; its endpoint URL."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3_endpoint(s3_server, monkeypatch):
    """The loopback S3 server, with the AWS variables pointing every client (and subprocesses) at
    it for this test only: left set, they would change other tests (rasterio opens a boto session
    for every file when it sees AWS credentials)."""
    for name, value in {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return s3_server


@pytest.fixture()
def s3_bucket(s3_endpoint):
    """A new, empty bucket on the loopback S3 server; its name."""
    import uuid

    import boto3

    name = f"samembed-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name

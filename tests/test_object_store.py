"""Caches on object storage (docs/distributed.md), against moto's S3-compatible server on loopback:
every command reads and writes them as it does a local folder, heads stream chunks from them and
give the same records, leases keep writers apart, and access problems are one line each."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import samembed
import samembed.extraction.encode as encode
from samembed import extract, open_cache
from samembed.cache.lease import LEASE_SECONDS
from samembed.cli import app
from samembed.errors import CacheError, SamembedWarning
from samembed.experiments.features import GridSource

FAST = dict(img_size=128, workers=0, batch_size=4, shard_images=8, progress=False)
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def run(url, eurosat_dir, tiny_checkpoint, **kwargs):
    return extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=url, **{**FAST, **kwargs})


@pytest.fixture()
def s3_cache(s3_bucket, eurosat_dir, tiny_checkpoint):
    """A complete cache of the synthetic EuroSAT on the S3 server; its URL."""
    url = f"s3://{s3_bucket}/cache"
    run(url, eurosat_dir, tiny_checkpoint)
    return url


def lease_key(bucket: str) -> dict:
    return {"Bucket": bucket, "Key": "cache/.eurosat.zarr.lease"}


def test_every_command_works_on_an_s3_cache_as_on_a_local_one(s3_cache, s3_bucket, eurosat_dir, tiny_checkpoint,
                                                              tmp_path):
    local = tmp_path / "local"
    run(local, eurosat_dir, tiny_checkpoint)
    remote, here = open_cache(s3_cache, "eurosat"), open_cache(local, "eurosat")
    assert remote.complete and remote.where == f"{s3_cache}/eurosat.zarr/{here.name}"
    for name in here.arrays:
        assert np.array_equal(remote.read(name), here.read(name)), name

    again = invoke("extract", "eurosat", "--data-dir", eurosat_dir, "--checkpoint", tiny_checkpoint, "--img-size", 128,
                   "--workers", 0, "--cache-dir", s3_cache, "-q")
    assert again.exit_code == 0 and "already complete (30 images)" in again.output
    info = invoke("info", "--cache-dir", s3_cache)
    assert info.exit_code == 0 and "[complete]" in info.output and "30 images, 10 classes" in info.output
    assert "stored:" in info.output and remote.nbytes_stored() > 0
    out = tmp_path / "e.h5"
    exported = invoke("export", "eurosat", "--out", out, "--cache-dir", s3_cache)
    assert exported.exit_code == 0 and out.is_file()

    common = dict(heads=["linear", "knn", "logreg", "sam-conv"], splits=[0.5], seeds=2, epochs=2, device="cpu",
                  progress=False)
    from_s3 = samembed.sweep("eurosat", cache_dir=s3_cache, runs_dir=tmp_path / "runs-s3", **common)
    from_disk = samembed.sweep("eurosat", cache_dir=local, runs_dir=tmp_path / "runs-local", **common)
    assert len(from_s3) == 8
    for a, b in zip(from_s3, from_disk):
        assert a["run_id"] == b["run_id"] and a["metrics"] == b["metrics"] and a["split"] == b["split"]
        assert a["cache"]["store"] == f"{s3_cache}/eurosat.zarr"
    trained = invoke("train-head", "--head", "mlp", "--split", "0.5", "--epochs", 2, "--device", "cpu",
                     "--cache-dir", s3_cache, "--runs-dir", tmp_path / "runs-s3")
    assert trained.exit_code == 0, trained.output
    reported = invoke("report", "--runs-dir", tmp_path / "runs-s3")
    assert reported.exit_code == 0, reported.output
    summary = pd.read_csv(tmp_path / "runs-s3" / "report" / "summary.csv")
    assert set(summary["head"]) == {"linear", "knn", "logreg", "sam-conv", "mlp"}


def test_heads_stream_grid_chunks_from_object_storage_with_bounded_memory(s3_cache):
    checked = open_cache(s3_cache, "eurosat").array("grid")
    array = checked.array
    streamed = GridSource(checked, budget=0, block_bytes=1)
    assert not streamed.in_memory and streamed.data is None and streamed.block_chunks == 1
    full, reads = array[:], []
    real = array.get_orthogonal_selection

    def counted(selection, **kwargs):
        reads.append(len(selection[0]))
        return real(selection, **kwargs)

    array.get_orthogonal_selection = counted
    indices = np.arange(1, 30, 2)
    seen = list(streamed.batches(indices, 4, np.random.default_rng(0)))
    assert sorted(np.concatenate([i for i, _ in seen]).tolist()) == indices.tolist()
    assert all(np.array_equal(x, full[i]) for i, x in seen)
    assert max(reads) <= array.chunks[0]  # never more than a block of chunks in memory


def _write_lease(bucket: str, **fields) -> None:
    import boto3

    now = datetime.now(timezone.utc)
    holder = {"owner": "someone-else", "host": "node-7", "pid": 4242, "note": "one process",
              "started": (now - timedelta(hours=1)).isoformat(timespec="seconds"),
              "expires": (now + timedelta(seconds=LEASE_SECONDS)).isoformat(timespec="seconds"), **fields}
    boto3.client("s3").put_object(Body=json.dumps(holder).encode(), **lease_key(bucket))


def test_a_live_lease_refuses_a_writer_in_one_line_and_nothing_is_written(s3_bucket, eurosat_dir, tiny_checkpoint):
    url = f"s3://{s3_bucket}/cache"
    _write_lease(s3_bucket)
    with pytest.raises(CacheError, match=r"another samembed extraction is writing to .*host node-7, pid 4242.*lease "
                                         r"runs until .*wait for it to finish") as refused:
        run(url, eurosat_dir, tiny_checkpoint)
    assert "\n" not in str(refused.value)
    assert samembed.list_groups(url) == []


def test_an_expired_lease_or_one_whose_process_is_gone_is_taken_over(s3_bucket, eurosat_dir, tiny_checkpoint):
    import boto3

    url = f"s3://{s3_bucket}/cache"
    _write_lease(s3_bucket, expires=(datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat(timespec="seconds"))
    with pytest.warns(SamembedWarning, match="took over the lease .*host node-7, pid 4242.*expired"):
        result = run(url, eurosat_dir, tiny_checkpoint, shard_images=4)
    assert result.encoded == 30 and open_cache(url, "eurosat").complete
    client = boto3.client("s3")
    assert client.list_objects_v2(Bucket=s3_bucket, Prefix="cache/.eurosat")["KeyCount"] == 0  # given back

    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a process of this host that has ended
    gone.wait()
    _write_lease(s3_bucket, host=socket.gethostname(), pid=gone.pid, process="not-this-process")
    with pytest.warns(SamembedWarning, match="its process is gone"):
        again = run(url, eurosat_dir, tiny_checkpoint)
    assert again.encoded == 0 and client.list_objects_v2(Bucket=s3_bucket, Prefix="cache/.eurosat")["KeyCount"] == 0


def test_a_run_that_loses_its_lease_stops_writing(s3_bucket, eurosat_dir, tiny_checkpoint, monkeypatch):
    url = f"s3://{s3_bucket}/cache"
    real, calls = encode._launch, []

    def taken_over(*args, **kwargs):  # another run takes the lease while this one works
        calls.append(1)
        if len(calls) == 3:
            _write_lease(s3_bucket)
        return real(*args, **kwargs)

    monkeypatch.setattr(encode, "_launch", taken_over)
    with pytest.raises(CacheError, match="stopped writing to .*lease is held by host node-7"):
        run(url, eurosat_dir, tiny_checkpoint, shard_images=4)
    stored, total = open_cache(url, "eurosat").progress
    assert stored < total


def test_wrong_credentials_and_a_missing_bucket_are_one_line_each(s3_endpoint, s3_bucket, monkeypatch):
    import requests
    import s3fs

    missing = invoke("info", "--cache-dir", "s3://no-such-bucket-here/cache")
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert missing.output.strip().splitlines() == [
        "error: the bucket 'no-such-bucket-here' of --cache-dir s3://no-such-bucket-here/cache does not exist; "
        "create it, or pass a bucket that exists"]

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    s3fs.S3FileSystem.clear_instance_cache()  # credentials are read when a file system is made
    requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"0")  # the server checks credentials from now on
    try:
        for args in (["info"], ["sweep", "--heads", "knn"], ["export", "eurosat"]):
            result = invoke(*args, "--cache-dir", f"s3://{s3_bucket}/cache")
            lines = result.output.strip().splitlines()
            assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
            assert lines[0].startswith(f"error: s3://{s3_bucket}/cache refused the credentials (")
            assert "AWS_ACCESS_KEY_ID" in lines[0]
    finally:
        requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"inf")
        s3fs.S3FileSystem.clear_instance_cache()


def test_urls_are_told_from_folders():
    from pathlib import Path

    from samembed.cache.location import LocalCache, RemoteCache, cache_location

    assert isinstance(cache_location("cache"), LocalCache) and isinstance(cache_location(Path("c")), LocalCache)
    assert cache_location("file:///tmp/c").path == Path("/tmp/c")
    assert str(cache_location("s3://bucket/prefix/")) == "s3://bucket/prefix"
    assert str(cache_location(Path("s3://bucket/prefix"))) == "s3://bucket/prefix"  # a Path drops a slash
    assert isinstance(cache_location("gs://b/p"), RemoteCache)
    with pytest.raises(samembed.SamembedError, match="not a folder or a URL|needs a package"):
        cache_location("nosuchprotocol://b/p").store_names()

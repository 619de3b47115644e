"""Distributed extraction (docs/distributed.md): torchrun with gloo on the CPU writes the cache one
process writes, keeps other writers out while it runs, and resumes after a killed rank with
another number of processes (one); shards are shared out disjointly and deterministically."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from samembed import extract, open_cache
from samembed.errors import CacheError, UsageError
from samembed.extraction.distributed import Ranks, assign_shards, rank_device, ranks_from_environment

ROOT = Path(__file__).resolve().parents[1]
ENTRY = Path(__file__).resolve().parent / "torchrun_entry.py"
OPTIONS = dict(img_size=128, workers=0, batch_size=4, shard_images=4, progress=False)  # 30 images: 8 shards

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")


# ------------------------------------------------------------------------------ shares of shards


def test_shards_are_shared_out_disjointly_deterministically_and_balanced_by_images():
    fresh = {s: 4 for s in range(7)} | {7: 2}
    assert assign_shards(fresh, 2) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert assign_shards(fresh, 3) == [[0, 3, 6], [1, 4, 7], [2, 5]]
    resumed = {1: 1, 3: 4, 5: 4, 6: 2, 7: 2}  # partly stored shards after an interruption
    shares = assign_shards(resumed, 2)
    assert shares == assign_shards(dict(reversed(list(resumed.items()))), 2)  # order of the input does not matter
    assert sorted(s for share in shares for s in share) == sorted(resumed)
    loads = [sum(resumed[s] for s in share) for share in shares]
    assert max(loads) - min(loads) <= max(resumed.values())
    assert assign_shards({0: 4}, 3) == [[0], [], []]


def test_ranks_come_from_torchruns_environment():
    assert ranks_from_environment({}) is None
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert ranks_from_environment(env) == Ranks(3, 4, 1, 2)
    with pytest.raises(UsageError, match="torchrun"):
        ranks_from_environment({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(UsageError, match="whole numbers"):
        ranks_from_environment({"RANK": "a", "WORLD_SIZE": "4"})
    if not torch.cuda.is_available():
        assert rank_device("auto", Ranks(1, 2, 1, 2)) == "cpu"
        with pytest.raises(UsageError, match="no CUDA device"):
            rank_device("cuda", Ranks(1, 2, 1, 2))
    assert rank_device("cpu", Ranks(1, 2, 1, 2)) == "cpu"


# ------------------------------------------------------------------------------ torchrun


@pytest.fixture(scope="module")
def reference(tmp_path_factory, eurosat_dir, tiny_checkpoint):
    """The cache one process writes (one thread, as torchrun's processes run)."""
    cache = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=cache, **OPTIONS)
    finally:
        torch.set_num_threads(threads)
    return open_cache(cache, "eurosat")


def start(processes: int, cache, eurosat_dir, tiny_checkpoint, **hooks) -> subprocess.Popen:
    """``torchrun --standalone --nproc-per-node N`` of ``samembed extract`` (through the test hooks)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEST_SHARD_IMAGES": "4",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **hooks}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               str(ENTRY), "extract", "eurosat", "--data-dir", str(eurosat_dir), "--checkpoint", str(tiny_checkpoint),
               "--img-size", "128", "--batch-size", "4", "--workers", "0", "--device", "cpu", "--cache-dir", str(cache),
               "-q"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def wait_until_ready(pause: Path, ranks: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all((pause / f"ready-{r}").exists() for r in range(ranks)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("torchrun stopped before its ranks were ready:\n" + "\n".join(process.communicate()))
        time.sleep(0.1)


def assert_same_cache(cache, reference) -> None:
    group = open_cache(cache, "eurosat")
    assert group.complete and group.name == reference.name
    assert sorted(group.arrays) == sorted(reference.arrays)
    for name in group.arrays:  # shard for shard, bit for bit
        assert np.array_equal(group.read(name), reference.read(name)), name


def test_two_processes_write_the_cache_one_process_writes_and_keep_other_writers_out(
        tmp_path, eurosat_dir, tiny_checkpoint, reference):
    cache, pause = tmp_path / "cache", tmp_path / "pause"
    pause.mkdir()
    process = start(2, cache, eurosat_dir, tiny_checkpoint, TEST_PAUSE_DIR=str(pause))
    wait_until_ready(pause, 2, process)
    with pytest.raises(CacheError, match=r"another samembed extraction is writing to .*a distributed run of 2 "
                                         r"processes.*wait for it to finish") as refused:
        extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=cache, **OPTIONS)
    assert "\n" not in str(refused.value)
    (pause / "go").touch()
    code, out, err = finish(process)
    assert code == 0, err
    assert "encoded 30 images" in out and "by 2 processes" in out and "rank 1 on" in out
    assert_same_cache(cache, reference)
    logs = open_cache(cache, "eurosat").extraction_runs
    assert sorted(log["rank"] for log in logs) == [0, 1] and all(log["world_size"] == 2 for log in logs)
    assert sorted(s for log in logs for s in log["shards"]) == list(range(8))  # disjoint, and all of them
    assert sum(log["encoded"] for log in logs) == 30


def test_a_killed_rank_on_object_storage_then_one_process_finishes_the_same_cache(
        tmp_path, s3_bucket, eurosat_dir, tiny_checkpoint, reference):
    import boto3

    url, pause = f"s3://{s3_bucket}/cache", tmp_path / "pause"
    pause.mkdir()
    process = start(2, url, eurosat_dir, tiny_checkpoint, TEST_PAUSE_DIR=str(pause), TEST_KILL="1:3",
                    TEST_SLOW_RANK="0")
    wait_until_ready(pause, 2, process)
    with pytest.raises(CacheError, match=rf"writing to {url}/eurosat.zarr .*a distributed run of 2 processes.*lease"):
        extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=url, **OPTIONS)
    (pause / "go").touch()
    code, out, err = finish(process)
    assert code != 0  # rank 1 was killed, torchrun stopped rank 0 (SIGTERM), which kept what it had encoded
    group = open_cache(url, "eurosat")
    stored, _ = group.progress
    assert 0 < stored < 30 and not group.complete
    assert [log.get("interrupted") for log in group.extraction_runs if log["rank"] == 0] == [True]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference
    try:  # another number of processes: one, without torchrun
        result = extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=url, **OPTIONS)
    finally:
        torch.set_num_threads(threads)
    assert result.encoded == 30 - stored  # only the missing images
    assert_same_cache(url, reference)
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="cache/.eurosat.zarr.lease")
    assert listed["KeyCount"] == 0  # the lease was given back

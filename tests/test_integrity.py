"""What is stored is what is read (issue 22): every chunk carries a checksum that is verified on
read, a chunk missing for a stored image is damage (never zeros), `samembed verify` reads a whole
cache, a group extracted again under a reader stops it before it records, and a flaky object
store is retried."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import samembed
from samembed.cache import open_cache
from samembed.cache.integrity import has_checksums
from samembed.cli import app
from samembed.errors import CacheError

runner = CliRunner()
SHARD = 8  # images per shard: the 30 images are in chunks 0-7, 8-15, 16-23, 24-29


@pytest.fixture(scope="module")
def intact(tmp_path_factory, eurosat_dir, tiny_checkpoint) -> Path:
    """A complete cache of the 30-image EuroSAT (shards of 8 images)."""
    cache = tmp_path_factory.mktemp("intact")
    samembed.extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=cache, img_size=64,
                     workers=0, progress=False, shard_images=SHARD)
    return cache


@pytest.fixture()
def cache(intact, tmp_path) -> Path:
    """A copy of the intact cache that a test may damage."""
    shutil.copytree(intact, tmp_path / "c")
    return tmp_path / "c"


def _group_dir(cache: Path) -> Path:
    return cache / "eurosat.zarr" / open_cache(cache, "eurosat").name


def _chunk_file(cache: Path, array: str, block: int) -> Path:
    """The file holding images ``block * SHARD`` ... (a chunk, or the grid's shard)."""
    folder = _group_dir(cache) / array / "c" / str(block)
    return folder if folder.is_file() else next(p for p in sorted(folder.rglob("*")) if p.is_file())


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _invoke(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_every_array_of_a_new_group_carries_checksums_and_info_says_so(intact):
    group = open_cache(intact, "eurosat")
    assert all(has_checksums(a) for a in group.arrays.values()) and group.checksums
    assert group.generation and len(group.generation) == 8
    assert "checksums: crc32c on every chunk" in _invoke("info", "--cache-dir", intact).output
    verified = _invoke("verify", "--cache-dir", intact)
    assert verified.exit_code == 0 and ": ok" in verified.output, verified.output


@pytest.mark.parametrize("array", ["neck", "trunk", "grid"])
@pytest.mark.parametrize("damage", ["deleted", "flipped"])
def test_a_damaged_chunk_stops_training_export_and_verify_in_one_line_naming_array_and_images(cache, tmp_path,
                                                                                               array, damage):
    path = _chunk_file(cache, array, 2)
    if damage == "deleted":
        path.unlink()
    else:
        _flip_byte(path)
    reason = "a chunk is missing" if damage == "deleted" else "a chunk fails its checksum"
    if array == "grid":  # pooled heads never read the grid: a grid head does
        trained = _invoke("train-head", "--head", "sam-conv", "--split", "0.5", "--epochs", 1, "--device", "cpu",
                          "--cache-dir", cache, "--runs-dir", tmp_path / "runs")
    else:
        trained = _invoke("train-head", "--head", "knn", "--split", "0.5", "--feature", array,
                          "--cache-dir", cache, "--runs-dir", tmp_path / "runs")
    exported = _invoke("export", "--cache-dir", cache, "--out", tmp_path / "out.h5")
    verified = _invoke("verify", "--cache-dir", cache)
    for result in (trained, exported):
        assert result.exit_code == 1, result.output
        assert f"the array '{array}' of" in result.output and f"is damaged at images 16-23 ({reason})" in result.output
        lines = [line for line in result.output.strip().splitlines() if not line.startswith("warning:")]
        assert "Traceback" not in result.output and len(lines) == 1, result.output
    assert not (tmp_path / "out.h5").exists()  # nothing half-written
    assert not (tmp_path / "runs" / "runs.jsonl").exists() or not (tmp_path / "runs" / "runs.jsonl").read_text()
    assert verified.exit_code == 1
    assert f"damaged: '{array}' images 16-23 ({reason})" in verified.output, verified.output
    assert "1 of 1 cache groups is damaged" in verified.output


def test_a_missing_chunk_of_an_array_that_is_not_float_is_damage_not_its_fill_value(cache, tmp_path):
    _chunk_file(cache, "ok", 1).unlink()  # read as False, the images would silently leave training
    trained = _invoke("train-head", "--head", "knn", "--split", "0.5", "--cache-dir", cache, "--runs-dir", tmp_path / "r")
    assert trained.exit_code == 1 and "the array 'ok' of" in trained.output
    assert "damaged at images 8-15 (a chunk is missing)" in trained.output


def test_images_not_stored_yet_read_as_the_fill_value_not_as_damage(cache):
    raw = zarr.open_group(_group_dir(cache), mode="r+")
    raw["done"][20:] = False  # as if the extraction had stopped after 20 images
    shutil.rmtree(_group_dir(cache) / "neck" / "c" / "3")  # the chunk of images 24-29: not stored yet
    neck = open_cache(cache, "eurosat").array("neck")
    assert np.isfinite(neck[:20]).all() and np.isnan(neck[24:]).all()  # the fill value, no error
    assert open_cache(cache, "eurosat").progress == (20, 30)


def test_old_groups_without_checksums_are_unverifiable_and_still_train(cache, intact, tmp_path):
    group = zarr.open_group(_group_dir(cache), mode="r+")
    for name in list(group.array_keys()):  # rewrite each array as samembed did before: no checksum, fill 0
        array = group[name]
        data, dims, chunks, shards = array[:], array.metadata.dimension_names, array.chunks, array.shards
        del group[name]
        text = data.dtype.kind in "OTU"
        group.create_array(name, shape=data.shape, dtype=str if text else data.dtype, chunks=chunks, shards=shards,
                           dimension_names=dims, fill_value="" if text else 0,
                           compressors=None if text else zarr.codecs.BloscCodec(cname="zstd", clevel=3))
        group[name][:] = data
    del group.attrs["generation"]
    assert not open_cache(cache, "eurosat").checksums
    assert "checksums: none" in _invoke("info", "--cache-dir", cache).output
    verified = _invoke("verify", "--cache-dir", cache)
    assert verified.exit_code == 0 and "unverifiable (written before checksums" in verified.output, verified.output
    old = samembed.train_head("eurosat", head="knn", split=0.5, cache_dir=cache, runs_dir=tmp_path / "r")
    new = samembed.train_head("eurosat", head="knn", split=0.5, cache_dir=intact, runs_dir=tmp_path / "r2")
    assert old["run_id"] == new["run_id"] and old["metrics"]["accuracy"] == new["metrics"]["accuracy"]
    assert old["cache"]["generation"].startswith("created ")


def test_a_group_extracted_again_under_a_sweep_stops_it_before_it_records(cache, tmp_path, eurosat_dir,
                                                                         tiny_checkpoint, monkeypatch):
    """The sweep reads the old group; before its first record the group is rebuilt (--overwrite):
    nothing is recorded with numbers of either generation, and the sweep says so in one line."""
    from samembed.experiments import base

    old = open_cache(cache, "eurosat").generation
    real_fit = base.Experiment._fit
    rebuilt = threading.Event()

    def fit_then_rebuild(self, kind, plans, records, on_done):
        if not rebuilt.is_set():  # after the first run is trained, before it is recorded
            rebuilt.set()
            original = base.Experiment.record

            def record_after_overwrite(self, plan, kind, outcome):
                samembed.extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=cache,
                                 img_size=64, workers=0, progress=False, shard_images=SHARD, overwrite=True)
                return original(self, plan, kind, outcome)

            monkeypatch.setattr(base.Experiment, "record", record_after_overwrite)
        return real_fit(self, kind, plans, records, on_done)

    monkeypatch.setattr(base.Experiment, "_fit", fit_then_rebuild)
    swept = _invoke("sweep", "--heads", "knn,logreg", "--splits", "0.5", "--seeds", 2, "--cache-dir", cache,
                    "--runs-dir", tmp_path / "runs")
    new = open_cache(cache, "eurosat").generation
    assert swept.exit_code == 1 and new != old, swept.output
    assert "was extracted again while this command read it" in swept.output and "nothing more is recorded" in swept.output
    runs = tmp_path / "runs" / "runs.jsonl"
    recorded = runs.read_text().splitlines() if runs.exists() else []
    assert not any(new in line for line in recorded)  # never a record of the new generation's group


class _FlakyStore:
    """An array whose writes fail with botocore's EndpointConnectionError while ``failures[0] > 0``."""

    def __init__(self, array, failures: list[int]):
        self.array, self.failures = array, failures

    def __setitem__(self, key, value):
        from botocore.exceptions import EndpointConnectionError

        if self.failures[0] > 0:
            self.failures[0] -= 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        self.array[key] = value


@pytest.mark.parametrize("failures", [3, 10**9])
def test_an_object_store_that_stops_answering_is_retried_then_one_line_and_the_resume_is_whole(
        tmp_path, intact, eurosat_dir, tiny_checkpoint, monkeypatch, failures):
    from samembed.cache import retry, writer
    from samembed.errors import StorageError

    monkeypatch.setattr(retry, "FIRST_WAIT", 0.0)
    left, real = [failures], writer.writable
    monkeypatch.setattr(writer, "writable", lambda array: _FlakyStore(real(array), left))
    common = dict(data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, img_size=64, workers=0,
                  progress=False, shard_images=SHARD)
    if failures < retry.TRIES:  # a moment: retried, nothing lost
        samembed.extract("eurosat", **common)
        assert left == [0]
    else:
        with pytest.raises(StorageError, match=r"did not answer while writing .*EndpointConnectionError, 5 tries.*"
                                               r"images this run stored before are kept.*run the same command again"):
            samembed.extract("eurosat", **common)
        monkeypatch.setattr(writer, "writable", real)  # it answers again: the resume
        samembed.extract("eurosat", **common)
    resumed, whole = open_cache(tmp_path, "eurosat"), open_cache(intact, "eurosat")
    assert resumed.complete
    for name in ("neck", "trunk", "grid", "ok"):
        assert np.array_equal(resumed.read(name), whole.read(name), equal_nan=name != "ok")

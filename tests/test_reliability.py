"""Nothing silent, nothing lost: samembed under bad inputs, damaged files, full disks, interrupts
and two processes at once (issue 11). Each test here failed on the code before the fix it covers."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image
from typer.testing import CliRunner

import samembed.extraction.encode as extraction
from samembed import extract, open_cache, sweep, write_report
from samembed.cache.synthetic import write_embedding_cache
from samembed.cli import app
from samembed.datasets import load_dataset, make_synthetic_dataset, make_synthetic_roads, read_rgb
from samembed.datasets.masks import read_mask
from samembed.encoders import create_encoder
from samembed.errors import (CacheError, CorruptImageError, ImageFormatError, Interrupted, SamembedWarning,
                             SignatureMismatchError, StorageError, UsageError)
from samembed.experiments.records import RunsStore
from samembed.locks import LockBusy, file_lock

FAST = dict(img_size=128, workers=0, batch_size=4, progress=False)
ROOT = Path(__file__).resolve().parents[1]


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_raster(path: Path, bands: np.ndarray, driver: str = "GTiff") -> Path:
    """``bands`` (C, H, W) written as they are with rasterio."""
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    c, h, w = bands.shape
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver=driver, width=w, height=h, count=c, dtype=bands.dtype) as dst:
            dst.write(bands)
    return path


# ---------------------------------------------------------------------------------- pixels


RNG = np.random.default_rng(0)
NOT_EIGHT_BIT = {
    "gray16.png": (RNG.integers(0, 10_000, (1, 20, 30)).astype(np.uint16), "PNG", "uint16 with 1 band"),
    "gray16.tif": (RNG.integers(0, 10_000, (1, 20, 30)).astype(np.uint16), "GTiff", "uint16 with 1 band"),
    "rgb16.png": (RNG.integers(0, 10_000, (3, 20, 30)).astype(np.uint16), "PNG", "uint16 with 3 bands"),
    "rgb16.tif": (RNG.integers(0, 10_000, (3, 20, 30)).astype(np.uint16), "GTiff", "uint16 with 3 bands"),
    "float.tif": (RNG.random((1, 20, 30)).astype(np.float32), "GTiff", "float32 with 1 band"),
    "four.tif": (RNG.integers(0, 200, (4, 20, 30)).astype(np.uint8), "GTiff", "uint8 with 4 bands"),
    "two.tif": (RNG.integers(0, 200, (2, 20, 30)).astype(np.uint8), "GTiff", "uint8 with 2 bands"),
}


@pytest.mark.parametrize("name", sorted(NOT_EIGHT_BIT))
def test_pixels_that_are_not_8_bit_rgb_are_refused_naming_dtype_range_and_the_option(tmp_path, name):
    """Before: PIL clipped 16-bit gray at 255, kept the high byte of 16-bit RGB, turned float to
    black and dropped a fourth (or second) band, all without a word."""
    bands, driver, what = NOT_EIGHT_BIT[name]
    path = write_raster(tmp_path / name, bands, driver)
    with pytest.raises(ImageFormatError) as err:
        read_rgb(path)
    message = str(err.value)
    low, high = bands.min(), bands.max()
    assert "\n" not in message and str(path) in message and what in message
    assert f"values {low:g}-{high:g}" in message and "--stretch" in message


def test_eight_bit_images_read_as_before(tmp_path):
    rgb = RNG.integers(0, 255, (20, 30, 3)).astype(np.uint8)
    for name, driver in (("rgb.tif", "GTiff"), ("rgb.png", "PNG")):
        assert np.array_equal(read_rgb(write_raster(tmp_path / name, np.moveaxis(rgb, -1, 0), driver)), rgb)
    opaque = np.concatenate([np.moveaxis(rgb, -1, 0), np.full((1, 20, 30), 255, np.uint8)])
    assert np.array_equal(read_rgb(write_raster(tmp_path / "opaque.tif", opaque)), rgb)  # a 4th band that is all 255
    gray = RNG.integers(0, 255, (1, 20, 30)).astype(np.uint8)
    assert np.array_equal(read_rgb(write_raster(tmp_path / "gray.tif", gray)), np.repeat(gray[0][..., None], 3, -1))


def test_extraction_stops_at_a_16_bit_image_even_with_skip_bad(tmp_path, tiny_checkpoint):
    data = make_synthetic_dataset(tmp_path / "data", layout="folder", images_per_class=3, size=32, classes=["a", "b"])
    write_raster(data / "b" / "b_9.tif", RNG.integers(0, 10_000, (3, 32, 32)).astype(np.uint16))
    for skip_bad in (False, True):
        with pytest.raises(ImageFormatError, match=r"b_9\.tif is uint16 with 3 bands"):
            extract("folder", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "cache",
                    skip_bad=skip_bad, **FAST)
    result = invoke("extract", "folder", "--data-dir", data, "--checkpoint", tiny_checkpoint, "--img-size", 128,
                    "--workers", 2, "--skip-bad", "--cache-dir", tmp_path / "cache", "-q")
    assert result.exit_code == 1 and "b_9.tif is uint16" in one_line(result)


# ----------------------------------------------------------------------------------- masks


def _masks_as(root: Path, low: int, high: int) -> None:
    for mask in (root / "masks").iterdir():
        values = np.asarray(Image.open(mask)) > 127
        Image.fromarray(np.where(values, high, low).astype(np.uint8)).save(mask)


def test_masks_stored_as_0_1_or_1_2_give_the_same_targets_as_0_255(tmp_path, tiny_checkpoint):
    """Before: a 0/1 mask was read as empty (foreground = above 127), Dice 0 under the 0/255 run id."""
    groups = {}
    for low, high in ((0, 255), (0, 1), (1, 2)):
        data = make_synthetic_roads(tmp_path / f"{low}{high}", layout="seg-folder", counts=(6, 0, 0), size=48)
        if (low, high) != (0, 255):
            _masks_as(data, low, high)
        index = load_dataset("seg-folder", data)
        assert index.mask_encoding.values == (low, high)
        assert read_mask(index.mask_path(0), index.mask_encoding).any()
        extract("seg-folder", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / f"c{low}{high}", **FAST)
        groups[(low, high)] = open_cache(tmp_path / f"c{low}{high}", "seg-folder")
    masks = {k: g.read("mask") for k, g in groups.items()}
    assert masks[(0, 255)].any() and all(np.array_equal(m, masks[(0, 255)]) for m in masks.values())
    fingerprints = {g.signature["dataset_fingerprint"] for g in groups.values()}
    assert len(fingerprints) == 3  # the mask encoding is part of the dataset's fingerprint


def test_masks_with_more_than_two_values_or_colours_are_refused(tmp_path):
    data = make_synthetic_roads(tmp_path / "d", layout="seg-folder", counts=(3, 0, 0), size=32)
    masks = sorted((data / "masks").iterdir())
    Image.fromarray(np.asarray(Image.open(masks[1])) // 2).save(masks[1])  # 0/127: a third value overall
    with pytest.raises(ImageFormatError, match=r"2\.png holds 0/127 where the masks before it hold 0/255") as err:
        load_dataset("seg-folder", data)
    assert "\n" not in str(err.value)
    soft = np.linspace(0, 255, 32 * 32).reshape(32, 32).astype(np.uint8)
    Image.fromarray(soft).save(masks[1])
    with pytest.raises(ImageFormatError, match="distinct values .*losslessly"):
        load_dataset("seg-folder", data)
    colour = np.zeros((32, 32, 3), np.uint8)
    colour[5:9, :, 0] = 255
    Image.fromarray(colour).save(masks[1])
    with pytest.raises(ImageFormatError, match="colour mask"):
        load_dataset("seg-folder", data)


# ------------------------------------------------------------------- two sweeps, one store


def test_two_concurrent_sweeps_record_each_run_once(tmp_path):
    """Before: both processes trained and appended the same runs (24 records for these 12 runs)."""
    write_embedding_cache(tmp_path / "cache", per_class=400, dim=64)  # slow enough for the two to overlap
    command = [sys.executable, "-m", "samembed", "sweep", "--heads", "knn,logreg,mlp", "--splits", "0.25,0.5",
               "--seeds", "2", "--epochs", "5", "--device", "cpu", "-q", "--cache-dir", str(tmp_path / "cache"),
               "--runs-dir", str(tmp_path / "runs")]
    procs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ids = [r["run_id"] for r in RunsStore(tmp_path / "runs").records()]
    assert len(ids) == len(set(ids)) == 12


def test_the_report_counts_a_duplicated_run_once_and_says_so(tmp_path):
    write_embedding_cache(tmp_path / "cache")
    sweep("eurosat", heads=["knn"], splits=[0.25], seeds=2, cache_dir=tmp_path / "cache", runs_dir=tmp_path / "runs",
          progress=False)
    lines = (tmp_path / "runs" / "runs.jsonl").read_text().splitlines()
    duplicate = json.loads(lines[0])
    duplicate["metrics"]["accuracy"] = 0.0  # a later copy must not move the mean
    with open(tmp_path / "runs" / "runs.jsonl", "a") as f:
        f.write(json.dumps(duplicate) + "\n")
    with pytest.warns(SamembedWarning, match="1 later record"):
        report = write_report(tmp_path / "runs")
    assert report.runs == 2 and report.summary["n_seeds"].tolist() == [2]
    first = json.loads(lines[0])["metrics"]["accuracy"], json.loads(lines[1])["metrics"]["accuracy"]
    assert report.summary["accuracy_mean"].iloc[0] == pytest.approx(np.mean(first))
    assert "duplicates dropped: 1" in (report.out / "report.md").read_text()


def test_a_garbage_line_in_the_runs_store_blocks_neither_report_nor_sweep(tmp_path):
    write_embedding_cache(tmp_path / "cache")
    common = ["--cache-dir", tmp_path / "cache", "--runs-dir", tmp_path / "runs", "--device", "cpu"]
    assert invoke("sweep", "--heads", "knn", "--splits", "0.25", "-q", *common).exit_code == 0
    with open(tmp_path / "runs" / "runs.jsonl", "ab") as f:
        f.write(b"\x00garbage\n")
    again = invoke("sweep", "--heads", "knn", "--splits", "0.25,0.5", "-q", *common)
    assert again.exit_code == 0 and "1 new runs recorded" in again.output
    assert "warning: " in again.output and "skipped 1 unreadable line(s)" in again.output and "line 2" in again.output
    report = invoke("report", "--runs-dir", tmp_path / "runs")
    assert report.exit_code == 0 and "2 runs in 2 configurations" in report.output


# ------------------------------------------------------------------------- small mistakes


@pytest.mark.parametrize("encoder, model", [("sam", None), ("vgg19", "random"), ("dinov2", "vits14-random")])
def test_an_input_size_of_zero_is_refused(tiny_checkpoint, encoder, model):
    """Before: --img-size 0 silently meant the native size (1024 for SAM)."""
    checkpoint = tiny_checkpoint if encoder == "sam" else None
    for size in (0, -16):
        with pytest.raises(UsageError, match=f"--img-size must be a positive multiple of .* not {size}"):
            create_encoder(encoder, model=model, checkpoint=checkpoint, img_size=size)


def test_an_empty_class_folder_is_named_in_one_warning_line(tmp_path, tiny_checkpoint):
    data = make_synthetic_dataset(tmp_path / "data", layout="folder", images_per_class=2, size=32, classes=["a", "b"])
    (data / "c_empty").mkdir()
    with pytest.warns(SamembedWarning, match=r"1 class folder\(s\) .* hold no images .*: c_empty"):
        index = load_dataset("folder", data)
    assert index.class_names == ["a", "b"] and index.info["empty_class_folders"] == ["c_empty"]
    result = invoke("extract", "folder", "--data-dir", data, "--checkpoint", tiny_checkpoint, "--img-size", 128,
                    "--workers", 0, "--cache-dir", tmp_path / "cache", "-q")
    assert result.exit_code == 0
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "c_empty" in warnings[0]


# ------------------------------------------------------------ errors that trapped the user


def test_removing_a_corrupt_image_that_stopped_the_first_batch_does_not_lock_the_cache(tmp_path, tiny_checkpoint):
    """Before: the dataset fingerprint changed, and the cache holding nothing was refused."""
    data = make_synthetic_dataset(tmp_path / "data", images_per_class=2)
    bad = data / "2750" / "AnnualCrop" / "AnnualCrop_1.jpg"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(CorruptImageError):
        extract("eurosat", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "cache", **FAST)
    assert open_cache(tmp_path / "cache", "eurosat").progress == (0, 20)
    bad.unlink()  # as the message advises
    result = extract("eurosat", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "cache", **FAST)
    assert result.encoded == 19 and open_cache(tmp_path / "cache", "eurosat").complete


def test_a_group_holding_images_names_the_command_that_starts_over(tmp_path, tiny_checkpoint, eurosat_dir):
    extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, grid=4, **FAST)
    with pytest.raises(SignatureMismatchError, match=r"holds 30 images made with grid=4, not 8; .*--overwrite"):
        extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, grid=8, **FAST)
    result = extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, grid=8,
                     overwrite=True, **FAST)
    assert result.encoded == 30 and open_cache(tmp_path, "eurosat").signature["grid"] == 8


@pytest.mark.parametrize("damaged", ["neck/zarr.json", "done/zarr.json", "zarr.json"])
def test_damaged_metadata_is_reported_naming_the_array_never_trusted(tmp_path, tiny_checkpoint, eurosat_dir, damaged):
    """Before: garbage in an array's zarr.json made extract report 'already complete' and info and
    train-head end in a JSON traceback."""
    extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, grid=4, **FAST)
    group = open_cache(tmp_path, "eurosat")
    (group.store / group.name / damaged).write_text('{"zarr_format": 3, "node_type": garbage')
    array = damaged.split("/")[0] if "/" in damaged else None
    with pytest.raises(CacheError, match="damaged") as err:
        extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, grid=4, **FAST)
    assert "--overwrite" in str(err.value) and (array is None or f"'{array}'" in str(err.value))
    for args in (["train-head", "--head", "knn", "--split", "0.5", "--cache-dir", tmp_path, "--runs-dir", tmp_path / "r"],
                 ["export", "eurosat", "--cache-dir", tmp_path, "--out", tmp_path / "x.h5"]):
        result = invoke(*args)
        assert result.exit_code == 1 and "damaged" in one_line(result)
    info = invoke("info", "--cache-dir", tmp_path)
    assert info.exit_code == 0 and "[damaged:" in info.output and "Traceback" not in info.output
    extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, grid=4, overwrite=True,
            **FAST)
    assert open_cache(tmp_path, "eurosat").complete


# ------------------------------------------------------------- tracebacks become one line


def test_a_file_name_that_is_not_utf8_is_one_line_and_leaves_no_group(tmp_path, tiny_checkpoint):
    data = make_synthetic_dataset(tmp_path / "data", layout="folder", images_per_class=2, size=32, classes=["a"])
    source = data / "a" / "a_1.jpg"
    os.rename(source, os.path.join(os.fsencode(data / "a"), b"caf\xe9.jpg"))
    result = invoke("extract", "folder", "--data-dir", data, "--checkpoint", tiny_checkpoint, "--img-size", 128,
                    "--cache-dir", tmp_path / "cache", "-q")
    assert result.exit_code == 1 and "not valid UTF-8" in one_line(result) and "rename" in result.output
    assert not (tmp_path / "cache" / "folder.zarr").exists()


def test_paths_of_the_wrong_kind_are_one_line(tmp_path, tiny_checkpoint, eurosat_dir):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    result = invoke("extract", "eurosat", "--data-dir", eurosat_dir, "--checkpoint", tiny_checkpoint, "--cache-dir", a_file)
    assert result.exit_code == 1 and "is a file, not a folder" in one_line(result)
    result = invoke("info", "--cache-dir", a_file)
    assert result.exit_code == 1 and "is a file, not a folder" in one_line(result)
    write_embedding_cache(tmp_path / "cache")
    sweep("eurosat", heads=["knn"], splits=[0.5], cache_dir=tmp_path / "cache", runs_dir=tmp_path / "runs", progress=False)
    result = invoke("report", "--runs-dir", tmp_path / "runs", "--out", a_file)
    assert result.exit_code == 1 and "--out" in one_line(result) and a_file.read_text() == "x"
    result = invoke("export", "eurosat", "--cache-dir", tmp_path / "cache", "--out", tmp_path)
    assert result.exit_code == 1 and "is a folder" in one_line(result)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_extraction_is_one_line_and_keeps_what_was_written(tmp_path, tiny_checkpoint, eurosat_dir,
                                                                              monkeypatch):
    import samembed.cache.writer as writer

    real = writer.ShardWriter._write
    calls = {"n": 0}

    def fills_up(self, shard):
        calls["n"] += 1
        if calls["n"] == 2:
            _disk_full()
        return real(self, shard)

    monkeypatch.setattr(writer.ShardWriter, "_write", fills_up)
    with pytest.raises(StorageError, match=r"writing the cache .* failed \(No space left on device\); the disk is full"):
        extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, shard_images=8, **FAST)
    assert open_cache(tmp_path, "eurosat").progress == (8, 30)  # the first shard is kept
    monkeypatch.setattr(writer.ShardWriter, "_write", real)
    assert extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, **FAST).encoded == 22


def test_a_full_disk_during_a_runs_store_append_is_one_line(tmp_path, monkeypatch):
    write_embedding_cache(tmp_path / "cache")
    monkeypatch.setattr(os, "fsync", _disk_full)
    result = invoke("train-head", "--head", "knn", "--split", "0.5", "--cache-dir", tmp_path / "cache",
                    "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 1 and "No space left on device" in one_line(result) and "runs.jsonl" in result.output


def test_two_exports_to_one_file_at_once_both_finish_and_leave_it_whole(tmp_path, monkeypatch):
    """Both writers hold their temporary file at the same moment (a barrier before the rename):
    with one shared temporary name they wrote into and renamed each other's file, and both failed."""
    import threading

    import h5py

    import samembed.atomic as atomic
    from samembed.cache.export import export_h5

    write_embedding_cache(tmp_path / "cache", per_class=4)
    group = open_cache(tmp_path / "cache", "eurosat")
    both_written = threading.Barrier(2, timeout=20)
    real_replace = os.replace

    def replace_when_both_are_written(src, dst):
        both_written.wait()
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_when_both_are_written)
    out, errors = tmp_path / "out.h5", []

    def export():
        try:
            export_h5(group, out)
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=export) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with h5py.File(out) as f:
        assert np.array_equal(f["neck"][:], group.read("neck"))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary_and_long_names_fit(tmp_path):
    from samembed.atomic import write_whole

    target = tmp_path / "kept.txt"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        write_whole(target, fail)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]
    long = tmp_path / ("n" * 250 + ".h5")  # 253 characters: its temporary name must fit in 255 too
    write_whole(long, lambda tmp: tmp.write_text("new"))
    assert long.read_text() == "new" and len(list(tmp_path.iterdir())) == 2


# ------------------------------------------------------------------------------ interrupts


def test_ctrl_c_in_a_dataset_smaller_than_a_shard_keeps_what_was_encoded(tmp_path, tiny_checkpoint, eurosat_dir,
                                                                         monkeypatch):
    """Before: with a 512-image shard, an interrupted 30-image run kept nothing."""
    real, calls = extraction._launch, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(extraction, "_launch", interrupted)
    with pytest.raises(Interrupted, match=r"12 of 30 images .* are stored \(12 by this run\); run the same command"):
        extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, **FAST)
    group = open_cache(tmp_path, "eurosat")
    assert group.attrs["shard_images"] > 30 and group.progress == (12, 30)
    monkeypatch.setattr(extraction, "_launch", real)
    assert extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, **FAST).encoded == 18
    reference = tmp_path / "reference"
    extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, cache_dir=reference, **FAST)
    for name in ("neck", "trunk", "grid", "ok", "valid_hw"):
        assert np.array_equal(open_cache(tmp_path, "eurosat").read(name), open_cache(reference, "eurosat").read(name))


def _start_extraction(tmp_path, tiny_checkpoint, workers: int) -> tuple[subprocess.Popen, Path, Path]:
    """A slow extraction (60 images at 1024, one per batch) in a child process."""
    data = make_synthetic_dataset(tmp_path / "data", layout="folder", images_per_class=30, size=32, classes=["a", "b"])
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "samembed", "extract", "folder", "--data-dir", str(data), "--checkpoint",
         str(tiny_checkpoint), "--img-size", "1024", "--batch-size", "1", "--workers", str(workers), "--device", "cpu",
         "--cache-dir", str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    return proc, cache, data


def _wait_for_progress(proc: subprocess.Popen, images: int, timeout: float = 90) -> str:
    """Read the child's progress bar until it shows ``images`` done; returns what it printed."""
    import fcntl as fc

    fd = proc.stderr.fileno()
    fc.fcntl(fd, fc.F_SETFL, fc.fcntl(fd, fc.F_GETFL) | os.O_NONBLOCK)
    seen, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        try:
            seen += os.read(fd, 1 << 16)
        except BlockingIOError:
            pass
        if any(f" {k}/60 ".encode() in seen for k in range(images, 60)):
            return seen.decode(errors="replace")
        assert proc.poll() is None, seen.decode(errors="replace")
        time.sleep(0.05)
    raise AssertionError(f"no progress: {seen.decode(errors='replace')}")


def test_sigterm_stops_like_ctrl_c_keeping_what_was_encoded(tmp_path, tiny_checkpoint):
    """Before: SIGTERM (what Slurm sends) ended the run with no message and kept nothing."""
    proc, cache, _ = _start_extraction(tmp_path, tiny_checkpoint, workers=1)
    _wait_for_progress(proc, 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    message = err.decode().strip().splitlines()[-1]
    assert proc.returncode == 130, err.decode()
    assert message.startswith("error: interrupted: ") and "run the same command again to resume" in message
    stored = int(message.split("interrupted: ")[1].split(" of ")[0])
    assert stored >= 3 and open_cache(cache, "folder").progress == (stored, 60)
    assert "Traceback" not in err.decode()


def test_a_killed_extraction_frees_its_lock_at_once_and_its_workers_die_quietly(tmp_path, tiny_checkpoint):
    """Before: an orphaned loader worker held the store's lock for seconds after the main process
    was killed, and printed a ConnectionResetError traceback."""
    proc, cache, _ = _start_extraction(tmp_path, tiny_checkpoint, workers=2)
    _wait_for_progress(proc, 2)
    proc.kill()
    proc.wait(timeout=10)
    with file_lock(cache / ".folder.zarr.lock", wait=False):  # LockBusy before the fix
        pass
    time.sleep(1.0)  # what an orphan would print, it prints by now
    rest = proc.stderr.read().decode(errors="replace")
    assert "Traceback" not in rest and "ConnectionResetError" not in rest


def test_lock_busy_is_raised_for_a_lock_held_elsewhere(tmp_path):
    import multiprocessing as mp

    ready, release = mp.get_context("fork").Event(), mp.get_context("fork").Event()

    def hold():
        with file_lock(tmp_path / "x.lock"):
            ready.set()
            release.wait(10)

    child = mp.get_context("fork").Process(target=hold)
    child.start()
    ready.wait(10)
    with pytest.raises(LockBusy):
        with file_lock(tmp_path / "x.lock", wait=False):
            pass
    release.set()
    child.join(10)


def test_the_writer_saves_unfinished_shards_every_few_seconds(tmp_path):
    """A killed process (SIGKILL, a lost machine) cannot flush anything: what the writer saved
    periodically is what it keeps. Before, only whole shards (512 images by default) were saved."""
    from samembed.cache.layout import plan_arrays
    from samembed.cache.store import open_group_for_writing, pending_images
    from samembed.cache.writer import ShardWriter

    group = open_group_for_writing(tmp_path, "d", "g@1", {"x": 1}, class_names=["a"], image_ids=[f"{i}" for i in range(20)],
                                   labels=np.zeros(20, int), pooled_dims={"neck": 4}, map_channels=4, grid=2,
                                   shard_images=16)
    specs = plan_arrays(20, {"neck": 4}, 4, 2, 16)
    writer = ShardWriter(group, specs, 16, np.arange(20), save_every=0.0)
    rows = {name: np.ones((3,) + spec.shape[1:], dtype=object if spec.dtype == "str" else spec.dtype)
            for name, spec in specs.items() if spec.per_shard}
    rows["error"] = np.array(["", "", ""], dtype=object)
    writer.submit(np.arange(3), rows)
    deadline = time.time() + 10
    while group["done"][:3].sum() < 3 and time.time() < deadline:  # the writer thread saves them
        time.sleep(0.02)
    # the process "dies" here: close() is never called
    assert pending_images(group).tolist() == list(range(3, 20))
    assert (group["neck"][:3] == 1).all() and np.isnan(group["neck"][3:]).all()  # unwritten: the NaN fill


class _SlowImages(torch.utils.data.Dataset):
    """Item 0 at once, every later item after a long sleep: a worker busy when the loop stops."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i:
            time.sleep(60)
        return i


def test_loader_workers_busy_at_shutdown_are_stopped_for_good():
    # Workers ignore SIGTERM (the main process owns interrupts), which is torch's last resort in
    # its own shutdown: a busy worker outlived it and Python's exit then waited for it forever
    # (a hang seen once in nine runs of the SIGTERM test).
    from samembed.extraction.loader import _init_worker, stop_workers

    loader = torch.utils.data.DataLoader(_SlowImages(), batch_size=1, num_workers=1, worker_init_fn=_init_worker)
    batches = iter(loader)
    assert next(batches).item() == 0
    workers = list(batches._workers)
    started = time.perf_counter()
    stop_workers(batches)
    assert time.perf_counter() - started < 30
    assert not any(w.is_alive() for w in workers)

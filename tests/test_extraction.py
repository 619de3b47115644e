"""Extraction into the cache: contents, resume after an interruption, refusal of other settings,
bad images, concurrency, and export."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import zarr

import samembed.extraction.encode as extraction
from samembed import extract, export_h5, list_groups, load_dataset, open_cache
from samembed.cache.store import writer_lock
from samembed.encoders import create_encoder, write_tiny_checkpoint
from samembed.encoders.sam import SamEncoderSpec
from samembed.errors import CacheError, CorruptImageError, Interrupted, SignatureMismatchError, UsageError

FAST = dict(img_size=128, workers=0, batch_size=4, progress=False)  # 8 x 8 tokens: quick on the CPU


def run(data_dir, ckpt, cache, dataset="eurosat", **kwargs):
    return extract(dataset, data_dir=data_dir, checkpoint=ckpt, cache_dir=cache, **{**FAST, **kwargs})


def test_cache_holds_what_the_encoder_computes(eurosat_dir, tiny_checkpoint, tmp_path):
    result = run(eurosat_dir, tiny_checkpoint, tmp_path, grid=4, shard_images=8)
    assert (result.num_images, result.encoded, result.skipped) == (30, 30, 0)
    group = open_cache(tmp_path, "eurosat")
    index = load_dataset("eurosat", eurosat_dir)
    assert group.complete and group.name == result.group and group.name.endswith("@128")
    assert list(group.read("image_ids")) == index.image_ids
    assert np.array_equal(group.read("labels"), index.labels)
    assert group.class_names == index.class_names
    arrays = group.arrays
    assert arrays["neck"].shape == (30, 32) and arrays["neck"].dtype == np.float16
    assert arrays["trunk"].shape == (30, 32) and arrays["grid"].shape == (30, 32, 4, 4)
    assert arrays["grid"].shards == (8, 32, 4, 4) and arrays["done"].shape == (30,) and arrays["done"].chunks == (8,)
    assert group.read("ok").all()
    assert (group.read("orig_hw") == 64).all() and (group.read("valid_hw") == 128).all()

    spec = create_encoder("sam", checkpoint=tiny_checkpoint, img_size=128)
    model = spec.build(torch.device("cpu"))
    from samembed.datasets import read_rgb

    for i in (0, 17, 29):
        image, valid = spec.preprocessor()(read_rgb(index.path(i)))
        with torch.inference_mode():
            pooled, neck = model(image[None], torch.tensor([valid]))
        grid = torch.nn.functional.adaptive_avg_pool2d(neck, 4)[0].numpy()
        np.testing.assert_allclose(group.read("neck")[i], pooled["neck"][0].numpy(), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(group.read("trunk")[i], pooled["trunk"][0].numpy(), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(group.read("grid")[i], grid, rtol=2e-3, atol=2e-3)
    sig = group.signature
    assert sig["grid"] == 4 and sig["dtype"] == "float16" and sig["compute_dtype"] == "float32"
    assert sig["encoder"]["img_size"] == 128 and len(sig["encoder"]["checkpoint_sha256"]) == 64
    assert {"samembed", "torch", "segment_anything"} <= set(sig["versions"])
    (log,) = group.extraction_runs
    assert log["encoded"] == log["stored"] == 30 and "extraction_runs" not in group.attrs  # a log per run, never rewritten


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(eurosat_dir, tiny_checkpoint, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    run(eurosat_dir, tiny_checkpoint, reference, shard_images=8)

    real = extraction._launch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # after 16 images: shards 0 and 1 complete
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(extraction, "_launch", interrupted)
    cache = tmp_path / "cache"
    with pytest.raises(Interrupted, match="16 of 30 images .* are stored .*run the same command again"):
        run(eurosat_dir, tiny_checkpoint, cache, shard_images=8)
    group = open_cache(cache, "eurosat")
    assert group.read("done").tolist() == [True] * 16 + [False] * 14
    assert not group.complete

    monkeypatch.setattr(extraction, "_launch", real)
    result = run(eurosat_dir, tiny_checkpoint, cache, shard_images=8)
    assert result.encoded == 14  # only the two unfinished shards
    resumed, full = open_cache(cache, "eurosat"), open_cache(reference, "eurosat")
    assert resumed.complete
    for name in ("neck", "trunk", "grid", "ok", "valid_hw", "orig_hw"):
        assert np.array_equal(resumed.read(name), full.read(name)), name


def test_complete_cache_returns_without_building_the_model(eurosat_dir, tiny_checkpoint, tmp_path, monkeypatch):
    run(eurosat_dir, tiny_checkpoint, tmp_path)

    def no_build(*args, **kwargs):
        raise AssertionError("the encoder was built for a complete cache")

    monkeypatch.setattr(SamEncoderSpec, "build", no_build)
    result = run(eurosat_dir, tiny_checkpoint, tmp_path)
    assert (result.encoded, result.seconds) == (0, 0.0)


def test_other_settings_are_refused_naming_the_key(eurosat_dir, tiny_checkpoint, tmp_path):
    run(eurosat_dir, tiny_checkpoint, tmp_path, grid=4)
    with pytest.raises(SignatureMismatchError, match=r"grid=4, not 8") as err:
        run(eurosat_dir, tiny_checkpoint, tmp_path, grid=8)
    assert "\n" not in str(err.value) and "--cache-dir" in str(err.value)
    # the refused run wrote nothing
    assert open_cache(tmp_path, "eurosat").signature["grid"] == 4


def test_a_changed_dataset_is_refused(tmp_path, tiny_checkpoint):
    from samembed.datasets import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "data", images_per_class=2)
    run(data, tiny_checkpoint, tmp_path / "cache")
    extra = data / "2750" / "Forest" / "Forest_99.jpg"
    extra.write_bytes((data / "2750" / "Forest" / "Forest_1.jpg").read_bytes())
    with pytest.raises(SignatureMismatchError, match="dataset_fingerprint"):
        run(data, tiny_checkpoint, tmp_path / "cache")


def test_encoders_and_sizes_sit_side_by_side(eurosat_dir, tiny_checkpoint, tmp_path):
    other = write_tiny_checkpoint(tmp_path / "other.pth", seed=1)
    run(eurosat_dir, tiny_checkpoint, tmp_path / "c")
    run(eurosat_dir, tiny_checkpoint, tmp_path / "c", img_size=256)
    run(eurosat_dir, other, tmp_path / "c")
    names = [g.name for g in list_groups(tmp_path / "c")]
    assert len(names) == 3 and len({n.split("@")[0] for n in names}) == 2
    with pytest.raises(UsageError, match="several"):
        open_cache(tmp_path / "c", "eurosat")
    assert open_cache(tmp_path / "c", "eurosat", names[0]).name == names[0]
    a, b = (open_cache(tmp_path / "c", "eurosat", n).read("neck") for n in names if n.endswith("@128"))
    assert not np.array_equal(a, b)


def _with_corrupt_image(tmp_path):
    from samembed.datasets import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "data", images_per_class=2)
    bad = data / "2750" / "Highway" / "Highway_2.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    index = load_dataset("eurosat", data)
    return data, index, index.image_ids.index("Highway/Highway_2.jpg")


def test_a_corrupt_image_stops_the_run_with_its_path(tmp_path, tiny_checkpoint):
    data, _, bad = _with_corrupt_image(tmp_path)
    with pytest.raises(CorruptImageError) as err:
        run(data, tiny_checkpoint, tmp_path / "cache", shard_images=4)
    assert "Highway_2.jpg" in str(err.value) and "--skip-bad" in str(err.value) and "\n" not in str(err.value)
    group = open_cache(tmp_path / "cache", "eurosat")
    done = group.read("done")
    assert not done[bad:].any() and done[: bad // 4 * 4].all()  # the batches before the bad one's are kept


def test_skip_bad_records_the_image_and_keeps_labels_aligned(tmp_path, tiny_checkpoint):
    data, index, bad = _with_corrupt_image(tmp_path)
    result = run(data, tiny_checkpoint, tmp_path / "cache", skip_bad=True, shard_images=4)
    assert (result.encoded, result.skipped) == (19, 1)
    group = open_cache(tmp_path / "cache", "eurosat")
    ok = group.read("ok")
    assert not ok[bad] and ok.sum() == 19
    assert np.array_equal(group.read("labels"), index.labels)  # nothing shifted
    assert not group.read("neck")[bad].any() and group.read("neck")[ok].any(axis=1).all()
    (skipped,) = group.skipped
    assert group.read("error")[bad] == skipped["error"] and (group.read("error")[ok] == "").all()
    assert skipped["index"] == bad and skipped["image_id"] == "Highway/Highway_2.jpg" and skipped["error"]


def test_a_second_writer_is_refused(eurosat_dir, tiny_checkpoint, tmp_path):
    with writer_lock(tmp_path, "eurosat"):
        with pytest.raises(CacheError, match="another samembed extraction"):
            run(eurosat_dir, tiny_checkpoint, tmp_path)


def test_worker_processes_give_the_same_cache(eurosat_dir, tiny_checkpoint, tmp_path):
    run(eurosat_dir, tiny_checkpoint, tmp_path / "a")
    run(eurosat_dir, tiny_checkpoint, tmp_path / "b", workers=2, batch_size=7)
    for name in ("neck", "trunk", "grid"):
        assert np.array_equal(open_cache(tmp_path / "a", "eurosat").read(name), open_cache(tmp_path / "b", "eurosat").read(name))


def test_non_square_images_record_their_regions(folder_dir, tiny_checkpoint, tmp_path):
    run(folder_dir, tiny_checkpoint, tmp_path, dataset="folder", grid=8)
    group = open_cache(tmp_path, "folder")
    orig, valid = group.read("orig_hw"), group.read("valid_hw")
    assert (orig[:, 0] != orig[:, 1]).any()
    assert (valid.max(axis=1) == 128).all()
    ratio = orig[:, 0] / orig[:, 1]
    np.testing.assert_allclose(valid[:, 0] / valid[:, 1], ratio, rtol=0.05)
    assert group.class_names == ["a", "b", "c"]


def test_bad_arguments(eurosat_dir, tiny_checkpoint, tmp_path):
    with pytest.raises(UsageError, match="--grid"):
        run(eurosat_dir, tiny_checkpoint, tmp_path, grid=9)  # the map is 8 x 8 at 128
    with pytest.raises(UsageError, match="--batch-size"):
        run(eurosat_dir, tiny_checkpoint, tmp_path, batch_size=0)
    with pytest.raises(UsageError, match="device"):
        run(eurosat_dir, tiny_checkpoint, tmp_path, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            run(eurosat_dir, tiny_checkpoint, tmp_path, device="cuda")
    assert list_groups(tmp_path) == []


def test_export_h5_has_the_same_arrays(eurosat_dir, tiny_checkpoint, tmp_path):
    run(eurosat_dir, tiny_checkpoint, tmp_path, grid=4)
    group = open_cache(tmp_path, "eurosat")
    out = export_h5(group, tmp_path / "out.h5")
    with h5py.File(out) as f:
        for name, array in group.arrays.items():
            stored = f[name][:]
            if array.dtype.kind in "OTU":  # text: image_ids, error, and the coordinates image, class_name
                assert [s.decode() for s in stored] == list(array[:])
            else:
                assert np.array_equal(stored, array[:]) and stored.dtype == array.dtype
        assert f.attrs["group"] == group.name
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_export_refuses_an_incomplete_group(eurosat_dir, tiny_checkpoint, tmp_path):
    run(eurosat_dir, tiny_checkpoint, tmp_path, shard_images=8)
    group = open_cache(tmp_path, "eurosat")
    zarr.open_group(group.store / group.name, mode="a")["done"][1] = False
    with pytest.raises(CacheError, match="incomplete"):
        export_h5(group, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_a_group_whose_creation_was_interrupted_is_recreated(eurosat_dir, tiny_checkpoint, tmp_path):
    root = zarr.open_group(tmp_path / "eurosat.zarr", mode="a")
    root.attrs.update({"format": "samembed-cache", "format_version": 1, "dataset": "eurosat"})
    name = create_encoder("sam", checkpoint=tiny_checkpoint, img_size=128).key + "@128"
    root.create_group(name).create_array("neck", shape=(3, 2), dtype="float16")  # arrays, no signature yet
    result = run(eurosat_dir, tiny_checkpoint, tmp_path)
    assert result.encoded == 30 and open_cache(tmp_path, "eurosat").read("neck").shape == (30, 32)


def test_resizing_on_the_device_keeps_the_embeddings_and_is_in_the_signature(tmp_path, tiny_checkpoint):
    from samembed.datasets import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "data", layout="folder", images_per_class=3, size=48, vary_size=True)
    (data / "AnnualCrop" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    groups = {}
    for on_device in (False, True):
        extract("folder", data_dir=data, checkpoint=tiny_checkpoint, img_size=128, cache_dir=tmp_path / str(on_device),
                progress=False, workers=2, batch_size=4, skip_bad=True, resize_on_device=on_device)
        groups[on_device] = open_cache(tmp_path / str(on_device), "folder")
    cpu, dev = groups[False], groups[True]
    assert "resize" not in cpu.signature and dev.signature["resize"].startswith("on the device")
    assert np.array_equal(cpu.read("ok"), dev.read("ok")) and (~cpu.read("ok")).sum() == 1
    assert np.array_equal(cpu.read("valid_hw"), dev.read("valid_hw"))
    ok = cpu.read("ok")
    for name in ("neck", "trunk", "grid"):
        a = cpu.read(name)[ok].reshape(ok.sum(), -1).astype(np.float32)
        b = dev.read(name)[ok].reshape(ok.sum(), -1).astype(np.float32)
        cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() > 0.999, name  # the two resizes differ only by rounding
        assert not dev.read(name)[~ok].any()
    with pytest.raises(SignatureMismatchError, match="resize"):
        extract("folder", data_dir=data, checkpoint=tiny_checkpoint, img_size=128, cache_dir=tmp_path / "True",
                progress=False, workers=0, skip_bad=True, resize_on_device=False)

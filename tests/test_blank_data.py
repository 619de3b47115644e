"""Blank data never becomes vectors (issue 22): images and chips without a valid pixel (or under
``--min-data-share``) are stored unusable, counted, and left out of training, evaluation and
export, in new groups and in groups written before; GDAL's per-dataset mask band counts as
nodata wherever pixels are read. Every raster here is written by the test."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import samembed
from samembed.cache.integrity import writable
from samembed.cli import app
from samembed.datasets import load_dataset, make_synthetic_rasters, make_synthetic_scene
from samembed.datasets.composite import parse_composite, with_percentile_statistics
from samembed.datasets.images import read_pixels
from samembed.datasets.synthetic import _write_raster
from samembed.errors import SamembedWarning, UsageError
from samembed.experiments.base import open_experiment, run_id_of
from samembed.splits import SplitSpec

FAST = dict(img_size=64, workers=0, progress=False)
runner = CliRunner()


def _scene(path, values: np.ndarray, nodata=None, mask: np.ndarray | None = None, internal: bool = True):
    """A georeferenced GeoTIFF ``path`` of ``values`` (C, H, W), with a GDAL mask band (0: no
    data) when ``mask`` is given: internal, or a ``.msk`` file beside it."""
    import rasterio
    from affine import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", width=values.shape[2], height=values.shape[1], count=values.shape[0],
                   dtype=values.dtype, nodata=nodata, crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5e6))
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=internal), rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
        if mask is not None:
            dst.write_mask(mask.astype(np.uint8) * 255)
    return path


def test_an_all_nodata_scene_gives_every_chip_unusable_counted_by_extract_and_info(tmp_path, tiny_checkpoint):
    _scene(tmp_path / "scene" / "scene.tif", np.zeros((3, 128, 128), np.uint16), nodata=0)
    args = ["extract", "scene", "--data-dir", tmp_path / "scene", "--checkpoint", tiny_checkpoint, "--bands", "1,2,3",
            "--stretch", "fixed:0,3000", "--chip-size", "64", "--img-size", "64", "--workers", "0", "--cache-dir",
            tmp_path / "c", "-q"]
    out = runner.invoke(app, [str(a) for a in args])
    assert out.exit_code == 0, out.output
    last = out.output.strip().splitlines()[-1]
    assert "encoded 4 images" in last and "4 blank (no data" in last, last
    group = samembed.open_cache(tmp_path / "c", "scene")
    assert group.progress == (4, 4) and not group.read("ok").any() and not group.usable().any()
    assert group.blank().all() and group.skipped == []  # blank is not unreadable
    assert all(str(e).startswith("no data: 0 % of pixels valid") for e in group.read("error"))
    assert not group.read("neck").any() and not group.read("grid").any()  # no vector of a blank input
    info = runner.invoke(app, ["info", "--cache-dir", str(tmp_path / "c")])
    assert info.exit_code == 0 and "4 images, 1 classes, 4 blank (no data), 0 skipped (unreadable)" in info.output, \
        info.output
    with pytest.raises(UsageError, match="no usable image"):
        samembed.train_head("scene", head="knn", split=0.5, cache_dir=tmp_path / "c", runs_dir=tmp_path / "runs")


@pytest.fixture(scope="module")
def ms_with_a_blank_tile(tmp_path_factory):
    """EuroSAT-MS, 30 tiles, one of them (Forest_2) all nodata; (data dir, index of the blank tile)."""
    data = make_synthetic_rasters(tmp_path_factory.mktemp("ms"), "eurosat-ms", images_per_class=3, size=32)
    index = load_dataset("eurosat-ms", data)
    blank = index.image_ids.index("Forest/Forest_2.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _write_raster(index.path(blank), np.zeros((13, 32, 32), np.uint16), nodata=0)
    return data, blank


def _usable_in(record) -> int:
    return record["split"]["n_train"] + record["split"]["n_val"] + record["split"]["n_test"]


def test_an_all_nodata_eurosat_ms_tile_is_left_out_of_training_and_marked_for_export(
        ms_with_a_blank_tile, tiny_checkpoint, tmp_path):
    data, blank = ms_with_a_blank_tile
    result = samembed.extract("eurosat-ms", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c",
                              bands="s2-rgb", stretch="fixed:0,3000", **FAST)
    record = samembed.train_head("eurosat-ms", head="knn", split=0.2, cache_dir=tmp_path / "c",
                                 runs_dir=tmp_path / "runs")
    assert _usable_in(record) == 29  # 30 images, the blank one left out
    assert (result.encoded, result.blank, result.skipped) == (30, 1, 0)
    group = samembed.open_cache(tmp_path / "c", "eurosat-ms")
    assert np.flatnonzero(~group.usable()).tolist() == [blank] and group.blank().sum() == 1
    experiment = open_experiment("eurosat-ms", cache_dir=tmp_path / "c")
    split = experiment.split(SplitSpec.from_name(record["split"]["name"]), 0)
    assert blank not in set(split.train) | set(split.val) | set(split.test)
    plan = experiment.plan("knn", SplitSpec("val", 0.2))
    assert experiment.run_id(plan) == record["run_id"]
    assert run_id_of(experiment.group, plan, experiment.usable) != record["run_id"]  # the id that trained on it
    import h5py

    out = samembed.export_h5(group, tmp_path / "ms.h5")
    with h5py.File(out) as f:
        assert f["usable"][:].tolist() == group.usable().tolist() and len(f["usable"]) == len(f["neck"]) == 30


def test_groups_written_before_derive_blank_images_from_their_data_share(ms_with_a_blank_tile, tiny_checkpoint,
                                                                           tmp_path):
    data, blank = ms_with_a_blank_tile
    samembed.extract("eurosat-ms", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c",
                     bands="s2-rgb", stretch="fixed:0,3000", **FAST)
    name = samembed.open_cache(tmp_path / "c", "eurosat-ms").name
    experiment = open_experiment("eurosat-ms", cache_dir=tmp_path / "c")
    flagged_id = experiment.run_id(experiment.plan("knn", SplitSpec("val", 0.2)))
    # what samembed wrote before: the blank tile ok, with vectors, and no record of the check
    group = zarr.open_group(tmp_path / "c" / "eurosat-ms.zarr" / name, mode="r+")
    group["ok"][blank] = True
    writable(group["error"])[blank] = ""  # written, not dropped as the fill value (a missing chunk is damage)
    group["neck"][blank] = np.ones(group["neck"].shape[1], np.float16)
    if "blank_rule" in group.attrs:
        del group.attrs["blank_rule"]
    with pytest.warns(SamembedWarning, match=r"1 image\(s\) of .* hold no data .*left out of training"):
        record = samembed.train_head("eurosat-ms", head="knn", split=0.2, cache_dir=tmp_path / "c",
                                     runs_dir=tmp_path / "runs")
    assert _usable_in(record) == 29 and record["run_id"] == flagged_id  # the same numbers, the same id
    old = samembed.open_cache(tmp_path / "c", "eurosat-ms")
    assert old.read("ok").all() and (old.read("data_share")[blank] == 0).all()
    assert np.flatnonzero(old.blank()).tolist() == [blank] and old.usable().sum() == 29
    info = runner.invoke(app, ["info", "--cache-dir", str(tmp_path / "c")])
    assert "1 blank (no data), 0 skipped (unreadable)" in info.output, info.output


def test_min_data_share_flags_chips_under_it_and_enters_the_signature_only_when_given(tmp_path, tiny_checkpoint):
    data = make_synthetic_scene(tmp_path / "scene", size=(48, 480), bands=3, nodata=0)  # columns 0-47: no data
    common = dict(data_dir=data, checkpoint=tiny_checkpoint, bands="1,2,3", stretch="fixed:0,4000", chip_size=48,
                  chip_overlap=16, **FAST)  # chips at columns 0, 32, 64, ...: the second holds data in 2/3
    default = samembed.extract("scene", cache_dir=tmp_path / "a", **common)
    group = samembed.open_cache(tmp_path / "a", "scene")
    assert default.blank == 1 and group.blank().tolist()[:3] == [True, False, False]
    assert "min_data_share" not in group.signature  # the default: existing groups keep their signatures
    strict = samembed.extract("scene", cache_dir=tmp_path / "b", min_data_share=0.7, **common)
    group = samembed.open_cache(tmp_path / "b", "scene")
    assert strict.blank == 2 and group.blank().tolist()[:3] == [True, True, False]
    assert group.signature["min_data_share"] == 0.7
    assert group.read("error")[1] == "no data: 66.7 % of pixels valid (minimum: 70 %)"
    with pytest.raises(UsageError, match="--min-data-share"):
        samembed.extract("scene", cache_dir=tmp_path / "d", min_data_share=1.5, **common)
    with pytest.raises(Exception, match="min_data_share"):  # a group is never resumed under another minimum
        samembed.extract("scene", cache_dir=tmp_path / "a", min_data_share=0.5, **common)


def test_a_gdal_mask_band_is_nodata_everywhere_pixels_are_read(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(0)
    values = rng.integers(100, 3000, (3, 128, 256)).astype(np.uint16)
    mask = np.ones((128, 256), bool)
    mask[:, :96] = False  # columns 0-95: masked by the internal mask band, no nodata value declared
    values[:, :, :96] = 60000  # what lies under the mask must not count anywhere
    _scene(tmp_path / "scene" / "scene.tif", values, mask=mask)
    index = load_dataset("scene", tmp_path / "scene", chip_size=64)
    pixels = index.pixels(1)  # the chip at columns 64-127: half masked
    assert not pixels.valid()[:, :32].any() and pixels.valid()[:, 32:].all()
    composite = parse_composite("1,2,3", "percentile", *index.raster_info())
    stats = with_percentile_statistics(composite, list(range(len(index))), index)
    assert max(stats.stretch.high) < 3000  # percentiles of the data only
    result = samembed.extract("scene", data_dir=tmp_path / "scene", checkpoint=tiny_checkpoint, bands="1,2,3",
                              stretch="fixed:0,3000", chip_size=64, cache_dir=tmp_path / "c", **FAST)
    group = samembed.open_cache(tmp_path / "c", "scene")
    windows = group.read("window")
    share = group.read("data_share")
    first = np.flatnonzero(windows[:, 0] == 0)  # the fully masked chips
    half = np.flatnonzero(windows[:, 0] == 64)
    assert result.blank == 2 and group.blank()[first].all() and group.usable().sum() == 6
    side = share.shape[2]
    assert (share[half][:, :, :side // 2] == 0).all() and (share[half][:, :, side // 2:] == 255).all()


def test_an_8_bit_tiff_read_by_pil_honours_its_mask_band(tmp_path):
    values = np.full((3, 16, 16), 120, np.uint8)
    mask = np.ones((16, 16), bool)
    mask[:8] = False
    path = _scene(tmp_path / "a" / "x.tif", values, mask=mask)
    pixels = read_pixels(path)
    assert pixels.values.shape == (16, 16, 3) and pixels.values.dtype == np.uint8
    assert not pixels.valid()[:8].any() and pixels.valid()[8:].all()
    beside = _scene(tmp_path / "b" / "y.tif", values, mask=mask, internal=False)
    assert beside.with_name("y.tif.msk").is_file() and not read_pixels(beside).valid()[:8].any()
    plain = _scene(tmp_path / "c" / "z.tif", values)
    assert read_pixels(plain).valid().all() and read_pixels(plain).mask is None


def test_blank_chips_are_left_out_of_segmentation_decoders_and_zero_shot_heads(tmp_path, tiny_checkpoint):
    data = make_synthetic_scene(tmp_path / "scene", size=(128, 640), masks=True)  # columns 0-63: no data
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c", bands="1,2,3",
                     stretch="fixed:0,4000", chip_size=64, img_size=64, workers=0, progress=False)
    blank = {"scene.tif#0,0", "scene.tif#0,64"}  # the chips of the first column
    records = samembed.sweep("scene", heads=["sam-conv", "sam-box"], splits=[0.5], epochs=1, cache_dir=tmp_path / "c",
                             runs_dir=tmp_path / "runs", device="cpu", progress=False)
    assert {r["config"]["head"] for r in records} == {"sam-conv", "sam-box"}
    for record in records:
        assert record["split"]["n_train"] + record["split"]["n_val"] == 18  # 20 chips, 2 blank
        scored = {p["image_id"] for p in record["metrics"]["per_image"]}
        assert scored and not scored & blank
    group = samembed.open_cache(tmp_path / "c", "scene")
    assert {str(group.read("image_ids")[i]) for i in np.flatnonzero(group.blank())} == blank

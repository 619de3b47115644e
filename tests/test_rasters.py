"""Sentinel-2, Sentinel-1 and georeferenced scenes (issue 13): raster datasets in their real
layouts, composites (bands and stretches) named and stored, nodata masked, chips that keep their
map coordinates, and scenes read window by window. Every raster here is written by the test."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

import samembed
import samembed.extraction.plan as plan_module
from samembed.datasets import load_dataset, make_synthetic_rasters, make_synthetic_scene
from samembed.datasets.composite import parse_composite
from samembed.datasets.scene import MapLocator
from samembed.datasets.synthetic import _write_raster
from samembed.errors import DataNotFoundError, ImageFormatError, UsageError

FAST = dict(img_size=64, workers=0, progress=False)


@pytest.fixture(scope="module")
def ms_dir(tmp_path_factory):
    return make_synthetic_rasters(tmp_path_factory.mktemp("ms"), "eurosat-ms", images_per_class=3, size=32)


@pytest.fixture(scope="module")
def sar_dir(tmp_path_factory):
    return make_synthetic_rasters(tmp_path_factory.mktemp("sar"), "eurosat-sar", images_per_class=3, size=32)


def test_eurosat_ms_is_indexed_in_the_archives_nested_layout(ms_dir):
    index = load_dataset("eurosat-ms", ms_dir)
    assert index.root == ms_dir / "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"
    assert index.bands[:4] == ("B01", "B02", "B03", "B04") and len(index.bands) == 13 and index.dtype == "uint16"
    assert index.class_names[0] == "AnnualCrop" and len(index) == 30
    assert load_dataset("eurosat-ms", index.root).image_ids == index.image_ids  # the class folders directly


def test_the_standard_split_lists_name_jpgs_and_map_to_the_tifs(ms_dir, monkeypatch):
    import samembed.datasets.eurosat as eurosat
    from samembed.datasets import get_dataset

    index = load_dataset("eurosat-ms", ms_dir)
    lists = {"train": ["AnnualCrop_1.jpg"], "val": ["Forest_2.jpg"], "test": ["River_3.jpg"]}
    monkeypatch.setattr(eurosat, "standard_split_lists", lambda data_dir, download: lists)
    parts = get_dataset("eurosat-ms").fixed_split(index.image_ids, None, ms_dir, False)
    assert parts == {"train": ["AnnualCrop/AnnualCrop_1.tif"], "val": ["Forest/Forest_2.tif"],
                     "test": ["River/River_3.tif"]}


def test_a_multi_band_dataset_asks_for_bands_and_a_stretch(ms_dir, tiny_checkpoint, tmp_path):
    common = dict(data_dir=ms_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, **FAST)
    with pytest.raises(UsageError, match=r"13 bands .*choose 3 \(or 1\) with --bands, e\.g\. --bands s2-rgb"):
        samembed.extract("eurosat-ms", **common)
    with pytest.raises(UsageError, match=r"uint16, not 8-bit, .*--stretch: fixed:0,3000 .*, or percentile"):
        samembed.extract("eurosat-ms", bands="s2-rgb", **common)
    with pytest.raises(UsageError, match="no band named 'B99'"):
        samembed.extract("eurosat-ms", bands="B04,B03,B99", stretch="fixed:0,3000", **common)
    with pytest.raises(UsageError, match="selects 2 bands"):
        samembed.extract("eurosat-ms", bands="B04,B03", stretch="fixed:0,3000", **common)
    with pytest.raises(UsageError, match="unknown --stretch"):
        samembed.extract("eurosat-ms", bands="s2-rgb", stretch="gamma", **common)
    assert samembed.list_groups(tmp_path) == []  # nothing was written


def test_a_composite_is_named_stored_and_equal_to_the_bands_stretched_by_hand(ms_dir, tiny_checkpoint, tmp_path):
    result = samembed.extract("eurosat-ms", data_dir=ms_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path,
                              bands="B04,B03,B02", stretch="fixed:0,3000", **FAST)
    assert result.group.endswith("@64+B04-B03-B02.fixed0_3000") and result.encoded == 30
    group = samembed.open_cache(tmp_path, "eurosat-ms")
    composite = group.signature["composite"]
    assert composite["bands"] == ["B04", "B03", "B02"] and composite["sources"] == [[4], [3], [2]]
    assert composite["stretch"]["kind"] == "fixed" and composite["stretch"]["low"] == [0.0] * 3

    index = load_dataset("eurosat-ms", ms_dir)
    spec = samembed.create_encoder("sam", checkpoint=tiny_checkpoint, img_size=64)
    model = spec.build(torch.device("cpu"))
    for i in (0, 17):
        values = index.pixels(i).values[..., [3, 2, 1]].astype(np.float64)  # B04, B03, B02
        rgb = np.round(np.clip(values / 3000, 0, 1) * 255).astype(np.uint8)
        canvas, valid = spec.geometry.canvas(rgb)
        with torch.inference_mode():
            pooled, _ = model(canvas[None], torch.tensor([valid]))
        np.testing.assert_allclose(group.read("neck")[i], pooled["neck"][0].numpy(), rtol=2e-3, atol=2e-3)
    assert (group.read("data_share") == 255).all()  # every pixel holds data


def test_two_composites_give_two_groups_that_sweep_and_report_side_by_side(ms_dir, tiny_checkpoint, tmp_path):
    for bands, stretch in (("s2-rgb", "fixed:0,3000"), ("s2-false-colour", "percentile")):
        samembed.extract("eurosat-ms", data_dir=ms_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c",
                         bands=bands, stretch=stretch, **FAST)
    groups = [g.name for g in samembed.list_groups(tmp_path / "c")]
    assert len(groups) == 2 and {g.split("+")[1] for g in groups} == {"s2-rgb.fixed0_3000", "s2-false-colour.p2-98"}
    prefix = groups[0].split("+")[0]  # the encoder at its size: every composite of it
    records = samembed.sweep("eurosat-ms", encoder=prefix, heads=["knn", "logreg"], splits=[0.5], seeds=2,
                             cache_dir=tmp_path / "c", runs_dir=tmp_path / "runs", progress=False)
    assert len(records) == 2 * 2 * 2 and {r["cache"]["group"] for r in records} == set(groups)
    report = samembed.write_report(tmp_path / "runs")
    assert set(report.summary["encoder"]) == set(groups) and len(report.summary) == 4
    runs = report.summary.set_index(["encoder", "head"])
    assert (runs["n_seeds"] == 2).all()
    from samembed.experiments.records import RunsStore

    hashes = {}
    for record in RunsStore(tmp_path / "runs").records():  # the same splits and seeds for both composites
        hashes.setdefault(record["config"]["seed"], set()).add(record["split"]["indices_hash"])
    assert all(len(h) == 1 for h in hashes.values())


def test_percentile_statistics_are_computed_once_and_reused(ms_dir, tiny_checkpoint, tmp_path, monkeypatch):
    calls = []
    real = plan_module.with_percentile_statistics

    def counted(composite, sample, index, seed=0):
        calls.append(len(sample))
        return real(composite, sample, index, seed)

    monkeypatch.setattr(plan_module, "with_percentile_statistics", counted)
    common = dict(data_dir=ms_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path, bands="s2-swir",
                  stretch="percentile:1,99", **FAST)
    first = samembed.extract("eurosat-ms", **common)
    again = samembed.extract("eurosat-ms", **common)
    assert calls == [30] and (first.encoded, again.encoded) == (30, 0)
    stretch = samembed.open_cache(tmp_path, "eurosat-ms").signature["composite"]["stretch"]
    index = load_dataset("eurosat-ms", ms_dir)
    b12 = np.concatenate([index.pixels(i).values[..., 12].ravel() for i in range(len(index))])
    assert stretch["percentiles"] == [1.0, 99.0] and stretch["low"][0] == pytest.approx(np.percentile(b12, 1), rel=0.05)
    assert stretch["sample"].startswith("30 images")


def test_sar_takes_a_db_stretch_and_refuses_values_already_in_db(sar_dir, tiny_checkpoint, tmp_path):
    index = load_dataset("eurosat-sar", sar_dir)
    assert index.bands == ("VV", "VH") and index.dtype == "float32"
    result = samembed.extract("eurosat-sar", data_dir=sar_dir, checkpoint=tiny_checkpoint, cache_dir=tmp_path,
                              bands="s1-vv-vh-ratio", stretch="db", **FAST)
    assert result.group.endswith("+s1-vv-vh-ratio.db") and result.encoded == 30
    composite = samembed.open_cache(tmp_path, "eurosat-sar").signature["composite"]
    assert composite["bands"] == ["VV", "VH", "VV/VH"] and composite["stretch"]["low"] == [-25.0, -30.0, 0.0]
    in_db = make_synthetic_rasters(tmp_path / "db", "eurosat-sar", images_per_class=1, size=16, classes=["A", "B"])
    for path in (in_db / "EuroSAT-SAR").rglob("*.tif"):
        _write_raster(path, np.full((2, 16, 16), -12.5, np.float32))
    with pytest.raises(ImageFormatError, match=r"band VV holds values down to -12\.5.*--stretch fixed:LOW,HIGH"):
        parse_composite("VV,VH,VV", "db", ("VV", "VH"), "float32").apply(load_dataset("raster-folder", in_db / "EuroSAT-SAR").pixels(0), "x")


def test_a_sar_file_that_is_not_two_bands_is_one_line(tmp_path):
    data = make_synthetic_rasters(tmp_path, "eurosat-sar", images_per_class=1, size=16)
    first = sorted((data / "EuroSAT-SAR" / "AnnualCrop").iterdir())[0]
    _write_raster(first, np.ones((3, 16, 16), np.float32))
    with pytest.raises(DataNotFoundError, match=r"has 3 band\(s\) of float32, but EuroSAT-SAR has 2 \(VV, VH\)") as err:
        load_dataset("eurosat-sar", data)
    assert "\n" not in str(err.value)


def test_a_raster_folder_of_8_bit_bands_needs_no_stretch_and_refuses_a_file_with_other_bands(tmp_path, tiny_checkpoint):
    data = make_synthetic_rasters(tmp_path / "d", "raster-folder", images_per_class=2, size=24, classes=["a", "b"])
    index = load_dataset("raster-folder", data)
    assert index.bands == ("1", "2", "3", "4") and index.dtype == "uint8"
    result = samembed.extract("raster-folder", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c",
                              bands="4,3,2", **FAST)
    assert result.group.endswith("+4-3-2.raw") and result.encoded == 4
    _write_raster(data / "b" / "b_9.tif", np.ones((2, 24, 24), np.uint8))
    with pytest.raises(ImageFormatError, match=r"b_9\.tif has 2 band\(s\), but --bands asks for band 4") as err:
        samembed.extract("raster-folder", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c2",
                         bands="4,3,2", skip_bad=True, **FAST)
    assert "\n" not in str(err.value)


def test_seg_folder_takes_geotiff_images_and_masks(tmp_path, tiny_checkpoint):
    from samembed.datasets.synthetic import synthetic_road_image

    rng = np.random.default_rng(0)
    for n in range(4):
        image, road = synthetic_road_image(40, 48, rng)
        _write_raster(tmp_path / "d" / "images" / f"{n}.tif", (image.astype(np.uint16) * 10).transpose(2, 0, 1))
        _write_raster(tmp_path / "d" / "masks" / f"{n}.tif", road.astype(np.uint8)[None])
    result = samembed.extract("seg-folder", data_dir=tmp_path / "d", checkpoint=tiny_checkpoint, bands="1,2,3",
                              stretch="fixed:0,2550", cache_dir=tmp_path / "c", **FAST)
    group = samembed.open_cache(tmp_path / "c", "seg-folder")
    assert result.encoded == 4 and group.task == "segmentation" and group.read("mask").max() == 255


# ----------------------------------------------------------------------------------- scenes


def test_a_scene_is_cut_into_chips_that_keep_their_map_coordinates(tmp_path, tiny_checkpoint):
    data = make_synthetic_scene(tmp_path / "scene", size=(700, 900), origin=(500000.0, 5000000.0), pixel=10.0)
    index = load_dataset("scene", data, chip_size=256, chip_overlap=32)
    cols = sorted({int(w[0]) for w in index.chips.windows})
    assert cols == [0, 224, 448, 644] and len(index) == 4 * 3  # the last chip ends at the edge
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c", bands="B04,B03,B02",
                     stretch="fixed:0,4000", chip_size=256, chip_overlap=32, img_size=128, workers=0, progress=False)
    group = samembed.open_cache(tmp_path / "c", "scene")
    locator = MapLocator(group.attrs["georef"], group.read("scene"), group.read("window"))
    for i in range(len(index)):
        col, row = (int(v) for v in group.read("window")[i][:2])
        assert locator.transform(i) @ (0, 0) == (500000.0 + 10 * col, 5000000.0 - 10 * row)
    chip, c, r = locator.locate(500000.0 + 10 * 850.5, 5000000.0 - 10 * 10.5)  # only in the last column's chip
    assert tuple(group.read("window")[chip][:2]) == (644, 0) and (c, r) == (206.5, 10.5)
    chip, c, r = locator.locate(500000.0 + 10 * 470.5, 5000000.0 - 10 * 10.5)  # in two chips: the nearer centre
    assert tuple(group.read("window")[chip][:2]) == (448, 0) and (c, r) == (22.5, 10.5)
    assert "32633" in locator.crs(chip)
    assert samembed.open_cache(tmp_path / "c", "scene").attrs["dataset_options"] == {"chip_size": 256, "chip_overlap": 32}


def test_nodata_is_left_out_of_pooling_like_padding(tmp_path, tiny_checkpoint):
    data = make_synthetic_scene(tmp_path / "scene", size=(256, 256), nodata=0)  # columns 0-24 hold no data
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c", bands="1,2,3",
                     stretch="fixed:0,4000", chip_size=256, img_size=256, workers=0, progress=False)
    group = samembed.open_cache(tmp_path / "c", "scene")
    share = group.read("data_share")[0]
    assert share[:, 0].max() == 0 and share[:, -1].min() == 255  # the empty strip is the left edge
    index = load_dataset("scene", data, chip_size=256)
    spec = samembed.create_encoder("sam", checkpoint=tiny_checkpoint, img_size=256)
    model = spec.build(torch.device("cpu"))
    from samembed.datasets.inputs import InputReader

    reader = InputReader(index, plan_module.plan_extraction("scene", data_dir=data, checkpoint=tiny_checkpoint,
                                                             img_size=256, bands="1,2,3", stretch="fixed:0,4000",
                                                             dataset_options={"chip_size": 256}).composite)
    rgb, valid = reader(0)
    assert not valid[:, :25].any() and valid[:, 25:].all() and not rgb[:, :25].any()
    canvas, hw = spec.geometry.canvas(rgb)
    data_mask = spec.geometry.mask_to_input(valid)[None, None]
    with torch.inference_mode():
        (pooled, neck) = model(canvas[None], torch.tensor([hw]), data_mask)
    tokens = torch.nn.functional.avg_pool2d(data_mask.float(), 16)[0, 0] >= 0.5  # the tokens holding data
    np.testing.assert_allclose(pooled["neck"][0].numpy(), neck[0][:, tokens].mean(1).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(pooled["neck"][0].numpy(), neck[0].mean((1, 2)).numpy(), atol=1e-3)
    np.testing.assert_allclose(group.read("neck")[0], pooled["neck"][0].numpy(), rtol=2e-3, atol=2e-3)


def test_a_scene_with_masks_is_a_segmentation_dataset_of_chips(tmp_path, tiny_checkpoint):
    data = make_synthetic_scene(tmp_path / "scene", size=(300, 400), masks=True)
    index = load_dataset("scene", data, chip_size=128)
    assert index.task == "segmentation" and index.mask_encoding.values == (0.0, 1.0)
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c", bands="1,2,3",
                     stretch="fixed:0,4000", chip_size=128, img_size=128, workers=0, progress=False)
    group = samembed.open_cache(tmp_path / "c", "scene")
    assert group.task == "segmentation" and group.read("mask").max() == 255
    record = samembed.train_head("scene", head="sam-conv", split=0.3, epochs=1, cache_dir=tmp_path / "c",
                                 runs_dir=tmp_path / "runs", device="cpu")
    assert record["metrics"]["per_image"] and record["config"]["head"] == "sam-conv"


def test_scene_mistakes_are_one_line_each(tmp_path):
    no_crs = make_synthetic_scene(tmp_path / "plain", size=(64, 64), crs=None)
    index = load_dataset("scene", no_crs, chip_size=32)
    with pytest.raises(UsageError, match="has no CRS, so map coordinates mean nothing"):
        MapLocator(index.chips.georef, index.chips.scenes, index.chips.windows).locate(10.0, 10.0)
    other = make_synthetic_scene(tmp_path / "two", size=(64, 64), bands=4)
    make_synthetic_scene(tmp_path / "b", size=(64, 64), bands=3)
    (tmp_path / "b" / "scene.tif").rename(other / "other.tif")
    with pytest.raises(DataNotFoundError, match=r"scene\.tif has 4 band\(s\) of uint16, but .*other\.tif has 3 of uint16; the rasters of one dataset"):
        load_dataset("scene", other, chip_size=32)
    with pytest.raises(UsageError, match="--chip-overlap between 0 and the chip size"):
        load_dataset("scene", no_crs, chip_size=32, chip_overlap=32)
    with pytest.raises(UsageError, match=r"--chip-size do\(es\) not apply to the eurosat dataset"):
        load_dataset("eurosat", tmp_path, chip_size=32)
    located = make_synthetic_scene(tmp_path / "far", size=(64, 64))
    index = load_dataset("scene", located, chip_size=32)
    with pytest.raises(UsageError, match="outside every chip"):
        MapLocator(index.chips.georef, index.chips.scenes, index.chips.windows).locate(0.0, 0.0)


def test_a_scene_larger_than_the_memory_budget_is_read_window_by_window(tmp_path, tiny_checkpoint):
    """A 2048 x 2048 x 4 uint16 scene is 32 MiB; chipping, percentile statistics and extraction
    hold at most a few chips of it at a time."""
    data = make_synthetic_scene(tmp_path / "big", size=(2048, 2048), bands=4, nodata=None)
    scene_bytes = 2048 * 2048 * 4 * 2
    tracemalloc.start()
    try:
        samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, cache_dir=tmp_path / "c", bands="1,2,3",
                         stretch="percentile", chip_size=256, img_size=64, workers=0, progress=False, batch_size=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert samembed.open_cache(tmp_path / "c", "scene").progress == (64, 64)
    assert peak < scene_bytes / 4, f"peak {peak / 2**20:.1f} MiB for a {scene_bytes / 2**20:.0f} MiB scene"

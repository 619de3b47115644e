"""Embeddings where the ecosystem reads them (issue 25), checked with the real clients: geopandas
and DuckDB read the GeoParquet, xarray opens the Zarr groups (this release's and the previous
release's after the metadata upgrade), the geoemb: attributes validate against the convention's
published schema, pystac reads the STAC Items and their assets resolve on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import samembed
from samembed.cli import app
from samembed.datasets import make_synthetic_scene

gpd = pytest.importorskip("geopandas")
duckdb = pytest.importorskip("duckdb")
xr = pytest.importorskip("xarray")
pystac = pytest.importorskip("pystac")
jsonschema = pytest.importorskip("jsonschema")

runner = CliRunner()
SCHEMA = Path(__file__).parent / "fixtures" / "conventions" / "geoemb-v1-schema.json"
RELEASE = Path(__file__).parent / "fixtures" / "release-0.1.0"


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory, tiny_checkpoint) -> Path:
    """Chips of a generated georeferenced scene (EPSG:32633, 10 m pixels, a nodata strip on its left
    edge): 15 chips of 48 px, those of the nodata edge under the minimum data share."""
    root = tmp_path_factory.mktemp("scene")
    data = make_synthetic_scene(root / "data", size=(96, 160), bands=4)
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, img_size=64, bands="1,2,3",
                     stretch="percentile", chip_size=48, chip_overlap=16, min_data_share=0.7, cache_dir=root / "cache",
                     workers=0, progress=False)
    return root / "cache"


def test_geoparquet_of_a_scene_reads_in_geopandas_and_duckdb_with_its_crs_footprints_and_exact_vectors(
        scene_cache, tmp_path):
    from affine import Affine

    group = samembed.open_cache(scene_cache, "scene")
    out = tmp_path / "chips.parquet"
    assert _invoke("export", "--format", "geoparquet", "--out", out, "--cache-dir", scene_cache).exit_code == 0
    frame = gpd.read_parquet(out)
    usable = np.flatnonzero(group.usable())
    assert len(usable) == 12 and frame["row"].tolist() == usable.tolist()  # the 3 chips of the nodata edge left out
    assert frame.crs.to_epsg() == 32633
    (scene,) = group.attrs["georef"].values()
    windows = group.read("window")
    for row, polygon in zip(frame["row"], frame.geometry):
        col, r, w, h = windows[row]
        t = Affine(*scene["transform"])
        expected = [t @ (col, r), t @ (col + w, r), t @ (col + w, r + h), t @ (col, r + h)]
        assert np.allclose(np.asarray(polygon.exterior.coords)[:4], expected, atol=0)
    neck = group.read("neck")
    vectors = np.stack(frame["neck"].to_numpy())
    assert vectors.dtype == np.float32 and np.array_equal(vectors, neck[usable].astype(np.float32))  # widened exactly
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_metadata(out).metadata[b"samembed"])
    assert meta["vector_dtype"] == "float32" and meta["left_out"] == 3 and meta["cache_group"] == group.name
    geo = json.loads(pq.read_metadata(out).metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    rows = duckdb.sql(f"select row, neck, bbox.xmin from '{out}' order by row").fetchall()
    assert [r[0] for r in rows] == usable.tolist()
    assert np.array_equal(np.array(rows[0][1], np.float32), neck[usable[0]].astype(np.float32))

    half = tmp_path / "half.parquet"
    samembed.formats.export_geoparquet(group, half, dtype="float16")
    kept = np.stack(gpd.read_parquet(half)["trunk"].to_numpy())
    assert kept.dtype == np.float16 and np.array_equal(kept, group.read("trunk")[usable])  # as stored, bit for bit


def test_data_without_georeferencing_is_plain_parquet_and_require_geometry_refuses_it(embedding_cache_real, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "tiles.parquet"
    assert _invoke("export", "--format", "geoparquet", "--out", out, "--cache-dir", embedding_cache_real).exit_code == 0
    table = pq.read_table(out)
    assert "geometry" not in table.column_names and b"geo" not in pq.read_metadata(out).metadata
    assert set(table["class_name"].to_pylist()) >= {"Forest", "River"} and table.num_rows == 30
    refused = _invoke("export", "--format", "geoparquet", "--require-geometry", "--out", tmp_path / "no.parquet",
                      "--cache-dir", embedding_cache_real)
    assert refused.exit_code == 1 and "has no georeferencing" in refused.output and "--require-geometry" in refused.output
    assert not (tmp_path / "no.parquet").exists()


@pytest.fixture()
def embedding_cache_real(eurosat_dir, tiny_checkpoint, tmp_path) -> Path:
    samembed.extract("eurosat", data_dir=eurosat_dir, checkpoint=tiny_checkpoint, img_size=64, workers=0,
                     cache_dir=tmp_path / "cache", progress=False)
    return tmp_path / "cache"


def test_rasters_in_several_crss_are_refused_unless_reprojected_to_one(tmp_path, tiny_checkpoint):
    from samembed.datasets.synthetic import _write_raster

    rng = np.random.default_rng(0)
    for k, (crs, x0) in enumerate([("EPSG:32632", 700000.0), ("EPSG:32633", 300000.0)]):
        for c in ("Forest", "River"):
            _write_raster(tmp_path / "data" / c / f"{c}_{k}.tif", rng.integers(1, 255, (3, 32, 32), dtype=np.uint8),
                          crs=crs, transform=(10.0, 0.0, x0, 0.0, -10.0, 5000000.0))
    samembed.extract("raster-folder", data_dir=tmp_path / "data", checkpoint=tiny_checkpoint, img_size=64, workers=0,
                     cache_dir=tmp_path / "cache", progress=False)
    mixed = _invoke("export", "--format", "geoparquet", "--out", tmp_path / "m.parquet", "--cache-dir", tmp_path / "cache")
    assert mixed.exit_code == 1 and "lie in 2 CRSs (EPSG:32632, EPSG:32633)" in mixed.output and "--crs" in mixed.output
    assert not (tmp_path / "m.parquet").exists()
    one = _invoke("export", "--format", "geoparquet", "--crs", "EPSG:4326", "--out", tmp_path / "w.parquet",
                  "--cache-dir", tmp_path / "cache")
    assert one.exit_code == 0, one.output
    frame = gpd.read_parquet(tmp_path / "w.parquet")
    assert frame.crs.to_epsg() == 4326 and len(frame) == 4 and frame.geometry.is_valid.all()
    assert frame.geometry.bounds["minx"].between(8, 16).all()  # both UTM zones' tiles near 9 E and 12 E


def test_groups_of_this_release_open_in_xarray_with_dims_coordinates_and_valid_geoemb_attributes(scene_cache):
    group = samembed.open_cache(scene_cache, "scene")
    ds = xr.open_zarr(scene_cache / "scene.zarr", group=group.name, consolidated=False)
    assert ds["neck"].dims == ("image", "channel") and ds["grid"].dims == ("image", "channel", "y", "x")
    assert list(ds["image"].values) == [str(i) for i in group.read("image_ids")]
    assert {"labels", "class_name"} <= set(ds["neck"].coords)
    assert np.array_equal(ds["neck"].values, group.read("neck"))
    attrs = dict(ds.attrs)
    jsonschema.validate({"zarr_format": 3, "node_type": "group", "attributes": attrs}, json.loads(SCHEMA.read_text()))
    assert attrs["geoemb:chip_layout"] == {"layout_type": "regular_grid", "chip_size": [48, 48], "stride": [32, 32]}
    assert attrs["proj:code"] == "EPSG:32633" and attrs["geoemb:gsd"] == 10.0


def test_a_cache_of_the_previous_release_gains_the_attributes_without_changing_what_it_stores(tmp_path):
    shutil.copytree(RELEASE, tmp_path / "release")
    cache = tmp_path / "release" / "cache"
    for dataset in ("eurosat", "road"):
        group = samembed.open_cache(cache, dataset)
        signature, neck = group.signature, group.read("neck")
        before = _open_or_why(cache / f"{dataset}.zarr", group.name)
        assert isinstance(before, str) or "class_name" not in before.coords, before
        upgraded = _invoke("export", dataset, "--format", "zarr", "--cache-dir", cache)
        assert upgraded.exit_code == 0 and "added the geoemb: attributes" in upgraded.output, upgraded.output
        again = samembed.open_cache(cache, dataset)
        assert again.signature == signature and np.array_equal(again.read("neck"), neck)
        ds = xr.open_zarr(cache / f"{dataset}.zarr", group=group.name, consolidated=False)
        assert "class_name" in ds.coords and ds.sizes["image"] == group.num_images
        jsonschema.validate({"zarr_format": 3, "node_type": "group", "attributes": dict(ds.attrs)},
                            json.loads(SCHEMA.read_text()))
    assert "already has" in _invoke("export", "road", "--format", "zarr", "--cache-dir", cache).output


def _open_or_why(store, name):
    try:
        return xr.open_zarr(store, group=name, consolidated=False)
    except ValueError as err:  # xarray: one dimension name with two sizes
        return str(err)


def test_stac_items_read_in_pystac_with_assets_that_resolve(scene_cache, tmp_path):
    group = samembed.open_cache(scene_cache, "scene")
    parquet = samembed.formats.export_geoparquet(group, tmp_path / "chips.parquet")
    written = _invoke("export", "--format", "stac", "--geoparquet", parquet, "--out", tmp_path / "stac",
                      "--cache-dir", scene_cache)
    assert written.exit_code == 0, written.output
    collection = pystac.Collection.from_file(str(tmp_path / "stac" / "collection.json"))
    (item,) = list(collection.get_items())
    assert collection.extra_fields["emb:type"] == "chip" and collection.extra_fields["emb:dimensions"] == 32
    assert item.properties["emb:runtime_parameters"]["cache_group"] == group.name
    for asset in item.assets.values():
        assert not Path(asset.href).is_absolute() and Path(asset.get_absolute_href()).exists()
    west, south, east, north = item.bbox
    assert 14.9 < west < east < 15.1 and 45.0 < south < north < 45.3  # the scene near 15 E, 45 N
    shutil.move(str(tmp_path / "stac"), str(tmp_path / "moved"))  # relative hrefs: the folder reads from anywhere
    again = pystac.Collection.from_file(str(tmp_path / "moved" / "collection.json"))
    assert [i.id for i in again.get_items()] == [item.id]


def test_formats_refuse_an_unfinished_group_and_an_existing_output_in_one_line(scene_cache, tmp_path):
    import zarr

    shutil.copytree(scene_cache, tmp_path / "c")
    out = tmp_path / "exists.parquet"
    out.write_text("keep me")
    exists = _invoke("export", "--format", "geoparquet", "--out", out, "--cache-dir", tmp_path / "c")
    assert exists.exit_code == 1 and "exists; remove it or choose another --out" in exists.output
    assert out.read_text() == "keep me"
    group = samembed.open_cache(tmp_path / "c", "scene")
    zarr.open_group(tmp_path / "c" / "scene.zarr" / group.name, mode="a")["done"][0] = False
    for fmt in ("geoparquet", "stac"):
        result = _invoke("export", "--format", fmt, "--out", tmp_path / f"x-{fmt}", "--cache-dir", tmp_path / "c")
        assert result.exit_code == 1 and "incomplete" in result.output and not (tmp_path / f"x-{fmt}").exists()


def test_the_three_formats_work_on_an_object_store_cache(s3_bucket, tmp_path, tiny_checkpoint):
    data = make_synthetic_scene(tmp_path / "data", size=(64, 96), bands=4)
    url = f"s3://{s3_bucket}/cache"
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, img_size=64, bands="1,2,3",
                     stretch="percentile", chip_size=48, chip_overlap=16, cache_dir=url, workers=0, progress=False)
    group = samembed.open_cache(url, "scene")
    assert "geoemb:type" in group.attrs and "class_name" in group.arrays  # written at extraction
    parquet = samembed.formats.export_geoparquet(group, tmp_path / "s3.parquet")
    assert gpd.read_parquet(parquet).crs.to_epsg() == 32633
    collection = samembed.formats.write_stac(group, tmp_path / "stac", parquet)
    (item,) = list(pystac.Collection.from_file(str(collection)).get_items())
    assert item.assets["embeddings"].href == f"{url}/scene.zarr/{group.name}"
    ds = xr.open_zarr(f"{url}/scene.zarr", group=group.name, consolidated=False,
                      storage_options={"client_kwargs": {}})
    assert ds.sizes["image"] == group.num_images


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, scene_cache, tmp_path):
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("No module named 'pyarrow'", name="pyarrow")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    result = _invoke("export", "--format", "geoparquet", "--out", tmp_path / "x.parquet", "--cache-dir", scene_cache)
    assert result.exit_code == 1 and 'pip install "samembed[geo]"' in result.output and "pyarrow" in result.output


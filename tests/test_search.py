"""Similarity search (samembed.search, `samembed search`): generated caches where the right
answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from samembed.cache import open_cache
from samembed.cache.synthetic import write_embedding_cache
from samembed.cli import app
from samembed.errors import SignatureMismatchError, UsageError
from samembed.search import MapPoint, search
from samembed.search.index import open_index
from samembed.search.space import Space
from samembed.search.synthetic import write_scene_cache

runner = CliRunner()


@pytest.fixture()
def planted(tmp_path):
    """The generated EuroSAT cache with three near-duplicates of row 7 planted at rows 150, 60, 199."""
    group = write_embedding_cache(tmp_path / "cache", noise=1.0)
    neck = group["neck"][:].astype(np.float32)
    rng = np.random.default_rng(5)
    for row in (150, 60, 199):
        neck[row] = neck[7] + 0.01 * rng.normal(0, 1, neck.shape[1])
    group["neck"][:] = neck.astype("float16")
    return tmp_path / "cache"


def test_planted_near_duplicates_rank_first_in_both_modes_and_indexes(planted):
    group = open_cache(planted)
    for mode in ("neighbours", "fewshot"):
        for index in ("exact", "approximate"):
            result = search(group, ["class0/7.jpg"], mode=mode, k=5, index=index)
            assert set(result.hits["row"][:3]) == {150, 60, 199}, (mode, index)
            assert list(result.hits["rank"]) == [1, 2, 3, 4, 5]
            assert 7 not in set(result.hits["row"])  # the query is left out
            assert result.hits["score"].is_monotonic_decreasing
    exact = search(group, [7], k=3, index="exact")
    assert exact.hits["score"].iloc[0] > 0.99
    assert list(exact.hits["label"]) == [f"class{row // 40}" for row in exact.hits["row"]]  # 40 images a class
    assert exact.heat_map is None and exact.crs is None and "exact" in exact.description


def test_a_negative_pushes_its_likes_down(planted):
    group = open_cache(planted)
    plain = search(group, [7], k=20)
    pushed = search(group, [7], [150], k=20)
    assert set(plain.hits["row"][:3]) == {150, 60, 199}
    assert 150 not in set(pushed.hits["row"])  # a negative is left out, and its near-duplicates fall
    assert pushed.hits.set_index("row").loc[60, "rank"] > 3 if 60 in set(pushed.hits["row"]) else True


def test_exact_blocks_equal_one_product(planted, monkeypatch):
    """The running top-k over small blocks gives the same hits as scoring everything at once."""
    import samembed.search.space as space

    group = open_cache(planted)
    whole = search(group, [3, "class2/90.jpg"], k=30, index="exact").hits
    monkeypatch.setattr(space, "BLOCK_FLOATS", 16 * 10)  # blocks of one 64-row chunk
    assert Space(group).block_rows == 64
    blocked = search(group, [3, "class2/90.jpg"], k=30, index="exact").hits
    assert whole[["row", "score"]].equals(blocked[["row", "score"]])
    x = group.read("neck").astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[[3, 90]].mean(0)
    q /= np.linalg.norm(q)
    scores = x @ q
    scores[[3, 90]] = -np.inf
    assert list(whole["row"]) == list(np.argsort(-scores, kind="stable")[:30])


def test_approximate_recall_against_exact_on_cells(tmp_path):
    write_embedding_cache(tmp_path / "cache", classes=5, per_class=60, dim=16, grid=6, noise=0.5)
    group = open_cache(tmp_path / "cache")
    recalls = []
    for row in (0, 77, 150, 299):
        query = [row]
        exact = search(group, query, granularity="cell", k=10, index="exact").hits
        approximate = search(group, query, granularity="cell", k=10, index="approximate").hits
        recalls.append(len(set(zip(exact["row"], exact["cell_y"], exact["cell_x"]))
                           & set(zip(approximate["row"], approximate["cell_y"], approximate["cell_x"]))) / 10)
    assert np.mean(recalls) >= 0.9
    meta = open_index(Space(group, "cell")).meta
    assert meta["vectors"] == 300 * 36 and meta["recall_at_10"] >= 0.9


def test_a_planted_pattern_lights_up_in_the_heat_map_at_its_map_coordinates(tmp_path):
    planted = write_scene_cache(tmp_path / "cache")
    group = open_cache(tmp_path / "cache")
    x, y = planted.centre(0)
    result = search(group, [MapPoint(x, y)], granularity="cell", k=10)
    heat, transform = result.heat_map, result.heat_transform
    assert heat.dtype == np.float32 and heat.shape == (384 // 16, 512 // 16) and result.crs == "EPSG:32633"
    from affine import Affine

    to_pixel = ~Affine(*transform)
    for site in (0, 1):  # the queried site, and the other one the search has to find
        col, row = to_pixel @ planted.centre(site)
        assert heat[int(row), int(col)] > 0.9
    background = np.nanmedian(heat)
    assert background < 0.5
    assert np.isnan(heat[:, :2]).all()  # the nodata strip (32 pixels: two cells)
    # The other site's cells are the best hits, with its map coordinates.
    c0, r0, c1, r1 = planted.sites[1]
    origin = Affine(*planted.transform)
    (x0, y0), (x1, y1) = origin @ (c0, r0), origin @ (c1, r1)
    other = result.hits[(result.hits["x"] > x0) & (result.hits["x"] < x1) & (result.hits["y"] < y0)
                        & (result.hits["y"] > y1)]
    assert len(other) >= 5 and set(other["rank"]) >= {1}


def test_cli_writes_every_output_of_a_scene_search(tmp_path):
    planted = write_scene_cache(tmp_path / "cache")
    x, y = planted.centre(0)
    out = tmp_path / "out"
    result = runner.invoke(app, ["search", "--cache-dir", str(tmp_path / "cache"), "--positive-point", f"{x},{y}",
                                 "--granularity", "cell", "-k", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"hits.csv", "hits.geojson", "hits.parquet", "heatmap.tif", "heatmap.png",
                                               "contact_sheet.png"}
    import pandas as pd
    import pyarrow.parquet as pq
    import rasterio

    hits = pd.read_csv(out / "hits.csv")
    assert list(hits.columns) == ["rank", "row", "id", "score", "label", "cell_y", "cell_x", "x", "y", "group"]
    geojson = json.loads((out / "hits.geojson").read_text())
    assert len(geojson["features"]) == 8 and geojson["crs"]["properties"]["name"].endswith("32633")
    ring = geojson["features"][0]["geometry"]["coordinates"][0]
    assert min(p[0] for p in ring) < hits["x"][0] < max(p[0] for p in ring)  # the footprint holds the cell's centre
    geo = json.loads(pq.read_schema(out / "hits.parquet").metadata[b"geo"])
    assert geo["columns"]["geometry"]["encoding"] == "WKB" and geo["columns"]["geometry"]["crs"]["id"]["code"] == 32633
    with rasterio.open(out / "heatmap.tif") as src:
        assert src.dtypes[0] == "float32" and src.crs.to_epsg() == 32633
        col, row = ~src.transform @ planted.centre(1)
        assert src.read(1)[int(row), int(col)] > 0.9
    # hits.csv given back as positives: the cells' map points
    again = runner.invoke(app, ["search", "--cache-dir", str(tmp_path / "cache"), "--positives-file",
                                str(out / "hits.csv"), "--granularity", "cell", "-k", "3", "--out", str(tmp_path / "o2")])
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("args, message", [
    (["-p", "nope.jpg"], "is not an image id"),
    (["-p", "#5000"], "row 5000 is not in"),
    (["-p", "#1", "-k", "400"], "ask for at most 199"),
    (["-p", "#1", "--granularity", "cell", "--feature", "neck"], "drop feature"),
    (["-p", "#1", "--mode", "best"], "mode must be"),
    (["--positive-point", "1,2"], "not a dataset of georeferenced chips"),
    (["-p", "#1", "-n", "#1"], "both positive and negative"),
])
def test_bad_input_is_one_line_and_nothing_is_written(embedding_cache, tmp_path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["search", "--cache-dir", str(embedding_cache), *args, "--out", str(out)])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: ")
    assert not out.exists() and not (embedding_cache / "eurosat.search").exists()


def test_bad_scene_input(tmp_path):
    write_scene_cache(tmp_path / "cache")
    group = open_cache(tmp_path / "cache")
    with pytest.raises(UsageError, match="lies outside every chip"):
        search(group, [MapPoint(0, 0)], granularity="cell")
    with pytest.raises(UsageError, match="holds no data"):  # the nodata strip
        search(group, [MapPoint(500000 + 50, 5000000 - 50)], granularity="cell")


def test_positives_from_two_groups_and_no_grid_map(embedding_cache, tmp_path):
    (tmp_path / "q.csv").write_text("id,group\nclass0/0.jpg,fake-enc@64\nclass0/1.jpg,other@64\n")
    result = runner.invoke(app, ["search", "--cache-dir", str(embedding_cache), "--positives-file",
                                 str(tmp_path / "q.csv"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "other cache groups (other@64)" in result.output
    group = open_cache(embedding_cache)  # opened, then its grid map goes: every group holds one, so an opened one
    import zarr

    del zarr.open_group(embedding_cache / "eurosat.zarr" / "fake-enc@64", mode="a")["grid"]
    with pytest.raises(UsageError, match="stores no grid map"):
        search(group, [0], granularity="cell")


def test_blank_images_are_left_out_and_cannot_be_queries(planted):
    import zarr

    arrays = zarr.open_group(planted / "eurosat.zarr" / "fake-enc@64", mode="a")
    ok = arrays["ok"][:]
    ok[150] = False
    arrays["ok"][:] = ok
    group = open_cache(planted)
    assert 150 not in set(search(group, [7], k=5).hits["row"])
    with pytest.raises(UsageError, match="not usable"):
        search(group, [150])


def test_an_index_of_another_signature_is_refused_and_rebuilt(planted):
    group = open_cache(planted)
    search(group, [7], k=3, index="approximate")
    space_key = open_index(Space(group)).meta["key"]
    import zarr

    arrays = zarr.open_group(planted / "eurosat.zarr" / "fake-enc@64", mode="a")
    arrays.attrs["signature"] = {**arrays.attrs["signature"], "grid": 5}
    changed = open_cache(planted)
    with pytest.raises(SignatureMismatchError, match="built for another signature"):
        open_index(Space(changed))
    with pytest.warns(UserWarning, match="building it again"):
        search(changed, [7], k=3, index="approximate")
    assert open_index(Space(changed)).meta["key"]["signature"] != space_key["signature"]


def test_search_on_an_s3_cache(s3_bucket, tmp_path):
    url = f"s3://{s3_bucket}/cache"
    group = write_embedding_cache(url, noise=1.0)
    assert group is not None
    remote = open_cache(url)
    exact = search(remote, [7], k=5, index="exact")
    approximate = search(remote, [7], k=5, index="approximate")
    assert open_index(Space(open_cache(url))) is not None  # stored beside the store on S3
    assert len(set(exact.hits["row"]) & set(approximate.hits["row"])) >= 4

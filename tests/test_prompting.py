"""Prompt segmentation from the cache (issue 14): parity with SamPredictor, coordinates of
non-square images and georeferenced scenes, outputs, one-line mistakes, and zero-shot prompts
scored like the trained decoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from typer.testing import CliRunner

import samembed
from samembed.cli import app
from samembed.datasets import load_dataset, make_synthetic_roads, make_synthetic_scene
from samembed.encoders import build_sam, create_encoder
from samembed.encoders.sam import resize_for_input
from samembed.errors import UsageError
from samembed.prompting.predictor import CachePredictor
from samembed.prompting.prompts import Prompt, read_prompts
from samembed.prompting.run import prompt
from samembed.prompting.zero_shot import PromptRecipe

PROMPTS = [
    Prompt(((30.0, 20.0),), (1,)),  # a point
    Prompt(((30.0, 20.0), (5.0, 40.0)), (1, 0)),  # a positive and a negative point
    Prompt(box=(10.0, 5.0, 60.0, 40.0)),  # a box
    Prompt(((30.0, 20.0),), (1,), (10.0, 5.0, 60.0, 40.0)),  # both
]


def reference_predictor(checkpoint, size: int) -> SamPredictor:
    """segment_anything's own SamPredictor for the checkpoint at input ``size``: its modules built
    by segment_anything for that size, the image encoder's position embedding resized to it."""
    sd = torch.load(checkpoint, weights_only=True)
    sam = build_sam(img_size=size)
    arch = create_encoder("sam", checkpoint=checkpoint, img_size=size).arch
    encoder = {k[len("image_encoder."):]: v for k, v in sd.items() if k.startswith("image_encoder.")}
    sam.image_encoder.load_state_dict(resize_for_input(encoder, arch, size))
    for part in ("prompt_encoder", "mask_decoder"):
        getattr(sam, part).load_state_dict({k[len(part) + 1:]: v for k, v in sd.items() if k.startswith(part + ".")})
    return SamPredictor(sam.eval())


@pytest.fixture(scope="module")
def roads(tmp_path_factory, tiny_checkpoint):
    """Generated roads of non-square sizes, extracted at 1024 (native) and at 256."""
    tmp = tmp_path_factory.mktemp("prompt")
    data = make_synthetic_roads(tmp / "data", layout="seg-folder", counts=(3, 0, 0), size=72, seed=3)
    for size in (1024, 256):
        samembed.extract("seg-folder", data_dir=data, checkpoint=tiny_checkpoint, img_size=size, workers=0,
                         progress=False, cache_dir=tmp / f"cache{size}")
    return tmp, data


@pytest.mark.parametrize("size", [1024, 256])
def test_masks_from_the_cache_equal_samPredictors_on_the_image(roads, tiny_checkpoint, size):
    tmp, data = roads
    group = samembed.open_cache(tmp / f"cache{size}", "seg-folder")
    predictor = CachePredictor(group)
    reference = reference_predictor(tiny_checkpoint, size)
    index = load_dataset("seg-folder", data)
    for i in range(len(index)):
        rgb = samembed.datasets.read_rgb(index.path(i))
        assert rgb.shape[0] != rgb.shape[1]  # non-square: the coordinate mapping is exercised
        reference.set_image(rgb)
        with torch.inference_mode():
            for multimask in (True, False):
                # the decoder itself: on the same float32 embedding, the same logits and IoUs
                ours, ours_iou = predictor.logits(i, PROMPTS, multimask, embedding=reference.features)
                for p, prompt_ in enumerate(PROMPTS):
                    points = np.array(prompt_.points) if prompt_.points else None
                    labels = np.array(prompt_.labels) if prompt_.points else None
                    box = np.array(prompt_.box) if prompt_.box else None
                    masks, iou, low_res = reference.predict(points, labels, box, multimask_output=multimask)
                    torch.testing.assert_close(ours[p], torch.from_numpy(low_res), rtol=1e-5, atol=1e-5)
                    torch.testing.assert_close(ours_iou[p], torch.from_numpy(iou), rtol=1e-5, atol=1e-5)
                # from the cache (float16 embeddings): the same masks up to float16 rounding
                answers = predictor.predict(i, PROMPTS, multimask)
                for answer, prompt_ in zip(answers, PROMPTS):
                    points = np.array(prompt_.points) if prompt_.points else None
                    labels = np.array(prompt_.labels) if prompt_.points else None
                    box = np.array(prompt_.box) if prompt_.box else None
                    masks, iou, _ = reference.predict(points, labels, box, multimask_output=multimask)
                    best = int(np.argmax(iou))
                    assert answer.mask.shape == masks[best].shape == rgb.shape[:2]
                    assert (answer.mask == masks[best]).mean() > 0.995
                    assert answer.score == pytest.approx(float(iou[best]), abs=2e-2)


def test_batched_prompts_answer_as_one_at_a_time(roads, monkeypatch):
    """Many prompts of mixed kinds on one image, split into decoder calls of 3: each answer equals
    the answer to that prompt alone, in the order given."""
    tmp, _ = roads
    monkeypatch.setattr("samembed.prompting.predictor.PROMPTS_PER_CALL", {"cpu": 3})
    predictor = CachePredictor(samembed.open_cache(tmp / "cache256", "seg-folder"))
    rng = np.random.default_rng(1)
    many = [Prompt(((float(x), float(y)),), (1,)) for x, y in rng.uniform(0, 40, (7, 2))] + PROMPTS * 2
    rng.shuffle(many)
    together, together_iou = predictor.logits(0, many)
    for p, prompt_ in enumerate(many):
        alone, alone_iou = predictor.logits(0, [prompt_])
        torch.testing.assert_close(together[p], alone[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(together_iou[p], alone_iou[0], rtol=1e-4, atol=1e-4)


def test_a_prompt_writes_a_png_and_reports_its_score(roads, tmp_path):
    tmp, data = roads
    image = load_dataset("seg-folder", data).image_ids[1]
    runner = CliRunner()
    result = runner.invoke(app, ["prompt", "--dataset", "seg-folder", "--image", image, "--point", "20,15",
                                 "--point", "3,3,0", "--box", "2,2,40,30", "--cache-dir", str(tmp / "cache256"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{image} prompt: ") and "predicted IoU" in result.output
    (png,) = (tmp_path / "out").glob("*.png")
    from PIL import Image

    mask = np.asarray(Image.open(png))
    assert mask.shape == samembed.datasets.read_rgb(data / image).shape[:2] and set(np.unique(mask)) <= {0, 255}


def test_the_overlay_draws_every_prompt_and_mask_on_the_image_the_encoder_saw(roads, tmp_path):
    from samembed.prompting.overlay import cache_image, composite_note, draw_sheet

    tmp, data = roads
    image = load_dataset("seg-folder", data).image_ids[1]
    csv = tmp_path / "prompts.csv"
    csv.write_text(f"image,prompt,x,y,label,x0,y0,x1,y1\n{image},road,20,15,1,,,,\n{image},field,,,,2,2,40,30\n")
    results = prompt("seg-folder", prompts_file=csv, cache_dir=tmp / "cache256", out=tmp_path / "out", overlay=True)
    stem = Path(image).with_suffix("").as_posix().replace("/", "_")
    sheet = tmp_path / "out" / f"{stem}_overlay.png"
    assert all(sheet in r.files and sheet.with_suffix(".pdf") in r.files for r in results)
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and sheet.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    group = samembed.open_cache(tmp / "cache256", "seg-folder")
    assert np.array_equal(cache_image(group, results[0].index), samembed.datasets.read_rgb(data / image))
    answers = [r.answer for r in results]
    fig = draw_sheet(cache_image(group, results[0].index), [a.mask for a in answers],
                     [{"points": a.prompt.points, "labels": a.prompt.labels, "box": a.prompt.box} for a in answers],
                     [a.score for a in answers], image, composite_note(group.signature), ["road", "field"], True)
    titles = [ax.get_title().replace("\n", " ") for ax in fig.axes]
    assert titles[0].startswith("image (as stored)")
    assert titles[1].startswith(f"road: predicted IoU {answers[0].score:.3f}")
    assert titles[2].startswith(f"field: predicted IoU {answers[1].score:.3f}")
    assert len(fig.axes[2].patches) == 1 and not fig.axes[1].patches  # the box, drawn where it was given
    assert "synthetic data" in fig._suptitle.get_text()  # a tiny random checkpoint
    assert composite_note({"composite": {"bands": ["B04", "B03", "B02"], "preset": "s2-rgb",
                                         "stretch": {"kind": "fixed", "low": [0] * 3, "high": [3000] * 3}}}) == \
        "s2-rgb, stretch fixed 0–3000"
    with pytest.raises(UsageError, match=r"the overlay is a file: give the folder to write it to \(--out\)"):
        prompt("seg-folder", prompts_file=csv, cache_dir=tmp / "cache256", overlay=True)


def test_prompt_mistakes_are_one_line_and_write_nothing(roads, tmp_path, embedding_cache):
    tmp, data = roads
    image = load_dataset("seg-folder", data).image_ids[0]
    common = dict(cache_dir=tmp / "cache256", out=tmp_path / "out")
    for kwargs, message in (
        (dict(image=image, points=["500,10"]), r"the point \(500, 10\) outside the image"),
        (dict(image=image, boxes=["40,30,10,5"]), "the box .* has its corners swapped"),
        (dict(image="nope.png", points=["1,1"]), "unknown image id 'nope.png'"),
        (dict(image=image, points=["1,1,7"]), "label is 1 .* or 0"),
        (dict(image=image, points=["1;1"]), "--point takes 2 or 3 comma-separated numbers"),
        (dict(image=image), "needs at least one point or a box"),
        (dict(points=["1,1"]), "--image ID"),
        (dict(image=image, points=["1,1"], in_map=True), "not a dataset of georeferenced chips"),
    ):
        with pytest.raises(UsageError, match=message) as err:
            prompt("seg-folder", **kwargs, **common)
        assert "\n" not in str(err.value)
    from samembed.cache.synthetic import write_embedding_cache

    group = write_embedding_cache(tmp_path / "cls", name="sam-custom-0@128")  # a classification cache: grid 4 of 8
    group.attrs["signature"] = {**group.attrs["signature"], "encoder": {"encoder": "sam", "img_size": 128,
                                                                         "arch": {"patch_size": 16}}}
    with pytest.raises(UsageError, match=r"pooled to 4 x 4; prompts need the whole map: extract again with --grid 8"):
        prompt("eurosat", image="class0/0.jpg", points=["1,1"], cache_dir=tmp_path / "cls", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_point_in_map_coordinates_lands_on_its_chip_and_the_outputs_are_georeferenced(tmp_path, tiny_checkpoint):
    import rasterio

    data = make_synthetic_scene(tmp_path / "scene", size=(300, 400), origin=(600000.0, 4000000.0), pixel=2.0,
                                masks=True)
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, bands="1,2,3", stretch="fixed:0,4000",
                     chip_size=128, img_size=256, workers=0, progress=False, cache_dir=tmp_path / "cache")
    x, y = 600000.0 + 2 * 300.5, 4000000.0 - 2 * 200.5  # pixel (300.5, 200.5) of the scene
    results = prompt("scene", points=[f"{x},{y}"], in_map=True, cache_dir=tmp_path / "cache", out=tmp_path / "out")
    (result,) = results
    group = samembed.open_cache(tmp_path / "cache", "scene")
    col, row, w, h = (int(v) for v in group.read("window")[result.index])
    assert col <= 300 < col + w and row <= 200 < row + h
    assert result.answer.prompt.points == ((300.5 - col, 200.5 - row),)
    tif = next(p for p in result.files if p.suffix == ".tif")
    with rasterio.open(tif) as src, rasterio.open(data / "scene.tif") as scene:
        assert src.crs == scene.crs and (src.width, src.height) == (w, h)
        assert src.transform == scene.transform @ rasterio.Affine.translation(col, row)
        assert np.array_equal(src.read(1).astype(bool), result.answer.mask)
    geojson = json.loads(next(p for p in result.files if p.suffix == ".geojson").read_text())
    assert geojson["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"
    if result.answer.mask.any():
        xs = [c[0] for f in geojson["features"] for ring in f["geometry"]["coordinates"] for c in ring]
        assert min(xs) >= 600000.0 + 2 * col and max(xs) <= 600000.0 + 2 * (col + w)
    csv = tmp_path / "prompts.csv"
    csv.write_text(f"prompt,x,y,label,x0,y0,x1,y1\na,{x},{y},1,,,,\na,{x + 4},{y},0,,,,\nb,,,,{x - 20},{y - 20},{x + 20},{y + 20}\n")
    two = prompt("scene", prompts_file=csv, in_map=True, cache_dir=tmp_path / "cache")
    assert [r.answer.prompt.name for r in two] == ["a", "b"] and two[0].answer.prompt.labels == (1, 0)
    box = two[1].answer.prompt.box
    assert box[0] < box[2] and box[1] < box[3]  # map y runs up, pixel rows down: the corners are reordered


def test_the_zero_shot_recipes_derive_prompts_from_each_component():
    truth = np.zeros((40, 60), bool)
    truth[5:10, 5:30] = True  # a bar
    truth[20:35, 40:45] = True  # another
    rng = np.random.default_rng(0)
    prompts = PromptRecipe(points=3, negatives=2)(truth, rng)
    assert len(prompts) == 2
    for p in prompts:
        pos = [pt for pt, label in zip(p.points, p.labels) if label == 1]
        neg = [pt for pt, label in zip(p.points, p.labels) if label == 0]
        assert len(pos) == 3 and len(neg) == 2
        assert all(truth[int(y), int(x)] for x, y in pos) and not any(truth[int(y), int(x)] for x, y in neg)
    (box1, box2) = [p.box for p in PromptRecipe(box=True)(truth, rng)]
    assert box1 == (5.0, 5.0, 30.0, 10.0) and box2 == (40.0, 20.0, 45.0, 35.0)
    centre = PromptRecipe(centre=True)(truth, rng)[0].points[0]
    assert centre == (17.0, 7.0)  # the innermost pixel of the bar
    assert PromptRecipe(points=1)(np.zeros((5, 5), bool), rng) == []  # nothing to prompt


def test_zero_shot_heads_run_in_a_sweep_beside_the_decoders_and_reach_the_report(tmp_path, tiny_checkpoint):
    data = make_synthetic_roads(tmp_path / "data", counts=(6, 2, 4), size=64)
    samembed.extract("road", data_dir=data, checkpoint=tiny_checkpoint, img_size=128, workers=0, progress=False,
                     cache_dir=tmp_path / "cache")
    records = samembed.sweep("road", heads=["sam-box", "sam-3points", "sam-conv"], splits=["standard"], epochs=2,
                             cache_dir=tmp_path / "cache", runs_dir=tmp_path / "runs", progress=False)
    zero = {r["config"]["head"]: r for r in records if r["config"]["head"].startswith("sam-") and r["config"]["head"] != "sam-conv"}
    assert set(zero) == {"sam-box", "sam-3points"}
    for record in zero.values():
        m = record["metrics"]
        assert record["curves"] == {} and "best_epoch" not in m and m["evaluated_on"] == "test"
        assert len(m["per_image"]) == 4 and "ground truth" in m["selection"]
        assert all(row["prompts"] and "mean_dice" not in row for row in m["per_image"] if row["tp"] + row["fn"])
        assert 0 <= m["micro_dice"] <= 1
    again = samembed.sweep("road", heads=["sam-box"], splits=["standard"], cache_dir=tmp_path / "cache",
                           runs_dir=tmp_path / "runs", progress=False)
    assert again == []  # resumes like any head
    report = samembed.write_report(tmp_path / "runs")
    names = [p.name for p in report.files]
    assert "segmentation_examples_road.png" in names and "segmentation_boxplots_road.png" in names
    summary = report.summary
    assert {"road_sam-box", "road_sam-3points"} <= {f"road_{h}" for h in summary["head"]}


def test_geojson_polygons_with_holes_are_boxes_and_malformed_features_are_one_line(tmp_path):
    # A polygon with a hole has rings of different lengths: read as one array they were a
    # traceback; the box is the outer ring's bounds.
    outer, hole = [[0, 0], [10, 0], [10, 20], [0, 20], [0, 0]], [[2, 2], [4, 2], [4, 4], [2, 2]]
    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [outer, hole]},
                 "properties": {"prompt": "a"}},
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 6]},
                 "properties": {"prompt": "a", "label": 1}}]
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    (prompt,) = read_prompts(path)
    assert prompt.box == (0.0, 0.0, 10.0, 20.0) and prompt.points == ((5.0, 6.0),) and prompt.labels == (1,)
    for geometry, properties in (({"type": "Point", "coordinates": [5, 6]}, {"label": "fg"}),
                                 ({"type": "Point"}, {}), ({"type": "Polygon", "coordinates": [[1, 2]]}, {})):
        path.write_text(json.dumps({"type": "FeatureCollection",
                                    "features": [{"type": "Feature", "geometry": geometry, "properties": properties}]}))
        with pytest.raises(UsageError, match=r"feature 0(:| \().*(malformed|label is 1)") as refused:
            read_prompts(path)
        assert "\n" not in str(refused.value)


# ------------------------------------------------------------------------------ issue 22


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory, tiny_checkpoint):
    """A 300 x 400 scene in EPSG:32633 (2 m pixels) extracted as chips of 128."""
    tmp = tmp_path_factory.mktemp("scene")
    data = make_synthetic_scene(tmp / "scene", size=(300, 400), origin=(600000.0, 4000000.0), pixel=2.0)
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, bands="1,2,3", stretch="fixed:0,4000",
                     chip_size=128, img_size=256, workers=0, progress=False, cache_dir=tmp / "cache")
    return tmp / "cache"


def write_geojson(path, features, crs=None):
    """A FeatureCollection of (geometry, properties) pairs, with a 2008-style ``crs`` member naming ``crs``."""
    collection = {"type": "FeatureCollection",
                  "features": [{"type": "Feature", "geometry": g, "properties": p} for g, p in features]}
    if crs is not None:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(collection))
    return path


def test_a_geojson_in_another_crs_lands_where_its_reprojected_coordinates_say(scene_cache, tmp_path):
    """The same field given in EPSG:32632 (a crs member) and in WGS 84 (RFC 7946: no crs member)
    on an EPSG:32633 scene: placed by its reprojected coordinates, not its bare numbers (those lie
    hundreds of kilometres off the scene), and the output says which CRS was assumed."""
    from rasterio.warp import transform

    x, y = 600000.0 + 2 * 300.5, 4000000.0 - 2 * 200.5  # pixel (300.5, 200.5) of the scene
    corners = ([x - 40, x + 40, x + 40, x - 40], [y - 20, y - 20, y + 20, y + 20])  # a 40 x 20 pixel box around it
    group = samembed.open_cache(scene_cache, "scene")
    for crs, name, said in (("urn:ogc:def:crs:EPSG::32632", "EPSG:32632", "EPSG:32632 (the file's crs member)"),
                            (None, "EPSG:4326", "OGC:CRS84 (RFC 7946 GeoJSON without a crs member")):
        (px,), (py,) = transform("EPSG:32633", name, [x], [y])
        xs, ys = transform("EPSG:32633", name, *corners)
        ring = [[min(xs), min(ys)], [max(xs), min(ys)], [max(xs), max(ys)], [min(xs), max(ys)], [min(xs), min(ys)]]
        path = write_geojson(tmp_path / "field.geojson", [({"type": "Point", "coordinates": [px, py]}, {"prompt": "f"}),
                                                          ({"type": "Polygon", "coordinates": [ring]}, {"prompt": "f"})],
                             crs)
        out = tmp_path / f"out-{name.replace(':', '')}"
        (result,) = prompt("scene", prompts_file=path, cache_dir=scene_cache, out=out)
        col, row, w, h = (int(v) for v in group.read("window")[result.index])
        assert col <= 300 < col + w and row <= 200 < row + h
        assert result.answer.prompt.points[0] == pytest.approx((300.5 - col, 200.5 - row), abs=1e-3)
        x0, y0, x1, y1 = result.answer.prompt.box  # the reprojected bounds hold the box, a few pixels larger
        assert x0 <= 280.5 - col and y0 <= 190.5 - row and x1 >= 320.5 - col and y1 >= 210.5 - row
        assert x0 > 270 - col and y0 > 180 - row and x1 < 330 - col and y1 < 220 - row
        assert result.crs.startswith(said) and result.crs.endswith("reprojected to EPSG:32633 (the scene's CRS)")
        written = json.loads((out / "scene_masks.geojson").read_text())
        assert all(f["properties"]["prompt_crs"] == result.crs for f in written["features"])
        assert (out / "masks.csv").read_text().splitlines()[1].endswith(f'"{result.crs}"')
        cli = CliRunner().invoke(app, ["prompt", "--dataset", "scene", "--prompts", str(path), "--cache-dir",
                                       str(scene_cache), "--out", str(out)])
        assert cli.exit_code == 0 and cli.output.splitlines()[0] == f"map coordinates in {result.crs}", cli.output
    (pixel,) = prompt("scene", points=[f"{x},{y}"], in_map=True, cache_dir=scene_cache)
    assert pixel.crs == "EPSG:32633 (the scene's CRS)"


def test_a_geojson_that_cannot_be_placed_is_one_line(scene_cache, tmp_path, tiny_checkpoint):
    point = [({"type": "Point", "coordinates": [16.0, 36.0]}, {})]
    for crs, message in (("urn:ogc:def:crs:EPSG::999999", "the CRS 'urn:ogc:def:crs:EPSG::999999' is not known"),
                         ("EPSG:32632", "lies outside every chip: it is at")):  # lon/lat read as metres
        with pytest.raises(UsageError, match=message) as refused:
            prompt("scene", prompts_file=write_geojson(tmp_path / "p.geojson", point, crs), cache_dir=scene_cache)
        assert "\n" not in str(refused.value)
    path = tmp_path / "null.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": None, "features": []}))
    with pytest.raises(UsageError, match=r"says its CRS is unknown \(\"crs\": null\)"):
        read_prompts(path)
    data = make_synthetic_scene(tmp_path / "plain", size=(128, 128), crs=None)
    samembed.extract("scene", data_dir=data, checkpoint=tiny_checkpoint, bands="1,2,3", stretch="fixed:0,4000",
                     chip_size=128, img_size=128, workers=0, progress=False, cache_dir=tmp_path / "plain-cache")
    with pytest.raises(UsageError, match="scene.tif has no CRS, so coordinates in OGC:CRS84 .* cannot be placed"):
        prompt("scene", prompts_file=write_geojson(tmp_path / "p.geojson", point), cache_dir=tmp_path / "plain-cache")


def test_labels_are_exactly_0_or_1_and_numbers_finite_else_one_line(tmp_path):
    from samembed.prompting.prompts import command_line_prompt

    csv = tmp_path / "p.csv"
    for rows, message in (("x,y,label\n1,2,0.6\n", r"line 2: a point's label is 1 .* or 0 .*, not 0.6"),
                          ("x,y,label\n1,2,nan\n", "line 2: label is 'nan', not a finite number"),
                          ("x,y,label\n1,2,inf\n", "line 2: label is 'inf', not a finite number"),
                          ("x,y,label\ninf,2,1\n", "line 2: x is 'inf', not a finite number"),
                          ("x0,y0,x1,y1\n0,0,NaN,4\n", "line 2: x1 is 'NaN', not a finite number")):
        csv.write_text(rows)
        with pytest.raises(UsageError, match=message) as refused:
            read_prompts(csv, image="a.png")
        assert "\n" not in str(refused.value)
    csv.write_text("x,y,label\n")
    with pytest.raises(UsageError, match="holds no prompts"):
        prompt("seg-folder", prompts_file=csv, cache_dir=tmp_path)
    csv.write_text("x,y,label\n1,2,1.0\n3,4,0\n")
    assert [p.labels for p in read_prompts(csv, image="a.png")] == [(1,), (0,)]
    path = tmp_path / "p.geojson"
    for geometry, properties, message in (
        ({"type": "Point", "coordinates": [5, 6]}, {"label": 0.6}, r"feature 0: a point's label .* not 0.6"),
        ({"type": "Point", "coordinates": [5, 6]}, {"label": True}, r"feature 0: a point's label .* not True"),
        ({"type": "Point", "coordinates": [float("nan"), 6]}, {}, "feature 0 .*not finite numbers"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [float("inf"), 0], [0, 1], [0, 0]]]}, {},
         "feature 0 .*not finite numbers"),
    ):
        write_geojson(path, [(geometry, properties)])  # json writes NaN and Infinity, as JSON readers take them
        with pytest.raises(UsageError, match=message):
            read_prompts(path)
    with pytest.raises(UsageError, match=r"--point 1,1,0.6: a point's label is 1"):
        command_line_prompt(["1,1,0.6"], image="a.png")
    with pytest.raises(UsageError, match="coordinates are finite numbers, not nan"):
        command_line_prompt(["nan,1"], image="a.png")
    # 100,000 points in one prompt asked the decoder for 320 GB: refused when read, naming the limit
    from samembed.prompting.prompts import MAX_POINTS

    csv.write_text("prompt,x,y\n" + "".join(f"a,{k % 50},{k % 40}\n" for k in range(100_000)))
    with pytest.raises(UsageError, match=f"prompt a has 100000 points; a prompt takes at most {MAX_POINTS}"):
        read_prompts(csv, image="a.png")
    with pytest.raises(UsageError, match=f"{MAX_POINTS + 1} points in one prompt; a prompt takes at most"):
        command_line_prompt([f"{k},1" for k in range(MAX_POINTS + 1)], image="a.png")
    assert len(command_line_prompt([f"{k},1" for k in range(MAX_POINTS)], image="a.png").points) == MAX_POINTS


def test_many_prompts_are_answered_in_bounded_batches_and_written_as_they_come(roads, tmp_path, monkeypatch):
    """Each mask is on disk when its result is yielded, the decoder never sees more than a batch,
    the answers equal the same prompts answered together, and the command prints a summary with
    masks.csv listing every mask instead of a line per prompt."""
    import samembed.prompting.predictor as predictor_module
    from samembed.prompting.run import PROGRESS_FROM, iter_prompts

    tmp, data = roads
    ids = load_dataset("seg-folder", data).image_ids[:2]
    rng = np.random.default_rng(0)
    rows = ["image,prompt,x,y,label"] + [f"{ids[k % 2]},p{k},{rng.uniform(0, 30):.1f},{rng.uniform(0, 30):.1f},1"
                                         for k in range(PROGRESS_FROM + 5)]
    csv = tmp_path / "many.csv"
    csv.write_text("\n".join(rows) + "\n")
    common = dict(prompts_file=csv, cache_dir=tmp / "cache256")
    expected = {r.answer.prompt.name: r.answer.mask for r in prompt("seg-folder", **common)}
    monkeypatch.setattr(predictor_module, "PROMPTS_PER_BATCH", 4)
    seen = []
    real_logits = CachePredictor.logits
    monkeypatch.setattr(CachePredictor, "logits", lambda self, i, prompts, *a, **k: (
        seen.append(len(prompts)), real_logits(self, i, prompts, *a, **k))[1])
    answers = iter_prompts("seg-folder", out=tmp_path / "out", **common)
    assert len(answers) == PROGRESS_FROM + 5
    for n, result in enumerate(answers, start=1):
        png = next(p for p in result.files if p.suffix == ".png")
        assert png.is_file() and len(list((tmp_path / "out").glob("*.png"))) == n  # written as it came
        assert np.array_equal(result.answer.mask, expected[result.answer.prompt.name])
    assert max(seen) == 4 and sum(seen) == PROGRESS_FROM + 5
    listed = (tmp_path / "out" / "masks.csv").read_text().splitlines()
    assert listed[0] == "image,prompt,pixels,score,files,prompt_crs" and len(listed) == PROGRESS_FROM + 6
    cli = CliRunner().invoke(app, ["prompt", "--dataset", "seg-folder", "--prompts", str(csv), "--cache-dir",
                                   str(tmp / "cache256"), "--out", str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    assert f"{PROGRESS_FROM + 5} prompts on 2 images answered in" in cli.output and "masks.csv" in cli.output
    assert "predicted IoU" not in cli.output


def test_masks_of_images_with_one_file_name_in_two_folders_and_of_long_names_are_all_kept(tmp_path, tiny_checkpoint):
    """A classification folder with x.png in two class folders and a 250-character file name,
    extracted whole for prompts, prompted into one --out folder: one mask file each, bounded names."""
    from PIL import Image

    rng = np.random.default_rng(0)
    long = "n" * 246 + ".png"  # 250 characters (255 is the most a name may have)
    for name in ("a/x.png", "b/x.png", f"a/{long}", "b/y.png"):
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "data" / name)
    samembed.extract("folder", data_dir=tmp_path / "data", checkpoint=tiny_checkpoint, img_size=128,
                     prompt_features=True, workers=0, progress=False, cache_dir=tmp_path / "cache")
    out, pngs, masks = tmp_path / "out", [], []
    for image, point in (("a/x.png", "10,10"), ("b/x.png", "20,20")):  # two commands into one folder
        (result,) = prompt("folder", image=image, points=[point], cache_dir=tmp_path / "cache", out=out)
        pngs.append(next(p for p in result.files if p.suffix == ".png"))
        masks.append(result.answer.mask)
    csv = tmp_path / "p.csv"
    csv.write_text(f"image,prompt,x,y\na/{long},long,5,5\nb/y.png,field,1,1\nb/y.png,field 2,3,3\n"
                   "b/y.png,field_2,4,4\n")
    results = prompt("folder", prompts_file=csv, cache_dir=tmp_path / "cache", out=out)
    pngs += [next(p for p in r.files if p.suffix == ".png") for r in results]
    masks += [r.answer.mask for r in results]
    assert len(set(pngs)) == 6 and len(list(out.glob("*.png"))) == 6
    from samembed.prompting.outputs import MAX_STEM

    assert all(len(p.stem) <= MAX_STEM for p in pngs)
    assert pngs[3].name == "y_field.png"  # a readable name where it is unique
    assert pngs[0].name.startswith("x_prompt0-") and pngs[1].name.startswith("x_prompt0-")
    for mask, png in zip(masks, pngs):
        assert np.array_equal(np.asarray(Image.open(png)) > 0, mask)
    again = prompt("folder", prompts_file=csv, cache_dir=tmp_path / "cache", out=out)
    assert [next(p for p in r.files if p.suffix == ".png") for r in again] == pngs[2:]  # the same names every run


def test_a_prompt_on_a_blank_chip_is_one_line_not_an_answer_from_zeros(scene_cache, tmp_path):
    """A chip stored unusable (blank: no data) has zeros for an embedding: a map prompt that lands
    on it, or a pixel prompt naming it, is refused in one line."""
    import shutil

    import zarr

    shutil.copytree(scene_cache, tmp_path / "cache")
    name = samembed.open_cache(tmp_path / "cache", "scene").name
    x, y = 600000.0 + 2 * 300.5, 4000000.0 - 2 * 200.5
    (before,) = prompt("scene", points=[f"{x},{y}"], in_map=True, cache_dir=tmp_path / "cache")
    group = zarr.open_group(tmp_path / "cache" / "scene.zarr" / name, mode="r+")
    group["ok"][before.index] = False
    group["error"][before.index] = "no data: 0 % of pixels valid (minimum: any valid pixel)"
    for kwargs in (dict(points=[f"{x},{y}"], in_map=True), dict(image=before.image_id, points=["5,5"])):
        with pytest.raises(UsageError, match=rf"{before.image_id} holds no data \(blank\); it has no embedding"):
            prompt("scene", cache_dir=tmp_path / "cache", **kwargs)

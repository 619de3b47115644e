"""samembed serve's API through Starlette's test client: every endpoint, the guard's refusals
(Host, token, no CORS), ids looked up and never joined to paths, concurrent prompts."""

from __future__ import annotations

import io
import json
import threading
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from samembed.prompting.run import prompt  # noqa: E402
from samembed.serve import create_app  # noqa: E402
from serve_fixtures import build_served_world  # noqa: E402

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_checkpoint):
    return build_served_world(tmp_path_factory.mktemp("served"), tiny_checkpoint)


@pytest.fixture(scope="module")
def client(world):
    return TestClient(create_app(world["cache"], world["runs"], world["out"]), base_url=BASE)


def group_url(world, dataset: str) -> str:
    return "/api/groups/" + quote(world["keys"][dataset], safe="/")


def png_mask(url: str) -> np.ndarray:
    """(H, W) bool of a mask PNG data URL (palette index 1: in the mask)."""
    import base64

    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data))) == 1


def test_the_page_its_files_and_the_groups(client, world):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css"), ("index.html", "html")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    groups = {g["key"]: g for g in client.get("/api/groups").json()["groups"]}
    assert set(groups) == set(world["keys"].values())
    road = groups[world["keys"]["road"]]
    assert road["promptable"] and road["task"] == "segmentation" and road["images"] == 7
    assert groups[world["keys"]["scene"]]["scenes"] == ["scene.tif"]


def test_images_are_pages_filtered_by_class_split_state_and_text(client, world):
    url = group_url(world, "road") + "/images"
    everything = client.get(url).json()
    assert everything["total"] == 7 and everything["splits"] == ["test", "train", "val"]
    test = client.get(url, params={"split": "test"}).json()
    assert test["total"] == 2 and {i["split"] for i in test["items"]} == {"test"}
    page = client.get(url, params={"offset": 2, "limit": 3}).json()
    assert [i["row"] for i in page["items"]] == [2, 3, 4]
    assert client.get(url, params={"q": "image6"}).json()["total"] == 1
    forest = client.get(group_url(world, "eurosat") + "/images", params={"class": "Forest"}).json()
    assert forest["total"] == 4 and {i["class"] for i in forest["items"]} == {"Forest"}
    bad = client.get(url, params={"class": "Nope"})
    assert bad.status_code == 400 and "no class 'Nope'" in bad.json()["error"]
    assert client.get(url, params={"limit": "many"}).status_code == 400
    scene = client.get(group_url(world, "scene") + "/images", params={"state": "blank"}).json()
    assert all(i["state"] == "blank" for i in scene["items"])


def test_an_image_its_thumbnail_and_truth_are_what_the_encoder_saw(client, world):
    from samembed.datasets import load_dataset

    url = group_url(world, "road") + "/images/0"
    info = client.get(url).json()
    image = np.asarray(Image.open(io.BytesIO(client.get(url + "/image.png").content)))
    index = load_dataset("road", world["roads"])
    expected = np.asarray(Image.open(index.path(index.image_ids.index(info["id"]))).convert("RGB"))
    assert image.shape == (info["height"], info["width"], 3) and np.array_equal(image, expected)
    thumb = Image.open(io.BytesIO(client.get(url + "/image.png", params={"side": 32}).content))
    assert max(thumb.size) == 32
    truth = png_mask_bytes(client.get(url + "/truth.png").content)
    assert np.array_equal(truth, index.mask(index.image_ids.index(info["id"])))
    # an image named by its id is the same image
    assert client.get(group_url(world, "road") + "/lookup", params={"id": info["id"]}).json()["row"] == 0
    assert client.get(group_url(world, "road") + "/lookup", params={"id": "../" + info["id"]}).status_code == 404


def png_mask_bytes(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data))) == 1


def test_a_scene_is_shown_whole_with_its_chips(client, world):
    url = group_url(world, "scene") + "/scenes"
    (scene,) = client.get(url).json()["scenes"]
    assert (scene["width"], scene["height"]) == (400, 300) and len(scene["chips"]) == 12
    picture = Image.open(io.BytesIO(client.get(url + "/0/image.png", params={"side": 200}).content))
    assert picture.size == (200, 150)
    assert client.get(url + "/1/image.png").status_code == 404


def test_a_click_returns_samembed_prompts_mask_and_three_candidates(client, world):
    url = group_url(world, "road") + "/images/5/prompt"
    response = client.post(url, json={"points": [[20, 15]], "labels": [1]})
    assert response.status_code == 200
    assert response.headers["server-timing"].startswith("decode;dur=")
    answer = response.json()
    (expected,) = prompt("road", image=answer["id"], points=["20,15"], cache_dir=world["cache"])
    assert np.array_equal(png_mask(answer["masks"][answer["choice"]]), expected.answer.mask)
    assert answer["score"] == pytest.approx(expected.answer.score) and len(answer["masks"]) == 3
    assert [int(png_mask(m).sum()) for m in answer["masks"]] == answer["pixels"]
    box = client.post(url, json={"box": [2, 2, 30, 30], "points": [[10, 10], [25, 25]], "labels": [1, 0]})
    assert box.status_code == 200
    for body, text in (({"points": [[500, 5]]}, "outside the image"), ({"points": [[5, 5]], "labels": [2]}, "label"),
                       ({"box": [30, 30, 2, 2]}, "corners swapped"), ({}, "at least one point")):
        refused = client.post(url, json=body)
        assert refused.status_code == 400 and text in refused.json()["error"]
    assert client.post(url, content=b"not json").status_code == 400


def test_concurrent_prompts_each_get_their_own_answer(client, world):
    url = group_url(world, "road") + "/images/{}/prompt"
    asks = [(row, (5 + 3 * k, 6 + 2 * k)) for k, row in enumerate([0, 1, 2, 3, 5, 6, 0, 1])]
    expected = {}
    for row, point in asks:
        expected[(row, point)] = client.post(url.format(row), json={"points": [point]}).json()["masks"]
    answers, errors = {}, []

    def ask(row, point):
        try:
            answers[(row, point)] = client.post(url.format(row), json={"points": [point]}).json()["masks"]
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=ask, args=a) for a in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and answers == expected


def test_a_scene_prompt_across_a_chip_edge_is_merged_in_map_space(client, world):
    from samembed.prompting.predictor import CachePredictor
    from samembed.serve.scenes import answer_on_scene, chips_of
    import samembed

    group = samembed.open_cache(world["cache"], "scene")
    predictor = CachePredictor(group)
    scenes, windows = [str(s) for s in group.read("scene")], group.read("window")
    rows = chips_of(scenes, windows, group.usable(), "scene.tif")
    response = client.post(group_url(world, "scene") + "/scenes/0/prompt", json={"points": [[130, 130]]})
    assert response.status_code == 200
    answer = response.json()
    merged = answer_on_scene(predictor, "scene.tif", __import__("samembed.prompting.prompts", fromlist=["Prompt"]).Prompt(
        ((130.0, 130.0),), (1,)), rows, windows, (300, 400))
    assert answer["window"] == list(merged.window) and np.array_equal(png_mask(answer["mask"]), merged.mask)
    first = answer["chips"][0]
    assert not first["seeded"] and first["window"][0] <= 130 < first["window"][0] + first["window"][2]
    # every chip past the first was prompted because the mask ran across an edge into it
    assert all(c["seeded"] for c in answer["chips"][1:])
    # the merged mask holds each chip's mask where that chip lies
    col, row = merged.window[:2]
    for chip in merged.chips:
        c0, r0, w, h = chip.window
        assert np.array_equal(merged.mask[r0 - row:r0 - row + h, c0 - col:c0 - col + w] | chip.answer.mask,
                              merged.mask[r0 - row:r0 - row + h, c0 - col:c0 - col + w])


def test_an_object_that_reaches_a_chip_edge_is_followed_into_the_next_chip():
    """The merge rule on a fake predictor: a mask that covers its chip's right half is followed
    into the chip on its right, seeded just across the edge, and merged."""
    from types import SimpleNamespace

    from samembed.prompting.prompts import Prompt
    from samembed.serve.scenes import answer_on_scene

    windows = np.array([[0, 0, 10, 10], [10, 0, 10, 10], [0, 10, 10, 10], [10, 10, 10, 10]])
    asked = []

    def answers(i, prompts):
        asked.append((i, prompts[0]))
        mask = np.zeros((10, 10), bool)
        mask[2:5, 5:] = i == 0  # chip 0: a band reaching its right edge
        mask[2:5, :3] = i == 1  # chip 1: its continuation, stopping inside
        yield SimpleNamespace(mask=mask, score=0.9)

    predictor = SimpleNamespace(answers=answers, image_ids=["a", "b", "c", "d"])
    merged = answer_on_scene(predictor, "s", Prompt(((6.0, 3.0),), (1,)), [0, 1, 2, 3], windows, (20, 20))
    assert [i for i, _ in asked] == [0, 1]
    assert asked[1][1].points == ((0.5, 3.5),) and asked[1][1].labels == (1,)
    assert merged.window == (0, 0, 20, 10) and merged.mask.sum() == 3 * 5 + 3 * 3
    assert merged.mask[2:5, 5:13].all()


def test_a_saved_mask_is_written_by_samembed_prompts_writer(client, world):
    response = client.post(group_url(world, "road") + "/images/5/save", json={"points": [[20, 15]], "choice": 1})
    files = response.json()["files"]
    assert response.status_code == 200 and any(f.endswith(".png") for f in files)
    folder = world["out"] / files[0].split("/")[0]
    assert (folder / "masks.csv").read_text().splitlines()[0] == "image,prompt,pixels,score,files,prompt_crs"
    answer = client.post(group_url(world, "road") + "/images/5/prompt", json={"points": [[20, 15]]}).json()
    saved = np.asarray(Image.open(world["out"] / files[0])) > 0
    assert np.array_equal(saved, png_mask(answer["masks"][1]))
    chip = client.post(group_url(world, "scene") + "/images/5/save", json={"points": [[20, 20]]}).json()["files"]
    assert {f.rsplit(".", 1)[1] for f in chip} == {"png", "tif", "geojson", "csv"}


def test_results_tables_confusion_cells_open_their_images_and_segmentation_side_by_side(client, world):
    from samembed.classification.metrics import recorded_predictions
    from samembed.experiments.records import RunsStore

    results = client.get("/api/results").json()
    assert results["runs"] == 3 and results["classification"]["summary"] and results["segmentation"]["summary"]
    (run,) = results["confusion"]
    record = next(r for r in RunsStore(world["runs"]).records() if r["run_id"] == run["run_id"])
    truth, predicted = recorded_predictions(record["metrics"])
    total = 0
    for i in range(len(run["classes"])):
        for j in range(len(run["classes"])):
            cell = client.get(f"/api/results/runs/{run['run_id']}/confusion", params={"true": i, "predicted": j}).json()
            assert len(cell["images"]) == run["matrix"][i][j] == int(((truth == i) & (predicted == j)).sum())
            assert all(im["id"].startswith(run["classes"][i] + "/") for im in cell["images"])
            total += len(cell["images"])
    assert total == len(truth)
    assert client.get("/api/results/runs/nope/confusion").status_code == 404
    seg = client.get("/api/results/segmentation").json()["models"]
    assert {m["model"].split(" · ")[1] for m in seg} == {"sam-box", "sam-conv"}
    picture = client.get(f"/api/results/runs/{seg[0]['run_id']}/predictions/0.png")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert client.get(f"/api/results/runs/{seg[0]['run_id']}/predictions/99.png").status_code == 404
    report = client.post("/api/results/report").json()
    assert "confusion_eurosat.png" in report["figures"] and (world["out"] / "report" / "report.md").is_file()
    figure = client.get("/api/results/figures/confusion_eurosat.png")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")


def test_search_answers_501_in_one_line_until_the_library_is_there(client, world, monkeypatch):
    from samembed.serve import search as route

    monkeypatch.setattr(route, "search_library", lambda: None)
    response = client.get(group_url(world, "road") + "/search", params={"positive": "row:0"})
    assert response.status_code == 501 and response.text.count("\n") == 1


@pytest.mark.search_contract  # with the real samembed.search merged, drop the fake: the contract is the same
def test_search_passes_the_queries_to_the_library_and_returns_hits_and_heat_map(client, world, monkeypatch):
    from dataclasses import dataclass

    import pandas as pd

    from samembed.serve import search as route

    @dataclass(frozen=True)
    class MapPoint:
        x: float
        y: float

    @dataclass(frozen=True)
    class SearchResult:
        hits: pd.DataFrame
        heat_map: np.ndarray | None
        heat_transform: tuple | None
        crs: str | None
        description: str

    calls = []

    def search(group, positives, negatives=(), *, mode="neighbours", granularity="image", feature=None, k=100,
               index="auto"):
        calls.append((group.name, positives, negatives, mode, granularity, feature, k, index))
        hits = pd.DataFrame({"rank": [1, 2], "row": [3, 1], "id": ["x", "y"], "score": [0.9, 0.5], "label": ["a", None]})
        return SearchResult(hits, np.arange(6, dtype=np.float32).reshape(2, 3), (2.0, 0, 600000.0, 0, -2.0, 4e6),
                            "EPSG:32633", "neighbours of 1 query")

    monkeypatch.setattr(route, "search_library", lambda: (search, MapPoint))
    response = client.get(group_url(world, "scene") + "/search",
                          params=[("positive", "row:2"), ("positive", "scene.tif#0,0"), ("negative", "map:600100,3999900"),
                                  ("mode", "fewshot"), ("k", "2")])
    assert response.status_code == 200, response.text
    body = response.json()
    (call,) = calls
    assert call[1] == [2, "scene.tif#0,0"] and call[2] == [MapPoint(600100.0, 3999900.0)]
    assert call[3:] == ("fewshot", "image", None, 2, "auto")
    assert [h["row"] for h in body["hits"]] == [3, 1] and body["hits"][1]["label"] is None
    assert body["heat_shape"] == [2, 3] and body["heat_map"].startswith("data:image/png;base64,")
    for params in ({"positive": "row:0", "mode": "magic"}, {}, {"positive": "map:1"}):
        assert client.get(group_url(world, "scene") + "/search", params=params).status_code == 400


# ------------------------------------------------------------------------------------ security

TRAVERSALS = ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
              "..\\..\\etc\\passwd", "..%5c..%5cetc%5cpasswd", "/etc/passwd", "%2fetc%2fpasswd", "C:%5cWindows%5cwin.ini",
              "....//....//etc/passwd", "%252e%252e%252fetc%252fpasswd", "app.js%00.png", "static/../../pyproject.toml"]


@pytest.mark.parametrize("evil", TRAVERSALS)
def test_path_traversal_attempts_get_404_everywhere(client, world, evil):
    road = group_url(world, "road")
    for url in (f"/static/{evil}", f"{road}/images/{evil}", f"{road}/images/{evil}/image.png",
                f"/api/groups/{evil}/x/images", f"/api/results/figures/{evil}", f"/api/results/runs/{evil}/confusion",
                f"{group_url(world, 'scene')}/scenes/{evil}/image.png"):
        response = client.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert b"root:" not in response.content and b"[build-system]" not in response.content


def test_a_symlink_out_of_the_runs_folder_is_not_followed(client, world, tmp_path):
    """A prediction file that is a link to a file outside the runs folder is refused (404)."""
    from samembed.experiments.records import RunsStore

    seg = next(r for r in RunsStore(world["runs"]).records() if r.get("task") == "segmentation")
    target = __import__("pathlib").Path(seg["predictions_dir"]) / seg["metrics"]["per_image"][0]["prediction"]
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(secret)
    original = target.read_bytes()
    target.unlink()
    target.symlink_to(secret)
    try:
        assert client.get(f"/api/results/runs/{seg['run_id']}/predictions/0.png").status_code == 404
    finally:
        target.unlink()
        target.write_bytes(original)


def test_another_host_header_is_refused_and_no_cors_header_is_sent(world):
    client = TestClient(create_app(world["cache"], world["runs"], world["out"]), base_url="http://evil.example:8765")
    refused = client.get("/api/groups")
    assert refused.status_code == 403 and "host" in refused.text and refused.text.count("\n") == 1
    local = TestClient(create_app(world["cache"], world["runs"], world["out"]), base_url=BASE)
    response = local.get("/api/groups", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h in response.headers)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    preflight = local.options("/api/groups/road/x/images/0/prompt", headers={"Origin": "http://evil.example",
                                                                             "Access-Control-Request-Method": "POST"})
    assert not any(h.lower().startswith("access-control-") for h in preflight.headers)


def test_with_a_token_every_request_needs_it(world):
    app = create_app(world["cache"], world["runs"], world["out"], token="s3cret-token", hosts=())
    client = TestClient(app, base_url="http://192.0.2.7:8765")
    for url in ("/", "/static/app.js", "/api/groups", "/api/results"):
        assert client.get(url).status_code == 403
    assert client.get("/api/groups", params={"token": "wrong"}).status_code == 403
    assert client.get("/api/groups", headers={"Authorization": "token wrong"}).status_code == 403
    first = client.get("/", params={"token": "s3cret-token"})
    assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
    assert client.get("/api/groups").status_code == 200  # the cookie now carries it
    fresh = TestClient(app, base_url="http://192.0.2.7:8765")
    assert fresh.get("/api/groups", headers={"Authorization": "token s3cret-token"}).status_code == 200


def test_serve_binds_loopback_without_a_token_and_prints_one_for_any_other_host(monkeypatch, world):
    import uvicorn

    from samembed.serve import app as module

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: started.append((app, host, port)))
    lines = []
    module.serve(world["cache"], world["runs"], world["out"], echo=lines.append)
    assert started[-1][1] == "127.0.0.1" and started[-1][0].token is None and "token" not in lines[0]
    module.serve(world["cache"], world["runs"], world["out"], host="0.0.0.0", port=9000, echo=lines.append)
    guard = started[-1][0]
    assert guard.token and f"?token={guard.token}" in lines[-2] and len(guard.token) >= 32
    from samembed.errors import UsageError

    with pytest.raises(UsageError, match="--port"):
        module.serve(world["cache"], port=70000, echo=lines.append)


def test_the_command_without_the_extra_says_which_to_install(monkeypatch):
    import sys

    from samembed.errors import MissingExtraError
    from samembed.serve import app as module

    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(MissingExtraError, match=r'pip install "samembed\[serve\]"'):
        module.create_app("cache")


def test_unknown_groups_rows_and_scenes_are_404(client, world):
    road = group_url(world, "road")
    for url in ("/api/groups/road/nope/images", f"{road}/images/999", f"{road}/images/999/image.png",
                f"{road}/images/-1", f"{road}/scenes/0/image.png", "/nowhere", f"{road}/images/0/truth.png/x"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"{road}/images/999/prompt", json={"points": [[1, 1]]}).status_code == 404
    assert client.get(group_url(world, "eurosat") + "/images/0/truth.png").status_code == 404
    assert json.loads(client.get(f"{road}/images/0").text)["row"] == 0


def test_search_through_the_real_library_finds_the_planted_site_and_draws_its_heat_map(tmp_path):
    """The page's search endpoint over samembed.search itself (merged): a map point on one planted
    site of a generated scene finds the other site's cells first, with a heat map over the scene."""
    from samembed.search.synthetic import write_scene_cache

    planted = write_scene_cache(tmp_path / "cache")
    app = TestClient(create_app(tmp_path / "cache", tmp_path / "runs", tmp_path / "out"), base_url=BASE)
    (group,) = app.get("/api/groups").json()["groups"]
    x, y = planted.centre(0)
    response = app.get(f"/api/groups/{group['dataset']}/{group['group']}/search",
                       params={"positive": f"map:{x},{y}", "granularity": "cell", "k": "20"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["heat_map"].startswith("data:image/png") and body["crs"]
    c0, r0, c1, r1 = planted.sites[1]  # scene pixels of the other site
    t = planted.transform
    inside = [h for h in body["hits"] if t[2] + c0 * t[0] <= h["x"] <= t[2] + c1 * t[0]
              and t[5] + r1 * t[4] <= h["y"] <= t[5] + r0 * t[4]]
    assert len(inside) >= 5, body["hits"][:10]  # the other site's cells among the best 20

"""samembed serve in headless Chromium: click-to-mask latency and the first paint of a big group.

(1) Click-to-mask: a random-weight SAM with vit_b's shapes (segment_anything's ``build_sam_vit_b``:
its prompt encoder and mask decoder are vit_b's) extracts one generated 1024 x 1024 road image at
1024; ``samembed serve`` runs as a subprocess and the page is clicked ``--clicks`` times at random
points by selenium. Each click's time is split into the server's decode (the predictor, from the
``Server-Timing`` header) and encode (the mask PNGs), and the rest: transfer, JSON, PNG decoding
and drawing until the next animation frame (performance.now() in the page).

(2) First paint of a group of ``--images`` images (27,000: EuroSAT's size): a generated cache
(no encoder) over a folder dataset of small JPEGs; time to the page's first contentful paint, to
the first page of tiles in the DOM, and to their thumbnails loaded, on a fresh server (nothing read
before the page asks).

    python benchmarks/serve_latency.py [--clicks 100] [--images 27000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def percentiles(values) -> str:
    v = np.asarray(values)
    return f"p50 {np.percentile(v, 50):7.1f} ms   p95 {np.percentile(v, 95):7.1f} ms   mean {v.mean():7.1f} ms"


def click_latency(tmp: Path, clicks: int) -> None:
    import torch
    from segment_anything import build_sam_vit_b
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    import samembed
    from samembed.datasets import make_synthetic_roads
    from test_serve_browser import click_at, free_port, new_browser, start_server

    torch.manual_seed(0)
    tmp.mkdir(parents=True, exist_ok=True)
    ckpt = tmp / "sam_vit_b_random.pth"
    torch.save(build_sam_vit_b().eval().state_dict(), ckpt)
    data = make_synthetic_roads(tmp / "roads", layout="seg-folder", counts=(1, 0, 0), size=1024)
    from PIL import Image  # one image of exactly 1024 x 1024
    for image in (data / "images").iterdir():
        Image.open(image).convert("RGB").resize((1024, 1024)).save(image)
    for mask in (data / "masks").iterdir():
        Image.open(mask).resize((1024, 1024), Image.Resampling.NEAREST).save(mask)
    t0 = time.perf_counter()
    samembed.extract("seg-folder", data_dir=data, checkpoint=ckpt, img_size=1024, workers=0, batch_size=1,
                     progress=False, cache_dir=tmp / "cache")
    print(f"extraction of one 1024 image with vit_b's encoder: {time.perf_counter() - t0:.1f} s")
    group = samembed.open_cache(tmp / "cache", "seg-folder")
    world = {"root": tmp, "cache": tmp / "cache", "runs": tmp / "experiments", "out": tmp / "served"}
    port = free_port()
    server = start_server(world, port)
    browser = new_browser(1400, 1200)
    try:
        browser.get(f"http://127.0.0.1:{port}/#/i/seg-folder/{group.name}/0")
        marks = WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "marks"))
        WebDriverWait(browser, 60).until(lambda b: b.execute_script(
            "const i = document.querySelector('img.base'); return i.complete && i.naturalWidth > 0"))
        side = browser.execute_script("return document.getElementById('marks').width")
        rng = np.random.default_rng(0)
        for k in range(clicks + 1):  # the first builds the predictor: left out
            if k:
                browser.execute_script("document.getElementById('clear').click()")  # clear: one point a prompt
            before = browser.execute_script("return window.samembedTimings.length")
            x, y = rng.uniform(0.05, 0.95, 2) * side
            click_at(browser, marks, x, y)
            WebDriverWait(browser, 60).until(lambda b: b.execute_script("return window.samembedTimings.length") > before)
        timings = browser.execute_script("return window.samembedTimings")[1:]
    finally:
        browser.quit()
        server.terminate()
        server.wait(10)
    total = [t["total"] for t in timings]
    server_ms = [t["server"] for t in timings]
    decode = [t["decode"] for t in timings]
    encode = [t["encode"] for t in timings]
    rest = [t["total"] - t["server"] for t in timings]
    print(f"click to mask drawn, {len(timings)} clicks (vit_b decoder, 1024 cache, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads here):")
    print(f"  total          {percentiles(total)}")
    print(f"  server         {percentiles(server_ms)}")
    print(f"    decode       {percentiles(decode)}")
    print(f"    encode PNGs  {percentiles(encode)}")
    print(f"  transfer+draw  {percentiles(rest)}")


def first_paint(tmp: Path, images: int) -> None:
    from PIL import Image

    from samembed.cache.synthetic import write_embedding_cache
    from test_serve_browser import free_port, new_browser, start_server

    classes = 10
    per_class = images // classes
    tmp.mkdir(parents=True, exist_ok=True)
    root = tmp / "folder"
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    tiles = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(classes)]
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
    for i in range(classes * per_class):
        tiles[i // per_class].save(root / f"class{i // per_class}" / f"{i}.jpg", quality=80)
    group = write_embedding_cache(tmp / "cache", classes=classes, per_class=per_class, dataset="folder",
                                  name="fake-enc@64")
    group.attrs["data_root"] = str(root)
    print(f"generated {classes * per_class} images and their cache in {time.perf_counter() - t0:.0f} s")
    world = {"root": tmp, "cache": tmp / "cache", "runs": tmp / "experiments", "out": tmp / "served"}
    port = free_port()
    server = start_server(world, port)  # answers /api/groups: the index of the group is not read yet
    browser = new_browser()
    try:
        t0 = time.perf_counter()
        browser.get(f"http://127.0.0.1:{port}/#/g/folder/fake-enc@64")
        wait = lambda script: browser.execute_script(script)  # noqa: E731
        while not wait("return document.querySelectorAll('#grid .tile').length > 0"):
            time.sleep(0.005)
        tiles_in_dom = time.perf_counter() - t0
        while not wait("return [...document.querySelectorAll('#grid .tile img')].slice(0, 24)"
                       ".every(i => i.complete && i.naturalWidth > 0)"):
            time.sleep(0.01)
        thumbnails = time.perf_counter() - t0
        paint = wait("return performance.getEntriesByName('first-contentful-paint')[0].startTime")
        count = wait("return document.getElementById('count').textContent")
    finally:
        browser.quit()
        server.terminate()
        server.wait(10)
    print(f"group page of {classes * per_class} images on a fresh server ({count}):")
    print(f"  first contentful paint      {paint:8.0f} ms (from navigation)")
    print(f"  first page of 60 tiles      {1000 * tiles_in_dom:8.0f} ms (index read: ids, labels, ok, blank)")
    print(f"  first 24 thumbnails loaded  {1000 * thumbnails:8.0f} ms (the folder dataset indexed on first image)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=100)
    parser.add_argument("--images", type=int, default=27000)
    parser.add_argument("--skip-clicks", action="store_true")
    parser.add_argument("--skip-paint", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_clicks:
            click_latency(Path(tmp) / "clicks", args.clicks)
        if not args.skip_paint:
            first_paint(Path(tmp) / "paint", args.images)


if __name__ == "__main__":
    main()

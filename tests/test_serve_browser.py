"""samembed serve in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by selenium against a ``samembed serve`` process on a generated cache. The page loads, a
click on a generated road returns the mask ``samembed prompt`` gives for the same point, and a
confusion-matrix cell opens its images. With ``SAMEMBED_SCREENSHOTS=DIR`` each page is saved as
``DIR/serve-*.png`` (README shows them)."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("no chromium and chromedriver: apt-get install -y chromium chromium-driver (CI does)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
pytest.importorskip("uvicorn", reason="samembed serve needs uvicorn (pip install -e '.[serve]')")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from serve_fixtures import build_served_world  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(world: dict, port: int) -> subprocess.Popen:
    """``samembed serve`` as a user runs it, waited for until it answers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "samembed", "serve", "--cache-dir", str(world["cache"]),
                                "--runs-dir", str(world["runs"]), "--out", str(world["out"]), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=world["root"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/groups", timeout=2)
            return process
        except OSError:
            if process.poll() is not None:
                raise AssertionError(process.stdout.read().decode())
            time.sleep(0.2)
    process.kill()
    raise AssertionError("samembed serve did not answer within 60 s")


def new_browser(width: int = 1400, height: int = 1000):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_checkpoint):
    world = build_served_world(tmp_path_factory.mktemp("browser"), tiny_checkpoint)
    port = free_port()
    process = start_server(world, port)
    browser = new_browser()
    try:
        yield world, f"http://127.0.0.1:{port}/", browser
    finally:
        browser.quit()
        process.terminate()
        process.wait(10)


def screenshot(browser, name: str) -> None:
    folder = os.environ.get("SAMEMBED_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / f"serve-{name}.png"))


def wait_for(browser, script: str, timeout: float = 30):
    return WebDriverWait(browser, timeout).until(lambda b: b.execute_script(script))


def click_at(browser, element, x: float, y: float, shift: bool = False) -> None:
    """A real mouse click at (x, y) pixels from the element's top-left corner."""
    from selenium.webdriver.common.keys import Keys

    size = element.size
    actions = ActionChains(browser).move_to_element_with_offset(element, int(x - size["width"] / 2),
                                                                int(y - size["height"] / 2))
    if shift:
        actions.key_down(Keys.SHIFT)
    actions.click()
    if shift:
        actions.key_up(Keys.SHIFT)
    actions.perform()


def test_the_page_loads_and_a_click_on_a_road_returns_samembed_prompts_mask(served):
    from samembed.datasets import load_dataset
    from samembed.prompting.run import prompt

    world, url, browser = served
    browser.get(url)
    wait_for(browser, "return document.querySelectorAll('.card').length === 3")
    text = browser.find_element(By.ID, "main").text
    assert "eurosat /" in text and "scene scene.tif" in text, text
    screenshot(browser, "cache")
    road = world["keys"]["road"]
    browser.get(f"{url}#/g/{road}")
    wait_for(browser, "return document.querySelectorAll('#grid .tile img').length === 7 && "
                      "[...document.querySelectorAll('#grid .tile img')].every(i => i.complete && i.naturalWidth > 0)")
    screenshot(browser, "browse")
    index = load_dataset("road", world["roads"])
    image_id = index.image_ids[-1]  # a test image
    truth = index.mask(len(index) - 1)
    ys, xs = np.nonzero(truth)
    k = len(ys) // 2
    row = browser.execute_script(f"return fetch('/api/groups/{road}/lookup?id={image_id}').then(r => r.json())")["row"]
    browser.get(f"{url}#/i/{road}/{row}")
    marks = WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "marks"))
    wait_for(browser, "const i = document.querySelector('img.base'); return i.complete && i.naturalWidth > 0")
    scale = browser.execute_script("return document.getElementById('marks').width") / truth.shape[1]
    click_at(browser, marks, (xs[k] + 0.5) * scale, (ys[k] + 0.5) * scale)
    answer = wait_for(browser, "return window.samembedLast")
    (x, y), = answer["prompt"]["points"]
    assert truth[int(y), int(x)], "the click landed off the road"
    (expected,) = prompt("road", image=image_id, points=[f"{x},{y}"], cache_dir=world["cache"])
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["masks"][answer["choice"]].split(",")[1])))) == 1
    assert np.array_equal(shown, expected.answer.mask)
    assert browser.execute_script("return document.getElementById('mask').hidden") is False
    assert f"{expected.answer.score:.3f}" in browser.find_element(By.ID, "score").text
    screenshot(browser, "prompt")


def test_a_scene_prompt_is_drawn_merged_over_its_chips(served):
    world, url, browser = served
    browser.get(f"{url}#/s/{world['keys']['scene']}/0")
    wait_for(browser, "return document.getElementById('chips') !== null")  # the scene page, not the last one's marks
    marks = browser.find_element(By.ID, "marks")
    wait_for(browser, "const i = document.querySelector('img.base'); return i.complete && i.naturalWidth > 0")
    scale = browser.execute_script("return document.getElementById('marks').width") / 400
    click_at(browser, marks, 130 * scale, 130 * scale)
    answer = wait_for(browser, "return window.samembedLast && window.samembedLast.scene ? window.samembedLast : null")
    assert answer["chips"] and "merged over" in browser.find_element(By.ID, "score").text
    screenshot(browser, "scene")


def test_a_confusion_matrix_cell_opens_its_images(served):
    world, url, browser = served
    browser.get(f"{url}#/results")
    wait_for(browser, "return document.querySelectorAll('table.confusion td.cell').length > 0")
    cells = browser.find_elements(By.CSS_SELECTOR, "table.confusion td.cell")
    cell = next(c for c in cells if int(c.text) > 0)
    count = int(cell.text)
    cell.click()
    wait_for(browser, f"return document.querySelectorAll('#cell-images .tile').length === {count}")
    ids = [t.get_attribute("title") for t in browser.find_elements(By.CSS_SELECTOR, "#cell-images .tile")]
    true_class = browser.find_element(By.CSS_SELECTOR, "#cell-images h3").text.split("true ")[1].split(",")[0]
    assert all(i.startswith(true_class + "/") for i in ids)
    browser.find_element(By.CSS_SELECTOR, "#side-by-side button").click()
    wait_for(browser, "return document.querySelectorAll('#side-by-side .side').length > 0")
    browser.find_element(By.ID, "write-report").click()
    wait_for(browser, "return document.querySelectorAll('#figures img').length > 0 && "
                      "[...document.querySelectorAll('#figures img')].every(i => i.complete && i.naturalWidth > 0)", 60)
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "results")

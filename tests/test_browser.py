"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run app.py`.

Open the demo, embed, label, replay a round, correct one image, export; screenshots of each
step are kept under test-artifacts/browser/. Locally the test skips (saying why) when
Chromium or Playwright is missing; under CI=true that is a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("HDL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 120_000
NEW_CLASS = "checked-by-hand"


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium, or set HDL_CHROMIUM)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser_ready():
    problem = _missing_browser()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run under CI: {problem}")
        pytest.skip(f"browser test skipped: {problem}")


@pytest.fixture(scope="module")
def server(browser_ready, tmp_path_factory):
    """`streamlit run app.py` on a free loopback port, with its own data and workspace roots."""
    base = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = dict(os.environ, HDL_DATA_ROOT=str(base / "data"), HDL_WORKSPACE_ROOT=str(base / "ws"),
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    log = open(base / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start: {(base / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url, base
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(server):
    """One Chromium for the module (Playwright's sync API runs one instance per thread)."""
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _idle(page) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)
    page.wait_for_timeout(200)


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, \
        page.locator('[data-testid="stException"]').first.inner_text()


def _go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    _idle(page)
    _no_exception(page)


def test_demo_to_export_in_a_real_browser(server, page):
    url, base = server
    page.goto(url)
    page.get_by_text("Open: Demo: handwritten digits").wait_for()
    _idle(page)
    _no_exception(page)
    _shot(page, "1-data")

    _go(page, "Embed")
    page.get_by_text("Pixels (baseline, not CLIP)").first.click()
    _idle(page)
    page.get_by_role("button", name="Embed with pixels").click()
    page.get_by_text("1797 images embedded with").wait_for()
    _no_exception(page)
    _shot(page, "2-embed")

    _go(page, "Label")
    page.get_by_role("button", name="Run HDL").click()
    _idle(page)
    page.get_by_text("labeled", exact=False).first.wait_for()
    _no_exception(page)
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("Home")
    _idle(page)
    slider.press("ArrowRight")
    _idle(page)
    _no_exception(page)
    assert page.get_by_role("slider", name="Round").first.input_value() == "1"
    assert page.locator('[data-testid="stSliderThumbValue"]').first.inner_text().strip() == "1"
    _shot(page, "3-label-round-1")

    _go(page, "Review")
    _shot(page, "4-review-before")
    review_correct_one(page)
    _no_exception(page)
    _shot(page, "5-review-after")

    _go(page, "Export")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    target = base / "labels.csv"
    download.value.save_as(target)
    _shot(page, "6-export")
    frame = pd.read_csv(target, keep_default_na=False)
    assert list(frame.columns) == ["path", "label", "source", "confidence", "step", "round"]
    assert len(frame) == 1797
    assert (frame["label"] != "").all()
    manual = frame[frame["source"] == "manual"]
    assert len(manual) == 1 and manual["label"].iloc[0] == NEW_CLASS


def review_correct_one(page) -> None:
    """Give the lowest-confidence image of the gallery a new class by typing it into its picker."""
    box = page.get_by_role("combobox", name=re.compile("^Label of ")).first
    box.click()
    box.fill(NEW_CLASS)
    page.keyboard.press("Enter")
    _idle(page)
    page.get_by_text("Corrected by hand").first.wait_for()


def _png(colour) -> bytes:
    import io
    from PIL import Image
    stream = io.BytesIO()
    Image.new("RGB", (24, 24), colour).save(stream, format="PNG")
    return stream.getvalue()


def _upload_files(page, url: str, files: dict[str, bytes]) -> None:
    """Open the app, upload `files` (name -> bytes) as plain files and open them."""
    page.goto(url)
    page.get_by_text("Open: Demo: handwritten digits").wait_for()
    _idle(page)
    page.get_by_text("Upload files").first.click()
    _idle(page)
    page.get_by_text("Files", exact=True).first.click()
    _idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        [{"name": name, "mimeType": "image/png", "buffer": data} for name, data in files.items()])
    for name in files:
        page.get_by_text(name).first.wait_for()
    _idle(page)
    page.get_by_role("button", name="Open uploads").click()
    page.get_by_text("Open: Upload:").first.wait_for()
    _idle(page)
    _no_exception(page)


def test_two_browsers_uploading_same_named_files_get_separate_datasets(server, browser):
    """Two browsers (separate cookie jars) upload IMG_0001.png and IMG_0002.png with other
    pixels: each gets its own dataset and workspace, and the first one's files are intact."""
    url, base = server
    names = ["IMG_0001.png", "IMG_0002.png"]
    red = {name: _png((250, 10 * i, 0)) for i, name in enumerate(names)}
    blue = {name: _png((0, 10 * i, 250)) for i, name in enumerate(names)}
    first = browser.new_context(viewport={"width": 1400, "height": 1000})
    second = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page_a, page_b = first.new_page(), second.new_page()
        for page in (page_a, page_b):
            page.set_default_timeout(WAIT_MS)
        _upload_files(page_a, url, red)
        _upload_files(page_b, url, blue)
        _shot(page_a, "7-upload-a")
        _shot(page_b, "8-upload-b")
        heading_a = page_a.locator("h3", has_text="Open: Upload:").first.inner_text()
        heading_b = page_b.locator("h3", has_text="Open: Upload:").first.inner_text()
        assert heading_a != heading_b
        # a reload keeps each browser on its own upload, listed among its own uploads
        page_a.reload()
        page_a.get_by_text(heading_a).first.wait_for()
        _idle(page_a)
        assert page_a.get_by_text("Your uploads (1)").count() == 1
    finally:
        first.close()
        second.close()
    owners = [folder for folder in (base / "data" / ".uploads").iterdir() if folder.is_dir()]
    assert len(owners) == 2                                          # one folder per browser
    stored = {}
    for owner in owners:
        (upload,) = [folder for folder in owner.iterdir() if not folder.name.startswith(".")]
        stored[owner.name] = {path.name: path.read_bytes() for path in upload.iterdir()}
    assert sorted(stored.values(), key=lambda files: files["IMG_0001.png"]) == sorted(
        [red, blue], key=lambda files: files["IMG_0001.png"])        # nobody's pixels replaced
    workspaces = [folder for folder in (base / "ws").iterdir()
                  if folder.name.startswith("IMG_0001-")]
    assert len(workspaces) == 2

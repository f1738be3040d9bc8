"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run app.py`.

Open the demo, embed, label, replay a round, correct one image, export; screenshots of each
step are kept under test-artifacts/browser/. Locally the test skips (saying why) when
Chromium or Playwright is missing; under CI=true that is a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.streamlit_server import (CHROMIUM, ServerDidNotStart, chromium_browser, free_port,
                                   streamlit_server)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts" / "browser"
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


_free_port = free_port          # other browser tests import it from here


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
    env = {"HDL_DATA_ROOT": str(base / "data"), "HDL_WORKSPACE_ROOT": str(base / "ws")}
    try:
        with streamlit_server(ROOT / "app.py", base / "server.log", env=env) as (url, _):
            yield url, base
    except ServerDidNotStart as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def browser(server):
    """One Chromium for the module (Playwright's sync API runs one instance per thread)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
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
    page.get_by_text("1,797 images embedded with").wait_for()
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
    click_a_map_point(page)

    _go(page, "Review")
    corrections = review_by_keyboard(page, base)
    _shot(page, "4-review-keys")
    review_correct_one(page)
    _no_exception(page)
    _shot(page, "5-review-gallery")
    gallery_at_800(page)
    hover_a_map_point(page)

    _go(page, "Export")
    target = base / "labels.csv"
    _download(page, "Download CSV").save_as(target)
    _shot(page, "6-export")
    frame = pd.read_csv(target, keep_default_na=False)
    assert list(frame.columns) == ["path", "label", "source", "confidence", "step", "round"]
    assert len(frame) == 1797
    assert (frame["label"] != "").all()
    manual = frame[frame["source"] == "manual"]
    assert NEW_CLASS in set(manual["label"])
    assert len(manual) == corrections + 1
    assert (frame["source"] == "confirmed").sum() >= 2


def _download(page, button: str, attempts: int = 3):
    """Click a download button and return the download. A click that lands while the
    page reruns (the sidebar reruns it when a background job ends) is lost, as a person's
    would be, and the person clicks again: so does this, at most `attempts` times, and
    says so on stdout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for attempt in range(1, attempts + 1):
        try:
            with page.expect_download(timeout=WAIT_MS // attempts) as download:
                page.get_by_role("button", name=button).click()
            return download.value
        except PlaywrightTimeout:
            print(f"{button}: no download after click {attempt}")
            _idle(page)
    raise AssertionError(f"{button}: no download after {attempts} clicks")


def _workspace(base):
    from hdl_core.workspace.store import Workspace
    folders = [db.parent for db in (base / "ws").glob("*/workspace.sqlite")]
    demo = next(f for f in folders if f.name.startswith("demo-digits"))
    return Workspace(demo)


def review_by_keyboard(page, base) -> int:
    """Five images of the review queue by keyboard: confirm, correct, undo, correct, confirm.

    Returns how many corrections stand afterwards (checked against the store)."""
    page.locator(".rk-stage").wait_for()
    _idle(page)
    page.locator(".rk-main-box").click()
    first = page.locator(".rk-main-box").get_attribute("data-id")
    box = page.locator(".rk-main-box").bounding_box()

    def press(key: str) -> None:
        before = page.locator(".rk-main-box").get_attribute("data-id")
        page.keyboard.press(key)
        page.wait_for_function(
            "(id) => document.querySelector('[data-testid=stBidiComponentIsolated]')"
            ".shadowRoot.querySelector('.rk-main-box').dataset.id !== id", arg=before, timeout=5_000)

    def shown_label() -> str:
        return page.locator(".rk-main-tag").inner_text().strip()

    press("Enter")                                      # #1 confirmed
    other = "1" if shown_label() != "1" else "2"
    press(other)                                        # #2 corrected
    third = page.locator(".rk-main-box").get_attribute("data-id")
    page.keyboard.press("u")                            # undo #2: back on it
    page.wait_for_function(
        "(id) => document.querySelector('[data-testid=stBidiComponentIsolated]')"
        ".shadowRoot.querySelector('.rk-main-box').dataset.id !== id", arg=third)
    press(other)                                        # #2 corrected again
    second_label = "7" if shown_label() != "7" else "8"
    press(second_label)                                 # #3 corrected
    press("Enter")                                      # #4 confirmed
    assert page.locator(".rk-main-box").bounding_box() == box, "the image moved"
    _shot(page, "4a-review-keys-1400")
    ws = _workspace(base)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:                  # the widget reports in the background
        history = ws.corrections()
        live = history[(history["source"] != "undo") & ~history["undone"]]
        if len(live) >= 4:
            break
        time.sleep(0.5)
    assert int(first) in set(history["item_id"])
    assert sorted(live["kind"].tolist()) == ["confirm", "confirm", "relabel", "relabel"]
    # a digit key gives the class named by that digit
    assert sorted(live.loc[live["kind"] == "relabel", "new_label"]) == sorted([other, second_label])
    assert (history["source"] == "undo").sum() == 1 and history["actor"].str.startswith("tab ").all()
    return int((live["kind"] == "relabel").sum())


def gallery_at_800(page) -> None:
    """At 800 px wide the gallery's tiles do not overlap."""
    page.set_viewport_size({"width": 800, "height": 1000})
    _idle(page)
    _shot(page, "5a-review-gallery-800")
    boxes = [b for b in (img.bounding_box() for img in page.locator(
        '[data-testid="stImage"] img').all()) if b and b["width"] > 0]
    assert len(boxes) >= 8
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = (a["x"] + a["width"] <= b["x"] + 0.5 or b["x"] + b["width"] <= a["x"] + 0.5 or
                     a["y"] + a["height"] <= b["y"] + 0.5 or b["y"] + b["height"] <= a["y"] + 0.5)
            assert apart, f"tiles overlap: {a} {b}"
    page.set_viewport_size({"width": 1400, "height": 1000})
    _idle(page)


def _point_on_screen(page, chart: str) -> dict:
    """Where on the screen the first point of the first non-empty trace of a chart is."""
    return page.evaluate("""(chart) => {
        const gd = document.querySelector(`.st-key-${chart} .js-plotly-plot`);
        const trace = gd._fullData.find((t) => t.x && t.x.length && t.x[0] !== null);
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const rect = gd.getBoundingClientRect();
        return {x: rect.left + xa._offset + xa.l2p(trace.x[0]),
                y: rect.top + ya._offset + ya.l2p(trace.y[0])};
    }""", chart)


def click_a_map_point(page) -> None:
    """A click on a point of the Label map opens that point's vote (the map is redrawn in
    place, app_pages/_plot.py, and sends the click back)."""
    page.locator(".st-key-label_map .js-plotly-plot").wait_for()
    # the PCA map is redrawn as UMAP once that is computed: click on the map that stays
    page.get_by_text("Map: PCA for now").wait_for(state="detached", timeout=WAIT_MS)
    _idle(page)
    page.locator(".st-key-label_map").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    where = _point_on_screen(page, "label_map")
    # moved there and clicked at once: the hover's thumbnail request must not swallow the
    # click (app_pages/_hover/hover.mjs, AskLater)
    page.mouse.click(where["x"], where["y"])
    page.get_by_role("button", name="Clear selection").wait_for(timeout=30_000)
    _idle(page)
    _no_exception(page)
    _shot(page, "3a-label-point")
    page.get_by_role("button", name="Clear selection").click()
    _idle(page)


def hover_a_map_point(page) -> None:
    """Hovering a point of the Review map shows its thumbnail beside the pointer."""
    page.get_by_role("tab", name="Map").click()
    _idle(page)
    page.locator(".st-key-review_map .js-plotly-plot").wait_for()
    page.wait_for_timeout(1000)
    where = _point_on_screen(page, "review_map")
    page.mouse.move(where["x"] + 40, where["y"] + 40)
    page.mouse.move(where["x"], where["y"], steps=5)
    page.locator(".hover-tip.shown img").wait_for(timeout=10_000)
    _shot(page, "5b-review-map-hover")
    page.mouse.move(5, 5)


def test_two_tabs_on_two_datasets_keep_their_own(server, browser):
    """Two browser contexts: one opens another dataset; the other keeps the demo, also on reload."""
    from PIL import Image
    url, base = server
    folder = base / "data" / "shapes"
    for name, grey in (("dark", 20), ("light", 230)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            Image.new("L", (8, 8), grey + i).save(folder / name / f"{name}{i}.png")
    first = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    second = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    for page in (first, second):
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.get_by_text("Open: Demo: handwritten digits").wait_for()
        _idle(page)
    second.get_by_text("Folder on the server").click()
    _idle(second)
    typed = second.get_by_placeholder("photos/2024")
    typed.fill("shapes")
    typed.press("Enter")                               # Streamlit takes the text on Enter
    _idle(second)
    second.get_by_role("button", name="Open folder").click()
    second.get_by_text("Open: Folder: shapes").wait_for()
    assert "dataset=shapes-" in second.url
    first.reload()
    first.get_by_text("Open: Demo: handwritten digits").wait_for()
    assert "dataset=demo-digits-" in first.url
    second.reload()
    second.get_by_text("Open: Folder: shapes").wait_for()
    _no_exception(first)
    _no_exception(second)
    first.context.close()
    second.context.close()


def review_correct_one(page) -> None:
    """Give the likeliest-wrong image of the gallery a new class by typing it into its picker."""
    page.get_by_role("tab", name="Gallery").click()
    _idle(page)
    box = page.get_by_role("combobox", name=re.compile("^Label of ")).first
    box.click()
    box.fill(NEW_CLASS)
    page.keyboard.press("Enter")
    _idle(page)
    page.get_by_text("It is saved, counts as a seed").first.wait_for()


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


def test_a_link_to_a_page_on_a_fresh_server_opens_it_inside_the_app(browser, tmp_path):
    """The first visit of a freshly started server goes straight to a page (a bookmark after
    a restart): it opens inside the app, with the app's navigation and wide layout, and
    no helper module of the page folder offered as a page."""
    env = {"HDL_DATA_ROOT": str(tmp_path / "data"), "HDL_WORKSPACE_ROOT": str(tmp_path / "ws")}
    try:
        with streamlit_server(ROOT / "app.py", tmp_path / "server.log", env=env) as (url, _):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{url}/teach")
            page.get_by_text("Teach: watch HDL label a 2-D toy").wait_for()
            _idle(page)
            _no_exception(page)
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
            assert "Teach: HDL on a 2-D toy" in nav and "Choose k" in nav, nav
            for helper in ("hover", "map", "plot", "review keys", "app"):
                assert helper not in nav.lower().split("\n"), nav
            title = page.get_by_text("Teach: watch HDL label a 2-D toy").bounding_box()
            assert title["x"] < 450, "the page is not in the app's wide layout"
            context.close()
    except ServerDidNotStart as error:
        pytest.fail(str(error))

"""app_pages/_review_keys.py: the keyboard review widget.

* its JavaScript unit tests (``node --test``), run from here;
* the wrapper's bookkeeping: each action handed out once, in order, whatever reruns
  coalesce; what it tells the widget (``applied``, ``floor``); input checks;
* in Chromium (slow): 5 images reviewed by keyboard against tests/review_keys_harness.py,
  the harness sees exactly those actions in order; a grid multi-select; screenshots at
  1280x720 and 800 px wide under test-artifacts/review_keys/.

Locally the node and browser tests skip (saying why) when node, Chromium or Playwright
is missing; under CI=true that is a failure.
"""
from __future__ import annotations

import doctest
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app_pages import _review_keys as rk
from tests.streamlit_server import ServerDidNotStart, chromium_browser, streamlit_server
from tests.test_browser import _missing_browser

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "app_pages" / "_review_keys"
HARNESS = ROOT / "tests" / "review_keys_harness.py"
ARTIFACTS = ROOT / "test-artifacts" / "review_keys"
NODE = os.environ.get("HDL_NODE", "node")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
WAIT_MS = 60_000


def _skip_or_fail(problem: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"cannot run under CI: {problem}")
    pytest.skip(problem)


# --------------------------------------------------------------------------- JavaScript

def run_node_tests(folder: Path) -> None:
    """Run a component's JavaScript unit tests (``node --test folder``); they must all pass."""
    node = shutil.which(NODE)
    if node is None:
        _skip_or_fail(f"node not found as {NODE!r} (install Node.js >= 18, or set HDL_NODE)")
    done = subprocess.run([node, "--test", str(folder)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def test_the_widget_javascript_unit_tests_pass():
    run_node_tests(FRONTEND)


# --------------------------------------------------------------------------- bookkeeping

def _action(seq: int, kind: str = "assign", ids=(1,), label="cat") -> dict:
    return {"seq": seq, "kind": kind, "ids": list(ids), "label": label, "previous": ["dog"]}


def test_only_actions_above_the_high_water_mark_are_handed_out_in_order():
    log = [_action(3), _action(1), _action(2, "confirm", label=None)]
    fresh, handed = rk.new_actions(log, 1)
    assert [a["seq"] for a in fresh] == [2, 3]
    assert handed == 3
    assert fresh[0] == {"seq": 2, "kind": "confirm", "ids": [1], "label": None,
                        "previous": ["dog"], "undoes": None, "undone": None,
                        "direction": None, "cursor": None}
    assert rk.new_actions(log, 3) == ([], 3)
    assert rk.new_actions(None, 5) == ([], 5)


def test_a_coalesced_log_hands_out_each_action_exactly_once():
    # The browser sent logs [1], [1, 2], [1, 2, 3]; Streamlit ran only the first and the last.
    handed, seen = 0, []
    for log in ([_action(1)], [_action(1), _action(2), _action(3)], [_action(3), _action(4)]):
        fresh, handed = rk.new_actions(log, handed)
        seen += [a["seq"] for a in fresh]
    assert seen == [1, 2, 3, 4]


def test_entries_that_are_not_actions_are_skipped(caplog):
    log = [_action(1), {"seq": "2", "kind": "assign"}, {"seq": 3, "kind": "explode"},
           {"seq": True, "kind": "confirm"}, "junk", _action(4, ids=("x",)), _action(5)]
    fresh, handed = rk.new_actions(log, 0)
    assert [a["seq"] for a in fresh] == [1, 5]
    assert handed == 5
    assert "not an action" in caplog.text


class _FakeStreamlit:
    """Just what review_keys uses of streamlit: session_state."""

    def __init__(self):
        self.session_state = {}


class _FakeComponent:
    """Stands in for the mounted CCv2 component: returns the browser's current log."""

    def __init__(self, fake_st: _FakeStreamlit, key: str):
        self.st, self.key, self.calls = fake_st, key, []

    def browser_sends(self, actions: list[dict]) -> None:
        self.st.session_state[self.key] = {"actions": actions}

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return dict(self.st.session_state.get(self.key, kwargs["default"]))


@pytest.fixture
def widget(monkeypatch):
    fake_st = _FakeStreamlit()
    component = _FakeComponent(fake_st, "review")
    monkeypatch.setattr(rk, "st", fake_st)
    monkeypatch.setattr(rk, "_component", component)
    return component


TILES = [{"id": 7, "image": PNG, "label": "cat"}, {"id": 8, "image": PNG, "label": None}]
CLASSES = {"cat": "#636EFA", "dog": "#EF553B"}


def test_review_keys_returns_new_actions_once_and_tells_the_widget_what_tiles_show(widget):
    assert rk.review_keys(TILES, CLASSES, key="review") == []
    assert widget.calls[-1]["data"]["applied"] == 0 and widget.calls[-1]["data"]["floor"] == 0
    widget.browser_sends([_action(1), _action(2)])
    assert [a["seq"] for a in rk.review_keys(TILES, CLASSES, key="review")] == [1, 2]
    # Those two were handed out before the tiles of this run: the widget can drop them.
    widget.browser_sends([_action(1), _action(2), _action(3)])
    fresh = rk.review_keys(TILES, CLASSES, key="review")
    assert [a["seq"] for a in fresh] == [3]
    assert widget.calls[-1]["data"]["applied"] == 2
    assert rk.review_keys(TILES, CLASSES, key="review") == []
    assert widget.calls[-1]["data"]["applied"] == 3
    assert widget.calls[-1]["key"] == "review"


def test_a_remounted_widget_numbers_above_actions_python_has_not_seen(widget):
    rk.review_keys(TILES, CLASSES, key="review")
    widget.browser_sends([_action(4), _action(5)])       # sent, not yet handed out
    fresh = rk.review_keys(TILES, CLASSES, key="review")
    assert widget.calls[-1]["data"]["floor"] == 5         # a new widget starts at 6
    assert widget.calls[-1]["data"]["applied"] == 0
    assert [a["seq"] for a in fresh] == [4, 5]


def test_on_actions_gets_the_actions_in_the_callback_before_the_script(widget):
    stored = []
    assert rk.review_keys(TILES, CLASSES, key="review", on_actions=stored.extend) == []
    callback = widget.calls[-1]["on_actions_change"]
    widget.browser_sends([_action(1), _action(2, "confirm", label=None)])
    callback()                                            # Streamlit runs it before the page
    assert [a["seq"] for a in stored] == [1, 2]
    assert rk.review_keys(TILES, CLASSES, key="review", on_actions=stored.extend) == []
    assert widget.calls[-1]["data"]["applied"] == 2       # the tiles of this run show both
    assert [a["seq"] for a in stored] == [1, 2]
    widget.browser_sends([_action(2), _action(3)])        # no callback ran (e.g. first run)
    assert rk.review_keys(TILES, CLASSES, key="review", on_actions=stored.extend) == []
    assert [a["seq"] for a in stored] == [1, 2, 3]


def test_widget_keys_are_checked(widget):
    with pytest.raises(ValueError, match="without '__'"):
        rk.review_keys(TILES, CLASSES, key="a__b")


def _page_with_the_widget():
    """An AppTest script: the widget, and what it handed out, stored as a page would."""
    import streamlit as st

    from app_pages._review_keys import review_keys
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
    st.session_state.setdefault("stored", [])
    tiles = [{"id": 7, "image": png, "label": "cat"}, {"id": 8, "image": png, "label": "<b>x</b>"}]
    st.session_state.stored += review_keys(tiles, {"cat": "#636EFA", "<b>x</b>": "#EF553B"},
                                           mode="grid", key="review")
    st.write(f"stored: {[a['seq'] for a in st.session_state.stored]}")


def test_in_a_streamlit_run_each_action_of_the_browser_log_is_stored_once():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_page_with_the_widget, default_timeout=30)
    at.run()
    assert not at.exception and at.markdown[0].value == "stored: []"
    # What the browser would send: the whole log each time; Streamlit ran only some of them.
    at.session_state["review"] = {"actions": [_action(1, ids=(7,))]}
    at.run()
    at.session_state["review"] = {"actions": [_action(s, ids=(7,)) for s in (1, 2, 3)]}
    at.run()
    at.run()                                              # a rerun for another reason
    assert not at.exception
    assert at.markdown[0].value == "stored: [1, 2, 3]"


# --------------------------------------------------------------------------- data in

def test_each_picture_is_sent_once_and_tiles_refer_to_it():
    other = b"\xff\xd8\xff" + b"\x01" * 4
    data = rk.widget_data([{"id": 1, "image": PNG, "label": "cat", "neighbours": [(PNG, "cat"), (other, None)]},
                           {"id": 2, "image": other, "label": "<b>x</b>", "reason": "3 of 5 say <i>"}],
                          [("cat", "#000"), ("<b>x</b>", "rgb(1, 2, 3)")], mode="grid")
    assert data["images"] == [rk.image_uri(PNG), rk.image_uri(other)]
    assert data["images"][1].startswith("data:image/jpeg;base64,")
    assert [t["image"] for t in data["tiles"]] == [0, 1]
    assert data["tiles"][0]["neighbours"] == [{"image": 0, "label": "cat"}, {"image": 1, "label": None}]
    # Names and reasons go as they are: the widget shows them as text.
    assert data["tiles"][1]["label"] == "<b>x</b>" and data["tiles"][1]["reason"] == "3 of 5 say <i>"
    assert data["tiles"][1]["colour"] == "rgb(1, 2, 3)"
    assert data["mode"] == "grid"
    # URLs go as they are (the browser caches them); the wrapper does not fetch them.
    for url in ("https://example.org/t.jpg", "/media/abc.png", "app/static/t/1.jpg"):
        assert rk.image_uri(url) == url


@pytest.mark.parametrize(("tiles", "classes", "message"), [
    ([{"id": 1, "image": PNG}], CLASSES, r"tiles\[0\]: missing label"),
    ([{"id": "a", "image": PNG, "label": "cat"}], CLASSES, r"tiles\[0\].id: an image id must be an int"),
    ([{"id": 1, "image": PNG, "label": "cat"}, {"id": 1, "image": PNG, "label": "cat"}], CLASSES,
     r"tiles\[1\]: image id 1 is listed twice"),
    ([{"id": 1, "image": b"GIF00", "label": "cat"}], CLASSES, r"tiles\[0\].image: 5 bytes that are not PNG"),
    ([{"id": 1, "image": "x.png", "label": "cat"}], CLASSES, r"a string must be a data:image"),
    ([{"id": 1, "image": "javascript:alert(1)", "label": "cat"}], CLASSES, r"a string must be"),
    ([{"id": 1, "image": PNG, "label": 3}], CLASSES, r"tiles\[0\].label: a label must be a str"),
    ([{"id": 1, "image": PNG, "label": "cat", "neighbours": [PNG]}], CLASSES,
     r"tiles\[0\].neighbours\[0\]: expected an \(image, label\) pair"),
    ([], {"cat": "blue"}, r"classes\[0\] \('cat'\): a colour must be"),
    ([], [("cat", "#000"), ("cat", "#111")], r"classes\[1\]: the class 'cat' is listed twice"),
])
def test_bad_input_is_refused_with_a_message_naming_it(tiles, classes, message):
    with pytest.raises(ValueError, match=message):
        rk.widget_data(tiles, classes)


def test_modes_are_one_or_grid():
    with pytest.raises(ValueError, match="mode must be one of"):
        rk.widget_data([], CLASSES, mode="list")


def test_the_docstring_examples_run():
    assert doctest.testmod(rk).failed == 0


# --------------------------------------------------------------------------- Chromium

@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    problem = _missing_browser()
    if problem:
        _skip_or_fail(f"browser test skipped: {problem}")
    base = tmp_path_factory.mktemp("review_keys")
    log_file = base / "actions.jsonl"
    try:
        with streamlit_server(HARNESS, base / "server.log",
                              env={"HDL_REVIEW_KEYS_LOG": str(log_file)}) as (url, _):
            yield url, log_file
    except ServerDidNotStart as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def browser(harness):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_browser() as chromium:
        yield chromium


def _open(browser, url: str, *, width: int, height: int):
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.locator(".rk-stage").wait_for()               # Playwright's CSS reaches into shadow roots
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    return page, errors


def _main_id(page) -> str:
    return page.locator(".rk-main-box").get_attribute("data-id")


def _press_and_see(page, key: str, image_id: int) -> None:
    """Press a key; the widget must show image `image_id` next, without waiting for Python.
    If it does not, say what it shows instead (image, tag, message, focus) and keep a
    screenshot, so that a rare miss can be told apart from a slow machine."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.keyboard.press(key)
    try:
        page.wait_for_function(
            "(id) => { const host = document.querySelector('[data-testid=stBidiComponentIsolated]');"
            " return host.shadowRoot.querySelector('.rk-main-box').dataset.id === id; }",
            arg=str(image_id), timeout=5_000)
    except PlaywrightTimeout:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"missed-key-{key}.png"
        page.screenshot(path=str(shot))
        seen = page.evaluate(
            "() => { const root = document.querySelector('[data-testid=stBidiComponentIsolated]')"
            ".shadowRoot; const q = (s) => root.querySelector(s);"
            " return {shown: q('.rk-main-box')?.dataset.id, tag: q('.rk-main-tag')?.innerText,"
            " status: q('.rk-status')?.innerText ?? null,"
            " focus: document.activeElement?.tagName ?? null,"
            " inner_focus: root.activeElement?.className ?? null}; }")
        raise AssertionError(f"after key {key!r} the widget shows {seen}, not image {image_id} "
                             f"(screenshot {shot})") from None


def _stored(page, count: int) -> None:
    page.get_by_text(f"actions stored: {count}", exact=True).wait_for()


def _log(log_file: Path, run: str) -> list[dict]:
    if not log_file.exists():
        return []
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    return [line for line in lines if line["run"] == run]


def _no_html_elements(page) -> None:
    tags = page.evaluate(
        "() => [...document.querySelector('[data-testid=stBidiComponentIsolated]')"
        ".shadowRoot.querySelectorAll('b, i, script')].map(e => e.tagName)")
    assert tags == [], f"class names or reasons were parsed as HTML: {tags}"


@pytest.mark.slow
def test_five_images_reviewed_by_keyboard_reach_python_in_order(harness, browser):
    url, log_file = harness
    page, errors = _open(browser, f"{url}/?mode=one&n=12&store_ms=40&run=keys", width=1280, height=720)
    assert _main_id(page) == "0"
    box = page.locator(".rk-main-box").bounding_box()
    _press_and_see(page, "3", 1)            # #0: one -> two
    _press_and_see(page, "Enter", 2)        # #1: one, confirmed
    page.keyboard.press("t")                # letters wait for the rest of "th"
    _press_and_see(page, "h", 3)            # #2: two -> three
    _press_and_see(page, "u", 2)            # undo: back on #2, showing two again
    assert page.locator(".rk-main-tag").inner_text() == "two"
    _press_and_see(page, "e", 3)            # #2: two -> eight
    _press_and_see(page, "Enter", 4)        # #3: four, confirmed
    _press_and_see(page, "z", 5)            # #4: four -> zero
    assert page.locator(".rk-main-box").bounding_box() == box, "the image moved"
    _stored(page, 7)
    actions = _log(log_file, "keys")
    assert [(a["seq"], a["kind"], a["ids"], a["label"], a["previous"]) for a in actions] == [
        (1, "assign", [0], "two", ["one"]),
        (2, "confirm", [1], None, ["one"]),
        (3, "assign", [2], "three", ["two"]),
        (4, "undo", [2], None, ["three"]),
        (5, "assign", [2], "eight", ["two"]),
        (6, "confirm", [3], None, ["four"]),
        (7, "assign", [4], "zero", ["four"]),
    ]
    assert actions[3]["undoes"] == 3 and actions[3]["undone"]["previous"] == ["two"]
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.locator(".rk-main-tag").inner_text() == "eight"   # the store's label now
    page.keyboard.press("c")                # no class starts with c; Streamlit's "clear
    page.keyboard.press("r")                # cache" and "rerun" keys must stay quiet too
    page.wait_for_timeout(300)
    assert page.locator("[role=dialog]").count() == 0
    assert "No class key starts with “r”" in page.locator(".rk-status").inner_text()
    page.get_by_text("review_keys harness").click()      # focus leaves the widget …
    _press_and_see(page, "End", 11)                      # … and keys still reach it
    assert page.locator(".rk-legend").inner_text().count("<b>x</b>") == 1
    _no_html_elements(page)
    page.screenshot(path=str(ARTIFACTS / "one-1280x720.png"))
    page.set_viewport_size({"width": 800, "height": 900})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "one-800.png"))
    page.keyboard.press("?")
    page.get_by_text("Press ? or Esc to close.").wait_for()
    page.screenshot(path=str(ARTIFACTS / "keys-800.png"))
    assert errors == []


@pytest.mark.slow
def test_shift_click_then_a_key_labels_every_selected_tile_in_place(harness, browser):
    url, log_file = harness
    page, errors = _open(browser, f"{url}/?mode=grid&n=24&run=grid", width=1280, height=720)
    cells = page.locator(".rk-cell")
    boxes = [cells.nth(i).bounding_box() for i in range(6)]
    cells.nth(1).click()
    cells.nth(3).click(modifiers=["Shift"])
    page.keyboard.press("Shift+ArrowRight")          # 1..4 selected
    assert page.locator(".rk-cell.rk-selected").count() == 4
    page.screenshot(path=str(ARTIFACTS / "grid-selected-1280x720.png"))
    page.keyboard.press("7")
    assert [cells.nth(i).locator(".rk-tag").inner_text() for i in range(1, 5)] == ["six"] * 4
    assert page.locator(".rk-cell.rk-cursor").get_attribute("data-id") == "5"
    assert [cells.nth(i).bounding_box() for i in range(6)] == boxes, "tiles moved"
    _stored(page, 1)
    [action] = _log(log_file, "grid")
    assert (action["kind"], action["ids"], action["label"]) == ("assign", [1, 2, 3, 4], "six")
    page.set_viewport_size({"width": 800, "height": 900})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "grid-800.png"))
    rects = page.evaluate(
        "() => [...document.querySelector('[data-testid=stBidiComponentIsolated]')"
        ".shadowRoot.querySelectorAll('.rk-cell')].map(c => { const r = c.getBoundingClientRect();"
        " return [r.left, r.top, r.right, r.bottom]; })")
    overlaps = [(i, j) for i, a in enumerate(rects) for j, b in enumerate(rects[:i])
                if a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1]
    assert overlaps == [], f"tiles overlap at 800 px: {overlaps[:5]}"
    assert errors == []

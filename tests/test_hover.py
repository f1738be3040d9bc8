"""pages/_hover.py: thumbnails beside the pointer on the plotly maps.

Its JavaScript unit tests run here with ``node --test``; the Chromium test
(tests/test_browser.py) hovers a point of the real map.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pages import _hover
from tests.test_review_keys import NODE, _skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


def test_the_hover_javascript_unit_tests_pass():
    node = shutil.which(NODE)
    if node is None:
        _skip_or_fail(f"node not found as {NODE!r} (install Node.js >= 18, or set HDL_NODE)")
    done = subprocess.run([node, "--test", str(ROOT / "pages" / "_hover")], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def test_thumbnails_go_as_data_uris_keyed_by_point_id_with_text_captions(monkeypatch):
    sent = {}
    monkeypatch.setattr(_hover, "_component", lambda **kwargs: sent.update(kwargs))
    _hover.hover_thumbnails("the_map", {3: PNG, 5: b"\xff\xd8\xff\x00"},
                            captions={3: "<b>a</b>.png", 9: "not drawn"})
    data = sent["data"]
    assert data["chart_key"] == "the_map" and sent["key"] == "hover_the_map"
    assert data["thumbs"][3].startswith("data:image/png;base64,")
    assert data["thumbs"][5].startswith("data:image/jpeg;base64,")
    assert data["captions"] == {3: "<b>a</b>.png"}            # sent as text, shown as text


def test_a_map_too_big_sends_at_most_max_points(monkeypatch):
    sent = {}
    monkeypatch.setattr(_hover, "_component", lambda **kwargs: sent.update(kwargs))
    _hover.hover_thumbnails("m", {i: PNG for i in range(_hover.MAX_POINTS + 10)})
    assert len(sent["data"]["thumbs"]) == _hover.MAX_POINTS

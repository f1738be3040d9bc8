"""app_pages/_hover.py: thumbnails beside the pointer on the plotly maps.

Its JavaScript unit tests run here with ``node --test``; the Chromium test
(tests/test_browser.py) hovers a point of the real map.
"""
from __future__ import annotations

from pathlib import Path

from app_pages import _hover
from tests.test_review_keys import run_node_tests

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


def test_the_hover_javascript_unit_tests_pass():
    run_node_tests(ROOT / "app_pages" / "_hover")


def test_only_the_wanted_thumbnail_goes_as_a_data_uri_with_a_text_caption():
    asked = []

    def thumbnail(point):
        asked.append(point)
        return {3: (PNG, "<b>a</b>.png"), 5: (b"\xff\xd8\xff\x00", "b.jpg")}.get(point)

    data = _hover.hover_data("the_map", thumbnail, 80, None)
    assert data == {"chart_key": "the_map", "size": 80, "thumbs": {}, "captions": {}}
    assert asked == []                                          # nothing is sent up front
    data = _hover.hover_data("the_map", thumbnail, 80, 3)
    assert list(data["thumbs"]) == [3] and data["thumbs"][3].startswith("data:image/png;base64,")
    assert data["captions"] == {3: "<b>a</b>.png"}              # sent as text, shown as text
    assert _hover.hover_data("the_map", thumbnail, 80, 5)["thumbs"][5].startswith("data:image/jpeg")
    assert _hover.hover_data("the_map", thumbnail, 80, 9)["thumbs"] == {}    # unknown point
    assert _hover.hover_data("the_map", thumbnail, 80, "junk")["thumbs"] == {}
    assert asked == [3, 5, 9]
    not_an_image = _hover.hover_data("the_map", lambda point: (b"junk", "c.txt"), 80, 1)
    assert not_an_image["thumbs"] == {} and not_an_image["captions"] == {}

"""app_pages/_plot.py: plotly charts redrawn in place (the Label page's map and charts).

Its JavaScript unit tests run here with ``node --test``; the Chromium test
(tests/test_browser.py) moves the round slider and clicks a point of the real map.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import streamlit

from app_pages import _plot
from tests.test_review_keys import run_node_tests

ROOT = Path(__file__).resolve().parent.parent


def test_the_plot_javascript_unit_tests_pass():
    run_node_tests(ROOT / "app_pages" / "_plot")


def _array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's binary form {dtype, bdata, shape}."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(s) for s in str(value.get("shape", flat.size)).split(",")])
    return np.asarray(value)


def test_a_figure_travels_as_json_text_with_its_arrays_intact():
    xy = np.random.default_rng(0).normal(size=(50, 2))
    ids = np.column_stack([np.arange(50), np.zeros(50), np.ones(50)])
    colours = np.array(["#ff0000", "#00ff00"] * 25, dtype=object)
    figure = {"data": [{"type": "scattergl", "x": xy[:, 0], "y": xy[:, 1], "customdata": ids,
                        "marker": {"color": colours}}],
              "layout": {"height": 300, "uirevision": "map"}}
    sent = _plot.chart_data(figure, {"scrollZoom": True})
    json.dumps(sent)                                    # what Streamlit sends: plain JSON
    trace = json.loads(sent["data"])[0]
    assert np.array_equal(_array(trace["x"]), xy[:, 0])
    assert np.array_equal(_array(trace["customdata"]), ids)
    assert list(trace["marker"]["color"]) == list(colours)
    assert json.loads(sent["layout"]) == {"height": 300, "uirevision": "map"}
    assert sent["config"] == {"scrollZoom": True}
    # the same figure gives the same text: the browser then keeps its traces as they are
    assert _plot.chart_data(figure)["data"] == sent["data"]


def test_plotly_js_is_streamlits_own_chart_code():
    script = _plot.plotly_script()
    assert script.startswith("./static/js/PlotlyChart.") and script.endswith(".js")
    served = Path(streamlit.__file__).parent / "static" / "static" / "js" / Path(script).name
    assert served.is_file()
    assert "plotly.js" in served.read_text(encoding="utf-8", errors="replace")[:2_000_000]

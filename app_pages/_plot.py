"""A plotly chart that is redrawn in place: for charts that change at every slider move.

``st.plotly_chart`` names its element by the figure, so a new figure is a new element:
the browser throws the old chart away and builds the new one from scratch (a new WebGL
context for a scattergl map). On the Label page's map that was 300–400 ms of the
browser's time per round-slider move in Chromium, against 60–80 ms for plotly's own
``Plotly.react`` on the chart already drawn. `live_chart` draws a figure with a small
custom component (components v2, ``app_pages/_plot/plot.mjs``) that keeps one chart per key
and hands each new figure to ``Plotly.react``, which redraws only what changed.

The component uses Streamlit's own plotly.js (the one ``st.plotly_chart`` loads; it sets
``window.Plotly``), so the page loads no second copy. Clicks on points come back as the
clicked point's id (the first entry of its ``customdata``), as ``st.plotly_chart``'s
point selection gave them. Hover thumbnails (`app_pages._hover`) work on it as on any chart:
the chart sits under ``.st-key-<key>`` in the page's own document. A module of app_pages/
whose name starts with ``_`` is not a page.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import streamlit as st
from plotly.io.json import to_json_plotly

from app_pages._frontend import folder_component

_component = folder_component(
    "hdl_studio_live_plot", "_plot", "plot", html='<div class="live-plot"></div>',
    isolate_styles=False)      # plotly styles its chart from the page's stylesheet


@functools.cache
def plotly_script() -> str:
    """Where the browser finds Streamlit's plotly.js, relative to the app's address.

    Streamlit loads its plotly chart code (which defines ``window.Plotly``) only when a
    page first shows a plotly chart; a page whose first chart is a `live_chart` loads it
    itself from here. Empty when this Streamlit has no such file: the component then
    waits for a ``st.plotly_chart`` to load it."""
    folder = Path(st.__file__).parent / "static" / "static" / "js"
    found = sorted(folder.glob("PlotlyChart.*.js"))
    return f"./static/js/{found[0].name}" if found else ""


def chart_data(figure: dict, config: dict | None = None) -> dict:
    """What the component is sent: the figure's traces and layout as JSON text (numpy
    arrays in plotly's compact binary form), its config, and where plotly.js is."""
    return {"data": to_json_plotly(figure.get("data", [])),
            "layout": to_json_plotly(figure.get("layout", {})),
            "config": dict(config or {}), "plotly": plotly_script()}


def live_chart(figure: dict, *, key: str, config: dict | None = None,
               on_click: Callable[[int], None] | None = None) -> None:
    """Draw `figure` (a plotly figure dict) under `key`, in place of what `key` showed.

    Parameters
    ----------
    figure : dict
        ``{"data": [...], "layout": {...}}``, numpy arrays allowed. The layout's height is
        the chart's height. Backgrounds are left transparent and text takes the theme's
        colour and font, as ``st.plotly_chart(theme="streamlit")`` does.
    key : str
        The chart's key; keep it the same across reruns so the chart is redrawn in place.
    config : dict, optional
        plotly's config (``scrollZoom``, ``displaylogo``, ...).
    on_click : callable(int), optional
        Called (before the rerun the click causes) with the clicked point's id: the
        first entry of its ``customdata``. Without it clicks do nothing.
    """
    def clicked() -> None:
        value = (st.session_state.get(key) or {}).get("click")
        try:
            point = int(value)
        except (TypeError, ValueError):
            return
        if on_click is not None:
            on_click(point)

    _component(key=key, data=chart_data(figure, config), default={},
               on_click_change=clicked, width="stretch", height="content")

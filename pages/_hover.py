"""Hover thumbnails for the plotly maps: hover a point, see its image.

Plotly's own hover labels can only show text, so a small custom component (components
v2, ``pages/_hover/hover.mjs``) listens to the hover events of one chart, found by its
Streamlit key, and shows the hovered point's thumbnail beside the pointer. Points are
identified by the first entry of their ``customdata`` (the same ids `pages._map`'s reader
uses). A module of pages/ whose name starts with ``_`` is not a page.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Mapping

import streamlit as st

FRONTEND = Path(__file__).with_name("_hover")
# Thumbnails sent with the page up to this many points; a bigger map gets none rather than
# megabytes on every rerun (it shows a sample anyway).
MAX_POINTS = 5000

_component = st.components.v2.component(
    "hdl_studio_hover_thumbnails",
    html='<div class="hover"></div>',
    css=(FRONTEND / "hover.css").read_text(encoding="utf-8"),
    js=(FRONTEND / "hover.mjs").read_text(encoding="utf-8"),
)


def data_uri(image: bytes) -> str:
    """PNG or JPEG bytes as a ``data:`` URI."""
    kind = "image/png" if image[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return f"data:{kind};base64,{base64.b64encode(image).decode('ascii')}"


def hover_thumbnails(chart_key: str, thumbs: Mapping[int, bytes], *,
                     captions: Mapping[int, str] | None = None, size: int = 96,
                     key: str | None = None) -> None:
    """Show thumbnails when the pointer is over a point of the chart with key `chart_key`.

    Parameters
    ----------
    chart_key : str
        The ``key=`` of the ``st.plotly_chart`` to watch.
    thumbs : mapping of int to bytes
        Thumbnail (PNG or JPEG bytes) of each point id (``customdata[0]``); at most
        `MAX_POINTS` are sent.
    captions : mapping of int to str, optional
        A line under each thumbnail (shown as text).
    size : int
        Width in pixels the thumbnail is shown at.
    """
    if len(thumbs) > MAX_POINTS:
        thumbs = dict(list(thumbs.items())[:MAX_POINTS])
    data = {"chart_key": chart_key, "size": int(size),
            "thumbs": {int(i): data_uri(image) for i, image in thumbs.items()},
            "captions": {int(i): str(text) for i, text in (captions or {}).items()
                         if int(i) in thumbs}}
    _component(data=data, key=key or f"hover_{chart_key}", height=0)

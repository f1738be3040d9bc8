"""Hover thumbnails for the plotly maps: hover a point, see its image.

Plotly's own hover labels can only show text, so a small custom component (components
v2, ``app_pages/_hover/hover.mjs``) listens to the hover events of one chart, found by its
Streamlit key, and shows the hovered point's thumbnail beside the pointer. Points are
identified by the first entry of their ``customdata`` (the same ids `app_pages._map`'s reader
uses). A module of app_pages/ whose name starts with ``_`` is not a page.

Thumbnails are sent on demand: hovering a point whose thumbnail the browser does not have
sets the component's state ``wanted`` to its id, which reruns only the component's own
fragment; Python sends that one thumbnail (a few kB), and the browser keeps every
thumbnail it received. So a map of a million points sends nothing up front, and no rerun
of the page resends thumbnails.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from app_pages._frontend import folder_component
from app_pages._review_keys import image_uri

_component = folder_component("hdl_studio_hover_thumbnails", "_hover", "hover",
                              html='<div class="hover"></div>')


def hover_thumbnails(chart_key: str, thumbnail: Callable[[int], tuple[bytes, str] | None], *,
                     size: int = 96, key: str | None = None) -> None:
    """Show a thumbnail when the pointer is over a point of the chart with key `chart_key`.

    Runs as its own fragment: asking for a thumbnail reruns only this, never the page.

    Parameters
    ----------
    chart_key : str
        The ``key=`` of the ``st.plotly_chart`` to watch.
    thumbnail : callable(int) -> (bytes, str) or None
        For a point id (``customdata[0]``): its thumbnail (PNG or JPEG bytes) and a caption
        (shown as text), or None for an id it does not know. Called for the hovered point
        only.
    size : int
        Width in pixels the thumbnail is shown at.
    """
    st.fragment(_hover)(chart_key, thumbnail, int(size), key or f"hover_{chart_key}")


def _hover(chart_key: str, thumbnail, size: int, key: str) -> None:
    wanted = st.session_state.get(key, {}).get("wanted") if isinstance(
        st.session_state.get(key), dict) else None
    _component(data=hover_data(chart_key, thumbnail, size, wanted), key=key,
               default={"wanted": None}, on_wanted_change=lambda: None, height=0)


def hover_data(chart_key: str, thumbnail, size: int, wanted) -> dict:
    """What the component is sent: the chart, the size, and the wanted point's thumbnail."""
    data = {"chart_key": chart_key, "size": int(size), "thumbs": {}, "captions": {}}
    try:
        point = int(wanted) if wanted is not None else None
    except (TypeError, ValueError):
        point = None
    if point is not None:
        found = thumbnail(point)
        if found is not None:
            image, caption = found
            try:
                data["thumbs"][point] = image_uri(image, where=f"thumbnail of point {point}")
            except ValueError:          # not an image format a browser shows: no thumbnail
                return data
            data["captions"][point] = str(caption)
    return data

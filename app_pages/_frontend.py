"""The app's own components (Streamlit components v2): one declaration for all three.

Each lives in a folder of app_pages/ beside its Python module, with its stylesheet and
its ES module side by side (``_plot/plot.css``, ``_plot/plot.mjs``). A module of
app_pages/ whose name starts with ``_`` is not a page.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st


def folder_component(name: str, folder: str, stem: str, html: str, **options):
    """The component `name` built from ``app_pages/<folder>/<stem>.css`` and ``.mjs``;
    `options` go to ``st.components.v2.component`` (e.g. ``isolate_styles``)."""
    here = Path(__file__).with_name(folder)
    return st.components.v2.component(
        name, html=html,
        css=(here / f"{stem}.css").read_text(encoding="utf-8"),
        js=(here / f"{stem}.mjs").read_text(encoding="utf-8"),
        **options)

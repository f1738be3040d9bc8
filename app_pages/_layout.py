"""Layout helpers the pages share. A module of app_pages/ whose name starts with ``_`` is
not a page."""
from __future__ import annotations

import streamlit as st


def wrapping_container(key: str, min_rem: float):
    """A container (`st.container(key=key)`) whose columns sit side by side while each has
    `min_rem` of width, and wrap onto more rows in a narrower window instead of cutting
    their words short. The rule is a style-only `st.html`, which takes no space."""
    scope = f".st-key-{key}"
    st.html("<style>"
            f"{scope} [data-testid='stHorizontalBlock'] {{ flex-wrap: wrap; }}"
            f"{scope} [data-testid='stColumn'] {{ min-width: {min_rem}rem; }}"
            "</style>")
    return st.container(key=key)

"""hdl-studio: label an image folder from a few examples, and see how.

Run with `make run` (or `streamlit run app.py`). One file per page under pages/; the shared
workspace and caches are in state.py; the labeling itself is in hdl_core.
"""
import sys

import streamlit as st

st.set_page_config(page_title="hdl-studio", page_icon=":material/label:", layout="wide")

PAGES = {
    "Label a dataset": [
        st.Page("pages/data.py", title="Data", icon=":material/folder_open:", default=True),
        st.Page("pages/embed.py", title="Embed", icon=":material/memory:"),
        st.Page("pages/choose_k.py", title="Choose k", icon=":material/insights:"),
        st.Page("pages/label.py", title="Label", icon=":material/label:"),
        st.Page("pages/review.py", title="Review", icon=":material/task_alt:"),
        st.Page("pages/export.py", title="Export", icon=":material/download:"),
    ],
    "Learn": [
        st.Page("pages/teach.py", title="Teach: HDL on a 2-D toy", icon=":material/school:"),
    ],
}


@st.cache_resource(show_spinner=False)
def _load_the_studio() -> bool:
    """Import the library once per server process (numba, scipy: a second or two)."""
    import state  # noqa: F401
    return True


page = st.navigation(PAGES)
if "state" not in sys.modules:
    # the first visit to a fresh server: say so at once (a cached function's own spinner
    # shows only after half a second), rather than a blank page while the library loads
    starting = st.empty()
    with starting.status("Starting hdl-studio: loading the labeling library…"):
        _load_the_studio()
    starting.empty()
_load_the_studio()
page.run()
import state  # noqa: E402  (loaded by now: _load_the_studio imported it behind its spinner)

state.warm_up_once()                    # after the page is drawn, never before it

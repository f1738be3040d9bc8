"""hdl-studio: label an image folder from a few examples, and see how.

Run with `make run` (or `streamlit run app.py`). One file per page under app_pages/; the shared
workspace and caches are in state.py; the labeling itself is in hdl_core.

The page folder is not called ``pages/``: Streamlit treats a ``pages/`` folder beside the
main script as its own list of pages, and a link straight to a page on a freshly started
server (``/label?dataset=…``) then ran that file alone, without this script: no navigation
but a list of every module in the folder (helpers included), and a narrow layout.
"""
import sys

import streamlit as st

st.set_page_config(page_title="hdl-studio", page_icon=":material/label:", layout="wide")

PAGES = {
    "Label a dataset": [
        st.Page("app_pages/data.py", title="Data", icon=":material/folder_open:", default=True),
        st.Page("app_pages/embed.py", title="Embed", icon=":material/memory:"),
        st.Page("app_pages/choose_k.py", title="Choose k", icon=":material/insights:"),
        st.Page("app_pages/label.py", title="Label", icon=":material/label:"),
        st.Page("app_pages/review.py", title="Review", icon=":material/task_alt:"),
        st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
    ],
    "Learn": [
        st.Page("app_pages/teach.py", title="Teach: HDL on a 2-D toy", icon=":material/school:"),
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

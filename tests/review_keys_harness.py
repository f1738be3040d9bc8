"""A tiny Streamlit app around `review_keys`, for the Chromium test and the benchmark.

Run: ``streamlit run tests/review_keys_harness.py`` then open
``/?mode=one|grid&n=60&per_page=60&wrong=1&store_ms=40&page_ms=0&path=callback|return&run=name``.

It reviews handwritten digits (scikit-learn's bundled 8x8 images, no download) and keeps
its "store" in session state: every action the widget hands out is applied there (after a
fake write of ``store_ms`` milliseconds, like the real store), so the next tiles show it,
as the contract asks. ``wrong=1`` gives every image a wrong label (the benchmark corrects
them all); otherwise every third one is wrong. ``page_ms`` makes every rerun of the
widget's fragment that much slower, like a page with a map and a gallery.

When ``HDL_REVIEW_KEYS_LOG`` names a file, each action is appended to it as one JSON line
with the time it was stored, the ``run`` name from the URL, and how many actions came in
the same call (``batch``: more than 1 when reruns coalesced; ``batch_first``: the first
seq of that call), for the test and the benchmark to read.
"""
from __future__ import annotations

import io
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # `streamlit run tests/...` puts tests/ first, not the root
    sys.path.insert(0, str(ROOT))

from app_pages._map import palette                  # noqa: E402
from app_pages._review_keys import review_keys       # noqa: E402

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ODD_CLASS = "<b>x</b>"                 # must show as these characters, not in bold
CLASSES = [*DIGITS, ODD_CLASS]
LOG = os.environ.get("HDL_REVIEW_KEYS_LOG")


@dataclass(frozen=True)
class Settings:
    """What the URL asks for (see the module docstring)."""

    mode: str
    n_images: int
    per_page: int
    all_wrong: bool
    store_seconds: float
    page_seconds: float
    use_callback: bool
    run_name: str

    @classmethod
    def from_url(cls, params) -> "Settings":
        n_images = int(params.get("n", 30))
        return cls(mode=params.get("mode", "one"), n_images=n_images,
                   per_page=int(params.get("per_page", n_images)),
                   all_wrong=params.get("wrong", "0") == "1",
                   store_seconds=float(params.get("store_ms", 0)) / 1000,
                   page_seconds=float(params.get("page_ms", 0)) / 1000,
                   use_callback=params.get("path", "callback") == "callback",
                   run_name=params.get("run", ""))


@st.cache_resource
def digits():
    """Pictures as 8x8 PNG bytes, their classes and the pixel vectors."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = (bunch.images / 16 * 255).astype(np.uint8)
    pngs = []
    for picture in 255 - pixels:        # dark ink on white, as a scan would be
        buffer = io.BytesIO()
        Image.fromarray(picture, mode="L").save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs, bunch.target.astype(int), bunch.data.astype(np.float32)


def nearest(flat, i: int, k: int = 5) -> np.ndarray:
    distances = ((flat - flat[i]) ** 2).sum(axis=1)
    distances[i] = np.inf
    return np.argsort(distances, kind="stable")[:k]


def store(actions: list[dict], settings: Settings) -> None:
    """Apply the widget's actions to the session "store", as the Review page would."""
    labels, confirmed = st.session_state.harness_labels, st.session_state.harness_confirmed
    for action in actions:
        time.sleep(settings.store_seconds)
        ids, kind = action["ids"], action["kind"]
        if kind == "assign":
            for i in ids:
                labels[i] = action["label"]
                confirmed.discard(i)
        elif kind == "confirm":
            confirmed.update(ids)
        elif kind == "undo":
            undone = action["undone"]
            for i, before, was in zip(ids, undone["previous"], undone["previous_confirmed"]):
                labels[i] = before
                (confirmed.add if was else confirmed.discard)(i)
        elif kind == "page":
            last = max(0, (settings.n_images - 1) // settings.per_page)
            st.session_state.harness_page = min(last, max(0, st.session_state.harness_page
                                                          + action["direction"]))
        st.session_state.harness_seen.append(action)
        if LOG:
            with open(LOG, "a", encoding="utf-8") as f:
                f.write(json.dumps({**action, "stored_at": time.time(), "run": settings.run_name,
                                    "batch": len(actions), "batch_first": actions[0]["seq"]})
                        + "\n")


def tiles(settings: Settings) -> list[dict]:
    pngs, truth, flat = digits()
    start = st.session_state.harness_page * settings.per_page
    labels, confirmed = st.session_state.harness_labels, st.session_state.harness_confirmed
    out = []
    for i in range(start, min(settings.n_images, start + settings.per_page)):
        near = nearest(flat, i)
        agree = int(sum(DIGITS[truth[j]] == labels[i] for j in near))
        reason = f"labeled in the last {1 + i % 9} % of rounds; {agree} of 5 neighbours say {labels[i]}"
        if i == 1:
            reason += " <i>not italic</i>"
        out.append({"id": i, "image": pngs[i], "label": labels[i], "confirmed": i in confirmed,
                    "name": "<script>x</script>.png" if i == 2 else f"digit_{i:04d}.png",
                    "reason": reason,
                    "neighbours": [(pngs[j], DIGITS[truth[j]]) for j in near]})
    return out


@st.fragment
def review(settings: Settings) -> None:
    time.sleep(settings.page_seconds)   # the rest of a heavy page, before the widget
    classes = dict(zip(CLASSES, palette(len(CLASSES))))
    if settings.use_callback:
        review_keys(tiles(settings), classes, mode=settings.mode, key="harness",
                    on_actions=lambda actions: store(actions, settings))
    else:
        store(review_keys(tiles(settings), classes, mode=settings.mode, key="harness"), settings)
    st.caption(f"actions stored: {len(st.session_state.harness_seen)}")


def main() -> None:
    st.set_page_config(page_title="review_keys harness", layout="wide")
    settings = Settings.from_url(st.query_params)
    if "harness_labels" not in st.session_state:
        _, truth, _ = digits()
        st.session_state.harness_labels = {
            i: DIGITS[(truth[i] + 1) % 10] if settings.all_wrong or i % 3 == 0 else DIGITS[truth[i]]
            for i in range(settings.n_images)}
        st.session_state.harness_confirmed = set()
        st.session_state.harness_page = 0
        st.session_state.harness_seen = []
    st.title("review_keys harness")
    review(settings)


if __name__ == "__main__":            # `streamlit run` runs it as __main__; pytest only imports it
    main()

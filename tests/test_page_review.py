"""AppTest of the Review page on the demo: corrections one by one and by selection, undo,
filters, Label next, suspicious seeds, and re-running HDL with corrections as seeds.

Every test leaves the demo workspace as it found it (corrections undone, the original run
restored) because the workspace is shared by the whole test session.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from hdl_core.auto_k import KIntent

from hdl_core import suggest
from hdl_core.workspace import pipeline
from hdl_core.views import gallery as review

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/review.py"


def _review_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _open(at, tab: str) -> AppTest:
    """Open a tab of the page (stateful tabs: the page reads the open one from this key)."""
    at.session_state["review_tab"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def _pickers(at, where: str) -> list[tuple[int, str, object]]:
    """(item id, label shown, widget) of the class pickers of one section, in page order."""
    found = []
    prefix = f"review_fix_{where}_"
    for box in at.selectbox:
        if box.key and box.key.startswith(prefix):
            item_id, shown = box.key[len(prefix):].split("_", 1)
            found.append((int(item_id), shown, box))
    return found


def _texts(at) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption]
    parts += [e.value for e in at.success] + [e.value for e in at.info] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


def _live_corrections(ws) -> int:
    history = ws.corrections()
    return int(((history["source"] != "undo") & ~history["undone"]).sum())


@pytest.fixture
def ws(demo_workspace):
    """The demo workspace; corrections made by the test are undone afterwards."""
    before = _live_corrections(demo_workspace)
    yield demo_workspace
    while _live_corrections(demo_workspace) > before and demo_workspace.undo_last_correction():
        pass


def test_review_page_renders_the_gallery_map_and_guidance(ws):
    at = _review_page()
    assert next(m for m in at.metric if m.label == "Images").value == "1,797"
    assert next(m for m in at.metric if m.label == "Accuracy now").value.endswith("%")
    gallery = _pickers(at, "gallery")
    assert len(gallery) == 48                                  # one page of thumbnails
    run = ws.load_run(method="hdl")
    confidence = dict(zip(run.item_ids.tolist(), run.result.confidence.tolist()))
    shown = [confidence[item_id] for item_id, _, _ in gallery]
    assert shown == sorted(shown)                              # lowest confidence first
    _open(at, "Select on the map")
    assert len(at.get("plotly_chart")) == 1
    assert not _pickers(at, "gallery")                         # only the open tab is drawn
    _open(at, "Suspicious seeds")
    graph = pipeline.neighbour_graph(ws, pipeline.current_embedding(ws))
    suspicious = suggest.suspicious_seeds(graph.indices, run.result)
    assert len(_pickers(at, "seed")) == min(len(suspicious), 20)
    assert {item for item, _, _ in _pickers(at, "seed")} <= set(ws.seeds())

    # Leave-one-out lists exactly the seeds that HDL relabels when each is left out.
    at.toggle(key="review_seeds_thorough").set_value(True).run()
    assert not at.exception, at.exception
    left_out = suggest.suspicious_seeds(graph.indices, run.result,
                                        X=pipeline.current_embedding(ws).X)
    item_of = run.item_ids
    assert [item for item, _, _ in _pickers(at, "seed")] == [int(item_of[s.point])
                                                            for s in left_out[:20]]
    if not left_out:
        assert "every seed keeps its class when left out" in _texts(at)


def test_a_single_correction_is_stored_survives_a_new_session_and_can_be_undone(ws):
    at = _review_page()
    item_id, shown, picker = _pickers(at, "gallery")[0]
    new = next(c for c in ws.classes() if c != shown)
    picker.set_value(new).run()
    assert not at.exception, at.exception
    assert ws.current_labels()[item_id] == (new, "manual")
    last = ws.corrections().iloc[-1]
    assert (last["item_id"], last["new_label"], last["source"]) == (item_id, new, "manual")
    assert any("Labeled 1 image(s)" in s.value for s in at.success)

    fresh = _open(_review_page(), "History")                   # a new browser session
    assert next(m for m in fresh.metric if m.label == "Not in the run yet").value == "1"
    history = fresh.dataframe[0].value                        # the History tab
    row = history.iloc[0]                                      # newest first
    assert (row["path"], row["new_label"], row["source"]) == (last["path"], new, "manual")

    fresh.button(key="review_undo").click().run()
    assert not fresh.exception, fresh.exception
    assert ws.current_labels()[item_id] == (shown, ws.current_labels()[item_id][1])
    assert ws.current_labels()[item_id][1] != "manual"
    assert ws.corrections().iloc[-1]["source"] == "undo"


def test_assigning_a_map_selection_writes_one_bulk_batch(ws):
    at = _open(_review_page(), "Select on the map")
    run = ws.load_run(method="hdl")
    chosen = [int(i) for i in run.item_ids[(run.label_names == "1") & (run.result.step >= 0)][:3]]
    # AppTest cannot draw a lasso; the map's on_select callback writes this key.
    at.session_state["review_selection"] = chosen
    at.run()
    assert "**3** image(s) selected" in _texts(at)
    at.selectbox(key="review_bulk_class").set_value("7").run()
    at.button(key="review_bulk_assign").click().run()
    assert not at.exception, at.exception
    history = ws.corrections()
    batch = history[history["batch"] == history["batch"].max()]
    assert sorted(batch["item_id"]) == sorted(chosen)
    assert set(batch["source"]) == {"bulk"} and set(batch["new_label"]) == {"7"}
    current = ws.current_labels()
    assert all(current[i] == ("7", "manual") for i in chosen)
    assert at.session_state["review_selection"] == []          # cleared once assigned


def test_filters_narrow_the_gallery(ws):
    at = _review_page()
    run = ws.load_run(method="hdl")
    fallback_ids = set(run.item_ids[run.result.fallback].tolist())
    assert 0 < len(fallback_ids) <= 48
    at.multiselect(key="review_sources").set_value(["fallback"]).run()
    shown = {item for item, _, _ in _pickers(at, "gallery")}
    assert shown == fallback_ids
    assert f"{len(fallback_ids)} image(s) match" in _texts(at)

    at.multiselect(key="review_sources").set_value(list(review.SOURCES))
    at.selectbox(key="review_class").set_value("4").run()
    labels = {shown for _, shown, _ in _pickers(at, "gallery")}
    assert labels == {"4"}
    at.slider(key="review_confidence").set_value((0.0, 0.6)).run()
    confidence = dict(zip(run.item_ids.tolist(), run.result.confidence.tolist()))
    assert all(confidence[item] <= 0.6 for item, _, _ in _pickers(at, "gallery"))


def test_label_next_lists_n_suggestions_with_their_reasons(ws):
    at = _open(_review_page(), "Label next")
    at.slider(key="review_next_n").set_value(5).run()
    suggested = _pickers(at, "next")
    run = ws.load_run(method="hdl")
    graph = pipeline.neighbour_graph(ws, pipeline.current_embedding(ws))
    expected = suggest.suggest_next(graph.indices, run.result, n=5,
                                    class_names=run.classes)
    assert [item for item, _, _ in suggested] == [int(run.item_ids[s.point]) for s in expected]
    text = _texts(at)
    assert all(s.why in text for s in expected)

    # labeling a suggestion here takes it off the list
    item_id, shown, picker = suggested[0]
    picker.set_value(next(c for c in ws.classes() if c != shown)).run()
    assert item_id not in [item for item, _, _ in _pickers(at, "next")]
    assert len(_pickers(at, "next")) == 5


def test_rerun_keeps_a_corrected_label_fixed_as_a_seed(ws):
    before = ws.load_run(method="hdl")
    truth = ws.truth()
    items = ws.ok_items().set_index("id")["path"]
    wrong = [(int(i), name) for i, name, step in zip(before.item_ids, before.label_names, before.result.step)
             if step >= 0 and truth[items[int(i)]] != name]
    item_id, _ = wrong[0]
    right = truth[items[item_id]]
    at = _review_page()
    ws.add_correction([item_id], right)                        # as a picker would
    at.run()
    at.button(key="review_rerun").click().run()
    assert not at.exception, at.exception
    try:
        after = ws.load_run(method="hdl")
        assert after.run_id > before.run_id
        position = int(np.flatnonzero(after.item_ids == item_id)[0])
        assert after.result.step[position] == -1                      # a seed of the new run
        assert after.label_names[position] == right
        assert ws.current_labels()[item_id] == (right, "manual")
        assert next(m for m in at.metric if m.label == "Not in the run yet").value == "0"
    finally:
        ws.undo_last_correction()
        restored = pipeline.run_labeling(ws, pipeline.current_embedding(ws), KIntent.parse(before.k))
        assert np.array_equal(ws.load_run(restored.hdl_id).result.labels, before.result.labels)

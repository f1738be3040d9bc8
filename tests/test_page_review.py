"""AppTest of the Review page on the demo: the review queue, confirmations, corrections one
by one and by selection, per-session undo, classes, filters, Label next, suspicious seeds,
and re-running HDL with corrections as seeds.

Every test leaves this module's demo workspace as it found it (corrections undone, the
original run restored) because the tests of this module share it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import finish_jobs

from hdl_core import suggest
from hdl_core.auto_k import KIntent
from hdl_core.workspace import labels, pipeline

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "app_pages/review.py"


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


def _queue(ws):
    """The review queue of the latest run, as item ids (likeliest wrong first) and reasons."""
    run = ws.load_run(method="hdl")
    graph = pipeline.neighbour_graph(ws, pipeline.current_embedding(ws))
    y = run.result.seed_labels
    queue = suggest.review_queue_with_reasons(pipeline.current_embedding(ws).X, y, run.result,
                                              graph=graph)
    return run, queue, [int(run.item_ids[p]) for p in queue.order]


def test_review_page_renders_the_gallery_map_and_guidance(ws):
    at = _open(_review_page(), "Gallery")
    run = ws.load_run(method="hdl")
    variant = {"reach": "reach-ordered HDL", "balanced": "class-balanced HDL",
               "paper": "the paper's HDL (Algorithm 1)"}[run.params["variant"]]
    assert f"Run #{run.run_id} · {variant} with k = {run.k} on " in _texts(at)
    assert next(m for m in at.metric if m.label == "Images").value == "1,797"
    assert next(m for m in at.metric if m.label == "Accuracy").value.endswith("%")
    gallery = _pickers(at, "gallery")
    assert len(gallery) == 48                                  # one page of thumbnails
    run, _, queued = _queue(ws)
    assert [item for item, _, _ in gallery] == queued[:48]     # likeliest wrong first
    at.selectbox(key="review_order").set_value("confidence").run()
    confidence = dict(zip(run.item_ids.tolist(), run.result.confidence.tolist()))
    shown = [confidence[item_id] for item_id, _, _ in _pickers(at, "gallery")]
    assert shown == sorted(shown)                              # lowest confidence first
    _open(at, "Map")
    assert len(at.get("plotly_chart")) == 1
    assert not _pickers(at, "gallery")                         # only the open tab is drawn
    _open(at, "Suspicious seeds")
    graph = pipeline.neighbour_graph(ws, pipeline.current_embedding(ws))
    suspicious = suggest.suspicious_seeds(graph.indices, run.result)
    assert len(_pickers(at, "seed")) == min(len(suspicious), 20)
    assert {item for item, _, _ in _pickers(at, "seed")} <= set(ws.seeds())
    sentences = [m.value for m in at.markdown if "is a seed of" in str(m.value)]
    assert len(sentences) == min(len(suspicious), 20)
    if suspicious:                      # the counts, said once (no second line repeating them)
        first = suspicious[0]
        voting = int((first.neighbour_labels == first.neighbour_vote).sum())
        assert (f"{voting} of its {len(first.neighbours)} nearest neighbours ended up "
                f"**{run.classes[first.neighbour_vote]}**") in sentences[0], sentences[0]
        assert "seed '" not in _texts(at)

    # Leave-one-out lists exactly the seeds that the run's own variant relabels when each
    # is left out.
    at.toggle(key="review_seeds_thorough").set_value(True).run()
    assert not at.exception, at.exception
    left_out = suggest.suspicious_seeds(graph.indices, run.result,
                                        X=pipeline.current_embedding(ws).X,
                                        variant=run.params["variant"])
    item_of = run.item_ids
    assert [item for item, _, _ in _pickers(at, "seed")] == [int(item_of[s.point])
                                                            for s in left_out[:20]]
    if not left_out:
        assert "every seed keeps its class when left out" in _texts(at)


@pytest.fixture
def sent(monkeypatch):
    """What the Review page sends the keyboard widget, each time it draws it."""
    from app_pages import _review_keys
    calls = []
    real = _review_keys._component

    def spy(**kwargs):
        calls.append(kwargs["data"])
        return real(**kwargs)

    monkeypatch.setattr(_review_keys, "_component", spy)
    return calls


def _browser(at, *actions) -> AppTest:
    """Play the keyboard widget: the whole action log, as the browser sends it."""
    log = [{"seq": seq, "ids": list(ids), "previous": [None] * len(ids), **extra}
           for seq, ids, extra in actions]
    at.session_state["review_keys"] = {"actions": log}
    at.run()
    # AppTest fires no widget callback: the actions were stored during that run, so the
    # tiles the browser would get after its callback come with the next run.
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_review_tab_sends_the_queue_and_stores_what_the_keys_did(ws, sent):
    at = _review_page()                                        # the Review tab is the default
    run, queue, queued = _queue(ws)
    tiles = sent[-1]["tiles"]
    assert [t["id"] for t in tiles] == queued[:40]             # likeliest wrong first
    position = int(queue.order[0])
    assert tiles[0]["reason"] == queue.reason(position, class_names=run.classes)
    assert len(tiles[0]["neighbours"]) == 5
    assert [c["name"] for c in sent[-1]["classes"]] == ws.classes()

    first, second = queued[0], queued[1]
    shown = ws.current_labels()[second][0]
    other = next(c for c in ws.classes() if c != shown)
    _browser(at, (1, [first], {"kind": "confirm", "label": None}),
             (2, [second], {"kind": "assign", "label": other}))
    assert ws.current_labels()[first][1] == "confirmed" and first in ws.seeds()
    assert ws.current_labels()[second] == (other, "manual")
    assert set(ws.corrections()["actor"].iloc[-2:]) == {ws.corrections()["actor"].iloc[-1]}
    tiles = {t["id"]: t for t in sent[-1]["tiles"]}
    assert tiles[second]["label"] == other and tiles[first]["confirmed"]   # tiles show the store
    assert [t["id"] for t in sent[-1]["tiles"]] == queued[:40]             # nothing shifted

    _browser(at, (1, [first], {"kind": "confirm", "label": None}),
             (2, [second], {"kind": "assign", "label": other}),
             (3, [second], {"kind": "undo", "label": None, "undoes": 2,
                            "undone": {"kind": "assign", "label": other, "previous": [shown],
                                       "previous_confirmed": [False]}}))
    assert ws.current_labels()[second] == (shown, "hdl")       # the assign is taken back
    assert ws.current_labels()[first][1] == "confirmed"        # the confirm stays
    _browser(at, (4, [], {"kind": "page", "label": None, "direction": 1}))
    assert sent[-1]["tiles"][0]["id"] == queued[20]            # the window slid on


def test_undo_takes_back_this_sessions_own_change_and_says_what_it_was(ws):
    mine, theirs = _open(_review_page(), "Gallery"), _open(_review_page(), "Gallery")
    (a, a_shown, a_picker), (b, b_shown, b_picker) = _pickers(mine, "gallery")[:2]
    a_new = next(c for c in ws.classes() if c != a_shown)
    a_picker.set_value(a_new).run()
    b_new = next(c for c in ws.classes() if c != b_shown)
    dict((i, w) for i, _, w in _pickers(theirs, "gallery"))[b].set_value(b_new).run()
    mine.button(key="review_undo").click().run()               # the other tab changed last
    assert ws.current_labels()[a][1] != "manual"
    assert ws.current_labels()[b] == (b_new, "manual")         # theirs is untouched
    path = ws.ok_items().set_index("id").loc[a, "path"]
    assert any(f"{path} {a_shown} → {a_new}" in i.value.replace("\\", "") for i in mine.info)
    mine.button(key="review_undo").click().run()
    assert any("Nothing of yours to undo" in i.value for i in mine.info)
    actors = ws.corrections()["actor"].tolist()
    assert len(set(actors[-3:])) == 2 and all(a.startswith("tab ") for a in actors[-3:])


def test_classes_are_renamed_merged_and_deleted_from_the_page(ws):
    at = _open(_review_page(), "Classes")
    at.selectbox(key="review_rename_old").set_value("9").run()
    at.text_input(key="review_rename_new").input("nine").run()
    at.button(key="review_rename").click().run()
    assert not at.exception, at.exception
    try:
        assert "nine" in ws.classes() and "9" not in ws.classes()
        assert "nine" in set(ws.seeds().values())
        ws.add_class("spare")
        at.run()
        at.selectbox(key="review_delete_name").set_value("spare").run()
        at.button(key="review_delete").click().run()
        assert "spare" not in ws.classes()
        at.selectbox(key="review_delete_name").set_value("8").run()
        assert "still labels 3 seeds" in _texts(at)               # it asks what they become
        assert at.button(key="review_delete").disabled
    finally:
        ws.rename_class("nine", "9")


def test_a_single_correction_is_stored_survives_a_new_session_and_can_be_undone(ws):
    at = _open(_review_page(), "Gallery")
    item_id, shown, picker = _pickers(at, "gallery")[0]
    new = next(c for c in ws.classes() if c != shown)
    picker.set_value(new).run()
    assert not at.exception, at.exception
    assert ws.current_labels()[item_id] == (new, "manual")
    last = ws.corrections().iloc[-1]
    assert (last["item_id"], last["new_label"], last["source"]) == (item_id, new, "manual")
    assert any("Labeled 1 image as" in s.value for s in at.success)

    fresh = _open(_review_page(), "History")                   # a new browser session
    assert next(m for m in fresh.metric if m.label == "Since run").value == "1"
    history = fresh.dataframe[0].value                        # the History tab
    row = history.iloc[0]                                      # newest first
    assert (row["path"], row["new_label"], row["source"]) == (last["path"], new, "manual")
    assert row["who"].startswith("tab ")

    fresh.button(key="review_undo").click().run()             # not this session's change
    assert ws.current_labels()[item_id] == (new, "manual")
    at.button(key="review_undo").click().run()                 # the session that made it
    assert not at.exception, at.exception
    assert ws.current_labels()[item_id] == (shown, ws.current_labels()[item_id][1])
    assert ws.current_labels()[item_id][1] != "manual"
    assert ws.corrections().iloc[-1]["source"] == "undo"


def test_assigning_a_map_selection_writes_one_bulk_batch(ws):
    at = _open(_review_page(), "Map")
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
    assert at.session_state["review_selection"] == chosen      # kept: the gallery can show them
    _open(at, "Gallery")
    at.checkbox(key="review_on_map").check().run()
    assert sorted(item for item, _, _ in _pickers(at, "gallery")) == sorted(chosen)


def test_filters_narrow_the_gallery(ws):
    at = _open(_review_page(), "Gallery")
    run = ws.load_run(method="hdl")
    fallback_ids = set(run.item_ids[run.result.fallback].tolist())
    assert 0 < len(fallback_ids) <= 48
    at.multiselect(key="review_sources").set_value(["fallback"]).run()
    shown = {item for item, _, _ in _pickers(at, "gallery")}
    assert shown == fallback_ids
    assert f"{len(fallback_ids)} image(s) match" in _texts(at)

    at.multiselect(key="review_sources").set_value(list(labels.SOURCES))
    at.selectbox(key="review_class").set_value("4").run()
    shown_labels = {shown for _, shown, _ in _pickers(at, "gallery")}
    assert shown_labels == {"4"}
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
    finish_jobs(at)
    try:
        after = ws.load_run(method="hdl")
        assert after.run_id > before.run_id
        position = int(np.flatnonzero(after.item_ids == item_id)[0])
        assert after.result.step[position] == -1                      # a seed of the new run
        assert after.label_names[position] == right
        assert ws.current_labels()[item_id] == (right, "manual")
        assert next(m for m in at.metric if m.label == "Since run").value == "0"
    finally:
        ws.undo_last_correction()
        restored = pipeline.run_labeling(ws, pipeline.current_embedding(ws), KIntent.parse(before.k))
        assert np.array_equal(ws.load_run(restored.hdl_id).result.labels, before.result.labels)


def test_a_point_clicked_on_the_map_opens_first_in_review(ws, sent):
    at = _open(_review_page(), "Map")
    run, _, queued = _queue(ws)
    chosen = queued[100]
    at.session_state["review_selection"] = [chosen]            # a click selects one point
    at.run()
    at.button(key="review_open_point").click().run()
    assert not at.exception, at.exception
    assert at.session_state["review_tab"] == "Review"
    at.run()
    assert sent[-1]["tiles"][0]["id"] == chosen
    assert [t["id"] for t in sent[-1]["tiles"]][1:4] == queued[:3]

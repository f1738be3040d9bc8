"""AppTest of the Label page on the demo: run HDL, replay rounds, a point's vote, the kNN-DV filter.

The map is checked through the figure the page sends: every trace carries each point's
position in the run as customdata, so the tests read which points are drawn how.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from hdl_core.explain import vote_detail
from hdl_core.jobs import BOARD
from tests.conftest import finish_jobs

APP = str(Path(__file__).resolve().parent.parent / "app.py")
MAP_TITLE = "not labeled yet"       # the first trace of the map, and of no other chart


def _label_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/label.py")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's binary form {dtype, bdata, shape}."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = [int(s) for s in str(value.get("shape", flat.size)).split(",")]
        return flat.reshape(shape)
    return np.asarray(value, dtype=float).reshape(-1, 3) if value else np.zeros((0, 3))


def _live_figures(at) -> list[dict]:
    """The figures the page draws with `app_pages._plot.live_chart`, as {"data", "layout"}."""
    figures = []
    for element in at.get("bidi_component"):
        if element.proto.component_name.endswith("hdl_studio_live_plot"):
            sent = json.loads(element.proto.json)
            figures.append({"data": json.loads(sent["data"]), "layout": json.loads(sent["layout"])})
    return figures


def _map_traces(at) -> dict[str, np.ndarray]:
    """Trace name -> sorted positions (in the run) of the points it draws."""
    for spec in _live_figures(at):
        if spec["data"] and spec["data"][0].get("name") == MAP_TITLE:
            return {trace["name"]: np.sort(_array(trace.get("customdata"))[:, 0].astype(int))
                    for trace in spec["data"]}
    raise AssertionError("the Label page shows no map")


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _latest(ws):
    run = ws.load_run(method="hdl")
    baseline = ws.load_run(method="knn_dv")
    assert baseline.run_id > run.run_id and np.array_equal(baseline.item_ids, run.item_ids)
    return run, baseline


def _truth_of(ws, run) -> np.ndarray:
    path_of = dict(zip(ws.ok_items()["id"], ws.ok_items()["path"]))
    truth = ws.truth()
    return np.array([truth[path_of[i]] for i in run.item_ids], dtype=object)


def test_label_page_shows_the_latest_run_at_its_last_round(demo_workspace):
    at = _label_page()
    run, _ = _latest(demo_workspace)
    n_rounds = int(run.result.round.max()) + 1
    slider = at.slider(key="label_round")
    assert slider.max == n_rounds - 1 and slider.value == n_rounds - 1
    assert _metric(at, "Labeled so far") == "100%"
    traces = _map_traces(at)
    assert traces[MAP_TITLE].size == 0                           # all labeled at the end
    assert traces["seeds"].tolist() == np.flatnonzero(run.result.step < 0).tolist()
    assert any(f"Run #{run.run_id}" in c.value for c in at.caption)


def test_run_hdl_saves_a_run_that_labels_every_item(demo_workspace):
    ws = demo_workspace
    saved = ws.get_setting("k_choice")
    ws.set_setting("k_choice", {"k": 4, "override": True, "noise_rate": 0.15})
    try:
        before = max(r.run_id for r in ws.runs())
        at = _label_page()
        assert any("k = 4: your override on the Choose k page" in m.value for m in at.markdown)
        at.button(key="label_run_button").click().run()
        assert not at.exception, at.exception
        finish_jobs(at)
        assert not at.exception, at.exception
        run, baseline = _latest(ws)
        assert run.run_id > before and run.k == 4 and baseline.k == 4
        assert len(run.item_ids) == len(ws.ok_items())
        assert (run.result.labels >= 0).all() and (baseline.result.labels >= 0).all()
        assert any(f"run #{run.run_id}" in s.value for s in at.success)
        assert at.slider(key="label_round").value == int(run.result.round.max())   # the new run, at its end
    finally:
        ws.set_setting("k_choice", saved)


def test_a_run_started_here_goes_on_while_the_browser_is_elsewhere(demo_workspace, monkeypatch):
    """Run HDL returns at once; the run is a job of the server, not of the page: leaving
    for another page (and reruns there) does not stop it, and the Label page says how it
    ended when the user comes back."""
    import threading
    from hdl_core.workspace import pipeline as real
    ws = demo_workspace
    before = max(r.run_id for r in ws.runs())
    gate = threading.Event()
    run_labeling = real.run_labeling

    def held(*args, **kwargs):            # the job waits until the test has left the page
        assert gate.wait(60)
        return run_labeling(*args, **kwargs)

    monkeypatch.setattr(real, "run_labeling", held)
    at = _label_page()
    at.button(key="label_run_button").click().run()
    assert not at.exception, at.exception
    assert at.button(key="label_run_button").disabled                  # one run at a time
    assert any("Running in the background" in i.value for i in at.info)
    at.switch_page("app_pages/data.py")
    at.run()
    at.run()                                                            # reruns elsewhere
    assert not at.exception, at.exception
    assert max(r.run_id for r in ws.runs()) == before                  # still running
    gate.set()
    assert BOARD.wait(timeout=120)
    assert max(r.run_id for r in ws.runs()) > before                   # it finished anyway
    at.switch_page("app_pages/label.py")
    at.run()
    assert any("HDL labeled" in s.value for s in at.success)           # told once
    at.run()
    assert not any("HDL labeled" in s.value for s in at.success)


def test_round_slider_replays_the_run_with_accuracy_so_far(demo_workspace):
    ws = demo_workspace
    at = _label_page()
    run, _ = _latest(ws)
    truth = _truth_of(ws, run)
    names = np.array(run.classes + [None], dtype=object)[run.result.labels]
    last = int(run.result.round.max())
    for r in (0, last // 2, last):
        at.slider(key="label_round").set_value(r).run()
        assert not at.exception, at.exception
        done = (run.result.round >= 0) & (run.result.round <= r)
        labeled = int(done.sum() + (run.result.step < 0).sum())
        metric = next(m for m in at.metric if m.label == "Labeled so far")
        assert metric.value == f"{labeled / len(run.result.labels):.0%}"
        assert metric.delta == f"{labeled:,} of {len(run.result.labels):,}"
        # accuracy so far, by hand: labels given up to round r (seeds excluded) against truth
        assert _metric(at, "Accuracy so far") == f"{(names[done] == truth[done]).mean():.1%}"
        traces = _map_traces(at)
        coloured = np.concatenate([traces[c] for c in run.classes])
        assert np.sort(coloured).tolist() == np.flatnonzero(done).tolist()
        assert traces[MAP_TITLE].tolist() == np.flatnonzero(run.result.round > r).tolist()
        name = (f"round {r}: a band of reach share" if run.params.get("variant") == "reach"
                else f"round {r}: first level")
        assert traces[name].tolist() == np.flatnonzero(run.result.round == r).tolist()


def test_selected_point_shows_its_vote_and_neighbours(demo_workspace):
    at = _label_page()
    run, _ = _latest(demo_workspace)
    voted = np.flatnonzero((run.result.step >= 0) & ~run.result.fallback & (run.result.n_voters >= 2))
    point = int(voted[0])
    at.session_state["label_point"] = point
    at.run()
    assert not at.exception, at.exception
    detail = "\n".join(m.value for m in at.markdown)
    assert f"**Round** {run.result.round[point]} · **step** {run.result.step[point]}" in detail
    assert f"**Votes** of its {run.result.n_voters[point]} labeled neighbours" in detail
    assert f"**Label:** {run.classes[run.result.labels[point]]}" in detail
    neighbours = next(i for i in at.get("image") if len(i.value) == run.k)
    # each neighbour is captioned with its label at vote time, or — when it had none yet
    labeled_then = [c for c in neighbours.captions if not c.endswith("—")]
    assert len(labeled_then) == run.result.n_voters[point]
    assert _map_traces(at)["selected"].tolist() == [point]
    at.button(key="label_clear_point").click().run()
    assert at.session_state["label_point"] is None and "selected" not in _map_traces(at)


def test_a_reach_ordered_run_is_explained_in_its_own_terms(demo_workspace):
    # the default variant: rounds are bands of reach share, and a point none of whose
    # neighbours was labeled at its turn says it took the class that reaches it most
    from hdl_core.workspace import pipeline

    emb = pipeline.current_embedding(demo_workspace)
    # at k = 8 the demo has both kinds of point labeled by reach (at 10 the harmonic reach
    # overrules no split vote there)
    run = pipeline.run_labeling(demo_workspace, emb, pipeline.KIntent.parse(8),
                                variant="reach")
    by_reach = np.flatnonzero((run.result.step >= 0) & ~run.result.fallback
                              & (run.result.n_voters == 0))
    assert by_reach.size > 0          # on the demo a few points meet their turn unvoted
    at = _label_page()
    steps = demo_workspace.load_run(run.hdl_id).params["spread_steps"]
    assert any("next band of reach share" in c.value
               and f"over the neighbour graph for {steps} steps" in c.value for c in at.caption)
    neighbours = pipeline.neighbour_graph(demo_workspace, emb, run.result.k).indices
    split = [p for p in by_reach.tolist() if vote_detail(neighbours, run.result, p).counts]
    unvoted = [p for p in by_reach.tolist() if p not in split]
    assert split and unvoted          # split votes the reach overruled, and unvoted points
    for point, says in ((unvoted[0], "**By reach:** none of its neighbours was labeled"),
                        (split[0], "neighbours were not decisive (")):
        at.session_state["label_point"] = int(point)
        at.run()
        assert not at.exception, at.exception
        assert any(says in m.value for m in at.markdown)
    pipeline.run_labeling(demo_workspace, emb, pipeline.KIntent.parse(3))   # as found


def test_a_seed_is_explained_as_given(demo_workspace):
    at = _label_page()
    run, _ = _latest(demo_workspace)
    at.session_state["label_point"] = int(np.flatnonzero(run.result.step < 0)[0])
    at.run()
    assert not at.exception, at.exception
    assert any("**A seed**" in m.value for m in at.markdown)


def test_disagreement_filter_shows_only_points_where_hdl_and_knn_dv_differ(demo_workspace):
    at = _label_page()
    run, baseline = _latest(demo_workspace)
    differ = (run.result.labels != baseline.result.labels) & (run.result.step >= 0)
    share = 1 - differ.sum() / (run.result.step >= 0).sum()
    assert _metric(at, "kNN-DV agreement") == f"{share:.1%}"
    at.checkbox(key="label_only_disagree").check().run()
    assert not at.exception, at.exception
    traces = _map_traces(at)
    drawn = np.unique(np.concatenate([traces[MAP_TITLE], traces["seeds"]]
                                     + [traces[c] for c in run.classes]))
    assert differ.any() and drawn.tolist() == np.flatnonzero(differ).tolist()
    assert any(f"the {int(differ.sum())} points where HDL and kNN-DV disagree" in c.value
               for c in at.caption)


def test_without_embeddings_the_page_points_to_embed(demo_workspace):
    saved = demo_workspace.get_setting("embedding")
    demo_workspace.set_setting("embedding", {})
    try:
        at = AppTest.from_file(APP, default_timeout=180)
        at.run()
        at.switch_page("app_pages/label.py")
        at.run()
        assert not at.exception, at.exception
        assert any("Embed them first" in i.value for i in at.info)
    finally:
        demo_workspace.set_setting("embedding", saved)


def test_play_advances_the_round_each_tick_and_pause_stops(demo_workspace):
    at = _label_page()
    run, _ = _latest(demo_workspace)
    n_rounds = int(run.result.round.max()) + 1
    step = -(-n_rounds // 40)                      # a replay plays in about 40 frames
    at.button(key="label_play_button").click().run()   # at the last round: starts over
    assert not at.exception, at.exception
    assert at.session_state["label_playing"] is True
    assert at.slider(key="label_round").value == step
    assert at.button(key="label_play_button").label == "⏸ Pause"
    at.run()                                           # one timer tick of the fragment
    assert at.slider(key="label_round").value == 2 * step
    at.button(key="label_play_button").click().run()
    assert at.session_state["label_playing"] is False
    paused_at = at.slider(key="label_round").value
    at.run()
    assert at.slider(key="label_round").value == paused_at
    at.slider(key="label_round").set_value(n_rounds - 2).run()
    at.button(key="label_play_button").click().run()   # plays past the end: stops at the last round
    assert not at.exception, at.exception
    assert at.slider(key="label_round").value == n_rounds - 1
    assert at.session_state["label_playing"] is False


def test_a_clicked_point_opens_first_on_the_review_page(demo_workspace):
    at = _label_page()
    run = demo_workspace.load_run(method="hdl")
    point = int(np.flatnonzero(run.result.step >= 0)[7])
    at.session_state["label_point"] = point
    at.run()
    at.button(key="label_open_review").click().run()
    assert not at.exception, at.exception
    assert at.session_state["review_tab"] == "Review"
    assert at.session_state["review_queue"][1][0] == int(run.item_ids[point])


def test_the_variant_is_one_switch_away_and_a_flood_is_called_out(demo_workspace):
    from hdl_core import hdl_label
    from hdl_core.workspace import pipeline

    at = _label_page()
    assert pipeline.labeling_variant(demo_workspace) == "reach"             # the default
    assert any("reach-ordered HDL's own k" in m.value for m in at.markdown)
    at.segmented_control(key="label_variant").set_value("paper").run()
    assert not at.exception, at.exception
    try:
        assert pipeline.labeling_variant(demo_workspace) == "paper"
        # a run of the paper's variant where one class took every unlabeled image
        emb = pipeline.current_embedding(demo_workspace)
        y, classes = pipeline.seed_vector(demo_workspace, emb.item_ids)
        graph = pipeline.neighbour_graph(demo_workspace, emb)
        result = hdl_label(emb.X, y, k=3, graph=graph)
        result.labels[result.step >= 0] = 0
        demo_workspace.save_run(method="hdl", params={"embedding": emb.key, "variant": "paper",
                                                      "n_seeds": int((y >= 0).sum())},
                                result=result, classes=classes, item_ids=emb.item_ids)
        at = _label_page()                         # a new visit shows the newest run
        warning = " ".join(w.value for w in at.warning)
        assert "looks like a flood" in warning and "reach-ordered" in warning.lower()
        assert "Review page, under Suspicious seeds" in warning and "hdl-studio" not in warning
        assert "\n\nTry:\n\n" in warning           # its own paragraph, not the last reason's
    finally:                                       # leave a normal latest run, as found
        pipeline.set_labeling_variant(demo_workspace, "reach")
        pipeline.run_labeling(demo_workspace, pipeline.current_embedding(demo_workspace),
                              pipeline.KIntent.parse(3))


def test_a_labeled_count_fits_its_badge_at_a_million_images():
    import importlib
    label_page = importlib.import_module("app_pages.label")
    shown = {n: label_page.short_count(n) for n in (0, 1_797, 99_999, 100_000, 123_456,
                                                    999_949, 999_950, 1_000_000, 12_345_678)}
    assert shown == {0: "0", 1_797: "1,797", 99_999: "99,999", 100_000: "100.0k",
                     123_456: "123.5k", 999_949: "999.9k", 999_950: "1.00M",
                     1_000_000: "1.00M", 12_345_678: "12.35M"}
    assert max(len(f"{s} of {s}") for s in shown.values()) <= 16


def test_a_big_workspaces_run_shows_before_its_knn_dv_which_follows(demo_workspace,
                                                                      monkeypatch):
    """Beyond `state.BASELINE_INLINE` images the labeling job ends with the review queue;
    kNN-DV, which only the comparison needs, follows in a job of its own. The page says
    so while it runs and shows the comparison once it is done."""
    import threading
    import time

    import state
    from hdl_core.workspace import pipeline as real
    ws = demo_workspace
    monkeypatch.setattr(state, "BASELINE_INLINE", 0)
    gate = threading.Event()
    run_baseline = real.run_baseline

    def held(*args, **kwargs):            # kNN-DV waits until the test has seen the run
        assert gate.wait(60)
        return run_baseline(*args, **kwargs)

    monkeypatch.setattr(real, "run_baseline", held)
    at = _label_page()
    at.button(key="label_run_button").click().run()
    labeling = BOARD.get(str(ws.folder), "labeling")
    deadline = time.monotonic() + 120
    while labeling.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not labeling.running and labeling.error is None
    run_id = labeling.result.hdl_id
    assert labeling.result.baseline_id is None and ws.load_run(run_id).baseline_id is None
    later = BOARD.get(str(ws.folder), f"baseline-{run_id}")
    assert later is not None and later.running
    running = {job.number for job in BOARD.running(str(ws.folder))}
    # the sidebar's jobs panel, which showed both running, runs the page again now, and
    # not again while kNN-DV alone goes on
    assert state.any_finished({labeling.number, later.number}, running)
    assert not state.any_finished({later.number}, running)
    at.run()
    assert not at.exception, at.exception
    assert any(f"kNN-DV follows): run #{run_id}" in s.value for s in at.success)
    assert any("kNN-DV, to compare with, is still running" in c.value for c in at.caption)
    gate.set()
    finish_jobs(at)
    assert not at.exception, at.exception
    run, baseline = _latest(ws)
    assert run.run_id == run_id and baseline.k == run.k
    assert not any("kNN-DV, to compare with" in c.value for c in at.caption)
    assert at.checkbox(key="label_only_disagree") is not None

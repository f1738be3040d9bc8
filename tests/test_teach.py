"""hdl_core.views.toy (the 2-D toy, HDL on it by Euclidean distance, the walkthrough) and the
Teach page (AppTest)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from hdl_core import KnnGraph, build_knn_graph, choose_k, hdl_label, knn_dv_label
from hdl_core.explain import round_start_step, round_view
from hdl_core.views.toy import K_MAX, KINDS, make_toy, nearest_point, teach_run, with_seed
from hdl_core.views.walkthrough import (
    Step, next_round_index, previous_round_index, round_starts, step_state, walkthrough,
)

from .hdl_reference import literal_hdl, squared_euclidean_distance

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "teach.py")


@st.composite
def toys(draw, max_points=90):
    kind = draw(st.sampled_from(KINDS))
    n_classes = draw(st.integers(2, 4))
    seeds = draw(st.integers(1, 3))
    n = draw(st.integers(n_classes * (seeds + 1), max_points))
    try:
        toy = make_toy(kind, n, n_classes, draw(st.sampled_from([0.0, 0.05, 0.2])), seeds,
                       draw(st.integers(0, 10_000)))
    except ValueError:      # an inner ring too small for its seeds
        assume(False)
    k = draw(st.integers(1, min(8, n - 1)))
    return toy, k


# ------------------------------------------------------------------ the toy

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_toy_has_the_requested_points_classes_and_seeds(kind, n_classes):
    toy = make_toy(kind, 203, n_classes, 0.05, 3, 7)
    assert toy.X.shape == (203, 2) and np.isfinite(toy.X).all()
    assert sorted(np.unique(toy.truth)) == list(range(n_classes))
    counts = np.bincount(toy.truth)
    if kind == "circles" and n_classes > 2:      # rings: points in proportion to length
        np.testing.assert_allclose(counts, 203 * np.arange(1, n_classes + 1)
                                   / np.arange(1, n_classes + 1).sum(), atol=1)
    else:
        assert counts.max() - counts.min() <= 1
    seeds = np.flatnonzero(toy.y >= 0)
    assert np.bincount(toy.y[seeds], minlength=n_classes).tolist() == [3] * n_classes
    np.testing.assert_array_equal(toy.y[seeds], toy.truth[seeds])     # seeds tell the truth
    assert toy.note


def test_toy_is_determined_by_its_random_state():
    a, b = make_toy("moons", 150, 3, 0.1, 2, 4), make_toy("moons", 150, 3, 0.1, 2, 4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    c = make_toy("moons", 150, 3, 0.1, 2, 5)
    assert not np.array_equal(a.X, c.X)


def test_more_than_two_circles_are_rings_from_the_inside_out():
    toy = make_toy("circles", 400, 4, 0.0, 1, 0)
    radius = np.linalg.norm(toy.X, axis=1)
    for c in range(4):
        np.testing.assert_allclose(radius[toy.truth == c], (c + 1) / 4)


@pytest.mark.parametrize("args, words", [
    (("spirals", 100, 2, 0.1, 2, 0), "kind must be one of"),
    (("moons", 10, 3, 0.1, 4, 0), "too few for 3 classes"),
    (("moons", 5000, 2, 0.1, 2, 0), "n_points=5000"),
    (("blobs", 100, 2, -1.0, 2, 0), "noise"),
])
def test_bad_toy_settings_are_refused_with_what_to_change(args, words):
    with pytest.raises(ValueError, match=words):
        make_toy(*args)


def test_seed_edits_and_nearest_point():
    toy = make_toy("blobs", 60, 2, 0.1, 1, 0)
    y = with_seed(toy.y, 5, 1)
    assert y[5] == 1 and (np.delete(y, 5) == np.delete(toy.y, 5)).all()
    assert with_seed(y, 5, -1)[5] == -1
    with pytest.raises(ValueError, match="not in the toy"):
        with_seed(y, 60, 0)
    assert nearest_point(toy.X, toy.X[17] + 1e-9) == 17


# ------------------------------------------------------------------ HDL on the toy

def _label_toy(toy, k):
    """The toy's Euclidean graph (up to 20 neighbours) and hdl_label's result on it."""
    graph = build_knn_graph(toy.X, min(K_MAX, toy.n - 1), metric="euclidean")
    return graph, hdl_label(toy.X, toy.y, k=k, graph=graph, metric="euclidean")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(toys())
def test_hdl_on_a_toy_is_algorithm_1_with_a_euclidean_bridge(problem):
    toy, k = problem
    graph, result = _label_toy(toy, k)
    labels, step, rnd, fallback, source = literal_hdl(
        toy.X, toy.y, graph.indices[:, :k], bridge_distance=squared_euclidean_distance)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.step, step)
    np.testing.assert_array_equal(result.round, rnd)
    np.testing.assert_array_equal(result.fallback, fallback)
    np.testing.assert_array_equal(result.source, source)
    assert ((result.confidence > 0) & (result.confidence <= 1)).all()
    assert (result.confidence[result.fallback] <= 0.5).all()


def test_a_bridge_joins_the_pair_nearest_in_the_plane():
    # seeds 0 (class 0) and 1 (class 1); 2 and 3 list only each other (k=1), so no point has
    # a labeled neighbour: 2 is 4 from seed 0, 3 is ~5 from seed 1, so 2 copies seed 0.
    X = np.array([[0, 0], [5, 5], [4, 0], [4.5, 0]], float)
    result = hdl_label(X, np.array([0, 1, -1, -1]), k=1, metric="euclidean")
    assert result.fallback.tolist() == [False, False, True, False]
    assert result.source[2] == 0 and result.labels.tolist() == [0, 1, 0, 0]
    assert result.step.tolist() == [-1, -1, 0, 1] and result.round.tolist() == [-1, -1, 0, 1]


def test_a_bridge_compares_squared_distances_as_the_graph_does():
    # moons without noise are symmetric: pairs (7, 17) and (8, 0) are equally far apart in
    # exact arithmetic; in float64 their squares differ by one ulp and their roots do not.
    # The square decides, so 8 is bridged before 7, as the Teach page always showed.
    toy = make_toy("moons", 20, 2, 0.0, 1, 3)
    d2 = [float(((toy.X[m] - toy.X[j]) ** 2).sum()) for m, j in ((7, 17), (8, 0))]
    assert d2[1] < d2[0] and np.sqrt(d2[0]) == np.sqrt(d2[1])
    result = hdl_label(toy.X, toy.y, k=1, metric="euclidean")
    assert result.fallback[[7, 8]].all() and result.source[7] == 17 and result.source[8] == 0
    assert result.step[8] < result.step[7]


def test_teach_run_labels_the_plane_by_euclidean_distance():
    toy = make_toy("moons", 120, 2, 0.1, 4, 3)
    run = teach_run(toy.X, toy.y, toy.truth, k=3)
    assert run.graph.metric == "euclidean" and run.graph.k == K_MAX
    np.testing.assert_array_equal(
        run.graph.indices, build_knn_graph(toy.X, K_MAX, metric="euclidean").indices)
    direct = hdl_label(toy.X, toy.y, k=3, metric="euclidean")
    for name in ("labels", "step", "round", "confidence", "n_voters", "fallback", "source"):
        np.testing.assert_array_equal(getattr(run.hdl, name), getattr(direct, name))
    np.testing.assert_array_equal(run.knn_dv.labels,
                                  knn_dv_label(toy.X, toy.y, k=3, metric="euclidean").labels)


def test_k_curves_from_seeds_follow_choose_k_reliability_rule():
    few = make_toy("blobs", 300, 3, 0.05, 2, 0)
    choice = choose_k(few.X, few.y, k_max=K_MAX, random_state=0, metric="euclidean")
    assert not choice.reliable and choice.k == 3
    assert "Too few labeled points" in choice.reason
    truth = choose_k(few.X, few.truth, k_max=K_MAX, sample_fraction=None, metric="euclidean")
    assert truth.mu[0] > 0.95            # well separated blobs: neighbours agree
    many = make_toy("blobs", 600, 3, 0.05, 60, 0)
    choice = choose_k(many.X, many.y, k_max=K_MAX, random_state=0, metric="euclidean")
    assert choice.reliable
    assert choice.k == int(choice.ks[np.nanargmax(choice.p)])
    np.testing.assert_allclose(choice.p, choice.mu * choice.beta)


# ------------------------------------------------------------------ the walkthrough

def check_walkthrough(graph_indices, result, steps):
    """Every fact the page shows agrees with hdl_label's step / round arrays."""
    labeled_points = [s.point for s in steps if s.kind in ("vote", "bridge")]
    np.testing.assert_array_equal(labeled_points, result.order)
    assert steps[-1].kind == "done" and steps[-1].shown == result.order.size
    starts = round_starts(steps)
    assert len(starts) == result.n_rounds
    for r, i in enumerate(starts):
        s = steps[i]
        # a round step shows the state before its votes, a bridge its point labeled
        assert s.round == r and s.shown == round_start_step(result, r) + (s.kind == "bridge")
        members = np.flatnonzero(result.round == r)
        assert (s.kind == "bridge") == bool(result.fallback[members].all())
        view = round_view(graph_indices, result, r)
        np.testing.assert_array_equal(s.first_level, view.first_level)
        np.testing.assert_array_equal(s.second_level_score, view.second_level_score)
        if s.kind == "round":
            assert (view.L[s.first_level] == s.max_L).all() and s.max_L == view.max_L > 0
    for i, s in enumerate(steps):
        if s.kind == "bridge":
            assert result.fallback[s.point] and s.source == result.source[s.point]
            assert s.winner == result.labels[s.point] == result.labels[s.source]
        if s.kind != "vote":
            continue
        p = s.point
        assert not result.fallback[p]
        assert s.shown == result.step[p] + 1 and s.round == result.round[p]
        assert s.first_level[s.rank] == p
        assert sum(s.counts.values()) == result.n_voters[p] == (s.neighbour_labels >= 0).sum()
        assert s.winner == result.labels[p] and s.counts[s.winner] == max(s.counts.values())
        if s.is_tie:   # the nearest labeled neighbour of a tied class decides
            first = next(q for q, c in zip(s.neighbours, s.neighbour_labels) if c in s.tied)
            assert s.tie_broken_by == first and result.labels[first] == s.winner
        else:
            assert s.tie_broken_by == -1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(toys())
def test_walkthrough_replays_hdl_label_step_by_step(problem):
    toy, k = problem
    graph, result = _label_toy(toy, k)
    steps = walkthrough(graph.indices, result, X=toy.X)
    check_walkthrough(graph.indices[:, :k], result, steps)
    for s in steps:
        if s.kind == "bridge":
            np.testing.assert_allclose(s.distance, np.linalg.norm(toy.X[s.point] - toy.X[s.source]))


def test_walkthrough_of_a_tie_names_the_nearest_tied_neighbour():
    # point 0 lists 1 (class 1) then 2 (class 0): one vote each, class 1 is nearer and wins
    idx = np.array([[1, 2], [0, 2], [0, 1]])
    result = hdl_label(np.eye(3) + 0.1, np.array([-1, 1, 0]), k=2,
                       graph=KnnGraph(idx, np.zeros((3, 2))))
    steps = walkthrough(idx, result, class_names=["cat", "dog"])
    assert [s.kind for s in steps] == ["round", "vote", "done"]
    vote = steps[1]
    assert vote.counts == {0: 1, 1: 1} and vote.tied == (0, 1)
    assert vote.winner == 1 and vote.tie_broken_by == 1
    assert "cat and dog tie" in vote.caption and "point 1, so dog wins" in vote.caption
    check_walkthrough(idx, result, steps)


def test_walkthrough_of_a_bridge_says_where_the_label_came_from():
    X = np.array([[0, 0], [5, 5], [4, 0], [4.5, 0]], float)
    result = hdl_label(X, np.array([0, 1, -1, -1]), k=1, metric="euclidean")
    steps = walkthrough(build_knn_graph(X, 1, metric="euclidean").indices, result, X=X)
    assert [s.kind for s in steps] == ["bridge", "round", "vote", "done"]
    assert "point 2" in steps[0].caption and "(point 0, distance 4)" in steps[0].caption
    assert steps[2].counts == {0: 1} and "1 bridge" in steps[3].caption


def test_round_navigation_moves_between_round_starts():
    steps = [Step(kind, r, -1, 0, "") for kind, r in
             [("round", 0), ("vote", 0), ("vote", 0), ("bridge", 1), ("round", 2), ("vote", 2),
              ("done", -1)]]
    assert round_starts(steps).tolist() == [0, 3, 4]
    assert [next_round_index(steps, i) for i in range(7)] == [3, 3, 3, 4, 6, 6, 6]
    assert [previous_round_index(steps, i) for i in range(7)] == [0, 0, 0, 0, 3, 4, 4]


def test_step_state_colours_seeds_and_everything_labeled_so_far():
    toy = make_toy("moons", 100, 2, 0.1, 2, 0)
    run = teach_run(toy.X, toy.y, toy.truth, k=4)
    neighbours = run.graph.indices[:, :4]
    for step in run.steps[::7] + [run.steps[-1]]:
        state = step_state(neighbours, run.hdl, step)
        assert (state.labels >= 0).sum() == (toy.y >= 0).sum() + step.shown
        known = state.labels >= 0
        np.testing.assert_array_equal(state.L, known[neighbours].sum(axis=1))
        if step.kind == "vote":
            assert state.labels[step.point] == step.winner and state.rank[step.point] == step.rank
    assert (step_state(neighbours, run.hdl, run.steps[-1]).labels == run.hdl.labels).all()


def test_teach_run_scores_both_methods_against_the_truth():
    toy = make_toy("moons", 200, 2, 0.05, 3, 1)
    run = teach_run(toy.X, toy.y, toy.truth, k=5)
    scored = toy.y < 0
    assert run.accuracy_hdl == pytest.approx((run.hdl.labels == toy.truth)[scored].mean())
    assert run.accuracy_knn_dv == pytest.approx((run.knn_dv.labels == toy.truth)[scored].mean())
    np.testing.assert_array_equal(run.differ, np.flatnonzero(run.hdl.labels != run.knn_dv.labels))
    assert run.accuracy_hdl > run.accuracy_knn_dv     # the moons are HDL's textbook case


# ------------------------------------------------------------------ the page (AppTest)

def open_page(**settings) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    for key, value in settings.items():
        widget = at.sidebar.selectbox(key=key) if key == "teach_kind" else \
            at.sidebar.number_input(key=key) if key == "teach_random_seed" else \
            at.sidebar.slider(key=key)
        widget.set_value(value).run()
        assert not at.exception, at.exception
    return at


def view(at) -> tuple[str, str]:
    """What a step shows: its caption and how many points are coloured."""
    labeled = next(m.value for m in at.metric if m.label == "Labeled now")
    return at.info[0].value, labeled


# circles, 30 points, one seed per class, k=2: a bridge at step 15 and ties within 40 steps
SMALL = dict(teach_kind="circles", teach_points=30, teach_seeds_per_class=1,
             teach_random_seed=3, teach_k=2)


def test_page_opens_on_the_first_round_with_both_methods_scored():
    at = open_page()
    assert not at.error
    assert at.info[0].value.startswith("**Round.** Round 1.")
    labels = {m.label for m in at.metric}
    assert {"HDL accuracy", "kNN-DV accuracy", "Points where they differ"} <= labels
    assert len(at.get("plotly_chart")) == 3


def test_step_buttons_reach_every_kind_of_step_and_come_back():
    at = open_page(**SMALL)
    kinds, ties = set(), 0
    history = [view(at)]
    while not at.button(key="teach_next_step").disabled:
        at.button(key="teach_next_step").click().run()
        assert not at.exception, at.exception
        caption = at.info[0].value
        kinds.add(caption.split(".**")[0].strip("*"))
        ties += " tie " in caption
        history.append(view(at))
    assert kinds == {"Round", "Vote", "Bridge", "Done"} and ties >= 1
    assert history[-1][1] == "30 of 30"
    # back, one step at a time, shows exactly what forward showed
    for expected in reversed(history[-6:-1]):
        at.button(key="teach_prev_step").click().run()
        assert view(at) == expected


def test_round_buttons_jump_between_round_starts_and_back():
    at = open_page(**SMALL)
    at.button(key="teach_next_round").click().run()
    second = view(at)
    assert second[0].startswith(("**Round.** Round 2.", "**Bridge.** Round 2"))
    at.button(key="teach_next_step").click().run()
    at.button(key="teach_prev_round").click().run()          # mid-round: to this round's start
    assert view(at) == second
    at.button(key="teach_prev_round").click().run()
    assert at.info[0].value.startswith("**Round.** Round 1.")
    assert at.button(key="teach_reset").disabled and at.button(key="teach_prev_step").disabled
    at.slider(key="teach_step").set_value(12).run()
    at.button(key="teach_reset").click().run()
    assert at.slider(key="teach_step").value == 0


def test_changing_k_reruns_and_starts_the_labeling_over():
    at = open_page(teach_points=100)
    at.slider(key="teach_step").set_value(20).run()
    at.sidebar.slider(key="teach_k").set_value(9).run()
    assert not at.exception, at.exception
    assert at.slider(key="teach_step").value == 0
    assert "of its 9 nearest neighbours" in at.info[0].value
    at.sidebar.toggle(key="teach_auto_k").set_value(True).run()
    assert not at.exception and "k* = 3" in at.sidebar.info[0].value   # 2 seeds/class: default k


def test_a_seed_placed_by_coordinates_joins_the_labeling():
    at = open_page(teach_kind="blobs", teach_points=60)
    before = view(at)[1]
    assert before.startswith("4 of")
    toy = make_toy("blobs", 60, 2, 0.1, 2, 0)
    target = int(np.flatnonzero(toy.y < 0)[0])
    at.sidebar.selectbox(key="teach_seed_class").set_value(1)
    at.sidebar.number_input(key="teach_seed_x").set_value(float(toy.X[target, 0]))
    at.sidebar.number_input(key="teach_seed_y").set_value(float(toy.X[target, 1])).run()
    at.sidebar.button(key="teach_seed_at").click().run()
    assert not at.exception, at.exception
    assert view(at)[1].startswith("5 of")
    at.sidebar.button(key="teach_seed_reset").click().run()
    assert view(at)[1] == before


def test_impossible_settings_show_an_error_not_a_traceback():
    at = open_page(teach_points=20, teach_classes=6, teach_seeds_per_class=5)
    assert not at.exception
    assert "Cannot build this toy" in at.error[0].value and "fewer seeds" in at.error[0].value


def test_removing_every_seed_asks_for_one():
    at = AppTest.from_file(PAGE, default_timeout=60)
    toy = make_toy("moons", 300, 2, 0.1, 2, 0)
    at.session_state["teach_seed_edits"] = {int(p): -1 for p in np.flatnonzero(toy.y >= 0)}
    at.session_state["teach_seed_edits_for"] = ("moons", 300, 2, 0.1, 2, 0)
    at.run()
    assert not at.exception
    assert "Place at least one seed" in at.error[0].value


def test_neighbour_arrows_point_at_their_neighbour_with_heads_of_the_given_size(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    from teach_bench import page_functions
    page = page_functions()
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    starts, ends = np.array([0, 0, 2]), np.array([1, 2, 3])       # the last has no length
    hx, hy = page["_heads"](X, starts, ends, shorten=0.1, length=0.05, angle=np.radians(30))
    heads = np.column_stack([hx, hy]).reshape(3, 5, 2)
    assert np.isnan(heads[:, 4]).all()                             # a gap after each head
    np.testing.assert_allclose(heads[:, 0], heads[:, 3])           # closed triangles
    tips = heads[:, 1]
    np.testing.assert_allclose(tips[:2], [[0.9, 0.0], [0.0, 1.8]])  # short of the target
    for wing in (heads[:2, 0], heads[:2, 2]):
        back = wing - tips[:2]
        np.testing.assert_allclose(np.linalg.norm(back, axis=1), 0.05)
        shaft = tips[:2] - X[starts[:2]]
        cos = -(back * shaft).sum(1) / (0.05 * np.linalg.norm(shaft, axis=1))
        np.testing.assert_allclose(cos, np.cos(np.radians(30)))    # 30° off the shaft
    np.testing.assert_allclose(heads[2, :4], np.repeat([[0.0, 2.0]], 4, axis=0))
    shafts, filled = page["light_arrows"](X, starts, ends, color="#b0b0b0", name="arrows")
    assert shafts["showlegend"] and not filled["showlegend"]
    assert shafts["legendgroup"] == filled["legendgroup"] and filled["fill"] == "toself"

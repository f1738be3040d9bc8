import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdl_core import KnnGraph, balanced_label, build_knn_graph, hdl_label
from hdl_core.explain import vote_detail

from .balanced_reference import literal_balanced
from .hdl_reference import squared_euclidean_distance
from .test_hdl import check_large_rounds, check_result_invariants, labeling_problems, wide_problem


def assert_matches_literal(X, y, k, graph, border_ratio=0.5, metric="cosine"):
    result = balanced_label(X, y, k=k, graph=graph, border_ratio=border_ratio, metric=metric)
    bridge = {"euclidean": {"bridge_distance": squared_euclidean_distance}}.get(metric, {})
    labels, step, rnd, fallback = literal_balanced(X, y, graph.indices, border_ratio, **bridge)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.step, step)
    np.testing.assert_array_equal(result.round, rnd)
    np.testing.assert_array_equal(result.fallback, fallback)
    return result


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True), st.sampled_from([0.0, 0.5, 1.0]))
def test_balanced_matches_its_literal_definition_on_knn_graphs(problem, border_ratio):
    assert_matches_literal(*problem, border_ratio=border_ratio)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=False))
def test_balanced_matches_its_literal_definition_on_arbitrary_neighbour_lists(problem):
    assert_matches_literal(*problem)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("at_scale", [True, False])
def test_balanced_matches_its_literal_definition_in_rounds_longer_than_the_prefetch_distance(
        seed, at_scale, monkeypatch):
    check_large_rounds(assert_matches_literal, seed, at_scale, monkeypatch)


@pytest.mark.parametrize("n_classes, k", [(127, 5), (300, 5), (3, 127), (4, 130)])
def test_balanced_matches_its_literal_definition_past_one_byte_labels_and_counts(n_classes, k):
    result = assert_matches_literal(*wide_problem(n_classes, k))
    assert result.labels.max() == n_classes - 1


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True, metric="euclidean"))
def test_balanced_matches_its_literal_definition_by_euclidean_distance(problem):
    assert_matches_literal(*problem, metric="euclidean")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_labeling_invariants(problem):
    X, y, k, graph = problem
    r = balanced_label(X, y, k=k, graph=graph)
    seeds = check_result_invariants(r, y, k)
    by_step = r.round[r.order]
    assert by_step.size == 0 or (by_step[0] == 0 and (np.diff(by_step) <= 1).all())
    voted = ~seeds & ~r.fallback
    assert (r.n_voters[voted] >= 1).all() and (r.n_voters[voted] <= k).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_every_vote_is_what_the_app_explains(problem):
    # the Label page explains a vote from the neighbours labeled before the point's step
    X, y, k, graph = problem
    r = balanced_label(X, y, k=k, graph=graph)
    for p in np.flatnonzero((r.step >= 0) & ~r.fallback):
        detail = vote_detail(graph.indices, r, p)
        assert detail.winner == r.labels[p]
        assert sum(detail.counts.values()) == r.n_voters[p]
        assert detail.counts[r.labels[p]] / r.n_voters[p] == pytest.approx(r.confidence[p])
        tied = detail.tied
        if len(tied) > 1:   # tie: the nearest labeled neighbour's class
            nearest = next(c for c in detail.neighbour_labels if c in tied)
            assert r.labels[p] == nearest


def test_every_class_takes_its_first_level_in_the_same_round():
    # class 0's frontier point 2 has two labeled neighbours, class 1's point 5 one: the
    # paper labels 2 alone in round 0 (max L = 2); class-balanced HDL labels both
    idx = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [4, 3]])
    X = np.random.default_rng(0).normal(size=(6, 3))
    y = np.array([0, 0, -1, 1, -1, -1])
    graph = KnnGraph(idx, np.zeros(idx.shape, np.float32))
    paper = hdl_label(X, y, k=2, graph=graph)
    balanced = balanced_label(X, y, k=2, graph=graph)
    assert paper.round[2] == 0 and paper.round[5] > 0
    assert balanced.round[2] == 0 and balanced.round[4] == 0
    assert balanced.labels.tolist() == [0, 0, 0, 1, 1, 1]


def _two_chains():
    """Class 0: a dense clique (3 seeds) whose last free point 3 leads, at level 1, into
    class 1's territory (4, 5). Class 1: one seed 6 with a chain 7 - 8 - 9 - 10 behind it."""
    idx = np.array([
        [1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2],      # the clique
        [3, 5, 7], [4, 7, 8], [7, 8, 9],                  # 4 lists 3 (class 0) and 7 (class 1)
        [6, 8, 9], [7, 6, 9], [8, 7, 10], [9, 8, 7],
    ])
    return idx, np.array([0, 0, 0, -1, -1, -1, 1, -1, -1, -1, -1])


def test_a_class_at_its_border_waits_while_another_still_grows():
    idx, y = _two_chains()
    X = np.random.default_rng(1).normal(size=(idx.shape[0], 4))
    graph = KnnGraph(idx, np.zeros(idx.shape, np.float32))
    # round 0: class 0 takes 3 at level 3 (its peak), class 1 takes 7 at level 1. Round 1:
    # class 0's only candidate, 4, has 1 vote of its peak 3 (below 0.5): it waits while
    # class 1 grows at its own peak, reaches 4's other neighbours and wins it.
    waiting = balanced_label(X, y, k=3, graph=graph, border_ratio=0.5)
    eager = balanced_label(X, y, k=3, graph=graph, border_ratio=0.0)
    assert waiting.round[3] == 0 and waiting.round[7] == 0
    assert eager.labels[4] == 0          # without the border rule class 0 eats 4
    assert waiting.labels[4] == 1 and waiting.round[4] > eager.round[4]


def test_bridge_labels_one_point_from_its_most_similar_labeled_point():
    X = np.array([[1, 0, 0], [1, 0.05, 0], [0, 1, 0.2], [0, 1, 0.1]])
    r = balanced_label(X, np.array([0, -1, -1, -1]), k=1)
    assert r.fallback.tolist() == [False, False, False, True]
    assert r.source[3] in (0, 1) and r.labels[3] == 0
    assert r.round[3] == r.round[1] + 1
    assert 0 < r.confidence[3] <= 0.5 and r.n_voters[3] == 0
    assert r.labels[2] == 0 and not r.fallback[2]


def test_graph_with_more_neighbours_uses_the_first_k():
    X = np.random.default_rng(2).normal(size=(60, 4))
    y = np.full(60, -1)
    y[:3] = [0, 1, 2]
    a = balanced_label(X, y, k=4, graph=build_knn_graph(X, 9))
    b = balanced_label(X, y, k=4, graph=build_knn_graph(X, 4))
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.step, b.step)


def test_all_points_labeled_returns_seeds_unchanged():
    X = np.random.default_rng(3).normal(size=(5, 2))
    r = balanced_label(X, np.array([0, 1, 0, 1, 1]), k=2)
    assert r.labels.tolist() == [0, 1, 0, 1, 1] and (r.step == -1).all()


def _hard_gaussians(seed=0, per_class=60, n_classes=10, spread=2.2):
    """10 Gaussian classes in 64-D whose 10-NN graph is ~65 % pure: the issue's flood case."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, 64))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(n_classes), per_class)
    X = centres[truth] + rng.normal(size=(truth.size, 64)) * spread / 8
    y = np.full(truth.size, -1)
    for c in range(n_classes):
        y[rng.choice(np.flatnonzero(truth == c), 2, replace=False)] = c
    return X, y, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_never_floods_a_small_hard_set_where_the_paper_variant_does(seed):
    X, y, truth = _hard_gaussians(seed)
    graph = build_knn_graph(X, 10)
    share = lambda labels: np.bincount(labels, minlength=10).max() / labels.size  # noqa: E731
    paper = hdl_label(X, y, k=10, graph=graph)
    balanced = balanced_label(X, y, k=10, graph=graph)
    unl = y < 0
    assert share(paper.labels) > 2 * 0.1                  # the set is hard: the paper floods
    assert share(balanced.labels) <= 2 * 0.1               # no class above twice its share
    assert (balanced.labels[unl] == truth[unl]).mean() > (paper.labels[unl] == truth[unl]).mean() + 0.2


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=0), "k=0 must be at least 1"),
    (dict(k=2, border_ratio=1.5), r"border_ratio must be a number in \[0, 1\], got 1.5"),
    (dict(k=2, border_ratio="half"), "border_ratio must be a number"),
    (dict(k=2, graph=KnnGraph(np.array([[1], [0], [1]]), np.zeros((3, 1)))),
     "graph has 1 neighbours per point but k=2"),
])
def test_bad_input_raises_a_value_error_naming_the_problem(kwargs, message):
    X = np.eye(3) + 0.1
    with pytest.raises(ValueError, match=message):
        balanced_label(X, np.array([0, -1, 1]), **kwargs)

import numpy as np
from hypothesis import HealthCheck, given, settings

from hdl_core import KnnGraph, build_knn_graph, hdl_label
from hdl_core.explain import influence, round_view, vote_detail
from hdl_core.suggest import suggest_next, suspicious_seeds

from .test_hdl import labeling_problems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_round_view_rebuilds_first_level_and_second_level_order(problem):
    X, y, k, graph = problem
    r = hdl_label(X, y, k=k, graph=graph)
    for rnd in range(r.n_rounds):
        view = round_view(graph.indices, r, rnd)
        unlabeled = np.flatnonzero(~view.labeled)
        if view.bridge:
            assert view.max_L == 0 and view.first_level.size == 1
            continue
        assert set(view.first_level) == set(unlabeled[view.L[unlabeled] == view.max_L])
        # second level: descending score, equal scores by index
        keys = list(zip(-view.second_level_score, view.first_level))
        assert keys == sorted(keys)


def test_vote_detail_counts_only_neighbours_labeled_before_the_point():
    idx = np.array([[1, 2], [0, 2], [0, 1]])
    r = hdl_label(np.eye(3) + 0.1, np.array([-1, 1, 0]), k=2, graph=KnnGraph(idx, np.zeros((3, 2))))
    d = vote_detail(idx, r, 0)
    assert d.counts == {1: 1, 0: 1} and sorted(d.tied) == [0, 1] and d.winner == 1
    assert d.neighbour_labels.tolist() == [1, 0]


def chain():
    # seed 0 <- 1 <- 2 <- 3 (k=1: each point's only neighbour is the previous one)
    idx = np.array([[1], [0], [1], [2]])
    X = np.random.default_rng(0).normal(size=(4, 3))
    return idx, hdl_label(X, np.array([0, -1, -1, -1]), k=1, graph=KnnGraph(idx, np.zeros((4, 1))))


def test_influence_counts_labels_resting_on_a_point_through_later_rounds():
    idx, r = chain()
    assert r.step.tolist() == [-1, 0, 1, 2]
    np.testing.assert_allclose(influence(idx, r), [3, 2, 1, 0])


def test_suggestions_prefer_uncertain_labels_many_others_depend_on():
    idx, r = chain()
    r.confidence[:] = [1.0, 0.6, 0.6, 0.5]
    picks = suggest_next(idx, r, n=3)
    # scores: 1 -> 0.4*3 = 1.2, 2 -> 0.4*2 = 0.8, 3 -> 0.5*1 = 0.5
    assert [s.point for s in picks] == [1, 2, 3]
    assert "2 later labels depend on it" in picks[0].why
    assert [s.point for s in suggest_next(idx, r, n=3, exclude=[1])] == [2, 3]


def test_a_seed_its_neighbours_disagree_with_is_suspicious():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 0.1, (20, 2)) + [5, 0], rng.normal(0, 0.1, (20, 2)) + [0, 5]])
    y = np.full(40, -1)
    y[:5], y[20:25] = 0, 1
    y[5] = 1     # a wrong seed inside cluster 0
    g = build_knn_graph(X, 5)
    r = hdl_label(X, y, k=5, graph=g)
    found = suspicious_seeds(g.indices, r)
    assert [s.point for s in found] == [5] and found[0].neighbour_vote == 0

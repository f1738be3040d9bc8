import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdl_core import KnnGraph, build_knn_graph, hdl_label, reach_label
from hdl_core.explain import vote_detail
from hdl_core.hdl import _index_array
from hdl_core.config import REACH_MAX_STEPS, REACH_MIN_WEIGHT, REACH_STEPS, REACH_STEPS_PER_HOP
from hdl_core.reach import (CLASS_BLOCK, SPREAD_BYTES, class_block, edge_codes, edge_weights,
                             reach_share, reach_shares, seed_depth, seed_reach, spread_length)

from .hdl_reference import squared_euclidean_distance
from .reach_reference import dense_reach, literal_reach, literal_spread_length, literal_weights


def default_reach(graph, y, k):
    """The reach the default labeling orders by: weighted edges of the graph's first k."""
    first = graph.first(k)
    return seed_reach(_index_array(first.indices, len(y)), y, codes=edge_codes(first))
from .test_balanced import _hard_gaussians
from .test_hdl import check_result_invariants, labeling_problems


def assert_matches_literal(X, y, k, graph, metric="cosine", split=0.9, decisive=0.5,
                           local_scale=7):
    result = reach_label(X, y, k=k, graph=graph, metric=metric, split=split,
                         decisive=decisive, local_scale=local_scale)
    first = graph.first(k)
    codes = None if local_scale is None else edge_codes(first, local_scale)
    F = seed_reach(_index_array(first.indices, len(y)), y, codes=codes)
    bridge = {"euclidean": {"bridge_distance": squared_euclidean_distance}}.get(metric, {})
    labels, step, rnd, confidence, n_voters, fallback, n_reached = literal_reach(
        X, y, graph.first(k).indices, F, split=split, decisive=decisive, **bridge)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.step, step)
    np.testing.assert_array_equal(result.round, rnd)
    np.testing.assert_array_equal(result.fallback, fallback)
    reached = (step >= 0) & (step < n_reached)
    np.testing.assert_array_equal(result.n_voters[reached], n_voters[reached])
    np.testing.assert_allclose(result.confidence[reached], confidence[reached], rtol=1e-12)
    return result, n_reached


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True), st.sampled_from([0.0, 0.5, 0.7, 0.9]),
       st.sampled_from([0.0, 0.5, 0.6, 0.9]), st.sampled_from([7, 2, None]))
def test_reach_matches_its_literal_definition_on_knn_graphs(problem, split, decisive,
                                                            local_scale):
    assert_matches_literal(*problem, split=split, decisive=decisive, local_scale=local_scale)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=False))
def test_reach_matches_its_literal_definition_on_arbitrary_neighbour_lists(problem):
    assert_matches_literal(*problem)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True, metric="euclidean"))
def test_reach_matches_its_literal_definition_by_euclidean_distance(problem):
    assert_matches_literal(*problem, metric="euclidean")


def test_points_no_seed_reaches_are_labeled_after_the_others_by_class_balanced_hdl():
    # two far groups, the second without a seed: the reach never gets there, a bridge does
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(30, 3)) + [20, 0, 0], rng.normal(size=(30, 3)) - [20, 0, 0]])
    y = np.full(60, -1)
    y[[0, 1]] = [0, 1]
    graph = build_knn_graph(X, 5, method="exact", metric="euclidean")
    result, n_reached = assert_matches_literal(X, y, 5, graph, metric="euclidean")
    assert 0 < n_reached < 58
    late = result.step >= n_reached
    assert (np.flatnonzero(late) >= 30).all() and result.fallback[late].any()
    assert not result.fallback[~late].any()
    assert result.round[late].min() > result.round[(result.step >= 0) & ~late].max()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=False))
def test_the_spread_is_as_long_as_the_seeds_are_deep(problem):
    X, y, k, graph = problem
    lists = graph.first(k).indices
    assert spread_length(lists, y) == literal_spread_length(
        lists, y, REACH_STEPS_PER_HOP, REACH_STEPS, REACH_MAX_STEPS)


def test_seeds_a_few_hops_from_every_point_propagate_twenty_steps():
    X, _, truth = _hard_gaussians(0)                    # clustered: every point near a seed
    y = np.full(truth.size, -1)
    rng = np.random.default_rng(1)
    for c in range(truth.max() + 1):                    # 5 seeds a class: 2 hops deep
        y[rng.choice(np.flatnonzero(truth == c), 5, replace=False)] = c
    graph = build_knn_graph(X, 10, method="exact")
    assert seed_depth(graph.indices, y) == 2
    assert spread_length(graph.indices, y) == REACH_STEPS
    default = reach_label(X, y, k=10, graph=graph)
    fixed = reach_label(X, y, k=10, graph=graph, steps=REACH_STEPS)
    assert default.spread == (REACH_STEPS, None)       # harmonic: no alpha
    np.testing.assert_array_equal(default.step, fixed.step)
    np.testing.assert_array_equal(default.labels, fixed.labels)
    spread = reach_label(X, y, k=10, graph=graph, steps=REACH_STEPS, alpha=0.9)
    assert spread.spread == (REACH_STEPS, 0.9)
    assert not np.array_equal(spread.step, default.step)    # an alpha: label spreading


def test_a_long_chain_spreads_longer_and_reaches_its_far_end():
    # 200 points on a line, one seed at each end: 99 hops deep, past the 20 steps of before
    X = np.column_stack([np.linspace(0, 1, 200), np.full(200, 0.3)])
    y = np.full(200, -1)
    y[[0, 199]] = [0, 1]
    graph = build_knn_graph(X, 2, method="exact", metric="euclidean")
    steps = spread_length(graph.indices, y)
    assert steps == REACH_MAX_STEPS
    result = reach_label(X, y, k=2, graph=graph, metric="euclidean")
    assert result.spread == (steps, None)             # the run records the length it ran
    assert (result.labels[:100] == 0).all() and (result.labels[100:] == 1).all()
    assert reach_label(X, y, k=2, graph=graph, metric="euclidean", steps=7,
                       alpha=0.8).spread == (7, 0.8)
    assert not result.fallback.any()                  # every point reached: no class-balanced rest


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True), st.integers(1, 30),
       st.sampled_from([None, 0.5, 0.9, 0.99]), st.booleans())
def test_the_reach_is_its_dense_definition(problem, steps, alpha, weighted):
    X, y, k, graph = problem
    first = graph.first(k)
    F = seed_reach(_index_array(first.indices, len(y)), y, steps=steps, alpha=alpha,
                   codes=edge_codes(first) if weighted else None)
    expected = dense_reach(first.indices, y, steps, alpha,
                           edge_weights(first) if weighted else None)
    np.testing.assert_allclose(F, expected, rtol=2e-4, atol=1e-7)


def test_the_harmonic_reach_tends_to_each_points_neighbours_average_with_seeds_held():
    # the limit that makes it the chance a random walk meets each class's seeds first: every
    # unlabeled row the weighted average of its neighbours' rows, every seed its own class
    X, y, truth = _hard_gaussians(2)
    y = np.full(truth.size, -1)
    y[np.flatnonzero(truth == 0)[:2]] = 0
    y[np.flatnonzero(truth == 1)[:2]] = 1
    y[np.flatnonzero(truth == 2)[:1]] = 2
    graph = build_knn_graph(X, 6, method="exact")
    codes = edge_codes(graph)
    F = seed_reach(_index_array(graph.indices, len(y)), y, steps=3000, codes=codes)
    W = np.zeros((len(y), len(y)))
    np.add.at(W, (np.repeat(np.arange(len(y)), 6), graph.indices.ravel()),
              edge_weights(graph).ravel())
    W += W.T
    average = (W @ F) / W.sum(axis=1)[:, None]
    free = y < 0
    np.testing.assert_allclose(F[free], average[free], atol=1e-6 * F.max())
    seeds = np.flatnonzero(y >= 0)
    assert (F[seeds].argmax(axis=1) == y[seeds]).all()
    assert (np.count_nonzero(F[seeds], axis=1) == 1).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True), st.sampled_from(["cosine", "euclidean"]),
       st.integers(1, 9))
def test_edge_weights_are_their_local_scale_definition(problem, metric, rank):
    X, y, k, _ = problem
    graph = build_knn_graph(X, k, method="exact", metric=metric)
    weights = edge_weights(graph, rank)
    expected = literal_weights(graph.indices, graph.distances, metric, rank, REACH_MIN_WEIGHT)
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert edge_codes(graph, rank).dtype == np.uint16
    assert weights.dtype == np.float32 and (weights >= np.float32(REACH_MIN_WEIGHT)).all()
    assert (weights <= 1).all()


def test_duplicates_and_near_neighbours_weigh_more_than_far_ones():
    # a point's nearest neighbour passes on more reach than its farthest; a duplicate weighs 1
    X = np.array([[0.0, 0], [0, 0], [1, 0], [0, 1], [3, 0], [0, 3.5], [-4, 0]])
    graph = build_knn_graph(X, 4, method="exact", metric="euclidean")
    weights = edge_weights(graph, 3)
    assert weights[0, 0] == 1.0 and weights[1, 0] == 1.0           # 0 and 1 coincide
    assert (np.diff(weights[0]) <= 0).all() and weights[0, -1] < weights[0, 1]


def test_labeling_from_a_stored_graph_weighs_edges_as_in_memory():
    # a graph written by `hdl-studio graph` keeps float16 distances: same weights, same labels
    X, y = _two_overlapping_classes(3)
    graph = build_knn_graph(X, 10)
    stored = KnnGraph(graph.indices.astype(np.int32), graph.distances.astype(np.float16))
    np.testing.assert_array_equal(edge_codes(stored), edge_codes(graph))
    a, b = reach_label(X, y, k=10, graph=graph), reach_label(X, y, k=10, graph=stored)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.step, b.step)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_labeling_invariants(problem):
    X, y, k, graph = problem
    r = reach_label(X, y, k=k, graph=graph)
    seeds = check_result_invariants(r, y, k)
    by_step = r.round[r.order]
    assert by_step.size == 0 or (by_step[0] == 0 and (np.diff(by_step) <= 1).all())
    by_reach = ~seeds & ~r.fallback & (r.n_voters == 0)
    assert (r.confidence[by_reach] <= 0.5).all()
    assert (r.n_voters[~seeds] <= k).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_every_vote_is_what_the_app_explains(problem):
    # the Label page explains a vote from the neighbours labeled before the point's step,
    # and a point with none, or whose vote was split, from the reach
    X, y, k, graph = problem
    r = reach_label(X, y, k=k, graph=graph)
    share, top = reach_share(default_reach(graph, y, k))
    for p in np.flatnonzero((r.step >= 0) & ~r.fallback):
        detail = vote_detail(graph.indices, r, p)
        if r.n_voters[p] == 0:
            assert r.labels[p] == top[p]
            assert r.confidence[p] == pytest.approx(0.5 * share[p])
            if detail.counts:       # a split vote, whose winner the reach overruled
                votes = sum(detail.counts.values())
                assert detail.counts[detail.voted_for] / votes <= 0.9
                assert detail.voted_for != top[p] and share[p] >= 0.5
            continue
        assert detail.winner == detail.voted_for == r.labels[p]
        assert sum(detail.counts.values()) == r.n_voters[p]
        assert detail.counts[r.labels[p]] / r.n_voters[p] == pytest.approx(r.confidence[p])
        if len(detail.tied) > 1:   # tie: the nearest labeled neighbour's class
            assert r.labels[p] == next(c for c in detail.neighbour_labels if c in detail.tied)


def _two_overlapping_classes(seed):
    """Two Gaussian classes of 150 in 8-D whose neighbourhoods overlap, 3 seeds each."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1], 150)
    X = rng.normal(size=(300, 8)) + 1.2 * truth[:, None]
    y = np.full(300, -1)
    for c in (0, 1):
        y[rng.choice(np.flatnonzero(truth == c), 3, replace=False)] = c
    return X, y


@pytest.mark.parametrize("seed", [0, 1])
def test_a_split_vote_gives_way_to_a_decisive_reach_and_every_other_vote_stands(seed):
    X, y = _two_overlapping_classes(seed)
    graph = build_knn_graph(X, 10)
    every_vote = reach_label(X, y, k=10, graph=graph, split=0.0)
    gated = reach_label(X, y, k=10, graph=graph)
    share, top = reach_share(default_reach(graph, y, 10))
    # with the gate off, only points without a labeled neighbour go by the reach
    for p in np.flatnonzero((every_vote.step >= 0) & (every_vote.n_voters == 0)):
        assert not vote_detail(graph.indices, every_vote, p).counts
    overruled = []
    for p in np.flatnonzero(gated.step >= 0):
        detail = vote_detail(graph.indices, gated, p)
        if gated.n_voters[p] > 0:
            assert gated.labels[p] == detail.voted_for
        elif detail.counts:
            overruled.append(p)
            assert detail.counts[detail.voted_for] / sum(detail.counts.values()) <= 0.9
            assert share[p] >= 0.5 and gated.labels[p] == top[p] != detail.voted_for
    assert overruled                        # these classes overlap: some votes are split
    np.testing.assert_array_equal(gated.step, every_vote.step)     # the order is the reach's


def test_one_sided_points_come_first_and_a_round_is_a_band_of_reach_shares():
    X, y, truth = _hard_gaussians(0)
    graph = build_knn_graph(X, 10)
    r = reach_label(X, y, k=10, graph=graph)
    share, _ = reach_share(default_reach(graph, y, 10))
    order = r.order
    assert (np.diff(share[order]) <= 0).all()
    band = np.minimum(((1 - share[order]) * 20).astype(int), 19)
    np.testing.assert_array_equal(np.flatnonzero(np.diff(r.round[order])),
                                  np.flatnonzero(np.diff(band)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reach_never_floods_a_small_hard_set_where_the_paper_variant_does(seed):
    X, y, truth = _hard_gaussians(seed)
    graph = build_knn_graph(X, 10)
    share = lambda labels: np.bincount(labels, minlength=10).max() / labels.size  # noqa: E731
    paper = hdl_label(X, y, k=10, graph=graph)
    reach = reach_label(X, y, k=10, graph=graph)
    unl = y < 0
    assert share(paper.labels) > 2 * 0.1                  # the set is hard: the paper floods
    assert share(reach.labels) <= 2 * 0.1                 # no class above twice its share
    assert (reach.labels[unl] == truth[unl]).mean() > (paper.labels[unl] == truth[unl]).mean() + 0.2


def test_all_points_labeled_returns_seeds_unchanged():
    X = np.eye(4) + 0.1
    y = np.array([0, 1, 0, 1])
    r = reach_label(X, y, k=2)
    np.testing.assert_array_equal(r.labels, y)
    assert (r.step == -1).all() and r.n_rounds == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=0), "k=0 must be at least 1"),
    (dict(k=2, steps=0), "steps must be a whole number >= 1, got 0"),
    (dict(k=2, steps=2.5), "steps must be a whole number >= 1, got 2.5"),
    (dict(k=2, alpha=1.0), r"alpha must be a number in \(0, 1\), got 1.0"),
    (dict(k=2, alpha="high"), "alpha must be a number"),
    (dict(k=2, split=1.0), r"split must be a number in \[0, 1\), got 1.0"),
    (dict(k=2, split=-0.1), "split must be a number"),
    (dict(k=2, decisive=1.5), r"decisive must be a number in \[0, 1\], got 1.5"),
    (dict(k=2, local_scale=0), "local_scale must be a whole number >= 1 .* got 0"),
    (dict(k=2, local_scale=2.5), "local_scale must be a whole number >= 1 .* got 2.5"),
    (dict(k=2, graph=KnnGraph(np.array([[1], [0], [1]]), np.zeros((3, 1)))),
     "graph has 1 neighbours per point but k=2"),
])
def test_bad_input_raises_a_value_error_naming_the_problem(kwargs, message):
    X = np.eye(3) + 0.1
    with pytest.raises(ValueError, match=message):
        reach_label(X, np.array([0, -1, 1]), **kwargs)


@pytest.mark.parametrize("block", [1, 2, 3, 16])
def test_classes_spread_a_block_at_a_time_give_the_same_order(block):
    # 5 classes: one block of 16 is the whole reach; smaller blocks hold fewer columns at
    # once and must find the same top class and (up to summation order) the same share
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 6)) + np.repeat(rng.normal(size=(5, 6)) * 3, 60, axis=0)
    y = np.full(300, -1)
    y[rng.choice(300, 15, replace=False)] = rng.integers(0, 5, 15)
    y[[0, 60, 120, 180, 240]] = [0, 1, 2, 3, 4]
    graph = build_knn_graph(X, 8)
    neighbours = _index_array(graph.indices, 300)
    codes = edge_codes(graph)
    share, top = reach_share(seed_reach(neighbours, y, codes=codes))
    blocked_share, blocked_top = reach_shares(neighbours, y, block=block, codes=codes)
    np.testing.assert_array_equal(blocked_top, top)
    if block >= 5:
        np.testing.assert_array_equal(blocked_share, share)
    else:
        np.testing.assert_allclose(blocked_share, share, rtol=1e-6)


def test_classes_spread_in_one_pass_where_they_fit_and_sixteen_at_a_time_beyond():
    # a pass costs a random read per edge however wide the row: at 1M points 20 classes
    # (the large workspace's) spread together; at 10M the rows stay at 16 classes, 128 bytes
    # a point twice, so the 10M labeling keeps within its memory per point
    assert class_block(1_000) >= 1_000
    assert class_block(1_000_000) >= 32
    assert class_block(10_000_000) == CLASS_BLOCK == 16
    for n in (1_000, 1_000_000, 4_000_000, 10_000_000, 100_000_000):
        assert 8 * n * class_block(n) <= max(SPREAD_BYTES, 8 * n * CLASS_BLOCK)


@pytest.mark.parametrize("layout", ["first columns", "int64", "Fortran order"])
def test_the_spread_reads_neighbour_lists_of_any_integer_type_and_layout(layout):
    # a graph's first k columns are a strided view, and numpy's default integers are int64:
    # the public spread functions take them as they come and spread exactly as from the
    # contiguous int32 lists the kernels read
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 5)) + np.repeat(rng.normal(size=(4, 5)) * 3, 50, axis=0)
    y = np.full(200, -1)
    y[[0, 50, 100, 150, 7]] = [0, 1, 2, 3, 0]
    graph = build_knn_graph(X, 12)
    first = graph.first(8)
    lists = {"first columns": graph.indices.astype(np.int64)[:, :8],
             "int64": first.indices.astype(np.int64),
             "Fortran order": np.asfortranarray(first.indices)}[layout]
    contiguous = _index_array(first.indices, 200)
    codes = edge_codes(first)
    np.testing.assert_array_equal(seed_reach(lists, y, codes=codes),
                                  seed_reach(contiguous, y, codes=codes))
    for got, expected in zip(reach_shares(lists, y), reach_shares(contiguous, y)):
        np.testing.assert_array_equal(got, expected)
    assert spread_length(lists, y) == spread_length(contiguous, y)

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from hdl_core import KnnGraph, build_knn_graph, hdl_label, knn_dv_label
from hdl_core.rows import normalize_rows

from .hdl_reference import euclidean_distance, literal_hdl, squared_euclidean_distance


def random_lists(rng, n, k):
    """Any neighbour lists at all: k distinct other points for each of n points."""
    return np.array([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])


def list_problem(rng, indices, y):
    """A labeling problem on given neighbour lists (rows never read: no metric behind them
    but a bridge's)."""
    n, k = indices.shape
    return rng.normal(size=(n, 3)), y, k, KnnGraph(indices, np.zeros((n, k), np.float32))


@st.composite
def labeling_problems(draw, geometric=True, metric="cosine"):
    n = draw(st.integers(4, 300))
    k = draw(st.integers(1, min(8, n - 1)))
    n_classes = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    d = draw(st.integers(2, 8))
    centers = rng.normal(size=(n_classes, d)) * draw(st.sampled_from([0.5, 2.0, 5.0]))
    truth = rng.integers(0, n_classes, n)
    X = centers[truth] + rng.normal(size=(n, d))
    if metric == "euclidean" and draw(st.booleans()):
        X = np.round(X)             # whole coordinates: duplicates and equal distances
    n_seeds = draw(st.integers(1, max(1, min(n - 1, 3 * n_classes))))
    y = np.full(n, -1)
    seeds = rng.choice(n, n_seeds, replace=False)
    y[seeds] = truth[seeds]
    if geometric:
        graph = build_knn_graph(X, k, method="exact", metric=metric)
    else:
        idx = random_lists(rng, n, k)
        graph = KnnGraph(idx, np.zeros(idx.shape, np.float32), metric)
    return X, y, k, graph


def assert_matches_literal(X, y, k, graph, metric="cosine"):
    result = hdl_label(X, y, k=k, graph=graph, metric=metric)
    bridge_distance = {"euclidean": {"bridge_distance": squared_euclidean_distance}}.get(metric, {})
    labels, step, rnd, fallback, source = literal_hdl(X, y, graph.indices, **bridge_distance)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.step, step)
    np.testing.assert_array_equal(result.round, rnd)
    np.testing.assert_array_equal(result.fallback, fallback)
    np.testing.assert_array_equal(result.source, source)
    return result


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_hdl_matches_literal_algorithm_1_on_knn_graphs(problem):
    assert_matches_literal(*problem)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=False))
def test_hdl_matches_literal_algorithm_1_on_arbitrary_neighbour_lists(problem):
    assert_matches_literal(*problem)


def large_round_problem(seed):
    """Random neighbour lists over 1,500 points with 5 % seeds: rounds of hundreds of
    points, so the kernel's prefetching (`hdl_core._prefetch.AHEAD` steps ahead, three
    stages deep; turned on below its usual size by the tests) runs in full, at a round's
    end and in short late rounds."""
    rng = np.random.default_rng(seed)
    n = 1500
    indices = random_lists(rng, n, 6)
    y = np.full(n, -1)
    seeds = rng.choice(n, 75, replace=False)
    y[seeds] = rng.integers(0, 4, seeds.size)
    return list_problem(rng, indices, y)


def check_large_rounds(matches_literal, seed, at_scale, monkeypatch):
    """`matches_literal` (a kernel held to its reference) on `large_round_problem`, with the
    paths taken at scale (prefetching, the blocked reverse adjacency) on or off whatever the
    problem's size."""
    from hdl_core import _prefetch, hdl
    monkeypatch.setattr(_prefetch, "MIN_POINTS", 0 if at_scale else 10**9)
    monkeypatch.setattr(hdl, "REVERSE_BLOCK_BITS", 4 if at_scale else 16)
    assert _prefetch.worth_it(1500) is at_scale
    result = matches_literal(*large_round_problem(seed))
    assert np.bincount(result.round[result.round >= 0]).max() > 3 * _prefetch.AHEAD


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("at_scale", [True, False])
def test_hdl_matches_literal_algorithm_1_in_rounds_longer_than_the_prefetch_distance(
        seed, at_scale, monkeypatch):
    check_large_rounds(assert_matches_literal, seed, at_scale, monkeypatch)


def wide_problem(n_classes, k, seed=0):
    """Random neighbour lists whose classes or k do not fit the kernels' one-byte arrays
    (`hdl.narrow_int`): labels then take two bytes, or counts and positions do."""
    rng = np.random.default_rng(seed)
    n = max(3 * n_classes, k + 60)
    indices = random_lists(rng, n, k)
    y = np.full(n, -1)
    seeds = rng.choice(n, max(n_classes, n // 10), replace=False)
    y[seeds] = np.resize(np.arange(n_classes), seeds.size)
    return list_problem(rng, indices, y)


def test_narrow_int_is_the_narrowest_type_holding_the_largest_value():
    from hdl_core.hdl import narrow_int
    assert narrow_int(127) is np.int8 and narrow_int(128) is np.int16
    assert narrow_int(2**31 - 1) is np.int32 and narrow_int(2**31) is np.int64
    assert narrow_int(5, at_least=np.int32) is np.int32


@pytest.mark.parametrize("n_classes, k", [(126, 5), (127, 5), (300, 5), (3, 127), (4, 130)])
def test_hdl_matches_literal_algorithm_1_past_one_byte_labels_and_counts(n_classes, k):
    result = assert_matches_literal(*wide_problem(n_classes, k))
    assert result.labels.max() == n_classes - 1 and result.labels.dtype == np.int64


@pytest.mark.parametrize("n, bits", [(64, 4), (1000, 4), (1000, 7), (4097, 10)])
@pytest.mark.parametrize("positions", [False, True])
def test_blocked_reverse_adjacency_equals_the_direct_one(n, bits, positions, monkeypatch):
    from hdl_core import hdl
    rng = np.random.default_rng(n + bits)
    k = 7
    indices = random_lists(rng, n, k).astype(np.int32)
    for i in range(1, n, 5):        # point 0 listed by many: one long reverse list
        if 0 not in indices[i]:
            indices[i, 0] = 0
    direct = hdl._reverse_adjacency(indices, n, positions=positions)
    monkeypatch.setattr(hdl, "REVERSE_BLOCK_BITS", bits)
    assert n >> bits >= 4                               # the blocked path runs
    blocked = hdl._reverse_adjacency(indices, n, positions=positions)
    for a, b in zip(direct, blocked, strict=True):
        np.testing.assert_array_equal(a, b)
    rev_ptr, rev_idx = direct[:2]
    p = int(np.argmax(np.diff(rev_ptr)))
    np.testing.assert_array_equal(rev_idx[rev_ptr[p]:rev_ptr[p + 1]],
                                  np.flatnonzero((indices == p).any(axis=1)))
    if positions:
        entries = np.arange(rev_ptr[p], rev_ptr[p + 1])
        assert (indices[rev_idx[entries], direct[2][entries]] == p).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True, metric="euclidean"))
def test_euclidean_hdl_matches_literal_algorithm_1_with_a_euclidean_bridge(problem):
    X, y, k, graph = problem
    result = assert_matches_literal(X, y, k, graph, metric="euclidean")
    d_k = float(np.median(graph.distances[:, k - 1])) or 1.0
    for p in np.flatnonzero(result.fallback):
        d = euclidean_distance(X[p], X[result.source[p]])
        assert result.confidence[p] == pytest.approx(min(0.5, max(0.001, 0.5 * np.exp(-d / d_k))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=False, metric="euclidean"))
def test_euclidean_hdl_matches_literal_algorithm_1_on_arbitrary_neighbour_lists(problem):
    assert_matches_literal(*problem, metric="euclidean")


def test_a_far_euclidean_bridge_ranks_below_a_near_one():
    # seeds 0 and 1; 2 and 3 list only each other (k=1): 2 bridges from 0 (distance 1),
    # then 3 votes; 5 and 6 likewise but 5 is 3 from seed 1 (the next bridge)
    X = np.array([[0.0, 0], [10, 0], [1, 0], [1, 0.5], [20, 0], [13, 0], [13, 0.5]])
    idx = np.array([[2], [5], [3], [2], [5], [6], [5]])
    graph = KnnGraph(idx, np.ones((7, 1), np.float32), "euclidean")
    r = hdl_label(X, np.array([0, 1, -1, -1, -1, -1, -1]), k=1, graph=graph, metric="euclidean")
    assert r.fallback.tolist() == [False, False, True, False, False, True, False]
    assert r.source[2] == 0 and r.source[5] == 1
    assert r.confidence[2] == pytest.approx(0.5 * np.exp(-1.0))     # d_k = 1
    assert r.confidence[5] == pytest.approx(0.5 * np.exp(-3.0)) and r.confidence[5] < r.confidence[2]


def test_labeled_neighbour_counts_from_reverse_lists_equal_a_scan_of_every_list():
    from hdl_core import hdl
    rng = np.random.default_rng(3)
    n, k = 500, 6
    indices = rng.integers(0, n, size=(n, k)).astype(np.int32)   # repeats and self-loops
    indices[::7, 0] = np.arange(0, n, 7)
    indices[::5, 1:3] = indices[::5, 1:2]
    for share in (0.0, 0.02, 0.5, 1.0):
        labeled = rng.random(n) < share
        rev_ptr, rev_idx = hdl._reverse_adjacency(indices, n)
        L = hdl._count_labeled(rev_ptr, rev_idx, labeled, np.int8)
        np.testing.assert_array_equal(L, labeled[indices].sum(axis=1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_labeling_invariants(problem):
    X, y, k, graph = problem
    r = hdl_label(X, y, k=k, graph=graph)
    seeds = check_result_invariants(r, y, k)
    voted = ~seeds & ~r.fallback
    assert (r.n_voters[voted] >= 1).all() and (r.n_voters[voted] <= k).all()


def check_result_invariants(r, y, k) -> np.ndarray:
    """What every variant's result holds: seeds kept, every other point labeled once with a
    class seen among the seeds, steps 0..m-1, rounds rising with the steps, confidences in
    (0, 1], a bridge source exactly for bridged points, the k it was given. Returns the seed
    mask."""
    seeds = y >= 0
    np.testing.assert_array_equal(r.labels[seeds], y[seeds])
    assert (r.labels >= 0).all() and r.labels.max() <= y.max()
    assert sorted(r.step[~seeds]) == list(range((~seeds).sum()))
    assert (r.step[seeds] == -1).all() and (r.round[seeds] == -1).all()
    by_step = r.round[r.order]
    assert (np.diff(by_step) >= 0).all()
    assert ((r.confidence > 0) & (r.confidence <= 1)).all()
    assert (r.source[r.fallback] >= 0).all() and (r.source[~r.fallback] == -1).all()
    assert r.k == k
    np.testing.assert_array_equal(r.seed_labels, np.where(seeds, y, -1))
    return seeds


def test_vote_tie_goes_to_nearest_labeled_neighbour():
    # point 0's neighbours, nearest first: 1 (class 1), 2 (class 0) -> 1:1 tie, class 1 is nearer
    idx = np.array([[1, 2], [0, 2], [0, 1]])
    X = np.eye(3) + 0.1
    r = hdl_label(X, np.array([-1, 1, 0]), k=2, graph=KnnGraph(idx, np.zeros((3, 2))))
    assert r.labels[0] == 1 and r.confidence[0] == 0.5 and r.n_voters[0] == 2


def test_second_level_labels_the_most_listed_first_level_point_first():
    # 0 and 1 both have one labeled neighbour (4) and form the first level; 0 lists 1,
    # so labeling 1 first unlocks more: it goes first although its index is larger
    idx = np.array([[4, 1], [4, 3], [1, 3], [2, 0], [3, 2]])
    X = np.random.default_rng(0).normal(size=(5, 3))
    r = hdl_label(X, np.array([-1, -1, -1, -1, 0]), k=2, graph=KnnGraph(idx, np.zeros((5, 2))))
    assert r.step[1] < r.step[0]
    assert r.round[0] == r.round[1] == 0


def test_votes_see_points_labeled_earlier_in_the_same_round():
    # 0 and 1 list each other; 1 is labeled first (listed by 0 and 2) and then votes for 0
    idx = np.array([[3, 1, 4], [3, 0, 4], [1, 3, 4], [4, 0, 1], [3, 0, 1]])
    X = np.random.default_rng(1).normal(size=(5, 3))
    y = np.array([-1, -1, -1, 0, 1])
    r = hdl_label(X, y, k=3, graph=KnnGraph(idx, np.zeros((5, 3))))
    assert r.n_voters[r.order[1]] == 3


def test_bridge_labels_one_point_from_its_most_similar_labeled_point():
    # two far-apart pairs, seeds only in the first: the second pair has no labeled neighbour
    X = np.array([[1, 0, 0], [1, 0.05, 0], [0, 1, 0.2], [0, 1, 0.1]])
    r = hdl_label(X, np.array([0, -1, -1, -1]), k=1)
    assert r.fallback.tolist() == [False, False, False, True]
    assert r.source[3] in (0, 1) and r.labels[3] == 0
    assert r.round[3] == r.round[1] + 1          # a round of its own
    assert 0 < r.confidence[3] <= 0.5 and r.n_voters[3] == 0
    assert r.labels[2] == 0 and not r.fallback[2]  # and the rounds go on from it


@pytest.mark.parametrize("noise", [0.0, 1e-7, 1e-3])
def test_bridge_search_is_exact_in_any_blocking_with_duplicates_and_near_ties(monkeypatch, noise):
    # 512-D points in tight groups (exact duplicates, float32-level and clearly separate
    # jitter), seeds in few groups and k=2: many bridges, each decided among near-equal
    # similarities. Tiny blocks must not change a single choice.
    from hdl_core import hdl as hdl_module
    monkeypatch.setattr(hdl_module._Bridge, "BLOCK", 7)
    rng = np.random.default_rng(11)
    base = rng.normal(size=(12, 512))
    X = (np.repeat(base, 5, axis=0) + noise * rng.normal(size=(60, 512))).astype(np.float32)
    y = np.full(60, -1)
    y[[0, 1, 5, 17]] = [0, 0, 1, 2]
    graph = build_knn_graph(X, 2, method="exact")
    result = assert_matches_literal(X, y, 2, graph)
    assert result.fallback.sum() >= 5


@pytest.mark.parametrize("d, noise", [(2, 0.0), (2, 1e-12), (40, 0.0), (40, 1e-13), (40, 1e-3)])
def test_euclidean_bridge_search_is_exact_in_any_blocking_with_duplicates_and_near_ties(
        monkeypatch, d, noise):
    # as above, by Euclidean distance: groups far from the origin, where |a|²+|b|²-2a·b
    # (used in 40-D) cannot tell the near ties apart and only the exact re-check can
    from hdl_core import hdl as hdl_module
    monkeypatch.setattr(hdl_module._Bridge, "BLOCK", 7)
    rng = np.random.default_rng(12)
    base = rng.normal(size=(12, d)) * 3 + 100.0
    X = np.repeat(base, 5, axis=0) + noise * rng.normal(size=(60, d))
    y = np.full(60, -1)
    y[[0, 1, 5, 17]] = [0, 0, 1, 2]
    graph = build_knn_graph(X, 2, method="exact", metric="euclidean")
    result = assert_matches_literal(X, y, 2, graph, metric="euclidean")
    assert result.fallback.sum() >= 5


def test_a_graph_of_another_metric_is_refused():
    X = np.random.default_rng(6).normal(size=(20, 3))
    y = np.r_[0, 1, np.full(18, -1)]
    with pytest.raises(ValueError, match="graph was built with metric='cosine' but hdl_label was "
                                         "asked for metric='euclidean'"):
        hdl_label(X, y, k=3, graph=build_knn_graph(X, 3), metric="euclidean")
    with pytest.raises(ValueError, match="metric='euclidean'.*metric='cosine'"):
        hdl_label(X, y, k=3, graph=build_knn_graph(X, 3, metric="euclidean"))


@pytest.mark.parametrize("label", [hdl_label, knn_dv_label])
def test_unknown_metric_is_refused_naming_the_choices(label):
    with pytest.raises(ValueError, match="metric must be one of 'cosine', 'euclidean', got 'cos'"):
        label(np.eye(3), np.array([0, -1, -1]), k=1, metric="cos")


def test_graph_with_more_neighbours_uses_the_first_k():
    X = np.random.default_rng(2).normal(size=(60, 4))
    y = np.full(60, -1)
    y[:3] = [0, 1, 2]
    wide = build_knn_graph(X, 9)
    a = hdl_label(X, y, k=4, graph=wide)
    b = hdl_label(X, y, k=4, graph=build_knn_graph(X, 4))
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.step, b.step)


def test_all_points_labeled_returns_seeds_unchanged():
    X = np.random.default_rng(3).normal(size=(5, 2))
    r = hdl_label(X, np.array([0, 1, 0, 1, 1]), k=2)
    assert r.labels.tolist() == [0, 1, 0, 1, 1] and (r.step == -1).all()


def test_duplicate_points_are_allowed():
    X = np.repeat(np.random.default_rng(4).normal(size=(10, 3)), 3, axis=0)
    y = np.full(30, -1)
    y[[0, 15]] = [0, 1]
    r = hdl_label(X, y, k=4)
    assert (r.labels >= 0).all()


@pytest.mark.parametrize("X, y, k, message", [
    (np.ones(5), np.zeros(5), 1, "2-D"),
    (np.array([[1.0, 0], [np.nan, 1], [1, 1]]), np.array([0, -1, -1]), 1, "row 1"),
    (np.array([[1.0, 0], [0, 0], [1, 1]]), np.array([0, -1, -1]), 1, "zero-norm row 1"),
    (np.eye(3), np.array([0, -1]), 1, "2 labels but X has 3 rows"),
    (np.eye(3), np.array([-1, -1, -1]), 1, "no labeled point"),
    (np.eye(3), np.array([0, -2, -1]), 1, "below -1 at positions 1"),
    (np.eye(3), np.array([0, -1, -1]), 0, "k=0 must be at least 1"),
    (np.eye(3), np.array([0, -1, -1]), 3, "k=3 must be smaller than the number of points n=3"),
])
def test_bad_input_raises_a_value_error_naming_the_problem(X, y, k, message):
    with pytest.raises(ValueError, match=message):
        hdl_label(X, y, k=k)
    with pytest.raises(ValueError, match=message):
        knn_dv_label(X, y, k=k)


def test_knn_dv_votes_among_the_k_nearest_labeled_points_only():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 5))
    y = np.full(200, -1)
    y[:30] = rng.integers(0, 3, 30)
    r = knn_dv_label(X, y, k=5)
    Xn = normalize_rows(X)
    for i in range(30, 200):
        sims = Xn[:30] @ Xn[i]
        nearest = np.argsort(-sims, kind="stable")[:5]
        votes = np.bincount(y[nearest], minlength=3)
        tied = np.flatnonzero(votes == votes.max())
        winner = next(y[j] for j in nearest if y[j] in tied)
        assert r.labels[i] == winner
    assert (r.step[30:] == 0).all() and (r.round[30:] == 0).all()


def test_euclidean_knn_dv_votes_among_the_k_nearest_labeled_points_ties_by_index():
    rng = np.random.default_rng(13)
    X = rng.integers(0, 6, size=(200, 3)).astype(float)     # many equal distances
    y = np.full(200, -1)
    y[rng.choice(200, 40, replace=False)] = rng.integers(0, 3, 40)
    r = knn_dv_label(X, y, k=5, metric="euclidean")
    seeds = np.flatnonzero(y >= 0)
    for i in np.flatnonzero(y < 0):
        d2 = ((X[seeds] - X[i]) ** 2).sum(axis=1)
        nearest = seeds[np.lexsort((seeds, d2))[:5]]
        votes = np.bincount(y[nearest], minlength=3)
        tied = np.flatnonzero(votes == votes.max())
        winner = next(y[j] for j in nearest if y[j] in tied)
        assert r.labels[i] == winner
        assert r.confidence[i] == votes.max() / 5
    assert (r.step[y < 0] == 0).all() and (r.labels[seeds] == y[seeds]).all()


def _digits_accuracy(seeds_per_class, draws=5, k=3):
    digits = load_digits()
    X, truth = digits.data, digits.target
    graph = build_knn_graph(X, k)
    out = []
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        y = np.full(truth.size, -1)
        for c in range(10):
            pick = rng.choice(np.flatnonzero(truth == c), seeds_per_class, replace=False)
            y[pick] = c
        unl = y < 0
        hdl = hdl_label(X, y, k=k, graph=graph).labels
        dv = knn_dv_label(X, y, k=k).labels
        out.append(((hdl[unl] == truth[unl]).mean(), (dv[unl] == truth[unl]).mean()))
    return np.array(out).mean(axis=0)


@pytest.mark.parametrize("seeds_per_class", [1, 2, 5, 10])
def test_hdl_is_at_least_as_accurate_as_knn_dv_on_digits(seeds_per_class):
    hdl_acc, dv_acc = _digits_accuracy(seeds_per_class)
    assert hdl_acc >= dv_acc
    assert hdl_acc > 0.7   # raw pixels of real digits: far above chance (0.1)


def test_knn_dv_searched_block_by_block_equals_one_search(monkeypatch):
    from hdl_core import hdl as hdl_module
    rng = np.random.default_rng(11)
    X = rng.normal(size=(200, 8))
    y = np.full(200, -1)
    y[rng.choice(200, 20, replace=False)] = rng.integers(0, 3, 20)
    whole = hdl_module.knn_dv_label(X, y, k=5)
    monkeypatch.setattr(hdl_module, "KNN_DV_BLOCK", 7)
    blocked = hdl_module.knn_dv_label(X, y, k=5)
    assert np.array_equal(whole.labels, blocked.labels)
    assert np.array_equal(whole.confidence, blocked.confidence)
    assert np.array_equal(whole.n_voters, blocked.n_voters)

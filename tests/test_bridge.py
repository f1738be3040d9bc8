"""The bridge search (hdl._Bridge over bridge.LabeledGroups) against a brute-force scan."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdl_core import bridge, hdl_label
from hdl_core.graph import get_metric
from hdl_core.hdl import _Bridge


def brute_force_bridge(metric, rows, labeled):
    """(unlabeled point, labeled point, nearness): the nearest pair by the float64 formula
    of `graph.nearest_exactly`, every unlabeled point against every labeled one (the
    previous implementation), ties by lowest indices."""
    from hdl_core.graph import nearest_exactly
    targets = np.flatnonzero(labeled)
    best = None
    for u in np.flatnonzero(~labeled):
        near, src = nearest_exactly(get_metric(metric), rows[[u]], rows[targets], targets)
        key = (float(near[0]), int(u), int(src[0]))
        if best is None or key < best:
            best = key
    return best[1], best[2], best[0]


@st.composite
def searches(draw):
    """Points in a few tight clusters with exact copies, a metric, a seed mask."""
    metric = draw(st.sampled_from(["cosine", "euclidean"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_base = draw(st.integers(2, 12))
    d = draw(st.integers(1, 6))
    base = rng.normal(size=(n_base, d)) * draw(st.sampled_from([1.0, 10.0]))
    n = draw(st.integers(3, 50))
    X = base[rng.integers(0, n_base, n)] + draw(st.sampled_from([0.0, 1e-9, 0.05, 1.0])) \
        * rng.normal(size=(n, d)) * rng.integers(0, 2, (n, 1))      # some rows exact copies
    if draw(st.booleans()):
        X = np.round(X)                                  # equal distances everywhere
    if metric == "cosine":
        X[np.linalg.norm(X, axis=1) == 0] = 1.0
    rows = get_metric(metric).prepare(X)
    seeds = np.zeros(n, bool)
    seeds[rng.choice(n, draw(st.integers(1, n - 1)), replace=False)] = True
    return metric, rows, seeds, rng


@pytest.mark.parametrize("leaf_size", [1, 3, 1024])
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(search=searches())
def test_bridge_search_finds_the_brute_force_pair_as_points_get_labeled(search, leaf_size,
                                                                         monkeypatch):
    # small groups and blocks: many groups, bounds that prune, several passes per bridge
    metric, rows, seeds, rng = search
    monkeypatch.setattr(bridge, "LEAF_PER_DIRECTION", leaf_size / (min(bridge.BASIS,
                                                                       rows.shape[1]) + 1))
    monkeypatch.setattr(_Bridge, "BLOCK", 4)
    monkeypatch.setattr(_Bridge, "PROBE", 2)
    search_ = _Bridge(rows, seeds, metric)
    labeled, order = seeds.copy(), []
    while not labeled.all():
        got = search_.next(labeled, np.array(order, np.int64))
        u, v, near = brute_force_bridge(metric, rows, labeled)
        assert got[:2] == (u, v) and got[2] == near
        # the bridged point, then a few more as the rounds would label them
        more = [u] + list(rng.choice(np.flatnonzero(~labeled), rng.integers(0, 3)))
        for p in dict.fromkeys(more):
            if not labeled[p]:
                labeled[p] = True
                order.append(int(p))


def test_bounds_never_exceed_the_distance_to_any_member():
    rng = np.random.default_rng(0)
    X = get_metric("cosine").prepare(rng.normal(size=(3000, 64)) + 3 * rng.normal(size=(1, 64)))
    groups = bridge.LabeledGroups(X, leaf_size=200)
    groups.add(np.arange(2000))
    bound = groups.lower_bounds(X[2000:], range(groups.n_groups))
    for g, members in enumerate(groups.members):
        diff = X[2000:, None, :].astype(np.float64) - X[members][None, :, :]
        assert (bound[:, g] <= (diff ** 2).sum(axis=2).min(axis=1)).all()
    assert groups.n_groups >= 10 and all(m.size <= 200 for m in groups.members)
    # inner nodes: every member under a node lies within its ball bound
    node_bound = groups.node_bounds(X[2000:], np.arange(groups.node_leaf.size))
    for node in range(groups.node_leaf.size):
        under, todo = [], [node]
        while todo:
            at = todo.pop()
            if groups.node_leaf[at] >= 0:
                under.append(groups.members[groups.node_leaf[at]])
            else:
                todo += groups.node_children[at].tolist()
        members = np.concatenate(under)
        diff = X[2000:, None, :].astype(np.float64) - X[members][None, :, :]
        assert (node_bound[:, node] <= (diff ** 2).sum(axis=2).min(axis=1)).all()


def test_distinct_rows_numbers_identical_rows_alike_by_first_occurrence():
    X = np.array([[1.0, 2], [3, 4], [1, 2], [0, 0], [3, 4], [-0.0, 0]], np.float32)
    vector, first = bridge.distinct_rows(X)
    assert vector.tolist() == [0, 1, 0, 2, 1, 3]          # -0.0 has other bytes than 0.0
    assert first.tolist() == [0, 1, 3, 5]


def test_many_identical_copies_bridge_once_per_closed_group_of_copies():
    # 3000 points, 60 distinct images of 50 copies each: every image's copies list only
    # each other, so each unseeded image needs exactly one bridge
    rng = np.random.default_rng(1)
    distinct = rng.normal(size=(60, 32))
    image = rng.permutation(np.repeat(np.arange(60), 50))
    X = distinct[image]
    indices = np.array([[j for j in np.flatnonzero(image == image[i]) if j != i][:5]
                        for i in range(3000)])
    from hdl_core import KnnGraph
    graph = KnnGraph(indices, np.zeros(indices.shape, np.float32))
    y = np.full(3000, -1)
    for c in range(10):                       # seeds in images 0..9 only
        y[np.flatnonzero(image == c)[0]] = c
    result = hdl_label(X, y, k=5, graph=graph)
    assert result.fallback.sum() == 50
    bridged_images = image[result.fallback]
    assert sorted(bridged_images) == list(range(10, 60))

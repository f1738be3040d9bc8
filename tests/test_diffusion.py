"""The spreads over a kNN graph give the same numbers whatever order their points run in."""
import numpy as np
import pytest
import scipy.sparse as sp

from hdl_core import _prefetch, build_knn_graph, diffusion, reach_label, suggest
from hdl_core.diffusion import LocalOrder, diffusion_operator
from hdl_core.hdl import _index_array
from hdl_core.reach import edge_codes, reach_shares, seed_reach


def shuffled_clusters(n=1200, classes=6, seed=3):
    """Clusters whose points are numbered at random: breadth-first order moves almost every
    point, so the spreads really run in another order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 8)) * 2.5
    truth = rng.integers(0, classes, n)
    X = centres[truth] + rng.normal(size=(n, 8))
    y = np.full(n, -1)
    for c in range(classes):
        y[rng.choice(np.flatnonzero(truth == c), 3, replace=False)] = c
    return X, y


def test_breadth_first_order_is_a_permutation_that_visits_neighbours_together():
    X, _ = shuffled_clusters()
    neighbours = _index_array(build_knn_graph(X, 8).indices, len(X))
    assert LocalOrder.of(neighbours) is None          # 1,200 points: not worth it
    local = LocalOrder(diffusion._breadth_first(neighbours, np.empty(len(X), np.int32)))
    np.testing.assert_array_equal(np.sort(local.order), np.arange(len(X)))
    np.testing.assert_array_equal(local.order[local.inv], np.arange(len(X)))
    # an edge's ends lie far closer in the new order than in the random numbering
    before = np.abs(neighbours - np.arange(len(X))[:, None]).mean()
    renamed = local.rename(neighbours)
    after = np.abs(renamed - local.inv[:, None]).mean()
    assert after < before / 4
    # the graph is the same graph: i lists j iff i' lists j', in the same position
    np.testing.assert_array_equal(local.rows(renamed), local.inv[neighbours][local.order])
    np.testing.assert_array_equal(local.order[local.rows(renamed)], neighbours[local.order])


def test_a_permuted_csr_keeps_each_rows_entries_in_stored_order():
    X, _ = shuffled_clusters(n=300)
    neighbours = _index_array(build_knn_graph(X, 6).indices, 300)
    S = diffusion_operator(neighbours)
    local = LocalOrder(diffusion._breadth_first(neighbours, np.empty(300, np.int64)))
    P = local.csr(S)
    for new_row in (0, 17, 299):
        old = local.order[new_row]
        start, stop = S.indptr[old], S.indptr[old + 1]
        got = slice(P.indptr[new_row], P.indptr[new_row + 1])
        np.testing.assert_array_equal(local.order[P.indices[got]], S.indices[start:stop])
        np.testing.assert_array_equal(P.data[got], S.data[start:stop])
    order = sp.csr_matrix((np.ones(300), (np.arange(300), local.order)), shape=(300, 300))
    assert abs(P - order @ S @ order.T).max() == 0


# Switches that change how the default's kernels run and never what they compute: the
# spreads in breadth-first order (`LocalOrder`), and the prefetch hints of the depth search,
# the spreads and the votes (below _prefetch.MIN_POINTS they ask for nothing ahead; forced
# on here, they ask for the points ahead up to the last one).
SWITCHES = {
    "breadth-first order": [(diffusion, "LOCALITY_MIN_POINTS", 1)],
    "prefetching": [(_prefetch, "MIN_POINTS", 0), (diffusion, "FAR_SHARE", 0.0)],
}


@pytest.mark.parametrize("switch", list(SWITCHES))
@pytest.mark.parametrize("weighted", [True, False])
def test_the_default_and_the_review_queue_are_the_same_bit_for_bit(switch, weighted, monkeypatch):
    X, y = shuffled_clusters()
    graph = build_knn_graph(X, 8)
    neighbours = _index_array(graph.indices, len(X))
    codes = edge_codes(graph) if weighted else None
    local_scale = 7 if weighted else None
    result = reach_label(X, y, k=8, graph=graph, local_scale=local_scale)

    def run():
        share, top = reach_shares(neighbours, y, codes=codes, block=4)
        return (seed_reach(neighbours, y, codes=codes), share, top,
                reach_label(X, y, k=8, graph=graph, local_scale=local_scale),
                suggest.review_queue_with_reasons(X, y, result, graph=graph))

    before = run()
    for module, name, value in SWITCHES[switch]:
        monkeypatch.setattr(module, name, value)
    assert LocalOrder.of(neighbours) is not None if switch == "breadth-first order" \
        else diffusion.worth_prefetching(None, neighbours, 6)
    after = run()
    for a, b in zip(before[:3], after[:3]):
        np.testing.assert_array_equal(b, a)
    assert after[3].spread == before[3].spread
    for field in ("labels", "step", "round", "confidence", "n_voters"):
        np.testing.assert_array_equal(getattr(after[3], field), getattr(before[3], field))
    for field in ("order", "doubt", "alternative_share"):
        np.testing.assert_array_equal(getattr(after[4], field), getattr(before[4], field))


def test_spreads_prefetch_only_where_edges_join_rows_far_apart(monkeypatch):
    monkeypatch.setattr(_prefetch, "MIN_POINTS", 0)
    monkeypatch.setattr(diffusion, "NEAR_BYTES", 4 * 10 * 100)     # 100 rows of 10 classes
    n, k = 5000, 6
    rng = np.random.default_rng(0)
    scattered = rng.integers(0, n, (n, k))
    banded = (np.arange(n)[:, None] + rng.integers(-50, 51, (n, k))) % n   # within 50 rows
    assert diffusion.rows_far_apart(None, scattered, 10) > 0.9
    assert diffusion.rows_far_apart(None, banded, 10) < 0.05        # only the wrap-around
    assert diffusion.worth_prefetching(None, scattered, 10)
    assert not diffusion.worth_prefetching(None, banded, 10)
    for lists, far in ((scattered, True), (banded, False)):        # the review queue's CSR
        S = diffusion_operator(lists.astype(np.int32))
        assert diffusion.worth_prefetching(S.indptr, S.indices, 10) is far
    monkeypatch.setattr(_prefetch, "MIN_POINTS", n + 1)
    assert not diffusion.worth_prefetching(None, scattered, 10)


def test_big_graphs_keep_their_own_order(monkeypatch):
    # the new order copies the lists: past LOCALITY_MAX_EDGES edges there is no room for it
    monkeypatch.setattr(diffusion, "LOCALITY_MIN_POINTS", 1)
    monkeypatch.setattr(diffusion, "LOCALITY_MAX_EDGES", 999)
    assert LocalOrder.of(np.zeros((100, 10), np.int32)) is None
    assert LocalOrder.of(np.zeros((99, 10), np.int32)) is not None

import numpy as np
import pytest

from hdl_core import KnnGraph, build_knn_graph, to_umap_knn
from hdl_core.graph import exact_knn, normalize_rows


def brute_force(X, k):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = Xn @ Xn.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k], 1 - np.sort(-(-sim), axis=1)


def test_exact_graph_equals_brute_force_sorted_nearest_first_without_self():
    X = np.random.default_rng(0).normal(size=(500, 16))
    g = build_knn_graph(X, 7, method="exact")
    expected, _ = brute_force(X.astype(np.float32), 7)
    np.testing.assert_array_equal(g.indices, expected)
    assert g.indices.shape == (500, 7) and g.distances.dtype == np.float32
    assert (np.diff(g.distances, axis=1) >= 0).all()
    assert not (g.indices == np.arange(500)[:, None]).any()
    Xn = normalize_rows(X)
    np.testing.assert_allclose(g.distances, 1 - np.einsum("id,ikd->ik", Xn, Xn[g.indices]), atol=1e-5)


def test_exact_search_is_blocked_and_gives_the_same_result_in_small_blocks(monkeypatch):
    X = np.random.default_rng(1).normal(size=(300, 8))
    whole = build_knn_graph(X, 5, method="exact")
    monkeypatch.setattr("hdl_core.graph.BLOCK_BYTES", 4 * 300 * 7)   # 7 rows per block
    blocked = build_knn_graph(X, 5, method="exact")
    np.testing.assert_array_equal(whole.indices, blocked.indices)


def test_duplicates_are_neighbours_but_a_point_never_lists_itself():
    X = np.repeat(np.random.default_rng(2).normal(size=(20, 4)), 2, axis=0)
    g = build_knn_graph(X, 1, method="exact")
    assert (g.indices[:, 0] == np.arange(40) ^ 1).all()
    assert np.allclose(g.distances[:, 0], 0, atol=1e-6)


@pytest.mark.slow
def test_approximate_graph_recall_against_exact():
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(20, 32))
    X = centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 32))
    exact = build_knn_graph(X, 10, method="exact")
    approx = build_knn_graph(X, 10, method="approx", random_state=0)
    assert not (approx.indices == np.arange(3000)[:, None]).any()
    assert (np.diff(approx.distances, axis=1) >= -1e-6).all()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.indices, exact.indices)])
    assert recall >= 0.95


def test_umap_layout_puts_self_first_with_k_plus_one_columns():
    g = build_knn_graph(np.random.default_rng(4).normal(size=(50, 3)), 4)
    idx, dist = to_umap_knn(g)
    assert idx.shape == (50, 5) and (idx[:, 0] == np.arange(50)).all() and (dist[:, 0] == 0).all()
    np.testing.assert_array_equal(idx[:, 1:], g.indices)


def test_first_k_columns_and_shape_checks():
    g = build_knn_graph(np.random.default_rng(5).normal(size=(30, 3)), 6)
    assert g.first(2).indices.shape == (30, 2)
    with pytest.raises(ValueError, match="k=7"):
        g.first(7)
    with pytest.raises(ValueError, match="same shape"):
        KnnGraph(np.zeros((3, 2), int), np.zeros((3, 1)))


def test_k_must_be_below_n_and_method_known():
    X = np.eye(4) + 0.1
    with pytest.raises(ValueError, match="k=4 must be smaller than the number of points n=4"):
        build_knn_graph(X, 4)
    with pytest.raises(ValueError, match="method"):
        build_knn_graph(X, 2, method="fast")


def test_exact_knn_between_two_sets():
    rng = np.random.default_rng(6)
    Q, R = normalize_rows(rng.normal(size=(20, 5))), normalize_rows(rng.normal(size=(40, 5)))
    idx, dist = exact_knn(Q, R, 3)
    np.testing.assert_array_equal(idx, np.argsort(-(Q @ R.T), axis=1)[:, :3])

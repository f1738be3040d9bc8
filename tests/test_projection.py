import warnings

import numpy as np
from sklearn.datasets import load_digits

from hdl_core import build_knn_graph
from hdl_core.views.projection import pca_map, umap_map


def test_umap_uses_the_given_graph_without_searching_neighbours_again(monkeypatch):
    X = load_digits().data[:600]
    graph = build_knn_graph(X, 20)
    import pynndescent
    import umap.umap_ as umap_module

    def no_search(*args, **kwargs):
        raise AssertionError("UMAP searched for neighbours although a graph was given")

    monkeypatch.setattr(umap_module, "nearest_neighbors", no_search)
    monkeypatch.setattr(pynndescent, "NNDescent", no_search)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)   # a "precomputed_knn ignored" warning fails
        warnings.filterwarnings("ignore", message=".*[Tt]ensorflow.*")
        Y = umap_map(X, graph)
    assert Y.shape == (600, 2) and np.isfinite(Y).all()


def test_umap_keeps_digit_classes_apart():
    digits = load_digits()
    X, t = digits.data[:800], digits.target[:800]
    Y = umap_map(X, build_knn_graph(X, 15))
    centers = np.array([Y[t == c].mean(axis=0) for c in range(10)])
    within = np.mean([np.linalg.norm(Y[t == c] - centers[c], axis=1).mean() for c in range(10)])
    between = np.mean([np.linalg.norm(a - b) for i, a in enumerate(centers) for b in centers[i + 1:]])
    assert between > 2 * within


def test_pca_map_and_tiny_inputs():
    X = np.random.default_rng(0).normal(size=(10, 5))
    assert pca_map(X).shape == (10, 2)
    assert umap_map(X, build_knn_graph(X, 3)).shape == (10, 2)


# --------------------------------------------------------------------------- a million points

from hdl_core.views.projection import (map_sample, pca_map_of_sample, place_from_neighbours,
                                       sampled_umap_map)


def _random_graph(n, k, seed=0):
    rng = np.random.default_rng(seed)
    neighbours = (np.arange(n)[:, None] + rng.integers(1, 50, (n, k))) % n
    return neighbours, np.sort(rng.random((n, k)), axis=1).astype(np.float32)


def test_placement_reads_each_edge_a_bounded_number_of_times_whatever_the_graph():
    """O(n·k): at most 4 reads per neighbour-list entry, on random graphs and on a chain,
    the worst case for placing in waves (n waves of one point)."""
    for n, k in ((5_000, 10), (20_000, 5)):
        neighbours, distances = _random_graph(n, k)
        placed = np.arange(0, n, 37)
        counts = {}
        out = place_from_neighbours(neighbours, distances, placed, np.zeros((placed.size, 2)),
                                    counts=counts)
        assert np.isfinite(out).all() and counts["edges_read"] <= 4 * n * k
    n = 50_000
    chain = np.maximum(np.arange(n) - 1, 0)[:, None]          # i lists i-1
    chain[0] = 1
    counts = {}
    out = place_from_neighbours(chain, np.ones((n, 1)), np.array([0]), np.zeros((1, 2)),
                                counts=counts)
    assert np.isfinite(out).all() and counts["edges_read"] <= 4 * n


def test_placement_is_deterministic_keeps_laid_out_points_and_lands_between_neighbours():
    neighbours, distances = _random_graph(3_000, 8, seed=2)
    placed = np.arange(0, 3_000, 10)
    rng = np.random.default_rng(0)
    laid_out = rng.normal(size=(placed.size, 2))
    first = place_from_neighbours(neighbours, distances, placed, laid_out)
    again = place_from_neighbours(neighbours, distances, placed, laid_out)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first[placed], laid_out, rtol=1e-6)
    # a point whose neighbours are all laid out lands at their mean (equal distances), moved
    # by a jitter of a tenth of the laid-out points' typical spacing (here about 0.001)
    star = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [1, 2, 3]])
    crowd = 5 + (np.arange(200)[:, None] + [1, 2, 3]) % 200
    laid_out = np.vstack([[[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]],
                          np.column_stack([50 + np.arange(200) * 1e-3, np.zeros(200)])])
    out = place_from_neighbours(np.vstack([star, crowd]), np.ones((205, 3)),
                                np.r_[1, 2, 3, 5:205], laid_out)
    np.testing.assert_allclose(out[[0, 4]], [[1.0, 1.0], [1.0, 1.0]], atol=0.01)


def test_the_sample_reaches_every_connected_component():
    # two separate rings of 500: a draw of 10 from 1,000 may miss one; the sample never does
    ring = lambda offset: (np.arange(500)[:, None] + [1, 2]) % 500 + offset
    neighbours = np.vstack([ring(0), ring(500)])
    for seed in range(5):
        sample = map_sample(neighbours, 1, random_state=seed)
        assert (sample < 500).any() and (sample >= 500).any()
        out = place_from_neighbours(neighbours, np.ones(neighbours.shape), sample,
                                    np.zeros((sample.size, 2)))
        assert np.isfinite(out).all()
    assert map_sample(neighbours, 5_000).tolist() == list(range(1_000))


def test_sampled_umap_lays_out_a_sample_and_places_the_rest_keeping_classes_apart():
    digits = load_digits()
    X, t = digits.data, digits.target
    graph = build_knn_graph(X, 15)
    stages = []
    Y, sample = sampled_umap_map(X, graph, sample_size=600, progress=stages.append)
    assert Y.shape == (len(X), 2) and np.isfinite(Y).all() and 600 <= sample.size < len(X)
    assert stages == ["neighbours of the sample", "UMAP", "placing"]
    centers = np.array([Y[t == c].mean(axis=0) for c in range(10)])
    within = np.mean([np.linalg.norm(Y[t == c] - centers[c], axis=1).mean() for c in range(10)])
    between = np.mean([np.linalg.norm(a - b) for i, a in enumerate(centers) for b in centers[i + 1:]])
    assert between > 2 * within


def test_pca_of_a_sample_is_the_pca_map_when_the_sample_is_everything():
    X = np.random.default_rng(0).normal(size=(300, 6))
    np.testing.assert_allclose(pca_map_of_sample(X, np.arange(300), chunk=64), pca_map(X),
                               atol=1e-4)

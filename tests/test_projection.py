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

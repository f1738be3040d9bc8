"""2-D maps of the embeddings: UMAP over the shared kNN graph, and PCA while UMAP computes."""
from __future__ import annotations

import warnings

import numpy as np

from ..graph import KnnGraph, normalize_rows, to_umap_knn
from ..pca import principal_components

UMAP_NEIGHBOURS = 15


def pca_map(X) -> np.ndarray:
    """First two principal components of the unit-normalised rows, (n, 2) float32."""
    Xn = normalize_rows(X)
    out = principal_components(Xn, 2)
    if out.shape[1] < 2:
        out = np.hstack([out, np.zeros((out.shape[0], 2 - out.shape[1]), out.dtype)])
    return out.astype(np.float32)


def umap_map(X, graph: KnnGraph, *, n_neighbors: int = UMAP_NEIGHBOURS, min_dist: float = 0.1,
             random_state: int | None = 0) -> np.ndarray:
    """UMAP of X fed the precomputed kNN graph, so neighbours are never searched twice.

    umap-learn wants self as the first neighbour and exactly `n_neighbors` columns (with
    fewer it silently searches again), so the graph's first ``n_neighbors - 1`` neighbours
    are used; a graph with fewer neighbours lowers `n_neighbors` to match.
    Maps of fewer than 16 points are PCA (UMAP's spectral start needs more).
    """
    Xn = normalize_rows(X)
    n = Xn.shape[0]
    if n < 16:
        return pca_map(Xn)
    import umap

    n_neighbors = max(2, min(n_neighbors, graph.k + 1, n - 1))
    indices, distances = to_umap_knn(graph)
    knn = (np.ascontiguousarray(indices[:, :n_neighbors]),
           np.ascontiguousarray(distances[:, :n_neighbors]))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                        precomputed_knn=knn, random_state=random_state,
                        n_jobs=1 if random_state is not None else -1)
    with warnings.catch_warnings():
        # no search index is passed: transform() of new points is not needed here
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        return reducer.fit_transform(Xn).astype(np.float32)

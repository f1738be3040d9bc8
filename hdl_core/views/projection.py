"""2-D maps of the embeddings: UMAP over the shared kNN graph, and PCA while UMAP computes.

Up to `MAP_SAMPLE` points UMAP lays out every point. Beyond, it lays out a sample and every
other point is placed from its graph neighbours (`sampled_umap_map`): O(n·k) over the graph
HDL ran on, where UMAP on a million points would take hours here.
"""
from __future__ import annotations

import warnings

import numpy as np
from numba import njit

from ..graph import KnnGraph, to_umap_knn

from ..rows import normalize_rows
from ..hdl import _reverse_adjacency
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


# --------------------------------------------------------------------------- a million points

# UMAP lays out at most this many points; every other point is placed from its graph
# neighbours (`place_from_neighbours`). bench/map_bench.py measured UMAP at 20k, 50k and
# 100k points to choose it (the README's Performance section has the numbers).
MAP_SAMPLE = 50_000


def map_sample(neighbours: np.ndarray, size: int, *, random_state: int = 0) -> np.ndarray:
    """The rows UMAP lays out when there are more than `size`: a fixed-seed random draw of
    `size` rows, plus the first row of every connected component of the (symmetrised) kNN
    graph that the draw missed, so every point has a path to a laid-out one.

    Parameters
    ----------
    neighbours : ndarray (n, k) of int
        The kNN graph's neighbour lists (``KnnGraph.indices``).
    size : int
        Rows to draw (all rows when n <= size).

    Returns
    -------
    ndarray of int64, ascending
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    neighbours = np.asarray(neighbours)
    n, k = neighbours.shape
    if n <= size:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    drawn = np.zeros(n, bool)
    drawn[rng.choice(n, size=size, replace=False)] = True
    adjacency = csr_matrix((np.ones(n * k, np.int8), neighbours.ravel(),
                            np.arange(0, n * k + 1, k)), shape=(n, n))
    _, component = connected_components(adjacency, directed=True, connection="weak")
    covered = np.zeros(component.max() + 1, bool)
    covered[component[drawn]] = True
    _, first = np.unique(component, return_index=True)
    drawn[first[~covered]] = True
    return np.flatnonzero(drawn).astype(np.int64)


def place_from_neighbours(neighbours: np.ndarray, distances: np.ndarray, placed: np.ndarray,
                          placed_coords: np.ndarray, *, random_state: int = 0,
                          counts: dict | None = None) -> np.ndarray:
    """Map positions for every point from those of its graph neighbours: O(n·k), deterministic.

    Points are placed in waves out from the laid-out ones (`placed`), breadth first over
    the symmetrised kNN graph: a point goes to the mean of its already placed neighbours,
    weighted by 1 / (distance + d₀) (d₀ the graph's median distance), and is moved by a
    small fixed-seed jitter (a tenth of the typical spacing of the laid-out points) so
    that points placed from the same neighbours do not sit on one spot. A point reached
    only through a neighbour that lists it (not one it lists) is placed from those. Each
    point is placed once and each edge read a bounded number of times.

    Parameters
    ----------
    neighbours : ndarray (n, k) of int
        ``KnnGraph.indices``.
    distances : ndarray (n, k) of float
        ``KnnGraph.distances``.
    placed : ndarray (m,) of int
        Rows whose positions are given.
    placed_coords : ndarray (m, 2)
        Their positions.
    random_state : int, default 0
    counts : dict, optional
        Receives ``"edges_read"``: how many neighbour-list entries were read (at most
        4·n·k: the cost, counted).

    Returns
    -------
    ndarray (n, 2) of float32
        Points no path reaches from a placed one keep NaN (`map_sample` leaves none).

    Examples
    --------
    >>> chain = np.array([[1], [0], [1], [2]])            # 3 -> 2 -> 1 -> 0
    >>> out = place_from_neighbours(chain, np.ones((4, 1)), np.array([0]),
    ...                             np.array([[0.0, 0.0]]))
    >>> bool(np.isfinite(out).all())
    True
    """
    neighbours = np.ascontiguousarray(neighbours, dtype=np.int64)
    distances = np.ascontiguousarray(distances, dtype=np.float64)
    n, k = neighbours.shape
    placed = np.asarray(placed, np.int64)
    coords = np.full((n, 2), np.nan)
    coords[placed] = np.asarray(placed_coords, np.float64)
    if placed.size == n or n == 0:
        return coords.astype(np.float32)
    rev_ptr, rev_idx = _reverse_adjacency(neighbours, neighbours.shape[0])
    d0 = float(np.median(distances)) if distances.size else 1.0
    spacing = _typical_spacing(coords[placed], random_state)
    jitter = np.random.default_rng(random_state).standard_normal((n, 2)) * (0.1 * spacing)
    edges = _place_waves(neighbours, distances, rev_ptr, rev_idx, placed, coords, jitter,
                         max(d0, 1e-6))
    if counts is not None:
        counts["edges_read"] = int(edges)
    return coords.astype(np.float32)


def _typical_spacing(points: np.ndarray, random_state: int) -> float:
    """Median distance from a laid-out point to its nearest other one (on up to 2,000)."""
    from scipy.spatial import cKDTree
    if len(points) < 2:
        return 1.0
    rng = np.random.default_rng(random_state)
    probe = points[rng.choice(len(points), size=min(2000, len(points)), replace=False)]
    nearest, _ = cKDTree(points).query(probe, k=2)
    spacing = float(np.median(nearest[:, 1]))
    return spacing if spacing > 0 else 1e-3


@njit(cache=True)
def _place_waves(neighbours, distances, rev_ptr, rev_idx, placed, coords, jitter, d0):
    """Breadth-first placement; returns how many edges were read."""
    n, k = neighbours.shape
    done = np.zeros(n, np.bool_)
    queued = np.zeros(n, np.bool_)
    queue = np.empty(n, np.int64)
    head = 0
    tail = 0
    edges = 0
    for p in placed:
        done[p] = True
    # the first wave: every unplaced neighbour (either direction) of a placed point
    for p in placed:
        tail = _enqueue_around(p, neighbours, rev_ptr, rev_idx, done, queued, queue, tail)
        edges += k + rev_ptr[p + 1] - rev_ptr[p]
    while head < tail:
        p = queue[head]
        head += 1
        sx = 0.0
        sy = 0.0
        weight = 0.0
        for j in range(k):                   # its own neighbours that have a place
            q = neighbours[p, j]
            edges += 1
            if done[q]:
                w = 1.0 / (distances[p, j] + d0)
                sx += w * coords[q, 0]
                sy += w * coords[q, 1]
                weight += w
        if weight == 0.0:                    # reached only through points that list it
            for e in range(rev_ptr[p], rev_ptr[p + 1]):
                q = rev_idx[e]
                edges += 1
                if done[q]:
                    sx += coords[q, 0]
                    sy += coords[q, 1]
                    weight += 1.0
        coords[p, 0] = sx / weight + jitter[p, 0]
        coords[p, 1] = sy / weight + jitter[p, 1]
        done[p] = True
        tail = _enqueue_around(p, neighbours, rev_ptr, rev_idx, done, queued, queue, tail)
        edges += k + rev_ptr[p + 1] - rev_ptr[p]      # the next wave
    return edges


@njit(cache=True)
def _enqueue_around(p, neighbours, rev_ptr, rev_idx, done, queued, queue, tail):
    """Queue every neighbour of `p`, either direction, not placed or queued yet; returns
    the new end of the queue."""
    for j in range(neighbours.shape[1]):
        q = neighbours[p, j]
        if not done[q] and not queued[q]:
            queued[q] = True
            queue[tail] = q
            tail += 1
    for e in range(rev_ptr[p], rev_ptr[p + 1]):
        q = rev_idx[e]
        if not done[q] and not queued[q]:
            queued[q] = True
            queue[tail] = q
            tail += 1
    return tail


def pca_map_of_sample(X, sample: np.ndarray, *, chunk: int = 65536) -> np.ndarray:
    """PCA of the unit-normalised rows fitted on the rows `sample`, every row projected in
    chunks: the map shown while UMAP computes, without a normalised copy of all of X."""
    sample = np.asarray(sample, np.int64)
    fit = normalize_rows(np.asarray(X[sample]))
    mean = fit.mean(axis=0, dtype=np.float64)
    centred = fit - mean
    _, eigenvectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred)
    axes = eigenvectors[:, ::-1][:, :2]
    biggest = np.abs(axes).argmax(axis=0)
    axes = (axes * np.sign(axes[biggest, np.arange(axes.shape[1])])).astype(np.float32)
    n = X.shape[0]
    out = np.zeros((n, 2), np.float32)
    for start in range(0, n, chunk):
        rows = normalize_rows(np.asarray(X[start:start + chunk]))
        out[start:start + rows.shape[0], :axes.shape[1]] = (rows - mean.astype(np.float32)) @ axes
    return out


def sampled_umap_map(X, graph: KnnGraph, *, sample_size: int = MAP_SAMPLE,
                     random_state: int = 0, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """UMAP of up to `sample_size` points, every other point placed from its neighbours.

    Up to `sample_size` points this is `umap_map` of all of them. Beyond, UMAP lays out
    `map_sample`'s rows over their own kNN graph (`hdl_core.build_knn_graph` of those rows)
    and `place_from_neighbours` places the rest over `graph`, the graph HDL ran on.

    Parameters
    ----------
    X : array (n, d)
    graph : KnnGraph
        The kNN graph of all n points.
    sample_size : int
    random_state : int
    progress : callable(str), optional
        Told each stage as it starts ("neighbours of the sample", "UMAP", "placing").

    Returns
    -------
    coords : ndarray (n, 2) of float32
    sample : ndarray of int64
        The rows UMAP laid out.
    """
    from ..graph import build_knn_graph
    say = progress or (lambda stage: None)
    n = X.shape[0]
    if n <= sample_size:
        say("UMAP")
        return umap_map(X, graph, random_state=random_state), np.arange(n, dtype=np.int64)
    sample = map_sample(graph.indices, sample_size, random_state=random_state)
    say("neighbours of the sample")
    rows = normalize_rows(np.asarray(X[sample]))
    sample_graph = build_knn_graph(rows, min(UMAP_NEIGHBOURS - 1, sample.size - 1),
                                   random_state=random_state)
    say("UMAP")
    laid_out = umap_map(rows, sample_graph, random_state=random_state)
    say("placing")
    coords = place_from_neighbours(graph.indices, graph.distances, sample, laid_out,
                                   random_state=random_state)
    return coords, sample

"""The kNN graph every other step shares: exact blocked search, approximate search, `KnnGraph`.

Points are compared by cosine: rows are L2-normalised first and a distance is ``1 - cos``.
The graph is built once over labeled and unlabeled points together (the paper's D ∪ D')
and reused by HDL, by UMAP (`to_umap_knn`) and by the app.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

# Below this many points "auto" uses the exact search. Measured in bench/knn_bench.py:
# at 20k x 512 the exact search takes a few seconds on 2 cores, and pynndescent's
# fixed costs (index build, numba compilation) only pay off beyond this size.
EXACT_MAX_POINTS = 30_000
# Peak bytes of one block of the similarity matrix in the exact search.
BLOCK_BYTES = 64 * 2**20


@dataclass
class KnnGraph:
    """k nearest neighbours of every point, nearest first, self excluded.

    Parameters
    ----------
    indices : ndarray of shape (n, k), int
        ``indices[i, j]`` is the j-th nearest neighbour of point i.
    distances : ndarray of shape (n, k), float32
        Cosine distances ``1 - cos`` matching `indices`, non-decreasing along each row.
    """

    indices: np.ndarray
    distances: np.ndarray

    def __post_init__(self):
        self.indices = np.asarray(self.indices)
        self.distances = np.asarray(self.distances, dtype=np.float32)
        if self.indices.ndim != 2 or self.indices.shape != self.distances.shape:
            raise ValueError(
                f"KnnGraph: indices and distances must be 2-D arrays of the same shape, "
                f"got {self.indices.shape} and {self.distances.shape}")
        if not np.issubdtype(self.indices.dtype, np.integer):
            raise ValueError(f"KnnGraph: indices must be integers, got {self.indices.dtype}")

    @property
    def n(self) -> int:
        return self.indices.shape[0]

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def first(self, k: int) -> "KnnGraph":
        """The graph restricted to each point's `k` nearest neighbours."""
        if not 1 <= k <= self.k:
            raise ValueError(f"k={k} must be between 1 and the graph's k={self.k}; "
                             f"build the graph with at least k neighbours")
        if k == self.k:
            return self
        return KnnGraph(np.ascontiguousarray(self.indices[:, :k]),
                        np.ascontiguousarray(self.distances[:, :k]))


def normalize_rows(X, *, name: str = "X") -> np.ndarray:
    """Validate an embedding matrix and return its rows L2-normalised (float32).

    Raises a ValueError naming the rows that are NaN/inf or have zero norm.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_points, n_features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape})")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} has NaN or inf values in {_rows(bad)}; "
                         f"remove or re-embed those points")
    norms = np.linalg.norm(X, axis=1)
    bad = np.flatnonzero(norms == 0)
    if bad.size:
        raise ValueError(f"{name} has zero-norm {_rows(bad)}; an all-zero embedding "
                         f"has no direction to compare by cosine: remove those points")
    return X / norms[:, None]


def _rows(bad: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in bad[:10])
    more = f" and {bad.size - 10} more" if bad.size > 10 else ""
    return f"row{'s' if bad.size > 1 else ''} {shown}{more}"


def check_k(k, n: int, *, name: str = "k") -> int:
    """Validate a neighbour count against the number of points."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"{name}={k} must be at least 1")
    if k >= n:
        raise ValueError(f"{name}={k} must be smaller than the number of points n={n} "
                         f"(a point has at most n-1={n - 1} neighbours)")
    return k


def build_knn_graph(X, k: int, *, method: str = "auto", random_state=None) -> KnnGraph:
    """k nearest neighbours of every row of `X` by cosine distance, self excluded.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings; rows are L2-normalised here.
    k : int
        Neighbours per point, 1 <= k < n.
    method : {"auto", "exact", "approx"}, default="auto"
        "exact" is a blocked matrix product with a partial sort (torch on a GPU when one
        is present); "approx" is pynndescent. "auto" is exact up to `EXACT_MAX_POINTS`.
    random_state : int or None
        Seed for the approximate search.

    Returns
    -------
    KnnGraph
    """
    Xn = normalize_rows(X)
    n = Xn.shape[0]
    k = check_k(k, n)
    if method not in ("auto", "exact", "approx"):
        raise ValueError(f"method must be 'auto', 'exact' or 'approx', got {method!r}")
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_POINTS else "approx"
    if method == "approx" and n <= 4 * (k + 1):
        method = "exact"   # pynndescent needs a few times k points to search at all
    if method == "exact":
        indices, distances = exact_knn(Xn, Xn, k, exclude_self=True)
    else:
        indices, distances = _approx_knn(Xn, k, random_state)
    return KnnGraph(indices, distances)


def exact_knn(queries: np.ndarray, reference: np.ndarray, k: int, *,
              exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN of L2-normalised `queries` among L2-normalised `reference` rows.

    With `exclude_self`, queries and reference are the same set and point i never lists
    itself (duplicates of i still count as neighbours). Memory is bounded by one block of
    ``block_rows x len(reference)`` similarities. Rows are sorted nearest first; equal
    distances keep ascending index.
    """
    torch_device = _gpu_device()
    if torch_device is not None:
        return _exact_knn_torch(queries, reference, k, exclude_self, torch_device)
    n_ref = reference.shape[0]
    block = max(1, min(queries.shape[0], BLOCK_BYTES // (4 * max(n_ref, 1))))
    indices = np.empty((queries.shape[0], k), dtype=np.int64)
    distances = np.empty((queries.shape[0], k), dtype=np.float32)
    ref_t = np.ascontiguousarray(reference.T)
    for start in range(0, queries.shape[0], block):
        stop = min(start + block, queries.shape[0])
        sim = queries[start:stop] @ ref_t
        if exclude_self:
            rows = np.arange(stop - start)
            sim[rows, rows + start] = -np.inf
        if k < n_ref:
            part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(n_ref), (stop - start, n_ref))
        part_sim = np.take_along_axis(sim, part, axis=1)
        # nearest first; ties by ascending index (lexsort's last key is primary)
        order = np.lexsort((part, -part_sim), axis=1)
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        distances[start:stop] = 1.0 - np.take_along_axis(part_sim, order, axis=1)
    np.maximum(distances, 0.0, out=distances)
    return indices, distances


def _gpu_device():
    """A CUDA device when torch is installed and sees one; never imports torch otherwise."""
    if "torch" not in sys.modules:
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            return None
    try:
        import torch
    except Exception:  # a broken torch install must not break the CPU path
        return None
    return torch.device("cuda") if torch.cuda.is_available() else None


def _exact_knn_torch(queries, reference, k, exclude_self, device):
    import torch

    ref = torch.from_numpy(np.ascontiguousarray(reference)).to(device)
    n_q, n_ref = queries.shape[0], reference.shape[0]
    block = max(1, min(n_q, (4 * BLOCK_BYTES) // (4 * max(n_ref, 1))))
    indices = np.empty((n_q, k), dtype=np.int64)
    distances = np.empty((n_q, k), dtype=np.float32)
    for start in range(0, n_q, block):
        stop = min(start + block, n_q)
        q = torch.from_numpy(np.ascontiguousarray(queries[start:stop])).to(device)
        sim = q @ ref.T
        if exclude_self:
            rows = torch.arange(stop - start, device=device)
            sim[rows, rows + start] = -float("inf")
        top_sim, top_idx = torch.topk(sim, k, dim=1, largest=True, sorted=True)
        indices[start:stop] = top_idx.cpu().numpy()
        distances[start:stop] = (1.0 - top_sim).cpu().numpy()
    np.maximum(distances, 0.0, out=distances)
    return indices, distances


def _approx_knn(Xn: np.ndarray, k: int, random_state) -> tuple[np.ndarray, np.ndarray]:
    from pynndescent import NNDescent

    # pynndescent lists self first (usually); ask for one more and drop it.
    index = NNDescent(Xn, n_neighbors=k + 1, metric="cosine", random_state=random_state,
                      low_memory=True, compressed=True)
    idx, dist = index.neighbor_graph
    return _drop_self(idx, dist, k)


def _drop_self(idx: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (or its last column when self is absent)."""
    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True          # self missing: drop the farthest instead
    keep = ~is_self
    # a row may list self twice only with broken input; keep exactly k columns
    first_k = np.cumsum(keep, axis=1) <= k
    keep &= first_k
    out_idx = idx[keep].reshape(n, k).astype(np.int64)
    out_dist = dist[keep].reshape(n, k).astype(np.float32)
    np.maximum(out_dist, 0.0, out=out_dist)
    return out_idx, out_dist


def to_umap_knn(graph: KnnGraph) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) in umap-learn's `precomputed_knn` layout: self first, k+1 columns."""
    n = graph.n
    self_col = np.arange(n, dtype=np.int64)[:, None]
    indices = np.hstack([self_col, graph.indices.astype(np.int64)])
    distances = np.hstack([np.zeros((n, 1), np.float32), graph.distances])
    return indices, distances

"""The kNN graph every other step shares: named metrics, exact blocked search, approximate
search, `KnnGraph`.

Points are compared by one of the named metrics in `METRICS` (after pynndescent's
``named_distances``): "cosine" (the app's: rows L2-normalised, a distance is ``1 - cos``)
or "euclidean" (rows as given, the straight-line distance; the Teach page's 2-D toy). Every
function that compares points (the graph here, μ_k in `auto_k`, kNN-DV and HDL's bridge in
`hdl`) takes ``metric=`` and finds what it needs in that one table.

The graph is built once over labeled and unlabeled points together (the paper's D ∪ D')
and reused by HDL, by UMAP (`to_umap_knn`) and by the app.
"""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from .rows import UnitRows, euclidean_points, normalize_rows

# Below this many points "auto" uses the exact search. Measured in bench/knn_bench.py:
# at 20k x 512 the exact search takes a few seconds on 2 cores, and pynndescent's
# fixed costs (index build, numba compilation) only pay off beyond this size.
EXACT_MAX_POINTS = 30_000
# Up to this many points "auto" uses faiss IVF (when installed) beyond the exact search,
# and pynndescent above it. Measured in fresh processes at 50k x 512 (bench/cold_bench.py):
# IVF 13-14 s, pynndescent 40-51 s (most of it numba compiling pynndescent, again in every
# process), exact 51-90 s; IVF grows as n^1.5 (155 s at 200k, bench/knn_bench.py
# --backends), pynndescent about linearly after its compile: they cross near 130k.
IVF_MAX_POINTS = 120_000
# Peak bytes of one block of the similarity matrix in the exact search.
BLOCK_BYTES = 64 * 2**20
# Up to this many dimensions Euclidean distances are summed from coordinate differences
# (exact zeros for duplicates, d(a, b) == d(b, a) bit for bit, so exact ties stay ties);
# above it from |a|² + |b|² - 2a·b in float64, one matrix product (ties then hold only up
# to rounding, about d·2^-53 of the squared norms).
EUCLIDEAN_DIFFERENCES_MAX_DIM = 16


@dataclass
class KnnGraph:
    """k nearest neighbours of every point, nearest first, self excluded.

    Parameters
    ----------
    indices : ndarray of shape (n, k), int
        ``indices[i, j]`` is the j-th nearest neighbour of point i.
    distances : ndarray of shape (n, k), float32 or float16
        Distances matching `indices` in `metric` (cosine: ``1 - cos``; euclidean: the
        straight-line distance), non-decreasing along each row. float16 (a graph folder's
        ``distances.npy``, memory-mapped) is kept as it is, not widened: 40 bytes a point
        at k = 10; every reader widens what it reads, so the labels are those of the
        float32 copy. Other types become float32.
    metric : {"cosine", "euclidean"}, default="cosine"
        How the neighbours were chosen; `hdl_label` refuses a graph of another metric.
    """

    indices: np.ndarray
    distances: np.ndarray
    metric: str = "cosine"

    def __post_init__(self):
        get_metric(self.metric)
        self.indices = np.asarray(self.indices)
        self.distances = np.asarray(self.distances)
        if self.distances.dtype not in (np.float32, np.float16):
            self.distances = self.distances.astype(np.float32)
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
                        np.ascontiguousarray(self.distances[:, :k]), self.metric)


def rows_to_read(X, metric: str, *, name: str = "X"):
    """X as `metric` prepares it, for code that reads rows by index (a bridge, kNN-DV's
    blocks): cosine gives `UnitRows` (no normalised copy), euclidean its float64 points."""
    return UnitRows(X, name=name) if get_metric(metric).name == "cosine" \
        else get_metric(metric).prepare(X, name=name)



# ---------------------------------------------------------------------------------------
# named metrics

@dataclass(frozen=True)
class Metric:
    """One named way to compare points: everything a search needs to know about it.

    Every search here works on a *nearness* key, smaller = nearer, computed for a block of
    query rows against a reference given transposed (d, m), so that one search serves
    every metric.

    Attributes
    ----------
    name : str
        The name ``metric=`` takes, and pynndescent's name for it.
    prepare : callable (X, name) -> ndarray
        Validates an input matrix and returns the rows as compared.
    nearness : callable (Q, RT) -> ndarray (len(Q), RT.shape[1])
        The nearness key of every pair, fast (BLAS where it can).
    nearness_error : callable (Q, RT) -> ndarray (len(Q),)
        Per query row, a bound on how far `nearness` may be from the pair's float64 value
        `exact_pair` works from; the bridge re-checks every pair within it of the row's
        best.
    to_distance : callable (key) -> ndarray
        The distance a `KnnGraph` stores for a nearness key.
    exact_pair : int
        Which float64 formula `nearest_exactly` computes per pair: 0, ``-cos`` (the dot
        product of unit rows, negated); 1, the squared Euclidean distance, coordinate
        differences squared and summed in order (the graph's order too: a square root,
        rounded, could merge two squares one ulp apart into one distance).
    bytes_per_pair : int
        Working memory per query-reference pair in a search block.
    """

    name: str
    prepare: Callable[..., np.ndarray]
    nearness: Callable[[np.ndarray, np.ndarray], np.ndarray]
    nearness_error: Callable[[np.ndarray, np.ndarray], np.ndarray]
    to_distance: Callable[[np.ndarray], np.ndarray]
    exact_pair: int
    bytes_per_pair: int


def _negated_cosine(Q: np.ndarray, RT: np.ndarray) -> np.ndarray:
    key = Q @ RT                      # unit rows: cos, float32
    return np.negative(key, out=key)  # exact: ties and order are those of cos


def _cosine_error(Q: np.ndarray, RT: np.ndarray) -> np.ndarray:
    # |float32 dot - exact dot| <= d·2^-24·Σ|x_i·y_i| <= d·2^-24 for unit rows: a row's
    # true best is at most twice that from its float32 best (4× for margin).
    return np.full(Q.shape[0], 4.0 * Q.shape[1] * 2.0 ** -24)


def _squared_euclidean(Q: np.ndarray, RT: np.ndarray) -> np.ndarray:
    d = Q.shape[1]
    if d <= EUCLIDEAN_DIFFERENCES_MAX_DIM:
        # coordinate by coordinate, in order: the same float64 sum for (a, b) and (b, a)
        key = np.subtract.outer(Q[:, 0], RT[0])
        key *= key
        for t in range(1, d):
            diff = np.subtract.outer(Q[:, t], RT[t])
            diff *= diff
            key += diff
        return key
    key = Q @ RT
    key *= -2.0
    key += np.einsum("ij,ij->i", Q, Q)[:, None]
    key += np.einsum("ji,ji->i", RT, RT)[None, :]
    return np.maximum(key, 0.0, out=key)


def _euclidean_error(Q: np.ndarray, RT: np.ndarray) -> np.ndarray:
    # Either formula is within (d+2)·2^-53·(|q| + |r|)² of the exact squared distance, and
    # so is the float64 sum `nearest_exactly` re-computes (4× for margin).
    reach = np.linalg.norm(Q, axis=1) + np.sqrt(np.einsum("ji,ji->i", RT, RT).max())
    return 4.0 * (Q.shape[1] + 2) * 2.0 ** -53 * reach ** 2


def _root(key: np.ndarray) -> np.ndarray:
    return np.sqrt(key)


def _one_minus(key: np.ndarray) -> np.ndarray:
    return 1.0 + key                  # key = -cos: 1 - cos


METRICS = {
    "cosine": Metric("cosine", normalize_rows, _negated_cosine, _cosine_error, _one_minus,
                     exact_pair=0, bytes_per_pair=4),
    "euclidean": Metric("euclidean", euclidean_points, _squared_euclidean, _euclidean_error,
                        _root, exact_pair=1, bytes_per_pair=16),
}


def get_metric(metric) -> Metric:
    """The `Metric` named `metric`; a ValueError naming the choices for any other value."""
    try:
        return METRICS[metric]
    except (KeyError, TypeError):
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}, "
                         f"got {metric!r}") from None


def nearest_exactly(metric: Metric, Xr: np.ndarray, Xc: np.ndarray,
                    cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `Xr`, its nearest row of `Xc` by the float64 formula of `metric`.

    Scans with the fast `nearness`, then re-computes in float64 every column within
    `nearness_error` of the row's best, so the answer is that of an exact float64 search
    whatever the blocking. Returns (nearness, the nearest's value in `cols`): ``-cos`` for
    cosine, the squared distance for euclidean; ties go to the lowest value in `cols`.
    """
    RT = Xc.T     # a view: BLAS reads it transposed, and a copy would cost more than it saves
    best = np.empty(Xr.shape[0])
    src = np.empty(Xr.shape[0], np.int64)
    _recheck_near_best(metric.nearness(Xr, RT), Xr, Xc, cols, metric.nearness_error(Xr, RT),
                       metric.exact_pair, best, src)
    return best, src


@numba.njit(cache=True)
def _exact_key(q, r, exact_pair):
    """The float64 key of one pair, summed in coordinate order (so the same for every
    position of the pair): exact_pair 0, ``-Σ q·r``; 1, ``Σ (q - r)²``."""
    total = 0.0
    if exact_pair == 0:
        for t in range(q.shape[0]):
            total += np.float64(q[t]) * np.float64(r[t])
        return -total
    for t in range(q.shape[0]):
        diff = np.float64(q[t]) - np.float64(r[t])
        total += diff * diff
    return total


@numba.njit(cache=True)
def _recheck_near_best(scan, Xr, Xc, cols, tol, exact_pair, best_key, best_src):
    """Per row of `scan`: among the columns within `tol[i]` of the row's smallest key, the
    one with the smallest float64 key (ties: lowest index in `cols`)."""
    for i in range(scan.shape[0]):
        row = scan[i]
        low = np.inf
        for j in range(row.shape[0]):
            if row[j] < low:
                low = row[j]
        ceiling = np.float64(low) + tol[i]
        best, src = np.inf, np.iinfo(np.int64).max
        for j in range(row.shape[0]):
            if np.float64(row[j]) <= ceiling:
                exact = _exact_key(Xr[i], Xc[j], exact_pair)
                if exact < best or (exact == best and cols[j] < src):
                    best, src = exact, cols[j]
        best_key[i] = best
        best_src[i] = src


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


def build_knn_graph(X, k: int, *, method: str = "auto", random_state=None,
                    metric: str = "cosine", device: str = "auto") -> KnnGraph:
    """k nearest neighbours of every row of `X`, self excluded.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings; for cosine, rows are L2-normalised here.
    k : int
        Neighbours per point, 1 <= k < n.
    method : {"auto", "exact", "approx", "ivf"}, default="auto"
        "exact": every pair compared, in blocks (faiss ``IndexFlatIP`` for cosine when
        faiss is installed, else a matrix product and a parallel running top-k; float64
        on the CPU for euclidean). "approx": pynndescent. "ivf": faiss IVF-Flat (about
        4·sqrt(n) k-means lists, the nearest 16 or more searched per point; needs faiss).
        "auto" is exact up to `EXACT_MAX_POINTS`; then IVF up to `IVF_MAX_POINTS` when faiss is installed
        (nothing to compile: the quickest in a short-lived process, see
        `bench/cold_bench.py`), pynndescent beyond.
    random_state : int or None
        Seed for the approximate searches.
    metric : {"cosine", "euclidean"}, default="cosine"
        How points are compared (see `METRICS`). Euclidean rows are not normalised and the
        graph stores Euclidean distances.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Where the exact cosine search runs. "auto" uses a GPU only when torch is already
        imported in this process or faiss was built with GPUs; "cuda" asks for one (faiss-gpu,
        else torch) and fails when there is none.

    Returns
    -------
    KnnGraph
        Rows nearest first; the exact search lists equal distances by ascending index,
        whatever its backend.

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core import build_knn_graph
    >>> X = np.array([[0.0, 0], [1, 0], [3, 0], [4, 0]])
    >>> build_knn_graph(X, 1, metric="euclidean").indices.ravel().tolist()
    [1, 0, 3, 2]
    """
    named = get_metric(metric)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    _check_device(device)
    return graph_of_prepared_rows(named.prepare(X), k, method=method,
                                  random_state=random_state, metric=metric, device=device)


def graph_of_prepared_rows(rows: np.ndarray, k: int, *, method: str = "auto",
                           random_state=None, metric: str = "cosine",
                           device: str = "auto") -> KnnGraph:
    """`build_knn_graph` on rows the metric has already prepared, without copying them."""
    named = get_metric(metric)
    n = rows.shape[0]
    k = check_k(k, n)
    if method == "auto":
        method = ("exact" if n <= EXACT_MAX_POINTS else
                  "ivf" if n <= IVF_MAX_POINTS and _faiss() else "approx")
    if method in ("approx", "ivf") and n <= 4 * (k + 1):
        method = "exact"   # an index needs a few times k points to search at all
    if method == "exact":
        indices, distances = exact_knn(rows, rows, k, exclude_self=True, metric=metric,
                                       device=device)
    elif method == "ivf":
        indices, distances = _ivf_knn(rows, k, random_state, named)
    else:
        indices, distances = _approx_knn(rows, k, random_state, metric)
    return KnnGraph(indices, distances, metric)


METHODS = ("auto", "exact", "approx", "ivf")
# IVF: about IVF_LISTS_PER_SQRT · sqrt(n) lists; each point searches the nearest
# max(IVF_MIN_PROBES, IVF_PROBE_SHARE · lists) of them, so the work grows as n^1.5, not n².
IVF_LISTS_PER_SQRT = 4
IVF_MIN_PROBES = 16
IVF_PROBE_SHARE = 1 / 64


def _check_device(device) -> None:
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda")
                                           or re.fullmatch(r"cuda:\d+", device)):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def _faiss():
    """The faiss module when installed (the ``scale`` extra), else None."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def exact_knn(queries: np.ndarray, reference: np.ndarray, k: int, *,
              exclude_self: bool = False, metric: str = "cosine",
              device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of `queries` among `reference` rows, both already prepared for `metric`
    (cosine: L2-normalised float32, as `normalize_rows` gives; euclidean: float64).

    With `exclude_self`, queries and reference are the same set and point i never lists
    itself (duplicates of i still count as neighbours). Memory is bounded by one block of
    ``block_rows x len(reference)`` pairs. Rows are sorted nearest first. Where two
    distances come within the fast products' rounding of each other, their order is that
    of the float64 distances (`_settle_near_ties`), equal ones by ascending index, also
    across the k-th place (a tie there never drops a lower index): the same neighbours on
    every backend and every CPU, whatever the blocking. Returns (indices int64, distances
    float32), both (len(queries), k).
    """
    named = get_metric(metric)
    if named.name == "cosine":
        torch_device = _torch_device(device)
        if torch_device is not None:
            return _exact_knn_torch(queries, reference, k, exclude_self, torch_device)
        faiss = _faiss()
        if faiss is not None and reference.shape[0] > k:
            return _exact_knn_faiss(faiss, queries, reference, k, exclude_self, device)
    n_q, n_ref = queries.shape[0], reference.shape[0]
    block = max(1, min(n_q, BLOCK_BYTES // (named.bytes_per_pair * max(n_ref, 1))))
    indices = np.empty((n_q, k), dtype=np.int64)
    keys = np.empty((n_q, k), dtype=np.float64)
    width = min(k + 1, n_ref - (1 if exclude_self else 0))   # one more: is the k-th close?
    ref_t = reference.T     # a view: BLAS reads it transposed, no copy of the reference
    for start in range(0, n_q, block):
        stop = min(start + block, n_q)
        Q = queries[start:stop]
        key = named.nearness(Q, ref_t)
        # the k+1 smallest of each row by (key, column), in parallel over rows
        cand = np.empty((stop - start, width), np.int64)
        cand_key = np.empty((stop - start, width))
        _smallest_per_row(key, width, start if exclude_self else -1, cand, cand_key)
        indices[start:stop], keys[start:stop] = _settle_near_ties(
            cand, cand_key, k, named.nearness_error(Q, ref_t), lambda rows: key[rows],
            Q, reference, named.exact_pair, start if exclude_self else -1)
    distances = named.to_distance(keys).astype(np.float32)
    np.maximum(distances, 0.0, out=distances)
    return indices, distances


@numba.njit(parallel=True, cache=True)
def _smallest_per_row(key, k, self_offset, out_index, out_key):
    """Per row i of `key`, its k smallest entries by (value, column), ascending; column
    ``i + self_offset`` is skipped when ``self_offset >= 0``. A running top-k: one pass
    over the row, an insertion only when an entry beats the current k-th (columns come in
    ascending order, so an equal value never displaces a lower column)."""
    n_rows, n_cols = key.shape
    for i in numba.prange(n_rows):
        top_key = np.full(k, np.inf)
        top_index = np.full(k, -1, np.int64)
        skip = i + self_offset if self_offset >= 0 else -1
        filled = 0
        for j in range(n_cols):
            if j == skip:
                continue
            value = np.float64(key[i, j])
            if filled == k and value >= top_key[k - 1]:
                continue
            pos = filled if filled < k else k - 1
            while pos > 0 and top_key[pos - 1] > value:
                if pos < k:
                    top_key[pos] = top_key[pos - 1]
                    top_index[pos] = top_index[pos - 1]
                pos -= 1
            top_key[pos] = value
            top_index[pos] = j
            if filled < k:
                filled += 1
        for t in range(k):
            out_index[i, t] = top_index[t]
            out_key[i, t] = top_key[t]


def _exact_knn_faiss(faiss, queries, reference, k, exclude_self, device):
    """Cosine `exact_knn` by faiss (``IndexFlatIP``; on a GPU with faiss-gpu when asked
    for or present).

    faiss rounds the same product differently by position (two copies of a row can get
    similarities an ulp apart) and lists equal ones in no set order, so a row whose first
    k+1 similarities come closer to each other than that rounding allows is redone in
    float64 (`_settle_near_ties`), as the blocked search of this module does: every row
    lists what that search lists, ties by ascending index.
    """
    index = faiss.IndexFlatIP(reference.shape[1])
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if device.startswith("cuda") and gpus == 0:
        raise ValueError(f"device={device!r} but faiss sees no GPU (faiss-cpu is installed); "
                         "install faiss-gpu, or use device='cpu'")
    if gpus and device != "cpu":
        number = int(device.split(":")[1]) if ":" in device else 0
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), number, index)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    index.add(reference)
    n_q = queries.shape[0]
    width = min(k + (2 if exclude_self else 1), reference.shape[0])
    indices = np.empty((n_q, k), np.int64)
    keys = np.empty((n_q, k))
    chunk = max(1024, BLOCK_BYTES // (4 * max(width, 1) * 16))
    for start in range(0, n_q, chunk):
        stop = min(start + chunk, n_q)
        sim, cand = index.search(np.ascontiguousarray(queries[start:stop], np.float32), width)
        key = -sim.astype(np.float64)
        if exclude_self:
            key[cand == np.arange(start, stop)[:, None]] = np.inf
        order = np.argsort(key, axis=1, kind="stable")
        cand, key = np.take_along_axis(cand, order, 1), np.take_along_axis(key, order, 1)
        Q = np.ascontiguousarray(queries[start:stop], np.float32)
        indices[start:stop], keys[start:stop] = _settle_near_ties(
            cand, key, k, _cosine_error(Q, reference.T),
            lambda rows: _negated_cosine(Q[rows], reference.T),
            Q, reference, 0, start if exclude_self else -1)
    distances = (1.0 + keys).astype(np.float32)
    np.maximum(distances, 0.0, out=distances)
    return indices, distances


def _ivf_knn(rows: np.ndarray, k: int, random_state, named: Metric):
    """Approximate kNN by faiss IVF-Flat: k-means lists trained on a sample, each point
    searched in `IVF_PROBE_SHARE` of the lists nearest to it; self dropped."""
    faiss = _faiss()
    if faiss is None:
        raise ValueError("method='ivf' needs faiss: pip install faiss-cpu (or hdl-studio[scale]); "
                         "method='approx' (pynndescent) needs nothing more")
    n, d = rows.shape
    data = np.ascontiguousarray(rows, dtype=np.float32)
    n_lists = int(max(1, min(n // 39, round(IVF_LISTS_PER_SQRT * math.sqrt(n)))))
    kind = faiss.METRIC_INNER_PRODUCT if named.exact_pair == 0 else faiss.METRIC_L2
    quantizer = faiss.IndexFlatIP(d) if named.exact_pair == 0 else faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, n_lists, kind)
    index.cp.seed = 0 if random_state is None else int(random_state)
    sample = np.random.default_rng(random_state).choice(n, min(n, 64 * n_lists), replace=False)
    index.train(data[np.sort(sample)])
    index.add(data)
    index.nprobe = min(n_lists, max(IVF_MIN_PROBES, math.ceil(n_lists * IVF_PROBE_SHARE)))
    found, idx = index.search(data, k + 1)
    missing = idx < 0
    if missing.any():       # a row whose probed lists hold fewer than k+1 points
        rows_short = np.flatnonzero(missing.any(axis=1))
        index.nprobe = n_lists
        found[rows_short], idx[rows_short] = index.search(data[rows_short], k + 1)
    dist = 1.0 - found if named.exact_pair == 0 else np.sqrt(np.maximum(found, 0.0))
    return _drop_self(idx.astype(np.int64), dist.astype(np.float32), k)


def _sort_by_key_then_index(cand, cand_key):
    order = np.lexsort((cand, cand_key), axis=1)     # lexsort's last key is primary
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(cand_key, order, axis=1)


def _settle_near_ties(cand, cand_key, k, tol, full_rows, Q, R, exact_pair, self_offset):
    """The first k of each row of candidates, the rows whose order is not certain redone in
    float64.

    `cand` / `cand_key`: each query row's nearest columns by the fast key, sorted, k+1 of
    them where the row has that many. A fast key is within `tol[i]` / 2 of the pair's
    float64 key (`exact_pair`'s formula), and that error depends on where the pair sat in
    the product (BLAS and faiss round the same dot product differently by position, and
    differently on different CPUs), so two keys closer than `tol[i]` may be in either
    order. Such a row is redone: every column whose fast key in `full_rows(rows)` (those
    rows' fast keys over every column) is within `tol[i]` of the k-th is re-computed in
    float64, and the k smallest by (float64 key, column) are listed with their float64
    keys. So every backend and every CPU lists the same neighbours, copies of a point by
    ascending index. Column ``i + self_offset`` is never listed when ``self_offset >= 0``.
    """
    out_index = np.array(cand[:, :k], np.int64)
    out_key = np.array(cand_key[:, :k], np.float64)
    if cand_key.shape[1] < 2:
        return out_index, out_key
    gaps = np.diff(cand_key[:, :k + 1], axis=1)
    redo = np.flatnonzero((gaps <= tol[:, None]).any(axis=1))
    for a in range(0, redo.size, 256):       # at most 256 whole rows at a time
        rows = redo[a:a + 256]
        skip = rows + self_offset if self_offset >= 0 else np.full(rows.size, -1)
        part_index = np.empty((rows.size, k), np.int64)
        part_key = np.empty((rows.size, k))
        _exact_smallest(np.ascontiguousarray(full_rows(rows)), np.ascontiguousarray(Q[rows]),
                        R, cand_key[rows, k - 1] + tol[rows], skip,
                        exact_pair, k, part_index, part_key)
        out_index[rows], out_key[rows] = part_index, part_key
    return out_index, out_key


@numba.njit(parallel=True, cache=True)
def _exact_smallest(full, Q, R, bound, skip, exact_pair, k, out_index, out_key):
    """Per row i of `full` (the fast keys of query Q[i] against every row of R): among the
    columns whose fast key is at most bound[i] (never column skip[i]), the k with the
    smallest float64 key (exact_pair 0: -Σ q·r; 1: Σ (q - r)², summed in order), ties by
    ascending column."""
    for i in numba.prange(full.shape[0]):
        m = 0
        for j in range(full.shape[1]):
            if j != skip[i] and full[i, j] <= bound[i]:
                m += 1
        cols = np.empty(m, np.int64)
        exact = np.empty(m)
        m = 0
        for j in range(full.shape[1]):
            if j != skip[i] and full[i, j] <= bound[i]:
                cols[m] = j
                exact[m] = _exact_key(Q[i], R[j], exact_pair)
                m += 1
        order = np.argsort(exact, kind="mergesort")      # stable: equal keys by column
        for t in range(k):
            out_index[i, t] = cols[order[t]]
            out_key[i, t] = exact[order[t]]


def _torch_device(device: str):
    """The torch device for the exact cosine search, or None for the CPU search.

    Never imports torch to ask for a GPU it was not asked about (an import costs seconds
    and hundreds of MiB): with "auto" a GPU is used only when torch is already imported
    and sees one, and faiss has none; with "cuda" torch is imported and must see one.
    """
    if device == "cpu":
        return None
    if device == "auto":
        torch = sys.modules.get("torch")
        if torch is None:
            return None
        faiss = _faiss() if "faiss" in sys.modules else None
        if faiss is not None and getattr(faiss, "get_num_gpus", lambda: 0)():
            return None
        try:
            return torch.device("cuda") if torch.cuda.is_available() else None
        except Exception:  # a broken torch install must not break the CPU path
            return None
    faiss = _faiss()
    if faiss is not None and getattr(faiss, "get_num_gpus", lambda: 0)():
        return None                                        # faiss-gpu serves it
    try:
        import torch
    except ImportError:
        raise ValueError(f"device={device!r} needs torch or faiss-gpu; neither is installed") from None
    if not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu'")
    return torch.device(device)


def _exact_knn_torch(queries, reference, k, exclude_self, device):
    """Cosine `exact_knn` on a torch device: top k+1 there, ties settled as on the CPU."""
    import torch

    ref = torch.from_numpy(np.ascontiguousarray(reference)).to(device)
    n_q, n_ref = queries.shape[0], reference.shape[0]
    budget = 4 * BLOCK_BYTES
    if device.type == "cuda":
        # a GPU runs a few large products far faster than many thin ones: a quarter of its
        # free memory (at most 8 GiB) per block of similarities
        budget = max(budget, min(torch.cuda.mem_get_info(device)[0] // 4, 8 << 30))
    block = max(1, min(n_q, budget // (4 * max(n_ref, 1))))
    width = min(k + 1, n_ref)
    indices = np.empty((n_q, k), dtype=np.int64)
    distances = np.empty((n_q, k), dtype=np.float32)
    for start in range(0, n_q, block):
        stop = min(start + block, n_q)
        q = torch.from_numpy(np.ascontiguousarray(queries[start:stop])).to(device)
        sim = q @ ref.T
        if exclude_self:
            rows = torch.arange(stop - start, device=device)
            sim[rows, rows + start] = -float("inf")
        top_sim, top_idx = torch.topk(sim, width, dim=1, largest=True, sorted=False)
        cand, cand_key = _sort_by_key_then_index(top_idx.cpu().numpy().astype(np.int64),
                                                 -top_sim.cpu().numpy())
        cand, cand_key = _settle_near_ties(
            cand, cand_key, k, _cosine_error(queries[start:stop], reference.T),
            lambda rows: -sim[torch.from_numpy(rows).to(device)].cpu().numpy(),
            queries[start:stop], reference, 0, start if exclude_self else -1)
        indices[start:stop] = cand
        distances[start:stop] = 1.0 + cand_key
    np.maximum(distances, 0.0, out=distances)
    return indices, distances


def _approx_knn(rows: np.ndarray, k: int, random_state, metric: str) -> tuple[np.ndarray, np.ndarray]:
    from pynndescent import NNDescent

    # pynndescent lists self first (usually); ask for one more and drop it.
    index = NNDescent(rows, n_neighbors=k + 1, metric=metric, random_state=random_state,
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

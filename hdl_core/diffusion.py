"""Labels spread over the kNN graph: label spreading, ``F ← α S F + (1 - α) Y``, S =
D^-1/2 (A + Aᵀ) D^-1/2, and harmonic propagation, ``F ← D^-1 (A + Aᵀ) F`` with the seeds
held at their labels.

Two parts of hdl_core spread labels: the default labeling's order (`hdl_core.reach`, how
strongly each class's seeds reach each point: `propagate_seeds`, or `spread_seeds` when an
alpha is asked for, straight from the neighbour lists) and the review queue's
neighbourhood vote (`hdl_core.suggest`: label spreading with a CSR operator,
`diffusion_operator` and `spread_step`). A is the neighbour lists (a mutual
pair counts twice), each edge weighing 1 or, for the default labeling's reach, its local
scale weight (`local_scale_codes`); a step costs O(n·k·classes), row by row on every core.
"""
from __future__ import annotations

import functools

import numba
import numpy as np

from . import _prefetch
from ._prefetch import prefetch

# Points ahead of the one a spread step sums at which the rows of its neighbours are asked
# for, every line of each (`_prefetch_rows`; a point's ~20 edges are ~20 rows). On random
# k = 10 graphs, a step over 10 classes, alternated with no hints: 1M points 0.23 -> 0.07 s
# (0.40 -> 0.10 s in breadth-first order), 10M 2.84 -> 0.89 s; the review queue's CSR step
# at 1M 0.28 -> 0.07 s. 2 and 8 ahead measured within noise of 4.
SPREAD_AHEAD = 4
# ... but only where the rows are not near in memory anyway (`worth_prefetching`): where at
# least FAR_SHARE of the edges join rows more than NEAR_BYTES apart. A 1M-point graph of
# clusters of 10,000 points in breadth-first order has none (a step took 0.074 s without
# hints, 0.083 s with them); clusters of 100,000, 52 % (0.072 s without, 0.073 s with);
# a random graph 99 %.
NEAR_BYTES = 1 << 20
FAR_SHARE = 0.2
# Entries ahead at which `reverse_codes` asks for a code.
REVERSE_AHEAD = 32


def rows_far_apart(indptr, indices: np.ndarray, width: int, sample: int = 4096) -> float:
    """Share of the edges of `sample` evenly spaced rows whose ends' rows of `width` float32
    lie more than NEAR_BYTES apart (CSR `indptr` and `indices`, or neighbour lists: indptr
    None, `indices` (n, k))."""
    n = indices.shape[0] if indptr is None else indptr.shape[0] - 1
    rows = np.linspace(0, n - 1, min(sample, n)).astype(np.int64)
    if indptr is None:
        ends = np.asarray(indices[rows], np.int64)
        starts = rows[:, None]
    else:
        ends = np.concatenate([indices[indptr[r]:indptr[r + 1]] for r in rows]).astype(np.int64)
        starts = np.repeat(rows, indptr[rows + 1] - indptr[rows])
    near = NEAR_BYTES // (4 * width)
    return float((np.abs(ends - starts) > near).mean()) if ends.size else 0.0


def worth_prefetching(indptr, indices: np.ndarray, width: int) -> bool:
    """Should a spread of rows of `width` classes over this graph ask for rows ahead? From
    `_prefetch.MIN_POINTS` points, where at least FAR_SHARE of the edges join rows far
    apart (`rows_far_apart`): tight clusters in breadth-first order read rows near the
    current one, which sit in cache, and the hints only cost there."""
    n = indices.shape[0] if indptr is None else indptr.shape[0] - 1
    return _prefetch.worth_it(n) and rows_far_apart(indptr, indices, width) >= FAR_SHARE


def diffusion_operator(neighbours: np.ndarray):
    """``D^-1/2 (A + Aᵀ) D^-1/2`` of the neighbour lists A (a mutual pair counts twice), as a
    float32 CSR matrix."""
    import scipy.sparse as sp

    n, k = neighbours.shape
    index = np.int32 if n * k < 2**31 else np.int64          # no n·k int64 row numbers
    A = sp.csr_matrix((np.ones(n * k, np.float32), neighbours.astype(index).ravel(),
                       np.arange(0, n * k + 1, k, dtype=index)), shape=(n, n))
    A.sum_duplicates()                                       # as built from coordinates
    W = (A + A.T).tocsr()
    inv_sqrt = (1.0 / np.sqrt(np.asarray(W.sum(axis=1)).ravel())).astype(np.float32)
    W.data *= inv_sqrt[np.repeat(np.arange(n), np.diff(W.indptr))]
    W.data *= inv_sqrt[W.indices]
    return W


@numba.njit(cache=True, nogil=True, parallel=True)
def spread_step(indptr, indices, data, spread, kept, alpha, out, far=False):
    """out = alpha · (S @ spread) + kept for the CSR matrix S, row by row on every core and
    without the GIL (a page keeps drawing while a million points' queue is ordered).
    Each entry sums S's row in stored order in float32, then scales and adds, as
    ``alpha * (S @ spread) + kept`` with scipy does: the same values, bit for bit.
    `far`: prefetch the rows a few rows ahead will read (`SPREAD_AHEAD`)."""
    n, n_classes = spread.shape
    flat = spread.reshape(-1)
    for i in numba.prange(n):
        if far and i + SPREAD_AHEAD < n:        # the rows the sum a few rows on reads
            for jj in range(indptr[i + SPREAD_AHEAD], indptr[i + SPREAD_AHEAD + 1]):
                _prefetch_row(flat, indices[jj], n_classes)
        for c in range(n_classes):
            out[i, c] = 0
        for jj in range(indptr[i], indptr[i + 1]):
            a, j = data[jj], indices[jj]
            for c in range(n_classes):
                out[i, c] += a * spread[j, c]
        for c in range(n_classes):
            out[i, c] = out[i, c] * alpha + kept[i, c]


# A spread reads, for every edge, its other end's row (a point's classes), at random. From
# LOCALITY_MIN_POINTS points those rows no longer stay in the processor's caches, and the
# points are first put in breadth-first order of the graph (`LocalOrder`), so an edge's
# ends mostly lie close in memory: on a 1M-point, 20-class workspace the reach took 5.4 s
# instead of 17.7 s, the review queue 13.1 s instead of 46.9 s; on a random graph, where no
# order helps, the spread took 5-8 % longer. Up to LOCALITY_MAX_EDGES edges: the lists in
# the new order are a copy (4 bytes an edge), which a 10M-point labeling from files has no
# room for (250 bytes a point, bench/scale_bench.py).
LOCALITY_MIN_POINTS = 1 << 16
LOCALITY_MAX_EDGES = 1 << 26


class LocalOrder:
    """The points in breadth-first order of the neighbour lists (each root the lowest point
    not yet reached), to run a spread in and map its result back.

    Everything a spread sums is kept in its order: a row's own list as it was, the entries
    of a CSR row or of a reverse list in their stored order, so each sum adds the same
    numbers in the same order and the result, mapped `back`, is the same bit for bit.

    Attributes
    ----------
    order : ndarray of int
        ``order[i']`` is the point at new position i'.
    inv : ndarray of int
        ``inv[i]`` is point i's new position.
    """

    def __init__(self, order: np.ndarray):
        self.order = order
        self.inv = np.empty_like(order)
        self.inv[order] = np.arange(order.size, dtype=order.dtype)

    @classmethod
    def of(cls, neighbours: np.ndarray) -> "LocalOrder | None":
        """The order for a spread over `neighbours`, or None where it would not pay (few
        points) or not fit (more than LOCALITY_MAX_EDGES edges)."""
        n, k = neighbours.shape
        if n < LOCALITY_MIN_POINTS or n * k > LOCALITY_MAX_EDGES:
            return None
        return cls(_breadth_first(neighbours, np.empty(n, np.int32 if n < 2**31 else np.int64)))

    def rename(self, indices: np.ndarray) -> np.ndarray:
        """`indices` (point numbers) as new positions, in the same place."""
        return np.take(self.inv, indices).astype(indices.dtype, copy=False)

    def rows(self, a: np.ndarray) -> np.ndarray:
        """The rows of `a` (one per point) in the new order."""
        return np.take(a, self.order, axis=0)

    def back(self, a: np.ndarray) -> np.ndarray:
        """Rows in the new order back in the points' order."""
        return np.take(a, self.inv, axis=0)

    def csr(self, matrix):
        """The square CSR `matrix` with rows and columns in the new order, each row's
        entries in their stored order."""
        import scipy.sparse as sp

        indptr, indices, data = _permute_csr(matrix.indptr, matrix.indices, matrix.data,
                                             self.order, self.inv)
        return sp.csr_matrix((data, indices, indptr), shape=matrix.shape)


@numba.njit(cache=True)
def _breadth_first(neighbours, order):
    """Fill `order` with the points in breadth-first order of the lists; returns it."""
    n, k = neighbours.shape
    seen = np.zeros(n, np.bool_)
    tail = 0
    head = 0
    for root in range(n):
        if seen[root]:
            continue
        seen[root] = True
        order[tail] = root
        tail += 1
        while head < tail:
            i = order[head]
            head += 1
            for jj in range(k):
                j = neighbours[i, jj]
                if not seen[j]:
                    seen[j] = True
                    order[tail] = j
                    tail += 1
    return order


@numba.njit(cache=True)
def _permute_csr(indptr, indices, data, order, inv):
    """(indptr, indices, data) of the CSR rows `order`, columns renamed by `inv`."""
    n = order.shape[0]
    new_ptr = np.empty(n + 1, indptr.dtype)
    new_ptr[0] = 0
    for r in range(n):
        p = order[r]
        new_ptr[r + 1] = new_ptr[r] + (indptr[p + 1] - indptr[p])
    new_indices = np.empty(indices.shape[0], indices.dtype)
    new_data = np.empty(data.shape[0], data.dtype)
    for r in range(n):
        p = order[r]
        out = new_ptr[r]
        for e in range(indptr[p], indptr[p + 1]):
            new_indices[out] = inv[indices[e]]
            new_data[out] = data[e]
            out += 1
    return new_ptr, new_indices, new_data


# Rows of weights computed at a time (`local_scale_codes`): a few MiB of temporaries.
WEIGHT_BLOCK = 1 << 16
# An edge's weight exp(-r) is stored as the code round(r · WEIGHT_STEPS) (uint16, at most
# `max_code(floor)`), read back through `weight_table`: 2 bytes per edge instead of 4, a
# relative step of 1/4096 between weights.
WEIGHT_STEPS = 4096


def max_code(floor: float) -> int:
    """The code of the lightest edge: the weight `floor`."""
    code = int(np.ceil(-np.log(floor) * WEIGHT_STEPS))
    if not 0 < code < 2**16:
        raise ValueError(f"a weight floor of {floor!r} needs codes beyond 16 bits")
    return code


@functools.lru_cache(maxsize=4)
def weight_table(floor: float) -> np.ndarray:
    """Each code's weight, float32: exp(-code / WEIGHT_STEPS), never below `floor`."""
    codes = np.arange(max_code(floor) + 1, dtype=np.float64)
    table = np.maximum(np.exp(-codes / WEIGHT_STEPS), floor).astype(np.float32)
    table.flags.writeable = False
    return table


def local_scale_codes(indices: np.ndarray, distances: np.ndarray, metric: str, rank: int,
                      floor: float) -> np.ndarray:
    """The weight of each edge of the neighbour lists as a code into `weight_table(floor)`,
    (n, k) uint16. The weight is exp(-d²(i, j) / (σ_i σ_j)), σ_i the distance from i to its
    `rank`-th nearest neighbour (the k-th when k < rank; local scaling as in Zelnik-Manor
    and Perona's self-tuning spectral clustering), the exponent rounded to 1/WEIGHT_STEPS,
    never below `floor`. d² is the squared distance; for cosine, 2 · (1 - cos), and the
    ratio does not see the factor 2, so ``1 - cos`` is used as it is.

    The distances are first rounded to float16, as a graph written by ``hdl-studio graph``
    keeps them, so labeling from a stored graph weighs every edge as labeling in memory
    does. An edge of length 0 weighs 1, also where σ_i σ_j is 0 (duplicates); any other
    edge to or from a point whose σ is 0 weighs `floor`."""
    n, k = indices.shape
    rank = min(int(rank), k)
    squared = metric == "euclidean"
    top = max_code(floor)

    def squared_distance(block):
        d = np.asarray(block, np.float16).astype(np.float64)
        return d * d if squared else d

    sigma = np.sqrt(squared_distance(distances[:, rank - 1]))
    codes = np.empty((n, k), np.uint16)
    for start in range(0, n, WEIGHT_BLOCK):
        stop = min(n, start + WEIGHT_BLOCK)
        q = squared_distance(distances[start:stop, :k])
        denominator = sigma[start:stop, None] * sigma[np.asarray(indices[start:stop, :k])]
        ratio = np.full(q.shape, np.inf)
        np.divide(q, denominator, out=ratio, where=denominator > 0)
        ratio[q <= 0] = 0.0
        codes[start:stop] = np.minimum(np.rint(np.minimum(ratio, top) * WEIGHT_STEPS), top)
    return codes


@numba.njit(cache=True)
def reverse_codes(codes, rev_idx, rev_pos, far=False):
    """The codes of the reverse lists' edges, aligned with `rev_idx`: entry e (point j lists
    i at position rev_pos[e]) is j's edge to i, ``codes[j, rev_pos[e]]``. `far`: ask for
    the code REVERSE_AHEAD entries on (`hdl_core._prefetch`), one random read per edge."""
    m = rev_idx.shape[0]
    k = codes.shape[1]
    flat = codes.reshape(-1)
    out = np.empty(m, np.uint16)
    for e in range(m):
        if far and e + REVERSE_AHEAD < m:
            prefetch(flat, rev_idx[e + REVERSE_AHEAD] * k + rev_pos[e + REVERSE_AHEAD])
        out[e] = codes[rev_idx[e], rev_pos[e]]
    return out


def spread_seeds(neighbours: np.ndarray, rev_ptr: np.ndarray, rev_idx: np.ndarray,
                 y: np.ndarray, n_classes: int, alpha: float, steps: int,
                 weights: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                 ) -> np.ndarray:
    """`steps` steps of ``F ← α S F + (1 - α) Y`` from F = Y, the seeds' one-hot labels (1 in
    column y[i] for each seed i), straight from the neighbour lists and their reverse
    (`hdl._reverse_adjacency`), float32 (n, n_classes). No matrix is built: S F's row i is
    d_i^-1/2 Σ w_ij d_j^-1/2 F_j over j in i's list and over the points listing i (a mutual
    pair counts twice, as in W + Wᵀ), and Y is read from `y`; beyond the lists, the memory
    is F twice and d, O(n · classes).

    `weights`, when given, is (table, codes, reverse codes): the weight of i's edge to its
    jj-th neighbour is ``table[codes[i, jj]]`` (`local_scale_codes`), that of the edge j → i
    read from i's side ``table[reverse[e]]`` (`reverse_codes`, aligned with `rev_idx`).
    Without them every edge weighs 1.

    Between steps the rows are kept scaled, G = D^-1/2 F (each G_j the float32 product
    d_j^-1/2 F_j the sum would form), so an edge reads one row and not also its end's d_j:
    on graphs larger than the cache that is one random read per edge instead of two, and
    the result is the same, bit for bit."""
    return _run_steps(neighbours, rev_ptr, rev_idx, y, n_classes, steps, weights, alpha, False)


def propagate_seeds(neighbours: np.ndarray, rev_ptr: np.ndarray, rev_idx: np.ndarray,
                    y: np.ndarray, n_classes: int, steps: int,
                    weights: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                    ) -> np.ndarray:
    """`steps` steps of harmonic propagation (Zhu, Ghahramani and Lafferty's label
    propagation): ``F ← D^-1 (W + Wᵀ) F`` from F = Y, every seed's row set back to its
    one-hot label after each step, float32 (n, n_classes); the lists, their reverse and
    `weights` as in `spread_seeds`, at the same cost a step.

    A point's row is then the average of its neighbours' rows, weighed by its edges, and its
    limit is the chance that a random walk from the point meets a seed of each class before
    any other seed. A seed of a class beyond these columns (y[i] = n_classes: propagating
    a block of the classes) is held at 0 in every column. Nothing fades with the steps: a
    class whose seeds lie far along a dense stretch of the graph reaches as strongly as one
    whose seeds lie near across a thin link, which `spread_seeds` (α < 1) does not give."""
    return _run_steps(neighbours, rev_ptr, rev_idx, y, n_classes, steps, weights, 1.0, True)


def _run_steps(neighbours, rev_ptr, rev_idx, y, n_classes, steps, weights, alpha, hold):
    """`spread_seeds` (`hold` False: rows kept scaled by d^-1/2, S symmetric) or
    `propagate_seeds` (`hold` True: alpha 1, rows as they are, each sum divided by the
    point's degree, the seeds' rows set back to their labels)."""
    n, k = neighbours.shape
    if weights is None:
        degree = k + np.diff(rev_ptr).astype(np.float64)
    else:
        table, codes, reverse = weights
        if codes.shape != neighbours.shape or reverse.shape != rev_idx.shape:
            raise ValueError("weights need a code per edge of the lists and of their reverse")
        degree = _weighted_degree(table, codes, rev_ptr, reverse)
    scale = (1.0 / degree if hold else 1.0 / np.sqrt(degree)).astype(np.float32)
    del degree
    F = np.zeros((n, n_classes), np.float32)
    seeds = np.flatnonzero((y >= 0) & (y < n_classes))
    F[seeds, y[seeds]] = 1.0 if hold else scale[seeds]      # Y (spread: G of F = Y)
    other = np.empty_like(F)
    far = worth_prefetching(None, neighbours, n_classes)
    for step in range(steps):
        keep_scaled = not hold and step < steps - 1
        if weights is None:
            _spread_lists_step(neighbours, rev_ptr, rev_idx, scale, y, F, np.float32(alpha),
                               other, keep_scaled, hold, far)
        else:
            _spread_weighted_step(neighbours, table, codes, rev_ptr, rev_idx, reverse, scale, y,
                                  F, np.float32(alpha), other, keep_scaled, hold, far)
        F, other = other, F
    if steps == 0:
        F[seeds, y[seeds]] = 1.0
    return F


@numba.njit(cache=True, nogil=True, parallel=True)
def _spread_lists_step(neighbours, rev_ptr, rev_idx, scale, y, scaled, alpha, out, keep_scaled,
                       hold, far):
    """One step from G = D^-1/2 F (`scaled`): F' = alpha · (S @ F) + (1 - alpha) Y, S from
    the lists (see `spread_seeds`), row by row on every core; `out` is D^-1/2 F' when
    `keep_scaled`, else F'. With `hold` (`propagate_seeds`: `scaled` is F itself, `scale`
    1/d, alpha 1) each seed's row is set back to its label. `far`: prefetch the rows a few
    points ahead (`_prefetch_rows`)."""
    n, k = neighbours.shape
    n_classes = scaled.shape[1]
    kept = 1 - alpha
    flat = scaled.reshape(-1)
    for i in numba.prange(n):
        if far and i + SPREAD_AHEAD < n:
            _prefetch_rows(i + SPREAD_AHEAD, neighbours, rev_ptr, rev_idx, flat, n_classes)
        for c in range(n_classes):
            out[i, c] = 0
        for jj in range(k):
            j = neighbours[i, jj]
            for c in range(n_classes):
                out[i, c] += scaled[j, c]
        for e in range(rev_ptr[i], rev_ptr[i + 1]):
            j = rev_idx[e]
            for c in range(n_classes):
                out[i, c] += scaled[j, c]
        _finish_row(out, i, alpha * scale[i], y[i], kept, hold, keep_scaled, scale[i])


@numba.njit(cache=True, inline="always")
def _finish_row(out, i, a, label, kept, hold, keep_scaled, scale):
    """Row i of a step once its neighbours are summed: times `a` (alpha · its scale), then a
    seed's label: added at `kept` (spreading) or set back (`hold`: the row one-hot, all 0 for
    a seed of a class outside the columns), then times `scale` again where `keep_scaled`."""
    n_classes = out.shape[1]
    for c in range(n_classes):
        out[i, c] *= a
    if label >= 0:
        if hold:
            for c in range(n_classes):
                out[i, c] = 0
            if label < n_classes:
                out[i, label] = 1
        else:
            out[i, label] += kept
    if keep_scaled:
        for c in range(n_classes):
            out[i, c] *= scale


@numba.njit(cache=True, inline="always")
def _prefetch_rows(i, neighbours, rev_ptr, rev_idx, flat, n_classes):
    """Ask for the rows point i's sum will read (`hdl_core._prefetch`): those of its
    neighbours and of the points listing it. A step goes through the points in order, so
    their lists arrive on their own; the rows they name are anywhere."""
    for jj in range(neighbours.shape[1]):
        _prefetch_row(flat, neighbours[i, jj], n_classes)
    for e in range(rev_ptr[i], rev_ptr[i + 1]):
        _prefetch_row(flat, rev_idx[e], n_classes)


@numba.njit(cache=True, inline="always")
def _prefetch_row(flat, j, width):
    """Ask for every cache line of row j of a (n, width) float32 array read as `flat`: a
    row of 10 classes (40 bytes) lies across two lines for half of the rows, and a sum
    waiting on the second line stalls every add after it."""
    start = j * width
    for offset in range(0, width, 16):      # 16 float32 to a 64-byte line
        prefetch(flat, start + offset)
    prefetch(flat, start + width - 1)


@numba.njit(cache=True, nogil=True, parallel=True)
def _weighted_degree(table, codes, rev_ptr, reverse):
    """Each point's degree in W + Wᵀ: its own edges' weights and those of the edges to it."""
    n, k = codes.shape
    degree = np.empty(n, np.float64)
    for i in numba.prange(n):
        total = 0.0
        for jj in range(k):
            total += table[codes[i, jj]]
        for e in range(rev_ptr[i], rev_ptr[i + 1]):
            total += table[reverse[e]]
        degree[i] = total
    return degree


@numba.njit(cache=True, nogil=True, parallel=True)
def _spread_weighted_step(neighbours, table, codes, rev_ptr, rev_idx, reverse, scale, y, scaled,
                          alpha, out, keep_scaled, hold, far):
    """`_spread_lists_step` with every edge weighed: i's own edge to j by
    ``table[codes[i, jj]]``, the edge j → i by ``table[reverse[e]]``."""
    n, k = neighbours.shape
    n_classes = scaled.shape[1]
    kept = 1 - alpha
    flat = scaled.reshape(-1)
    for i in numba.prange(n):
        if far and i + SPREAD_AHEAD < n:
            _prefetch_rows(i + SPREAD_AHEAD, neighbours, rev_ptr, rev_idx, flat, n_classes)
        for c in range(n_classes):
            out[i, c] = 0
        for jj in range(k):
            j = neighbours[i, jj]
            w = table[codes[i, jj]]
            for c in range(n_classes):
                out[i, c] += w * scaled[j, c]
        for e in range(rev_ptr[i], rev_ptr[i + 1]):
            j = rev_idx[e]
            w = table[reverse[e]]
            for c in range(n_classes):
                out[i, c] += w * scaled[j, c]
        _finish_row(out, i, alpha * scale[i], y[i], kept, hold, keep_scaled, scale[i])

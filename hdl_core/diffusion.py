"""Label spreading over the kNN graph: ``F ← α S F + (1 - α) Y``, S = D^-1/2 (A + Aᵀ) D^-1/2.

Two parts of hdl_core spread labels this way: the default labeling's order
(`hdl_core.reach`, how strongly each class's seeds reach each point: `spread_seeds`, straight
from the neighbour lists) and the review queue's neighbourhood vote (`hdl_core.suggest`: a
CSR operator, `diffusion_operator` and `spread_step`). A is the neighbour lists (a mutual
pair counts twice); a step costs O(n·k·classes), row by row on every core.
"""
from __future__ import annotations

import numba
import numpy as np


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
def spread_step(indptr, indices, data, spread, kept, alpha, out):
    """out = alpha · (S @ spread) + kept for the CSR matrix S, row by row on every core and
    without the GIL (a page keeps drawing while a million points' queue is ordered).
    Each entry sums S's row in stored order in float32, then scales and adds, as
    ``alpha * (S @ spread) + kept`` with scipy does: the same values, bit for bit."""
    n, n_classes = spread.shape
    for i in numba.prange(n):
        for c in range(n_classes):
            out[i, c] = 0
        for jj in range(indptr[i], indptr[i + 1]):
            a, j = data[jj], indices[jj]
            for c in range(n_classes):
                out[i, c] += a * spread[j, c]
        for c in range(n_classes):
            out[i, c] = out[i, c] * alpha + kept[i, c]


def spread_seeds(neighbours: np.ndarray, rev_ptr: np.ndarray, rev_idx: np.ndarray,
                 y: np.ndarray, n_classes: int, alpha: float, steps: int) -> np.ndarray:
    """`steps` steps of ``F ← α S F + (1 - α) Y`` from F = Y, the seeds' one-hot labels (1 in
    column y[i] for each seed i), straight from the neighbour lists and their reverse
    (`hdl._reverse_adjacency`), float32 (n, n_classes). No matrix is built: S F's row i is
    d_i^-1/2 Σ d_j^-1/2 F_j over j in i's list and over the points listing i (a mutual pair
    counts twice, as in A + Aᵀ), and Y is read from `y`; beyond the lists, the memory is F
    twice and d, O(n · classes).

    Between steps the rows are kept scaled, G = D^-1/2 F (each G_j the float32 product
    d_j^-1/2 F_j the sum would form), so an edge reads one row and not also its end's d_j:
    on graphs larger than the cache that is one random read per edge instead of two, and
    the result is the same, bit for bit."""
    n, k = neighbours.shape
    scale = (1.0 / np.sqrt(k + np.diff(rev_ptr).astype(np.float64))).astype(np.float32)
    F = np.zeros((n, n_classes), np.float32)
    seeds = np.flatnonzero(y >= 0)
    F[seeds, y[seeds]] = scale[seeds]                    # G of F = Y
    other = np.empty_like(F)
    for step in range(steps):
        _spread_lists_step(neighbours, rev_ptr, rev_idx, scale, y, F, np.float32(alpha),
                           other, step < steps - 1)
        F, other = other, F
    if steps == 0:
        F[seeds, y[seeds]] = 1.0
    return F


@numba.njit(cache=True, nogil=True, parallel=True)
def _spread_lists_step(neighbours, rev_ptr, rev_idx, scale, y, scaled, alpha, out, keep_scaled):
    """One step from G = D^-1/2 F (`scaled`): F' = alpha · (S @ F) + (1 - alpha) Y, S from
    the lists (see `spread_seeds`), row by row on every core; `out` is D^-1/2 F' when
    `keep_scaled`, else F'."""
    n, k = neighbours.shape
    n_classes = scaled.shape[1]
    kept = 1 - alpha
    for i in numba.prange(n):
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
        a = alpha * scale[i]
        for c in range(n_classes):
            out[i, c] *= a
        if y[i] >= 0:
            out[i, y[i]] += kept
        if keep_scaled:
            for c in range(n_classes):
                out[i, c] *= scale[i]

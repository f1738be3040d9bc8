"""A literal, slow transcription of Algorithm 1 (with the bridge rule), used to hold the
fast `hdl_label` to the paper, whatever the metric. Plain Python over lists and sets;
nothing shared with hdl_core except the neighbour lists it is given.
"""
from __future__ import annotations

import functools
import math

import numpy as np


def cosine_distance(a, b) -> float:
    """1 - cos of two embedding rows, as `hdl_label` sees them by default: each row first
    L2-normalised in float32 (as hdl_core.graph.normalize_rows does), the product summed in
    float64."""
    return 1.0 - float(np.dot(_unit(a), _unit(b)))


@functools.lru_cache(maxsize=2**16)
def _unit_of(raw: bytes, dtype: str) -> np.ndarray:
    row = np.frombuffer(raw, dtype=dtype).astype(np.float32)[None, :]
    return (row / np.linalg.norm(row, axis=1, keepdims=True))[0].astype(np.float64)


def _unit(v) -> np.ndarray:
    # remembered per row: the bridge loop asks for the same rows again and again
    v = np.ascontiguousarray(v)
    return _unit_of(v.tobytes(), v.dtype.str)


def squared_euclidean_distance(a, b) -> float:
    """Squared straight-line distance: coordinate differences squared and summed in order,
    in float64. It orders pairs as the distance does, and it is what `hdl_label` compares
    by Euclidean distance: a square root, rounded, can merge two squares one ulp apart (on
    a symmetric toy, two pairs equally far apart in exact arithmetic) into one distance."""
    return sum((float(p) - float(q)) * (float(p) - float(q)) for p, q in zip(a, b))


def euclidean_distance(a, b) -> float:
    """Straight-line distance, the root of `squared_euclidean_distance`."""
    return math.sqrt(squared_euclidean_distance(a, b))


def literal_hdl(X: np.ndarray, y: np.ndarray, neighbours: np.ndarray, *,
                bridge_distance=cosine_distance):
    """Algorithm 1 line by line; a bridge joins the (unlabeled, labeled) pair nearest by
    `bridge_distance` (a function (a, b) -> distance of two rows of X), ties to the lowest
    unlabeled index, then the lowest labeled one.

    Returns (labels, step, round, fallback, source) as numpy arrays.
    """
    n, k = neighbours.shape
    knn = [list(map(int, row)) for row in neighbours]
    label = {i: int(y[i]) for i in range(n) if y[i] >= 0}     # D
    unlabeled = [i for i in range(n) if y[i] < 0]             # D'
    step = [-1] * n
    rnd = [-1] * n
    fallback = [False] * n
    source = [-1] * n
    t = 0
    r = 0

    def count_labeled(m, D):
        return sum(1 for j in knn[m] if j in D)

    def vote(m):
        counts, first = {}, {}
        for pos, j in enumerate(knn[m]):
            if j in label:
                c = label[j]
                counts[c] = counts.get(c, 0) + 1
                first.setdefault(c, pos)
        best = max(counts.values())
        return min((c for c in counts if counts[c] == best), key=lambda c: first[c])

    while unlabeled:                                            # line 25: until |D'| = 0
        L = {m: count_labeled(m, label) for m in unlabeled}     # line 2
        max_L = max(L.values())
        if max_L == 0:
            # bridge: the unlabeled point nearest to any labeled point copies its label
            best = None
            for m in sorted(unlabeled):
                for j in sorted(label):
                    d = bridge_distance(X[m], X[j])
                    if best is None or d < best[0]:
                        best = (d, m, j)
            _, m, j = best
            label[m] = label[j]
            step[m], rnd[m], fallback[m], source[m] = t, r, True, j
            t += 1
            r += 1
            unlabeled.remove(m)
            continue
        first_level = [m for m in unlabeled if L[m] == max_L]  # lines 3-8
        order = []
        for i in first_level:                                   # lines 10-19
            D = set(label) | {i}                                # line 15: D.append
            l = [count_labeled(m, D) for m in first_level if m != i]   # line 16
            order.append(sum(l))                                # line 18
        # line 20, descending as the text says; equal sums by ascending index
        ranked = sorted(zip(first_level, order), key=lambda p: (-p[1], p[0]))
        for m, _ in ranked:                                     # lines 21-24
            label[m] = vote(m)
            step[m], rnd[m] = t, r
            t += 1
            unlabeled.remove(m)
        r += 1
    labels = np.array([label[i] for i in range(n)])
    return labels, np.array(step), np.array(rnd), np.array(fallback), np.array(source)

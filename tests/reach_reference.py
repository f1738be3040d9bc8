"""A literal, slow transcription of reach-ordered HDL (hdl_core.reach), used to hold the fast
driver to its definition. Plain Python over lists; given the seeds' reach F (checked
against its own dense definition in tests/test_reach.py), it orders, bands, votes and hands
what no seed reaches to class-balanced HDL's literal transcription.
"""
from __future__ import annotations

import math

import numpy as np

from .balanced_reference import literal_balanced
from .hdl_reference import cosine_distance

BANDS = 20


def literal_weights(neighbours: np.ndarray, distances: np.ndarray, metric: str, rank: int,
                    floor: float, steps: int = 4096) -> np.ndarray:
    """Each edge's weight, one by one: exp(-r), r = d2(i, j) / (sigma_i sigma_j) rounded to
    1/steps, never below floor; d2 the squared distance (for cosine, 1 - cos stands for
    it), sigma_i the distance to i's rank-th neighbour (k-th if fewer), distances first
    rounded to float16; an edge of length 0 weighs 1."""
    n, k = neighbours.shape
    rank = min(rank, k)

    def d2(value):
        d = float(np.float16(value))
        return d * d if metric == "euclidean" else d

    sigma = [math.sqrt(d2(distances[i][rank - 1])) for i in range(n)]
    out = np.zeros((n, k))
    for i in range(n):
        for jj in range(k):
            j = int(neighbours[i][jj])
            q = d2(distances[i][jj])
            if q <= 0:
                w = 1.0
            elif sigma[i] * sigma[j] == 0:
                w = 0.0
            else:
                w = math.exp(-round(q / (sigma[i] * sigma[j]) * steps) / steps)
            out[i, jj] = max(w, floor)
    return out


def literal_spread_length(neighbours: np.ndarray, y: np.ndarray, per_hop: int, least: int,
                          most: int) -> int:
    """The default reach's steps as their definition reads: hops from the nearest seed over
    the symmetric graph (i - j when either lists the other), the largest of them that is
    finite times `per_hop`, kept within [least, most]."""
    n = len(y)
    around = [set() for _ in range(n)]
    for i, row in enumerate(neighbours):
        for j in row:
            around[i].add(int(j))
            around[int(j)].add(i)
    hops = {i: 0 for i in range(n) if y[i] >= 0}
    frontier = list(hops)
    while frontier:
        after = []
        for i in frontier:
            for j in sorted(around[i]):
                if j not in hops:
                    hops[j] = hops[i] + 1
                    after.append(j)
        frontier = after
    return min(most, max(least, per_hop * max(hops.values(), default=0)))


def dense_reach(neighbours: np.ndarray, y: np.ndarray, steps: int, alpha: float | None,
                weights: np.ndarray | None = None) -> np.ndarray:
    """F after `steps` steps from F = Y of harmonic propagation (alpha None): F <- D^-1 (W +
    W^T) F, then every seed's row set back to its row of Y; or of label spreading: F <-
    alpha S F + (1 - alpha) Y, S = D^-1/2 (W + W^T) D^-1/2. W[i, j] the weight of i's edge
    to j (1 without `weights`); every column then divided by its total: dense float64, from
    the definition."""
    n, k = neighbours.shape
    A = np.zeros((n, n))
    for i in range(n):
        for jj, j in enumerate(neighbours[i]):
            A[i, j] += 1.0 if weights is None else weights[i, jj]
    W = A + A.T
    d = 1.0 / np.sqrt(W.sum(axis=1))
    S = d[:, None] * W * d[None, :]
    Y = np.zeros((n, int(y.max()) + 1))
    for i in range(n):
        if y[i] >= 0:
            Y[i, y[i]] = 1.0
    seeds = y >= 0
    F = Y.copy()
    for _ in range(steps):
        if alpha is None:
            F = (W @ F) / W.sum(axis=1)[:, None]
            F[seeds] = Y[seeds]
        else:
            F = alpha * S @ F + (1 - alpha) * Y
    total = F.sum(axis=0)
    return F / np.where(total > 0, total, 1.0)


def literal_reach(X: np.ndarray, y: np.ndarray, neighbours: np.ndarray, F: np.ndarray, *,
                  split: float = 0.9, decisive: float = 0.5, bridge_distance=cosine_distance):
    """Reach-ordered HDL given the reach F (n, classes): a split vote (the winner's share at
    most `split`) gives way to the reach's top class where that holds at least `decisive`
    of the point's reach.

    Returns (labels, step, round, confidence, n_voters, fallback) as numpy arrays, and how
    many points the reach ordered (confidence and n_voters are given for those only; the
    rest is class-balanced HDL's).
    """
    n = len(y)
    knn = [list(map(int, row)) for row in neighbours]
    label = {i: int(y[i]) for i in range(n) if y[i] >= 0}
    share, top = {}, {}
    for i in range(n):
        row = [float(v) for v in F[i]]
        total = 0.0
        for v in row:
            total += v
        best = max(range(len(row)), key=lambda c: (row[c], -c))     # lowest of tied classes
        top[i] = best
        share[i] = row[best] / total if total > 0 else 0.0
    order = sorted((i for i in range(n) if y[i] < 0 and share[i] > 0),
                   key=lambda i: (-share[i], i))
    step, rnd = [-1] * n, [-1] * n
    confidence, n_voters = [1.0] * n, [0] * n
    fallback = [False] * n
    r, last = -1, None
    for t, m in enumerate(order):
        band = min(int((1.0 - share[m]) * BANDS), BANDS - 1)
        if band != last:
            r, last = r + 1, band
        counts, first = {}, {}
        for pos, j in enumerate(knn[m]):
            if j in label:
                counts[label[j]] = counts.get(label[j], 0) + 1
                first.setdefault(label[j], pos)
        most = max(counts.values()) if counts else 0
        voted = min((c for c in counts if counts[c] == most), key=lambda c: first[c]) \
            if counts else None
        if counts and not (most / sum(counts.values()) <= split and voted != top[m]
                           and share[m] >= decisive):
            c = voted
            confidence[m] = most / sum(counts.values())
            n_voters[m] = sum(counts.values())
        else:
            c = top[m]
            confidence[m] = 0.5 * share[m]
        label[m] = c
        step[m], rnd[m] = t, r
    if len(order) < int((np.asarray(y) < 0).sum()):
        after = np.array([label.get(i, -1) for i in range(n)])
        labels, b_step, b_round, b_fallback = literal_balanced(X, after, neighbours,
                                                               bridge_distance=bridge_distance)
        for i in range(n):
            if b_step[i] >= 0:
                label[i] = int(labels[i])
                step[i] = int(b_step[i]) + len(order)
                rnd[i] = int(b_round[i]) + r + 1
                fallback[i] = bool(b_fallback[i])
    labels = np.array([label[i] for i in range(n)])
    return (labels, np.array(step), np.array(rnd), np.array(confidence), np.array(n_voters),
            np.array(fallback), len(order))

"""A literal, slow transcription of class-balanced HDL (hdl_core.balanced), used to hold the
fast kernel to its definition. Plain Python over lists and dicts; nothing shared with
hdl_core except the neighbour lists it is given. The vote, the second level and the bridge
are those of tests/hdl_reference.py (Algorithm 1); only the choice of a round's points
differs.
"""
from __future__ import annotations

import math

import numpy as np

from .hdl_reference import cosine_distance


def literal_balanced(X: np.ndarray, y: np.ndarray, neighbours: np.ndarray,
                     border_ratio: float = 0.5, *, bridge_distance=cosine_distance):
    """Class-balanced HDL round by round; a bridge joins the (unlabeled, labeled) pair
    nearest by `bridge_distance`, ties to the lowest unlabeled index, then the lowest
    labeled one (as tests/hdl_reference.py).

    Returns (labels, step, round, fallback) as numpy arrays.
    """
    n, k = neighbours.shape
    knn = [list(map(int, row)) for row in neighbours]
    label = {i: int(y[i]) for i in range(n) if y[i] >= 0}     # D
    unlabeled = [i for i in range(n) if y[i] < 0]             # D'
    peak = {}                                                  # class -> highest level taken
    step = [-1] * n
    rnd = [-1] * n
    fallback = [False] * n
    t = 0
    r = 0

    def vote(m):
        """(class, votes) of the majority among m's labeled neighbours; ties to the nearest."""
        counts, first = {}, {}
        for pos, j in enumerate(knn[m]):
            if j in label:
                c = label[j]
                counts[c] = counts.get(c, 0) + 1
                first.setdefault(c, pos)
        if not counts:
            return None, 0
        best = max(counts.values())
        c = min((c for c in counts if counts[c] == best), key=lambda c: first[c])
        return c, best

    while unlabeled:
        votes = {m: vote(m) for m in unlabeled}
        level = {}                                   # class -> its highest candidate level
        for m, (c, v) in votes.items():
            if c is not None:
                level[c] = max(level.get(c, 0), v)
        if not level:
            # bridge: the unlabeled point nearest to any labeled point copies its label
            best = None
            for m in sorted(unlabeled):
                for j in sorted(label):
                    d = bridge_distance(X[m], X[j])
                    if best is None or d < best[0]:
                        best = (d, m, j)
            _, m, j = best
            label[m] = label[j]
            step[m], rnd[m], fallback[m] = t, r, True
            t += 1
            r += 1
            unlabeled.remove(m)
            continue
        ratio = {c: (level[c] / peak[c] if peak.get(c, 0) > 0 else math.inf) for c in level}
        best_ratio = max(ratio.values())
        taking = [c for c in level if not (ratio[c] < border_ratio and ratio[c] < best_ratio)]
        for c in taking:
            peak[c] = max(peak.get(c, 0), level[c])
        members = [m for m in unlabeled
                   if votes[m][0] in taking and votes[m][1] == level[votes[m][0]]]
        in_round = set(members)
        # second level: how many other round points list m; descending, ties by index
        score = {m: sum(1 for i in members if i != m and m in knn[i]) for m in members}
        for m in sorted(members, key=lambda m: (-score[m], m)):
            label[m] = vote(m)[0]
            step[m], rnd[m] = t, r
            t += 1
            unlabeled.remove(m)
        assert in_round
        r += 1
    labels = np.array([label[i] for i in range(n)])
    return labels, np.array(step), np.array(rnd), np.array(fallback)

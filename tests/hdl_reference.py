"""A literal, slow transcription of Algorithm 1 (with the bridge rule), used to hold the
fast `hdl_label` to the paper. Plain Python over lists and sets; nothing shared with
hdl_core except the neighbour lists it is given.
"""
from __future__ import annotations

import numpy as np


def literal_hdl(X: np.ndarray, y: np.ndarray, neighbours: np.ndarray):
    """Algorithm 1 line by line.

    Returns (labels, step, round, fallback) as numpy arrays.
    """
    n, k = neighbours.shape
    X = X.astype(np.float32) / np.linalg.norm(X.astype(np.float32), axis=1, keepdims=True)
    X = X.astype(np.float32)
    knn = [list(map(int, row)) for row in neighbours]
    label = {i: int(y[i]) for i in range(n) if y[i] >= 0}     # D
    unlabeled = [i for i in range(n) if y[i] < 0]             # D'
    step = [-1] * n
    rnd = [-1] * n
    fallback = [False] * n
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
            # bridge: the unlabeled point most similar to any labeled point copies its label
            best = None
            for m in sorted(unlabeled):
                for j in sorted(label):
                    s = float(np.dot(X[m].astype(np.float64), X[j].astype(np.float64)))
                    if best is None or s > best[0]:
                        best = (s, m, j)
            _, m, j = best
            label[m] = label[j]
            step[m], rnd[m], fallback[m] = t, r, True
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
    return labels, np.array(step), np.array(rnd), np.array(fallback)

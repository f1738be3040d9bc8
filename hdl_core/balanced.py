"""Class-balanced HDL, hdl-studio's default: Algorithm 1 with a first level per class.

The paper's HDL (`hdl_core.hdl.hdl_label`) labels, each round, the unlabeled points with
the most labeled neighbours over the whole dataset. Where classes touch, the class whose
region fills first keeps the highest L along its frontier and labels its neighbours'
clusters before their own seeds have spread: a flood (issue 12; bench/accuracy_bench.py).
Class-balanced HDL keeps the paper's vote and its second level and changes who is labeled
in a round:

* **vote** (as Algorithm 1): the majority class among a point's labeled neighbours among
  its k nearest; a tie goes to the tied class whose labeled neighbour is nearest;
* **level**: a point is a *candidate* of the class its vote names, at level = its votes for
  that class (how many of its k neighbours carry that class);
* **round**: every class takes its *first level*, its candidates at its own highest level,
  so a class whose frontier points have one labeled neighbour grows in the same round as a
  class whose frontier points have ten. One exception stops a class that has filled its
  own cluster from eating the next one: a class *at its border* (its level has fallen
  below `border_ratio` times the highest level it has labeled at) waits while any other
  class is still growing near its own peak; when every class with candidates is at its
  border, those closest to their peaks (highest level / peak) go;
* **steps**: within a round the points are ordered by Algorithm 1's second level (most
  listed by the round's other points first, ties by index) and voted one by one, each
  vote seeing every point labeled before it, this round included. So a point's vote is
  always the majority of its neighbours labeled before its step, exactly what
  `hdl_core.explain.vote_detail` shows;
* **bridge** (as `hdl_label`): when no unlabeled point has a labeled neighbour, the
  unlabeled point nearest (by the metric) to any labeled point copies that point's label,
  flagged `fallback`, in a round of its own.

Cost: O(n·k) after the graph, times the number of distinct classes among a point's labeled
neighbours (at most k, usually one or two). Each unlabeled point keeps a count per class of
its labeled neighbours, updated through the reverse adjacency when a neighbour is labeled;
per-class bucket queues on the level find every class's first level without scanning the
points; a round costs O(C·k) on top of the points it labels.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from . import _prefetch
from ._checks import check_number_in
from ._prefetch import prefetch
from .config import BALANCED_BORDER_RATIO, BALANCED_K
from .graph import KnnGraph, build_knn_graph, check_k, get_metric, rows_to_read
from .hdl import (LabelingResult, _bridge_confidence, _BridgeSearch, _check_graph,
                  _euclidean_scale, _index_array, _prefetch_result, _prefetch_votes,
                  _reverse_adjacency, _second_level_order, _vote, check_bridge, narrow_int,
                  round_arrays, validate_labels)

_DONE, _STALLED = 0, 1
# counters[...] slots shared between the driver and the kernel
_STEP, _ROUND, _N_UNLABELED, _POOL_TOP = 0, 1, 2, 3


def balanced_label(X, y, *, k: int, graph: KnnGraph | None = None,
                   border_ratio: float = BALANCED_BORDER_RATIO,
                   metric: str = "cosine", bridge: str = "exact") -> LabelingResult:
    """Label every unlabeled point by class-balanced HDL (hdl-studio's default variant).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings of labeled and unlabeled points.
    y : array-like of shape (n,), int
        -1 for unlabeled, 0..C-1 for seed classes.
    k : int
        Neighbours per point (`hdl_core.config.BALANCED_K` = 10 is the measured default).
    graph : KnnGraph, optional
        The kNN graph of `X` with at least `k` neighbours per point (its first `k` columns
        are used), built with the same `metric`. Built (exactly up to
        `graph.EXACT_MAX_POINTS` points) when None.
    border_ratio : float in [0, 1], default=0.5
        A class whose level falls below this share of the highest level it has labeled at
        is at its border and waits while another class still grows. 0 lets every class
        take its first level every round.
    metric : {"cosine", "euclidean"}, default="cosine"
        How points are compared: for the graph when it is built here, and for the bridge.
    bridge : {"exact", "approx", "auto"}, default="exact"
        How a bridge is searched, as in `hdl_core.hdl.hdl_label`: "approx" (an inverted
        file, needs faiss) may pick a pair slightly farther than the nearest; "auto" is
        approx only on inputs where the first bridge would compare more than
        `config.BRIDGE_APPROX_MIN_PAIRS` pairs.

    Returns
    -------
    LabelingResult
        ``round`` r holds the first levels the classes took in round r, ``step`` the order
        of the votes; ``confidence`` is the winning share of each vote and ``n_voters`` the
        labeled neighbours that voted.

    Notes
    -----
    A round: each class's candidates (the unlabeled points whose vote names it) at the
    class's highest level form its first level; the round labels the first levels of every
    class not at its border. See the module docstring for the border rule, the order within
    a round and bridges.

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core import balanced_label
    >>> X = np.array([[1, 0], [0.9, 0.1], [0.8, 0.3], [0, 1], [0.1, 0.9], [0.3, 0.8]])
    >>> result = balanced_label(X, np.array([0, -1, -1, 1, -1, -1]), k=2)
    >>> result.labels.tolist(), result.round.tolist()     # both classes grow in round 0
    ([0, 0, 0, 1, 1, 1], [-1, 0, 0, -1, 0, 0])
    """
    # with a graph given, rows are read only at a bridge: no normalised copy of X
    rows = get_metric(metric).prepare(X) if graph is None else rows_to_read(X, metric)
    n = rows.shape[0]
    y = validate_labels(y, n)
    bridge = check_bridge(bridge)
    k = check_k(k, n)
    check_number_in(border_ratio, "border_ratio", 0, 1)
    graph = build_knn_graph(rows, k, method="auto", metric=metric) if graph is None \
        else _check_graph(graph, n, k, metric)
    return _label(rows, y, k, graph, float(border_ratio), metric, bridge)


def label_prepared_rows(rows: np.ndarray, y, *, k: int, graph: KnnGraph | None = None,
                        border_ratio: float = BALANCED_BORDER_RATIO,
                        metric: str = "cosine", bridge: str = "exact") -> LabelingResult:
    """`balanced_label` on rows the metric has already prepared (cosine: unit float32 rows,
    as `rows.normalize_rows_inplace` gives, or `rows.UnitRows`, which scales them when
    read), without a copy of them: the files-only CLI path and the app, where X may not fit
    twice. Same results as `balanced_label` on the rows before preparing."""
    n = rows.shape[0]
    y = validate_labels(y, n)
    k = check_k(k, n)
    bridge = check_bridge(bridge)
    graph = build_knn_graph(rows, k, method="auto", metric=metric) if graph is None \
        else _check_graph(graph, n, k, metric)
    return _label(rows, y, k, graph, float(border_ratio), metric, bridge)


def auto_k(n: int, n_classes: int = 1) -> int:
    """The k class-balanced HDL uses when none is given: `BALANCED_K`, at most n-1, and at
    most half the average class size (``n / (2 · n_classes)``): on a small dataset ten
    neighbours would reach into the other classes for every point.

    >>> auto_k(1797, 10), auto_k(24, 3), auto_k(5, 2)
    (10, 4, 1)
    """
    return max(1, min(BALANCED_K, n - 1, n // (2 * max(int(n_classes), 1))))


def _label(rows: np.ndarray, y: np.ndarray, k: int, graph: KnnGraph, border_ratio: float,
           metric: str, bridge: str = "exact") -> LabelingResult:
    """The driver behind `balanced_label`, on validated inputs (`rows` as `metric`
    prepares them)."""
    n = rows.shape[0]
    result = LabelingResult.start(y, k)
    labels, step, round_, confidence = result.labels, result.step, result.round, result.confidence
    n_voters, fallback, source = result.n_voters, result.fallback, result.source
    if (y >= 0).all():
        return result

    neighbours = _index_array(graph.indices, n)
    rev_ptr, rev_idx, rev_pos = _reverse_adjacency(neighbours, n, positions=True)
    n_classes = int(labels.max()) + 1
    # labels, and the classes each point counts, are read at random: the narrowest type
    s = _State(neighbours, (rev_ptr, rev_idx, rev_pos), labels.astype(narrow_int(n_classes)),
               n_classes)
    bridges = _BridgeSearch(rows, y >= 0, metric, bridge)
    d_k = None
    while True:
        status = _run_rounds(neighbours, rev_ptr, rev_idx, rev_pos, s.work, s.tally, s.peak,
                             s.bucket_head, s.node_point, s.node_next, s.counters, step,
                             round_, confidence, n_voters, s.order, border_ratio,
                             *s.rounds, _prefetch.worth_it(n))
        if status == _DONE:
            labels[:] = s.work
            result.approximate_bridges = bridges.approximate
            return result
        point, src, nearness = bridges.next(s.work >= 0, s.order[:s.counters[_STEP]])
        if d_k is None:     # the Euclidean confidence's scale, as in hdl_label
            d_k = _euclidean_scale(graph)
        _mark_labeled(point, s.work[src], rev_ptr, rev_idx, rev_pos, s.work, s.tally,
                      s.bucket_head, s.node_point, s.node_next, s.counters, step, round_,
                      s.order)
        s.counters[_ROUND] += 1
        fallback[point] = True
        source[point] = src
        confidence[point] = _bridge_confidence(metric, nearness, d_k)
        n_voters[point] = 0


# One row of `_State.tally` per point: its vote, then a slot per class among its labeled
# neighbours (the class, how many of them, the position of the nearest in its list)
_N_SLOTS, _WINNER, _VOTES, _SLOTS = 0, 1, 2, 3


class _State:
    """What the kernel keeps between bridges.

    Per point, one row of `tally` (everything a new labeled neighbour updates, so that it
    costs one or two cache lines, not six arrays' worth): how many classes its labeled
    neighbours hold, its current vote (winner class, its votes), and up to k slots of
    (class, count, nearest position). Per class: the highest level it has labeled at
    (`peak`) and a bucket queue per level, linked lists in one node pool.
    """

    def __init__(self, neighbours: np.ndarray, reverse: tuple, work: np.ndarray,
                 n_classes: int):
        n, k = neighbours.shape
        # classes, counts and positions are < max(k, n_classes): the narrowest type
        self.work = work
        self.tally = np.zeros((n, _SLOTS + 3 * k), narrow_int(max(k, n_classes)))
        self.tally[:, _WINNER] = -1
        self.peak = np.zeros(n_classes, np.int64)
        n_unlabeled = int((work < 0).sum())
        # a point is pushed when its vote first exists and on each later change of it,
        # each caused by one more labeled neighbour: at most k times
        pool = n_unlabeled * k + 1
        node_dtype = np.int32 if pool < 2**31 else np.int64
        self.bucket_head = np.full((n_classes, k + 1), -1, node_dtype)
        self.node_point = np.empty(pool, node_dtype)
        self.node_next = np.empty(pool, node_dtype)
        self.counters = np.array([0, 0, n_unlabeled, 0], np.int64)
        self.order = np.empty(n_unlabeled, np.int64)
        self.rounds = round_arrays(n, n_unlabeled)
        _start_counts(*reverse, work, self.tally, self.bucket_head, self.node_point,
                      self.node_next, self.counters)


@numba.njit(cache=True)
def _push(point, c, level, bucket_head, node_point, node_next, counters):
    node = counters[_POOL_TOP]
    counters[_POOL_TOP] = node + 1
    node_point[node] = point
    node_next[node] = bucket_head[c, level]
    bucket_head[c, level] = node


@numba.njit(cache=True)
def _count_vote(q, c, pos, tally):
    """q gains a labeled neighbour of class c at position `pos` of its list. Returns True
    when q's vote (winner or votes) changed. Ties follow `_vote`: nearest class wins."""
    n_slots = tally[q, _N_SLOTS]
    s = _SLOTS
    end = _SLOTS + 3 * n_slots
    while s < end and tally[q, s] != c:
        s += 3
    if s == end:
        tally[q, s] = c
        tally[q, s + 1] = 0
        tally[q, s + 2] = pos
        tally[q, _N_SLOTS] = n_slots + 1
    count = tally[q, s + 1] + 1
    tally[q, s + 1] = count
    if pos < tally[q, s + 2]:
        tally[q, s + 2] = pos
    w = tally[q, _WINNER]
    if w == c or w < 0:
        tally[q, _WINNER] = c
        tally[q, _VOTES] = count
        return True
    # only c's count grew: the vote moves to c when c now has more votes, or as many with
    # a nearer labeled neighbour
    votes = tally[q, _VOTES]
    if count < votes:
        return False
    if count == votes:
        t = _SLOTS
        while tally[q, t] != w:
            t += 3
        if tally[q, s + 2] > tally[q, t + 2]:
            return False
    tally[q, _WINNER] = c
    tally[q, _VOTES] = count
    return True


@numba.njit(cache=True)
def _start_counts(rev_ptr, rev_idx, rev_pos, work, tally, bucket_head, node_point, node_next,
                  counters):
    """Every unlabeled point's votes from the labeled points, counted from those points'
    reverse lists (a few per cent of the edges when they are seeds, instead of a random read
    per edge of the graph; `hdl._count_labeled`), then its first place in the buckets. A
    point's counts, nearest positions and vote do not depend on the order its labeled
    neighbours are counted in (only where each class's slot sits in its row does)."""
    n = work.shape[0]
    for p in range(n):
        c = work[p]
        if c >= 0:
            for e in range(rev_ptr[p], rev_ptr[p + 1]):
                q = rev_idx[e]
                if work[q] < 0:
                    _count_vote(q, c, rev_pos[e], tally)
    for q in range(n - 1, -1, -1):
        if work[q] < 0 and tally[q, _WINNER] >= 0:
            _push(q, tally[q, _WINNER], tally[q, _VOTES], bucket_head, node_point, node_next,
                  counters)


@numba.njit(cache=True)
def _mark_labeled(p, label, rev_ptr, rev_idx, rev_pos, work, tally, bucket_head, node_point,
                  node_next, counters, step, round_, order):
    """Move p into D with `label`; every unlabeled point listing p gains a vote."""
    work[p] = label
    s = counters[_STEP]
    step[p] = s
    order[s] = p
    round_[p] = counters[_ROUND]
    counters[_STEP] = s + 1
    counters[_N_UNLABELED] -= 1
    for e in range(rev_ptr[p], rev_ptr[p + 1]):
        q = rev_idx[e]
        if work[q] < 0 and _count_vote(q, label, rev_pos[e], tally):
            _push(q, tally[q, _WINNER], tally[q, _VOTES], bucket_head, node_point, node_next,
                  counters)


@numba.njit(cache=True)
def _valid(p, c, level, work, tally):
    """Is a bucket entry (p in class c's bucket `level`) still p's current candidacy?"""
    return work[p] < 0 and tally[p, _WINNER] == c and tally[p, _VOTES] == level


@numba.njit(cache=True)
def _run_rounds(neighbours, rev_ptr, rev_idx, rev_pos, work, tally, peak, bucket_head,
                node_point, node_next, counters, step, round_, confidence, n_voters, order,
                border_ratio, in_round, members, score, keys, far):
    """Run rounds until every point is labeled (_DONE) or none has a labeled neighbour.
    The round's arrays are the caller's (`hdl.round_arrays`: `in_round` and `score` all False and 0
    on entry and on exit, room for the unlabeled points in `members` and `keys`). `far`:
    prefetch (`hdl_core._prefetch`), for labelings whose arrays do not fit in cache."""
    n, k = neighbours.shape
    n_classes = bucket_head.shape[0]
    flat = neighbours.reshape(-1)           # row p starts at flat[p * k]: for prefetching
    tally_flat = tally.reshape(-1)
    width = tally.shape[1]
    counts = np.zeros(n_classes, np.int64)
    first_pos = np.zeros(n_classes, np.int64)
    touched = np.zeros(k, np.int64)
    class_level = np.zeros(n_classes, np.int64)
    while counters[_N_UNLABELED] > 0:
        # every class's level: its highest bucket holding a valid candidate. Buckets hold
        # stale entries (labeled points, votes since changed), which never become valid
        # again (votes only grow): those in front of a bucket's first valid entry are
        # dropped, so a class that waits at its border is not scanned again and again.
        best_ratio = -1.0
        for c in range(n_classes):
            class_level[c] = 0
            for level in range(k, 0, -1):
                node = bucket_head[c, level]
                while node != -1 and not _valid(node_point[node], c, level, work, tally):
                    node = node_next[node]
                bucket_head[c, level] = node
                if node != -1:
                    class_level[c] = level
                    break
            if class_level[c] > 0:
                best_ratio = max(best_ratio, _peak_ratio(class_level[c], peak[c]))
        # first levels of the classes not at their border (or, when all are, of those
        # nearest their peaks); a taken bucket is emptied: its valid entries are all in it
        s = 0
        for c in range(n_classes):
            level = class_level[c]
            if level == 0:
                continue
            ratio = _peak_ratio(level, peak[c])
            if ratio < border_ratio and ratio < best_ratio:
                continue
            peak[c] = max(peak[c], level)
            node = bucket_head[c, level]
            while node != -1:
                p = node_point[node]
                if _valid(p, c, level, work, tally) and not in_round[p]:
                    in_round[p] = True
                    members[s] = p
                    s += 1
                node = node_next[node]
            bucket_head[c, level] = -1
        if s == 0:
            return _STALLED
        # second level (Algorithm 1, lines 9-20): most listed by the round's other points
        # first, equal scores by ascending index
        _second_level_order(neighbours, members, s, in_round, score, keys, far)
        # vote in that order, each vote seeing everything labeled so far (lines 21-24)
        for a in range(s):
            ahead = _prefetch_votes(a, s, keys, neighbours, flat, rev_ptr, rev_idx, work, far)
            if ahead >= 0:          # the points that list it: what `_count_vote` reads
                for e in range(rev_ptr[ahead], rev_ptr[ahead + 1]):
                    q = rev_idx[e]
                    prefetch(work, q)
                    prefetch(tally_flat, q * width)
                    prefetch(tally_flat, q * width + width - 1)
                _prefetch_result(ahead, work, step, round_, confidence, n_voters)
            p = keys[a] % n
            c, v, voters = _vote(neighbours[p], work, counts, first_pos, touched)
            confidence[p] = v / voters
            n_voters[p] = voters
            _mark_labeled(p, c, rev_ptr, rev_idx, rev_pos, work, tally, bucket_head,
                          node_point, node_next, counters, step, round_, order)
        for a in range(s):
            in_round[members[a]] = False
            score[members[a]] = 0
        counters[_ROUND] += 1
    return _DONE


@numba.njit(cache=True)
def _peak_ratio(level, peak):
    """level / the class's peak; a class that has not labeled yet is at its peak."""
    return level / peak if peak > 0 else math.inf

"""Hierarchical Dynamic Labeling as published (the paper's Algorithm 1) and kNN-DV (eq. 1).

`hdl_label` is the *paper's variant* (``HDLClassifier(variant="paper")``), kept exactly as
Algorithm 1 reads. hdl-studio's default is class-balanced HDL (`hdl_core.balanced`), which
keeps this vote, second level and bridge but gives every class its own first level, so
that no class floods the others.

The driver (`hdl_label`) validates, builds what the kernel needs and handles bridges; the
rounds themselves run in one compiled kernel (`_run_rounds`) over plain arrays:

* the kNN graph over D ∪ D' is fixed, so only "is labeled" changes while labeling;
* L_m (labeled neighbours of unlabeled m) is kept up to date through the reverse adjacency
  (who lists p among its k neighbours), built by counting, block by block of target points
  on large graphs so that its writes stay in cache;
* a bucket queue on L finds the first level (every unlabeled point with L = max L) without
  scanning all points each round;
* a round's voting order is known once its second level is sorted, so while one point votes
  the kernel asks for the memory of the points a few steps ahead (`hdl_core._prefetch`):
  beyond a million points the rounds otherwise spend most of their time waiting on it.

Every edge is touched a constant number of times, so a whole labeling costs O(n·k) after
the graph, plus sorting each first level (O(s log s)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from . import _prefetch
from ._prefetch import AHEAD, prefetch
from .bridge import ApproximateBridge, LabeledGroups, WaitingCopies, distinct_rows
from .config import BRIDGE_APPROX_MIN_PAIRS, BRIDGES
from .graph import (KnnGraph, build_knn_graph, check_k, exact_knn, get_metric, nearest_exactly,
                    rows_to_read)

_DONE, _STALLED = 0, 1


@dataclass
class LabelingResult:
    """Labels and the history of how each point got its label.

    Attributes
    ----------
    labels : ndarray (n,), int
        Class index of every point (seeds keep theirs).
    step : ndarray (n,), int
        Position in the global labeling order, 0, 1, 2, ...; -1 for seeds.
    round : ndarray (n,), int
        The round (level) in which the point was labeled; -1 for seeds. A bridge is a
        round of its own.
    confidence : ndarray (n,), float
        Share of the votes won by the chosen class (1.0 for seeds). A bridged point had no
        vote: its confidence is clipped to [0.001, 0.5], so it never outranks a vote that
        had a majority, and falls as the bridge gets longer, so a far bridge ranks below a
        near one. By cosine it is ``0.5 * cos`` to the labeled point it copied from; by
        Euclidean distance d it is ``0.5 * exp(-d / d_k)``, with d_k the median distance
        of a point to its k-th neighbour in the graph (1 when that is 0): a bridge as long
        as a typical neighbourhood gets 0.18, one of twice that 0.07.
    n_voters : ndarray (n,), int
        Labeled neighbours that voted (0 for seeds and bridged points).
    fallback : ndarray (n,), bool
        True for points labeled by a bridge (no labeled neighbour anywhere was left).
    source : ndarray (n,), int
        For bridged points the labeled point whose label was copied, else -1.
    k : int
        Neighbours per point used for the vote.
    approximate_bridges : int
        Bridges answered by the approximate search (``bridge="approx"``, or "auto" on a
        large input): their pair is the nearest among the pairs an inverted file proposed,
        not necessarily the nearest of all (`bridge.ApproximateBridge`). 0 when every
        bridge was exact.
    spread : tuple[int, float] or None
        Reach-ordered HDL (`hdl_core.reach`): the seeds' spread as it ran, (steps, alpha);
        the default length depends on how deep the seeds are, so a run records it. None
        for the other variants.
    """

    labels: np.ndarray
    step: np.ndarray
    round: np.ndarray
    confidence: np.ndarray
    n_voters: np.ndarray
    fallback: np.ndarray
    source: np.ndarray
    k: int
    approximate_bridges: int = 0
    spread: tuple | None = None

    @classmethod
    def start(cls, y: np.ndarray, k: int) -> "LabelingResult":
        """The result before any vote: seeds keep their labels (-1 elsewhere), no step,
        round, vote or bridge yet. The kernels fill it in place."""
        n = y.shape[0]
        return cls(y.copy(), np.full(n, -1, np.int64), np.full(n, -1, np.int64),
                   np.ones(n, np.float64), np.zeros(n, np.int64), np.zeros(n, np.bool_),
                   np.full(n, -1, np.int64), k)

    @property
    def order(self) -> np.ndarray:
        """Point indices in the order they were labeled (seeds excluded)."""
        labeled = np.flatnonzero(self.step >= 0)
        return labeled[np.argsort(self.step[labeled], kind="stable")]

    @property
    def n_rounds(self) -> int:
        return int(self.round.max()) + 1 if self.round.size else 0

    @property
    def seed_labels(self) -> np.ndarray:
        """The labels the run started from: each seed's class, -1 elsewhere (the `y` it was
        given). Re-running, comparing or explaining a run starts from these."""
        return np.where(self.step < 0, self.labels, -1)


def validate_labels(y, n: int, *, name: str = "y") -> np.ndarray:
    """Check a label vector in scikit-learn's convention (-1 = unlabeled, 0..C-1 = classes)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {n} rows; "
                         f"give exactly one label (-1 = unlabeled) per row")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ValueError(f"{name} must hold whole class numbers (-1 = unlabeled)")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class indices (-1 = unlabeled), got dtype "
                         f"{y.dtype}; HDLClassifier accepts string classes")
    y = y.astype(np.int64)
    bad = np.flatnonzero(y < -1)
    if bad.size:
        raise ValueError(f"{name} has labels below -1 at positions "
                         f"{', '.join(map(str, bad[:10]))}; use -1 for unlabeled and 0..C-1 for classes")
    if not (y >= 0).any():
        raise ValueError(f"{name} has no labeled point (all -1); label at least one point per class")
    return y


def _check_graph(graph: KnnGraph, n: int, k: int, metric: str = "cosine") -> KnnGraph:
    if not isinstance(graph, KnnGraph):
        raise ValueError(f"graph must be a KnnGraph, got {type(graph).__name__}")
    if graph.metric != metric:
        raise ValueError(f"graph was built with metric={graph.metric!r} but hdl_label was "
                         f"asked for metric={metric!r}; build the graph with "
                         f"build_knn_graph(X, k, metric={metric!r}) or label with "
                         f"metric={graph.metric!r}")
    if graph.n != n:
        raise ValueError(f"graph has {graph.n} rows but X has {n}; build the graph from the same X")
    if graph.k < k:
        raise ValueError(f"graph has {graph.k} neighbours per point but k={k}; "
                         f"build it with at least k neighbours")
    graph = graph.first(k)
    idx = graph.indices
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"graph.indices must lie in [0, {n - 1}]")
    for start in range(0, n, 1 << 20):      # in chunks: no n·k temporary at 100M points
        rows = idx[start:start + (1 << 20)]
        if (rows == np.arange(start, start + rows.shape[0])[:, None]).any():
            raise ValueError("graph lists a point as its own neighbour; KnnGraph excludes self")
    return graph


def hdl_label(X, y, *, k: int, graph: KnnGraph | None = None,
              metric: str = "cosine", bridge: str = "exact") -> LabelingResult:
    """Label every unlabeled point by Hierarchical Dynamic Labeling (Algorithm 1): the
    paper's variant.

    Where classes touch, one first level over all points lets the class whose region fills
    first flood the others; `hdl_core.reach.reach_label` (the default variant) and
    `hdl_core.balanced.balanced_label` avoid that, and `hdl_core.flood.flood_report` tells
    when a run looks like a flood.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings of labeled and unlabeled points.
    y : array-like of shape (n,), int
        -1 for unlabeled, 0..C-1 for seed classes.
    k : int
        Neighbours per point.
    graph : KnnGraph, optional
        The kNN graph of `X` with at least `k` neighbours per point (its first `k`
        columns are used), built with the same `metric`. Built (exactly up to
        `graph.EXACT_MAX_POINTS` points) when None.
    metric : {"cosine", "euclidean"}, default="cosine"
        How points are compared: for the graph when it is built here, and for the bridge.
    bridge : {"exact", "approx", "auto"}, default="exact"
        How a bridge is searched (`check_bridge`): "exact" is Algorithm 1's rule below;
        "approx" searches an inverted file (needs faiss) and may pick a pair slightly
        farther than the nearest; "auto" is approx only when the first bridge would
        compare more than `config.BRIDGE_APPROX_MIN_PAIRS` pairs.

    Returns
    -------
    LabelingResult

    Notes
    -----
    Each round: L_m = labeled neighbours of unlabeled m; the first level is every unlabeled
    point with L_m = max L; the second level orders it by the number of other first-level
    points that list it among their k neighbours (descending, ties by ascending index);
    points are then voted in that order, each vote seeing the points labeled before it,
    this round included. A vote is the majority class of the labeled neighbours; a tie goes
    to the tied class whose labeled neighbour comes first in the neighbour list.
    When max L = 0 the remaining point nearest (by `metric`, exactly in float64) to any
    labeled point copies that point's label (a bridge, flagged `fallback`) and forms a
    round of its own; ties go to the lowest unlabeled index, then the lowest labeled one.
    An approximate bridge (``bridge="approx"``) takes the nearest of the pairs an inverted
    file proposes instead, its nearness still computed exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core import hdl_label
    >>> X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    >>> hdl_label(X, np.array([0, -1, 1, -1]), k=1).labels.tolist()
    [0, 0, 1, 1]
    """
    # with a graph given, rows are read only at a bridge: no normalised copy of X
    rows = get_metric(metric).prepare(X) if graph is None else rows_to_read(X, metric)
    return label_prepared_rows(rows, y, k=k, graph=graph, metric=metric, bridge=bridge)


def label_prepared_rows(rows: np.ndarray, y, *, k: int, graph: KnnGraph | None = None,
                        metric: str = "cosine", bridge: str = "exact") -> LabelingResult:
    """`hdl_label` on rows the metric has already prepared (cosine: unit float32 rows, as
    `rows.normalize_rows` or `rows.normalize_rows_inplace` give, or `rows.UnitRows`,
    which scales them when read), without a copy of them: the graph-only CLI path and the
    app, where X may not fit twice. Same results as `hdl_label` on the rows before
    preparing."""
    bridge = check_bridge(bridge)
    n = rows.shape[0]
    y = validate_labels(y, n)
    k = check_k(k, n)
    graph = build_knn_graph(rows, k, method="auto", metric=metric) if graph is None \
        else _check_graph(graph, n, k, metric)

    labeled = y >= 0
    result = LabelingResult.start(y, k)
    labels, step, round_, confidence = result.labels, result.step, result.round, result.confidence
    n_voters, fallback, source = result.n_voters, result.fallback, result.source
    if labeled.all():
        return result

    neighbours = _index_array(graph.indices, n)
    rev_ptr, rev_idx = _reverse_adjacency(neighbours, n)
    n_classes = int(labels.max()) + 1
    state = _KernelState.start(neighbours, rev_ptr, rev_idx, labeled, n_classes)
    bridges = _BridgeSearch(rows, labeled, metric, bridge)
    work = labels.astype(narrow_int(n_classes))     # read at random by every vote
    d_k = None
    while True:
        status = _run_rounds(neighbours, rev_ptr, rev_idx, state.labeled, work, state.L,
                             state.bucket_head, state.node_point, state.node_next, state.counters,
                             step, round_, confidence, n_voters, state.order, n_classes,
                             *state.rounds, _prefetch.worth_it(n))
        if status == _DONE:
            labels[:] = work
            result.approximate_bridges = bridges.approximate
            return result
        point, src, nearness = bridges.next(state.labeled, state.order[:state.counters[_STEP]])
        if d_k is None:     # the Euclidean confidence's scale, once a bridge needs it
            d_k = _euclidean_scale(graph)
        _label_bridge(point, work[src], rev_ptr, rev_idx, state.labeled, work, state.L,
                      state.bucket_head, state.node_point, state.node_next, state.counters,
                      step, round_, state.order)
        fallback[point] = True
        source[point] = src
        confidence[point] = _bridge_confidence(metric, nearness, d_k)
        n_voters[point] = 0


def check_bridge(bridge) -> str:
    """Validate a ``bridge=`` value (`config.BRIDGES`); "approx" needs faiss."""
    if not isinstance(bridge, str) or bridge not in BRIDGES:
        raise ValueError(f"bridge must be one of {', '.join(map(repr, BRIDGES))}, got {bridge!r}")
    if bridge == "approx" and _faiss() is None:
        raise ValueError("bridge='approx' needs faiss: pip install faiss-cpu (or "
                         "hdl-studio[scale]); bridge='exact' needs nothing more")
    return bridge


def _faiss():
    from .graph import _faiss as faiss_module
    return faiss_module()


class _BridgeSearch:
    """The bridge search a labeling asked for, chosen at its first bridge.

    "exact" is `_Bridge`; "approx" is `bridge.ApproximateBridge`; "auto" is approx when
    the first bridge would compare more than `BRIDGE_APPROX_MIN_PAIRS` unlabeled x
    labeled pairs and faiss is installed, exact otherwise, and keeps that choice for the
    labeling's later bridges. ``approximate`` counts the bridges answered approximately.
    """

    def __init__(self, rows: np.ndarray, seed_mask: np.ndarray, metric: str, bridge: str):
        self.rows, self.seed_mask, self.metric, self.bridge = rows, seed_mask, metric, bridge
        self.search = None
        self.is_approximate = False
        self.approximate = 0

    def next(self, labeled: np.ndarray, order: np.ndarray) -> tuple[int, int, float]:
        if self.search is None:
            n_labeled = int(np.count_nonzero(labeled))
            pairs = n_labeled * (labeled.size - n_labeled)
            self.is_approximate = self.bridge == "approx" or (
                self.bridge == "auto" and pairs > BRIDGE_APPROX_MIN_PAIRS
                and _faiss() is not None)
            search = ApproximateBridge if self.is_approximate else _Bridge
            self.search = search(self.rows, self.seed_mask, self.metric)
        answer = self.search.next(labeled, order)
        self.approximate += self.is_approximate
        return answer


def _euclidean_scale(graph) -> float:
    """d_k of a Euclidean bridge's confidence: the median distance to the k-th neighbour,
    taken in float32 whatever the graph stores (a graph folder keeps float16), so a stored
    graph gives the scale its float32 copy gives; 1 when that is 0."""
    return float(np.median(graph.distances[:, -1].astype(np.float32))) or 1.0


def _bridge_confidence(metric: str, nearness: float, d_k: float) -> float:
    """In [0.001, 0.5], falling with the bridge's length (see `LabelingResult.confidence`)."""
    if metric == "cosine":
        value = 0.5 * -nearness                 # nearness = -cos
    else:
        value = 0.5 * math.exp(-math.sqrt(nearness) / d_k)   # nearness = distance²
    return min(0.5, max(0.001, value))


def narrow_int(largest: int, at_least=np.int8) -> type:
    """The narrowest signed integer type, no narrower than `at_least`, that holds every value
    in [-1, largest]. The labeling kernels' arrays are read at random addresses, once per
    edge: at 10M points, labels of one byte instead of four take 10 MB instead of 40, which
    a 32 MB last-level cache can hold.

    >>> narrow_int(10).__name__, narrow_int(300).__name__, narrow_int(10, np.int32).__name__
    ('int8', 'int16', 'int32')
    """
    for dtype in (np.int8, np.int16, np.int32, np.int64):
        if np.dtype(dtype).itemsize >= np.dtype(at_least).itemsize \
                and largest <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"{largest} does not fit in 64 bits")


def _index_array(indices: np.ndarray, n: int) -> np.ndarray:
    """Neighbour lists as the kernel reads them: contiguous, int32 while n allows it.

    The rounds are bound by random reads of neighbour lists; 4-byte indices put a whole
    list of k <= 16 in one cache line and halve the reverse adjacency.
    """
    return np.ascontiguousarray(indices, dtype=np.int32 if n < 2**31 else np.int64)


# counters[...] slots shared between the driver and the kernel
_STEP, _ROUND, _N_UNLABELED, _POOL_TOP = 0, 1, 2, 3


@dataclass
class _KernelState:
    labeled: np.ndarray
    L: np.ndarray
    bucket_head: np.ndarray
    node_point: np.ndarray
    node_next: np.ndarray
    counters: np.ndarray
    order: np.ndarray
    rounds: tuple       # `round_arrays`

    @classmethod
    def start(cls, neighbours, rev_ptr, rev_idx, seed_mask, n_classes):
        n, k = neighbours.shape
        labeled = seed_mask.copy()
        # L <= k: the narrowest type keeps this randomly-read array in cache
        L = _count_labeled(rev_ptr, rev_idx, labeled, narrow_int(k))
        n_unlabeled = int((~labeled).sum())
        # each unlabeled point enters a bucket once at start and once per increment of L
        pool = n_unlabeled + n_unlabeled * k + 1
        node_dtype = np.int32 if pool < 2**31 else np.int64
        bucket_head = np.full(k + 1, -1, node_dtype)
        node_point = np.empty(pool, node_dtype)
        node_next = np.empty(pool, node_dtype)
        counters = np.array([0, 0, n_unlabeled, 0], np.int64)
        _fill_buckets(labeled, L, bucket_head, node_point, node_next, counters)
        return cls(labeled, L, bucket_head, node_point, node_next, counters,
                   np.empty(n_unlabeled, np.int64), round_arrays(n, n_unlabeled))


def round_arrays(n: int, n_unlabeled: int) -> tuple:
    """A round's own arrays, as the rounds kernels take them: a flag and a score per point
    (all False and 0 between rounds), and room for the round's points and their sort keys.
    Made once per labeling, not at every call of a kernel (one per bridge), and by numpy:
    its large arrays get transparent huge pages where the system allows them, numba's own
    do not."""
    return (np.zeros(n, np.bool_), np.empty(n_unlabeled, np.int64), np.zeros(n, np.int32),
            np.empty(n_unlabeled, np.int64))


# Share of (vector, leaf) pairs the bounds leave to compare past which a labeling stops
# building trees (see `_Bridge.exhaustive`).
EXHAUSTIVE_SHARE = 0.9


class _Bridge:
    """The unlabeled point nearest to any labeled point, without the all-pairs scan.

    Identical rows are one vector (`bridge.distinct_rows`): a folder with many copies of
    an image is searched over its distinct images. Labeled vectors are kept in trees
    (`bridge.LabeledGroups`: 2-means halves, balls above, leaves with a centre, a few
    main directions and two radii), one tree per batch labeled between two bridges, never
    changed. Every vector v with an unlabeled copy keeps ``best[v]`` (its nearest labeled
    vector among the leaves compared with it so far, exactly in float64) and ``pend[v]``
    (a lower bound for the nodes skipped for it). A node is skipped when its bound exceeds
    ``tau``, the best pair found so far; the search ends when no vector has
    ``pend <= tau``, so every pair that could be nearer than, or tie with, the answer has
    been compared exactly (`graph.nearest_exactly`). The answer is the exact rule's,
    whatever the grouping: nearness ``-cos`` or the squared Euclidean distance, smaller is
    nearer; ties go to the lowest unlabeled index, then to the lowest labeled index.
    """

    BLOCK = 4096        # vectors bounded, and labeled vectors compared, at once
    PROBE = 64          # vectors led to one leaf each for a first tau (see `_probe`)

    def __init__(self, rows: np.ndarray, seed_mask: np.ndarray, metric: str = "cosine"):
        self.metric = get_metric(metric)
        self.X = np.ascontiguousarray(rows)       # as the metric prepared them
        self.pending = np.flatnonzero(seed_mask)
        self.synced_steps = 0
        self.groups = None      # built at the first bridge: a labeling without one pays nothing

    def _start(self) -> None:
        self.vector, self.first = distinct_rows(self.X)     # point -> vector -> first copy
        n_vectors = self.first.size
        self.copies = WaitingCopies(self.vector, n_vectors)
        self.groups = LabeledGroups(self.X)
        self.grouped = np.zeros(n_vectors, np.bool_)
        self.lowest_labeled = np.full(n_vectors, np.iinfo(np.int64).max, np.int64)
        self.best = np.full(n_vectors, np.inf)
        self.best_src = np.full(n_vectors, np.iinfo(np.int64).max, np.int64)
        self.pend = np.full(n_vectors, np.inf)
        # best_src names the lowest labeled copy as it was when scanned; once a lower copy
        # of a grouped vector gets labeled, the answer's source is looked up again
        self.sources_stale = False
        # set when the bounds prune almost nothing (embeddings with isotropic noise): then
        # new labeled vectors are compared with every unlabeled one outright, no trees
        self.exhaustive = False
        self.loose = np.empty(0, np.int64)      # labeled first copies outside any tree

    def next(self, labeled: np.ndarray, order: np.ndarray) -> tuple[int, int, float]:
        if self.groups is None:
            self._start()
        new = np.concatenate([self.pending, order[self.synced_steps:]])
        self.pending, self.synced_steps = new[:0], len(order)
        new_vectors = self.vector[new]
        if (self.grouped[new_vectors] & (new < self.lowest_labeled[new_vectors])).any():
            self.sources_stale = True
        np.minimum.at(self.lowest_labeled, new_vectors, new)
        fresh = np.unique(new_vectors[~self.grouped[new_vectors]])
        self.grouped[fresh] = True
        self.copies.update(new_vectors, labeled)
        # each vector with unlabeled copies once, by its lowest unlabeled copy (ties go there)
        vectors = np.flatnonzero(self.copies.waiting)
        lowest_unlabeled = self.copies.lowest(vectors)
        self.tau = self.best[vectors].min()
        if self.exhaustive:
            self._compare_all(vectors, self.first[fresh])
            self.loose = np.concatenate([self.loose, self.first[fresh]])
        else:
            added = self.groups.add(self.first[fresh], seed=len(order))
            if added is not None:
                self._compare(vectors, [added])
        while True:
            self.tau = self.best[vectors].min()
            pend = self.pend[vectors]
            need = vectors[(pend <= self.tau) & np.isfinite(pend)]
            if need.size == 0:
                break
            # groups bounded below pend were compared already; only the rest are left
            floor = self.pend[need]
            self.pend[need] = np.inf
            self._compare(need, self.groups.roots, floor)
        tied = np.flatnonzero(self.best[vectors] == self.tau)
        pick = tied[np.argmin(lowest_unlabeled[tied])]
        source = (self._lowest_source(vectors[pick]) if self.sources_stale
                  else int(self.best_src[vectors[pick]]))
        return int(lowest_unlabeled[pick]), source, float(self.tau)

    def _compare(self, vectors: np.ndarray, roots, floor: np.ndarray | None = None) -> None:
        """Walk the trees under `roots` for `vectors`, block by block: a node whose bound
        exceeds tau is skipped (its bound kept in ``pend``), a leaf within tau is compared
        row by row. A leaf bounded below ``floor`` (per vector) was compared with that
        vector before and is left out."""
        groups = self.groups
        for start in range(0, vectors.size, self.BLOCK):
            block = vectors[start:start + self.BLOCK]
            rows = self.X[self.first[block]]
            below = None if floor is None else floor[start:start + self.BLOCK, None]
            if not np.isfinite(self.tau):
                self._probe(block[:self.PROBE], rows[:self.PROBE], roots)
            pend = np.full(block.size, np.inf)
            nodes = np.asarray(roots, np.int64)
            alive = np.ones((block.size, nodes.size), np.bool_)
            while nodes.size:
                bound = self._nearness_bounds(rows, nodes)
                leaf = groups.node_leaf[nodes] >= 0
                if below is not None:
                    # bounds are recomputed here, in blocks of another shape: allow for rounding
                    alive &= ~(leaf[None, :] & (bound < below - 1e-3 * (1.0 + np.abs(below))))
                skip = alive & (bound > self.tau)
                pend = np.minimum(pend, np.where(skip, bound, np.inf).min(axis=1))
                alive &= ~skip
                if start == 0 and leaf.any() and alive[:, leaf].mean() > EXHAUSTIVE_SHARE:
                    self.exhaustive = True      # from the next batch of labeled vectors on
                # leaves nearest first: tau tightens as they are compared
                leaves = np.flatnonzero(leaf & alive.any(axis=0))
                leaves = leaves[np.argsort(np.where(alive, bound, np.inf)[:, leaves].min(axis=0),
                                           kind="stable")]
                for position, j in enumerate(leaves):
                    late = alive[:, j] & (bound[:, j] > self.tau)
                    pend[late] = np.minimum(pend[late], bound[late, j])
                    alive[:, j] &= ~late
                    rest = leaves[position:]
                    if position and alive[:, rest].mean() > 0.5:
                        # the bounds prune little here: one product over every leaf left
                        # (a pair they would have skipped is compared too, to no harm)
                        pend = np.minimum(pend, self._scan_leaves(block, rows, nodes[rest],
                                                                  alive[:, rest]))
                        break
                    near = np.flatnonzero(alive[:, j])
                    if near.size:
                        self._scan(block[near], rows[near],
                                   groups.members[groups.node_leaf[nodes[j]]])
                inner = np.flatnonzero(~leaf & alive.any(axis=0))
                nodes = groups.node_children[nodes[inner]].ravel()
                alive = np.repeat(alive[:, inner], 2, axis=1)
            self.pend[block] = np.minimum(self.pend[block], pend)

    def _compare_all(self, vectors: np.ndarray, members: np.ndarray) -> None:
        """Every one of `vectors` against every labeled vector in `members`, in big blocks."""
        for start in range(0, vectors.size, self.BLOCK):
            block = vectors[start:start + self.BLOCK]
            rows = self.X[self.first[block]]
            for m_start in range(0, members.size, self.BLOCK):
                self._scan(block, rows, members[m_start:m_start + self.BLOCK])

    def _scan_leaves(self, block, rows, leaf_nodes, alive) -> np.ndarray:
        """Every row still within tau of any of `leaf_nodes` against all their members, in
        big blocks; returns the bound of the rows left out (inf for the rows compared)."""
        groups = self.groups
        bound = np.where(alive, self._nearness_bounds(rows, leaf_nodes), np.inf)
        compared = (bound <= self.tau).any(axis=1)
        members = np.concatenate([groups.members[groups.node_leaf[node]]
                                  for node in leaf_nodes])
        near = np.flatnonzero(compared)
        if near.size:
            for start in range(0, members.size, self.BLOCK):
                self._scan(block[near], rows[near], members[start:start + self.BLOCK])
        return np.where(compared, np.inf, bound.min(axis=1))

    def _probe(self, vectors: np.ndarray, rows: np.ndarray, roots) -> None:
        """A first tau: each of a few vectors compared with the leaf it reaches by always
        taking the nearer-bounded child."""
        groups = self.groups
        for vector, row in zip(vectors, rows):
            row = row[None]
            roots_ = np.asarray(roots, np.int64)
            node = roots_[np.argmin(self._nearness_bounds(row, roots_)[0])]
            while groups.node_leaf[node] < 0:
                children = groups.node_children[node]
                node = children[np.argmin(self._nearness_bounds(row, children)[0])]
            self._scan(np.array([vector]), row, groups.members[groups.node_leaf[node]])

    def _leaves_within(self, row: np.ndarray, limit: float) -> list[int]:
        """Leaves whose bound for `row` does not exceed `limit`."""
        groups = self.groups
        found, nodes = [], np.asarray(groups.roots, np.int64)
        while nodes.size:
            keep = nodes[self._nearness_bounds(row[None], nodes)[0] <= limit]
            leaf = groups.node_leaf[keep] >= 0
            found += groups.node_leaf[keep[leaf]].tolist()
            nodes = groups.node_children[keep[~leaf]].ravel()
        return found

    def _nearness_bounds(self, rows: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Lower bounds of the nearness of `rows` to the labeled members under each node."""
        squared = self.groups.node_bounds(rows, nodes)
        if self.metric.exact_pair == 1:
            return squared
        # -u·l = (|u - l|² - |u|² - |l|²) / 2, with |l| at most the largest labeled norm
        u_sq = np.einsum("ij,ij->i", rows, rows).astype(np.float64)
        return (squared - u_sq[:, None] - self.groups.largest_norm ** 2) / 2.0 - 1e-6

    def _scan(self, vectors: np.ndarray, rows: np.ndarray, members: np.ndarray) -> None:
        """Compare `vectors` (their `rows`) with the labeled `members` (first copies)
        exactly; ties go to the lowest labeled copy."""
        near, src = nearest_exactly(self.metric, rows, self.X[members],
                                    self.lowest_labeled[self.vector[members]])
        best, best_src = self.best[vectors], self.best_src[vectors]
        better = (near < best) | ((near == best) & (src < best_src))
        self.best[vectors[better]] = near[better]
        self.best_src[vectors[better]] = src[better]
        self.tau = min(self.tau, float(near.min()))

    def _lowest_source(self, vector: int) -> int:
        """The lowest labeled index among the labeled points at the answer's nearness."""
        row = self.X[self.first[vector]]
        members = np.concatenate([self.groups.members[g]
                                  for g in self._leaves_within(row, self.tau)] + [self.loose])
        # the scan breaks ties by the value given per column: the lowest labeled copy
        _, src = nearest_exactly(self.metric, row[None], self.X[members],
                                 self.lowest_labeled[self.vector[members]])
        return int(src[0])


# Targets per block of the blocked reverse adjacency: a block's pointers and its part of
# the reverse lists (2^16 · (8 + 4k) bytes, 3 MiB at k = 10) stay in cache while filled.
# Measured on random k = 10 graphs: at 10M points 13–15 ns per edge against 33–38 for the
# direct scatter, at 1M 12–13 against 19–22; block bits 14–17 within noise of each other.
REVERSE_BLOCK_BITS = 16


def _reverse_adjacency(neighbours, n, positions=False):
    """CSR of "who lists p as a neighbour": ``rev_idx[rev_ptr[p]:rev_ptr[p + 1]]`` are the
    points whose lists hold p, ascending. O(n·k), no sort. With `positions`, also
    ``rev_pos``: for each entry, p's position in that point's list. Pointers and positions
    take the narrowest type that holds them (`narrow_int`). From four blocks of targets up
    the entries are first grouped by block (`_reverse_adjacency_blocked`): the same arrays,
    without a random write over all of memory per edge."""
    k = neighbours.shape[1]
    rev_pos = np.empty(n * k if positions else 0, narrow_int(k))
    rev_ptr = np.zeros(n + 1, narrow_int(n * k, at_least=np.int32))
    # made here, by numpy: read at random by every labeling, it gets transparent huge
    # pages where the system allows them (numba's own allocations do not)
    rev_idx = np.empty(n * k, neighbours.dtype)
    if n >> REVERSE_BLOCK_BITS < 4:
        _reverse_adjacency_direct(neighbours, n, rev_ptr, rev_idx, rev_pos)
    else:
        _reverse_adjacency_blocked(neighbours, n, REVERSE_BLOCK_BITS, rev_ptr, rev_idx,
                                   rev_pos)
    return (rev_ptr, rev_idx, rev_pos) if positions else (rev_ptr, rev_idx)


@numba.njit(cache=True)
def _reverse_adjacency_direct(neighbours, n, rev_ptr, rev_idx, rev_pos):
    """`_reverse_adjacency` by counting and one scatter into `rev_ptr` (zeros on entry)
    and `rev_idx`; fills `rev_pos` too unless it is empty."""
    k = neighbours.shape[1]
    for i in range(n):
        for j in range(k):
            rev_ptr[neighbours[i, j] + 1] += 1
    for p in range(n):
        rev_ptr[p + 1] += rev_ptr[p]
    fill = rev_ptr[:-1].copy()
    with_positions = rev_pos.size > 0
    for i in range(n):
        for j in range(k):
            p = neighbours[i, j]
            rev_idx[fill[p]] = i
            if with_positions:
                rev_pos[fill[p]] = j
            fill[p] += 1


@numba.njit(cache=True)
def _reverse_adjacency_blocked(neighbours, n, bits, rev_ptr, rev_idx, rev_pos):
    """`_reverse_adjacency` in two passes (bits <= 16): every edge (i lists p) is first
    appended, in order of i, to the list of p's block of 2^bits targets (i, and p's low
    bits); then each block is counted, summed and scattered within its own range, which
    fits in cache. Fills `rev_ptr` (zeros on entry) and `rev_idx`, and `rev_pos` too
    unless it is empty. Extra memory while building: 6 bytes per edge (7 with positions)."""
    k = neighbours.shape[1]
    with_positions = rev_pos.size > 0
    n_blocks = (n >> bits) + 1
    low = (1 << bits) - 1
    block_start = np.zeros(n_blocks + 1, np.int64)
    for i in range(n):
        for j in range(k):
            block_start[(neighbours[i, j] >> bits) + 1] += 1
    for b in range(n_blocks):
        block_start[b + 1] += block_start[b]
    cursor = block_start[:-1].copy()
    source = np.empty(n * k, neighbours.dtype)
    target_low = np.empty(n * k, np.uint16)
    position = np.empty(n * k if with_positions else 0, rev_pos.dtype)
    for i in range(n):
        for j in range(k):
            p = neighbours[i, j]
            e = cursor[p >> bits]
            source[e] = i
            target_low[e] = p & low
            if with_positions:
                position[e] = j
            cursor[p >> bits] = e + 1
    for b in range(n_blocks):
        lo = b << bits
        hi = min(n, lo + (1 << bits))
        for e in range(block_start[b], block_start[b + 1]):
            rev_ptr[lo + target_low[e] + 1] += 1
        rev_ptr[lo] = block_start[b]
        for p in range(lo, hi):
            rev_ptr[p + 1] += rev_ptr[p]
        # rev_ptr[p] serves as p's fill cursor, ending at p's end = p + 1's start ...
        for e in range(block_start[b], block_start[b + 1]):
            p = lo + target_low[e]
            rev_idx[rev_ptr[p]] = source[e]
            if with_positions:
                rev_pos[rev_ptr[p]] = position[e]
            rev_ptr[p] += 1
        # ... so shifting the block's cursors up by one gives the starts back
        for p in range(hi - 1, lo - 1, -1):
            rev_ptr[p + 1] = rev_ptr[p]
        rev_ptr[lo] = block_start[b]


def _count_labeled(rev_ptr, rev_idx, labeled, dtype):
    """L[i] = how many entries of i's neighbour list are labeled, counted from the labeled
    points' reverse lists: one write per edge into a labeled point (a few per cent of the
    edges when the labeled points are seeds) instead of one random read per edge of the
    graph. On random k = 10 lists with 1 % of the points labeled: 0.10 s against 1.85 s for
    the scan of every list at 10M points, 6 ms against 17 – 27 ms at 1M."""
    L = np.zeros(labeled.shape[0], dtype)
    _count_labeled_into(rev_ptr, rev_idx, labeled, L)
    return L


@numba.njit(cache=True)
def _count_labeled_into(rev_ptr, rev_idx, labeled, L):
    for p in range(labeled.shape[0]):
        if labeled[p]:
            for e in range(rev_ptr[p], rev_ptr[p + 1]):
                L[rev_idx[e]] += 1


@numba.njit(cache=True)
def _push(point, bucket, bucket_head, node_point, node_next, counters):
    node = counters[_POOL_TOP]
    counters[_POOL_TOP] = node + 1
    node_point[node] = point
    node_next[node] = bucket_head[bucket]
    bucket_head[bucket] = node


@numba.njit(cache=True)
def _fill_buckets(labeled, L, bucket_head, node_point, node_next, counters):
    for p in range(labeled.shape[0] - 1, -1, -1):
        if not labeled[p]:
            _push(p, L[p], bucket_head, node_point, node_next, counters)


@numba.njit(cache=True)
def _mark_labeled(p, label, rev_ptr, rev_idx, labeled, labels, L,
                  bucket_head, node_point, node_next, counters, step, round_, order):
    """Move p into D; every unlabeled point that lists p gains one labeled neighbour."""
    labeled[p] = True
    labels[p] = label
    s = counters[_STEP]
    step[p] = s
    order[s] = p
    round_[p] = counters[_ROUND]
    counters[_STEP] = s + 1
    counters[_N_UNLABELED] -= 1
    for e in range(rev_ptr[p], rev_ptr[p + 1]):
        q = rev_idx[e]
        if labels[q] < 0:                   # unlabeled (labels doubles as the mask: one read)
            L[q] += 1
            _push(q, L[q], bucket_head, node_point, node_next, counters)


@numba.njit(cache=True)
def _label_bridge(p, label, rev_ptr, rev_idx, labeled, labels, L,
                  bucket_head, node_point, node_next, counters, step, round_, order):
    _mark_labeled(p, label, rev_ptr, rev_idx, labeled, labels, L,
                  bucket_head, node_point, node_next, counters, step, round_, order)
    counters[_ROUND] += 1


@numba.njit(cache=True)
def _vote(neighbour_row, labels, counts, first_pos, touched):
    """Majority class among the labeled entries (label >= 0) of one neighbour list.

    Returns (class, votes for it, voters). A tie goes to the tied class whose labeled
    neighbour comes first in the list. `counts` is all zeros on entry and on exit.
    """
    n_touched = 0
    voters = 0
    for j in range(neighbour_row.shape[0]):
        c = labels[neighbour_row[j]]
        if c >= 0:
            if counts[c] == 0:
                first_pos[c] = j
                touched[n_touched] = c
                n_touched += 1
            counts[c] += 1
            voters += 1
    best, best_count, best_pos = -1, 0, 0
    for t in range(n_touched):
        c = touched[t]
        if counts[c] > best_count or (counts[c] == best_count and first_pos[c] < best_pos):
            best, best_count, best_pos = c, counts[c], first_pos[c]
        counts[c] = 0
    return best, best_count, voters


@numba.njit(cache=True)
def _run_rounds(neighbours, rev_ptr, rev_idx, labeled, labels, L,
                bucket_head, node_point, node_next, counters,
                step, round_, confidence, n_voters, order, n_classes,
                in_first_level, first_level, score, keys, far):
    """Run rounds until every point is labeled (_DONE) or max L = 0 (_STALLED). The
    round's arrays (`round_arrays`: a flag and a score per point, all False and 0
    on entry and on exit; room for the unlabeled points in `first_level` and `keys`) are
    the caller's. `far`: prefetch (`_prefetch`), for labelings whose arrays do not fit in
    cache."""
    n, k = neighbours.shape
    flat = neighbours.reshape(-1)           # row p starts at flat[p * k]: for prefetching
    counts = np.zeros(n_classes, np.int64)
    first_pos = np.zeros(n_classes, np.int64)
    touched = np.zeros(k, np.int64)
    while counters[_N_UNLABELED] > 0:
        # first level: every unlabeled point with L = max L (Algorithm 1, lines 2-8).
        # Buckets hold stale entries (labeled points, or L since increased); a bucket is
        # emptied when scanned because its valid entries are all labeled this round.
        s = 0
        level = k
        while level >= 1:
            node = bucket_head[level]
            while node != -1:
                p = node_point[node]
                if labels[p] < 0 and L[p] == level and not in_first_level[p]:
                    in_first_level[p] = True
                    first_level[s] = p
                    s += 1
                node = node_next[node]
            bucket_head[level] = -1
            if s > 0:
                break
            level -= 1
        if s == 0:
            return _STALLED
        # second level (lines 9-20): sum(l[i]) = (s-1)·maxL + #{first-level j listing i};
        # descending, equal scores by ascending index.
        _second_level_order(neighbours, first_level, s, in_first_level, score, keys, far)
        # label in that order, each vote seeing everything labeled so far (lines 21-24)
        for a in range(s):
            ahead = _prefetch_votes(a, s, keys, neighbours, flat, rev_ptr, rev_idx, labels,
                                    far)
            if ahead >= 0:          # the points that list it: their labels and L
                for e in range(rev_ptr[ahead], rev_ptr[ahead + 1]):
                    prefetch(labels, rev_idx[e])
                    prefetch(L, rev_idx[e])
                _prefetch_result(ahead, labels, step, round_, confidence, n_voters)
                prefetch(labeled, ahead)
            p = keys[a] % n
            c, votes, voters = _vote(neighbours[p], labels, counts, first_pos, touched)
            confidence[p] = votes / voters
            n_voters[p] = voters
            _mark_labeled(p, c, rev_ptr, rev_idx, labeled, labels, L,
                          bucket_head, node_point, node_next, counters, step, round_, order)
        for a in range(s):
            in_first_level[first_level[a]] = False
            score[first_level[a]] = 0
        counters[_ROUND] += 1
    return _DONE


@numba.njit(cache=True, inline="always")
def _prefetch_votes(a, s, keys, neighbours, flat, rev_ptr, rev_idx, labels, far):
    """While step `a` of a round votes, ask for what later steps will read (`_prefetch`):
    3·AHEAD steps ahead the point's neighbour list and reverse-adjacency pointer, 2·AHEAD
    ahead its neighbours' labels and the start of its reverse list. Returns the point
    AHEAD steps ahead (-1 past the round's end, or when not `far`: nothing is asked for),
    whose reverse list is then in cache for the caller to ask for what the kernel's
    `_mark_labeled` will read there."""
    n, k = neighbours.shape
    if not far:
        return -1
    if a + 3 * AHEAD < s:
        p = keys[a + 3 * AHEAD] % n
        prefetch(flat, p * k)
        prefetch(rev_ptr, p)
    if a + 2 * AHEAD < s:
        p = keys[a + 2 * AHEAD] % n
        for j in range(k):
            prefetch(labels, flat[p * k + j])
        prefetch(rev_idx, rev_ptr[p])
    if a + AHEAD < s:
        return keys[a + AHEAD] % n
    return -1


@numba.njit(cache=True, inline="always")
def _prefetch_result(p, labels, step, round_, confidence, n_voters):
    """Ask for what labeling `p` writes: its label, step, round and vote. Within a round
    the points vote in ascending order of index but far apart (at 10M points on a random
    graph about 500 indices between two votes), so each of these writes would otherwise
    wait on a line of its own from memory."""
    prefetch(labels, p)
    prefetch(step, p)
    prefetch(round_, p)
    prefetch(confidence, p)
    prefetch(n_voters, p)


@numba.njit(cache=True)
def _second_level_order(neighbours, members, s, in_round, score, keys, far=False):
    """Algorithm 1's second level for the `s` points of `members` (flagged in `in_round`):
    ``keys[:s]`` sorted so that ``keys[a] % n`` is the a-th point to vote, the point listed
    by the most others of the round first, equal scores by ascending index. Adds to `score`
    (the caller clears it with `in_round` once the round is done). `far`: prefetch
    (`_prefetch`)."""
    n, k = neighbours.shape
    flat = neighbours.reshape(-1)
    for a in range(s):
        if far and a + 2 * AHEAD < s:       # see `_prefetch`: the list, then its flags
            prefetch(flat, members[a + 2 * AHEAD] * k)
        if far and a + AHEAD < s:
            ahead = neighbours[members[a + AHEAD]]
            for j in range(k):
                prefetch(in_round, ahead[j])
        row = neighbours[members[a]]
        for j in range(k):
            if in_round[row[j]]:
                score[row[j]] += 1
    for a in range(s):
        if far and a + AHEAD < s:
            prefetch(score, members[a + AHEAD])
        p = members[a]
        keys[a] = (s - score[p]) * n + p       # unique: sorting keys sorts the points
    keys[:s].sort()


@numba.njit(cache=True)
def _vote_rows(neighbour_labels, n_classes):
    """eq. (1) for many points: majority of each row of neighbour labels, nearest wins ties."""
    m, k = neighbour_labels.shape
    winners = np.empty(m, np.int64)
    shares = np.empty(m, np.float64)
    positions = np.arange(k)
    counts = np.zeros(n_classes, np.int64)
    first_pos = np.zeros(n_classes, np.int64)
    touched = np.zeros(k, np.int64)
    for i in range(m):
        # every entry of the row votes: index the row by position; labels < 0 do not vote
        c, votes, voters = _vote(positions, neighbour_labels[i], counts, first_pos, touched)
        winners[i] = c
        shares[i] = votes / voters
    return winners, shares


def vote(neighbour_labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote over rows of neighbour class indices (nearest first); ties to the nearest.

    Returns (winning class per row, its share of the votes).
    """
    neighbour_labels = np.ascontiguousarray(neighbour_labels, dtype=np.int64)
    return _vote_rows(neighbour_labels, int(n_classes))


def knn_dv_label(X, y, *, k: int, metric: str = "cosine") -> LabelingResult:
    """kNN-DV, eq. (1): each unlabeled point takes the majority label of its k nearest
    *labeled* points (ties to the nearest tied class).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings of labeled and unlabeled points.
    y : array-like of shape (n,), int
        -1 for unlabeled, 0..C-1 for seed classes.
    k : int
        Labeled points that vote; when fewer are labeled, all of them vote.
    metric : {"cosine", "euclidean"}, default="cosine"
        How "nearest" is measured (exact search, equal distances by ascending index).

    Returns
    -------
    LabelingResult
        All unlabeled points are labeled at once: step and round are 0.
    """
    return knn_dv_prepared_rows(get_metric(metric).prepare(X), y, k=k, metric=metric)


# unlabeled points searched at once by kNN-DV: a block of rows is copied, never all of them
KNN_DV_BLOCK = 65_536


def knn_dv_prepared_rows(rows: np.ndarray, y, *, k: int, metric: str = "cosine"
                         ) -> LabelingResult:
    """`knn_dv_label` on rows the metric has already prepared (as `hdl_label` and
    `label_prepared_rows` share them in the pipeline), searching `KNN_DV_BLOCK` unlabeled
    points at a time: at a million 512-D points the copy of every unlabeled row was 2 GB."""
    y = validate_labels(y, rows.shape[0])
    k = check_k(k, rows.shape[0])
    n = y.shape[0]
    labels = y.copy()
    unlabeled = np.flatnonzero(y < 0)
    seeds = np.flatnonzero(y >= 0)
    step = np.where(y < 0, 0, -1).astype(np.int64)
    result = LabelingResult(labels, step, step.copy(), np.ones(n), np.zeros(n, np.int64),
                            np.zeros(n, bool), np.full(n, -1, np.int64), k)
    if unlabeled.size == 0:
        return result
    k_vote = min(k, seeds.size)
    seed_rows, seed_labels, n_classes = rows[seeds], y[seeds], int(y.max()) + 1
    for start in range(0, unlabeled.size, KNN_DV_BLOCK):
        block = unlabeled[start:start + KNN_DV_BLOCK]
        nearest, _ = exact_knn(rows[block], seed_rows, k_vote, metric=metric)
        labels[block], result.confidence[block] = vote(seed_labels[nearest], n_classes)
    result.n_voters[unlabeled] = k_vote
    return result

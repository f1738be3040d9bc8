"""Reach-ordered HDL, hdl-studio's default: HDL's vote, in the order the seeds reach the points.

The paper's HDL (`hdl_core.hdl.hdl_label`) labels first the points with the most labeled
neighbours; class-balanced HDL (`hdl_core.balanced`) does so per class. Both decide the
order from one hop of the graph, so where classes touch, whichever front arrives first
labels the boundary. Reach-ordered HDL decides the order once, from the whole graph:

* **reach**: every class's seeds propagate over the symmetric kNN graph: ``F ← D^-1 (W +
  Wᵀ) F``, each seed's row set back to its label after every step (harmonic propagation,
  Zhu, Ghahramani and Lafferty's label propagation), for as many steps as the seeds are
  deep (``REACH_STEPS_PER_HOP`` a hop from the seeds to the farthest point they reach, at
  least ``REACH_STEPS``, at most ``REACH_MAX_STEPS``; `spread_length`). A point's row tends
  to the chance that a random walk from it meets each class's seeds first, so a class
  reaches the far end of a long, dense stretch of its own before another class's seeds
  reach it across a thin link. The propagation is `hdl_core.diffusion.propagate_seeds`,
  straight from the neighbour lists (with ``alpha`` given: label spreading, ``F ← α S F +
  (1 - α) Y``, S = D^-1/2 (W + Wᵀ) D^-1/2, `hdl_core.diffusion.spread_seeds`, the
  default before); an edge weighs
  exp(-d²(i, j) / (σ_i σ_j)), σ_i the distance from i to its ``REACH_LOCAL_SCALE``-th
  (7th) neighbour (`hdl_core.diffusion.local_scale_codes`), so the reach passes mostly
  between near neighbours, however dense the region; each class's
  column is then divided by its total, so a class whose seeds sit in a dense part of the
  graph does not outweigh the others everywhere (class mass normalisation). A point's
  *reach share* is the top class's share of its row;
* **order**: the unlabeled points the seeds reach, highest reach share first (ties by
  index): first the points one class reaches almost alone, last those several classes
  reach alike, when most of their neighbours carry labels already;
* **level / round**: points whose reach share falls in the same band of width
  1 / ``REACH_BANDS`` (1 to 0.95, 0.95 to 0.90, ...) form a round;
* **vote** (as Algorithm 1): each point takes the majority class among its labeled
  neighbours among its k nearest, everything labeled before its step included; a tie goes
  to the tied class whose labeled neighbour is nearest. A point with no labeled neighbour
  when its turn comes takes the class that reaches it most (``n_voters`` 0, not a bridge;
  its confidence is half its reach share, so it never outranks a decisive vote);
* **split votes**: where the winning class holds at most ``REACH_SPLIT`` (90 %) of the
  votes while the reach is decisive (its top class holds at least ``REACH_DECISIVE``,
  half, of the point's reach) and favours another class, the reach decides, as for a point
  with no labeled neighbour (``n_voters`` 0, confidence half its reach share). Every other
  point's label is its vote, as `hdl_core.explain.vote_detail` shows it;
* **the rest**: points no seed reaches (parts of the graph cut off from every seed, or
  more than ``REACH_MAX_STEPS`` hops away) are labeled by class-balanced HDL from there,
  bridges included, in rounds after the others.

On the held-out draws of bench/accuracy_bench.py it met the digits target that
class-balanced HDL missed and let no class pass twice its true share (README, "Labeling
accuracy"); weighing the edges closed its gap to LabelSpreading on the lfw faces, and
holding the seeds instead of letting them fade (harmonic propagation, at the same number
of steps) gained on every kind of set. Cost after the graph: O(steps · n·k · classes) for
the reach (20 steps where seeds are within 2 hops of every point); while spreading, n ×
min(classes,
`class_block`) float32 numbers twice (16 classes, more within 512 MiB), the reverse lists
and every edge's weight both ways (2 bytes each); then O(n·k) for the votes.
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from . import _prefetch
from ._checks import check_number_in
from ._prefetch import AHEAD, prefetch
from .balanced import _label as _balanced_label
from .config import (BALANCED_BORDER_RATIO, REACH_BANDS, REACH_DECISIVE,
                     REACH_LOCAL_SCALE, REACH_MAX_STEPS, REACH_MIN_WEIGHT, REACH_SPLIT,
                     REACH_STEPS, REACH_STEPS_PER_HOP)
from .diffusion import (LocalOrder, local_scale_codes, propagate_seeds, reverse_codes,
                        spread_seeds, weight_table)
from .graph import KnnGraph, build_knn_graph, check_k, get_metric, rows_to_read
from .hdl import (LabelingResult, _check_graph, _index_array, _prefetch_result,
                  _reverse_adjacency, _vote, check_bridge, narrow_int, validate_labels)

# Classes spread at a time (`reach_shares`): at least CLASS_BLOCK, n × 16 float32 numbers
# twice (128 bytes per point, however many classes there are), and as many more as fit in
# SPREAD_BYTES. A pass costs one random read of a point's row per edge and step, and a
# wider row costs little more (a random graph of 1M points, k = 10: 20 s for 10 classes,
# 21 s for 32 in one pass, 42 s for 32 in two), so below about 4M points every class of a
# typical dataset spreads in one pass.
CLASS_BLOCK = 16
SPREAD_BYTES = 512 << 20


def class_block(n: int) -> int:
    """How many classes `reach_shares` spreads at a time over n points."""
    return max(CLASS_BLOCK, SPREAD_BYTES // (8 * max(int(n), 1)))


def reach_label(X, y, *, k: int, graph: KnnGraph | None = None, steps: int | None = None,
                alpha: float | None = None, split: float = REACH_SPLIT,
                decisive: float = REACH_DECISIVE, local_scale: int | None = REACH_LOCAL_SCALE,
                metric: str = "cosine", bridge: str = "exact") -> LabelingResult:
    """Label every unlabeled point by reach-ordered HDL (hdl-studio's default variant).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings of labeled and unlabeled points.
    y : array-like of shape (n,), int
        -1 for unlabeled, 0..C-1 for seed classes.
    k : int
        Neighbours per point, for the reach and the vote (`hdl_core.balanced.auto_k` is the
        default's choice: 10, fewer for small classes).
    graph : KnnGraph, optional
        The kNN graph of `X` with at least `k` neighbours per point (its first `k` columns
        are used), built with the same `metric`. Built when None.
    steps : int, optional
        Steps of the seeds' propagation: how far the reach looks. Default: as many as the
        seeds are deep (`spread_length`: 10 a hop to the farthest point they reach, 20 to
        120).
    alpha : float in (0, 1), optional
        None (the default): harmonic propagation, the seeds held at their labels. A
        number: label spreading instead, alpha the weight of the neighbours against a
        point's own seed label at each step (the default before was the alpha that leaves
        a seed 0.9^20 ≈ 0.12 of its weight over `steps` steps, 0.9 at 20).
    split : float in [0, 1), default=REACH_SPLIT (0.9)
        A vote whose winning class holds at most this share of the voters is split: where
        the reach's top class is another and holds at least `decisive` of the point's
        reach, the point takes that class. 0: every vote stands.
    decisive : float in [0, 1], default=REACH_DECISIVE (0.5)
        How much of a point's reach its top class must hold to overrule a split vote.
    local_scale : int >= 1 or None, default=REACH_LOCAL_SCALE (7)
        The spread's edge i–j weighs exp(-d²(i, j) / (σ_i σ_j)), σ_i the distance from i to
        its `local_scale`-th nearest neighbour (its k-th when k is smaller). None: every
        edge weighs 1 (the reach before weights).
    metric : {"cosine", "euclidean"}, default="cosine"
        How points are compared: for the graph when it is built here, and for a bridge.
    bridge : {"exact", "approx", "auto"}, default="exact"
        How a bridge is searched, as in `hdl_core.hdl.hdl_label` (only points no seed
        reaches can need one).

    Returns
    -------
    LabelingResult
        ``step`` the order of the votes, ``round`` the reach-share band (then the rounds of
        the points no seed reached); ``spread`` (steps, alpha) of the reach, alpha None
        for harmonic propagation; ``confidence`` the winning share of each vote (half the
        reach share for a point the reach labeled); ``n_voters`` the labeled neighbours
        that voted (0 for a point the reach labeled: no labeled neighbour, or a split vote;
        and for bridges).

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core import reach_label
    >>> X = np.array([[1, 0], [0.9, 0.1], [0.8, 0.3], [0, 1], [0.1, 0.9], [0.3, 0.8]])
    >>> result = reach_label(X, np.array([0, -1, -1, 1, -1, -1]), k=2)
    >>> result.labels.tolist()
    [0, 0, 0, 1, 1, 1]
    """
    # with a graph given, rows are read only at a bridge: no normalised copy of X
    rows = get_metric(metric).prepare(X) if graph is None else rows_to_read(X, metric)
    return label_prepared_rows(rows, y, k=k, graph=graph, steps=steps, alpha=alpha,
                               split=split, decisive=decisive, local_scale=local_scale,
                               metric=metric, bridge=bridge)


def label_prepared_rows(rows: np.ndarray, y, *, k: int, graph: KnnGraph | None = None,
                        steps: int | None = None, alpha: float | None = None,
                        split: float = REACH_SPLIT, decisive: float = REACH_DECISIVE,
                        local_scale: int | None = REACH_LOCAL_SCALE, metric: str = "cosine",
                        bridge: str = "exact") -> LabelingResult:
    """`reach_label` on rows the metric has already prepared (as
    `hdl_core.balanced.label_prepared_rows`): the files-only CLI path and the app."""
    n = rows.shape[0]
    y = validate_labels(y, n)
    k = check_k(k, n)
    bridge = check_bridge(bridge)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                              or steps < 1):
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    if alpha is not None:
        alpha = check_number_in(alpha, "alpha", 0, 1, open_low=True, open_high=True)
    split = check_number_in(split, "split", 0, 1, open_high=True)
    decisive = check_number_in(decisive, "decisive", 0, 1)
    if local_scale is not None and (isinstance(local_scale, bool) or not isinstance(
            local_scale, (int, np.integer)) or local_scale < 1):
        raise ValueError(f"local_scale must be a whole number >= 1 (which neighbour's distance "
                         f"scales a point's edges) or None, got {local_scale!r}")
    graph = build_knn_graph(rows, k, method="auto", metric=metric) if graph is None \
        else _check_graph(graph, n, k, metric)
    return _label(rows, y, k, graph, None if steps is None else int(steps), alpha, split,
                  decisive, None if local_scale is None else int(local_scale), metric, bridge)


def seed_reach(neighbours: np.ndarray, y: np.ndarray, *, steps: int | None = None,
               alpha: float | None = None, codes: np.ndarray | None = None) -> np.ndarray:
    """How strongly each class's seeds reach each point, (n, classes) float32: `steps` steps
    of harmonic propagation, ``F ← D^-1 (W + Wᵀ) F`` with the seeds held (with `alpha`:
    of label spreading, ``F ← α S F + (1 - α) Y``), from Y = the seeds (one column per
    class), each column then divided by its total (a class no point is reached by stays
    0). `codes`: the edges' weights (`edge_codes`), else every edge weighs 1. `steps` left
    None: `spread_length`'s."""
    y = np.asarray(y)
    graph = _spread_graph(neighbours, y, codes)
    steps = _resolve_length(graph, steps)
    return _class_reach(graph, 0, int(y.max()) + 1, steps, alpha)


def spread_length(neighbours: np.ndarray, y: np.ndarray) -> int:
    """Steps of the default reach over these neighbour lists from the seeds of `y`:
    ``REACH_STEPS_PER_HOP`` steps per hop from the seeds to the farthest point they reach
    over the symmetric graph (their depth), at least ``REACH_STEPS`` and at most
    ``REACH_MAX_STEPS`` (so 20 where seeds lie within 2 hops of every point they reach).

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core.reach import spread_length
    >>> chain = np.array([[1], [2], [3], [4], [5], [4]])     # 0 - 1 - 2 - 3 - 4 - 5
    >>> spread_length(chain, np.array([0, -1, -1, -1, -1, -1]))     # 5 hops deep
    50
    >>> spread_length(chain, np.array([0, -1, -1, 1, -1, -1]))
    20
    """
    return _length_for(seed_depth(neighbours, y))


def seed_depth(neighbours: np.ndarray, y: np.ndarray) -> int:
    """Hops from the seeds (y >= 0) to the farthest point they reach over the symmetric
    graph of the neighbour lists (i - j when either lists the other)."""
    y = np.asarray(y)
    neighbours = _index_array(neighbours, len(y))
    rev_ptr, rev_idx = _reverse_adjacency(neighbours, len(y))
    return int(_seed_depth(neighbours, rev_ptr, rev_idx, y,
                           _prefetch.worth_it(neighbours.shape[0])))


def _length_for(depth: int) -> int:
    """The default reach's steps for seeds `depth` hops deep."""
    return int(min(REACH_MAX_STEPS, max(REACH_STEPS, REACH_STEPS_PER_HOP * depth)))


def _resolve_length(graph: "_SpreadGraph", steps: int | None) -> int:
    """`steps` as given, or `spread_length`'s where None (the depth read from the spread's
    own lists and reverse lists, not built again)."""
    if steps is not None:
        return int(steps)
    return _length_for(int(_seed_depth(graph.lists, graph.rev_ptr, graph.rev_idx, graph.y,
                                       _prefetch.worth_it(graph.lists.shape[0]))))


@numba.njit(cache=True)
def _seed_depth(lists, rev_ptr, rev_idx, y, far):
    """Hops from the seeds (y >= 0) to the farthest point they reach over the lists and
    their reverse (a breadth-first search from every seed at once). `far`: ask for the
    memory of the points ahead in the queue (`hdl_core._prefetch`)."""
    n, k = lists.shape
    level = np.full(n, -1, np.int32)
    queue = np.empty(n, lists.dtype)
    tail = 0
    for i in range(n):
        if y[i] >= 0:
            level[i] = 0
            queue[tail] = i
            tail += 1
    head = 0
    deepest = 0
    flat = lists.reshape(-1)
    while head < tail:
        # the queue up to `tail` is known: ask for the lists AHEAD points on, then whether
        # their ends are reached (`hdl_core._prefetch`)
        if far and head + 2 * AHEAD < tail:
            a = queue[head + 2 * AHEAD]
            prefetch(flat, a * k)
            prefetch(rev_ptr, a)
        if far and head + AHEAD < tail:
            a = queue[head + AHEAD]
            for jj in range(k):
                prefetch(level, flat[a * k + jj])
            prefetch(rev_idx, rev_ptr[a])
        i = queue[head]
        head += 1
        d = level[i] + 1
        for jj in range(k):
            j = lists[i, jj]
            if level[j] < 0:
                level[j] = d
                deepest = d
                queue[tail] = j
                tail += 1
        for e in range(rev_ptr[i], rev_ptr[i + 1]):
            j = rev_idx[e]
            if level[j] < 0:
                level[j] = d
                deepest = d
                queue[tail] = j
                tail += 1
    return deepest


def edge_codes(graph: KnnGraph, local_scale: int = REACH_LOCAL_SCALE) -> np.ndarray:
    """The weights of the reach's edges over `graph` (all its neighbours) as codes, (n, k)
    uint16: `hdl_core.diffusion.local_scale_codes` at ``REACH_MIN_WEIGHT``."""
    return local_scale_codes(graph.indices, graph.distances, graph.metric, local_scale,
                             REACH_MIN_WEIGHT)


def edge_weights(graph: KnnGraph, local_scale: int = REACH_LOCAL_SCALE) -> np.ndarray:
    """The weights `edge_codes` stands for, (n, k) float32 (what the Label page or a test
    reads; the spread reads the codes)."""
    return weight_table(REACH_MIN_WEIGHT)[edge_codes(graph, local_scale)]


def _reverse_with_weights(neighbours: np.ndarray, codes: np.ndarray | None):
    """(rev_ptr, rev_idx, weights for `spread_seeds` or None) of the neighbour lists."""
    n = neighbours.shape[0]
    if codes is None:
        rev_ptr, rev_idx = _reverse_adjacency(neighbours, n)
        return rev_ptr, rev_idx, None
    rev_ptr, rev_idx, rev_pos = _reverse_adjacency(neighbours, n, positions=True)
    reverse = reverse_codes(codes, rev_idx, rev_pos, _prefetch.worth_it(n))
    return rev_ptr, rev_idx, (weight_table(REACH_MIN_WEIGHT), codes, reverse)


class _SpreadGraph(NamedTuple):
    """What `spread_seeds` reads, in the order it runs in: the lists, their reverse, the
    edges' weights (or None) and the seeds, all in `local`'s order where it has one."""
    lists: np.ndarray
    rev_ptr: np.ndarray
    rev_idx: np.ndarray
    weights: tuple | None
    y: np.ndarray
    local: LocalOrder | None


def _spread_graph(neighbours: np.ndarray, y: np.ndarray, codes: np.ndarray | None
                  ) -> _SpreadGraph:
    """The lists, reverse lists and weights for the spread, in breadth-first order where
    that pays (`hdl_core.diffusion.LocalOrder`). The reverse lists are built from the lists
    renamed but still in the points' order, so each keeps its entries in the order the
    points' own reverse list has them, and every sum of the spread is the same. Lists of
    any integer type or layout (a graph's first columns, say) are read as the kernels read
    them (`_index_array`: no copy where they already are)."""
    neighbours = _index_array(neighbours, neighbours.shape[0])
    local = LocalOrder.of(neighbours)
    if local is None:
        return _SpreadGraph(neighbours, *_reverse_with_weights(neighbours, codes), y, None)
    renamed = local.rename(neighbours)
    rev_ptr, rev_idx, weights = _reverse_with_weights(renamed, codes)
    rev_idx = local.rename(rev_idx)
    lists = local.rows(renamed)
    del renamed
    if weights is not None:
        table, _, reverse = weights
        weights = (table, local.rows(codes), reverse)
    return _SpreadGraph(lists, rev_ptr, rev_idx, weights, local.rows(y), local)


def _class_reach(graph: _SpreadGraph, first: int, width: int, steps: int,
                 alpha: float | None) -> np.ndarray:
    """`seed_reach` of classes first .. first + width - 1 only, (n, width), in the points'
    order: harmonic propagation, or label spreading at `alpha`."""
    # the other classes' seeds: held at 0 by the propagation (width), ignored by the spread
    other = width if alpha is None else -1
    seeds = np.where((graph.y >= first) & (graph.y < first + width), graph.y - first,
                     np.where(graph.y >= 0, other, -1)).astype(narrow_int(width))
    if alpha is None:
        F = propagate_seeds(graph.lists, graph.rev_ptr, graph.rev_idx, seeds, width, steps,
                            graph.weights)
    else:
        F = spread_seeds(graph.lists, graph.rev_ptr, graph.rev_idx, seeds, width, alpha,
                         steps, graph.weights)
    if graph.local is not None:
        F = graph.local.back(F)
    F /= np.maximum(F.sum(axis=0, dtype=np.float64), 1e-30).astype(np.float32)
    return F


def reach_share(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share, top class) per row of `seed_reach`: the top class's share of the row (0 where
    no class reaches), and that class (the lowest of tied ones)."""
    top = F.argmax(axis=1)
    total = F.sum(axis=1, dtype=np.float64)
    best = F[np.arange(F.shape[0]), top].astype(np.float64)
    share = np.divide(best, total, out=np.zeros_like(total), where=total > 0)
    return share, top


def reach_shares(neighbours: np.ndarray, y: np.ndarray, *, steps: int | None = None,
                 alpha: float | None = None, block: int | None = None,
                 codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`reach_share` of `seed_reach` without holding every class's column at once: the
    classes are spread `block` (`class_block`: 16, more where they fit in ``SPREAD_BYTES``)
    at a time, each block's columns divided by their totals, and each point keeps its
    running total and top class. A class's spread does not depend on the others', so the
    result is the same (exactly the same with at most `block` classes); the memory is
    n × block float32 numbers twice instead of n × classes. `steps` left None:
    `spread_length`'s; `alpha` None: harmonic propagation (`seed_reach`)."""
    share, top, _ = _reach_shares(neighbours, y, steps, alpha, block, codes)
    return share, top


def _reach_shares(neighbours, y, steps, alpha, block, codes):
    """`reach_shares` and the (steps, alpha) its reach ran (alpha None: harmonic)."""
    n = neighbours.shape[0]
    y = np.asarray(y)
    n_classes = int(y.max()) + 1
    block = class_block(n) if block is None else block
    graph = _spread_graph(neighbours, y, codes)
    steps = _resolve_length(graph, steps)
    total = np.zeros(n, np.float64)
    best = np.zeros(n, np.float64)
    top = np.zeros(n, np.int64)
    for first in range(0, n_classes, block):
        F = _class_reach(graph, first, min(block, n_classes - first), steps, alpha)
        total += F.sum(axis=1, dtype=np.float64)
        here = F.argmax(axis=1)
        value = F[np.arange(n), here].astype(np.float64)
        wins = value > best
        best[wins] = value[wins]
        top[wins] = here[wins] + first
        del F
    share = np.divide(best, total, out=np.zeros_like(total), where=total > 0)
    return share, top, (steps, alpha)


def reach_band(share: np.ndarray) -> np.ndarray:
    """The band of each reach share: 0 for shares in [1 - 1/REACH_BANDS, 1], 1 for the next
    band down, ...; shares are at least 1 / classes, so few bands are ever used."""
    return np.minimum(((1.0 - share) * REACH_BANDS).astype(np.int64), REACH_BANDS - 1)


def _label(rows: np.ndarray, y: np.ndarray, k: int, graph: KnnGraph, steps: int | None,
           alpha: float | None, split: float, decisive: float, local_scale: int | None,
           metric: str, bridge: str) -> LabelingResult:
    """The driver behind `reach_label`, on validated inputs."""
    n = rows.shape[0]
    result = LabelingResult.start(y, k)
    labels, step, round_, confidence = result.labels, result.step, result.round, result.confidence
    n_voters, fallback, source = result.n_voters, result.fallback, result.source
    if (y >= 0).all():
        return result

    neighbours = _index_array(graph.indices, n)
    codes = None if local_scale is None else edge_codes(graph, local_scale)
    share, top, result.spread = _reach_shares(neighbours, y, steps, alpha, None, codes)
    del codes
    reached = np.flatnonzero((y < 0) & (share > 0))
    order = reached[np.argsort(-share[reached], kind="stable")]
    n_classes = int(y.max()) + 1
    work = labels.astype(narrow_int(n_classes))
    n_rounds = _vote_in_order(order, reach_band(share[order]), neighbours, work,
                              top.astype(np.int64), share, step, round_, confidence, n_voters,
                              n_classes, split, decisive, _prefetch.worth_it(n))
    labels[:] = work
    if order.size == int((y < 0).sum()):
        return result
    # cut off from every seed (or beyond the spread's steps): class-balanced HDL from here on
    rest = _balanced_label(rows, labels.copy(), k, graph, BALANCED_BORDER_RATIO, metric,
                           bridge)
    moved = rest.step >= 0
    labels[moved] = rest.labels[moved]
    step[moved] = rest.step[moved] + order.size
    round_[moved] = rest.round[moved] + n_rounds
    confidence[moved] = rest.confidence[moved]
    n_voters[moved] = rest.n_voters[moved]
    fallback[moved] = rest.fallback[moved]
    source[moved] = rest.source[moved]
    result.approximate_bridges = rest.approximate_bridges
    return result


@numba.njit(cache=True)
def _vote_in_order(order, band, neighbours, work, top, share, step, round_, confidence,
                   n_voters, n_classes, split, decisive, far):
    """Vote the points of `order` one by one (Algorithm 1's vote, everything labeled before
    included); a point with no labeled neighbour takes `top`, and so does one whose vote is
    split (the winner's share at most `split`) where `top` is another class with a share of
    at least `decisive`. A new round starts where the band changes. Returns the number of
    rounds. `far`: ask for the memory of the points ahead (`hdl_core._prefetch`): the order
    is by reach, the points anywhere."""
    k = neighbours.shape[1]
    flat = neighbours.reshape(-1)
    m = order.shape[0]
    counts = np.zeros(n_classes, np.int64)
    first_pos = np.zeros(n_classes, np.int64)
    touched = np.zeros(k, np.int64)
    r = -1
    last = -1
    for s in range(m):
        if far and s + 2 * AHEAD < m:           # its list, then its neighbours' labels
            prefetch(flat, order[s + 2 * AHEAD] * k)
        if far and s + AHEAD < m:
            q = order[s + AHEAD]
            for j in range(k):
                prefetch(work, flat[q * k + j])
            _prefetch_result(q, work, step, round_, confidence, n_voters)
            prefetch(top, q)
            prefetch(share, q)
        p = order[s]
        if band[s] != last:
            r += 1
            last = band[s]
        c, v, voters = _vote(neighbours[p], work, counts, first_pos, touched)
        if voters == 0 or (v / voters <= split and c != top[p] and share[p] >= decisive):
            c = top[p]
            confidence[p] = 0.5 * share[p]
            n_voters[p] = 0
        else:
            confidence[p] = v / voters
            n_voters[p] = voters
        work[p] = c
        step[p] = s
        round_[p] = r
    return r + 1

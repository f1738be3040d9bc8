"""What to label next, and which seeds look wrong: guidance computed from one run.

Everything here reads the fixed neighbour lists and a `LabelingResult`; nothing re-runs
HDL except the leave-one-out seed check, which says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .diffusion import LocalOrder, diffusion_operator, spread_step, worth_prefetching
from .explain import check_neighbours, influence
from .hdl import LabelingResult


def _support_edges(neighbours: np.ndarray, result: LabelingResult) -> tuple[np.ndarray, np.ndarray]:
    """(supporter, dependent) pairs: the labels each label rests on.

    A voted point rests on the neighbours that were labeled before it and voted for the
    class it got; a bridged point rests on the point it copied.
    """
    voted = np.flatnonzero((result.step >= 0) & ~result.fallback)
    rows = neighbours[voted]
    dependents = np.broadcast_to(voted[:, None], rows.shape)
    keep = ((result.step[rows] < result.step[voted][:, None])          # seeds have step -1
            & (result.labels[rows] == result.labels[voted][:, None]))
    bridged = np.flatnonzero(result.fallback)
    return (np.concatenate([rows[keep], result.source[bridged]]),
            np.concatenate([dependents[keep], bridged]))


def _adjacency(tails: np.ndarray, heads: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (ptr, heads) of the edges tail → head."""
    order = np.argsort(tails, kind="stable")
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(tails, minlength=n), out=ptr[1:])
    return ptr, np.ascontiguousarray(heads[order], dtype=np.int64)


@numba.njit(cache=True)
def _claim_reachable(ptr, heads, start, owner, tag):
    """Give `tag` to `start` and every point reachable from it that has no owner yet.

    Owned sets stay closed under reachability (a point's successors are owned when it is),
    so the search stops at owned points and all searches together cost O(edges).
    """
    if owner[start] != 0:
        return
    stack = np.empty(owner.shape[0], np.int64)
    owner[start] = tag
    stack[0] = start
    top = 1
    while top > 0:
        top -= 1
        u = stack[top]
        for e in range(ptr[u], ptr[u + 1]):
            v = heads[e]
            if owner[v] == 0:
                owner[v] = tag
                stack[top] = v
                top += 1


def _spread_out(ranked: np.ndarray, uncertain: np.ndarray, neighbours: np.ndarray,
                result: LabelingResult, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick `n` of `ranked`, uncertain points whose labels are independent of each other first.

    Fixing a label re-decides every label resting on it, and a label that rests on a wrong
    one is usually fixed with it, so a second suggestion from the same chain is mostly
    wasted. Greedy in rank order: an uncertain point is taken when its label neither rests
    on an earlier pick nor is one an earlier pick rests on. Then the uncertain points passed
    over, then the rest, each in rank order.

    Returns
    -------
    picks : ndarray (<= n,)
    tied_to : ndarray (<= n,)
        For each pick, the 1-based position of the earlier pick it is tied to, or 0.
    """
    n_points = result.labels.shape[0]
    supporters, dependents = _support_edges(neighbours, result)
    down = _adjacency(supporters, dependents, n_points)
    up = _adjacency(dependents, supporters, n_points)
    below = np.zeros(n_points, np.int64)     # 1 + the first pick each label rests on
    above = np.zeros(n_points, np.int64)     # 1 + the first pick resting on each label
    picks, passed = [], []
    for p in ranked[uncertain[ranked]]:
        if len(picks) == n:
            break
        if below[p] or above[p]:
            passed.append(p)
            continue
        picks.append(p)
        _claim_reachable(*down, p, below, len(picks))
        _claim_reachable(*up, p, above, len(picks))
    tied_to = [0] * len(picks)
    for p in passed + list(ranked[~uncertain[ranked]]):
        if len(picks) == n:
            break
        picks.append(p)
        earlier = [t for t in (below[p], above[p]) if t]
        tied_to.append(min(earlier) if earlier else 0)
    return np.asarray(picks, np.int64), np.asarray(tied_to, np.int64)


@dataclass
class Suggestion:
    """One point to label by hand next, and why.

    Attributes
    ----------
    point : int
    score : float
        ``(1 - confidence) × (1 + dependents)``.
    confidence : float
        Share of the votes its label won (a bridged point's is at most 0.5).
    dependents : float
        `influence` of the point: later labels resting on it.
    why : str
        The reason in plain words, for the Review page and the CLI.
    label : int
        The class HDL gave it.
    round : int
        The round it was labeled in.
    bridged : bool
        It had no labeled neighbour and copied the most similar labeled point.
    tied_to : int
        0 when its label is independent of every suggestion above it; else the 1-based
        position of the suggestion it rests on or supports (labeling that one by hand and
        re-running may already change this one).
    """

    point: int
    score: float
    confidence: float
    dependents: float
    why: str
    label: int = -1
    round: int = -1
    bridged: bool = False
    tied_to: int = 0


def _later_labels(load: float) -> str:
    count = int(round(load))
    if count == 0:
        return "no later label depends on it"
    return f"{count} later label{'s' if count != 1 else ''} depend{'s' if count == 1 else ''} on it"


def _suggestion_reason(result: LabelingResult, p: int, load: float, name, tied_to: int) -> str:
    if result.fallback[p]:
        how = "with no labeled neighbour, by copying the most similar labeled image"
    else:
        voters = int(result.n_voters[p])
        votes = int(round(result.confidence[p] * voters))
        if voters == 1:
            how = "from its only labeled neighbour"
        elif votes == voters:
            how = f"by a unanimous vote of {voters} labeled neighbours"
        else:
            how = f"by a split vote ({votes} of {voters} labeled neighbours voted for it)"
    why = (f"labeled '{name(result.labels[p])}' in round {result.round[p]} {how}; "
           f"{_later_labels(load)}")
    if tied_to:
        why += f"; tied to suggestion {tied_to} (fixing that one may already change it)"
    return why


def suggest_next(neighbours: np.ndarray, result: LabelingResult, *, n: int = 10,
                 exclude=None, class_names=None, spread: bool = True) -> list[Suggestion]:
    """The `n` HDL-labeled points whose manual label would help most.

    Parameters
    ----------
    neighbours : ndarray (n_points, >= k), int
        The neighbour lists HDL ran on (``graph.indices``).
    result : LabelingResult
    n : int, default 10
        How many to suggest (fewer when fewer points are candidates).
    exclude : iterable of int, optional
        Points never to suggest besides the seeds, e.g. the ones corrected by hand since
        `result` was computed (after a re-run they are seeds and left out anyway).
    class_names : sequence of str, optional
        Names used in `Suggestion.why`; class indices when None.
    spread : bool, default True
        Suggest uncertain points whose labels are independent of each other first (see
        below); False ranks by score alone.

    Returns
    -------
    list of Suggestion
        Best first.

    Notes
    -----
    Score = (1 - confidence) × (1 + dependents), where dependents is `influence`: uncertain
    labels that many later labels rest on come first, and a unanimous label (confidence 1)
    never comes before an uncertain one. With `spread`, a point whose label rests on a
    better-ranked uncertain suggestion, or that such a suggestion's label rests on, is
    passed over until the independent uncertain points are used up: one manual label
    re-decides the whole chain, so a second pick from it is mostly wasted. On the digits
    demo this raises the accuracy gained from 10 manual labels (bench/suggest_bench.py).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a whole number of suggestions (0 or more), got {n!r}")
    neighbours = check_neighbours(neighbours, result)
    n_points = result.labels.shape[0]
    candidates = result.step >= 0
    if exclude is not None:
        excluded = np.asarray(list(exclude), dtype=np.int64)
        bad = excluded[(excluded < 0) | (excluded >= n_points)]
        if bad.size:
            raise ValueError(f"exclude holds {', '.join(map(str, bad[:5]))}, outside the "
                             f"{n_points} points (0..{n_points - 1})")
        candidates[excluded] = False
    load = influence(neighbours, result)
    score = (1.0 - result.confidence) * (1.0 + load)
    idx = np.flatnonzero(candidates)
    ranked = idx[np.lexsort((idx, -score[idx]))]
    if spread:
        picks, tied_to = _spread_out(ranked, score > 0, neighbours, result, int(n))
    else:
        picks, tied_to = ranked[:n], np.zeros(min(int(n), ranked.size), np.int64)
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    return [Suggestion(int(p), float(score[p]), float(result.confidence[p]), float(load[p]),
                       _suggestion_reason(result, p, load[p], name, int(t)),
                       int(result.labels[p]), int(result.round[p]), bool(result.fallback[p]),
                       int(t))
            for p, t in zip(picks, tied_to)]


@dataclass
class SuspiciousSeed:
    """A seed its own neighbourhood labels as another class.

    Attributes
    ----------
    point : int
    label : int
        The seed's class.
    neighbour_vote : int
        The class its k neighbours' final labels vote for (ties to the nearest).
    agreement : float
        Share of its k neighbours that carry the seed's own label.
    neighbours : ndarray (k,)
        Its neighbours, nearest first.
    neighbour_labels : ndarray (k,)
        Their final labels.
    why : str
        The reason in plain words.
    """

    point: int
    label: int
    neighbour_vote: int
    agreement: float
    neighbours: np.ndarray
    neighbour_labels: np.ndarray | None = None
    why: str = ""


def suspicious_seeds(neighbours: np.ndarray, result: LabelingResult, *,
                     class_names=None, X=None, variant: str = "paper") -> list[SuspiciousSeed]:
    """Seeds whose own k neighbours vote (majority, ties to the nearest) for another class.

    The label-noise view of the paper's e: a wrong seed shows up as a seed its
    neighbourhood disagrees with. Most disagreeing first.

    Parameters
    ----------
    neighbours : ndarray (n, >= k), int
        The neighbour lists HDL ran on (``graph.indices``).
    result : LabelingResult
    class_names : sequence of str, optional
        Names used in `SuspiciousSeed.why`; class indices when None.
    X : array-like (n, d), optional
        The embeddings HDL ran on. When given, each seed is checked by leaving it out: HDL
        runs again on the same neighbour lists without that seed's label, and the seed is
        listed when it then gets another class (`neighbour_vote`), with its neighbours'
        labels from that run. This costs one HDL run per seed, but it catches a wrong seed
        whose neighbours simply copied its label, which the default check cannot see. A
        seed that is the only one of its class is not checked this way.
    variant : {"paper", "reach", "balanced"}, default="paper"
        The labeling that made `result` (`hdl_core.variants`): the leave-one-out runs use
        the same one, with the run's k.

    Returns
    -------
    list of SuspiciousSeed
        Lowest agreement first, then by point.
    """
    from .hdl import vote
    from .variants import check_variant

    check_variant(variant)
    neighbours = check_neighbours(neighbours, result)
    seeds = np.flatnonzero(result.step < 0)
    if seeds.size == 0:
        return []
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    if X is not None:
        return _suspicious_left_out(X, neighbours, result, seeds, name, variant)
    rows = neighbours[seeds]
    neighbour_labels = result.labels[rows]
    winners, _ = vote(neighbour_labels, int(result.labels.max()) + 1)
    agreement = (neighbour_labels == result.labels[seeds][:, None]).mean(axis=1)
    out = []
    for i, (s, w, a) in enumerate(zip(seeds, winners, agreement)):
        if w == result.labels[s]:
            continue
        k, own = rows.shape[1], name(result.labels[s])
        kept = int(round(a * k))
        why = (f"seed '{own}', but {int((neighbour_labels[i] == w).sum())} of its {k} nearest "
               f"neighbours ended up '{name(w)}', {f'only {kept}' if kept else 'none'} '{own}'")
        out.append(SuspiciousSeed(int(s), int(result.labels[s]), int(w), float(a), rows[i],
                                  neighbour_labels[i], why))
    return sorted(out, key=lambda x: (x.agreement, x.point))


def _suspicious_left_out(X, neighbours: np.ndarray, result: LabelingResult, seeds: np.ndarray,
                         name, variant: str) -> list[SuspiciousSeed]:
    """`suspicious_seeds` by leaving each seed out of the seeds and re-running the run's
    variant."""
    from .graph import KnnGraph
    from .variants import label_function

    label = label_function(variant)

    n = result.labels.shape[0]
    if np.ndim(X) != 2 or np.shape(X)[0] != n:
        raise ValueError(f"X must be the ({n}, d) embeddings HDL ran on, got shape {np.shape(X)}")
    graph = KnnGraph(neighbours, np.zeros(neighbours.shape, np.float32))
    y = result.seed_labels
    per_class = np.bincount(y[seeds])
    out = []
    for s in seeds:
        own = int(y[s])
        if per_class[own] < 2:
            continue
        y_without = y.copy()
        y_without[s] = -1
        labels = label(X, y_without, k=result.k, graph=graph).labels
        if labels[s] == own:
            continue
        row = neighbours[s]
        other = int(labels[s])
        agreement = float((labels[row] == own).mean())
        why = (f"seed '{name(own)}', but HDL without this seed's label gives it '{name(other)}'; "
               f"{int((labels[row] == other).sum())} of its {row.size} nearest neighbours are "
               f"then '{name(other)}'")
        out.append(SuspiciousSeed(int(s), own, other, agreement, row, labels[row], why))
    return sorted(out, key=lambda x: (x.agreement, x.point))


# ----------------------------------------------------------------------------- review queue

# The neighbourhood vote reads each point's first REVIEW_NEIGHBOURS neighbours of the graph
# (fewer when the graph has fewer), whatever k HDL voted with: HDL's k = 3 is too narrow to
# see a block of wrong labels from its inside. These constants were chosen on the tuning
# split of bench/review_queue_bench.py (digits, 3 seeds per class, draws 0-4): over 5, 10
# and 15 neighbours and α = 0.8, 0.9, 0.95 precision@50 there ranged 0.78-0.87, best here.
REVIEW_NEIGHBOURS = 10
SPREAD_ALPHA = 0.9          # weight of the neighbours against the point's own label per step
SPREAD_STEPS = 20           # 0.9^20 ≈ 0.12; 15, 20 and 30 steps gave the same precision
                            # on the tuning split, 20 keeps a margin at two thirds of the cost
REWEIGHT_ROUNDS = 3         # rounds of "doubtful labels count less", seeds always count fully
NEAREST_SHOWN = 5           # nearest neighbours named in each reason


@dataclass
class ReviewQueue:
    """HDL's labels ordered likeliest-wrong first, with the facts behind each position.

    Made by `review_queue_with_reasons`; `order` is what `review_queue` returns. Arrays of
    length n are indexed by point; seeds have `doubt` 0 and appear nowhere in `order`.

    Attributes
    ----------
    order : ndarray (n_unlabeled,), int
        Every point HDL labeled, each once: highest `doubt` first, equal doubt labeled
        later first, then by index.
    doubt : ndarray (n,), float
        ``1 - own_share`` rounded to 1e-5: how little the neighbourhood vote backs the
        point's label.
    own_share : ndarray (n,), float
        Share of the neighbourhood vote that goes to the point's own label.
    alternative : ndarray (n,), int
        The class the neighbourhood vote favours most among the others (-1 when there is
        none).
    alternative_share : ndarray (n,), float
        Its share of the vote.
    labels : ndarray (n,), int
        The labels reviewed (``result.labels``).
    nearest : ndarray (n, <= 5), int
        Each point's nearest neighbours, nearest first.
    round : ndarray (n,), int
        The round each point was labeled in (-1 for seeds), from the run.
    n_rounds : int
    fallback : ndarray (n,), bool
        Labeled by a bridge.
    n_voters : ndarray (n,), int
    confidence : ndarray (n,), float
        From the run: the vote that gave each label.
    """

    order: np.ndarray
    doubt: np.ndarray
    own_share: np.ndarray
    alternative: np.ndarray
    alternative_share: np.ndarray
    labels: np.ndarray
    nearest: np.ndarray
    round: np.ndarray
    n_rounds: int
    fallback: np.ndarray
    n_voters: np.ndarray
    confidence: np.ndarray

    def reason(self, point: int, class_names=None) -> str:
        """Why `point` sits where it does, in words a reviewer reads on its tile.

        Example: "neighbourhood votes 71 % '8', 22 % its own '1'; 3 of its 5 nearest
        neighbours are '8'; labeled by a split vote (2 of 3) in the last 2 % of rounds".
        """
        n = self.labels.shape[0]
        if isinstance(point, bool) or not isinstance(point, (int, np.integer)) or not 0 <= point < n:
            raise ValueError(f"point must be an index 0..{n - 1}, got {point!r}")
        name = (lambda c: str(class_names[c])) if class_names is not None else str
        p = int(point)
        own = name(self.labels[p])
        if self.round[p] < 0:
            return f"seed '{own}' (given, not reviewed)"
        alt = int(self.alternative[p])
        own_pct = _percent(self.own_share[p])
        if alt >= 0 and self.alternative_share[p] > self.own_share[p]:
            vote = (f"neighbourhood votes {_percent(self.alternative_share[p])} '{name(alt)}', "
                    f"{own_pct} its own '{own}'")
        else:
            vote = f"neighbourhood votes {own_pct} its own '{own}'"
            if alt >= 0 and self.alternative_share[p] >= 0.005:
                vote += f", {_percent(self.alternative_share[p])} '{name(alt)}'"
        near = self.labels[self.nearest[p]]
        others, counts = np.unique(near[near != self.labels[p]], return_counts=True)
        size = near.size
        if others.size:
            top = int(others[np.argmax(counts)])   # ties: lowest class index
            count = int(counts.max())
            nearest = (f"{count} of its {size} nearest neighbours {'is' if count == 1 else 'are'} "
                       f"'{name(top)}'")
        elif size == 1:
            nearest = f"its nearest neighbour is '{own}' too"
        else:
            nearest = f"all {size} nearest neighbours are '{own}'"
        return f"{vote}; {nearest}; labeled {self._how(p)} {self._when(p)}"

    def reasons(self, points=None, class_names=None) -> list[str]:
        """`reason` for each of `points` (default: `order`, i.e. the whole queue)."""
        points = self.order if points is None else np.asarray(points, dtype=np.int64)
        return [self.reason(p, class_names) for p in points]

    def _how(self, p: int) -> str:
        if self.fallback[p]:
            return "by a bridge (no labeled neighbour; copied the most similar labeled image)"
        voters = int(self.n_voters[p])
        votes = int(round(self.confidence[p] * voters))
        if voters == 1:
            return "from its only labeled neighbour"
        if votes == voters:
            return f"by a unanimous vote of {voters}"
        return f"by a split vote ({votes} of {voters})"

    def _when(self, p: int) -> str:
        r, total = int(self.round[p]), max(self.n_rounds, 1)
        if total == 1:
            return "in the only round"
        late = (total - r) / total          # share of rounds from this one to the last
        if late <= 0.5:
            return f"in the last {_percent(late)} of rounds"
        return f"in the first {_percent((r + 1) / total)} of rounds"


def _percent(share: float) -> str:
    share = 100 * float(share)
    if 0 < share < 1:
        return "<1 %"
    if 99 < share < 100:
        return ">99 %"
    return f"{share:.0f} %"


def _spread(S, spread: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """SPREAD_STEPS steps of ``F ← α S F + kept`` from F = `spread`, which is overwritten
    (S, `spread` and `kept` in one order of the points; the result in that order)."""
    other = np.empty_like(spread)
    far = worth_prefetching(S.indptr, S.indices, spread.shape[1])
    for _ in range(SPREAD_STEPS):                        # α S F + (1 - α) Y
        spread_step(S.indptr, S.indices, S.data, spread, kept, np.float32(SPREAD_ALPHA), other,
                    far)
        spread, other = other, spread
    return spread


def _neighbourhood_vote(neighbours: np.ndarray, labels: np.ndarray, is_seed: np.ndarray,
                        n_classes: int) -> np.ndarray:
    """Each point's share of the neighbourhood vote per class, its own label left out, (n, C).

    Every label spreads over the symmetrised neighbour graph (label spreading with all
    labels as sources, ``F ← α S F + (1 - α) Y``); each class's votes are divided by its
    total weight, so a big class does not outvote a small one merely by its size (the
    per-class normalisation of confident learning). Then, `REWEIGHT_ROUNDS` times, each
    label's weight becomes the share the vote gave it, so a block of doubtful labels stops
    vouching for itself; seeds keep weight 1.
    """
    n = labels.size
    S = diffusion_operator(neighbours)
    # the steps run with the points in breadth-first order where that pays (the same sums)
    local = LocalOrder.of(neighbours)
    if local is not None:
        S = local.csr(S)
    rows = np.arange(n)
    weight = np.ones(n, np.float32)
    # at a million points each (n, C) array is 80 MB with 20 classes: three are alive
    # during the steps (the spread, its next step, the kept sources), and every operation
    # after them is per element or per row, so it runs in the spread's order and gives
    # the same numbers as in the points' order
    for _ in range(REWEIGHT_ROUNDS):
        sources = np.zeros((n, n_classes), np.float32)
        sources[rows, labels] = weight                   # each label with its weight
        mass = np.maximum(sources.sum(axis=0), np.float32(1e-12))
        if local is not None:
            sources = local.rows(sources)
        kept = (1 - SPREAD_ALPHA) * sources
        spread = _spread(S, sources, kept)
        del sources
        spread -= kept                                   # the point's own label does not vote
        del kept
        np.maximum(spread, 0.0, out=spread)              # rounding below zero
        if local is not None:
            spread = local.back(spread)
        spread /= mass
        total = spread.sum(axis=1, keepdims=True)
        share = np.divide(spread, total, out=np.zeros_like(spread), where=total > 0)
        del spread
        own = share[rows, labels]
        weight = np.where(is_seed, np.float32(1.0), own).astype(np.float32)
    # a point with no vote at all (nothing it reaches carries weight) keeps its label
    silent = total.ravel() <= 0
    share[silent, labels[silent]] = 1.0
    return share


def review_queue_with_reasons(X, y, result: LabelingResult, *, graph=None) -> ReviewQueue:
    """Rank HDL's labels likeliest-wrong first, keeping the facts behind each rank.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The embeddings HDL ran on (only used to build the graph when `graph` is None).
    y : array-like of shape (n,), int
        The seeds HDL ran on: -1 for unlabeled, 0..C-1 for classes.
    result : LabelingResult
        The run to review.
    graph : KnnGraph, optional
        The neighbour graph HDL ran on. Its first 10 neighbours per point are read (all
        of them when it has fewer, at least ``result.k``). Built exactly with 10 when None.

    Returns
    -------
    ReviewQueue
        `order` is the queue; `reason(point)` says why in words.

    Notes
    -----
    HDL's mistakes come in blocks: a front crosses a class border and labels a patch of the
    other class before that class's own front arrives, so inside the patch every close
    neighbour agrees and the vote's confidence is 1. The patch still sits inside a
    neighbourhood that mostly carries the other label. So every label votes for its class
    over the symmetrised 10-neighbour graph (label spreading, α = 0.9, 20 steps), each
    class's votes are normalised by its size, and three times over the labels the vote
    doubts count less (seeds always fully). A point's doubt is 1 minus the share its own
    label gets, leaving its own vote out. Equal doubt goes to the point labeled later.

    Cost: ``3 × 20`` products of a sparse (n × n, 10 n to 20 n entries) matrix with an
    (n × C) float32 array, so O(n · C) memory and O(n · 10 · C) work per step, plus
    building the graph when it is not given.

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core import hdl_label, review_queue_with_reasons
    >>> X = np.array([[1, 0], [1, .1], [1, .2], [0, 1], [.1, 1], [.2, 1]])
    >>> y = np.array([0, -1, -1, 1, -1, -1])
    >>> queue = review_queue_with_reasons(X, y, hdl_label(X, y, k=2))
    >>> sorted(queue.order.tolist())
    [1, 2, 4, 5]
    >>> queue.reason(1).startswith("neighbourhood votes")
    True
    """
    from .graph import KnnGraph, build_knn_graph
    from .rows import normalize_rows
    from .hdl import validate_labels

    if not isinstance(result, LabelingResult):
        raise ValueError(f"result must be the LabelingResult of the run to review, got "
                         f"{type(result).__name__}")
    n = np.shape(X)[0]
    if result.labels.shape != (n,):
        raise ValueError(f"result labels {result.labels.shape[0]} points but X has {n} rows; "
                         f"pass the X and result of the same run")
    y = validate_labels(y, n)
    is_seed = y >= 0
    differs = np.flatnonzero(is_seed != (result.step < 0))
    if differs.size:
        p = int(differs[0])
        said = f"a seed (class {y[p]})" if is_seed[p] else "unlabeled (-1)"
        raise ValueError(f"y does not match result: point {p} is {said} in y, but the run "
                         f"{'labeled it at step ' + str(result.step[p]) if result.step[p] >= 0 else 'took it as a seed'}; "
                         f"pass the y HDL ran on")
    moved = np.flatnonzero(is_seed & (y != result.labels))
    if moved.size:
        p = int(moved[0])
        raise ValueError(f"y does not match result: seed {p} is class {y[p]} in y but "
                         f"{result.labels[p]} in the run; pass the y HDL ran on")
    want = max(REVIEW_NEIGHBOURS, result.k)
    if graph is None:            # only then are the rows compared (a copy of X at 1M: 2 GB)
        graph = build_knn_graph(normalize_rows(X), min(want, n - 1), method="auto",
                                random_state=0)
    elif not isinstance(graph, KnnGraph):
        raise ValueError(f"graph must be the KnnGraph HDL ran on, got {type(graph).__name__}")
    elif graph.n != n:
        raise ValueError(f"graph has {graph.n} rows but X has {n}; pass the graph HDL ran on")
    elif graph.k < result.k:
        raise ValueError(f"graph has {graph.k} neighbours per point but the run used "
                         f"k={result.k}; pass the graph HDL ran on")
    neighbours = np.ascontiguousarray(graph.indices[:, :min(REVIEW_NEIGHBOURS, graph.k)],
                                      dtype=np.int64)
    if neighbours.min() < 0 or neighbours.max() >= n:
        raise ValueError(f"graph.indices must lie in [0, {n - 1}]; pass the graph HDL ran on")

    labels = result.labels.astype(np.int64)
    n_classes = int(labels.max()) + 1
    share = _neighbourhood_vote(neighbours, labels, is_seed, n_classes)
    own = share[np.arange(n), labels].astype(np.float64)
    others = share                                       # not read again: no copy
    others[np.arange(n), labels] = -1.0
    alternative = others.argmax(axis=1) if n_classes > 1 else np.full(n, -1)
    alternative_share = (others[np.arange(n), alternative].astype(np.float64)
                         if n_classes > 1 else np.zeros(n))
    # the vote runs in float32 (errors about 3e-7 on digits against float64): rounded to
    # 1e-5, doubts that are equal in exact arithmetic tie, and the tie goes by step
    doubt = np.where(is_seed, 0.0, np.round(1.0 - own, 5))
    candidates = np.flatnonzero(~is_seed)
    order = candidates[np.lexsort((candidates, -result.step[candidates],
                                   -doubt[candidates]))]
    return ReviewQueue(order=order, doubt=doubt, own_share=np.where(is_seed, 1.0, own),
                       alternative=np.where(alternative_share > 0, alternative, -1),
                       alternative_share=alternative_share, labels=labels,
                       nearest=np.ascontiguousarray(graph.indices[:, :min(NEAREST_SHOWN, graph.k)]),
                       round=result.round.copy(), n_rounds=result.n_rounds,
                       fallback=result.fallback.copy(), n_voters=result.n_voters.copy(),
                       confidence=result.confidence.copy())


def review_queue(X, y, result: LabelingResult, *, graph=None) -> np.ndarray:
    """Every point HDL labeled, likeliest-wrong first (seeds never appear).

    The order of `review_queue_with_reasons`; call that instead when the reasons are
    wanted too, so the work is done once.

    Parameters
    ----------
    X : array-like of shape (n, d)
    y : array-like of shape (n,), int
        The seeds HDL ran on (-1 unlabeled).
    result : LabelingResult
    graph : KnnGraph, optional
        The graph HDL ran on; its first 10 neighbours per point are read.

    Returns
    -------
    ndarray of int
        Indices of the non-seed points, each once.

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core import hdl_label, review_queue
    >>> X = np.array([[1, 0], [1, .1], [1, .2], [0, 1], [.1, 1], [.2, 1]])
    >>> y = np.array([0, -1, -1, 1, -1, -1])
    >>> sorted(review_queue(X, y, hdl_label(X, y, k=2)).tolist())
    [1, 2, 4, 5]
    """
    return review_queue_with_reasons(X, y, result, graph=graph).order

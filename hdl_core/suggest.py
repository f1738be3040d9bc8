"""What to label next, and which seeds look wrong: guidance computed from one run.

Everything here reads the fixed neighbour lists and a `LabelingResult`; nothing re-runs
HDL except the leave-one-out seed check, which says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

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
                     class_names=None, X=None) -> list[SuspiciousSeed]:
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

    Returns
    -------
    list of SuspiciousSeed
        Lowest agreement first, then by point.
    """
    from .hdl import vote

    neighbours = check_neighbours(neighbours, result)
    seeds = np.flatnonzero(result.step < 0)
    if seeds.size == 0:
        return []
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    if X is not None:
        return _suspicious_left_out(X, neighbours, result, seeds, name)
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
                         name) -> list[SuspiciousSeed]:
    """`suspicious_seeds` by leaving each seed out of the seeds and re-running HDL."""
    from .graph import KnnGraph
    from .hdl import hdl_label

    n = result.labels.shape[0]
    if np.ndim(X) != 2 or np.shape(X)[0] != n:
        raise ValueError(f"X must be the ({n}, d) embeddings HDL ran on, got shape {np.shape(X)}")
    graph = KnnGraph(neighbours, np.zeros(neighbours.shape, np.float32))
    y = np.where(result.step < 0, result.labels, -1)
    per_class = np.bincount(y[seeds])
    out = []
    for s in seeds:
        own = int(y[s])
        if per_class[own] < 2:
            continue
        y_without = y.copy()
        y_without[s] = -1
        labels = hdl_label(X, y_without, k=result.k, graph=graph).labels
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


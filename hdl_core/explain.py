"""Why each point got its label: replaying a `LabelingResult`, and what to label next.

Everything here is recomputed from the fixed neighbour lists, the seeds and the result, so
the app can show any round or step without re-running HDL.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numba

from .hdl import LabelingResult


def labeled_before(result: LabelingResult, step: int) -> np.ndarray:
    """Mask of the points labeled before global step `step` (seeds always are)."""
    return result.step < step          # seeds have step -1


def round_start_step(result: LabelingResult, r: int) -> int:
    """Global step at which round `r` starts (the number of points labeled before it)."""
    in_round = result.round == r
    if not in_round.any():
        return int((result.step >= 0).sum())
    return int(result.step[in_round].min())


@dataclass
class RoundView:
    """The state at the start of round `round`, as Algorithm 1 sees it.

    Attributes
    ----------
    round : int
    labeled : ndarray (n,), bool
        Labeled when the round starts.
    L : ndarray (n,), int
        Labeled neighbours of every point (meaningful for unlabeled ones).
    max_L : int
    first_level : ndarray
        The round's points in labeling order (second-level rank 0, 1, ...).
    second_level_score : ndarray
        For each first-level point, how many other first-level points list it among their
        k neighbours (sum(l[i]) minus the constant (s-1)·max L).
    bridge : bool
        The round is a bridge (max L was 0).
    """

    round: int
    labeled: np.ndarray
    L: np.ndarray
    max_L: int
    first_level: np.ndarray
    second_level_score: np.ndarray
    bridge: bool


def round_view(neighbours: np.ndarray, result: LabelingResult, r: int) -> RoundView:
    """Rebuild round `r`: who was labeled, every L, the first level and its order."""
    k = result.k
    neighbours = neighbours[:, :k]
    labeled = labeled_before(result, round_start_step(result, r))
    L = labeled[neighbours].sum(axis=1)
    members = np.flatnonzero(result.round == r)
    members = members[np.argsort(result.step[members], kind="stable")]
    in_level = np.zeros(result.labels.shape[0], bool)
    in_level[members] = True
    listed_by_level = neighbours[members].ravel()
    score = np.bincount(listed_by_level[in_level[listed_by_level]],
                        minlength=result.labels.shape[0])[members]
    bridge = bool(result.fallback[members].any()) if members.size else False
    max_L = int(L[~labeled].max()) if (~labeled).any() else 0
    return RoundView(r, labeled, L, max_L, members, score, bridge)


@dataclass
class VoteDetail:
    """One point's vote, as it happened.

    Attributes
    ----------
    point : int
    neighbours : ndarray (k,)
        Its neighbours, nearest first.
    neighbour_labels : ndarray (k,)
        Class of each neighbour at vote time, -1 where it was not yet labeled.
    counts : dict[int, int]
        Votes per class.
    winner : int
    tied : list[int]
        Classes that shared the top count (more than one means a tie, broken by the
        nearest labeled neighbour).
    bridge_source : int
        For a bridged point, the labeled point it copied from; else -1.
    """

    point: int
    neighbours: np.ndarray
    neighbour_labels: np.ndarray
    counts: dict
    winner: int
    tied: list
    bridge_source: int


def vote_detail(neighbours: np.ndarray, result: LabelingResult, point: int) -> VoteDetail:
    """Who voted for `point` and how (the labeled neighbours at its step)."""
    row = neighbours[point, :result.k]
    s = result.step[point]
    if s < 0:   # a seed: show its neighbours with their final labels, no vote
        at_time = np.full(row.size, -1)
    else:
        before = labeled_before(result, s)[row]
        at_time = np.where(before, result.labels[row], -1)
    voted = at_time[at_time >= 0]
    counts = {int(c): int((voted == c).sum()) for c in np.unique(voted)}
    top = max(counts.values()) if counts else 0
    tied = [c for c in counts if counts[c] == top] if counts else []
    return VoteDetail(int(point), row, at_time, counts, int(result.labels[point]),
                      tied, int(result.source[point]))


@numba.njit(cache=True)
def _influence(neighbours, order, labeled_at_start, step, n_voters, fallback, source):
    """Later labels resting on each point, shared out along the votes (reverse step order).

    A point that voted for q carries 1/n_voters(q) of q and of everything resting on q; a
    bridge source carries all of its bridged point.
    """
    n, k = neighbours.shape
    load = np.zeros(n)
    for t in range(order.shape[0] - 1, -1, -1):
        q = order[t]
        share = 1.0 + load[q]
        if fallback[q]:
            load[source[q]] += share
            continue
        if n_voters[q] == 0:
            continue
        part = share / n_voters[q]
        for j in range(k):
            p = neighbours[q, j]
            if labeled_at_start[p] or (step[p] >= 0 and step[p] < step[q]):
                load[p] += part
    return load


def _check_neighbours(neighbours, result: LabelingResult) -> np.ndarray:
    """The first `result.k` columns of `neighbours` as int64, after checking they fit `result`."""
    neighbours = np.asarray(neighbours)
    n = result.labels.shape[0]
    if neighbours.ndim != 2 or neighbours.shape[0] != n:
        raise ValueError(f"neighbours must have one row per point ({n} rows), got shape "
                         f"{neighbours.shape}; pass graph.indices of the graph HDL ran on")
    if neighbours.shape[1] < result.k:
        raise ValueError(f"neighbours has {neighbours.shape[1]} columns but the result was "
                         f"labeled with k={result.k}; pass graph.indices of the graph HDL ran on")
    return np.ascontiguousarray(neighbours[:, :result.k], dtype=np.int64)


def influence(neighbours: np.ndarray, result: LabelingResult) -> np.ndarray:
    """How many later labels depend on each point, directly or through later rounds.

    Parameters
    ----------
    neighbours : ndarray (n, >= k), int
        The neighbour lists HDL ran on (``graph.indices``); the first ``result.k`` are used.
    result : LabelingResult

    Returns
    -------
    ndarray (n,), float
        Every labeled point q shares ``1 + influence[q]`` equally among the neighbours that
        voted for it (all of it goes to the bridge source of a bridged point), so a chain
        a → b → c gives a 2, b 1 and c 0.
    """
    neighbours = _check_neighbours(neighbours, result)
    return _influence(neighbours, result.order.astype(np.int64), result.step < 0,
                      result.step.astype(np.int64), result.n_voters.astype(np.int64),
                      result.fallback, result.source.astype(np.int64))


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
    neighbours = _check_neighbours(neighbours, result)
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

    neighbours = _check_neighbours(neighbours, result)
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

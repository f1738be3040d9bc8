"""Why each point got its label: replaying a `LabelingResult` round by round and vote by vote.

Everything here is recomputed from the fixed neighbour lists, the seeds and the result, so
the app can show any round or step without re-running HDL. What to label next and which
seeds look wrong are in `hdl_core.suggest`.
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
        The label the point got.
    tied : list[int]
        Classes that shared the top count (more than one means a tie, broken by the
        nearest labeled neighbour).
    bridge_source : int
        For a bridged point, the labeled point it copied from; else -1.
    voted_for : int
        The class the votes pick (a tie: the nearest labeled neighbour's), -1 without
        votes. It differs from `winner` where the reach overruled a split vote
        (`hdl_core.reach`).
    """

    point: int
    neighbours: np.ndarray
    neighbour_labels: np.ndarray
    counts: dict
    winner: int
    tied: list
    bridge_source: int
    voted_for: int = -1


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
    voted_for = next((int(c) for c in at_time if c in tied), -1)
    return VoteDetail(int(point), row, at_time, counts, int(result.labels[point]),
                      tied, int(result.source[point]), voted_for)


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


def check_neighbours(neighbours, result: LabelingResult) -> np.ndarray:
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
    neighbours = check_neighbours(neighbours, result)
    return _influence(neighbours, result.order.astype(np.int64), result.step < 0,
                      result.step.astype(np.int64), result.n_voters.astype(np.int64),
                      result.fallback, result.source.astype(np.int64))



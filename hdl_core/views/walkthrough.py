"""A labeling run as a sequence of steps a person can follow: rounds, votes and bridges.

`walkthrough` turns a `LabelingResult` and its neighbour lists into captioned steps (the
Teach page shows them one at a time); `step_state` gives what the plane shows at a step.
Pure numpy over plain arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..explain import round_view, vote_detail
from ..hdl import LabelingResult


@dataclass
class Step:
    """One thing the Teach page shows: a round starting, a vote, a bridge, or the end.

    Attributes
    ----------
    kind : {"round", "vote", "bridge", "done"}
    round : int
        0-based round (``result.round``); -1 for "done".
    point : int
        The point labeled by this vote or bridge; -1 otherwise.
    shown : int
        How many HDL labels are known once this step is shown: points with
        ``result.step < shown`` are coloured (seeds always are). A round step shows the
        state before its first vote; a vote or bridge step shows its point labeled.
    caption : str
        What happens, in plain words.
    max_L : int
        Round / bridge: the largest L among unlabeled points when the round starts.
    first_level : ndarray
        Round: the first level in labeling order (rank 0, 1, ...). Vote: its round's.
        Bridge: the bridged point.
    second_level_score : ndarray
        Matching `first_level`: how many other first-level points list it as a neighbour.
    rank : int
        Vote: the point's place in the second-level order (0 first); -1 otherwise.
    neighbours, neighbour_labels : ndarray (k,)
        Vote: the point's neighbours, nearest first, and their class at that moment (-1
        not yet labeled).
    counts : dict[int, int]
        Vote: votes per class.
    winner : int
        Vote / bridge: the class given.
    tied : tuple[int, ...]
        Vote: classes sharing the top count (two or more: a tie).
    tie_broken_by : int
        Vote with a tie: the nearest labeled neighbour of a tied class, whose class won;
        -1 without a tie.
    source : int
        Bridge: the labeled point copied from.
    distance : float
        Bridge: plane distance to `source` (NaN when no points were given).
    """

    kind: str
    round: int
    point: int
    shown: int
    caption: str
    max_L: int = 0
    first_level: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    second_level_score: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    rank: int = -1
    neighbours: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    neighbour_labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    counts: dict = field(default_factory=dict)
    winner: int = -1
    tied: tuple = ()
    tie_broken_by: int = -1
    source: int = -1
    distance: float = float("nan")

    @property
    def is_tie(self) -> bool:
        return len(self.tied) > 1


def _name(class_names, c: int) -> str:
    return str(class_names[c]) if class_names is not None else f"class {c}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def walkthrough(graph_indices: np.ndarray, result: LabelingResult, *, X=None,
                class_names=None) -> list[Step]:
    """The whole labeling as steps: per round a "round" step then one "vote" per point
    (or a single "bridge" step), and a final "done" step.

    Parameters
    ----------
    graph_indices : ndarray (n, ≥k)
        The neighbour lists `result` was computed on (first `result.k` columns used).
    result : LabelingResult
        From `hdl_label`.
    X : ndarray (n, d), optional
        Points compared by Euclidean distance (the toy's plane), for the bridge distance
        in captions.
    class_names : sequence of str, optional
        Names used in captions (default "class 0", "class 1", ...).

    Returns
    -------
    list[Step]
    """
    k = result.k
    neighbours = np.asarray(graph_indices)[:, :k]
    if neighbours.shape[0] != result.labels.shape[0] or neighbours.shape[1] < k:
        raise ValueError(f"graph_indices has shape {np.asarray(graph_indices).shape}; "
                         f"it must be the (n={result.labels.shape[0]}, ≥k={k}) neighbour "
                         f"lists the result was computed on")
    order = result.order
    n_unlabeled_total = order.size
    steps: list[Step] = []
    if order.size:
        rounds = result.round[order]
        bounds = np.flatnonzero(np.r_[True, rounds[1:] != rounds[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            r = int(rounds[a])
            view = round_view(neighbours, result, r)
            members = view.first_level
            remaining = n_unlabeled_total - int(a)
            if view.bridge:
                p = int(members[0])
                src = int(result.source[p])
                dist = float(np.linalg.norm(np.asarray(X)[p] - np.asarray(X)[src])) \
                    if X is not None else float("nan")
                winner = int(result.labels[p])
                where = f", distance {dist:.3g}" if X is not None else ""
                steps.append(Step(
                    "bridge", r, p, int(a) + 1,
                    f"Round {r + 1} is a bridge. No unlabeled point has a labeled neighbour "
                    f"(the highest L is 0): the {_plural(remaining, 'point')} left are cut "
                    f"off from every label. So point {p}, the unlabeled point nearest to any "
                    f"labeled point (point {src}{where}), copies that point's label, "
                    f"{_name(class_names, winner)}, and forms a round of its own.",
                    max_L=0, first_level=members, second_level_score=view.second_level_score,
                    winner=winner, source=src, distance=dist))
                continue
            s = members.size
            level = (f"reached by {_plural(s, 'point')}: they form the first level. Each one's "
                     f"second-level score counts how many other first-level points list it "
                     f"among their neighbours; the highest score is labeled first (equal "
                     f"scores: lower point number first), so labels that help the others "
                     f"come early." if s > 1 else
                     "reached by 1 point: it alone forms the first level and is labeled now.")
            steps.append(Step(
                "round", r, -1, int(a),
                f"Round {r + 1}. Each of the {_plural(remaining, 'unlabeled point')} counts "
                f"how many of its {k} nearest neighbours are already labeled: its L. The "
                f"highest L is {view.max_L}, {level}",
                max_L=view.max_L, first_level=members,
                second_level_score=view.second_level_score))
            for rank, p in enumerate(members):
                steps.append(_vote_step(neighbours, result, int(p), r, rank, members, view,
                                        class_names))
    done_rounds = result.n_rounds
    n_bridges = int(result.fallback.sum())
    steps.append(Step(
        "done", -1, -1, n_unlabeled_total,
        (f"Done: all {_plural(n_unlabeled_total, 'unlabeled point')} labeled in "
         f"{_plural(done_rounds, 'round')}"
         + (f", {_plural(n_bridges, 'bridge')} among them." if n_bridges else ", no bridge needed.")
         if n_unlabeled_total else "Every point is a seed: nothing to label.")))
    return steps


def _vote_step(neighbours, result, p, r, rank, members, view, class_names) -> Step:
    detail = vote_detail(neighbours, result, p)
    counts = dict(sorted(detail.counts.items(), key=lambda kv: (-kv[1], kv[0])))
    voters = sum(counts.values())
    winner = detail.winner
    tied = tuple(sorted(detail.tied))
    tie_broken_by = -1
    tally = ", ".join(f"{v} × {_name(class_names, c)}" for c, v in counts.items())
    if len(tied) > 1:
        at = np.flatnonzero(np.isin(detail.neighbour_labels, tied))[0]
        tie_broken_by = int(detail.neighbours[at])
        names = " and ".join(_name(class_names, c) for c in tied)
        verdict = (f"{names} tie with {_plural(counts[winner], 'vote')} each; the tie goes to "
                   f"the class of the nearest labeled neighbour among them, point "
                   f"{tie_broken_by}, so {_name(class_names, winner)} wins.")
    else:
        verdict = f"{_name(class_names, winner)} wins with {counts.get(winner, 0)} of {voters}."
    grew = (f" ({voters - view.max_L} of them labeled earlier in this round)"
            if voters > view.max_L else "")
    return Step(
        "vote", r, p, int(result.step[p]) + 1,
        f"Point {p} votes (#{rank + 1} of {members.size} in round {r + 1}): "
        f"{voters} of its {result.k} nearest neighbours are labeled{grew}: {tally}. {verdict}",
        max_L=view.max_L, first_level=members, second_level_score=view.second_level_score,
        rank=rank, neighbours=detail.neighbours, neighbour_labels=detail.neighbour_labels,
        counts=counts, winner=winner, tied=tied, tie_broken_by=tie_broken_by)


def round_starts(steps: list[Step]) -> np.ndarray:
    """Index of the step where each round starts ("round" or "bridge"), by round."""
    return np.array([i for i, s in enumerate(steps) if s.kind in ("round", "bridge")], np.int64)


def next_round_index(steps: list[Step], i: int) -> int:
    """The step where the next round starts (the last step when none is left)."""
    later = [j for j in round_starts(steps) if j > i]
    return int(later[0]) if later else len(steps) - 1


def previous_round_index(steps: list[Step], i: int) -> int:
    """The start of the round step `i` is in; from a round's start, the previous round's."""
    earlier = [j for j in round_starts(steps) if j < i]
    return int(earlier[-1]) if earlier else 0


@dataclass
class StepState:
    """What the plane shows at one step.

    Attributes
    ----------
    labels : ndarray (n,)
        Class known at this step, -1 for still unlabeled.
    L : ndarray (n,)
        Labeled neighbours of every point at this step (drawn for unlabeled ones).
    rank : ndarray (n,)
        Place in the current round's second-level order, -1 outside the first level.
    second_level_score : ndarray (n,)
        Second-level score of first-level points, -1 elsewhere.
    """

    labels: np.ndarray
    L: np.ndarray
    rank: np.ndarray
    second_level_score: np.ndarray


def step_state(graph_indices: np.ndarray, result: LabelingResult, step: Step) -> StepState:
    """Labels, L and the first level as the plane shows them at `step` (O(n·k))."""
    neighbours = np.asarray(graph_indices)[:, :result.k]
    known = result.step < step.shown        # seeds have step -1
    labels = np.where(known, result.labels, -1)
    L = known[neighbours].sum(axis=1)
    n = labels.shape[0]
    rank = np.full(n, -1, np.int64)
    score = np.full(n, -1, np.int64)
    if step.kind in ("round", "vote") and step.first_level.size:
        rank[step.first_level] = np.arange(step.first_level.size)
        score[step.first_level] = step.second_level_score
    return StepState(labels, L, rank, score)


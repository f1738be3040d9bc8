"""Replaying a labeling run round by round: what the Label page draws, as plain arrays.

A run is replayed from its `LabelingResult` alone (and, for the round's explanation, the
neighbour lists): at round ``r`` the seeds and every point of rounds ``0 .. r`` carry their
label, round ``r`` itself is the *current first level* (drawn in its second-level order),
and everything later is still unlabeled. Rounds count from 0, as in ``result.round``.

`build_replay` does the per-run work once (counts per round, cumulative share, accuracy
against a ground truth, agreement with a kNN-DV run); `point_state` and `map_layers` then
cost a few vectorised passes over the points per round, so a round slider stays quick at
tens of thousands of points.

Examples
--------
>>> import numpy as np
>>> from hdl_core import KnnGraph, hdl_label
>>> idx = np.array([[1], [0], [1], [2]])          # a chain: 0 <- 1 <- 2 <- 3
>>> result = hdl_label(np.eye(4), np.array([0, -1, -1, -1]), k=1,
...                    graph=KnnGraph(idx, np.zeros((4, 1))))
>>> point_state(result, 1).tolist()               # seed, round 0, round 1 (current), later
[3, 1, 2, 0]
>>> labeled_per_round(result).tolist(), cumulative_share(result).tolist()
([1, 1, 1], [0.5, 0.75, 1.0])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..hdl import LabelingResult

# point_state codes
UNLABELED, LABELED, CURRENT, SEED = 0, 1, 2, 3


# --------------------------------------------------------------------------- one round

def check_round(result: LabelingResult, r: int) -> int:
    """`r` as an int, refused (with the valid range) when the run has no such round."""
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
        raise ValueError(f"round must be an integer, got {r!r}")
    if not 0 <= r < max(result.n_rounds, 1):
        raise ValueError(f"round {r} is outside this run's rounds 0..{max(result.n_rounds - 1, 0)}")
    return int(r)


def labeled_by_round(result: LabelingResult, r: int) -> np.ndarray:
    """Mask of the points carrying a label once round `r` is done (seeds always do)."""
    return (result.step < 0) | ((result.round >= 0) & (result.round <= r))


def point_state(result: LabelingResult, r: int) -> np.ndarray:
    """Each point's state at round `r`: SEED, LABELED (an earlier round), CURRENT (round `r`) or UNLABELED."""
    state = np.full(result.labels.shape[0], UNLABELED, np.int8)
    state[(result.round >= 0) & (result.round < r)] = LABELED
    state[result.round == r] = CURRENT
    state[result.step < 0] = SEED
    return state


def first_level(result: LabelingResult, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Round `r`'s points in the order they were voted, and their rank in that order (0, 1, ...).

    The order is the second level of Algorithm 1 (`hdl_core.explain.round_view` rebuilds its
    scores); the rank is the point's position within the round.
    """
    members = np.flatnonzero(result.round == r)
    members = members[np.argsort(result.step[members], kind="stable")]
    return members, np.arange(members.size)


# --------------------------------------------------------------------------- whole run

def labeled_per_round(result: LabelingResult) -> np.ndarray:
    """How many points each round labeled, shape (n_rounds,)."""
    rounds = result.round[result.round >= 0]
    return np.bincount(rounds, minlength=result.n_rounds).astype(np.int64)


def cumulative_share(result: LabelingResult) -> np.ndarray:
    """Share of all points labeled once each round is done (seeds included), shape (n_rounds,)."""
    n = result.labels.shape[0]
    n_seeds = int((result.step < 0).sum())
    return (n_seeds + np.cumsum(labeled_per_round(result))) / max(n, 1)


def truth_codes(truth_names: Sequence, classes: Sequence[str]) -> np.ndarray:
    """Ground-truth class names (None: unknown) as indices into `classes`.

    Returns an int array: the class index, -1 where the truth is unknown, and
    ``len(classes)`` for a true class the run does not know (no seed had it), which no
    predicted label can match.
    """
    index = {name: i for i, name in enumerate(classes)}
    outside = len(classes)
    return np.array([-1 if name is None else index.get(name, outside) for name in truth_names],
                    dtype=np.int64)


def accuracy_by_round(result: LabelingResult, truth: np.ndarray) -> np.ndarray:
    """Accuracy of the labels given so far, once each round is done, shape (n_rounds,).

    Counts the points the run labeled (seeds excluded: they are given, not predicted) whose
    truth is known (`truth` >= 0, see `truth_codes`). NaN for rounds before the first such
    point.
    """
    truth = _check_aligned(truth, result, "truth")
    scored = (result.round >= 0) & (truth >= 0)
    rounds = result.round[scored]
    right = (result.labels[scored] == truth[scored]).astype(np.int64)
    seen = np.cumsum(np.bincount(rounds, minlength=result.n_rounds))
    correct = np.cumsum(np.bincount(rounds, weights=right, minlength=result.n_rounds))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, correct / np.maximum(seen, 1), np.nan)


def accuracy(labels: np.ndarray, truth: np.ndarray, among: np.ndarray | None = None) -> float:
    """Share of points (optionally only those in the mask `among`) whose label equals a known truth; NaN if none."""
    scored = truth >= 0
    if among is not None:
        scored &= among
    if not scored.any():
        return float("nan")
    return float((labels[scored] == truth[scored]).mean())


def disagreement(labels: np.ndarray, other: np.ndarray, among: np.ndarray | None = None) -> np.ndarray:
    """Mask of the points (optionally only those in `among`) that the two label vectors label differently."""
    if labels.shape != other.shape:
        raise ValueError(f"the two runs label {labels.shape[0]} and {other.shape[0]} points; "
                         "compare runs of the same embeddings")
    differ = labels != other
    return differ & among if among is not None else differ


def agreement(labels: np.ndarray, other: np.ndarray, among: np.ndarray | None = None) -> float:
    """Share of points (optionally only those in `among`) the two label vectors agree on; NaN if none."""
    count = labels.shape[0] if among is None else int(among.sum())
    if count == 0:
        return float("nan")
    return 1.0 - float(disagreement(labels, other, among).sum()) / count


def _check_aligned(values: np.ndarray, result: LabelingResult, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != result.labels.shape:
        raise ValueError(f"{name} has {values.shape[0] if values.ndim else 0} entries but the run "
                         f"labels {result.labels.shape[0]} points; align it with the run's items")
    return values


@dataclass
class Replay:
    """Everything about one run that does not depend on the round shown (computed once).

    Attributes
    ----------
    result : LabelingResult
        The HDL run.
    neighbours : ndarray (n, >= k), int
        The kNN graph the run used (for the round and vote explanations).
    per_round : ndarray (n_rounds,)
        Points labeled in each round.
    share : ndarray (n_rounds,)
        Share of all points labeled once each round is done (seeds included).
    truth : ndarray (n,) or None
        Ground truth as `truth_codes`; None when unknown.
    accuracy : ndarray (n_rounds,) or None
        Accuracy so far after each round (`accuracy_by_round`); None without truth.
    final_accuracy, baseline_accuracy : float or None
        Accuracy of the whole run and of the kNN-DV run (non-seed points with known truth).
    baseline : ndarray (n,) or None
        kNN-DV labels of the same points; None when there is no kNN-DV run.
    disagree : ndarray (n,), bool, or None
        Points (seeds excluded) where HDL and kNN-DV differ.
    agreement : float or None
        Share of the non-seed points where they agree.
    """

    result: LabelingResult
    neighbours: np.ndarray
    per_round: np.ndarray
    share: np.ndarray
    truth: np.ndarray | None = None
    accuracy: np.ndarray | None = None
    final_accuracy: float | None = None
    baseline: np.ndarray | None = None
    baseline_accuracy: float | None = None
    disagree: np.ndarray | None = None
    agreement: float | None = None

    @property
    def n(self) -> int:
        return int(self.result.labels.shape[0])

    @property
    def n_rounds(self) -> int:
        return self.result.n_rounds

    @property
    def seeds(self) -> np.ndarray:
        return self.result.step < 0


def build_replay(result: LabelingResult, neighbours: np.ndarray, *,
                 baseline: np.ndarray | None = None, truth: np.ndarray | None = None) -> Replay:
    """Precompute a run's replay: counts per round, share, accuracy so far, kNN-DV agreement.

    Parameters
    ----------
    result : LabelingResult
    neighbours : ndarray (n, >= result.k), int
    baseline : ndarray (n,), int, optional
        kNN-DV labels of the same points, in the same order.
    truth : ndarray (n,), int, optional
        `truth_codes` of the same points; ignored when no point's truth is known.
    """
    neighbours = np.asarray(neighbours)
    n = result.labels.shape[0]
    if neighbours.ndim != 2 or neighbours.shape[0] != n or neighbours.shape[1] < result.k:
        raise ValueError(f"neighbours must have shape ({n}, >= {result.k}) for this run, "
                         f"got {neighbours.shape}; pass the graph the run used")
    replay = Replay(result, neighbours, labeled_per_round(result), cumulative_share(result))
    predicted = result.step >= 0
    if truth is not None and (np.asarray(truth) >= 0).any():
        replay.truth = _check_aligned(truth, result, "truth").astype(np.int64)
        replay.accuracy = accuracy_by_round(result, replay.truth)
        replay.final_accuracy = accuracy(result.labels, replay.truth, predicted)
    if baseline is not None:
        replay.baseline = _check_aligned(baseline, result, "baseline").astype(np.int64)
        replay.disagree = disagreement(result.labels, replay.baseline, predicted)
        replay.agreement = agreement(result.labels, replay.baseline, predicted)
        if replay.truth is not None:
            replay.baseline_accuracy = accuracy(replay.baseline, replay.truth, predicted)
    return replay


# --------------------------------------------------------------------------- the map

@dataclass
class MapLayers:
    """Which points the map draws how at one round (indices into the run's points).

    Attributes
    ----------
    unlabeled : ndarray
        Not labeled yet: drawn grey.
    coloured : ndarray
        Labeled by the run in rounds ``0 .. r`` (current round included): class colour.
    seeds : ndarray
        Seeds: class colour, bigger, outlined.
    current : ndarray
        Round `r`'s first level, in its second-level order.
    bridged : ndarray
        Points labeled by a bridge (fallback) in rounds ``0 .. r``.
    """

    unlabeled: np.ndarray
    coloured: np.ndarray
    seeds: np.ndarray
    current: np.ndarray
    bridged: np.ndarray


def map_layers(replay: Replay, r: int, *, only: np.ndarray | None = None) -> MapLayers:
    """The map's point groups at round `r`, restricted to the mask `only` when given."""
    result = replay.result
    r = check_round(result, r)
    state = point_state(result, r)
    keep = np.ones(replay.n, bool) if only is None else np.asarray(only, bool)
    current, _ = first_level(result, r)
    if only is not None:
        current = current[keep[current]]
    return MapLayers(
        unlabeled=np.flatnonzero((state == UNLABELED) & keep),
        coloured=np.flatnonzero(((state == LABELED) | (state == CURRENT)) & keep),
        seeds=np.flatnonzero((state == SEED) & keep),
        current=current,
        bridged=np.flatnonzero(result.fallback & (result.round >= 0) & (result.round <= r) & keep),
    )


def round_summary(result: LabelingResult, neighbours: np.ndarray, r: int) -> tuple[np.ndarray, bool, int]:
    """Round `r`'s first level (in vote order), whether it was a bridge, and its L.

    L is the number of labeled neighbours (of k) the first level's points had when the
    round began: Algorithm 1 takes exactly the unlabeled points of the largest L, so this
    is `hdl_core.explain.round_view`'s ``max_L`` (0 for a bridge), read from the first
    level's own neighbour lists: O(size of the round · k) instead of a pass over every
    point, which is what lets the replay's caption follow a slider at a million points.
    """
    r = check_round(result, r)
    members, _ = first_level(result, r)
    if members.size == 0:
        return members, False, 0
    bridge = bool(result.fallback[members].any())
    if bridge:
        return members, True, 0
    start = int(result.step[members].min())
    near = np.asarray(neighbours)[members, :result.k]
    labeled_then = result.step[near] < start              # seeds have step -1
    return members, False, int(labeled_then.sum(axis=1).max())

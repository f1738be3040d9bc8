"""HDL on a 2-D toy, step by step: the computations behind the Teach page.

The toy's plane *is* the embedding: there is no projection between what HDL sees and what
the page draws. Its points are compared by straight-line distance, so every call into
`hdl_core` here passes ``metric="euclidean"``: the kNN graph (`build_knn_graph`), HDL and
its bridges (`hdl_label`: a bridge joins the pair nearest in the plane, found exactly, so
a caption never contradicts the picture), kNN-DV (`knn_dv_label`) and μ_k / P(k)
(`choose_k`, which the page also runs over every point with its true class). Everything
here is numpy over plain arrays; the page only draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..graph import KnnGraph, build_knn_graph, check_k

from ..rows import euclidean_points
from ..hdl import LabelingResult, hdl_label, knn_dv_label, validate_labels
from .replay import accuracy
from .walkthrough import walkthrough

KINDS = ("moons", "blobs", "circles")
MAX_POINTS = 2000
MAX_CLASSES = 6
# The graph is built once with this many neighbours; any k up to it is a column slice.
# Also the toy's k_max for choose_k (candidates k = 1 .. K_MAX-1).
K_MAX = 20


# ---------------------------------------------------------------------------------------
# the toy

@dataclass
class Toy:
    """A labeled 2-D point set.

    Attributes
    ----------
    X : ndarray (n, 2), float64
        The points; the plane is the embedding.
    truth : ndarray (n,), int
        The true class of every point (what HDL is scored against).
    y : ndarray (n,), int
        Seeds: the true class for the seed points, -1 elsewhere.
    kind : str
    note : str
        How the shape was built, in words (e.g. how moons become more than two classes).
    """

    X: np.ndarray
    truth: np.ndarray
    y: np.ndarray
    kind: str
    note: str = ""

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def n_classes(self) -> int:
        return int(self.truth.max()) + 1


def make_toy(kind: str = "moons", n_points: int = 300, n_classes: int = 2, noise: float = 0.1,
             seeds_per_class: int = 2, random_state: int = 0) -> Toy:
    """Build a 2-D toy with its truth and a few seeds per class.

    Parameters
    ----------
    kind : {"moons", "blobs", "circles"}
        Two classes: scikit-learn's ``make_moons`` / ``make_circles(factor=0.5)`` /
        ``make_blobs``. More classes: a chain of moons, alternately opening up and down,
        each interleaved with the next; concentric rings of radii 1/C .. 1 with points in
        proportion to the ring's length; or C blobs.
    n_points : int
        2 ≤ ... ≤ MAX_POINTS points in all, shared out evenly between classes.
    n_classes : int
        2 .. MAX_CLASSES.
    noise : float
        Standard deviation of the Gaussian noise added to each point (moons and rings
        have radius 1). For blobs the spread of each blob is ``0.3 + 2·noise`` around
        centers drawn in [-5, 5]².
    seeds_per_class : int
        Points of each class, drawn at random, whose true label is given to HDL.
    random_state : int
        Seeds the shape, the noise and the draw of seeds.

    Returns
    -------
    Toy
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    n_classes = _whole(n_classes, "n_classes", 2, MAX_CLASSES)
    seeds_per_class = _whole(seeds_per_class, "seeds_per_class", 1, MAX_POINTS)
    n_points = _whole(n_points, "n_points", 2, MAX_POINTS)
    if n_points < n_classes * (seeds_per_class + 1):
        raise ValueError(f"n_points={n_points} is too few for {n_classes} classes with "
                         f"{seeds_per_class} seeds each: use at least "
                         f"{n_classes * (seeds_per_class + 1)} points or fewer seeds")
    noise = float(noise)
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a number ≥ 0, got {noise!r}")
    random_state = _whole(random_state, "random_state", 0, 2**32 - 1)

    rng = np.random.default_rng(random_state)
    counts = _share(n_points, n_classes)
    if kind == "moons":
        X, truth, note = _moons(counts, noise, random_state, rng)
    elif kind == "circles":
        X, truth, note = _circles(counts, noise, random_state, rng)
    else:
        from sklearn.datasets import make_blobs
        X, truth = make_blobs(n_samples=counts, n_features=2, cluster_std=0.3 + 2.0 * noise,
                              center_box=(-5.0, 5.0), random_state=random_state)
        note = f"{n_classes} Gaussian blobs with centers drawn in [-5, 5]²"
    truth = truth.astype(np.int64)
    y = draw_seeds(truth, seeds_per_class, rng)
    return Toy(np.ascontiguousarray(X, dtype=np.float64), truth, y, kind, note)


def draw_seeds(truth: np.ndarray, seeds_per_class: int, rng) -> np.ndarray:
    """-1 everywhere but `seeds_per_class` random points of each class, which keep their class."""
    y = np.full(truth.shape[0], -1, np.int64)
    for c in range(int(truth.max()) + 1):
        members = np.flatnonzero(truth == c)
        if members.size < seeds_per_class:
            raise ValueError(f"class {c} has only {members.size} points, fewer than "
                             f"seeds_per_class={seeds_per_class}; use more points or fewer seeds")
        y[rng.choice(members, seeds_per_class, replace=False)] = c
    return y


def _whole(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name}={value} must lie between {low} and {high}")
    return int(value)


def _share(n: int, parts: int) -> list[int]:
    base, extra = divmod(n, parts)
    return [base + (i < extra) for i in range(parts)]


def _moons(counts, noise, random_state, rng):
    if len(counts) == 2:
        from sklearn.datasets import make_moons
        X, truth = make_moons(n_samples=tuple(counts), noise=noise, random_state=random_state)
        return X, truth, "scikit-learn's two interleaving moons"
    # moon c: half circle of radius 1, centered 1.25·c apart; even moons open downwards
    # (upper arc), odd moons open upwards and sit 0.5 lower, so each interleaves with the next.
    parts, labels = [], []
    for c, m in enumerate(counts):
        t = np.linspace(0, np.pi, m)
        if c % 2 == 0:
            arc = np.c_[1.25 * c + np.cos(t), np.sin(t)]
        else:
            arc = np.c_[1.25 * c - np.cos(t), 0.5 - np.sin(t)]
        parts.append(arc)
        labels.append(np.full(m, c))
    X = np.vstack(parts) + rng.normal(scale=noise, size=(sum(counts), 2))
    perm = rng.permutation(X.shape[0])
    return X[perm], np.concatenate(labels)[perm], (
        f"a chain of {len(counts)} moons (scikit-learn's moons make only two), each "
        f"interleaved with the next")


def _circles(counts, noise, random_state, rng):
    if len(counts) == 2:
        from sklearn.datasets import make_circles
        X, truth = make_circles(n_samples=tuple(counts[::-1]), noise=noise, factor=0.5,
                                random_state=random_state)
        # scikit-learn's class 0 is the outer ring; number rings from the inside out
        return X, 1 - truth, "scikit-learn's two concentric circles (class 0 inside)"
    n, C = sum(counts), len(counts)
    radii = np.arange(1, C + 1) / C
    ring_counts = _share_weighted(n, radii)
    parts, labels = [], []
    for c, (r, m) in enumerate(zip(radii, ring_counts)):
        t = np.linspace(0, 2 * np.pi, m, endpoint=False)
        parts.append(r * np.c_[np.cos(t), np.sin(t)])
        labels.append(np.full(m, c))
    X = np.vstack(parts) + rng.normal(scale=noise, size=(n, 2))
    perm = rng.permutation(n)
    return X[perm], np.concatenate(labels)[perm], (
        f"{C} concentric rings of radii 1/{C} .. 1 (scikit-learn's circles make only two), "
        f"points in proportion to each ring's length")


def _share_weighted(n: int, weights: np.ndarray) -> list[int]:
    raw = n * weights / weights.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts))[: n - counts.sum()]] += 1
    return counts.tolist()


def with_seed(y: np.ndarray, point: int, label: int) -> np.ndarray:
    """A copy of `y` with `point` made a seed of class `label` (-1 removes the seed)."""
    y = np.array(y, dtype=np.int64, copy=True)
    if not 0 <= int(point) < y.shape[0]:
        raise ValueError(f"point {point} is not in the toy (0 .. {y.shape[0] - 1})")
    if int(label) < -1:
        raise ValueError(f"label must be a class (≥ 0) or -1 to remove a seed, got {label}")
    y[int(point)] = int(label)
    return y


def nearest_point(X: np.ndarray, xy) -> int:
    """Index of the point nearest to the plane position `xy` (lowest index on ties)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(2)
    return int(np.argmin(((X - xy) ** 2).sum(axis=1)))


# ---------------------------------------------------------------------------------------
# one bundle for the page

@dataclass
class TeachRun:
    """Everything the Teach page draws for one toy, one set of seeds and one k."""

    k: int
    graph: KnnGraph
    hdl: LabelingResult
    knn_dv: LabelingResult
    steps: list
    accuracy_hdl: float
    accuracy_knn_dv: float
    differ: np.ndarray


def teach_run(X, y, truth, *, k: int, graph: KnnGraph | None = None,
              class_names=None) -> TeachRun:
    """HDL (walkthrough included) and kNN-DV on the same seeds, scored against the truth.

    Parameters
    ----------
    X : array-like (n, 2)
        The toy's points (compared by Euclidean distance).
    y : array-like (n,), int
        -1 unlabeled, 0..C-1 seeds.
    truth : array-like (n,), int
        Every point's true class.
    k : int
        Neighbours per point.
    graph : KnnGraph, optional
        ``build_knn_graph(X, K, metric="euclidean")`` with K >= k; built with
        ``max(k, min(K_MAX, n - 1))`` neighbours when None.
    class_names : sequence of str, optional
        For the walkthrough's captions.

    Returns
    -------
    TeachRun
    """
    X = euclidean_points(X)
    y = validate_labels(y, X.shape[0])
    if y.max() > np.max(truth):
        raise ValueError(f"a seed has class {y.max()} but the toy's classes are "
                         f"0..{int(np.max(truth))}")
    k = check_k(k, X.shape[0])
    if graph is None:
        graph = build_knn_graph(X, max(k, min(K_MAX, X.shape[0] - 1)), metric="euclidean")
    hdl = hdl_label(X, y, k=k, graph=graph, metric="euclidean")
    dv = knn_dv_label(X, y, k=k, metric="euclidean")
    steps = walkthrough(graph.indices, hdl, X=X, class_names=class_names)
    truth = np.asarray(truth)
    return TeachRun(k, graph, hdl, dv, steps, accuracy(hdl.labels, truth, y < 0),
                    accuracy(dv.labels, truth, y < 0), np.flatnonzero(hdl.labels != dv.labels))

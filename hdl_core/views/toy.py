"""HDL on a 2-D toy, step by step: the computations behind the Teach page.

The toy's plane *is* the embedding: there is no projection between what HDL sees and what
the page draws. Everything here is numpy over plain arrays; the page only draws.

Euclidean plane, cosine library
-------------------------------
`hdl_core` compares embeddings by cosine (rows are L2-normalised). Applied to raw 2-D
points that would keep only each point's angle around the origin, so the toy never hands
its raw plane to a cosine search. Instead:

* **The kNN graph** is built here by exact Euclidean search (`plane_knn_graph`) and passed
  to `hdl_label`, whose rounds and votes use only the graph. Its ``distances`` are
  Euclidean, not cosine; `hdl_label` never reads them.
* **The bridge** (max L = 0: the unlabeled point nearest to any labeled point copies its
  label) is the one place where `hdl_label` reads `X` itself, by cosine. No map of the
  plane into a few dimensions makes cosine an exact stand-in for plane distance in
  float32 (lifting a point to ``(x, y, c)`` is flat only to first order in ``1/c``, and
  float32 loses the differences once ``c`` is large), and a wrong bridge would contradict
  the caption drawn over it. So `label_plane` makes bridges itself and lets `hdl_label`
  run only the stretches between them: after a bridge (or at the start) it finds the
  unlabeled points whose neighbour chains lead to a label (exactly the points HDL labels
  before it next runs out of labeled neighbours) and runs `hdl_label` on that sub-problem,
  indices kept in order so every tie breaks the same way. HDL's rounds depend only on who
  is labeled and how, so the result is exactly `hdl_label` with a Euclidean bridge (the
  tests hold it to a literal transcription of Algorithm 1). A bridged point's confidence
  is ``0.5 * exp(-d / d_k)``, clipped to [0.001, 0.5], with ``d_k`` the median distance to
  the k-th neighbour: a far bridge ranks below a near one, as in `hdl_label`.
* **kNN-DV** (eq. 1) votes among the k nearest labeled points in the plane
  (`knn_dv_plane`), with `hdl_core.hdl.vote` (ties to the nearest tied class).
* **μ_k** counts Euclidean neighbours among the labeled points (`choose_k_plane`); P(k)
  uses `auto_k.vote_success_bound` and `choose_k`'s rule for when μ_k is reliable.

If `hdl_label`, `knn_dv_label` and `choose_k` ever accept a metric (or a bridge rule),
the three workarounds above reduce to plain calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..auto_k import DEFAULT_K, MIN_CENTERS, KChoice, choose_k
from .walkthrough import walkthrough
from ..graph import KnnGraph, check_k
from ..hdl import LabelingResult, hdl_label, knn_dv_from, validate_labels

KINDS = ("moons", "blobs", "circles")
MAX_POINTS = 2000
MAX_CLASSES = 6
# The graph is built once with this many neighbours; any k up to it is a column slice.
K_MAX = 20
# Pairwise distance blocks: rows per block (keeps the n×n work at a few MB).
_BLOCK_ROWS = 512


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
# Euclidean neighbours in the plane

def _check_plane(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] < 2:
        raise ValueError(f"plane points must have shape (n ≥ 2, 2), got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("plane points contain NaN or inf")
    return X


def _squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    # differences, not |a|²+|b|²-2ab: exact zeros and symmetric values, so ties stay ties
    d = A[:, None, :] - B[None, :, :]
    return np.einsum("ijk,ijk->ij", d, d)


def _nearest(queries: np.ndarray, reference: np.ndarray, k: int, *, exclude=None):
    """k nearest `reference` rows of each query, nearest first, ties by ascending index.

    With `exclude`, query i never lists reference row ``exclude[i]`` (itself).
    """
    n_q, n_ref = queries.shape[0], reference.shape[0]
    indices = np.empty((n_q, k), np.int64)
    dist2 = np.empty((n_q, k), np.float64)
    for start in range(0, n_q, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n_q)
        d2 = _squared_distances(queries[start:stop], reference)
        if exclude is not None:
            d2[np.arange(stop - start), exclude[start:stop]] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < n_ref else \
            np.broadcast_to(np.arange(n_ref), (stop - start, n_ref))
        part_d2 = np.take_along_axis(d2, part, axis=1)
        # a tie at the k-th place could leave out a lower index: widen to every tied value
        order = np.lexsort((part, part_d2), axis=1)
        part, part_d2 = np.take_along_axis(part, order, 1), np.take_along_axis(part_d2, order, 1)
        kth = part_d2[:, -1:]
        needs_fix = (d2 == kth).sum(axis=1) > (part_d2 == kth).sum(axis=1)
        for row in np.flatnonzero(needs_fix):
            full = np.lexsort((np.arange(n_ref), d2[row]))[:k]
            part[row], part_d2[row] = full, d2[row, full]
        indices[start:stop] = part
        dist2[start:stop] = part_d2
    return indices, np.sqrt(dist2)


def plane_knn_graph(X, k: int = K_MAX) -> KnnGraph:
    """Exact Euclidean kNN graph of plane points (self excluded, nearest first, ties by index).

    ``distances`` are Euclidean (a `KnnGraph` from `build_knn_graph` holds cosine
    distances; `hdl_label` reads neither).
    """
    X = _check_plane(X)
    k = check_k(min(int(k), X.shape[0] - 1), X.shape[0])
    indices, distances = _nearest(X, X, k, exclude=np.arange(X.shape[0]))
    return KnnGraph(indices, distances.astype(np.float32))


class _NearestLabeled:
    """For every point, its nearest labeled point in the plane, grown as points get labeled.

    Ties go to the lowest labeled index; a pick among unlabeled points to the lowest index
    (the rule `hdl_label`'s bridge uses).
    """

    def __init__(self, X: np.ndarray):
        self.X = X
        self.best_d2 = np.full(X.shape[0], np.inf)
        self.best_src = np.full(X.shape[0], np.iinfo(np.int64).max, np.int64)

    def add(self, points) -> None:
        points = np.sort(np.asarray(points, np.int64))
        for start in range(0, points.size, _BLOCK_ROWS):
            cols = points[start:start + _BLOCK_ROWS]
            d2 = _squared_distances(self.X, self.X[cols])
            j = d2.argmin(axis=1)
            d = d2[np.arange(d2.shape[0]), j]
            src = cols[j]
            better = (d < self.best_d2) | ((d == self.best_d2) & (src < self.best_src))
            self.best_d2[better] = d[better]
            self.best_src[better] = src[better]

    def pick(self, unlabeled: np.ndarray) -> tuple[int, int, float]:
        candidates = np.flatnonzero(unlabeled)
        point = candidates[np.argmin(self.best_d2[candidates])]
        return int(point), int(self.best_src[point]), float(np.sqrt(self.best_d2[point]))


def label_plane(X, y, *, k: int, graph: KnnGraph | None = None) -> LabelingResult:
    """`hdl_label` on plane points: Euclidean graph, Euclidean bridges (see the module notes).

    Parameters
    ----------
    X : array-like (n, 2)
        Plane points.
    y : array-like (n,), int
        -1 unlabeled, 0..C-1 seeds.
    k : int
        Neighbours per point.
    graph : KnnGraph, optional
        `plane_knn_graph(X)` with at least k neighbours (built when None).

    Returns
    -------
    LabelingResult
        What `hdl_label` returns, except that a bridge joins the unlabeled point nearest
        in the plane to a labeled one; a bridged point's ``confidence`` is
        ``0.5 * exp(-d / d_k)`` (clipped to [0.001, 0.5], d_k the median distance to the
        k-th neighbour).
    """
    X = _check_plane(X)
    n = X.shape[0]
    y = validate_labels(y, n)
    k = check_k(k, n)
    if graph is None:
        graph = plane_knn_graph(X, k)
    if graph.n != n or graph.k < k:
        raise ValueError(f"graph must cover the {n} points with at least k={k} neighbours, "
                         f"got {graph.n} points × {graph.k}; build it with plane_knn_graph(X)")
    neighbours = np.ascontiguousarray(graph.indices[:, :k], dtype=np.int64)
    d_k = float(np.median(graph.distances[:, k - 1])) or 1.0
    out = LabelingResult(y.copy(), np.full(n, -1, np.int64), np.full(n, -1, np.int64),
                         np.ones(n), np.zeros(n, np.int64), np.zeros(n, bool),
                         np.full(n, -1, np.int64), k)
    lists = _listed_by(neighbours)
    labeled = y >= 0
    sources = np.flatnonzero(labeled)
    nearest = _NearestLabeled(X)
    nearest.add(sources)
    n_steps = n_rounds = 0
    while not labeled.all():
        reach = _reaching(sources, lists, labeled)
        if reach.size:
            n_steps, n_rounds = _run_stretch(neighbours, out, labeled, reach, n_steps, n_rounds)
            nearest.add(reach)
        if labeled.all():
            break
        # Bridge: max L = 0 (nothing unlabeled reaches a label); joined in the plane.
        point, src, dist = nearest.pick(~labeled)
        out.labels[point] = out.labels[src]
        out.step[point], out.round[point] = n_steps, n_rounds
        out.confidence[point] = min(0.5, max(0.001, 0.5 * math.exp(-dist / d_k)))
        out.fallback[point], out.source[point] = True, src
        labeled[point] = True
        nearest.add([point])
        sources = np.array([point])
        n_steps, n_rounds = n_steps + 1, n_rounds + 1
    return out


def _listed_by(neighbours: np.ndarray) -> list[np.ndarray]:
    """For every point p, the points that list p among their neighbours."""
    n = neighbours.shape[0]
    flat = neighbours.ravel()
    owner = np.repeat(np.arange(n), neighbours.shape[1])
    order = np.argsort(flat, kind="stable")
    return np.split(owner[order], np.cumsum(np.bincount(flat, minlength=n))[:-1])


def _reaching(sources: np.ndarray, lists: list, labeled: np.ndarray) -> np.ndarray:
    """Unlabeled points with a chain of neighbours leading to one of `sources` (sorted).

    These are exactly the points HDL labels before it next runs out of labeled neighbours:
    a point gains L only from a neighbour that got labeled.
    """
    seen = labeled.copy()
    found = []
    frontier = list(sources)
    while frontier:
        nxt = []
        for p in frontier:
            for q in lists[p]:
                if not seen[q]:
                    seen[q] = True
                    nxt.append(q)
        found.extend(nxt)
        frontier = nxt
    return np.sort(np.array(found, np.int64))


def _run_stretch(neighbours, out, labeled, reach, n_steps, n_rounds):
    """Run `hdl_label` on the points `reach` (until they are all labeled) and record them.

    The sub-problem holds `reach`, the labeled points they list, and placeholder points
    that list only each other: every neighbour outside the sub-problem (unlabeled, and
    staying so until the next bridge) becomes a placeholder. Indices keep their order, so
    second-level and vote ties break as in the full problem. Once `reach` is labeled,
    `hdl_label` stalls on the placeholders and bridges them; that tail is dropped.
    """
    rows = neighbours[reach]
    listed = np.unique(rows)
    members = np.union1d(reach, listed[labeled[listed]])
    m = members.size
    k = neighbours.shape[1]
    n_placeholders = max(2, k + 1 - m)    # hdl_label needs more than k points
    total = m + n_placeholders
    new_index = np.full(neighbours.shape[0], m, np.int64)
    new_index[members] = np.arange(m)
    sub = np.empty((total, k), np.int64)
    sub[:m] = m                           # labeled rows are never read
    at = np.searchsorted(members, reach)
    sub[at] = new_index[rows]
    sub[m:] = (m + (np.arange(n_placeholders) + 1) % n_placeholders)[:, None]
    y_sub = np.full(total, -1, np.int64)
    y_sub[:m] = np.where(labeled[members], out.labels[members], -1)
    run = hdl_label(np.ones((total, 1)), y_sub, k=k,
                    graph=KnnGraph(sub, np.zeros(sub.shape, np.float32)))
    out.labels[reach] = run.labels[at]
    out.step[reach] = run.step[at] + n_steps
    out.round[reach] = run.round[at] + n_rounds
    out.confidence[reach] = run.confidence[at]
    out.n_voters[reach] = run.n_voters[at]
    labeled[reach] = True
    return n_steps + reach.size, n_rounds + int(run.round[at].max()) + 1


def knn_dv_plane(X, y, *, k: int) -> LabelingResult:
    """kNN-DV (eq. 1) in the plane: each unlabeled point takes the majority label of its k
    nearest seeds (all seeds when there are fewer than k), ties to the nearest tied class.
    Step and round are 0 for every labeled point, as in `knn_dv_label`.
    """
    X = _check_plane(X)
    y = validate_labels(y, X.shape[0])
    return knn_dv_from(y, check_k(k, X.shape[0]),
                       lambda rows, seeds, kv: _nearest(X[rows], X[seeds], kv)[0])


# ---------------------------------------------------------------------------------------
# μ_k and P(k) in the plane

def mu_k_plane(X_labeled: np.ndarray, y_labeled: np.ndarray, centers: np.ndarray,
               k_max: int) -> np.ndarray:
    """μ_k for k = 1..k_max-1 with Euclidean neighbours among the labeled points.

    A center holds for k when it and its k nearest labeled points (itself excluded) all
    share one label; NaN where fewer than k+1 points are labeled.
    """
    ks = np.arange(1, k_max)
    mu = np.full(ks.size, np.nan)
    k_avail = min(k_max - 1, X_labeled.shape[0] - 1)
    if k_avail < 1 or centers.size == 0:
        return mu
    nearest, _ = _nearest(X_labeled[centers], X_labeled, k_avail, exclude=centers)
    same = y_labeled[nearest] == y_labeled[centers][:, None]
    holds = np.logical_and.accumulate(same, axis=1)
    mu[:k_avail] = holds.mean(axis=0)
    return mu


@dataclass
class PlaneKChoice:
    """`KChoice` from the seeds, plus μ_k and P(k) as the toy's truth would give them.

    Attributes
    ----------
    choice : KChoice
        What the app would choose from the seeds (Euclidean μ_k, `choose_k`'s rule).
    mu_truth : ndarray
        μ_k with every point labeled by its truth (the app never has this; it shows what
        the seeds try to estimate).
    p_truth : ndarray
        μ_truth · I.
    """

    choice: KChoice
    mu_truth: np.ndarray
    p_truth: np.ndarray


def choose_k_plane(X, y, truth=None, *, k_max: int = K_MAX, noise_rate: float = 0.15,
                   sample_fraction: float | None = 0.1, random_state=0) -> PlaneKChoice:
    """Listing 1 in the plane: k* = argmax μ_k · I_{1-e}(k+1-k', k'+1) with Euclidean μ_k.

    The centers, the reliability rule and its reasons are `choose_k`'s (they depend only on
    how many points of each class are labeled); μ_k is measured with plane distances.
    With `truth`, μ_k is also measured over every point with its true class.
    """
    X = _check_plane(X)
    y = validate_labels(y, X.shape[0])
    rules = choose_k(np.ones((X.shape[0], 1)), y, k_max=k_max, noise_rate=noise_rate,
                     sample_fraction=sample_fraction, random_state=random_state)
    labeled = np.flatnonzero(y >= 0)
    n_lab = labeled.size
    if sample_fraction is None:
        centers = np.arange(n_lab)
    else:   # the same draw as choose_k
        rng = np.random.default_rng(random_state)
        m = max(math.ceil(sample_fraction * n_lab), min(MIN_CENTERS, n_lab))
        centers = np.sort(rng.choice(n_lab, size=min(m, n_lab), replace=False))
    mu = mu_k_plane(X[labeled], y[labeled], centers, k_max)
    p = mu * rules.beta
    if rules.reliable:
        k = int(rules.ks[np.nanargmax(p)])
        reason = (f"k={k} maximises P(k) = μ_k · I over k = 1..{k_max - 1} "
                  f"({centers.size} seeds as centers, e = {float(noise_rate):.2f}).")
    else:
        k, reason = DEFAULT_K, rules.reason
    k = min(k, X.shape[0] - 1)
    choice = KChoice(ks=rules.ks, mu=mu, beta=rules.beta, p=p, k=k, reliable=rules.reliable,
                     reason=reason, n_centers=int(centers.size))
    if truth is None:
        mu_truth = np.full(rules.ks.size, np.nan)
    else:
        truth = validate_labels(truth, X.shape[0], name="truth")
        mu_truth = mu_k_plane(X, truth, np.arange(X.shape[0]), k_max)
    return PlaneKChoice(choice, mu_truth, mu_truth * rules.beta)


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


def accuracy(labels: np.ndarray, truth: np.ndarray, y: np.ndarray) -> float:
    """Share of the non-seed points whose label matches the truth (NaN without any)."""
    scored = y < 0
    return float((labels[scored] == truth[scored]).mean()) if scored.any() else float("nan")


def teach_run(X, y, truth, *, k: int, graph: KnnGraph | None = None,
              class_names=None) -> TeachRun:
    """HDL (walkthrough included) and kNN-DV on the same seeds, scored against the truth."""
    X = _check_plane(X)
    y = validate_labels(y, X.shape[0])
    if y.max() > np.max(truth):
        raise ValueError(f"a seed has class {y.max()} but the toy's classes are "
                         f"0..{int(np.max(truth))}")
    k = check_k(k, X.shape[0])
    if graph is None:
        graph = plane_knn_graph(X, max(k, min(K_MAX, X.shape[0] - 1)))
    hdl = label_plane(X, y, k=k, graph=graph)
    dv = knn_dv_plane(X, y, k=k)
    steps = walkthrough(graph.indices, hdl, X=X, class_names=class_names)
    return TeachRun(k, graph, hdl, dv, steps, accuracy(hdl.labels, truth, y),
                    accuracy(dv.labels, truth, y), np.flatnonzero(hdl.labels != dv.labels))

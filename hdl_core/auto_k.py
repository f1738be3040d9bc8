"""Choosing k from the data: μ_k, the vote-success bound and P(k) (Section 4.4, Listing 1)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betainc

from .config import DEFAULT_K, DEFAULT_K_MAX, DEFAULT_NOISE_RATE
from .graph import check_k, exact_knn, get_metric
from .rows import read_rows
from .hdl import validate_labels

# Fewer centers than this and μ_k moves by more than ±0.07 (one standard error at
# μ = 0.5) between draws, enough to move k* by several steps: see bench/auto_k_bench.py.
MIN_CENTERS = 50


@dataclass
class KChoice:
    """The chosen k and the curves behind it.

    Attributes
    ----------
    ks : ndarray
        Candidate k values, 1 .. k_max-1.
    mu : ndarray
        μ_k: share of labeled centers that share one label with their k nearest labeled
        points (NaN where fewer than k+1 points are labeled).
    beta : ndarray
        I_{1-e}(k+1-k', k'+1) with k' = ⌈(k+1)/2⌉ - 1: the chance that a majority of k+1
        votes is right when each is wrong with probability e (eq. 2).
    p : ndarray
        P(k) lower bound μ_k · I.
    k : int
        argmax of P(k) (smallest on ties), or DEFAULT_K when not reliable.
    reliable : bool
        False when too few labeled points make μ_k meaningless.
    reason : str
        Why, in words a user understands.
    n_centers : int
        Centers used to estimate μ_k.
    """

    ks: np.ndarray
    mu: np.ndarray
    beta: np.ndarray
    p: np.ndarray
    k: int
    reliable: bool
    reason: str
    n_centers: int = 0

    @property
    def k_best(self) -> int:
        """argmax of P(k) even when the curve is unreliable (for display)."""
        if np.isnan(self.p).all():
            return DEFAULT_K
        return int(self.ks[np.nanargmax(self.p)])


def vote_success_bound(ks, noise_rate: float) -> np.ndarray:
    """I_{1-e}(k+1-k', k'+1), k' = ⌈(k+1)/2⌉ - 1 (eq. 2)."""
    ks = np.asarray(ks)
    k_prime = np.array([math.ceil((k + 1) / 2) - 1 for k in ks])
    return betainc(ks + 1 - k_prime, k_prime + 1, 1.0 - noise_rate)


def mu_k(X_labeled: np.ndarray, y_labeled: np.ndarray, centers: np.ndarray,
         k_max: int, *, metric: str = "cosine") -> np.ndarray:
    """μ_k for k = 1..k_max-1 over the given centers (indices into the labeled set).

    A center holds for k when it and its k nearest labeled points (itself excluded by
    index, so a duplicate still counts; equal distances by ascending index) all share one
    label. Rows must be prepared for `metric` (cosine: unit vectors; see
    `graph.METRICS`).
    """
    n_lab = X_labeled.shape[0]
    ks = np.arange(1, k_max)
    mu = np.full(ks.size, np.nan)
    k_avail = min(k_max - 1, n_lab - 1)
    if k_avail < 1 or centers.size == 0:
        return mu
    queries = X_labeled[centers]
    # search k_avail+1 so that the center itself can be removed by index
    nearest, _ = exact_knn(queries, X_labeled, k_avail + 1, metric=metric)
    is_self = nearest == centers[:, None]
    keep = ~is_self
    keep[~is_self.any(axis=1), -1] = False
    nearest = nearest[keep].reshape(centers.size, k_avail)
    same = y_labeled[nearest] == y_labeled[centers][:, None]
    holds = np.logical_and.accumulate(same, axis=1)      # holds[:, k-1]: first k all agree
    mu[:k_avail] = holds.mean(axis=0)
    return mu


def choose_k(X, y, *, k_max: int = 20, noise_rate: float = 0.15, sample_fraction=0.1,
             random_state=None, metric: str = "cosine") -> KChoice:
    """Choose k as the argmax of P(k) = μ_k · I_{1-e}(k+1-k', k'+1) (Listing 1).

    Parameters
    ----------
    X : array-like (n, d)
        Embeddings; only the labeled rows are used.
    y : array-like (n,)
        -1 unlabeled, 0..C-1 seed classes.
    k_max : int, default=20
        Candidates are k = 1 .. k_max-1 (Listing 1's `k_upper_limit`).
    noise_rate : float, default=0.15
        e, the assumed probability that a label is wrong.
    sample_fraction : float in (0, 1] or None, default=0.1
        Share of labeled points drawn (without replacement) as centers; at least
        MIN_CENTERS are drawn when that many exist. None uses every labeled point.
    random_state : int, Generator or None
    metric : {"cosine", "euclidean"}, default="cosine"
        How the neighbours behind μ_k are measured (see `graph.METRICS`).

    Returns
    -------
    KChoice
    """
    if np.ndim(X) != 2:       # checked here: below, only the labeled rows are read
        raise ValueError(f"X must be a 2-D array (n_points, n_features), got shape {np.shape(X)}")
    n_points = np.shape(X)[0]
    y = validate_labels(y, n_points)
    if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or k_max < 2:
        raise ValueError(f"k_max must be an integer of at least 2, got {k_max!r}")
    if not 0.0 <= float(noise_rate) < 1.0:
        raise ValueError(f"noise_rate must lie in [0, 1), got {noise_rate!r}")
    if sample_fraction is not None and not 0.0 < float(sample_fraction) <= 1.0:
        raise ValueError(f"sample_fraction must lie in (0, 1] or be None, got {sample_fraction!r}")

    labeled = np.flatnonzero(y >= 0)
    # only the labeled rows are compared: prepare just those (a million unlabeled 512-D rows
    # would be a 2 GB copy for nothing)
    X_lab, y_lab = get_metric(metric).prepare(read_rows(X, labeled)), y[labeled]
    n_lab = labeled.size
    if sample_fraction is None:
        centers = np.arange(n_lab)
    else:
        rng = np.random.default_rng(random_state)
        m = max(math.ceil(sample_fraction * n_lab), min(MIN_CENTERS, n_lab))
        centers = np.sort(rng.choice(n_lab, size=min(m, n_lab), replace=False))

    ks = np.arange(1, k_max)
    mu = mu_k(X_lab, y_lab, centers, k_max, metric=metric)
    beta = vote_success_bound(ks, float(noise_rate))
    p = mu * beta

    per_class = np.bincount(y_lab)
    per_class = per_class[per_class > 0]
    smallest = int(per_class.min())
    if smallest < k_max:
        reason = (f"Too few labeled points to measure μ_k: the smallest class has {smallest} "
                  f"labeled point{'s' if smallest != 1 else ''}, but checking k up to "
                  f"{k_max - 1} needs at least {k_max} per class. Using k={DEFAULT_K}, the "
                  f"paper's empirical value; label more points per class to choose k from the data.")
        reliable = False
    elif centers.size < MIN_CENTERS:
        reason = (f"Only {centers.size} labeled points could serve as centers; at least "
                  f"{MIN_CENTERS} are needed for a stable μ_k. Using k={DEFAULT_K}, the paper's "
                  f"empirical value; label more points to choose k from the data.")
        reliable = False
    else:
        reliable = True
    if reliable:
        k = int(ks[np.nanargmax(p)])   # first maximum = smallest k on ties
        reason = (f"k={k} maximises P(k) = μ_k · I over k = 1..{k_max - 1} "
                  f"({centers.size} centers, e = {float(noise_rate):.2f}).")
    else:
        k = DEFAULT_K
    k = min(k, n_points - 1)
    return KChoice(ks=ks, mu=mu, beta=beta, p=p, k=k, reliable=reliable, reason=reason,
                   n_centers=int(centers.size))


# Centers for μ_k under "auto": every labeled point up to this many, else a fixed-seed
# sample of this many (bench/auto_k_bench.py: 50 centers already land within ±2 of k* in
# 98 % of draws; this many keeps μ_k's sampling error below 0.01).
AUTO_MAX_CENTERS = 20_000


@dataclass(frozen=True)
class KIntent:
    """What the user asked k to be: a number, or "auto" with the settings of eq. (2).

    The intent is what is stored (with a workspace, a run, an estimator); the k it means
    is computed when needed by `resolve_k`, so "auto" follows the seeds as they change.
    Build one with `KIntent.parse`, which is where k is validated.

    Attributes
    ----------
    k : int or "auto"
    noise_rate : float
        e in eq. (2), in [0, 1).
    k_max : int
        Candidates are k = 1 .. k_max-1, k_max >= 2.
    """

    k: int | str = "auto"
    noise_rate: float = DEFAULT_NOISE_RATE
    k_max: int = DEFAULT_K_MAX

    @classmethod
    def parse(cls, k="auto", *, noise_rate=DEFAULT_NOISE_RATE, k_max=DEFAULT_K_MAX) -> "KIntent":
        """Validate a k as users give it: "auto", an integer, or a string of digits.

        >>> KIntent.parse("5").k
        5
        >>> KIntent.parse("auto", noise_rate=0.1)
        KIntent(k='auto', noise_rate=0.1, k_max=20)
        """
        if isinstance(k, str) and k.strip().lower() == "auto":
            k = "auto"
        elif isinstance(k, str) and k.strip().isdigit():
            k = int(k.strip())
        if k != "auto":
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"k must be 'auto' or a whole number of neighbours (1 or more), "
                                 f"got {k!r}")
            k = int(k)
        try:
            noise_rate = float(noise_rate)
        except (TypeError, ValueError):
            raise ValueError(f"noise_rate must be a number in [0, 1), got {noise_rate!r}") from None
        if not 0.0 <= noise_rate < 1.0:
            raise ValueError(f"noise_rate must lie in [0, 1), got {noise_rate!r}")
        if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or k_max < 2:
            raise ValueError(f"k_max must be an integer of at least 2, got {k_max!r}")
        return cls(k, noise_rate, int(k_max))

    @classmethod
    def from_dict(cls, values: dict | None) -> "KIntent":
        """An intent stored as JSON (`as_dict`); missing keys take their defaults."""
        values = values or {}
        return cls.parse(values.get("k", "auto"), noise_rate=values.get("noise_rate", DEFAULT_NOISE_RATE),
                         k_max=values.get("k_max", DEFAULT_K_MAX))

    def as_dict(self) -> dict:
        return {"k": self.k, "noise_rate": self.noise_rate, "k_max": self.k_max}

    @property
    def auto(self) -> bool:
        return self.k == "auto"


def resolve_k(intent: KIntent, X, y, *, variant: str = "paper") -> tuple[int, KChoice | None]:
    """The k an intent means for these embeddings and seeds: the one "auto" policy.

    A number is checked against the number of points. "auto" depends on the labeling
    variant: for the paper's (`hdl_label`) it is `choose_k` with every labeled point as a
    center (a fixed-seed sample of `AUTO_MAX_CENTERS` beyond that); for reach-ordered and
    class-balanced HDL (`reach_label`, `balanced_label`) it is `hdl_core.balanced.auto_k`:
    k = 10, at most n-1 and half the average class size (P(k) rewards the small k that let
    the paper's variant flood less, which these do not need: bench/accuracy_bench.py). So
    the app, the CLI and `HDLClassifier` pick the same k for the same seeds and variant.

    Parameters
    ----------
    intent : KIntent
    X : array-like (n, d)
    y : array-like (n,)
        -1 unlabeled, 0..C-1 seed classes.
    variant : {"paper", "reach", "balanced"}, default="paper"
        The variant the k is for. The default stays "paper" because the callers that do
        not name a variant run `hdl_label`.

    Returns
    -------
    (k, choice)
        choice is the `KChoice` behind an "auto" k of the paper's variant, None otherwise.
    """
    n = np.shape(X)[0]
    from .variants import has_own_k

    own_k = has_own_k(variant)
    if not intent.auto:
        return check_k(intent.k, n), None
    y = np.asarray(y)
    if own_k:
        from .balanced import auto_k

        return auto_k(n, len(np.unique(y[y >= 0]))), None
    n_labeled = int((y >= 0).sum())
    fraction = None if n_labeled <= AUTO_MAX_CENTERS else AUTO_MAX_CENTERS / n_labeled
    choice = choose_k(X, y, k_max=intent.k_max, noise_rate=intent.noise_rate,
                      sample_fraction=fraction, random_state=0)
    return choice.k, choice

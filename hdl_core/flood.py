"""Does a labeling run look like a flood? One class eating the others, told from the run alone.

A flood (issue 12) is what the paper's HDL does where classes touch: the class whose region
fills first keeps the highest L along its frontier and labels its neighbours' clusters
before their own seeds spread. It leaves two marks that need no ground truth:

* **shares**: a class ends with a share of the points far above its share of the seeds,
  or a class ends with almost none of the unlabeled points although it had seeds;
* **chains**: a long run of consecutive rounds in which every point went to one class,
  holding a large part of the unlabeled points (the flood front moving on alone).

`flood_report` measures both and says, in plain words, which classes, the numbers, and what
to try. It is a warning, not a proof: a class that truly is rare among the images but got as
many seeds as the others looks starved too, and the report says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import check_number_in
from .hdl import LabelingResult, validate_labels

# Defaults, set on the design draws of bench/accuracy_bench.py (paper HDL k = 3 and 10,
# class-balanced HDL): they fire on the runs that end with a class above twice or below
# half its true share and stay quiet on the others, except where a class is truly ten
# times rarer than its seeds say (README, "Flood check", has the held-out counts).
SHARE_RATIO = 3.0        # a class's share above 3x its seeds' share ...
MIN_EXCESS = 0.10        # ... and above it by at least 10 points of share
STARVED_RATIO = 0.10     # a class given under 10 % of its seeds' share of the unlabeled points
CHAIN_SHARE = 0.15       # one-class rounds in a row that label 15 % of the unlabeled points
                         # (and more than that class's share of the seeds)
STARVED_NAMED = 8        # starved classes named in one reason; "and N more" beyond


@dataclass
class FloodReport:
    """What `flood_report` found.

    Attributes
    ----------
    flooded : bool
        True when the run looks like a flood (any class in `flooding`, `starved` or
        `chain_class` set).
    flooding : list[int]
        Classes whose final share is far above their seeds' share.
    starved : list[int]
        Classes that received almost none of the unlabeled points.
    share : ndarray (C,)
        Each class's share of all points after the run (seeds included).
    seed_share : ndarray (C,)
        Each class's share of the seeds.
    unlabeled_share : ndarray (C,)
        Each class's share of the points the run labeled (seeds excluded).
    chain_class : int
        The class of the longest run of one-class rounds (longest in points), or -1 when
        that run is too short to matter (see `chain_share`).
    chain_rounds : tuple[int, int]
        First and last round of that run (inclusive); (-1, -1) when there is none.
    chain_share : float
        Share of the unlabeled points that run labeled (0 when there is none).
    reasons : list[str]
        What looks wrong, one sentence each, with the numbers.
    suggestions : list[str]
        What to try, one sentence each, in no front end's words: the app and the command
        line each say where to find seeds to check (`seeds_to_check`).
    """

    flooded: bool
    flooding: list = field(default_factory=list)
    starved: list = field(default_factory=list)
    share: np.ndarray = None
    seed_share: np.ndarray = None
    unlabeled_share: np.ndarray = None
    chain_class: int = -1
    chain_rounds: tuple = (-1, -1)
    chain_share: float = 0.0
    reasons: list = field(default_factory=list)
    suggestions: list = field(default_factory=list)

    @property
    def seeds_to_check(self) -> list:
        """The classes whose seeds may sit in another class's region: the flooding ones
        and the class of a long one-class chain of rounds."""
        return sorted(set(self.flooding) | ({self.chain_class} - {-1}))

    def __str__(self) -> str:
        if not self.flooded:
            return "No sign of a flood: every class's share stays near its seeds' share."
        return "\n".join(["This labeling looks like a flood:"]
                         + [f"- {r}" for r in self.reasons] + ["Try:"]
                         + [f"- {s}" for s in self.suggestions])


def flood_report(result: LabelingResult, y, *, class_names=None, variant: str | None = None,
                 share_ratio: float = SHARE_RATIO, min_excess: float = MIN_EXCESS,
                 starved_ratio: float = STARVED_RATIO,
                 chain_share: float = CHAIN_SHARE) -> FloodReport:
    """Say whether a labeling run looks like a flood, which classes, and what to try.

    Parameters
    ----------
    result : LabelingResult
        The run (from `reach_label`, `balanced_label`, `hdl_label` or a stored run).
    y : array-like of shape (n,), int
        The seeds the run started from: -1 unlabeled, 0..C-1 classes.
    class_names : sequence of str, optional
        Names for the messages (class c is ``class_names[c]``); "class c" when None.
    variant : {"reach", "balanced", "paper"} or None
        The variant that produced `result`; with "paper" or "balanced" the suggestions name
        the default variant. None: the suggestion is given conditionally.
    share_ratio : float, default=3.0
        A class is *flooding* when its share of all points exceeds `share_ratio` times its
        share of the seeds ...
    min_excess : float, default=0.10
        ... and exceeds it by at least this much (so a class of 1 % seeds at 3 % is fine).
    starved_ratio : float, default=0.10
        A class is *starved* when its share of the unlabeled points is below
        `starved_ratio` times its share of the seeds.
    chain_share : float, default=0.15
        A run of consecutive rounds that each labeled only one class is a *chain*; it
        counts when it labeled at least this share of the unlabeled points, and more than
        the class's share of the seeds (with two classes, one class finishing alone after
        the other is done is no flood).

    Returns
    -------
    FloodReport

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core import hdl_label
    >>> from hdl_core.flood import flood_report
    >>> X = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.9], [0, 1]])
    >>> y = np.array([0, -1, -1, -1, -1, 1])
    >>> flood_report(hdl_label(X, y, k=1), y).flooded
    False
    """
    if not isinstance(result, LabelingResult):
        raise ValueError(f"result must be a LabelingResult, got {type(result).__name__}")
    n = result.labels.shape[0]
    y = validate_labels(y, n)
    if not np.array_equal(result.labels[y >= 0], y[y >= 0]):
        raise ValueError("y does not match the run: some seeds carry another label in "
                         "result.labels; pass the seeds the run was labeled from")
    for name, value, high in (("share_ratio", share_ratio, np.inf), ("min_excess", min_excess, 1.0),
                              ("starved_ratio", starved_ratio, 1.0), ("chain_share", chain_share, 1.0)):
        check_number_in(value, name, 0, high)
    if variant not in (None, "reach", "balanced", "paper"):
        raise ValueError(f"variant must be 'reach', 'balanced', 'paper' or None, got {variant!r}")
    n_classes = int(max(result.labels.max(), y.max())) + 1
    if class_names is not None and len(class_names) < n_classes:
        raise ValueError(f"class_names has {len(class_names)} names but the run has "
                         f"{n_classes} classes; give one name per class index")
    name = (lambda c: str(class_names[c])) if class_names is not None else (lambda c: f"class {c}")

    seeds = y >= 0
    seed_share = np.bincount(y[seeds], minlength=n_classes) / seeds.sum()
    share = np.bincount(result.labels, minlength=n_classes) / n
    n_unlabeled = int((~seeds).sum())
    unlabeled_share = (np.bincount(result.labels[~seeds], minlength=n_classes) / n_unlabeled
                       if n_unlabeled else np.zeros(n_classes))
    has_seeds = seed_share > 0
    flooding = np.flatnonzero((share > share_ratio * seed_share)
                              & (share - seed_share >= min_excess) & has_seeds).tolist()
    starved = (np.flatnonzero(has_seeds & (unlabeled_share < starved_ratio * seed_share)).tolist()
               if n_unlabeled else [])
    chain = _longest_chain(result, ~seeds)
    chain_class, chain_rounds, chain_points = chain
    chain_fraction = chain_points / n_unlabeled if n_unlabeled else 0.0
    if chain_fraction < chain_share or (chain_class >= 0 and chain_fraction <= seed_share[chain_class]):
        chain_class, chain_rounds, chain_fraction = -1, (-1, -1), 0.0

    reasons = []
    for c in flooding:
        reasons.append(f"{name(c)} holds {100 * share[c]:.0f} % of the points but "
                       f"{100 * seed_share[c]:.0f} % of the seeds "
                       f"({share[c] / seed_share[c]:.1f}x).")
    if len(starved) > 2:        # one sentence for all, not one line each
        shown = ", ".join(name(c) for c in starved[:STARVED_NAMED])
        more = f" and {len(starved) - STARVED_NAMED} more" if len(starved) > STARVED_NAMED else ""
        reasons.append(f"{shown}{more} received {_span(unlabeled_share[starved], 1)} % of the "
                       f"unlabeled points each but have {_span(seed_share[starved], 0)} % of the "
                       f"seeds each (unless they really are that rare, their regions went to "
                       f"other classes).")
    else:
        for c in starved:
            reasons.append(f"{name(c)} received {100 * unlabeled_share[c]:.1f} % of the "
                           f"unlabeled points but has {100 * seed_share[c]:.0f} % of the seeds "
                           f"(unless it really is that rare, its region went to other classes).")
    if chain_class >= 0:
        first, last = chain_rounds
        reasons.append(f"rounds {first}-{last} labeled only {name(chain_class)}, one after "
                       f"another: {100 * chain_fraction:.0f} % of the unlabeled points.")

    flooded = bool(reasons)
    suggestions = []
    if flooded:
        if variant != "reach":
            suggestions.append(("Use the default variant, reach-ordered HDL: it labels first "
                                "the points one class's seeds reach almost alone, so no class's "
                                "front runs through the others."
                                if variant in ("paper", "balanced") else
                                "If this run used another variant, use the default one, "
                                "reach-ordered HDL: it labels first the points one class's "
                                "seeds reach almost alone."))
        if result.k > 3 and variant in (None, "paper"):
            suggestions.append(f"Try a smaller k than {result.k} (3 is the paper's): fewer "
                               f"neighbours cross from one class into the next.")
        victims = starved or [c for c in range(n_classes)
                              if has_seeds[c] and c not in flooding and c != chain_class]
        if victims:
            shown = ", ".join(name(c) for c in victims[:5]) + (" ..." if len(victims) > 5 else "")
            suggestions.append(f"Add seeds in {shown}: a few more labeled examples where "
                               f"these classes were overrun let them hold their ground.")
        eaters = sorted(set(flooding) | ({chain_class} - {-1}))
        if eaters:
            suggestions.append("Check the seeds of " + ", ".join(name(c) for c in eaters)
                               + ": a seed placed in another class's region lets its class "
                                 "spread there.")
    return FloodReport(flooded, flooding, starved, share, seed_share, unlabeled_share,
                       int(chain_class), tuple(int(r) for r in chain_rounds),
                       float(chain_fraction), reasons, suggestions)


def _span(shares: np.ndarray, decimals: int) -> str:
    """Shares as percentages: "0.0", or "0.0-0.4" when they differ at that precision."""
    low, high = (f"{100 * v:.{decimals}f}" for v in (shares.min(), shares.max()))
    return low if low == high else f"{low}-{high}"


def _longest_chain(result: LabelingResult, unlabeled: np.ndarray) -> tuple[int, tuple, int]:
    """(class, (first round, last round), points) of the longest run of consecutive rounds
    that each labeled one class only, measured in points; bridges count as rounds."""
    rounds = result.round[unlabeled]
    labels = result.labels[unlabeled]
    if rounds.size == 0:
        return -1, (-1, -1), 0
    n_rounds = int(rounds.max()) + 1
    size = np.bincount(rounds, minlength=n_rounds)
    lowest = np.full(n_rounds, np.iinfo(np.int64).max)
    highest = np.full(n_rounds, -1)
    np.minimum.at(lowest, rounds, labels)
    np.maximum.at(highest, rounds, labels)
    single = (size > 0) & (lowest == highest)
    best = (-1, (-1, -1), 0)
    start = 0
    while start < n_rounds:
        if not single[start]:
            start += 1
            continue
        c = highest[start]
        stop = start
        while stop + 1 < n_rounds and single[stop + 1] and highest[stop + 1] == c:
            stop += 1
        points = int(size[start:stop + 1].sum())
        if points > best[2]:
            best = (int(c), (start, stop), points)
        start = stop + 1
    return best

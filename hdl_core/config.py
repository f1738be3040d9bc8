"""Defaults every part of hdl_core shares, decided once.

Nothing here touches disk or network: these are plain values. The library, the CLI and
the app read them from here so that "auto", a default model or a default k means the same
thing everywhere.
"""
from __future__ import annotations

import sys
from pathlib import Path

# The folder hdl_core/ sits in: a source checkout (app.py beside it), or site-packages.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """Default home of ``data/`` and ``workspaces/``: the checkout when running from one
    (``make run``, an editable install), else the current folder."""
    return PROJECT_ROOT if (PROJECT_ROOT / "app.py").is_file() else Path.cwd()


def app_folder() -> Path | None:
    """Where the dashboard's ``app.py`` is: the checkout, else what a wheel installed under
    ``<prefix>/share/hdl-studio``; None when neither has it."""
    for folder in (PROJECT_ROOT, Path(sys.prefix) / "share" / "hdl-studio"):
        if (folder / "app.py").is_file():
            return folder
    return None

# CLIP: open_clip model name and pretrained tag used when none is given.
DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_BATCH_SIZE = 64

# Choosing k (Section 4.4, Listing 1): the paper's empirical k (Table 2), used when μ_k
# cannot be trusted; the largest k considered (Listing 1's `k_upper_limit`); the assumed
# share of wrong labels e in eq. (2).
DEFAULT_K = 3
DEFAULT_K_MAX = 20
DEFAULT_NOISE_RATE = 0.15

# Labeling variants: "reach" (reach-ordered HDL, `hdl_core.reach`) is the default;
# "balanced" is class-balanced HDL (`hdl_core.balanced`), the default before it; "paper" is
# Algorithm 1 as published (`hdl_core.hdl.hdl_label`).
VARIANTS = ("reach", "balanced", "paper")
DEFAULT_VARIANT = "reach"
# The k of reach-ordered and class-balanced HDL when none is given, and class-balanced HDL's
# border ratio: chosen on design draws of bench/accuracy_bench.py (k = 10 had the fewest and
# smallest misses against the peers among k = 3..15; border ratios 0.4-0.6 measured alike),
# reported there on other draws.
BALANCED_K = 10
BALANCED_BORDER_RATIO = 0.5
# Reach-ordered HDL's reach: harmonic propagation of the seeds, held at their labels
# (`hdl_core.diffusion.propagate_seeds`), chosen on the design draws of
# bench/accuracy_variants_bench.py over label spreading at alpha 0.9 over 20 steps (alpha
# 0.8-0.9 with 15-40 steps had measured alike; README, "Harmonic reach"); the review queue
# spreads labels with alpha (`suggest.SPREAD_ALPHA`, `SPREAD_STEPS`). A round is a band of
# reach shares 1 / REACH_BANDS wide.
REACH_STEPS = 20
REACH_BANDS = 20
# How long the reach runs: REACH_STEPS_PER_HOP steps per hop from the seeds to the farthest
# point they reach (the seeds' depth in the symmetric graph), at least REACH_STEPS and at
# most REACH_MAX_STEPS. Where the seeds sit within 2 hops of every point that is REACH_STEPS
# (the benchmark's clustered sets: depth 2 - 6, so 20 - 60 steps); where classes are long
# and thin (two moons, circles: depth 7 - 17 with 1 - 3 seeds per class) it runs longer.
# 10 steps a hop was chosen among 3, 4, 6, 8 and 10 on the design draws of
# bench/accuracy_variants_bench.py (10 per row; README, "A spread as long as the seeds are
# deep"), for label spreading: 6 first, then 8 and 10, which gained a little more on every
# kind of set; the harmonic reach kept the same number of steps, so it costs the same.
REACH_STEPS_PER_HOP = 10
REACH_MAX_STEPS = 120
# A vote whose winning class holds at most REACH_SPLIT of the voters is split; where the
# seeds' reach is decisive (its top class holds at least REACH_DECISIVE of the point's
# reach) and favours another class, the reach decides. Chosen on the design draws of
# bench/accuracy_variants_bench.py (10 per row) with the weighted spread below;
# REACH_SPLIT = 0 turns it off.
REACH_SPLIT = 0.9
REACH_DECISIVE = 0.5
# The spread's edges weigh exp(-d²(i, j) / (σ_i σ_j)), σ_i the distance from i to its
# REACH_LOCAL_SCALE-th nearest neighbour (local scaling, Zelnik-Manor and Perona's 7), so a
# near neighbour passes on more of the reach than a far one; None: every edge weighs 1.
# Weighted edges with REACH_SPLIT 0.9 / REACH_DECISIVE 0.5 met every row of the design draws
# of bench/accuracy_variants_bench.py (10 per row; unweighted with 0.7 / 0.6, the default
# before, missed lfw at 5 and 10 seeds). A weight is never below REACH_MIN_WEIGHT, so the
# weighted spread reaches the points the unweighted one does.
REACH_LOCAL_SCALE = 7
REACH_MIN_WEIGHT = 1e-6

# The kNN graph is built once with enough neighbours for every consumer: choose_k's largest
# k (k_max - 1 = 19 by default), HDL's k, and UMAP (15 neighbours counting the point itself).
GRAPH_K = 20

# Bridges (when no unlabeled point has a labeled neighbour): "exact" answers the nearest
# unlabeled-labeled pair exactly (`hdl._Bridge`); "approx" searches an inverted file of
# k-means lists and re-checks its candidates exactly in float64 (`bridge.ApproximateBridge`,
# needs faiss); "auto" is approx only when the first bridge would compare more than
# BRIDGE_APPROX_MIN_PAIRS unlabeled x labeled pairs and faiss is installed, else exact. The
# library's functions default to "exact" (the paper's rule); labeling from the workspace,
# from files and the CLI default to "auto".
BRIDGES = ("exact", "approx", "auto")
DEFAULT_BRIDGE = "auto"
BRIDGE_APPROX_MIN_PAIRS = 200_000_000

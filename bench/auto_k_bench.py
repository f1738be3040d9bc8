"""How many labeled centers `choose_k` needs for a stable k: the evidence behind
``hdl_core.auto_k.MIN_CENTERS``.

On scikit-learn's digits (raw pixels), μ_k is estimated from a random sample of centers
and k* = argmax P(k) = μ_k · I_{1-e}(k+1-k', k'+1) (k = 1..19, e = 0.15), many times over
random draws. Two views:

A. Centers drawn from a fixed labeled pool (all 1797 digits labeled), 10 .. 1797 centers:
   how much k* and μ_k move between draws of the centers alone. The reference k* uses
   every point as a center.
B. What a user meets: M random points labeled, `choose_k` with its defaults
   (``sample_fraction=0.1``, at least MIN_CENTERS centers), so both the labeled set and the
   centers change between draws. ``k_best`` (argmax P(k)) is reported even where
   `choose_k` marks the curve unreliable (then it uses k = 3).

    .venv/bin/python bench/auto_k_bench.py [--quick]   (--quick writes bench/results/auto_k_bench_quick.json)
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np

from _common import machine_info, print_table, write_json

from hdl_core import auto_k  # noqa: E402
from hdl_core.auto_k import choose_k, mu_k, vote_success_bound  # noqa: E402
from hdl_core.rows import normalize_rows  # noqa: E402

K_MAX = 20
NOISE = 0.15


def load():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return normalize_rows(digits.data.astype(np.float32)), digits.target.astype(np.int64)


def k_star(Xn, y, centers, beta, ks) -> tuple[int, np.ndarray]:
    mu = mu_k(Xn, y, centers, K_MAX)
    return int(ks[np.nanargmax(mu * beta)]), mu


def spread_stats(values: list[int], reference: int) -> dict:
    counts = Counter(values)
    mode, mode_count = counts.most_common(1)[0]
    arr = np.asarray(values)
    q1, q3 = np.percentile(arr, [25, 75])
    return {"mode": int(mode), "share_at_mode": mode_count / len(values),
            "share_at_reference": float(np.mean(arr == reference)),
            "share_within_2_of_reference": float(np.mean(np.abs(arr - reference) <= 2)),
            "min": int(arr.min()), "max": int(arr.max()), "iqr": float(q3 - q1),
            "std": float(arr.std()), "histogram": {int(k): int(c) for k, c in sorted(counts.items())}}


def view_a(Xn, y, center_counts: list[int], draws: int) -> tuple[int, list[dict]]:
    ks = np.arange(1, K_MAX)
    beta = vote_success_bound(ks, NOISE)
    reference, mu_all = k_star(Xn, y, np.arange(y.size), beta, ks)
    rows = []
    for m in center_counts:
        picks, mus = [], []
        for draw in range(draws):
            rng = np.random.default_rng(draw)
            centers = np.sort(rng.choice(y.size, size=m, replace=False))
            k, mu = k_star(Xn, y, centers, beta, ks)
            picks.append(k)
            mus.append(mu)
        mus = np.asarray(mus)
        row = {"centers": m, "draws": draws, **spread_stats(picks, reference),
               "mu_std_at_reference_k": float(mus[:, reference - 1].std()),
               "mu_std_max_over_k": float(np.nanmax(mus.std(axis=0))),
               "mu_std_binomial_at_0.5": float(np.sqrt(0.25 / m))}
        rows.append(row)
    return reference, rows, mu_all


def view_b(Xn, y, labeled_counts: list[int], draws: int, reference: int) -> list[dict]:
    rows = []
    for m in labeled_counts:
        picks, chosen, reliable, centers = [], [], [], []
        for draw in range(draws):
            rng = np.random.default_rng(10_000 + draw)
            yy = np.full(y.size, -1, np.int64)
            labeled = rng.choice(y.size, size=m, replace=False)
            yy[labeled] = y[labeled]
            choice = choose_k(Xn, yy, k_max=K_MAX, noise_rate=NOISE, random_state=draw)
            picks.append(choice.k_best)
            chosen.append(choice.k)
            reliable.append(choice.reliable)
            centers.append(choice.n_centers)
        rows.append({"labeled": m, "draws": draws, "centers": int(np.median(centers)),
                     "share_reliable": float(np.mean(reliable)),
                     "k_used_histogram": dict(sorted(Counter(chosen).items())),
                     **spread_stats(picks, reference)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws")
    args = parser.parse_args(argv)
    draws = 10 if args.quick else 50
    Xn, y = load()
    center_counts = [10, 20, 30, 50, 100, 200, 500, 1000]
    labeled_counts = [50, 100, 200, 300, 500, 1000, 1797]

    reference, rows_a, mu_all = view_a(Xn, y, center_counts, draws)
    print_table(
        ["centers", "k* mode", "share at mode", f"share = ref k*={reference}", "within ±2",
         "min–max", "IQR", "std(μ at ref k)", "√(.25/m)"],
        [[r["centers"], r["mode"], f"{r['share_at_mode']:.2f}", f"{r['share_at_reference']:.2f}",
          f"{r['share_within_2_of_reference']:.2f}", f"{r['min']}–{r['max']}", r["iqr"],
          f"{r['mu_std_at_reference_k']:.3f}", f"{r['mu_std_binomial_at_0.5']:.3f}"]
         for r in rows_a],
        title=f"A. centers from all 1797 labeled digits, {draws} draws each "
              f"(reference k* = {reference} with every point a center)")
    rows_b = view_b(Xn, y, labeled_counts, draws, reference)
    print_table(
        ["labeled", "centers", "reliable", "k_best mode", "share at mode",
         f"share = {reference}", "within ±2", "min–max", "IQR"],
        [[r["labeled"], r["centers"], f"{r['share_reliable']:.2f}", r["mode"],
          f"{r['share_at_mode']:.2f}", f"{r['share_at_reference']:.2f}",
          f"{r['share_within_2_of_reference']:.2f}", f"{r['min']}–{r['max']}", r["iqr"]]
         for r in rows_b],
        title=f"B. M random points labeled, choose_k defaults (MIN_CENTERS={auto_k.MIN_CENTERS}), "
              f"{draws} draws each")

    write_json("auto_k_bench" + ("_quick" if args.quick else ""), {
        "benchmark": "auto_k_bench", "quick": args.quick, "machine": machine_info("sklearn"),
        "setup": {"data": "sklearn digits, raw pixels, L2-normalised, 1797 points",
                  "k_max": K_MAX, "noise_rate": NOISE, "draws": draws,
                  "min_centers_now": auto_k.MIN_CENTERS},
        "reference_k": reference, "reference_mu": mu_all,
        "view_a_centers_from_fixed_pool": rows_a,
        "view_b_random_labeled_sets": rows_b,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Labeling accuracy on scikit-learn's digits (raw pixels as embeddings): HDL, kNN-DV and
scikit-learn's LabelSpreading, with k = 3 and with k chosen by `choose_k`.

For 1, 2, 5, 10 (and 20, 50) seeds per class, 5 random draws of the seeds each; accuracy
is over the unlabeled points only, reported as mean ± std over the draws. LabelSpreading
(``kernel="knn"``) gets the same L2-normalised rows, so its Euclidean neighbours are the
cosine neighbours HDL and kNN-DV use. "LabelSpreading" is the library default
(``n_neighbors=k``, ``alpha=0.2``); its knn graph counts each point as its own neighbour
and is directed, and with alpha = 0.2 the iteration stops after a few hops (tol=1e-3), so
many points are never reached and fall to class 0. "LabelSpreading tuned" uses
``n_neighbors=k+1`` (k neighbours besides self) and ``alpha=0.99`` so labels travel far. With fewer than 20 seeds in the smallest class
`choose_k` cannot measure μ_k and returns the paper's k = 3, so "auto" equals k = 3 there.

    .venv/bin/python bench/accuracy_bench.py [--quick]   (--quick writes bench/results/accuracy_bench_quick.json)
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from _common import machine_info, print_table, write_json

from hdl_core.auto_k import choose_k  # noqa: E402
from hdl_core.graph import build_knn_graph, normalize_rows  # noqa: E402
from hdl_core.hdl import hdl_label, knn_dv_label  # noqa: E402

FIXED_K = 3
DRAWS = 5
METHODS = ("HDL", "kNN-DV", "LabelSpreading", "LabelSpreading tuned")


def load_digits_pixels():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data.astype(np.float32), digits.target.astype(np.int64)


def draw_seeds(truth: np.ndarray, per_class: int, draw: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + draw)
    y = np.full(truth.size, -1, np.int64)
    for c in np.unique(truth):
        members = np.flatnonzero(truth == c)
        y[rng.choice(members, size=per_class, replace=False)] = c
    return y


def label_spreading(Xn: np.ndarray, y: np.ndarray, n_neighbors: int, alpha: float) -> np.ndarray:
    """sklearn's LabelSpreading; points no seed reaches (all-zero rows) come out as class 0."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.semi_supervised import LabelSpreading

    model = LabelSpreading(kernel="knn", n_neighbors=n_neighbors, alpha=alpha, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(Xn, y)
    return model.transduction_


def run_methods(X, Xn, y, k: int) -> dict[str, tuple[np.ndarray, float]]:
    out = {}
    start = time.perf_counter()
    graph = build_knn_graph(Xn, k, method="exact")
    out["HDL"] = (hdl_label(X, y, k=k, graph=graph).labels, time.perf_counter() - start)
    start = time.perf_counter()
    out["kNN-DV"] = (knn_dv_label(X, y, k=k).labels, time.perf_counter() - start)
    start = time.perf_counter()
    out["LabelSpreading"] = (label_spreading(Xn, y, k, 0.2), time.perf_counter() - start)
    start = time.perf_counter()
    out["LabelSpreading tuned"] = (label_spreading(Xn, y, k + 1, 0.99),
                                   time.perf_counter() - start)
    return out


def evaluate(per_class_list: list[int], draws: int) -> tuple[list[dict], list[dict]]:
    X, truth = load_digits_pixels()
    Xn = normalize_rows(X)
    rows, runs = [], []
    for per_class in per_class_list:
        acc = {(setting, m): [] for setting in ("k=3", "auto") for m in METHODS}
        secs = {(setting, m): [] for setting in ("k=3", "auto") for m in METHODS}
        chosen = []
        for draw in range(draws):
            y = draw_seeds(truth, per_class, draw)
            unlabeled = y < 0
            choice = choose_k(X, y, random_state=draw)
            chosen.append({"k": choice.k, "reliable": choice.reliable, "k_best": choice.k_best})
            for setting, k in (("k=3", FIXED_K), ("auto", choice.k)):
                for method, (labels, seconds) in run_methods(X, Xn, y, k).items():
                    a = float((labels[unlabeled] == truth[unlabeled]).mean())
                    acc[setting, method].append(a)
                    secs[setting, method].append(seconds)
                    runs.append({"seeds_per_class": per_class, "draw": draw, "setting": setting,
                                 "k": k, "method": method, "accuracy": a, "seconds": seconds})
        row = {"seeds_per_class": per_class, "draws": draws,
               "auto_k_chosen": [c["k"] for c in chosen],
               "auto_k_reliable": [c["reliable"] for c in chosen],
               "auto_k_best_curve": [c["k_best"] for c in chosen]}
        for (setting, method), values in acc.items():
            row[f"{setting} {method} mean"] = float(np.mean(values))
            row[f"{setting} {method} std"] = float(np.std(values))
            row[f"{setting} {method} seconds"] = float(np.mean(secs[setting, method]))
        rows.append(row)
        print(f"  {per_class:>2} seeds/class done (auto k: {row['auto_k_chosen']})", flush=True)
    return rows, runs


def fmt(row: dict, setting: str, method: str) -> str:
    return f"{100 * row[f'{setting} {method} mean']:.1f} ± {100 * row[f'{setting} {method} std']:.1f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 5 seeds per class, 2 draws")
    args = parser.parse_args(argv)
    per_class_list = [1, 5] if args.quick else [1, 2, 5, 10, 20, 50]
    draws = 2 if args.quick else DRAWS

    # load numba's compiled kernels before anything is timed
    hdl_label(np.eye(3, dtype=np.float32) + 0.1, np.array([0, -1, 1]), k=1)
    rows, runs = evaluate(per_class_list, draws)
    for setting in ("k=3", "auto"):
        headers = ["seeds / class"] + [f"{m} (%)" for m in METHODS]
        if setting == "auto":
            headers.append("k chosen (reliable?)")
        table = []
        for r in rows:
            line = [r["seeds_per_class"]] + [fmt(r, setting, m) for m in METHODS]
            if setting == "auto":
                line.append(", ".join(f"{k}{'' if ok else '*'}" for k, ok in
                                      zip(r["auto_k_chosen"], r["auto_k_reliable"])))
            table.append(line)
        print_table(headers, table,
                    title=f"digits, raw pixels (1797 × 64), {setting}: accuracy on unlabeled "
                          f"points, mean ± std over {draws} draws"
                          + (" (* = not reliable, paper's k=3 used)" if setting == "auto" else ""))
    print_table(["seeds / class"] + [f"{m} k=3 (s)" for m in METHODS],
                [[r["seeds_per_class"]] + [r[f"k=3 {m} seconds"] for m in METHODS] for r in rows],
                title="mean seconds per labeling (HDL includes building its exact graph)")

    write_json("accuracy_bench" + ("_quick" if args.quick else ""), {
        "benchmark": "accuracy_bench", "quick": args.quick, "machine": machine_info("sklearn"),
        "setup": {"data": "sklearn.datasets.load_digits, raw 8x8 pixels (64-D), 1797 points, 10 "
                          "classes", "fixed_k": FIXED_K, "draws": draws,
                  "accuracy": "on unlabeled points only",
                  "label_spreading": "sklearn LabelSpreading(kernel='knn', n_neighbors=k, "
                                     "alpha=0.2 (default), max_iter=1000) on L2-normalised rows",
                  "label_spreading_tuned": "LabelSpreading(kernel='knn', n_neighbors=k+1, "
                                           "alpha=0.99, max_iter=1000): k neighbours besides "
                                           "self, labels travel far",
                  "auto_k": "choose_k(X, y, random_state=draw) with defaults (k_max=20, "
                            "noise_rate=0.15, sample_fraction=0.1)"},
        "rows": rows, "runs": runs,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())

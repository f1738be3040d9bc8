"""Guided labeling on the digits demo: do the suggested 10 images raise accuracy more than
10 random ones?

The demo exactly as the app builds it: `hdl_core.data.make_demo` (scikit-learn's 1797
digits drawn as 32×32 PNGs, three seeds per class) in a temporary data root, embedded with
the "pixels" encoder (the app's weight-free default), one exact kNN graph. Draw 0 uses the
demo's own seeds; draws 1..D pick three other seeds per class at random.

For each draw and each k setting (k = 3; "auto", which asks `pipeline.pick_k` again before
every run, as the app does; k = 5), HDL labels everything, then the truth of 10 images is
added as extra seeds and HDL runs again:

* suggested   - `suggest_next(n=10)` (uncertain labels many others rest on, spread over
                independent chains);
* score only  - the same score without the spreading (`spread=False`), as first written;
* lowest conf - the 10 lowest confidences, ties in random order (no influence at all);
* random      - 10 random non-seed images, repeated R times per draw.

With three seeds per class `choose_k` cannot measure μ_k and returns the paper's k = 3,
so "auto" equals k = 3 here (the JSON records the k used); k = 5 shows a second setting.

Then three rounds of 10 (suggest, label, re-run, suggest again...) for suggested, lowest
confidence and random. Accuracy is over all 1797 images, hand labels included (what the
user ends up with); "rest" is over the images nobody labeled by hand. A second part flips
one seed per draw to a wrong class and checks whether `suspicious_seeds` lists it, by its
default rule and by leaving each seed out (``X=`` given).

    .venv/bin/python bench/suggest_bench.py [--quick] [--draws D] [--random-repeats R]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine_info, print_table, write_json

from hdl_core.suggest import suggest_next, suspicious_seeds  # noqa: E402
from hdl_core.graph import build_knn_graph  # noqa: E402
from hdl_core.hdl import hdl_label  # noqa: E402
from hdl_core.workspace.pipeline import pick_k  # noqa: E402

N_LABELS = 10
ROUNDS = 3
SEEDS_PER_CLASS = 3
GRAPH_K = 20
SETTINGS = ("k=3", "auto", "k=5")
ONE_SHOT = ("suggested", "score only", "lowest conf", "random")
ITERATED = ("suggested", "lowest conf", "random")


def load_demo() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(X, truth, demo seed vector, setup notes) for the demo as the app builds it."""
    from hdl_core.embed import make_encoder
    from hdl_core.data import load_folder, make_demo

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hdl-suggest-bench-") as folder:
        root = Path(folder)
        os.environ["HDL_DATA_ROOT"] = str(root)
        dataset = load_folder(make_demo(root), root=root)
        encoder = make_encoder("pixels")
        X = encoder.encode([dataset.root / item.path for item in dataset.items])
    truth = np.array([int(dataset.truth[item.path]) for item in dataset.items])
    seeds = np.array([int(item.seed_label) if item.seed_label is not None else -1
                      for item in dataset.items])
    notes = {"data": f"hdl_core.data.make_demo: {len(dataset.items)} digits as 32x32 PNGs",
             "encoder": repr(encoder), "embedding_dim": int(X.shape[1]),
             "seconds_to_build_and_embed": round(time.perf_counter() - start, 2)}
    return X, truth, seeds, notes


def random_seeds(truth: np.ndarray, draw: int) -> np.ndarray:
    rng = np.random.default_rng(2000 + draw)
    y = np.full(truth.size, -1)
    for c in np.unique(truth):
        y[rng.choice(np.flatnonzero(truth == c), SEEDS_PER_CLASS, replace=False)] = c
    return y


class Labeler:
    """HDL on the fixed demo graph, with k fixed or re-chosen by `pick_k` on every run."""

    def __init__(self, X, truth, graph, setting: str):
        self.X, self.truth, self.graph, self.setting = X, truth, graph, setting
        self.ks_used: list[int] = []

    def run(self, y):
        k = pick_k(self.X, y, "auto")[0] if self.setting == "auto" else int(self.setting[2:])
        self.ks_used.append(k)
        return hdl_label(self.X, y, k=k, graph=self.graph)

    def accuracy(self, result, y) -> tuple[float, float]:
        right = result.labels == self.truth
        return float(right.mean()), float(right[y < 0].mean())


def with_truth(y, truth, points) -> np.ndarray:
    y = y.copy()
    points = np.asarray(points, np.int64)
    y[points] = truth[points]
    return y


def pick(arm: str, result, graph, rng) -> np.ndarray:
    candidates = np.flatnonzero(result.step >= 0)
    if arm == "suggested":
        return np.array([s.point for s in suggest_next(graph.indices, result, n=N_LABELS)])
    if arm == "score only":
        return np.array([s.point for s in suggest_next(graph.indices, result, n=N_LABELS,
                                                       spread=False)])
    if arm == "lowest conf":
        tie_break = rng.random(candidates.size)
        return candidates[np.lexsort((tie_break, result.confidence[candidates]))][:N_LABELS]
    return rng.choice(candidates, N_LABELS, replace=False)


def one_draw(labeler: Labeler, y0: np.ndarray, draw: int, repeats: int) -> dict:
    truth, graph = labeler.truth, labeler.graph
    rng = np.random.default_rng(3000 + draw)
    base = labeler.run(y0)
    acc0, rest0 = labeler.accuracy(base, y0)
    row = {"draw": draw, "base": acc0, "base_rest": rest0, "gain": {}, "gain_rest": {},
           "wrong_picked": {}}
    for arm in ONE_SHOT:
        gains, rests, wrong = [], [], []
        for _ in range(repeats if arm == "random" else 1):
            points = pick(arm, base, graph, rng)
            y1 = with_truth(y0, truth, points)
            acc, rest = labeler.accuracy(labeler.run(y1), y1)
            gains.append(acc - acc0)
            rests.append(rest - rest0)
            wrong.append(int((base.result.labels[points] != truth[points]).sum()))
        row["gain"][arm], row["gain_rest"][arm], row["wrong_picked"][arm] = gains, rests, wrong
    row["rounds"] = {}
    for arm in ITERATED:
        curves = []
        for _ in range(repeats if arm == "random" else 1):
            y, result, curve = y0, base, []
            for _ in range(ROUNDS):
                y = with_truth(y, truth, pick(arm, result, graph, rng))
                result = labeler.run(y)
                curve.append(labeler.accuracy(result, y)[0] - acc0)
            curves.append(curve)
        row["rounds"][arm] = curves
    return row


def summarise(rows: list[dict]) -> dict:
    def stats(values) -> dict:
        values = np.asarray(values, float)
        return {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}

    out = {"base": stats([r["base"] for r in rows])}
    for arm in ONE_SHOT:
        per_draw = [np.mean(r["gain"][arm]) for r in rows]
        out[arm] = {"gain": stats(per_draw),
                    "gain_rest": stats([np.mean(r["gain_rest"][arm]) for r in rows]),
                    "wrong_among_picked": float(np.mean([np.mean(r["wrong_picked"][arm])
                                                         for r in rows]) / N_LABELS)}
    for arm in ("suggested", "score only", "lowest conf"):
        pairs = [(r["gain"][arm][0], g) for r in rows for g in r["gain"]["random"]]
        mine = np.array([np.mean(r["gain"][arm]) for r in rows])
        rand = np.array([np.mean(r["gain"]["random"]) for r in rows])
        out[arm]["beats_random_pairs"] = float(np.mean([a > b for a, b in pairs]))
        out[arm]["beats_random_mean_per_draw"] = float(np.mean(mine > rand))
        diff = mine - rand
        out[arm]["minus_random"] = {"mean": float(diff.mean()),
                                    "se": float(diff.std(ddof=1) / np.sqrt(diff.size))
                                    if diff.size > 1 else float("nan")}
    out["random"]["picks"] = sum(len(r["gain"]["random"]) for r in rows)
    out["rounds"] = {arm: [stats([np.mean([c[i] for c in r["rounds"][arm]]) for r in rows])
                           for i in range(ROUNDS)] for arm in ITERATED}
    return out


def suspicious_check(X, graph, seed_sets: list[np.ndarray], k: int, check: str) -> dict:
    """Flip one seed per draw to a wrong class: is it listed, and how many others are.

    `check` "neighbours" is the default rule (the seed's neighbours' final labels);
    "leave one out" passes X, so each seed is tested by a run without its label.
    """
    found = ranked_first = false_alarms = 0
    for draw, y in enumerate(seed_sets):
        rng = np.random.default_rng(4000 + draw)
        wrong = int(rng.choice(np.flatnonzero(y >= 0)))
        y = y.copy()
        y[wrong] = (y[wrong] + 1 + rng.integers(9)) % 10      # any other of the 10 digits
        result = hdl_label(X, y, k=k, graph=graph)
        listed = [s.point for s in suspicious_seeds(
            graph.indices, result, X=X if check == "leave one out" else None)]
        found += wrong in listed
        ranked_first += bool(listed) and listed[0] == wrong
        false_alarms += len(listed) - (wrong in listed)
    return {"check": check, "k": k, "draws": len(seed_sets), "wrong_seed_listed": found,
            "wrong_seed_listed_first": ranked_first,
            "correct_seeds_listed_per_draw": false_alarms / len(seed_sets)}


def pct(stat: dict) -> str:
    return f"{100 * stat['mean']:+.2f} ± {100 * stat['std']:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the demo draw and 2 random draws, 2 random repeats")
    parser.add_argument("--draws", type=int, default=20,
                        help="random seed draws besides the demo's (default 20)")
    parser.add_argument("--random-repeats", type=int, default=5,
                        help="random picks of 10 per draw (default 5)")
    args = parser.parse_args(argv)
    draws = 2 if args.quick else args.draws
    repeats = 2 if args.quick else args.random_repeats

    X, truth, demo_seeds, notes = load_demo()
    graph = build_knn_graph(X, GRAPH_K, method="exact")
    seed_sets = [demo_seeds] + [random_seeds(truth, d) for d in range(1, draws + 1)]
    results, ks_used = {}, {}
    start = time.perf_counter()
    for setting in SETTINGS:
        labeler = Labeler(X, truth, graph, setting)
        rows = [one_draw(labeler, y0, d, repeats) for d, y0 in enumerate(seed_sets)]
        results[setting] = {"summary": summarise(rows), "draws": rows}
        ks_used[setting] = sorted(set(labeler.ks_used))
        print(f"{setting}: {len(rows)} draws in {time.perf_counter() - start:.0f} s", flush=True)

    table_rows = []
    for setting in SETTINGS:
        s = results[setting]["summary"]
        for arm in ONE_SHOT:
            beats = "" if arm == "random" else (
                f"{s[arm]['beats_random_mean_per_draw']:.0%} / {s[arm]['beats_random_pairs']:.0%}")
            table_rows.append([setting if arm == ONE_SHOT[0] else "",
                               f"{100 * s['base']['mean']:.1f}" if arm == ONE_SHOT[0] else "",
                               arm, pct(s[arm]["gain"]), pct(s[arm]["gain_rest"]),
                               f"{s[arm]['wrong_among_picked']:.0%}", beats])
    one_shot_table = print_table(
        ["k", "accuracy before (%)", "10 hand labels", "gain, all images (pp)",
         "gain, images not hand-labeled (pp)", "picked were wrong", "beats random (draws / pairs)"],
        table_rows, title=f"One batch of {N_LABELS} hand labels, {len(seed_sets)} draws "
                          f"(mean ± std over draws; random = mean of {repeats} picks per draw)")
    round_rows = []
    for setting in SETTINGS:
        s = results[setting]["summary"]["rounds"]
        for arm in ITERATED:
            round_rows.append([setting if arm == ITERATED[0] else "", arm,
                               *[pct(s[arm][i]) for i in range(ROUNDS)]])
    rounds_table = print_table(["k", "picks", *[f"after {N_LABELS * (i + 1)} labels (pp)"
                                                for i in range(ROUNDS)]],
                               round_rows, title=f"{ROUNDS} rounds of {N_LABELS}: gain in accuracy "
                                                 f"over all images (mean ± std over draws)")
    suspicious = [suspicious_check(X, graph, seed_sets, k, check)
                  for check in ("neighbours", "leave one out") for k in (3, 5)]
    suspicious_table = print_table(
        ["check", "k", "draws", "wrong seed listed", "listed first",
         f"correct seeds listed per draw (of {10 * SEEDS_PER_CLASS - 1})"],
        [[s["check"], s["k"], s["draws"], s["wrong_seed_listed"], s["wrong_seed_listed_first"],
          s["correct_seeds_listed_per_draw"]] for s in suspicious],
        title="suspicious_seeds with one seed flipped to a wrong class")
    write_json("suggest", {
        "benchmark": "suggest_bench", "quick": args.quick, "machine": machine_info("sklearn"),
        "setup": {**notes, "graph": f"exact cosine kNN, {GRAPH_K} neighbours",
                  "seeds": f"draw 0: the demo's own; draws 1..{draws}: {SEEDS_PER_CLASS} per "
                           f"class, numpy default_rng(2000 + draw)",
                  "settings": {"k=3": "k = 3", "k=5": "k = 5",
                               "auto": "pipeline.pick_k(X, y, 'auto') before every run "
                                       "(as the app)"},
                  "k_used": ks_used, "labels_per_batch": N_LABELS, "rounds": ROUNDS,
                  "random_repeats": repeats,
                  "accuracy": "gain = accuracy after - before, over all images incl. hand labels; "
                              "gain_rest over images not labeled by hand in that arm",
                  "held_out": "the spreading in suggest_next was chosen on other draws "
                              "(default_rng(100..139)); the draws here were not used to choose it",
                  "beats_random": "draws: share of draws where the arm's gain > the mean of "
                                  "the random picks; pairs: share of (draw, random pick) pairs "
                                  "it beats"},
        "results": {s: results[s]["summary"] for s in SETTINGS},
        "suspicious_seeds": suspicious,
        "per_draw": {s: results[s]["draws"] for s in SETTINGS},
        "tables": {"one_batch": one_shot_table, "rounds": rounds_table,
                   "suspicious_seeds": suspicious_table},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())

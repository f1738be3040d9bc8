"""Bridges: HDL's search for the unlabeled point nearest to any labeled one
(`hdl._Bridge` over `bridge.LabeledGroups`) against the all-pairs scan it replaced.

1. 512-D embedding-like clusters (100 clusters, class = cluster mod 10, 1 % seeds, none
   in clusters 0, 10, ..., 90), faiss IVF graph, k = 10: labeling time, time in the
   bridge search, pairs compared exactly, and the all-pairs scan (the previous
   implementation, kept here as `AllPairsBridge`) on the same problem, with identical
   labels, steps, rounds and sources checked. Target (issue 13): bridges at 100k
   <= 0.5 s, at 1M <= 5 s.
2. Many identical copies: 100k images of 768 distinct 512-D vectors, every image's 10
   neighbours copies of it, 1 % seeds: one bridge per unseeded image; target seconds.
3. 3-D sphere clusters (as bench/hdl_bench.py, 30 seeds): how much the bounds prune
   where the data let them.

Every case also runs ``bridge="approx"`` (`bridge.ApproximateBridge`: k-means lists, exact
float64 re-check): its bridge search time, and, with an exact search shadowing it on the
same states (not timed), how often its bridge is the exact one and how far its nearness
falls behind; then how many labels agree with the exact run. ``--million`` runs the 512-D
case at 1M with the approximate search only (the exact one would compare ~1e11 pairs at
the first bridge), on a cheaper IVF graph (4 probes), into bridge_bench_1m.json.
The load average (1, 5, 15 min) is recorded beside every timing: the machine is shared.

    .venv/bin/python bench/bridge_bench.py [--quick | --million]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from _common import (clustered_embeddings, clustered_sphere, machine_info, print_table,
                     seed_labels, sphere_knn, verdict, write_json)

from hdl_core import KnnGraph, build_knn_graph, hdl as hdl_module  # noqa: E402
from hdl_core import graph as graph_module  # noqa: E402
from hdl_core.bridge import ApproximateBridge  # noqa: E402
from hdl_core.graph import get_metric, nearest_exactly  # noqa: E402

K = 10
TARGETS = {100_000: 0.5, 1_000_000: 5.0}
# The faiss IVF graphs of the 512-D cases, kept between runs (6 minutes to build at 1M here):
# the same data and random_state give the same graph, so a cached one is reused.
GRAPH_CACHE = Path("/tmp/hdl-bridge-bench")


def ivf_graph(X: np.ndarray, n: int, tag: str = "") -> tuple[KnnGraph, float]:
    """The IVF graph of the 512-D case at `n` (and its build time), from GRAPH_CACHE when
    an earlier run built it."""
    folder = GRAPH_CACHE / f"clusters-{n}{tag}"
    if (folder / "distances.npy").exists():
        graph = KnnGraph(np.load(folder / "indices.npy"), np.load(folder / "distances.npy"))
        return graph, float((folder / "seconds.txt").read_text())
    start = time.perf_counter()
    graph = build_knn_graph(X, K, method="ivf", random_state=0)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "indices.npy", graph.indices)
    np.save(folder / "distances.npy", graph.distances)
    (folder / "seconds.txt").write_text(repr(seconds))
    return graph, seconds


class AllPairsBridge:
    """The previous bridge search: every unlabeled point against every labeled point
    (new labeled points against all unlabeled ones at each later bridge), exact."""

    BLOCK = 4096

    def __init__(self, rows, seed_mask, metric="cosine"):
        self.metric = get_metric(metric)
        self.X = np.ascontiguousarray(rows)
        self.best = np.full(rows.shape[0], np.inf)
        self.best_src = np.full(rows.shape[0], np.iinfo(np.int64).max, np.int64)
        self.pending = list(np.flatnonzero(seed_mask))
        self.synced_steps = 0

    def next(self, labeled, order):
        new = np.sort(np.concatenate([np.asarray(self.pending, np.int64),
                                      order[self.synced_steps:]]))
        self.pending, self.synced_steps = [], len(order)
        unlabeled = np.flatnonzero(~labeled)
        for u_start in range(0, unlabeled.size, self.BLOCK):
            rows = unlabeled[u_start:u_start + self.BLOCK]
            for n_start in range(0, new.size, self.BLOCK):
                cols = new[n_start:n_start + self.BLOCK]
                near, src = nearest_exactly(self.metric, self.X[rows], self.X[cols], cols)
                better = (near < self.best[rows]) | ((near == self.best[rows])
                                                     & (src < self.best_src[rows]))
                self.best[rows[better]] = near[better]
                self.best_src[rows[better]] = src[better]
        pick = unlabeled[np.argmin(self.best[unlabeled])]
        return int(pick), int(self.best_src[pick]), float(self.best[pick])


def run_hdl(X, y, graph, bridge_class=None):
    """hdl_label with the bridge search timed and its exact comparisons counted."""
    cls = bridge_class or hdl_module._Bridge
    spent = {"seconds": 0.0, "pairs": 0}
    original_next = cls.next
    original_scan = getattr(cls, "_scan", None)

    def timed_next(self, *args):
        start = time.perf_counter()
        try:
            return original_next(self, *args)
        finally:
            spent["seconds"] += time.perf_counter() - start

    def counted_scan(self, vectors, rows, members):
        spent["pairs"] += len(vectors) * len(members)
        return original_scan(self, vectors, rows, members)

    saved = hdl_module._Bridge
    hdl_module._Bridge = cls
    cls.next = timed_next
    if original_scan is not None:
        cls._scan = counted_scan
    try:
        start = time.perf_counter()
        result = hdl_module.hdl_label(X, y, k=K, graph=graph)
        total = time.perf_counter() - start
    finally:
        cls.next = original_next
        if original_scan is not None:
            cls._scan = original_scan
        hdl_module._Bridge = saved
    return result, total, spent


def run_approx(X, y, graph, shadow: bool):
    """hdl_label with bridge="approx", its bridge search timed; with `shadow`, an exact
    search (`hdl._Bridge`, not timed) answers each bridge's state too."""
    spent = {"seconds": 0.0, "pairs": 0, "same": 0, "gaps": []}
    original_next = ApproximateBridge.next
    shadows = {}

    def timed_next(self, labeled, order):
        start = time.perf_counter()
        got = original_next(self, labeled, order)
        spent["seconds"] += time.perf_counter() - start
        spent["pairs"] = self.n_compared
        if shadow:
            exact = shadows.setdefault(id(self), hdl_module._Bridge(
                self.X, self._seeds, self.metric.name))
            want = exact.next(labeled, order)
            spent["same"] += got[:2] == want[:2]
            spent["gaps"].append(got[2] - want[2])
        return got

    original_init = ApproximateBridge.__init__

    def remembering_init(self, rows, seed_mask, *args, **kwargs):
        original_init(self, rows, seed_mask, *args, **kwargs)
        self._seeds = seed_mask.copy()

    ApproximateBridge.next = timed_next
    ApproximateBridge.__init__ = remembering_init
    try:
        start = time.perf_counter()
        result = hdl_module.hdl_label(X, y, k=K, graph=graph, bridge="approx")
        total = time.perf_counter() - start
    finally:
        ApproximateBridge.next = original_next
        ApproximateBridge.__init__ = original_init
    return result, total, spent


def approx_columns(X, y, graph, exact_result, shadow: bool = True) -> dict:
    """The approximate search's numbers for one case, beside the exact run's result."""
    load = os.getloadavg()
    result, total, spent = run_approx(X, y, graph, shadow)
    bridges = int(result.fallback.sum())
    row = {"approx_hdl_s": total, "approx_bridge_s": spent["seconds"],
           "approx_bridges": bridges, "approx_pairs_compared": spent["pairs"],
           "approx_load_average_before": load, "approx_load_average_after": os.getloadavg()}
    if shadow:
        gaps = np.asarray(spent["gaps"])
        row.update(approx_bridges_equal_exact=int(spent["same"]),
                   approx_largest_nearness_gap=float(gaps.max()) if gaps.size else 0.0)
    if exact_result is not None:
        unlabeled = y < 0
        row.update(approx_label_agreement=float((result.labels == exact_result.labels).mean()),
                   approx_label_agreement_unlabeled=float(
                       (result.labels[unlabeled] == exact_result.labels[unlabeled]).mean()))
    return row


def all_pairs_count(result, y) -> int:
    """Pairs the all-pairs scan compares: everything at the first bridge, then the
    points labeled since against the unlabeled ones at every later bridge."""
    steps = np.sort(result.step[result.fallback])
    seeds, unlabeled = int((y >= 0).sum()), int((y < 0).sum())
    total, previous = 0, None
    for s in steps:
        new = seeds + s if previous is None else s - previous
        total += (unlabeled - s) * new
        previous = s
    return total


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("labels", "step", "round", "fallback", "source", "confidence"))


def embeddings_case(n: int, compare: bool) -> dict:
    X, cluster = clustered_embeddings(n, 512, 100, seed=3)
    graph, graph_s = ivf_graph(X, n)
    rng = np.random.default_rng(0)
    seeds = rng.choice(n, size=int(0.01 * n), replace=False)
    seeds = seeds[cluster[seeds] % 10 != 0]
    y = np.full(n, -1, np.int64)
    y[seeds] = cluster[seeds] % 10
    load = os.getloadavg()
    result, total, spent = run_hdl(X, y, graph)
    row = {"case": "512-D clusters, 10 of 100 unseeded", "n": n, "graph_s": graph_s,
           "hdl_s": total, "bridge_s": spent["seconds"], "bridges": int(result.fallback.sum()),
           "pairs_compared": spent["pairs"], "all_pairs": all_pairs_count(result, y),
           "load_average_before": load, "load_average_after": os.getloadavg()}
    if compare:
        old, old_total, old_spent = run_hdl(X, y, graph, AllPairsBridge)
        row.update(all_pairs_hdl_s=old_total, all_pairs_bridge_s=old_spent["seconds"],
                   identical=same(result, old))
    row.update(approx_columns(X, y, graph, result))
    print(f"  {row['case']} n={n:,}: bridges {row['bridges']}, search {row['bridge_s']:.2f} s"
          + (f" (all-pairs {row['all_pairs_bridge_s']:.2f} s, identical {row['identical']})"
             if compare else "") + approx_text(row), flush=True)
    return row


def approx_text(row) -> str:
    return (f"; approx {row['approx_bridge_s']:.2f} s, {row['approx_bridges']} bridges, "
            f"{row.get('approx_bridges_equal_exact', '?')} equal to exact, labels agree "
            f"{100 * row.get('approx_label_agreement', float('nan')):.2f} %, load "
            f"{row['approx_load_average_before'][0]:.2f}")


def million_case(n: int = 1_000_000) -> dict:
    """The 512-D case at `n` with approximate bridges only, on an IVF graph of 4 probes."""
    X, cluster = clustered_embeddings(n, 512, 100, seed=3)
    saved = graph_module.IVF_MIN_PROBES, graph_module.IVF_PROBE_SHARE
    graph_module.IVF_MIN_PROBES, graph_module.IVF_PROBE_SHARE = 4, 0.0
    try:
        graph, graph_s = ivf_graph(X, n, "-4-probes")
    finally:
        graph_module.IVF_MIN_PROBES, graph_module.IVF_PROBE_SHARE = saved
    rng = np.random.default_rng(0)
    seeds = rng.choice(n, size=int(0.01 * n), replace=False)
    seeds = seeds[cluster[seeds] % 10 != 0]
    y = np.full(n, -1, np.int64)
    y[seeds] = cluster[seeds] % 10
    row = {"case": "512-D clusters, 10 of 100 unseeded", "n": n, "graph_s": graph_s,
           "graph": "faiss IVF, 4 of 4,000 lists probed per point (cheaper than the default "
                    "16, to build it here)"}
    row.update(approx_columns(X, y, graph, None, shadow=False))
    print(f"  {row['case']} n={n:,}: graph {graph_s:.0f} s; approx bridge search "
          f"{row['approx_bridge_s']:.2f} s, {row['approx_bridges']} bridges, HDL "
          f"{row['approx_hdl_s']:.1f} s, load {row['approx_load_average_before'][0]:.2f}",
          flush=True)
    return row


def copies_case(n: int, distinct: int, compare: bool) -> dict:
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((distinct, 512)).astype(np.float32)
    image = rng.integers(0, distinct, n)
    X = vectors[image]
    # each point's K neighbours: the lowest-index other copies (as the exact search lists
    # equal distances), so every image's copies form a closed group
    order = np.lexsort((np.arange(n), image))
    starts = np.searchsorted(image[order], np.arange(distinct))
    indices = np.empty((n, K), np.int64)
    for v in range(distinct):
        members = order[starts[v]:starts[v + 1] if v + 1 < distinct else n]
        for i in members:
            indices[i] = members[members != i][:K]
    graph = KnnGraph(indices, np.zeros((n, K), np.float32))
    y = np.full(n, -1, np.int64)
    seeds = rng.choice(n, size=n // 100, replace=False)
    y[seeds] = image[seeds] % 10
    # a seed helps its image only among the K+1 lowest copies (the ones every copy lists)
    lowest = np.zeros(n, bool)
    for v in range(distinct):
        lowest[order[starts[v]:starts[v] + K + 1]] = True
    expected = distinct - np.unique(image[seeds[lowest[seeds]]]).size
    result, total, spent = run_hdl(X, y, graph)
    row = {"case": f"{n:,} images of {distinct} distinct (copies)", "n": n, "hdl_s": total,
           "bridge_s": spent["seconds"], "bridges": int(result.fallback.sum()),
           "expected_bridges": int(expected), "pairs_compared": spent["pairs"],
           "all_pairs": all_pairs_count(result, y)}
    if compare:
        old, old_total, old_spent = run_hdl(X, y, graph, AllPairsBridge)
        row.update(all_pairs_hdl_s=old_total, all_pairs_bridge_s=old_spent["seconds"],
                   identical=same(result, old))
    row.update(approx_columns(X, y, graph, result))
    print(f"  {row['case']}: {row['bridges']} bridges (expected {expected}), "
          f"hdl {total:.2f} s" + approx_text(row), flush=True)
    return row


def sphere_case(n: int, compare: bool) -> dict:
    X, cluster = clustered_sphere(n, 100, spread=0.03, seed=1)
    graph = sphere_knn(X, K)
    _, y = seed_labels(cluster, 10, 30 / n, seed=1)     # 30 seeds: most clusters unseeded
    result, total, spent = run_hdl(X, y, graph)
    row = {"case": "3-D sphere, 100 clusters", "n": n, "hdl_s": total,
           "bridge_s": spent["seconds"], "bridges": int(result.fallback.sum()),
           "pairs_compared": spent["pairs"], "all_pairs": all_pairs_count(result, y)}
    if compare:
        old, old_total, old_spent = run_hdl(X, y, graph, AllPairsBridge)
        row.update(all_pairs_hdl_s=old_total, all_pairs_bridge_s=old_spent["seconds"],
                   identical=same(result, old))
    row.update(approx_columns(X, y, graph, result))
    print(f"  {row['case']} n={n:,}: search {row['bridge_s']:.3f} s, "
          f"{row['pairs_compared']:,} of {row['all_pairs']:,} pairs" + approx_text(row),
          flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k / 30k only")
    parser.add_argument("--million", action="store_true",
                        help="only the 512-D case at 1M, approximate bridges only")
    args = parser.parse_args(argv)
    warm = np.random.default_rng(0).standard_normal((300, 8))
    hdl_module.hdl_label(warm, np.r_[0, 1, np.full(298, -1)], k=2)      # numba cache / compile
    hdl_module.hdl_label(warm, np.r_[0, 1, np.full(298, -1)], k=2, bridge="approx")
    if args.million:
        row = million_case()
        met = row["approx_bridge_s"] <= TARGETS[1_000_000]
        print(f"approximate bridges at 1,000,000: {row['approx_bridge_s']:.2f} s, target ≤ "
              f"{TARGETS[1_000_000]} s ({verdict(met)})")
        write_json("bridge_bench_1m", {
            "benchmark": "bridge_bench", "million": True, "machine": machine_info("faiss"),
            "k": K, "cases": [row], "targets": {"approx_bridges_at_1000000": {
                "target_s": TARGETS[1_000_000], "measured_s": row["approx_bridge_s"],
                "met": met}},
            "not_measured": "the exact search at 1M (~1e11 pairs at the first bridge), so no "
                            "agreement with it"})
        return 0
    sizes = [10_000] if args.quick else [30_000, 100_000]
    rows = [embeddings_case(n, compare=True) for n in sizes]
    rows.append(copies_case(10_000, 64, compare=True) if args.quick
                else copies_case(100_000, 768, compare=False))
    rows.append(sphere_case(10_000 if args.quick else 100_000, compare=True))
    print_table(
        ["case", "n", "bridges", "bridge search (s)", "all-pairs search (s)",
         "pairs compared", "all pairs", "identical"],
        [[r["case"], f"{r['n']:,}", r["bridges"], r["bridge_s"],
          r.get("all_pairs_bridge_s", float("nan")), f"{r['pairs_compared']:,}",
          f"{r['all_pairs']:,}", r.get("identical", "–")] for r in rows],
        title="bridge search vs the all-pairs scan (k=10, 1 % seeds)")
    print_table(
        ["case", "n", "approx bridges", "approx search (s)", "exact search (s)",
         "equal to exact", "largest nearness gap", "labels agree", "load (1 min)"],
        [[r["case"], f"{r['n']:,}", r["approx_bridges"], r["approx_bridge_s"], r["bridge_s"],
          r["approx_bridges_equal_exact"], r["approx_largest_nearness_gap"],
          f"{100 * r['approx_label_agreement']:.2f} %", r["approx_load_average_before"][0]]
         for r in rows],
        title="approximate bridges (bridge=\"approx\") against the exact search")
    targets = {}
    for r in rows[:len(sizes)]:
        if r["n"] in TARGETS:
            targets[f"bridges_at_{r['n']}"] = {"target_s": TARGETS[r["n"]],
                                               "measured_s": r["bridge_s"],
                                               "met": r["bridge_s"] <= TARGETS[r["n"]]}
            targets[f"approx_bridges_at_{r['n']}"] = {
                "target_s": TARGETS[r["n"]], "measured_s": r["approx_bridge_s"],
                "met": r["approx_bridge_s"] <= TARGETS[r["n"]]}
            print(f"bridges at {r['n']:,}: exact {r['bridge_s']:.2f} s, approx "
                  f"{r['approx_bridge_s']:.2f} s, target ≤ {TARGETS[r['n']]} s (exact "
                  f"{verdict(r['bridge_s'] <= TARGETS[r['n']])}, approx "
                  f"{verdict(r['approx_bridge_s'] <= TARGETS[r['n']])})")
    write_json("bridge_bench" + ("_quick" if args.quick else ""), {
        "benchmark": "bridge_bench", "quick": args.quick,
        "machine": machine_info("faiss"), "k": K, "cases": rows, "targets": targets,
        "not_measured": "1M x 512 exact: where the bounds cannot prune (this data), the "
                        "search compares every pair as the all-pairs scan did (~100k x 900k "
                        "pairs at the first bridge); not run on this machine. Approximate "
                        "bridges at 1M: bridge_bench_1m.json (--million)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

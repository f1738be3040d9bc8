"""kNN graph building: exact search vs bare numpy, approximate search recall, and where
"auto" should switch from exact to approximate.

Data: 200 clusters in 512-D, each varying along its own 16 directions plus a little
isotropic noise (embedding-like; see `_common.clustered_embeddings`), k = 10.

1. Exact, 20k x 512: ``build_knn_graph(X, 10, method="exact")`` vs a bare blocked numpy
   loop (``X @ X.T`` by blocks of the same size, ``argpartition``, sort of the k) in the
   same run. Target: at most 1.3x, and tracemalloc's peak bounded by the block, not n x n.
2. Approximate, 200k x 512 (``method="approx"``, pynndescent): recall@10 against the exact
   search on 1000 sampled rows (target >= 0.95), time and peak memory.
3. Crossover: exact vs approximate at n = 5k .. 80k, d = 512; the data behind
   ``hdl_core.graph.EXACT_MAX_POINTS``.

    .venv/bin/python bench/knn_bench.py [--quick]   (--quick writes bench/results/knn_bench_quick.json)
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _common import (PeakRSS, clustered_embeddings, clustered_gaussian, machine_info, mib, print_table,
                     time_call, tracemalloc_peak, verdict, write_json)

from hdl_core import graph as graph_module  # noqa: E402
from hdl_core.graph import build_knn_graph, exact_knn  # noqa: E402
from hdl_core.rows import normalize_rows  # noqa: E402

K = 10
D = 512
N_CLUSTERS = 200
EXACT_TARGET = 1.3
RECALL_TARGET = 0.95


def data(n: int, seed: int = 0, hard: bool = False) -> np.ndarray:
    """Embedding-like clusters; `hard`: isotropic Gaussian clusters (every point of a
    cluster nearly equidistant from the others), a worst case for the approximate search."""
    if hard:
        return clustered_gaussian(n, D, N_CLUSTERS, seed=seed)[0]
    return clustered_embeddings(n, D, N_CLUSTERS, seed=seed)[0]


def bare_numpy_knn(Xn: np.ndarray, k: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """The simplest blocked exact search: X @ X.T by row blocks, argpartition, sort the k.

    Self is dropped by asking for k+1 and removing the point's own index (or the last).
    """
    n = Xn.shape[0]
    XT = np.ascontiguousarray(Xn.T)
    indices = np.empty((n, k), np.int64)
    sims = np.empty((n, k), np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        sim = Xn[start:stop] @ XT
        sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf   # self
        part = np.argpartition(sim, n - k, axis=1)[:, n - k:]
        part_sim = np.take_along_axis(sim, part, axis=1)
        order = np.argsort(-part_sim, axis=1)
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        sims[start:stop] = np.take_along_axis(part_sim, order, axis=1)
    return indices, 1.0 - sims


def recall_at_k(approx_indices: np.ndarray, Xn: np.ndarray, sample: np.ndarray, k: int) -> float:
    """Share of the exact k nearest (self excluded) of the sampled rows that the graph lists."""
    exact, _ = exact_knn(Xn[sample], Xn, k + 1)
    hits = 0
    for row, i in zip(exact, sample):
        truth = row[row != i][:k]
        hits += np.intersect1d(truth, approx_indices[i]).size
    return hits / (sample.size * k)


def exact_vs_numpy(n: int, pairs: int) -> dict:
    """build_knn_graph(exact) and the bare loop, alternating, after one warm-up run each;
    the ratio is the median of the per-pair ratios so load from elsewhere hits both alike."""
    X = data(n)
    Xn = normalize_rows(X)
    block = max(1, min(n, graph_module.BLOCK_BYTES // (4 * n)))
    graph = build_knn_graph(X, K, method="exact")
    bare_idx, bare_dist = bare_numpy_knn(Xn, K, block)
    lib_runs, bare_runs = [], []
    for _ in range(pairs):
        lib_runs.append(time_call(lambda: build_knn_graph(X, K, method="exact"), repeats=1)[0])
        bare_runs.append(time_call(lambda: bare_numpy_knn(Xn, K, block), repeats=1)[0])
    ratios = [a / b for a, b in zip(lib_runs, bare_runs)]
    same = float(np.mean([np.intersect1d(a, b).size / K
                          for a, b in zip(graph.indices, bare_idx)]))
    return {
        "n": n, "d": D, "k": K, "block_rows": block, "pairs": pairs,
        "exact_s": float(np.median(lib_runs)), "exact_runs_s": lib_runs,
        "numpy_s": float(np.median(bare_runs)), "numpy_runs_s": bare_runs,
        "ratio": float(np.median(ratios)), "ratios": ratios,
        "same_neighbours_as_numpy": same,
        "max_distance_difference": float(np.abs(graph.distances - bare_dist).max()),
    }


def exact_memory(sizes: list[int]) -> list[dict]:
    """tracemalloc peak of the exact search at several n: flat in n means bounded by the block."""
    rows = []
    for n in sizes:
        X = data(n)
        Xn = normalize_rows(X)
        block = max(1, min(n, graph_module.BLOCK_BYTES // (4 * n)))
        lib_peak, _ = tracemalloc_peak(lambda: build_knn_graph(X, K, method="exact"))
        bare_peak, _ = tracemalloc_peak(lambda: bare_numpy_knn(Xn, K, block))
        rows.append({"n": n, "block_rows": block, "block_mib": mib(block * n * 4),
                     "n_by_n_mib": mib(n * n * 4), "input_mib": mib(X.nbytes),
                     "exact_peak_mib": mib(lib_peak), "numpy_peak_mib": mib(bare_peak),
                     "exact_peak_in_blocks": lib_peak / (block * n * 4),
                     "exact_peak_minus_3_inputs_in_blocks":
                         (lib_peak - 3 * X.nbytes) / (block * n * 4)})
        print(f"  n={n:,}: peak {mib(lib_peak)} MiB (bare numpy {mib(bare_peak)} MiB), "
              f"n×n would be {mib(n * n * 4):,} MiB", flush=True)
    return rows


def approx_run(n: int, sample_size: int, warm_s: float, hard: bool = False) -> dict:
    X = data(n, seed=1, hard=hard)
    with PeakRSS() as mem:
        start = time.perf_counter()
        graph = build_knn_graph(X, K, method="approx", random_state=0)
        seconds = time.perf_counter() - start
    Xn = normalize_rows(X)
    sample = np.sort(np.random.default_rng(0).choice(n, size=sample_size, replace=False))
    rec = recall_at_k(graph.indices, Xn, sample, K)
    return {"n": n, "d": D, "k": K, "hard": hard, "approx_s": seconds, "recall_at_10": rec,
            "recall_sample": sample_size, "peak_rss_mib": mib(mem.peak_delta),
            "input_mib": mib(X.nbytes), "numba_warmup_s": warm_s}


def exact_backends(n: int, rounds: int) -> dict:
    """faiss IndexFlatIP vs the blocked numpy search (matrix product + numba running top-k),
    alternating, after one warm-up each; same neighbours checked; peak RSS of each."""
    X = data(n, seed=4)
    faiss_search = graph_module._faiss

    def with_numpy():
        graph_module._faiss = lambda: None
        try:
            return build_knn_graph(X, K, method="exact")
        finally:
            graph_module._faiss = faiss_search

    def with_faiss():
        return build_knn_graph(X, K, method="exact")

    with_numpy(), with_faiss()
    numpy_runs, faiss_runs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        a = with_faiss()
        faiss_runs.append(time.perf_counter() - start)
        start = time.perf_counter()
        b = with_numpy()
        numpy_runs.append(time.perf_counter() - start)
    faiss_peak, numpy_peak = _peak_in_child(n, "faiss"), _peak_in_child(n, "numpy")
    ratio = float(np.median([b / a for a, b in zip(faiss_runs, numpy_runs)]))
    return {"n": n, "d": D, "k": K, "rounds": rounds,
            "faiss_s": float(np.median(faiss_runs)), "faiss_runs_s": faiss_runs,
            "numpy_s": float(np.median(numpy_runs)), "numpy_runs_s": numpy_runs,
            "numpy_over_faiss": ratio,
            "same_neighbours": bool(np.array_equal(a.indices, b.indices)),
            "rows_differing": int((a.indices != b.indices).any(axis=1).sum()),
            "faiss_peak_rss_mib": mib(faiss_peak), "numpy_peak_rss_mib": mib(numpy_peak),
            "input_mib": mib(X.nbytes),
            "memory": "peak RSS of a fresh process during the build, above its level before"}


_PEAK_CHILD = """
import sys
sys.path.insert(0, {bench!r})
from knn_bench import data
from hdl_core import graph as g
X = data({n}, seed=4)
if {backend!r} == "numpy":
    g._faiss = lambda: None
g.build_knn_graph(X[:2000], 10, method="exact")          # imports, numba cache
from _common import PeakRSS
with PeakRSS(interval=0.002) as memory:
    g.build_knn_graph(X, 10, method="exact")
print(memory.peak_delta)
"""


def _peak_in_child(n: int, backend: str) -> int:
    """Working memory of one exact build, in a fresh process (peak RSS above the level
    before the build, polled every 2 ms)."""
    import subprocess
    from pathlib import Path
    code = _PEAK_CHILD.format(bench=str(Path(__file__).resolve().parent), n=n, backend=backend)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip().splitlines()[-1])


def ivf_run(n: int, sample_size: int) -> dict:
    X = data(n, seed=1)
    with PeakRSS() as mem:
        start = time.perf_counter()
        graph = build_knn_graph(X, K, method="ivf", random_state=0)
        seconds = time.perf_counter() - start
    Xn = normalize_rows(X)
    sample = np.sort(np.random.default_rng(0).choice(n, size=sample_size, replace=False))
    return {"n": n, "d": D, "k": K, "ivf_s": seconds,
            "recall_at_10": recall_at_k(graph.indices, Xn, sample, K),
            "recall_sample": sample_size, "peak_rss_mib": mib(mem.peak_delta),
            "lists_per_sqrt_n": graph_module.IVF_LISTS_PER_SQRT,
            "min_probes": graph_module.IVF_MIN_PROBES,
            "probe_share": graph_module.IVF_PROBE_SHARE}


def backends_main(quick: bool) -> int:
    """Only the backends comparison (faiss vs numpy exact, IVF): knn_bench_backends.json."""
    sizes = [(5_000, 3)] if quick else [(20_000, 5), (100_000, 1)]
    rows = []
    for n, rounds in sizes:
        rows.append(exact_backends(n, rounds))
        r = rows[-1]
        print(f"  exact n={n:,}: faiss {r['faiss_s']:.2f} s, numpy {r['numpy_s']:.2f} s "
              f"({r['numpy_over_faiss']:.2f}x), same {r['same_neighbours']}", flush=True)
    ivf = ivf_run(20_000 if quick else 200_000, 300 if quick else 1000)
    print_table(["n × d", "faiss IndexFlatIP (s)", "numpy + running top-k (s)",
                 "numpy / faiss", "same neighbours", "peak RSS faiss / numpy (MiB)"],
                [[f"{r['n']:,} × {D}", r["faiss_s"], r["numpy_s"],
                  f"{r['numpy_over_faiss']:.2f}×", r["same_neighbours"],
                  f"{r['faiss_peak_rss_mib']} / {r['numpy_peak_rss_mib']}"] for r in rows],
                title="exact kNN backends (k=10), medians of alternating rounds")
    print(f"IVF-Flat at {ivf['n']:,} × {D}: {ivf['ivf_s']:.1f} s, recall@10 "
          f"{ivf['recall_at_10']:.4f}, peak RSS {ivf['peak_rss_mib']} MiB")
    write_json("knn_bench_backends" + ("_quick" if quick else ""), {
        "benchmark": "knn_bench --backends", "quick": quick,
        "machine": machine_info("faiss"), "exact": rows, "ivf": ivf,
        "targets": {"numpy_over_faiss": {"target": "<= 1.1", "measured":
                                         [r["numpy_over_faiss"] for r in rows]},
                    "memory": {"target": "numpy peak <= 2x faiss's",
                               "measured_mib": [(r["numpy_peak_rss_mib"],
                                                 r["faiss_peak_rss_mib"]) for r in rows]},
                    "ivf_recall": {"target": f">= {RECALL_TARGET}",
                                   "measured": ivf["recall_at_10"]}}})
    return 0


def warm_up_approx() -> float:
    """pynndescent compiles its numba kernels on first use (cached on disk afterwards)."""
    start = time.perf_counter()
    build_knn_graph(data(3000, seed=9), K, method="approx", random_state=0)
    return time.perf_counter() - start


def crossover(sizes: list[int], hard: bool = False) -> list[dict]:
    rows = []
    for n in sizes:
        X = data(n, seed=2, hard=hard)
        reps = 3 if n <= 20_000 else 1
        exact_s, exact_runs, exact_graph = time_call(
            lambda: build_knn_graph(X, K, method="exact"), repeats=reps)
        approx_s, approx_runs, approx_graph = time_call(
            lambda: build_knn_graph(X, K, method="approx", random_state=0), repeats=reps)
        # recall from the exact graph we already have
        hits = sum(np.intersect1d(a, b).size for a, b in zip(exact_graph.indices,
                                                             approx_graph.indices))
        rows.append({"n": n, "exact_s": exact_s, "exact_runs_s": exact_runs,
                     "approx_s": approx_s, "approx_runs_s": approx_runs,
                     "approx_over_exact": approx_s / exact_s,
                     "approx_recall_at_10": hits / (n * K), "repeats": reps})
        print(f"  n={n:>6,}{' (hard)' if hard else ''}: exact {exact_s:.2f} s, "
              f"approx {approx_s:.2f} s", flush=True)
    return rows


_COLD_CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
import numpy as np
from knn_bench import data
from hdl_core.graph import build_knn_graph
X = data({n}, seed=2)
start = time.perf_counter()
build_knn_graph(X, 10, method="approx", random_state=0)
first = time.perf_counter() - start
start = time.perf_counter()
build_knn_graph(X, 10, method="approx", random_state=0)
print(json.dumps({{"first_s": first, "second_s": time.perf_counter() - start}}))
"""


def cold_start(n: int) -> dict:
    """First approximate search in a fresh Python process (pynndescent compiles with numba
    each process; only part of it is cached on disk) vs the second one in that process."""
    import json
    import subprocess
    from pathlib import Path

    code = _COLD_CHILD.format(bench=str(Path(__file__).resolve().parent), n=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return {"n": n, **times, "first_call_overhead_s": times["first_s"] - times["second_s"]}


def cold_break_even(rows: list[dict], overhead_s: float) -> float | None:
    """n where exact(n) = approx(n) + the first-call overhead, exact fitted as a·n^b."""
    ns = np.array([r["n"] for r in rows], float)
    b, log_a = np.polyfit(np.log(ns), np.log([r["exact_s"] for r in rows]), 1)
    approx = np.interp  # approx time is small next to the overhead; interpolate it in n
    grid = np.linspace(ns.min(), 4 * ns.max(), 4000)
    gap = np.exp(log_a) * grid ** b - (overhead_s + approx(grid, ns, [r["approx_s"] for r in rows]))
    above = np.flatnonzero(gap > 0)
    return float(grid[above[0]]) if above.size else None


def crossover_point(rows: list[dict]) -> dict:
    """First measured n where approx is faster, and the log-log interpolated break-even n
    (None when approx is already faster at the smallest n, or never faster)."""
    faster = [r["n"] for r in rows if r["approx_s"] < r["exact_s"]]
    first = faster[0] if faster else None
    estimate = None
    for a, b in zip(rows, rows[1:]):
        ra, rb = np.log(a["approx_s"] / a["exact_s"]), np.log(b["approx_s"] / b["exact_s"])
        if ra >= 0 > rb:
            t = ra / (ra - rb)
            estimate = float(np.exp(np.log(a["n"]) + t * (np.log(b["n"]) - np.log(a["n"]))))
            break
    return {"first_measured_n_where_approx_faster": first, "break_even_n_estimate": estimate}


def _where(cross: dict, rows: list[dict]) -> str:
    first = cross["first_measured_n_where_approx_faster"]
    if first is None:
        return f"exact faster at every n up to {rows[-1]['n']:,}"
    if cross["break_even_n_estimate"] is None:
        return f"approx faster already at the smallest n={rows[0]['n']:,}"
    return f"approx first faster at n={first:,}, break-even ≈ {cross['break_even_n_estimate']:,.0f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="exact at 5k, approx at 20k, crossover 5k-20k")
    parser.add_argument("--backends", action="store_true",
                        help="only faiss vs numpy exact search and IVF recall")
    args = parser.parse_args(argv)
    if args.backends:
        return backends_main(args.quick)
    exact_n = 5_000 if args.quick else 20_000
    approx_n = 20_000 if args.quick else 200_000
    sample_size = 300 if args.quick else 1000
    sizes = [5_000, 10_000, 20_000] if args.quick else [5_000, 10_000, 20_000, 40_000, 80_000]
    hard_sizes = [5_000, 10_000] if args.quick else [5_000, 10_000, 20_000, 40_000]
    memory_sizes = [10_000, 20_000] if args.quick else [10_000, 20_000, 40_000]

    print(f"exact search at {exact_n:,} x {D} ...", flush=True)
    ex = exact_vs_numpy(exact_n, pairs=3 if args.quick else 5)
    memory = exact_memory(memory_sizes)
    exact_met = ex["ratio"] <= EXACT_TARGET
    # bounded by the block: the peak does not grow with n (beyond the O(n·d) inputs)
    peaks = [m["exact_peak_mib"] - 3 * m["input_mib"] for m in memory]
    bounded = max(peaks) <= 1.5 * min(peaks) and memory[-1]["exact_peak_mib"] < memory[-1]["n_by_n_mib"]
    print_table(
        ["n × d", "build_knn_graph exact (s)", "bare numpy (s)", "ratio (median of pairs)"],
        [[f"{ex['n']:,} × {D}", ex["exact_s"], ex["numpy_s"], f"{ex['ratio']:.2f}×"]],
        title=f"exact kNN (k={K}) — target ≤ {EXACT_TARGET}× bare numpy ({verdict(exact_met)})")
    print_table(
        ["n", "peak traced (MiB)", "bare numpy peak (MiB)", "input X (MiB)", "one block (MiB)",
         "n×n matrix (MiB)"],
        [[f"{m['n']:,}", m["exact_peak_mib"], m["numpy_peak_mib"], m["input_mib"],
          m["block_mib"], m["n_by_n_mib"]] for m in memory],
        title=f"exact kNN memory (tracemalloc) — bounded by the block, not n×n ({verdict(bounded)})")

    warm_s = warm_up_approx()
    print(f"\npynndescent warm-up (numba compile or cache load): {warm_s:.1f} s", flush=True)
    print(f"approximate search at {approx_n:,} x {D} ...", flush=True)
    ap = approx_run(approx_n, sample_size, warm_s)
    ap_hard = approx_run(approx_n, sample_size, warm_s, hard=True)
    recall_met = ap["recall_at_10"] >= RECALL_TARGET
    print_table(
        ["data", "n × d", "approx (s)", f"recall@{K} ({sample_size} rows)",
         "peak RSS above start (MiB)", "input (MiB)"],
        [[name, f"{r['n']:,} × {D}", r["approx_s"], f"{r['recall_at_10']:.4f}",
          r["peak_rss_mib"], r["input_mib"]]
         for name, r in (("embedding-like clusters", ap), ("isotropic clusters (hard)", ap_hard))],
        title=f"approximate kNN (pynndescent) — target recall ≥ {RECALL_TARGET} on the "
              f"embedding-like data ({verdict(recall_met)})")

    print("\ncrossover exact vs approx ...", flush=True)
    rows = crossover(sizes)
    cross = crossover_point(rows)
    hard_rows = crossover(hard_sizes, hard=True)
    hard_cross = crossover_point(hard_rows)
    cold = cold_start(sizes[2])
    cross["cold_break_even_n_estimate"] = cold_break_even(rows, cold["first_call_overhead_s"])
    print(f"  first approx call in a fresh process at n={cold['n']:,}: {cold['first_s']:.1f} s "
          f"(second call {cold['second_s']:.2f} s)", flush=True)
    print_table(
        ["n", "exact (s)", "approx (s)", "approx / exact", "approx recall@10"],
        [[f"{r['n']:,}", r["exact_s"], r["approx_s"], f"{r['approx_over_exact']:.2f}",
          f"{r['approx_recall_at_10']:.4f}"] for r in rows],
        title=f"exact vs approx, d={D}, k={K} (EXACT_MAX_POINTS now "
              f"{graph_module.EXACT_MAX_POINTS:,}): {_where(cross, rows)}")
    print_table(
        ["n", "exact (s)", "approx (s)", "approx / exact", "approx recall@10"],
        [[f"{r['n']:,}", r["exact_s"], r["approx_s"], f"{r['approx_over_exact']:.2f}",
          f"{r['approx_recall_at_10']:.4f}"] for r in hard_rows],
        title=f"same, hard data (isotropic Gaussian clusters): {_where(hard_cross, hard_rows)}")
    print(f"\nfirst approx call per process costs {cold['first_call_overhead_s']:.1f} s more "
          f"(numba compilation); counting it, exact stays faster up to n ≈ "
          f"{cross['cold_break_even_n_estimate'] or float('nan'):,.0f}")

    write_json("knn_bench" + ("_quick" if args.quick else ""), {
        "benchmark": "knn_bench", "quick": args.quick,
        "machine": machine_info("pynndescent"),
        "setup": {"data": f"{N_CLUSTERS} clusters in {D}-D, each along its own 16 directions "
                          f"plus isotropic noise (bench/_common.clustered_embeddings)",
                  "k": K, "block_bytes": graph_module.BLOCK_BYTES,
                  "exact_max_points_now": graph_module.EXACT_MAX_POINTS,
                  "timing": "exact vs numpy: alternating pairs after one warm-up run, median of "
                            "per-pair ratios; crossover "
                            "median of 3 up to 20k, single runs above; pynndescent warmed up "
                            "on 3k points first",
                  "memory": "exact: tracemalloc peak (numpy buffers); approx: peak RSS above the "
                            "level before the call, polled every 10 ms (numba memory is not "
                            "traced)"},
        "exact": ex, "exact_memory": memory, "approx": ap, "approx_hard": ap_hard,
        "crossover": rows, "crossover_point": cross,
        "crossover_hard": hard_rows, "crossover_point_hard": hard_cross,
        "approx_cold_start": cold,
        "targets": {
            "exact_ratio": {"target": f"<= {EXACT_TARGET}", "measured": ex["ratio"],
                            "met": exact_met},
            "exact_memory_bounded_by_block": {
                "rule": "peak minus 3 input copies varies by at most 1.5x over n, and stays "
                        "below the n x n matrix",
                "peaks_mib": {m["n"]: m["exact_peak_mib"] for m in memory},
                "block_mib": memory[-1]["block_mib"], "met": bounded},
            "approx_recall": {"target": f">= {RECALL_TARGET}", "measured": ap["recall_at_10"],
                              "met": recall_met},
        },
    })
    return backends_main(args.quick)


if __name__ == "__main__":
    sys.exit(main())

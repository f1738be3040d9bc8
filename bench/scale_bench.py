"""HDL from files at 1M and 10M points: memory beyond the graph, and time per edge.

The graph-only path (`hdl-studio label --embeddings DIR --graph GRAPHDIR`) hands the
labeling a graph memory-mapped from ``indices.npy`` (int32) and ``distances.npy``
(float16). Here the graph is k = 10 random neighbour lists (every point reachable, so no
bridge: the rounds alone), 1 % seeds in 10 classes, written to files and mapped back, and
each variant labels it: the paper's (`hdl.label_prepared_rows`), class-balanced HDL
(`balanced.label_prepared_rows`) and the default, reach-ordered HDL
(`reach.label_prepared_rows`). Memory is the peak of the process's
anonymous resident memory (``RssAnon``: what the labeling allocates, not the mapped graph
pages) above its level before the call, polled every 10 ms; time is the median of three
runs. Target (issue 13):
at most 250 bytes per point at 10M, and time per edge at 10M no worse than at 1M.

Beside the variants, a reference with nothing of HDL in it (`reference_gather`): the rows
visited in a random order and, per edge, the neighbour's one-byte label read, the reads
of a vote and nothing else. Its own 10M / 1M ratio is what this machine's memory charges
for the larger arrays, whatever the algorithm.

    .venv/bin/python bench/scale_bench.py [--quick]   (--quick: 100k and 1M)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from _common import PeakRSS, machine_info, print_table, verdict, write_json

from hdl_core import balanced, hdl, reach  # noqa: E402
from hdl_core.workspace.files import read_graph_dir, write_graph_dir  # noqa: E402

K = 10
BYTES_TARGET = 250
REPEATS = 3        # the median is reported; memory is the highest of the runs


def rss_anon() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


VARIANTS = {"paper": hdl.label_prepared_rows, "balanced": balanced.label_prepared_rows,
            "reach": reach.label_prepared_rows}


def warm(folder: Path) -> None:
    """Run the kernels once on a small graph from files (read-only int32 arrays are their
    own numba signature), the blocked reverse adjacency included."""
    from hdl_core import KnnGraph
    n = 2000
    indices = ((np.arange(n)[:, None] + np.arange(1, K + 1)) % n).astype(np.int32)
    write_graph_dir(folder / "warm", KnnGraph(indices, np.ones((n, K), np.float32)),
                    {"method": "ring"})
    graph, _ = read_graph_dir(folder / "warm")
    y = np.full(n, -1, np.int64)
    y[::100] = np.arange(20) % 10
    bits, hdl.REVERSE_BLOCK_BITS = hdl.REVERSE_BLOCK_BITS, 4
    try:
        for label in VARIANTS.values():
            label(np.ones((n, 1), np.float32), y, k=K, graph=graph)
    finally:
        hdl.REVERSE_BLOCK_BITS = bits


@numba.njit(cache=True)
def _gather(order, neighbours, labels):
    total = 0
    for a in range(order.shape[0]):
        row = neighbours[order[a]]
        for j in range(row.shape[0]):
            total += labels[row[j]]
    return total


def reference_gather(graph, seed: int) -> dict:
    """Time per edge of the rows read in a random order, each neighbour's int8 label
    looked up: the median of five runs over the mapped graph."""
    n = graph.indices.shape[0]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    labels = rng.integers(-1, 10, n).astype(np.int8)
    _gather(order[:100], graph.indices, labels)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        _gather(order, graph.indices, labels)
        runs.append(time.perf_counter() - start)
    seconds = float(np.median(runs))
    return {"variant": "reference", "n": n, "k": graph.indices.shape[1], "seconds": seconds,
            "ns_per_edge": seconds / graph.indices.size * 1e9, "runs_seconds": runs}


def one_size(n: int, folder: Path) -> list[dict]:
    """One row per labeling variant on the same random graph of n points, from files."""
    rng = np.random.default_rng(n)
    indices = ((np.arange(n, dtype=np.int64)[:, None]
                + rng.integers(1, n, size=(n, K))) % n).astype(np.int32)
    from hdl_core import KnnGraph
    write_graph_dir(folder / f"g{n}", KnnGraph(indices, np.ones((n, K), np.float32)),
                    {"method": "random", "embeddings": "none"})
    del indices
    graph, _ = read_graph_dir(folder / f"g{n}")
    y = np.full(n, -1, np.int64)
    seeds = rng.choice(n, n // 100, replace=False)
    y[seeds] = rng.integers(0, 10, seeds.size)
    rows = np.ones((n, 1), np.float32)          # never read: no bridge on this graph
    warm(folder)                                # numba kernels loaded before measuring
    reference = reference_gather(graph, n)
    print(f"  reference n={n:,}: {reference['ns_per_edge']:.1f} ns/edge", flush=True)
    out = [reference]
    for variant, label in VARIANTS.items():
        runs, peaks = [], []
        for _ in range(REPEATS):
            with PeakRSS(read=rss_anon) as memory:   # anonymous memory: mapped graph left out
                start = time.perf_counter()
                result = label(rows, y, k=K, graph=graph)
                runs.append(time.perf_counter() - start)
            peaks.append(memory.peak_delta)
            assert not result.fallback.any()
            rounds = result.n_rounds
            del result
        seconds = float(np.median(runs))
        out.append({"variant": variant, "n": n, "k": K, "seconds": seconds,
                    "ns_per_edge": seconds / (n * K) * 1e9, "runs_seconds": runs,
                    "peak_anon_bytes": max(peaks), "bytes_per_point": max(peaks) / n,
                    "rounds": rounds})
        r = out[-1]
        print(f"  {variant} n={n:,}: {r['seconds']:.2f} s, {r['ns_per_edge']:.1f} ns/edge, "
              f"{r['bytes_per_point']:.0f} B/point", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes = [100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            rows += one_size(n, Path(tmp))
    targets = {}
    reference = [r for r in rows if r["variant"] == "reference"]
    machine_ratio = reference[-1]["ns_per_edge"] / reference[0]["ns_per_edge"]
    rows = [r for r in rows if r["variant"] != "reference"]
    for variant in VARIANTS:
        small, large = [r for r in rows if r["variant"] == variant and r["n"] in (sizes[0], sizes[-1])]
        targets[variant] = {
            "bytes_per_point": {"target": BYTES_TARGET, "n": large["n"],
                                "measured": large["bytes_per_point"],
                                "met": large["bytes_per_point"] <= BYTES_TARGET},
            "time_per_edge": {"small": small["ns_per_edge"], "large": large["ns_per_edge"],
                              "ratio": large["ns_per_edge"] / small["ns_per_edge"],
                              "reference_ratio": machine_ratio,
                              "met": large["ns_per_edge"] <= small["ns_per_edge"]}}
    print_table(["variant", "n", "k", "seconds", "ns per edge", "peak anonymous memory (MiB)",
                 "bytes per point", "rounds"],
                [[r["variant"], f"{r['n']:,}", r["k"], r["seconds"], f"{r['ns_per_edge']:.1f}",
                  f"{r['peak_anon_bytes'] / 2**20:,.0f}", f"{r['bytes_per_point']:.0f}",
                  f"{r['rounds']:,}"] for r in rows],
                title="; ".join(
                    f"{v}: ≤ {BYTES_TARGET} B/point at {sizes[-1]:,} "
                    f"({verdict(t['bytes_per_point']['met'])}), time per edge no worse than at "
                    f"{sizes[0]:,} ({verdict(t['time_per_edge']['met'])}, "
                    f"{t['time_per_edge']['ratio']:.2f}x)" for v, t in targets.items()))
    print(f"reference (random rows, a label read per edge): "
          f"{reference[0]['ns_per_edge']:.1f} -> {reference[-1]['ns_per_edge']:.1f} ns/edge, "
          f"{machine_ratio:.2f}x")
    write_json("scale_bench" + ("_quick" if args.quick else ""), {
        "benchmark": "scale_bench", "quick": args.quick, "machine": machine_info(),
        "rows": rows, "reference": reference, "targets": targets})
    return 0


if __name__ == "__main__":
    sys.exit(main())

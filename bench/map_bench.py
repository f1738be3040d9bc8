"""The map of a million points: UMAP on a sample, the rest placed from graph neighbours.

For each sample size: the sample's own kNN graph (`build_knn_graph`), UMAP of the sample,
placing every other point from its neighbours (`place_from_neighbours`, O(n·k) over the
graph HDL ran on), and how good the map is: of 2,000 random points, the share of their 10
nearest points on the map that are in their cluster ("same cluster"), and the share of
their 10 graph neighbours among their 10 nearest on the map ("kept neighbours"), for
laid-out and placed points separately. Then the alternative, umap-learn's own
``transform`` of points outside the sample (it searches each point's neighbours among the
sample again), on the same points.

    .venv/bin/python bench/map_bench.py [--n 1000000] [--samples 20000,50000,100000]
                                        [--transform 100000]

Uses the synthetic workspace of bench/_large.py (built on first use).
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from _common import PeakRSS, machine_info, mib, print_table, write_json
from _large import build_workspace

BASE = Path("/tmp/hdl-large")


def quality(coords: np.ndarray, cluster: np.ndarray, neighbours: np.ndarray, rows: np.ndarray,
            k: int = 10) -> tuple[float, float]:
    """(same-cluster share, kept-neighbour share) of the 10 nearest map points of `rows`."""
    from scipy.spatial import cKDTree
    tree = cKDTree(coords)
    _, near = tree.query(coords[rows], k=k + 1)
    near = near[:, 1:]
    same = float((cluster[near] == cluster[rows][:, None]).mean())
    kept = float(np.mean([np.isin(neighbours[r, :k], near[i]).mean() for i, r in enumerate(rows)]))
    return same, kept


def same_cluster(coords: np.ndarray, cluster: np.ndarray, rows: np.ndarray, k: int = 10) -> float:
    from scipy.spatial import cKDTree
    _, near = cKDTree(coords).query(coords[rows], k=k + 1)
    return float((cluster[near[:, 1:]] == cluster[rows][:, None]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--samples", default="20000,50000,100000")
    parser.add_argument("--transform", type=int, default=100_000,
                        help="points umap's transform places (0: skip the comparison)")
    args = parser.parse_args()
    import umap
    from hdl_core.graph import build_knn_graph
    from hdl_core.rows import normalize_rows
    from hdl_core.views.projection import map_sample, place_from_neighbours, umap_map
    from hdl_core.workspace import pipeline
    from hdl_core.workspace.store import Workspace

    folder = build_workspace(args.n, BASE, with_map=False)
    ws = Workspace(folder)
    emb = pipeline.current_embedding(ws, mmap=True)
    graph = pipeline.neighbour_graph(ws, emb)
    # the generator's clusters, in row order (rows are items in path order = generation order)
    cluster = _clusters(args.n)
    rng = np.random.default_rng(5)
    probe = rng.choice(args.n, size=2_000, replace=False)

    # warm numba (UMAP, pynndescent) outside the timings: a server does this once
    warm = normalize_rows(np.asarray(emb.X[:3000]))
    umap_map(warm, build_knn_graph(warm, 14, random_state=0))

    records, rows = [], []
    for size in [int(v) for v in args.samples.split(",")]:
        record = {"sample": size}
        started = time.perf_counter()
        sample = map_sample(graph.indices, size, random_state=0)
        record["sample_s"] = time.perf_counter() - started
        with PeakRSS() as memory:
            started = time.perf_counter()
            X_sample = normalize_rows(np.asarray(emb.X[sample]))
            sample_graph = build_knn_graph(X_sample, 14, random_state=0)
            record["sample_graph_s"] = time.perf_counter() - started
            started = time.perf_counter()
            laid_out = umap_map(X_sample, sample_graph, random_state=0)
            record["umap_s"] = time.perf_counter() - started
            started = time.perf_counter()
            counts = {}
            coords = place_from_neighbours(graph.indices, graph.distances, sample, laid_out,
                                           counts=counts)
            record["place_s"] = time.perf_counter() - started
        record["peak_rss_mib"] = mib(memory.peak_delta)
        record["edges_read_per_entry"] = counts["edges_read"] / graph.indices.size
        record["total_s"] = sum(record[key] for key in ("sample_s", "sample_graph_s", "umap_s",
                                                        "place_s"))
        in_sample = np.isin(probe, sample)
        for name, chosen in (("laid_out", probe[in_sample]), ("placed", probe[~in_sample])):
            same, kept = quality(coords, cluster, graph.indices, chosen)
            record[f"{name}_same_cluster"], record[f"{name}_kept_neighbours"] = same, kept
        records.append(record)
        rows.append([f"{size:,}", f"{record['sample_graph_s']:.1f}", f"{record['umap_s']:.1f}",
                     f"{record['place_s']:.2f}", f"{record['total_s']:.1f}",
                     f"{record['laid_out_same_cluster']:.3f} / {record['placed_same_cluster']:.3f}",
                     f"{record['laid_out_kept_neighbours']:.3f} / {record['placed_kept_neighbours']:.3f}",
                     f"{record['peak_rss_mib']:,.0f}"])
        print(rows[-1], flush=True)
    print_table(["sample", "sample graph s", "UMAP s", "place rest s", "total s",
                 "same cluster (laid out / placed)", "kept neighbours (laid out / placed)",
                 "peak RSS MiB"], rows, title=f"Map of {args.n:,} points")

    transform = None
    if args.transform:
        size = int(args.samples.split(",")[0])
        sample = map_sample(graph.indices, size, random_state=0)
        rest = np.setdiff1d(np.arange(args.n), sample)
        chosen = np.sort(rng.choice(rest, size=min(args.transform, rest.size), replace=False))
        X_sample = normalize_rows(np.asarray(emb.X[sample]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            reducer = umap.UMAP(n_neighbors=15, metric="cosine", random_state=0).fit(X_sample)
            fit_s = time.perf_counter() - started
            started = time.perf_counter()
            moved = reducer.transform(normalize_rows(np.asarray(emb.X[chosen])))
            transform_s = time.perf_counter() - started
        started = time.perf_counter()
        placed = place_from_neighbours(graph.indices, graph.distances, sample, reducer.embedding_)
        place_s = time.perf_counter() - started
        # both maps judged on the same points: the sample and the points transformed
        keep = np.r_[sample, chosen]
        by_transform = np.vstack([reducer.embedding_, moved])
        probe_rows = sample.size + rng.choice(chosen.size, size=1_000, replace=False)
        transform_quality = same_cluster(by_transform, cluster[keep], probe_rows)
        placed_quality = same_cluster(placed[keep], cluster[keep], probe_rows)
        transform = {"sample": size, "points": int(chosen.size), "fit_s": fit_s,
                     "transform_s": transform_s, "place_all_rest_s": place_s,
                     "transform_same_cluster": transform_quality,
                     "placed_same_cluster": placed_quality}
        print_table(["what", "value"], [[k, v] for k, v in transform.items()],
                    title="umap-learn's transform vs placing from graph neighbours")
    write_json("map_bench", {
        "machine": machine_info("umap", "pynndescent"),
        "what": "UMAP of a sample of the synthetic 1M workspace, every other point placed "
                "from its graph neighbours; quality on 2,000 random points",
        "n": args.n, "results": records, "transform": transform})


def _clusters(n: int) -> np.ndarray:
    """The generator's cluster of each row (bench/_large.py draws them first, seed 0)."""
    rng = np.random.default_rng(0)
    rng.standard_normal((100, 512))
    rng.standard_normal((100, 8, 512))
    return rng.integers(0, 100, n)


if __name__ == "__main__":
    main()

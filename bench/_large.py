"""Synthetic large workspaces (100k, 1M images) for the benchmarks of the app at scale.

`build_workspace(n, base)` makes, under ``base/ws``, a workspace the app opens like any
other: n items (paths only: no image files, so thumbnails are grey tiles; the paths that
need files, the scan, have their own benchmark), 512-D clustered embeddings, the kNN graph,
an HDL run (with its kNN-DV run), and optionally the map. It is built once and reused:
``base/ws/<name>/built.json`` says what it holds.

The embeddings: `n_clusters` clusters, each its unit centre plus a Gaussian in its own
8-dimensional subspace plus a little isotropic noise (`bench._common.clustered_embeddings`
is the same model). Classes are clusters mod `n_classes`; every cluster has
`seeds_per_cluster` seeds (a CSV's, so the paths need no class folders), so HDL labels
without bridges. The ground truth is stored as the demo's is.

The graph: the exact 20 nearest neighbours within each cluster in its 8-D latent
coordinates (a k-d tree), re-ranked by their cosine distance in 512-D. Clusters are far
apart (random unit centres), so these are the neighbours an exact search of the 512-D
rows finds, at a fraction of its cost: the graph builder itself is not what these
benchmarks measure (``bench/knn_bench.py`` does).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from _common import ROOT  # noqa: F401  (puts the project on sys.path)

INTRINSIC_DIM = 8


def embeddings(n: int, d: int, n_clusters: int, seed: int = 0):
    """(X float32 (n, d), cluster (n,), latent (n, INTRINSIC_DIM)) in item order."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((n_clusters, INTRINSIC_DIM, d)).astype(np.float32)
    bases *= np.float32(0.5 / np.sqrt(INTRINSIC_DIM * d))
    cluster = rng.integers(0, n_clusters, n)
    latent = rng.standard_normal((n, INTRINSIC_DIM)).astype(np.float32)
    X = np.empty((n, d), np.float32)
    chunk = 16384
    for start in range(0, n, chunk):
        c = cluster[start:start + chunk]
        block = np.einsum("ij,ijd->id", latent[start:start + chunk], bases[c], optimize=False)
        block += centres[c]
        block += rng.standard_normal((c.size, d), dtype=np.float32) * np.float32(0.05 / np.sqrt(d))
        X[start:start + c.size] = block
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, cluster, latent


def graph(X: np.ndarray, cluster: np.ndarray, latent: np.ndarray, k: int):
    """The k nearest neighbours of every row within its cluster (see the module docstring)."""
    from scipy.spatial import cKDTree

    from hdl_core.graph import KnnGraph

    n = X.shape[0]
    indices = np.empty((n, k), np.int64)
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        tree = cKDTree(latent[members])
        _, near = tree.query(latent[members], k=min(k + 1, members.size), workers=-1)
        near = members[near]
        for row, point in enumerate(members):             # drop self (by index)
            others = near[row][near[row] != point][:k]
            indices[point, :others.size] = others
    distances = np.empty((n, k), np.float32)
    for start in range(0, n, 8192):
        block = indices[start:start + 8192]
        cos = np.einsum("id,ijd->ij", X[start:start + block.shape[0]], X[block], optimize=False)
        distances[start:start + block.shape[0]] = 1.0 - cos
    order = np.argsort(distances, axis=1, kind="stable")
    indices = np.take_along_axis(indices, order, axis=1)
    distances = np.maximum(np.take_along_axis(distances, order, axis=1), 0)
    return KnnGraph(indices, distances)


def build_workspace(n: int, base: Path, *, n_clusters: int = 100, n_classes: int = 20,
                    seeds_per_cluster: int = 10, d: int = 512, with_map: bool = True,
                    log=print) -> Path:
    """The workspace folder of a synthetic dataset of `n` images under `base` (built once)."""
    os.environ["HDL_DATA_ROOT"] = str(base / "data")
    os.environ["HDL_WORKSPACE_ROOT"] = str(base / "ws")
    from hdl_core.auto_k import KIntent
    from hdl_core.config import GRAPH_K
    from hdl_core.workspace import pipeline
    from hdl_core.workspace.store import Workspace

    name = f"synthetic-{n}"
    root = base / "data" / name
    root.mkdir(parents=True, exist_ok=True)
    folder = pipeline.workspace_for(root)
    done = folder / "built.json"
    if done.exists():
        built = json.loads(done.read_text())
        if with_map and not built.get("map"):              # built before without its map
            from hdl_core.workspace import maps
            ws = Workspace(folder)
            emb = pipeline.current_embedding(ws, mmap=True)
            started = time.perf_counter()
            maps.preview_map(ws, emb)
            maps.compute_map(ws, emb)
            built["timings"]["map_s"] = time.perf_counter() - started
            built["map"] = True
            log(f"  map in {built['timings']['map_s']:.1f} s")
            ws.close()
            done.write_text(json.dumps(built))
        return folder
    timings = {}
    started = time.perf_counter()
    X, cluster, latent = embeddings(n, d, n_clusters)
    timings["embeddings_s"] = time.perf_counter() - started
    log(f"  {n:,} embeddings in {timings['embeddings_s']:.1f} s")

    rng = np.random.default_rng(1)
    is_seed = np.zeros(n, bool)
    for c in range(n_clusters):
        members = np.flatnonzero(cluster == c)
        is_seed[rng.choice(members, size=min(seeds_per_cluster, members.size), replace=False)] = True
    classes = [f"class-{c:02d}" for c in range(n_classes)]
    truth_of = cluster % n_classes
    items = [SimpleNamespace(path=f"img/{i:07d}.jpg", content_hash=f"{i:064x}", size=20_000,
                             mtime_ns=None, seed_label=classes[truth_of[i]] if is_seed[i] else None,
                             seed_source="csv") for i in range(n)]
    truth = {item.path: classes[truth_of[i]] for i, item in enumerate(items)}
    ws = Workspace(folder)
    started = time.perf_counter()
    ws.set_dataset(SimpleNamespace(root=root, items=items, skipped=[], truth=truth))
    ws.set_setting("label", f"Synthetic: {n:,} images")
    timings["store_items_s"] = time.perf_counter() - started
    log(f"  items stored in {timings['store_items_s']:.1f} s")

    item_ids = ws.ok_item_ids()                        # path order = row order here
    key = f"synthetic|n={n}|d={d}|items={ws.items_digest()}"
    pipeline._save_embedding(ws, key, X, _frame(item_ids), "synthetic 512-D", {"n": n},
                             spec={"name": "synthetic"})
    emb = pipeline.current_embedding(ws)
    assert emb is not None, "the synthetic embeddings did not register"

    started = time.perf_counter()
    g = graph(X, cluster, latent, GRAPH_K)
    ws.save_embeddings(f"{key}|knn={GRAPH_K}|indices", g.indices)
    ws.save_embeddings(f"{key}|knn={GRAPH_K}|distances", g.distances)
    timings["graph_s"] = time.perf_counter() - started
    log(f"  graph in {timings['graph_s']:.1f} s")

    started = time.perf_counter()
    out = pipeline.run_labeling(ws, emb, KIntent.parse("auto"), graph=g)
    timings["labeling_s"] = time.perf_counter() - started
    log(f"  HDL + kNN-DV in {timings['labeling_s']:.1f} s (k = {out.k})")
    if with_map:
        from hdl_core.workspace import maps
        started = time.perf_counter()
        maps.preview_map(ws, emb)
        maps.compute_map(ws, emb, g)
        timings["map_s"] = time.perf_counter() - started
        log(f"  map in {timings['map_s']:.1f} s")
    ws.close()
    done.write_text(json.dumps({"n": n, "map": with_map, "timings": timings}))
    return folder


def _frame(item_ids: np.ndarray):
    import pandas as pd
    return pd.DataFrame({"id": item_ids})

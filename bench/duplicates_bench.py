"""Labeling a dataset made of many identical copies (issue 15, finding 16).

768 distinct images (512-D embeddings in 10 classes), each stored many times: more than k
copies of one image have only each other as neighbours, so plain HDL needs one bridge per
such group, and each bridge compares every unlabeled point with every labeled one.

* before: `hdl_label` on every row with the full kNN graph (what `run_labeling` did), at
  sizes it finishes in reasonable time;
* after: `pipeline.run_labeling` on a workspace, which labels each group of identical
  unlabeled rows as one node (`pipeline.duplicate_nodes`), graph build included.

    .venv/bin/python bench/duplicates_bench.py [--quick]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from _common import machine_info, print_table, write_json
from hdl_core import build_knn_graph, hdl_label
from hdl_core.auto_k import KIntent
from hdl_core.workspace import pipeline
from hdl_core.workspace.store import Workspace

DISTINCT, CLASSES, DIM, K = 768, 10, 512, 10


def copies_of_distinct_images(n: int, seed: int = 0):
    """(X, y): n rows cycling through DISTINCT unit vectors; seeds on one copy of 3 images per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, DIM))
    image_class = rng.integers(0, CLASSES, DISTINCT)
    vectors = centres[image_class] + 0.8 * rng.normal(size=(DISTINCT, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    image = np.arange(n) % DISTINCT
    y = np.full(n, -1, np.int64)
    for c in range(CLASSES):
        for v in np.flatnonzero(image_class == c)[:3]:
            y[v] = c                                # row v is the first copy of image v
    return vectors[image].astype(np.float32), y


def before(n: int) -> dict:
    X, y = copies_of_distinct_images(n)
    started = time.perf_counter()
    graph = build_knn_graph(X, K, random_state=0)
    built = time.perf_counter() - started
    result = hdl_label(X, y, k=K, graph=graph)
    return {"n": n, "graph_s": built, "label_s": time.perf_counter() - started - built,
            "bridges": int(result.fallback.sum()), "rounds": result.n_rounds}


def after(n: int) -> dict:
    X, y = copies_of_distinct_images(n)
    classes = [f"c{c}" for c in range(CLASSES)]
    paths = [f"img/{i:07d}.png" for i in range(n)]
    items = [SimpleNamespace(path=p, content_hash=f"{i % DISTINCT:064x}", size=1,
                             seed_label=None if y[i] < 0 else classes[y[i]], seed_source="csv")
             for i, p in enumerate(paths)]
    with tempfile.TemporaryDirectory() as folder:
        ws = Workspace(Path(folder) / "ws")
        ws.set_dataset(SimpleNamespace(root=folder, items=items, skipped=[], truth=None))
        embedding = pipeline.import_embeddings(ws, paths, X, label="bench")
        started = time.perf_counter()
        run = pipeline.run_labeling(ws, embedding, KIntent.parse(K), with_baseline=False)
        seconds = time.perf_counter() - started
        folded = ws.load_run(run.hdl_id).params.get("collapsed_duplicates", 0)
        ws.close()
    return {"n": n, "label_s": seconds, "bridges": int(run.result.fallback.sum()),
            "rounds": run.result.n_rounds, "collapsed_rows": folded,
            "every_row_labeled": bool((run.result.labels >= 0).all())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    before_sizes = [2_000, 5_000] if args.quick else [2_000, 5_000, 10_000]
    after_sizes = [10_000] if args.quick else [10_000, 100_000]
    old = [before(n) for n in before_sizes]
    print_table(["n", "graph (s)", "hdl_label (s)", "bridges", "rounds"],
                [[r["n"], r["graph_s"], r["label_s"], r["bridges"], r["rounds"]] for r in old],
                title=f"before: hdl_label on every row ({DISTINCT} distinct images, k = {K})")
    new = [after(n) for n in after_sizes]
    print_table(["n", "run_labeling (s)", "bridges", "rounds", "rows folded", "all labeled"],
                [[r["n"], r["label_s"], r["bridges"], r["rounds"], r["collapsed_rows"],
                  r["every_row_labeled"]] for r in new],
                title="after: run_labeling, identical rows labeled as one (graph build included)")
    write_json("duplicates", {"machine": machine_info("numpy", "numba"), "distinct": DISTINCT,
                              "dim": DIM, "k": K, "before": old, "after": new})


if __name__ == "__main__":
    main()

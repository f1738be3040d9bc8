"""Label page benchmark: first render and one round-slider move, at 2k and 20k points.

Builds a synthetic workspace per size (no image files: items, seeds, truth and embeddings
go straight into the store; thumbnails fall back to grey tiles), runs HDL once, and saves
the PCA projection as the workspace's map so no UMAP job runs while timing (UMAP and PCA
maps cost the page the same). Then it measures:

* ``first_render`` — AppTest: switching to the Label page in a fresh session, cold page
  caches (loading the runs, aligning truth, precomputing the replay).
* ``move_full`` — AppTest: one round-slider move. AppTest reruns the whole page for a widget
  change, so this is the upper bound (sidebar, embedding cache copies included).
* ``move_fragment`` — the work a slider move does in the browser app, where only the replay
  fragment reruns: the map's layers and figure, the two side charts, the round explanation,
  and what ``st.plotly_chart`` does with each figure (plotly validation + JSON).

Run ``.venv/bin/python bench/page_bench.py [--quick]`` from the repository root; writes
``bench/results/page.json``. Target: a move at 20k points ≤ 300 ms.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, clustered_gaussian, machine_info, print_table, verdict, write_json

TARGET_MOVE_S = 0.300
N_CLASSES = 10
DIM = 512                 # CLIP ViT-B-32's width: the embedding the page copies from its cache
SEED_FRACTION = 0.01
K = 10


def make_workspace(n: int, base: Path):
    """A workspace of `n` synthetic items (1% seeds, known truth), embedded and labeled once."""
    from hdl_core.auto_k import KIntent
    from hdl_core.workspace import pipeline
    from hdl_core.data import Dataset, Item
    from hdl_core.views.projection import pca_map
    from hdl_core.workspace.store import Workspace

    X, cluster = clustered_gaussian(n, DIM, 2 * N_CLASSES, spread=0.9, seed=0)
    truth = cluster % N_CLASSES
    rng = np.random.default_rng(0)
    seeds = set(rng.choice(n, max(N_CLASSES * 3, int(SEED_FRACTION * n)), replace=False).tolist())
    for c in range(N_CLASSES):                   # every class gets a seed
        seeds.add(int(np.flatnonzero(truth == c)[0]))
    paths, items = [], []
    for i in range(n):
        path = f"class-{truth[i]}/img_{i:06d}.png" if i in seeds else f"unlabeled/img_{i:06d}.png"
        paths.append(path)
        items.append(Item(path, f"{i:064x}", 100, f"class-{truth[i]}" if i in seeds else None))
    order = np.argsort(paths)
    root = base / "data" / f"synthetic-{n}"
    root.mkdir(parents=True)
    dataset = Dataset(root, [items[i] for i in order],
                      truth={paths[i]: f"class-{truth[i]}" for i in range(n)})
    ws = Workspace(pipeline.workspace_for(root))
    pipeline.import_dataset(ws, dataset)
    emb = pipeline.import_embeddings(ws, paths, X, label="synthetic (512-d)")
    out = pipeline.run_labeling(ws, emb, KIntent.parse(K))
    ws.save_embeddings(f"{emb.key}|umap", pca_map(emb.X))
    ws.set_setting("label", f"synthetic {n}")
    return ws, emb, out


def load_page_module():
    """app_pages/label.py as a module, without running the page (it runs only as __main__)."""
    spec = importlib.util.spec_from_file_location("label_page", ROOT / "app_pages" / "label.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fragment_move(page, view, coords, r: int) -> int:
    """What one slider move costs in the replay fragment; returns the bytes sent for the map."""
    import plotly.io
    import plotly.tools

    from hdl_core.explain import round_view

    sent = 0
    figures = [page.map_figure(view, coords, r), page.progress_figure(view, r)]
    if view.replay.accuracy is not None:
        figures.append(page.accuracy_figure(view, r))
    round_view(view.replay.neighbours, view.replay.result, r)
    for figure in figures:      # as st.plotly_chart does
        checked = plotly.tools.return_figure_from_figure_or_data(figure, validate_figure=True)
        spec = plotly.io.to_json(checked, validate=False)
        sent = sent or len(spec)
    return sent


def measure(n: int, repeats: int) -> dict:
    from streamlit.testing.v1 import AppTest

    import state
    from hdl_core.workspace import pipeline

    started = time.perf_counter()
    ws, emb, out = make_workspace(n, Path(os.environ["HDL_DATA_ROOT"]).parent)
    setup_s = time.perf_counter() - started
    n_rounds = out.result.n_rounds
    rounds = [n_rounds // 2, 0, n_rounds - 1, n_rounds // 3, (2 * n_rounds) // 3][:max(repeats, 3)]

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params[state.DATASET_PARAM] = ws.folder.name
    at.run()
    at.switch_page("app_pages/label.py")
    t0 = time.perf_counter()
    at.run()
    first_render = time.perf_counter() - t0
    assert not at.exception, at.exception
    full_moves = []
    for r in rounds:
        t0 = time.perf_counter()
        at.slider(key="label_round").set_value(int(r)).run()
        full_moves.append(time.perf_counter() - t0)
        assert not at.exception, at.exception

    page = load_page_module()
    graph = pipeline.neighbour_graph(ws, emb, K)
    t0 = time.perf_counter()
    view = page.prepare(ws, out.hdl_id, out.get("knn_dv"), graph.indices)
    prepare_s = time.perf_counter() - t0
    coords = state._stored_map(str(ws.folder), f"{emb.key}|umap")
    fragment_move(page, view, coords, rounds[0])            # warm-up (plotly imports)
    fragment_moves, sent = [], 0
    for r in rounds:
        t0 = time.perf_counter()
        sent = fragment_move(page, view, coords, int(r))
        fragment_moves.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    page.map_figure(view, coords, rounds[0])
    figure_only = time.perf_counter() - t0
    return {
        "n": n, "rounds": n_rounds, "k": K, "dim": DIM, "setup_s": setup_s,
        "first_render_s": first_render,
        "move_full_s": statistics.median(full_moves), "move_full_all_s": full_moves,
        "move_fragment_s": statistics.median(fragment_moves), "move_fragment_all_s": fragment_moves,
        "map_figure_only_s": figure_only, "prepare_s": prepare_s, "map_json_bytes": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k points only, 3 moves")
    args = parser.parse_args()
    sizes = [2_000] if args.quick else [2_000, 20_000]
    base = Path(tempfile.mkdtemp(prefix="page-bench-"))
    os.environ["HDL_DATA_ROOT"] = str(base / "data")
    rows, results = [], []
    for n in sizes:
        os.environ["HDL_WORKSPACE_ROOT"] = str(base / f"workspaces-{n}")
        result = measure(n, 3 if args.quick else 5)
        results.append(result)
        rows.append([n, result["rounds"], result["first_render_s"] * 1000,
                     result["move_fragment_s"] * 1000, result["move_full_s"] * 1000,
                     result["map_figure_only_s"] * 1000, result["map_json_bytes"] / 2**20])
    print_table(["points", "rounds", "first render ms", "move (fragment) ms", "move (full page) ms",
                 "map figure ms", "map JSON MiB"], rows, title="Label page")
    big = results[-1]
    met = big["move_fragment_s"] <= TARGET_MOVE_S
    print(f"\nslider move at {big['n']} points: {big['move_fragment_s'] * 1000:.0f} ms in the "
          f"fragment (target ≤ {TARGET_MOVE_S * 1000:.0f} ms): {verdict(met)}")
    write_json("page", {
        "what": "Label page: first render and one round-slider move (AppTest and the fragment's work)",
        "target_move_s": TARGET_MOVE_S, "target_met": met, "results": results,
        "notes": ["move_fragment_s is what a slider move costs in the app (only the replay "
                  "fragment reruns); move_full_s is AppTest's full-page rerun, an upper bound",
                  "synthetic 512-d Gaussian clusters, 1% seeds, k=10; the PCA map is stored as "
                  "the workspace map so no UMAP job competes for the CPU while timing"],
        "machine": machine_info("streamlit", "plotly"),
    })


if __name__ == "__main__":
    sys.exit(main())

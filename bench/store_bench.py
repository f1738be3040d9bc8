"""Workspace store: save and load a labeling run, read current labels, write corrections, at 2k and 20k items.

    .venv/bin/python bench/store_bench.py [--quick]
"""
from __future__ import annotations

import argparse
import tempfile
from types import SimpleNamespace

import numpy as np

from _common import machine_info, print_table, time_call, write_json
from hdl_core.workspace.store import Workspace


def _dataset(n: int):
    items = [SimpleNamespace(path=f"unlabeled/img_{i:06d}.png", content_hash=f"{i:064x}", size=100,
                             seed_label=None) for i in range(n)]
    for i in range(0, n, 100):
        items[i].path = f"c{i % 3}/img_{i:06d}.png"
        items[i].seed_label = f"c{i % 3}"
    return SimpleNamespace(root="/tmp/none", items=sorted(items, key=lambda it: it.path),
                           skipped=[], truth=None)


def _result(n: int):
    rng = np.random.default_rng(0)
    return SimpleNamespace(labels=rng.integers(0, 3, n), step=np.arange(n), round=np.arange(n) // 50,
                           confidence=rng.random(n), n_voters=np.full(n, 5), fallback=np.zeros(n, bool),
                           source=np.full(n, -1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows, records = [], []
    for n in ([2_000] if args.quick else [2_000, 20_000]):
        with tempfile.TemporaryDirectory() as folder, Workspace(folder) as ws:
            ws.set_dataset(_dataset(n))
            ids = ws.ok_items()["id"].to_numpy()
            result = _result(n)
            save = lambda: ws.save_run(method="hdl", k=10, params={}, result=result,
                                       classes=["c0", "c1", "c2"], item_ids=ids)
            t_save, _, run_id = time_call(save, repeats=3)
            t_load, _, _ = time_call(lambda: ws.load_run(run_id), repeats=3)
            t_current, _, _ = time_call(ws.current_labels, repeats=3)
            t_bulk, _, _ = time_call(lambda: ws.add_correction(ids[:500].tolist(), "c1", source="bulk"),
                                  repeats=3)
            t_one, _, _ = time_call(lambda: ws.add_correction([int(ids[1])], "c2"), repeats=5)
            t_undo, _, _ = time_call(ws.undo_last_correction, repeats=3)
        rows.append([n, f"{t_save * 1e3:.0f}", f"{t_load * 1e3:.0f}", f"{t_current * 1e3:.0f}",
                     f"{t_bulk * 1e3:.1f}", f"{t_one * 1e3:.1f}", f"{t_undo * 1e3:.1f}"])
        records.append({"n": n, "save_run_s": t_save, "load_run_s": t_load, "current_labels_s": t_current,
                        "bulk_correction_500_s": t_bulk, "single_correction_s": t_one, "undo_s": t_undo})
    print_table(["items", "save run ms", "load run ms", "current_labels ms", "500-item correction ms",
                 "1 correction ms", "undo ms"], rows, title="Workspace store (SQLite WAL, synchronous=FULL)")
    write_json("store", {"machine": machine_info("numpy", "pandas"), "results": records})


if __name__ == "__main__":
    main()

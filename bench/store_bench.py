"""Workspace store: save and load a labeling run, read current labels, write corrections, at
2k, 20k, 100k and 1M items.

    .venv/bin/python bench/store_bench.py [--quick] [--sizes 2000,20000,100000,1000000]

"current labels" is what the pages read (`Workspace.current_label_arrays`: one entry per
item as arrays); "label dict" is `Workspace.current_labels` (a Python dict of every item,
what the CLI and the tests read). "1 correction" and "undo" are one image each, with the
run of every item in the store, as a reviewer makes them.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from types import SimpleNamespace

import numpy as np

from _common import PeakRSS, machine_info, mib, print_table, time_call, write_json
from hdl_core.workspace.store import Workspace


def _dataset(n: int):
    items = [SimpleNamespace(path=f"unlabeled/img_{i:07d}.png", content_hash=f"{i:064x}", size=100,
                             seed_label=None) for i in range(n)]
    for i in range(0, n, 100):
        items[i].path = f"c{i % 3}/img_{i:07d}.png"
        items[i].seed_label = f"c{i % 3}"
    return SimpleNamespace(root="/tmp/none", items=sorted(items, key=lambda it: it.path),
                           skipped=[], truth=None)


def _result(n: int):
    rng = np.random.default_rng(0)
    return SimpleNamespace(labels=rng.integers(0, 3, n), step=np.arange(n), round=np.arange(n) // 50,
                           confidence=rng.random(n), n_voters=np.full(n, 5), fallback=np.zeros(n, bool),
                           source=np.full(n, -1), k=10)


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory() as folder, Workspace(folder) as ws:
        started = time.perf_counter()
        ws.set_dataset(_dataset(n))
        t_dataset = time.perf_counter() - started
        started = time.perf_counter()
        ws.set_dataset(_dataset(n))
        t_rescan = time.perf_counter() - started
        ids = ws.ok_item_ids()
        result = _result(n)
        save = lambda: ws.save_run(method="hdl", params={}, result=result,
                                   classes=["c0", "c1", "c2"], item_ids=ids)
        repeats = 3 if n <= 100_000 else 2
        t_save, _, run_id = time_call(save, repeats=repeats)
        from hdl_core.workspace import _tables
        _tables._read_run_file.cache_clear()          # a first read, as a fresh server does
        t_load, _, _ = time_call(lambda: ws.load_run(run_id), repeats=repeats)
        t_arrays, _, _ = time_call(ws.current_label_arrays, repeats=repeats)
        t_dict, _, _ = time_call(ws.current_labels, repeats=1 if n > 100_000 else repeats)
        t_bulk, _, _ = time_call(lambda: ws.add_correction(ids[:500].tolist(), "c1", source="bulk"),
                                 repeats=3)
        targets = iter(ids[1000:1100].tolist())
        t_one, _, _ = time_call(lambda: ws.add_correction([next(targets)], "c2"), repeats=5)
        t_undo, _, _ = time_call(ws.undo_last_correction, repeats=3)
        with PeakRSS() as memory:
            ws.current_label_arrays()
            ws.load_run(run_id)
    return {"n": n, "set_dataset_s": t_dataset, "rescan_unchanged_s": t_rescan,
            "save_run_s": t_save, "load_run_s": t_load, "current_labels_s": t_arrays,
            "label_dict_s": t_dict, "bulk_correction_500_s": t_bulk, "single_correction_s": t_one,
            "undo_s": t_undo, "load_and_labels_peak_rss_mib": mib(memory.peak_delta)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="2000,20000,100000,1000000")
    args = parser.parse_args()
    sizes = [2_000] if args.quick else [int(v) for v in args.sizes.split(",")]
    records = [measure(n) for n in sizes]
    ms = lambda s: f"{s * 1e3:,.0f}" if s >= 0.01 else f"{s * 1e3:.1f}"
    rows = [[f"{r['n']:,}", ms(r["save_run_s"]), ms(r["load_run_s"]), ms(r["current_labels_s"]),
             ms(r["label_dict_s"]), ms(r["bulk_correction_500_s"]), ms(r["single_correction_s"]),
             ms(r["undo_s"]), f"{r['set_dataset_s']:.2f}", f"{r['rescan_unchanged_s']:.2f}"]
            for r in records]
    print_table(["items", "save run ms", "load run ms", "current labels ms", "label dict ms",
                 "500-item correction ms", "1 correction ms", "undo ms", "set_dataset s",
                 "same scan again s"], rows,
                title="Workspace store (SQLite WAL, synchronous=FULL; runs as Arrow files)")
    write_json("store", {"machine": machine_info("numpy", "pandas", "pyarrow"), "results": records})


if __name__ == "__main__":
    main()

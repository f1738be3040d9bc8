"""Memory and time of a re-run's stages at 1M images, in one process, as the app's job runs them.

On the synthetic workspace of bench/_large.py (built on first use, kept under
/tmp/hdl-large): the labeling (`pipeline.run_labeling`, the default variant, kNN-DV left to
its own job as the app does beyond 50,000 images), then the new run's review queue
(`suggest.review_queue_with_reasons`). For each stage: seconds, and the peaks of the
process's private memory (``RssAnon``) above its level when the stage started, polled
every 20 ms. The queue's order and shares are hashed, so two code versions can be compared
for the same result. Repeats alternate nothing: run it once per code version, on an idle
machine.

    .venv/bin/python bench/rerun_memory_bench.py [--n 1000000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from pathlib import Path

import numpy as np

from _browser import MemoryPeaks, memory_mib
from _common import machine_info, print_table, write_json
from _large import build_workspace

BASE = Path("/tmp/hdl-large")


def _stage(fn):
    """(result, seconds, peak private MiB above the level at the start)."""
    pid = os.getpid()
    start = memory_mib(pid)["anon_mib"]
    with MemoryPeaks(pid) as peaks:
        began = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - began
    return out, seconds, peaks.peaks["anon_mib"] - start


def _digest(queue) -> str:
    h = hashlib.sha1()
    for a in (queue.order, queue.doubt, queue.own_share, queue.alternative,
              queue.alternative_share):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from hdl_core import suggest
    from hdl_core.workspace import pipeline
    from hdl_core.workspace.store import Workspace

    info = machine_info("numpy", "scipy", "numba")
    ws = Workspace(build_workspace(args.n, BASE))
    emb = pipeline.current_embedding(ws, mmap=True)
    graph = pipeline.neighbour_graph(ws, emb, 10)
    emb.row_numbers()               # hashed on the first labeling only, as in the app
    runs = []
    for _ in range(args.repeats):
        out, label_s, label_mib = _stage(lambda: pipeline.run_labeling(
            ws, emb, pipeline.k_intent(ws), graph=graph, with_baseline=False))
        result = ws.load_run(out.hdl_id).result
        queue, queue_s, queue_mib = _stage(lambda: suggest.review_queue_with_reasons(
            emb.X, result.seed_labels, result, graph=graph))
        runs.append({"run_id": out.hdl_id, "labeling_s": label_s, "labeling_peak_mib": label_mib,
                     "queue_s": queue_s, "queue_peak_mib": queue_mib,
                     "queue_sha1": _digest(queue)})
        print(f"  run {out.hdl_id}: labeling {label_s:.1f} s (+{label_mib:.0f} MiB), "
              f"queue {queue_s:.1f} s (+{queue_mib:.0f} MiB), queue {runs[-1]['queue_sha1']}")
        del queue, result
    median = {key: statistics.median(r[key] for r in runs)
              for key in ("labeling_s", "labeling_peak_mib", "queue_s", "queue_peak_mib")}
    print_table(["images", "labeling s", "labeling peak MiB", "queue s", "queue peak MiB"],
                [[f"{args.n:,}", median["labeling_s"], median["labeling_peak_mib"],
                  median["queue_s"], median["queue_peak_mib"]]],
                title="A re-run's stages, median (private memory above the stage's start)")
    info["load_average_at_end"] = list(os.getloadavg())
    write_json("rerun_memory_bench", {"machine": info, "n": args.n, "runs": runs,
                                      "median": median})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`hdl-studio label --embeddings DIR --graph GRAPHDIR` at a million 512-D images: the
process's peak memory and time, first run and later runs.

The embeddings folder is what ``embed --out`` writes (Parquet parts of 100,000 rows, their
paths not in path order), 1 % of the images under class folders (the seeds, 10 classes),
the rest under ``unlabeled/``; the graph folder holds k = 10 random neighbour lists made
for it (every point reachable: no bridge), with the meta ``hdl-studio graph`` writes. The
command runs in a fresh process each time, with ``--no-baseline`` and a Parquet output;
its peak resident memory (``ru_maxrss``: private memory and the mapped file pages it
touched), the peak of its private part (``RssAnon``, polled every 10 ms) and wall time are
recorded. The first run on a folder copies its vectors to the
folder's memory-mapped ``_vectors-<id>.npy`` (`hdl_core.embed.map_embeddings_dir`); the
later runs map it.

    .venv/bin/python bench/files_label_bench.py [--n 1000000] [--runs 3] [--dim 512]
        [--source DIR]   (the hdl_core to run: another checkout, to compare)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, machine_info, print_table, write_json

D, K, CLASSES, PART_ROWS = 512, 10, 10, 100_000


def make_folders(base: Path, n: int, d: int = D) -> tuple[Path, Path]:
    """An embeddings folder of n random unit-ish rows and a random 10-NN graph folder."""
    from hdl_core import KnnGraph
    from hdl_core.embed import EmbeddingsDirWriter
    from hdl_core.workspace.files import paths_digest, write_graph_dir

    rng = np.random.default_rng(0)
    seeded = rng.random(n) < 0.01
    names = np.array([f"class{c}/img{i:07d}.png" if s else f"unlabeled/img{i:07d}.png"
                      for i, (s, c) in enumerate(zip(seeded, rng.integers(0, CLASSES, n)))])
    writer = EmbeddingsDirWriter(base / "emb")
    order = rng.permutation(n)                  # parts arrive out of path order, as from Ray
    for start in range(0, n, PART_ROWS):
        rows = order[start:start + PART_ROWS]
        writer.write(names[rows].tolist(),
                     rng.standard_normal((rows.size, d), dtype=np.float32))
    meta_file = writer.close({"encoder": "synthetic", "cache_key": "synthetic"})
    meta = json.loads(meta_file.read_text())
    sorted_names = np.sort(names)
    indices = rng.integers(0, n - 1, (n, K), dtype=np.int32)
    indices += indices >= np.arange(n, dtype=np.int32)[:, None]     # never a point itself
    write_graph_dir(base / "graph", KnnGraph(indices, np.ones((n, K), np.float32)),
                    {"method": "random", "embeddings": str(base / "emb"),
                     "cache_key": "synthetic", "embeddings_id": meta["embeddings_id"],
                     "paths_digest": paths_digest(sorted_names.tolist())})
    return base / "emb", base / "graph"


def run_label(source: Path, embeddings: Path, graph: Path, out: Path) -> dict:
    """One `label` in a fresh process: its wall time and peak resident memory."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "hdl_core", "label", "--embeddings", str(embeddings),
               "--graph", str(graph), "--no-baseline", "--quiet", "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, *command], env=env, cwd=source,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"label failed ({done.returncode}): {done.stderr[-2000:]}")
    peak_kib, private_kib = map(int, done.stderr.strip().splitlines()[-1].split())
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_kib / 1024, 1),
            "peak_private_mib": round(private_kib / 1024, 1)}


# Runs a command as its only child; prints the child's peak resident memory and the peak of
# its private (anonymous) part, RssAnon polled every 10 ms, both in KiB.
MEASURED = """
import resource, subprocess, sys, time
child = subprocess.Popen(sys.argv[1:])
private = 0
while child.poll() is None:
    try:
        with open(f"/proc/{child.pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    private = max(private, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.01)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, private, file=sys.stderr)
sys.exit(child.returncode)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dim", type=int, default=D, help="vector width (default 512)")
    parser.add_argument("--source", type=Path, default=ROOT,
                        help="the checkout whose hdl_core runs (default: this one)")
    parser.add_argument("--name", default="files_label_bench")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="files-label-") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        embeddings, graph = make_folders(base, args.n, args.dim)
        made = time.perf_counter() - started
        size = sum(p.stat().st_size for p in embeddings.glob("part-*.parquet"))
        runs = []
        for attempt in range(args.runs):
            runs.append(run_label(args.source, embeddings, graph, base / f"out{attempt}.parquet"))
            runs[-1]["mapped_copy"] = bool(list(embeddings.glob("_vectors-*.npy")))
    rows = [[i + 1, f"{r['seconds']:.1f}", f"{r['peak_rss_mib']:,.0f}",
             f"{r['peak_private_mib']:,.0f}", r["mapped_copy"]] for i, r in enumerate(runs)]
    print_table(["run", "seconds", "peak RSS MiB", "peak private MiB", "mapped copy after"],
                rows,
                title=f"label --embeddings --graph --no-baseline, {args.n:,} x {args.dim}, "
                      f"source {args.source}")
    write_json(args.name, {"benchmark": "files_label_bench", "machine": machine_info(),
                           "n": args.n, "d": args.dim, "k": K, "parts_bytes": size,
                           "source": str(args.source), "made_in_s": round(made, 1),
                           "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

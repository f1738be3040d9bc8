"""Cold command-line runs: a fresh `python -m hdl_core` process per run, as a user or a
batch job starts one, at 50k x 512.

What a short-lived process pays beyond the work: imports, numba compilation (hdl_core's
kernels are cached on disk, `cache=True`; pynndescent compiles part of its own every
process) and, before this bench's issue, torch's import. Each command runs twice in a
row: the first run may fill numba's disk cache, the second shows what every later run
pays. This is the measurement behind ``graph.build_knn_graph(method="auto")`` choosing
faiss IVF over pynndescent beyond `EXACT_MAX_POINTS`.

    .venv/bin/python bench/cold_bench.py [--quick]   (--quick: 10k points)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, clustered_embeddings, machine_info, print_table, write_json

from hdl_core.embed import save_embeddings_dir  # noqa: E402

D = 512
METHODS = ["exact", "approx", "ivf"]


def make_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    X, cluster = clustered_embeddings(n, D, 100, seed=5)
    classes = [f"c{c % 10}" for c in cluster]
    paths = [f"{classes[i]}/{i:07d}.png" if i % 100 == 0 else f"unlabeled/{i:07d}.png"
             for i in range(n)]
    emb = folder / "emb"
    save_embeddings_dir(emb, paths, X, {"engine": "bench", "cache_key": "bench"})
    return emb, folder


def run(argv: list[str]) -> float:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "hdl_core", *argv, "--quiet"], check=True, env=env,
                   cwd=ROOT)
    return time.perf_counter() - start


def torch_imported(argv: list[str]) -> bool:
    code = ("import sys, runpy; sys.argv = ['hdl_core'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('hdl_core', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code, *argv, "--quiet"], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return out.stdout.strip().endswith("TORCH") and "NO-TORCH" not in out.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else 50_000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        emb, folder = make_inputs(Path(tmp), n)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import hdl_core"], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        import_s = time.perf_counter() - start
        for method in METHODS:
            graph = folder / f"g-{method}"
            first = run(["graph", str(emb), "--k", "20", "--out", str(graph), "--method", method])
            second = run(["graph", str(emb), "--k", "20", "--out", str(graph), "--method", method])
            rows.append({"command": f"graph --method {method}", "first_s": first,
                         "second_s": second})
            print(f"  graph {method}: {first:.1f} s, then {second:.1f} s", flush=True)
        label_argv = ["label", "--embeddings", str(emb), "--graph", str(folder / "g-ivf"),
                      "--out", str(folder / "labels.parquet"), "--no-baseline"]
        first, second = run(label_argv), run(label_argv)
        rows.append({"command": "label --embeddings DIR --graph G --no-baseline",
                     "first_s": first, "second_s": second})
        print(f"  label: {first:.1f} s, then {second:.1f} s", flush=True)
        torch_in_label = torch_imported(label_argv)
    print_table(["command (fresh process)", "first run (s)", "second run (s)"],
                [[r["command"], r["first_s"], r["second_s"]] for r in rows],
                title=f"cold CLI runs at {n:,} x {D} (python -c 'import hdl_core': {import_s:.1f} s)")
    print(f"torch imported by the label run: {torch_in_label}")
    write_json("cold_bench" + ("_quick" if args.quick else ""), {
        "benchmark": "cold_bench", "quick": args.quick, "n": n, "d": D,
        "machine": machine_info("pynndescent", "faiss"), "import_hdl_core_s": import_s,
        "runs": rows, "torch_imported_by_label": torch_in_label,
        "setup": "each command in a fresh `python -m hdl_core` process, twice in a row; "
                 "embeddings folder of clustered 512-D rows (100 clusters), 1 % seeds"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

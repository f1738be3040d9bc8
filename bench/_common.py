"""Shared helpers for the benchmark scripts: timing, memory, tables, JSON, synthetic data.

Every script in bench/ runs as ``.venv/bin/python bench/<name>.py [--quick]`` from the
repository root, prints a table and writes ``bench/results/<name>.json`` with the machine it
ran on (`machine_info`).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:          # `python bench/x.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

# Written into every JSON: the numbers below were taken on a shared machine.
SHARED_CAVEAT = ("2 CPU cores shared with other jobs while measuring; timings are medians "
                 "of repeats but can still carry noise from that other load")


# ----------------------------------------------------------------------------- machine

def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# Taken when a script imports this module, i.e. when it starts.
_STARTED_UTC = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
_LOAD_AT_START = _loadavg()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:
        return None
    return getattr(mod, "__version__", "unknown")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(*modules: str) -> dict:
    """CPU, memory, Python and library versions, start date and load average, for the JSON.

    The load average (1, 5, 15 minutes) is taken when the script started; `write_json`
    adds the one at the end.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        mem_gib = None
    versions = {m: _version(m) for m in ("numpy", "scipy", "numba", "torch", *modules)}
    return {
        "started_utc": _STARTED_UTC,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_at_start": _LOAD_AT_START,
        "caveat": SHARED_CAVEAT,
    }


# ----------------------------------------------------------------------------- timing

def time_call(fn: Callable, *, repeats: int = 3, warmup: int = 0):
    """Run `fn` warmup + repeats times; return (median seconds, all timed seconds, last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


# ----------------------------------------------------------------------------- memory

def tracemalloc_peak(fn: Callable):
    """(peak bytes traced while `fn` ran, result). numpy reports its buffers to tracemalloc."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory above the starting level while the block runs (polled every 10 ms).

    Catches memory that tracemalloc does not see (numba's and torch's allocators).
    """

    def __init__(self, interval: float = 0.01, read=None):
        self.interval = interval
        self.read = read or _rss_bytes        # what is measured: bytes now
        self.peak_delta = 0

    def __enter__(self):
        self.base = self.read()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())
        self.peak_delta = self.peak - self.base
        return False


def mib(nbytes: float) -> float:
    return round(nbytes / 2**20, 1)


# ----------------------------------------------------------------------------- output

def print_table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    """Print (and return) a GitHub-markdown table."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    text = "\n".join(lines)
    if title:
        print(f"\n{title}")
    print(text, flush=True)
    return text


def _cell(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def write_json(name: str, payload: dict, indent: int | None = 2) -> Path:
    """Write ``bench/results/<name>.json`` (numpy scalars and arrays converted; `indent` None:
    one line, for large results)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    if isinstance(payload.get("machine"), dict):
        payload["machine"]["load_average_at_end"] = _loadavg()
    path.write_text(json.dumps(payload, indent=indent, default=_jsonable) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}", flush=True)
    return path


def _jsonable(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


# ----------------------------------------------------------------------------- data

def clustered_gaussian(n: int, d: int, n_clusters: int, *, spread: float = 0.35,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian clusters in d dimensions, float32, with their cluster ids.

    Centres are unit vectors (random directions); each point is its centre plus noise of
    total norm about `spread`, so cosine neighbourhoods follow the clusters with some
    overlap, as embeddings of a labeled image set do.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(0, n_clusters, n)
    X = rng.standard_normal((n, d), dtype=np.float32)
    X *= np.float32(spread / np.sqrt(d))
    X += centres[cluster]
    return X, cluster


def clustered_embeddings(n: int, d: int, n_clusters: int, *, intrinsic_dim: int = 16,
                         spread: float = 0.5, noise: float = 0.05,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embedding-like clusters: each cluster varies along its own `intrinsic_dim` directions.

    A point is its cluster's unit centre, plus a Gaussian of total norm about `spread` in a
    random `intrinsic_dim`-dimensional subspace of that cluster, plus isotropic noise of
    total norm about `noise`. Image embeddings have a low intrinsic dimension like this;
    isotropic 512-D Gaussians would make every point of a cluster nearly equidistant from
    every other, which no real embedding looks like and no approximate search can handle.
    Generated in chunks so that 200k x 512 needs no temporary beyond the output.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((n_clusters, intrinsic_dim, d)).astype(np.float32)
    bases *= np.float32(spread / np.sqrt(intrinsic_dim * d))
    cluster = rng.integers(0, n_clusters, n)
    X = np.empty((n, d), np.float32)
    chunk = 8192
    for start in range(0, n, chunk):
        c = cluster[start:start + chunk]
        z = rng.standard_normal((c.size, intrinsic_dim), dtype=np.float32)
        block = np.einsum("ij,ijd->id", z, bases[c], optimize=False)
        block += centres[c]
        block += rng.standard_normal((c.size, d), dtype=np.float32) * np.float32(noise / np.sqrt(d))
        X[start:start + c.size] = block
    return X, cluster


def clustered_sphere(n: int, n_clusters: int, *, spread: float = 0.25,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters on the unit sphere in 3-D (unit rows, float32) and their ids.

    On unit vectors the Euclidean order equals the cosine order, so a k-d tree gives the
    exact cosine kNN graph of millions of these points in seconds.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, 3))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(0, n_clusters, n)
    X = centres[cluster] + rng.standard_normal((n, 3)) * spread
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), cluster


def sphere_knn(X: np.ndarray, k: int, *, workers: int = -1):
    """Exact cosine kNN graph of unit 3-D rows with a k-d tree (self dropped by index)."""
    from scipy.spatial import cKDTree

    from hdl_core.graph import KnnGraph, _drop_self

    tree = cKDTree(X)
    dist, idx = tree.query(X, k=k + 1, workers=workers)
    # chord length c -> cosine distance c^2 / 2 on unit vectors
    indices, distances = _drop_self(idx.astype(np.int64), (dist ** 2 / 2).astype(np.float32), k)
    return KnnGraph(indices, distances)


def seed_labels(cluster: np.ndarray, n_classes: int, fraction: float, *,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Classes from clusters (cluster id mod n_classes) and a label vector with `fraction` seeds.

    Every class gets at least one seed. Returns (truth, y) with y = -1 for unlabeled.
    """
    rng = np.random.default_rng(seed)
    truth = (cluster % n_classes).astype(np.int64)
    n = truth.size
    y = np.full(n, -1, np.int64)
    chosen = rng.choice(n, size=max(1, int(round(fraction * n))), replace=False)
    y[chosen] = truth[chosen]
    for c in range(n_classes):
        if not (y == c).any():
            members = np.flatnonzero(truth == c)
            pick = rng.choice(members)
            y[pick] = c
    return truth, y

"""Labeling from files alone: an embeddings folder, a kNN graph folder and a seed CSV in,
a labels file out; no image folder, no workspace.

The folders are what ``hdl-studio embed --out DIR`` and ``hdl-studio graph`` write:

* embeddings: ``part-*.parquet`` + ``_meta.json`` (`hdl_core.embed.EmbeddingsDirWriter`),
  rows taken in path order, as the workspace orders items;
* graph: ``indices.npy`` (int32), ``distances.npy`` (float16) and ``_meta.json`` (k,
  metric, method, and a digest of the embeddings' paths so that a graph is never used
  with other embeddings). Both arrays are memory-mapped when read.

Seeds follow the folder rules (`hdl_core.data.scan`): an image under a class folder is a
seed of that class (``unlabeled/`` and the top level are not), and a ``path,label`` CSV
overrides them. `label_from_files` then gives the same labels as ``hdl-studio label
IMAGES`` gives for the folder the embeddings came from.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .._files import atomic_write
from ..config import DEFAULT_BRIDGE, DEFAULT_VARIANT, GRAPH_K

GRAPH_META = "_meta.json"
GRAPH_FORMAT = "hdl-studio knn graph 1"


# --------------------------------------------------------------------------- graph folders

def paths_digest(paths) -> str:
    """sha1 of a pyarrow string array's paths (its offsets and bytes), 16 hex digits."""
    import pyarrow as pa
    paths = pa.array(paths, pa.string()) if not isinstance(paths, pa.Array) else paths
    paths = paths.cast(pa.large_string()) if paths.type != pa.large_string() else paths
    digest = hashlib.sha1()
    lengths = np.diff(np.frombuffer(paths.buffers()[1], np.int64)[paths.offset:
                                                                   paths.offset + len(paths) + 1])
    digest.update(lengths.tobytes())
    start = int(np.frombuffer(paths.buffers()[1], np.int64)[paths.offset])
    digest.update(memoryview(paths.buffers()[2])[start:start + int(lengths.sum())])
    return digest.hexdigest()[:16]


def write_graph_dir(folder: str | Path, graph, meta: dict) -> Path:
    """Write a `KnnGraph` as ``indices.npy`` (int32), ``distances.npy`` (float16) and
    ``_meta.json`` (`meta` plus k, n, metric); returns the folder."""
    folder = Path(folder)
    check_graph_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / GRAPH_META).unlink(missing_ok=True)      # incomplete until written last
    n, k = graph.indices.shape
    indices = graph.indices.astype(np.int32 if n < 2**31 else np.int64, copy=False)
    distances = graph.distances.astype(np.float16)
    for name, array in (("indices.npy", indices), ("distances.npy", distances)):
        atomic_write(folder / name, lambda f, a=array: np.save(f, a, allow_pickle=False))
    info = {"format": GRAPH_FORMAT, **meta, "n": n, "k": k, "metric": graph.metric}
    atomic_write(folder / GRAPH_META,
                 lambda f: f.write(json.dumps(info, indent=1).encode("utf-8")))
    return folder


GRAPH_FILES = ("indices.npy", "distances.npy", GRAPH_META)


def check_graph_folder(folder: str | Path) -> None:
    """Refuse `folder` as a graph's: a graph replaces only an earlier graph, never a file
    or a folder holding anything else (the embeddings themselves, say, whose
    ``_meta.json`` it would overwrite). A folder not there yet is fine."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"--out {folder}: a file of that name exists; give a folder name")
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in GRAPH_FILES)
    meta = folder / GRAPH_META
    if not foreign and meta.is_file():
        try:
            if json.loads(meta.read_text(encoding="utf-8")).get("format") != GRAPH_FORMAT:
                foreign = [GRAPH_META]
        except (ValueError, OSError):
            foreign = [GRAPH_META]
    if foreign:
        raise ValueError(f"--out {folder} holds other files ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); write the graph to an empty "
                         "folder of its own")


def read_graph_dir(folder: str | Path, *, n: int | None = None, digest: str | None = None,
                   cache_key: str | None = None, embeddings_id: str | None = None):
    """The `KnnGraph` in a graph folder (indices memory-mapped) and its meta.

    Raises a ValueError when the folder is incomplete, or was built from other embeddings
    (`n` rows, paths `digest`, the encoder's `cache_key`: the same images embedded again
    by another encoder have the same paths; `embeddings_id`: the embeddings folder written
    again since the graph was built, which changed images embedded by the same encoder
    cannot otherwise show), saying which command rebuilds it. A graph or embeddings folder
    from before a check was recorded is not held to it.
    """
    from ..graph import KnnGraph

    folder = Path(folder)
    meta_file = folder / GRAPH_META
    if not meta_file.is_file():
        raise ValueError(f"--graph {folder}: no {GRAPH_META}; build it with "
                         "`hdl-studio graph EMBEDDINGS --out GRAPHDIR`")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if (n is not None and meta.get("n") != n) or (
            digest is not None and meta.get("paths_digest") not in (None, digest)):
        raise ValueError(f"--graph {folder} was built from other embeddings ({meta.get('n')} "
                         f"points from {meta.get('embeddings', '?')}); rebuild it from these with "
                         "`hdl-studio graph EMBEDDINGS --out GRAPHDIR`")
    if cache_key is not None and meta.get("cache_key") not in (None, cache_key):
        raise ValueError(f"--graph {folder} was built from embeddings by another encoder "
                         f"({meta['cache_key']}) than these ({cache_key}); rebuild it from these "
                         "with `hdl-studio graph EMBEDDINGS --out GRAPHDIR`")
    if embeddings_id is not None and meta.get("embeddings_id") not in (None, embeddings_id):
        built = meta.get("embeddings_written_at")
        raise ValueError(f"--graph {folder} was built from an earlier write of these embeddings"
                         f"{f' (written {built})' if built else ''}: they were embedded again "
                         "since, so its neighbours may be another image's; rebuild it with "
                         "`hdl-studio graph EMBEDDINGS --out GRAPHDIR`")
    indices = np.load(folder / "indices.npy", mmap_mode="r", allow_pickle=False)
    distances = np.load(folder / "distances.npy", mmap_mode="r", allow_pickle=False)
    return KnnGraph(indices, distances, meta.get("metric", "cosine")), meta


# --------------------------------------------------------------------------- seeds

def seeds_of_paths(paths, seeds_csv=None, *, skipped=(), root: str = "the image folder"):
    """Seed labels of `paths` by the folder rules, then the CSV's rows over them.

    Parameters
    ----------
    paths : pyarrow string array (or list of str)
        Relative paths, as the embeddings folder lists them.
    seeds_csv : path, optional
        A ``path,label`` CSV (`hdl_core.data.read_seed_csv` reads it: header, BOM,
        backslashes, blank labels); every path it names must be among `paths` or
        `skipped`.
    skipped : iterable of str
        Paths the embedding run skipped (rows naming them are ignored, as in the app).

    Returns
    -------
    labels : ndarray of object (str or None), one per path
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..data import UNLABELED_FOLDERS
    from ..data.seed_csv import _normalise_csv_path, _read_text, csv_rows, read_seed_csv

    paths = pa.array(paths, pa.string()) if not isinstance(paths, (pa.Array, pa.ChunkedArray)) \
        else paths
    # the layout rule of data.scan._layout_label, over the whole column at once
    parts = pc.split_pattern(paths, "/", max_splits=1)
    first = pc.list_element(parts, 0)
    in_folder = pc.equal(pc.list_value_length(parts), 2)
    unlabeled = pc.is_in(pc.utf8_lower(first), pa.array(sorted(UNLABELED_FOLDERS)))
    layout = pc.if_else(pc.and_(in_folder, pc.invert(unlabeled)), first, None)
    labels = np.asarray(layout.to_numpy(zero_copy_only=False), dtype=object)
    if seeds_csv is None:
        return labels
    # read_seed_csv checks names against the dataset; hand it just the paths the CSV names
    _, text = _read_text(Path(seeds_csv))
    named = {_normalise_csv_path(cell) for row in csv_rows(text) for cell in row}
    named_array = pa.array(sorted(named), pa.string())
    present = pc.is_in(named_array, paths).to_numpy(zero_copy_only=False)
    view = SimpleNamespace(items=[SimpleNamespace(path=p) for p in
                                  np.asarray(named_array.to_pylist(), object)[present]],
                           skipped=[SimpleNamespace(path=p) for p in skipped], root=root)
    from_csv = read_seed_csv(Path(seeds_csv), view)
    if from_csv:
        keys = pa.array(list(from_csv), pa.string())
        where = pc.index_in(keys, paths).to_numpy(zero_copy_only=False)
        labels[where.astype(np.int64)] = np.array(list(from_csv.values()), dtype=object)
    return labels


# --------------------------------------------------------------------------- labeling

@dataclass
class FilesRun:
    """What `label_from_files` did.

    Attributes
    ----------
    table : pyarrow.Table
        ``path, label, source, confidence, step, round``: the columns the folder path
        exports, one row per embedded image, in path order.
    result : hdl_core.hdl.LabelingResult
    classes : list of str
    k : int
    choice : KChoice or None
    baseline_agreement : float or None
        Share of HDL-labeled points where kNN-DV (eq. 1) gives the same class.
    seconds : dict
        Wall time per step.
    graph_k : int or None
        Neighbours per point of the graph given, which bounds an automatic k; None when
        the graph was built here.
    """

    table: object
    result: object
    classes: list
    k: int
    choice: object
    baseline_agreement: float | None
    seconds: dict
    graph_k: int | None = None


def label_from_files(embeddings: str | Path, *, seeds_csv: str | Path | None = None,
                     graph: str | Path | None = None, intent=None,
                     with_baseline: bool = True, method: str = "auto",
                     variant: str = DEFAULT_VARIANT, bridge: str = DEFAULT_BRIDGE,
                     progress=None) -> FilesRun:
    """Label every image of an embeddings folder from the seeds, without the images.

    Parameters
    ----------
    embeddings : path
        An embeddings folder (``embed --out DIR``).
    seeds_csv : path, optional
        ``path,label`` CSV, over the class-folder seeds.
    graph : path, optional
        A graph folder (``hdl-studio graph``) of these embeddings with at least k
        neighbours; built here (`GRAPH_K` neighbours, as the app does) when not given.
    intent : KIntent, optional
        The k; default "auto", which stays within a given graph's neighbours.
    with_baseline : bool, default True
        Also run kNN-DV and report how often it agrees.
    method : str
        Graph method when the graph is built here.
    variant : {"reach", "balanced", "paper"}
        Reach-ordered HDL (`hdl_core.reach_label`, the default), class-balanced HDL
        (`hdl_core.balanced_label`) or the paper's Algorithm 1, as in the app.
    bridge : {"auto", "exact", "approx"}, default "auto"
        How bridges are searched (`hdl_core.hdl.hdl_label`): "auto" searches an inverted
        file when the first bridge would compare more than
        `config.BRIDGE_APPROX_MIN_PAIRS` pairs and faiss is installed;
        ``result.approximate_bridges`` says how many bridges were searched so.
    progress : callable (done, total), optional
        Hears how far the first run on a folder is with copying its vectors to the file
        it memory-maps (`hdl_core.embed.map_embeddings_dir`).

    Returns
    -------
    FilesRun
    """
    import pyarrow as pa

    from ..auto_k import KIntent, resolve_k
    from ..embed import map_embeddings_dir
    from ..graph import check_k, graph_of_prepared_rows, rows_to_read
    from ..balanced import auto_k as balanced_auto_k
    from ..hdl import check_bridge, knn_dv_label
    from ..variants import check_variant, has_own_k, prepared_function
    from .pipeline import PipelineError, require_seeds

    seconds = {}
    started = time.perf_counter()
    paths, X, meta = map_embeddings_dir(embeddings, progress=progress)   # rows read are held
    seconds["read"] = time.perf_counter() - started
    skipped = [entry["path"] for entry in meta.get("skipped", [])]
    names = seeds_of_paths(paths, seeds_csv, skipped=skipped, root=f"the folder {embeddings} "
                           "was embedded from")
    classes = sorted({name for name in names if name is not None})
    index = {name: i for i, name in enumerate(classes)}
    y = np.fromiter((index.get(name, -1) if name is not None else -1 for name in names),
                    np.int64, count=len(names))
    require_seeds(y, classes)
    intent = KIntent.parse("auto") if intent is None else intent
    seed_rows = np.flatnonzero(y >= 0)
    check_variant(variant)
    check_bridge(bridge)
    knn = None
    if graph is not None:       # memory-mapped: its k bounds an automatic choice of k
        started = time.perf_counter()
        knn, _ = read_graph_dir(graph, n=len(y), digest=paths_digest(paths),
                                cache_key=meta.get("cache_key"),
                                embeddings_id=meta.get("embeddings_id"))
        seconds["graph"] = time.perf_counter() - started
    started = time.perf_counter()
    # choose_k sees only labeled rows, as given (it normalises them itself), as in the app;
    # "auto" never asks for more neighbours than a given graph lists
    graph_k = None if knn is None else knn.k
    if intent.auto and has_own_k(variant):
        k, choice = balanced_auto_k(len(y), len(classes)), None
        k = k if graph_k is None else min(k, graph_k)
    elif intent.auto:
        if graph_k is not None:
            intent = replace(intent, k_max=min(intent.k_max, graph_k + 1))
        k, choice = resolve_k(intent, X[seed_rows], y[seed_rows])
    else:
        k, choice = check_k(intent.k, len(y), name="--k"), None
    seconds["choose_k"] = time.perf_counter() - started
    started = time.perf_counter()
    # unit rows scaled when read, as the app labels: HDL reads rows only at a bridge
    rows = rows_to_read(X, "cosine", name=f"embeddings in {embeddings}")
    if knn is not None:
        if knn.k < k:
            raise PipelineError(f"--graph {graph} has {knn.k} neighbours per point but k={k}; "
                                f"rebuild it with --k {max(k, GRAPH_K)}, or give --k "
                                f"{knn.k} or less")
    else:                       # the search reads every row: one normalised copy for it
        rows = np.asarray(rows)
        knn = graph_of_prepared_rows(rows, min(max(k, GRAPH_K), len(y) - 1), method=method,
                                     random_state=0)
    seconds["graph"] = seconds.get("graph", 0.0) + time.perf_counter() - started
    started = time.perf_counter()
    result = prepared_function(variant)(rows, y, k=k, graph=knn, bridge=bridge)
    seconds["hdl"] = time.perf_counter() - started
    agreement = None
    if with_baseline:
        started = time.perf_counter()
        baseline = knn_dv_label(rows, y, k=k)
        voted = result.step >= 0
        agreement = float((baseline.labels[voted] == result.labels[voted]).mean()) \
            if voted.any() else 1.0
        seconds["baseline"] = time.perf_counter() - started
    seed = result.step < 0
    label = pa.DictionaryArray.from_arrays(pa.array(result.labels.astype(np.int32)),
                                           pa.array(classes, pa.string()))
    source = np.where(seed, 0, np.where(result.fallback, 2, 1)).astype(np.int8)
    table = pa.table({
        "path": paths,
        "label": label,
        "source": pa.DictionaryArray.from_arrays(pa.array(source),
                                                 pa.array(["seed", "hdl", "fallback"])),
        "confidence": np.where(seed, 1.0, result.confidence),
        "step": result.step, "round": result.round})
    return FilesRun(table, result, classes, k, choice, agreement, seconds, graph_k)


def write_labels(table, out: str | Path, fmt: str) -> None:
    """Write a `FilesRun.table` as csv (the folder path's CSV, byte for byte), json or
    parquet."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq
        atomic_write(out, lambda f: pq.write_table(table, f))
        return
    from .pipeline import to_csv_bytes, to_json_bytes
    frame = table.to_pandas()
    for column in ("label", "source"):
        frame[column] = frame[column].astype(object)
    data = to_json_bytes(frame) if fmt == "json" else to_csv_bytes(frame)
    atomic_write(out, lambda f: f.write(data))

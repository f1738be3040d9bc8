"""From a dataset to stored, exportable labels: the steps the CLI and the pages share.

Every function takes a `Workspace` and works in its item order (``ok_items()``, by path),
so embeddings, the kNN graph and runs line up row for row:

1. `import_dataset` — scan results into the store (items, layout/CSV seeds, truth).
2. `embed_workspace` / `import_embeddings` — one embedding row per accepted item, cached by
   file content so a re-run encodes only new or changed files.
3. `neighbour_graph` — one kNN graph per embedding, built once and saved beside it; HDL,
   kNN-DV, UMAP and the pages all take their neighbours from it.
4. `seed_vector` / `pick_k` / `run_labeling` — seeds (corrections included) to HDL and
   kNN-DV runs saved in the store.
5. `labels.export_frame` / `to_csv_bytes` / `to_json_bytes` / `imagefolder_zip` — what the user
   takes away.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import pandas as pd

from ..auto_k import KChoice, KIntent, resolve_k
from ..data.seed_csv import neutralise_cell
from ..config import DEFAULT_BRIDGE, DEFAULT_VARIANT, GRAPH_K, VARIANTS, home
from ..graph import KnnGraph, build_knn_graph, rows_to_read
from ..rows import read_rows
from ..bridge import distinct_rows
from ..hdl import LabelingResult, check_bridge, knn_dv_prepared_rows
from ..variants import check_variant, label_function, prepared_function
from .arrays import EMBEDDING_CACHE_DIRNAME
from .schema import StoreError
from .store import RunInfo, StoredRun, Workspace

Progress = Callable[[int, int], None]

_SETTING_EMBEDDING = "embedding"
_SETTING_EMBED_PROGRESS = "embedding_progress"
_SETTING_K_INTENT = "k_intent"
_SETTING_VARIANT = "labeling_variant"


class PipelineError(ValueError):
    """A step cannot run yet (no embeddings, no seeds, stale embeddings); the message says what to do."""


# --------------------------------------------------------------------------- locations

def workspace_root() -> Path:
    """Where the app keeps its workspaces: ``HDL_WORKSPACE_ROOT``, else ``workspaces/`` in the project."""
    configured = os.environ.get("HDL_WORKSPACE_ROOT", "").strip()
    root = (Path(configured).expanduser() if configured
            else home() / "workspaces")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def workspace_for(dataset_folder: str | Path, root: Path | None = None) -> Path:
    """The workspace folder of a dataset folder: a readable slug plus a digest of the full path."""
    folder = Path(dataset_folder).resolve()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.") or "dataset"
    digest = hashlib.sha1(str(folder).encode("utf-8")).hexdigest()[:8]
    return (workspace_root() if root is None else Path(root)) / f"{slug}-{digest}"


# --------------------------------------------------------------------------- dataset

@dataclass(frozen=True)
class ImportSummary:
    """What storing a scanned dataset found, for the user.

    Attributes
    ----------
    items : int
        Accepted images.
    skipped : list of (path, reason)
    duplicates : list of list of str
        Groups of identical files (all kept).
    seeds : dict of str to int
        Seeds per class name.
    truth : bool
        The dataset came with ground truth.
    missing : int
        Images of earlier scans not found now; their corrections are kept (`Workspace.set_dataset`).
    moved : int
        Images found again under a new path by their content, with their corrections.
    """

    items: int
    skipped: list
    duplicates: list
    seeds: dict
    truth: bool
    missing: int = 0
    moved: int = 0


def import_dataset(ws: Workspace, dataset) -> ImportSummary:
    """Store a scanned `Dataset` and say what it holds."""
    change = ws.set_dataset(dataset) or {}
    seeds = pd.Series([item.seed_label for item in dataset.items if item.seed_label is not None])
    return ImportSummary(
        items=len(dataset.items),
        skipped=[(entry.path, entry.reason) for entry in dataset.skipped],
        duplicates=[list(group) for group in dataset.duplicates],
        seeds=seeds.value_counts().sort_index().to_dict(),
        truth=bool(dataset.truth), missing=change.get("missing", 0), moved=change.get("moved", 0))


def item_frame(ws: Workspace) -> pd.DataFrame:
    """Accepted items in workspace order: id, path, content_hash, plus their absolute file path."""
    items = ws.ok_items()
    root = ws.dataset_root()
    if root is None:
        raise PipelineError("this workspace has no dataset yet; open a folder, a zip or the demo first")
    items["file"] = [str(root.joinpath(*PurePosixPath(p).parts)) for p in items["path"]]
    return items


def dataset_files(ws: Workspace, items: pd.DataFrame | None = None) -> list:
    """The accepted items as `hdl_core.data.DatasetFile`: opened only inside the dataset folder."""
    from ..data import DatasetFile
    items = item_frame(ws) if items is None else items
    root = str(ws.dataset_root())
    return [DatasetFile(root, path) for path in items["path"]]


# --------------------------------------------------------------------------- embeddings

@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder to build, as plain values (storable, hashable, cache-friendly).

    ``name`` and ``options`` are exactly what `hdl_core.embed.make_encoder` takes, so the
    spec adds no defaults of its own: ``EncoderSpec.of("clip", model="ViT-B-16")``.

    Attributes
    ----------
    name : {"clip", "pixels"}
    options : tuple of (str, value)
        Keyword options of the encoder, sorted by name.
    """

    name: str = "pixels"
    options: tuple = ()

    @classmethod
    def of(cls, name: str, **options) -> "EncoderSpec":
        return cls(name, tuple(sorted(options.items())))

    def build(self):
        from ..embed import make_encoder
        return make_encoder(self.name, **dict(self.options))

    def as_dict(self) -> dict:
        return {"name": self.name, **dict(self.options)}


@dataclass
class Embedding:
    """Embeddings of a workspace: row i belongs to ``item_ids[i]``."""

    key: str
    X: np.ndarray
    item_ids: np.ndarray
    label: str
    stats: dict = field(default_factory=dict)
    _distinct: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def row_numbers(self) -> np.ndarray:
        """Each row's number among the distinct rows of X (`hdl_core.bridge.distinct_rows`),
        computed once for these embeddings: every labeling checks them for identical images
        (`duplicate_nodes`), and hashing a million 512-D rows takes about 2 s."""
        if self._distinct is None:
            self._distinct = distinct_rows(np.asarray(self.X))[0]
        return self._distinct


def _items_digest(items: pd.DataFrame) -> str:
    """`Workspace.items_digest` of the items as they were read (the one formula)."""
    from .items import _digest_items
    return _digest_items(zip(items["id"].tolist(), items["content_hash"].tolist()))


def embed_workspace(ws: Workspace, spec: EncoderSpec, *, progress: Progress | None = None,
                    cache_folder: str | Path | None = None) -> Embedding:
    """Embed every accepted item (cached by file content) and save the array in the workspace.

    Parameters
    ----------
    ws : Workspace
    spec : EncoderSpec
    progress : callable(done, total), optional
    cache_folder : path, optional
        The per-file embedding cache; default ``<workspace>/embedding-cache``.

    Raises
    ------
    PipelineError
        No dataset or no accepted image.
    hdl_core.embed.WeightsUnavailable
        CLIP weights are neither cached nor downloadable.
    """
    from ..embed import EmbeddingCache

    items = item_frame(ws)
    if items.empty:
        raise PipelineError("the dataset has no accepted image to embed; see the skip report")
    encoder = spec.build()
    cache = EmbeddingCache(Path(cache_folder) if cache_folder else
                           ws.folder / EMBEDDING_CACHE_DIRNAME)
    label = getattr(encoder, "label", spec.name)

    def saved(kept: int, total: int) -> None:   # what a run stopped now would keep
        ws.set_setting(_SETTING_EMBED_PROGRESS, {"label": label, "kept": kept, "total": total})

    X, stats = cache.encode(encoder, dataset_files(ws, items), list(items["content_hash"]),
                            progress, saved=saved)
    ws.set_setting(_SETTING_EMBED_PROGRESS, None)
    key = f"{encoder.cache_key}|items={_items_digest(items)}"
    stats = {**stats, "device": getattr(encoder, "device", "cpu"), "n": len(items)}
    return _save_embedding(ws, key, X, items, label, stats, spec=spec.as_dict())


def stopped_embedding(ws: Workspace) -> dict | None:
    """What the last `embed_workspace` that did not finish kept, or None.

    Returns
    -------
    dict or None
        ``{"label": encoder label, "kept": images now in the cache, "total": images}``:
        its finished chunks are in the embedding cache, so the next run starts after them.
    """
    progress = ws.get_setting(_SETTING_EMBED_PROGRESS)
    return progress if isinstance(progress, dict) else None


def import_embeddings(ws: Workspace, paths: list[str], X: np.ndarray, *, label: str,
                      source: str = "precomputed") -> Embedding:
    """Use embeddings made elsewhere: `paths` (relative to the dataset root) aligned with rows of `X`.

    Every accepted item must have a row; rows for paths the dataset does not have are an
    error (both named), since they usually mean the wrong dataset or the wrong file.
    """
    items = item_frame(ws)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != len(paths):
        raise PipelineError(f"embeddings of shape {X.shape} do not match {len(paths)} paths; "
                            "give one row per path, in the same order")
    row_of, repeated = {}, []
    for row, path in enumerate(paths):
        key = PurePosixPath(str(path).replace("\\", "/").removeprefix("./")).as_posix()
        if key in row_of:
            repeated.append(f"{key!r} (rows {row_of[key]} and {row})")
        row_of[key] = row
    if repeated:
        raise PipelineError(f"{len(repeated)} path(s) appear twice: {', '.join(repeated[:3])}; "
                            "keep one row per image")
    missing = [p for p in items["path"] if p not in row_of]
    extra = sorted(set(row_of) - set(items["path"]))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} image(s) have no embedding row (e.g. {missing[:3]})")
        if extra:
            parts.append(f"{len(extra)} row(s) name images not in the dataset (e.g. {extra[:3]})")
        raise PipelineError("; ".join(parts) + "; paths must be relative to the dataset folder "
                            f"{ws.dataset_root().name!r} and cover exactly its accepted images")
    X = np.asarray(X, dtype=np.float32)[[row_of[p] for p in items["path"]]]
    digest = hashlib.sha1(np.ascontiguousarray(X).tobytes()).hexdigest()[:16]
    key = f"{source}|{digest}|items={_items_digest(items)}"
    return _save_embedding(ws, key, X, items, label, {"n": len(items), "hits": 0, "misses": 0},
                           spec={"name": source})


def _save_embedding(ws, key, X, items, label, stats, *, spec) -> Embedding:
    item_ids = items["id"].to_numpy(np.int64)
    ws.save_embeddings(key, X)
    # the row -> item list as an array beside the embeddings (a million ids in a JSON setting
    # would be parsed on every page run)
    ws.save_embeddings(f"{key}|item_ids", item_ids[:, None])
    ws.set_setting(_SETTING_EMBEDDING, {"key": key, "label": label, "spec": spec,
                                        "n": len(item_ids),
                                        "stats": {k: v for k, v in stats.items()
                                                  if isinstance(v, (int, float, str))}})
    return Embedding(key, X, item_ids, label, stats)


def current_embedding(ws: Workspace, *, mmap: bool = False) -> Embedding | None:
    """The last saved embeddings, or None when there are none or the dataset changed since.

    Parameters
    ----------
    ws : Workspace
    mmap : bool, default False
        Map the array file instead of reading it (`ArrayFiles.load`): the app keeps a million
        embeddings mapped and reads the rows it needs.
    """
    meta = ws.get_setting(_SETTING_EMBEDDING)
    if not meta:
        return None
    if "item_ids" in meta:                               # saved before the ids had a file
        item_ids = np.asarray(meta["item_ids"], dtype=np.int64)
    else:
        stored = ws.arrays.load_derived(f"{meta['key']}|item_ids")
        if stored is None:
            return None
        item_ids = stored[:, 0].astype(np.int64)
    if not np.array_equal(item_ids, ws.ok_item_ids()) or not meta["key"].endswith(
            f"items={ws.items_digest()}"):
        return None
    X = ws.arrays.load(meta["key"], mmap=mmap)
    if X is None:
        return None
    if X.ndim != 2 or X.shape[0] != len(item_ids) or not np.issubdtype(X.dtype, np.number):
        raise StoreError(f"embedding file {ws.arrays.name(meta['key'])} holds an array of shape "
                         f"{X.shape} ({X.dtype}), not one row per image ({len(item_ids)}); "
                         "embed the images again on the Embed page (it is rewritten)")
    return Embedding(meta["key"], X, item_ids, meta["label"], meta.get("stats", {}))


def require_embedding(ws: Workspace) -> Embedding:
    embedding = current_embedding(ws)
    if embedding is None:
        raise PipelineError("no embeddings for the current images yet; embed them first "
                            "(Embed page, or `python -m hdl_core embed`)")
    return embedding


# --------------------------------------------------------------------------- graph

def neighbour_graph(ws: Workspace, embedding: Embedding, k: int = GRAPH_K, *,
                    method: str = "auto") -> KnnGraph:
    """The kNN graph of the embeddings with at least `k` neighbours, built once and saved.

    Asking again (this process or the next) loads it; asking for more neighbours than
    stored builds a bigger one. Callers take ``graph.first(k)`` for a smaller k.
    """
    n = len(embedding.item_ids)
    want = min(max(k, GRAPH_K), n - 1)
    if want < 1:
        raise PipelineError("at least two images are needed to build neighbour lists")
    for stored in sorted({want, GRAPH_K, n - 1}):
        if stored < want:
            continue
        graph = _stored_graph(ws, f"{embedding.key}|knn={stored}", n, stored)
        if graph is not None:
            return graph
    graph = build_knn_graph(embedding.X, want, method=method, random_state=0)
    return _save_graph(ws, f"{embedding.key}|knn={want}", graph)


def _stored_graph(ws: Workspace, key: str, n: int, k: int) -> KnnGraph | None:
    """The graph saved under `key` if it has `n` rows of `k` neighbours, memory-mapped: the
    pages, the labeling and the review queue read one copy (at 1M x 20 a loaded copy is
    160 MB each). A damaged or mis-shaped one counts as absent (built again)."""
    indices = ws.arrays.load_derived(key + "|indices", mmap=True)
    distances = ws.arrays.load_derived(key + "|distances", mmap=True)
    if (indices is None or distances is None or indices.shape != (n, k)
            or distances.shape != (n, k) or distances.dtype != np.float32):
        return None
    return KnnGraph(indices, distances)


def _save_graph(ws: Workspace, key: str, graph: KnnGraph) -> KnnGraph:
    """Save a graph (indices as int32 while they fit: the kernel reads them so) and return
    it mapped from the saved files."""
    n = graph.n
    ws.save_embeddings(key + "|indices",
                       graph.indices.astype(np.int32 if n < 2**31 else np.int64, copy=False))
    ws.save_embeddings(key + "|distances", graph.distances)
    return _stored_graph(ws, key, n, graph.k) or graph


# --------------------------------------------------------------------------- seeds and runs

def seed_vector(ws: Workspace, item_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Seeds (dataset, app and corrections) as HDL's ``y`` aligned with `item_ids`, and the class list."""
    classes = ws.classes()
    index = {name: i for i, name in enumerate(classes)}
    item_ids = np.asarray(item_ids, np.int64)
    y = np.full(len(item_ids), -1, dtype=np.int64)
    seeds = ws.seeds()
    if seeds and item_ids.size:
        seed_ids = np.fromiter(seeds.keys(), np.int64, len(seeds))
        codes = np.array([index[name] for name in seeds.values()], np.int64)
        order = np.argsort(item_ids, kind="stable")
        found = np.minimum(np.searchsorted(item_ids, seed_ids, sorter=order), item_ids.size - 1)
        present = item_ids[order[found]] == seed_ids
        y[order[found[present]]] = codes[present]
    return y, classes


def require_seeds(y: np.ndarray, classes: list[str]) -> None:
    """Refuse to label without seeds, or with a single class, with a message saying what to do."""
    present = np.unique(y[y >= 0])
    if present.size == 0:
        raise PipelineError("no seeds: label at least one image per class (class folders, a seed "
                            "CSV, or the Data page) before running HDL")
    if present.size == 1:
        raise PipelineError(f"only one class has seeds ({classes[present[0]]!r}); HDL would give "
                            "every image that label. Add seeds of at least one more class")


def k_intent(ws: Workspace) -> KIntent:
    """The k the user asked for in this workspace (the Choose k page), "auto" by default."""
    stored = ws.get_setting(_SETTING_K_INTENT)
    if stored is None:                      # workspaces from before intents were stored
        old = ws.get_setting("k_choice") or {}
        stored = {"k": old["k"] if old.get("override") else "auto",
                  **{key: old[key] for key in ("noise_rate", "k_max") if key in old}}
    return KIntent.from_dict(stored)


def set_k_intent(ws: Workspace, intent: KIntent) -> None:
    ws.set_setting(_SETTING_K_INTENT, intent.as_dict())


@dataclass(frozen=True)
class LabelingRun:
    """What `run_labeling` did.

    Attributes
    ----------
    hdl_id : int
        The saved HDL run.
    baseline_id : int or None
        The kNN-DV run saved with it (linked to it in the store), when asked for.
    k : int
    choice : KChoice or None
        The μ_k / P(k) curves behind an "auto" k; None when k was a number.
    result : LabelingResult
        The HDL result.
    seconds : float
        Wall time of the whole call.
    """

    hdl_id: int
    baseline_id: int | None
    k: int
    choice: KChoice | None
    result: LabelingResult
    seconds: float


def labeling_variant(ws: Workspace) -> str:
    """Which HDL labels in this workspace: "reach" (the default), "balanced" or "paper"
    (Algorithm 1)."""
    variant = ws.get_setting(_SETTING_VARIANT, DEFAULT_VARIANT)
    return variant if variant in VARIANTS else DEFAULT_VARIANT


def set_labeling_variant(ws: Workspace, variant: str) -> None:
    check_variant(variant)
    ws.set_setting(_SETTING_VARIANT, variant)


def run_labeling(ws: Workspace, embedding: Embedding, intent: KIntent | None = None, *,
                 variant: str | None = None, with_baseline: bool = True,
                 graph: KnnGraph | None = None, bridge: str = DEFAULT_BRIDGE,
                 progress: Callable[[str], None] | None = None) -> LabelingRun:
    """Run HDL (and kNN-DV to compare) on the workspace's seeds and save both runs, linked.

    Parameters
    ----------
    ws : Workspace
    embedding : Embedding
        `current_embedding(ws)`.
    intent : KIntent, optional
        The k to use; default the workspace's own (`k_intent`). "auto" is resolved here
        (`hdl_core.auto_k.resolve_k`) against the seeds as they are now.
    variant : {"reach", "balanced", "paper"}, optional
        Reach-ordered HDL (`hdl_core.reach_label`, the default), class-balanced HDL
        (`hdl_core.balanced_label`) or the paper's Algorithm 1 (`hdl_core.hdl_label`);
        default the workspace's own
        (`labeling_variant`). Stored with the run (``params["variant"]``).
    with_baseline : bool, default True
        Also run kNN-DV with the same k and link it to the HDL run.
    graph : KnnGraph, optional
        The embedding's graph when the caller has it (`neighbour_graph`).
    bridge : {"auto", "exact", "approx"}, default "auto"
        How bridges are searched (`hdl_core.hdl.hdl_label`); "auto" searches an inverted
        file only where the first bridge would compare more than
        `config.BRIDGE_APPROX_MIN_PAIRS` pairs, so small workspaces get the exact rule.
        Stored with the run (``params["bridge"]``), and ``params["approximate_bridges"]``
        counts the bridges searched approximately.
    progress : callable(str), optional
        Told each step as it starts ("choosing k", "HDL", "kNN-DV to compare").

    Notes
    -----
    Identical images (exactly the same embedding row) are labeled as one when they would
    otherwise shut themselves off: more than k unlabeled copies of one image have only each
    other as neighbours, so each such group cost HDL a bridge of its own (100,000 copies of
    768 images ran for half an hour). When any group of identical unlabeled rows is larger
    than k, every such group is labeled as one node, its first row, on a kNN graph of the
    collapsed set (built once, saved beside the embeddings); every copy then takes its
    node's label, step, round, confidence and vote count, so copies share a step. Seeds are
    never merged. ``params["collapsed_duplicates"]`` says how many rows were folded.
    """
    started = time.perf_counter()
    say = progress or (lambda step: None)
    intent = k_intent(ws) if intent is None else intent
    variant = labeling_variant(ws) if variant is None else variant
    check_variant(variant)
    check_bridge(bridge)
    label = functools.partial(label_function(variant), bridge=bridge)
    y, classes = seed_vector(ws, embedding.item_ids)
    require_seeds(y, classes)
    say("choosing k")
    try:
        k, choice = resolve_k(intent, embedding.X, y, variant=variant)
    except ValueError as error:
        raise PipelineError(f"{error}: with {len(y)} images, k can be at most {len(y) - 1}; "
                            "choose a smaller k on the Choose k page") from None
    params = {"noise_rate": intent.noise_rate, "k_max": intent.k_max, "embedding": embedding.key,
              "encoder": embedding.label, "k_auto": intent.auto, "n_seeds": int((y >= 0).sum()),
              "variant": variant, "bridge": bridge}
    say("HDL")
    nodes, node_of = duplicate_nodes(embedding.X, y, k, vector=embedding.row_numbers())
    # the embeddings as the cosine metric prepares them, for HDL's bridges and kNN-DV: rows
    # scaled when read (`UnitRows`), not a float32 copy (2 GB at a million 512-D images)
    rows = rows_to_read(embedding.X, "cosine")
    if nodes is None:
        graph = neighbour_graph(ws, embedding, k) if graph is None else graph
        result = prepared_function(variant)(rows, y, k=k, graph=graph, bridge=bridge)
    else:
        collapsed = label(read_rows(embedding.X, nodes), y[nodes], k=k,
                              graph=_collapsed_graph(ws, embedding, nodes, k))
        result = _expanded(collapsed, nodes, node_of)
        params["collapsed_duplicates"] = int(len(y) - len(nodes))
    hdl_id = ws.save_run(method="hdl", params={**params, **run_facts(result)},
                         result=result, classes=classes, item_ids=embedding.item_ids)
    baseline_id = None
    if with_baseline:
        say("kNN-DV to compare")
        baseline_id = _save_baseline(ws, embedding, rows, y, k, params, classes, hdl_id)
    return LabelingRun(hdl_id, baseline_id, k, choice, result, time.perf_counter() - started)


# params that describe one HDL run's outcome rather than its settings (`run_facts`)
RUN_FACTS = ("approximate_bridges", "spread_steps", "spread_alpha")


def run_facts(result: LabelingResult) -> dict:
    """What a labeling found out as it ran, stored with its run's params: how many bridges
    were searched approximately, and for the default, how far its seeds' reach went
    (``spread_steps``: the length follows the seeds' depth; ``spread_alpha`` only where the
    reach was label spreading at an alpha, not the default's harmonic propagation)."""
    facts = {"approximate_bridges": int(result.approximate_bridges)}
    if result.spread is not None:
        steps, alpha = result.spread
        facts["spread_steps"] = int(steps)
        if alpha is not None:
            facts["spread_alpha"] = float(alpha)
    return facts


def run_baseline(ws: Workspace, embedding: Embedding, hdl_id: int) -> int:
    """kNN-DV to compare with the saved HDL run `hdl_id`, afterwards: the seeds and k that
    run had, saved linked to it as `run_labeling` saves it with ``with_baseline``. The app
    runs it after a big workspace's HDL run is shown (at a million images it is an exact
    search of every image against the seeds, 14 s). Returns the kNN-DV run's id.

    Raises
    ------
    PipelineError
        The run is not an HDL run of these embeddings' images (new images were embedded
        since, say): run HDL again.
    """
    run = ws.load_run(int(hdl_id))
    if run is None or run.method != "hdl":
        raise PipelineError(f"run #{hdl_id} is not an HDL run of this workspace")
    if not np.array_equal(run.item_ids, embedding.item_ids):
        raise PipelineError(f"HDL run #{hdl_id} labeled other images than the current "
                            "embeddings hold; run HDL again to compare it with kNN-DV")
    y = run.result.seed_labels
    params = {key: value for key, value in run.params.items() if key not in RUN_FACTS}
    return _save_baseline(ws, embedding, rows_to_read(embedding.X, "cosine"), y, run.k, params,
                          run.classes, run.run_id)


def _save_baseline(ws: Workspace, embedding: Embedding, rows, y: np.ndarray, k: int,
                   params: dict, classes: list[str], hdl_id: int) -> int:
    """kNN-DV on `rows` from the seeds `y`, saved as the baseline of HDL run `hdl_id`."""
    baseline = knn_dv_prepared_rows(rows, y, k=k)
    return ws.save_run(method="knn_dv", params=params, result=baseline, classes=classes,
                       item_ids=embedding.item_ids, compares_to=hdl_id)


def duplicate_nodes(X: np.ndarray, y: np.ndarray, k: int, *, vector: np.ndarray | None = None
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Rows to label when identical unlabeled rows are folded together, and each row's node.
    `vector`, when given, is each row's number among X's distinct rows
    (`Embedding.row_numbers`), so they are not hashed again.

    Returns ``(None, None)`` when no group of identical unlabeled rows is larger than `k`
    (nothing would shut itself off), or when folding would leave too few nodes for `k`.

    Returns
    -------
    nodes : ndarray of int or None
        Row indices labeled as nodes, ascending: every seed, and the first row of each
        group of identical unlabeled rows.
    node_of : ndarray of int or None
        For each row, the position in `nodes` of the node it takes its label from.

    Examples
    --------
    >>> X = np.array([[1., 0], [1, 0], [1, 0], [0, 1], [1, 0]])
    >>> nodes, node_of = duplicate_nodes(X, np.array([-1, -1, -1, 0, 0]), 1)
    >>> nodes.tolist(), node_of.tolist()
    ([0, 3, 4], [0, 0, 0, 1, 2])
    """
    unlabeled = np.flatnonzero(y < 0)
    if unlabeled.size <= k:
        return None, None
    # rows told apart by a hash of their bytes, checked in full where hashes meet: no copy
    # of the unlabeled rows and no sort of them as byte strings (8 GB and 19 s at 1M × 512)
    if vector is None:
        vector, _ = distinct_rows(np.asarray(X))
    _, first, group, counts = np.unique(vector[unlabeled], return_index=True,
                                        return_inverse=True, return_counts=True)
    if counts.max() <= k:
        return None, None
    representative = np.full(len(y), -1, np.int64)
    representative[unlabeled] = unlabeled[first[group.ravel()]]
    seeds = np.flatnonzero(y >= 0)
    representative[seeds] = seeds
    nodes = np.unique(representative)
    if nodes.size <= k:
        return None, None
    return nodes, np.searchsorted(nodes, representative)


def _collapsed_graph(ws: Workspace, embedding: Embedding, nodes: np.ndarray, k: int) -> KnnGraph:
    """The kNN graph of the folded rows (`duplicate_nodes`), built once and saved."""
    digest = hashlib.sha1(nodes.astype(np.int64).tobytes()).hexdigest()[:16]
    key = f"{embedding.key}|collapsed={digest}|knn={k}"
    graph = _stored_graph(ws, key, nodes.size, k)
    if graph is not None:
        return graph
    return _save_graph(ws, key, build_knn_graph(read_rows(embedding.X, nodes), k, random_state=0))


def _expanded(result: LabelingResult, nodes: np.ndarray, node_of: np.ndarray) -> LabelingResult:
    """A result over the nodes, given to every row: each copy takes its node's outcome."""
    source = result.source[node_of]
    bridged = source >= 0
    source[bridged] = nodes[source[bridged]]              # node positions -> row indices
    return LabelingResult(labels=result.labels[node_of], step=result.step[node_of],
                          round=result.round[node_of], confidence=result.confidence[node_of],
                          n_voters=result.n_voters[node_of], fallback=result.fallback[node_of],
                          source=source, k=result.k,
                          approximate_bridges=result.approximate_bridges, spread=result.spread)


# --------------------------------------------------------------------------- is a run current

CURRENT, SEEDS_CHANGED, STALE = "current", "seeds changed", "stale"


def run_status(run: StoredRun | RunInfo | None, embedding: Embedding | None,
               seeds: tuple[np.ndarray, list[str]] | None = None) -> str:
    """The one rule for whether a run belongs to what the workspace holds now.

    Parameters
    ----------
    run : StoredRun or RunInfo or None
    embedding : Embedding or None
        `current_embedding(ws)`.
    seeds : (y, classes), optional
        `seed_vector(ws, embedding.item_ids)`: compare the run's seeds with these.

    Returns
    -------
    str
        `STALE` when there is no run or no embedding, or the run was made on other
        embeddings (another encoder, or images added, removed or changed since): it cannot
        be replayed or reviewed on the current map and graph. `SEEDS_CHANGED` when it was
        made on these embeddings but its seeds differ from `seeds` (a correction or a new
        seed since): it can be shown, and a re-run would use the new seeds. `CURRENT`
        otherwise.
    """
    if run is None or embedding is None or run.params.get("embedding") != embedding.key:
        return STALE
    if isinstance(run, RunInfo):
        return CURRENT if run.n_items == len(embedding.item_ids) else STALE
    if not np.array_equal(run.item_ids, embedding.item_ids):
        return STALE
    if seeds is not None:
        y, classes = np.asarray(seeds[0]), seeds[1]
        was_seed = run.result.step < 0
        if not np.array_equal(was_seed, y >= 0):
            return SEEDS_CHANGED
        then = np.asarray(run.classes, dtype=object)[run.result.labels[was_seed]]
        now = np.asarray(classes, dtype=object)[y[was_seed]]
        if not np.array_equal(then, now):
            return SEEDS_CHANGED
    return CURRENT


# --------------------------------------------------------------------------- export

def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV (UTF-8) with formula-like text cells neutralised; numbers are left as numbers.

    Only cells a spreadsheet would run get a leading ``'`` (`neutralise_cell`), and a seed
    CSV read back takes it off (`hdl_core.data.read_seed_csv`), so an export fed back as
    ``--seeds`` gives the same paths and labels. JSON (`to_json_bytes`) is the lossless
    format: every value exactly as stored, nothing prefixed.
    """
    safe = frame.copy()
    for column in safe.columns:
        # pandas 3 gives text its own "str" dtype; pandas 2 stores it as object.
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column].dtype):
            safe[column] = safe[column].map(neutralise_cell)
    return safe.to_csv(index=False, float_format="%.6g").encode("utf-8")


def to_json_bytes(frame: pd.DataFrame) -> bytes:
    """A JSON list of row objects (NaN as null)."""
    records = json.loads(frame.to_json(orient="records"))
    return json.dumps(records, indent=1, ensure_ascii=False).encode("utf-8")


def imagefolder_zip(ws: Workspace, frame: pd.DataFrame, target=None, *,
                    progress: Progress | None = None, skipped: list | None = None):
    """Write an ImageFolder zip: ``<class>/<file>`` for every labeled item (unlabeled ones left out).

    File names keep their path below the dataset root with ``/`` replaced by ``__`` so two
    images with the same name in different folders never collide; should two names still
    meet (``a/b.png`` and a file named ``a__b.png``), the later one gets ``a__b~2.png``.
    Every image is read through `hdl_core.data.open_dataset_file`: a file that vanished
    since the scan, or that is now a link or leads outside the dataset folder, is left out
    and listed, with its reason, in ``skipped-files.csv`` at the top of the zip.

    Parameters
    ----------
    ws : Workspace
    frame : DataFrame
        Columns ``path`` and ``label`` (`labels.export_frame`).
    target : path or binary file, optional
        Where to write; default: return the bytes.
    progress : callable(done, total), optional
    skipped : list, optional
        Receives a ``(path, reason)`` pair per image left out.

    Returns
    -------
    bytes or None
        The zip's bytes when `target` is None.
    """
    from ..data import DatasetFileError, open_dataset_file
    root = ws.dataset_root()
    if root is None:
        raise PipelineError("this workspace has no dataset yet")
    labeled = frame[frame["label"].notna()]
    buffer = io.BytesIO() if target is None else target
    written: set[str] = set()
    left_out = [] if skipped is None else skipped
    folder_of = class_folders(labeled["label"].unique())
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for done, (path, label) in enumerate(zip(labeled["path"], labeled["label"]), 1):
            entry = _unused_entry(f"{folder_of[label]}/{str(path).replace('/', '__')}", written)
            try:
                with open_dataset_file(str(path), root) as source:
                    status = os.fstat(source.fileno())
                    info = zipfile.ZipInfo(entry, time.localtime(max(status.st_mtime, 315532800))[:6])
                    info.file_size = status.st_size          # zip64 decided from the size
                    info.external_attr = 0o644 << 16
                    with archive.open(info, "w") as sink:
                        shutil.copyfileobj(source, sink, 2**20)
                written.add(entry)
            except DatasetFileError as error:
                left_out.append((str(path), error.reason))
            if progress is not None and (done % 200 == 0 or done == len(labeled)):
                progress(done, len(labeled))
        if left_out:
            listing = pd.DataFrame(left_out, columns=["path", "reason"])
            archive.writestr(_unused_entry("skipped-files.csv", written), to_csv_bytes(listing))
    return buffer.getvalue() if target is None else None


def write_imagefolder_zip(ws: Workspace, frame: pd.DataFrame, *,
                          progress: Progress | None = None) -> tuple[Path, list]:
    """Build the ImageFolder zip in the workspace (``exports/``), all or nothing.

    The file appears complete or not at all (`hdl_core._files.atomic_write`), replacing the
    one built before. Images that cannot be read now are left out and listed.

    Returns
    -------
    (Path, list of (path, reason))
        The zip, and the images left out with why (e.g. ``missing``).
    """
    from .._files import atomic_write
    folder = ws.folder / "exports"
    folder.mkdir(exist_ok=True)
    target = folder / f"{ws.folder.name}-imagefolder.zip"
    skipped: list = []
    atomic_write(target, lambda stream: imagefolder_zip(ws, frame, stream, progress=progress,
                                                         skipped=skipped), durable=False)
    return target, skipped


_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}


def class_folders(labels) -> dict:
    """A folder name for each class of an ImageFolder export that every system accepts
    and no two classes share: no path separators, no characters Windows refuses
    (<>:"|?*), no control characters, no trailing dot or space, no device name (CON,
    NUL, ...); two classes whose names come out the same, or differ only in case (one
    folder once unpacked on macOS or Windows), get ``~2``, ``~3``, ... in sorted order."""
    folders, taken = {}, set()
    for label in sorted(labels, key=str):
        folder = re.sub(r'[\\/<>:"|?*\x00-\x1f]', "_", str(label)).strip().rstrip(".") or "_"
        if folder in (".", "..") or folder.split(".")[0].upper() in _WINDOWS_DEVICES:
            folder = f"_{folder}"
        unique, number = folder, 2
        while unique.casefold() in taken:
            unique, number = f"{folder}~{number}", number + 1
        taken.add(unique.casefold())
        folders[label] = unique
    return folders


def _unused_entry(entry: str, taken: set[str]) -> str:
    """`entry`, or ``<stem>~2<suffix>``, ``~3``, ... when that name is already in the archive."""
    if entry not in taken:
        return entry
    path = PurePosixPath(entry)
    number = 2
    while (candidate := str(path.with_name(f"{path.stem}~{number}{path.suffix}"))) in taken:
        number += 1
    return candidate

"""The kNN graph on Ray when one machine is not enough: IVF "by list".

    1. k-means centroids ("lists") trained on a sample, on the driver (faiss).
    2. map_batches: each vector gets its `n_probe` nearest lists; it is a *member* of the
       first and a *query* of all of them (one row per probed list).
    3. groupby(list).map_groups: inside one list, the exact k nearest members of every
       query (self excluded): a partial top-k per (query, list).
    4. Merge: each point's n_probe partial top-k lists, k best by (distance, index).

This is faiss's IVF search (the same lists, the same probes) cut along the lists, so a
list's members are read once per list and no worker holds more than one list group. At
100M points the groups are shuffled through Ray's object store (a vector travels
n_probe times: 100M × 512 × 4 B × n_probe); step 4 is a second groupby by point. The
small run here merges on the driver.
"""
from __future__ import annotations

import math

import numpy as np

from ..graph import KnnGraph, _smallest_per_row, check_k, get_metric


def _matrix(column) -> np.ndarray:
    """A vector column as Ray hands it over (a 2-D tensor, or an array of arrays)."""
    column = np.asarray(column)
    return np.stack(column).astype(np.float32) if column.dtype == object else column


def _search_list(group: dict, k: int, exact_pair: int) -> dict:
    """Exact top-k of a list's queries among its members (a `map_groups` step)."""
    vectors = _matrix(group["vector"])
    ids = np.asarray(group["id"], np.int64)
    member = np.asarray(group["member"], bool)
    members, member_ids = vectors[member], ids[member]
    width = min(k, max(1, members.shape[0]))
    if exact_pair == 0:
        key = -(vectors @ members.T)
    else:
        key = ((vectors[:, None, :].astype(np.float64) - members[None, :, :]) ** 2).sum(axis=2)
    key = np.asarray(key, np.float64)
    key[ids[:, None] == member_ids[None, :]] = np.inf        # never self
    top = np.empty((ids.size, width), np.int64)
    top_key = np.empty((ids.size, width))
    if members.shape[0]:
        _smallest_per_row(key, width, -1, top, top_key)
        cand = np.where(np.isfinite(top_key), member_ids[np.maximum(top, 0)], -1)
    else:
        cand, top_key = np.full((ids.size, width), -1), np.full((ids.size, width), np.inf)
    pad = k - width
    if pad:
        cand = np.hstack([cand, np.full((ids.size, pad), -1)])
        top_key = np.hstack([top_key, np.full((ids.size, pad), np.inf)])
    return {"id": ids, "cand": cand, "key": top_key}


def _assign(batch: dict, centroids: np.ndarray, n_probe: int, exact_pair: int) -> dict:
    """Each vector's n_probe nearest lists: one output row per (vector, probed list)."""
    vectors = _matrix(batch["vector"])
    if exact_pair == 0:
        key = -(vectors @ centroids.T)
    else:
        key = (centroids ** 2).sum(axis=1)[None, :] - 2.0 * vectors @ centroids.T
    probes = np.argsort(key, axis=1, kind="stable")[:, :n_probe]
    n = vectors.shape[0]
    return {"list": probes.ravel(), "id": np.repeat(np.asarray(batch["id"]), n_probe),
            "vector": np.repeat(vectors, n_probe, axis=0),
            "member": np.tile(np.arange(n_probe) == 0, n)}


def ivf_graph_on_ray(X, k: int, *, metric: str = "cosine", n_lists: int | None = None,
                     n_probe: int | None = None, seed: int = 0,
                     address: str | None = None) -> KnnGraph:
    """Approximate kNN graph of `X` computed on Ray by IVF lists (see the module docs).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings (cosine: normalised here).
    k : int
        Neighbours per point.
    metric : {"cosine", "euclidean"}
    n_lists : int, optional
        k-means lists; default about 4·sqrt(n).
    n_probe : int, optional
        Lists searched per point; default an eighth of them (at least 2).
    seed : int
        k-means seed.
    address : str, optional
        A running Ray cluster; default one started on this machine (and shut down after).

    Returns
    -------
    KnnGraph
        Rows nearest first, ties by ascending index, self excluded.
    """
    import faiss
    import pyarrow as pa
    import ray

    named = get_metric(metric)
    rows = np.ascontiguousarray(named.prepare(X), dtype=np.float32)
    n, d = rows.shape
    k = check_k(k, n)
    n_lists = n_lists or max(1, min(n // (4 * (k + 1)), round(4 * math.sqrt(n))))
    n_probe = min(n_lists, n_probe or max(2, math.ceil(n_lists / 8)))
    sample = np.random.default_rng(seed).choice(n, min(n, 256 * n_lists), replace=False)
    kmeans = faiss.Kmeans(d, n_lists, niter=20, seed=seed, spherical=named.exact_pair == 0)
    kmeans.train(rows[np.sort(sample)])
    centroids = kmeans.centroids.astype(np.float32)

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), d)
        table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "vector": vectors})
        dataset = ray.data.from_arrow(table)
        probed = dataset.map_batches(_assign, batch_format="numpy", fn_kwargs={
            "centroids": centroids, "n_probe": n_probe, "exact_pair": named.exact_pair})
        partial = probed.groupby("list").map_groups(
            _search_list, batch_format="numpy", fn_kwargs={"k": k,
                                                           "exact_pair": named.exact_pair})
        ids, cands, keys = [], [], []
        for batch in partial.iter_batches(batch_format="numpy", batch_size=65536):
            ids.append(batch["id"]), cands.append(batch["cand"]), keys.append(batch["key"])
    finally:
        if started_here:
            ray.shutdown()
    return _merge(np.concatenate(ids), np.concatenate(cands), np.concatenate(keys), n, k,
                  n_probe, rows, named)


def _merge(ids, cands, keys, n, k, n_probe, rows, named) -> KnnGraph:
    """Each point's partial lists merged: the k best by (distance, index)."""
    order = np.argsort(ids, kind="stable")
    cands = cands[order].reshape(n, n_probe * k)
    keys = keys[order].reshape(n, n_probe * k)
    best = np.lexsort((cands, keys), axis=1)[:, :k]
    indices = np.take_along_axis(cands, best, 1)
    top_keys = np.take_along_axis(keys, best, 1)
    short = np.flatnonzero((indices < 0).any(axis=1))
    if short.size:      # probed lists held fewer than k other points: search those exactly
        from ..graph import exact_knn
        found, found_keys = exact_knn(rows[short], rows, k + 1, metric=named.name)
        for r, row, row_keys in zip(short, found, found_keys):
            keep = row != r
            indices[r], top_keys[r] = row[keep][:k], np.nan
    distances = named.to_distance(top_keys).astype(np.float32)
    if short.size:
        Xs = rows[short].astype(np.float64)
        diff = Xs[:, None, :] - rows[indices[short]].astype(np.float64)
        d2 = (diff ** 2).sum(axis=2)
        distances[short] = (d2 / 2.0 if named.exact_pair == 0 else np.sqrt(d2)).astype(np.float32)
    np.maximum(distances, 0.0, out=distances)
    return KnnGraph(indices, distances, named.name)

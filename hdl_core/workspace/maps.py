"""The map of a workspace's embeddings: computed once per embedding and kept beside them.

`compute_map` lays the points out (`hdl_core.views.projection.sampled_umap_map`: UMAP of up
to `MAP_SAMPLE` points, the rest placed from their graph neighbours) and saves the result
as a derived array; `stored_map` reads it back (None until computed). `preview_map` is the
PCA map shown meanwhile, also kept, so a restarted server shows it at once.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..graph import KnnGraph
from ..views.projection import MAP_SAMPLE, pca_map, pca_map_of_sample, sampled_umap_map
from .pipeline import Embedding, neighbour_graph
from .store import Workspace


def map_key(emb: Embedding) -> str:
    """The array key of the map of `emb` (the key of a plain UMAP map up to `MAP_SAMPLE`)."""
    n = len(emb.item_ids)
    return f"{emb.key}|umap" if n <= MAP_SAMPLE else f"{emb.key}|umap-sampled={MAP_SAMPLE}"


def stored_map(ws: Workspace, emb: Embedding) -> np.ndarray | None:
    """The saved map of `emb`, (n, 2) float32, or None when it is not computed yet (or damaged)."""
    coords = ws.arrays.load_derived(map_key(emb))
    if coords is None or coords.shape != (len(emb.item_ids), 2):
        return None
    return coords


def compute_map(ws: Workspace, emb: Embedding, graph: KnnGraph | None = None, *,
                progress: Callable[[str], None] | None = None) -> np.ndarray:
    """Lay out the map of `emb` and save it; returns it.

    Parameters
    ----------
    ws : Workspace
    emb : Embedding
    graph : KnnGraph, optional
        The embedding's graph (`pipeline.neighbour_graph`), built when not given.
    progress : callable(str), optional
        Told each stage as it starts.
    """
    say = progress or (lambda stage: None)
    if graph is None:
        say("neighbours")
        graph = neighbour_graph(ws, emb)
    coords, _ = sampled_umap_map(emb.X, graph, sample_size=MAP_SAMPLE, random_state=0,
                                 progress=say)
    coords = np.asarray(coords, np.float32)
    ws.save_embeddings(map_key(emb), coords)
    return coords


def preview_map(ws: Workspace, emb: Embedding) -> np.ndarray:
    """The PCA map shown until `compute_map` is done: computed once, then read back."""
    key = f"{emb.key}|pca"
    coords = ws.arrays.load_derived(key)
    if coords is not None and coords.shape == (len(emb.item_ids), 2):
        return coords
    n = len(emb.item_ids)
    if n <= MAP_SAMPLE:
        coords = pca_map(emb.X)
    else:
        sample = np.sort(np.random.default_rng(0).choice(n, size=MAP_SAMPLE, replace=False))
        coords = pca_map_of_sample(emb.X, sample)
    coords = np.asarray(coords, np.float32)
    ws.save_embeddings(key, coords)
    return coords

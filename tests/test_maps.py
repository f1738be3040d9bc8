"""hdl_core.workspace.maps: the map of a workspace's embeddings, computed once and kept."""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from hdl_core.data import Dataset, Item
from hdl_core.workspace import maps, pipeline
from hdl_core.workspace.store import Workspace


def _workspace(tmp_path, n=400):
    ws = Workspace(tmp_path / "ws")
    ws.set_dataset(Dataset(root=tmp_path, items=[Item(f"{i:04d}.png", f"h{i}", 1) for i in range(n)]))
    emb = pipeline.import_embeddings(ws, [f"{i:04d}.png" for i in range(n)],
                                     load_digits().data[:n], label="digits")
    return ws, emb


def test_the_map_is_computed_once_and_read_back(tmp_path):
    ws, emb = _workspace(tmp_path)
    assert maps.stored_map(ws, emb) is None
    stages = []
    coords = maps.compute_map(ws, emb, progress=stages.append)
    assert coords.shape == (400, 2) and "UMAP" in stages
    np.testing.assert_array_equal(maps.stored_map(ws, emb), coords)
    assert maps.map_key(emb) == f"{emb.key}|umap"              # as before: kept maps still count


def test_a_big_map_has_its_own_key_and_a_pca_preview(tmp_path, monkeypatch):
    ws, emb = _workspace(tmp_path)
    monkeypatch.setattr(maps, "MAP_SAMPLE", 100)
    monkeypatch.setattr("hdl_core.views.projection.MAP_SAMPLE", 100)
    assert maps.map_key(emb).endswith("|umap-sampled=100")
    preview = maps.preview_map(ws, emb)
    assert preview.shape == (400, 2) and np.isfinite(preview).all()
    np.testing.assert_array_equal(maps.preview_map(ws, emb), preview)   # read back, not redone
    stages = []
    coords = maps.compute_map(ws, emb, progress=stages.append)
    assert np.isfinite(coords).all() and "placing" in stages      # a sample, then the rest
    np.testing.assert_array_equal(maps.stored_map(ws, emb), coords)

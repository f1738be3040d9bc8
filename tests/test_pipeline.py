"""Tests for hdl_core.workspace.pipeline: dataset → store → embeddings → graph → runs → exports."""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hdl_core.auto_k import KIntent, resolve_k
from hdl_core.graph import build_knn_graph
from hdl_core.reach import spread_length

from hdl_core.workspace import labels, pipeline
from hdl_core.data import load_folder
from hdl_core.workspace.labels import EXPORT_COLUMNS
from hdl_core.workspace.pipeline import EncoderSpec, PipelineError
from hdl_core.workspace.store import Workspace

PIXELS = EncoderSpec.of("pixels")

# Far apart in RGB, so the pixels encoder separates them and labels are predictable.
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


# --------------------------------------------------------------------------- helpers

def png_bytes(rgb, *, seed: int = 0, size: int = 16) -> bytes:
    """A noisy solid-colour PNG (noise keeps files distinct, so none is a duplicate)."""
    noise = np.random.default_rng(seed).integers(-25, 26, (size, size, 3))
    pixels = np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def write_colour_folder(folder: Path, *, seeds: int = 2, unlabeled: int = 6,
                        colours=COLOURS, seeded=None) -> dict[str, str]:
    """Class folders of `seeds` images per colour, the rest under unlabeled/.

    `seeded` limits which classes get seed folders (the others only have unlabeled
    images). Returns the true class of every written path.
    """
    seeded = set(colours) if seeded is None else set(seeded)
    truth = {}
    number = 0
    for name, rgb in colours.items():
        for i in range(seeds + unlabeled):
            sub = name if i < seeds and name in seeded else "unlabeled"
            relative = f"{sub}/{name}{i}.png"
            (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(png_bytes(rgb, seed=number))
            truth[relative] = name
            number += 1
    return truth


def open_workspace(folder: Path, ws_folder: Path, **load_options) -> Workspace:
    """Scan `folder` (under HDL_DATA_ROOT) into a fresh workspace."""
    ws = Workspace(ws_folder)
    pipeline.import_dataset(ws, load_folder(folder, **load_options))
    return ws


@pytest.fixture(scope="module")
def demo_labeled(demo_folder, tmp_path_factory):
    """The demo embedded with pixels and labeled once (k=3); tests only read it."""
    ws = Workspace(tmp_path_factory.mktemp("demo-ws"))
    summary = pipeline.import_dataset(ws, load_folder(demo_folder, root=demo_folder.parent))
    embedding = pipeline.embed_workspace(ws, PIXELS)
    run = pipeline.run_labeling(ws, embedding, KIntent.parse(3))
    return ws, summary, embedding, run


@pytest.fixture
def colours_ws(roots):
    """A workspace over a three-colour folder: 2 seeds and 6 unlabeled images per class."""
    data, workspaces = roots
    folder = data / "colours"
    truth = write_colour_folder(folder)
    ws = open_workspace(folder, pipeline.workspace_for(folder))
    return ws, folder, truth


# --------------------------------------------------------------------------- locations, import

def test_workspace_for_is_stable_readable_and_distinct_per_folder(roots):
    data, workspaces = roots
    first = pipeline.workspace_for(data / "a" / "pets")
    assert first == pipeline.workspace_for(data / "a" / ".." / "a" / "pets")
    assert first.parent == workspaces.resolve() and first.name.startswith("pets-")
    assert pipeline.workspace_for(data / "b" / "pets") != first


def test_import_dataset_summarises_items_seeds_skips_and_duplicates(roots):
    data, _ = roots
    folder = data / "set"
    write_colour_folder(folder, seeds=2, unlabeled=1)
    (folder / "unlabeled" / "noise.png").write_bytes(b"\x00not an image at all")
    (folder / "unlabeled" / "copy.png").write_bytes((folder / "red" / "red0.png").read_bytes())
    ws = Workspace(roots[1] / "ws")
    summary = pipeline.import_dataset(ws, load_folder(folder))
    assert summary.items == 3 * 3 + 1
    assert [path for path, _ in summary.skipped] == ["unlabeled/noise.png"]
    assert summary.duplicates == [["red/red0.png", "unlabeled/copy.png"]]
    assert summary.seeds == {"blue": 2, "green": 2, "red": 2}
    assert summary.truth is False
    frame = pipeline.item_frame(ws)
    assert len(frame) == 10 and all(Path(f).is_file() for f in frame["file"])


# --------------------------------------------------------------------------- the demo end to end

def test_demo_embed_and_label_labels_every_image_and_saves_both_runs(demo_labeled):
    ws, summary, embedding, run = demo_labeled
    n = summary.items
    assert n == 1797 and summary.seeds == {str(d): 3 for d in range(10)}
    assert embedding.X.shape[0] == n and np.allclose(np.linalg.norm(embedding.X, axis=1), 1, atol=1e-5)
    result = run.result
    assert run.k == 3 and (result.labels >= 0).all()
    assert int((result.step < 0).sum()) == 30

    methods = {r.method: r for r in ws.runs()}
    assert set(methods) == {"hdl", "knn_dv"}
    assert methods["hdl"].run_id == run.hdl_id and methods["knn_dv"].run_id == run.baseline_id
    assert methods["hdl"].baseline_id == run.baseline_id
    assert all(r.n_items == n and r.k == 3 for r in methods.values())
    stored = ws.load_run(run.hdl_id)
    np.testing.assert_array_equal(stored.result.labels, result.labels)
    np.testing.assert_array_equal(stored.item_ids, embedding.item_ids)

    # Pixels are a weak encoder, but on digits 3 seeds per class go far above chance (10 %).
    frame = labels.export_frame(ws, run.hdl_id)
    truth = ws.truth()
    accuracy = np.mean([truth[p] == label for p, label in zip(frame["path"], frame["label"])])
    assert accuracy > 0.6


def test_demo_second_embed_encodes_no_file_and_gives_the_same_array(demo_labeled):
    ws, summary, embedding, _ = demo_labeled
    again = pipeline.embed_workspace(ws, PIXELS)
    assert again.stats["encoded"] == 0 and again.stats["hits"] == summary.items
    assert again.key == embedding.key
    np.testing.assert_array_equal(again.X, embedding.X)
    assert pipeline.current_embedding(ws).key == embedding.key


def test_demo_export_has_seed_hdl_and_fallback_rows_matching_the_store(demo_labeled):
    ws, _, _, run = demo_labeled
    frame = labels.export_frame(ws, run.hdl_id)
    assert list(frame.columns) == EXPORT_COLUMNS and len(frame) == 1797
    assert set(frame["source"]) == {"seed", "hdl", "fallback"}
    stored = ws.load_run(run.hdl_id)
    position = {int(i): p for p, i in enumerate(stored.item_ids)}
    items = ws.ok_items()
    for item_id, row in zip(items["id"], frame.itertuples(index=False)):
        p = position[int(item_id)]
        assert row.label == stored.label_names[p]
        if row.source == "seed":
            assert (row.confidence, row.step, row.round) == (1.0, -1, -1)
        else:
            assert row.source == ("fallback" if stored.result.fallback[p] else "hdl")
            assert row.confidence == pytest.approx(stored.result.confidence[p])
            assert (row.step, row.round) == (stored.result.step[p], stored.result.round[p])


# --------------------------------------------------------------------------- embeddings

def test_neighbour_graph_is_built_once_and_reloaded_by_a_fresh_workspace(colours_ws, monkeypatch):
    ws, _, _ = colours_ws
    calls = []
    real_build = pipeline.build_knn_graph

    def counting_build(X, k, **options):
        calls.append(k)
        return real_build(X, k, **options)

    monkeypatch.setattr(pipeline, "build_knn_graph", counting_build)
    embedding = pipeline.embed_workspace(ws, PIXELS)
    first = pipeline.neighbour_graph(ws, embedding)
    second = pipeline.neighbour_graph(ws, embedding, k=3)
    fresh = Workspace(ws.folder)
    third = pipeline.neighbour_graph(fresh, pipeline.require_embedding(fresh))
    pipeline.run_labeling(fresh, pipeline.require_embedding(fresh), KIntent.parse(3))
    assert calls == [pipeline.GRAPH_K]
    for graph in (second, third):
        np.testing.assert_array_equal(graph.indices, first.indices)
    # More neighbours than stored: a bigger graph is built, once.
    bigger = pipeline.neighbour_graph(ws, embedding, k=pipeline.GRAPH_K + 2)
    pipeline.neighbour_graph(ws, embedding, k=pipeline.GRAPH_K + 2)
    assert calls == [pipeline.GRAPH_K, pipeline.GRAPH_K + 2]
    np.testing.assert_array_equal(bigger.indices[:, :3], first.indices[:, :3])


def test_neighbour_graph_is_one_mapped_read_only_copy_with_int32_indices(colours_ws):
    ws, _, _ = colours_ws
    embedding = pipeline.embed_workspace(ws, PIXELS)
    built = pipeline.neighbour_graph(ws, embedding)
    loaded = pipeline.neighbour_graph(Workspace(ws.folder), embedding)
    exact = build_knn_graph(embedding.X, pipeline.GRAPH_K, method="exact")
    for graph in (built, loaded):
        assert graph.indices.dtype == np.int32 and graph.distances.dtype == np.float32
        # mapped from the saved files, not read into memory: every reader shares the pages
        assert isinstance(graph.indices.base, np.memmap) or isinstance(graph.indices, np.memmap)
        assert not graph.indices.flags.writeable and not graph.distances.flags.writeable
        np.testing.assert_array_equal(graph.indices, exact.indices)
        np.testing.assert_allclose(graph.distances, exact.distances, atol=1e-6)


def test_current_embedding_is_none_after_the_dataset_changes(colours_ws):
    ws, folder, _ = colours_ws
    embedding = pipeline.embed_workspace(ws, PIXELS)
    assert pipeline.current_embedding(ws).key == embedding.key

    (folder / "unlabeled" / "extra.png").write_bytes(png_bytes(COLOURS["red"], seed=999))
    pipeline.import_dataset(ws, load_folder(folder))
    assert pipeline.current_embedding(ws) is None
    with pytest.raises(PipelineError, match="embed them first"):
        pipeline.require_embedding(ws)

    again = pipeline.embed_workspace(ws, PIXELS)
    assert again.stats["encoded"] == 1          # only the new image
    assert pipeline.current_embedding(ws).key == again.key

    # Same paths, changed content: stale too.
    (folder / "unlabeled" / "extra.png").write_bytes(png_bytes(COLOURS["blue"], seed=998))
    pipeline.import_dataset(ws, load_folder(folder))
    assert pipeline.current_embedding(ws) is None


def test_import_embeddings_aligns_rows_by_path(colours_ws, roots):
    ws, folder, _ = colours_ws
    embedding = pipeline.embed_workspace(ws, PIXELS)
    direct = labels.export_frame(ws, pipeline.run_labeling(ws, embedding, KIntent.parse(3)).hdl_id)
    paths = pipeline.item_frame(ws)["path"].tolist()

    order = np.random.default_rng(1).permutation(len(paths))
    shuffled = [("./" + paths[i]) if j % 2 else paths[i] for j, i in enumerate(order)]
    other = open_workspace(folder, roots[1] / "other")
    imported = pipeline.import_embeddings(other, shuffled, embedding.X[order], label="made elsewhere")
    np.testing.assert_array_equal(imported.X, embedding.X)
    assert pipeline.current_embedding(other).label == "made elsewhere"
    via_import = labels.export_frame(other, pipeline.run_labeling(other, imported, KIntent.parse(3)).hdl_id)
    pd.testing.assert_frame_equal(via_import, direct)


def test_import_embeddings_names_missing_and_extra_paths(colours_ws):
    ws, _, _ = colours_ws
    paths = pipeline.item_frame(ws)["path"].tolist()
    X = np.eye(len(paths) + 1, dtype=np.float32)
    with pytest.raises(PipelineError, match=r"1 image\(s\) have no embedding row.*red/red1\.png"):
        pipeline.import_embeddings(ws, [p for p in paths if p != "red/red1.png"], X[:-2], label="x")
    with pytest.raises(PipelineError, match=r"1 row\(s\) name images not in the dataset.*cat\.png"):
        pipeline.import_embeddings(ws, paths + ["cat.png"], X, label="x")
    # One image written two ways would silently take one of two rows.
    with pytest.raises(PipelineError, match=r"appear twice: 'red/red0\.png' \(rows 4 and 24\)"):
        pipeline.import_embeddings(ws, paths + ["./red/red0.png"], X, label="x")
    with pytest.raises(PipelineError, match=r"shape \(25, 25\) do not match 24 paths"):
        pipeline.import_embeddings(ws, paths, X, label="x")
    assert pipeline.current_embedding(ws) is None


# --------------------------------------------------------------------------- seeds and runs

def test_seed_vector_includes_app_seeds_and_corrections(colours_ws):
    ws, _, _ = colours_ws
    items = pipeline.item_frame(ws)
    ids = dict(zip(items["path"], items["id"]))
    ws.set_seed(int(ids["unlabeled/blue5.png"]), "blue")                 # app seed
    ws.add_correction([int(ids["unlabeled/green4.png"])], "green")        # correction of a non-seed
    ws.add_correction([int(ids["red/red0.png"])], "purple")               # correction beats a seed
    y, classes = pipeline.seed_vector(ws, items["id"].to_numpy())
    assert classes == ["blue", "green", "red", "purple"]
    named = {path: (classes[label] if label >= 0 else None) for path, label in zip(items["path"], y)}
    assert named["unlabeled/blue5.png"] == "blue"
    assert named["unlabeled/green4.png"] == "green"
    assert named["red/red0.png"] == "purple" and named["red/red1.png"] == "red"
    assert int((y >= 0).sum()) == 6 + 2
    # Items not asked for are left out; the order follows item_ids.
    y_two, _ = pipeline.seed_vector(ws, items["id"].to_numpy()[::-1][:2])
    np.testing.assert_array_equal(y_two, y[::-1][:2])


def test_require_seeds_refuses_no_seeds_and_a_single_class():
    with pytest.raises(PipelineError, match="no seeds"):
        pipeline.require_seeds(np.full(5, -1), ["a", "b"])
    with pytest.raises(PipelineError, match="only one class has seeds .'b'."):
        pipeline.require_seeds(np.array([1, -1, 1, -1]), ["a", "b"])
    pipeline.require_seeds(np.array([0, -1, 1]), ["a", "b"])


def test_run_labeling_refuses_a_dataset_with_one_seeded_class(roots):
    data, workspaces = roots
    folder = data / "one"
    write_colour_folder(folder, seeds=2, unlabeled=2, seeded=["red"])
    ws = open_workspace(folder, workspaces / "one")
    with pytest.raises(PipelineError, match="only one class"):
        pipeline.run_labeling(ws, pipeline.embed_workspace(ws, PIXELS))
    assert ws.runs() == []


def test_k_intent_is_validated_at_the_door_and_resolved_at_the_run(colours_ws):
    ws, _, _ = colours_ws
    embedding = pipeline.embed_workspace(ws, PIXELS)
    assert KIntent.parse("5").k == 5 and KIntent.parse(" auto ").auto
    for bad in ("five", 0, -2, 2.5, True):
        with pytest.raises(ValueError, match="'auto' or a whole number"):
            KIntent.parse(bad)
    with pytest.raises(ValueError, match="noise_rate"):
        KIntent.parse("auto", noise_rate=1.0)
    with pytest.raises(PipelineError, match="at most 23"):
        pipeline.run_labeling(ws, embedding, KIntent.parse(24))
    run = pipeline.run_labeling(ws, embedding, KIntent.parse("4"), with_baseline=False)
    assert run.k == 4 and run.baseline_id is None and run.choice is None
    assert [(r.method, r.k) for r in ws.runs()] == [("hdl", 4)]


def test_auto_k_follows_the_seeds_and_the_intent_is_stored(colours_ws):
    ws, _, _ = colours_ws
    embedding = pipeline.embed_workspace(ws, PIXELS)
    assert pipeline.k_intent(ws) == KIntent()                     # nothing stored: auto
    run = pipeline.run_labeling(ws, embedding)                   # the default variant
    y, _ = pipeline.seed_vector(ws, embedding.item_ids)
    assert pipeline.labeling_variant(ws) == "reach"
    assert run.choice is None and run.k == resolve_k(KIntent(), embedding.X, y,
                                                     variant="reach")[0]
    assert ws.load_run(run.hdl_id).params["k_auto"] is True
    assert ws.load_run(run.hdl_id).params["variant"] == "reach"
    assert ws.load_run(run.hdl_id).params["bridge"] == "auto"    # exact on a small input
    assert ws.load_run(run.hdl_id).params["approximate_bridges"] == 0
    # the default's spread length follows the seeds' depth: the run records the one it ran
    graph = pipeline.neighbour_graph(ws, embedding, run.k)
    steps = spread_length(graph.indices[:, :run.k], y)
    hdl_params = ws.load_run(run.hdl_id).params
    assert hdl_params["spread_steps"] == steps and "spread_alpha" not in hdl_params
    assert run.result.spread == (steps, None)             # harmonic: no alpha
    assert "spread_steps" not in ws.load_run(run.baseline_id).params      # kNN-DV spreads nothing
    run = pipeline.run_labeling(ws, embedding, bridge="exact")
    assert ws.load_run(run.hdl_id).params["bridge"] == "exact"
    with pytest.raises(ValueError, match="bridge must be one of"):
        pipeline.run_labeling(ws, embedding, bridge="fast")
    pipeline.set_labeling_variant(ws, "paper")                   # one switch away
    run = pipeline.run_labeling(ws, embedding)
    assert run.choice is not None and run.k == resolve_k(KIntent(), embedding.X, y)[0]
    assert ws.load_run(run.hdl_id).params["variant"] == "paper"
    assert run.result.spread is None and "spread_steps" not in ws.load_run(run.hdl_id).params
    with pytest.raises(ValueError, match="variant must be one of"):
        pipeline.set_labeling_variant(ws, "fast")
    pipeline.set_k_intent(ws, KIntent.parse(2, noise_rate=0.3))
    assert pipeline.k_intent(ws) == KIntent(2, 0.3, 20)
    assert pipeline.run_labeling(ws, embedding).k == 2


def test_an_old_stored_k_choice_reads_as_an_intent(colours_ws):
    ws, _, _ = colours_ws
    ws.set_setting("k_choice", {"k": 7, "override": False, "noise_rate": 0.2, "k_max": 12})
    assert pipeline.k_intent(ws) == KIntent("auto", 0.2, 12)
    ws.set_setting("k_choice", {"k": 7, "override": True})
    assert pipeline.k_intent(ws) == KIntent(7)


def test_run_status_is_the_one_rule_for_a_current_run(colours_ws):
    ws, _, _ = colours_ws
    embedding = pipeline.embed_workspace(ws, PIXELS)
    assert pipeline.run_status(None, embedding) == pipeline.STALE
    run = ws.load_run(pipeline.run_labeling(ws, embedding, KIntent.parse(3)).hdl_id)
    seeds = pipeline.seed_vector(ws, embedding.item_ids)
    assert pipeline.run_status(run, embedding, seeds) == pipeline.CURRENT
    assert pipeline.run_status(ws.runs("hdl")[-1], embedding) == pipeline.CURRENT
    unlabeled = int(embedding.item_ids[np.flatnonzero(seeds[0] < 0)[0]])
    now = ws.current_labels()[unlabeled][0]
    ws.add_correction([unlabeled], next(c for c in seeds[1] if c != now))
    assert pipeline.run_status(run, embedding, pipeline.seed_vector(ws, embedding.item_ids)) \
        == pipeline.SEEDS_CHANGED
    other = pipeline.Embedding("another-key", embedding.X, embedding.item_ids, "x")
    assert pipeline.run_status(run, other) == pipeline.STALE


def test_hdl_and_its_knn_dv_run_are_linked_in_the_store(colours_ws):
    ws, _, _ = colours_ws
    embedding = pipeline.embed_workspace(ws, PIXELS)
    first = pipeline.run_labeling(ws, embedding, KIntent.parse(3))
    alone = pipeline.run_labeling(ws, embedding, KIntent.parse(3), with_baseline=False)
    assert ws.load_run(first.hdl_id).baseline_id == first.baseline_id
    assert ws.load_run(alone.hdl_id).baseline_id is None
    assert ws.load_run(first.baseline_id).method == "knn_dv"
    with pytest.raises(ValueError, match="compares_to"):
        ws.save_run(method="knn_dv", params={}, result=first.result, classes=ws.classes(),
                    item_ids=embedding.item_ids, compares_to=first.baseline_id)


def test_labels_follow_the_colours_and_stored_result_replays(colours_ws):
    ws, _, truth = colours_ws
    run = pipeline.run_labeling(ws, pipeline.embed_workspace(ws, PIXELS), KIntent.parse(3))
    frame = labels.export_frame(ws, run.hdl_id)
    assert dict(zip(frame["path"], frame["label"])) == truth
    replay = ws.load_run(run.hdl_id).result
    for name in ("labels", "step", "round", "n_voters", "fallback", "source"):
        np.testing.assert_array_equal(getattr(replay, name), getattr(run.result, name))
    np.testing.assert_allclose(replay.confidence, run.result.confidence)
    assert replay.k == 3 and replay.n_rounds == run.result.n_rounds


# --------------------------------------------------------------------------- export

def test_export_frame_sources_seed_hdl_fallback_and_manual(roots):
    data, workspaces = roots
    folder = data / "bridge"
    # Blue has no seed and its images are each other's nearest neighbours: HDL must bridge.
    truth = write_colour_folder(folder, seeds=2, unlabeled=6, seeded=["red", "green"])
    ws = open_workspace(folder, workspaces / "bridge")
    before = labels.export_frame(ws)
    assert before["label"].notna().sum() == 4 and set(before["source"].dropna()) == {"seed"}

    run = pipeline.run_labeling(ws, pipeline.embed_workspace(ws, PIXELS), KIntent.parse(3))
    items = pipeline.item_frame(ws)
    ids = dict(zip(items["path"], items["id"]))
    ws.add_correction([int(ids["unlabeled/green5.png"])], "lime")
    frame = labels.export_frame(ws, run.hdl_id).set_index("path")

    assert set(frame["source"]) == {"seed", "hdl", "fallback", "manual"}
    manual = frame.loc["unlabeled/green5.png"]
    assert (manual["label"], manual["source"], manual["confidence"]) == ("lime", "manual", 1.0)
    assert (manual["step"], manual["round"]) == (-1, -1)
    bridged = frame[frame["source"] == "fallback"]
    assert bridged.index.str.startswith("unlabeled/blue").any()
    assert (bridged["confidence"] <= 0.5).all() and (bridged["step"] >= 0).all()
    # The bridged class is named after the seed it copied from; its images stay together.
    assert frame.loc[[p for p in truth if "blue" in p], "label"].nunique() == 1
    current = ws.current_labels(run.hdl_id)
    for path, row in frame.iterrows():
        assert current[int(ids[path])] == (row["label"], row["source"])


def test_neutralise_cell_quotes_formula_starts_only():
    for text in ("=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert pipeline.neutralise_cell(text) == "'" + text
    for value in ("a=b", "cat", "", -1, 0.5, None):
        assert pipeline.neutralise_cell(value) == value


def test_csv_export_neutralises_formula_cells_and_round_trips_numbers(roots):
    data, workspaces = roots
    folder = data / "evil"
    colours = {"=cmd()": COLOURS["red"], "green": COLOURS["green"]}
    write_colour_folder(folder, seeds=2, unlabeled=3, colours=colours)
    (folder / "@top.png").write_bytes(png_bytes(COLOURS["green"], seed=77))
    (folder / "+plus.png").write_bytes(png_bytes(COLOURS["red"], seed=78))
    ws = open_workspace(folder, workspaces / "evil")
    run = pipeline.run_labeling(ws, pipeline.embed_workspace(ws, PIXELS), KIntent.parse(3))
    frame = labels.export_frame(ws, run.hdl_id)

    data_bytes = pipeline.to_csv_bytes(frame)
    back = pd.read_csv(io.BytesIO(data_bytes), keep_default_na=False)
    assert list(back.columns) == EXPORT_COLUMNS
    texts = [cell for column in ("path", "label", "source") for cell in back[column]]
    assert not [cell for cell in texts if cell[:1] in ("=", "+", "-", "@")]
    assert {"'@top.png", "'+plus.png", "'=cmd()/=cmd()0.png"} <= set(back["path"])
    assert "'=cmd()" in set(back["label"]) and "=cmd()" in set(frame["label"])
    # Numbers are not quoted: they read back as numbers, equal to what was exported.
    assert back["step"].dtype.kind == "i" and back["round"].dtype.kind == "i"
    np.testing.assert_array_equal(back["step"], frame["step"])
    np.testing.assert_array_equal(back["round"], frame["round"])
    np.testing.assert_allclose(back["confidence"].astype(float), frame["confidence"], rtol=1e-5)
    assert (back["step"] == -1).any()            # negative numbers are left alone


def test_csv_export_of_an_object_dtype_frame_is_neutralised_too():
    frame = pd.DataFrame({"path": pd.Series(["-a.png", "b.png"], dtype=object),
                          "label": pd.Series(["@x", None], dtype=object),
                          "confidence": [0.25, np.nan]})
    back = pd.read_csv(io.BytesIO(pipeline.to_csv_bytes(frame)))
    assert back["path"].tolist() == ["'-a.png", "b.png"]
    assert back["label"].iloc[0] == "'@x" and pd.isna(back["label"].iloc[1])
    assert back["confidence"].iloc[0] == 0.25 and pd.isna(back["confidence"].iloc[1])


def test_json_export_is_a_list_of_rows_with_null_for_missing(colours_ws):
    ws, _, _ = colours_ws
    frame = labels.export_frame(ws)                 # before any run: seeds only
    rows = json.loads(pipeline.to_json_bytes(frame).decode("utf-8"))
    assert len(rows) == len(frame) and all(list(row) == EXPORT_COLUMNS for row in rows)
    by_path = {row["path"]: row for row in rows}
    assert by_path["red/red0.png"] == {"path": "red/red0.png", "label": "red", "source": "seed",
                                       "confidence": 1.0, "step": -1, "round": -1}
    unlabeled = by_path["unlabeled/red5.png"]
    assert unlabeled["label"] is None and unlabeled["source"] is None
    assert unlabeled["confidence"] is None and unlabeled["step"] == -1


def test_imagefolder_zip_has_a_folder_per_class_and_no_unlabeled_file(roots):
    data, workspaces = roots
    folder = data / "zipme"
    write_colour_folder(folder, seeds=2, unlabeled=2)
    # Same file name in two folders: both must survive in the archive.
    (folder / "unlabeled" / "red0.png").write_bytes(png_bytes(COLOURS["red"], seed=500))
    # A name that flattening "red/red0.png" would also give: renamed, not overwritten.
    (folder / "red__red0.png").write_bytes(png_bytes(COLOURS["red"], seed=501))
    ws = open_workspace(folder, workspaces / "zipme")

    seeds_only = labels.export_frame(ws)
    with zipfile.ZipFile(io.BytesIO(pipeline.imagefolder_zip(ws, seeds_only))) as archive:
        names = archive.namelist()
    assert sorted(names) == sorted(f"{c}/{c}__{c}{i}.png" for c in COLOURS for i in range(2))

    run = pipeline.run_labeling(ws, pipeline.embed_workspace(ws, PIXELS), KIntent.parse(3))
    frame = labels.export_frame(ws, run.hdl_id)
    frame.loc[frame["path"] == "unlabeled/blue3.png", "label"] = None      # left unlabeled
    seen = []
    target = workspaces / "export.zip"
    pipeline.imagefolder_zip(ws, frame, target, progress=lambda done, total: seen.append((done, total)))
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert archive.read("red/unlabeled__red0.png") == (folder / "unlabeled" / "red0.png").read_bytes()
        assert archive.read("red/red__red0.png") == (folder / "red" / "red0.png").read_bytes()
        assert archive.read("red/red__red0~2.png") == (folder / "red__red0.png").read_bytes()
    counts = pd.Series([name.split("/")[0] for name in names]).value_counts().to_dict()
    assert counts == {"red": 6, "green": 4, "blue": 3}
    assert len(names) == len(set(names)) == frame["label"].notna().sum() == len(frame) - 1
    assert not any("blue3" in name for name in names)
    assert seen[-1] == (13, 13)


def test_imagefolder_zip_folder_names_are_safe_on_every_system(colours_ws):
    ws, _, _ = colours_ws
    frame = labels.export_frame(ws)
    labelled = frame[frame["label"].notna()].index
    frame.loc[labelled[0], "label"] = 'we|ird: "name"?.'
    frame.loc[labelled[1], "label"] = "a/b\\c<d>*\x07"
    with zipfile.ZipFile(io.BytesIO(pipeline.imagefolder_zip(ws, frame))) as archive:
        folders = {name.split("/")[0] for name in archive.namelist()}
    assert 'we_ird_ _name__' in folders and "a_b_c_d___" in folders
    assert not any(set(folder) & set('<>:"|?*\\') for folder in folders)


def test_imagefolder_zip_keeps_classes_apart_whose_folders_would_meet(colours_ws):
    # "a/b" and "a_b" make the same folder name; "Cat" and "cat" one folder once unpacked
    # on macOS or Windows; "con" is a device name there: each class keeps a folder of its own
    ws, _, _ = colours_ws
    frame = labels.export_frame(ws)
    labelled = frame[frame["label"].notna()].index
    names = ["a/b", "a_b", "Cat", "cat", "con"]
    frame.loc[labelled[:5], "label"] = names
    with zipfile.ZipFile(io.BytesIO(pipeline.imagefolder_zip(ws, frame))) as archive:
        folder_of = {name.split("/")[1]: name.split("/")[0] for name in archive.namelist()}
    paths = frame.loc[labelled[:5], "path"].str.replace("/", "__")
    got = [folder_of[path] for path in paths]
    assert got == ["a_b", "a_b~2", "Cat", "cat~2", "_con"]
    assert len({folder.casefold() for folder in folder_of.values()}) == len(set(frame["label"].dropna()))


def test_knn_dv_run_afterwards_is_the_one_run_labeling_saves_beside_the_run(colours_ws):
    ws, _, _ = colours_ws
    embedding = pipeline.embed_workspace(ws, PIXELS)
    together = pipeline.run_labeling(ws, embedding, KIntent.parse(3))
    alone = pipeline.run_labeling(ws, embedding, KIntent.parse(3), with_baseline=False)
    assert alone.baseline_id is None and ws.load_run(alone.hdl_id).baseline_id is None
    version = ws.labels_version()
    later = pipeline.run_baseline(ws, embedding, alone.hdl_id)
    assert ws.labels_version() != version           # the run's kNN-DV column is new
    assert ws.load_run(alone.hdl_id).baseline_id == later
    inline, afterwards = ws.load_run(together.baseline_id), ws.load_run(later)
    assert afterwards.params == inline.params and afterwards.k == inline.k == 3
    for name in ("labels", "step", "confidence", "n_voters"):
        np.testing.assert_array_equal(getattr(afterwards.result, name),
                                      getattr(inline.result, name))
    with pytest.raises(PipelineError, match="not an HDL run"):
        pipeline.run_baseline(ws, embedding, later)
    reordered = dataclasses.replace(embedding, item_ids=embedding.item_ids[::-1].copy())
    with pytest.raises(PipelineError, match="run HDL again"):
        pipeline.run_baseline(ws, reordered, alone.hdl_id)

"""Tests for hdl_core.workspace.store: the workspace database, its history, its durability."""
from __future__ import annotations

import os
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hdl_core.workspace import schema
from hdl_core.hdl import LabelingResult
from hdl_core.data import Dataset, Item, Skipped
from hdl_core.workspace.store import StoredRun, StoreError, Workspace

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers

def make_dataset(root="/data/pets", n_unlabeled=4, extra=(), skipped=(("broken.png", "truncated"),),
                 truth=None) -> Dataset:
    """Two layout seeds per class (cat, dog), a CSV-style seed, and unlabeled images."""
    items = [
        Item("cat/a.png", "h-cat-a", 10, "cat"),
        Item("cat/b.png", "h-cat-b", 11, "cat"),
        Item("dog/a.png", "h-dog-a", 12, "dog"),
        Item("dog/b.png", "h-dog-b", 13, "dog"),
        Item("misc/c.png", "h-misc-c", 14, "cat"),          # labeled by a CSV, not by its folder
    ]
    items += [Item(f"unlabeled/u{i}.png", f"h-u{i}", 100 + i) for i in range(n_unlabeled)]
    items += list(extra)
    return Dataset(root=Path(root), items=items,
                   skipped=[Skipped(path, reason) for path, reason in skipped], truth=truth)


def big_dataset(n: int) -> Dataset:
    items = [Item(f"img/{i:06d}.png", f"{i:064x}", 1000 + i, "a" if i < 5 else "b" if i < 10 else None)
             for i in range(n)]
    return Dataset(root=Path("/data/big"), items=items)


def fake_result(n: int, n_classes: int, seed: int = 0, k: int = 3) -> LabelingResult:
    """Arrays of the right shapes and types; not a labeling HDL could produce."""
    rng = np.random.default_rng(seed)
    return LabelingResult(
        labels=rng.integers(0, n_classes, n),
        step=rng.integers(-1, 5, n),
        round=rng.integers(-1, 3, n),
        confidence=rng.random(n),
        n_voters=rng.integers(0, 10, n),
        fallback=rng.random(n) < 0.1,
        source=np.where(rng.random(n) < 0.2, rng.integers(0, n, n), -1),
        k=k,
    )


def id_of(ws: Workspace, path: str) -> int:
    items = ws.items()
    return int(items.loc[items["path"] == path, "id"].iloc[0])


@pytest.fixture
def ws(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    workspace.set_dataset(make_dataset())
    yield workspace
    workspace.close()


def run_child(script: str, *args: str) -> subprocess.Popen:
    """Start `python -c script args...` with the project importable."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], cwd=REPO_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"child exited early ({process.returncode}): {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"child never wrote {path.name}")
        time.sleep(0.01)


def integrity(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


# --------------------------------------------------------------------------- opening

def test_workspace_creates_folder_and_database_with_durable_settings(tmp_path):
    folder = tmp_path / "deep" / "ws"
    with Workspace(folder) as ws:
        assert ws.db_path == folder / "workspace.sqlite" and ws.db_path.exists()
        conn = ws._conn()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert schema.SCHEMA_VERSION == len(schema.MIGRATIONS)


def test_folder_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        Workspace(path)


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    (tmp_path / "workspace.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="is damaged.*not a database"):
        Workspace(tmp_path)
    assert (tmp_path / "workspace.sqlite").read_bytes() == b"this is not sqlite" * 100


def test_close_then_use_reopens_and_data_persists(tmp_path):
    ws = Workspace(tmp_path)
    ws.add_class("cat")
    ws.close()
    assert ws.classes() == ["cat"]                 # lazily reopened
    ws.close()
    with Workspace(tmp_path) as again:
        assert again.classes() == ["cat"]


# --------------------------------------------------------------------------- migrations

def test_database_newer_than_the_code_is_refused(tmp_path):
    Workspace(tmp_path).close()
    with sqlite3.connect(tmp_path / "workspace.sqlite") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99.*upgrade hdl-studio"):
        Workspace(tmp_path)


def test_older_database_is_migrated_at_open_keeping_its_data(tmp_path, monkeypatch):
    today = len(schema.MIGRATIONS)
    with Workspace(tmp_path) as ws:                 # a database at today's version
        ws.set_dataset(make_dataset())
        ws.add_correction([id_of(ws, "unlabeled/u0.png")], "dog")

    def add_note_column(conn):
        conn.execute("ALTER TABLE corrections ADD COLUMN note TEXT")

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + [add_note_column])
    with Workspace(tmp_path) as ws:
        conn = ws._conn()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == today + 1
        columns = [row[1] for row in conn.execute("PRAGMA table_info(corrections)")]
        assert "note" in columns
        assert len(ws.corrections()) == 1
        assert ws.seeds()[id_of(ws, "unlabeled/u0.png")] == "dog"


def test_failed_migration_leaves_the_database_unchanged(tmp_path, monkeypatch):
    Workspace(tmp_path).close()

    def half_done(conn):
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    today = len(schema.MIGRATIONS)
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + [half_done])
    with pytest.raises(StoreError, match=f"from version {today} to {today + 1} failed.*boom"):
        Workspace(tmp_path)
    with sqlite3.connect(tmp_path / "workspace.sqlite") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == today
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in tables


def test_version_1_runs_get_their_knn_dv_partner_linked_by_the_migration(tmp_path):
    """Before links were stored, a kNN-DV run saved right after an HDL run (same k, same
    embedding) was its baseline; the migration turns that guess into a stored link once."""
    folder = tmp_path / "old"
    folder.mkdir()
    conn = sqlite3.connect(folder / "workspace.sqlite", isolation_level=None)
    schema._migrate_0_to_1(conn)
    conn.execute("PRAGMA user_version = 1")
    rows = [("hdl", 3, "e1"), ("knn_dv", 3, "e1"), ("hdl", 4, "e1"), ("knn_dv", 5, "e1"),
            ("hdl", 3, "e2"), ("knn_dv", 3, "e1")]
    for method, k, embedding in rows:
        conn.execute("INSERT INTO runs(created, method, k, params, classes) VALUES (?, ?, ?, ?, '[]')",
                     ("2026-01-01", method, k, json.dumps({"embedding": embedding})))
    conn.close()
    with Workspace(folder) as ws:
        links = {info.run_id: info.baseline_id for info in ws.runs("hdl")}
    # run 2 pairs with 1; run 3's follower has another k; run 5's another embedding
    assert links == {1: 2, 3: None, 5: None}


def test_version_4_runs_are_moved_from_rows_into_array_files(tmp_path):
    """Runs stored one row per item (schema 4) come out of the migration as array files
    with every field as it was; a source item id becomes its position in the run."""
    folder = tmp_path / "old"
    folder.mkdir()
    conn = sqlite3.connect(folder / "workspace.sqlite", isolation_level=None)
    for migration in schema.MIGRATIONS[:4]:
        migration(conn)
    conn.execute("PRAGMA user_version = 4")
    conn.executemany("INSERT INTO items(id, path, content_hash, size, status) VALUES (?, ?, ?, 1, 'ok')",
                     [(i, f"img/{i}.png", f"h{i}") for i in (7, 8, 9)])
    conn.execute("INSERT INTO runs(id, created, method, k, params, classes) "
                 "VALUES (1, '2026-01-01', 'hdl', 2, '{}', '[\"a\", \"b\"]')")
    # run order 9, 7, 8: item 8 was bridged from item 9 (position 0); item 7's confidence NaN
    conn.executemany('INSERT INTO run_items(run_id, position, item_id, label, step, "round", '
                     "confidence, n_voters, fallback, source_item) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(0, 9, 0, -1, -1, 1.0, 0, 0, None), (1, 7, 1, 0, 0, None, 2, 0, None),
                      (2, 8, 0, 1, 1, 0.25, 0, 1, 9)])
    conn.close()
    with Workspace(folder) as ws:
        tables = {name for (name,) in ws._conn().execute("SELECT name FROM sqlite_master")}
        run = ws.load_run(1)
        assert ws.runs()[0].n_items == 3
    assert "run_items" not in tables
    assert run.item_ids.tolist() == [9, 7, 8]
    assert run.result.labels.tolist() == [0, 1, 0] and run.result.step.tolist() == [-1, 0, 1]
    assert run.result.source.tolist() == [-1, -1, 0] and run.result.fallback.tolist() == [False, False, True]
    assert np.isnan(run.result.confidence[1]) and run.result.confidence[2] == 0.25
    assert [p.suffix for p in (folder / "runs").iterdir()] == [".arrow"]


def test_a_damaged_run_file_is_reported_naming_it(ws):
    ids = ws.ok_items()["id"].to_numpy()
    ws.save_run(method="hdl", params={}, result=fake_result(len(ids), 2), classes=["cat", "dog"],
                item_ids=ids)
    (file,) = (ws.folder / "runs").iterdir()
    file.write_bytes(file.read_bytes()[:100])
    from hdl_core.workspace import _tables
    _tables._read_run_file.cache_clear()
    with pytest.raises(StoreError, match=r"runs/run-1-.*\.arrow.*is damaged.*run HDL again"):
        ws.load_run()


def test_an_empty_database_file_is_reported_not_silently_recreated(tmp_path):
    sqlite3.connect(tmp_path / "workspace.sqlite").close()      # an empty file: cut short
    with pytest.raises(StoreError, match="is damaged.*0 bytes"):
        Workspace(tmp_path)
    assert (tmp_path / "workspace.sqlite").stat().st_size == 0   # left as it was


# --------------------------------------------------------------------------- dataset

def test_set_dataset_stores_items_skipped_classes_and_seeds(ws):
    items = ws.items()
    assert list(items.columns) == ["id", "path", "content_hash", "size", "status", "skip_reason"]
    assert len(items) == 10 and items["id"].is_monotonic_increasing
    broken = items[items["path"] == "broken.png"].iloc[0]
    assert broken["status"] == "skipped" and broken["skip_reason"] == "truncated"
    assert pd.isna(broken["content_hash"]) and items["size"].isna().sum() == 1
    assert items["skip_reason"].isna().sum() == 9
    assert ws.classes() == ["cat", "dog"]
    assert {ws.items().set_index("id").loc[i, "path"]: c for i, c in ws.seeds().items()} == {
        "cat/a.png": "cat", "cat/b.png": "cat", "dog/a.png": "dog", "dog/b.png": "dog",
        "misc/c.png": "cat"}
    assert ws.dataset_root() == Path("/data/pets")


def test_seed_source_is_layout_when_the_folder_names_the_class_else_csv(ws):
    rows = dict(ws._conn().execute(
        "SELECT i.path, s.source FROM seeds s JOIN items i ON i.id = s.item_id").fetchall())
    assert rows["cat/a.png"] == "layout" and rows["misc/c.png"] == "csv"


def test_ok_items_are_the_accepted_items_ordered_by_path(tmp_path):
    with Workspace(tmp_path) as ws:
        extra = [Item("a_first.png", "h1", 1), Item("zz/last.png", "h2", 2), Item("Upper.png", "h3", 3)]
        ws.set_dataset(make_dataset(extra=extra))
        ok = ws.ok_items()
        assert list(ok["path"]) == sorted(ok["path"])
        assert "broken.png" not in set(ok["path"]) and len(ok) == 12
        assert list(ok.index) == list(range(12))


def test_rescan_keeps_ids_and_history_of_surviving_paths_and_marks_gone_ones_missing(ws):
    u0, u1 = id_of(ws, "unlabeled/u0.png"), id_of(ws, "unlabeled/u1.png")
    ws.add_correction([u0, u1], "dog")
    ids = ws.ok_items()["id"].to_numpy()
    ws.save_run(method="hdl", params={}, result=fake_result(len(ids), 2), classes=["cat", "dog"],
                item_ids=ids)
    changed = make_dataset(n_unlabeled=1, extra=[Item("new/n.png", "h-new", 5)])
    changed.items[5] = Item("unlabeled/u0.png", "h-u0-edited", 999)       # same path, new bytes
    assert ws.set_dataset(changed) == {"moved": 0, "missing": 3}

    assert id_of(ws, "unlabeled/u0.png") == u0
    assert ws.items().set_index("id").loc[u0, "content_hash"] == "h-u0-edited"
    assert ws.items().set_index("id").loc[u1, "status"] == "missing"     # not deleted
    assert "unlabeled/u1.png" not in set(ws.ok_items()["path"])
    history = ws.corrections()
    assert list(history["item_id"]) == [u0, u1]            # u1's correction is kept
    assert ws.seeds()[u0] == "dog" and u1 not in ws.seeds() and u1 not in ws.current_labels()
    run = ws.load_run()
    assert len(run.item_ids) == len(ids)                   # runs keep their rows
    new_id = id_of(ws, "new/n.png")
    assert new_id > max(ids)                               # ids are never reused
    ws.set_dataset(make_dataset())                         # u1 is back: so is its correction
    assert ws.seeds()[u1] == "dog"


def test_item_that_becomes_unreadable_is_marked_skipped_and_loses_its_labels(ws):
    cat = id_of(ws, "cat/a.png")
    dataset = make_dataset(skipped=[("broken.png", "truncated"), ("cat/a.png", "truncated")])
    dataset.items = [item for item in dataset.items if item.path != "cat/a.png"]
    ws.set_dataset(dataset)
    row = ws.items().set_index("id").loc[cat]
    assert row["status"] == "skipped" and row["skip_reason"] == "truncated"
    assert cat not in ws.seeds() and cat not in ws.current_labels()
    ws.set_dataset(make_dataset())                         # readable again: its seed comes back
    assert ws.seeds()[cat] == "cat"


def test_app_seeds_survive_a_rescan_and_win_over_dataset_seeds(ws):
    u0, cat = id_of(ws, "unlabeled/u0.png"), id_of(ws, "cat/a.png")
    ws.set_seed(u0, "bird")
    ws.set_seed(cat, "dog")
    ws.set_dataset(make_dataset())
    seeds = ws.seeds()
    assert seeds[u0] == "bird" and seeds[cat] == "dog"
    assert ws.classes() == ["cat", "dog", "bird"]


def test_set_seed_none_removes_the_seed(ws):
    cat = id_of(ws, "cat/a.png")
    ws.set_seed(cat, None)
    assert cat not in ws.seeds()


def test_dataset_with_a_repeated_path_is_refused(tmp_path):
    dataset = make_dataset(skipped=[("cat/a.png", "empty file")])
    with Workspace(tmp_path) as ws, pytest.raises(ValueError, match="'cat/a.png' appears more than once"):
        ws.set_dataset(dataset)


def test_truth_comes_with_the_dataset_and_goes_when_the_root_changes(tmp_path):
    with Workspace(tmp_path) as ws:
        assert ws.truth() is None
        ws.set_dataset(make_dataset(truth={"unlabeled/u0.png": "cat"}))
        assert ws.truth() == {"unlabeled/u0.png": "cat"}
        ws.set_dataset(make_dataset())                     # rescan of the same root, no truth given
        assert ws.truth() == {"unlabeled/u0.png": "cat"}
        ws.set_dataset(make_dataset(root="/data/other"))
        assert ws.truth() is None
        ws.set_truth({"x.png": "dog"})
        assert ws.truth() == {"x.png": "dog"}
        with pytest.raises(ValueError, match="label strings"):
            ws.set_truth({"x.png": 3})


# --------------------------------------------------------------------------- classes

def test_classes_keep_their_order_and_add_class_is_idempotent(ws):
    assert ws.add_class("  bird ") is True
    assert ws.add_class("bird") is False
    assert ws.classes() == ["cat", "dog", "bird"]


@pytest.mark.parametrize("bad", [3, None, "", "   ", b"cat"])
def test_class_names_must_be_non_empty_strings(ws, bad):
    with pytest.raises(ValueError, match="class name"):
        ws.add_class(bad)


# --------------------------------------------------------------------------- corrections

def test_correction_to_a_new_class_creates_it_and_makes_the_items_seeds(ws):
    u0, u1 = id_of(ws, "unlabeled/u0.png"), id_of(ws, "unlabeled/u1.png")
    ids = ws.add_correction([u0, u1], "bird")
    assert len(ids) == 2 and ids[1] == ids[0] + 1
    assert ws.classes()[-1] == "bird"
    assert ws.seeds()[u0] == "bird" and ws.seeds()[u1] == "bird"
    history = ws.corrections()
    assert list(history["source"]) == ["manual", "manual"] and history["batch"].nunique() == 1
    assert history["old_label"].isna().all() and list(history["new_label"]) == ["bird"] * 2


def test_correction_records_the_label_the_item_had(ws):
    ids = ws.ok_items()["id"].to_numpy()
    result = fake_result(len(ids), 2)
    result.labels[:] = 1
    ws.save_run(method="hdl", params={}, result=result, classes=["cat", "dog"], item_ids=ids)
    u0, cat = id_of(ws, "unlabeled/u0.png"), id_of(ws, "cat/a.png")
    ws.add_correction([u0, cat], "bird")
    assert list(ws.corrections()["old_label"]) == ["dog", "cat"]      # run label, seed label
    ws.add_correction([u0], "cat", source="bulk", old_labels=["dog"])
    assert ws.corrections()["old_label"].iloc[-1] == "dog"


def test_repeated_ids_in_a_selection_are_corrected_once(ws):
    u0 = id_of(ws, "unlabeled/u0.png")
    assert len(ws.add_correction(np.array([u0, u0]), "cat")) == 1
    assert ws.add_correction([], "cat") == []
    assert len(ws.corrections()) == 1


def test_undo_is_recorded_and_restores_the_previous_label(ws):
    u0, cat = id_of(ws, "unlabeled/u0.png"), id_of(ws, "cat/a.png")
    ws.add_correction([u0], "dog")
    ws.add_correction([u0, cat], "bird")
    assert ws.seeds()[u0] == "bird" and ws.seeds()[cat] == "bird"

    report = ws.undo_last_correction()
    assert report.changes == [("unlabeled/u0.png", "dog", "bird"), ("cat/a.png", "cat", "bird")]
    assert report.removed_classes == ["bird"] and "bird" not in ws.classes()
    assert report.describe() == ("Undid the label of 2 images: unlabeled/u0.png dog → bird, "
                                 "cat/a.png cat → bird. Class 'bird' went away with it.")
    assert ws.seeds()[u0] == "dog" and ws.seeds()[cat] == "cat"
    history = ws.corrections()
    assert len(history) == 5                              # 3 corrections + 2 undo rows, nothing erased
    undo_rows = history[history["source"] == "undo"]
    assert list(undo_rows["undoes"]) == list(history["id"].iloc[1:3])
    assert list(undo_rows["new_label"]) == ["dog", "cat"] and undo_rows["batch"].nunique() == 1
    assert list(history["undone"]) == [False, True, True, False, False]

    assert ws.undo_last_correction() is not None
    assert u0 not in ws.seeds()
    assert ws.undo_last_correction() is None
    assert len(ws.corrections()) == 6


def test_a_correction_that_changes_nothing_is_not_recorded(ws):
    u0, cat = id_of(ws, "unlabeled/u0.png"), id_of(ws, "cat/a.png")
    assert ws.add_correction([cat], "cat") == []              # a seed of cat already
    ws.add_correction([u0], "dog")
    assert ws.add_correction([u0], "dog") == []
    assert len(ws.add_correction([u0, cat], "dog")) == 1      # only the cat seed changes
    assert len(ws.corrections()) == 2


def test_undo_takes_back_the_actors_own_last_batch_only(ws):
    u0, u1 = id_of(ws, "unlabeled/u0.png"), id_of(ws, "unlabeled/u1.png")
    ws.add_correction([u0], "dog", actor="tab A")
    ws.add_correction([u1], "cat", actor="tab B")
    report = ws.undo_last_correction(actor="tab A")
    assert report.changes == [("unlabeled/u0.png", None, "dog")]
    assert u0 not in ws.seeds() and ws.seeds()[u1] == "cat"  # B's work untouched
    assert ws.undo_last_correction(actor="tab A") is None
    history = ws.corrections()
    assert history["actor"].tolist() == ["tab A", "tab B", "tab A"]
    with pytest.raises(ValueError, match="actor"):
        ws.add_correction([u0], "dog", actor="  ")


def test_undo_of_a_named_batch_leaves_later_ones_alone(ws):
    u0, u1 = id_of(ws, "unlabeled/u0.png"), id_of(ws, "unlabeled/u1.png")
    first = ws.batch_of(ws.add_correction([u0], "dog", actor="me")[0])
    ws.add_correction([u1], "cat", actor="me")
    assert ws.undo_last_correction(actor="me", batch=first).changes[0][2] == "dog"
    assert u0 not in ws.seeds() and ws.seeds()[u1] == "cat"
    assert ws.undo_last_correction(actor="me", batch=first) is None      # undone already
    assert ws.undo_last_correction(actor="someone else") is None
    with pytest.raises(ValueError, match="not in this workspace"):
        ws.batch_of(999)


def test_confirmed_labels_become_seeds_and_undo_like_corrections(ws):
    ids = ws.ok_items()["id"].to_numpy()
    result = fake_result(len(ids), 2)
    result.labels[:] = 1
    result.step[:] = np.arange(len(ids))
    ws.save_run(method="hdl", params={}, result=result, classes=["cat", "dog"], item_ids=ids)
    u0, u1, cat = id_of(ws, "unlabeled/u0.png"), id_of(ws, "unlabeled/u1.png"), id_of(ws, "cat/a.png")
    assert ws.current_labels()[u0] == ("dog", "hdl")
    assert len(ws.confirm([u0, u1, cat], actor="me")) == 2   # the seed needs no confirmation
    assert ws.current_labels()[u0] == ("dog", "confirmed")
    assert ws.seeds()[u0] == "dog" and ws.confirm([u0]) == []
    ws.add_correction([u1], "cat")                             # a later correction wins
    assert ws.current_labels()[u1] == ("cat", "manual")
    ws.undo_last_correction()
    assert ws.current_labels()[u1] == ("dog", "confirmed")
    report = ws.undo_last_correction(actor="me")
    assert report.kind == "confirm" and report.describe().startswith("Undid the confirmation of 2")
    assert ws.current_labels()[u0] == ("dog", "hdl")


def test_classes_keep_the_colour_they_were_created_with(ws):
    before = ws.class_colours()
    assert list(before) == ["cat", "dog"] and len(set(before.values())) == 2
    ws.add_class("bird")
    ws.delete_class("cat", reassign_to="dog")
    after = ws.class_colours()
    assert after["dog"] == before["dog"] and after["bird"] not in before.values()
    assert "#848482" not in after.values()                    # grey means "not labeled yet"


def test_rename_reaches_seeds_corrections_runs_and_truth(ws):
    ids = ws.ok_items()["id"].to_numpy()
    result = fake_result(len(ids), 2)
    result.labels[:] = 1
    ws.save_run(method="hdl", params={}, result=result, classes=["cat", "dog"], item_ids=ids)
    ws.set_truth({"cat/a.png": "cat"})
    u0 = id_of(ws, "unlabeled/u0.png")
    ws.add_correction([u0], "cat")
    ws.rename_class("cat", "kitten")
    assert ws.classes() == ["kitten", "dog"]
    assert ws.seeds()[u0] == "kitten" and ws.seeds()[id_of(ws, "cat/a.png")] == "kitten"
    assert ws.load_run().classes == ["kitten", "dog"]
    assert ws.truth() == {"cat/a.png": "kitten"}
    assert "cat" not in {label for label, _ in ws.current_labels().values()}
    with pytest.raises(ValueError, match="already a class named 'dog'.*merge"):
        ws.rename_class("kitten", "dog")
    with pytest.raises(ValueError, match="no class 'cow'"):
        ws.rename_class("cow", "bull")


def test_merge_moves_every_label_and_keeps_the_history(ws):
    ids = ws.ok_items()["id"].to_numpy()
    result = fake_result(len(ids), 2)
    result.labels[:] = 0
    result.step[:] = np.arange(len(ids))
    ws.save_run(method="hdl", params={}, result=result, classes=["cat", "dog"], item_ids=ids)
    u0 = id_of(ws, "unlabeled/u0.png")
    ws.add_correction([u0], "dog")
    moved = ws.merge_classes("dog", "cat")
    assert (moved.seeds, moved.corrections) == (2, 1)
    assert ws.classes() == ["cat"]
    assert set(ws.seeds().values()) == {"cat"}
    assert {label for label, _ in ws.current_labels().values()} == {"cat"}
    assert ws.corrections()["new_label"].tolist() == ["dog"]  # history says what happened then
    ws.add_correction([u0], "dog")                            # the old name now means cat
    assert ws.seeds()[u0] == "cat"


def test_delete_refuses_a_class_with_labels_and_drops_an_unused_one(ws):
    ws.add_class("bird")
    assert ws.class_usage("bird").total == 0
    ws.delete_class("bird")
    assert "bird" not in ws.classes()
    with pytest.raises(ValueError, match="class 'dog' still labels 2 seeds; choose the class"):
        ws.delete_class("dog")
    ws.delete_class("dog", reassign_to="cat")
    assert ws.classes() == ["cat"] and set(ws.seeds().values()) == {"cat"}
    assert ws.add_class("bird") is True and ws.classes() == ["cat", "bird"]   # a new class again


def test_corrections_cannot_be_edited_or_deleted(ws):
    ws.add_correction([id_of(ws, "unlabeled/u0.png")], "dog")
    conn = ws._conn()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE corrections SET new_class_id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM corrections")


def test_correction_wins_over_a_seed_set_later(ws):
    u0 = id_of(ws, "unlabeled/u0.png")
    ws.add_correction([u0], "dog")
    ws.set_seed(u0, "cat")
    assert ws.seeds()[u0] == "dog"


@pytest.mark.parametrize("item_ids, label, kwargs, message", [
    ([10_000], "cat", {}, "item ids \\[10000\\] are not in this workspace"),
    ([1.0], "cat", {}, "item_ids must be integers"),
    ([True], "cat", {}, "item_ids must be integers"),
    ("12", "cat", {}, "item_ids must be integers"),
    ([1], 7, {}, "new_label: class names are strings"),
    ([1], None, {}, "new_label: class names are strings"),
    ([1], "cat", {"source": "undo"}, "source='undo' is not one of"),
    ([1, 2], "cat", {"old_labels": ["cat"]}, "old_labels has 1 entries but item_ids has 2"),
    ([1], "cat", {"old_labels": ["zebra"]}, "unknown classes \\['zebra'\\]"),
])
def test_bad_corrections_are_refused_and_write_nothing(ws, item_ids, label, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ws.add_correction(item_ids, label, **kwargs)
    assert ws.corrections().empty and ws.classes() == ["cat", "dog"]


def test_skipped_items_cannot_be_corrected_or_seeded(ws):
    broken = id_of(ws, "broken.png")
    with pytest.raises(ValueError, match="skipped"):
        ws.add_correction([broken], "cat")
    with pytest.raises(ValueError, match="skipped"):
        ws.set_seed(broken, "cat")


# --------------------------------------------------------------------------- current labels

def test_current_labels_prefer_correction_then_seed_then_run(ws):
    ids = ws.ok_items()["id"].to_numpy()
    result = fake_result(len(ids), 2)
    result.labels[:] = 1
    result.fallback[:] = False
    u0, u1, cat = id_of(ws, "unlabeled/u0.png"), id_of(ws, "unlabeled/u1.png"), id_of(ws, "cat/a.png")
    result.fallback[list(ids).index(u1)] = True
    ws.save_run(method="hdl", params={}, result=result, classes=["cat", "dog"], item_ids=ids)
    ws.add_correction([cat], "bird")
    labels = ws.current_labels()
    assert labels[u0] == ("dog", "hdl")
    assert labels[u1] == ("dog", "fallback")
    assert labels[id_of(ws, "dog/a.png")] == ("dog", "seed")
    assert labels[cat] == ("bird", "manual")
    assert set(labels) == set(ids.tolist())


def test_edit_counts_follow_the_one_rule_without_a_run(ws):
    def from_label_table():
        sources = [source for _, source in ws.current_labels().values()]
        return {kind: sources.count(kind) for kind in ("seed", "manual", "confirmed")}

    assert ws.edit_counts() == from_label_table() == {"seed": 5, "manual": 0, "confirmed": 0}
    ids = ws.ok_items()["id"].to_numpy()
    ws.save_run(method="hdl", params={}, result=fake_result(len(ids), 2), classes=["cat", "dog"],
                item_ids=ids)
    u0, u1, cat = id_of(ws, "unlabeled/u0.png"), id_of(ws, "unlabeled/u1.png"), id_of(ws, "cat/a.png")
    ws.confirm([u0, u1])
    ws.add_correction([cat, u1], "bird")          # a corrected seed and a corrected confirmation
    counts = ws.edit_counts()
    assert counts == from_label_table() == {"seed": 4, "manual": 2, "confirmed": 1}
    ws.undo_last_correction()
    assert ws.edit_counts() == from_label_table() == {"seed": 5, "manual": 0, "confirmed": 2}


def test_a_baseline_run_does_not_replace_the_current_labels(ws):
    ids = ws.ok_items()["id"].to_numpy()
    hdl, baseline = fake_result(len(ids), 2), fake_result(len(ids), 2)
    hdl.labels[:], baseline.labels[:] = 0, 1
    hdl_id = ws.save_run(method="hdl", params={}, result=hdl, classes=["cat", "dog"], item_ids=ids)
    ws.save_run(method="knn_dv", params={}, result=baseline, classes=["cat", "dog"], item_ids=ids)
    u0 = id_of(ws, "unlabeled/u0.png")
    assert ws.current_labels()[u0] == ("cat", "hdl")
    assert ws.current_labels(method=None)[u0] == ("dog", "hdl")
    assert ws.current_labels(run_id=hdl_id, method=None)[u0] == ("cat", "hdl")


def test_current_labels_without_a_run_are_seeds_and_corrections(ws):
    labels = ws.current_labels()
    assert {source for _, source in labels.values()} == {"seed"} and len(labels) == 5


# --------------------------------------------------------------------------- runs

def test_run_round_trips_every_field(ws):
    ids = ws.ok_items()["id"].to_numpy()
    n = len(ids)
    result = fake_result(n, 3, seed=4)
    result.labels[0] = -1
    result.confidence[1] = np.nan
    result.source[2] = 5
    params = {"mu_k": np.float32(0.5), "rounds": np.int64(3), "weights": np.arange(2), "path": Path("/x")}
    result.k = np.int64(4)
    run_id = ws.save_run(method="hdl", params=params, result=result,
                         classes=["cat", "dog", "bird"], item_ids=ids)
    run = ws.load_run(run_id)
    assert isinstance(run, StoredRun)
    assert (run.run_id, run.method, run.k, run.classes) == (run_id, "hdl", 4, ["cat", "dog", "bird"])
    assert run.params == {"mu_k": 0.5, "rounds": 3, "weights": [0, 1], "path": "/x"}
    np.testing.assert_array_equal(run.item_ids, ids)
    for name in ("labels", "step", "round", "n_voters", "fallback", "source"):
        np.testing.assert_array_equal(getattr(run.result, name), getattr(result, name), err_msg=name)
    np.testing.assert_array_equal(run.result.confidence, result.confidence)      # NaN kept
    assert run.label_names[0] is None and run.label_names[3] == ["cat", "dog", "bird"][result.labels[3]]
    assert run.result.fallback.dtype == bool and run.result.labels.dtype == np.int64
    frame = run.to_frame()
    assert len(frame) == n and list(frame["item_id"]) == list(ids)
    assert run.created.endswith("+00:00")


def test_run_order_is_the_order_given_not_the_id_order(ws):
    ids = ws.ok_items()["id"].to_numpy()[::-1].copy()
    result = fake_result(len(ids), 2)
    ws.save_run(method="hdl", params={}, result=result, classes=["cat", "dog"], item_ids=ids)
    run = ws.load_run()
    np.testing.assert_array_equal(run.item_ids, ids)
    np.testing.assert_array_equal(run.result.source, result.source)


def test_load_run_picks_the_latest_optionally_by_method_and_lists_runs(ws):
    assert ws.load_run() is None and ws.runs() == []
    ids = ws.ok_items()["id"].to_numpy()
    first = ws.save_run(method="hdl", params={"a": 1}, result=fake_result(len(ids), 2),
                        classes=["cat", "dog"], item_ids=ids)
    second = ws.save_run(method="knn_dv", params={}, result=fake_result(len(ids), 2),
                         classes=["cat", "dog"], item_ids=ids)
    assert ws.load_run().run_id == second
    assert ws.load_run(method="hdl").run_id == first
    runs = ws.runs()
    assert [r.run_id for r in runs] == [first, second]
    assert runs[0].params == {"a": 1} and runs[0].n_items == len(ids) and runs[1].k == 3
    with pytest.raises(ValueError, match="run_id=999 names no run"):
        ws.load_run(999)
    with pytest.raises(ValueError, match="method='svm'"):
        ws.load_run(method="svm")


def test_bad_runs_are_refused_and_write_nothing(ws):
    ids = ws.ok_items()["id"].to_numpy()
    n = len(ids)
    good = dict(method="hdl", params={}, result=fake_result(n, 2), classes=["cat", "dog"], item_ids=ids)
    short = fake_result(n - 1, 2)
    out_of_range = fake_result(n, 2)
    out_of_range.labels[0] = 2
    bad_source = fake_result(n, 2)
    bad_source.source[0] = n
    float_labels = fake_result(n, 2)
    float_labels.labels = float_labels.labels.astype(float)
    cases = [
        ({"method": "svm"}, "method='svm'"),
        ({"result": fake_result(n, 2, k=0)}, "result.k=0 must be an integer >= 1"),
        ({"result": fake_result(n, 2, k=2.5)}, "result.k=2.5"),
        ({"params": [1]}, "params must be a dict"),
        ({"params": {"f": object()}}, "params must be JSON-serialisable"),
        ({"classes": ["cat", "cat"]}, "repeated names"),
        ({"classes": ["cat", 1]}, "class names are strings"),
        ({"item_ids": np.append(ids, 10_000), "result": fake_result(n + 1, 2)}, "not in this workspace"),
        ({"item_ids": np.append(ids[:-1], ids[0])}, "repeated ids"),
        ({"item_ids": ids.astype(float)}, "1-D sequence of integers"),
        ({"result": short}, r"result.labels has shape \(%d,\), expected \(%d,\)" % (n - 1, n)),
        ({"result": out_of_range}, r"result.labels must lie in \[-1, 1\]"),
        ({"result": bad_source}, "result.source must lie in"),
        ({"result": float_labels}, "result.labels must be integers"),
        ({"result": object()}, "result lacks"),
        ({"item_ids": [id_of(ws, "broken.png")] + list(ids[1:])}, "skipped"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            ws.save_run(**{**good, **change})
    assert ws.runs() == []


def test_run_source_pointing_at_a_missing_item_still_names_it(ws):
    ids = ws.ok_items()["id"].to_numpy()
    result = fake_result(len(ids), 2)
    result.source[:] = -1
    u3 = list(ids).index(id_of(ws, "unlabeled/u3.png"))
    result.source[0] = u3
    result.source[1] = 2
    ws.save_run(method="hdl", params={}, result=result, classes=["cat", "dog"], item_ids=ids)
    ws.set_dataset(make_dataset(n_unlabeled=3))            # u3's file is gone: it is missing
    run = ws.load_run()
    assert run.item_ids[run.result.source[0]] == ids[u3] and run.item_ids[run.result.source[1]] == ids[2]


def test_a_20k_item_run_round_trips(tmp_path):
    """Size check only; the save/load timings are measured in bench/store_bench.py."""
    n = 20_000
    with Workspace(tmp_path) as ws:
        ws.set_dataset(big_dataset(n))
        ids = ws.ok_items()["id"].to_numpy()
        result = fake_result(n, 2)
        run_id = ws.save_run(method="hdl", params={}, result=result, classes=["a", "b"], item_ids=ids)
        run = ws.load_run(run_id)
        labels = ws.current_labels()
    np.testing.assert_array_equal(run.result.labels, result.labels)
    np.testing.assert_array_equal(run.result.step, result.step)
    assert len(labels) == n


def test_label_arrays_agree_with_the_label_dict_through_every_kind_of_change(ws):
    ids = ws.ok_items()["id"].to_numpy()
    result = fake_result(len(ids), 2, seed=3)
    result.labels[2] = -1
    ws.save_run(method="hdl", params={}, result=result, classes=["cat", "dog"], item_ids=ids)
    u0, u1, u2 = (id_of(ws, f"unlabeled/u{i}.png") for i in range(3))

    def same() -> None:
        arrays = ws.current_label_arrays()
        assert arrays.as_dict() == ws.current_labels()
        assert arrays.item_ids.tolist() == sorted(ids.tolist())
        names = list(arrays.names)
        for item_id, (label, source) in ws.current_labels().items():
            row = arrays.rows_of([item_id])[0]
            assert names[arrays.label[row]] == label
            assert ("seed", "hdl", "fallback", "manual", "confirmed")[arrays.source[row]] == source

    same()
    ws.add_correction([u0], "bird")
    ws.confirm([u1]) if ws.current_labels()[u1][1] in ("hdl", "fallback") else None
    ws.set_seed(u2, "dog")
    same()
    ws.merge_classes("bird", "cat")
    same()
    ws.undo_last_correction()
    same()
    assert ws.current_label_arrays().rows_of([10**9]).tolist() == [-1]


def test_labels_version_moves_with_every_write_that_can_change_a_label(ws):
    ids = ws.ok_items()["id"].to_numpy()
    u0 = id_of(ws, "unlabeled/u0.png")
    seen = [ws.labels_version()]

    def moved(action) -> bool:
        action()
        seen.append(ws.labels_version())
        return seen[-1] != seen[-2]

    assert moved(lambda: ws.save_run(method="hdl", params={}, result=fake_result(len(ids), 2),
                                     classes=["cat", "dog"], item_ids=ids))
    hdl_id = ws.runs("hdl")[-1].run_id
    assert moved(lambda: ws.save_run(method="knn_dv", params={}, result=fake_result(len(ids), 2),
                                     classes=["cat", "dog"], item_ids=ids, compares_to=hdl_id))
    assert moved(lambda: ws.add_correction([u0], "bird"))
    assert moved(lambda: ws.undo_last_correction())
    assert moved(lambda: ws.set_seed(u0, "dog"))
    assert not moved(lambda: ws.set_setting("label", "x"))
    assert not moved(lambda: ws.add_correction([u0], ws.current_labels()[u0][0]))   # no change
    assert not moved(lambda: ws.set_dataset(make_dataset()))                         # same scan
    assert moved(lambda: ws.set_dataset(make_dataset(n_unlabeled=3)))
    assert moved(lambda: ws.rename_class("dog", "hound"))
    assert moved(lambda: ws.merge_classes("hound", "cat"))


def test_scanning_an_unchanged_folder_again_changes_no_item(ws):
    version, ids = ws.items_version(), ws.ok_item_ids().copy()
    ws.set_dataset(make_dataset())
    assert ws.items_version() == version and np.array_equal(ws.ok_item_ids(), ids)
    ws.set_dataset(make_dataset(n_unlabeled=5))
    assert ws.items_version() == version + 1 and len(ws.ok_item_ids()) == len(ids) + 1


def test_item_id_orders_counts_paths_and_digest_match_the_item_table(ws):
    from hdl_core.workspace.pipeline import _items_digest
    items = ws.ok_items()
    assert ws.ok_item_ids().tolist() == items["id"].tolist()
    assert ws.ok_item_ids(order="id").tolist() == sorted(items["id"].tolist())
    assert ws.count_items() == {"ok": len(items), "skipped": 1, "missing": 0}
    assert ws.item_paths([items["id"][2], 10**9]) == [items["path"][2], None]
    assert ws.items_digest() == _items_digest(items)
    assert ws.items_with_status("skipped")["path"].tolist() == ["broken.png"]


def test_file_stats_give_size_time_and_hash_of_files_with_a_known_time(tmp_path):
    dataset = make_dataset(extra=[Item("t/x.png", "h-x", 5, None, mtime_ns=123)])
    with Workspace(tmp_path) as ws:
        ws.set_dataset(dataset)
        assert ws.file_stats() == {"t/x.png": (5, 123, "h-x")}
        dataset.items[-1] = Item("t/x.png", "h-x2", 6, None, mtime_ns=456)   # changed since
        ws.set_dataset(dataset)
        assert ws.file_stats() == {"t/x.png": (6, 456, "h-x2")}
        assert ws.ok_items().set_index("path").loc["t/x.png", "content_hash"] == "h-x2"


def test_a_100k_item_store_corrects_undoes_and_labels_like_a_small_one(tmp_path):
    """Semantics at scale (timings are in bench/store_bench.py): a run of 100,000 items,
    one correction and its undo, read back as arrays and as the label dict."""
    n = 100_000
    with Workspace(tmp_path) as ws:
        ws.set_dataset(big_dataset(n))
        ids = ws.ok_item_ids()
        result = fake_result(n, 2)
        result.labels[:] = 1
        ws.save_run(method="hdl", params={}, result=result, classes=["a", "b"], item_ids=ids)
        target = int(ids[n // 2])
        assert ws.add_correction([target], "a", actor="me")
        arrays = ws.current_label_arrays()
        row = arrays.rows_of([target])[0]
        assert arrays.names[arrays.label[row]] == "a" and arrays.source[row] == 3
        assert np.count_nonzero(arrays.source == 3) == 1
        assert ws.undo_last_correction(actor="me").changes == [(f"img/{n // 2:06d}.png", "b", "a")]
        labels = ws.current_labels()
        assert len(labels) == n and labels[target] == ("b", "hdl")
        assert labels[int(ids[0])] == ("a", "seed")


# --------------------------------------------------------------------------- embeddings and settings

def test_embeddings_round_trip_under_a_safe_file_name(tmp_path):
    with Workspace(tmp_path) as ws:
        key = "clip/ViT-B-32:../../etc/passwd|sha256=abc"
        assert ws.load_embeddings(key) is None
        X = np.random.default_rng(0).random((50, 8)).astype(np.float32)
        ws.save_embeddings(key, X)
        path = ws.embeddings_path(key)
        assert path.parent == tmp_path / "embeddings" and path.exists()
        loaded = ws.load_embeddings(key)
        assert loaded.dtype == np.float32
        np.testing.assert_array_equal(loaded, X)
        ws.save_embeddings(key, X * 2)                       # overwrite in place
        np.testing.assert_array_equal(ws.load_embeddings(key), X * 2)
        assert [p.name for p in (tmp_path / "embeddings").iterdir()] == [path.name]   # no temp left


@pytest.mark.parametrize("X, message", [
    (np.zeros(3), "2-D numeric"),
    (np.array([["a"]]), "2-D numeric"),
    (np.array([[object()]]), "2-D numeric"),
])
def test_bad_embeddings_are_refused(tmp_path, X, message):
    with Workspace(tmp_path) as ws, pytest.raises(ValueError, match=message):
        ws.save_embeddings("k", X)
    with Workspace(tmp_path) as ws, pytest.raises(ValueError, match="non-empty string"):
        ws.save_embeddings("", np.zeros((1, 1)))


def test_unreadable_embedding_file_gives_a_clear_error(tmp_path):
    with Workspace(tmp_path) as ws:
        ws.save_embeddings("k", np.zeros((2, 2)))
        ws.embeddings_path("k").write_bytes(b"garbage")
        with pytest.raises(StoreError, match="embeddings/.*npy.*is damaged.*embed the images again"):
            ws.load_embeddings("k")


def test_settings_round_trip_as_json(tmp_path):
    with Workspace(tmp_path) as ws:
        assert ws.get_setting("k_override", default=7) == 7
        ws.set_setting("k_override", np.int64(12))
        ws.set_setting("encoder", {"name": "clip", "model": "ViT-B-32"})
        ws.set_setting("encoder", {"name": "pixels"})
    with Workspace(tmp_path) as ws:
        assert ws.get_setting("k_override") == 12
        assert ws.get_setting("encoder") == {"name": "pixels"}
        with pytest.raises(ValueError, match="setting 'x' must be JSON-serialisable"):
            ws.set_setting("x", {1, 2})
        with pytest.raises(ValueError, match="non-empty strings"):
            ws.get_setting("")


# --------------------------------------------------------------------------- concurrency and crashes

def test_threads_sharing_one_workspace_lose_no_correction(ws):
    ids = ws.ok_items()["id"].tolist()
    errors = []

    def worker(number):
        try:
            for i in range(25):
                # a label of its own for every write: each one is a change to record
                ws.add_correction([ids[(number + i) % len(ids)]], f"class{number}-{i}")
                ws.current_labels()
        except Exception as error:            # surfaced below; a thread cannot fail the test itself
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = ws.corrections()
    assert len(history) == 200 and history["batch"].nunique() == 200


CONCURRENT_WRITER = """
    import sys, time
    from pathlib import Path
    from hdl_core.workspace.store import Workspace
    folder, go, first, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ws = Workspace(folder)
    Path(f"{go}.ready-{first}").touch()
    while not go.exists():
        time.sleep(0.001)
    for i in range(count):
        # each visit of an item gives it the other label, so every write is a change
        ws.add_correction([first + i % 4], "cat" if (i // 4) % 2 else "shared-new-class")
        time.sleep(0.002)     # a user pauses between clicks; without it one writer can starve the other
    ws.close()
"""


@pytest.mark.slow
def test_two_processes_writing_corrections_at_once_lose_nothing(ws, tmp_path):
    ids = ws.ok_items()["id"].tolist()
    ws.close()
    go = tmp_path / "go"
    children = [run_child(CONCURRENT_WRITER, str(ws.folder), str(go), str(first), "200")
                for first in (ids[0], ids[4])]
    for first, child in zip((ids[0], ids[4]), children):   # both opened: start the race
        wait_for(Path(f"{go}.ready-{first}"), child)
    go.touch()
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
    with Workspace(ws.folder) as again:
        history = again.corrections()
        assert len(history) == 400 and history["id"].is_unique and history["batch"].nunique() == 400
        assert again.classes().count("shared-new-class") == 1
        writer = (history["item_id"] >= ids[4]).astype(int).to_numpy()
        assert np.count_nonzero(np.diff(writer)) > 10       # the writers really took turns
    assert integrity(ws.db_path) == "ok"


KILLED_RUN_WRITER = """
    import sys, time
    from pathlib import Path
    import numpy as np
    import hdl_core.workspace.runs as runs
    import hdl_core.workspace.store as store
    from hdl_core._files import atomic_write
    folder, marker, when = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    ws = store.Workspace(folder)
    real_write = runs.write_run_arrays

    def write_then_stall(path, columns):
        if when == "half-written":        # the arrays file is half on disk (a temporary)
            def half(stream):
                stream.write(b"\\0" * 2_000_000)
                stream.flush()
                marker.write_text("inside the write")
                time.sleep(120)
            atomic_write(path, half)
        else:                              # the file is whole, the row naming it not committed
            real_write(path, columns)
            marker.write_text("before the commit")
            time.sleep(120)

    runs.write_run_arrays = write_then_stall
    ids = ws.ok_items()["id"].to_numpy()
    n = len(ids)
    result = type("R", (), dict(labels=np.zeros(n, int), step=np.zeros(n, int), round=np.zeros(n, int),
                                confidence=np.ones(n), n_voters=np.ones(n, int),
                                fallback=np.zeros(n, bool), source=np.full(n, -1), k=5))
    ws.save_run(method="hdl", params={"doomed": True}, result=result, classes=["a", "b"], item_ids=ids)
"""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["half-written", "written, not committed"])
def test_process_killed_while_saving_a_run_leaves_the_previous_state_intact(tmp_path, when):
    n = 20_000
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        ws.set_dataset(big_dataset(n))
        ids = ws.ok_items()["id"].to_numpy()
        before = fake_result(n, 2)
        run_id = ws.save_run(method="hdl", params={"keep": 1}, result=before, classes=["a", "b"],
                             item_ids=ids)
        ws.add_correction(ids[:3].tolist(), "b")
        kept = set((folder / "runs").iterdir())
    marker = tmp_path / "marker"
    child = run_child(KILLED_RUN_WRITER, str(folder), str(marker), when)
    wait_for(marker, child)
    assert set((folder / "runs").iterdir()) - kept           # something of the new run is on disk
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    assert integrity(folder / "workspace.sqlite") == "ok"
    with Workspace(folder) as ws:
        assert [r.run_id for r in ws.runs()] == [run_id]
        run = ws.load_run()
        np.testing.assert_array_equal(run.result.labels, before.labels)
        assert run.params == {"keep": 1} and len(ws.corrections()) == 3
        # what the killed writer left is cleared once it is old (a live writer's is kept)
        for path in (folder / "runs").iterdir():
            os.utime(path, (time.time() - 3600, time.time() - 3600))
    with Workspace(folder) as ws:
        assert set((folder / "runs").iterdir()) == kept
        assert ws.save_run(method="hdl", params={}, result=before, classes=["a", "b"],
                           item_ids=ids) == run_id + 1
        np.testing.assert_array_equal(ws.load_run().result.labels, before.labels)


KILLED_CORRECTION_WRITER = """
    import sys
    from pathlib import Path
    from hdl_core.workspace.store import Workspace
    folder, marker = sys.argv[1], Path(sys.argv[2])
    ws = Workspace(folder)
    ids = ws.ok_items()["id"].tolist()
    batch = 0
    while True:
        # every pass over the items gives them the other label: each batch changes 50 labels
        ws.add_correction(ids[(batch * 50) % 2000:][:50], "y" if (batch // 40) % 2 else "x")
        batch += 1
        if batch == 5:
            marker.touch()
"""


@pytest.mark.slow
def test_process_killed_while_writing_corrections_leaves_only_whole_batches(tmp_path):
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        ws.set_dataset(big_dataset(2000))
    marker = tmp_path / "marker"
    child = run_child(KILLED_CORRECTION_WRITER, str(folder), str(marker))
    wait_for(marker, child)
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)

    assert integrity(folder / "workspace.sqlite") == "ok"
    with Workspace(folder) as ws:
        history = ws.corrections()
        assert len(history) >= 250 and len(history) % 50 == 0
        assert (history.groupby("batch").size() == 50).all()
        assert ws.undo_last_correction() is not None

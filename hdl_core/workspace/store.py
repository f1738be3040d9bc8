"""The workspace store: one SQLite database (WAL) per workspace folder.

A workspace folder holds ``workspace.sqlite`` and, beside it, an ``embeddings/``
folder of ``.npy`` arrays (`arrays.ArrayFiles`)::

    my-workspace/
        workspace.sqlite          items, classes, seeds, corrections, runs, settings
        embeddings/<sha1>.npy     one array per cache key

How writes stay durable and safe between processes is in `schema`.

Threads: Streamlit runs each script run in its own thread, and a Workspace may
be shared through ``st.cache_resource``.  Each Workspace holds one connection
opened with ``check_same_thread=False`` and guards every use with a re-entrant
lock, so one Workspace object is safe to share between threads (operations are
serialised; SQLite serialises writers anyway).

Item order
----------
``ok_items()`` is ordered by ``path`` (code-point order, the same as Python's
``sorted``).  That is the order embeddings, graphs and runs use; item ids are
stable across rescans (items are identified by path) but their order is not
meaningful.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .._checks import class_name_problem
from .._files import STALE_AFTER_S, remove_stale_temporaries
from ..hdl import LabelingResult
from .arrays import (EMBEDDING_CACHE_DIRNAME, EMBEDDINGS_DIRNAME, RUNS_DIRNAME, ArrayFiles,
                     read_run_arrays, write_run_arrays)
from .schema import (DB_FILENAME, StoreError, class_colour, now as _now, open_database,
                     _database_folder)

__all__ = ["Workspace", "StoredRun", "RunInfo", "ClassUsage", "UndoReport", "StoreError",
           "CurrentLabels", "METHODS", "SEED_SOURCES", "CORRECTION_SOURCES", "LABEL_SOURCES"]

if TYPE_CHECKING:  # type hints only: the store takes any object shaped like a Dataset
    from ..data import Dataset

METHODS = ("hdl", "knn_dv")
SEED_SOURCES = ("layout", "csv", "app")
CORRECTION_SOURCES = ("manual", "bulk")          # 'undo' is written by undo_last_correction only
# Where the label an item shows comes from (`Workspace.current_labels`), in the order of
# the codes `CurrentLabels.source` holds.
LABEL_SOURCES = ("seed", "hdl", "fallback", "manual", "confirmed")
_SOURCE_CODE = {name: code for code, name in enumerate(LABEL_SOURCES)}
RESULT_FIELDS = ("labels", "step", "round", "confidence", "n_voters", "fallback", "source")


# --------------------------------------------------------------------------- results

@dataclass
class StoredRun:
    """A labeling run as stored: its `LabelingResult` plus what produced it.

    The result's arrays are aligned with ``item_ids`` (the run's own item order, usually
    ``ok_items()`` order at the time of the run); ``result.labels`` index into
    ``classes`` and ``result.source`` is a position in this order.

    Attributes
    ----------
    run_id : int
    created : str
        ISO-8601 UTC time of saving.
    method : {"hdl", "knn_dv"}
    params : dict
        Parameters as given to `Workspace.save_run` (JSON round-tripped).
    classes : list of str
        Class names; ``result.labels`` index into this list.
    item_ids : ndarray of int64, shape (n,)
    result : LabelingResult
        As the run produced it; a bridged point whose source item was deleted since (a
        rescan) has ``source`` -1.
    baseline_id : int or None
        For an HDL run, the kNN-DV run saved with it on the same seeds (`save_run`'s
        ``compares_to``); None when there is none.
    """

    run_id: int
    created: str
    method: str
    params: dict
    classes: list[str]
    item_ids: np.ndarray
    result: LabelingResult
    baseline_id: int | None = None

    @property
    def k(self) -> int:
        return self.result.k

    @property
    def label_names(self) -> np.ndarray:
        """Class name per item (object array), None where the run gave no label."""
        return np.array(self.classes + [None], dtype=object)[self.result.labels]

    def to_frame(self) -> pd.DataFrame:
        """One row per item: item_id, label (name), step, round, confidence, n_voters, fallback, source."""
        r = self.result
        return pd.DataFrame({
            "item_id": self.item_ids, "label": self.label_names, "step": r.step,
            "round": r.round, "confidence": r.confidence, "n_voters": r.n_voters,
            "fallback": r.fallback, "source": r.source,
        })


@dataclass(frozen=True)
class RunInfo:
    """One run as `Workspace.runs` lists it: what produced it, not its per-item rows.

    Attributes
    ----------
    run_id : int
    created : str
    method : {"hdl", "knn_dv"}
    k : int
    params : dict
    classes : list of str
    n_items : int
    baseline_id : int or None
        For an HDL run, its linked kNN-DV run.
    """

    run_id: int
    created: str
    method: str
    k: int
    params: dict
    classes: list
    n_items: int
    baseline_id: int | None = None


# --------------------------------------------------------------------------- workspace

class Workspace:
    """A workspace folder holding ``workspace.sqlite`` and embedding arrays beside it.

    The folder and the database are created (and the schema migrated) when the
    object is made, so a bad database fails here, at the door.  After `close`
    the connection reopens on the next use.  Safe to share between threads.

    Parameters
    ----------
    folder : str or Path
        The workspace folder; created with its parents when missing.

    Raises
    ------
    ValueError
        `folder` exists and is not a directory.
    StoreError
        The database is newer than this code, is not an SQLite database, or a
        migration failed (the database is then left as it was).

    Examples
    --------
    >>> import tempfile
    >>> with Workspace(tempfile.mkdtemp()) as ws:
    ...     ws.add_class("cat")
    ...     ws.classes()
    True
    ['cat']
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"workspace folder {self.folder} exists and is not a directory; "
                             "pick another path")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db_path = self.folder / DB_FILENAME
        self.embeddings_dir = self.folder / EMBEDDINGS_DIRNAME
        self.arrays = ArrayFiles(self.embeddings_dir)
        self.runs_dir = self.folder / RUNS_DIRNAME
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._remove_stale_temporaries()
        self._conn()
        self._remove_orphan_runs()

    def __repr__(self) -> str:
        return f"Workspace({str(self.folder)!r})"

    def _remove_stale_temporaries(self) -> None:
        """Remove the temporary files a killed process left here (half-written arrays,
        cache shards, a half-made database): only those untouched for a while, so a
        writer still at work is never disturbed (`hdl_core._files.remove_stale_temporaries`)."""
        remove_stale_temporaries(self.folder)
        remove_stale_temporaries(self.embeddings_dir)
        remove_stale_temporaries(self.folder / EMBEDDING_CACHE_DIRNAME, recursive=True)
        remove_stale_temporaries(self.runs_dir)

    def _remove_orphan_runs(self, older_than_s: float = STALE_AFTER_S) -> int:
        """Remove run files no run names: left by a process killed between writing a run's
        arrays and committing it. Only files untouched for a while go, so a run being saved
        by another process right now keeps its file."""
        if not self.runs_dir.is_dir():
            return 0
        with self._lock:
            named = {name for (name,) in self._conn().execute(
                "SELECT arrays FROM runs WHERE arrays IS NOT NULL")}
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.runs_dir.glob("run-*.arrow"):
            try:
                if path.name not in named and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    # ------------------------------------------------------------------ connection

    def _conn(self) -> sqlite3.Connection:
        with self._lock:
            if self._connection is None:
                self._connection = open_database(self.db_path)
            return self._connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database write lock from its start."""
        with self._lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same snapshot."""
        with self._lock:
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ dataset

    def set_dataset(self, dataset: Dataset) -> dict[str, int]:
        """Replace items, dataset seeds and (when given) ground truth from a scanned dataset.

        Items are identified by path: an item whose path is still in the
        dataset keeps its id, its corrections, its app seeds and its rows in
        earlier runs (a changed file keeps them too).  Nothing done by hand is
        lost when files go: an item whose path is gone is marked ``missing``,
        its corrections, seeds and runs kept; when a file with the same content
        (hash) appears under a new path, that item moves there and has them
        again (a file moved or renamed), and a missing path that comes back is
        simply accepted again.  A skipped file that goes, with nothing done to
        it, is forgotten.  Seeds from the layout or a CSV are replaced by the
        dataset's; seeds set in the app win over them.  Classes are only ever
        added: every seed class of the dataset is appended (sorted) after the
        classes already known.

        Parameters
        ----------
        dataset : hdl_core.data.Dataset
            Uses ``root``, ``items`` (path, content_hash, size, seed_label),
            ``skipped`` (path, reason) and ``truth`` (path -> label or None).
            An item's seed source is its ``seed_source`` attribute when it has
            one, else "layout" when the seed label is the name of the item's
            folder, else "csv".

        Returns
        -------
        dict
            ``{"moved": n, "missing": m}``: items found again under a new path by their
            content, and items missing now.

        Raises
        ------
        ValueError
            A path appears twice, or a field has the wrong type.
        """
        ok_rows, skipped_rows, seed_rows = _dataset_rows(dataset)
        root = str(Path(dataset.root))
        truth = getattr(dataset, "truth", None)
        if truth is not None:
            truth = _check_truth(truth)
        # The same scan as last time (paths, contents, sizes, times, skips) changes no item:
        # opening an unchanged folder of 100,000 images again then reads and writes no item.
        scan = hashlib.sha1(repr((ok_rows, skipped_rows)).encode()).hexdigest()
        with self._write() as conn:
            same_scan = _get_meta(conn, "last_scan") == f"{_items_version_key(conn)}:{scan}"
            changed, moved, new_ok, new_skipped = False, 0, [], []
            if not same_scan:
                changed, moved, new_ok, new_skipped = _update_items(conn, ok_rows, skipped_rows)
            changed = bool(changed or moved or new_ok or new_skipped)
            if changed:
                _bump_meta(conn, "items_version")
            _set_meta(conn, "last_scan", f"{_items_version_key(conn)}:{scan}")
            for name in sorted({label for _, label, _ in seed_rows}):
                _ensure_class(conn, name)
            before = conn.execute("SELECT s.item_id, s.class_id, s.source FROM seeds s "
                                  "WHERE s.source IN ('layout', 'csv') ORDER BY s.item_id").fetchall()
            conn.execute("DELETE FROM seeds WHERE source IN ('layout', 'csv')")
            conn.executemany(
                "INSERT OR IGNORE INTO seeds(item_id, class_id, source) "
                "SELECT items.id, classes.id, ? FROM items, classes "
                "WHERE items.path = ? AND classes.name = ?",
                [(source, path, label) for path, label, source in seed_rows])
            after = conn.execute("SELECT s.item_id, s.class_id, s.source FROM seeds s "
                                 "WHERE s.source IN ('layout', 'csv') ORDER BY s.item_id").fetchall()
            previous_root = _get_meta(conn, "dataset_root")
            truth_changed = False
            if truth is not None:
                truth_changed = _replace_truth(conn, truth)
            elif previous_root is not None and previous_root != root:
                conn.execute("DELETE FROM truth")
                _bump_meta(conn, "truth_version")
                truth_changed = True
            if changed or before != after or truth_changed or previous_root != root:
                _bump_meta(conn, "labels_version")
            _set_meta(conn, "dataset_root", root)
            _set_meta(conn, "dataset_updated", _now())
            missing = conn.execute("SELECT COUNT(*) FROM items WHERE status = 'missing'").fetchone()[0]
        return {"moved": moved, "missing": missing}

    def dataset_root(self) -> Path | None:
        """The root folder of the last dataset set, or None before any."""
        with self._lock:
            value = _get_meta(self._conn(), "dataset_root")
        return None if value is None else Path(value)

    def items(self) -> pd.DataFrame:
        """All items, accepted and skipped, ordered by id.

        Returns
        -------
        DataFrame
            Columns id, path, content_hash, size, status ("ok", "skipped" or
            "missing": gone from the folder at the last scan, history kept),
            skip_reason.  Skipped items have no content_hash and size, ok
            items no skip_reason (missing values, test with `pandas.isna`).
        """
        return self._items_frame("ORDER BY id")

    def ok_items(self) -> pd.DataFrame:
        """The accepted items ordered by path: the order of embeddings, graphs and runs.

        Returns
        -------
        DataFrame
            Same columns as `items`, with a fresh 0..n-1 index.
        """
        return self._items_frame("WHERE status = 'ok' ORDER BY path")

    def _items_frame(self, clause: str) -> pd.DataFrame:
        columns = ["id", "path", "content_hash", "size", "status", "skip_reason"]
        with self._lock:
            rows = self._conn().execute(f"SELECT {', '.join(columns)} FROM items {clause}").fetchall()
        frame = pd.DataFrame.from_records(rows, columns=columns)
        frame["id"] = frame["id"].astype("int64")
        frame["size"] = frame["size"].astype("Int64")
        return frame

    def ok_item_ids(self, *, order: str = "path") -> np.ndarray:
        """Ids of the accepted items without reading their rows into a table.

        Parameters
        ----------
        order : {"path", "id"}
            "path": the order of embeddings, graphs and runs (`ok_items`); "id": ascending.

        Returns
        -------
        ndarray of int64, read-only
            Cached per items version, so asking again after no rescan costs one query.
        """
        if order not in ("path", "id"):
            raise ValueError(f"order must be 'path' or 'id', got {order!r}")
        with self._read() as conn:
            if order == "id":
                return _ok_ids_sorted(conn)
            version = _items_version_key(conn)
            cached = getattr(self, "_ok_by_path", None)
            if cached is None or cached[0] != version:
                ids = np.fromiter((i for (i,) in conn.execute(
                    "SELECT id FROM items WHERE status = 'ok' ORDER BY path")), np.int64)
                ids.setflags(write=False)
                self._ok_by_path = cached = (version, ids)
            return cached[1]

    def count_items(self) -> dict[str, int]:
        """How many items have each status: ``{"ok": n, "skipped": m, "missing": p}``
        (counted once per items version)."""
        with self._read() as conn:
            version = _items_version_key(conn)
            kept = getattr(self, "_counts", None)
            if kept is not None and kept[0] == version:
                return dict(kept[1])
            rows = dict(conn.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())
        counts = {status: int(rows.get(status, 0)) for status in ("ok", "skipped", "missing")}
        self._counts = (version, counts)
        return dict(counts)

    def items_with_status(self, status: str, *, limit: int | None = None) -> pd.DataFrame:
        """Items of one status ("ok", "skipped", "missing") ordered by path, at most `limit`.

        The same columns as `items`; for lists a page shows (skipped files, missing images)
        without reading every item.
        """
        if status not in ("ok", "skipped", "missing"):
            raise ValueError(f"status must be 'ok', 'skipped' or 'missing', got {status!r}")
        clause = f"WHERE status = '{status}' ORDER BY path"
        if limit is not None:
            clause += f" LIMIT {int(limit)}"
        return self._items_frame(clause)

    def items_page(self, offset: int, limit: int, *, leave_out=()) -> pd.DataFrame:
        """Accepted items in path order, `limit` of them from `offset`, leaving out the ids in
        `leave_out` (e.g. the seeds): a page of a grid, without reading every item.

        Returns
        -------
        DataFrame
            Columns id, path (a fresh 0.. index).
        """
        with self._lock:
            rows = self._conn().execute(
                "SELECT id, path FROM items WHERE status = 'ok' AND id NOT IN "
                "(SELECT value FROM json_each(?)) ORDER BY path LIMIT ? OFFSET ?",
                (json.dumps([int(i) for i in leave_out]), int(limit), int(offset))).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=["id", "path"])
        frame["id"] = frame["id"].astype("int64")
        return frame

    def item_paths(self, item_ids) -> list[str | None]:
        """The path of each item id, in the order given (None for an unknown id)."""
        ids = [int(i) for i in np.asarray(item_ids, np.int64).ravel()]
        if not ids:
            return []
        with self._lock:
            found = dict(self._conn().execute(
                "SELECT id, path FROM items WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),)).fetchall())
        return [found.get(i) for i in ids]

    def file_stats(self) -> dict[str, tuple[int, int, str]]:
        """What a rescan may trust without reading a file: accepted path -> (size,
        modification time in ns, content hash) as of the scan that last hashed it.
        Files whose time was not recorded are left out (they are read again)."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT path, size, mtime_ns, content_hash FROM items "
                "WHERE status = 'ok' AND mtime_ns IS NOT NULL").fetchall()
        return {path: (size, mtime, digest) for path, size, mtime, digest in rows}

    def versions(self) -> tuple[str, str]:
        """(items version, truth version), told apart from those of a fresh database in the
        same folder: what a reader keying on the items and the truth compares."""
        with self._lock:
            conn = self._conn()
            return _items_version_key(conn), str(_get_meta(conn, "truth_version"))

    def items_version(self) -> int:
        """A number that moves on whenever a scan changes the items (one cheap query)."""
        with self._lock:
            return int(_get_meta(self._conn(), "items_version") or 0)

    def labels_version(self) -> int:
        """A number that moves on with every write that can change a label an item shows
        (a scan, a seed, a correction, an undo, a class renamed or merged, a run saved), so a
        reader can keep what it computed from the labels until it changes (one query)."""
        with self._lock:
            return int(_get_meta(self._conn(), "labels_version") or 0)

    def items_digest(self) -> str:
        """A digest of the accepted items (ids and contents, in path order): the same for
        the same items. Embedding keys carry it (``items=<digest>``); kept per items
        version in this process, so asking again costs one query."""
        with self._read() as conn:
            version = _items_version_key(conn)
            kept = getattr(self, "_digest", None)
            if kept is not None and kept[0] == version:
                return kept[1]
            digest = _digest_items(conn.execute(
                "SELECT id, content_hash FROM items WHERE status = 'ok' ORDER BY path"))
            self._digest = (version, digest)
        return digest

    # ------------------------------------------------------------------ classes and seeds

    def classes(self) -> list[str]:
        """Class names in their stable order (order of creation); merged and deleted ones left out."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT name FROM classes WHERE state = 'active' ORDER BY position").fetchall()
        return [name for (name,) in rows]

    def class_colours(self) -> dict[str, str]:
        """Each class's colour (``#RRGGBB``), fixed when the class was created."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT name, colour FROM classes WHERE state = 'active' ORDER BY position").fetchall()
        return dict(rows)

    def add_class(self, name: str) -> bool:
        """Add a class at the end of the order.

        Parameters
        ----------
        name : str
            Surrounding whitespace is dropped; must not be empty then.

        Returns
        -------
        bool
            True when the class was new, False when it already existed.
        """
        name = _check_class_name(name, "name")
        with self._write() as conn:
            return _ensure_class(conn, name)

    def class_usage(self, name: str) -> ClassUsage:
        """How many seeds, corrections and labels of the latest HDL run a class has now."""
        with self._read() as conn:
            class_id = _active_class_id(conn, _check_class_name(name, "name"))
            return _class_usage(conn, class_id, name)

    def rename_class(self, old: str, new: str) -> None:
        """Give a class a new name everywhere: seeds, corrections, runs and ground truth.

        Raises
        ------
        ValueError
            `old` is not a class, or `new` names another class (merge them instead).
        """
        old, new = _check_class_name(old, "old"), _check_class_name(new, "new")
        if old == new:
            return
        with self._write() as conn:
            class_id = _active_class_id(conn, old)
            if conn.execute("SELECT 1 FROM classes WHERE name = ? AND state != 'deleted'",
                            (new,)).fetchone():
                raise ValueError(f"there is already a class named '{new}'; to put the images of "
                                 f"'{old}' into it, merge '{old}' into '{new}'")
            conn.execute("DELETE FROM classes WHERE name = ? AND state = 'deleted' "
                         "AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.old_class_id = classes.id "
                         "OR c.new_class_id = classes.id)", (new,))
            if conn.execute("SELECT 1 FROM classes WHERE name = ?", (new,)).fetchone():
                raise ValueError(f"'{new}' was a class deleted earlier and is still named in the "
                                 "history; choose another name")
            conn.execute("UPDATE classes SET name = ? WHERE id = ?", (new, class_id))
            _rename_in_runs(conn, {old: new})
            _bump_meta(conn, "labels_version")
            conn.execute("UPDATE truth SET label = ? WHERE label = ?", (new, old))

    def merge_classes(self, source: str, into: str) -> ClassUsage:
        """Make every image of class `source` an image of class `into`; `source` goes away.

        Seeds move to `into`; corrections keep their history but now count for `into`;
        runs show `into` where they said `source`. Returns what moved.
        """
        source, into = _check_class_name(source, "source"), _check_class_name(into, "into")
        if source == into:
            raise ValueError(f"cannot merge '{source}' into itself; choose another class")
        with self._write() as conn:
            source_id = _active_class_id(conn, source)
            into_id = _active_class_id(conn, into)
            moved = _class_usage(conn, source_id, source)
            conn.execute("UPDATE seeds SET class_id = ? WHERE class_id = ?", (into_id, source_id))
            conn.execute("UPDATE classes SET merged_into = ? WHERE merged_into = ?", (into_id, source_id))
            conn.execute("UPDATE classes SET state = 'merged', merged_into = ? WHERE id = ?",
                         (into_id, source_id))
            _rename_in_runs(conn, {source: into})
            _bump_meta(conn, "labels_version")
        return moved

    def delete_class(self, name: str, *, reassign_to: str | None = None) -> ClassUsage:
        """Remove a class. A class nothing is labeled with just goes; one with seeds,
        corrections or labels in the latest run needs `reassign_to`, the class they become
        (that is a merge). Its history stays readable.

        Raises
        ------
        ValueError
            The class has labels and `reassign_to` is None (the message says how many), or
            a name is not a class.
        """
        name = _check_class_name(name, "name")
        if reassign_to is not None:
            return self.merge_classes(name, reassign_to)
        with self._write() as conn:
            class_id = _active_class_id(conn, name)
            usage = _class_usage(conn, class_id, name)
            if usage.total:
                raise ValueError(f"class '{name}' still labels {usage.describe()}; choose the "
                                 "class they become instead (that merges the two)")
            conn.execute("UPDATE classes SET state = 'deleted' WHERE id = ?", (class_id,))
        return usage

    def seeds(self) -> dict[int, str]:
        """Effective seeds of accepted items: item id -> class name.

        Dataset seeds and app seeds, with corrections and confirmations on top: an
        item whose latest (not undone) correction says "dog" is a seed of "dog" for the
        next run, whatever it was before; a confirmed label is a seed too.
        """
        with self._read() as conn:
            seeds = _seed_labels(conn)
            seeds.update((item, name) for item, (name, _) in _corrected_labels(conn).items())
        return seeds

    def set_seed(self, item_id: int, label: str | None, source: str = "app") -> None:
        """Make an item a seed of `label`, or no seed when `label` is None.

        A class that does not exist yet is created.  A correction of the item
        still wins over its seed (see `seeds`).

        Parameters
        ----------
        item_id : int
            An accepted item.
        label : str or None
        source : {"app", "layout", "csv"}

        Raises
        ------
        ValueError
            Unknown or skipped item, a label that is not a string, an unknown source.
        """
        item_id = _check_item_ids([item_id], "item_id")[0]
        if source not in SEED_SOURCES:
            raise ValueError(f"source={source!r} is not one of {SEED_SOURCES}")
        if label is not None:
            label = _check_class_name(label, "label")
        with self._write() as conn:
            _check_items_accepted(conn, [item_id])
            _bump_meta(conn, "labels_version")
            if label is None:
                conn.execute("DELETE FROM seeds WHERE item_id = ?", (item_id,))
                return
            _ensure_class(conn, label)
            conn.execute(
                "INSERT INTO seeds(item_id, class_id, source) VALUES (?, ?, ?) "
                "ON CONFLICT(item_id) DO UPDATE SET class_id = excluded.class_id, "
                "source = excluded.source", (item_id, _class_ids(conn)[label], source))

    # ------------------------------------------------------------------ corrections

    def add_correction(self, item_ids: Iterable[int], new_label: str, source: str = "manual",
                       old_labels: Sequence[str | None] | None = None, *,
                       actor: str | None = None) -> list[int]:
        """Record that the user relabeled a selection of items, as one batch.

        Items that already carry `new_label` are left out: a correction that changes
        nothing is not recorded (an empty list comes back when nothing changes).

        Parameters
        ----------
        item_ids : iterable of int
            Accepted items; repeats are dropped (first occurrence kept).
            Empty: nothing is written.
        new_label : str
            The class the user chose; a new name creates the class (and undoing this
            batch removes it again while nothing else uses it).
        source : {"manual", "bulk"}
        old_labels : sequence of (str or None), optional
            What the user saw for each item, aligned with `item_ids`.  By
            default the current label (`current_labels`) at the time of writing.
        actor : str, optional
            Who made it (a browser session, a user name); `undo_last_correction` can undo
            one actor's own last batch. None for the CLI.

        Returns
        -------
        list of int
            Correction ids, one per item written, in the order given.

        Raises
        ------
        ValueError
            Unknown or skipped items (named), a label that is not a string,
            an unknown source, `old_labels` of the wrong length or naming an
            unknown class.
        """
        given = _check_item_ids(item_ids, "item_ids", distinct=False)
        new_label = _check_class_name(new_label, "new_label")
        if source not in CORRECTION_SOURCES:
            raise ValueError(f"source={source!r} is not one of {CORRECTION_SOURCES} "
                             "(undo is recorded by undo_last_correction)")
        actor = _check_actor(actor)
        ids = list(dict.fromkeys(given))
        old_by_item: dict[int, str | None] | None = None
        if old_labels is not None:
            old_labels = list(old_labels)
            if len(old_labels) != len(given):
                raise ValueError(f"old_labels has {len(old_labels)} entries but item_ids has "
                                 f"{len(given)}; give one old label per item")
            old_by_item = {}
            for item_id, label in zip(given, old_labels):
                if label is not None:
                    label = _check_class_name(label, "old_labels")
                old_by_item.setdefault(item_id, label)
        if not ids:
            return []
        with self._write() as conn:
            _check_items_accepted(conn, ids)
            if old_by_item is not None:
                known = _class_ids(conn)
                unknown = sorted({label for label in old_by_item.values()
                                  if label is not None and label not in known})
                if unknown:
                    raise ValueError(f"old_labels name unknown classes {unknown}; "
                                     f"known classes: {sorted(known)}")
            current = _current_labels_of(conn, ids)
            ids = [item_id for item_id in ids if current.get(item_id, (None, None))[0] != new_label]
            if not ids:
                return []
            _bump_meta(conn, "labels_version")
            batch = _next_batch(conn)
            _ensure_class(conn, new_label, created_by=batch)
            class_ids = _class_ids(conn)
            if old_by_item is None:
                old_by_item = {item_id: current.get(item_id, (None, None))[0] for item_id in ids}
            return _write_batch(conn, batch, [(item_id, class_ids.get(old_by_item[item_id]),
                                               class_ids[new_label]) for item_id in ids],
                                source, "relabel", actor)

    def batch_of(self, correction_id: int) -> int:
        """The batch a correction (an id `add_correction` or `confirm` returned) belongs to."""
        with self._lock:
            row = self._conn().execute("SELECT batch FROM corrections WHERE id = ?",
                                       (int(correction_id),)).fetchone()
        if row is None:
            raise ValueError(f"correction {correction_id} is not in this workspace")
        return int(row[0])

    def confirm(self, item_ids: Iterable[int], *, actor: str | None = None) -> list[int]:
        """Mark the labels of these items as checked and right, as one batch.

        A confirmed label becomes a seed of the next run (source "confirmed" in
        `current_labels`), so review queues and suggestions stop offering it. Items whose
        label was already given by hand (a seed, a correction, a confirmation) are left
        out; items with no label yet are refused.

        Returns
        -------
        list of int
            Correction ids of the confirmations written.
        """
        ids = list(dict.fromkeys(_check_item_ids(item_ids, "item_ids", distinct=False)))
        actor = _check_actor(actor)
        if not ids:
            return []
        with self._write() as conn:
            _check_items_accepted(conn, ids)
            current = _current_labels_of(conn, ids)
            unlabeled = [item_id for item_id in ids if item_id not in current]
            if unlabeled:
                raise ValueError(f"items {unlabeled[:10]} have no label yet to confirm; run HDL "
                                 "first or give them a class")
            todo = [item_id for item_id in ids if current[item_id][1] in ("hdl", "fallback")]
            if not todo:
                return []
            _bump_meta(conn, "labels_version")
            class_ids = _class_ids(conn)
            rows = [(item_id, class_ids[current[item_id][0]], class_ids[current[item_id][0]])
                    for item_id in todo]
            return _write_batch(conn, _next_batch(conn), rows, "manual", "confirm", actor)

    def undo_last_correction(self, *, actor: str | None = None,
                             batch: int | None = None) -> UndoReport | None:
        """Undo the most recent correction batch not undone yet (of `actor`, when given),
        or exactly `batch` when given (a batch of `actor`'s, not undone yet).

        The undo is itself recorded: one 'undo' row per undone correction, in a new batch.
        Each item then falls back to its previous correction, else its seed, else the
        run's label.  Undos are not undone (no redo). A class the undone batch created is
        removed again when nothing else uses it.

        Returns
        -------
        UndoReport or None
            What was undone (each image, its label before and after the undone batch);
            None when there was nothing left to undo.
        """
        actor = _check_actor(actor)
        with self._write() as conn:
            row = conn.execute(
                "SELECT MAX(c.batch) FROM corrections c WHERE c.source != 'undo' "
                "AND (? IS NULL OR c.actor = ?) AND (? IS NULL OR c.batch = ?) "
                "AND NOT EXISTS (SELECT 1 FROM corrections u WHERE u.undoes = c.id)",
                (actor, actor, batch, batch)).fetchone()
            if row[0] is None:
                return None
            undone = row[0]
            changes = conn.execute(
                "SELECT i.path, o.name, n.name, c.kind FROM corrections c "
                "JOIN items i ON i.id = c.item_id LEFT JOIN classes o ON o.id = c.old_class_id "
                "LEFT JOIN classes n ON n.id = c.new_class_id "
                "WHERE c.batch = ? AND c.source != 'undo' ORDER BY c.id", (undone,)).fetchall()
            _bump_meta(conn, "labels_version")
            batch = _next_batch(conn)
            conn.execute(
                "INSERT INTO corrections(batch, item_id, old_class_id, new_class_id, time, source, "
                "undoes, kind, actor) "
                "SELECT ?, c.item_id, c.new_class_id, c.old_class_id, ?, 'undo', c.id, c.kind, ? "
                "FROM corrections c WHERE c.batch = ? AND c.source != 'undo' "
                "AND NOT EXISTS (SELECT 1 FROM corrections u WHERE u.undoes = c.id) ORDER BY c.id",
                (batch, _now(), actor, undone))
            removed = _remove_classes_created_by(conn, undone)
        kind = changes[0][3] if changes else "relabel"
        return UndoReport(undone, kind, [(path, old, new) for path, old, new, _ in changes], removed)

    def corrections(self) -> pd.DataFrame:
        """The whole correction history, oldest first.

        Returns
        -------
        DataFrame
            Columns id, batch, item_id, path, old_label, new_label (missing
            for "no label"), time, source ("manual", "bulk" or "undo"), kind
            ("relabel" or "confirm"), actor (who, missing for the CLI), undoes
            (id of the undone correction, on undo rows only), undone (bool: a
            later undo row names it).
        """
        columns = ["id", "batch", "item_id", "path", "old_label", "new_label", "time", "source",
                   "kind", "actor", "undoes", "undone"]
        with self._lock:
            rows = self._conn().execute(
                "SELECT c.id, c.batch, c.item_id, i.path, o.name, n.name, c.time, c.source, c.kind, "
                "c.actor, c.undoes, EXISTS (SELECT 1 FROM corrections u WHERE u.undoes = c.id) "
                "FROM corrections c JOIN items i ON i.id = c.item_id "
                "LEFT JOIN classes o ON o.id = c.old_class_id "
                "LEFT JOIN classes n ON n.id = c.new_class_id ORDER BY c.id").fetchall()
        frame = pd.DataFrame.from_records(rows, columns=columns)
        for column in ("id", "batch", "item_id"):
            frame[column] = frame[column].astype("int64")
        frame["undoes"] = frame["undoes"].astype("Int64")
        frame["undone"] = frame["undone"].astype(bool)
        return frame

    def current_labels(self, run_id: int | None = None, *,
                       method: str | None = "hdl") -> dict[int, tuple[str, str]]:
        """The label each accepted item has now: item id -> (label, source).

        A correction ("manual") or a confirmation ("confirmed"), whichever is latest,
        wins; then a seed ("seed"), then the run's label ("fallback" when the run fell
        back for that item, else "hdl"). Items no source labels are absent.

        Parameters
        ----------
        run_id : int, optional
            The run to take labels from; default the latest one of `method`.
        method : {"hdl", "knn_dv"} or None, default "hdl"
            Which runs count as "latest" (None: any); so a baseline run saved
            for comparison does not replace the labels.

        Raises
        ------
        ValueError
            Unknown `run_id` or `method`.
        """
        return self.current_label_arrays(run_id, method=method).as_dict()

    def current_label_arrays(self, run_id: int | None = None, *,
                             method: str | None = "hdl") -> CurrentLabels:
        """`current_labels` as arrays over every accepted item (`CurrentLabels`): what the
        pages read at a million images, where a dict of every item would cost seconds.

        Parameters and errors as `current_labels`.
        """
        if method is not None and method not in METHODS:
            raise ValueError(f"method={method!r} is not one of {METHODS} or None")
        with self._read() as conn:
            return _current_labels(conn, method=method, run_id=run_id)

    def edit_counts(self) -> dict[str, int]:
        """How many accepted items show a seed, a correction ("manual") and a confirmation
        ("confirmed") now, by the rule of `current_labels` (a correction or confirmation
        wins over a seed), without reading a run: the counts the app shows after every
        change, where `current_label_arrays` would place a million run labels first.

        Examples
        --------
        >>> import tempfile
        >>> from hdl_core.workspace.store import Workspace
        >>> Workspace(tempfile.mkdtemp()).edit_counts()
        {'seed': 0, 'manual': 0, 'confirmed': 0}
        """
        with self._read() as conn:
            current = _combine_labels(_ok_ids_sorted(conn), None, _seed_labels(conn),
                                      _corrected_labels(conn))
        counts = np.bincount(current.source[current.source >= 0], minlength=len(LABEL_SOURCES))
        return {kind: int(counts[_SOURCE_CODE[kind]]) for kind in ("seed", "manual", "confirmed")}

    # ------------------------------------------------------------------ runs

    def save_run(self, *, method: str, params: dict, result: LabelingResult,
                 classes: Sequence[str], item_ids: Sequence[int] | np.ndarray,
                 compares_to: int | None = None) -> int:
        """Store a labeling result so it can be reloaded and replayed.

        Parameters
        ----------
        method : {"hdl", "knn_dv"}
        params : dict
            JSON-serialisable (numpy scalars and arrays and Paths are converted).
        result : LabelingResult-like
            Any object with arrays ``labels, step, round, confidence,
            n_voters, fallback, source``, each of length n, aligned with
            `item_ids`.  ``labels`` index into `classes` (-1: no label);
            ``source`` is a position in `item_ids` or -1.
        classes : sequence of str
            Distinct class names.
        item_ids : sequence of int, length n
            Distinct accepted items, in the order of `result`.
        compares_to : int, optional
            For a kNN-DV run: the HDL run it was made to compare with (same seeds, same
            k). Stored as a link, so the pair is never guessed.

        Returns
        -------
        int
            The new run's id.

        Raises
        ------
        ValueError
            Any input out of shape or range; the message names it.
        """
        if method not in METHODS:
            raise ValueError(f"method={method!r} is not one of {METHODS}")
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict, got {type(params).__name__}")
        params_json = _to_json(params, "params")
        classes = [_check_class_name(name, "classes") for name in classes]
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes has repeated names: {classes}")
        ids = np.asarray(item_ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"item_ids must be a 1-D sequence of integers, got shape {ids.shape} "
                             f"dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("item_ids has repeated ids")
        arrays = _result_arrays(result, n=len(ids), n_classes=len(classes))
        k = getattr(result, "k", None)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"result.k={k!r} must be an integer >= 1")
        with self._write() as conn:
            _check_items_accepted(conn, ids)
            if compares_to is not None:
                partner = conn.execute("SELECT method FROM runs WHERE id = ?",
                                       (int(compares_to),)).fetchone()
                if partner is None or partner[0] != "hdl" or method != "knn_dv":
                    raise ValueError(f"compares_to={compares_to!r}: only a kNN-DV run compares "
                                     "with an HDL run, and that run must exist")
            cursor = conn.execute(
                "INSERT INTO runs(created, method, k, params, classes, compares_to, n_items) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_now(), method, int(k), params_json, json.dumps(classes),
                 None if compares_to is None else int(compares_to), len(ids)))
            run_id = cursor.lastrowid
            # The arrays go to a file of their own, written (and made durable) before the
            # row naming it commits: a process killed before the commit leaves the store as
            # it was, and an unnamed file that `_remove_orphan_runs` clears later.
            name = f"run-{run_id}-{uuid.uuid4().hex[:12]}.arrow"
            conn.execute("UPDATE runs SET arrays = ? WHERE id = ?", (name, run_id))
            if method == "hdl" or compares_to is not None:   # a run, or its kNN-DV column
                _bump_meta(conn, "labels_version")
            self.runs_dir.mkdir(exist_ok=True)
            write_run_arrays(self.runs_dir / name, {"item_id": ids, **arrays})
        return run_id

    def runs(self, method: str | None = None) -> list[RunInfo]:
        """All runs (of `method`, when given), oldest first, without their per-item rows."""
        if method is not None and method not in METHODS:
            raise ValueError(f"method={method!r} is not one of {METHODS} or None")
        with self._lock:
            rows = self._conn().execute(
                "SELECT r.id, r.created, r.method, r.k, r.params, r.classes, r.n_items, "
                "(SELECT MAX(b.id) FROM runs b WHERE b.compares_to = r.id) "
                "FROM runs r WHERE ? IS NULL OR r.method = ? ORDER BY r.id",
                (method, method)).fetchall()
        return [RunInfo(run_id, created, kind, k, json.loads(params), json.loads(classes),
                        n_items, baseline)
                for run_id, created, kind, k, params, classes, n_items, baseline in rows]

    def load_run(self, run_id: int | None = None, *, method: str | None = None) -> StoredRun | None:
        """Load one run.

        Parameters
        ----------
        run_id : int, optional
            Default: the latest run (of `method`, when given).
        method : {"hdl", "knn_dv"}, optional
            Only with ``run_id=None``.

        Returns
        -------
        StoredRun or None
            None when there is no run (of that method).

        Raises
        ------
        ValueError
            `run_id` names no run, or an unknown `method`.
        """
        if method is not None and method not in METHODS:
            raise ValueError(f"method={method!r} is not one of {METHODS} or None")
        with self._read() as conn:
            run_id = _resolve_run(conn, run_id, method)
            if run_id is None:
                return None
            created, method, k, params, classes, _, _ = _run_row(conn, run_id)
            arrays = _run_arrays(conn, run_id)
            baseline = conn.execute("SELECT MAX(id) FROM runs WHERE compares_to = ?",
                                    (run_id,)).fetchone()[0]
        return _stored_run(run_id, created, method, k, json.loads(params), json.loads(classes),
                           arrays, baseline)

    def run_arrays(self, run_id: int) -> tuple[RunInfo, dict[str, np.ndarray]]:
        """A run's facts and its per-item arrays, read-only and shared (no copy).

        What `load_run` copies into a `StoredRun`; pages that only read a run of a million
        images take these instead. Keys: ``item_id, labels, step, round, confidence,
        n_voters, fallback, source`` (``source``: a position in the run, -1 for none).

        Raises
        ------
        ValueError
            `run_id` names no run.
        """
        with self._read() as conn:
            run_id = _resolve_run(conn, run_id, None)
            if run_id is None:
                raise ValueError("run_id must name a run")
            created, method, k, params, classes, _, n_items = _run_row(conn, run_id)
            arrays = _run_arrays(conn, run_id)
            baseline = conn.execute("SELECT MAX(id) FROM runs WHERE compares_to = ?",
                                    (run_id,)).fetchone()[0]
        return RunInfo(run_id, created, method, k, json.loads(params), json.loads(classes),
                       n_items, baseline), arrays

    # ------------------------------------------------------------------ embeddings

    def embeddings_path(self, key: str) -> Path:
        """The file the array for `key` lives in (`arrays.ArrayFiles.path`)."""
        return self.arrays.path(key)

    def save_embeddings(self, key: str, X: np.ndarray) -> None:
        """Write an (n, d) numeric array for `key`, atomically (`arrays.ArrayFiles.save`)."""
        self.arrays.save(key, X)

    def load_embeddings(self, key: str) -> np.ndarray | None:
        """The array saved for `key`, or None (`arrays.ArrayFiles.load`)."""
        return self.arrays.load(key)

    # ------------------------------------------------------------------ truth and settings

    def set_truth(self, truth: dict[str, str]) -> None:
        """Replace the ground truth (demo datasets): path -> class name.  ``{}`` clears it."""
        truth = _check_truth(truth)
        with self._write() as conn:
            if _replace_truth(conn, truth):
                _bump_meta(conn, "labels_version")

    def truth(self) -> dict[str, str] | None:
        """The ground truth, path -> class name, or None when none is stored."""
        with self._lock:
            rows = self._conn().execute("SELECT path, label FROM truth ORDER BY path").fetchall()
        return dict(rows) or None

    def truth_of_items(self) -> tuple[np.ndarray, np.ndarray]:
        """The ground truth of the accepted items as (item ids, class names) arrays (empty
        without truth); read once per items and truth version."""
        with self._read() as conn:
            version = (_items_version_key(conn), _get_meta(conn, "truth_version"))
            kept = getattr(self, "_truth", None)
            if kept is not None and kept[0] == version:
                return kept[1]
            rows = conn.execute("SELECT i.id, t.label FROM truth t CROSS JOIN items i "
                                "ON i.path = t.path WHERE i.status = 'ok'").fetchall()
        ids = np.fromiter((i for i, _ in rows), np.int64, len(rows))
        names = np.array([name for _, name in rows], dtype=object)
        self._truth = (version, (ids, names))
        return ids, names

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A durable UI setting (JSON value), or `default` when unset."""
        _check_setting_key(key)
        with self._lock:
            row = self._conn().execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        """Store a durable UI setting; `value` must be JSON-serialisable."""
        _check_setting_key(key)
        value_json = _to_json(value, f"setting {key!r}")
        with self._write() as conn:
            conn.execute("INSERT INTO settings(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value_json))


# --------------------------------------------------------------------------- validation

def _check_class_name(name: Any, what: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"{what}: class names are strings, got {name!r} ({type(name).__name__})")
    stripped = name.strip()
    if not stripped:
        raise ValueError(f"{what}: class name {name!r} is empty")
    problem = class_name_problem(stripped)
    if problem is not None:
        raise ValueError(f"{what}: {problem}; choose a shorter, plain name")
    return stripped


def _check_item_ids(item_ids: Iterable[Any], what: str, *, distinct: bool = True) -> list[int]:
    """Ints in the order given (repeats dropped when `distinct`); bools, floats, strings refused."""
    if isinstance(item_ids, (str, bytes)):
        raise ValueError(f"{what} must be integers, got {item_ids!r}")
    values = item_ids.tolist() if isinstance(item_ids, np.ndarray) else list(item_ids)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, np.integer))]
    if bad:
        raise ValueError(f"{what} must be integers, got {bad[:5]!r}")
    values = [int(v) for v in values]
    return list(dict.fromkeys(values)) if distinct else values


def _check_items_accepted(conn: sqlite3.Connection, item_ids) -> None:
    """Raise when any id names no item, or a skipped one."""
    ids = np.asarray(item_ids, np.int64)
    if ids.size > 1000:           # a whole run: look the ids up among the accepted ones at once
        accepted = _ok_ids_sorted(conn)
        ids = ids[_rows_in(accepted, ids) < 0]
    item_ids = ids.tolist()
    if not item_ids:
        return
    rows = conn.execute(
        "SELECT value, status FROM json_each(?) LEFT JOIN items ON items.id = value "
        "WHERE status IS NULL OR status != 'ok'", (json.dumps(item_ids),)).fetchall()
    unknown = [item_id for item_id, status in rows if status is None]
    missing = [item_id for item_id, status in rows if status == "missing"]
    skipped = [item_id for item_id, status in rows if status == "skipped"]
    if unknown:
        raise ValueError(f"item ids {unknown[:10]} are not in this workspace"
                         + (f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""))
    if missing:
        raise ValueError(f"items {missing[:10]} were missing from the folder at the last scan; "
                         "put the files back (or scan again) to label them")
    if skipped:
        raise ValueError(f"items {skipped[:10]} were skipped when the dataset was scanned "
                         "and cannot be labeled")


def _check_truth(truth: Any) -> dict[str, str]:
    if not isinstance(truth, dict):
        raise ValueError(f"truth must be a dict path -> label, got {type(truth).__name__}")
    bad = [(p, l) for p, l in truth.items() if not isinstance(p, str) or not isinstance(l, str)]
    if bad:
        raise ValueError(f"truth maps path strings to label strings; bad entries {bad[:5]!r}")
    return truth


def _check_setting_key(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"setting keys are non-empty strings, got {key!r}")


def _dataset_rows(dataset: Any) -> tuple[list[tuple], list[tuple], list[tuple[str, str, str]]]:
    """(path, hash, size, mtime_ns) rows, (path, reason) rows and (path, label, source) seed rows."""
    ok_rows, skipped_rows, seed_rows = [], [], []
    seen: set[str] = set()
    integer = (int, np.integer)

    def bad_path(path: Any, where: str) -> ValueError:
        if not isinstance(path, str) or not path:
            return ValueError(f"dataset {where}: path must be a non-empty string, got {path!r}")
        return ValueError(f"dataset {where}: path {path!r} appears more than once")

    for number, item in enumerate(dataset.items):
        path, digest, size = item.path, item.content_hash, item.size
        mtime = getattr(item, "mtime_ns", None)
        if path in seen or not isinstance(path, str) or not path:
            raise bad_path(path, f"item {number}")
        seen.add(path)
        if not isinstance(digest, str):
            raise ValueError(f"dataset item {path!r}: content_hash must be a string, "
                             f"got {digest!r}")
        if size.__class__ is not int and (isinstance(size, bool) or not isinstance(size, integer)) \
                or size < 0:
            raise ValueError(f"dataset item {path!r}: size must be an integer >= 0, got {size!r}")
        if mtime is not None and mtime.__class__ is not int and (
                isinstance(mtime, bool) or not isinstance(mtime, integer)):
            raise ValueError(f"dataset item {path!r}: mtime_ns must be an integer or None, "
                             f"got {mtime!r}")
        ok_rows.append((path, digest, int(size), None if mtime is None else int(mtime)))
        if item.seed_label is not None:
            label = _check_class_name(item.seed_label, f"dataset item {path!r} seed_label")
            source = getattr(item, "seed_source", None)
            if source is None:
                parent = path.rsplit("/", 1)[0] if "/" in path else ""
                source = "layout" if parent.rsplit("/", 1)[-1] == label else "csv"
            elif source not in SEED_SOURCES:
                raise ValueError(f"dataset item {path!r}: seed_source={source!r} is not one of "
                                 f"{SEED_SOURCES}")
            seed_rows.append((path, label, source))
    for number, skipped in enumerate(getattr(dataset, "skipped", None) or []):
        path = skipped.path
        if path in seen or not isinstance(path, str) or not path:
            raise bad_path(path, f"skipped entry {number}")
        seen.add(path)
        reason = skipped.reason if isinstance(skipped.reason, str) and skipped.reason else "skipped"
        skipped_rows.append((path, reason))
    return ok_rows, skipped_rows, seed_rows


def _result_arrays(result: Any, *, n: int, n_classes: int) -> dict[str, np.ndarray]:
    """The LabelingResult fields as checked numpy arrays of length n."""
    missing = [name for name in RESULT_FIELDS if not hasattr(result, name)]
    if missing:
        raise ValueError(f"result lacks {missing}; pass a LabelingResult (or an object with "
                         f"{', '.join(RESULT_FIELDS)})")
    arrays = {}
    for name in RESULT_FIELDS:
        array = np.asarray(getattr(result, name))
        if array.shape != (n,):
            raise ValueError(f"result.{name} has shape {array.shape}, expected ({n},) "
                             "to match item_ids")
        kind = "f" if name == "confidence" else "b" if name == "fallback" else "i"
        if name == "fallback":
            if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"result.fallback must be boolean, got dtype {array.dtype}")
            array = array.astype(bool)
        elif kind == "i":
            if n and not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"result.{name} must be integers, got dtype {array.dtype}")
            array = array.astype(np.int64)
        else:
            if n and not np.issubdtype(array.dtype, np.number):
                raise ValueError(f"result.confidence must be numbers, got dtype {array.dtype}")
            array = array.astype(np.float64)
        arrays[name] = array
    labels, source = arrays["labels"], arrays["source"]
    if n and (labels.min() < -1 or labels.max() >= n_classes):
        raise ValueError(f"result.labels must lie in [-1, {n_classes - 1}] "
                         f"(indices into classes), got [{labels.min()}, {labels.max()}]")
    if n and (source.min() < -1 or source.max() >= n):
        raise ValueError(f"result.source must lie in [-1, {n - 1}] (positions in item_ids), "
                         f"got [{source.min()}, {source.max()}]")
    return arrays


# --------------------------------------------------------------------------- queries

def _get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))


def _update_items(conn: sqlite3.Connection, ok_rows: list[tuple], skipped_rows: list[tuple]):
    """Write what a scan changed: gone paths missing (or forgotten), moved files found again,
    new or changed rows. Returns (retired any, moved, ok rows written, skipped rows written)."""
    stored = {row[1]: row[:1] + row[2:] for row in conn.execute(
        "SELECT id, path, content_hash, size, mtime_ns, status, skip_reason FROM items")}
    present = {row[0] for row in ok_rows}
    present.update(row[0] for row in skipped_rows)
    retired = _retire_gone(conn, [(row[0], row[4]) for path, row in stored.items()
                                  if path not in present])
    moved = _reattach_moved(conn, ok_rows, stored)
    # stored rows: (id, content_hash, size, mtime_ns, status, skip_reason)
    absent = (None,) * 6
    new_ok = [row for row in ok_rows if stored.get(row[0], absent)[1:5] != (*row[1:], "ok")]
    new_skipped = [row for row in skipped_rows
                   if stored.get(row[0], absent)[4:6] != ("skipped", row[1])]
    conn.executemany(
        "INSERT INTO items(path, content_hash, size, mtime_ns, status, skip_reason) "
        "VALUES (?, ?, ?, ?, 'ok', NULL) ON CONFLICT(path) DO UPDATE SET "
        "content_hash = excluded.content_hash, size = excluded.size, "
        "mtime_ns = excluded.mtime_ns, status = 'ok', skip_reason = NULL", new_ok)
    conn.executemany(
        "INSERT INTO items(path, content_hash, size, mtime_ns, status, skip_reason) "
        "VALUES (?, NULL, NULL, NULL, 'skipped', ?) ON CONFLICT(path) DO UPDATE SET "
        "content_hash = NULL, size = NULL, mtime_ns = NULL, status = 'skipped', "
        "skip_reason = excluded.skip_reason", new_skipped)
    return retired, moved, new_ok, new_skipped


def _reattach_moved(conn: sqlite3.Connection, ok_rows: list[tuple], stored: dict) -> int:
    """Give a missing item the new path of a file with its content; returns how many moved.

    Only paths the store does not know yet take over a missing item (a known path keeps
    its own item); missing items with one content are taken oldest first, once each.
    `stored` is the items as they were before this scan (path -> row).
    """
    waiting: dict[str, list[int]] = {}
    for item_id, digest in conn.execute(
            "SELECT id, content_hash FROM items WHERE status = 'missing' "
            "AND content_hash IS NOT NULL ORDER BY id"):
        waiting.setdefault(digest, []).append(item_id)
    if not waiting:
        return 0
    moves = []
    for path, digest, size, mtime in ok_rows:
        if path not in stored and waiting.get(digest):
            moves.append((path, size, mtime, waiting[digest].pop(0)))
    conn.executemany("UPDATE items SET path = ?, size = ?, mtime_ns = ?, status = 'ok', "
                     "skip_reason = NULL WHERE id = ?", moves)
    for path, _, _, item_id in moves:            # what the caller compares with next
        stored[path] = (item_id, None, None, None, "ok", None)
    return len(moves)


def _retire_gone(conn: sqlite3.Connection, gone: list[tuple[int, str]]) -> bool:
    """Items whose path the scan did not find (id, status): missing, or forgotten when
    nothing refers to them. Returns whether anything changed."""
    skipped = json.dumps([item_id for item_id, status in gone if status == "skipped"])
    conn.execute(
        "DELETE FROM items WHERE status = 'skipped' AND id IN (SELECT value FROM json_each(?)) "
        "AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.item_id = items.id) "
        "AND NOT EXISTS (SELECT 1 FROM seeds s WHERE s.item_id = items.id)", (skipped,))
    others = json.dumps([item_id for item_id, status in gone if status != "missing"])
    conn.execute("UPDATE items SET status = 'missing', skip_reason = NULL "
                 "WHERE id IN (SELECT value FROM json_each(?))", (others,))
    return any(status != "missing" for _, status in gone)


def _digest_items(rows) -> str:
    """sha1 of ``"<id>:<content hash>;"`` over (id, content hash) rows, first 16 hex digits."""
    import hashlib
    h = hashlib.sha1()
    for item_id, content_hash in rows:
        h.update(f"{item_id}:{content_hash};".encode())
    return h.hexdigest()[:16]


def _bump_meta(conn: sqlite3.Connection, key: str) -> None:
    """Move a version number in ``meta`` on by one (see `Workspace.labels_version`)."""
    conn.execute("INSERT INTO meta(key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE SET "
                 "value = CAST(value AS INTEGER) + 1", (key,))


def _ensure_class(conn: sqlite3.Connection, name: str, *, created_by: int | None = None) -> bool:
    """Append a class unless it exists (a deleted one comes back); True when it was new."""
    row = conn.execute("SELECT id, state FROM classes WHERE name = ?", (name,)).fetchone()
    if row is not None:
        if row[1] != "deleted":
            return False
        conn.execute("UPDATE classes SET state = 'active', merged_into = NULL, created_by = ? "
                     "WHERE id = ?", (created_by, row[0]))
        return True
    number = conn.execute("SELECT COUNT(*) FROM classes").fetchone()[0]
    conn.execute(
        "INSERT INTO classes(name, position, colour, created_by) "
        "SELECT ?, COALESCE(MAX(position), -1) + 1, ?, ? FROM classes",
        (name, class_colour(number), created_by))
    return True


def _class_ids(conn: sqlite3.Connection) -> dict[str, int]:
    """Class name -> the id it counts as now (a merged class's name -> its target's id)."""
    return dict(conn.execute("SELECT name, COALESCE(merged_into, id) FROM classes "
                             "WHERE state != 'deleted'").fetchall())


def _active_class_id(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM classes WHERE name = ? AND state = 'active'",
                       (name,)).fetchone()
    if row is None:
        known = [n for (n,) in conn.execute(
            "SELECT name FROM classes WHERE state = 'active' ORDER BY position")]
        raise ValueError(f"there is no class '{name}'; the classes are {', '.join(known) or 'none yet'}")
    return row[0]


@dataclass(frozen=True)
class ClassUsage:
    """What a class labels now: seeds, corrections (and confirmations), latest-run labels."""

    name: str
    seeds: int
    corrections: int
    run_labels: int

    @property
    def total(self) -> int:
        return self.seeds + self.corrections + self.run_labels

    def describe(self) -> str:
        parts = [(self.seeds, "seed"), (self.corrections, "corrected image"),
                 (self.run_labels, "image labeled by the latest run")]
        return ", ".join(f"{count} {word}{'s' if count != 1 else ''}"
                         for count, word in parts if count) or "nothing"


def _class_usage(conn: sqlite3.Connection, class_id: int, name: str) -> ClassUsage:
    seeds = conn.execute("SELECT COUNT(*) FROM seeds s JOIN items i ON i.id = s.item_id "
                         "WHERE s.class_id = ? AND i.status = 'ok'", (class_id,)).fetchone()[0]
    corrected = sum(1 for label, _ in _corrected_labels(conn).values() if label == name)
    run_id = _resolve_run(conn, None, "hdl")
    run_labels = 0
    if run_id is not None:
        classes = json.loads(conn.execute("SELECT classes FROM runs WHERE id = ?",
                                          (run_id,)).fetchone()[0])
        if name in classes:
            arrays = _run_arrays(conn, run_id)
            run_labels = int(np.count_nonzero((arrays["labels"] == classes.index(name))
                                              & (arrays["step"] >= 0)))
    return ClassUsage(name, seeds, corrected, run_labels)


def _rename_in_runs(conn: sqlite3.Connection, renames: dict[str, str]) -> None:
    """Rewrite the class names runs store (a merge makes two entries name the same class)."""
    for run_id, classes in conn.execute("SELECT id, classes FROM runs").fetchall():
        names = json.loads(classes)
        renamed = [renames.get(name, name) for name in names]
        if renamed != names:
            conn.execute("UPDATE runs SET classes = ? WHERE id = ?", (json.dumps(renamed), run_id))


def _remove_classes_created_by(conn: sqlite3.Connection, batch: int) -> list[str]:
    """Hide the classes `batch` created when, with it undone, nothing uses them."""
    removed = []
    for class_id, name in conn.execute("SELECT id, name FROM classes WHERE created_by = ? "
                                       "AND state = 'active'", (batch,)).fetchall():
        in_runs = any(name in json.loads(classes) for (classes,) in
                      conn.execute("SELECT classes FROM runs").fetchall())
        if not in_runs and _class_usage(conn, class_id, name).total == 0:
            conn.execute("UPDATE classes SET state = 'deleted' WHERE id = ?", (class_id,))
            removed.append(name)
    return removed


@dataclass(frozen=True)
class UndoReport:
    """What `Workspace.undo_last_correction` undid.

    Attributes
    ----------
    batch : int
        The batch undone.
    kind : {"relabel", "confirm"}
    changes : list of (path, old label, new label)
        Each image of the batch with the label it had before and the one the batch gave
        it (the image now falls back to its previous label).
    removed_classes : list of str
        Classes the batch had created and that went away with it.
    """

    batch: int
    kind: str
    changes: list
    removed_classes: list

    def describe(self, shown: int = 3) -> str:
        """The undo in words: "Undid the label of 2 images: a.png 7 → 1, b.png 7 → 1"."""
        what = "confirmation" if self.kind == "confirm" else "label"
        n = len(self.changes)
        listed = ", ".join(f"{path} {old or 'no label'} → {new or 'no label'}"
                           for path, old, new in self.changes[:shown])
        more = f" and {n - shown} more" if n > shown else ""
        text = f"Undid the {what} of {n} image{'s' if n != 1 else ''}: {listed}{more}."
        if self.removed_classes:
            text += f" Class {', '.join(repr(c) for c in self.removed_classes)} went away with it."
        return text


def _next_batch(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM corrections").fetchone()[0]


def _write_batch(conn: sqlite3.Connection, batch: int, rows: list[tuple[int, int | None, int]],
                 source: str, kind: str, actor: str | None) -> list[int]:
    """Insert one batch of (item, old class id, new class id) rows; their ids in order."""
    time = _now()
    ids = []
    for item_id, old_class, new_class in rows:
        cursor = conn.execute(
            "INSERT INTO corrections(batch, item_id, old_class_id, new_class_id, time, source, "
            "kind, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (batch, item_id, old_class, new_class, time, source, kind, actor))
        ids.append(cursor.lastrowid)
    return ids


def _check_actor(actor: Any) -> str | None:
    if actor is None:
        return None
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError(f"actor must be a non-empty string naming who made the change, got {actor!r}")
    return actor.strip()[:120]


def _replace_truth(conn: sqlite3.Connection, truth: dict[str, str]) -> bool:
    """Make the stored truth `truth`; returns whether it changed."""
    before = conn.execute("SELECT path, label FROM truth ORDER BY path").fetchall()
    if before == sorted(truth.items()):
        return False
    conn.execute("DELETE FROM truth")
    conn.executemany("INSERT INTO truth(path, label) VALUES (?, ?)", truth.items())
    _bump_meta(conn, "truth_version")
    return True


def _seed_labels(conn: sqlite3.Connection, only: str | None = None) -> dict[int, str]:
    """Item id -> seed class of accepted items (of the ids in the JSON list `only`)."""
    # CROSS JOIN keeps SQLite's join order: seeds first (a few thousand), never a scan of
    # a million items
    chosen = ("FROM (SELECT value AS item_id FROM json_each(?)) w CROSS JOIN seeds s "
              "ON s.item_id = w.item_id " if only is not None else "FROM seeds s ")
    return dict(conn.execute(
        "SELECT s.item_id, COALESCE(m.name, c.name) " + chosen +
        "CROSS JOIN items i ON i.id = s.item_id JOIN classes c ON c.id = s.class_id "
        "LEFT JOIN classes m ON m.id = c.merged_into WHERE i.status = 'ok'",
        () if only is None else (only,)).fetchall())


def _corrected_labels(conn: sqlite3.Connection, only: str | None = None) -> dict[int, tuple[str, str]]:
    """Item id -> (class, kind) of its latest correction or confirmation that is not undone
    (accepted items only; of the ids in the JSON list `only`); a merged class counts as the
    class it was merged into."""
    chosen = ("(SELECT MAX(x.id) FROM json_each(?) w CROSS JOIN corrections x "
              "ON x.item_id = w.value WHERE x.source != 'undo' " if only is not None else
              "(SELECT MAX(x.id) FROM corrections x WHERE x.source != 'undo' ")
    return {item_id: (name, kind) for item_id, name, kind in conn.execute(
        "SELECT c.item_id, COALESCE(m.name, k.name), c.kind FROM corrections c "
        "CROSS JOIN items i ON i.id = c.item_id AND i.status = 'ok' "
        "JOIN classes k ON k.id = c.new_class_id LEFT JOIN classes m ON m.id = k.merged_into "
        "WHERE c.id IN " + chosen +
        "  AND NOT EXISTS (SELECT 1 FROM corrections u WHERE u.undoes = x.id) GROUP BY x.item_id)",
        () if only is None else (only,)).fetchall()}


def _resolve_run(conn: sqlite3.Connection, run_id: int | None, method: str | None) -> int | None:
    if run_id is None:
        row = conn.execute("SELECT MAX(id) FROM runs WHERE ? IS NULL OR method = ?",
                           (method, method)).fetchone()
        return row[0]
    if isinstance(run_id, bool) or not isinstance(run_id, (int, np.integer)):
        raise ValueError(f"run_id must be an integer, got {run_id!r}")
    if conn.execute("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)).fetchone() is None:
        raise ValueError(f"run_id={run_id} names no run in this workspace")
    return int(run_id)


@dataclass(frozen=True)
class CurrentLabels:
    """The label every accepted item has now, as arrays (`Workspace.current_label_arrays`).

    Which label wins is decided in one place, `_combine_labels`: a correction or a
    confirmation (whichever is latest), then a seed, then the run's label.

    Attributes
    ----------
    item_ids : ndarray of int64, shape (n,)
        Every accepted item, ascending id.
    label : ndarray of int32, shape (n,)
        Index into `names`; -1: no label yet.
    source : ndarray of int8, shape (n,)
        Index into `LABEL_SOURCES`; -1: no label yet.
    names : tuple of str
        Class names the codes in `label` index.
    """

    item_ids: np.ndarray
    label: np.ndarray
    source: np.ndarray
    names: tuple

    def rows_of(self, item_ids) -> np.ndarray:
        """Row of each id in these arrays (-1 for an id that is not an accepted item)."""
        ids = np.asarray(item_ids, np.int64)
        if self.item_ids.size == 0:
            return np.full(ids.shape, -1, np.int64)
        row = np.minimum(np.searchsorted(self.item_ids, ids), self.item_ids.size - 1)
        return np.where(self.item_ids[row] == ids, row, -1)

    def as_dict(self) -> dict[int, tuple[str, str]]:
        """Item id -> (label, source) for the labeled items (`Workspace.current_labels`)."""
        has = self.label >= 0
        names = np.array(list(self.names) + [None], dtype=object)
        sources = np.array(LABEL_SOURCES + (None,), dtype=object)
        return dict(zip(self.item_ids[has].tolist(),
                        zip(names[self.label[has]].tolist(), sources[self.source[has]].tolist())))


def _combine_labels(ok_ids: np.ndarray, run: tuple | None, seeds: dict[int, str],
                    corrected: dict[int, tuple[str, str]]) -> CurrentLabels:
    """Which label each item shows: correction or confirmation > seed > run (the one rule).

    Parameters
    ----------
    ok_ids : ndarray of int64
        Accepted items, ascending.
    run : (item_ids, labels, fallback, classes) or None
        The run's arrays (labels index `classes`, -1: none).
    seeds : dict item id -> class name
    corrected : dict item id -> (class name, kind)
    """
    n = ok_ids.size
    label = np.full(n, -1, np.int32)
    source = np.full(n, -1, np.int8)
    names: dict[str, int] = {}
    if run is not None:
        run_ids, run_labels, fallback, classes = run
        # a merge can leave two run classes with one name: the first code stands for both
        remap = np.array([names.setdefault(name, len(names)) for name in classes] + [-1],
                         np.int32)
        rows = _rows_in(ok_ids, run_ids)
        hit = (rows >= 0) & (run_labels >= 0)
        label[rows[hit]] = remap[run_labels[hit]]
        source[rows[hit]] = np.where(fallback[hit], _SOURCE_CODE["fallback"], _SOURCE_CODE["hdl"])

    def put(entries, source_of) -> None:
        if not entries:
            return
        ids = np.fromiter(entries.keys(), np.int64, len(entries))
        rows = _rows_in(ok_ids, ids)
        values = list(entries.values())
        codes = np.array([names.setdefault(_name_of(v), len(names)) for v in values], np.int32)
        kinds = np.array([source_of(v) for v in values], np.int8)
        hit = rows >= 0
        label[rows[hit]] = codes[hit]
        source[rows[hit]] = kinds[hit]

    put(seeds, lambda _: _SOURCE_CODE["seed"])
    put(corrected, lambda v: _SOURCE_CODE["confirmed" if v[1] == "confirm" else "manual"])
    ordered = sorted(names, key=names.get)
    return CurrentLabels(ok_ids, label, source, tuple(ordered))


def _name_of(value) -> str:
    return value if isinstance(value, str) else value[0]


def _rows_in(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row of each of `ids` in the ascending `sorted_ids`, -1 where absent."""
    ids = np.asarray(ids, np.int64)
    if sorted_ids.size == 0 or ids.size == 0:
        return np.full(ids.shape, -1, np.int64)
    row = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return np.where(sorted_ids[row] == ids, row, -1)


def _items_version_key(conn: sqlite3.Connection) -> str:
    """The items version, told apart from that of a fresh database made in the same folder."""
    return f"{_get_meta(conn, 'created')}|{_get_meta(conn, 'items_version') or '0'}"


def _ok_ids_sorted(conn: sqlite3.Connection) -> np.ndarray:
    """Ids of the accepted items, ascending; cached per database and items version."""
    key = (str(_database_folder(conn)), _items_version_key(conn))
    cached = _OK_IDS.get(key)
    if cached is None:
        cached = np.fromiter((i for (i,) in conn.execute(
            "SELECT id FROM items WHERE status = 'ok' ORDER BY id")), np.int64)
        cached.setflags(write=False)
        _OK_IDS.clear()        # one version per process is enough: the newest
        _OK_IDS[key] = cached
    return cached


_OK_IDS: dict[tuple[str, str], np.ndarray] = {}


def _run_row(conn: sqlite3.Connection, run_id: int) -> tuple:
    return conn.execute("SELECT created, method, k, params, classes, arrays, n_items "
                        "FROM runs WHERE id = ?", (run_id,)).fetchone()


def _run_arrays(conn: sqlite3.Connection, run_id: int) -> dict[str, np.ndarray]:
    """A run's arrays, read-only (shared by every caller: copy before changing them)."""
    name = conn.execute("SELECT arrays FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    return _read_run_file(str(_database_folder(conn) / RUNS_DIRNAME / str(name)))


@lru_cache(maxsize=4)
def _read_run_file(path: str) -> dict[str, np.ndarray]:
    # A run's file never changes once written (a new run gets a new file), so its arrays
    # can be kept by path; four runs of a million items hold about 160 MB.
    arrays = read_run_arrays(path)
    for values in arrays.values():
        values.setflags(write=False)
    return arrays


def _current_labels(conn: sqlite3.Connection, *, method: str | None,
                    run_id: int | None) -> CurrentLabels:
    run_id = _resolve_run(conn, run_id, method)
    run = None
    if run_id is not None:
        classes = json.loads(conn.execute("SELECT classes FROM runs WHERE id = ?",
                                          (run_id,)).fetchone()[0])
        arrays = _run_arrays(conn, run_id)
        run = (arrays["item_id"], arrays["labels"], arrays["fallback"], classes)
    return _combine_labels(_ok_ids_sorted(conn), run, _seed_labels(conn), _corrected_labels(conn))


def _current_labels_of(conn: sqlite3.Connection, item_ids: list[int]) -> dict[int, tuple[str, str]]:
    """`_current_labels` (latest HDL run) of a few items only: what a correction needs."""
    ids = np.asarray(sorted(set(item_ids)), np.int64)
    run_id = _resolve_run(conn, None, "hdl")
    run = None
    if run_id is not None:
        classes = json.loads(conn.execute("SELECT classes FROM runs WHERE id = ?",
                                          (run_id,)).fetchone()[0])
        arrays = _run_arrays(conn, run_id)
        order = _sorted_positions(conn, run_id, arrays["item_id"])
        found = _rows_in(arrays["item_id"][order], ids)
        at = order[found[found >= 0]]
        run = (arrays["item_id"][at], arrays["labels"][at], arrays["fallback"][at], classes)
    wanted = json.dumps(ids.tolist())
    seeds = _seed_labels(conn, wanted)
    corrected = _corrected_labels(conn, wanted)
    ok = np.fromiter((i for (i,) in conn.execute(
        "SELECT id FROM items WHERE status = 'ok' AND id IN (SELECT value FROM json_each(?)) "
        "ORDER BY id", (wanted,))), np.int64)
    return _combine_labels(ok, run, seeds, corrected).as_dict()


@lru_cache(maxsize=4)
def _sorted_positions_cached(path: str, run_id: int) -> np.ndarray:
    order = np.argsort(_read_run_file(path)["item_id"], kind="stable")
    order.setflags(write=False)
    return order


def _sorted_positions(conn: sqlite3.Connection, run_id: int, item_ids: np.ndarray) -> np.ndarray:
    """Positions of a run ordered by item id (to find items in it by binary search)."""
    name = conn.execute("SELECT arrays FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    return _sorted_positions_cached(str(_database_folder(conn) / RUNS_DIRNAME / str(name)), run_id)


def _stored_run(run_id: int, created: str, method: str, k: int, params: dict,
                classes: list[str], arrays: dict[str, np.ndarray],
                baseline_id: int | None) -> StoredRun:
    result = LabelingResult(
        labels=arrays["labels"].copy(), step=arrays["step"].copy(), round=arrays["round"].copy(),
        confidence=arrays["confidence"].copy(), n_voters=arrays["n_voters"].copy(),
        fallback=arrays["fallback"].copy(), source=arrays["source"].copy(), k=int(k))
    return StoredRun(run_id=run_id, created=created, method=method, params=params,
                     classes=classes, item_ids=arrays["item_id"].copy(), result=result,
                     baseline_id=baseline_id)


# --------------------------------------------------------------------------- files and JSON

def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON-serialisable: {error}") from error




# --------------------------------------------------------------------------- damage

def move_workspace_aside(folder: str | Path) -> tuple[Path, dict[str, str]]:
    """Rename a (damaged) workspace folder out of the way, keeping everything in it.

    The folder becomes ``<name>.damaged-<UTC time>`` beside it, so a fresh workspace can
    take its place and nothing is lost. Close every `Workspace` of it first.

    Returns
    -------
    (Path, dict)
        The new folder, and what could still be read of its ``meta`` and ``settings``
        (`schema.salvage_meta`; e.g. ``dataset_root``, and ``label`` as JSON text).
    """
    from datetime import datetime, timezone
    from .schema import salvage_meta
    folder = Path(folder)
    salvaged = salvage_meta(folder / DB_FILENAME)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    aside = folder.with_name(f"{folder.name}.damaged-{stamp}")
    number = 2
    while aside.exists():
        aside = folder.with_name(f"{folder.name}.damaged-{stamp}-{number}")
        number += 1
    folder.rename(aside)
    return aside, salvaged

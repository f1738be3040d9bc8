"""The workspace store: one SQLite database (WAL) per workspace folder.

A workspace folder holds ``workspace.sqlite`` and, beside it, an ``embeddings/``
folder of ``.npy`` arrays (`arrays.ArrayFiles`)::

    my-workspace/
        workspace.sqlite          items, classes, seeds, corrections, runs, settings
        embeddings/<sha1>.npy     one array per cache key

How writes stay durable and safe between processes is in `schema`.

`Workspace` is made of three parts, each in a module of its own: `items` (what a scan
writes and the pages read), `edits` (classes, seeds, corrections, confirmations, undo,
and the one rule of which label an item shows) and `runs` (labeling runs and their
arrays); `_tables` holds the row-level reads and writes they share. This module holds
the connection, the folder's files, the ground truth and the settings.

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

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .._files import STALE_AFTER_S, remove_stale_temporaries
from ._tables import (_bump_meta, _check_truth, _get_meta, _items_version_key, METHODS,
                      _replace_truth, _to_json)
from .arrays import EMBEDDING_CACHE_DIRNAME, EMBEDDINGS_DIRNAME, RUNS_DIRNAME, ArrayFiles
from .edits import (CORRECTION_SOURCES, LABEL_SOURCES, SEED_SOURCES, ClassUsage, CurrentLabels,
                    UndoReport, _Edits)
from .items import _Items
from .runs import RunInfo, StoredRun, _Runs
from .schema import DB_FILENAME, StoreError, open_database

__all__ = ["Workspace", "StoredRun", "RunInfo", "ClassUsage", "UndoReport", "StoreError",
           "CurrentLabels", "METHODS", "SEED_SOURCES", "CORRECTION_SOURCES", "LABEL_SOURCES"]


class Workspace(_Items, _Edits, _Runs):
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

    def embeddings_path(self, key: str) -> Path:
        """The file the array for `key` lives in (`arrays.ArrayFiles.path`)."""
        return self.arrays.path(key)

    def save_embeddings(self, key: str, X: np.ndarray) -> None:
        """Write an (n, d) numeric array for `key`, atomically (`arrays.ArrayFiles.save`)."""
        self.arrays.save(key, X)

    def load_embeddings(self, key: str) -> np.ndarray | None:
        """The array saved for `key`, or None (`arrays.ArrayFiles.load`)."""
        return self.arrays.load(key)

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


def _check_setting_key(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"setting keys are non-empty strings, got {key!r}")


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

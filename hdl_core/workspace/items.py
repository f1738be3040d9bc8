"""The dataset's items in the workspace store: what a scan writes (`Workspace.set_dataset`) and
what the pages read, each read cached per items version."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._tables import (_bump_meta, _check_class_name, _check_truth, _ensure_class, _get_meta,
                      _items_version_key, _ok_ids_sorted, _replace_truth, _set_meta)
from .edits import SEED_SOURCES
from .schema import now as _now

if TYPE_CHECKING:  # type hints only: the store takes any object shaped like a Dataset
    from ..data import Dataset


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


class _Items:
    """`Workspace`'s items: what a scan writes (`set_dataset`) and what the pages read (used
    as a part of `Workspace`, not alone)."""

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

"""Row-level reads and writes that the parts of the workspace store share: the meta counters,
the accepted items' ids, classes, the ground truth, a run's arrays, JSON."""
from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .._checks import class_name_problem
from .arrays import RUNS_DIRNAME, read_run_arrays
from .schema import class_colour, _database_folder

METHODS = ("hdl", "knn_dv")


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


def _get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))


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


def _replace_truth(conn: sqlite3.Connection, truth: dict[str, str]) -> bool:
    """Make the stored truth `truth`; returns whether it changed."""
    before = conn.execute("SELECT path, label FROM truth ORDER BY path").fetchall()
    if before == sorted(truth.items()):
        return False
    conn.execute("DELETE FROM truth")
    conn.executemany("INSERT INTO truth(path, label) VALUES (?, ?)", truth.items())
    _bump_meta(conn, "truth_version")
    return True


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


@lru_cache(maxsize=4)
def _sorted_positions_cached(path: str, run_id: int) -> np.ndarray:
    order = np.argsort(_read_run_file(path)["item_id"], kind="stable")
    order.setflags(write=False)
    return order


def _sorted_positions(conn: sqlite3.Connection, run_id: int, item_ids: np.ndarray) -> np.ndarray:
    """Positions of a run ordered by item id (to find items in it by binary search)."""
    name = conn.execute("SELECT arrays FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    return _sorted_positions_cached(str(_database_folder(conn) / RUNS_DIRNAME / str(name)), run_id)


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

"""Labels people give, in the workspace store: classes, seeds, corrections and confirmations
(append-only, each batch undoable), and the one rule of which label an item shows: a
correction or confirmation, whichever is latest, then a seed, then the run's label."""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ._tables import (_active_class_id, _bump_meta, _check_class_name, _check_item_ids,
                      _check_items_accepted, _class_ids, _ensure_class, METHODS, _ok_ids_sorted,
                      _resolve_run, _rows_in, _run_arrays, _sorted_positions)
from .schema import now as _now


SEED_SOURCES = ("layout", "csv", "app")


CORRECTION_SOURCES = ("manual", "bulk")          # 'undo' is written by undo_last_correction only


# Where the label an item shows comes from (`Workspace.current_labels`), in the order of
# the codes `CurrentLabels.source` holds.
LABEL_SOURCES = ("seed", "hdl", "fallback", "manual", "confirmed")


_SOURCE_CODE = {name: code for code, name in enumerate(LABEL_SOURCES)}


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


class _Edits:
    """`Workspace`'s classes, seeds, corrections, confirmations and undo, and the label each
    item shows (used as a part of `Workspace`, not alone)."""

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

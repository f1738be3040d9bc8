"""The workspace database's schema, its migrations, and how a connection is opened.

Durability and concurrency
--------------------------
Every write is one ``BEGIN IMMEDIATE`` transaction: a process killed mid-write
leaves the previous state intact, and a second process that wants to write
waits (``busy_timeout``, 10 s) instead of failing.  Taking the write lock at
``BEGIN`` rather than at the first ``INSERT`` matters: a deferred transaction
that reads and then tries to write fails at once with "database is locked"
when another process committed in between, and no timeout helps.

``synchronous=FULL``: in WAL mode ``NORMAL`` already survives a killed process,
but a power loss may roll back the last commits.  A correction is a person's
work, our transactions are few and large (a whole selection, a whole run), and
``FULL`` costs one fsync of the WAL per commit, so we pay it.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

DB_FILENAME = "workspace.sqlite"
BUSY_TIMEOUT_S = 10.0


class StoreError(RuntimeError):
    """The workspace database cannot be used (newer schema, not a database, failed migration)."""


_SCHEMA_V1 = [
    """CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # AUTOINCREMENT: an id is never reused, so an id held in session state or a
    # cache never silently names a different file after a rescan.
    """CREATE TABLE items (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        path         TEXT NOT NULL UNIQUE,
        content_hash TEXT,
        size         INTEGER,
        status       TEXT NOT NULL CHECK (status IN ('ok', 'skipped')),
        skip_reason  TEXT,
        CHECK ((status = 'skipped') = (skip_reason IS NOT NULL))
    )""",
    """CREATE TABLE classes (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        name     TEXT NOT NULL UNIQUE,
        position INTEGER NOT NULL UNIQUE
    )""",
    """CREATE TABLE seeds (
        item_id  INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
        class_id INTEGER NOT NULL REFERENCES classes(id),
        source   TEXT NOT NULL CHECK (source IN ('layout', 'csv', 'app'))
    )""",
    # Append-only history.  An undo is itself a row (source 'undo') whose
    # `undoes` names the undone row; old/new on an undo row are the undone
    # row's new/old.  Rows go away only with their item (ON DELETE CASCADE).
    """CREATE TABLE corrections (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        batch        INTEGER NOT NULL,
        item_id      INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        old_class_id INTEGER REFERENCES classes(id),
        new_class_id INTEGER REFERENCES classes(id),
        time         TEXT NOT NULL,
        source       TEXT NOT NULL CHECK (source IN ('manual', 'bulk', 'undo')),
        undoes       INTEGER UNIQUE REFERENCES corrections(id) ON DELETE CASCADE,
        CHECK ((source = 'undo') = (undoes IS NOT NULL)),
        CHECK (source = 'undo' OR new_class_id IS NOT NULL)
    )""",
    "CREATE INDEX corrections_item ON corrections(item_id)",
    "CREATE INDEX corrections_batch ON corrections(batch)",
    """CREATE TRIGGER corrections_no_update BEFORE UPDATE ON corrections
       BEGIN SELECT RAISE(ABORT, 'corrections are append-only'); END""",
    # A cascade from a deleted item runs after the item row is gone, so only
    # direct deletes hit this.
    """CREATE TRIGGER corrections_no_delete BEFORE DELETE ON corrections
       WHEN EXISTS (SELECT 1 FROM items WHERE id = OLD.item_id)
       BEGIN SELECT RAISE(ABORT, 'corrections are append-only'); END""",
    """CREATE TABLE runs (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        created TEXT NOT NULL,
        method  TEXT NOT NULL CHECK (method IN ('hdl', 'knn_dv')),
        k       INTEGER NOT NULL,
        params  TEXT NOT NULL,
        classes TEXT NOT NULL
    )""",
    # One row per item of a run, in the run's own item order (`position`).
    # label is an index into runs.classes (-1: no label); source_item is the
    # item a bridged point copied its label from.
    """CREATE TABLE run_items (
        run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        position    INTEGER NOT NULL,
        item_id     INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        label       INTEGER NOT NULL,
        step        INTEGER NOT NULL,
        "round"     INTEGER NOT NULL,
        confidence  REAL,
        n_voters    INTEGER NOT NULL,
        fallback    INTEGER NOT NULL,
        source_item INTEGER,
        PRIMARY KEY (run_id, position)
    ) WITHOUT ROWID""",
    "CREATE INDEX run_items_item ON run_items(item_id)",
    """CREATE TABLE truth (
        path  TEXT PRIMARY KEY,
        label TEXT NOT NULL
    )""",
    """CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
]


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """Create the first schema in an empty database."""
    for statement in _SCHEMA_V1:
        conn.execute(statement)
    conn.execute("INSERT INTO meta(key, value) VALUES ('created', ?)", (now(),))


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Link a kNN-DV run to the HDL run it was saved to compare with.

    Before, the pair was guessed from the order runs were saved in; runs saved then are
    linked the same way once, here: a kNN-DV run saved right after an HDL run with the same
    k and embedding compares with it.
    """
    conn.execute("ALTER TABLE runs ADD COLUMN compares_to INTEGER REFERENCES runs(id) "
                 "ON DELETE SET NULL")
    conn.execute(
        "UPDATE runs SET compares_to = (SELECT h.id FROM runs h WHERE h.id = runs.id - 1 "
        "AND h.method = 'hdl' AND h.k = runs.k "
        "AND json_extract(h.params, '$.embedding') IS json_extract(runs.params, '$.embedding')) "
        "WHERE method = 'knn_dv'")
    conn.execute("CREATE INDEX runs_compares_to ON runs(compares_to)")


# Colours of classes, given once when a class is created and kept for good: Kelly's colours
# of maximum contrast without white, black and grey (grey means "not labeled yet"); past
# them, hues spaced by the golden angle (`class_colour`).
CLASS_COLOURS = ("#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#008856",
                 "#E68FAC", "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C", "#DCD300",
                 "#882D17", "#8DB600", "#654522", "#E25822", "#2B3D26")


def class_colour(number: int) -> str:
    """The colour of the `number`-th class ever created in a workspace (0-based)."""
    if number < len(CLASS_COLOURS):
        return CLASS_COLOURS[number]
    import colorsys
    hue = ((number - len(CLASS_COLOURS)) * 0.381966) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.45, 0.75)
    return "#{:02X}{:02X}{:02X}".format(round(r * 255), round(g * 255), round(b * 255))


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Confirmations, who made each change, and classes that can be renamed, merged, deleted.

    corrections.kind: 'relabel' (a new label) or 'confirm' (the label was checked and is
    right); corrections.actor: the browser session or user that made it (NULL: the CLI, or
    before actors were recorded). classes.colour: fixed at creation; classes.state:
    'active', 'merged' (into classes.merged_into) or 'deleted' (hidden; its history stays);
    classes.created_by: the correction batch that created it (so undoing that batch can
    remove it again).
    """
    conn.execute("ALTER TABLE corrections ADD COLUMN kind TEXT NOT NULL DEFAULT 'relabel' "
                 "CHECK (kind IN ('relabel', 'confirm'))")
    conn.execute("ALTER TABLE corrections ADD COLUMN actor TEXT")
    conn.execute("ALTER TABLE classes ADD COLUMN colour TEXT")
    conn.execute("ALTER TABLE classes ADD COLUMN state TEXT NOT NULL DEFAULT 'active' "
                 "CHECK (state IN ('active', 'merged', 'deleted'))")
    conn.execute("ALTER TABLE classes ADD COLUMN merged_into INTEGER REFERENCES classes(id)")
    conn.execute("ALTER TABLE classes ADD COLUMN created_by INTEGER")
    for number, (class_id,) in enumerate(conn.execute("SELECT id FROM classes ORDER BY id").fetchall()):
        conn.execute("UPDATE classes SET colour = ? WHERE id = ?", (class_colour(number), class_id))


# MIGRATIONS[n] takes a database from schema version n to n + 1.  Append, never
# edit: a database in the field may stand at any earlier version.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1, _migrate_1_to_2,
                                                            _migrate_2_to_3]


SCHEMA_VERSION = len(MIGRATIONS)


def open_database(path: Path) -> sqlite3.Connection:
    """Connect, set the pragmas, and migrate the schema to the version this code knows."""
    try:
        # isolation_level=None: we write BEGIN/COMMIT ourselves (the module's
        # implicit transactions would begin deferred, see the module docstring).
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{path}: cannot switch the database to WAL mode (got {mode!r}); "
                                 "is the workspace on a network file system?")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, path)
        except BaseException:
            conn.close()
            raise
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path} cannot be opened as a workspace database ({error}); "
                         "move it away or pick another workspace folder") from error
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply MIGRATIONS[version:] in one transaction; a failure leaves the database as it was."""
    target = len(MIGRATIONS)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > target:
        raise StoreError(f"{path} has schema version {version}, but this hdl-studio knows versions "
                         f"up to {target}; upgrade hdl-studio to open this workspace")
    if version == target:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while we waited for the lock.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, target):
            try:
                MIGRATIONS[number](conn)
            except Exception as error:
                raise StoreError(f"{path}: migrating the schema from version {number} to "
                                 f"{number + 1} failed ({error}); the database is unchanged") from error
            conn.execute(f"PRAGMA user_version = {number + 1}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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

Damage
------
A database that is garbled, truncated or emptied (0 bytes) is reported as
`DamagedWorkspace`, never silently recreated: a new database is only ever made
where there was none, built under a temporary name and linked into place, so a
0-byte file can only mean damage.  Opening runs SQLite's ``quick_check``
(about 0.5 s for a 65 MB workspace of 100,000 images and 10 runs), once per
process and workspace.
"""
from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .._files import place_new

DB_FILENAME = "workspace.sqlite"
BUSY_TIMEOUT_S = 10.0


class StoreError(RuntimeError):
    """The workspace database cannot be used (newer schema, not a database, failed migration)."""


class DamagedWorkspace(StoreError):
    """The workspace database is damaged: garbled, truncated or emptied.

    Attributes
    ----------
    path : Path
        The database file.
    problem : str
        What SQLite (or the size check) found, in a few words.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(
            f"the workspace {self.path.parent.name!r} is damaged: its database {problem}. "
            "Nothing in it is changed; move it aside (the Data page does that, keeping it "
            "under a new name) and start afresh, or open another dataset")


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


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Let an item be 'missing': gone from the folder, its corrections and history kept.

    Before, a rescan deleted the items whose files had gone, and their corrections with
    them (ON DELETE CASCADE). SQLite cannot change a CHECK constraint in place, so the
    items table is rebuilt (SQLite's documented procedure: foreign keys are off while
    migrations run, and checked before the commit); ids and the id sequence are kept.
    """
    sequence = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'items'").fetchone()
    conn.execute("PRAGMA legacy_alter_table = ON")   # leave the triggers naming items alone
    try:
        conn.execute("""CREATE TABLE items_new (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            path         TEXT NOT NULL UNIQUE,
            content_hash TEXT,
            size         INTEGER,
            status       TEXT NOT NULL CHECK (status IN ('ok', 'skipped', 'missing')),
            skip_reason  TEXT,
            CHECK ((status = 'skipped') = (skip_reason IS NOT NULL))
        )""")
        conn.execute("INSERT INTO items_new(id, path, content_hash, size, status, skip_reason) "
                     "SELECT id, path, content_hash, size, status, skip_reason FROM items")
        conn.execute("DROP TABLE items")
        conn.execute("ALTER TABLE items_new RENAME TO items")
    finally:
        conn.execute("PRAGMA legacy_alter_table = OFF")
    conn.execute("CREATE INDEX items_content_hash ON items(content_hash) WHERE status = 'missing'")
    if sequence is not None:
        conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'items'",
                     (sequence[0],))


def _migrate_4_to_5(conn: sqlite3.Connection) -> None:
    """Runs as array files, and the file times a rescan compares.

    A run kept one row per item in ``run_items``: a million rows to write for every run of
    a million images, and to read back for every page. Each run's arrays now live in one
    file under ``runs/`` (`arrays.write_run_arrays`), named in ``runs.arrays``, with the
    run's size in ``runs.n_items``; the rows of existing runs are written out here and
    ``run_items`` is dropped. A bridged point's source becomes its position in the run (it
    was an item id; the run's own order is in the same file, so it can no longer go stale).

    ``items.mtime_ns``: the file's modification time when its content was hashed, so a
    rescan can tell an unchanged file by its size and time without reading it (NULL: unknown,
    read it again).

    ``meta.labels_version``: a number every write that can change a label moves on, so a
    reader can tell cheaply whether the labels it computed are still the labels now.
    """
    from .arrays import RUNS_DIRNAME, write_run_arrays
    import numpy as np

    conn.execute("ALTER TABLE items ADD COLUMN mtime_ns INTEGER")
    conn.execute("ALTER TABLE runs ADD COLUMN n_items INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE runs ADD COLUMN arrays TEXT")
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('labels_version', '0')")
    folder = _database_folder(conn) / RUNS_DIRNAME
    for (run_id,) in conn.execute("SELECT id FROM runs ORDER BY id").fetchall():
        rows = conn.execute(
            'SELECT item_id, label, step, "round", confidence, n_voters, fallback, source_item '
            "FROM run_items WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
        columns = list(zip(*rows)) if rows else [()] * 8
        item_ids = np.array(columns[0], dtype=np.int64)
        position_of = {item_id: position for position, item_id in enumerate(item_ids.tolist())}
        source = np.array([-1 if s is None else position_of.get(s, -1) for s in columns[7]],
                          dtype=np.int64)
        name = f"run-{run_id}-{uuid.uuid4().hex[:12]}.arrow"
        folder.mkdir(exist_ok=True)
        write_run_arrays(folder / name, {
            "item_id": item_ids, "labels": np.array(columns[1], dtype=np.int64),
            "step": np.array(columns[2], dtype=np.int64),
            "round": np.array(columns[3], dtype=np.int64),
            "confidence": np.array([np.nan if c is None else c for c in columns[4]],
                                   dtype=np.float64),
            "n_voters": np.array(columns[5], dtype=np.int64),
            "fallback": np.array(columns[6], dtype=bool), "source": source})
        conn.execute("UPDATE runs SET arrays = ?, n_items = ? WHERE id = ?",
                     (name, len(rows), run_id))
    conn.execute("DROP TABLE run_items")


def _database_folder(conn: sqlite3.Connection) -> Path:
    """The folder of the main database file of a connection."""
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return Path(file).parent
    raise StoreError("the workspace database has no file on disk; open it from a folder")


# MIGRATIONS[n] takes a database from schema version n to n + 1.  Append, never
# edit: a database in the field may stand at any earlier version.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1, _migrate_1_to_2,
                                                            _migrate_2_to_3, _migrate_3_to_4,
                                                            _migrate_4_to_5]


SCHEMA_VERSION = len(MIGRATIONS)


def open_database(path: Path) -> sqlite3.Connection:
    """Connect, set the pragmas, migrate the schema to the version this code knows, check it.

    A missing database is created (`_create_database`); an existing one that is empty,
    not a database, or fails SQLite's ``quick_check`` raises `DamagedWorkspace` and is
    left exactly as it was.
    """
    path = Path(path)
    try:
        if path.exists() and path.stat().st_size == 0:
            raise DamagedWorkspace(path, "is empty (0 bytes; it was cut short)")
        if not path.exists():
            _create_database(path)
        # isolation_level=None: we write BEGIN/COMMIT ourselves (the module's
        # implicit transactions would begin deferred, see the module docstring).
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            _set_pragmas(conn, path)
            _check_intact(conn, path)
            # Foreign keys stay off while migrations run, as SQLite's procedure for
            # rebuilding a table asks; `_migrate` checks them before it commits.
            _migrate(conn, path)
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
    except sqlite3.DatabaseError as error:
        if is_damage(error):
            raise DamagedWorkspace(path, f"cannot be read ({error})") from error
        raise StoreError(f"the workspace {path.parent.name!r} cannot be opened ({error}); "
                         "try again, or pick another workspace folder") from error
    return conn


def is_damage(error: BaseException) -> bool:
    """Whether an SQLite error means a damaged file (not a lock, a full disk or a bug)."""
    if not isinstance(error, sqlite3.DatabaseError):
        return False
    message = str(error).lower()
    return type(error) is sqlite3.DatabaseError or any(
        word in message for word in ("malformed", "not a database", "disk image", "corrupt"))


def _set_pragmas(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise StoreError(f"the workspace {path.parent.name!r}: cannot switch its database to "
                         f"WAL mode (got {mode!r}); is the workspace on a network file system?")
    conn.execute("PRAGMA synchronous = FULL")


def _check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """Raise `DamagedWorkspace` when SQLite's quick_check finds the file damaged."""
    rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    if rows != [("ok",)]:
        found = "; ".join(str(row[0]) for row in rows)
        raise DamagedWorkspace(path, f"fails SQLite's check ({found})")


def _create_database(path: Path) -> None:
    """Make a new, migrated database at `path`, all or nothing.

    It is built under a temporary name and linked into place, which fails when another
    process got there first (then theirs is used): a half-made database is never seen,
    so an empty file at `path` always means damage.
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            _set_pragmas(conn, path)
            _migrate(conn, temporary)
        finally:
            conn.close()
        try:
            place_new(temporary, path)
        except FileExistsError:          # another process made it first: theirs is used
            pass
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            leftover.unlink(missing_ok=True)


def salvage_meta(path: str | Path) -> dict[str, str]:
    """What can still be read of a damaged database's ``meta`` and ``settings`` (read only).

    Used to start afresh on the same dataset after moving a damaged workspace aside; a
    file too damaged to read gives ``{}``. Nothing is written to the file.
    """
    found: dict[str, str] = {}
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return found
    try:
        for query in ("SELECT key, value FROM meta", "SELECT key, value FROM settings"):
            try:
                found.update(conn.execute(query).fetchall())
            except sqlite3.Error:
                continue
    finally:
        conn.close()
    return found


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply MIGRATIONS[version:] in one transaction; a failure leaves the database as it was."""
    target = len(MIGRATIONS)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > target:
        raise StoreError(f"the workspace {Path(path).parent.name!r} has schema version {version}, "
                         f"but this hdl-studio knows versions up to {target}; upgrade hdl-studio "
                         "to open this workspace")
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
                raise StoreError(f"the workspace {Path(path).parent.name!r}: migrating the schema "
                                 f"from version {number} to {number + 1} failed ({error}); the "
                                 "database is unchanged") from error
            conn.execute(f"PRAGMA user_version = {number + 1}")
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(f"the workspace {Path(path).parent.name!r}: after migrating, "
                             f"{len(broken)} row(s) point at rows that do not exist (e.g. "
                             f"{broken[0]}); the database is unchanged")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


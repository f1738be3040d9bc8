"""Embeddings made elsewhere: ``.npy`` with a path list, or ``.parquet``; read and written."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .._files import atomic_write, remove_stale_temporaries
from ..rows import ROW_CHUNK, normalize_rows, row_norms
from ..data.imageio import describe_error
from ._common import EmbeddingError


def _default_paths_file(path: Path) -> Path:
    """emb.npy -> emb.paths.txt (the path list written by `save_precomputed`)."""
    return path.with_suffix(".paths.txt")


def load_precomputed(path: str | Path, paths_file: str | Path | None = None, *,
                     progress=None) -> tuple[list[str], np.ndarray]:
    """Read embeddings made elsewhere.

    Parameters
    ----------
    path : str or Path
        ``.npy`` holding an (n, d) numeric array (read with ``allow_pickle=False``),
        ``.parquet`` with a ``path`` column and either one vector column (a list of numbers
        per row) or only numeric columns (one per dimension, in file order), or an
        embeddings folder (`load_embeddings_dir`).
    paths_file : str or Path, optional
        For ``.npy``: a text file with one image path per line (blank lines ignored), in row
        order. Defaults to ``<stem>.paths.txt`` beside the ``.npy``. Ignored for ``.parquet``.
    progress : callable (done, total), optional
        For an embeddings folder read the first time: how far the copy of its vectors that
        later reads memory-map is (`map_embeddings_dir`).

    Returns
    -------
    paths : list of str
    X : ndarray of shape (n, d), float32
        Rows L2-normalised.

    Raises
    ------
    EmbeddingError
        Wrong shape, row/path count mismatch, duplicate paths, NaN/inf or all-zero rows
        (named by row number and path), object arrays, unreadable files.
    """
    path = Path(path)
    if path.is_dir() and is_embeddings_dir(path):
        paths, X, _ = map_embeddings_dir(path, progress=progress)   # one normalised copy
        return paths.to_pylist(), _check_embeddings(X, paths.to_pylist(), path.name)
    if not path.is_file():
        raise EmbeddingError(f"embeddings file not found: {path.name}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        paths, X = _read_npy(path, paths_file)
    elif suffix == ".parquet":
        paths, X = _read_parquet(path)
    else:
        raise EmbeddingError(f"{path.name}: unsupported embeddings format {suffix!r}; "
                             "use .npy (+ a path list) or .parquet")
    return paths, _check_embeddings(X, paths, path.name)


def _has_npy_header(path: Path) -> bool:
    """True when `path` starts as every .npy file does."""
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def _read_npy(path: Path, paths_file) -> tuple[list[str], np.ndarray]:
    if path.is_file() and not _has_npy_header(path):
        # numpy would read it as a pickle (and say so), a zip (.npz) or nothing at all
        raise EmbeddingError(f"{path.name} is not a NumPy .npy file (it does not start "
                             "with the .npy header); save the array with np.save")
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise EmbeddingError(
                f"{path.name} holds Python objects (dtype=object), which are not loaded for safety; "
                "save a numeric array, e.g. np.save(path, X.astype(np.float32))") from exc
        raise EmbeddingError(f"{path.name} is not a readable .npy file "
                             f"({describe_error(exc)})") from exc
    except OSError as exc:
        raise EmbeddingError(f"{path.name} is not a readable .npy file "
                             f"({exc.strerror or describe_error(exc)})") from exc
    paths_file = _default_paths_file(path) if paths_file is None else Path(paths_file)
    if not paths_file.is_file():
        raise EmbeddingError(f"{path.name} needs a path list (one image path per line, in row order): "
                             f"{paths_file.name} not found; pass it as paths_file= / --paths")
    lines = paths_file.read_text(encoding="utf-8").splitlines()
    paths = [line.strip() for line in lines if line.strip()]
    if X.ndim == 2 and len(paths) != X.shape[0]:
        raise EmbeddingError(f"{path.name} has {X.shape[0]} rows but {paths_file.name} lists "
                             f"{len(paths)} paths; they must match one to one, in order")
    return paths, X


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise EmbeddingError(f"{path.name} is not a readable parquet file "
                             f"({describe_error(exc)})") from exc
    names = [c for c in table.column_names if not c.startswith("__index_level_")]
    if "path" not in names:
        raise EmbeddingError(f"{path.name} has no 'path' column (columns: {', '.join(names)})")
    path_column = table["path"]
    if not (pa.types.is_string(path_column.type) or pa.types.is_large_string(path_column.type)):
        raise EmbeddingError(f"{path.name}: column 'path' must hold strings, not {path_column.type}")
    if path_column.null_count:
        rows = np.flatnonzero(path_column.is_null().to_numpy(zero_copy_only=False))
        raise EmbeddingError(f"{path.name}: column 'path' is empty in rows {_rows_text(rows)}")
    paths = path_column.to_pylist()

    others = [c for c in names if c != "path"]
    is_list = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
    if len(others) == 1 and any(check(table[others[0]].type) for check in is_list):
        column = table[others[0]].combine_chunks()
        if column.null_count:
            rows = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
            raise EmbeddingError(f"{path.name}: column {others[0]!r} is empty in rows {_rows_text(rows)}")
        lengths = pc.list_value_length(column).to_numpy()
        if len(lengths) and (lengths != lengths[0]).any():
            rows = np.flatnonzero(lengths != lengths[0])
            raise EmbeddingError(f"{path.name}: vectors in {others[0]!r} differ in length "
                                 f"({lengths[0]} in row 0, other lengths in rows {_rows_text(rows)})")
        if not any(check(column.type.value_type) for check in numeric):
            raise EmbeddingError(f"{path.name}: column {others[0]!r} must hold numbers, "
                                 f"not {column.type.value_type}")
        values = pc.cast(column.flatten(), pa.float64()).to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if len(lengths) else 0
        return paths, values.reshape(len(paths), width)
    if others and all(any(check(table[c].type) for check in numeric) for c in others):
        X = np.column_stack([pc.cast(table[c], pa.float64()).to_numpy() for c in others])
        return paths, X.reshape(len(paths), len(others))
    described = ", ".join(f"{c} ({table[c].type})" for c in others) or "none"
    raise EmbeddingError(f"{path.name}: expected a 'path' column plus one vector column (a list of "
                         f"numbers per row) or only numeric columns; other columns: {described}")


def _rows_text(rows: np.ndarray, paths: Sequence[str] | None = None, shown: int = 5) -> str:
    parts = [f"{r} ({paths[r]!r})" if paths is not None else str(r) for r in rows[:shown]]
    more = f", … ({len(rows)} rows in all)" if len(rows) > shown else ""
    return ", ".join(parts) + more


def _check_embeddings(X: np.ndarray, paths: list[str], source: str) -> np.ndarray:
    """Validate shape, values and paths; return L2-normalised float32."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise EmbeddingError(f"{source}: embeddings must be a 2-D array (n images, d dimensions), "
                             f"got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise EmbeddingError(f"{source}: embeddings are empty (shape {X.shape})")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise EmbeddingError(f"{source}: embeddings must be numbers, got dtype {X.dtype}")
    if len(paths) != X.shape[0]:
        raise EmbeddingError(f"{source}: {X.shape[0]} rows but {len(paths)} paths")
    seen: dict[str, int] = {}
    duplicates = []
    for row, p in enumerate(paths):
        if p in seen:
            duplicates.append(f"{p!r} (rows {seen[p]} and {row})")
        seen[p] = row
    if duplicates:
        raise EmbeddingError(f"{source}: paths listed twice: {', '.join(duplicates[:5])}")
    # float32 as normalize_rows computes, checked a block at a time: no float64 copy (4 GB
    # at a million 512-D rows) and no (n, d) temporary; the rows returned are the same
    X = X if X.dtype == np.float32 else X.astype(np.float32)
    bad = np.concatenate([np.flatnonzero(~np.isfinite(X[start:start + ROW_CHUNK]).all(axis=1))
                          + start for start in range(0, X.shape[0], ROW_CHUNK)])
    if len(bad):
        raise EmbeddingError(f"{source}: {len(bad)} row(s) contain NaN or inf: rows (0-based) "
                             f"{_rows_text(bad, paths)}; recompute them or drop them from both "
                             "the embeddings and the path list")
    zero = np.flatnonzero(row_norms(X) == 0)
    if len(zero):
        raise EmbeddingError(f"{source}: {len(zero)} row(s) are all zeros, which have no direction: "
                             f"rows (0-based) {_rows_text(zero, paths)}")
    return normalize_rows(X)


def save_precomputed(path: str | Path, paths: Sequence[str], X: np.ndarray) -> list[Path]:
    """Write embeddings that `load_precomputed` reads back (atomic writes).

    Parameters
    ----------
    path : str or Path
        ``.npy`` (the path list goes to ``<stem>.paths.txt`` beside it) or ``.parquet``
        (a ``path`` column and a fixed-size ``embedding`` list column).
    paths : sequence of str
    X : ndarray of shape (len(paths), d)

    Returns
    -------
    list of Path
        The files written.
    """
    path = Path(path)
    X = np.asarray(X, dtype=np.float32)
    paths = [str(p) for p in paths]
    if X.ndim != 2 or X.shape[0] != len(paths):
        raise ValueError(f"X must have shape (len(paths)={len(paths)}, d), got {X.shape}")
    bad = [p for p in paths if "\n" in p or "\r" in p or p != p.strip() or not p]
    if bad:
        raise ValueError(f"paths cannot be stored one per line: {bad[:3]!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        paths_file = _default_paths_file(path)
        atomic_write(path, lambda f: np.save(f, X, allow_pickle=False))
        text = "".join(p + "\n" for p in paths)
        atomic_write(paths_file, lambda f: f.write(text.encode("utf-8")))
        return [path, paths_file]
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        vectors = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])
        table = pa.table({"path": pa.array(paths, pa.string()), "embedding": vectors})
        atomic_write(path, lambda f: pq.write_table(table, f))
        return [path]
    raise ValueError(f"unsupported embeddings format {suffix!r}; use .npy or .parquet")



# ----------------------------------------------------------------------------- folders

EMBEDDINGS_META = "_meta.json"
PART_PATTERN = "part-*.parquet"
# `map_embeddings_dir`'s copy of the vectors in path order, named by the write it copies
VECTORS_PATTERN = "_vectors-*.npy"
VECTORS_TEMPORARY = "._vectors-*.tmp"      # one being written (or left by a killed run)
VECTOR_BATCH = 16384            # rows copied to it at a time (32 MiB at 512-D)
FORMAT = "hdl-studio embeddings 1"


def is_embeddings_dir(path: str | Path) -> bool:
    """True for a folder written by `EmbeddingsDirWriter` (it holds ``_meta.json``)."""
    return Path(path).is_dir() and (Path(path) / EMBEDDINGS_META).is_file()


class EmbeddingsDirWriter:
    """Writes embeddings as a folder: ``part-NNNNN.parquet`` files (columns ``path``,
    relative to the image folder, and ``embedding``, a fixed-size list of float32) and
    ``_meta.json`` (encoder cache key, model, dim, n, skipped files with reasons).

    Parts are written as rows arrive (`write`), so a distributed run streams its output;
    `close` writes ``_meta.json`` last: a folder without it is incomplete. Parts from an
    earlier run in the same folder are removed when the writer starts.

    Parameters
    ----------
    folder : str or Path
        Created when missing; must not hold other files than a previous run's.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"--out {folder}: a file of that name exists; give a folder name "
                             "(or a .npy / .parquet file name for a single file)")
        self.folder.mkdir(parents=True, exist_ok=True)
        ours = (PART_PATTERN, VECTORS_PATTERN, VECTORS_TEMPORARY)
        foreign = [p.name for p in self.folder.iterdir()
                   if not (any(p.match(pattern) for pattern in ours)
                           or p.name == EMBEDDINGS_META)]
        if foreign:
            raise ValueError(f"{self.folder} holds other files ({', '.join(sorted(foreign)[:3])}); "
                             "write embeddings to an empty folder")
        (self.folder / EMBEDDINGS_META).unlink(missing_ok=True)
        for pattern in ours:
            for old in self.folder.glob(pattern):
                old.unlink()
        self.parts = 0
        self.n = 0
        self.dim = None

    def write(self, paths, X: np.ndarray) -> None:
        """Append one part with rows `X` for `paths` (relative POSIX paths)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] != len(paths):
            raise ValueError(f"X must have shape (len(paths)={len(paths)}, d), got {X.shape}")
        if self.dim is not None and X.shape[1] != self.dim:
            raise ValueError(f"rows of width {X.shape[1]} after rows of width {self.dim}")
        if X.shape[0] == 0:
            return
        self.dim = X.shape[1]
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])
        table = pa.table({"path": pa.array(list(paths), pa.string()), "embedding": vectors})
        target = self.folder / f"part-{self.parts:05d}.parquet"
        atomic_write(target, lambda f: pq.write_table(table, f), durable=False)
        self.parts += 1
        self.n += X.shape[0]

    def close(self, meta: dict) -> Path:
        """Write ``_meta.json`` (``meta`` plus format, dim, n, parts, and a new
        ``embeddings_id``); returns its path.

        The id is new at every write, so a graph that records it (``hdl-studio graph``)
        is never used with vectors written after it: the same images replaced and embedded
        again keep their paths and encoder, which are all a graph could check otherwise.
        """
        import json
        import uuid
        from datetime import datetime, timezone
        info = {"format": FORMAT, **meta, "dim": self.dim, "n": self.n, "parts": self.parts,
                "embeddings_id": uuid.uuid4().hex[:16],
                "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        target = self.folder / EMBEDDINGS_META
        text = json.dumps(info, indent=1, ensure_ascii=False).encode("utf-8")
        atomic_write(target, lambda f: f.write(text))
        return target


def save_embeddings_dir(folder: str | Path, paths: Sequence[str], X: np.ndarray, meta: dict,
                        *, rows_per_part: int = 1_000_000) -> Path:
    """Write `X` (rows aligned with `paths`) as an embeddings folder (`EmbeddingsDirWriter`)."""
    writer = EmbeddingsDirWriter(folder)
    for start in range(0, max(1, len(paths)), rows_per_part):
        writer.write(paths[start:start + rows_per_part], X[start:start + rows_per_part])
    return writer.close(meta)


def load_embeddings_dir(folder: str | Path):
    """Read an embeddings folder: every part, rows ordered by path.

    Returns
    -------
    paths : pyarrow.StringArray
        Relative paths, sorted (as the workspace orders items).
    X : ndarray of shape (n, d), float32
        One copy of the vectors as stored, never widened to float64. Not normalised here:
        `hdl_core.rows.normalize_rows_inplace` does that without a second copy.
    meta : dict
        ``_meta.json``.

    Raises
    ------
    EmbeddingError
        No ``_meta.json`` (an unfinished run), no part, parts of other widths or columns,
        a path listed twice or missing; each named with its file, or its path.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    meta, parts = _meta_and_parts(folder)
    tables = []
    for part in parts:
        _part_width(part)
        tables.append(pq.read_table(part, columns=["path", "embedding"]))
    d = _one_width(folder, [t["embedding"].type.list_size for t in tables])
    table = pa.concat_tables(tables)
    paths, order = _sorted_paths(folder, table["path"])
    X = np.empty((len(paths), d), np.float32)
    column = table["embedding"]
    position = order.to_numpy().astype(np.int64)
    chunk_rows = [_vectors_of(chunk, d) for chunk in column.chunks]
    stacked = chunk_rows[0] if len(chunk_rows) == 1 else None
    if stacked is not None:
        np.take(stacked, position, axis=0, out=X)
    else:
        starts = np.cumsum([0] + [len(c) for c in chunk_rows])
        which = np.searchsorted(starts, position, side="right") - 1
        for c, rows in enumerate(chunk_rows):
            mine = np.flatnonzero(which == c)
            X[mine] = rows[position[mine] - starts[c]]
    return paths, X, meta


def map_embeddings_dir(folder: str | Path, *, progress=None):
    """`load_embeddings_dir`, with X a read-only memory map instead of a copy in memory.

    The vectors are copied once, in path order, to ``_vectors-<embeddings_id>-<stamp>.npy``
    (the stamp: the parts' names, sizes and times) in
    the folder (the paths, their order and `VECTOR_BATCH` rows are all the copy holds in
    memory), and mapped from there by every later call until the folder is written
    again. A labeling then keeps in memory only the rows it reads (seeds, a bridge's
    candidates), not n × d floats: 2 GB at a million 512-D images, 200 GB at 100 million.

    Folders without an ``embeddings_id`` (written before it was recorded) or that cannot
    be written in are read as `load_embeddings_dir` reads them.

    `progress(done, total)`, when given, hears how far the copy is (rows).

    Returns and raises as `load_embeddings_dir`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    meta, parts = _meta_and_parts(folder)
    ident = str(meta.get("embeddings_id") or "")
    if not ident.isalnum():
        return load_embeddings_dir(folder)
    d = _one_width(folder, [_part_width(part) for part in parts])
    columns = [pq.read_table(part, columns=["path"])["path"] for part in parts]
    paths, order = _sorted_paths(folder, pa.chunked_array(
        [chunk for column in columns for chunk in column.chunks], columns[0].type))
    cache = folder / VECTORS_PATTERN.replace("*", f"{ident}-{_parts_stamp(parts)}")
    X = _mapped(cache, (len(paths), d))
    if X is None:
        remove_stale_temporaries(folder)               # a copy a killed run left half done
        rank = np.empty(len(paths), np.int64)          # concatenated row -> its path's place
        rank[order.to_numpy()] = np.arange(len(paths))
        try:
            _write_vectors(cache, parts, rank, d, progress)
        except OSError:             # a folder we may read but not write in: read it whole
            return load_embeddings_dir(folder)
        X = _mapped(cache, (len(paths), d))
        if X is None:
            return load_embeddings_dir(folder)
    for stale in folder.glob(VECTORS_PATTERN):
        if stale != cache:
            try:
                stale.unlink()
            except OSError:         # gone already, or a folder made read-only since
                pass
    return paths, X, meta


def _parts_stamp(parts: list[Path]) -> str:
    """12 hex digits of the parts' names, sizes and modification times: a part written
    over by hand (the folder's id unchanged) makes another copy, never a stale one."""
    import hashlib

    stamp = [(part.name, part.stat().st_size, part.stat().st_mtime_ns) for part in parts]
    return hashlib.sha1(repr(stamp).encode()).hexdigest()[:12]


def _mapped(cache: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The cache file mapped read-only, or None when it is missing or not of this shape."""
    try:
        X = np.load(cache, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    return X if X.shape == shape and X.dtype == np.float32 else None


def _write_vectors(cache: Path, parts: list[Path], rank: np.ndarray, d: int,
                   progress=None) -> None:
    """Copy every part's vectors to row ``rank[i]`` of a new ``.npy`` (i counts the rows
    of the parts in order), through `atomic_write`: a temporary file renamed into place
    when complete.

    Written through the file, a batch of rows at a time, each run of consecutive rows in
    one write: nothing of the copy stays in the process (a memory map would keep every
    page it wrote), and rows written in path order go out in a few large writes.
    """
    import os

    import pyarrow.parquet as pq

    row_bytes = 4 * d

    def write(stream) -> None:
        np.lib.format.write_array_header_1_0(
            stream, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                     "fortran_order": False, "shape": (int(rank.size), d)})
        offset = stream.tell()
        stream.truncate(offset + rank.size * row_bytes)
        stream.flush()                  # the header out before the rows go past the buffer
        start = 0
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=VECTOR_BATCH,
                                                           columns=["embedding"]):
                rows = _vectors_of(batch.column(0), d)
                places = rank[start:start + len(rows)]
                start += len(rows)
                order = np.argsort(places, kind="stable")
                places, rows = places[order], rows[order]
                # runs of consecutive places: one write each
                breaks = np.flatnonzero(np.diff(places) != 1) + 1
                for first, stop in zip(np.r_[0, breaks], np.r_[breaks, len(places)]):
                    os.pwrite(stream.fileno(), rows[first:stop].tobytes(),
                              offset + int(places[first]) * row_bytes)
                if progress is not None:
                    progress(start, int(rank.size))

    atomic_write(cache, write)


def _meta_and_parts(folder: Path) -> tuple[dict, list[Path]]:
    import json

    meta_file = folder / EMBEDDINGS_META
    if not meta_file.is_file():
        raise EmbeddingError(f"{folder}: no {EMBEDDINGS_META}; this is not an embeddings folder, "
                             "or the run writing it did not finish (run `embed --out` again)")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    parts = sorted(folder.glob(PART_PATTERN))
    if not parts:
        raise EmbeddingError(f"{folder}: no {PART_PATTERN} files; embed the images again")
    return meta, parts


def _part_width(part: Path) -> int:
    """The width of a part's vectors, from its schema; a broken part or wrong columns named."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(part)
    except Exception as error:       # a broken file: name the file
        raise EmbeddingError(f"{part}: not an embeddings part ({error}); expected columns "
                             "path and embedding") from error
    missing = [name for name in ("path", "embedding") if name not in schema.names]
    if missing:
        raise EmbeddingError(f"{part}: not an embeddings part (no column "
                             f"{' or '.join(missing)}); expected columns path and embedding")
    kind = schema.field("embedding").type
    if not pa.types.is_fixed_size_list(kind):
        raise EmbeddingError(f"{part}: column 'embedding' must be a fixed-size list of "
                             f"float32, not {kind}")
    return kind.list_size


def _one_width(folder: Path, widths: list[int]) -> int:
    if len(set(widths)) > 1:
        raise EmbeddingError(f"{folder}: parts hold vectors of different widths "
                             f"{sorted(set(widths))}")
    return widths[0]


def _sorted_paths(folder: Path, column):
    """The paths sorted, and the order that sorts them; no path missing or listed twice."""
    import pyarrow.compute as pc

    order = pc.sort_indices(column)
    paths = column.take(order).combine_chunks()
    if paths.null_count:
        raise EmbeddingError(f"{folder}: {paths.null_count} row(s) have no path")
    if len(paths) > 1:
        same = pc.equal(paths.slice(1), paths.slice(0, len(paths) - 1))
        if pc.any(same).as_py():
            at = int(np.flatnonzero(same.to_numpy(zero_copy_only=False))[0])
            raise EmbeddingError(f"{folder}: path {paths[at].as_py()!r} is listed twice")
    return paths, order


def _vectors_of(chunk, d: int) -> np.ndarray:
    """A chunk of the embedding column as (rows, d) float32, as stored (no float64 detour)."""
    values = chunk.flatten().to_numpy(zero_copy_only=False)
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    return values.reshape(-1, d)

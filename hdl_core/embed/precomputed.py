"""Embeddings made elsewhere: ``.npy`` with a path list, or ``.parquet``; read and written."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .._files import atomic_write
from ..graph import normalize_rows
from ..data.imageio import describe_error
from ._common import EmbeddingError


def _default_paths_file(path: Path) -> Path:
    """emb.npy -> emb.paths.txt (the path list written by `save_precomputed`)."""
    return path.with_suffix(".paths.txt")


def load_precomputed(path: str | Path, paths_file: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """Read embeddings made elsewhere.

    Parameters
    ----------
    path : str or Path
        ``.npy`` holding an (n, d) numeric array (read with ``allow_pickle=False``), or
        ``.parquet`` with a ``path`` column and either one vector column (a list of numbers
        per row) or only numeric columns (one per dimension, in file order).
    paths_file : str or Path, optional
        For ``.npy``: a text file with one image path per line (blank lines ignored), in row
        order. Defaults to ``<stem>.paths.txt`` beside the ``.npy``. Ignored for ``.parquet``.

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


def _read_npy(path: Path, paths_file) -> tuple[list[str], np.ndarray]:
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
    X = X.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if len(bad):
        raise EmbeddingError(f"{source}: {len(bad)} row(s) contain NaN or inf: rows (0-based) "
                             f"{_rows_text(bad, paths)}; recompute them or drop them from both "
                             "the embeddings and the path list")
    norms = np.linalg.norm(X, axis=1)
    zero = np.flatnonzero(norms == 0)
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


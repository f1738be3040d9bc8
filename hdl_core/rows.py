"""Embedding rows as the search and the labeling read them: checked, normalised, or scaled
when read, without whole-matrix copies of memory-mapped files.

At a million 512-D images an embedding file is 2 GB: the checks and norms here read it a block
at a time (`ROW_CHUNK`), give back the pages a pass has read (`drop_behind`), scale rows
only when read (`UnitRows`) and read scattered rows from the file (`read_rows`), so a
labeling never holds a normalised copy. The metrics that use them (`hdl_core.graph.METRICS`)
and `graph.rows_to_read` live with the graph.
"""
from __future__ import annotations

import math
import os
import sys

import numba
import numpy as np

# Rows read at a time by the checks and norms below: no (n, d) temporary (at 1M x 512 the
# whole-array np.linalg.norm made a 2 GB one and took 3.5 s; by blocks, the same values).
ROW_CHUNK = 65536


def row_norms(X: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(X, axis=1)``, block by block: each row's norm is reduced on its own,
    so the values are those of the whole-array call, bit for bit."""
    out = np.empty(X.shape[0], X.dtype)
    for start in range(0, X.shape[0], ROW_CHUNK):
        out[start:start + ROW_CHUNK] = np.linalg.norm(X[start:start + ROW_CHUNK], axis=1)
        drop_behind(X, start, start + ROW_CHUNK)
    return out


_MADVISE = None


def _read_only_map(X: np.ndarray) -> np.memmap | None:
    """The read-only memory map of a file that X views (`numpy.load` with ``mmap_mode="r"``),
    the map itself, whose ``offset`` is where its data starts in the file; else None."""
    base = X
    while isinstance(base, np.ndarray) and isinstance(base.base, np.ndarray):
        base = base.base
    if isinstance(base, np.memmap) and base.mode == "r" and base.filename:
        return base
    return None


def drop_behind(X, start: int, stop: int) -> None:
    """Rows ``start:stop`` of X were read by a pass over it and are not needed again soon:
    where X is a read-only memory map (embeddings mapped from their file), the process
    gives their pages back (``madvise(MADV_DONTNEED)``), as a reader of a file does not
    keep what it read. Reading them again maps them again, from the kernel's page cache
    while it keeps them. Anything else (arrays in memory, other systems) is left as is.

    At a million 512-D images the passes of a labeling (checks, norms, duplicate hashing)
    otherwise leave all 2 GB of the file mapped in the server. Reads of scattered rows
    (kNN-DV's blocks, a bridge's candidates) go to the file instead (`_RowFile`) and map
    nothing.
    """
    global _MADVISE
    X = getattr(X, "X", X)                                  # UnitRows: the stored rows
    if not sys.platform.startswith("linux") or not isinstance(X, np.ndarray) \
            or X.ndim != 2 or not X.flags.c_contiguous:
        return
    if _read_only_map(X) is None:                            # only a read-only file map
        return
    if _MADVISE is None:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        _MADVISE = libc.madvise
        _MADVISE.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    import mmap
    start, stop = max(0, int(start)), min(X.shape[0], int(stop))
    if stop <= start:
        return
    row = X.strides[0]
    first = X.ctypes.data + start * row
    last = X.ctypes.data + stop * row
    page = mmap.PAGESIZE
    first = -(-first // page) * page                          # whole pages inside the rows
    last = last // page * page
    if last > first:
        _MADVISE(first, last - first, mmap.MADV_DONTNEED)     # a hint: failure changes nothing


def normalize_rows(X, *, name: str = "X") -> np.ndarray:
    """Validate an embedding matrix and return its rows L2-normalised (float32); rows of unit
    length already (within UNIT_NORM_TOLERANCE) are kept as they are, so normalising twice
    is normalising once, bit for bit.

    Raises a ValueError naming the rows that are NaN/inf or have zero norm.
    """
    X = _check_points(X, np.float32, name)
    return X / _nonzero_norms(X, name)[:, None]


# A row whose norm is within UNIT_NORM_TOLERANCE of 1 (8 float32 ulps; a row normalised
# once is within 1) is unit length already and is kept as it is: normalising again gives
# the same rows bit for bit, so embeddings written by `embed` and read back (or normalised
# by whoever made them) are compared exactly as the ones that never left the workspace.
UNIT_NORM_TOLERANCE = 1e-6


def _divisors(norms: np.ndarray) -> np.ndarray:
    """What each row is divided by: its norm, or 1 for a row of unit length already."""
    return np.where(np.abs(norms - 1) <= UNIT_NORM_TOLERANCE, norms.dtype.type(1), norms)


def _nonzero_norms(X: np.ndarray, name: str) -> np.ndarray:
    """What normalising divides X's rows by (`row_norms`, 1 for rows of unit length already,
    `_divisors`); a ValueError naming the rows of zero norm."""
    norms = row_norms(X)
    bad = np.flatnonzero(norms == 0)
    if bad.size:
        raise ValueError(f"{name} has zero-norm {_rows(bad)}; an all-zero embedding "
                         f"has no direction to compare by cosine: remove those points")
    return _divisors(norms)


def normalize_rows_inplace(X: np.ndarray, *, name: str = "X", chunk: int = 65536) -> np.ndarray:
    """`normalize_rows` without a second copy: a float32 array's rows scaled in place.

    Same values as ``normalize_rows(X)`` bit for bit (the same norm and division per
    row); checks NaN/inf and zero rows chunk by chunk, so no (n, d) temporary is made.
    For embeddings read from files, where X may not fit twice.
    """
    if not isinstance(X, np.ndarray) or X.dtype != np.float32 or X.ndim != 2 \
            or not X.flags.writeable:
        raise ValueError(f"{name} must be a writable 2-D float32 array to normalise in place")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape})")
    for start in range(0, X.shape[0], chunk):
        block = X[start:start + chunk]
        np.divide(block, _checked_norms(block, start, name)[:, None], out=block)
    return X


def _checked_norms(block: np.ndarray, start: int, name: str) -> np.ndarray:
    """What normalising divides the rows of `block` (rows start, start+1, ... of X) by, as
    `_nonzero_norms`; a ValueError naming the rows that are NaN/inf or have zero norm."""
    bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} has NaN or inf values in {_rows(bad + start)}; "
                         f"remove or re-embed those points")
    norms = np.linalg.norm(block, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"{name} has zero-norm {_rows(zero + start)}; an all-zero "
                         f"embedding has no direction to compare by cosine: remove those points")
    return _divisors(norms)


class UnitRows:
    """A float32 matrix whose rows read as unit vectors: `normalize_rows` without the copy.

    ``UnitRows(X)[key]`` equals ``normalize_rows(X)[key]`` bit for bit (the same norm and
    division per row) for a row index, an index array or a slice; only the rows read are
    scaled, when read. For the app's labeling of memory-mapped embeddings, where HDL reads
    rows only at a bridge and kNN-DV a block at a time: the prepared copy was 2 GB at a
    million 512-D images. Anything that needs the whole matrix (``np.asarray``) gets the
    copy after all.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Read, never written (a read-only memory map is fine); anything but float32 is
        converted first (one float32 copy, as `normalize_rows` makes).
    name : str, default "X"
        What error messages call X.

    Raises
    ------
    ValueError
        As `normalize_rows`, naming rows that are NaN/inf or have zero norm.
    """

    CHUNK = ROW_CHUNK          # rows scaled at a time by np.asarray

    def __init__(self, X, *, name: str = "X"):
        self.X = _check_points(X, np.float32, name)     # a float32 array is kept, not copied
        self.norms = _nonzero_norms(self.X, name)
        self._file = _RowFile.of(self.X)

    shape = property(lambda self: self.X.shape)
    dtype = property(lambda self: self.X.dtype)
    ndim = 2

    def __getstate__(self) -> dict:           # an open file does not travel to another process
        return {**self.__dict__, "_file": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._file = _RowFile.of(self.X)

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        return self.read(key)

    def read(self, key, out: np.ndarray | None = None, *, scaled: bool = True) -> np.ndarray:
        """``self[key]``, written into `out` (its first rows) when given: a caller reading
        block after block reuses one buffer instead of faulting in fresh pages each time.
        With `scaled` False the rows come as stored (divide by ``norms[key]`` for unit
        rows), a view where they can.

        Rows of embeddings mapped from their file are read from the file (`_RowFile`),
        not through the mapping."""
        if self._file is not None and not isinstance(key, (int, np.integer)):
            rows = self._file.read(key, out)
            if scaled:
                np.divide(rows, self.norms[key][:, None], out=rows)
            return rows
        if (scaled and isinstance(key, np.ndarray) and key.ndim == 1 and key.size
                and key.dtype.kind in "iu" and self.norms.dtype == self.X.dtype == np.float32
                and self.X.flags.c_contiguous and key.min() >= 0
                and key.max() < self.X.shape[0]):
            # a gather of scattered rows (bridges read them by the thousand): gathered and
            # scaled in one pass, the same float32 division as below
            out = (np.empty((key.size, self.X.shape[1]), np.float32) if out is None
                   else out[:key.size])
            _gather_scaled(self.X, self.norms, key, out)
            return out
        rows = self.X[key]
        if not scaled:
            return rows                                  # a slice of an array: a view
        norms = self.norms[key]
        if rows.ndim == 1:
            return rows / norms
        if out is None and rows.flags.owndata:          # a gathered copy: scale it in place
            out = rows
        out = np.empty(rows.shape, np.float32) if out is None else out[:rows.shape[0]]
        return np.divide(rows, norms[:, None], out=out)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.X.shape, np.float32)
        for start in range(0, self.X.shape[0], self.CHUNK):
            out[start:start + self.CHUNK] = self[start:start + self.CHUNK]
            drop_behind(self.X, start, start + self.CHUNK)
        return out if dtype is None else out.astype(dtype, copy=False)


@numba.njit(cache=True)
def _gather_scaled(X, norms, key, out):
    """``out[i] = X[key[i]] / norms[key[i]]`` (indices checked by the caller)."""
    for i in range(key.size):
        row = key[i]
        norm = norms[row]
        for t in range(X.shape[1]):
            out[i, t] = X[row, t] / norm


class _RowFile:
    """Rows of a read-only memory map read from its file with ``os.preadv``.

    A row read through the mapping maps the file around it too: on this project's Linux
    machines up to 2 MB per row touched, so a gather of a thousand scattered seed rows of
    a 2 GB embedding file put 1.9 GB of file pages in the process. Reading the file puts
    only the rows read in memory (the kernel's page cache serves them as before). Runs
    of consecutive rows are read in one call.
    """

    def __init__(self, fd: int, path: str, offset: int, n: int, d: int):
        self.fd, self.path, self.offset, self.n, self.d = fd, path, offset, n, d
        self.row_bytes = 4 * d

    @classmethod
    def of(cls, X: np.ndarray) -> "_RowFile | None":
        """A reader of X's rows when X is a C-ordered float32 view of a read-only memory
        map of a file (as `numpy.load` with ``mmap_mode="r"`` gives), else None."""
        if not sys.platform.startswith("linux") or not hasattr(os, "preadv") \
                or X.dtype != np.float32 or not X.flags.c_contiguous:
            return None
        base = _read_only_map(X)
        if base is None:
            return None
        start = X.ctypes.data - base.ctypes.data
        if not 0 <= start <= base.nbytes - X.nbytes:
            return None
        try:           # opened now, as the map was: files are replaced, never written over
            fd = os.open(base.filename, os.O_RDONLY)
        except OSError:
            return None
        if os.fstat(fd).st_size < int(base.offset) + base.nbytes:    # not the mapped file
            os.close(fd)
            return None
        return cls(fd, str(base.filename), int(base.offset) + start, *X.shape)

    def __del__(self):
        os.close(self.fd)

    def _preadv(self, out: np.ndarray, row: int) -> None:
        view, at = memoryview(out.reshape(-1).view(np.uint8)), self.offset + row * self.row_bytes
        while len(view):
            got = os.preadv(self.fd, [view], at)
            if got <= 0:
                raise OSError(f"the embedding file {os.path.basename(self.path)} ended early "
                              "(cut short while open?); embed the images again")
            view, at = view[got:], at + got

    def read(self, key, out: np.ndarray | None = None) -> np.ndarray:
        """Rows `key` (a slice of step 1 or an index array) as a new float32 array, or in
        the first rows of `out`."""
        if isinstance(key, slice):
            start, stop, step = key.indices(self.n)
            if step == 1:
                count = max(0, stop - start)
                rows = np.empty((count, self.d), np.float32) if out is None else out[:count]
                if count:
                    self._preadv(rows, start)
                return rows
            key = np.arange(start, stop, step)
        key = np.asarray(key)
        if key.dtype == np.bool_:
            key = np.flatnonzero(key)
        key = np.where(key < 0, key + self.n, key).astype(np.int64, copy=False).ravel()
        if key.size and (key.min() < 0 or key.max() >= self.n):
            raise IndexError(f"row index out of range for {self.n} rows")
        rows = np.empty((key.size, self.d), np.float32) if out is None else out[:key.size]
        if key.size == 0:
            return rows
        steps = np.diff(key)
        if (steps > 0).all():                 # ascending (blocks of rows): read in place
            self._read_runs(rows, key, steps)
            return rows
        order = np.argsort(key, kind="stable")
        wanted = key[order]
        distinct = np.concatenate([[True], wanted[1:] != wanted[:-1]])
        unique = wanted[distinct]
        got = np.empty((unique.size, self.d), np.float32)
        self._read_runs(got, unique, np.diff(unique))
        rows[order] = got[np.cumsum(distinct) - 1]
        return rows

    def _read_runs(self, rows: np.ndarray, key: np.ndarray, steps: np.ndarray) -> None:
        """rows[i] = row key[i] for ascending `key`, one read per run of consecutive rows."""
        breaks = np.flatnonzero(steps != 1) + 1
        for a, b in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [key.size]])):
            self._preadv(rows[a:b], int(key[a]))


def read_rows(X, rows: np.ndarray) -> np.ndarray:
    """``np.asarray(X)[rows]`` for an index array; from the file when X is a float32 view of
    a read-only memory map (`_RowFile`), so a few scattered rows do not map the file
    around each of them."""
    X = np.asarray(X)
    reader = _RowFile.of(X) if X.ndim == 2 else None
    return X[rows] if reader is None else reader.read(rows)



def euclidean_points(X, *, name: str = "X") -> np.ndarray:
    """Validate a point matrix and return it as float64, rows unchanged.

    Raises a ValueError naming the rows that are NaN/inf or so large that squared
    distances would overflow.
    """
    X = _check_points(X, np.float64, name)
    limit = math.sqrt(np.finfo(np.float64).max / (4 * X.shape[1]))
    bad = np.flatnonzero((np.abs(X) > limit).any(axis=1))
    if bad.size:
        raise ValueError(f"{name} has values above {limit:.3g} in {_rows(bad)}; their "
                         f"squared distances overflow: rescale X")
    return X


def _check_points(X, dtype, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_points, n_features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape})")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    X = X.astype(dtype, copy=False)
    bad = []
    for start in range(0, X.shape[0], ROW_CHUNK):
        bad.append(np.flatnonzero(~np.isfinite(X[start:start + ROW_CHUNK]).all(axis=1)) + start)
        drop_behind(X, start, start + ROW_CHUNK)
    bad = np.concatenate(bad)
    if bad.size:
        raise ValueError(f"{name} has NaN or inf values in {_rows(bad)}; "
                         f"remove or re-embed those points")
    return X


def _rows(bad: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in bad[:10])
    more = f" and {bad.size - 10} more" if bad.size > 10 else ""
    return f"row{'s' if bad.size > 1 else ''} {shown}{more}"

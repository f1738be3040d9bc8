"""Array files beside the database: embeddings, neighbour lists and maps, one ``.npy`` per key."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .._files import atomic_write
from .schema import StoreError

EMBEDDINGS_DIRNAME = "embeddings"
EMBEDDING_CACHE_DIRNAME = "embedding-cache"      # the per-file cache (`hdl_core.embed.EmbeddingCache`)


class ArrayFiles:
    """``<workspace>/embeddings/<sha1 of key>.npy``: any string key names one 2-D array.

    Writes are atomic (temporary file, fsync, rename), so a reader sees the old array or the
    new one, never half of one.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        """The file an array for `key` lives in (sha1 of the key, so any key is safe)."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"embedding key must be a non-empty string, got {key!r}")
        return self.folder / f"{hashlib.sha1(key.encode('utf-8')).hexdigest()}.npy"

    def save(self, key: str, X: np.ndarray) -> None:
        """Write an (n, d) numeric array for `key`.

        Raises
        ------
        ValueError
            Empty key, or `X` not a 2-D numeric array.
        """
        path = self.path(key)
        X = np.asarray(X)
        if X.ndim != 2 or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise ValueError(f"embeddings must be a 2-D numeric array, got shape {X.shape} "
                             f"dtype {X.dtype}")
        self.folder.mkdir(exist_ok=True)
        atomic_write(path, lambda stream: np.save(stream, X, allow_pickle=False))

    def load(self, key: str, *, mmap: bool = False) -> np.ndarray | None:
        """The array saved for `key`, or None when there is none.

        Parameters
        ----------
        key : str
        mmap : bool, default False
            Map the file read-only instead of reading it (`numpy.load`'s ``mmap_mode="r"``):
            a million 512-D embeddings are 2 GB, and most readers touch a few rows. A file
            is replaced, never written over, so a mapped array stays the one it was.

        Raises
        ------
        StoreError
            The file exists but cannot be read as an array.
        """
        path = self.path(key)
        try:
            return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError) as error:
            raise StoreError(f"embedding file {self.name(key)} of the workspace "
                             f"{self.folder.parent.name!r} is damaged (cut short or garbled); "
                             "embed the images again on the Embed page (it is rewritten), or "
                             "move the workspace aside on the Data page") from error

    def name(self, key: str) -> str:
        """How messages name the file of `key`: ``embeddings/<sha1>.npy``, no server path."""
        return f"{self.folder.name}/{self.path(key).name}"

    def load_derived(self, key: str, *, mmap: bool = False) -> np.ndarray | None:
        """Like `load`, for arrays computed from others (graphs, maps): a damaged one is
        treated as absent, so it is computed and written again."""
        try:
            return self.load(key, mmap=mmap)
        except StoreError:
            return None


# --------------------------------------------------------------------------- runs

RUNS_DIRNAME = "runs"
# One column per field of a run, in the run's own item order (`Workspace.save_run`).
RUN_COLUMNS = ("item_id", "labels", "step", "round", "confidence", "n_voters", "fallback", "source")


def write_run_arrays(path: str | Path, columns: dict[str, np.ndarray]) -> None:
    """Write a run's per-item arrays as one Arrow IPC file, atomically and durably.

    One file per run instead of one SQL row per item: saving and loading a run of a
    million images is a sequential write and read of a few tens of MB (the table in
    ``bench/store_bench.py``). Integer columns whose values fit are stored as int32;
    `read_run_arrays` gives them back as int64.
    """
    import pyarrow as pa
    from pyarrow import feather

    fields = {}
    for name in RUN_COLUMNS:
        values = np.asarray(columns[name])
        if values.dtype.kind == "i" and values.dtype != np.int32 and (
                values.size == 0 or (values.min() >= -2**31 and values.max() < 2**31)):
            values = values.astype(np.int32)
        fields[name] = pa.array(values)
    table = pa.table(fields)
    atomic_write(path, lambda stream: feather.write_feather(table, stream,
                                                            compression="uncompressed"))


def read_run_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays `write_run_arrays` wrote, as writable numpy arrays (int64, float64, bool).

    Raises
    ------
    StoreError
        The file is missing, cut short or garbled; the message names it as
        ``runs/<file>`` and says what to do.
    """
    from pyarrow import feather

    path = Path(path)
    try:
        table = feather.read_table(path, memory_map=True)
        out = {}
        for name in RUN_COLUMNS:
            values = table.column(name).to_numpy()
            kind = {"confidence": np.float64, "fallback": bool}.get(name, np.int64)
            out[name] = np.array(values, dtype=kind)       # a copy: writable, file released
    except (OSError, KeyError, ValueError) as error:
        what = "is missing" if not path.exists() else "is damaged (cut short or garbled)"
        raise StoreError(f"the arrays of a labeling run ({RUNS_DIRNAME}/{path.name}) in the "
                         f"workspace {path.parent.parent.name!r} {what}; run HDL again (a new run "
                         "is written), or move the workspace aside on the Data page") from error
    return out

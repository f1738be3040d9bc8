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

    def load(self, key: str) -> np.ndarray | None:
        """The array saved for `key`, or None when there is none.

        Raises
        ------
        StoreError
            The file exists but cannot be read as an array.
        """
        path = self.path(key)
        try:
            return np.load(path, allow_pickle=False)
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

    def load_derived(self, key: str) -> np.ndarray | None:
        """Like `load`, for arrays computed from others (graphs, maps): a damaged one is
        treated as absent, so it is computed and written again."""
        try:
            return self.load(key)
        except StoreError:
            return None

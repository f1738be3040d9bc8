"""The per-file embedding cache: vectors keyed by (file content hash, encoder cache key)."""
from __future__ import annotations

import hashlib
import re
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .._files import atomic_write
from ._common import Progress

if TYPE_CHECKING:
    from . import Encoder

# Chunks of work between cache shards: a first small one, then about CHUNK_SECONDS each, so
# a stopped run loses at most that much work and short runs write few shards.
FIRST_CHUNK_FILES = 256
MIN_CHUNK_FILES = 256
MAX_CHUNK_FILES = 8192
CHUNK_SECONDS = 30.0


class EmbeddingCache:
    """Per-file embeddings keyed by (file content hash, encoder cache key).

    Layout: one sub-folder per cache key (a readable slug plus a digest of the key, with the
    full key in ``key.txt``), holding append-only shards ``shard-*.npz``, each with a
    ``hashes`` array (fixed-width bytes) and a ``vectors`` array (float32). A run encodes
    in chunks and writes a shard as each chunk finishes (temporary file + ``os.replace``),
    so a run that is stopped (Ctrl-C, a page left, a killed process) keeps every finished
    chunk and the next run resumes from there; two processes never overwrite each other.
    Chunks start at `FIRST_CHUNK_FILES` files and then hold about `CHUNK_SECONDS` of work.
    When a key has more than ``max_shards`` shards they are merged into one.

    For encoders whose output depends on the whole set (pixels + PCA) the cache holds the
    per-file vectors (``encoder.file_cache_key``) and ``encoder.finalize`` runs over the
    whole set on every call, so the result always matches ``encoder.encode(paths)``.

    Parameters
    ----------
    folder : str or Path
        Created on first write.
    max_shards : int, default 16
    """

    def __init__(self, folder: str | Path, *, max_shards: int = 16):
        self.folder = Path(folder)
        self.max_shards = max_shards

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.folder)!r})"

    # ---- public ------------------------------------------------------------------
    def encode(self, encoder: Encoder, paths: Sequence[Path], hashes: Sequence[str],
               progress: Progress | None = None, *,
               saved: Progress | None = None) -> tuple[np.ndarray, dict]:
        """Encode only files not cached; returns (X, {"hits": int, "misses": int, "seconds": float}).

        Parameters
        ----------
        encoder : Encoder
        paths : sequence of path
            Image files, in the order wanted for the rows of X.
        hashes : sequence of str
            Content hash of each file (e.g. ``images.Item.content_hash``), same order.
        progress : callable(done, total), optional
            Counts cached files as done at once.
        saved : callable(kept, total), optional
            Called after each shard is written, with how many of the `paths` are in the
            cache now: what a stopped run keeps.

        Returns
        -------
        X : ndarray of shape (n, d), float32
            Same as ``encoder.encode(paths)``.
        stats : dict
            ``hits`` and ``misses`` count paths (``hits + misses == n``); ``encoded`` counts
            distinct files encoded (identical files are encoded once); ``seconds`` is the
            wall time of the call.
        """
        started = time.perf_counter()
        if len(paths) != len(hashes):
            raise ValueError(f"paths and hashes must have the same length, got {len(paths)} and {len(hashes)}")
        n = len(paths)
        key = getattr(encoder, "file_cache_key", encoder.cache_key)
        encode_files = getattr(encoder, "encode_files", encoder.encode)
        finalize = getattr(encoder, "finalize", None)
        hash_bytes = [str(h).encode("utf-8") for h in hashes]

        known = self.lookup(key, hash_bytes)
        missing = {}
        for i, h in enumerate(hash_bytes):
            if h not in known and h not in missing:
                missing[h] = i                               # first path with this content
        misses = sum(1 for h in hash_bytes if h not in known)
        hits = n - misses

        if missing:
            self._encode_in_chunks(key, encode_files, paths, hash_bytes, missing, known,
                                   progress, saved)
        elif progress is not None:
            progress(n, n)

        if n:
            X = np.stack([known[h] for h in hash_bytes]).astype(np.float32, copy=False)
        else:
            X = encoder.encode([])   # right width without loading anything
        if finalize is not None and n:
            X = finalize(X)
        stats = {"hits": hits, "misses": misses, "encoded": len(missing),
                 "seconds": time.perf_counter() - started}
        return X, stats

    def _encode_in_chunks(self, key, encode_files, paths, hash_bytes, missing: dict,
                          known: dict, progress, saved) -> None:
        """Encode the `missing` files chunk by chunk, writing a shard after each one."""
        n = len(paths)
        paths_per_hash: dict[bytes, int] = {}
        for h in hash_bytes:
            paths_per_hash[h] = paths_per_hash.get(h, 0) + 1
        kept = sum(count for h, count in paths_per_hash.items() if h in known)
        todo = list(missing.items())                    # (hash, first path with it)
        size, start = FIRST_CHUNK_FILES, 0
        while start < len(todo):
            part = todo[start:start + size]
            began = time.perf_counter()
            before = kept

            def report(done, total, before=before):
                if progress is not None:
                    progress(min(before + done, n), n)
            fresh = np.asarray(encode_files([paths[i] for _, i in part], report), dtype=np.float32)
            self.add(key, [h for h, _ in part], fresh)
            known.update(zip((h for h, _ in part), fresh))
            kept += sum(paths_per_hash[h] for h, _ in part)
            start += len(part)
            if saved is not None:
                saved(kept, n)
            if progress is not None:
                progress(kept, n)
            rate = len(part) / max(time.perf_counter() - began, 1e-6)
            size = int(min(max(rate * CHUNK_SECONDS, MIN_CHUNK_FILES), MAX_CHUNK_FILES))

    def lookup(self, key: str, hashes: Sequence[bytes | str]) -> dict[bytes, np.ndarray]:
        """Cached vectors for those of ``hashes`` present under ``key`` (hash bytes -> row)."""
        wanted = {h if isinstance(h, bytes) else str(h).encode("utf-8") for h in hashes}
        found: dict[bytes, np.ndarray] = {}
        for stored_hashes, vectors in self._read_shards(self._key_folder(key)):
            for row, h in enumerate(stored_hashes.tolist()):
                if h in wanted:
                    found[h] = vectors[row]
        return found

    def add(self, key: str, hashes: Sequence[bytes | str], vectors: np.ndarray) -> None:
        """Store ``vectors`` (one row per hash) under ``key`` as a new shard."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(hashes):
            raise ValueError(f"vectors must have shape ({len(hashes)}, d), got {vectors.shape}")
        if not len(hashes):
            return
        folder = self._key_folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        key_file = folder / "key.txt"
        if not key_file.exists():
            atomic_write(key_file, lambda f: f.write(key.encode("utf-8") + b"\n"))
        hash_array = np.array([h if isinstance(h, bytes) else str(h).encode("utf-8") for h in hashes])
        self._write_shard(folder, hash_array, vectors)
        shards = sorted(folder.glob("shard-*.npz"))
        if len(shards) > self.max_shards:
            self._compact(folder, shards)

    def keys(self) -> list[str]:
        """Cache keys that have a folder here."""
        if not self.folder.is_dir():
            return []
        return sorted(p.read_text(encoding="utf-8").strip() for p in self.folder.glob("*/key.txt"))

    # ---- storage -----------------------------------------------------------------
    def _key_folder(self, key: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", key).strip("_")[:60]
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        return self.folder / f"{slug}-{digest}"

    @staticmethod
    def _write_shard(folder: Path, hash_array: np.ndarray, vectors: np.ndarray) -> Path:
        # Unique names: concurrent writers never collide; sorted names follow time.
        target = folder / f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        atomic_write(target, lambda f: np.savez(f, hashes=hash_array, vectors=vectors))
        return target

    def _read_shards(self, folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        """(hashes, vectors) of every readable shard, oldest first; unreadable ones are skipped."""
        if not folder.is_dir():
            return []
        for _attempt in range(3):
            shards, vanished, width = [], False, None
            for shard in sorted(folder.glob("shard-*.npz")):
                try:
                    with np.load(shard, allow_pickle=False) as data:
                        hashes, vectors = data["hashes"], data["vectors"]
                except FileNotFoundError:
                    vanished = True      # merged away by another process meanwhile: list again
                    break
                except Exception as exc:
                    warnings.warn(f"embedding cache: ignoring unreadable shard {shard} ({exc})",
                                  stacklevel=3)
                    continue
                if (vectors.ndim != 2 or len(vectors) != len(hashes)
                        or (width is not None and vectors.shape[1] != width)):
                    warnings.warn(f"embedding cache: ignoring shard {shard} with shape "
                                  f"{vectors.shape}", stacklevel=3)
                    continue
                width = vectors.shape[1]
                shards.append((hashes, vectors))
            if not vanished:
                break
        return shards

    def _compact(self, folder: Path, shards: list[Path]) -> None:
        """Merge shards into one (newest row wins), then delete the merged ones."""
        merged: dict[bytes, np.ndarray] = {}
        for hashes, vectors in self._read_shards(folder):
            merged.update(zip(hashes.tolist(), vectors))
        if not merged:
            return
        self._write_shard(folder, np.array(list(merged)), np.stack(list(merged.values())))
        for shard in shards:
            try:
                shard.unlink()
            except FileNotFoundError:
                pass


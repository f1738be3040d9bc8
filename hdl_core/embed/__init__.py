"""Embeddings: one `Encoder` protocol and one factory, ``make_encoder(name, **options)``.

An encoder's ``encode(paths, progress=...)`` gives an ``(n, d)`` float32 array with
L2-normalised rows. Callers never learn where weights live: a pretrained tag resolves
through open_clip's registry to a file in the Hugging Face cache (downloaded once, see
`weights`), a path is loaded directly, and ``pretrained=None`` builds a randomly
initialised model for tests and benchmarks. Files made elsewhere are read by
`load_precomputed`; `EmbeddingCache` keeps per-file vectors so a re-run encodes only new or
changed files.

torch, open_clip and huggingface_hub are imported inside functions, never at module import,
so ``import hdl_core`` stays fast and works without them.

Examples
--------
>>> from hdl_core.embed import make_encoder
>>> encoder = make_encoder("pixels", size=8)
>>> encoder.label
'pixels (baseline, not CLIP)'
>>> encoder.encode([]).shape
(0, 192)
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ..config import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
from ._common import EmbeddingError, Progress, WeightsUnavailable
from .cache import EmbeddingCache
from .clip import ClipEncoder, clear_model_cache
from .pixels import PIXELS_LABEL, PixelsEncoder
from .precomputed import (EmbeddingsDirWriter, is_embeddings_dir, load_embeddings_dir,
                          load_precomputed, map_embeddings_dir, save_embeddings_dir,
                          save_precomputed)

__all__ = [
    "Progress", "WeightsUnavailable", "EmbeddingError", "Encoder",
    "make_encoder", "ClipEncoder", "PixelsEncoder", "clear_model_cache",
    "load_precomputed", "save_precomputed", "EmbeddingCache",
    "EmbeddingsDirWriter", "save_embeddings_dir", "load_embeddings_dir", "map_embeddings_dir",
    "is_embeddings_dir",
    "DEFAULT_CLIP_MODEL", "DEFAULT_CLIP_PRETRAINED", "PIXELS_LABEL",
]


class Encoder(Protocol):
    """What every encoder offers.

    Encoders whose output depends on the whole set (pixels with PCA) also offer
    ``file_cache_key``, ``encode_files(paths, progress)`` (per-file vectors, safe to cache
    per file) and ``finalize(vectors)`` (the set-level step); `EmbeddingCache` uses them
    when present and falls back to ``cache_key`` / ``encode`` otherwise.

    Batches of decoded images go through ``prepare_images(images, compact=False)`` (CPU
    work: the model's input as an array; `compact` asks for its smallest exact form) and
    ``encode_prepared(array)`` (the model); ``encode_images`` is the two in turn. The Ray
    engine runs them on different workers.
    """

    name: str            # "clip" | "pixels"
    label: str           # what the UI shows, e.g. "pixels (baseline, not CLIP)"
    cache_key: str       # identifies encoder + model + pretrained + preprocessing
    device: str          # "cpu", "cuda", "mps"

    def encode(self, paths: Sequence[Path], progress: Progress | None = None) -> np.ndarray:
        """(n, d) float32, rows L2-normalised."""


def make_encoder(name: str, **options) -> Encoder:
    """Build an encoder by name.

    Parameters
    ----------
    name : {"clip", "pixels"}
        ``"clip"``: open_clip image tower; options ``model="ViT-B-32"``,
        ``pretrained="laion2b_s34b_b79k"`` (a tag, a checkpoint file path, or ``None`` for
        random weights), ``device="auto"``, ``batch_size=64``, ``num_workers=None``,
        ``image_size=None``, ``seed=0``, ``cache_dir=None``; see `ClipEncoder`.
        ``"pixels"``: weight-free baseline; options ``size=16``, ``pca_components=None``,
        ``num_workers=None``; see `PixelsEncoder`.
    **options
        Passed to the encoder's constructor.

    Returns
    -------
    Encoder
        Validated and ready; a CLIP model is loaded on first use (or by ``.load()``).

    Raises
    ------
    ValueError
        Unknown encoder name, unknown option, unknown model or tag, or a bad value.
    """
    encoders = {"clip": ClipEncoder, "pixels": PixelsEncoder}
    if name not in encoders:
        hint = (" Precomputed embeddings are read with load_precomputed(path, paths_file)."
                if name == "precomputed" else "")
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(encoders)}.{hint}")
    encoder_class = encoders[name]
    accepted = encoder_class._OPTIONS
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"make_encoder({name!r}) got unknown option(s) {unknown}; "
                         f"its options are: {', '.join(accepted)}")
    return encoder_class(**options)


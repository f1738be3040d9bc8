"""pixels: the weight-free baseline encoder."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from .._checks import check_positive_int
from ..pca import principal_components
from ._common import PIPELINE_VERSION, Progress, default_workers, l2_normalise, open_rgb_or_explain

PIXELS_LABEL = "pixels (baseline, not CLIP)"


class PixelsEncoder:
    """Weight-free baseline: each image shrunk to ``size x size`` RGB pixels, flattened.

    Colour is kept (RGB, ``3 * size**2`` values) because colour often separates classes of
    photos; greyscale images such as the digits demo simply give three equal channels. The
    whole image is squashed to a square (aspect ratio ignored, nothing cropped) with a box
    filter, which averages every source pixel and so does not alias. Optional PCA is fitted
    on the images being encoded (deterministic: exact eigendecomposition, fixed signs),
    then rows are L2-normalised. A constant image maps to the uniform unit vector.

    Parameters
    ----------
    size : int, default 16
        Side of the shrunken image, 4 to 64.
    pca_components : int or None, default None
        Keep this many principal components; ``None`` keeps raw pixels. Clipped to the
        number of images when fewer are encoded. Needs ``size <= 32``.
    num_workers : int or None, default None
        Decoding threads; ``None`` means ``min(4, cpu count)``, 0 decodes in the caller.

    Attributes
    ----------
    cache_key : str
        Identifies the full output (includes the PCA setting).
    file_cache_key : str
        Identifies the per-file raw pixel vectors; PCA depends on the whole set, so
        `EmbeddingCache` caches these and re-runs PCA over the set each time.
    """

    name = "pixels"
    label = PIXELS_LABEL
    device = "cpu"
    _OPTIONS = ("size", "pca_components", "num_workers")

    def __init__(self, size: int = 16, pca_components: int | None = None,
                 num_workers: int | None = None):
        size = check_positive_int(size, "size")
        if not 4 <= size <= 64:
            raise ValueError(f"size must be between 4 and 64 pixels, got {size}")
        if pca_components is not None:
            pca_components = check_positive_int(pca_components, "pca_components")
            if size > 32:
                raise ValueError(f"pca_components needs size <= 32 (PCA over {3 * size * size} "
                                 f"values per image is too large); got size={size}")
            if pca_components > 3 * size * size:
                raise ValueError(f"pca_components={pca_components} cannot exceed the "
                                 f"{3 * size * size} pixel values of size={size}")
        if num_workers is not None:
            num_workers = check_positive_int(num_workers, "num_workers", allow_zero=True)
        self.size = size
        self.pca_components = pca_components
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.file_cache_key = f"pixels-{PIPELINE_VERSION}|size={size}|rgb|box"
        self.cache_key = f"{self.file_cache_key}|pca={pca_components or 'none'}"

    def __repr__(self) -> str:
        return f"PixelsEncoder(size={self.size}, pca_components={self.pca_components})"

    @property
    def raw_dim(self) -> int:
        """Length of a raw pixel vector, ``3 * size**2``."""
        return 3 * self.size * self.size

    def _pixels(self, path) -> np.ndarray:
        return self._pixels_of(open_rgb_or_explain(path))

    def _pixels_of(self, image) -> np.ndarray:
        from PIL import Image
        small = image.resize((self.size, self.size), Image.Resampling.BOX)
        return np.asarray(small, dtype=np.float32).reshape(-1) / np.float32(255.0)

    def encode_images(self, images) -> np.ndarray:
        """Encode decoded RGB images (`hdl_core.data.open_image`), as `encode` would their
        files. Each row depends on its image only, so batches can be encoded anywhere (the
        Ray engine does); with ``pca_components`` set the set-level PCA cannot, and this
        raises a ValueError."""
        return self.encode_prepared(self.prepare_images(images))

    def prepare_images(self, images, compact: bool = False) -> np.ndarray:
        """Raw pixel vectors in [0, 1], shape (n, raw_dim), float32 (`compact` changes
        nothing: these vectors are already small)."""
        raw = np.empty((len(images), self.raw_dim), dtype=np.float32)
        for i, image in enumerate(images):
            raw[i] = self._pixels_of(image)
        return raw

    def encode_prepared(self, prepared: np.ndarray) -> np.ndarray:
        """Unit vectors for `prepare_images` output (no PCA: see `encode_images`)."""
        if self.pca_components is not None:
            raise ValueError("pixels with pca_components fits PCA over the whole set; encode "
                             "batches without it (pca_components=None)")
        return self.finalize(np.asarray(prepared, dtype=np.float32))

    def encode_files(self, paths: Sequence[Path], progress: Progress | None = None) -> np.ndarray:
        """Raw per-file pixel vectors in [0, 1], shape (n, 3*size**2), not normalised."""
        n = len(paths)
        out = np.empty((n, self.raw_dim), dtype=np.float32)
        chunk = 64
        starts = range(0, n, chunk)
        if self.num_workers == 0 or n <= chunk:
            for start in starts:
                for i in range(start, min(start + chunk, n)):
                    out[i] = self._pixels(paths[i])
                if progress is not None:
                    progress(min(start + chunk, n), n)
            return out
        # Pillow releases the GIL while decoding and resizing, so threads scale.
        with ThreadPoolExecutor(max_workers=self.num_workers) as pool:
            for start in starts:
                stop = min(start + chunk, n)
                out[start:stop] = list(pool.map(self._pixels, paths[start:stop]))
                if progress is not None:
                    progress(stop, n)
        return out

    def finalize(self, vectors: np.ndarray) -> np.ndarray:
        """Set-level step: PCA (when asked) over all rows, then L2 normalisation."""
        X = np.asarray(vectors, dtype=np.float64)
        if self.pca_components is not None and len(X) > 0:
            X = principal_components(X, self.pca_components)
        return l2_normalise(X)

    def encode(self, paths: Sequence[Path], progress: Progress | None = None) -> np.ndarray:
        """Encode images to (n, d) float32 unit rows (d = 3*size**2, or the PCA size)."""
        return self.finalize(self.encode_files(paths, progress))


"""What every encoder shares: errors, the progress callback, image decoding, normalising."""
from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np

Progress = Callable[[int, int], None]   # (done, total)

# Bump when the pixels or CLIP preprocessing changes in a way that changes vectors,
# so that old cache entries are never mixed with new ones.
PIPELINE_VERSION = "v1"


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable; message names model, cache folder, ways out.

    Besides the message (written for the command line) it carries the facts, so the app
    can say the same in its own terms: ``model``, ``tag``, ``repo_id``, ``filename``,
    ``cache`` (the Hugging Face cache folder looked in) and ``why`` (offline, no answer).
    """

    def __init__(self, message: str, *, model: str = "", tag: str = "", repo_id: str = "",
                 filename: str = "", cache: str = "", why: str = ""):
        super().__init__(message)
        self.model, self.tag, self.repo_id, self.filename = model, tag, repo_id, filename
        self.cache, self.why = cache, why


class EmbeddingError(ValueError):
    """Embeddings could not be made or loaded: bad precomputed files (shape, NaN, paths mismatch)
    or an image that cannot be read while encoding."""



def open_rgb_or_explain(path):
    """Open an image as RGB (`hdl_core.data.open_image`), or one EmbeddingError naming the file.

    `path` is best a `hdl_core.data.DatasetFile`: it is then confined to its dataset folder
    and named by its path in the dataset.
    """
    from ..data import DatasetError, open_image
    try:
        return open_image(path)
    except DatasetError as exc:   # names the file already, in the user's terms
        raise EmbeddingError(f"cannot read an image while encoding: {exc}") from exc
    except Exception as exc:   # any other failure becomes one clear error naming the file
        raise EmbeddingError(f"cannot read image {str(path)!r} while encoding "
                             f"({type(exc).__name__})") from exc


def default_workers(device: str = "cpu") -> int:
    cpus = os.cpu_count() or 1
    return min(8 if device.startswith("cuda") else 4, cpus)


def l2_normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, `hdl_core.graph.normalize_rows`).

    A constant image (all black, say) gives a zero row, which has no direction: it gets the
    direction of a uniform grey image, which is what it is up to brightness.
    """
    from ..rows import normalize_rows
    X = np.asarray(X, dtype=np.float32)
    out = np.empty_like(X)
    zero = ~X.any(axis=1)
    if (~zero).any():
        out[~zero] = normalize_rows(X[~zero])
    if zero.any() and out.shape[1] > 0:
        out[zero] = np.float32(1.0 / math.sqrt(out.shape[1]))
    return out

"""Encoders: CLIP (open_clip), a weight-free pixels baseline, precomputed files, and the embedding cache.

One factory, one call: ``make_encoder(name, **options)`` returns an encoder whose
``encode(paths, progress=...)`` gives an ``(n, d)`` float32 array with L2-normalised rows.
Callers never learn where weights live: a pretrained tag resolves through open_clip's
registry to a file in the Hugging Face cache (downloaded once), a path is loaded directly,
and ``pretrained=None`` builds a randomly initialised model for tests and benchmarks.

torch, open_clip and huggingface_hub are imported inside functions, never at module import,
so ``import hdl_core`` stays fast and works without them.

Examples
--------
>>> from hdl_core.encoders import make_encoder
>>> encoder = make_encoder("pixels", size=8)
>>> encoder.label
'pixels (baseline, not CLIP)'
>>> encoder.encode([]).shape
(0, 192)
"""
from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import tempfile
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

__all__ = [
    "Progress", "WeightsUnavailable", "EmbeddingError", "Encoder",
    "make_encoder", "ClipEncoder", "PixelsEncoder", "clear_model_cache",
    "load_precomputed", "save_precomputed", "EmbeddingCache",
    "DEFAULT_CLIP_MODEL", "DEFAULT_CLIP_PRETRAINED", "PIXELS_LABEL",
]

Progress = Callable[[int, int], None]   # (done, total)

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
PIXELS_LABEL = "pixels (baseline, not CLIP)"

# Bump when the pixels or CLIP preprocessing changes in a way that changes vectors,
# so that old cache entries are never mixed with new ones.
_PIPELINE_VERSION = "v1"

# How long the single "is the hub reachable?" attempt may take before we give up.
_HUB_PROBE_TIMEOUT_S = 5.0


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable; message names model, cache folder, ways out."""


class EmbeddingError(ValueError):
    """Embeddings could not be made or loaded: bad precomputed files (shape, NaN, paths mismatch)
    or an image that cannot be read while encoding."""


class Encoder(Protocol):
    """What every encoder offers.

    Encoders whose output depends on the whole set (pixels with PCA) also offer
    ``file_cache_key``, ``encode_files(paths, progress)`` (per-file vectors, safe to cache
    per file) and ``finalize(vectors)`` (the set-level step); `EmbeddingCache` uses them
    when present and falls back to ``cache_key`` / ``encode`` otherwise.
    """

    name: str            # "clip" | "pixels"
    label: str           # what the UI shows, e.g. "pixels (baseline, not CLIP)"
    cache_key: str       # identifies encoder + model + pretrained + preprocessing
    device: str          # "cpu", "cuda", "mps"

    def encode(self, paths: Sequence[Path], progress: Progress | None = None) -> np.ndarray:
        """(n, d) float32, rows L2-normalised."""


# --------------------------------------------------------------------------------------
# The factory
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------

def _open_rgb(path):
    """Open an image as RGB with EXIF orientation applied (hdl_core.images.open_image)."""
    from hdl_core import images
    return images.open_image(path)


def _open_rgb_or_explain(path):
    try:
        return _open_rgb(path)
    except Exception as exc:   # any decoder failure becomes one clear error naming the file
        raise EmbeddingError(f"cannot read image {str(path)!r} while encoding: "
                             f"{type(exc).__name__}: {exc}") from exc


def _default_workers(device: str = "cpu") -> int:
    cpus = os.cpu_count() or 1
    return min(8 if device.startswith("cuda") else 4, cpus)


def _check_positive_int(value, name: str, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        need = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {need} integer, got {value!r}")
    return int(value)


def _l2_normalise(X: np.ndarray, *, zero_rows: str = "uniform") -> np.ndarray:
    """Rows scaled to unit length (float32). Zero rows become the uniform unit vector."""
    X64 = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X64, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    norms[zero] = 1.0
    out = (X64 / norms).astype(np.float32)
    if zero.any() and out.shape[1] > 0:
        # A constant image (all black, say) has no direction; give it the direction of a
        # uniform grey image, which is what it is up to brightness.
        out[zero] = np.float32(1.0 / math.sqrt(out.shape[1]))
    return out


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --------------------------------------------------------------------------------------
# pixels: the weight-free baseline
# --------------------------------------------------------------------------------------

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
        size = _check_positive_int(size, "size")
        if not 4 <= size <= 64:
            raise ValueError(f"size must be between 4 and 64 pixels, got {size}")
        if pca_components is not None:
            pca_components = _check_positive_int(pca_components, "pca_components")
            if size > 32:
                raise ValueError(f"pca_components needs size <= 32 (PCA over {3 * size * size} "
                                 f"values per image is too large); got size={size}")
            if pca_components > 3 * size * size:
                raise ValueError(f"pca_components={pca_components} cannot exceed the "
                                 f"{3 * size * size} pixel values of size={size}")
        if num_workers is not None:
            num_workers = _check_positive_int(num_workers, "num_workers", allow_zero=True)
        self.size = size
        self.pca_components = pca_components
        self.num_workers = _default_workers() if num_workers is None else num_workers
        self.file_cache_key = f"pixels-{_PIPELINE_VERSION}|size={size}|rgb|box"
        self.cache_key = f"{self.file_cache_key}|pca={pca_components or 'none'}"

    def __repr__(self) -> str:
        return f"PixelsEncoder(size={self.size}, pca_components={self.pca_components})"

    @property
    def raw_dim(self) -> int:
        """Length of a raw pixel vector, ``3 * size**2``."""
        return 3 * self.size * self.size

    def _pixels(self, path) -> np.ndarray:
        from PIL import Image
        image = _open_rgb_or_explain(path)
        small = image.resize((self.size, self.size), Image.Resampling.BOX)
        return np.asarray(small, dtype=np.float32).reshape(-1) / np.float32(255.0)

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
            X = _pca(X, self.pca_components)
        return _l2_normalise(X)

    def encode(self, paths: Sequence[Path], progress: Progress | None = None) -> np.ndarray:
        """Encode images to (n, d) float32 unit rows (d = 3*size**2, or the PCA size)."""
        return self.finalize(self.encode_files(paths, progress))


def _pca(X: np.ndarray, components: int) -> np.ndarray:
    """Project centred rows on the top principal axes (exact, deterministic signs)."""
    n, d = X.shape
    k = min(components, n, d)
    centred = X - X.mean(axis=0)
    covariance = centred.T @ centred
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    axes = eigenvectors[:, ::-1][:, :k]                  # largest variance first
    # Fix each axis's sign so its largest-magnitude loading is positive (as sklearn's svd_flip).
    biggest = np.abs(axes).argmax(axis=0)
    axes = axes * np.sign(axes[biggest, np.arange(k)])
    return centred @ axes


# --------------------------------------------------------------------------------------
# clip: open_clip image tower
# --------------------------------------------------------------------------------------

_MODELS: dict[tuple, tuple] = {}      # (model, weights id, device, image size) -> (model, preprocess)
_MODELS_LOCK = threading.Lock()
_CHECKPOINT_DIGESTS: dict[tuple, str] = {}   # (path, size, mtime_ns) -> sha256 hex


def clear_model_cache() -> None:
    """Forget every CLIP model this process has loaded (frees their memory)."""
    with _MODELS_LOCK:
        _MODELS.clear()


class ClipEncoder:
    """CLIP image embeddings with open_clip.

    Images are decoded and preprocessed by a torch DataLoader with worker processes while
    the model runs; batches go through ``encode_image`` under ``torch.inference_mode`` (half
    precision on CUDA) and come back as L2-normalised float32 rows.

    Parameters
    ----------
    model : str, default "ViT-B-32"
        An open_clip model name (``open_clip.list_models()``).
    pretrained : str or None, default "laion2b_s34b_b79k"
        A pretrained tag for ``model`` (``open_clip.list_pretrained_tags_by_model``), a path
        to a checkpoint file, or ``None`` for random weights (seeded; tests and benchmarks).
        A tag's weights are taken from the Hugging Face cache, or downloaded once.
    device : str, default "auto"
        "auto" picks cuda, then mps, then cpu; or "cpu", "cuda", "cuda:1", "mps".
    batch_size : int, default 64
    num_workers : int or None, default None
        DataLoader worker processes; ``None`` means ``min(4, cpu count)`` (8 on CUDA); 0
        decodes in the calling process.
    image_size : int or None, default None
        Override the model's input size (``force_image_size``); ``None`` keeps its own.
    seed : int, default 0
        Seed of the random initialisation when ``pretrained`` is None.
    cache_dir : str or Path or None, default None
        Hugging Face hub cache to read and download weights; ``None`` means
        ``$HF_HUB_CACHE`` or ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``.

    Attributes
    ----------
    cache_key : str
        Encoder, model, weights (tag, checkpoint file hash, or "random-seed=N"), input size
        and pipeline version. Device and precision are left out on purpose: fp16 on a GPU
        and fp32 on a CPU give the same embeddings up to rounding, so they share entries.
    dim : int
        Embedding width.
    label : str
        What the UI shows, e.g. "CLIP ViT-B-32 (laion2b_s34b_b79k)".
    """

    name = "clip"
    _OPTIONS = ("model", "pretrained", "device", "batch_size", "num_workers", "image_size",
                "seed", "cache_dir")

    def __init__(self, model: str = DEFAULT_CLIP_MODEL, pretrained: str | Path | None = DEFAULT_CLIP_PRETRAINED,
                 *, device: str = "auto", batch_size: int = 64, num_workers: int | None = None,
                 image_size: int | None = None, seed: int = 0, cache_dir: str | Path | None = None):
        import open_clip

        config = _model_config(model)
        self.model = model
        self.device = _resolve_device(device)
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        if num_workers is not None:
            num_workers = _check_positive_int(num_workers, "num_workers", allow_zero=True)
        self.num_workers = _default_workers(self.device) if num_workers is None else num_workers
        if image_size is not None:
            image_size = _check_positive_int(image_size, "image_size")
        self.image_size = image_size or _config_image_size(config)
        self.seed = int(seed)
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.dim = int(config["embed_dim"])

        if pretrained is None:
            self.pretrained = None
            self.checkpoint = None
            self._tag_config = None
            self._weights_id = f"random-seed={self.seed}"
            self.label = f"CLIP {model} (random weights, seed {self.seed})"
        elif open_clip.get_pretrained_cfg(model, str(pretrained)):
            self.pretrained = open_clip.pretrained._clean_tag(str(pretrained))
            self.checkpoint = None
            self._tag_config = open_clip.get_pretrained_cfg(model, self.pretrained)
            self._weights_id = self.pretrained
            self.label = f"CLIP {model} ({self.pretrained})"
        else:
            self.checkpoint = _checkpoint_path(model, pretrained)
            self.pretrained = str(self.checkpoint)
            self._tag_config = None
            self._weights_id = f"file-sha256={_checkpoint_digest(self.checkpoint)[:16]}"
            self.label = f"CLIP {model} ({self.checkpoint.name})"
        self.cache_key = (f"clip-{_PIPELINE_VERSION}|{model}|{self._weights_id}"
                          f"|px={self.image_size}")
        self._model = None
        self._preprocess = None

    def __repr__(self) -> str:
        return (f"ClipEncoder(model={self.model!r}, pretrained={self.pretrained!r}, "
                f"device={self.device!r}, batch_size={self.batch_size})")

    # ---- loading -----------------------------------------------------------------
    def load(self) -> "ClipEncoder":
        """Load the model now (once per process); `encode` calls this when needed.

        Raises
        ------
        WeightsUnavailable
            The tag's weights are not cached and the hub cannot be reached.
        ValueError
            The checkpoint file does not fit ``model``.
        """
        key = (self.model, self._weights_id, self.device, self.image_size)
        with _MODELS_LOCK:
            if key not in _MODELS:
                _MODELS[key] = self._create()
            self._model, self._preprocess = _MODELS[key]
        return self

    def _create(self):
        import open_clip
        import torch

        options = {}
        checkpoint = None
        if self._tag_config is not None:
            checkpoint = _tag_checkpoint(self.model, self.pretrained, self._tag_config,
                                         self.cache_dir)
            # We hand open_clip a file, so pass on what the tag would have set.
            options = dict(force_quick_gelu=bool(self._tag_config.get("quick_gelu", False)),
                           image_mean=self._tag_config.get("mean"),
                           image_std=self._tag_config.get("std"),
                           image_interpolation=self._tag_config.get("interpolation"),
                           image_resize_mode=self._tag_config.get("resize_mode"))
        elif self.checkpoint is not None:
            checkpoint = str(self.checkpoint)

        precision = "fp16" if self.device.startswith("cuda") else "fp32"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.model, pretrained=checkpoint, precision=precision, device=self.device,
                    force_image_size=self.image_size, **options)
            except (RuntimeError, AssertionError, KeyError, ValueError) as exc:
                if checkpoint is None:
                    raise
                # open_clip reports a mismatched state dict in several ways (strict load
                # errors, asserts on position embeddings, missing keys): say it plainly.
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ValueError(
                    f"checkpoint {checkpoint} does not fit model {self.model!r} "
                    f"({type(exc).__name__}: {first_line}); pass the --model it was trained "
                    f"as (and the same image size)") from exc
        model.eval()
        return model, preprocess

    # ---- encoding ----------------------------------------------------------------
    def encode_files(self, paths: Sequence[Path], progress: Progress | None = None) -> np.ndarray:
        """Same as `encode`: CLIP vectors depend on one file only."""
        return self.encode(paths, progress)

    def finalize(self, vectors: np.ndarray) -> np.ndarray:
        """Nothing set-level to do for CLIP; rows are already unit length."""
        return np.asarray(vectors, dtype=np.float32)

    def encode(self, paths: Sequence[Path], progress: Progress | None = None) -> np.ndarray:
        """Embed images.

        Parameters
        ----------
        paths : sequence of path
            Image files; opened with ``hdl_core.images.open_image``.
        progress : callable(done, total), optional
            Called after every batch.

        Returns
        -------
        ndarray of shape (n, dim), float32
            L2-normalised rows, in the order of ``paths``.
        """
        n = len(paths)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        import torch

        self.load()
        batches = math.ceil(n / self.batch_size)
        # Worker start-up costs more than it saves for a single batch.
        workers = 0 if batches == 1 else min(self.num_workers, batches)
        on_cuda = self.device.startswith("cuda")
        loader = torch.utils.data.DataLoader(
            _PreprocessedImages([str(p) for p in paths], self._preprocess),
            batch_size=self.batch_size, shuffle=False, num_workers=workers,
            pin_memory=on_cuda, prefetch_factor=(4 if workers else None))
        dtype = torch.float16 if on_cuda else torch.float32
        done = 0
        with torch.inference_mode():
            for batch in loader:
                batch = batch.to(self.device, dtype=dtype, non_blocking=True)
                features = self._model.encode_image(batch).float()
                features = torch.nn.functional.normalize(features, dim=-1)
                out[done:done + len(batch)] = features.cpu().numpy()
                done += len(batch)
                if progress is not None:
                    progress(done, n)
        return out


class _PreprocessedImages:
    """Map-style dataset for the DataLoader: path -> preprocessed tensor (picklable)."""

    def __init__(self, paths: list[str], preprocess):
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return self.preprocess(_open_rgb_or_explain(self.paths[index]))


def _model_config(model: str) -> dict:
    """open_clip's config for a built-in model name, or a ValueError listing choices."""
    import open_clip

    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be an open_clip model name such as {DEFAULT_CLIP_MODEL!r}, "
                         f"got {model!r}")
    if model.startswith(("hf-hub:", "local-dir:")):
        raise ValueError(f"model {model!r}: hub and folder schemas are not supported; use a built-in "
                         f"name (e.g. {DEFAULT_CLIP_MODEL!r}) with --pretrained TAG or a checkpoint file")
    config = open_clip.get_model_config(model)
    if config is None:
        names = open_clip.list_models()
        close = difflib.get_close_matches(model, names, n=5, cutoff=0.5)
        common = ["ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50", "ViT-S-32"]
        suggestions = close + [c for c in common if c not in close]
        raise ValueError(f"unknown CLIP model {model!r}; valid choices include "
                         f"{', '.join(suggestions[:6])} ({len(names)} in all: open_clip.list_models())")
    return config


def _config_image_size(config: dict) -> int:
    size = config.get("vision_cfg", {}).get("image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _checkpoint_path(model: str, pretrained) -> Path:
    """A `pretrained` value that is not a tag must be an existing checkpoint file."""
    import open_clip

    path = Path(str(pretrained)).expanduser()
    if path.is_file():
        return path.resolve()
    tags = open_clip.list_pretrained_tags_by_model(model)
    looks_like_path = (os.sep in str(pretrained) or "/" in str(pretrained)
                       or path.suffix in (".pt", ".pth", ".bin", ".safetensors", ".npz"))
    if looks_like_path:
        raise ValueError(f"checkpoint file not found: {str(pretrained)!r}")
    if not tags:
        with_weights = sorted({m for m, _ in open_clip.list_pretrained()})
        raise ValueError(f"model {model!r} has no pretrained tags in open_clip; pass a checkpoint "
                         f"file, pretrained=None for random weights, or a model with weights such "
                         f"as {', '.join(m for m in ('ViT-B-32', 'ViT-B-16', 'ViT-L-14') if m in with_weights)}")
    close = difflib.get_close_matches(str(pretrained), tags, n=3, cutoff=0.4)
    shown = close + [t for t in tags if t not in close]
    raise ValueError(f"unknown pretrained tag {str(pretrained)!r} for {model} (and no such file); "
                     f"valid tags include {', '.join(shown[:6])} "
                     f"({len(tags)} in all: open_clip.list_pretrained_tags_by_model({model!r}))")


def _checkpoint_digest(path: Path) -> str:
    """sha256 of a checkpoint file, remembered per (path, size, mtime) in this process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKPOINT_DIGESTS:
        _CHECKPOINT_DIGESTS[key] = _file_sha256(path)
    return _CHECKPOINT_DIGESTS[key]


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} but MPS is not available here; use device='auto' or 'cpu'")
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    return device


# ---- where a tag's weights come from -------------------------------------------------

def _hub_cache_dir(cache_dir: Path | None = None) -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import)."""
    if cache_dir is not None:
        return Path(cache_dir)
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.path.expandvars(os.environ[variable])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "huggingface" / "hub"


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hub_files(tag_config: dict) -> tuple[str, list[str]]:
    """(repo id, candidate file names, safetensors first) of a tag, as open_clip would fetch."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo_id, filename = os.path.split(tag_config["hf_hub"])
    filename = filename or HF_WEIGHTS_NAME
    candidates = []
    if filename == HF_WEIGHTS_NAME:
        candidates.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        candidates.append(filename[:-4] + ".safetensors")
    candidates.append(filename)
    return repo_id, candidates


def _tag_checkpoint(model: str, tag: str, tag_config: dict, cache_dir: Path | None) -> str:
    """Path of a tag's weights: from the local cache, else one quick hub check, then download."""
    if tag_config.get("file"):
        return tag_config["file"]
    if not tag_config.get("hf_hub"):
        return tag   # URL-only tag (none in open_clip 3.x): let open_clip fetch it
    from huggingface_hub import try_to_load_from_cache

    hub_cache = _hub_cache_dir(cache_dir)
    repo_id, candidates = _hub_files(tag_config)
    for filename in candidates:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache))
        if isinstance(cached, str) and os.path.isfile(cached):
            return cached

    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if offline:
        raise WeightsUnavailable(_weights_message(model, tag, repo_id, candidates[0], hub_cache,
                                                  "HF_HUB_OFFLINE is set"))
    filename, failure = _probe_hub(repo_id, candidates)
    if filename is None:
        raise WeightsUnavailable(_weights_message(model, tag, repo_id, candidates[0], hub_cache,
                                                  failure))
    from huggingface_hub import hf_hub_download
    return hf_hub_download(repo_id, filename, cache_dir=str(hub_cache), endpoint=_hub_endpoint())


def _probe_hub(repo_id: str, candidates: list[str]) -> tuple[str | None, str]:
    """One quick HEAD per candidate file, no retries, bounded in time.

    Returns (first available file name, "") or (None, why not). huggingface_hub would retry
    a failing download with back-off for about a minute; this answers within seconds.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = _hub_endpoint()
    result: dict = {}

    def ask() -> None:
        for filename in candidates:
            try:
                get_hf_file_metadata(hf_hub_url(repo_id, filename, endpoint=endpoint),
                                     timeout=_HUB_PROBE_TIMEOUT_S, endpoint=endpoint)
                result["file"] = filename
                return
            except Exception as exc:   # network errors and HTTP errors alike end the attempt
                status = getattr(getattr(exc, "response", None), "status_code", None)
                result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if status != 404:       # 404: try the next file name; anything else: stop
                    return

    # DNS lookups ignore the HTTP timeout, so bound the whole attempt with a daemon thread.
    thread = threading.Thread(target=ask, daemon=True, name="hdl-hub-probe")
    thread.start()
    thread.join(2 * _HUB_PROBE_TIMEOUT_S)
    if "file" in result:
        return result["file"], ""
    if thread.is_alive():
        return None, f"no answer from {endpoint} within {2 * _HUB_PROBE_TIMEOUT_S:.0f} s"
    return None, f"{endpoint} not reachable ({result.get('error', 'unknown error')})"


def _weights_message(model: str, tag: str, repo_id: str, filename: str, hub_cache: Path,
                     why: str) -> str:
    return (
        f"CLIP weights for {model} / {tag} are not in the local cache ({hub_cache}) and cannot be "
        f"downloaded now: {why}.\n"
        f"Two ways out:\n"
        f"  1. Download them once with internet (into this cache folder, or copy the folder here):\n"
        f"       python -c \"import open_clip; open_clip.create_model_and_transforms("
        f"'{model}', pretrained='{tag}')\"\n"
        f"     (or: hf download {repo_id} {filename}); to embed elsewhere and label here, run\n"
        f"       python -m hdl_core embed IMAGES --out emb.npy --model {model} --pretrained {tag}\n"
        f"     on that machine and pass --embeddings emb.npy --paths emb.paths.txt here.\n"
        f"  2. Pass a checkpoint file you already have: --pretrained /path/to/open_clip_model.safetensors "
        f"(make_encoder('clip', model='{model}', pretrained=PATH))."
    )


# --------------------------------------------------------------------------------------
# Precomputed embeddings
# --------------------------------------------------------------------------------------

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
        raise EmbeddingError(f"embeddings file not found: {path}")
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
        raise EmbeddingError(f"{path.name} is not a readable .npy file: {exc}") from exc
    except OSError as exc:
        raise EmbeddingError(f"{path.name} is not a readable .npy file: {exc}") from exc
    paths_file = _default_paths_file(path) if paths_file is None else Path(paths_file)
    if not paths_file.is_file():
        raise EmbeddingError(f"{path.name} needs a path list (one image path per line, in row order): "
                             f"{paths_file} not found; pass it as paths_file= / --paths")
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
        raise EmbeddingError(f"{path.name} is not a readable parquet file: {exc}") from exc
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
    return (X / norms[:, None]).astype(np.float32)


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
        _atomic_write(path, lambda f: np.save(f, X, allow_pickle=False))
        text = "".join(p + "\n" for p in paths)
        _atomic_write(paths_file, lambda f: f.write(text.encode("utf-8")))
        return [path, paths_file]
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        vectors = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])
        table = pa.table({"path": pa.array(paths, pa.string()), "embedding": vectors})
        _atomic_write(path, lambda f: pq.write_table(table, f))
        return [path]
    raise ValueError(f"unsupported embeddings format {suffix!r}; use .npy or .parquet")


def _atomic_write(target: Path, write: Callable) -> None:
    """Write via a temporary file in the same folder, fsync, then os.replace."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


# --------------------------------------------------------------------------------------
# The embedding cache
# --------------------------------------------------------------------------------------

class EmbeddingCache:
    """Per-file embeddings keyed by (file content hash, encoder cache key).

    Layout: one sub-folder per cache key (a readable slug plus a digest of the key, with the
    full key in ``key.txt``), holding append-only shards ``shard-*.npz``, each with a
    ``hashes`` array (fixed-width bytes) and a ``vectors`` array (float32). A run writes
    one new shard for the files it encoded (temporary file + ``os.replace``), so a killed
    process leaves the previous shards intact and two processes never overwrite each
    other. When a key has more than ``max_shards`` shards they are merged into one.

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
               progress: Progress | None = None) -> tuple[np.ndarray, dict]:
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
            todo = list(missing.values())
            report = None if progress is None else (lambda done, total: progress(hits + done, n))
            fresh = np.asarray(encode_files([paths[i] for i in todo], report), dtype=np.float32)
            self.add(key, list(missing), fresh)
            known.update(zip(missing, fresh))
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
            _atomic_write(key_file, lambda f: f.write(key.encode("utf-8") + b"\n"))
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
        _atomic_write(target, lambda f: np.savez(f, hashes=hash_array, vectors=vectors))
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


"""clip: the open_clip image tower, loaded once per process and run through a DataLoader."""
from __future__ import annotations

import difflib
import hashlib
import math
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from .._checks import check_positive_int
from ..config import DEFAULT_BATCH_SIZE, DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
from ._common import PIPELINE_VERSION, Progress, default_workers, open_rgb_or_explain
from .weights import tag_checkpoint


_MODELS: dict[tuple, tuple] = {}      # (model, weights id, device, image size) -> (model, preprocess)


_MODELS_LOCK = threading.Lock()
_TRANSFORMS: dict[tuple, object] = {}   # (model, weights id, image size) -> preprocess


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
                 *, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE, num_workers: int | None = None,
                 image_size: int | None = None, seed: int = 0, cache_dir: str | Path | None = None):
        import open_clip

        config = _model_config(model)
        self.model = model
        self.device = _resolve_device(device)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if num_workers is not None:
            num_workers = check_positive_int(num_workers, "num_workers", allow_zero=True)
        self.num_workers = default_workers(self.device) if num_workers is None else num_workers
        if image_size is not None:
            image_size = check_positive_int(image_size, "image_size")
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
        self.cache_key = (f"clip-{PIPELINE_VERSION}|{model}|{self._weights_id}"
                          f"|px={self.image_size}")
        self._model = None
        self._preprocess = None
        self._split = None          # _split_preprocess's answer, once asked (False: none)

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
            checkpoint = tag_checkpoint(self.model, self.pretrained, self._tag_config,
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
            except Exception as exc:
                if checkpoint is None:
                    raise
                unreadable = _unreadable(checkpoint)
                if unreadable is not None:
                    raise ValueError(
                        f"checkpoint {Path(checkpoint).name} cannot be read as model weights "
                        f"({unreadable}): it may be cut short or another kind of file; "
                        "download it again") from exc
                if not isinstance(exc, (RuntimeError, AssertionError, KeyError, ValueError)):
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
            Image files; opened with ``hdl_core.data.open_image``.
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
            _PreprocessedImages(list(paths), self._preprocess),
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


    def encode_images(self, images) -> np.ndarray:
        """Encode decoded RGB images (`hdl_core.data.open_image`) in one batch: the same
        preprocessing and model as `encode`, without a DataLoader."""
        return self.encode_prepared(self.prepare_images(images))

    def preprocess(self):
        """The image transform `encode` applies (resize, crop, normalise), built without
        loading weights: it depends on the model, the tag's image settings and the image
        size, never on the checkpoint's contents. Cached per process."""
        import open_clip
        import torch

        if self._preprocess is not None:
            return self._preprocess
        key = (self.model, self._weights_id, self.image_size)
        with _MODELS_LOCK:
            if key not in _TRANSFORMS:
                options = {}
                if self._tag_config is not None:
                    options = dict(image_mean=self._tag_config.get("mean"),
                                   image_std=self._tag_config.get("std"),
                                   image_interpolation=self._tag_config.get("interpolation"),
                                   image_resize_mode=self._tag_config.get("resize_mode"))
                with torch.device("meta"):          # a model of shapes only: no memory, no init
                    _, _, transform = open_clip.create_model_and_transforms(
                        self.model, pretrained=None, device="meta",
                        force_image_size=self.image_size, **options)
                _TRANSFORMS[key] = transform
            return _TRANSFORMS[key]

    def _split_preprocess(self):
        """(image stages, table) when the transform ends in ToTensor + Normalize, the way
        open_clip builds it, else None. The image stages (resize, crop, RGB) give the
        model's input as uint8 pixels; `table[c, v]` is what ToTensor + Normalize make of
        value v in channel c, computed by those very transforms on the CPU, so looking it
        up on any device gives the same float32 input, bit for bit (a GPU dividing by 255
        itself would not: it multiplies by the reciprocal)."""
        from PIL import Image
        from torchvision import transforms as T

        if self._split is None:
            steps = list(getattr(self.preprocess(), "transforms", []))
            if (len(steps) < 2 or not isinstance(steps[-2], T.ToTensor)
                    or not isinstance(steps[-1], T.Normalize)):
                self._split = False
            else:
                ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
                table = steps[-1](steps[-2](Image.fromarray(ramp, "RGB")))[:, 0, :]  # (3, 256)
                self._split = (T.Compose(steps[:-2]), table.contiguous())
        return self._split or None

    def prepare_images(self, images, compact: bool = False) -> np.ndarray:
        """The model's input for decoded RGB images: shape (n, 3, size, size), float32.
        CPU work only, so the Ray engine runs it in tasks on any CPU and keeps the actors
        holding GPUs on the model.

        With `compact`, the same input as uint8 pixels of shape (n, size, size, 3) where the
        transform allows (a quarter of the bytes to move between workers, no float work on
        the CPU); `encode_prepared` finishes the job, to the same vectors."""
        split = self._split_preprocess() if compact else None
        size = self.image_size
        if split is not None:
            stages = split[0]
            out = np.empty((len(images), size, size, 3), dtype=np.uint8)
            for i, image in enumerate(images):
                pixels = np.asarray(stages(image))
                if pixels.shape != out.shape[1:]:
                    raise ValueError(f"CLIP preprocessing gave {pixels.shape} pixels, "
                                     f"expected {out.shape[1:]}")
                out[i] = pixels
            return out
        transform = self.preprocess()
        out = np.empty((len(images), 3, size, size), dtype=np.float32)
        for i, image in enumerate(images):
            out[i] = transform(image).numpy()
        return out

    def encode_prepared(self, prepared: np.ndarray) -> np.ndarray:
        """Unit vectors for `prepare_images` output (either form), `batch_size` rows at a
        time."""
        out = np.empty((len(prepared), self.dim), dtype=np.float32)
        if not len(prepared):
            return out
        import torch

        self.load()
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        pixels = prepared.dtype == np.uint8
        if pixels:
            split = self._split_preprocess()
            if split is None:
                raise ValueError(f"uint8 pixels cannot be normalised for {self.model}: its "
                                 "transform does not end in ToTensor + Normalize; pass "
                                 "prepare_images(images) without compact")
            table = split[1].to(self.device)
            channel = torch.arange(3, device=self.device)
        with torch.inference_mode():
            for start in range(0, len(prepared), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(
                    prepared[start:start + self.batch_size])).to(self.device, non_blocking=True)
                if pixels:          # (n, size, size, 3) uint8 -> (n, 3, size, size) float32
                    batch = table[channel, batch.long()].permute(0, 3, 1, 2).contiguous()
                features = self._model.encode_image(batch.to(dtype)).float()
                features = torch.nn.functional.normalize(features, dim=-1)
                out[start:start + len(batch)] = features.cpu().numpy()
        return out


class _PreprocessedImages:
    """Map-style dataset for the DataLoader: path -> preprocessed tensor (picklable).

    Paths stay as given (a `hdl_core.data.DatasetFile` keeps its dataset folder, so worker
    processes open files through the same checks).
    """

    def __init__(self, paths: list, preprocess):
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return self.preprocess(open_rgb_or_explain(self.paths[index]))


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


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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


def _unreadable(checkpoint: str) -> str | None:
    """Why open_clip cannot read `checkpoint` as a state dict (torch or safetensors file),
    or None when it can. Asked only after a load failed, to tell a broken file from
    weights of another model."""
    from open_clip.factory import load_state_dict

    from ..data.imageio import describe_error
    try:
        load_state_dict(checkpoint, device="cpu")
    except Exception as error:       # pickle, zip, safetensors and EOF errors alike
        # short and path-free; torch's long advice to unpickle with weights_only=False,
        # not one to pass on for a file that failed to load, is left out
        return describe_error(error)
    return None

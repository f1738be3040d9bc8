"""Embedding an image folder on Ray Data: files read and decoded by Ray's read tasks,
encoded by a pool of actors that each load the encoder once, written as Parquet parts.

    files listed here (the scan's own rules: hidden files, non-images, links)
      -> ray.data.read_binary_files            read tasks, 1 CPU each
      -> map_batches(_prepare_batch)           tasks, 1 CPU each: the scan's image
                                              check, decode, encoder.prepare_images
                                              (CLIP: resize and crop to uint8 pixels)
      -> map_batches(_EncodeBatch, a pool of `actors`, num_gpus=G)
                                              each actor: encoder.encode_prepared (scale,
                                              normalise and the model, on its GPU)
      -> iter_batches on the driver           part-NNNNN.parquet + _meta.json

Decoding runs on every free CPU, not inside the actors: one actor per GPU decoding its own
images would hold a GPU waiting on one CPU core. (On a cluster without GPUs Ray Data fuses
the two stages into the actors, which then do both, as many as there are spare CPUs.)
A file the scan would skip is skipped here with the same reason (`hdl_core.data.scan`
decides both), so `embed --engine ray` and `--engine local` list the same skipped files.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import DEFAULT_MAX_PIXELS, TRUTH_CSV
from ..data.imageio import decode_image

Progress = Callable[[int, int], None]


_PREPARERS: dict[tuple, object] = {}      # per worker process: (encoder, options) -> encoder


def _prepare_batch(batch: dict, *, name: str, options: dict, root: str,
                   max_pixels: int) -> dict:
    """Ray Data read-side stage (a task on 1 CPU): the scan's image check, decoding and the
    encoder's CPU preprocessing, so the actors holding GPUs only run the model."""
    from ..data.scan import _image_problem
    from ..embed import make_encoder

    key = (name, tuple(sorted(options.items())))
    encoder = _PREPARERS.get(key)
    if encoder is None:
        encoder = _PREPARERS[key] = make_encoder(name, **options)
    paths, problems, images = [], [], []
    for path, data in zip(batch["path"], batch["bytes"]):
        relative = Path(os.path.relpath(str(path), root)).as_posix()
        # as data.scan._inspect_file decides for a file it read: empty, then the image
        problem = ("empty file (0 bytes)" if len(data) == 0
                   else _image_problem(bytes(data), max_pixels))
        image = None
        if problem is None:
            try:
                image = decode_image(bytes(data), relative, max_pixels=max_pixels)
            except Exception as error:   # passed the scan's checks, still undecodable
                problem = f"corrupt image ({error})"
        paths.append(relative)
        problems.append(problem or "")
        images.append(image)
    good = [i for i, image in enumerate(images) if image is not None]
    ready = encoder.prepare_images([images[i] for i in good], compact=True)
    prepared = np.zeros((len(paths),) + ready.shape[1:], ready.dtype)
    prepared[good] = ready
    return {"path": np.array(paths, dtype=object), "problem": np.array(problems, dtype=object),
            "prepared": prepared}


def _told_errors() -> tuple:
    """The encoder errors a run tells the user in one line, as the local engine does
    (weights that cannot be fetched, a checkpoint that cannot be read, ...), most
    specific first."""
    from ..embed import EmbeddingError, WeightsUnavailable
    return WeightsUnavailable, EmbeddingError, ValueError


class _EncodeBatch:
    """A Ray Data actor: one encoder per actor, loaded once, used for every batch.

    An encoder error the user is to be told (`_told_errors`) comes back in the batch's
    ``failure`` column as "Type\\nmessage", not raised: Ray Data would hand the driver its
    own wrapping of the worker's traceback, without the exception."""

    def __init__(self, name: str, options: dict):
        from ..embed import make_encoder
        self.encoder = make_encoder(name, **options)

    def __call__(self, batch: dict) -> dict:
        problem = batch["problem"]
        good = np.flatnonzero(problem == "")
        failure = ""
        try:
            vectors = self.encoder.encode_prepared(batch["prepared"][good])
        except _told_errors() as error:
            kind = next(t for t in _told_errors() if isinstance(error, t)).__name__
            failure = f"{kind}\n{error}"
            width = getattr(self.encoder, "dim", None) or self.encoder.raw_dim
            vectors = np.zeros((good.size, width), np.float32)
        embedding = np.zeros((len(problem), vectors.shape[1]), np.float32)
        embedding[good] = vectors
        return {"path": batch["path"], "problem": problem, "embedding": embedding,
                "failure": np.full(len(problem), failure, dtype=object)}


def _raise_failure(failure: str) -> None:
    """Raise on the driver the error an actor reported (`_EncodeBatch`)."""
    kind, _, message = failure.partition("\n")
    raise next((t for t in _told_errors() if t.__name__ == kind), ValueError)(message)


def embed_on_ray(images: str | Path, out: str | Path, *, encoder: str = "pixels",
                 options: dict | None = None, address: str | None = None,
                 actors: int | None = None, gpus_per_actor: float = 0.0,
                 batch_size: int = 64, max_pixels: int = DEFAULT_MAX_PIXELS,
                 progress: Progress | None = None) -> dict:
    """Embed every image under `images` on a Ray cluster into the folder `out`.

    Parameters
    ----------
    images : path
        The image folder (every worker must see it at the same path: a shared or
        network file system, or a single machine).
    out : path
        The embeddings folder (`hdl_core.embed.EmbeddingsDirWriter` layout).
    encoder, options
        As `hdl_core.embed.make_encoder` takes them (pixels without PCA, or clip).
    address : str, optional
        A running cluster (``ray://host:10001`` or ``host:6379``); default a cluster
        started on this machine (or ``RAY_ADDRESS``). A cluster this call starts is shut
        down at the end; one it joined is left running.
    actors : int, optional
        Encoder actors. Default: one per GPU share with `gpus_per_actor`, else one fewer
        than the cluster's CPUs: read tasks need a free CPU or the pipeline waits forever
        (actors holding every CPU slot is a known Ray Data hang).
    gpus_per_actor : float, default 0
        GPUs each actor claims (``num_gpus``); CLIP then runs on its GPU.
    batch_size : int, default 64
        Images per batch handed to an actor.
    progress : callable(done, total), optional

    Returns
    -------
    dict
        What `_meta.json` holds: cache key, model, dim, n, skipped (path, reason) rows; and
        ``ray_data_stats``, Ray Data's per-stage timings (``Dataset.stats()``), for tuning
        actors and batch size on a cluster.
    """
    import ray

    from ..data.scan import _walk
    from ..embed import EmbeddingsDirWriter, make_encoder

    options = dict(options or {})
    root = Path(images).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"{images}: no such folder (the Ray engine reads folders, not zips)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be a positive whole number, got {batch_size!r}")
    if gpus_per_actor < 0:
        raise ValueError(f"--gpus-per-actor must be 0 or more, got {gpus_per_actor}")
    if encoder == "clip":
        options["device"] = "cuda" if gpus_per_actor > 0 else "cpu"
        options.setdefault("num_workers", 0)
    # validates the options here (the driver may have no GPU); loads no weights
    probe = make_encoder(encoder, **({**options, "device": "cpu"} if encoder == "clip"
                                     else options))
    if getattr(probe, "pca_components", None) is not None:
        raise ValueError("pixels with PCA is fitted over the whole set and cannot be "
                         "embedded in batches; use --engine local")
    candidates, skipped_on_sight = _walk(root, {TRUTH_CSV})
    candidates.sort(key=lambda candidate: candidate[0])
    # Ray reads the files by path, not through `open_dataset_file`: refuse here what that
    # door refuses after the walk (links were refused by the walk itself)
    linked = [(relative, f"hard link ({info.st_nlink} names for one file, maybe outside the "
                         "dataset folder)")
              for relative, _, info in candidates if info is not None and info.st_nlink > 1]
    candidates = [entry for entry in candidates if entry[2] is None or entry[2].st_nlink == 1]
    writer = EmbeddingsDirWriter(out)

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        if gpus_per_actor > 0:
            if gpus < gpus_per_actor:
                raise ValueError(f"--gpus-per-actor {gpus_per_actor} but the cluster has "
                                 f"{gpus:g} GPU(s); use 0 to encode on CPUs")
            actors = actors or max(1, int(gpus // gpus_per_actor))
            cpus_per_actor = 1
        else:
            actors = actors or max(1, cpus - 1)
            cpus_per_actor = 1
        if actors < 1:
            raise ValueError(f"--actors must be at least 1, got {actors}")
        if gpus_per_actor == 0 and actors * cpus_per_actor >= cpus:
            raise ValueError(f"--actors {actors} would take all {cpus} CPU(s) of the cluster and "
                             f"leave none to read files (Ray Data then waits forever); use at "
                             f"most {max(1, cpus - 1)}")
        total = len(candidates)
        stats = ""
        skipped = [(entry.path, entry.reason) for entry in skipped_on_sight] + linked
        done = 0
        if progress is not None:
            progress(0, total)
        if total:
            dataset = ray.data.read_binary_files([str(path) for _, path, _ in candidates],
                                                 include_paths=True)
            prepared = dataset.map_batches(
                _prepare_batch, batch_size=batch_size, num_cpus=1,
                fn_kwargs={"name": encoder, "root": str(root), "max_pixels": max_pixels,
                           "options": {**options, "device": "cpu"} if encoder == "clip"
                           else options})
            encoded = prepared.map_batches(
                _EncodeBatch, batch_size=batch_size,
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None,
                fn_constructor_kwargs={"name": encoder, "options": options})
            for batch in encoded.iter_batches(batch_format="numpy", batch_size=4096):
                failed = np.flatnonzero(batch["failure"] != "")
                if failed.size:
                    _raise_failure(batch["failure"][failed[0]])
                problem = batch["problem"]
                good = np.flatnonzero(problem == "")
                writer.write(batch["path"][good].tolist(), batch["embedding"][good])
                skipped += [(p, r) for p, r in zip(batch["path"][problem != ""],
                                                   problem[problem != ""])]
                done += len(problem)
                if progress is not None:
                    progress(done, total)
            stats = encoded.stats()
    finally:
        if started_here:
            ray.shutdown()
    skipped.sort()
    meta = {"engine": "ray", "encoder": probe.label, "cache_key": probe.cache_key,
            "model": getattr(probe, "model", probe.name),
            "skipped": [{"path": p, "reason": r} for p, r in skipped]}
    writer.close(meta)
    return {**meta, "n": writer.n, "dim": writer.dim, "ray_data_stats": stats}

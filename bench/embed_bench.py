"""Encoding speed: the pixels encoder, CLIP ViT-B-32 (random weights) against its own
model-only forward rate, and a cached re-run through `EmbeddingCache`.

Images are made in a temporary data root: the built-in digits demo (32x32 PNGs, via
``hdl_core.data.make_demo``) and "photos" (224x224 JPEGs of smooth random colour fields,
so decoding costs what a real photo of that size costs).

* pixels: images/s over the photos.
* CLIP: ``make_encoder("clip", model="ViT-B-32", pretrained=None, device="cpu",
  batch_size=B)`` over the images, vs the model alone on tensors preprocessed beforehand,
  same batch size, same run. Target: the pipeline reaches >= 90 % of the model-only rate.
* cache: ``EmbeddingCache.encode`` over 2k photos, first run and re-run (all hits). For
  CLIP the cache is filled with random unit vectors under the encoder's real cache key
  (encoding 2k images on 2 CPU cores would take minutes and measure nothing new); the
  re-run never calls the model either way.

    .venv/bin/python bench/embed_bench.py [--quick]   (--quick writes bench/results/embed_bench_quick.json)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import machine_info, print_table, verdict, write_json

PIPELINE_TARGET = 0.90


def make_photos(folder: Path, count: int, size: int = 224, seed: int = 0) -> list[Path]:
    """`count` distinct JPEGs: smooth random colour fields plus grain."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.int16)
        grain = rng.integers(-12, 13, (size, size, 3), dtype=np.int16)
        image = Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))
        path = folder / f"photo_{i:05d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def rate(count: int, seconds: float) -> float:
    return count / seconds


def bench_pixels(paths: list[Path], repeats: int) -> dict:
    from hdl_core.embed import make_encoder

    encoder = make_encoder("pixels")
    encoder.encode(paths[:64])                                  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode(paths)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {"images": len(paths), "seconds": seconds, "images_per_s": rate(len(paths), seconds),
            "size": encoder.size, "num_workers": encoder.num_workers}


def model_only(encoder, tensors, batch_size: int) -> float:
    """Seconds for the model alone over ready tensors (same steps as the encoder's loop)."""
    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(tensors), batch_size):
            features = encoder._model.encode_image(tensors[i:i + batch_size]).float()
            torch.nn.functional.normalize(features, dim=-1).cpu().numpy()
    return time.perf_counter() - start


def bench_clip(configs: list[dict]) -> tuple[list[dict], dict]:
    """Each config: source name, paths, batch size, DataLoader workers (None = default), pairs.

    Pipeline and model-only runs alternate (pipeline, model, pipeline, model, ...) over the
    same images, so that load from other jobs hits both alike; the share is the median of
    the per-pair ratios. A one-batch warm-up of both comes first.
    """
    import torch

    from hdl_core.data import open_image as _open_rgb
    from hdl_core.embed import make_encoder

    start = time.perf_counter()
    base = make_encoder("clip", model="ViT-B-32", pretrained=None, device="cpu").load()
    load_s = time.perf_counter() - start
    info = {"model_load_s": load_s, "torch_threads": torch.get_num_threads(),
            "num_workers_default": base.num_workers}
    rows = []
    for config in configs:
        source, paths, batch_size = config["source"], config["paths"], config["batch_size"]
        options = {} if config["workers"] is None else {"num_workers": config["workers"]}
        encoder = make_encoder("clip", model="ViT-B-32", pretrained=None, device="cpu",
                               batch_size=batch_size, **options)
        tensors = torch.stack([base._preprocess(_open_rgb(p)) for p in paths])
        encoder.encode(paths[:batch_size])                      # warm-up: one batch
        model_only(encoder, tensors[:batch_size], batch_size)
        pipe_runs, model_runs = [], []
        for _ in range(config["pairs"]):
            start = time.perf_counter()
            encoder.encode(paths)
            pipe_runs.append(time.perf_counter() - start)
            model_runs.append(model_only(encoder, tensors, batch_size))
        n = len(paths)
        row = {"source": source, "images": n, "batch_size": batch_size,
               "num_workers": encoder.num_workers, "pairs": config["pairs"],
               "pipeline_runs_s": pipe_runs, "model_only_runs_s": model_runs,
               "pipeline_images_per_s": n * len(pipe_runs) / sum(pipe_runs),
               "model_only_images_per_s": n * len(model_runs) / sum(model_runs),
               "pipeline_share": float(np.median([m / p for p, m in zip(pipe_runs, model_runs)])),
               "diagnostic": config["workers"] is not None}
        rows.append(row)
        print(f"  {source} batch {batch_size} workers {encoder.num_workers}: pipeline "
              f"{row['pipeline_images_per_s']:.2f} img/s, model only "
              f"{row['model_only_images_per_s']:.2f} img/s "
              f"({100 * row['pipeline_share']:.0f} %)", flush=True)
    return rows, info


def bench_cache(folder: Path, data_root: Path, cache_dir: Path) -> list[dict]:
    from hdl_core.embed import EmbeddingCache, make_encoder
    from hdl_core.data import load_folder

    start = time.perf_counter()
    dataset = load_folder(folder, root=data_root)
    scan_s = time.perf_counter() - start
    paths = dataset.abs_paths()
    hashes = [item.content_hash for item in dataset.items]
    cache = EmbeddingCache(cache_dir)
    rows = []

    pixels = make_encoder("pixels")
    _, first = cache.encode(pixels, paths, hashes)
    _, again = cache.encode(pixels, paths, hashes)
    rows.append({"encoder": "pixels", "images": len(paths), "scan_and_hash_s": scan_s,
                 "first_run_s": first["seconds"], "first_run_misses": first["misses"],
                 "rerun_s": again["seconds"], "rerun_hits": again["hits"],
                 "first_run_note": "encoded for real"})

    clip = make_encoder("clip", model="ViT-B-32", pretrained=None, device="cpu")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(paths), clip.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cache.add(clip.cache_key, hashes, vectors)
    X, again = cache.encode(clip, paths, hashes)
    assert again["misses"] == 0 and np.allclose(X, vectors)
    rows.append({"encoder": "clip ViT-B-32", "images": len(paths), "scan_and_hash_s": scan_s,
                 "first_run_s": None, "first_run_misses": len(paths),
                 "rerun_s": again["seconds"], "rerun_hits": again["hits"],
                 "first_run_note": "cache filled with random unit vectors under the real key"})
    return rows


def cache_only(n: int) -> int:
    with tempfile.TemporaryDirectory(prefix="hdl-embed-bench-") as tmp:
        root = Path(tmp)
        os.environ["HDL_DATA_ROOT"] = str(root)
        start = time.perf_counter()
        make_photos(root / "photos", n)
        print(f"made {n} photos ({time.perf_counter() - start:.1f} s)", flush=True)
        rows = bench_cache(root / "photos", root, root / "cache")
    print_table(["encoder", "images", "scan + hash (s)", "first run (s)", "re-run, all cached (s)"],
                [[r["encoder"], r["images"], r["scan_and_hash_s"],
                  "–" if r["first_run_s"] is None else r["first_run_s"], r["rerun_s"]]
                 for r in rows],
                title="EmbeddingCache re-run (CLIP first run not timed: cache pre-filled)")
    write_json(f"embed_bench_cache_{n}", {"benchmark": "embed_bench --cache-only", "images": n,
                                          "machine": machine_info("PIL"), "cache": rows})
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 x 32 CLIP images per setting at batch 32 only, 500 images in the cache test")
    parser.add_argument("--cache-only", type=int, metavar="N",
                        help="only the cached re-run, over N photos (writes embed_bench_cache_N.json)")
    args = parser.parse_args(argv)
    if args.cache_only:
        return cache_only(args.cache_only)
    clip_images = 64 if args.quick else 256
    batch_sizes = [32] if args.quick else [32, 64]
    cache_images = 500 if args.quick else 2000
    pairs = 1 if args.quick else 3

    with tempfile.TemporaryDirectory(prefix="hdl-embed-bench-") as tmp:
        root = Path(tmp)
        os.environ["HDL_DATA_ROOT"] = str(root)
        from hdl_core.data import make_demo

        start = time.perf_counter()
        demo = make_demo(root)
        demo_s = time.perf_counter() - start
        demo_paths = sorted(demo.rglob("*.png"))
        photos = make_photos(root / "photos", cache_images)
        print(f"made {len(demo_paths)} demo PNGs ({demo_s:.1f} s) and {len(photos)} photos",
              flush=True)

        pixels = bench_pixels(photos, repeats=3)
        pixels_demo = bench_pixels(demo_paths, repeats=3)
        print("CLIP ViT-B-32, random weights, CPU:", flush=True)
        demo_name, photo_name = "demo PNG 32×32", "photo JPEG 224×224"
        half = clip_images // 2
        configs = [{"source": demo_name, "paths": demo_paths[:half], "batch_size": b,
                    "workers": None, "pairs": pairs} for b in batch_sizes]
        configs.append({"source": photo_name, "paths": photos[:half],
                        "batch_size": batch_sizes[-1], "workers": None, "pairs": pairs})
        configs.append({"source": demo_name, "paths": demo_paths[:half],
                        "batch_size": batch_sizes[-1], "workers": 0, "pairs": pairs})
        clip_rows, clip_info = bench_clip(configs)
        cache_rows = bench_cache(root / "photos", root, root / "cache")

    worst = min(r["pipeline_share"] for r in clip_rows if not r["diagnostic"])
    met = worst >= PIPELINE_TARGET
    print_table(["encoder", "images", "images / s"],
                [["pixels 16×16, photos 224×224 JPEG", pixels["images"], pixels["images_per_s"]],
                 ["pixels 16×16, demo 32×32 PNG", pixels_demo["images"],
                  pixels_demo["images_per_s"]]],
                title="pixels encoder (median of 3)")
    print_table(["images", "count × pairs", "batch", "DataLoader workers", "pipeline (img/s)",
                 "model only (img/s)", "pipeline / model"],
                [[r["source"], f"{r['images']} × {r['pairs']}", r["batch_size"],
                  f"{r['num_workers']}{' (diagnostic)' if r['diagnostic'] else ' (default)'}",
                  r["pipeline_images_per_s"], r["model_only_images_per_s"],
                  f"{100 * r['pipeline_share']:.0f} %"] for r in clip_rows],
                title=f"CLIP ViT-B-32 (random weights), CPU, torch threads="
                      f"{clip_info['torch_threads']} — target ≥ {100 * PIPELINE_TARGET:.0f} % "
                      f"({verdict(met)})")
    print_table(["encoder", "images", "scan + hash (s)", "first run (s)", "re-run, all cached (s)"],
                [[r["encoder"], r["images"], r["scan_and_hash_s"],
                  "–" if r["first_run_s"] is None else r["first_run_s"], r["rerun_s"]]
                 for r in cache_rows],
                title="EmbeddingCache re-run (CLIP first run not timed: cache pre-filled)")

    write_json("embed_bench" + ("_quick" if args.quick else ""), {
        "benchmark": "embed_bench", "quick": args.quick,
        "machine": machine_info("open_clip", "PIL"),
        "setup": {"clip": "ViT-B-32, pretrained=None (random weights), device=cpu, fp32",
                  "pipeline": "ClipEncoder.encode(paths): DataLoader (default workers) + model",
                  "model_only": "encode_image + normalise on tensors preprocessed beforehand, "
                                "same batch size",
                  "timing": "pipeline and model-only runs alternate over the same images "
                            "(pairs), after a one-batch warm-up; share = median of per-pair "
                            "ratios; rates = images / total seconds",
                  "photos": "224x224 JPEG, smooth random colour fields with grain",
                  "demo": "hdl_core.data.make_demo (digits as 32x32 PNG)",
                  "demo_generation_s": demo_s},
        "pixels": {"photos": pixels, "demo": pixels_demo},
        "clip": clip_rows, "clip_info": clip_info, "cache": cache_rows,
        "targets": {"pipeline_share": {"target": f">= {PIPELINE_TARGET}", "measured_worst": worst,
                                       "met": met}},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU timings: CLIP ViT-B-32 embedding through Ray Data on one GPU, and the exact kNN graph
of 1M points on the GPU. Needs a CUDA GPU, torch, open_clip and ray[data]; faiss-gpu is used
for the graph when installed (else the torch path of `exact_knn`). Never needed for tests.

* photos: JPEGs of smooth random colour fields plus grain, 384x288 (so decoding and the
  resize cost what a photo of that size costs), made in a temporary data root.
* CLIP (random weights, seed 0; the weights change nothing here but the numbers):
  - model only: `ClipEncoder.encode_prepared` over ready uint8 pixels in host memory, what
    each Ray actor does per batch: the ceiling for any pipeline;
  - Ray: `hdl_core.distributed.embed_on_ray(..., encoder="clip", gpus_per_actor=1)` on a
    local cluster of this machine (read, decode, resize and crop on CPU tasks, the model in
    one GPU actor), timed end to end without the cluster's start, and its steady rate between
    the first and the last written batch;
  - local: `ClipEncoder(device="cuda").encode` (the DataLoader path `embed --engine local`
    takes, caching aside) over the same files;
  - the two engines' vectors compared (max |difference|).
* graph: `build_knn_graph(X, k=20, method="exact", device="cuda")` over 1M unit vectors in
  512-D (2,000 Gaussian clusters), and its recall@20 against float64 exact search on 2,000
  sampled rows.

    python bench/gpu_bench.py                  (writes bench/results/gpu_bench.json)
    python bench/gpu_bench.py --ray-shares 1,0.5,0.25   (Ray runs only, 1/2/4 actors per GPU)
    python bench/gpu_bench.py --smoke          (tiny sizes on the CPU: checks the script runs)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, write_json  # noqa: E402


def _make_photo_chunk(args) -> int:
    from PIL import Image

    folder, start, stop, seed = args
    rng = np.random.default_rng(seed + start)
    for i in range(start, stop):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((384, 288), Image.Resampling.BICUBIC), np.int16)
        grain = rng.integers(-12, 13, (288, 384, 3), dtype=np.int16)
        Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(
            Path(folder) / f"photo_{i:06d}.jpg", quality=90)
    return stop - start


def make_photos(folder: Path, count: int, workers: int) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    chunk = max(1, count // (workers * 4))
    jobs = [(str(folder), s, min(s + chunk, count), 0) for s in range(0, count, chunk)]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        assert sum(pool.map(_make_photo_chunk, jobs)) == count
    return time.perf_counter() - start


def bench_model_only(device: str, batch_size: int, batches: int) -> dict:
    import torch

    from hdl_core.embed import make_encoder

    encoder = make_encoder("clip", model="ViT-B-32", pretrained=None, device=device,
                           batch_size=batch_size)
    start = time.perf_counter()
    encoder.load()
    load_s = time.perf_counter() - start
    size = encoder.image_size
    ready = np.random.default_rng(0).integers(0, 256, (batch_size * batches, size, size, 3),
                                              dtype=np.uint8)
    encoder.encode_prepared(ready[:batch_size])                        # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    encoder.encode_prepared(ready)
    seconds = time.perf_counter() - start
    return {"images": len(ready), "batch_size": batch_size, "seconds": seconds,
            "images_per_s": len(ready) / seconds, "model_load_s": load_s,
            "note": "uint8 pixels in host memory (prepare_images(compact=True)), copied, "
                    "scaled and normalised on the GPU per batch, as the Ray actor gets them"}


def bench_ray(photos: Path, out: Path, gpus: float, batch_size: int, cpus: int | None) -> dict:
    import ray

    from hdl_core.distributed import embed_on_ray

    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    init_s = time.perf_counter() - start
    resources = ray.cluster_resources()
    marks: list[tuple[float, int]] = []
    start = time.perf_counter()
    try:
        meta = embed_on_ray(photos, out, encoder="clip",
                            options={"model": "ViT-B-32", "pretrained": None,
                                     "batch_size": batch_size},
                            gpus_per_actor=gpus, batch_size=batch_size,
                            progress=lambda done, total: marks.append((time.perf_counter(), done)))
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - start
    written = [(t, d) for t, d in marks if d > 0]
    steady = None
    if len(written) >= 2 and written[-1][1] > written[0][1]:
        steady = (written[-1][1] - written[0][1]) / (written[-1][0] - written[0][0])
    return {"images": meta["n"], "seconds": seconds, "images_per_s": meta["n"] / seconds,
            "steady_images_per_s": steady, "first_batch_s": written[0][0] - start if written
            else None, "ray_init_s": init_s, "gpus_per_actor": gpus, "batch_size": batch_size,
            "cluster_cpus": resources.get("CPU"), "cluster_gpus": resources.get("GPU", 0),
            "skipped": len(meta["skipped"]), "ray_data_stats": meta["ray_data_stats"]}


def bench_local(paths: list[Path], device: str, batch_size: int) -> tuple[dict, np.ndarray]:
    from hdl_core.embed import make_encoder

    encoder = make_encoder("clip", model="ViT-B-32", pretrained=None, device=device,
                           batch_size=batch_size)
    encoder.load()
    encoder.encode(paths[:batch_size])                                  # warm-up
    start = time.perf_counter()
    X = encoder.encode(paths)
    seconds = time.perf_counter() - start
    return ({"images": len(paths), "seconds": seconds, "images_per_s": len(paths) / seconds,
             "num_workers": encoder.num_workers, "batch_size": batch_size}, X)


def clustered_unit_vectors(n: int, d: int, clusters: int, device: str) -> np.ndarray:
    import torch

    g = torch.Generator(device=device).manual_seed(0)
    centres = torch.randn(clusters, d, generator=g, device=device)
    label = torch.randint(0, clusters, (n,), generator=g, device=device)
    X = centres[label] + 0.6 * torch.randn(n, d, generator=g, device=device)
    X = torch.nn.functional.normalize(X, dim=1)
    return X.float().cpu().numpy()


def bench_graph(n: int, d: int, k: int, device: str, sample: int) -> dict:
    import torch

    from hdl_core import build_knn_graph
    from hdl_core.graph import _faiss

    start = time.perf_counter()
    X = clustered_unit_vectors(n, d, max(2, n // 500), device)
    make_s = time.perf_counter() - start
    faiss = _faiss()
    backend = ("faiss-gpu" if faiss is not None and getattr(faiss, "get_num_gpus", lambda: 0)()
               else "torch" if device.startswith("cuda") else "cpu")
    start = time.perf_counter()
    graph = build_knn_graph(X, k, method="exact", device=device)
    seconds = time.perf_counter() - start
    rows = np.random.default_rng(1).choice(n, size=min(sample, n), replace=False)
    ref = torch.from_numpy(X).to(device, torch.float64)
    hits = 0
    for part in np.array_split(rows, max(1, len(rows) // 250)):
        sim = ref[torch.from_numpy(part).to(device)] @ ref.T
        sim[torch.arange(len(part), device=device), torch.from_numpy(part).to(device)] = -2.0
        truth = torch.topk(sim, k, dim=1).indices.cpu().numpy()
        hits += sum(len(set(a) & set(b)) for a, b in zip(truth, graph.indices[part]))
    return {"n": n, "d": d, "k": k, "backend": backend, "seconds": seconds,
            "points_per_s": n / seconds, "make_data_s": make_s,
            "recall_at_k": hits / (len(rows) * k), "recall_sample": len(rows)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes on the CPU (checks the script; writes nothing)")
    parser.add_argument("--photos", type=int, default=20000)
    parser.add_argument("--graph-n", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ray-shares", metavar="G,G,...",
                        help="only the Ray runs, once per GPU share per actor (e.g. 1,0.5,0.25: "
                             "1, 2 and 4 actors on one GPU); writes gpu_bench_ray.json")
    args = parser.parse_args(argv)
    import torch

    device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA GPU: run with --smoke to check the script on a CPU", file=sys.stderr)
        return 2
    photos_n = 48 if args.smoke else args.photos
    batch = 16 if args.smoke else args.batch_size
    cpus = os.cpu_count() or 2
    result = {"benchmark": "gpu_bench", "machine": machine_info("ray", "open_clip", "faiss")}
    result["machine"]["caveat"] = ("one run on a GPU machine; CPU-bound rates (decoding) vary "
                                   "between runs")
    if not args.smoke:
        result["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory(prefix="hdl-gpu-bench-") as tmp:
        root = Path(tmp)
        os.environ["HDL_DATA_ROOT"] = str(root)
        made = make_photos(root / "photos", photos_n, min(cpus, 16))
        print(f"made {photos_n} photos in {made:.1f} s", flush=True)
        if args.ray_shares:
            runs = []
            for share in [float(g) for g in args.ray_shares.split(",")]:
                run = bench_ray(root / "photos", root / f"emb-{share}", share, batch, None)
                print(run.pop("ray_data_stats"), flush=True)
                print(f"ray, {share} GPU per actor:", run, flush=True)
                runs.append(run)
            if not args.smoke:
                write_json("gpu_bench_ray", {"benchmark": "gpu_bench --ray-shares",
                                             "machine": result["machine"],
                                             "gpu": result.get("gpu"), "runs": runs})
            return 0
        result["model_only"] = bench_model_only(device, batch, 2 if args.smoke else 40)
        print("model only:", result["model_only"], flush=True)
        result["ray"] = bench_ray(root / "photos", root / "emb", 0 if args.smoke else 1,
                                  batch, 2 if args.smoke else None)
        print(result["ray"].pop("ray_data_stats"), flush=True)
        print("ray:", result["ray"], flush=True)
        paths = sorted((root / "photos").glob("*.jpg"))
        result["local"], X_local = bench_local(paths, device, batch)
        print("local:", result["local"], flush=True)
        from hdl_core.embed import load_embeddings_dir
        names, X_ray, _ = load_embeddings_dir(root / "emb")
        order = {p.name: i for i, p in enumerate(paths)}
        X_ray = X_ray[[order[name] for name in names.to_pylist()]] if len(names) else X_ray
        result["ray_vs_local_max_abs_diff"] = float(np.abs(X_ray - X_local).max())
        print("ray vs local:", result["ray_vs_local_max_abs_diff"], flush=True)
    result["graph"] = bench_graph(2000 if args.smoke else args.graph_n, 512, 20, device,
                                  200 if args.smoke else 2000)
    print("graph:", result["graph"], flush=True)
    if not args.smoke:
        write_json("gpu_bench", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

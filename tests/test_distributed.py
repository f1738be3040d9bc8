"""hdl_core.distributed on a local Ray cluster (2 CPUs): embedding and the IVF graph.

Ray takes seconds to start, so these tests share one cluster per module and are marked
slow; they skip where Ray is not installed (the ``scale`` extra; `make test` installs it).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("faiss")

from hdl_core import build_knn_graph, cli  # noqa: E402
from tests.test_pipeline import write_colour_folder  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("roots")]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs, shut down after the module's tests."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def folder_with_bad_files(root):
    folder = root / "photos"
    truth = write_colour_folder(folder, seeds=3, unlabeled=4)
    (folder / "unlabeled" / "noise.png").write_bytes(b"\x89PNG not really")
    (folder / "red" / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    outside = root / "outside.png"                    # a second name for a file elsewhere
    outside.write_bytes((folder / "red" / "red0.png").read_bytes())
    (folder / "linked.png").hardlink_to(outside)
    return folder, truth


def test_ray_and_local_embeddings_are_equal_and_skip_the_same_files(cluster, roots, tmp_path,
                                                                     capsys):
    from hdl_core.embed import load_embeddings_dir
    folder, truth = folder_with_bad_files(roots[0])
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert cli.main(["embed", str(folder), "--out", str(local), "--encoder", "pixels",
                     "--workspace", str(tmp_path / "ws"), "--quiet"]) == 0
    assert cli.main(["embed", str(folder), "--out", str(on_ray), "--encoder", "pixels",
                     "--engine", "ray", "--actors", "1", "--batch-size", "5", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "skipped 5 file(s):" in err and "  red/empty.jpg: empty file (0 bytes)" in err
    paths_a, X_a, meta_a = load_embeddings_dir(local)
    paths_b, X_b, meta_b = load_embeddings_dir(on_ray)
    assert paths_a.to_pylist() == paths_b.to_pylist() == sorted(truth)
    np.testing.assert_allclose(X_a, X_b, atol=1e-5)
    assert meta_a["skipped"] == meta_b["skipped"]
    assert len(meta_b["skipped"]) == 5
    assert any(entry["path"] == "linked.png" and entry["reason"].startswith("hard link")
               for entry in meta_b["skipped"])
    assert meta_a["cache_key"] == meta_b["cache_key"] and meta_b["engine"] == "ray"
    assert len(list(on_ray.glob("part-*.parquet"))) >= 1
    # and labeling from the Ray folder gives the local folder's labels
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert cli.main(["label", "--embeddings", str(local), "--out", str(out_a), "--quiet"]) == 0
    assert cli.main(["label", "--embeddings", str(on_ray), "--out", str(out_b), "--quiet"]) == 0
    assert out_a.read_bytes() == out_b.read_bytes()


def test_clip_on_ray_in_two_stages_equals_the_local_engine(cluster, roots, tmp_path):
    """CLIP through Ray: a prepare stage decodes, resizes and crops to uint8 pixels, the
    actors normalise and run the model. The vectors are the local engine's."""
    from hdl_core.embed import load_embeddings_dir, make_encoder
    from hdl_core.distributed import embed_on_ray
    folder, truth = folder_with_bad_files(roots[0])
    options = {"model": "ViT-S-32", "pretrained": None, "image_size": 64, "batch_size": 4}
    meta = embed_on_ray(folder, tmp_path / "ray", encoder="clip", options=options,
                        actors=1, batch_size=4)
    assert "MapBatches(_prepare_batch)" in meta["ray_data_stats"]
    paths, X, written = load_embeddings_dir(tmp_path / "ray")
    assert paths.to_pylist() == sorted(truth) and len(written["skipped"]) == 5
    local = make_encoder("clip", device="cpu", num_workers=0, **options).encode(
        [folder / path for path in paths.to_pylist()])
    np.testing.assert_allclose(X, local, atol=1e-5)


def test_an_encoder_error_in_an_actor_is_told_as_the_local_engine_tells_it(cluster, roots,
                                                                         tmp_path, capsys):
    # the weights load in the actors: a checkpoint that cannot be read fails there, and
    # the command says so in one line (exit 2), as `--engine local` does, with no folder
    folder, _ = folder_with_bad_files(roots[0])
    broken = tmp_path / "weights.pt"
    broken.write_bytes(b"<html>404 Not Found</html>")
    lines = {}
    for engine in ("local", "ray"):
        status = cli.main(["embed", str(folder), "--out", str(tmp_path / engine), "--engine",
                           engine, "--model", "ViT-S-32", "--pretrained", str(broken),
                           "--workspace", str(tmp_path / "ws"), "--quiet"])
        err = capsys.readouterr().err
        assert status == cli.EXIT_BAD_INPUT, err
        lines[engine] = err.strip().splitlines()[-1]
        assert not (tmp_path / engine / "_meta.json").exists()
    assert lines["ray"] == lines["local"]
    assert lines["ray"].startswith("error: checkpoint weights.pt cannot be read as model weights")


def test_actors_that_would_take_every_cpu_are_refused_before_anything_hangs(cluster, roots,
                                                                            tmp_path, capsys):
    folder, _ = folder_with_bad_files(roots[0])
    status = cli.main(["embed", str(folder), "--out", str(tmp_path / "e"), "--encoder",
                       "pixels", "--engine", "ray", "--actors", "2", "--quiet"])
    err = capsys.readouterr().err
    assert status == cli.EXIT_BAD_INPUT
    assert "would take all 2 CPU(s)" in err and "use at most 1" in err


def test_ivf_graph_on_ray_recall_against_exact(cluster):
    from hdl_core.distributed import ivf_graph_on_ray
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 24)) * 3
    X = np.repeat(centres, 100, axis=0) + rng.normal(size=(4000, 24))
    graph = ivf_graph_on_ray(X, 10)
    exact = build_knn_graph(X, 10, method="exact")
    assert graph.indices.shape == (4000, 10)
    assert not (graph.indices == np.arange(4000)[:, None]).any()
    assert (np.diff(graph.distances, axis=1) >= -1e-6).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(graph.indices, exact.indices)])
    assert recall >= 0.95


def test_graph_command_on_ray_writes_a_graph_folder(cluster, roots, tmp_path):
    folder, truth = folder_with_bad_files(roots[0])
    emb = tmp_path / "emb"
    assert cli.main(["embed", str(folder), "--out", str(emb), "--encoder", "pixels",
                     "--workspace", str(tmp_path / "ws"), "--quiet"]) == 0
    assert cli.main(["graph", str(emb), "--k", "4", "--method", "ray", "--out",
                     str(tmp_path / "g"), "--quiet"]) == 0
    meta = json.loads((tmp_path / "g" / "_meta.json").read_text())
    assert meta["method"] == "ray" and meta["n"] == len(truth) and meta["k"] == 4

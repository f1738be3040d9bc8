"""The Ray embedding pipeline's shape on a cluster with a GPU: decoding in CPU tasks, the
encoder in the GPU actors, never fused into one stage.

A local cluster that declares one (logical) GPU: Ray schedules by the declared resources,
so the plan is the one a real GPU machine gets; the pixels encoder needs no CUDA.
"""
from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from tests.test_pipeline import write_colour_folder  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("roots")]


@pytest.fixture(scope="module")
def gpu_cluster():
    ray.init(num_cpus=3, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_with_a_gpu_decoding_stays_in_cpu_tasks_and_vectors_match_local(gpu_cluster, roots,
                                                                         tmp_path):
    from hdl_core.distributed import embed_on_ray
    from hdl_core.embed import load_embeddings_dir, make_encoder
    folder = roots[0] / "photos"
    truth = write_colour_folder(folder, seeds=3, unlabeled=4)
    meta = embed_on_ray(folder, tmp_path / "emb", encoder="pixels", gpus_per_actor=1,
                        batch_size=4)
    stats = meta["ray_data_stats"]
    # two operators, the second an actor pool holding the GPU: "A->B" would mean fused
    assert "MapBatches(_prepare_batch)->MapBatches(_EncodeBatch)" not in stats
    assert "MapBatches(_prepare_batch)" in stats and "MapBatches(_EncodeBatch)" in stats
    paths, X, _ = load_embeddings_dir(tmp_path / "emb")
    assert paths.to_pylist() == sorted(truth)
    local = make_encoder("pixels").encode([folder / p for p in paths.to_pylist()])
    np.testing.assert_allclose(X, local, atol=1e-6)

import math
import sys

import numpy as np
import pytest

from hdl_core import KnnGraph, build_knn_graph, to_umap_knn
from hdl_core.graph import exact_knn
from hdl_core.rows import normalize_rows


def brute_force(X, k):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = Xn @ Xn.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k], 1 - np.sort(-(-sim), axis=1)


def test_exact_graph_equals_brute_force_sorted_nearest_first_without_self():
    X = np.random.default_rng(0).normal(size=(500, 16))
    g = build_knn_graph(X, 7, method="exact")
    expected, _ = brute_force(X.astype(np.float32), 7)
    np.testing.assert_array_equal(g.indices, expected)
    assert g.indices.shape == (500, 7) and g.distances.dtype == np.float32
    assert (np.diff(g.distances, axis=1) >= 0).all()
    assert not (g.indices == np.arange(500)[:, None]).any()
    Xn = normalize_rows(X)
    np.testing.assert_allclose(g.distances, 1 - np.einsum("id,ikd->ik", Xn, Xn[g.indices]), atol=1e-5)


def test_exact_search_is_blocked_and_gives_the_same_result_in_small_blocks(monkeypatch):
    X = np.random.default_rng(1).normal(size=(300, 8))
    whole = build_knn_graph(X, 5, method="exact")
    monkeypatch.setattr("hdl_core.graph.BLOCK_BYTES", 4 * 300 * 7)   # 7 rows per block
    blocked = build_knn_graph(X, 5, method="exact")
    np.testing.assert_array_equal(whole.indices, blocked.indices)


def test_duplicates_are_neighbours_but_a_point_never_lists_itself():
    X = np.repeat(np.random.default_rng(2).normal(size=(20, 4)), 2, axis=0)
    g = build_knn_graph(X, 1, method="exact")
    assert (g.indices[:, 0] == np.arange(40) ^ 1).all()
    assert np.allclose(g.distances[:, 0], 0, atol=1e-6)


@pytest.mark.slow
def test_approximate_graph_recall_against_exact():
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(20, 32))
    X = centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 32))
    exact = build_knn_graph(X, 10, method="exact")
    approx = build_knn_graph(X, 10, method="approx", random_state=0)
    assert not (approx.indices == np.arange(3000)[:, None]).any()
    assert (np.diff(approx.distances, axis=1) >= -1e-6).all()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.indices, exact.indices)])
    assert recall >= 0.95


def test_umap_layout_puts_self_first_with_k_plus_one_columns():
    g = build_knn_graph(np.random.default_rng(4).normal(size=(50, 3)), 4)
    idx, dist = to_umap_knn(g)
    assert idx.shape == (50, 5) and (idx[:, 0] == np.arange(50)).all() and (dist[:, 0] == 0).all()
    np.testing.assert_array_equal(idx[:, 1:], g.indices)


def test_first_k_columns_and_shape_checks():
    g = build_knn_graph(np.random.default_rng(5).normal(size=(30, 3)), 6)
    assert g.first(2).indices.shape == (30, 2)
    with pytest.raises(ValueError, match="k=7"):
        g.first(7)
    with pytest.raises(ValueError, match="same shape"):
        KnnGraph(np.zeros((3, 2), int), np.zeros((3, 1)))


def test_k_must_be_below_n_and_method_known():
    X = np.eye(4) + 0.1
    with pytest.raises(ValueError, match="k=4 must be smaller than the number of points n=4"):
        build_knn_graph(X, 4)
    with pytest.raises(ValueError, match="method"):
        build_knn_graph(X, 2, method="fast")


def test_exact_knn_between_two_sets():
    rng = np.random.default_rng(6)
    Q, R = normalize_rows(rng.normal(size=(20, 5))), normalize_rows(rng.normal(size=(40, 5)))
    idx, dist = exact_knn(Q, R, 3)
    np.testing.assert_array_equal(idx, np.argsort(-(Q @ R.T), axis=1)[:, :3])


# ------------------------------------------------------------------ metrics and ties

def brute_euclidean(queries, reference, k, exclude_self=False):
    """k nearest by squared coordinate differences, equal distances by ascending index."""
    out = []
    for i, q in enumerate(queries):
        d2 = ((reference - q) ** 2).sum(axis=1)
        order = [j for j in np.lexsort((np.arange(len(reference)), d2))
                 if not (exclude_self and j == i)]
        out.append(order[:k])
    return np.array(out)


def test_euclidean_graph_is_exact_with_ties_by_index_also_at_the_kth_place():
    # a grid: every point has many neighbours at equal distance, and for most points and
    # k = 1..8 the k-th place is shared with neighbours the graph must leave out
    grid = np.array([(i, j) for i in range(6) for j in range(6)], float)
    for k in range(1, 9):
        g = build_knn_graph(grid, k, method="exact", metric="euclidean")
        np.testing.assert_array_equal(g.indices, brute_euclidean(grid, grid, k, exclude_self=True))
        assert g.metric == "euclidean"
    np.testing.assert_allclose(g.distances, np.linalg.norm(grid[g.indices] - grid[:, None], axis=2),
                               rtol=1e-6)
    assert (np.diff(g.distances, axis=1) >= 0).all()


def test_euclidean_rows_are_not_normalised():
    # by cosine 0, 1 and 2 point the same way; in the plane 1 is nearest to 0
    X = np.array([[1.0, 0], [2, 0], [10, 0], [0, 1.5]])
    assert build_knn_graph(X, 1, metric="euclidean").indices.ravel().tolist() == [1, 0, 1, 0]
    np.testing.assert_allclose(build_knn_graph(X, 1, metric="euclidean").distances.ravel(),
                               [1, 1, 8, np.sqrt(1 + 2.25)], rtol=1e-6)


@pytest.mark.parametrize("d", [3, 40])        # coordinate differences / |a|²+|b|²-2ab
def test_euclidean_graph_equals_brute_force_in_low_and_high_dimension(d, monkeypatch):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, d)) * 3 + 50.0
    monkeypatch.setattr("hdl_core.graph.BLOCK_BYTES", 16 * 300 * 11)    # 11 rows per block
    g = build_knn_graph(X, 6, method="exact", metric="euclidean")
    np.testing.assert_array_equal(g.indices, brute_euclidean(X, X, 6, exclude_self=True))
    np.testing.assert_allclose(g.distances, np.linalg.norm(X[g.indices] - X[:, None], axis=2),
                               rtol=1e-5)


def test_euclidean_duplicates_are_at_distance_zero_listed_by_index():
    X = np.repeat(np.random.default_rng(8).normal(size=(10, 2)), 4, axis=0)
    g = build_knn_graph(X, 3, method="exact", metric="euclidean")
    expected = [[j for j in range(4 * (i // 4), 4 * (i // 4) + 4) if j != i] for i in range(40)]
    np.testing.assert_array_equal(g.indices, expected)
    assert (g.distances == 0).all()


def test_cosine_tie_at_the_kth_place_keeps_the_lower_index():
    # 60 copies of one direction among 40 other points: a copy's k nearest are k of 59
    # tied copies, and the k-th place is shared with copies the graph must leave out;
    # the lowest-index ones must be listed, whatever the partial sort picks
    rng = np.random.default_rng(0)
    base = rng.normal(size=8)
    X = np.vstack([np.repeat(base[None], 60, axis=0), rng.normal(size=(40, 8))])
    X = X[rng.permutation(100)]                 # copies scattered through the rows
    # each pair's cosine correctly rounded from the exact products (math.fsum): copies get
    # the same value wherever they sit, which a float32 matrix product does not promise
    Xn = normalize_rows(X).astype(np.float64)
    sim = np.array([[math.fsum(Xn[i] * Xn[j]) for j in range(100)] for i in range(100)])
    np.fill_diagonal(sim, -np.inf)
    by_index = np.lexsort((np.broadcast_to(np.arange(100), (100, 100)), -sim), axis=1)
    for k in (1, 2, 3, 5, 8):
        np.testing.assert_array_equal(build_knn_graph(X, k, method="exact").indices,
                                      by_index[:, :k])


def test_torch_search_settles_ties_as_the_numpy_search(monkeypatch):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    X = np.repeat(rng.normal(size=(15, 6)), 5, axis=0)[rng.permutation(75)]
    cpu = build_knn_graph(X, 7, method="exact")
    monkeypatch.setattr("hdl_core.graph._torch_device", lambda device: torch.device("cpu"))
    on_torch = build_knn_graph(X, 7, method="exact")
    np.testing.assert_array_equal(on_torch.indices, cpu.indices)
    np.testing.assert_allclose(on_torch.distances, cpu.distances, atol=1e-6)


def test_approximate_search_asks_pynndescent_for_the_metric(monkeypatch):
    import pynndescent

    asked = {}

    class Recording:
        """Stands in for NNDescent: lists self first, then the next k points."""
        def __init__(self, data, *, n_neighbors, metric, **options):
            asked["metric"] = metric
            n = data.shape[0]
            self.neighbor_graph = ((np.arange(n)[:, None] + np.arange(n_neighbors)) % n,
                                   np.tile(np.arange(n_neighbors, dtype=np.float32), (n, 1)))

    monkeypatch.setattr(pynndescent, "NNDescent", Recording)
    g = build_knn_graph(np.random.default_rng(11).normal(size=(100, 3)), 4, method="approx",
                        metric="euclidean")
    assert asked["metric"] == "euclidean" and g.metric == "euclidean"
    assert g.indices[0].tolist() == [1, 2, 3, 4]


def test_unknown_metric_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="metric must be one of 'cosine', 'euclidean', got 'manhattan'"):
        build_knn_graph(np.eye(4) + 0.1, 2, metric="manhattan")
    with pytest.raises(ValueError, match="metric must be one of"):
        KnnGraph(np.zeros((3, 1), int), np.zeros((3, 1)), "l1")


def test_euclidean_points_may_be_zero_but_not_overflow():
    X = np.array([[0.0, 0], [1, 0], [0, 2]])
    assert build_knn_graph(X, 1, metric="euclidean").indices.ravel().tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="row 1; their squared distances overflow"):
        build_knn_graph(np.array([[0.0, 0], [1e200, 0], [0, 1]]), 1, metric="euclidean")
    with pytest.raises(ValueError, match="NaN or inf values in row 2"):
        build_knn_graph(np.array([[0.0, 0], [1, 0], [np.nan, 1]]), 1, metric="euclidean")


# ------------------------------------------------------------------ backends

def numpy_search(monkeypatch):
    """Force the blocked numpy search (no faiss)."""
    monkeypatch.setattr("hdl_core.graph._faiss", lambda: None)


@pytest.mark.parametrize("copies", [1, 6])
def test_faiss_exact_search_equals_the_blocked_numpy_search_ties_by_index(copies, monkeypatch):
    # faiss gives two copies of a row similarities an ulp apart and lists equal ones in no
    # set order; the graph must still be the numpy search's, ties by ascending index
    pytest.importorskip("faiss")
    rng = np.random.default_rng(20)
    X = np.repeat(rng.normal(size=(400 // copies, 64)), copies, axis=0)
    X = X[rng.permutation(X.shape[0])]
    with_faiss = build_knn_graph(X, 8, method="exact")
    numpy_search(monkeypatch)
    monkeypatch.setattr("hdl_core.graph.BLOCK_BYTES", 4 * X.shape[0] * 13)
    blocked = build_knn_graph(X, 8, method="exact")
    np.testing.assert_array_equal(with_faiss.indices, blocked.indices)
    np.testing.assert_allclose(with_faiss.distances, blocked.distances, atol=1e-6)
    if copies > 1:      # each point's copies first, by index (cosines correctly rounded)
        Xn = normalize_rows(X).astype(np.float64)
        sim = np.array([[math.fsum(a * b) for b in Xn] for a in Xn])
        np.fill_diagonal(sim, -np.inf)
        by_index = np.lexsort((np.broadcast_to(np.arange(X.shape[0]), sim.shape), -sim), axis=1)
        np.testing.assert_array_equal(blocked.indices[:, :copies - 1], by_index[:, :copies - 1])


def test_rounding_that_depends_on_position_does_not_reorder_neighbours(monkeypatch):
    # BLAS and faiss round one dot product differently by where it sits in the product and
    # on different CPUs; the graph must not follow: near keys are settled in float64
    import dataclasses

    import hdl_core.graph as graph_module
    numpy_search(monkeypatch)
    rng = np.random.default_rng(22)
    X = np.repeat(rng.normal(size=(50, 32)), 4, axis=0)[rng.permutation(200)]
    plain = build_knn_graph(X, 5, method="exact")
    cosine = graph_module.METRICS["cosine"]
    noise = np.random.default_rng(23)

    def jittered(Q, RT):       # up to half of the d·2^-24 the float32 product may be off
        key = cosine.nearness(Q, RT)
        return key + (noise.uniform(-1, 1, key.shape) * Q.shape[1] * 2.0 ** -25).astype(key.dtype)

    monkeypatch.setitem(graph_module.METRICS, "cosine",
                        dataclasses.replace(cosine, nearness=jittered))
    monkeypatch.setattr("hdl_core.graph.BLOCK_BYTES", 4 * X.shape[0] * 7)
    settled = build_knn_graph(X, 5, method="exact")
    np.testing.assert_array_equal(settled.indices, plain.indices)
    np.testing.assert_allclose(settled.distances, plain.distances, atol=1e-6)
    Xn = normalize_rows(X)
    for i, row in enumerate(settled.indices):          # a point's 3 copies first, by index
        copies = [j for j in range(200) if j != i and np.array_equal(Xn[j], Xn[i])]
        assert row[:3].tolist() == copies


def test_running_top_k_equals_a_full_sort_by_value_then_column():
    from hdl_core.graph import _smallest_per_row
    rng = np.random.default_rng(21)
    key = rng.integers(0, 5, size=(50, 40)).astype(np.float32)     # ties everywhere
    index, value = np.empty((50, 6), np.int64), np.empty((50, 6))
    _smallest_per_row(key, 6, 3, index, value)                      # row i skips column i+3
    for i in range(50):
        order = [j for j in np.lexsort((np.arange(40), key[i])) if j != i + 3][:6]
        assert index[i].tolist() == order


@pytest.mark.slow
def test_ivf_graph_recall_against_exact():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(22)
    centers = rng.normal(size=(30, 32))
    X = centers[rng.integers(0, 30, 6000)] + 0.3 * rng.normal(size=(6000, 32))
    exact = build_knn_graph(X, 10, method="exact")
    ivf = build_knn_graph(X, 10, method="ivf", random_state=0)
    assert not (ivf.indices == np.arange(6000)[:, None]).any()
    assert (np.diff(ivf.distances, axis=1) >= -1e-6).all()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ivf.indices, exact.indices)])
    assert recall >= 0.95


def test_ivf_without_faiss_says_how_to_get_it(monkeypatch):
    numpy_search(monkeypatch)
    with pytest.raises(ValueError, match="pip install faiss-cpu"):
        build_knn_graph(np.random.default_rng(23).normal(size=(200, 4)), 3, method="ivf")


def test_device_is_checked_and_cuda_without_a_gpu_is_refused():
    X = np.random.default_rng(24).normal(size=(30, 4))
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        build_knn_graph(X, 3, device="gpu")
    import importlib.util
    if importlib.util.find_spec("torch") is not None:
        import torch
        if not torch.cuda.is_available():
            with pytest.raises(ValueError, match="no (CUDA )?GPU"):
                build_knn_graph(X, 3, method="exact", device="cuda")


def test_cpu_searches_never_import_torch():
    # a short-lived CLI process must not pay torch's import to learn there is no GPU
    import subprocess
    import sys
    code = ("import sys, numpy as np\n"
            "from hdl_core import build_knn_graph, choose_k, hdl_label\n"
            "X = np.random.default_rng(0).normal(size=(300, 8))\n"
            "y = np.r_[np.zeros(60, int), np.ones(60, int), -np.ones(180, int)]\n"
            "g = build_knn_graph(X, 5)\n"
            "choose_k(X, y); hdl_label(X, y, k=5, graph=g)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_normalising_in_place_gives_normalize_rows_bit_for_bit_and_the_same_errors():
    from hdl_core.rows import normalize_rows_inplace
    X = np.random.default_rng(25).normal(size=(1000, 37)).astype(np.float32)
    expected = normalize_rows(X)
    got = normalize_rows_inplace(X.copy(), chunk=77)
    assert np.array_equal(expected.view(np.uint32), got.view(np.uint32))
    bad = X.copy()
    bad[500] = 0
    with pytest.raises(ValueError, match="zero-norm row 500"):
        normalize_rows_inplace(bad, chunk=77)
    bad[500, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf values in row 500"):
        normalize_rows_inplace(bad, chunk=77)


@pytest.mark.parametrize("d", [2, 64, 768, 4096])
def test_normalising_twice_is_normalising_once_bit_for_bit(d):
    # embeddings written by `embed` and read back are normalised again: same rows, same graph
    from hdl_core.rows import UnitRows, normalize_rows_inplace
    X = (np.random.default_rng(d).normal(size=(500, d)) * 37).astype(np.float32)
    once = normalize_rows(X)
    assert not np.array_equal(once, X / np.linalg.norm(once, axis=1)[:, None])  # would move
    for again in (normalize_rows(once), normalize_rows_inplace(once.copy(), chunk=64),
                  UnitRows(once)[np.arange(500)]):
        assert np.array_equal(again.view(np.uint32), once.view(np.uint32))
    assert not np.array_equal(normalize_rows(X * 1.001), X)       # other rows are scaled


@pytest.mark.parametrize("stored", ["in memory", "memory-mapped file"])
def test_unit_rows_read_as_normalize_rows_bit_for_bit_without_copying_x(stored, tmp_path,
                                                                         monkeypatch):
    from hdl_core.rows import UnitRows
    monkeypatch.setattr(UnitRows, "CHUNK", 77)
    X = np.random.default_rng(26).normal(size=(1000, 37)).astype(np.float32) * 9
    X.setflags(write=False)                   # as the app's memory-mapped embeddings
    expected = normalize_rows(X).view(np.uint32)
    if stored == "memory-mapped file":        # rows are then read from the file
        np.save(tmp_path / "X.npy", np.vstack([X[:5] + 1, X, X[:5]]))
        X = np.load(tmp_path / "X.npy", mmap_mode="r")[5:1005]
    rows = UnitRows(X)
    assert (rows._file is not None) == (stored == "memory-mapped file")
    picks = np.random.default_rng(1).integers(0, 1000, 300)        # unordered, repeated
    mask = np.zeros(1000, bool)
    mask[picks] = True
    for key in (picks, np.unique(picks), picks.astype(np.uint32), mask, -picks - 1,
                np.arange(0), slice(10, 990), slice(0, 1000, 7), slice(995, 2000), 500):
        assert np.array_equal(rows[key].view(np.uint32), expected[key])
    with pytest.raises(IndexError):                   # checked before any row is gathered
        rows[np.array([3, 1000])]
    buffer = np.full((400, 37), np.nan, np.float32)
    got = rows.read(np.unique(picks), out=buffer)
    assert np.shares_memory(got, buffer)
    assert np.array_equal(got.view(np.uint32), expected[np.unique(picks)])
    assert np.array_equal(rows.read(picks, scaled=False), np.asarray(X)[picks])
    from hdl_core.rows import read_rows
    assert np.array_equal(read_rows(X, picks), np.asarray(X)[picks])
    import pickle
    again = pickle.loads(pickle.dumps(rows))         # no file handle crosses processes
    assert np.array_equal(again[picks].view(np.uint32), expected[picks])
    assert rows.shape == (1000, 37) and rows.dtype == np.float32
    assert np.array_equal(np.asarray(rows).view(np.uint32), expected)
    bad = X.copy()
    bad[500] = 0
    with pytest.raises(ValueError, match="zero-norm row 500"):
        UnitRows(bad)
    bad[500, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or inf values in row 500"):
        UnitRows(bad)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise: Linux only")
def test_drop_behind_gives_back_the_pages_of_a_read_only_map_and_nothing_else(tmp_path):
    from hdl_core.rows import drop_behind

    def mapped_mib() -> float:
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024

    X = np.arange(64 * 2**18, dtype=np.float32).reshape(-1, 256)     # 64 MiB
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    before = mapped_mib()
    assert float(np.asarray(mapped).sum(dtype=np.float64)) == float(X.sum(dtype=np.float64))
    touched = mapped_mib()
    assert touched - before > 48
    drop_behind(mapped, 0, mapped.shape[0])
    assert touched - mapped_mib() > 48
    np.testing.assert_array_equal(mapped[1000:1010], X[1000:1010])    # read again: the same
    in_memory = X.copy()
    drop_behind(in_memory, 0, in_memory.shape[0])                    # not a map: untouched
    np.testing.assert_array_equal(in_memory, X)


def test_labeling_on_unit_rows_equals_labeling_on_the_prepared_copy(tmp_path):
    # the app labels on `UnitRows` (no copy); every bridge and kNN-DV vote must be as on
    # the prepared copy, approximate bridges included
    from hdl_core import balanced, hdl
    from hdl_core.rows import UnitRows
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 16))
    cluster = rng.integers(0, 12, 900)
    X = (centres[cluster] + 0.3 * rng.normal(size=(900, 16))).astype(np.float32)
    y = np.full(900, -1)
    for c in range(0, 12, 2):                 # half the clusters unseeded: bridges
        y[np.flatnonzero(cluster == c)[:2]] = c % 3
    prepared = normalize_rows(X)
    graph = build_knn_graph(prepared, 5, method="exact")
    for bridge in ("exact", "approx"):
        for label in (hdl.label_prepared_rows, balanced.label_prepared_rows):
            want = label(prepared, y, k=5, graph=graph, bridge=bridge)
            got = label(UnitRows(X), y, k=5, graph=graph, bridge=bridge)
            assert want.fallback.sum() >= 5
            for field in ("labels", "step", "round", "fallback", "source", "confidence"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    np.save(tmp_path / "X.npy", X)                # as the app: rows read from the file
    mapped = UnitRows(np.load(tmp_path / "X.npy", mmap_mode="r"))
    for rows in (UnitRows(X), mapped):
        got = balanced.label_prepared_rows(rows, y, k=5, graph=graph, bridge="approx")
        want = balanced.label_prepared_rows(prepared, y, k=5, graph=graph, bridge="approx")
        np.testing.assert_array_equal(got.source, want.source)
        want, got = (hdl.knn_dv_prepared_rows(r, y, k=5) for r in (prepared, rows))
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.confidence, want.confidence)


@pytest.mark.parametrize("variant", ["paper", "balanced", "reach"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_a_float16_graph_is_kept_and_labels_as_its_float32_copy(variant, metric):
    # a graph folder's distances.npy is float16 and memory-mapped: kept as it is (no float32
    # copy, 40 bytes a point at k = 10), and labeling reads it as the float32 copy would
    from hdl_core.variants import label_function

    rng = np.random.default_rng(3)
    # three clusters, the third without a seed: its points are reached by a bridge
    X = np.vstack([rng.normal(0, 0.3, (40, 6)) + 5 * np.eye(6)[c] for c in range(3)]
                  ).astype(np.float32)
    y = np.full(120, -1)
    y[[0, 1]], y[[40, 41]] = 0, 1
    graph = build_knn_graph(X, 5, metric=metric)
    stored = graph.distances.astype(np.float16)
    half = KnnGraph(graph.indices, stored, metric)
    assert half.distances.dtype == np.float16 and half.distances is stored
    full = KnnGraph(graph.indices, stored.astype(np.float32), metric)
    label = label_function(variant)
    a = label(X, y, k=5, graph=half, metric=metric)
    b = label(X, y, k=5, graph=full, metric=metric)
    assert a.fallback.any()                     # a bridge was taken
    for field in ("labels", "step", "round", "confidence", "fallback"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert KnnGraph(graph.indices, graph.distances.astype(np.float64)).distances.dtype \
        == np.float32

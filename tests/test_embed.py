"""Tests for hdl_core.embed: pixels, CLIP (random and checkpoint weights), offline failure,
precomputed files and the embedding cache. No network, no downloaded weights."""
from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hdl_core import embed as encoders
from hdl_core.embed import (
    EmbeddingCache,
    EmbeddingError,
    WeightsUnavailable,
    load_embeddings_dir,
    load_precomputed,
    make_encoder,
    map_embeddings_dir,
    save_embeddings_dir,
    save_precomputed,
)

# Smallest fast open_clip config: ViT-S-32 (22M visual params) at 64 px is 4 patches.
TINY_CLIP = dict(model="ViT-S-32", pretrained=None, image_size=64, device="cpu")


def _write_images(folder: Path, count: int, *, seed: int = 0, size=(40, 32)) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        pixels[: size[1] // 2] //= (i % 4) + 1          # some structure, differing per image
        path = folder / f"img_{i:03d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    return _write_images(tmp_path_factory.mktemp("images"), 7)


@pytest.fixture(scope="module")
def tiny_clip():
    return make_encoder("clip", batch_size=3, num_workers=2, **TINY_CLIP)


def _assert_unit_rows(X: np.ndarray) -> None:
    assert X.dtype == np.float32
    assert np.isfinite(X).all()
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)


# ---- factory ---------------------------------------------------------------------------

def test_unknown_encoder_name_lists_choices():
    with pytest.raises(ValueError, match=r"unknown encoder 'sift'.*clip.*pixels"):
        make_encoder("sift")


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['model'\].*size"):
        make_encoder("pixels", model="ViT-B-32")


def test_importing_hdl_core_does_not_import_torch():
    code = "import sys, hdl_core.embed; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# ---- pixels ----------------------------------------------------------------------------

def test_pixels_shape_normalisation_and_label(images):
    encoder = make_encoder("pixels", size=8)
    X = encoder.encode(images)
    assert X.shape == (len(images), 3 * 8 * 8)
    _assert_unit_rows(X)
    assert encoder.label == "pixels (baseline, not CLIP)"
    assert encoder.name == "pixels" and encoder.device == "cpu"


def test_pixels_is_deterministic_with_and_without_threads(images):
    threaded = make_encoder("pixels", size=8, num_workers=3).encode(images * 20)
    serial = make_encoder("pixels", size=8, num_workers=0).encode(images * 20)
    np.testing.assert_array_equal(threaded, serial)
    np.testing.assert_array_equal(threaded, make_encoder("pixels", size=8).encode(images * 20))


def test_pixels_pca_is_deterministic_and_sized(images):
    encoder = make_encoder("pixels", size=8, pca_components=4)
    first, second = encoder.encode(images), encoder.encode(images)
    assert first.shape == (len(images), 4)
    _assert_unit_rows(first)
    np.testing.assert_array_equal(first, second)
    assert encoder.cache_key != encoder.file_cache_key and "pca=4" in encoder.cache_key


def test_pixels_pca_components_clipped_to_image_count(images):
    X = make_encoder("pixels", size=8, pca_components=50).encode(images[:3])
    assert X.shape == (3, 3)


def test_pixels_constant_image_gets_uniform_direction(tmp_path):
    black = tmp_path / "black.png"
    Image.new("RGB", (10, 10)).save(black)
    X = make_encoder("pixels", size=4).encode([black])
    np.testing.assert_allclose(X[0], 1 / np.sqrt(48), rtol=1e-6)


def test_pixels_progress_reaches_total(images):
    calls = []
    make_encoder("pixels", size=4).encode(images, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(images), len(images))


@pytest.mark.parametrize("options, message", [
    (dict(size=2), "size must be between 4 and 64"),
    (dict(size=16, pca_components=0), "pca_components must be a positive integer"),
    (dict(size=4, pca_components=49), "cannot exceed the 48 pixel values"),
    (dict(size=64, pca_components=10), "needs size <= 32"),
])
def test_pixels_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        make_encoder("pixels", **options)


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(EmbeddingError, match="broken.png"):
        make_encoder("pixels", size=4).encode([bad])


# ---- clip with random weights ----------------------------------------------------------

def test_clip_random_init_shape_norm_and_progress(tiny_clip, images):
    calls = []
    X = tiny_clip.encode(images, progress=lambda done, total: calls.append((done, total)))
    assert X.shape == (len(images), tiny_clip.dim) == (len(images), 384)
    _assert_unit_rows(X)
    assert calls == [(3, 7), (6, 7), (7, 7)]
    assert tiny_clip.device == "cpu"


@pytest.mark.slow
def test_clip_batch_size_and_workers_do_not_change_embeddings(tiny_clip, images):
    reference = tiny_clip.encode(images)                       # batches of 3, two workers
    one_batch = make_encoder("clip", batch_size=16, **TINY_CLIP).encode(images)
    serial = make_encoder("clip", batch_size=2, num_workers=0, **TINY_CLIP).encode(images)
    np.testing.assert_allclose(one_batch, reference, atol=1e-5)
    np.testing.assert_allclose(serial, reference, atol=1e-5)


@pytest.mark.slow
def test_clip_random_weights_are_seeded_and_keyed_apart(tiny_clip, images):
    other_seed = make_encoder("clip", seed=1, **TINY_CLIP)
    assert "random-seed=0" in tiny_clip.cache_key and "random-seed=1" in other_seed.cache_key
    assert not np.allclose(other_seed.encode(images[:2]), tiny_clip.encode(images[:2]), atol=1e-3)
    encoders.clear_model_cache()                               # a fresh model, same seed
    np.testing.assert_array_equal(make_encoder("clip", **TINY_CLIP).encode(images[:2]),
                                  tiny_clip.encode(images[:2]))


@pytest.mark.slow
def test_clip_checkpoint_round_trip_gives_identical_embeddings(tiny_clip, images, tmp_path):
    import torch

    tiny_clip.load()
    checkpoint = tmp_path / "ckpt.pt"
    torch.save(tiny_clip._model.state_dict(), checkpoint)
    from_file = make_encoder("clip", model="ViT-S-32", pretrained=str(checkpoint), image_size=64,
                             device="cpu", batch_size=3, num_workers=0)
    np.testing.assert_array_equal(from_file.encode(images), tiny_clip.encode(images))
    assert "file-sha256=" in from_file.cache_key and "random" not in from_file.cache_key
    assert from_file.label == "CLIP ViT-S-32 (ckpt.pt)"


@pytest.mark.slow
def test_clip_checkpoint_for_another_model_is_explained(tiny_clip, tmp_path):
    import torch

    tiny_clip.load()
    checkpoint = tmp_path / "small.pt"
    torch.save(tiny_clip._model.state_dict(), checkpoint)
    wrong = make_encoder("clip", model="ViT-M-32", pretrained=str(checkpoint), image_size=64, device="cpu")
    with pytest.raises(ValueError, match="does not fit model 'ViT-M-32'"):
        wrong.load()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["cut short", "not weights", "safetensors cut short"])
def test_a_checkpoint_that_cannot_be_read_is_named_and_said_to_be_broken(tiny_clip, tmp_path,
                                                                         damage):
    # a half-finished download is not "another model's weights": the message says the file
    # cannot be read, by its name (not the folder it sits in), and never advises unpickling
    import torch
    from safetensors.torch import save_file

    tiny_clip.load()
    state = tiny_clip._model.state_dict()
    if damage == "safetensors cut short":
        checkpoint = tmp_path / "weights.safetensors"
        save_file({name: t.contiguous() for name, t in state.items()}, checkpoint)
    else:
        checkpoint = tmp_path / "weights.pt"
        torch.save(state, checkpoint)
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[:len(data) // 2] if damage != "not weights"
                           else b"<html>404 Not Found</html>")
    broken = make_encoder("clip", model="ViT-S-32", pretrained=str(checkpoint), image_size=64,
                          device="cpu")
    with pytest.raises(ValueError) as caught:
        broken.load()
    message = str(caught.value)
    assert message.startswith(f"checkpoint {checkpoint.name} cannot be read as model weights")
    assert "download it again" in message and str(tmp_path) not in message
    assert "weights_only" not in message and "does not fit" not in message


def test_clip_prepared_batches_encode_as_the_files_do(tiny_clip, images):
    """The Ray engine's split: prepare_images on a CPU worker, encode_prepared where the
    model is. Both forms of the prepared input give the file path's vectors, bit for bit."""
    from hdl_core.data import open_image

    decoded = [open_image(path) for path in images]
    full = tiny_clip.prepare_images(decoded)
    compact = tiny_clip.prepare_images(decoded, compact=True)
    assert full.shape == (7, 3, 64, 64) and full.dtype == np.float32
    assert compact.shape == (7, 64, 64, 3) and compact.dtype == np.uint8   # a quarter of the bytes
    reference = tiny_clip.encode(images)                  # same batches of 3 throughout
    np.testing.assert_array_equal(tiny_clip.encode_prepared(full), reference)
    np.testing.assert_array_equal(tiny_clip.encode_prepared(compact), reference)
    assert tiny_clip.encode_prepared(compact[:0]).shape == (0, 384)
    other = make_encoder("clip", **TINY_CLIP)
    other._split = False                       # a transform that does not end in Normalize
    assert other.prepare_images(decoded[:2], compact=True).dtype == np.float32
    with pytest.raises(ValueError, match="without compact"):
        other.encode_prepared(compact[:2])


def test_clip_preprocessing_needs_no_weights_and_follows_the_tag():
    """A read task builds the transform without the checkpoint (no download, no memory):
    a tag's own mean and std still apply, and the pixel table is exactly what torchvision's
    ToTensor + Normalize give."""
    import torch

    encoders.clear_model_cache()
    openai = make_encoder("clip", model="ViT-B-32", pretrained="openai", device="cpu")
    resized = make_encoder("clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k",
                               device="cpu", image_size=96)
    stages, table = openai._split_preprocess()
    normalize = openai.preprocess().transforms[-1]
    assert openai._model is None                                   # nothing was loaded
    assert normalize.mean == tuple(openai._tag_config["mean"])
    values = torch.arange(256, dtype=torch.float32).div(255)
    expected = (values[None, :] - torch.tensor(normalize.mean)[:, None]) / torch.tensor(
        normalize.std)[:, None]
    assert torch.equal(table, expected)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (50, 130, 3), dtype=np.uint8))
    assert np.asarray(stages(image)).shape == (224, 224, 3)
    assert resized.prepare_images([image], compact=True).shape == (1, 96, 96, 3)


def test_clip_empty_input_needs_no_model():
    encoder = make_encoder("clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    assert encoder.encode([]).shape == (0, 512)


@pytest.mark.parametrize("options, message", [
    (dict(model="ViT-B-33"), r"unknown CLIP model 'ViT-B-33'; valid choices include ViT-B-32"),
    (dict(model="ViT-B-32", pretrained="laion2b"), r"unknown pretrained tag 'laion2b' for ViT-B-32.*laion2b_s34b_b79k"),
    (dict(model="ViT-B-32", pretrained="/no/such/ckpt.pt"), "checkpoint file not found"),
    (dict(model="ViT-S-32", pretrained="openai"), "has no pretrained tags"),
    (dict(device="tpu"), "device must be"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
])
def test_clip_bad_options_are_explained(options, message):
    with pytest.raises(ValueError, match=message):
        make_encoder("clip", **options)


def test_clip_cuda_request_without_gpu_is_explained(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # also on a GPU machine
    with pytest.raises(ValueError, match="no CUDA GPU"):
        make_encoder("clip", device="cuda", **{k: v for k, v in TINY_CLIP.items() if k != "device"})


# ---- weights: local cache first, fail fast offline ------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Path:
    """An empty HF cache and a hub endpoint that refuses connections."""
    hub = tmp_path / "hf_home" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return hub


@pytest.mark.parametrize("offline_flag", [False, True])
def test_missing_weights_fail_fast_naming_model_cache_and_ways_out(empty_hub, monkeypatch, offline_flag):
    if offline_flag:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = make_encoder("clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    started = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as caught:
        encoder.load()
    assert time.perf_counter() - started < 10
    message = str(caught.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message
    assert str(empty_hub) in message
    assert "python -c" in message and "create_model_and_transforms" in message   # way out 1
    assert "--pretrained /path/to/" in message                                   # way out 2
    assert ("HF_HUB_OFFLINE" in message) == offline_flag


def test_cached_weights_are_found_without_network(empty_hub):
    snapshot = empty_hub / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    (empty_hub / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "refs").mkdir()
    (empty_hub / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "refs" / "main").write_text("abc123")
    import open_clip

    config = open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")
    found = encoders.weights.tag_checkpoint("ViT-B-32", "laion2b_s34b_b79k", config, None)
    assert Path(found) == snapshot / "open_clip_model.safetensors"


# ---- precomputed -----------------------------------------------------------------------

def _vectors(n=5, d=4, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_precomputed_npy_round_trip(tmp_path):
    X = _vectors()
    paths = [f"cats/{i}.png" for i in range(5)]
    written = save_precomputed(tmp_path / "emb.npy", paths, X)
    assert written == [tmp_path / "emb.npy", tmp_path / "emb.paths.txt"]
    read_paths, read = load_precomputed(tmp_path / "emb.npy")
    assert read_paths == paths
    _assert_unit_rows(read)
    np.testing.assert_allclose(read, X / np.linalg.norm(X, axis=1, keepdims=True), rtol=1e-6)


def test_precomputed_npy_with_explicit_path_list(tmp_path):
    np.save(tmp_path / "emb.npy", _vectors(3).astype(np.float16))
    (tmp_path / "list.txt").write_text("a.png\r\nb c.png\n\nd.png\n")
    paths, X = load_precomputed(tmp_path / "emb.npy", tmp_path / "list.txt")
    assert paths == ["a.png", "b c.png", "d.png"] and X.shape == (3, 4)


def test_precomputed_parquet_vector_column_and_numeric_columns(tmp_path):
    import pandas as pd

    X = _vectors(4, 3)
    paths = ["a.png", "b.png", "c.png", "d.png"]
    pd.DataFrame({"path": paths, "vec": list(X)}).to_parquet(tmp_path / "list.parquet")
    pd.DataFrame({"path": paths, "x0": X[:, 0], "x1": X[:, 1], "x2": X[:, 2]}).to_parquet(
        tmp_path / "wide.parquet")
    save_precomputed(tmp_path / "saved.parquet", paths, X)
    expected = X / np.linalg.norm(X, axis=1, keepdims=True)
    for name in ("list.parquet", "wide.parquet", "saved.parquet"):
        read_paths, read = load_precomputed(tmp_path / name)
        assert read_paths == paths
        np.testing.assert_allclose(read, expected, rtol=1e-6)


def test_precomputed_nan_rows_are_named(tmp_path):
    X = _vectors(6)
    X[2, 1] = np.nan
    X[4, 0] = np.inf
    save_precomputed(tmp_path / "emb.npy", [f"{i}.png" for i in range(6)], X)
    with pytest.raises(EmbeddingError, match=r"2 row\(s\) contain NaN or inf: rows \(0-based\) 2 \('2.png'\), 4 \('4.png'\)"):
        load_precomputed(tmp_path / "emb.npy")


def test_precomputed_zero_rows_are_named(tmp_path):
    X = _vectors(3)
    X[1] = 0
    save_precomputed(tmp_path / "emb.npy", ["a", "b", "c"], X)
    with pytest.raises(EmbeddingError, match=r"all zeros.*1 \('b'\)"):
        load_precomputed(tmp_path / "emb.npy")


@pytest.mark.parametrize("array", [np.zeros(5), np.zeros((5, 2, 2))], ids=["1-D", "3-D"])
def test_precomputed_wrong_shape(tmp_path, array):
    np.save(tmp_path / "emb.npy", array)
    (tmp_path / "emb.paths.txt").write_text("".join(f"{i}.png\n" for i in range(5)))
    with pytest.raises(EmbeddingError, match=r"must be a 2-D array.*shape \(5,"):
        load_precomputed(tmp_path / "emb.npy")


def test_precomputed_count_mismatch(tmp_path):
    np.save(tmp_path / "emb.npy", _vectors(5))
    (tmp_path / "emb.paths.txt").write_text("a.png\nb.png\n")
    with pytest.raises(EmbeddingError, match="has 5 rows but emb.paths.txt lists 2 paths"):
        load_precomputed(tmp_path / "emb.npy")


def test_precomputed_object_array_is_refused(tmp_path):
    np.save(tmp_path / "emb.npy", np.array([[1.0, "x"], [2.0, None]], dtype=object), allow_pickle=True)
    (tmp_path / "emb.paths.txt").write_text("a\nb\n")
    with pytest.raises(EmbeddingError, match=r"holds Python objects \(dtype=object\)"):
        load_precomputed(tmp_path / "emb.npy")


@pytest.mark.parametrize("content", [b"not numpy at all", b"", b"PK\x03\x04 a zip, not an array"])
def test_precomputed_file_that_is_not_npy_is_named_as_such(tmp_path, content):
    # numpy reads what lacks its header as a pickle and refuses that: the message must not
    # say the file holds Python objects
    (tmp_path / "emb.npy").write_bytes(content)
    (tmp_path / "emb.paths.txt").write_text("a\nb\n")
    with pytest.raises(EmbeddingError, match=r"emb.npy is not a NumPy .npy file") as caught:
        load_precomputed(tmp_path / "emb.npy")
    assert "Python objects" not in str(caught.value)


def test_precomputed_missing_path_list_and_bad_parquet(tmp_path):
    import pandas as pd

    np.save(tmp_path / "emb.npy", _vectors(2))
    with pytest.raises(EmbeddingError, match="needs a path list"):
        load_precomputed(tmp_path / "emb.npy")
    pd.DataFrame({"file": ["a"], "v": [1.0]}).to_parquet(tmp_path / "nopath.parquet")
    with pytest.raises(EmbeddingError, match="no 'path' column"):
        load_precomputed(tmp_path / "nopath.parquet")
    pd.DataFrame({"path": ["a", "a"], "v": [1.0, 2.0]}).to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(EmbeddingError, match="paths listed twice: 'a'"):
        load_precomputed(tmp_path / "dup.parquet")


# ---- embeddings folders: read whole, or mapped --------------------------------------------

def _folder(tmp_path, name="emb", n=23, d=5, rows_per_part=7, seed=0):
    """An embeddings folder of several parts whose rows are not written in path order."""
    rng = np.random.default_rng(seed)
    paths = [f"c/{i:03d}.png" for i in rng.permutation(n)]
    X = rng.normal(size=(n, d)).astype(np.float32)
    save_embeddings_dir(tmp_path / name, paths, X, {"encoder": "test"},
                        rows_per_part=rows_per_part)
    return tmp_path / name


def test_a_mapped_embeddings_folder_reads_as_the_loaded_one_and_is_copied_once(tmp_path):
    folder = _folder(tmp_path)
    paths, X, meta = load_embeddings_dir(folder)
    mapped_paths, mapped, mapped_meta = map_embeddings_dir(folder)
    assert mapped_paths.to_pylist() == paths.to_pylist() == sorted(paths.to_pylist())
    np.testing.assert_array_equal(mapped, X)
    assert mapped_meta == meta
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    [cache] = folder.glob(f"_vectors-{meta['embeddings_id']}-*.npy")
    written = cache.stat().st_mtime_ns
    np.testing.assert_array_equal(map_embeddings_dir(folder)[1], X)
    assert cache.stat().st_mtime_ns == written                    # mapped again, not copied
    # a part written over by hand, the folder's meta untouched: a new copy, not the stale one
    import pyarrow as pa
    import pyarrow.parquet as pq
    part = folder / "part-00001.parquet"
    table = pq.read_table(part)
    doubled = pa.FixedSizeListArray.from_arrays(
        pa.array(2 * np.stack(table["embedding"].to_numpy(zero_copy_only=False)).ravel()),
        X.shape[1])
    pq.write_table(table.set_column(1, "embedding", doubled), part)
    _, X_new, _ = load_embeddings_dir(folder)
    assert not np.array_equal(X_new, X)
    np.testing.assert_array_equal(map_embeddings_dir(folder)[1], X_new)
    assert not cache.exists() and len(list(folder.glob("_vectors-*.npy"))) == 1
    [cache] = folder.glob("_vectors-*.npy")
    # written again (other vectors, same paths): the copy of the old write goes, and so
    # does one a killed run left half written
    (folder / f"._vectors-{meta['embeddings_id']}.npy.x1y2.tmp").write_bytes(b"half")
    again = _folder(tmp_path, seed=1)
    assert not cache.exists() and not list(folder.glob("._vectors-*"))
    _, X2, meta2 = load_embeddings_dir(again)
    np.testing.assert_array_equal(map_embeddings_dir(again)[1], X2)
    assert [p.name.split("-")[1] for p in again.glob("_vectors-*.npy")] == [
        meta2["embeddings_id"]]


def test_a_folder_without_an_id_or_not_writable_is_read_whole(tmp_path, monkeypatch):
    import json

    from hdl_core.embed import precomputed

    folder = _folder(tmp_path)
    _, X, _ = load_embeddings_dir(folder)

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(precomputed, "_write_vectors", refused)
    _, unmapped, _ = map_embeddings_dir(folder)
    assert not isinstance(unmapped, np.memmap) and not list(folder.glob("_vectors-*"))
    np.testing.assert_array_equal(unmapped, X)
    monkeypatch.undo()
    meta = json.loads((folder / "_meta.json").read_text())
    del meta["embeddings_id"]                       # written before ids were recorded
    (folder / "_meta.json").write_text(json.dumps(meta))
    _, unmapped, _ = map_embeddings_dir(folder)
    assert not isinstance(unmapped, np.memmap) and not list(folder.glob("_vectors-*"))
    np.testing.assert_array_equal(unmapped, X)


@pytest.mark.parametrize("damage, message", [
    ("garbled part", r"part-00001.parquet: not an embeddings part"),
    ("no embedding column", r"part-00001.parquet: not an embeddings part \(no column embedding\)"),
    ("other width", r"parts hold vectors of different widths \[3, 5\]"),
    ("path twice", r"path 'c/000.png' is listed twice"),
])
@pytest.mark.parametrize("read", ["load", "map"])
def test_a_damaged_embeddings_folder_is_refused_the_same_either_way(tmp_path, damage, message,
                                                                     read):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _folder(tmp_path)
    part = folder / "part-00001.parquet"
    if damage == "garbled part":
        part.write_bytes(b"PAR1 not really")
    elif damage == "no embedding column":
        pq.write_table(pa.table({"path": ["x"], "vector": [1.0]}), part)
    elif damage == "other width":
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(3, np.float32)), 3)
        pq.write_table(pa.table({"path": ["x"], "embedding": vectors}), part)
    else:                                           # part 1's first path is part 0's too
        table = pq.read_table(part)
        paths = table["path"].to_pylist()
        paths[0] = pq.read_table(folder / "part-00000.parquet")["path"][0].as_py()
        pq.write_table(table.set_column(0, "path", pa.array(paths, pa.string())), part)
        message = message.replace("c/000.png", paths[0])
    with pytest.raises(EmbeddingError, match=message):
        (load_embeddings_dir if read == "load" else map_embeddings_dir)(folder)
    assert not list(folder.glob("_vectors-*"))


# ---- the cache -------------------------------------------------------------------------

def test_cache_hits_misses_and_changed_file(tmp_path):
    paths = _write_images(tmp_path / "imgs", 6)
    encoder = make_encoder("pixels", size=8)
    cache = EmbeddingCache(tmp_path / "cache")

    first, stats = cache.encode(encoder, paths, [_sha256(p) for p in paths])
    assert (stats["hits"], stats["misses"]) == (0, 6)
    np.testing.assert_array_equal(first, encoder.encode(paths))

    again, stats = cache.encode(encoder, paths, [_sha256(p) for p in paths])
    assert (stats["hits"], stats["misses"], stats["encoded"]) == (6, 0, 0)
    np.testing.assert_array_equal(again, first)

    Image.new("RGB", (40, 32), (200, 10, 10)).save(paths[3])      # same name, new content
    changed, stats = cache.encode(encoder, paths, [_sha256(p) for p in paths])
    assert (stats["hits"], stats["misses"]) == (5, 1)
    np.testing.assert_array_equal(changed, encoder.encode(paths))
    assert not np.array_equal(changed[3], first[3])


def test_cache_encodes_identical_files_once_and_reports_progress(tmp_path):
    paths = _write_images(tmp_path / "imgs", 3)
    twin = tmp_path / "imgs" / "twin.png"
    twin.write_bytes(paths[0].read_bytes())
    calls = []
    X, stats = EmbeddingCache(tmp_path / "cache").encode(
        make_encoder("pixels", size=4), paths + [twin], [_sha256(p) for p in paths + [twin]],
        progress=lambda done, total: calls.append((done, total)))
    assert (stats["misses"], stats["encoded"]) == (4, 3)
    np.testing.assert_array_equal(X[0], X[3])
    assert calls[-1] == (4, 4)  # three distinct files encoded; the twin shares a row and counts


def test_cache_keeps_raw_pixels_so_pca_matches_the_set(tmp_path):
    paths = _write_images(tmp_path / "imgs", 8)
    hashes = [_sha256(p) for p in paths]
    encoder = make_encoder("pixels", size=8, pca_components=3)
    cache = EmbeddingCache(tmp_path / "cache")
    cache.encode(encoder, paths, hashes)                         # fills the cache with all 8
    subset, stats = cache.encode(encoder, paths[:5], hashes[:5])
    assert stats["hits"] == 5
    np.testing.assert_allclose(subset, encoder.encode(paths[:5]), atol=1e-6)  # PCA over the 5


def test_cache_keys_apart_and_works_with_a_plain_encoder(tmp_path):
    class CountingEncoder:                       # only the Encoder protocol, no encode_files
        name, label, device = "fake", "fake", "cpu"

        def __init__(self, key):
            self.cache_key, self.calls = key, 0

        def encode(self, paths, progress=None):
            self.calls += 1
            return np.ones((len(paths), 2), np.float32) / np.sqrt(2)

    paths = _write_images(tmp_path / "imgs", 2)
    hashes = [_sha256(p) for p in paths]
    cache = EmbeddingCache(tmp_path / "cache")
    a, b = CountingEncoder("fake|a"), CountingEncoder("fake|b")
    cache.encode(a, paths, hashes)
    cache.encode(a, paths, hashes)
    cache.encode(b, paths, hashes)
    assert (a.calls, b.calls) == (1, 1)
    assert cache.keys() == ["fake|a", "fake|b"]


def test_cache_survives_corrupt_shard_and_compacts(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache", max_shards=2)
    for i in range(4):
        cache.add("k", [f"h{i}"], np.full((1, 3), i, np.float32))
    folder = cache._key_folder("k")
    assert len(list(folder.glob("shard-*.npz"))) <= 2
    found = cache.lookup("k", ["h0", "h1", "h2", "h3"])
    assert {h: float(v[0]) for h, v in found.items()} == {b"h0": 0, b"h1": 1, b"h2": 2, b"h3": 3}
    (folder / "shard-99999999999999999999-broken.npz").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ignoring unreadable shard"):
        assert len(cache.lookup("k", ["h0", "h3"])) == 2


@pytest.mark.slow
def test_cache_with_clip_reuses_vectors_without_loading_twice(tmp_path, tiny_clip, images):
    hashes = [_sha256(p) for p in images]
    cache = EmbeddingCache(tmp_path / "cache")
    first, stats = cache.encode(tiny_clip, images, hashes)
    assert stats["misses"] == len(images)
    np.testing.assert_allclose(first, tiny_clip.encode(images), atol=1e-6)
    again, stats = cache.encode(tiny_clip, images, hashes)
    assert stats["hits"] == len(images)
    np.testing.assert_array_equal(again, first)

"""Tests for hdl_core.data: data root, scanning and checks, seeds, zips, uploads, the demo.

Every bad file is built here, in a temporary data root (``HDL_DATA_ROOT``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hdl_core import data as images
from hdl_core.data import Dataset, DatasetError


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A fresh data root, set through HDL_DATA_ROOT."""
    folder = tmp_path / "data-root"
    monkeypatch.setenv("HDL_DATA_ROOT", str(folder))
    return images.data_root()


def image_bytes(mode="RGB", size=(24, 16), fmt="PNG", color=None, **save_options) -> bytes:
    """A small image of `mode`, with some structure so files differ by colour."""
    if color is None:
        color = {"RGB": (200, 30, 60), "RGBA": (10, 200, 30, 128), "L": 90, "CMYK": (0, 128, 255, 0),
                 "LA": (90, 128), "I;16": 40000, "P": 3, "1": 1}.get(mode, 0)
    image = Image.new(mode, size, color)
    stream = io.BytesIO()
    image.save(stream, format=fmt, **save_options)
    return stream.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose IHDR is patched to declare `width` × `height` (CRC fixed)."""
    data = bytearray(image_bytes("RGB", (1, 1)))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def truncated_jpeg() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    stream = io.BytesIO()
    Image.fromarray(noise).save(stream, format="JPEG", quality=90)
    full = stream.getvalue()
    return full[: len(full) // 2]


def make_zip(entries) -> bytes:
    """Zip bytes from (name or ZipInfo, data) pairs; names are kept raw (``../x``, ``/abs``)."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return stream.getvalue()


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3   # Unix, so external_attr carries the mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def reasons(dataset: Dataset) -> dict[str, str]:
    return {entry.path: entry.reason for entry in dataset.skipped}


def labels(dataset: Dataset) -> dict[str, str | None]:
    return {item.path: item.seed_label for item in dataset.items}


# --------------------------------------------------------------------------- data root

def test_data_root_comes_from_env_and_is_created(tmp_path, monkeypatch):
    target = tmp_path / "not" / "yet"
    monkeypatch.setenv("HDL_DATA_ROOT", str(target))
    assert images.data_root() == target.resolve()
    assert target.is_dir()


def test_folder_inside_data_root_resolves_relative_and_absolute(root):
    (root / "pets").mkdir()
    assert images.resolve_in_data_root("pets") == root / "pets"
    assert images.resolve_in_data_root(root / "pets") == root / "pets"


def test_absolute_folder_outside_data_root_is_refused(root, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(DatasetError, match="outside the data root") as error:
        images.load_folder(outside)
    assert str(root) not in str(error.value)   # names the input, not the server's layout


def test_dotdot_cannot_escape_data_root(root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    for sneaky in ("../elsewhere", "pets/../../elsewhere", str(root / ".." / "elsewhere")):
        with pytest.raises(DatasetError, match="outside the data root"):
            images.resolve_in_data_root(sneaky)


def test_symlinked_folder_pointing_outside_is_refused(root, tmp_path):
    outside = tmp_path / "elsewhere"
    write(outside / "cats" / "a.png", image_bytes())
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DatasetError, match="outside the data root"):
        images.load_folder("link")


def test_missing_folder_and_file_as_folder_are_explained(root):
    with pytest.raises(DatasetError, match="does not exist"):
        images.load_folder("nope")
    write(root / "file.png", image_bytes())
    with pytest.raises(DatasetError, match="is not a folder"):
        images.load_folder("file.png")


def test_symlinks_inside_dataset_are_skipped_with_reason(root, tmp_path):
    secret = write(tmp_path / "secret.png", image_bytes())
    write(root / "other" / "ok.png", image_bytes("L"))
    folder = root / "ds"
    write(folder / "real.png", image_bytes())
    (folder / "outside.png").symlink_to(secret)
    (folder / "inside.png").symlink_to(root / "other" / "ok.png")
    (folder / "dirlink").symlink_to(root / "other", target_is_directory=True)
    (folder / "broken.png").symlink_to(folder / "missing.png")

    dataset = images.load_folder("ds")

    # Links are never followed, wherever they point (a later read refuses them too).
    assert dataset.paths == ["real.png"]
    why = reasons(dataset)
    assert "symbolic link" in why["outside.png"] and "symbolic link" in why["inside.png"]
    assert str(tmp_path) not in why["outside.png"]        # where it points is not said
    assert "folder" in why["dirlink"]
    assert "broken" in why["broken.png"]


# --------------------------------------------------------------------------- scanning, checks

def test_bad_files_are_skipped_with_reasons_never_crash(root):
    folder = root / "ds"
    write(folder / "good.png", image_bytes())
    write(folder / "good.jpg", image_bytes(fmt="JPEG"))
    write(folder / "bomb.png", png_declaring(60000, 60000))
    write(folder / "truncated.jpg", truncated_jpeg())
    write(folder / "random.png", np.random.default_rng(1).bytes(500))
    write(folder / "empty.jpg", b"")
    write(folder / "notes.txt", b"hello")
    write(folder / "README", b"no extension")
    write(folder / "corrupt.png", image_bytes()[:-20])   # IEND and part of IDAT gone
    write(folder / ".hidden.png", image_bytes())

    dataset = images.load_folder("ds")

    assert dataset.paths == ["good.jpg", "good.png"]
    why = reasons(dataset)
    # Nothing silently dropped: every file is an item or a skipped entry.
    assert set(why) | set(dataset.paths) == {p.name for p in folder.iterdir()}
    assert "decompression bomb" in why["bomb.png"] and "too large" in why["bomb.png"]
    assert "truncated" in why["truncated.jpg"]
    assert "not an image" in why["random.png"]
    assert "empty" in why["empty.jpg"]
    assert ".txt" in why["notes.txt"]
    assert "extension" in why["README"]
    assert why["corrupt.png"]
    assert "hidden" in why[".hidden.png"]
    assert [entry.path for entry in dataset.skipped] == sorted(why)


def test_pixel_limit_skips_before_decoding(root):
    write(root / "ds" / "big.png", image_bytes(size=(100, 100)))
    write(root / "ds" / "small.png", image_bytes(size=(10, 10)))
    dataset = images.load_folder("ds", max_pixels=5000)
    assert dataset.paths == ["small.png"]
    assert "100×100" in reasons(dataset)["big.png"]
    assert "5,000" in reasons(dataset)["big.png"]


def test_header_declaring_huge_size_is_skipped_under_our_limit(root):
    # 8000×8000 = 64 MP: under Pillow's own bomb limit, over the default max_pixels.
    write(root / "ds" / "wide.png", png_declaring(8000, 8000))
    dataset = images.load_folder("ds")
    assert dataset.items == []
    assert "8000×8000" in reasons(dataset)["wide.png"]


def test_items_have_size_hash_and_sorted_paths(root):
    data = {"b/2.png": image_bytes(color=(1, 2, 3)), "a.png": image_bytes(color=(4, 5, 6)),
            "b/1.png": image_bytes(color=(7, 8, 9))}
    for name, content in data.items():
        write(root / "ds" / name, content)
    dataset = images.load_folder("ds")
    assert dataset.paths == ["a.png", "b/1.png", "b/2.png"]
    for item in dataset.items:
        assert item.size == len(data[item.path])
        assert item.content_hash == hashlib.sha256(data[item.path]).hexdigest()
    assert dataset.abs_paths() == [dataset.root / "a.png", dataset.root / "b" / "1.png",
                                   dataset.root / "b" / "2.png"]
    assert dataset.abs_path("b/1.png") == dataset.root / "b" / "1.png"
    for escape in ("../a.png", "/etc/passwd"):
        with pytest.raises(DatasetError, match="not a path inside the dataset"):
            dataset.abs_path(escape)


def test_identical_files_are_reported_as_duplicates_and_kept(root):
    same = image_bytes(color=(9, 9, 9))
    write(root / "ds" / "cats" / "a.png", same)
    write(root / "ds" / "unlabeled" / "copy.png", same)
    write(root / "ds" / "z.png", same)
    write(root / "ds" / "other.png", image_bytes(color=(1, 1, 1)))
    write(root / "ds" / "other2.png", image_bytes(color=(2, 2, 2)))
    dataset = images.load_folder("ds")
    assert dataset.duplicates == [["cats/a.png", "unlabeled/copy.png", "z.png"]]
    assert len(dataset.items) == 5


def test_progress_reports_start_and_end(root):
    for i in range(5):
        write(root / "ds" / f"{i}.png", image_bytes(color=(i, i, i)))
    calls = []
    images.load_folder("ds", progress=lambda done, total: calls.append((done, total)), workers=2)
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


# --------------------------------------------------------------------------- opening again

def _old(path: Path, seconds: float = 60) -> None:
    """Make a file look modified a while ago (a scan does not trust a time from just now)."""
    import os, time
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def _known(dataset) -> dict:
    return {item.path: (item.size, item.mtime_ns, item.content_hash) for item in dataset.items
            if item.mtime_ns is not None}


def test_an_unchanged_folder_is_opened_again_by_size_and_time_without_reading(root, monkeypatch):
    from hdl_core.data import scan
    folder = root / "ds"
    for name, colour in (("cat/a.png", (1, 2, 3)), ("cat/b.png", (4, 5, 6)), ("c.png", (7, 8, 9))):
        _old(write(folder / name, image_bytes(color=colour)))
    first = images.load_folder("ds")
    assert all(item.mtime_ns is not None for item in first.items)
    opened = []
    real = scan._inspect_file
    monkeypatch.setattr(scan, "_inspect_file", lambda *a: opened.append(a[1]) or real(*a))
    seen = []
    again = images.load_folder("ds", known=_known(first), progress=lambda d, t: seen.append((d, t)))
    assert opened == []                                         # a stat each, no read
    assert [(i.path, i.content_hash, i.size, i.seed_label) for i in again.items] == \
           [(i.path, i.content_hash, i.size, i.seed_label) for i in first.items]
    assert seen[-1] == (3, 3)


def test_a_changed_file_is_read_again_and_gets_its_new_hash(root, monkeypatch):
    from hdl_core.data import scan
    folder = root / "ds"
    _old(write(folder / "a.png", image_bytes(color=(1, 2, 3))))
    _old(write(folder / "b.png", image_bytes(color=(4, 5, 6))))
    first = images.load_folder("ds")
    changed = image_bytes(color=(200, 5, 6))
    assert len(changed) == (folder / "b.png").stat().st_size      # same size, other bytes
    _old(write(folder / "b.png", changed), seconds=30)              # another time
    opened = []
    real = scan._inspect_file
    monkeypatch.setattr(scan, "_inspect_file", lambda *a: opened.append(a[1]) or real(*a))
    again = images.load_folder("ds", known=_known(first))
    assert opened == ["b.png"]
    by_path = {item.path: item for item in again.items}
    assert by_path["b.png"].content_hash == hashlib.sha256(changed).hexdigest()
    assert by_path["a.png"].content_hash == first.items[0].content_hash


def test_opening_again_still_refuses_a_file_turned_into_a_link(root, tmp_path):
    import os
    folder = root / "ds"
    _old(write(folder / "a.png", image_bytes(color=(1, 2, 3))))
    _old(write(folder / "b.png", image_bytes(color=(4, 5, 6))))
    first = images.load_folder("ds")
    os.link(folder / "b.png", tmp_path / "outside.png")          # b now has a second name
    again = images.load_folder("ds", known=_known(first))
    assert [item.path for item in again.items] == ["a.png"]
    assert "hard link" in dict((s.path, s.reason) for s in again.skipped)["b.png"]
    (folder / "a.png").unlink()
    (folder / "a.png").symlink_to(tmp_path / "outside.png")
    third = images.load_folder("ds", known=_known(first))
    assert third.items == [] and "symbolic link" in third.skipped[0].reason


def test_a_file_written_just_before_the_scan_is_read_again_next_time(root, monkeypatch):
    from hdl_core.data import scan
    folder = root / "ds"
    write(folder / "fresh.png", image_bytes())                     # modified now
    first = images.load_folder("ds")
    assert first.items[0].mtime_ns is None                         # no time kept
    assert _known(first) == {}


def test_the_store_gives_the_next_scan_what_it_needs_to_skip_reading(root, tmp_path):
    from hdl_core.workspace.store import Workspace
    folder = root / "ds"
    for i in range(4):
        _old(write(folder / f"x/{i}.png", image_bytes(color=(i, i, i))))
    first = images.load_folder("ds")
    with Workspace(tmp_path / "ws") as ws:
        ws.set_dataset(first)
        known = ws.file_stats()
        assert known == _known(first) and len(known) == 4
        version = ws.items_version()
        ws.set_dataset(images.load_folder("ds", known=known))
        assert ws.items_version() == version                     # nothing changed, nothing written


def test_bad_options_are_named(root):
    (root / "ds").mkdir()
    with pytest.raises(DatasetError, match="max_pixels"):
        images.load_folder("ds", max_pixels=0)


# --------------------------------------------------------------------------- layout seeds

def test_layout_seeds_from_class_folders(root):
    for name in ["cats/a.png", "cats/indoor/b.png", "dogs/c.png", "top.png",
                 "unlabeled/d.png", "Unlabelled/e.png", "unlabeled/deep/f.png"]:
        write(root / "ds" / name, image_bytes(color=(len(name), 0, 0)))
    dataset = images.load_folder("ds")
    assert labels(dataset) == {
        "cats/a.png": "cats", "cats/indoor/b.png": "cats", "dogs/c.png": "dogs",
        "top.png": None, "unlabeled/d.png": None, "Unlabelled/e.png": None,
        "unlabeled/deep/f.png": None,
    }
    assert dataset.classes == ["cats", "dogs"]


def test_class_order_is_stable_whatever_the_creation_order(root):
    names = ["zebra", "Apple", "10", "2", "mango"]
    for order, folder in ((names, "one"), (names[::-1], "two")):
        for i, cls in enumerate(order):
            write(root / folder / cls / "x.png", image_bytes(color=(i, 0, 0)))
    first, second = images.load_folder("one"), images.load_folder("two")
    assert first.classes == second.classes == sorted(names)
    assert first.classes == images.load_folder("one").classes
    seeds = first.seed_array()
    assert [first.classes[s] for s in seeds] == [item.seed_label for item in first.items]


def test_seed_array_marks_unlabeled_and_checks_class_list(root):
    write(root / "ds" / "b" / "1.png", image_bytes(color=(1, 0, 0)))
    write(root / "ds" / "a" / "2.png", image_bytes(color=(2, 0, 0)))
    write(root / "ds" / "3.png", image_bytes(color=(3, 0, 0)))
    dataset = images.load_folder("ds")
    assert dataset.paths == ["3.png", "a/2.png", "b/1.png"]
    assert dataset.seed_array().tolist() == [-1, 0, 1]
    assert dataset.seed_array(["b", "a", "c"]).tolist() == [-1, 1, 0]
    with pytest.raises(DatasetError, match="'b'"):
        dataset.seed_array(["a"])


# --------------------------------------------------------------------------- seed CSV

@pytest.fixture
def small_dataset(root) -> Dataset:
    for i, name in enumerate(["cats/a.png", "dogs/b.png", "u/c.png", "u/d.png", "e.png"]):
        write(root / "ds" / name, image_bytes(color=(i * 20, 0, 0)))
    write(root / "ds" / "broken.png", b"not a png")
    return images.load_folder("ds")


def test_seed_csv_unknown_paths_error_names_rows(small_dataset):
    text = "path,label\nu/c.png,cats\nmissing.png,dogs\nu/d.png,dogs\ncats/nope.png,cats\n"
    with pytest.raises(DatasetError) as error:
        images.read_seed_csv(text.encode(), small_dataset)
    message = str(error.value)
    assert "rows 3, 5" in message
    assert "missing.png" in message and "cats/nope.png" in message
    assert "relative to the dataset folder 'ds'" in message   # without the server's path
    assert str(small_dataset.root) not in message


def test_seed_csv_blank_labels_extra_columns_and_header_order(small_dataset):
    text = ("note,label,path,score\n"
            "x,cats,u/c.png,0.1\n"
            "y,,u/d.png,0.2\n"
            "z,  ,cats/a.png,0.3\n"
            "\n"
            "w,dogs,./e.png,0.4\n")
    assert images.read_seed_csv(text.encode("utf-8-sig"), small_dataset) == {
        "u/c.png": "cats", "u/d.png": None, "cats/a.png": None, "e.png": "dogs"}


def test_seed_csv_without_header_uses_first_two_columns(small_dataset):
    text = "u/c.png,cats,ignored\nu\\d.png,dogs\ne.png\n"
    assert images.read_seed_csv(text.encode(), small_dataset) == {
        "u/c.png": "cats", "u/d.png": "dogs", "e.png": None}
    # A class that happens to be called "path" does not turn the first row into a header.
    assert images.read_seed_csv(b"u/c.png,path\n", small_dataset) == {"u/c.png": "path"}


@pytest.mark.parametrize("separator", [";", "\t"])
def test_seed_csv_saved_with_semicolons_or_tabs_reads_as_with_commas(small_dataset, separator):
    # spreadsheets where the comma is the decimal mark save "CSV" with semicolons; a
    # comma in a later cell (a score) is then part of that cell, not a separator
    text = (f"path{separator}label{separator}score\r\n"
            f"u/c.png{separator}cats{separator}0,9\r\n"
            f"u/d.png{separator}dogs, big{separator}0,4\r\n"
            f"e.png{separator}{separator}\r\n")
    assert images.read_seed_csv(text.encode("utf-8-sig"), small_dataset) == {
        "u/c.png": "cats", "u/d.png": "dogs, big", "e.png": None}


def test_seed_csv_rows_for_skipped_files_are_ignored(small_dataset):
    assert images.read_seed_csv(b"path,label\nbroken.png,cats\n", small_dataset) == {}


def test_seed_csv_conflicting_labels_and_bad_header_are_explained(small_dataset):
    with pytest.raises(DatasetError, match="rows 2 and 3"):
        images.read_seed_csv(b"path,label\ne.png,cats\ne.png,dogs\n", small_dataset)
    with pytest.raises(DatasetError, match="label"):
        images.read_seed_csv(b"path,class\ne.png,cats\n", small_dataset)
    with pytest.raises(DatasetError, match="UTF-8"):
        images.read_seed_csv("path,label\ne.png,chats\xe9\n".encode("latin-1"), small_dataset)


def test_load_folder_applies_seed_csv_over_layout(root):
    for i, name in enumerate(["cats/a.png", "dogs/b.png", "unlabeled/c.png", "d.png"]):
        write(root / "ds" / name, image_bytes(color=(i * 30, 0, 0)))
    with open(root / "ds" / "seeds.csv", "w", newline="") as stream:
        csv.writer(stream).writerows([["path", "label"], ["unlabeled/c.png", "birds"],
                                      ["cats/a.png", ""]])
    dataset = images.load_folder("ds", seeds_csv="seeds.csv")
    assert labels(dataset) == {"cats/a.png": None, "dogs/b.png": "dogs",
                               "unlabeled/c.png": "birds", "d.png": None}
    assert dataset.classes == ["birds", "dogs"]
    assert "seeds.csv" not in reasons(dataset)   # the CSV is not a skipped image


def test_load_folder_with_unknown_seed_rows_fails_naming_them(root):
    write(root / "ds" / "a.png", image_bytes())
    with pytest.raises(DatasetError, match="row 2"):
        images.load_folder("ds", seeds_csv=b"path,label\nb.png,cats\n")


# --------------------------------------------------------------------------- zip

def test_zip_extracts_and_unwraps_single_top_folder(root):
    archive = make_zip([("pets/cats/a.png", image_bytes(color=(1, 1, 1))),
                        ("pets/dogs/b.png", image_bytes(color=(2, 2, 2))),
                        ("pets/c.png", image_bytes(color=(3, 3, 3))),
                        ("__MACOSX/pets/._c.png", b"resource fork")])
    folder = images.extract_zip(archive, root / "upload")
    assert folder == root / "upload" / "pets"
    assert not (root / "upload" / "__MACOSX").exists()
    dataset = images.load_folder(folder)
    assert labels(dataset) == {"c.png": None, "cats/a.png": "cats", "dogs/b.png": "dogs"}


def test_zip_from_path_without_single_top_folder_returns_dest(root, tmp_path):
    path = write(tmp_path / "flat.zip", make_zip([("a.png", image_bytes()), ("cats/b.png", image_bytes("L"))]))
    assert images.extract_zip(path, root / "flat") == root / "flat"
    assert (root / "flat" / "cats" / "b.png").read_bytes() == image_bytes("L")


@pytest.mark.parametrize("bad_name", ["../x.png", "pets/../../x.png", "/abs/x.png", "C:/x.png",
                                      "..\\x.png"])
def test_zip_entry_escaping_destination_is_refused_naming_it(root, tmp_path, bad_name):
    archive = make_zip([("pets/ok.png", image_bytes()), (bad_name, image_bytes())])
    dest = root / "upload"
    with pytest.raises(DatasetError) as error:
        images.extract_zip(archive, dest)
    assert repr(bad_name) in str(error.value)
    # Every entry is checked before anything is written.
    assert not (dest / "pets" / "ok.png").exists()
    assert not (root / "x.png").exists() and not (tmp_path / "x.png").exists()


def test_zip_symlink_entry_is_refused_naming_it(root):
    archive = make_zip([("pets/ok.png", image_bytes()), (symlink_info("pets/link.png"), "/etc/passwd")])
    with pytest.raises(DatasetError, match="symbolic link") as error:
        images.extract_zip(archive, root / "upload")
    assert "'pets/link.png'" in str(error.value)
    assert not (root / "upload" / "pets").exists()


def test_zip_with_too_many_files_is_refused_naming_an_entry(root):
    archive = make_zip([(f"p/{i}.png", image_bytes()) for i in range(4)])
    with pytest.raises(DatasetError, match="limit") as error:
        images.extract_zip(archive, root / "upload", max_files=3)
    assert "'p/3.png'" in str(error.value)
    assert images.extract_zip(archive, root / "upload", max_files=4) == root / "upload" / "p"


def test_zip_over_expanded_size_limit_is_refused_naming_the_entry(root):
    archive = make_zip([("p/a.bin", b"\0" * 600), ("p/b.bin", b"\0" * 600)])
    assert len(archive) < 1000   # compressed it fits; expanded it does not
    with pytest.raises(DatasetError, match="expanded size") as error:
        images.extract_zip(archive, root / "upload", max_total_bytes=1000)
    assert "'p/b.bin'" in str(error.value)
    assert not (root / "upload" / "p").exists()


def test_zip_cannot_write_through_a_link_already_in_dest(root, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    dest = root / "upload"
    dest.mkdir()
    (dest / "pets").symlink_to(outside, target_is_directory=True)
    archive = make_zip([("pets/cats/a.png", image_bytes())])
    with pytest.raises(DatasetError, match="already holds files"):   # never into a used folder
        images.extract_zip(archive, dest)
    with pytest.raises(DatasetError, match="outside"):
        images.save_uploads([("pets/cats/a.png", image_bytes())], dest)
    assert list(outside.iterdir()) == []   # not even an empty folder


def test_zip_entries_clashing_file_and_folder_are_explained(root):
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("p/a.png", b"file")
        archive.writestr(zipfile.ZipInfo("p/a.png/"), b"")   # a folder of the same name
    with pytest.raises(DatasetError, match="'p/a.png/'"):
        images.extract_zip(stream.getvalue(), root / "upload")
    with pytest.raises(DatasetError, match="'p/a/b.png'"):
        images.extract_zip(make_zip([("p/a", b"file"), ("p/a/b.png", b"png")]), root / "other")


@pytest.mark.parametrize("source", ["bytes", "path", "file"])
def test_file_that_is_not_a_zip_is_refused(root, tmp_path, source):
    data = image_bytes()
    path = write(tmp_path / "photo.zip", data)
    zip_file = {"bytes": data, "path": path, "file": io.BytesIO(data)}[source]
    with pytest.raises(DatasetError, match="not a zip archive"):
        images.extract_zip(zip_file, root / "upload")


def test_missing_zip_path_is_explained(root, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        images.extract_zip(tmp_path / "missing.zip", root / "upload")


# --------------------------------------------------------------------------- uploads

def test_folder_upload_names_keep_class_folders(root):
    files = [("mydata/cats/a.png", image_bytes(color=(1, 0, 0))),
             ("mydata/dogs/b.png", image_bytes(color=(2, 0, 0))),
             ("mydata/unlabeled/c.png", image_bytes(color=(3, 0, 0))),
             ("mydata/d.png", image_bytes(color=(4, 0, 0)))]
    folder = images.save_uploads(files, root / "uploads")
    assert folder == root / "uploads" / "mydata"
    dataset = images.load_folder(folder)
    assert labels(dataset) == {"cats/a.png": "cats", "dogs/b.png": "dogs",
                               "unlabeled/c.png": None, "d.png": None}


def test_plain_file_uploads_stay_in_dest(root):
    files = [("a.png", image_bytes()), ("sub\\b.png", image_bytes("L"))]
    assert images.save_uploads(files, root / "up") == root / "up"
    assert (root / "up" / "sub" / "b.png").read_bytes() == image_bytes("L")
    assert images.save_uploads([("x/a.png", b"1")], root / "up2", unwrap=False) == root / "up2"


@pytest.mark.parametrize("bad_name", ["../evil.png", "mydata/../../evil.png", "/etc/evil.png",
                                      "a\x00.png", "./"])
def test_upload_names_escaping_dest_are_refused_before_writing(root, tmp_path, bad_name):
    files = [("mydata/ok.png", image_bytes()), (bad_name, image_bytes())]
    with pytest.raises(DatasetError) as error:
        images.save_uploads(files, root / "uploads")
    assert repr(bad_name) in str(error.value)
    assert not (root / "uploads" / "mydata" / "ok.png").exists()
    assert not list(tmp_path.rglob("evil.png"))


def test_upload_names_colliding_are_refused(root):
    with pytest.raises(DatasetError, match="same path"):
        images.save_uploads([("a/x.png", b"1"), ("a\\x.png", b"2")], root / "up")


# --------------------------------------------------------------------------- open_image, thumbnail

@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"),
                                       ("I;16", "PNG"), ("L", "PNG"), ("LA", "PNG"),
                                       ("1", "PNG"), ("RGB", "JPEG"), ("L", "JPEG")])
def test_open_image_gives_rgb_of_the_right_size(tmp_path, mode, fmt):
    path = write(tmp_path / f"img.{fmt.lower()}", image_bytes(mode, (30, 20), fmt))
    with Image.open(path) as raw:
        assert raw.mode == mode   # the file really is in that mode
    image = images.open_image(path)
    assert image.mode == "RGB"
    assert image.size == (30, 20)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    pixels = np.asarray(images.open_image(path))
    assert pixels[0, :, 0].tolist() == [0, 100, 255]


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert np.asarray(images.open_image(path)).min() == 255
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(tmp_path / "pal.png", transparency=0)
    assert np.asarray(images.open_image(tmp_path / "pal.png")).min() == 255


def test_cmyk_colours_survive_conversion(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)   # pure red ink
    red, green, blue = np.asarray(images.open_image(path)).reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60


def exif_jpeg(path: Path, size=(40, 20), orientation=6) -> Path:
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 10, 10))   # a red square at the top-left
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return path


def test_exif_orientation_is_applied(tmp_path):
    path = exif_jpeg(tmp_path / "rotated.jpg")
    with Image.open(path) as raw:
        assert raw.size == (40, 20)
    image = images.open_image(path)
    assert image.size == (20, 40)
    # Orientation 6: the viewer turns the stored image 90° clockwise, so top-left goes top-right.
    pixels = np.asarray(image).astype(int)
    assert pixels[3, 16, 0] > 200 and pixels[3, 3, 0] < 60


def test_corrupt_exif_keeps_the_image_readable(tmp_path, root):
    path = tmp_path / "odd.png"
    Image.new("RGB", (10, 6), (5, 6, 7)).save(path, exif=b"Exif\x00\x00garbage-not-tiff")
    image = images.open_image(path)
    assert image.size == (10, 6) and image.getpixel((0, 0)) == (5, 6, 7)
    write(root / "ds" / "odd.png", path.read_bytes())
    assert images.load_folder("ds").paths == ["odd.png"]   # scan and open agree


def test_open_image_refuses_bad_files_naming_them(tmp_path):
    bad = {"empty.jpg": b"", "random.png": np.random.default_rng(2).bytes(300),
           "truncated.jpg": truncated_jpeg()}
    for name, data in bad.items():
        path = write(tmp_path / name, data)
        with pytest.raises(DatasetError, match=name):
            images.open_image(path)
    big = write(tmp_path / "big.png", image_bytes(size=(100, 100)))
    with pytest.raises(DatasetError, match="too large"):
        images.open_image(big, max_pixels=1000)
    bomb = write(tmp_path / "bomb.png", png_declaring(60000, 60000))
    with pytest.raises(DatasetError, match="too large"):
        images.open_image(bomb)


def test_thumbnail_fits_size_keeps_aspect_and_orientation(tmp_path):
    wide = write(tmp_path / "wide.jpg", image_bytes("CMYK", (400, 200), "JPEG"))
    thumb = images.thumbnail(wide, 96)
    assert thumb.mode == "RGB" and thumb.size == (96, 48)
    rotated = images.thumbnail(exif_jpeg(tmp_path / "r.jpg", size=(200, 100)), 50)
    assert rotated.size == (25, 50)
    small = write(tmp_path / "small.png", image_bytes("P", (10, 8)))
    assert images.thumbnail(small, 96).size == (10, 8)   # never upscaled
    with pytest.raises(DatasetError, match="size"):
        images.thumbnail(small, 0)


# --------------------------------------------------------------------------- demo

@pytest.fixture(scope="module")
def demo_folders(tmp_path_factory):
    return (images.make_demo(tmp_path_factory.mktemp("demo-a")),
            images.make_demo(tmp_path_factory.mktemp("demo-b")))


def test_demo_is_deterministic(demo_folders):
    first, second = demo_folders

    def digest(folder: Path) -> dict[str, str]:
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in folder.rglob("*") if p.is_file()}

    assert digest(first) == digest(second)
    assert images.make_demo(first.parent) == first   # later calls reuse it


def test_demo_has_three_seeds_per_digit_truth_and_unlabeled_rest(demo_folders, monkeypatch):
    folder = demo_folders[0]
    monkeypatch.setenv("HDL_DATA_ROOT", str(folder.parent))
    dataset = images.load_folder(folder)
    assert dataset.skipped == []
    assert len(dataset.items) == 1797
    assert dataset.classes == [str(d) for d in range(10)]
    seeds = [item for item in dataset.items if item.seed_label is not None]
    assert sorted(item.seed_label for item in seeds) == sorted([str(d) for d in range(10)] * 3)
    assert all(item.path.startswith("unlabeled/") for item in dataset.items if item.seed_label is None)
    assert set(dataset.truth) == set(dataset.paths)
    assert all(dataset.truth[item.path] == item.seed_label for item in seeds)
    assert sorted(set(dataset.truth.values())) == dataset.classes
    with Image.open(dataset.abs_path(dataset.items[0])) as image:
        assert image.size == (32, 32)


def test_demo_default_goes_under_data_root_without_leftovers(demo_folders, monkeypatch):
    folder = demo_folders[1]
    monkeypatch.setenv("HDL_DATA_ROOT", str(folder.parent))
    assert images.make_demo() == folder
    for built in demo_folders:
        assert [p.name for p in built.parent.iterdir()] == ["demo-digits"]   # no partial build


def test_unfinished_demo_folder_is_explained(root):
    (root / "demo-digits").mkdir()
    with pytest.raises(DatasetError, match="not a finished demo"):
        images.make_demo()

"""The hostile and clumsy-user sweep (issue 15): one case per finding, and the attacks that held.

Each test is named after what must hold; the finding it covers is in its section header.
Every file is built in a temporary data root; nothing here needs the network.
"""
from __future__ import annotations

import html
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hdl_core import data as images
from tests.conftest import finish_jobs
from hdl_core.data import DatasetError
from hdl_core.workspace import pipeline
from hdl_core.workspace.store import Workspace
from tests.test_data import image_bytes, make_zip, png_declaring, write

SECRET = b"root:x:0:0:the-secret-outside-the-dataset\n"
PIXELS = pipeline.EncoderSpec.of("pixels", size=4)


def secret_png(tmp_path: Path) -> Path:
    """An image outside the data root whose pixels and bytes are recognisable."""
    path = tmp_path / "outside" / "secret.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), (1, 2, 3)).save(path, pnginfo=None)
    with open(path, "ab") as stream:
        stream.write(SECRET)                  # after IEND: ignored by decoders, seen in a copy
    return path


@pytest.fixture
def dataset_ws(roots, tmp_path):
    """A scanned dataset under the data root, stored in its workspace: (ws, dataset folder)."""
    data, _ = roots
    folder = data / "pets"
    for name, colour in [("cats/a.png", (200, 0, 0)), ("cats/b.png", (190, 10, 0)),
                         ("dogs/c.png", (0, 0, 200)), ("dogs/d.png", (0, 10, 190)),
                         ("e.png", (100, 0, 100))]:
        write(folder / name, image_bytes(color=colour))
    dataset = images.load_folder(folder)
    ws = Workspace(pipeline.workspace_for(dataset.root))
    pipeline.import_dataset(ws, dataset)
    return ws, folder


def all_labeled(folder: Path) -> pd.DataFrame:
    paths = ["cats/a.png", "cats/b.png", "dogs/c.png", "dogs/d.png", "e.png"]
    return pd.DataFrame({"path": paths, "label": ["cats", "cats", "dogs", "dogs", "dogs"]})


def zip_contents(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --------------------------------------------------------------------------- 1. links at read time

@pytest.mark.parametrize("attack", ["symlink", "hardlink", "linked-folder"])
def test_zip_export_leaves_out_a_file_swapped_for_a_link_after_the_scan(dataset_ws, tmp_path, attack):
    ws, folder = dataset_ws
    secret = secret_png(tmp_path)
    if attack == "symlink":
        (folder / "cats" / "a.png").unlink()
        (folder / "cats" / "a.png").symlink_to(secret)
    elif attack == "hardlink":
        (folder / "cats" / "a.png").unlink()
        os.link(secret, folder / "cats" / "a.png")
    else:   # the whole class folder becomes a link to a folder outside holding a.png
        outside = secret.parent
        for name in ("a.png", "b.png"):
            (outside / name).write_bytes(secret.read_bytes())
            (folder / "cats" / name).unlink()
        (folder / "cats").rmdir()
        (folder / "cats").symlink_to(outside, target_is_directory=True)

    contents = zip_contents(pipeline.imagefolder_zip(ws, all_labeled(folder)))

    assert not any(SECRET in data for data in contents.values())
    assert "cats/cats__a.png" not in contents
    assert "dogs/dogs__c.png" in contents                    # the rest is exported
    listing = contents["skipped-files.csv"].decode()
    assert "cats/a.png" in listing
    assert str(tmp_path) not in listing                       # no server path in the reason


def test_thumbnail_of_an_image_swapped_for_a_link_is_a_grey_tile_not_the_outside_image(dataset_ws,
                                                                                       tmp_path):
    import state
    ws, folder = dataset_ws
    target = folder / "cats" / "a.png"
    target.unlink()
    target.symlink_to(secret_png(tmp_path))
    tile = Image.open(io.BytesIO(state.thumbnail_png(str(target), 16)))
    assert (np.asarray(tile) == 160).all()                    # not the secret's (1, 2, 3)
    with pytest.raises(DatasetError, match="symbolic link"):
        images.thumbnail(target, root=folder)


def test_embedding_refuses_an_image_swapped_for_a_link_naming_it_in_dataset_terms(dataset_ws,
                                                                                  tmp_path):
    from hdl_core.embed import EmbeddingError
    ws, folder = dataset_ws
    target = folder / "dogs" / "c.png"
    target.unlink()
    target.symlink_to(secret_png(tmp_path))
    with pytest.raises(EmbeddingError, match="'dogs/c.png'") as error:
        pipeline.embed_workspace(ws, PIXELS)
    assert str(folder) not in str(error.value) and str(tmp_path) not in str(error.value)


def test_scan_refuses_a_hard_link_to_an_outside_file(roots, tmp_path):
    data, _ = roots
    write(data / "ds" / "real.png", image_bytes())
    os.link(secret_png(tmp_path), data / "ds" / "twin.png")
    dataset = images.load_folder("ds")
    assert dataset.paths == ["real.png"]
    assert "hard link" in {s.path: s.reason for s in dataset.skipped}["twin.png"]


def test_a_symlinked_folder_outside_the_data_root_is_not_offered(roots, tmp_path):
    data, _ = roots
    write(data / "inside" / "a.png", image_bytes())
    (tmp_path / "elsewhere").mkdir()
    (data / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (data / ".hidden").mkdir()
    assert images.dataset_folders() == ["inside"]


# --------------------------------------------------------------------------- 2. raster formats only

POSTSCRIPT = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
              b"newpath 0 0 moveto 10 10 lineto stroke showpage\n%%EOF\n")


@pytest.fixture
def ghostscript_calls(monkeypatch):
    """Every call Pillow would make to Ghostscript, recorded (and none runs)."""
    from PIL import EpsImagePlugin
    calls = []

    def ghostscript(*args, **kwargs):
        calls.append(args)
        raise OSError("gs -q -sOutputFile=/tmp/tmpab12cd.png -f /srv/secret/x.eps failed")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    return calls


def test_postscript_never_reaches_ghostscript_whatever_its_name(roots, ghostscript_calls):
    data, _ = roots
    write(data / "ds" / "good.png", image_bytes())
    for name in ("page.eps", "page.ps", "disguised.png", "disguised.jpg"):
        write(data / "ds" / name, POSTSCRIPT)
    dataset = images.load_folder("ds")
    why = {entry.path: entry.reason for entry in dataset.skipped}
    assert dataset.paths == ["good.png"]
    assert ghostscript_calls == []
    assert "not an image file type (.eps" in why["page.eps"]
    assert "not an image" in why["disguised.png"]
    with pytest.raises(DatasetError, match="not an image"):
        images.open_image(data / "ds" / "disguised.png")
    assert ghostscript_calls == []


def test_skip_reasons_carry_no_command_line_or_temp_path(roots, monkeypatch):
    from PIL import ImageFile
    data, _ = roots
    write(data / "ds" / "a.png", image_bytes())

    def failing_load(self):
        raise OSError("gs -q -sOutputFile=/tmp/tmpab12cd.png -f /srv/secret/a.png failed")

    monkeypatch.setattr(ImageFile.ImageFile, "load", failing_load)
    reason = images.load_folder("ds").skipped[0].reason
    assert "corrupt" in reason
    assert "/tmp" not in reason and "gs -q" not in reason and "/srv" not in reason


def test_the_accepted_formats_are_listed_once_and_in_the_readme():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert set(images.RASTER_FORMATS) == {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
    for shown in images.RASTER_FORMATS.values():
        assert shown in readme
    assert ".eps" not in images.image_extensions() and ".ps" not in images.image_extensions()


# --------------------------------------------------------------------------- 14. corrupt, EXIF, big

def png_with_bad_header_crc() -> bytes:
    data = bytearray(image_bytes())
    assert data[12:16] == b"IHDR"
    data[29] ^= 0xFF                      # the IHDR chunk's CRC
    return bytes(data)


def test_a_png_with_a_bad_crc_is_reported_corrupt_not_as_not_an_image(roots, tmp_path):
    data, _ = roots
    write(data / "ds" / "bad-crc.png", png_with_bad_header_crc())
    reason = images.load_folder("ds").skipped[0].reason
    assert "corrupt" in reason and "PNG" in reason
    assert "not an image" not in reason
    with pytest.raises(DatasetError, match="corrupt"):
        images.open_image(data / "ds" / "bad-crc.png")


def jpeg_with_damaged_exif(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Camera maker " * 8
    Image.new("RGB", (40, 20), (9, 9, 9)).save(path, exif=exif.tobytes()[:30])
    return path


def test_damaged_exif_prints_no_warning_and_the_image_still_opens(tmp_path, capfd):
    import warnings
    path = jpeg_with_damaged_exif(tmp_path / "odd.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert images.open_image(path).size == (40, 20)
        assert images.thumbnail(path, 10).size == (10, 5)
    assert [str(w.message) for w in caught] == []
    assert capfd.readouterr().err == ""


def test_a_big_thumbnail_does_no_full_size_work_after_the_decode(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (3000, 2000), 77).save(path, compress_level=1)
    sizes = []
    for method in ("convert", "copy", "transpose"):
        original = getattr(Image.Image, method)

        def recording(self, *args, _original=original, **kwargs):
            sizes.append(self.size)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(Image.Image, method, recording)
    thumb = images.thumbnail(path, 96)
    assert thumb.size == (96, 64) and thumb.mode == "RGB"
    assert sizes and max(w * h for w, h in sizes) <= 400 * 300


# --------------------------------------------------------------------------- 12. no server paths

def test_a_typed_path_outside_the_data_root_is_refused_naming_only_the_input(roots):
    data, _ = roots
    for typed in ("~", "../..", "/etc", "~/photos"):
        with pytest.raises(DatasetError) as error:   # '~' is a name here, not the server's home
            images.load_folder(typed)
        message = str(error.value)
        assert repr(typed) in message
        assert str(Path.home()) not in message.replace(repr(typed), "")
        assert str(data) not in message and "/etc" not in message.replace(repr(typed), "")


def test_a_nul_in_a_typed_path_is_named_not_a_python_error(roots):
    with pytest.raises(DatasetError, match="NUL character") as error:
        images.resolve_in_data_root("pets\x00/x")
    assert "embedded null byte" not in str(error.value)


def test_a_missing_folder_is_named_as_typed(roots):
    data, _ = roots
    with pytest.raises(DatasetError, match="'nope' does not exist") as error:
        images.load_folder("nope")
    assert str(data) not in str(error.value)


def test_a_file_error_in_the_app_shows_the_reason_not_the_server_path(monkeypatch):
    import state
    shown = []
    monkeypatch.setattr(state.st, "error", lambda message, **_: shown.append(message))
    with state.user_errors("Opening"):
        raise PermissionError(13, "Permission denied", "/srv/hdl/workspaces/secret/workspace.sqlite")
    with state.user_errors("Opening"):
        raise RuntimeError("boom at /srv/hdl/private/thing")
    assert len(shown) == 2
    assert all("/srv" not in message for message in shown)
    assert "Permission denied" in shown[0]


# --------------------------------------------------------------------------- 3. uploads apart

OWNER_A, OWNER_B = "a" * 32, "b" * 32


class ChunkOnlyUpload(io.BytesIO):
    """Like Streamlit's UploadedFile, but fails when anyone reads more than 2 MiB at once."""

    LIMIT = 2 * 2**20

    def __init__(self, name: str, data: bytes):
        super().__init__(data)
        self.name = name
        self.size = len(data)

    def getvalue(self):
        raise AssertionError("the whole upload was copied into memory")

    def read(self, size=-1):
        left = self.size - self.tell()
        if (size is None or size < 0 or size > self.LIMIT) and left > self.LIMIT:
            raise AssertionError(f"{left} bytes of the upload were read at once")
        return super().read(size)


def test_two_owners_uploading_same_named_files_get_separate_datasets(roots):
    from hdl_core.data import uploads
    red, blue = image_bytes(color=(250, 0, 0)), image_bytes(color=(0, 0, 250))
    first = uploads.store_files([("IMG_0001.png", red), ("cats/IMG_0002.png", red)], OWNER_A)
    second = uploads.store_files([("IMG_0001.png", blue), ("cats/IMG_0002.png", blue)], OWNER_B)
    assert first.folder != second.folder
    assert (first.dataset_folder / "IMG_0001.png").read_bytes() == red      # A's pixels kept
    assert (second.dataset_folder / "IMG_0001.png").read_bytes() == blue
    assert pipeline.workspace_for(first.dataset_folder) != pipeline.workspace_for(second.dataset_folder)
    # even one owner: same names, other bytes -> another folder; same bytes -> the same one
    third = uploads.store_files([("IMG_0001.png", blue), ("cats/IMG_0002.png", blue)], OWNER_A)
    assert third.folder != first.folder
    again = uploads.store_files([("IMG_0001.png", red), ("cats/IMG_0002.png", red)], OWNER_A)
    assert again.folder == first.folder
    assert (first.dataset_folder / "IMG_0001.png").read_bytes() == red


def test_an_owner_sees_its_own_and_shared_uploads_only(roots):
    from hdl_core.data import uploads
    mine = uploads.store_files([("a.png", image_bytes())], OWNER_A)
    theirs = uploads.store_files([("a.png", image_bytes("L"))], OWNER_B)
    shared = uploads.store_files([("s.png", image_bytes("L"))], OWNER_B, shared=True)
    seen = {upload.folder for upload in uploads.list_uploads(OWNER_A)}
    assert seen == {mine.folder, shared.folder}
    assert theirs.folder not in seen
    with pytest.raises(DatasetError, match="not one of your uploads"):
        uploads.delete_upload(theirs, OWNER_A)
    assert theirs.folder.is_dir()


def test_uploads_cannot_be_opened_by_typing_their_path(roots):
    from hdl_core.data import uploads
    stored = uploads.store_files([("a.png", image_bytes())], OWNER_A)
    typed = stored.folder.relative_to(images.data_root()).as_posix()
    assert typed.startswith(".uploads/")
    with pytest.raises(DatasetError, match="hidden"):
        images.resolve_in_data_root(typed)
    assert ".uploads" not in images.dataset_folders()
    dataset = images.load_folder(stored.dataset_folder, root=stored.owner_folder)
    assert dataset.paths == ["a.png"]


def test_an_upload_never_writes_over_an_existing_file(roots):
    data, _ = roots
    dest = data / "up"
    write(dest / "a.png", b"first")
    with pytest.raises(DatasetError, match="already there"):
        images.save_uploads([("a.png", image_bytes())], dest)
    assert (dest / "a.png").read_bytes() == b"first"


# --------------------------------------------------------------------------- 6. upload limits

def test_uploads_are_read_in_chunks_never_whole(roots):
    from hdl_core.data import uploads
    big = [np.random.default_rng(i).bytes(5 * 2**20) for i in range(3)]
    files = [ChunkOnlyUpload(f"pets/cats/{i}.bin", data) for i, data in enumerate(big)]
    stored = uploads.store_files([(f.name, f) for f in files], OWNER_A)
    assert stored.dataset_folder.name == "pets"
    assert (stored.dataset_folder / "cats" / "2.bin").read_bytes() == big[2]
    archive = ChunkOnlyUpload("pets.zip", make_zip([("pets/cats/a.bin", big[0])]))
    assert uploads.store_zip(archive, archive.name, OWNER_A).dataset_folder.name == "pets"


def test_an_upload_over_the_limit_is_refused_before_writing(roots):
    from hdl_core.data import uploads
    limits = uploads.UploadLimits(max_upload_bytes=1000, max_total_bytes=10**9, min_free_bytes=0)
    with pytest.raises(DatasetError, match="over the limit"):
        uploads.store_files([("a.png", b"x" * 600), ("b.png", b"y" * 600)], OWNER_A, limits=limits)
    bomb = make_zip([("p/a.bin", b"\0" * 800), ("p/b.bin", b"\0" * 800)])
    with pytest.raises(DatasetError, match="over the limit"):
        uploads.store_zip(bomb, "bomb.zip", OWNER_A, limits=limits)
    assert uploads.uploads_size() == 0
    assert uploads.list_uploads(OWNER_A) == []


def test_uploads_together_are_limited_per_data_root(roots):
    from hdl_core.data import uploads
    limits = uploads.UploadLimits(max_upload_bytes=10**6, max_total_bytes=1500, min_free_bytes=0)
    uploads.store_files([("a.bin", b"a" * 1000)], OWNER_A, limits=limits)
    with pytest.raises(DatasetError, match="already use"):
        uploads.store_files([("b.bin", b"b" * 1000)], OWNER_B, limits=limits)
    with pytest.raises(DatasetError, match="over the limit"):
        uploads.store_zip(make_zip([("c.bin", b"c" * 1000)]), "c.zip", OWNER_B, limits=limits)
    assert [u.name for u in uploads.list_uploads(OWNER_B)] == []


def test_free_disk_is_checked_before_extracting(roots):
    from hdl_core.data import uploads
    limits = uploads.UploadLimits(min_free_bytes=2**62)           # more than any disk has
    with pytest.raises(DatasetError, match="disk space"):
        uploads.store_zip(make_zip([("p/a.png", image_bytes())]), "p.zip", OWNER_A, limits=limits)
    with pytest.raises(DatasetError, match="disk space"):
        uploads.store_files([("a.png", image_bytes())], OWNER_A, limits=limits)
    assert not any(uploads.uploads_root().rglob("*.png"))


def test_upload_limits_come_from_the_environment(monkeypatch):
    from hdl_core.data import uploads
    monkeypatch.setenv("HDL_UPLOAD_MAX_BYTES", "500M")
    monkeypatch.setenv("HDL_UPLOADS_TOTAL_MAX_BYTES", "3GiB")
    monkeypatch.setenv("HDL_UPLOAD_MIN_FREE_BYTES", "1073741824")
    limits = uploads.UploadLimits.from_env()
    assert (limits.max_upload_bytes, limits.max_total_bytes, limits.min_free_bytes) == (
        500 * 2**20, 3 * 2**30, 2**30)
    monkeypatch.setenv("HDL_UPLOAD_MAX_BYTES", "lots")
    with pytest.raises(DatasetError, match="HDL_UPLOAD_MAX_BYTES"):
        uploads.UploadLimits.from_env()


def test_an_uploaded_dataset_is_deleted_from_the_data_page_with_its_workspace(app_roots):
    from streamlit.testing.v1 import AppTest
    from hdl_core.data import uploads
    stored = uploads.store_files([("mine/cats/a.png", image_bytes()),
                                  ("mine/dogs/b.png", image_bytes("L"))], OWNER_A)
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.session_state["upload_owner"] = OWNER_A
    at.run()
    assert not at.exception
    next(b for b in at.button if b.key == f"upload_open_{stored.name}").click().run()
    assert not at.exception
    assert at.subheader[0].value.startswith("Open: Upload:")
    workspace = pipeline.workspace_for(stored.dataset_folder.resolve())
    assert (workspace / "workspace.sqlite").is_file()
    next(b for b in at.button if b.key == f"upload_delete_{stored.name}").click().run()
    next(b for b in at.button if b.key == f"upload_delete_yes_{stored.name}").click().run()
    assert not at.exception
    assert not stored.folder.exists() and not workspace.exists()
    assert not at.subheader[0].value.startswith("Open: Upload:")


# --------------------------------------------------------------------------- 11. zips

def test_a_zip_with_two_entries_of_one_name_is_refused_naming_them(roots):
    data, _ = roots
    archive = make_zip([("p/a.png", image_bytes()), ("p/./a.png", image_bytes("L"))])
    with pytest.raises(DatasetError, match="same path") as error:
        images.extract_zip(archive, data / "up")
    assert "'p/a.png'" in str(error.value) and "'p/./a.png'" in str(error.value)
    assert not (data / "up").exists()


def test_a_zip_failing_half_way_leaves_no_partial_folder(roots):
    data, _ = roots
    good = image_bytes()
    archive = bytearray(make_zip([("p/a.png", good), ("p/b.png", image_bytes("L", (64, 64)))]))
    at = archive.rfind(b"p/b.png", 0, archive.find(b"PK\x01\x02"))   # the local header's name
    archive[at + 7 + 5] ^= 0xFF                                       # damage b.png's data
    with pytest.raises(DatasetError, match="'p/b.png'"):
        images.extract_zip(bytes(archive), data / "up")
    assert not (data / "up").exists()
    assert [p.name for p in data.iterdir()] == []                      # no staging folder left


def test_a_zip_entry_in_a_compression_python_cannot_read_is_named_and_nothing_kept(roots):
    import struct
    data, _ = roots
    archive = bytearray(make_zip([("p/a.png", image_bytes()), ("p/b.png", image_bytes("L"))]))
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):   # local, central
        at = -1
        while (at := archive.find(signature, at + 1)) >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if archive[name_at:name_at + 7] == b"p/b.png":
                struct.pack_into("<H", archive, at + offset, 99)     # no such method
    with pytest.raises(DatasetError, match="unsupported compression") as error:
        images.extract_zip(bytes(archive), data / "up")
    assert "'p/b.png'" in str(error.value) and "re-create the archive" in str(error.value)
    assert [p.name for p in data.iterdir()] == []                      # nothing left behind


def test_a_zip_entry_with_an_undecodable_name_is_named(roots):
    data, _ = roots
    archive = make_zip([("p/café.png", image_bytes())])
    broken = archive.replace("café".encode(), b"caf\xff\xfe")          # flag says UTF-8; it is not
    with pytest.raises(DatasetError, match="not valid UTF-8") as error:
        images.extract_zip(broken, data / "up")
    assert "caf" in str(error.value)


# --------------------------------------------------------------------------- 5. missing files

def test_rescanning_keeps_the_corrections_of_moved_and_missing_files(dataset_ws):
    ws, folder = dataset_ws
    ids = dict(zip(ws.ok_items()["path"], ws.ok_items()["id"]))
    for path, label in [("cats/a.png", "dogs"), ("cats/b.png", "dogs"), ("dogs/c.png", "cats"),
                        ("dogs/d.png", "cats"), ("e.png", "cats")]:
        ws.add_correction([ids[path]], label)
    before = len(ws.corrections())
    (folder / "cats" / "a.png").rename(folder / "renamed.png")           # moved
    (folder / "cats" / "b.png").rename(folder / "dogs" / "b-moved.png")  # moved elsewhere
    kept_aside = (folder / "e.png").read_bytes()
    (folder / "e.png").unlink()                                           # briefly missing
    summary = pipeline.import_dataset(ws, images.load_folder(folder))

    assert len(ws.corrections()) == before                                 # nothing deleted
    assert (summary.moved, summary.missing) == (2, 1)
    now = dict(zip(ws.ok_items()["path"], ws.ok_items()["id"]))
    assert now["renamed.png"] == ids["cats/a.png"] and now["dogs/b-moved.png"] == ids["cats/b.png"]
    labels = ws.current_labels()
    assert labels[now["renamed.png"]] == ("dogs", "manual")
    assert ws.items().set_index("path").loc["e.png", "status"] == "missing"

    (folder / "e.png").write_bytes(kept_aside)                            # it came back
    pipeline.import_dataset(ws, images.load_folder(folder))
    assert ws.current_labels()[ids["e.png"]] == ("cats", "manual")
    assert len(ws.corrections()) == before


# --------------------------------------------------------------------------- 4. damaged workspace

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = [None, "app_pages/embed.py", "app_pages/choose_k.py", "app_pages/label.py",
         "app_pages/review.py", "app_pages/export.py"]


def app_on(folder: Path, page: str | None = None):
    """The app in AppTest with `folder` as this session's open workspace, on `page`."""
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["workspace_folder"] = str(Path(folder).resolve())
    at.run()
    if page is not None and not at.exception:
        at.switch_page(page)
        at.run()
    return at


def texts(at) -> str:
    found = [e.value for kind in ("error", "warning", "info", "success", "markdown", "caption")
             for e in getattr(at, kind)]
    return "\n".join(map(str, found))


@pytest.fixture
def labeled_ws(dataset_ws):
    from hdl_core.auto_k import KIntent
    ws, folder = dataset_ws
    pipeline.run_labeling(ws, pipeline.embed_workspace(ws, PIXELS), KIntent.parse(2))
    ws.close()
    return ws, folder


def damage(db: Path, how: str) -> None:
    data = db.read_bytes()
    if how == "truncated":
        db.write_bytes(data[: len(data) // 3])
    elif how == "garbled":
        garbage = np.random.default_rng(0).bytes(len(data) - 8192)
        db.write_bytes(data[:4096] + garbage + data[-4096:])
    else:
        db.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "garbled", "emptied"])
def test_a_damaged_database_leaves_every_page_open_and_names_the_workspace(labeled_ws, how):
    ws, _ = labeled_ws
    damage(ws.db_path, how)
    for page in PAGES:
        at = app_on(ws.folder, page)
        assert not at.exception, (page, at.exception)
        assert ws.folder.name in texts(at) and "damaged" in texts(at), page
    if how == "emptied":
        assert ws.db_path.stat().st_size == 0                 # reported, not recreated empty


def test_the_data_page_moves_a_damaged_workspace_aside_and_another_dataset_opens(labeled_ws):
    ws, _ = labeled_ws
    damage(ws.db_path, "garbled")
    damaged_bytes = ws.db_path.read_bytes()
    at = app_on(ws.folder)
    next(b for b in at.button if b.key == "move_damaged_aside").click().run()
    assert not at.exception
    aside = [p for p in ws.folder.parent.iterdir() if p.name.startswith(ws.folder.name + ".damaged-")]
    assert len(aside) == 1 and (aside[0] / "workspace.sqlite").read_bytes() == damaged_bytes
    at.radio(key="data_source").set_value("Built-in demo").run()
    next(b for b in at.button if b.label == "Open the demo").click().run()
    assert not at.exception
    assert at.subheader[0].value == "Open: Demo: handwritten digits"


def test_a_truncated_embedding_array_is_named_and_embedding_again_repairs_it(labeled_ws):
    ws, _ = labeled_ws
    key = ws.get_setting("embedding")["key"]
    path = ws.embeddings_path(key)
    path.write_bytes(path.read_bytes()[:100])
    at = app_on(ws.folder, "app_pages/label.py")
    assert not at.exception and f"embeddings/{path.name}" in texts(at)
    at = app_on(ws.folder, "app_pages/embed.py")
    assert not at.exception and f"embeddings/{path.name}" in texts(at)
    at.radio[0].set_value("Pixels (baseline, not CLIP)").run()
    next(b for b in at.button if b.label == "Embed with pixels").click().run()
    finish_jobs(at)
    assert not at.exception
    assert "5 images embedded with" in texts(at)


def test_an_embedding_array_of_the_wrong_shape_is_refused_naming_the_file(labeled_ws):
    from hdl_core.workspace import StoreError
    ws, _ = labeled_ws
    key = ws.get_setting("embedding")["key"]
    ws.save_embeddings(key, np.zeros((3, 8), np.float32))              # 3 rows for 5 images
    with pytest.raises(StoreError, match=r"embeddings/\w+\.npy.*shape \(3, 8\)"):
        pipeline.current_embedding(ws)


# --------------------------------------------------------------------------- 15. stale temp files

def test_temporary_files_of_a_killed_writer_are_removed_when_the_workspace_opens(tmp_path):
    import subprocess
    import sys
    import time
    folder = tmp_path / "ws"
    Workspace(folder).close()
    script = (
        "import sys, time, numpy as np\n"
        "from hdl_core.workspace.store import Workspace\n"
        "ws = Workspace(sys.argv[1])\n"
        "real = np.save\n"
        "def slow(stream, X, **kw):\n"
        "    stream.write(b'half an array'); stream.flush(); print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        "np.save = slow\n"
        "ws.save_embeddings('k', np.zeros((4, 4)))\n")
    root = Path(__file__).resolve().parent.parent
    writer = subprocess.Popen([sys.executable, "-c", script, str(folder)], cwd=root,
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()                                                     # kill -9 mid-write
    writer.wait()
    left = list((folder / "embeddings").glob(".*.tmp"))
    assert len(left) == 1
    busy = folder / "embeddings" / ".other.npy.abc123.tmp"            # a writer still at work
    busy.write_bytes(b"fresh")
    old = time.time() - 3600
    os.utime(left[0], (old, old))
    Workspace(folder).close()
    assert not left[0].exists() and busy.exists()


# --------------------------------------------------------------------------- 7. stopped embedding

class StopsAfter:
    """A pixels encoder whose n-th call to encode_files is interrupted (Ctrl-C, page left)."""

    def __init__(self, calls_before_stop: int):
        from hdl_core.embed import make_encoder
        self.inner = make_encoder("pixels", size=4)
        self.calls_left = calls_before_stop
        self.encoded: list[str] = []
        self.file_cache_key = self.inner.file_cache_key
        self.cache_key = self.inner.cache_key
        self.label = self.inner.label
        self.finalize = self.inner.finalize

    def encode(self, paths, progress=None):
        return self.finalize(self.encode_files(paths, progress))

    def encode_files(self, paths, progress=None):
        if self.calls_left == 0:
            raise KeyboardInterrupt
        self.calls_left -= 1
        self.encoded += [str(p) for p in paths]
        return self.inner.encode_files(paths, progress)


@pytest.fixture
def small_chunks(monkeypatch):
    from hdl_core.embed import cache
    monkeypatch.setattr(cache, "FIRST_CHUNK_FILES", 2, raising=False)
    monkeypatch.setattr(cache, "MIN_CHUNK_FILES", 2, raising=False)
    monkeypatch.setattr(cache, "MAX_CHUNK_FILES", 2, raising=False)


def test_a_stopped_embedding_keeps_finished_chunks_and_the_next_run_resumes(dataset_ws, small_chunks,
                                                                            monkeypatch):
    ws, _ = dataset_ws
    stopping = StopsAfter(2)
    monkeypatch.setattr(pipeline.EncoderSpec, "build", lambda self: stopping)
    with pytest.raises(KeyboardInterrupt):
        pipeline.embed_workspace(ws, PIXELS)
    assert len(stopping.encoded) == 4
    assert pipeline.stopped_embedding(ws) == {"label": stopping.label, "kept": 4, "total": 5}

    again = StopsAfter(99)
    monkeypatch.setattr(pipeline.EncoderSpec, "build", lambda self: again)
    embedding = pipeline.embed_workspace(ws, PIXELS)
    assert again.encoded == ["e.png"]                                 # only what was left
    assert embedding.stats["hits"] == 4 and pipeline.stopped_embedding(ws) is None


def test_the_embed_page_says_how_many_images_a_stopped_run_kept(dataset_ws, small_chunks,
                                                                monkeypatch):
    ws, _ = dataset_ws
    monkeypatch.setattr(pipeline.EncoderSpec, "build", lambda self: StopsAfter(1))
    with pytest.raises(KeyboardInterrupt):
        pipeline.embed_workspace(ws, PIXELS)
    monkeypatch.undo()
    at = app_on(ws.folder, "app_pages/embed.py")
    assert not at.exception
    assert "stopped after 2 of 5 images" in texts(at)


def test_ctrl_c_in_the_cli_says_what_was_kept(roots, small_chunks, monkeypatch, capsys):
    from hdl_core import cli
    from hdl_core.embed.pixels import PixelsEncoder
    data, _ = roots
    for i in range(5):
        write(data / "ds" / ("cats" if i < 2 else "dogs" if i < 4 else "u") / f"{i}.png",
              image_bytes(color=(40 * i, 0, 0)))
    calls = []
    real = PixelsEncoder.encode_files

    def interrupted(self, paths, progress=None):
        calls.append(len(paths))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, paths, progress)

    monkeypatch.setattr(PixelsEncoder, "encode_files", interrupted)
    status = cli.main(["embed", str(data / "ds"), "--encoder", "pixels", "--out",
                       str(data / "emb.npy"), "--workspace", str(data / "ws")])
    assert status == 130
    assert "2 of 5 images are embedded and kept" in capsys.readouterr().err


# --------------------------------------------------------------------------- 9. CSV round trip

def test_the_csv_export_fed_back_as_seeds_gives_exactly_the_exported_labels(roots):
    data, workspaces = roots
    folder = data / "tricky"
    names = {"=cmd()/a.png": (200, 0, 0), "=cmd()/b.png": (190, 0, 0), "-1/c.png": (0, 0, 200),
             "-1/d.png": (0, 0, 190), "'=quoted.png": (120, 0, 120), "+1.png": (100, 0, 90),
             "@at.png": (10, 10, 10), "plain.png": (30, 30, 30)}
    for name, colour in names.items():
        write(folder / name, image_bytes(color=colour))
    dataset = images.load_folder(folder)
    ws = Workspace(workspaces / "tricky")
    pipeline.import_dataset(ws, dataset)
    ws.add_correction([int(ws.ok_items().set_index("path").loc["plain.png", "id"])], "+cat")
    frame = pd.DataFrame({"path": list(names), "label": ["=cmd()", "=cmd()", "-1", "-1", "'@x",
                                                         "+cat", None, "+cat"]})
    exported = pipeline.to_csv_bytes(frame)
    cells = pd.read_csv(io.BytesIO(exported), keep_default_na=False)
    assert not any(str(cell).startswith(("=", "@", "+c")) for cell in cells.to_numpy().ravel())
    assert "'-1/c.png" in set(cells["path"])                     # -1/c would be a formula
    assert "-1" in set(cells["label"].astype(str))                 # a plain number is left alone
    seeds = images.read_seed_csv(exported, dataset)
    assert seeds == {path: None if pd.isna(label) else label
                     for path, label in zip(frame["path"], frame["label"])}


def test_cli_export_feeds_back_as_seeds(roots, capsys):
    from hdl_core import cli
    data, _ = roots
    folder = data / "cli-tricky"
    for name, colour in [("=red/a.png", (250, 0, 0)), ("=red/b.png", (240, 5, 0)),
                         ("-blue/c.png", (0, 0, 250)), ("-blue/d.png", (0, 5, 240)),
                         ("@e.png", (245, 2, 2)), ("+f.png", (2, 2, 245))]:
        write(folder / name, image_bytes(color=colour))
    out = data / "labels.csv"
    common = ["--encoder", "pixels", "--k", "1", "--quiet", "--workspace"]
    assert cli.main(["label", str(folder), "--out", str(out)] + common + [str(data / "ws1")]) == 0
    exported = pd.read_csv(out, keep_default_na=False)
    assert cli.main(["label", str(folder), "--seeds", str(out), "--out", str(data / "again.csv")]
                    + common + [str(data / "ws2")]) == 0
    again = Workspace(data / "ws2")
    seeds = {path: again.seeds()[item_id]
             for path, item_id in zip(again.ok_items()["path"], again.ok_items()["id"])}
    first = images.read_seed_csv(out.read_bytes(), images.load_folder(folder, root=folder))
    assert seeds == first and set(first.values()) == {"=red", "-blue"}
    assert len(exported) == 6


# --------------------------------------------------------------------------- 10. the zip export

def test_the_zip_export_skips_and_lists_a_file_that_vanished_since_the_scan(dataset_ws):
    ws, folder = dataset_ws
    (folder / "dogs" / "d.png").unlink()
    skipped = []
    contents = zip_contents(pipeline.imagefolder_zip(ws, all_labeled(folder), skipped=skipped))
    assert skipped == [("dogs/d.png", "missing (moved or deleted since the folder was scanned)")]
    assert "dogs/dogs__c.png" in contents and "dogs/dogs__d.png" not in contents
    assert "dogs/d.png" in contents["skipped-files.csv"].decode()


def test_the_export_page_builds_the_zip_then_offers_it_and_says_what_it_left_out(labeled_ws):
    ws, folder = labeled_ws
    (folder / "e.png").unlink()
    at = app_on(ws.folder, "app_pages/export.py")
    assert not at.exception
    next(b for b in at.button if b.label == "Prepare ImageFolder zip").click().run()
    assert not at.exception
    assert "could not be read" in texts(at)
    assert any(b.label == "Download ImageFolder zip" for b in at.get("download_button"))
    built = ws.folder / "exports" / f"{ws.folder.name}-imagefolder.zip"
    assert "e.png" in zip_contents(built.read_bytes())["skipped-files.csv"].decode()


# --------------------------------------------------------------------------- 13. terminal escapes

def test_the_cli_escapes_control_characters_in_every_name_it_prints(roots, capsys):
    from hdl_core import cli
    data, _ = roots
    folder = data / "ansi"
    write(folder / "red" / "a.png", image_bytes(color=(250, 0, 0)))
    write(folder / "red" / "b.png", image_bytes(color=(240, 0, 0)))
    write(folder / "blue" / "c.png", image_bytes(color=(0, 0, 250)))
    write(folder / "blue" / "d.png", image_bytes(color=(0, 0, 240)))
    write(folder / "evil\x1b]0;pwned\x07\nfake: line.png", b"not an image")
    write(folder / "u\x1b[2J.png", image_bytes(color=(245, 0, 0)))
    status = cli.main(["suggest", str(folder), "--encoder", "pixels", "--k", "1", "--n", "3",
                       "--workspace", str(data / "ws")])
    assert status == 0
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream and "\x07" not in stream
    assert "evil\\x1b]0;pwned\\x07\\nfake: line.png" in captured.err       # one line, escaped
    assert not any(line.startswith("fake: line") for line in captured.err.splitlines())


# --------------------------------------------------------------------------- 8. names as text

MARKUP_NAMES = ["**bold**", "$$\\frac12$$", "[click](http://evil.example)", "# heading",
                ":red[alarm]"]


def test_names_are_escaped_for_markdown_so_they_show_as_typed():
    import state
    for name in MARKUP_NAMES + ["1. first", "a_b_c", "<b>x</b>"]:
        escaped = state.escape_markdown(name)
        assert "**" not in escaped and "$$" not in escaped and "](" not in escaped.replace("\\](", "")
        assert not escaped.startswith(("#", "1."))
        # removing the escapes gives the name back: nothing is lost, only neutralised
        assert re_unescape(escaped) == name
    assert state.shown("x" * 300, 60).endswith("…") and len(state.shown("x" * 300, 60)) == 60


def re_unescape(text: str) -> str:
    import re
    return re.sub(r"\\(.)", r"\1", text)


def test_plotly_gets_names_as_text_and_long_names_cut_in_the_legend():
    from app_pages import _map
    evil = '<a href="http://evil.example">click</a>'
    long_name = "L" * 250
    figure = _map.class_map(np.zeros((3, 2)), np.arange(3), np.array([evil, long_name, None], object),
                            [evil, long_name], hover=np.array(["%{x}<b>p</b>.png", "b.png", "c.png"]),
                            given=np.zeros(3, bool))
    names = [trace["name"] for trace in figure["data"]]
    assert all("<a" not in name for name in names)
    assert max(len(html.unescape(name)) for name in names) <= _map.LEGEND_CHARACTERS
    for trace in figure["data"]:
        assert "<a " not in "".join(trace["text"]) and "<b>" not in "".join(trace["text"])
        assert "evil" not in trace["hovertemplate"] and "L" * 40 not in trace["hovertemplate"]
    assert long_name in "".join(figure["data"][1]["text"])                  # whole on hover


def test_the_label_page_map_shows_class_names_as_text(labeled_ws):
    import importlib
    from hdl_core.auto_k import KIntent
    ws, folder = labeled_ws
    evil = '<a href="http://evil.example">%{x}</a>'
    ids = dict(zip(ws.ok_items()["path"], ws.ok_items()["id"]))
    ws.add_correction([ids["e.png"]], evil)
    emb = pipeline.current_embedding(ws)
    run = pipeline.run_labeling(ws, emb, KIntent.parse(2))
    label_page = importlib.import_module("app_pages.label")
    graph = pipeline.neighbour_graph(ws, emb)
    view = label_page.prepare(ws, run.hdl_id, run.baseline_id, graph.indices)
    figure = label_page.map_figure(view, np.zeros((5, 2)), 0)
    for trace in figure["data"]:
        assert "<a " not in trace["name"] and "evil" not in trace["hovertemplate"]


def test_a_class_name_longer_than_the_limit_is_refused_with_a_clear_message(dataset_ws):
    ws, _ = dataset_ws
    item = int(ws.ok_items()["id"].iloc[0])
    with pytest.raises(ValueError, match="at most 100 characters; this one has 250"):
        ws.add_correction([item], "x" * 250)
    with pytest.raises(ValueError, match="control characters"):
        ws.set_seed(item, "two\nlines")
    assert ws.corrections().empty


def test_a_class_folder_whose_name_cannot_be_a_class_is_skipped_with_the_reason(roots):
    data, _ = roots
    write(data / "ds" / ("c" * 150) / "a.png", image_bytes())
    write(data / "ds" / "ok" / "b.png", image_bytes("L"))
    dataset = images.load_folder("ds")
    assert dataset.paths == ["ok/b.png"]
    assert "at most 100 characters" in dataset.skipped[0].reason


def test_the_data_page_shows_a_markup_class_name_as_typed(dataset_ws):
    ws, _ = dataset_ws
    ids = list(ws.ok_items()["id"])
    ws.set_seed(int(ids[-1]), "$$\\frac12$$")
    ws.set_setting("label", "Folder: **bold** [x](http://evil.example)")
    at = app_on(ws.folder)
    assert not at.exception
    heading = at.subheader[0].value
    assert "**bold**" not in heading and "\\*\\*bold\\*\\*" in heading and "\\[x\\]" in heading
    assert not any("$$\\frac12$$" in info.value for info in at.info)


# --------------------------------------------------------------------------- 16. identical copies

def duplicated_workspace(folder: Path, *, distinct=12, copies=30, d=16, seed=0):
    """A workspace of `distinct` images each stored `copies` times (identical embeddings);
    one copy of each of four images is a seed (two classes)."""
    from types import SimpleNamespace
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(distinct, d)).astype(np.float32)
    paths = [f"img/{v:03d}-{c:03d}.png" for v in range(distinct) for c in range(copies)]
    seeds = {f"img/{v:03d}-000.png": ("a" if v < 2 else "b") for v in range(4)}
    items = [SimpleNamespace(path=p, content_hash=p[4:7], size=10, seed_label=seeds.get(p),
                             seed_source="csv" if p in seeds else None) for p in paths]
    ws = Workspace(folder)
    ws.set_dataset(SimpleNamespace(root=str(folder / "none"), items=items, skipped=[], truth=None))
    X = vectors[[int(p[4:7]) for p in paths]]
    return ws, pipeline.import_embeddings(ws, paths, X, label="test"), paths


def test_identical_copies_are_labeled_as_one_and_share_label_step_and_round(tmp_path):
    from hdl_core.auto_k import KIntent
    ws, emb, paths = duplicated_workspace(tmp_path / "ws")
    run = pipeline.run_labeling(ws, emb, KIntent.parse(3), with_baseline=False)
    result = run.result
    image = np.array([int(p[4:7]) for p in ws.ok_items()["path"]])
    unlabeled = result.step >= 0
    for v in range(12):
        copies = (image == v) & unlabeled
        for field in ("labels", "step", "round"):
            assert len(set(getattr(result, field)[copies].tolist())) == 1, (v, field)
    bridged_images = set(image[result.fallback].tolist())
    assert len(bridged_images) <= 8                                    # never one per copy
    assert (result.labels >= 0).all()
    stored = ws.load_run(run.hdl_id)
    # nodes: the 4 seeds, and one per image for its unlabeled copies (12)
    assert stored.params["collapsed_duplicates"] == 12 * 30 - (4 + 12)
    # the Label page replays such a run on the full graph like any other
    import importlib
    from hdl_core.explain import round_view, vote_detail
    label_page = importlib.import_module("app_pages.label")
    graph = pipeline.neighbour_graph(ws, emb)
    view = label_page.prepare(ws, run.hdl_id, None, graph.indices)
    for r in range(result.n_rounds):
        label_page.map_figure(view, np.zeros((len(image), 2)), r)
        round_view(graph.indices, result, r)
    for point in range(0, len(image), 37):
        vote_detail(graph.indices, result, point)


def test_a_second_labeling_reuses_the_row_numbers_and_folds_the_same_copies(tmp_path,
                                                                           monkeypatch):
    from hdl_core.auto_k import KIntent
    ws, emb, _ = duplicated_workspace(tmp_path / "ws")
    calls = []
    real = pipeline.distinct_rows
    monkeypatch.setattr(pipeline, "distinct_rows", lambda X: calls.append(1) or real(X))
    first = pipeline.run_labeling(ws, emb, KIntent.parse(3), with_baseline=False)
    second = pipeline.run_labeling(ws, emb, KIntent.parse(3), with_baseline=False)
    assert len(calls) == 1                                  # hashed once for these embeddings
    for run in (first, second):
        assert ws.load_run(run.hdl_id).params["collapsed_duplicates"] == 12 * 30 - (4 + 12)
    np.testing.assert_array_equal(first.result.step, second.result.step)
    y, _ = pipeline.seed_vector(ws, emb.item_ids)
    for given in (None, emb.row_numbers()):
        nodes, node_of = pipeline.duplicate_nodes(emb.X, y, 3, vector=given)
        assert nodes.size == 4 + 12 and (emb.X[nodes][node_of] == emb.X).all()


@pytest.mark.parametrize("variant", ["reach", "balanced", "paper"])
def test_a_few_identical_files_leave_labeling_exactly_as_before(tmp_path, variant):
    from hdl_core.auto_k import KIntent
    from hdl_core.variants import label_function
    ws, emb, _ = duplicated_workspace(tmp_path / "ws", copies=3)       # groups of 3 <= k = 3
    run = pipeline.run_labeling(ws, emb, KIntent.parse(3), variant=variant, with_baseline=False)
    y, _ = pipeline.seed_vector(ws, emb.item_ids)
    plain = label_function(variant)(emb.X, y, k=3, graph=pipeline.neighbour_graph(ws, emb, 3))
    np.testing.assert_array_equal(run.result.step, plain.step)
    np.testing.assert_array_equal(run.result.labels, plain.labels)
    assert "collapsed_duplicates" not in ws.load_run(run.hdl_id).params


# --------------------------------------------------------------------------- attacks that held

@pytest.mark.parametrize("typed", ["../..", "..\\..\\etc", "....//....//etc", "/etc/../etc",
                                   "pets/../../..", "%2e%2e/%2e%2e/etc", "\uff0e\uff0e/etc",
                                   "pets/./../../etc", "./.."])
def test_no_spelling_of_a_typed_path_leaves_the_data_root(roots, typed):
    data, _ = roots
    try:
        resolved = images.resolve_in_data_root(typed)
    except DatasetError:
        return                                              # refused: fine
    assert resolved.is_relative_to(data.resolve())          # or taken as a name inside it


def test_a_zip_whose_headers_understate_the_expanded_size_is_refused(roots):
    import struct
    data, _ = roots
    archive = bytearray(make_zip([("p/a.bin", b"\0" * 50_000)]))
    local = archive.find(b"PK\x03\x04")
    central = archive.find(b"PK\x01\x02")
    archive[local + 22:local + 26] = struct.pack("<I", 10)        # uncompressed size: 10 bytes
    archive[central + 24:central + 28] = struct.pack("<I", 10)
    with pytest.raises(DatasetError):
        images.extract_zip(bytes(archive), data / "up", max_total_bytes=1000)
    assert not (data / "up").exists() and list(data.iterdir()) == []


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(image_bytes("P", (2, 2), "GIF"))
    data[6:10] = struct_pack("<HH", width, height)                # logical screen size
    descriptor = data.find(b"\x2c")
    data[descriptor + 5:descriptor + 9] = struct_pack("<HH", width, height)
    return bytes(data)


def tiff_declaring(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height),
               (279, 4, 1, 1)]
    body = struct_pack("<2sHI", b"II", 42, 8 + 1) + b"\0"
    ifd = struct_pack("<H", len(entries)) + b"".join(
        struct_pack("<HHII", tag, kind, count, value) for tag, kind, count, value in entries)
    return body[:8] + b"\0" + ifd + struct_pack("<I", 0)


def webp_declaring(width: int, height: int) -> bytes:
    data = bytearray(image_bytes("RGB", (4, 4), "WEBP", exif=b"Exif\0\0II*\0\x08\0\0\0\0\0"))
    at = data.find(b"VP8X")
    data[at + 12:at + 15] = (width - 1).to_bytes(3, "little")
    data[at + 15:at + 18] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def struct_pack(fmt, *values) -> bytes:
    import struct
    return struct.pack(fmt, *values)


def test_image_bombs_of_every_accepted_format_are_skipped_unread(roots):
    data, _ = roots
    write(data / "ds" / "bomb.png", png_declaring(60000, 60000))
    write(data / "ds" / "bomb.gif", gif_declaring(65000, 65000))
    write(data / "ds" / "bomb.tif", tiff_declaring(60000, 60000))
    write(data / "ds" / "bomb.webp", webp_declaring(16383, 16383))
    write(data / "ds" / "fine.png", image_bytes())
    dataset = images.load_folder("ds")
    assert dataset.paths == ["fine.png"]
    why = {entry.path: entry.reason for entry in dataset.skipped}
    assert set(why) == {"bomb.png", "bomb.gif", "bomb.tif", "bomb.webp"}
    for name in ("bomb.png", "bomb.gif", "bomb.tif"):
        assert "too large" in why[name], (name, why[name])


def test_file_names_are_never_run_by_a_shell(roots, tmp_path, monkeypatch, capsys):
    from hdl_core import cli
    data, _ = roots
    monkeypatch.chdir(tmp_path)
    names = ["$(touch PWNED).png", "`touch PWNED`.png", "a;touch PWNED.png", "b|touch PWNED.png",
             "c&&touch PWNED.png"]
    for i, name in enumerate(names):
        write(data / "shell" / ("x" if i < 2 else "y") / name, image_bytes(color=(60 * i, 9, 9)))
    assert cli.main(["label", str(data / "shell"), "--encoder", "pixels", "--k", "1", "--quiet",
                     "--out", str(tmp_path / "out.csv"), "--workspace", str(tmp_path / "ws")]) == 0
    assert not list(tmp_path.rglob("PWNED")) and not list(data.rglob("PWNED"))
    assert not Path("PWNED").exists()


def test_a_pickled_embedding_file_is_refused_not_loaded(tmp_path):
    from hdl_core.embed import EmbeddingError, load_precomputed
    marker = tmp_path / "ran"
    np.save(tmp_path / "emb.npy", np.array([Exploit(marker)], dtype=object), allow_pickle=True)
    (tmp_path / "emb.paths.txt").write_text("a.png\n")
    with pytest.raises(EmbeddingError, match="not loaded for safety"):
        load_precomputed(tmp_path / "emb.npy")
    assert not marker.exists()


class Exploit:
    """Unpickling this would create a file: what a hostile checkpoint or array file does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.slow
def test_a_malicious_checkpoint_runs_no_code(tmp_path):
    import torch
    from hdl_core.embed import make_encoder
    marker = tmp_path / "ran"
    checkpoint = tmp_path / "evil.pt"
    torch.save({"state_dict": Exploit(marker)}, checkpoint)
    encoder = make_encoder("clip", model="ViT-S-32", pretrained=str(checkpoint), image_size=64,
                           device="cpu")
    with pytest.raises(Exception):
        encoder.load()
    assert not marker.exists()


def test_moving_a_damaged_workspace_aside_starts_afresh_on_the_same_dataset(dataset_ws):
    ws, folder = dataset_ws
    ids = dict(zip(ws.ok_items()["path"], ws.ok_items()["id"]))
    ws.set_setting("label", "Folder: pets")
    ws.close()
    import sqlite3
    with sqlite3.connect(ws.db_path) as conn:   # the items table's page is damaged; meta is not
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'items'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(ws.db_path, "r+b") as db:
        db.seek((page - 1) * size + 8)
        db.write(b"\xff" * 512)
    at = app_on(ws.folder)
    assert "damaged" in texts(at)
    next(b for b in at.button if b.key == "move_damaged_aside").click().run()
    assert not at.exception
    assert at.subheader[0].value == "Open: Folder: pets"
    assert next(m for m in at.metric if m.label == "Images").value == "5"
    fresh = Workspace(ws.folder)
    assert set(fresh.ok_items()["path"]) == set(ids)

"""Scanning a dataset folder: every file becomes an `Item` or a `Skipped` with its reason.

Seeds from the layout: an image inside a subfolder is a seed of the class named by its
*first* path component, however deep it sits (``cats/indoor/x.png`` is a seed of
``cats``). Images at the top level, or under a folder named ``unlabeled`` (or
``unlabelled``, any case), are unlabeled. A seed CSV (`read_seed_csv`) of ``path,label``
rows overrides the layout for the paths it lists. ``truth.csv`` at the dataset root is
ground truth (the demo writes one), never seeds: it is read into `Dataset.truth` and not
scanned as an image.

What a scan skips, and says so: hidden files and folders (names starting with ``.``; a
hidden folder is one entry and is not entered), files whose extension is not one of the
raster formats read (`hdl_core.data.imageio.RASTER_FORMATS`: JPEG, PNG, WebP, GIF, BMP,
TIFF) or that have no extension, symbolic links (never followed, to files or folders),
hard links (a file with more than one name, which may be an outside file's), and files
that cannot be opened, verified and decoded as one of those formats: empty, truncated,
corrupt, or over the pixel limit. Every file is opened through
`hdl_core.data.files.open_dataset_file`, the same door every later reader uses. Files with
identical bytes are all kept as items and listed in `Dataset.duplicates`.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from PIL import Image

from .._checks import check_positive_int, class_name_problem
from .dataset import (TRUTH_CSV, UNLABELED_FOLDERS, Dataset, DatasetError, Item, Skipped,
                      data_root, resolve_in_data_root)
from .files import DatasetFileError, open_dataset_file
from .imageio import (DEFAULT_MAX_PIXELS, describe_error, image_extensions, open_raster,
                      pixel_limit_problem)
from .seed_csv import read_seed_csv

Progress = Callable[[int, int], None]   # (done, total)

# Files up to this size are read once into memory (hash and decode from the same bytes);
# bigger ones are hashed in chunks and decoded from disk.
_IN_MEMORY_BYTES = 64 * 2**20
_HASH_CHUNK_BYTES = 2**20


def load_folder(folder: str | Path, *, seeds_csv=None, root: Path | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS, progress: Progress | None = None,
                workers: int | None = None) -> Dataset:
    """Scan a folder under the data root into a `Dataset`.

    Parameters
    ----------
    folder : str or Path
        The dataset folder, absolute or relative to the data root.
    seeds_csv : str, Path, bytes or file object, optional
        A ``path,label`` CSV (see `read_seed_csv`) applied over the layout seeds. A relative
        path is taken relative to `folder`; a CSV file inside `folder` is not scanned as an
        image. The path is not confined to the data root: callers that take it from a
        browser user should pass the uploaded bytes instead.
    root : Path, optional
        The data root `folder` must be under; default `data_root()`.
    max_pixels : int, default 50_000_000
        Images with more pixels are skipped as possible decompression bombs (Pillow's own
        limit, twice ``Image.MAX_IMAGE_PIXELS``, still applies above that).
    progress : callable (done, total), optional
        Called with the number of files checked so far, at least at the start and the end.
    workers : int, optional
        Threads checking files (Pillow and hashlib release the GIL); default
        ``min(8, os.cpu_count())``.

    Returns
    -------
    Dataset
        May have no items; then `Dataset.skipped` says why.

    Raises
    ------
    DatasetError
        When `folder` is outside the data root or is not a folder, or the seed CSV is bad.
    """
    max_pixels = check_positive_int(max_pixels, "max_pixels", error=DatasetError)
    workers = check_positive_int(workers or min(8, os.cpu_count() or 1), "workers",
                                 error=DatasetError)
    data_root_path = (data_root() if root is None else Path(root)).resolve()
    folder_path = resolve_in_data_root(folder, data_root_path)
    if not folder_path.is_dir():
        what = "does not exist" if not folder_path.exists() else "is not a folder"
        shown = (folder_path.relative_to(data_root_path).as_posix()
                 if folder_path.is_relative_to(data_root_path) else str(folder))
        raise DatasetError(f"dataset folder {shown!r} {what}; "
                           "choose an existing folder under the data root")

    not_images = {TRUTH_CSV}
    if isinstance(seeds_csv, (str, Path)):
        seeds_csv = folder_path / Path(seeds_csv).expanduser()
        if seeds_csv.resolve().is_relative_to(folder_path):
            not_images.add(seeds_csv.resolve().relative_to(folder_path).as_posix())

    candidates, skipped = _walk(folder_path, not_images)
    items = _check_files(folder_path, candidates, max_pixels, progress, workers, skipped)
    items.sort(key=lambda item: item.path)
    skipped.sort(key=lambda entry: entry.path)
    for item in items:
        item.seed_label = _layout_label(item.path)
    items = _refuse_bad_class_folders(items, skipped)

    dataset = Dataset(root=folder_path, items=items, skipped=skipped,
                      duplicates=_duplicate_groups(items))
    if seeds_csv is not None:
        labels = read_seed_csv(seeds_csv, dataset)
        for item in items:
            if item.path in labels:
                item.seed_label = labels[item.path]
    truth_file = folder_path / TRUTH_CSV
    if truth_file.is_file():
        truth = read_seed_csv(truth_file, dataset)
        dataset.truth = {path: label for path, label in truth.items() if label is not None}
    return dataset


def _walk(folder: Path, not_images: set[str]) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """Files to check, as (relative path, absolute path), and what was skipped on sight."""
    extensions = image_extensions()
    candidates: list[tuple[str, Path]] = []
    skipped: list[Skipped] = []
    pending = [(folder, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as error:
            skipped.append(Skipped(prefix.rstrip("/") or ".",
                                   f"cannot list folder ({error.strerror or error})"))
            continue
        for entry in entries:
            relative = prefix + _printable(entry.name)
            reason = None
            if entry.name != _printable(entry.name):
                reason = "file name is not valid UTF-8; rename it"
            elif entry.name.startswith("."):
                kind = "folder" if entry.is_dir(follow_symlinks=False) else "file"
                reason = f"hidden {kind} (names starting with '.' are not scanned)"
            elif entry.is_symlink():
                reason = _symlink_problem(Path(entry.path))
            elif entry.is_dir():
                pending.append((Path(entry.path), relative + "/"))
                continue
            elif not entry.is_file():
                reason = "not a regular file"
            if reason is None:
                if relative in not_images:
                    continue
                extension = os.path.splitext(entry.name)[1].lower()
                if not extension:
                    reason = "no file extension (images need one, e.g. .jpg or .png)"
                elif extension not in extensions:
                    reason = (f"not an image file type ({extension}; JPEG, PNG, WebP, GIF, "
                              "BMP and TIFF are read)")
            if reason is None:
                candidates.append((relative, Path(entry.path)))
            else:
                skipped.append(Skipped(relative, reason))
    return candidates, skipped


def _symlink_problem(link: Path) -> str:
    """Why a symbolic link is skipped: links are never followed (where it points is not said)."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return "broken symbolic link"
    if target.is_dir():
        return "symbolic link to a folder (not followed; copy the folder in instead)"
    return "symbolic link (not followed; copy the file in instead)"


def _check_files(folder: Path, candidates: list[tuple[str, Path]], max_pixels: int,
                 progress: Progress | None, workers: int, skipped: list[Skipped]) -> list[Item]:
    """Hash and check every candidate in a thread pool; return the items, extend `skipped`."""
    total = len(candidates)
    report_every = max(1, total // 200)
    if progress is not None:
        progress(0, total)
    items: list[Item] = []
    # Our own `max_pixels` replaces Pillow's DecompressionBombWarning (raised at ~89 MP).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda candidate: _inspect_file(folder, candidate[0], max_pixels),
                               candidates)
            for done, ((relative, _), (size, digest, problem)) in enumerate(
                    zip(candidates, results), start=1):
                if problem is None:
                    items.append(Item(path=relative, content_hash=digest, size=size))
                else:
                    skipped.append(Skipped(relative, problem))
                if progress is not None and (done % report_every == 0 or done == total):
                    progress(done, total)
    return items


def _inspect_file(folder: Path, relative: str, max_pixels: int) -> tuple[int, str, str | None]:
    """(size, sha256 hex, problem or None) for one file; never raises."""
    try:
        with open_dataset_file(relative, folder) as stream:
            size = os.fstat(stream.fileno()).st_size
            if size == 0:
                return 0, hashlib.sha256(b"").hexdigest(), "empty file (0 bytes)"
            if size <= _IN_MEMORY_BYTES:
                data = stream.read()
                return len(data), hashlib.sha256(data).hexdigest(), _image_problem(data, max_pixels)
            digest = hashlib.sha256()
            while chunk := stream.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
            return size, digest.hexdigest(), _image_problem(stream, max_pixels)
    except DatasetFileError as error:
        return 0, "", error.reason
    except OSError as error:
        return 0, "", f"cannot read file ({error.strerror or type(error).__name__})"


def _image_problem(source, max_pixels: int) -> str | None:
    """Why this image cannot be used, or None.

    Three steps, cheapest first: the header (size against `max_pixels`, before any pixel
    is decoded), ``verify()`` (chunk CRCs and structure, e.g. a PNG without IEND), and a
    decode. A truncated JPEG passes ``verify()``, so it is decoded too, in draft mode at
    1/8 scale: that still reads the whole entropy-coded stream, so truncation raises.
    Only the raster formats are tried (`open_raster`), whatever the extension says.
    """
    def opened():
        if isinstance(source, bytes):
            return open_raster(io.BytesIO(source), "")
        source.seek(0)
        return open_raster(source, "")

    try:
        with opened() as image:
            problem = pixel_limit_problem(image.size, max_pixels)
            if problem is not None:
                return problem
            image.verify()
        with opened() as image:
            if image.format == "JPEG":
                image.draft(image.mode, (1, 1))
            image.load()
    except DatasetError as error:   # from open_raster: "not an image" or "corrupt image ..."
        return str(error).removeprefix(": ")
    except Image.DecompressionBombError:
        return "image too large, possible decompression bomb"
    except Exception as error:   # Pillow raises many types on bad data; none may escape
        message = describe_error(error)
        if "truncat" in message.lower() or isinstance(error, EOFError):
            return f"truncated file ({message})"
        return f"corrupt image ({message})"
    return None


def _refuse_bad_class_folders(items: list[Item], skipped: list[Skipped]) -> list[Item]:
    """Skip the images of a class folder whose name cannot be a class (too long, control
    characters), saying why, rather than refusing the whole dataset later."""
    kept = []
    for item in items:
        problem = None if item.seed_label is None else class_name_problem(item.seed_label)
        if problem is None:
            kept.append(item)
        else:
            skipped.append(Skipped(item.path, f"its folder cannot name a class: {problem}; "
                                              "rename the folder"))
    skipped.sort(key=lambda entry: entry.path)
    return kept


def _layout_label(path: str) -> str | None:
    """Seed class from the layout: the first folder, unless at top level or `unlabeled/`."""
    first, separator, _ = path.partition("/")
    if not separator or first.lower() in UNLABELED_FOLDERS:
        return None
    return first


def _duplicate_groups(items: list[Item]) -> list[list[str]]:
    by_hash: dict[str, list[str]] = {}
    for item in items:
        by_hash.setdefault(item.content_hash, []).append(item.path)
    return sorted(sorted(paths) for paths in by_hash.values() if len(paths) > 1)


def _printable(name: str) -> str:
    """`name` with undecodable bytes (surrogate escapes) shown as \\x.. escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


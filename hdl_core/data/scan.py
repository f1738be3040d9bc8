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

Opening a folder again: given what the store knows of each file (``known``: path -> size,
modification time, content hash, from `Workspace.file_stats`), a file whose size and
modification time (nanoseconds) are unchanged, and that is still a plain file with one
name, is taken as it was without being read: a stat instead of a hash and a decode, so an
unchanged folder of 100,000 images opens in about a second. Anything else is read again
through the door. A file modified within `RECENT_NS` of the scan gets no recorded time,
so the next scan reads it again: its time alone cannot tell a later change in the same
clock tick apart.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import time
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
# A file modified this close to the scan keeps no recorded time (read again next time).
RECENT_NS = 2 * 10**9


def load_folder(folder: str | Path, *, seeds_csv=None, root: Path | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS, progress: Progress | None = None,
                workers: int | None = None,
                known: dict[str, tuple[int, int, str]] | None = None) -> Dataset:
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
    known : dict of str to (int, int, str), optional
        What an earlier scan found: relative path -> (size, modification time in ns,
        content hash) (`Workspace.file_stats`). A file with the same size and time is not
        read again (see the module docstring).

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

    started_ns = time.time_ns()
    candidates, skipped = _walk(folder_path, not_images)
    unchanged, candidates = _unchanged(candidates, known or {}, started_ns)
    items = unchanged + _check_files(folder_path, candidates, max_pixels, progress, workers,
                                     skipped, already=len(unchanged), started_ns=started_ns)
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


def _walk(folder: Path, not_images: set[str]) -> tuple[list[tuple], list[Skipped]]:
    """Files to check, as (relative path, absolute path as a string, lstat result or None),
    and what was skipped on sight. No `Path` per file: building 100,000 of them was 40 % of
    re-opening an unchanged folder of that size."""
    extensions = image_extensions()
    candidates: list[tuple[str, str, os.stat_result | None]] = []
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
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    info = None
                candidates.append((relative, entry.path, info))
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


def _unchanged(candidates: list[tuple], known: dict, started_ns: int) -> tuple[list[Item], list]:
    """Split the candidates into items taken as the store knew them (same size and time, a
    plain file with one name: `Item` without reading it) and those to read again."""
    if not known:
        return [], candidates
    same, again = [], []
    for candidate in candidates:
        relative, _, info = candidate
        before = known.get(relative)
        if (before is not None and info is not None and stat.S_ISREG(info.st_mode)
                and info.st_nlink == 1 and before[0] == info.st_size
                and before[1] == info.st_mtime_ns and started_ns - info.st_mtime_ns > RECENT_NS):
            same.append(Item(path=relative, content_hash=before[2], size=info.st_size,
                             mtime_ns=info.st_mtime_ns))
        else:
            again.append(candidate)
    return same, again


def _check_files(folder: Path, candidates: list[tuple], max_pixels: int,
                 progress: Progress | None, workers: int, skipped: list[Skipped], *,
                 already: int = 0, started_ns: int | None = None) -> list[Item]:
    """Hash and check every candidate in a thread pool; return the items, extend `skipped`.

    `already` files were taken without reading (counted as done in the progress)."""
    total = len(candidates) + already
    report_every = max(1, total // 200)
    if progress is not None:
        progress(already, total)
    started_ns = time.time_ns() if started_ns is None else started_ns
    items: list[Item] = []
    # Our own `max_pixels` replaces Pillow's DecompressionBombWarning (raised at ~89 MP).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda candidate: _inspect_file(folder, candidate[0], max_pixels),
                               candidates)
            for done, ((relative, _, _), (size, digest, problem, mtime)) in enumerate(
                    zip(candidates, results), start=already + 1):
                if problem is None:
                    recent = mtime is None or started_ns - mtime <= RECENT_NS
                    items.append(Item(path=relative, content_hash=digest, size=size,
                                      mtime_ns=None if recent else mtime))
                else:
                    skipped.append(Skipped(relative, problem))
                if progress is not None and (done % report_every == 0 or done == total):
                    progress(done, total)
    return items


def _inspect_file(folder: Path, relative: str, max_pixels: int
                  ) -> tuple[int, str, str | None, int | None]:
    """(size, sha256 hex, problem or None, modification time in ns as opened) for one file;
    never raises."""
    try:
        with open_dataset_file(relative, folder) as stream:
            info = os.fstat(stream.fileno())
            size, mtime = info.st_size, info.st_mtime_ns
            if size == 0:
                return 0, hashlib.sha256(b"").hexdigest(), "empty file (0 bytes)", mtime
            if size <= _IN_MEMORY_BYTES:
                data = stream.read()
                after = os.fstat(stream.fileno()).st_mtime_ns
                return (len(data), hashlib.sha256(data).hexdigest(),
                        _image_problem(data, max_pixels), mtime if after == mtime else None)
            digest = hashlib.sha256()
            while chunk := stream.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
            after = os.fstat(stream.fileno()).st_mtime_ns
            return (size, digest.hexdigest(), _image_problem(stream, max_pixels),
                    mtime if after == mtime else None)
    except DatasetFileError as error:
        return 0, "", error.reason, None
    except OSError as error:
        return 0, "", f"cannot read file ({error.strerror or type(error).__name__})", None


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


"""Datasets: scanning image folders, zips and uploads; seeds; checks; the built-in demo.

Every function here is pure Python + Pillow, no Streamlit. Paths inside a `Dataset` are
POSIX paths relative to the dataset root, and items are ordered by that path.

Where images come from
----------------------
- A folder on the server, confined to the data root (`data_root`: ``HDL_DATA_ROOT``, else
  ``data/`` in the project). `resolve_in_data_root` refuses anything outside it, whether
  reached through ``..`` or through a symbolic link.
- A zip archive: `extract_zip` writes it into a folder, then `load_folder` scans that folder.
- Uploaded files: `save_uploads` writes ``(name, bytes)`` pairs (names may carry the folder
  path of a folder upload) into a folder, then `load_folder` scans it.

Seeds
-----
- Layout: an image inside a subfolder is a seed of the class named by its *first* path
  component, however deep it sits (``cats/indoor/x.png`` is a seed of ``cats``). Images at
  the top level, or under a folder named ``unlabeled`` (or ``unlabelled``, any case), are
  unlabeled.
- A seed CSV (`read_seed_csv`) of ``path,label`` rows overrides the layout for the paths it
  lists; a blank label makes a path unlabeled.
- ``truth.csv`` at the dataset root is ground truth (the demo writes one), never seeds: it is
  read into `Dataset.truth` and not scanned as an image.

What a scan skips, and says so
------------------------------
Every file is listed either as an `Item` or as a `Skipped` with a reason: hidden files and
folders (names starting with ``.``; a hidden folder is one entry and is not entered), files
whose extension is not an image type Pillow can open (or that have no extension), symbolic
links to folders (not followed) or to files outside the data root, and files Pillow cannot
open, verify and decode: empty, truncated, corrupt, or over the pixel limit.
Files with identical bytes are all kept as items and listed in `Dataset.duplicates`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Progress = Callable[[int, int], None]   # (done, total)

# Images with more pixels than this are skipped (decompression bombs): 50 megapixels is
# above any camera photo in common use and below Pillow's own warning threshold (~89 MP).
DEFAULT_MAX_PIXELS = 50_000_000
# Zip limits: the sum of the entries' expanded sizes, and the number of entries.
DEFAULT_MAX_ZIP_BYTES = 2 * 2**30
DEFAULT_MAX_ZIP_FILES = 100_000
# Files up to this size are read once into memory (hash and decode from the same bytes);
# bigger ones are hashed in chunks and decoded from disk.
_IN_MEMORY_BYTES = 64 * 2**20
_HASH_CHUNK_BYTES = 2**20

UNLABELED_FOLDERS = frozenset({"unlabeled", "unlabelled"})   # compared lower-cased
TRUTH_CSV = "truth.csv"
DEMO_FOLDER = "demo-digits"
DEMO_SEEDS_PER_CLASS = 3
DEMO_IMAGE_SIZE = 32
DEMO_RANDOM_SEED = 0
# Extracted from a zip but never part of a dataset: macOS resource forks.
_ZIP_IGNORED_TOP_FOLDERS = frozenset({"__MACOSX"})

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


class DatasetError(ValueError):
    """Bad dataset input; the message says what, where and how to fix it."""


@dataclass
class Item:
    """One accepted image.

    Attributes
    ----------
    path : str
        Relative POSIX path under `Dataset.root`, e.g. ``"cats/a.png"``.
    content_hash : str
        sha256 hex digest of the file's bytes.
    size : int
        File size in bytes.
    seed_label : str or None
        Class name when the file is a seed, else None.
    """

    path: str
    content_hash: str
    size: int
    seed_label: str | None = None


@dataclass
class Skipped:
    """A file or folder the scan did not accept, and why.

    Attributes
    ----------
    path : str
        Relative POSIX path under the dataset root.
    reason : str
        Human-readable, e.g. ``"empty file (0 bytes)"`` or ``"truncated file (...)"``.
    """

    path: str
    reason: str


@dataclass
class Dataset:
    """The accepted images of one dataset folder, their seeds, and what was skipped.

    Attributes
    ----------
    root : Path
        The dataset folder (resolved, absolute).
    items : list of Item
        Accepted images, ordered by path.
    skipped : list of Skipped
        Everything not accepted, ordered by path, each with its reason.
    duplicates : list of list of str
        Groups (two or more paths each) of items with identical bytes. Duplicates stay in
        `items`; the caller decides what to do with them.
    truth : dict of str to str, or None
        Ground-truth labels from ``truth.csv`` at the dataset root (the demo has one).
    """

    root: Path
    items: list[Item]
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    truth: dict[str, str] | None = None

    @property
    def classes(self) -> list[str]:
        """Seed class names, sorted as strings (a stable order)."""
        return sorted({item.seed_label for item in self.items if item.seed_label is not None})

    @property
    def paths(self) -> list[str]:
        """Relative paths of the items, in item order."""
        return [item.path for item in self.items]

    def seed_array(self, classes: list[str] | None = None) -> np.ndarray:
        """Seed labels as class indices, aligned with `items`.

        Parameters
        ----------
        classes : list of str, optional
            The class order to index into; default `classes`. It must contain every seed label.

        Returns
        -------
        ndarray of shape (n_items,), int64
            ``-1`` for unlabeled items, else the index of the item's seed label in `classes`.
        """
        classes = self.classes if classes is None else list(classes)
        index = {name: i for i, name in enumerate(classes)}
        seeds = np.full(len(self.items), -1, dtype=np.int64)
        missing: dict[str, str] = {}
        for i, item in enumerate(self.items):
            if item.seed_label is None:
                continue
            if item.seed_label not in index:
                missing.setdefault(item.seed_label, item.path)
                continue
            seeds[i] = index[item.seed_label]
        if missing:
            examples = ", ".join(f"{label!r} (e.g. {path})" for label, path in missing.items())
            raise DatasetError(f"seed labels {examples} are not in classes {classes}; "
                               f"pass classes that include every seed label")
        return seeds

    def abs_path(self, item: Item | str) -> Path:
        """Absolute path of an item (or of a relative dataset path).

        Raises DatasetError for a path that is absolute or climbs out with ``..``.
        """
        relative = item.path if isinstance(item, Item) else str(item)
        posix = PurePosixPath(relative)
        if posix.is_absolute() or ".." in posix.parts:
            raise DatasetError(f"{relative!r} is not a path inside the dataset "
                               f"(paths are relative to {self.root}, without '..')")
        return self.root.joinpath(*posix.parts)

    def abs_paths(self) -> list[Path]:
        """Absolute paths of the items, in item order."""
        return [self.root.joinpath(*PurePosixPath(item.path).parts) for item in self.items]


# ---------------------------------------------------------------------------- data root

def data_root() -> Path:
    """The folder every server-side dataset must live under.

    Returns
    -------
    Path
        ``HDL_DATA_ROOT`` when set, else ``data/`` in the project (the parent of
        ``hdl_core/``); resolved, and created when missing.
    """
    configured = os.environ.get("HDL_DATA_ROOT", "").strip()
    root = Path(configured).expanduser() if configured else Path(__file__).resolve().parent.parent / "data"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def resolve_in_data_root(path: str | Path, root: Path | None = None) -> Path:
    """Resolve a server path and refuse anything outside the data root.

    Parameters
    ----------
    path : str or Path
        Absolute, or relative to the data root. ``..`` and symbolic links are resolved
        before the check, so neither can escape.
    root : Path, optional
        The data root; default `data_root()`.

    Returns
    -------
    Path
        The resolved absolute path (it need not exist).

    Raises
    ------
    DatasetError
        When the resolved path is outside the data root.
    """
    root = (data_root() if root is None else Path(root)).resolve()
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise DatasetError(
            f"{str(path)!r} resolves to {resolved}, which is outside the data root {root}; "
            f"put the images under {root} (or set HDL_DATA_ROOT to a folder that holds them)")
    return resolved


# ---------------------------------------------------------------------------- scanning

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
    max_pixels = _check_positive_int(max_pixels, "max_pixels")
    workers = _check_positive_int(workers or min(8, os.cpu_count() or 1), "workers")
    data_root_path = (data_root() if root is None else Path(root)).resolve()
    folder_path = resolve_in_data_root(folder, data_root_path)
    if not folder_path.is_dir():
        what = "does not exist" if not folder_path.exists() else "is not a folder"
        raise DatasetError(f"dataset folder {folder_path} {what}; "
                           f"choose an existing folder under {data_root_path}")

    not_images = {TRUTH_CSV}
    if isinstance(seeds_csv, (str, Path)):
        seeds_csv = folder_path / Path(seeds_csv).expanduser()
        if seeds_csv.resolve().is_relative_to(folder_path):
            not_images.add(seeds_csv.resolve().relative_to(folder_path).as_posix())

    candidates, skipped = _walk(folder_path, data_root_path, not_images)
    items = _check_files(candidates, max_pixels, progress, workers, skipped)
    items.sort(key=lambda item: item.path)
    skipped.sort(key=lambda entry: entry.path)
    for item in items:
        item.seed_label = _layout_label(item.path)

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


def _walk(folder: Path, data_root_path: Path, not_images: set[str]
          ) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """Files to check, as (relative path, absolute path), and what was skipped on sight."""
    image_extensions = _image_extensions()
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
                reason = _symlink_problem(Path(entry.path), data_root_path)
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
                elif extension not in image_extensions:
                    reason = f"not an image file type ({extension})"
            if reason is None:
                candidates.append((relative, Path(entry.path)))
            else:
                skipped.append(Skipped(relative, reason))
    return candidates, skipped


def _symlink_problem(link: Path, data_root_path: Path) -> str | None:
    """Why a symbolic link is skipped, or None when it is a file inside the data root."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return "broken symbolic link"
    if target.is_dir():
        return "symbolic link to a folder (not followed)"
    if not target.is_relative_to(data_root_path):
        return f"symbolic link pointing outside the data root {data_root_path}"
    return None


def _check_files(candidates: list[tuple[str, Path]], max_pixels: int,
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
            results = pool.map(lambda candidate: _inspect_file(candidate[1], max_pixels),
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


def _inspect_file(path: Path, max_pixels: int) -> tuple[int, str, str | None]:
    """(size, sha256 hex, problem or None) for one file; never raises."""
    try:
        size = path.stat().st_size
        if size == 0:
            return 0, hashlib.sha256(b"").hexdigest(), "empty file (0 bytes)"
        if size <= _IN_MEMORY_BYTES:
            data = path.read_bytes()
            return len(data), hashlib.sha256(data).hexdigest(), _image_problem(data, max_pixels)
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
        return size, digest.hexdigest(), _image_problem(path, max_pixels)
    except OSError as error:
        return 0, "", f"cannot read file ({error.strerror or error})"


def _image_problem(source: bytes | Path, max_pixels: int) -> str | None:
    """Why Pillow cannot use this image, or None.

    Three steps, cheapest first: the header (size against `max_pixels`, before any pixel
    is decoded), ``verify()`` (chunk CRCs and structure, e.g. a PNG without IEND), and a
    decode. A truncated JPEG passes ``verify()``, so it is decoded too, in draft mode at
    1/8 scale: that still reads the whole entropy-coded stream, so truncation raises.
    """
    def opened():
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)

    try:
        with opened() as image:
            problem = _pixel_limit_problem(image.size, max_pixels)
            if problem is not None:
                return problem
            image.verify()
        with opened() as image:
            if image.format == "JPEG":
                image.draft(image.mode, (1, 1))
            image.load()
    except Image.DecompressionBombError as error:
        return f"image too large, possible decompression bomb ({error})"
    except UnidentifiedImageError:
        return "not an image (Pillow cannot identify the file)"
    except Exception as error:   # Pillow raises many types on bad data; none may escape
        message = str(error) or type(error).__name__
        if "truncat" in message.lower() or isinstance(error, EOFError):
            return f"truncated file ({message})"
        return f"corrupt image ({message})"
    return None


def _pixel_limit_problem(size: tuple[int, int], max_pixels: int) -> str | None:
    width, height = size
    if width * height > max_pixels:
        return (f"image too large: {width}×{height} = {width * height:,} pixels, over the "
                f"limit of {max_pixels:,} (possible decompression bomb)")
    return None


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


_IMAGE_EXTENSIONS: frozenset[str] | None = None


def _image_extensions() -> frozenset[str]:
    """Extensions of the formats this Pillow can open (not only save)."""
    global _IMAGE_EXTENSIONS
    if _IMAGE_EXTENSIONS is None:
        Image.init()
        _IMAGE_EXTENSIONS = frozenset(extension for extension, format_name
                                      in Image.registered_extensions().items()
                                      if format_name in Image.OPEN)
    return _IMAGE_EXTENSIONS


def _printable(name: str) -> str:
    """`name` with undecodable bytes (surrogate escapes) shown as \\x.. escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DatasetError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------- seed CSV

def read_seed_csv(csv_file, dataset: Dataset) -> dict[str, str | None]:
    """Read seed labels from a ``path,label`` CSV.

    Format: UTF-8 (a BOM is fine), comma-separated. A header row is optional: the first
    row is a header when its first cell is ``path``, or when it has both a ``path`` and
    a ``label`` cell (any case; no image is named ``path``, since scanned files need an
    extension); with a header the ``path`` and ``label`` columns are found by name, in any
    position, without one they are the first two.
    Other columns are ignored, blank lines skipped. Paths are relative to the dataset root
    (``./`` and backslashes are accepted). A blank or missing label makes the path
    unlabeled. Rows naming a file the scan skipped are ignored (it is already in
    `Dataset.skipped`).

    Parameters
    ----------
    csv_file : str, Path, bytes or file object
        A file path, the CSV's bytes, or an object with ``getvalue()`` or ``read()`` (an
        uploaded file).
    dataset : Dataset
        The dataset the paths refer to.

    Returns
    -------
    dict of str to (str or None)
        Path to class name, or None for rows with a blank label.

    Raises
    ------
    DatasetError
        Naming every row whose path is not in the dataset, every pair of rows giving one
        path two labels, or saying why the file cannot be read.
    """
    name, text = _read_text(csv_file)
    rows = [(number, row) for number, row in enumerate(csv.reader(io.StringIO(text)), start=1)
            if any(cell.strip() for cell in row)]
    path_column, label_column = 0, 1
    header = [cell.strip().lower() for cell in rows[0][1]] if rows else []
    if header and (header[0] == "path" or {"path", "label"} <= set(header)):
        if "label" not in header:
            raise DatasetError(f"{name} row {rows[0][0]}: the header has no 'label' column "
                               f"(found {', '.join(map(repr, header))}); name it 'label'")
        path_column, label_column = header.index("path"), header.index("label")
        rows = rows[1:]

    known = {item.path for item in dataset.items}
    skipped = {entry.path for entry in dataset.skipped}
    labels: dict[str, str | None] = {}
    first_row: dict[str, int] = {}
    unknown: list[tuple[int, str]] = []
    conflicts: list[str] = []
    for number, row in rows:
        path = _normalise_csv_path(row[path_column] if path_column < len(row) else "")
        label = row[label_column].strip() if label_column < len(row) else ""
        label = label or None
        if path in skipped:
            continue
        if path not in known:
            unknown.append((number, path))
            continue
        if path in labels and labels[path] != label:
            conflicts.append(f"rows {first_row[path]} and {number} give {path!r} "
                             f"labels {labels[path]!r} and {label!r}")
            continue
        labels[path] = label
        first_row.setdefault(path, number)
    if unknown:
        numbers = ", ".join(str(number) for number, _ in unknown)
        shown = ", ".join(repr(path) for _, path in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise DatasetError(
            f"{name} row{'s' if len(unknown) > 1 else ''} {numbers}: {shown}{more} "
            f"{'are' if len(unknown) > 1 else 'is'} not in the dataset "
            f"(paths are relative to {dataset.root}); fix or remove those rows")
    if conflicts:
        raise DatasetError(f"{name}: {'; '.join(conflicts)}; keep one label per path")
    return labels


def _read_text(csv_file) -> tuple[str, str]:
    """(name for messages, decoded text) of a CSV given as path, bytes or file object."""
    if isinstance(csv_file, (str, Path)):
        path = Path(csv_file)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DatasetError(f"cannot read seed CSV {path}: {error.strerror or error}") from None
        name = path.name
    elif isinstance(csv_file, (bytes, bytearray)):
        data, name = bytes(csv_file), "seed CSV"
    elif hasattr(csv_file, "getvalue") or hasattr(csv_file, "read"):
        data = csv_file.getvalue() if hasattr(csv_file, "getvalue") else csv_file.read()
        name = Path(str(getattr(csv_file, "name", "seed CSV"))).name
    else:
        raise DatasetError(f"seed CSV must be a path, bytes or a file object, "
                           f"got {type(csv_file).__name__}")
    if isinstance(data, str):
        return name, data
    try:
        return name, data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{name} is not UTF-8 text (byte {error.start}); "
                           f"save it as 'CSV UTF-8'") from None


def _normalise_csv_path(path: str) -> str:
    parts = [part for part in path.strip().replace("\\", "/").split("/") if part not in ("", ".")]
    return "/".join(parts)


# ---------------------------------------------------------------------------- zip, uploads

def extract_zip(zip_file, dest: Path, *, max_total_bytes: int = DEFAULT_MAX_ZIP_BYTES,
                max_files: int = DEFAULT_MAX_ZIP_FILES, unwrap: bool = True) -> Path:
    """Safely extract a zip archive into `dest`.

    Every entry is checked before anything is written; the archive is refused (naming the
    entry) when an entry has an absolute path or a ``..`` component, is a symbolic link or
    another special file, is encrypted, or when the entries' total expanded size or their
    count passes the limits. Expanded bytes are counted again while writing, so a header
    that understates a size does not help. ``__MACOSX/`` (macOS metadata) is not extracted.
    `dest` is created when missing; files already there with the same names are replaced,
    each written to a temporary name first so no half-written file is ever visible.

    Parameters
    ----------
    zip_file : str, Path, bytes or file object
        The archive: a path, its bytes, or a binary file object (an uploaded file).
    dest : Path
        Folder to extract into (chosen by the caller, e.g. under the data root).
    max_total_bytes : int, default 2 GiB
        Limit on the sum of the entries' expanded sizes.
    max_files : int, default 100_000
        Limit on the number of entries.
    unwrap : bool, default True
        When every entry sits inside one top-level folder (``pets/cats/a.png``,
        ``pets/dogs/b.png``), return that folder, so its subfolders read as classes.

    Returns
    -------
    Path
        The folder to pass to `load_folder`: `dest`, or its single top-level folder.

    Raises
    ------
    DatasetError
        When the file is not a zip archive, or an entry or the archive breaks a rule above.
    """
    max_total_bytes = _check_positive_int(max_total_bytes, "max_total_bytes")
    max_files = _check_positive_int(max_files, "max_files")
    name, source = _zip_source(zip_file)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError) as error:
        raise DatasetError(f"{name} is not a zip archive ({error}); "
                           f"choose a .zip file or a folder of images") from None
    except OSError as error:
        raise DatasetError(f"cannot read {name}: {error.strerror or error}") from None

    with archive:
        entries = _checked_zip_entries(archive, name, max_total_bytes, max_files)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        dest_resolved = dest.resolve()
        written = 0
        for info, parts in entries:
            where = f"{name}: entry {info.filename!r}"
            target = dest_resolved.joinpath(*parts)
            if info.is_dir():
                _make_folder_inside(target, dest_resolved, where)
                continue
            budget = max_total_bytes - written
            try:
                written += _write_file_inside(
                    target, dest_resolved,
                    lambda stream, entry=info: _copy_entry(archive, entry, stream, budget,
                                                           max_total_bytes, where),
                    where)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                raise DatasetError(f"{where} is corrupt or uses an unsupported compression "
                                   f"({error}); re-create the archive") from None
    top_folders = {parts[0] for _, parts in entries}
    if unwrap and len(top_folders) == 1 and all(len(parts) > 1 or info.is_dir()
                                                for info, parts in entries):
        return dest / top_folders.pop()
    return dest


def _zip_source(zip_file) -> tuple[str, object]:
    """(name for messages, something zipfile.ZipFile accepts)."""
    if isinstance(zip_file, (str, Path)):
        path = Path(zip_file)
        if not path.is_file():
            raise DatasetError(f"zip archive {path} does not exist or is not a file")
        return path.name, path
    if isinstance(zip_file, (bytes, bytearray)):
        return "the uploaded archive", io.BytesIO(zip_file)
    if hasattr(zip_file, "read") and hasattr(zip_file, "seek"):
        return Path(str(getattr(zip_file, "name", "the uploaded archive"))).name, zip_file
    raise DatasetError(f"zip_file must be a path, bytes or a binary file object, "
                       f"got {type(zip_file).__name__}")


def _checked_zip_entries(archive: zipfile.ZipFile, name: str, max_total_bytes: int,
                         max_files: int) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Every entry to extract with its safe path parts; raises on the first bad entry."""
    infos = archive.infolist()
    if len(infos) > max_files:
        raise DatasetError(f"{name} has {len(infos):,} entries, over the limit of "
                           f"{max_files:,} (entry {max_files + 1}: {infos[max_files].filename!r}); "
                           f"split the archive")
    entries = []
    total = 0
    for info in infos:
        where = f"{name}: entry {info.filename!r}"
        parts = _safe_parts(info.filename, where)
        if parts[0] in _ZIP_IGNORED_TOP_FOLDERS:
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DatasetError(f"{where} is a symbolic link; archives with links are refused, "
                               f"zip the files themselves")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise DatasetError(f"{where} is not a regular file or folder; remove it from the archive")
        if info.flag_bits & 0x1:
            raise DatasetError(f"{where} is encrypted; zip the files without a password")
        total += info.file_size
        if total > max_total_bytes:
            raise DatasetError(f"{where} brings the expanded size to {total:,} bytes, over the "
                               f"limit of {max_total_bytes:,}; split the archive")
        entries.append((info, parts))
    return entries


def save_uploads(files: list[tuple[str, bytes]], dest: Path, *, unwrap: bool = True) -> Path:
    """Write uploaded files under `dest`, keeping the folders their names carry.

    Names from a folder upload carry relative paths (``photos/2024/a.jpg``); backslashes
    count as separators, ``.`` and empty components are dropped. A name that is absolute,
    has a ``..`` component, a NUL character, or nothing left, is refused, as are two files
    with the same path: all names are checked before anything is written. `dest` is
    created when missing; files already there with the same names are replaced, each
    written to a temporary name first.

    Parameters
    ----------
    files : list of (str, bytes)
        ``(name, content)`` pairs, e.g. ``[(f.name, f.getvalue()) for f in uploaded]``.
    dest : Path
        Folder to write into.
    unwrap : bool, default True
        When every file sits inside one top-level folder (a folder upload), return that
        folder, so its subfolders read as classes.

    Returns
    -------
    Path
        The folder to pass to `load_folder`: `dest`, or its single top-level folder.

    Raises
    ------
    DatasetError
        Naming every refused name.
    """
    planned: dict[tuple[str, ...], bytes] = {}
    problems: list[str] = []
    for index, entry in enumerate(files):
        if not (isinstance(entry, tuple) and len(entry) == 2
                and isinstance(entry[0], str) and isinstance(entry[1], (bytes, bytearray))):
            raise DatasetError(f"files[{index}] must be a (name, bytes) pair, got {type(entry).__name__}")
        name, content = entry
        try:
            parts = _safe_parts(name, f"upload {name!r}")
        except DatasetError as error:
            problems.append(str(error))
            continue
        if parts in planned:
            problems.append(f"upload {name!r} has the same path as another uploaded file")
            continue
        planned[parts] = bytes(content)
    if problems:
        raise DatasetError("; ".join(problems) + "; rename those files and upload again")

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest_resolved = dest.resolve()
    for parts, content in planned.items():
        _write_file_inside(dest_resolved.joinpath(*parts), dest_resolved,
                           lambda stream, data=content: stream.write(data),
                           f"upload {'/'.join(parts)!r}")
    top_folders = {parts[0] for parts in planned}
    if unwrap and len(top_folders) == 1 and all(len(parts) > 1 for parts in planned):
        return dest / top_folders.pop()
    return dest


def _copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, stream, budget: int,
                limit: int, where: str) -> int:
    """Copy one entry's expanded bytes into `stream`, refusing more than `budget` bytes."""
    copied = 0
    with archive.open(info) as entry_stream:
        while chunk := entry_stream.read(_HASH_CHUNK_BYTES):
            copied += len(chunk)
            if copied > budget:
                raise DatasetError(f"{where} expands past the limit of {limit:,} bytes for "
                                   f"the whole archive; split the archive")
            stream.write(chunk)
    return copied


def _safe_parts(name: str, where: str) -> tuple[str, ...]:
    """Path components of an archive or upload name that stay inside the destination."""
    posix = name.replace("\\", "/")
    if "\x00" in posix:
        raise DatasetError(f"{where} contains a NUL character")
    if posix.startswith("/") or _DRIVE_LETTER.match(posix):
        raise DatasetError(f"{where} is an absolute path; only relative paths are accepted")
    parts = tuple(part for part in posix.split("/") if part not in ("", "."))
    if ".." in parts:
        raise DatasetError(f"{where} has a '..' component, which would write outside the folder")
    if not parts:
        raise DatasetError(f"{where} has an empty path")
    return parts


def _make_folder_inside(target: Path, dest: Path, where: str) -> None:
    """Create `target` (and its parents), refusing when a link already there leads out.

    Checked before creating anything, so a link to an outside folder cannot get even an
    empty folder made there, and again after, in case the folder was swapped meanwhile.
    """
    for check in ("before", "after"):
        if not target.resolve().is_relative_to(dest):
            raise DatasetError(f"{where} would be written outside {dest} (through a symbolic "
                               f"link already there); extract into an empty folder")
        if check == "before":
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as error:   # e.g. a file already has that name
                raise DatasetError(f"{where}: cannot create folder {target} "
                                   f"({error.strerror or error})") from None


def _write_file_inside(target: Path, dest: Path, write: Callable, where: str):
    """Write `target` through a temporary file and a rename, refusing to leave `dest`.

    Returns what `write(stream)` returns.
    """
    try:
        _make_folder_inside(target.parent, dest, where)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as stream:
                result = write(stream)
            os.replace(temporary, target)
            return result
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as error:
        raise DatasetError(f"{where}: cannot write {target} ({error.strerror or error})") from None


# ---------------------------------------------------------------------------- opening images

def open_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image as 8-bit RGB, the way every encoder and view should see it.

    EXIF orientation is applied. Transparent images (RGBA, LA, PA, palette or single
    colour transparency) are composited on white; CMYK, grayscale and palette images are
    converted; 16-bit images (``I;16*``, and ``I`` holding values in 0..65535) are scaled
    to 8 bits (65535 -> 255), never clipped; other ``I`` and ``F`` images are scaled from
    their own min..max (``F`` in 0..1 is taken as 0..1). ICC profiles are not applied.
    Multi-frame files give their first frame.

    Parameters
    ----------
    path : str or Path
        The image file.
    max_pixels : int, default 50_000_000
        Larger images are refused before any pixel is decoded.

    Returns
    -------
    PIL.Image.Image
        A loaded ``RGB`` image, detached from the file.

    Raises
    ------
    DatasetError
        When the file cannot be read or decoded, or is over `max_pixels`.
    """
    return _open_rgb(path, _check_positive_int(max_pixels, "max_pixels"), draft_size=None)


def thumbnail(path: str | Path, size: int = 96) -> Image.Image:
    """A small RGB image for galleries, at most `size` × `size`, aspect ratio kept.

    JPEGs are decoded at reduced scale (draft mode), so thumbnails of big photos are cheap.

    Parameters
    ----------
    path : str or Path
        The image file.
    size : int, default 96
        Longest side in pixels.

    Returns
    -------
    PIL.Image.Image
        An ``RGB`` image.
    """
    size = _check_positive_int(size, "size")
    image = _open_rgb(path, DEFAULT_MAX_PIXELS, draft_size=size)
    image.thumbnail((size, size))
    return image


def _open_rgb(path: str | Path, max_pixels: int, draft_size: int | None) -> Image.Image:
    try:
        with Image.open(path) as image:
            problem = _pixel_limit_problem(image.size, max_pixels)
            if problem is not None:
                raise DatasetError(f"{path}: {problem}")
            if draft_size is not None and image.format == "JPEG":
                image.draft(image.mode, (draft_size, draft_size))
            return _to_rgb(_exif_transposed(image))
    except DatasetError:
        raise
    except Image.DecompressionBombError as error:
        raise DatasetError(f"{path}: image too large, possible decompression bomb ({error})") from None
    except UnidentifiedImageError:
        raise DatasetError(f"{path}: not an image (Pillow cannot identify the file)") from None
    except Exception as error:
        raise DatasetError(f"{path}: cannot decode the image ({error or type(error).__name__})"
                           ) from None


def _exif_transposed(image: Image.Image) -> Image.Image:
    """A loaded copy of `image`, turned as its EXIF orientation says.

    Unreadable EXIF (e.g. a corrupt PNG ``eXIf`` chunk, which the scan's checks do not
    read) leaves the pixels as stored rather than losing a good image to bad metadata.
    """
    try:
        return ImageOps.exif_transpose(image)
    except Exception:   # Pillow raises many types on bad EXIF; decode errors recur below
        return image.copy()


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode (see `open_image`)."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image)), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit, 32-bit integer or float pixels to 0..255 without clipping."""
    is_float = values.dtype.kind == "f"
    if not is_float and values.size and values.min() >= 0 and values.max() <= 65535:
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)   # 65535 -> 255
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if is_float and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    span = high - low if high > low else 1.0
    scaled = np.nan_to_num((values - low) / span, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- demo

def make_demo(root: Path | None = None) -> Path:
    """The built-in demo: scikit-learn's handwritten digits as a dataset folder.

    1797 images of 8×8 digits, upscaled to 32×32 grayscale PNGs (dark ink on white), named
    by their index in ``load_digits()``: three seeds per class in folders ``0`` .. ``9``
    (``3/digit_0123.png``), the rest in ``unlabeled/``. ``truth.csv`` (``path,label`` for
    every image) holds the ground truth, which `load_folder` reads into `Dataset.truth`.
    Seeds are chosen with a fixed random generator, so every run writes the same files.
    Generated once into a temporary folder that is renamed into place when complete, so an
    interrupted run is never mistaken for the demo; later calls return at once.

    Parameters
    ----------
    root : Path, optional
        The data root; default `data_root()`. The demo goes to ``<root>/demo-digits``.

    Returns
    -------
    Path
        The demo folder.

    Raises
    ------
    DatasetError
        When ``demo-digits`` exists but is not a finished demo.
    """
    root = (data_root() if root is None else Path(root)).resolve()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / DEMO_FOLDER
    if folder.exists():
        return _finished_demo(folder)
    building = Path(tempfile.mkdtemp(prefix=f".{DEMO_FOLDER}-", suffix=".partial", dir=root))
    try:
        _write_demo(building)
        try:
            os.rename(building, folder)
        except OSError:
            if not folder.exists():   # not another process finishing first
                raise
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return _finished_demo(folder)


def _finished_demo(folder: Path) -> Path:
    if not (folder / TRUTH_CSV).is_file():
        raise DatasetError(f"{folder} exists but is not a finished demo (no {TRUTH_CSV}); "
                           f"delete or rename it and try again")
    return folder


def _write_demo(folder: Path) -> None:
    from sklearn.datasets import load_digits   # scikit-learn is slow to import; only here

    digits = load_digits()
    labels = digits.target
    rng = np.random.default_rng(DEMO_RANDOM_SEED)
    seeds = set()
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        seeds.update(int(i) for i in rng.choice(members, DEMO_SEEDS_PER_CLASS, replace=False))

    truth_rows = []
    for index, (pixels, digit) in enumerate(zip(digits.images, labels)):
        subfolder = str(digit) if index in seeds else "unlabeled"
        relative = f"{subfolder}/digit_{index:04d}.png"
        # load_digits pixels run 0 (background) .. 16 (ink); draw dark ink on white paper.
        paper = np.round(255 - pixels * (255 / 16)).astype(np.uint8)
        image = Image.fromarray(paper, "L").resize((DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE),
                                                   Image.Resampling.BICUBIC)
        (folder / subfolder).mkdir(exist_ok=True)
        image.save(folder / relative, format="PNG")
        truth_rows.append((relative, str(digit)))
    with open(folder / TRUTH_CSV, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "label"])
        writer.writerows(sorted(truth_rows))

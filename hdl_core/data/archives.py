"""Zip archives and uploaded files, written safely into a folder that `load_folder` scans.

Nothing is written outside the destination: absolute names, ``..`` components, links
(in the archive, or already in the destination) and special files are refused, and the
expanded size and the number of entries are limited, counted again while writing.
"""
from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Callable

from .._checks import check_positive_int
from .._files import atomic_write
from .dataset import DatasetError

# Zip limits: the sum of the entries' expanded sizes, and the number of entries.
DEFAULT_MAX_ZIP_BYTES = 2 * 2**30
DEFAULT_MAX_ZIP_FILES = 100_000
_COPY_CHUNK_BYTES = 2**20
# Extracted from a zip but never part of a dataset: macOS resource forks.
_ZIP_IGNORED_TOP_FOLDERS = frozenset({"__MACOSX"})

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


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
    max_total_bytes = check_positive_int(max_total_bytes, "max_total_bytes", error=DatasetError)
    max_files = check_positive_int(max_files, "max_files", error=DatasetError)
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
        while chunk := entry_stream.read(_COPY_CHUNK_BYTES):
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
            raise DatasetError(f"{where} would be written outside the destination folder "
                               f"(through a symbolic link already there); extract into an "
                               f"empty folder")
        if check == "before":
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as error:   # e.g. a file already has that name
                raise DatasetError(f"{where}: cannot create its folder "
                                   f"({error.strerror or type(error).__name__})") from None


def _write_file_inside(target: Path, dest: Path, write: Callable, where: str):
    """Write `target` through a temporary file and a rename, refusing to leave `dest`.

    Returns what `write(stream)` returns.
    """
    written = []
    try:
        _make_folder_inside(target.parent, dest, where)
        atomic_write(target, lambda stream: written.append(write(stream)), durable=False)
        return written[0]
    except OSError as error:
        raise DatasetError(f"{where}: cannot write it ({error.strerror or type(error).__name__})"
                           ) from None


"""Zip archives and uploaded files, written safely into a folder that `load_folder` scans.

Nothing is written outside the destination: absolute names, ``..`` components, links
(in the archive, or already in the destination) and special files are refused, and the
expanded size and the number of entries are limited, counted again while writing. Nothing
is written over: a zip is extracted into a new folder (through a hidden staging folder
renamed into place, so a failure leaves nothing behind), and an uploaded file never
replaces a file already there.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import stat
import uuid
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
                max_files: int = DEFAULT_MAX_ZIP_FILES, unwrap: bool = True,
                min_free_bytes: int = 0) -> Path:
    """Safely extract a zip archive into a new folder `dest`.

    Every entry is checked before anything is written; the archive is refused (naming the
    entry) when an entry has an absolute path or a ``..`` component, is a symbolic link or
    another special file, is encrypted, has a name that is not valid text, has the same
    path as another entry, or when the entries' total expanded size or their count passes
    the limits. Expanded bytes are counted again while writing, so a header that
    understates a size does not help. ``__MACOSX/`` (macOS metadata) is not extracted.
    The files are written into a hidden staging folder beside `dest`, renamed to `dest`
    once all are written: a failure half way (a corrupt entry, a full disk) leaves no
    partial folder, and `dest` is never written over.

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
    min_free_bytes : int, default 0
        Refuse, before writing anything, when extracting would leave less free disk space
        than this.

    Returns
    -------
    Path
        The folder to pass to `load_folder`: `dest`, or its single top-level folder.

    Raises
    ------
    DatasetError
        When the file is not a zip archive, an entry or the archive breaks a rule above,
        `dest` already exists (and is not an empty folder), or the disk is too full.
    """
    max_total_bytes = check_positive_int(max_total_bytes, "max_total_bytes", error=DatasetError)
    max_files = check_positive_int(max_files, "max_files", error=DatasetError)
    name, source = _zip_source(zip_file)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError) as error:
        raise DatasetError(f"{name} is not a zip archive ({error}); "
                           f"choose a .zip file or a folder of images") from None
    except UnicodeDecodeError as error:   # the UTF-8 flag is set but a name is not UTF-8
        raw = error.object.decode("utf-8", "backslashreplace") if isinstance(
            error.object, bytes) else "?"
        raise DatasetError(f"{name}: entry {raw!r} has a name that is not valid UTF-8 "
                           "although the archive says it is; re-create the archive (or "
                           "rename that file)") from None
    except OSError as error:
        raise DatasetError(f"cannot read {name}: {error.strerror or error}") from None

    dest = Path(dest)
    with archive:
        entries = _checked_zip_entries(archive, name, max_total_bytes, max_files)
        _check_new_folder(dest, name)
        expanded = sum(info.file_size for info, _ in entries)
        check_free_space(dest.parent, expanded, min_free_bytes, name)
        staging = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        try:
            _extract_entries(archive, entries, staging.resolve(), name, max_total_bytes)
            if dest.is_dir():
                dest.rmdir()              # empty (checked above); replaced by the staging folder
            os.rename(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    top_folders = {parts[0] for _, parts in entries}
    if unwrap and len(top_folders) == 1 and all(len(parts) > 1 or info.is_dir()
                                                for info, parts in entries):
        return dest / top_folders.pop()
    return dest


def _extract_entries(archive: zipfile.ZipFile, entries, folder: Path, name: str,
                     max_total_bytes: int) -> None:
    """Write every checked entry under `folder`, counting expanded bytes against the limit."""
    written = 0
    for info, parts in entries:
        where = f"{name}: entry {info.filename!r}"
        target = folder.joinpath(*parts)
        if info.is_dir():
            _make_folder_inside(target, folder, where)
            continue
        budget = max_total_bytes - written
        try:
            written += _write_file_inside(
                target, folder,
                lambda stream, entry=info: _copy_entry(archive, entry, stream, budget,
                                                       max_total_bytes, where),
                where)
        # NotImplementedError: zipfile's answer to a compression method it cannot read
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
            raise DatasetError(f"{where} is corrupt or uses an unsupported compression "
                               f"({error}); re-create the archive") from None


def _check_new_folder(dest: Path, name: str) -> None:
    """`dest` must not exist yet, or be an empty folder (never a link): nothing is written over."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise DatasetError(f"{name}: the folder to extract into already exists as a link or a "
                           "file; extract into a new folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise DatasetError(f"{name}: the folder to extract into already holds files (nothing "
                           "is written over them); extract into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)


def check_free_space(folder: Path, needed: int, keep_free: int, name: str) -> None:
    """Refuse when writing `needed` bytes under `folder` would leave less than `keep_free` free.

    Raises
    ------
    DatasetError
        Saying how much is needed and how much is free, in the user's terms.
    """
    if keep_free <= 0 and needed <= 0:
        return
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free - needed < keep_free:
        raise DatasetError(f"{name} needs {human_size(needed)} of disk space, but only "
                           f"{human_size(max(free - keep_free, 0))} can be used now (the server keeps "
                           f"{human_size(keep_free)} free); delete uploads you no longer need, or "
                           "ask whoever runs the server for more space")


def human_size(count: int) -> str:
    """Bytes as the user reads them: '1.5 GiB', '820 MiB', '12 KiB'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


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
    first_with: dict[tuple[str, ...], str] = {}
    for info in infos:
        where = f"{name}: entry {info.filename!r}"
        parts = _safe_parts(info.filename, where)
        if parts[0] in _ZIP_IGNORED_TOP_FOLDERS:
            continue
        if not info.is_dir():
            if parts in first_with:
                raise DatasetError(f"{name}: entries {first_with[parts]!r} and "
                                   f"{info.filename!r} have the same path (the last would "
                                   "silently win); re-create the archive with one of them")
            first_with[parts] = info.filename
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


def save_uploads(files, dest: Path, *, unwrap: bool = True, max_total_bytes: int | None = None,
                 min_free_bytes: int = 0) -> Path:
    """Write uploaded files under `dest`, keeping the folders their names carry.

    Names from a folder upload carry relative paths (``photos/2024/a.jpg``); backslashes
    count as separators, ``.`` and empty components are dropped. A name that is absolute,
    has a ``..`` component, a NUL character, or nothing left, is refused, as are two files
    with the same path: all names (and the total size) are checked before anything is
    written. Contents are copied in chunks, never held whole in memory, and no file already
    in `dest` is written over (each is written to a temporary name and linked into place).

    Parameters
    ----------
    files : list of (str, bytes or binary file object)
        ``(name, content)`` pairs; a file object (Streamlit's ``UploadedFile``) is read in
        chunks from its start.
    dest : Path
        Folder to write into; created when missing.
    unwrap : bool, default True
        When every file sits inside one top-level folder (a folder upload), return that
        folder, so its subfolders read as classes.
    max_total_bytes : int, optional
        Refuse uploads whose files add up to more.
    min_free_bytes : int, default 0
        Refuse when writing them would leave less free disk space than this.

    Returns
    -------
    Path
        The folder to pass to `load_folder`: `dest`, or its single top-level folder.

    Raises
    ------
    DatasetError
        Naming every refused name, or saying which limit the upload passes.
    """
    planned: dict[tuple[str, ...], object] = {}
    problems: list[str] = []
    total = 0
    for index, entry in enumerate(files):
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
                and (isinstance(entry[1], (bytes, bytearray)) or hasattr(entry[1], "read"))):
            raise DatasetError(f"files[{index}] must be a (name, bytes or file) pair, "
                               f"got {type(entry).__name__}")
        name, content = entry
        try:
            parts = _safe_parts(name, f"upload {name!r}")
        except DatasetError as error:
            problems.append(str(error))
            continue
        if parts in planned:
            problems.append(f"upload {name!r} has the same path as another uploaded file")
            continue
        planned[parts] = content
        total += content_size(content)
    if problems:
        raise DatasetError("; ".join(problems) + "; rename those files and upload again")
    if max_total_bytes is not None and total > max_total_bytes:
        raise DatasetError(f"the {len(planned)} uploaded files add up to {human_size(total)}, over "
                           f"the limit of {human_size(max_total_bytes)} per upload; upload fewer "
                           "files at a time")
    check_free_space(Path(dest), total, min_free_bytes, "the upload")

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest_resolved = dest.resolve()
    for parts, content in planned.items():
        _write_file_inside(dest_resolved.joinpath(*parts), dest_resolved,
                           lambda stream, data=content: _copy_content(data, stream),
                           f"upload {'/'.join(parts)!r}", replace=False)
    top_folders = {parts[0] for parts in planned}
    if unwrap and len(top_folders) == 1 and all(len(parts) > 1 for parts in planned):
        return dest / top_folders.pop()
    return dest


def content_size(content) -> int:
    """Bytes in an upload's content: bytes, or a seekable file object (measured, not read)."""
    if isinstance(content, (bytes, bytearray)):
        return len(content)
    size = getattr(content, "size", None)
    if isinstance(size, int):
        return size
    position = content.tell()
    end = content.seek(0, io.SEEK_END)
    content.seek(position)
    return end


def _copy_content(content, stream) -> int:
    """Copy bytes or a file object (from its start, in chunks) into `stream`."""
    if isinstance(content, (bytes, bytearray)):
        stream.write(content)
        return len(content)
    content.seek(0)
    copied = 0
    while chunk := content.read(_COPY_CHUNK_BYTES):
        stream.write(chunk)
        copied += len(chunk)
    return copied


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


def _write_file_inside(target: Path, dest: Path, write: Callable, where: str, *,
                       replace: bool = True):
    """Write `target` through a temporary file and a rename, refusing to leave `dest`.

    With ``replace=False`` a file already at `target` is kept and the write refused.
    Returns what `write(stream)` returns.
    """
    written = []
    try:
        _make_folder_inside(target.parent, dest, where)
        atomic_write(target, lambda stream: written.append(write(stream)), durable=False,
                     replace=replace)
        return written[0]
    except FileExistsError:
        raise DatasetError(f"{where}: a file of that name is already there (nothing is "
                           "written over); upload into a new folder") from None
    except OSError as error:
        raise DatasetError(f"{where}: cannot write it ({error.strerror or type(error).__name__})"
                           ) from None


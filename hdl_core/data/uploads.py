"""Uploaded datasets: one folder per upload, named by its content, kept apart per owner.

Where uploads go::

    <data root>/.uploads/<owner>/<name>-<digest>/...     one browser session's uploads
    <data root>/.uploads/shared/<name>-<digest>/...      uploads shared on purpose

The digest is a sha256 of the uploaded names and bytes, so two uploads of files with the
same names but other pixels never meet, and uploading the very same files again reuses
their folder instead of writing anything. Nothing already on disk is written over: files
are written into a hidden staging folder that is renamed into place when complete. The
``.uploads`` folder is hidden, so it is never offered or opened as a data-root folder.

Limits (`UploadLimits`, read from the environment) cap one upload, all uploads together
and the free disk space left; they are checked before anything is written. Contents are
read in chunks from the uploaded file objects, never copied whole into memory.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .archives import content_size, extract_zip, human_size, save_uploads
from .dataset import DatasetError, data_root

UPLOADS_FOLDER = ".uploads"
SHARED_OWNER = "shared"
_OWNER = re.compile(r"[0-9a-f]{16,64}")
_STAGING_PREFIX = ".partial-"
_STALE_STAGING_S = 3600
_CHUNK = 2**20


# --------------------------------------------------------------------------- limits

def _bytes_setting(name: str, default: int) -> int:
    """A byte count from the environment: ``2147483648``, ``2G``, ``500M``, ``1.5GiB``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", raw, flags=re.IGNORECASE)
    if match is None:
        raise DatasetError(f"{name}={raw!r} is not a size; write bytes (2147483648) or with "
                           "a unit (2G, 500M)")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


@dataclass(frozen=True)
class UploadLimits:
    """How much may be uploaded; defaults fit a small server (2 cores, 24 GiB, little disk).

    Attributes
    ----------
    max_upload_bytes : int
        One upload: the uploaded files' sizes added up, or a zip's expanded size.
        ``HDL_UPLOAD_MAX_BYTES``, default 2 GiB.
    max_total_bytes : int
        Every upload kept on the server together. ``HDL_UPLOADS_TOTAL_MAX_BYTES``,
        default 10 GiB.
    min_free_bytes : int
        Disk space an upload must leave free. ``HDL_UPLOAD_MIN_FREE_BYTES``, default 2 GiB.
    max_files : int
        Files in one upload (or entries in a zip). ``HDL_UPLOAD_MAX_FILES``, default 100,000.
    """

    max_upload_bytes: int = 2 * 2**30
    max_total_bytes: int = 10 * 2**30
    min_free_bytes: int = 2 * 2**30
    max_files: int = 100_000

    @classmethod
    def from_env(cls) -> UploadLimits:
        """The limits as configured in the environment, defaults where unset."""
        default = cls()
        return cls(
            max_upload_bytes=_bytes_setting("HDL_UPLOAD_MAX_BYTES", default.max_upload_bytes),
            max_total_bytes=_bytes_setting("HDL_UPLOADS_TOTAL_MAX_BYTES", default.max_total_bytes),
            min_free_bytes=_bytes_setting("HDL_UPLOAD_MIN_FREE_BYTES", default.min_free_bytes),
            max_files=int(_bytes_setting("HDL_UPLOAD_MAX_FILES", default.max_files)))


# --------------------------------------------------------------------------- where

def uploads_root(root: Path | None = None) -> Path:
    """``<data root>/.uploads``: every upload on this server."""
    return (data_root() if root is None else Path(root)) / UPLOADS_FOLDER


def owner_folder(owner: str, *, shared: bool = False, root: Path | None = None) -> Path:
    """The folder of one owner's uploads (a browser session), or of the shared ones.

    Raises
    ------
    DatasetError
        `owner` is not a token of 16 to 64 lower-case hex digits.
    """
    if shared:
        return uploads_root(root) / SHARED_OWNER
    if not isinstance(owner, str) or not _OWNER.fullmatch(owner):
        raise DatasetError(f"upload owner must be 16 to 64 lower-case hex digits, got {owner!r}")
    return uploads_root(root) / owner


@dataclass(frozen=True)
class Upload:
    """One uploaded dataset as `list_uploads` shows it.

    Attributes
    ----------
    name : str
        Its folder's name: what was uploaded, and a digest of it.
    folder : Path
        Where it is; `dataset_folder` is what to scan.
    dataset_folder : Path
        The folder to pass to `load_folder` (its single top folder, for a folder upload).
    owner_folder : Path
        The `root` to pass to `load_folder` with it.
    size : int
        Bytes on disk.
    shared : bool
    modified : float
        When it was uploaded (seconds since the epoch).
    """

    name: str
    folder: Path
    dataset_folder: Path
    owner_folder: Path
    size: int
    shared: bool
    modified: float


def list_uploads(owner: str, *, root: Path | None = None) -> list[Upload]:
    """The uploads `owner` may open: its own, then the shared ones, newest first in each."""
    found = []
    for shared in (False, True):
        folder = owner_folder(owner, shared=shared, root=root)
        if not folder.is_dir():
            continue
        entries = [entry for entry in folder.iterdir()
                   if not entry.name.startswith(".") and entry.is_dir() and not entry.is_symlink()]
        for entry in sorted(entries, key=lambda e: e.stat().st_mtime, reverse=True):
            found.append(Upload(entry.name, entry, _unwrapped(entry), folder, folder_size(entry),
                                shared, entry.stat().st_mtime))
    return found


def folder_size(folder: Path) -> int:
    """Bytes of the files under `folder` (links not followed)."""
    total = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


# --------------------------------------------------------------------------- storing

def store_files(files, owner: str, *, shared: bool = False, limits: UploadLimits | None = None,
                root: Path | None = None) -> Upload:
    """Store uploaded files (a folder upload keeps its sub-folders) as a dataset of `owner`.

    Parameters
    ----------
    files : list of (str, bytes or binary file object)
        ``(name, content)``, e.g. ``[(f.name, f) for f in st.file_uploader(...)]``: the
        uploaded file objects themselves, which are read in chunks.
    owner : str
        The browser session's token (`owner_folder`).
    shared : bool, default False
        Store among the uploads every session can open.
    limits : UploadLimits, optional
        Default `UploadLimits.from_env()`.

    Returns
    -------
    Upload
        A new folder, or the one the same names and bytes were stored in before.

    Raises
    ------
    DatasetError
        A bad name, too many files, an upload over a limit, or too little disk.
    """
    limits = UploadLimits.from_env() if limits is None else limits
    files = list(files)
    if not files:
        raise DatasetError("no file was uploaded; choose some images first")
    if len(files) > limits.max_files:
        raise DatasetError(f"{len(files):,} files were uploaded, over the limit of "
                           f"{limits.max_files:,} per upload; upload fewer at a time")
    home = owner_folder(owner, shared=shared, root=root)
    digest = hashlib.sha256()
    for name, content in sorted(files, key=lambda pair: pair[0]):
        digest.update(name.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(str(content_size(content)).encode() + b"\0")
        _hash_content(content, digest)
    first = files[0][0].replace("\\", "/").split("/")        # a folder upload's top folder,
    stem = _stem(first[0] if len(first) > 1 else Path(first[0]).stem)   # else the file's stem
    final = home / f"{stem}-{digest.hexdigest()[:16]}"
    if final.is_dir():
        return _upload_at(final, home, shared)
    size = sum(content_size(content) for _, content in files)
    _check_total(size, limits, root)
    staging = _staging(home)
    try:
        save_uploads(files, staging, unwrap=False, max_total_bytes=limits.max_upload_bytes,
                     min_free_bytes=limits.min_free_bytes)
        _move_into_place(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _upload_at(final, home, shared)


def store_zip(zip_file, name: str, owner: str, *, shared: bool = False,
              limits: UploadLimits | None = None, root: Path | None = None) -> Upload:
    """Extract an uploaded zip as a dataset of `owner` (`extract_zip` does the checking).

    Parameters
    ----------
    zip_file : binary file object or bytes
        The uploaded archive (read in chunks, never copied whole).
    name : str
        Its file name, for the folder's name and messages.
    owner, shared, limits
        As for `store_files`.

    Returns
    -------
    Upload
    """
    limits = UploadLimits.from_env() if limits is None else limits
    home = owner_folder(owner, shared=shared, root=root)
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass") + b"\0")
    _hash_content(zip_file, digest)
    final = home / f"{_stem(Path(name).stem)}-{digest.hexdigest()[:16]}"
    if final.is_dir():
        return _upload_at(final, home, shared)
    used = uploads_size(root)
    budget = min(limits.max_upload_bytes, max(limits.max_total_bytes - used, 0))
    if budget <= 0:
        _check_total(1, limits, root)
    home.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(home)
    if hasattr(zip_file, "seek"):
        zip_file.seek(0)
    try:
        extract_zip(zip_file, final, max_total_bytes=budget, max_files=limits.max_files,
                    min_free_bytes=limits.min_free_bytes)
    except DatasetError as error:
        if final.is_dir():            # another request stored the same zip meanwhile
            return _upload_at(final, home, shared)
        if budget < limits.max_upload_bytes and "over the limit" in str(error):
            raise DatasetError(f"{error} (uploads on this server already use {human_size(used)} of "
                               f"the {human_size(limits.max_total_bytes)} allowed; delete uploads "
                               "you no longer need on the Data page)") from None
        raise
    return _upload_at(final, home, shared)


def uploads_size(root: Path | None = None) -> int:
    """Bytes every upload on the server takes together."""
    folder = uploads_root(root)
    return folder_size(folder) if folder.is_dir() else 0


def delete_upload(upload: Upload | Path, owner: str, *, root: Path | None = None) -> None:
    """Delete an uploaded dataset of `owner` (or a shared one) with everything in it.

    Raises
    ------
    DatasetError
        When the folder is not one of the uploads `owner` may open.
    """
    folder = Path(upload.folder if isinstance(upload, Upload) else upload)
    allowed = {owner_folder(owner, root=root).resolve(),
               owner_folder(owner, shared=True, root=root).resolve()}
    if folder.is_symlink() or folder.parent.resolve() not in allowed or not folder.is_dir():
        raise DatasetError(f"{folder.name!r} is not one of your uploads; nothing was deleted")
    shutil.rmtree(folder)


# --------------------------------------------------------------------------- helpers

def _hash_content(content, digest) -> None:
    if isinstance(content, (bytes, bytearray)):
        digest.update(content)
        return
    content.seek(0)
    while chunk := content.read(_CHUNK):
        digest.update(chunk)
    content.seek(0)


def _stem(name: str) -> str:
    """A folder-name-safe, short, readable part of what was uploaded."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40]
    return stem or "upload"


def _check_total(size: int, limits: UploadLimits, root: Path | None) -> None:
    if size > limits.max_upload_bytes:
        raise DatasetError(f"this upload is {human_size(size)}, over the limit of "
                           f"{human_size(limits.max_upload_bytes)} per upload; upload fewer files "
                           "at a time")
    used = uploads_size(root)
    if used + size > limits.max_total_bytes:
        raise DatasetError(f"uploads on this server already use {human_size(used)} of the "
                           f"{human_size(limits.max_total_bytes)} allowed, and this one needs "
                           f"{human_size(size)} more; delete uploads you no longer need on the "
                           "Data page")


def _staging(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(home)
    staging = home / f"{_STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging


def _remove_stale_staging(home: Path) -> None:
    """Staging folders a killed upload left behind (untouched for an hour) are removed."""
    cutoff = time.time() - _STALE_STAGING_S
    for entry in home.glob(f"{_STAGING_PREFIX}*"):
        try:
            if entry.is_dir() and not entry.is_symlink() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _move_into_place(staging: Path, final: Path) -> None:
    """Rename the complete staging folder to its content name; a twin already there wins."""
    try:
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():
            raise


def _unwrapped(folder: Path) -> Path:
    """A folder upload's single top folder (its sub-folders are the classes), else `folder`."""
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return folder


def _upload_at(folder: Path, home: Path, shared: bool) -> Upload:
    return Upload(folder.name, folder, _unwrapped(folder), home, folder_size(folder), shared,
                  folder.stat().st_mtime)


def owner_folder_of(folder: Path, *, root: Path | None = None) -> Path | None:
    """The owner folder an uploaded dataset folder lies in (the `root` to scan it with), or
    None when `folder` is not an upload."""
    base = uploads_root(root).resolve()
    try:
        relative = Path(folder).resolve().relative_to(base)
    except ValueError:
        return None
    return base / relative.parts[0] if relative.parts else None

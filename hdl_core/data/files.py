"""Opening a dataset's files: the one door every reader of an image goes through.

A scan checks a folder once, but files can change after it: an image swapped for a
symbolic link to ``/etc/passwd``, a folder replaced by a link to somewhere else, a hard
link to a file outside the folder. So the check is made again each time a file is opened,
on the file actually opened (`open_dataset_file`): it must be a regular file, not a
symbolic link, with no other hard link, and its real location must be inside the dataset
folder. The thumbnails, the encoders, the scan and the exports all open images here.

`DatasetFile` names an image by its dataset folder and its path inside it, so the check
travels with the path (through an encoder, into a DataLoader worker) and every message
names the image the way the user knows it: its path in the dataset, never a server path.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .dataset import DatasetError

_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NONBLOCK", 0))     # a FIFO swapped in must not block the reader


class DatasetFileError(DatasetError):
    """A dataset file cannot be read, or is refused; the message names it by its dataset path.

    Attributes
    ----------
    path : str
        The file's path as the user knows it (relative to the dataset folder).
    reason : str
        Why, as a short phrase fit for a list of skipped files (``"missing"``,
        ``"symbolic link (not followed)"``).
    """

    def __init__(self, path: str, reason: str, fix: str = ""):
        self.path = path
        self.reason = reason
        super().__init__(f"{path!r}: {reason}" + (f"; {fix}" if fix else ""))


@dataclass(frozen=True)
class DatasetFile:
    """An image of a dataset: the dataset folder and the image's path inside it.

    Readers given a `DatasetFile` open it with `open_dataset_file` confined to `root`;
    ``str()`` gives the path inside the dataset (what messages show), ``os.fspath()`` the
    file on disk.

    Attributes
    ----------
    root : str
        The dataset folder (absolute).
    path : str
        Relative POSIX path inside `root`, e.g. ``"cats/a.png"``.
    """

    root: str
    path: str

    def __fspath__(self) -> str:
        return os.path.join(self.root, *PurePosixPath(self.path).parts)

    def __str__(self) -> str:
        return self.path


def open_dataset_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> BinaryIO:
    """Open a dataset file for reading, refusing links and anything outside the dataset folder.

    The checks are made on the file descriptor actually opened, so a file swapped after a
    scan (or between a check and the open) is caught: the last path component may not be a
    symbolic link (``O_NOFOLLOW``); the file must be a regular file with one name on disk
    (``st_nlink == 1``: a hard link may be another name of a file outside the folder); and
    its real location must lie inside the real location of `root`, so a folder on the way
    swapped for a link that leads out is refused too.

    Parameters
    ----------
    path : str, path-like or DatasetFile
        Relative to `root` (no ``..``), or absolute and inside `root`. A `DatasetFile`
        carries its own root.
    root : str or path-like, optional
        The folder the file must be in. Default: the folder the file is in (then only the
        file itself is checked: not a link, one name, a regular file).

    Returns
    -------
    binary file object
        Open for reading; the caller closes it.

    Raises
    ------
    DatasetFileError
        Naming the file by its path inside the dataset, with the reason.
    """
    if isinstance(path, DatasetFile):
        root, path = path.root, path.path
    text = os.fspath(path)
    if root is None:
        absolute = os.path.abspath(text)
        root, relative, shown = os.path.dirname(absolute), os.path.basename(absolute), text
    else:
        root = os.fspath(root)
        relative, shown = _relative_inside(text, root)
    if "\x00" in text or "\x00" in root:
        raise DatasetFileError(shown.replace("\x00", "\\x00"), "the name contains a NUL character")
    real_root = os.path.realpath(root)
    target = os.path.join(real_root, relative)
    try:
        handle = os.open(target, _OPEN_FLAGS)
    except FileNotFoundError:
        raise DatasetFileError(shown, "missing (moved or deleted since the folder was scanned)",
                               "scan the folder again") from None
    except OSError as error:
        if os.path.islink(target):
            raise DatasetFileError(shown, "symbolic link (links are not followed)",
                                   "copy the file into the dataset folder instead") from None
        raise DatasetFileError(shown, f"cannot be opened ({error.strerror or 'error'})") from None
    try:
        _check_opened(handle, target, real_root, shown)
        os.set_blocking(handle, True)
        return os.fdopen(handle, "rb")
    except BaseException:
        os.close(handle)
        raise


def _relative_inside(text: str, root: str) -> tuple[str, str]:
    """(path relative to `root`, the name to show) for a path given relative or absolute."""
    posix = PurePosixPath(text.replace(os.sep, "/"))
    if posix.is_absolute():
        try:
            posix = PurePosixPath(Path(text).relative_to(root).as_posix())
        except ValueError:
            raise DatasetFileError(Path(text).name, "not inside the dataset folder") from None
    shown = posix.as_posix()
    if ".." in posix.parts or not posix.parts:
        raise DatasetFileError(shown, "not a path inside the dataset folder (no '..' allowed)")
    return os.path.join(*posix.parts), shown


def _check_opened(handle: int, target: str, real_root: str, shown: str) -> None:
    """Refuse the opened file unless it is a regular file with one name, inside `real_root`."""
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode):
        raise DatasetFileError(shown, "not a regular file")
    if info.st_nlink > 1:
        raise DatasetFileError(shown, f"hard link ({info.st_nlink} names for one file, maybe "
                                      "outside the dataset folder)",
                               "copy the file instead of linking it")
    opened = _opened_path(handle, target, info)
    if opened is None or not Path(opened).is_relative_to(real_root):
        raise DatasetFileError(shown, "leads outside the dataset folder (through a linked folder)",
                               "copy the files into the dataset folder instead of linking them")


def _opened_path(handle: int, target: str, info: os.stat_result) -> str | None:
    """The real path of an open file: from /proc on Linux, else the resolved path if it is that file."""
    try:
        return os.readlink(f"/proc/self/fd/{handle}")
    except OSError:
        pass
    resolved = os.path.realpath(target)
    try:
        again = os.stat(resolved)
    except OSError:
        return None
    return resolved if (again.st_dev, again.st_ino) == (info.st_dev, info.st_ino) else None

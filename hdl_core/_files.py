"""Writing files so that a reader never sees half of one: one atomic-write helper."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

TEMPORARY_SUFFIX = ".tmp"


def atomic_write(target: str | Path, write: Callable, *, durable: bool = True,
                 replace: bool = True) -> None:
    """Write `target` through a temporary file in the same folder, then rename it into place.

    `write(stream)` gets a binary file object. With `durable` the data and the rename are
    fsynced, so a power loss leaves either the old file or the new one. A failure removes
    the temporary file and leaves `target` as it was. With ``replace=False`` an existing
    `target` is never written over: `FileExistsError` is raised instead (the file is linked
    into place, which fails when the name is taken, however close two writers come).

    Temporary files are named ``.<target name>.<random>.tmp``; `remove_stale_temporaries`
    clears those a killed process left behind.
    """
    target = Path(target)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        if replace:
            os.replace(temporary, target)
        else:
            place_new(temporary, target)        # FileExistsError when the name is taken
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(target.parent)


def place_new(temporary: str | Path, target: str | Path) -> None:
    """Move a finished file to `target`, which must not exist yet; `temporary` is gone after.

    A hard link makes the check and the move one step, so two writers racing for one name
    cannot both win; on a file system without hard links the file is renamed after a check.

    Raises
    ------
    FileExistsError
        `target` exists (it is left as it was).
    """
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError:                      # no hard links here (some network or FAT volumes)
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.replace(temporary, target)
        return
    os.unlink(temporary)


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable; not every platform can open a folder."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


STALE_AFTER_S = 15 * 60


def remove_stale_temporaries(folder: str | Path, *, older_than_s: float = STALE_AFTER_S,
                             recursive: bool = False) -> int:
    """Delete the temporary files `atomic_write` leaves when its process is killed.

    Only files named like them (``.<name>.<random>.tmp``) and not modified for
    `older_than_s` seconds are removed: a writer still at work keeps touching its file, so
    it is never pulled from under it. Returns how many were removed; unreadable folders and
    files that vanish meanwhile are passed over.
    """
    import time
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    pattern = f".*{TEMPORARY_SUFFIX}"
    candidates = folder.rglob(pattern) if recursive else folder.glob(pattern)
    removed = 0
    for path in candidates:
        try:
            info = path.lstat()
            if path.is_file() and not path.is_symlink() and info.st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed

"""Writing files so that a reader never sees half of one: one atomic-write helper."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(target: str | Path, write: Callable, *, durable: bool = True) -> None:
    """Write `target` through a temporary file in the same folder, then `os.replace`.

    `write(stream)` gets a binary file object. With `durable` the data and the rename are
    fsynced, so a power loss leaves either the old file or the new one. A failure removes
    the temporary file and leaves `target` as it was.
    """
    target = Path(target)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(target.parent)


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

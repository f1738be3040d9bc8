"""What a dataset is: its items, what was skipped, and where datasets may live.

Paths inside a `Dataset` are POSIX paths relative to the dataset root, and items are
ordered by that path. Server-side datasets live under the data root (`data_root`:
``HDL_DATA_ROOT``, else ``data/`` in the project); `resolve_in_data_root` refuses anything
outside it, whether reached through ``..`` or through a symbolic link.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..config import home

UNLABELED_FOLDERS = frozenset({"unlabeled", "unlabelled"})   # compared lower-cased
TRUTH_CSV = "truth.csv"


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
    mtime_ns : int or None
        The file's modification time (ns) when its content was hashed, so a rescan can tell
        an unchanged file without reading it; None when not known (then it is read again).
    """

    path: str
    content_hash: str
    size: int
    seed_label: str | None = None
    mtime_ns: int | None = None


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
                               f"(paths are relative to the dataset folder, without '..')")
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
    root = Path(configured).expanduser() if configured else home() / "data"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def resolve_in_data_root(path: str | Path, root: Path | None = None) -> Path:
    """Resolve a server path and refuse anything outside the data root.

    Parameters
    ----------
    path : str or Path
        Absolute, or relative to the data root. ``..`` and symbolic links are resolved
        before the check, so neither can escape; ``~`` is a name like any other (it is not
        the server's home folder). Hidden folders (a component starting with ``.``, such
        as the uploads area) are refused: they are not datasets to open by path.
    root : Path, optional
        The data root; default `data_root()`.

    Returns
    -------
    Path
        The resolved absolute path (it need not exist).

    Raises
    ------
    DatasetError
        When the resolved path is outside the data root or hidden, or the name holds a NUL
        character. Messages name the path as given, never where it leads on the server.
    """
    root = (data_root() if root is None else Path(root)).resolve()
    given = str(path)
    if "\x00" in given:
        raise DatasetError(f"{given.replace(chr(0), '')!r} contains a NUL character; type the "
                           "folder's name without it")
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        raise DatasetError(f"{given!r} cannot be resolved (a loop of symbolic links?); "
                           "choose a folder under the data root") from None
    if not resolved.is_relative_to(root):
        raise DatasetError(
            f"{given!r} is outside the data root; choose a folder under it (the Data page "
            "lists them), e.g. 'photos' or 'photos/2024'")
    if any(part.startswith(".") for part in resolved.relative_to(root).parts):
        raise DatasetError(f"{given!r} is a hidden folder (a name starting with '.'), which "
                           "is not opened by path; choose another folder under the data root")
    return resolved



def dataset_folders(root: Path | None = None) -> list[str]:
    """The folders at the top of the data root a user may open, by name, sorted.

    Hidden folders (names starting with ``.``, uploads among them) are left out, and so is
    a symbolic link that leads outside the data root.

    Parameters
    ----------
    root : Path, optional
        The data root; default `data_root()`.
    """
    root = (data_root() if root is None else Path(root)).resolve()
    names = []
    for entry in os.scandir(root):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            if not Path(entry.path).resolve(strict=True).is_relative_to(root):
                continue
        except (OSError, RuntimeError):
            continue
        names.append(entry.name)
    return sorted(names)

"""Seed CSVs: ``path,label`` rows that set or clear the seeds of a scanned dataset.

The CSV export writes cells a spreadsheet would run as formulas with a leading ``'``
(`neutralise_cell`), and reading a seed CSV takes it off again (`restore_cell`), so an
export fed back as seeds gives exactly the exported paths and labels.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from .._checks import class_name_problem
from .dataset import Dataset, DatasetError

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _runs_as_formula(text: str) -> bool:
    """Whether a spreadsheet would evaluate `text`: = @ tab CR always, + - unless a plain number."""
    return text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text)


def neutralise_cell(value):
    """Prefix ``'`` to text a spreadsheet would run as a formula; `restore_cell` undoes it.

    Text that starts with quotes before such a formula gets one more, so the two are exact
    inverses for every string. Plain numbers (``-1``, ``+2.5``) and non-text are left alone.

    >>> neutralise_cell("=HYPERLINK()"), neutralise_cell("-1"), neutralise_cell("cat")
    ("'=HYPERLINK()", '-1', 'cat')
    >>> restore_cell(neutralise_cell("'=x")) == "'=x"
    True
    """
    if isinstance(value, str) and _runs_as_formula(value.lstrip("'")):
        return "'" + value
    return value


def restore_cell(text: str) -> str:
    """The text `neutralise_cell` was given: one leading ``'`` off a neutralised formula."""
    if text.startswith("'") and _runs_as_formula(text.lstrip("'")):
        return text[1:]
    return text


SEPARATORS = (",", ";", "\t")


def csv_rows(text: str):
    """The rows of a seed CSV's text, split at the separator its first line uses: a comma,
    else a semicolon (a spreadsheet's "CSV" where the comma is the decimal mark), else a
    tab; a first line with none of them is a single column."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    separator = next((sep for sep in SEPARATORS if sep in first), ",")
    return csv.reader(io.StringIO(text), delimiter=separator)


def read_seed_csv(csv_file, dataset: Dataset) -> dict[str, str | None]:
    """Read seed labels from a ``path,label`` CSV.

    Format: UTF-8 (a BOM is fine), comma-separated, or separated by semicolons or tabs
    as spreadsheets in many locales save "CSV" (`csv_rows`). A header row is optional: the first
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
    rows = [(number, row) for number, row in enumerate(csv_rows(text), start=1)
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
        path = _normalise_csv_path(restore_cell(row[path_column]) if path_column < len(row) else "")
        label = restore_cell(row[label_column]).strip() if label_column < len(row) else ""
        label = label or None
        if path in skipped:
            continue
        if path not in known:
            unknown.append((number, path))
            continue
        if label is not None and class_name_problem(label) is not None:
            raise DatasetError(f"{name} row {number}: label for {path!r}: "
                               f"{class_name_problem(label)}; choose a shorter, plain name")
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
            f"(paths are relative to {_root_in_words(dataset.root)}); "
            "fix or remove those rows")
    if conflicts:
        raise DatasetError(f"{name}: {'; '.join(conflicts)}; keep one label per path")
    return labels


def _root_in_words(root) -> str:
    """The folder seed paths are relative to, as a message names it: a dataset's folder by
    its name (never the server's path to it), or a caller's own description of it."""
    return root if isinstance(root, str) else f"the dataset folder {Path(root).name!r}"


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


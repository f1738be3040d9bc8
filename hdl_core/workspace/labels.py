"""The one label table: what every item is labeled now, where that label comes from, and
what the run said about it.

Which label an item shows is decided once, in the store (`Workspace.current_labels`): a
correction wins over a seed, which wins over the run. `build_label_table` turns that into
one row per item with everything the Review page, the Export page and the CLI show, and
`label_table` reads its inputs from a workspace. Export is a choice of columns of the same
table, so the app and the CLI can never disagree about a label or its confidence.

At a million images the pages do not build that table: `label_columns` holds the same
columns as arrays (codes for names, no paths), the gallery filters and orders those, and
`table_rows` builds the table's rows for the few items a page shows, paths read from the
store for just them. The tests hold `table_rows` of every row equal to `label_table`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Mapping

import numpy as np
import pandas as pd

from .store import LABEL_SOURCES, StoredRun, Workspace

# Where the label an item shows comes from (`Workspace.current_labels`).
SOURCES = LABEL_SOURCES
# Labels a person gave or checked: full confidence, seeds of the next run.
BY_HAND = ("seed", "manual", "confirmed")
TABLE_COLUMNS = ["item_id", "path", "file", "label", "source", "confidence", "step", "round",
                 "position", "fallback", "run_label", "run_seed", "baseline_label", "disagrees",
                 "truth"]
EXPORT_COLUMNS = ["path", "label", "source", "confidence", "step", "round"]


def build_label_table(items: pd.DataFrame, current: Mapping[int, tuple[str, str]], *,
                      run: StoredRun | None = None, baseline: StoredRun | None = None,
                      truth: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per item of `items`, in their order, with the label it has now.

    Parameters
    ----------
    items : DataFrame
        Accepted items with columns ``id``, ``path`` and, optionally, ``file`` (an absolute
        path for thumbnails).
    current : mapping item id -> (label, source)
        `Workspace.current_labels()` for `run`: where each label comes from ("manual",
        "seed", "hdl" or "fallback"); items it does not name have no label yet.
    run : StoredRun, optional
        The HDL run the labels come from. Items it did not label keep ``position`` -1.
    baseline : StoredRun, optional
        A kNN-DV run of the same seeds, matched by item id.
    truth : mapping path -> label, optional
        Ground truth (the demo).

    Returns
    -------
    DataFrame
        Columns `TABLE_COLUMNS`. ``confidence`` is 1 for labels given by hand (seeds and
        corrections), the run's vote share for labels from the run, NaN for no label;
        ``step`` and ``round`` are the run's for labels from the run, else -1;
        ``position`` is the item's row in the run (and in its neighbour graph), -1 when the
        run does not have it; ``run_label`` the run's own label and ``run_seed`` whether
        the item was a seed of the run; ``baseline_label`` kNN-DV's label (None without a
        baseline) and ``disagrees`` whether the run and kNN-DV differ; ``truth`` None where
        unknown.
    """
    missing = [name for name in ("id", "path") if name not in items.columns]
    if missing:
        raise ValueError(f"items lacks columns {missing}; pass Workspace.ok_items() or "
                         "pipeline.item_frame()")
    item_ids = items["id"].to_numpy(np.int64)
    n = item_ids.size
    table = pd.DataFrame({
        "item_id": item_ids,
        "path": items["path"].to_numpy(object),
        "file": items["file"].to_numpy(object) if "file" in items.columns else np.full(n, None),
    })
    now = [current.get(int(item_id), (None, None)) for item_id in item_ids]
    table["label"] = pd.Series([label for label, _ in now], dtype=object)
    table["source"] = pd.Series([source for _, source in now], dtype=object)

    position = _positions(run, item_ids)
    in_run = position >= 0
    at = position[in_run]
    step = np.full(n, -1, np.int64)
    round_ = np.full(n, -1, np.int64)
    run_confidence = np.full(n, np.nan)
    fallback = np.zeros(n, bool)
    run_label = np.full(n, None, dtype=object)
    run_seed = np.zeros(n, bool)
    if run is not None:
        result = run.result
        step[in_run], round_[in_run] = result.step[at], result.round[at]
        run_confidence[in_run] = result.confidence[at]
        fallback[in_run] = result.fallback[at]
        run_label[in_run] = run.label_names[at]
        run_seed[in_run] = result.step[at] < 0
    source = table["source"].to_numpy(object)
    by_hand = np.isin(source, BY_HAND)
    from_run = np.isin(source, ("hdl", "fallback")) & in_run
    table["confidence"] = np.where(by_hand, 1.0, np.where(from_run, run_confidence, np.nan))
    table["step"] = np.where(from_run, step, -1)
    table["round"] = np.where(from_run, round_, -1)
    table["position"] = position
    table["fallback"] = fallback
    table["run_label"] = run_label
    table["run_seed"] = run_seed

    baseline_label = np.full(n, None, dtype=object)
    if baseline is not None:
        other = _positions(baseline, item_ids)
        known = other >= 0
        baseline_label[known] = baseline.label_names[other[known]]
    table["baseline_label"] = baseline_label
    table["disagrees"] = (pd.notna(baseline_label) & in_run
                          & (baseline_label != run_label))
    table["truth"] = (None if not truth else [truth.get(path) for path in table["path"]])
    return table[TABLE_COLUMNS]


def _positions(run: StoredRun | None, item_ids: np.ndarray) -> np.ndarray:
    """Row of each item in `run` (-1 when the run does not have it)."""
    position = np.full(item_ids.size, -1, np.int64)
    if run is None or item_ids.size == 0 or len(run.item_ids) == 0:
        return position
    run_ids = np.asarray(run.item_ids, np.int64)
    order = np.argsort(run_ids, kind="stable")
    found = np.minimum(np.searchsorted(run_ids, item_ids, sorter=order), run_ids.size - 1)
    matches = run_ids[order[found]] == item_ids
    position[matches] = order[found[matches]]
    return position


def label_table(ws: Workspace, run_id: int | None = None, *, items: pd.DataFrame | None = None,
                with_baseline: bool = True) -> pd.DataFrame:
    """`build_label_table` for a workspace: its accepted items, labels and truth.

    Parameters
    ----------
    ws : Workspace
    run_id : int, optional
        The HDL run to take labels from; default the latest HDL run (None before any).
    items : DataFrame, optional
        The accepted items (``pipeline.item_frame(ws)`` gives them with their files);
        read from the store when not given.
    with_baseline : bool, default True
        Join the run's linked kNN-DV run.
    """
    run = ws.load_run(run_id, method=None if run_id is not None else "hdl")
    baseline = None
    if with_baseline and run is not None and run.baseline_id is not None:
        baseline = ws.load_run(run.baseline_id)
    current = ws.current_labels(None if run is None else run.run_id)
    return build_label_table(ws.ok_items() if items is None else items, current, run=run,
                             baseline=baseline, truth=ws.truth())


def export_frame(ws: Workspace, run_id: int | None = None) -> pd.DataFrame:
    """What Export and the CLI write: `EXPORT_COLUMNS` of the label table, one row per item.

    Items no run has labeled yet (and that are not seeds) have an empty label.
    """
    return label_table(ws, run_id, with_baseline=False)[EXPORT_COLUMNS]


# --------------------------------------------------------------------------- as arrays

@dataclass(frozen=True)
class LabelColumns:
    """The label table of a workspace and run as arrays: one entry per accepted item, in
    workspace order, without paths (what `build_label_table` gives, for a million items).

    Names are codes into `names` (-1: none); `source` is a code into `SOURCES` (-1: no
    label). Every other column is as in `build_label_table`.

    Attributes
    ----------
    item_id : ndarray of int64
    label, run_label, baseline_label, truth : ndarray of int32
        Codes into `names`.
    source : ndarray of int8
    confidence : ndarray of float64
    step, round, position : ndarray of int64
    fallback, run_seed, disagrees : ndarray of bool
    names : tuple of str
    run_id : int or None
    has_baseline, has_truth : bool
    version : int
        `Workspace.labels_version` when built.
    by_id : ndarray of int64
        The rows ordered by item id (computed when not given).
    """

    item_id: np.ndarray
    label: np.ndarray
    source: np.ndarray
    confidence: np.ndarray
    step: np.ndarray
    round: np.ndarray
    position: np.ndarray
    fallback: np.ndarray
    run_label: np.ndarray
    run_seed: np.ndarray
    baseline_label: np.ndarray
    disagrees: np.ndarray
    truth: np.ndarray
    names: tuple
    run_id: int | None
    has_baseline: bool
    has_truth: bool
    version: int
    by_id: np.ndarray = field(repr=False, default=None)

    def __post_init__(self):
        if self.by_id is None:                   # rows by ascending item id, for `rows_of`
            object.__setattr__(self, "by_id", np.argsort(self.item_id, kind="stable"))

    def __len__(self) -> int:
        return self.item_id.size

    def code(self, name: str | None) -> int:
        """The code of a class name (-2 for a name no entry has, which matches nothing)."""
        if name is None:
            return -1
        try:
            return self.names.index(name)
        except ValueError:
            return -2

    def name_array(self) -> np.ndarray:
        """`names` as an object array with None last, so ``name_array()[codes]`` maps -1 to None."""
        return np.array(list(self.names) + [None], dtype=object)

    def rows_of(self, item_ids) -> np.ndarray:
        """Row of each item id (-1 for one that is not here)."""
        ids = np.asarray(item_ids, np.int64)
        if self.item_id.size == 0:
            return np.full(ids.shape, -1, np.int64)
        order = self.by_id
        found = np.minimum(np.searchsorted(self.item_id, ids, sorter=order), self.item_id.size - 1)
        rows = order[found]
        return np.where(self.item_id[rows] == ids, rows, -1)


def label_columns(ws: Workspace, run_id: int | None = None, *,
                  with_baseline: bool = True) -> LabelColumns:
    """`label_table` as `LabelColumns`: no row objects and no paths.

    What depends only on the run, the items and the truth (`_fixed_columns`) is computed once
    and kept; what a correction changes (each item's label, source, confidence) is a few
    vectorised passes, so a million items take well under a second after a correction.

    Parameters are those of `label_table` (without `items`: every accepted item is a row).
    """
    version = ws.labels_version()
    if run_id is None:
        latest = ws.runs("hdl")
        run_id = latest[-1].run_id if latest else None
    info = ws.run_arrays(run_id)[0] if run_id is not None else None
    fixed = _fixed_columns(ws, run_id, with_baseline)
    current = ws.current_label_arrays(run_id, method=None if run_id is not None else "hdl")
    names: dict[str, int] = {}

    def codes_for(values) -> np.ndarray:
        """Codes in `names` of a short list of names, with -1 appended (so -1 maps to -1)."""
        return np.array([names.setdefault(v, len(names)) for v in values] + [-1], np.int32)

    rows_now = fixed.rows_now if np.array_equal(current.item_ids, fixed.sorted_ids) else \
        current.rows_of(fixed.item_id)
    hit = rows_now >= 0
    at = np.maximum(rows_now, 0)
    label = np.where(hit, codes_for(current.names)[current.label[at]], -1).astype(np.int32)
    source = np.where(hit, current.source[at], -1).astype(np.int8)
    in_run = fixed.position >= 0
    by_hand = np.isin(source, [SOURCES.index(s) for s in BY_HAND])
    from_run = np.isin(source, [SOURCES.index("hdl"), SOURCES.index("fallback")]) & in_run
    confidence = np.where(by_hand, 1.0, np.where(from_run, fixed.run_confidence, np.nan))
    run_label = codes_for(info.classes if info is not None else [])[fixed.run_label]
    baseline_label = codes_for(fixed.baseline_classes)[fixed.baseline_label]
    truth = codes_for(fixed.truth_names)[fixed.truth]
    disagrees = (baseline_label >= 0) & in_run & (baseline_label != run_label)
    return LabelColumns(
        item_id=fixed.item_id, label=label, source=source, confidence=confidence,
        step=np.where(from_run, fixed.step, -1), round=np.where(from_run, fixed.round, -1),
        position=fixed.position, fallback=fixed.fallback, run_label=run_label,
        run_seed=fixed.run_seed, baseline_label=baseline_label, disagrees=disagrees, truth=truth,
        names=tuple(sorted(names, key=names.get)), run_id=run_id,
        has_baseline=fixed.has_baseline, has_truth=fixed.has_truth, version=version,
        by_id=fixed.by_id)


@dataclass(frozen=True)
class _Fixed:
    """The label table's columns a correction does not change (kept per run, items, truth).

    Class columns are indices into their own short lists (the run's classes, the kNN-DV
    run's, the truth's names), -1 for none."""

    item_id: np.ndarray
    sorted_ids: np.ndarray
    rows_now: np.ndarray
    by_id: np.ndarray
    position: np.ndarray
    step: np.ndarray
    round: np.ndarray
    run_confidence: np.ndarray
    fallback: np.ndarray
    run_label: np.ndarray
    run_seed: np.ndarray
    baseline_label: np.ndarray
    baseline_classes: tuple
    has_baseline: bool
    truth: np.ndarray
    truth_names: tuple
    has_truth: bool


_FIXED: dict = {}


def _fixed_columns(ws: Workspace, run_id: int | None, with_baseline: bool) -> _Fixed:
    info = arrays = None
    if run_id is not None:
        info, arrays = ws.run_arrays(run_id)
    item_ids = np.asarray(ws.ok_item_ids(), np.int64)
    truth_ids, truth_values = ws.truth_of_items()
    key = (str(ws.folder), run_id, with_baseline, info.baseline_id if info else None,
           ws.versions())
    kept = _FIXED.get(key)
    if kept is not None:
        return kept
    n = item_ids.size
    by_id = np.argsort(item_ids, kind="stable")
    sorted_ids = item_ids[by_id]
    rows_now = np.empty(n, np.int64)
    rows_now[by_id] = np.arange(n)                  # row of each item among ascending ids
    position = _positions_in(arrays["item_id"] if arrays is not None else None, item_ids)
    in_run = position >= 0
    at = position[in_run]
    step = np.full(n, -1, np.int64)
    round_ = np.full(n, -1, np.int64)
    run_confidence = np.full(n, np.nan)
    fallback = np.zeros(n, bool)
    run_label = np.full(n, -1, np.int32)
    run_seed = np.zeros(n, bool)
    if arrays is not None:
        step[in_run], round_[in_run] = arrays["step"][at], arrays["round"][at]
        run_confidence[in_run] = arrays["confidence"][at]
        fallback[in_run] = arrays["fallback"][at]
        run_label[in_run] = arrays["labels"][at]
        run_seed[in_run] = arrays["step"][at] < 0
    baseline_label = np.full(n, -1, np.int32)
    baseline_classes: tuple = ()
    has_baseline = False
    if with_baseline and info is not None and info.baseline_id is not None:
        other_info, other = ws.run_arrays(info.baseline_id)
        known = _positions_in(other["item_id"], item_ids)
        hit = known >= 0
        baseline_label[hit] = other["labels"][known[hit]]
        baseline_classes, has_baseline = tuple(other_info.classes), True
    truth = np.full(n, -1, np.int32)
    truth_names: tuple = ()
    if truth_ids.size:
        codes, uniques = pd.factorize(truth_values)
        where = _positions_in(item_ids, truth_ids)
        truth[where[where >= 0]] = codes[where >= 0]
        truth_names = tuple(uniques.tolist())
    fixed = _Fixed(item_ids, sorted_ids, rows_now, by_id, position, step, round_, run_confidence,
                   fallback, run_label, run_seed, baseline_label, baseline_classes, has_baseline,
                   truth, truth_names, bool(truth_ids.size))
    _FIXED.clear()                     # one table's worth at a time: ~60 MB at a million items
    _FIXED[key] = fixed
    return fixed


def _positions_in(run_ids: np.ndarray | None, item_ids: np.ndarray) -> np.ndarray:
    """Row of each of `item_ids` in `run_ids` (-1 when absent)."""
    position = np.full(item_ids.size, -1, np.int64)
    if run_ids is None or item_ids.size == 0 or len(run_ids) == 0:
        return position
    run_ids = np.asarray(run_ids, np.int64)
    order = np.argsort(run_ids, kind="stable")
    found = np.minimum(np.searchsorted(run_ids, item_ids, sorter=order), run_ids.size - 1)
    matches = run_ids[order[found]] == item_ids
    position[matches] = order[found[matches]]
    return position


def table_rows(ws: Workspace, columns: LabelColumns, rows) -> pd.DataFrame:
    """The label table's rows (`TABLE_COLUMNS`) for the entries `rows` of `columns`, in that
    order: paths and files read from the store for these items only."""
    rows = np.asarray(rows, np.int64)
    names = columns.name_array()
    item_ids = columns.item_id[rows]
    paths = ws.item_paths(item_ids)
    root = ws.dataset_root()
    files = [None if root is None or p is None else str(root.joinpath(*PurePosixPath(p).parts))
             for p in paths]
    # built column by column as `build_label_table` builds them, so both give the same dtypes
    table = pd.DataFrame({"item_id": item_ids, "path": np.array(paths, dtype=object),
                          "file": np.array(files, dtype=object)})
    table["label"] = pd.Series(names[columns.label[rows]], dtype=object)
    sources = np.array(list(SOURCES) + [None], dtype=object)
    table["source"] = pd.Series(sources[columns.source[rows]], dtype=object)
    table["confidence"] = columns.confidence[rows]
    table["step"] = columns.step[rows]
    table["round"] = columns.round[rows]
    table["position"] = columns.position[rows]
    table["fallback"] = columns.fallback[rows]
    table["run_label"] = names[columns.run_label[rows]]
    table["run_seed"] = columns.run_seed[rows]
    table["baseline_label"] = names[columns.baseline_label[rows]]
    table["disagrees"] = columns.disagrees[rows]
    table["truth"] = None if not columns.has_truth else list(names[columns.truth[rows]])
    return table[TABLE_COLUMNS]

"""The one label table: what every item is labeled now, where that label comes from, and
what the run said about it.

Which label an item shows is decided once, in the store (`Workspace.current_labels`): a
correction wins over a seed, which wins over the run. `build_label_table` turns that into
one row per item with everything the Review page, the Export page and the CLI show, and
`label_table` reads its inputs from a workspace. Export is a choice of columns of the same
table, so the app and the CLI can never disagree about a label or its confidence.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from .store import StoredRun, Workspace

# Where the label an item shows comes from (`Workspace.current_labels`).
SOURCES = ("seed", "hdl", "fallback", "manual", "confirmed")
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

"""What the Review page shows: one table of the labels as they stand, and ways to narrow it.

`review_frame` joins a labeling run with the workspace's current labels (corrections win,
then seeds, then the run) and, when given, the kNN-DV run of the same seeds and the ground
truth. The other functions filter, order and page that table, read item ids out of a map
selection, and measure accuracy. Pure pandas / numpy, no Streamlit.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

# Where the label an item shows comes from (`Workspace.current_labels`).
SOURCES = ("seed", "hdl", "fallback", "manual")
REVIEW_COLUMNS = ["item_id", "position", "path", "file", "label", "source", "confidence",
                  "fallback", "run_label", "run_seed", "baseline_label", "disagrees", "truth"]


def review_frame(run: Any, items: pd.DataFrame, current: Mapping[int, tuple[str, str]], *,
                 baseline: Any = None, truth: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per item of `run`, in the run's order, with the label it has now.

    Parameters
    ----------
    run : StoredRun
        The HDL run under review (``item_ids``, ``label_names``, ``step``, ``confidence``,
        ``fallback``).
    items : DataFrame
        Accepted items with columns ``id``, ``path`` and, optionally, ``file`` (an absolute
        path for thumbnails); items of the run missing here (skipped since) are left out.
    current : mapping item id -> (label, source)
        `Workspace.current_labels()`: a correction ("manual") wins over a seed ("seed"),
        which wins over the run ("hdl" / "fallback").
    baseline : StoredRun, optional
        A kNN-DV run to compare with, matched by item id.
    truth : mapping path -> label, optional
        Ground truth (the demo).

    Returns
    -------
    DataFrame
        Columns `REVIEW_COLUMNS`: ``position`` is the row in the run (and in its neighbour
        graph); ``confidence`` is 1 for seeds and corrections, else the run's;
        ``run_label`` the run's own label and ``run_seed`` whether the item was a seed of the
        run; ``baseline_label`` kNN-DV's label (None without a baseline) and ``disagrees``
        whether the run and kNN-DV differ; ``truth`` None where unknown.
    """
    missing = [name for name in ("id", "path") if name not in items.columns]
    if missing:
        raise ValueError(f"items lacks columns {missing}; pass Workspace.ok_items() or "
                         "pipeline.item_frame()")
    item_ids = np.asarray(run.item_ids, dtype=np.int64)
    frame = pd.DataFrame({
        "item_id": item_ids,
        "position": np.arange(item_ids.size, dtype=np.int64),
        "run_label": np.asarray(run.label_names, dtype=object),
        "run_seed": np.asarray(run.step) < 0,
        "run_confidence": np.asarray(run.confidence, dtype=np.float64),
        "fallback": np.asarray(run.fallback, dtype=bool),
    })
    item_columns = ["id", "path"] + (["file"] if "file" in items.columns else [])
    frame = frame.merge(items[item_columns].rename(columns={"id": "item_id"}), on="item_id",
                        how="inner", sort=False)
    if "file" not in frame.columns:
        frame["file"] = None
    now = [current.get(int(item_id), (None, None)) for item_id in frame["item_id"]]
    frame["label"] = [label for label, _ in now]
    frame["source"] = [source for _, source in now]
    by_hand = frame["source"].isin(["seed", "manual"]).to_numpy()
    frame["confidence"] = np.where(by_hand, 1.0, frame["run_confidence"].to_numpy())
    if baseline is not None:
        names = dict(zip(np.asarray(baseline.item_ids).tolist(), baseline.label_names))
        frame["baseline_label"] = [names.get(int(item_id)) for item_id in frame["item_id"]]
        frame["disagrees"] = (frame["baseline_label"].notna()
                              & (frame["baseline_label"] != frame["run_label"]))
    else:
        frame["baseline_label"] = None
        frame["disagrees"] = False
    frame["truth"] = (None if not truth else
                      [truth.get(path) for path in frame["path"]])
    return frame[REVIEW_COLUMNS].reset_index(drop=True)


def filter_gallery(frame: pd.DataFrame, *, classes: Iterable[str] | None = None,
                   sources: Iterable[str] | None = None,
                   confidence: tuple[float, float] = (0.0, 1.0), fallback_only: bool = False,
                   disagreement_only: bool = False) -> pd.DataFrame:
    """The rows to show, lowest confidence first (ties: lower item id first).

    Parameters
    ----------
    frame : DataFrame
        From `review_frame`.
    classes : iterable of str, optional
        Keep items whose current label is one of these (None: every class).
    sources : iterable of str, optional
        Keep items whose label comes from one of `SOURCES` (None: every source).
    confidence : (low, high)
        Keep items with low <= confidence <= high.
    fallback_only : bool
        Keep items the run labeled by a bridge (fallback).
    disagreement_only : bool
        Keep items where the run and kNN-DV disagree.
    """
    low, high = (float(v) for v in confidence)
    if not low <= high:
        raise ValueError(f"confidence range ({low}, {high}) is empty; the low end must not "
                         "exceed the high end")
    keep = frame["confidence"].between(low, high).to_numpy().copy()
    if classes is not None:
        keep &= frame["label"].isin(list(classes)).to_numpy()
    if sources is not None:
        sources = list(sources)
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown sources {unknown}; choose from {list(SOURCES)}")
        keep &= frame["source"].isin(sources).to_numpy()
    if fallback_only:
        keep &= frame["fallback"].to_numpy(bool)
    if disagreement_only:
        keep &= frame["disagrees"].to_numpy(bool)
    kept = frame[keep]
    return kept.sort_values(["confidence", "item_id"], kind="stable").reset_index(drop=True)


def page_slice(frame: pd.DataFrame, page: int, per_page: int) -> tuple[pd.DataFrame, int, int]:
    """Rows of 1-based `page` (clamped to the pages there are), that page and the page count."""
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, got {per_page}")
    n_pages = max(1, -(-len(frame) // per_page))
    page = min(max(int(page), 1), n_pages)
    start = (page - 1) * per_page
    return frame.iloc[start:start + per_page], page, n_pages


def selected_item_ids(points: Sequence[Mapping[str, Any]] | None) -> list[int]:
    """Item ids of the points selected on a map whose traces carry item ids as ``customdata``.

    Plotly's ``point_index`` counts within each trace, so with one trace per class it does
    not identify an item; ``customdata`` does. A point's customdata may be the id itself or
    a list whose first entry is the id. Points without one are ignored; order is kept,
    repeats dropped.
    """
    ids: list[int] = []
    for point in points or []:
        value = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is None or isinstance(value, bool):
            continue
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(ids))


def positions_of(frame: pd.DataFrame, item_ids: Iterable[int]) -> np.ndarray:
    """Positions in the run (``frame["position"]``) of the given items; unknown ids are left out."""
    wanted = set(int(i) for i in item_ids)
    mask = frame["item_id"].isin(wanted).to_numpy()
    return np.sort(frame["position"].to_numpy(np.int64)[mask])


def hand_labeled(frame: pd.DataFrame) -> np.ndarray:
    """Item ids whose label was corrected by hand (source "manual")."""
    return frame.loc[frame["source"] == "manual", "item_id"].to_numpy(np.int64)


def pending_corrections(frame: pd.DataFrame) -> int:
    """Corrections the run has not used yet: items corrected by hand that were not a seed
    of the run with that label. A re-run makes them seeds."""
    manual = frame["source"] == "manual"
    used = frame["run_seed"] & (frame["run_label"] == frame["label"])
    return int((manual & ~used).sum())


def accuracy(frame: pd.DataFrame, column: str = "label") -> tuple[float, int] | None:
    """Share of items whose `column` equals the ground truth, and how many have a truth.

    None when no item has a known truth.
    """
    known = frame["truth"].notna()
    n = int(known.sum())
    if n == 0:
        return None
    return float((frame.loc[known, column] == frame.loc[known, "truth"]).mean()), n


def class_counts(frame: pd.DataFrame, classes: Sequence[str]) -> dict[str, int]:
    """Items per current label, for every class in `classes` (0 when none), in that order."""
    counts = frame["label"].value_counts()
    return {name: int(counts.get(name, 0)) for name in classes}

"""What the Review gallery shows of the label table: filtered, ordered, paged.

The table itself (`hdl_core.workspace.labels.build_label_table`) is built once per page
run; the functions here join the review queue to it, narrow it, order and page it, and
measure accuracy. Pure pandas / numpy, no Streamlit.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..workspace.labels import SOURCES


# How the gallery can be ordered: the review queue (`hdl_core.review_queue`), or the run's
# vote share.
ORDERS = {"queue": "likeliest wrong first", "confidence": "lowest confidence first"}


def with_queue(frame: pd.DataFrame, order: np.ndarray, doubt: np.ndarray) -> pd.DataFrame:
    """`frame` with the review queue's rank and doubt of each row.

    Parameters
    ----------
    frame : DataFrame
        The label table of a run (``position`` is the row in the run).
    order : ndarray
        `ReviewQueue.order`: positions in the run, likeliest-wrong first.
    doubt : ndarray (n,)
        `ReviewQueue.doubt` by position.

    Returns
    -------
    DataFrame
        A copy with ``queue_rank`` (0 = likeliest wrong; labels given by hand after the
        rest) and ``doubt`` (0 for them).
    """
    n = len(doubt)
    rank = np.full(n, n, np.int64)
    rank[np.asarray(order, np.int64)] = np.arange(len(order))
    out = frame.copy()
    position = out["position"].to_numpy(np.int64)
    inside = (position >= 0) & (position < n)
    by_hand = out["source"].isin(["seed", "manual", "confirmed"]).to_numpy()
    out["queue_rank"] = np.where(inside & ~by_hand, rank[np.clip(position, 0, n - 1)], n)
    out["doubt"] = np.where(inside & ~by_hand, np.asarray(doubt)[np.clip(position, 0, n - 1)], 0.0)
    return out


def filter_gallery(frame: pd.DataFrame, *, classes: Iterable[str] | None = None,
                   sources: Iterable[str] | None = None,
                   confidence: tuple[float, float] = (0.0, 1.0), fallback_only: bool = False,
                   disagreement_only: bool = False, item_ids: Iterable[int] | None = None,
                   order: str = "confidence") -> pd.DataFrame:
    """The rows to show, in the `order` asked for.

    Parameters
    ----------
    frame : DataFrame
        The label table (with `with_queue`'s columns for ``order="queue"``).
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
    item_ids : iterable of int, optional
        Keep only these items (a selection on the map).
    order : {"queue", "confidence"}
        Likeliest wrong first (`with_queue`), or lowest confidence first; ties by item id.
    """
    low, high = _checked_filter(order, confidence)
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
    if item_ids is not None:
        keep &= frame["item_id"].isin(list(item_ids)).to_numpy()
    kept = frame[keep]
    key = ["queue_rank", "item_id"] if order == "queue" else ["confidence", "item_id"]
    return kept.sort_values(key, kind="stable").reset_index(drop=True)


def page_slice(frame: pd.DataFrame, page: int, per_page: int) -> tuple[pd.DataFrame, int, int]:
    """Rows of 1-based `page` (clamped to the pages there are), that page and the page count."""
    start, page, n_pages = _page_bounds(len(frame), page, per_page)
    return frame.iloc[start:start + per_page], page, n_pages


def _page_bounds(n: int, page: int, per_page: int) -> tuple[int, int, int]:
    """(first row, 1-based page clamped to the pages there are, page count) of `n` rows."""
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, got {per_page}")
    n_pages = max(1, -(-n // per_page))
    page = min(max(int(page), 1), n_pages)
    return (page - 1) * per_page, page, n_pages


def positions_of(frame: pd.DataFrame, item_ids: Iterable[int]) -> np.ndarray:
    """Positions in the run (``frame["position"]``) of the given items; unknown ids are left out."""
    wanted = set(int(i) for i in item_ids)
    mask = frame["item_id"].isin(wanted).to_numpy()
    return np.sort(frame["position"].to_numpy(np.int64)[mask])


def hand_labeled(frame: pd.DataFrame) -> np.ndarray:
    """Item ids whose label was corrected or confirmed by hand since the seeds were given."""
    return frame.loc[frame["source"].isin(["manual", "confirmed"]), "item_id"].to_numpy(np.int64)


def pending_corrections(frame: pd.DataFrame) -> int:
    """Corrections the run has not used yet: items corrected by hand that were not a seed
    of the run with that label. A re-run makes them seeds."""
    manual = frame["source"].isin(["manual", "confirmed"])
    used = frame["run_seed"] & (frame["run_label"] == frame["label"])
    return int((manual & ~used).sum())


def accuracy(frame: pd.DataFrame, column: str = "label") -> tuple[float, int] | None:
    """Share of the run's non-seed items whose `column` equals the ground truth, and how many
    were scored; None when none has a known truth.

    Seeds are given, not predicted, so they are left out: with ``column="run_label"`` this
    is the run's accuracy the Label page shows (`hdl_core.views.replay`), and with the
    labels now it says how much the corrections have added.
    """
    scored = frame["truth"].notna() & ~frame["run_seed"].astype(bool) & (frame["position"] >= 0)
    n = int(scored.sum())
    if n == 0:
        return None
    return float((frame.loc[scored, column] == frame.loc[scored, "truth"]).mean()), n


def class_counts(frame: pd.DataFrame, classes: Sequence[str]) -> dict[str, int]:
    """Items per current label, for every class in `classes` (0 when none), in that order."""
    counts = frame["label"].value_counts()
    return {name: int(counts.get(name, 0)) for name in classes}


# --------------------------------------------------------------------------- on label arrays
# The same filters, order, counts and accuracy on `labels.LabelColumns` (a million items:
# numpy over arrays, and only the rows of one page become table rows). The tests hold each
# equal to its DataFrame version above on the same workspace.

def queue_columns(columns, order: np.ndarray, doubt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`with_queue`'s ``queue_rank`` and ``doubt`` for every entry of `columns`."""
    n = len(doubt)
    rank = np.full(n, n, np.int64)
    rank[np.asarray(order, np.int64)] = np.arange(len(order))
    position = columns.position
    inside = (position >= 0) & (position < n)
    by_hand = np.isin(columns.source, _codes(BY_HAND_SOURCES))
    clipped = np.clip(position, 0, max(n - 1, 0))
    queue_rank = np.where(inside & ~by_hand, rank[clipped] if n else n, n)
    queue_doubt = np.where(inside & ~by_hand, np.asarray(doubt)[clipped] if n else 0.0, 0.0)
    return queue_rank, queue_doubt


BY_HAND_SOURCES = ("seed", "manual", "confirmed")


def _codes(sources) -> list[int]:
    return [SOURCES.index(s) for s in sources]


def filter_rows(columns, *, classes: Iterable[str] | None = None,
                sources: Iterable[str] | None = None,
                confidence: tuple[float, float] = (0.0, 1.0), fallback_only: bool = False,
                disagreement_only: bool = False, item_ids: Iterable[int] | None = None,
                order: str = "confidence", queue_rank: np.ndarray | None = None,
                among: np.ndarray | None = None) -> np.ndarray:
    """`filter_gallery` on `LabelColumns`: the rows to show, in the order asked for.

    Parameters are those of `filter_gallery`, plus `queue_rank` (from `queue_columns`, for
    ``order="queue"``) and `among`, a mask of the rows to consider (the items of the run).

    Returns
    -------
    ndarray of int64
        Rows of `columns`.
    """
    low, high = _checked_filter(order, confidence)
    value = columns.confidence
    keep = (value >= low) & (value <= high)
    if among is not None:
        keep &= among
    if classes is not None:
        keep &= np.isin(columns.label, [columns.code(name) for name in classes])
    if sources is not None:
        sources = list(sources)
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown sources {unknown}; choose from {list(SOURCES)}")
        keep &= np.isin(columns.source, _codes(sources))
    if fallback_only:
        keep &= columns.fallback
    if disagreement_only:
        keep &= columns.disagrees
    if item_ids is not None:
        keep &= np.isin(columns.item_id, np.fromiter(item_ids, np.int64))
    rows = np.flatnonzero(keep)
    if order == "queue":
        if queue_rank is None:
            raise ValueError("order='queue' needs queue_rank (queue_columns)")
        key = queue_rank[rows]
    else:
        key = value[rows]
    return rows[np.lexsort((columns.item_id[rows], key))]


def page_rows(rows: np.ndarray, page: int, per_page: int) -> tuple[np.ndarray, int, int]:
    """`page_slice` for an array of rows: (rows of 1-based `page`, that page, the page count)."""
    start, page, n_pages = _page_bounds(len(rows), page, per_page)
    return rows[start:start + per_page], page, n_pages


def class_counts_of(columns, classes: Sequence[str], among: np.ndarray | None = None) -> dict[str, int]:
    """`class_counts` on `LabelColumns` (of the rows in the mask `among`)."""
    label = columns.label if among is None else columns.label[among]
    counts = np.bincount(label[label >= 0], minlength=len(columns.names))
    return {name: int(counts[columns.code(name)]) if columns.code(name) >= 0 else 0
            for name in classes}


def source_counts_of(columns, among: np.ndarray | None = None) -> dict[str, int]:
    """How many labels come from each of `SOURCES` (of the rows in `among`)."""
    source = columns.source if among is None else columns.source[among]
    counts = np.bincount(source[source >= 0], minlength=len(SOURCES))
    return {name: int(counts[code]) for code, name in enumerate(SOURCES)}


def pending_of(columns, among: np.ndarray | None = None) -> int:
    """`pending_corrections` on `LabelColumns`."""
    manual = np.isin(columns.source, _codes(("manual", "confirmed")))
    used = columns.run_seed & (columns.run_label == columns.label)
    pending = manual & ~used
    return int(pending.sum() if among is None else pending[among].sum())


def accuracy_of(columns, column: str = "label",
                among: np.ndarray | None = None) -> tuple[float, int] | None:
    """`accuracy` on `LabelColumns` (of the rows in `among`)."""
    scored = (columns.truth >= 0) & ~columns.run_seed & (columns.position >= 0)
    if among is not None:
        scored &= among
    n = int(scored.sum())
    if n == 0:
        return None
    values = getattr(columns, column)
    return float((values[scored] == columns.truth[scored]).mean()), n


def hand_labeled_of(columns) -> np.ndarray:
    """`hand_labeled` on `LabelColumns`: item ids corrected or confirmed by hand."""
    return columns.item_id[np.isin(columns.source, _codes(("manual", "confirmed")))]


def _checked_filter(order: str, confidence) -> tuple[float, float]:
    """The gallery's order checked, and its confidence range as (low, high)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
    low, high = (float(v) for v in confidence)
    if not low <= high:
        raise ValueError(f"confidence range ({low}, {high}) is empty; the low end must not "
                         "exceed the high end")
    return low, high


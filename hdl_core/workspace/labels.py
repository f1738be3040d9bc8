"""The one label table: what every item is labeled now, and where that label comes from.

A correction wins over a seed, which wins over the run (`Workspace.current_labels`).
Review, Export and the CLI all read labels through this module.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .store import Workspace

# Where the label an item shows comes from (`Workspace.current_labels`).
SOURCES = ("seed", "hdl", "fallback", "manual")
REVIEW_COLUMNS = ["item_id", "position", "path", "file", "label", "source", "confidence",
                  "fallback", "run_label", "run_seed", "baseline_label", "disagrees", "truth"]
EXPORT_COLUMNS = ["path", "label", "source", "confidence", "step", "round"]


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



def export_frame(ws: Workspace, run_id: int | None = None) -> pd.DataFrame:
    """One row per accepted item: path, label, source, confidence, step, round.

    The label is what the item has now (`Workspace.current_labels`): a manual correction
    ("manual", confidence 1), else a seed ("seed"), else the run's label ("hdl" or
    "fallback"). step and round come from the run (-1 for seeds and corrected items, which
    are seeds of the next run); items no run has labeled yet have an empty label.
    """
    items = ws.ok_items()
    current = ws.current_labels(run_id)
    run = ws.load_run(run_id, method=None if run_id is not None else "hdl")
    by_item = {}
    if run is not None:
        by_item = {int(i): p for p, i in enumerate(run.item_ids)}
    rows = []
    for item_id, path in zip(items["id"], items["path"]):
        label, source = current.get(int(item_id), (None, None))
        position = by_item.get(int(item_id))
        confidence, step, rnd = (np.nan, -1, -1)
        if source in ("seed", "manual"):
            confidence = 1.0
        elif position is not None and source is not None:
            confidence = float(run.confidence[position])
            step, rnd = int(run.step[position]), int(run.round[position])
        rows.append((path, label, source, confidence, step, rnd))
    return pd.DataFrame(rows, columns=EXPORT_COLUMNS)


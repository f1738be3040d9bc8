"""Labeling runs in the workspace store: a row per run, its arrays in one Arrow file beside
the database, listed and loaded read-only."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..hdl import LabelingResult
from ._tables import (_bump_meta, _check_class_name, _check_items_accepted, METHODS, _resolve_run,
                      _run_arrays, _run_row, _to_json)
from .arrays import write_run_arrays
from .schema import now as _now


RESULT_FIELDS = ("labels", "step", "round", "confidence", "n_voters", "fallback", "source")


@dataclass
class StoredRun:
    """A labeling run as stored: its `LabelingResult` plus what produced it.

    The result's arrays are aligned with ``item_ids`` (the run's own item order, usually
    ``ok_items()`` order at the time of the run); ``result.labels`` index into
    ``classes`` and ``result.source`` is a position in this order.

    Attributes
    ----------
    run_id : int
    created : str
        ISO-8601 UTC time of saving.
    method : {"hdl", "knn_dv"}
    params : dict
        Parameters as given to `Workspace.save_run` (JSON round-tripped).
    classes : list of str
        Class names; ``result.labels`` index into this list.
    item_ids : ndarray of int64, shape (n,)
    result : LabelingResult
        As the run produced it; a bridged point whose source item was deleted since (a
        rescan) has ``source`` -1.
    baseline_id : int or None
        For an HDL run, the kNN-DV run saved with it on the same seeds (`save_run`'s
        ``compares_to``); None when there is none.
    """

    run_id: int
    created: str
    method: str
    params: dict
    classes: list[str]
    item_ids: np.ndarray
    result: LabelingResult
    baseline_id: int | None = None

    @property
    def k(self) -> int:
        return self.result.k

    @property
    def label_names(self) -> np.ndarray:
        """Class name per item (object array), None where the run gave no label."""
        return np.array(self.classes + [None], dtype=object)[self.result.labels]

    def to_frame(self) -> pd.DataFrame:
        """One row per item: item_id, label (name), step, round, confidence, n_voters, fallback, source."""
        r = self.result
        return pd.DataFrame({
            "item_id": self.item_ids, "label": self.label_names, "step": r.step,
            "round": r.round, "confidence": r.confidence, "n_voters": r.n_voters,
            "fallback": r.fallback, "source": r.source,
        })


@dataclass(frozen=True)
class RunInfo:
    """One run as `Workspace.runs` lists it: what produced it, not its per-item rows.

    Attributes
    ----------
    run_id : int
    created : str
    method : {"hdl", "knn_dv"}
    k : int
    params : dict
    classes : list of str
    n_items : int
    baseline_id : int or None
        For an HDL run, its linked kNN-DV run.
    """

    run_id: int
    created: str
    method: str
    k: int
    params: dict
    classes: list
    n_items: int
    baseline_id: int | None = None


def _result_arrays(result: Any, *, n: int, n_classes: int) -> dict[str, np.ndarray]:
    """The LabelingResult fields as checked numpy arrays of length n."""
    missing = [name for name in RESULT_FIELDS if not hasattr(result, name)]
    if missing:
        raise ValueError(f"result lacks {missing}; pass a LabelingResult (or an object with "
                         f"{', '.join(RESULT_FIELDS)})")
    arrays = {}
    for name in RESULT_FIELDS:
        array = np.asarray(getattr(result, name))
        if array.shape != (n,):
            raise ValueError(f"result.{name} has shape {array.shape}, expected ({n},) "
                             "to match item_ids")
        kind = "f" if name == "confidence" else "b" if name == "fallback" else "i"
        if name == "fallback":
            if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"result.fallback must be boolean, got dtype {array.dtype}")
            array = array.astype(bool)
        elif kind == "i":
            if n and not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"result.{name} must be integers, got dtype {array.dtype}")
            array = array.astype(np.int64)
        else:
            if n and not np.issubdtype(array.dtype, np.number):
                raise ValueError(f"result.confidence must be numbers, got dtype {array.dtype}")
            array = array.astype(np.float64)
        arrays[name] = array
    labels, source = arrays["labels"], arrays["source"]
    if n and (labels.min() < -1 or labels.max() >= n_classes):
        raise ValueError(f"result.labels must lie in [-1, {n_classes - 1}] "
                         f"(indices into classes), got [{labels.min()}, {labels.max()}]")
    if n and (source.min() < -1 or source.max() >= n):
        raise ValueError(f"result.source must lie in [-1, {n - 1}] (positions in item_ids), "
                         f"got [{source.min()}, {source.max()}]")
    return arrays


def _stored_run(run_id: int, created: str, method: str, k: int, params: dict,
                classes: list[str], arrays: dict[str, np.ndarray],
                baseline_id: int | None) -> StoredRun:
    result = LabelingResult(
        labels=arrays["labels"].copy(), step=arrays["step"].copy(), round=arrays["round"].copy(),
        confidence=arrays["confidence"].copy(), n_voters=arrays["n_voters"].copy(),
        fallback=arrays["fallback"].copy(), source=arrays["source"].copy(), k=int(k))
    return StoredRun(run_id=run_id, created=created, method=method, params=params,
                     classes=classes, item_ids=arrays["item_id"].copy(), result=result,
                     baseline_id=baseline_id)


class _Runs:
    """`Workspace`'s labeling runs: saved, listed, loaded (used as a part of `Workspace`, not
    alone)."""

    def save_run(self, *, method: str, params: dict, result: LabelingResult,
                 classes: Sequence[str], item_ids: Sequence[int] | np.ndarray,
                 compares_to: int | None = None) -> int:
        """Store a labeling result so it can be reloaded and replayed.

        Parameters
        ----------
        method : {"hdl", "knn_dv"}
        params : dict
            JSON-serialisable (numpy scalars and arrays and Paths are converted).
        result : LabelingResult-like
            Any object with arrays ``labels, step, round, confidence,
            n_voters, fallback, source``, each of length n, aligned with
            `item_ids`.  ``labels`` index into `classes` (-1: no label);
            ``source`` is a position in `item_ids` or -1.
        classes : sequence of str
            Distinct class names.
        item_ids : sequence of int, length n
            Distinct accepted items, in the order of `result`.
        compares_to : int, optional
            For a kNN-DV run: the HDL run it was made to compare with (same seeds, same
            k). Stored as a link, so the pair is never guessed.

        Returns
        -------
        int
            The new run's id.

        Raises
        ------
        ValueError
            Any input out of shape or range; the message names it.
        """
        if method not in METHODS:
            raise ValueError(f"method={method!r} is not one of {METHODS}")
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict, got {type(params).__name__}")
        params_json = _to_json(params, "params")
        classes = [_check_class_name(name, "classes") for name in classes]
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes has repeated names: {classes}")
        ids = np.asarray(item_ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"item_ids must be a 1-D sequence of integers, got shape {ids.shape} "
                             f"dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("item_ids has repeated ids")
        arrays = _result_arrays(result, n=len(ids), n_classes=len(classes))
        k = getattr(result, "k", None)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"result.k={k!r} must be an integer >= 1")
        with self._write() as conn:
            _check_items_accepted(conn, ids)
            if compares_to is not None:
                partner = conn.execute("SELECT method FROM runs WHERE id = ?",
                                       (int(compares_to),)).fetchone()
                if partner is None or partner[0] != "hdl" or method != "knn_dv":
                    raise ValueError(f"compares_to={compares_to!r}: only a kNN-DV run compares "
                                     "with an HDL run, and that run must exist")
            cursor = conn.execute(
                "INSERT INTO runs(created, method, k, params, classes, compares_to, n_items) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_now(), method, int(k), params_json, json.dumps(classes),
                 None if compares_to is None else int(compares_to), len(ids)))
            run_id = cursor.lastrowid
            # The arrays go to a file of their own, written (and made durable) before the
            # row naming it commits: a process killed before the commit leaves the store as
            # it was, and an unnamed file that `_remove_orphan_runs` clears later.
            name = f"run-{run_id}-{uuid.uuid4().hex[:12]}.arrow"
            conn.execute("UPDATE runs SET arrays = ? WHERE id = ?", (name, run_id))
            if method == "hdl" or compares_to is not None:   # a run, or its kNN-DV column
                _bump_meta(conn, "labels_version")
            self.runs_dir.mkdir(exist_ok=True)
            write_run_arrays(self.runs_dir / name, {"item_id": ids, **arrays})
        return run_id

    def runs(self, method: str | None = None) -> list[RunInfo]:
        """All runs (of `method`, when given), oldest first, without their per-item rows."""
        if method is not None and method not in METHODS:
            raise ValueError(f"method={method!r} is not one of {METHODS} or None")
        with self._lock:
            rows = self._conn().execute(
                "SELECT r.id, r.created, r.method, r.k, r.params, r.classes, r.n_items, "
                "(SELECT MAX(b.id) FROM runs b WHERE b.compares_to = r.id) "
                "FROM runs r WHERE ? IS NULL OR r.method = ? ORDER BY r.id",
                (method, method)).fetchall()
        return [RunInfo(run_id, created, kind, k, json.loads(params), json.loads(classes),
                        n_items, baseline)
                for run_id, created, kind, k, params, classes, n_items, baseline in rows]

    def load_run(self, run_id: int | None = None, *, method: str | None = None) -> StoredRun | None:
        """Load one run.

        Parameters
        ----------
        run_id : int, optional
            Default: the latest run (of `method`, when given).
        method : {"hdl", "knn_dv"}, optional
            Only with ``run_id=None``.

        Returns
        -------
        StoredRun or None
            None when there is no run (of that method).

        Raises
        ------
        ValueError
            `run_id` names no run, or an unknown `method`.
        """
        if method is not None and method not in METHODS:
            raise ValueError(f"method={method!r} is not one of {METHODS} or None")
        with self._read() as conn:
            run_id = _resolve_run(conn, run_id, method)
            if run_id is None:
                return None
            created, method, k, params, classes, _, _ = _run_row(conn, run_id)
            arrays = _run_arrays(conn, run_id)
            baseline = conn.execute("SELECT MAX(id) FROM runs WHERE compares_to = ?",
                                    (run_id,)).fetchone()[0]
        return _stored_run(run_id, created, method, k, json.loads(params), json.loads(classes),
                           arrays, baseline)

    def run_arrays(self, run_id: int) -> tuple[RunInfo, dict[str, np.ndarray]]:
        """A run's facts and its per-item arrays, read-only and shared (no copy).

        What `load_run` copies into a `StoredRun`; pages that only read a run of a million
        images take these instead. Keys: ``item_id, labels, step, round, confidence,
        n_voters, fallback, source`` (``source``: a position in the run, -1 for none).

        Raises
        ------
        ValueError
            `run_id` names no run.
        """
        with self._read() as conn:
            run_id = _resolve_run(conn, run_id, None)
            if run_id is None:
                raise ValueError("run_id must name a run")
            created, method, k, params, classes, _, n_items = _run_row(conn, run_id)
            arrays = _run_arrays(conn, run_id)
            baseline = conn.execute("SELECT MAX(id) FROM runs WHERE compares_to = ?",
                                    (run_id,)).fetchone()[0]
        return RunInfo(run_id, created, method, k, json.loads(params), json.loads(classes),
                       n_items, baseline), arrays

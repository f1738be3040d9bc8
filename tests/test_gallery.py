"""The label table (hdl_core.workspace.labels) and what the Review gallery does with it:
current labels over a run, filters, paging, accuracy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hdl_core.hdl import LabelingResult
from hdl_core.views import gallery as review
from hdl_core.workspace import labels
from hdl_core.workspace.store import StoredRun

CLASSES = ["cat", "dog"]


def _run(item_ids, names, step, confidence, fallback):
    n = len(item_ids)
    result = LabelingResult(labels=np.array([CLASSES.index(c) for c in names]),
                            step=np.asarray(step), round=np.where(np.asarray(step) < 0, -1, 0),
                            confidence=np.asarray(confidence, dtype=float),
                            n_voters=np.ones(n, np.int64), fallback=np.asarray(fallback, dtype=bool),
                            source=np.full(n, -1), k=3)
    return StoredRun(1, "2026-01-01", "hdl", {}, CLASSES, np.asarray(item_ids), result)


@pytest.fixture
def frame():
    # items 10..14 in run order; 10 is a seed, 13 was bridged, 14 was corrected by hand.
    run = _run([10, 11, 12, 13, 14], ["cat", "cat", "dog", "dog", "cat"],
               [-1, 0, 1, 2, 3], [1.0, 0.9, 0.6, 0.45, 0.7], [False, False, False, True, False])
    baseline = _run([14, 13, 12, 11, 10], ["cat", "cat", "dog", "cat", "cat"],
                    [0] * 5, [1.0] * 5, [False] * 5)
    items = pd.DataFrame({"id": [10, 11, 12, 13, 14],
                          "path": ["a.png", "b.png", "c.png", "d.png", "e.png"],
                          "file": ["/x/a.png", "/x/b.png", "/x/c.png", "/x/d.png", "/x/e.png"]})
    current = {10: ("cat", "seed"), 11: ("cat", "hdl"), 12: ("dog", "hdl"),
               13: ("dog", "fallback"), 14: ("dog", "manual")}
    truth = {"a.png": "cat", "b.png": "cat", "c.png": "cat", "d.png": "dog", "e.png": "dog"}
    return labels.build_label_table(items, current, run=run, baseline=baseline, truth=truth)


def test_frame_shows_current_labels_with_corrections_winning(frame):
    assert frame["item_id"].tolist() == [10, 11, 12, 13, 14]
    assert frame["position"].tolist() == [0, 1, 2, 3, 4]
    assert frame["label"].tolist() == ["cat", "cat", "dog", "dog", "dog"]
    assert frame["run_label"].tolist() == ["cat", "cat", "dog", "dog", "cat"]
    assert frame["source"].tolist() == ["seed", "hdl", "hdl", "fallback", "manual"]


def test_seeds_and_corrections_have_full_confidence_others_keep_the_runs(frame):
    assert frame["confidence"].tolist() == [1.0, 0.9, 0.6, 0.45, 1.0]


def test_disagreement_with_knn_dv_is_matched_by_item_id_not_row(frame):
    # the baseline lists items in reverse order; only item 13 (run 'dog', kNN-DV 'cat') differs
    assert frame.loc[frame["disagrees"], "item_id"].tolist() == [13]


def test_frame_without_baseline_or_truth_has_empty_columns():
    run = _run([1], ["cat"], [0], [0.5], [False])
    items = pd.DataFrame({"id": [1], "path": ["a.png"]})
    plain = labels.build_label_table(items, {1: ("cat", "hdl")}, run=run)
    assert not plain["disagrees"].any()
    assert plain["truth"].isna().all()
    assert review.accuracy(plain) is None


def test_items_no_longer_accepted_are_left_out_and_new_ones_have_no_run_row():
    run = _run([1, 2], ["cat", "dog"], [0, 1], [0.5, 0.5], [False, False])
    items = pd.DataFrame({"id": [2, 3], "path": ["b.png", "c.png"]})
    frame = labels.build_label_table(items, {2: ("dog", "hdl")}, run=run)
    assert frame["item_id"].tolist() == [2, 3]
    assert frame["position"].tolist() == [1, -1]   # its row in the run (and the graph); none
    assert frame["label"].tolist() == ["dog", None]
    assert frame["step"].tolist() == [1, -1] and np.isnan(frame["confidence"].iloc[1])


def test_export_is_the_tables_columns_and_by_hand_labels_have_no_step(frame):
    exported = frame[labels.EXPORT_COLUMNS]
    assert exported["step"].tolist() == [-1, 0, 1, 2, -1]      # the seed and the correction: -1
    assert exported["round"].tolist() == [-1, 0, 0, 0, -1]


def test_gallery_is_lowest_confidence_first(frame):
    shown = review.filter_gallery(frame)
    assert shown["item_id"].tolist() == [13, 12, 11, 10, 14]   # ties at 1.0 by item id


def test_filters_narrow_by_class_source_confidence_fallback_and_disagreement(frame):
    assert review.filter_gallery(frame, classes=["cat"])["item_id"].tolist() == [11, 10]
    assert review.filter_gallery(frame, sources=["fallback"])["item_id"].tolist() == [13]
    assert review.filter_gallery(frame, sources=["manual", "seed"])["item_id"].tolist() == [10, 14]
    assert review.filter_gallery(frame, confidence=(0.5, 0.95))["item_id"].tolist() == [12, 11]
    assert review.filter_gallery(frame, fallback_only=True)["item_id"].tolist() == [13]
    assert review.filter_gallery(frame, disagreement_only=True)["item_id"].tolist() == [13]
    assert review.filter_gallery(frame, classes=["cat"], fallback_only=True).empty


def test_filters_refuse_unknown_sources_and_empty_ranges(frame):
    with pytest.raises(ValueError, match="unknown sources"):
        review.filter_gallery(frame, sources=["robot"])
    with pytest.raises(ValueError, match="range"):
        review.filter_gallery(frame, confidence=(0.8, 0.2))


def test_pages_are_clamped_and_counted():
    table = pd.DataFrame({"x": range(100)})
    rows, page, n_pages = review.page_slice(table, 3, 48)
    assert (page, n_pages) == (3, 3) and rows["x"].tolist() == list(range(96, 100))
    rows, page, _ = review.page_slice(table, 9, 48)
    assert page == 3
    rows, page, n_pages = review.page_slice(table.iloc[:0], 1, 48)
    assert (page, n_pages, len(rows)) == (1, 1, 0)
    with pytest.raises(ValueError, match="per_page"):
        review.page_slice(table, 1, 0)


def test_positions_and_hand_labeled_items(frame):
    assert review.hand_labeled(frame).tolist() == [14]
    assert review.positions_of(frame, [14, 10, 999]).tolist() == [0, 4]


def test_pending_corrections_counts_corrections_the_run_did_not_use(frame):
    assert review.pending_corrections(frame) == 1               # item 14, corrected after the run
    used = frame.copy()
    used.loc[used["item_id"] == 14, ["run_seed", "run_label"]] = [True, "dog"]
    assert review.pending_corrections(used) == 0


def test_accuracy_compares_current_or_run_labels_with_truth_leaving_seeds_out(frame):
    assert review.accuracy(frame) == (pytest.approx(3 / 4), 4)          # c.png is wrong
    assert review.accuracy(frame, "run_label") == (pytest.approx(2 / 4), 4)   # e.png too


def test_class_counts_list_every_class(frame):
    assert review.class_counts(frame, ["dog", "cat", "bird"]) == {"dog": 3, "cat": 2, "bird": 0}


# --------------------------------------------------------------------------- as arrays, paged

def _workspace(tmp_path, n=60, seed=0):
    """A workspace with seeds, an HDL run and its kNN-DV run, truth, corrections (one
    undone), a confirmation, a merged class and an item added after the run."""
    from hdl_core.data import Dataset, Item
    from hdl_core.workspace.store import Workspace
    rng = np.random.default_rng(seed)
    names = ["cat", "dog", "owl"]
    items = [Item(f"img/{i:03d}.png", f"h{i}", 10, names[i % 3] if i < 6 else None)
             for i in range(n)]
    truth = {item.path: names[int(rng.integers(0, 3))] for item in items[: n - 5]}
    ws = Workspace(tmp_path / "ws")
    ws.set_dataset(Dataset(root=tmp_path / "data", items=items, truth=truth))
    ids = ws.ok_item_ids()
    y = rng.integers(0, 3, len(ids))
    step = np.where(np.arange(len(ids)) < 6, -1, rng.integers(0, 40, len(ids)))
    result = LabelingResult(labels=np.where(rng.random(len(ids)) < 0.05, -1, y), step=step,
                            round=np.where(step < 0, -1, step // 4),
                            confidence=np.round(rng.random(len(ids)), 1),
                            n_voters=np.ones(len(ids), np.int64),
                            fallback=rng.random(len(ids)) < 0.1, source=np.full(len(ids), -1), k=3)
    hdl = ws.save_run(method="hdl", params={}, result=result, classes=names, item_ids=ids)
    other = LabelingResult(labels=rng.integers(0, 3, len(ids)), step=np.zeros(len(ids), np.int64),
                           round=np.zeros(len(ids), np.int64), confidence=np.ones(len(ids)),
                           n_voters=np.ones(len(ids), np.int64), fallback=np.zeros(len(ids), bool),
                           source=np.full(len(ids), -1), k=3)
    ws.save_run(method="knn_dv", params={}, result=other, classes=names, item_ids=ids[::-1].copy(),
                compares_to=hdl)
    ws.add_correction([int(ids[10]), int(ids[11])], "bird")
    ws.add_correction([int(ids[12])], "dog")
    ws.undo_last_correction()
    labeled = ws.current_labels()
    ws.confirm([int(i) for i in ids[20:23] if labeled.get(int(i), (None, ""))[1] in ("hdl", "fallback")])
    ws.merge_classes("owl", "dog")
    ws.set_dataset(Dataset(root=tmp_path / "data", items=items + [Item("img/new.png", "hnew", 1)],
                           truth=truth))
    return ws


def _same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal row for row, column for column (a missing value is missing, None or NaN)."""
    assert list(left.columns) == list(right.columns)
    plain = lambda frame: frame.reset_index(drop=True).astype(object).where(frame.reset_index(
        drop=True).notna(), None)
    pd.testing.assert_frame_equal(plain(left), plain(right))


def _table(ws, **options):
    from hdl_core.workspace import pipeline
    return labels.label_table(ws, items=pipeline.item_frame(ws), **options)


def test_table_rows_of_every_entry_are_the_label_table(tmp_path):
    ws = _workspace(tmp_path)
    table = _table(ws)
    columns = labels.label_columns(ws)
    rows = labels.table_rows(ws, columns, np.arange(len(columns)))
    _same(rows, table)
    no_baseline = labels.table_rows(ws, labels.label_columns(ws, with_baseline=False),
                                    np.arange(len(columns)))
    _same(no_baseline, _table(ws, with_baseline=False))


@pytest.mark.parametrize("filters", [
    {}, {"classes": ["dog"]}, {"classes": ["bird", "cat"]}, {"sources": ["hdl", "fallback"]},
    {"sources": ["manual", "confirmed", "seed"]}, {"confidence": (0.2, 0.6)},
    {"fallback_only": True}, {"disagreement_only": True}, {"order": "queue"},
    {"classes": ["cat"], "confidence": (0.0, 0.5), "order": "queue"},
])
def test_paged_gallery_on_arrays_shows_what_the_table_shows(tmp_path, filters):
    ws = _workspace(tmp_path)
    table = _table(ws)
    columns = labels.label_columns(ws)
    in_run = table["position"] >= 0
    frame = table[in_run].reset_index(drop=True)
    rng = np.random.default_rng(1)
    order = rng.permutation(int(columns.position.max()) + 1)
    doubt = rng.random(order.size)
    frame = review.with_queue(frame, order, doubt)
    rank, _ = review.queue_columns(columns, order, doubt)
    selection = frame["item_id"].tolist()[::3]
    for chosen in (None, selection):
        expected = review.filter_gallery(frame, item_ids=chosen, **filters)
        rows = review.filter_rows(columns, item_ids=chosen, queue_rank=rank,
                                  among=columns.position >= 0, **filters)
        assert columns.item_id[rows].tolist() == expected["item_id"].tolist()
        for page in (1, 2, 99):
            want, page_number, pages = review.page_slice(expected, page, 7)
            got, got_number, got_pages = review.page_rows(rows, page, 7)
            assert (got_number, got_pages) == (page_number, pages)
            shown = labels.table_rows(ws, columns, got)
            _same(shown, want[labels.TABLE_COLUMNS])


def test_counts_and_accuracy_on_arrays_equal_the_tables(tmp_path):
    ws = _workspace(tmp_path)
    table = _table(ws)
    columns = labels.label_columns(ws)
    among = columns.position >= 0
    frame = table[table["position"] >= 0]
    classes = ws.classes()
    assert review.class_counts_of(columns, classes, among) == review.class_counts(frame, classes)
    assert review.pending_of(columns, among) == review.pending_corrections(frame)
    for column in ("label", "run_label"):
        assert review.accuracy_of(columns, column, among) == review.accuracy(frame, column)
    assert sorted(review.hand_labeled_of(columns).tolist()) == sorted(
        review.hand_labeled(table).tolist())
    counts = review.source_counts_of(columns)
    assert counts == {s: int((table["source"] == s).sum()) for s in labels.SOURCES}

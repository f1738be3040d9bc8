"""Review: HDL's likeliest mistakes first, fixed one at a time or by a region of the map.

The review queue (`hdl_core.review_queue`) orders the images HDL labeled likeliest-wrong
first, each with its reason in words. Every correction or confirmation goes to the
workspace store at once with who made it, shows here straight away (corrections win over
the run), becomes a seed of the next run, and can be undone by the session that made it.
Only transient UI state (filters, the page, the map selection) lives in the browser session.

At a million images the page never builds a row per image: it reads the label table as
arrays (`labels.label_columns`, kept until a label changes), filters and orders those,
and builds table rows only for what it shows (`labels.table_rows`); the queue is ordered
in the background when the run is big, and the map is a density picture with a lasso
answered for every point (`app_pages._map.density_map`).
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

import state
from hdl_core import suggest
from hdl_core.variants import DESCRIPTIONS
from hdl_core.views import gallery as review
from hdl_core.views.density import Window, draw_order
from hdl_core.workspace import labels, pipeline
from hdl_core.workspace.store import StoreError
from app_pages._map import (POINTS_LIMIT, class_map, density_map, map_note, selected_ids,
                            selection_points, shape_selection, unchecked, wait_for_umap)
from app_pages._hover import hover_thumbnails
from app_pages._layout import wrapping_container
from app_pages._review_keys import review_keys

PER_PAGE = 48                 # thumbnails per gallery page
COLUMNS = 8                   # thumbnails per gallery row
SUSPICIOUS_SHOWN = 20         # suspicious seeds listed at most
NEIGHBOURS_SHOWN = 5
WINDOW_TILES = 40             # images sent to the widget in one-image mode
WINDOW_BEHIND = 5             # of them, already reviewed ones kept before the cursor
METRIC_PX = 140               # a header metric's width: room for "1,000,000", "100.0%" and its change
GRID_TILES = 48               # images of one grid page
LARGE_PX = 256                # the one image shown large
ALL_CLASSES = "All classes"
# The gallery's filters keep one row while each column has FILTER_REM of width and wrap
# onto more rows below that (an 800 px window with the sidebar open: two a row), instead of
# cutting "All classes (1,797)" to "All clas" and a source chip to "s…"
FILTER_REM = 10.5
WHOLE_PAGE = state.REVIEW_MAP_WROTE
TABS = ("Review", "Gallery", "Map", "Classes", "Label next", "Suspicious seeds", "History")


# --------------------------------------------------------------------------- actions

def _flash(kind: str, message: str) -> None:
    st.session_state[state.REVIEW_FLASH] = (kind, message)


def _write(what: str, action) -> list[int] | None:
    """Run one store write; on failure say so (callbacks run outside user_errors)."""
    try:
        return action(state.workspace())
    except (ValueError, StoreError, OSError) as error:
        _flash("error", f"{what} was not saved: {error}")
        return None


def _correct(item_ids: list[int], label, source: str) -> None:
    """Write one correction batch to the store; say what happened (or why not)."""
    if not isinstance(label, str) or not label.strip():
        _flash("warning", "Choose a class (or type a new name) first.")
        return
    if not item_ids:
        _flash("warning", "Nothing is selected: draw a lasso or a box on the map first.")
        return
    label = label.strip()
    written = _write("The correction", lambda ws: ws.add_correction(
        item_ids, label, source=source, actor=state.actor()))
    if written is None:
        return
    if not written:
        _flash("info", f"Nothing changed: {_count(len(item_ids))} already labeled "
                       f"'{state.escape_markdown(label)}'.")
        return
    _flash("success", f"Labeled {_count(len(written))} as '{state.escape_markdown(label)}'. It is saved, "
                      "counts as a seed in the next run, and can be undone.")


def _confirm(item_ids: list[int]) -> None:
    written = _write("The confirmation", lambda ws: ws.confirm(item_ids, actor=state.actor()))
    if written is None:
        return
    if not written:
        _flash("info", "Nothing to confirm: those labels were already given or checked by hand.")
        return
    _flash("success", f"Confirmed the label of {_count(len(written))}: it is now a seed, and "
                      "the review queue no longer offers it.")


def _count(n: int) -> str:
    return f"{n:,} image{'s' if n != 1 else ''}"


def _on_pick(key: str, item_id: int, shown) -> None:
    chosen = st.session_state.get(key)
    if chosen is not None and chosen != shown:
        _correct([item_id], chosen, "manual")


def _on_map_select(coords: np.ndarray | None = None, ids: np.ndarray | None = None) -> None:
    """A selection on the map: the points of a click, or every point inside a lasso or box
    (a big map draws only some points as markers, so a shape is answered from its outline)."""
    rows = None if coords is None else shape_selection(state.REVIEW_MAP, coords)
    if rows is not None:
        st.session_state[state.REVIEW_SELECTION] = ids[rows]
    else:
        st.session_state[state.REVIEW_SELECTION] = selected_ids(selection_points(state.REVIEW_MAP))


def _selection() -> np.ndarray:
    """The item ids selected on the map (a list or an array in the session)."""
    chosen = st.session_state.get(state.REVIEW_SELECTION)
    return np.asarray([] if chosen is None else chosen, np.int64).ravel()


def _assign_selection() -> None:
    _correct(_selection().tolist(), st.session_state.get(state.REVIEW_BULK_CLASS), "bulk")
    st.session_state[WHOLE_PAGE] = True


def _confirm_selection() -> None:
    _confirm(_selection().tolist())
    st.session_state[WHOLE_PAGE] = True


def _open_in_review(item_id: int) -> None:
    state.open_in_review(item_id)
    st.session_state[WHOLE_PAGE] = True             # the Review tab opens: the whole page


def _clear_selection() -> None:
    st.session_state[state.REVIEW_SELECTION] = []


def _zoom_to_selection(coords: np.ndarray, rows: np.ndarray) -> None:
    st.session_state[state.REVIEW_MAP_WINDOW] = Window.around(coords[rows], margin=0.1)


def _whole_map() -> None:
    st.session_state[state.REVIEW_MAP_WINDOW] = None


def _undo() -> None:
    report = _write("The undo", lambda ws: ws.undo_last_correction(actor=state.actor()))
    if report is None:
        if st.session_state.get(state.REVIEW_FLASH, ("",))[0] != "error":
            _flash("info", "Nothing of yours to undo in this browser tab.")
        return
    _flash("info", state.escape_markdown(report.describe()))


def _rerun_hdl(ws, emb) -> None:
    """HDL again in the background, every correction and confirmation now a seed."""
    job = state.start_labeling(ws, emb)
    _flash("info", f"HDL is running again with your corrections as seeds ({job.describe()}); "
                   "the page shows the new run when it is done, and you can keep reviewing.")


def _labeling_outcome(ws) -> None:
    """Say once how the last background labeling went (this session had not seen it)."""
    job = state.finished_job(ws, "labeling")
    if job is None:
        return
    if job.error is not None:
        st.error(f"Labeling failed: {state.escape_markdown(job.error)}", icon=":material/warning:")
        return
    out = job.result
    st.success(f"HDL run #{out.hdl_id} done in {out.seconds:.1f} s (k = {out.k}); every "
               "correction and confirmation was a seed of it.")


# --------------------------------------------------------------------------- cached views

@st.cache_data(show_spinner=False, max_entries=32)
def _suggestions(folder: str, run_id: int, emb_key: str, k: int, exclude: tuple, n: int):
    run = state.stored_run(folder, run_id)
    graph = state.graph(folder, emb_key, k)
    return suggest.suggest_next(graph.indices, run.result, n=n, exclude=list(exclude),
                                class_names=run.classes)


@st.cache_data(show_spinner=False, max_entries=8)
def _suspicious(folder: str, run_id: int, emb_key: str, k: int, leave_one_out: bool = False):
    run = state.stored_run(folder, run_id)
    graph = state.graph(folder, emb_key, k)
    X = state.embedding_at(folder, emb_key).X if leave_one_out else None
    return suggest.suspicious_seeds(graph.indices, run.result, class_names=run.classes, X=X,
                                    variant=run.params.get("variant", "paper"))


def _rows_at(columns, positions) -> np.ndarray:
    """Rows of `columns` of run positions (-1 for a position no accepted item has)."""
    positions = np.asarray(positions, np.int64)
    in_run = columns.position >= 0
    row_of = np.full(int(columns.position.max()) + 1 if in_run.any() else 0, -1, np.int64)
    row_of[columns.position[in_run]] = np.flatnonzero(in_run)
    inside = (positions >= 0) & (positions < row_of.size)
    return np.where(inside, row_of[np.clip(positions, 0, max(row_of.size - 1, 0))], -1)


# --------------------------------------------------------------------------- drawing

def _class_picker(where: str, item_id: int, shown, classes: list[str], label: str) -> None:
    """A class selectbox that writes a correction when changed; a new name can be typed.

    The key carries the label shown, so after a correction or an undo the picker starts
    again from the label the item has then.
    """
    key = f"review_fix_{where}_{item_id}_{shown}"
    st.selectbox(label, classes, index=classes.index(shown) if shown in classes else None,
                 key=key, on_change=_on_pick, args=(key, int(item_id), shown),
                 accept_new_options=True, placeholder="Choose or type a class",
                 label_visibility="collapsed")


def _thumb(file, caption: str | None = None) -> None:
    """A thumbnail that fits its column (never wider than the thumbnail itself), so
    narrow windows shrink the tiles instead of overlapping them."""
    st.image(state.thumbnail_png(str(file), state.THUMB_PX, state.dataset_root(state.workspace())),
             caption=caption, width="stretch")


def _tile(row, where: str, classes: list[str]) -> None:
    _thumb(row.file, f"{row.label} · {row.source}" if row.label else "no label")
    _class_picker(where, row.item_id, row.label, classes, f"Label of {row.path}")
    if row.source in ("hdl", "fallback"):
        st.button("Confirm", key=f"review_ok_{where}_{row.item_id}", on_click=_confirm,
                  args=([int(row.item_id)],), icon=":material/check:", width="stretch",
                  help="This label is right: make it a seed of the next run.")


def _grid(rows, where: str, classes: list[str]) -> None:
    rows = list(rows.itertuples(index=False))
    for start in range(0, len(rows), COLUMNS):
        for column, row in zip(st.columns(COLUMNS), rows[start:start + COLUMNS]):
            with column:
                _tile(row, where, classes)


def _header(ws, run, columns, among, emb) -> None:
    st.title("Review")
    variant = DESCRIPTIONS.get(run.params.get("variant", "paper"), "HDL")
    st.caption(f"Run #{run.run_id} · {variant} with k = {run.k} on "
               f"{state.escape_markdown(emb.label)}. Labels "
               "shown are the labels now: your corrections and confirmations win over seeds, "
               "seeds over the run.")
    pending = review.pending_of(columns, among)
    sources = review.source_counts_of(columns, among)
    # a wrapping row: one line where there is room (a 1280-wide window keeps all five, so
    # the reviewing below starts higher), more in a narrow window, never a truncated number
    row = st.container(horizontal=True, gap="small")
    metric = partial(row.metric, width=METRIC_PX)
    metric("Images", f"{int(among.sum()):,}")
    metric("Corrected", f"{sources['manual']:,}",
              help="Labels you changed here (a correction wins over a seed).")
    metric("Confirmed", f"{sources['confirmed']:,}",
              help="Labels you checked and marked right; they are seeds of the next run.")
    now = review.accuracy_of(columns, "label", among)
    if now is not None:
        before = review.accuracy_of(columns, "run_label", among)
        change = (now[0] - before[0]) * 100
        metric("Accuracy", f"{now[0]:.1%}",
                  delta=f"{change:+.1f} pts" if abs(change) >= 0.05 else None,
                  help=f"The labels now, against the ground truth of {now[1]:,} images; the "
                       "change is against this run's own labels.")
    else:
        metric("Accuracy", "unknown", help="No ground truth for this dataset.")
    metric("Since run", pending,
              help="Corrections and confirmations made since this run, not in it yet; re-run "
                   "HDL to spread them.")
    # one wrapping row: the buttons keep their words in a narrow window
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    running = state.job(ws, "labeling")
    busy = running is not None and running.running
    if row.button("Re-run HDL", key="review_rerun", type="primary" if pending else "secondary",
                  disabled=busy, width="content",
                  help="Label everything again; every correction and confirmation is a seed, so "
                       "those images keep their label. It runs in the background."):
        _rerun_hdl(ws, emb)
        st.rerun()
    row.button("Undo my last change", key="review_undo", on_click=_undo, width="content",
               help="Takes back the last correction or confirmation made in this browser tab.")
    if busy:
        row.caption(f"Running: {state.escape_markdown(running.describe())}")
    _labeling_outcome(ws)


def _show_flash() -> None:
    flash = st.session_state.pop(state.REVIEW_FLASH, None)
    if flash:
        kind, message = flash
        getattr(st, kind)(message)


def _review_tab(ws, columns, rank, queue, run) -> None:
    """The keyboard review: HDL's labels likeliest-wrong first, one image or a grid at a time."""
    if queue is None:
        job = state.job(ws, "queue")
        st.info("Ordering the labels likeliest-wrong first, in the background"
                + (f" ({state.escape_markdown(job.describe())})" if job is not None and job.running
                   else "") + ". The Gallery, Map and Classes tabs work meanwhile.",
                icon=":material/hourglass_top:")
        st.fragment(_poll_queue, run_every=2.0)(ws, run)
        return
    todo = _queue_snapshot(columns, rank, run.run_id)
    if not todo.size:
        st.success("Every label of this run was given or checked by hand.")
        return
    left, right = st.columns([3, 2], vertical_alignment="center")
    mode = left.segmented_control("View", ["one", "grid"], key=state.REVIEW_MODE,
                                  format_func={"one": "One image", "grid": "Grid"}.get,
                                  label_visibility="collapsed") or "one"
    right.button("Start again from the top", key="review_refresh", on_click=_restart_queue,
                 help="Order the labels not yet checked likeliest-wrong first again.")
    st.fragment(_keys_panel)(ws, run, queue, todo, mode)


def _poll_queue(ws, run) -> None:
    job = state.job(ws, "queue")
    if job is None or not job.running:
        st.rerun()


def _keys_panel(ws, run, queue, todo: np.ndarray, mode: str) -> None:
    """The widget and its window of the queue, rerun alone after each batch of keys: its
    tiles read the labels now, so they show every action already written (the widget's
    contract), and a "page" action moves the window it shows."""
    size = GRID_TILES if mode == "grid" else WINDOW_TILES
    start = min(max(int(st.session_state.get(state.REVIEW_WINDOW, 0)), 0),
                max(len(todo) - 1, 0))
    item_ids = todo[start:start + size]
    st.caption(f"Images {start + 1:,}–{start + len(item_ids):,} of {len(todo):,} to check, "
               "likeliest wrong first. Number keys or the first letters of a class give that "
               "class, Enter confirms, arrows move, u undoes, ? lists every key.")
    columns = state.label_columns(ws, run.run_id, with_baseline=False)
    tiles = _tiles(ws, columns, queue, run, item_ids)
    review_keys(tiles, ws.class_colours(), mode=mode, key=state.REVIEW_KEYS,
                on_actions=_store_actions)


def _queue_snapshot(columns, rank: np.ndarray, run_id: int) -> np.ndarray:
    """The item ids to review, in queue order as it stood when this review began.

    A correction or a confirmation does not reorder what the reviewer is going through:
    the order is kept (per run) until they start again from the top.
    """
    kept = st.session_state.get(state.REVIEW_QUEUE)
    if kept and kept[0] is None:                 # an image opened from a map before the queue
        first = [i for i in np.asarray(kept[1][:1], np.int64).tolist()
                 if columns.rows_of([i])[0] >= 0]
        st.session_state.pop(state.REVIEW_QUEUE)
        rest = _queue_snapshot(columns, rank, run_id)
        kept = (run_id, np.concatenate([np.asarray(first, np.int64), rest[~np.isin(rest, first)]]))
        st.session_state[state.REVIEW_QUEUE] = kept
        return kept[1]
    if not kept or kept[0] != run_id:
        todo = (columns.position >= 0) & ~np.isin(columns.source,
                                                  [labels.SOURCES.index(s) for s in labels.BY_HAND])
        rows = np.flatnonzero(todo)
        rows = rows[np.lexsort((columns.item_id[rows], rank[rows]))]
        kept = (run_id, columns.item_id[rows])
        st.session_state[state.REVIEW_QUEUE] = kept
        st.session_state[state.REVIEW_WINDOW] = 0
    return np.asarray(kept[1], np.int64)


def _restart_queue() -> None:
    st.session_state.pop(state.REVIEW_QUEUE, None)
    st.session_state[state.REVIEW_WINDOW] = 0


def _tiles(ws, columns, queue, run, item_ids) -> list[dict]:
    """What the widget shows of each image: thumbnail, label now, why, its neighbours."""
    rows = columns.rows_of(item_ids)
    rows = rows[rows >= 0]
    shown = labels.table_rows(ws, columns, rows)
    near = [queue.nearest[int(p)][:NEIGHBOURS_SHOWN] for p in shown["position"]]
    near_rows = _rows_at(columns, np.concatenate(near) if near else np.zeros(0, np.int64))
    others = labels.table_rows(ws, columns, np.unique(near_rows[near_rows >= 0])
                               ).set_index("position")
    root = state.dataset_root(ws)
    tiles = []
    for row in shown.itertuples(index=False):
        position = int(row.position)
        neighbours = []
        for p in queue.nearest[position][:NEIGHBOURS_SHOWN]:
            if int(p) in others.index:
                other = others.loc[int(p)]
                neighbours.append((state.thumbnail_jpeg(str(other["file"]), state.THUMB_PX, root),
                                   other["label"]))
        tiles.append({"id": int(row.item_id),
                      "image": state.thumbnail_jpeg(str(row.file), LARGE_PX, root),
                      "label": row.label, "name": row.path,
                      "reason": queue.reason(position, class_names=run.classes),
                      "confirmed": row.source == "confirmed", "neighbours": neighbours})
    return tiles


def _store_actions(actions: list[dict]) -> None:
    """Write what the reviewer did in the widget to the store, in order, as this tab's."""
    ws = state.workspace()
    who = state.actor()
    batches = st.session_state.setdefault(state.REVIEW_KEY_BATCHES, {})
    for action in actions:
        kind, ids = action["kind"], [int(i) for i in action["ids"]]
        try:
            if kind == "assign":
                written = ws.add_correction(ids, action["label"], source="bulk" if len(ids) > 1
                                            else "manual", actor=who)
            elif kind == "confirm":
                written = ws.confirm(ids, actor=who)
            elif kind == "undo":
                batch = batches.pop(action["undoes"], None)
                if batch is not None:
                    ws.undo_last_correction(actor=who, batch=batch)
                continue
            else:                                   # "page": the next or previous images
                size = GRID_TILES if st.session_state.get(state.REVIEW_MODE) == "grid" else WINDOW_TILES
                step = size if st.session_state.get(state.REVIEW_MODE) == "grid" else size // 2
                st.session_state[state.REVIEW_WINDOW] = max(
                    0, int(st.session_state.get(state.REVIEW_WINDOW, 0)) + action["direction"] * step)
                continue
        except (ValueError, StoreError, OSError) as error:
            _flash("error", f"That change was not saved: {error}")
            continue
        if written:
            batches[action["seq"]] = ws.batch_of(written[0])
    _follow_cursor(actions[-1].get("cursor") if actions else None)


def _follow_cursor(cursor) -> None:
    """One image at a time: slide the window so it starts a few images before the cursor,
    so the next images are in the browser before the reviewer gets there."""
    if cursor is None or st.session_state.get(state.REVIEW_MODE) == "grid":
        return
    _, ids = st.session_state.get(state.REVIEW_QUEUE) or (None, [])
    at = np.flatnonzero(np.asarray(ids, np.int64) == int(cursor))
    if not at.size:
        return
    st.session_state[state.REVIEW_WINDOW] = max(0, int(at[0]) - WINDOW_BEHIND)


def _gallery(ws, columns, rank, among, classes: list[str]) -> None:
    counts = review.class_counts_of(columns, classes, among)
    total = int(among.sum())
    has_baseline = columns.has_baseline
    # the two selectboxes get room for "All classes (1,797)" and "likeliest wrong first"
    # (they were cut off at 1400 px), the slider needs less than the chips; in a narrow
    # window the columns wrap (FILTER_REM)
    filters = wrapping_container("review_filters", FILTER_REM)
    f1, f2, f3, f4 = filters.columns([1.4, 2, 1.4, 1.6])
    chosen = f1.selectbox("Gallery of class", [ALL_CLASSES] + classes, key="review_class",
                          format_func=lambda c: (f"{c} ({total:,})" if c == ALL_CLASSES
                                                 else f"{c} ({counts.get(c, 0):,})"))
    sources = f2.multiselect("Source", list(labels.SOURCES), default=list(labels.SOURCES),
                             key="review_sources",
                             help="seed: given before labeling · hdl: voted by HDL · fallback: "
                                  "bridged (no labeled neighbour) · manual: corrected by you · "
                                  "confirmed: checked by you")
    confidence = f3.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.01, key="review_confidence")
    orders = list(review.ORDERS) if rank is not None else ["confidence"]
    order = f4.selectbox("Order", orders, format_func=review.ORDERS.get, key="review_order",
                         help=None if rank is not None else
                         "Likeliest wrong first is offered once the review queue is ordered.")
    g1, g2, g3 = filters.columns(3)
    fallback_only = g1.checkbox("Fallback (bridged) only", key="review_fallback")
    disagreement = g2.checkbox("Only where kNN-DV disagrees", key="review_disagree",
                               disabled=not has_baseline,
                               help=None if has_baseline else "No kNN-DV run to compare with.")
    selection = _selection()
    on_map = g3.checkbox(f"Only the {len(selection):,} selected on the map", key="review_on_map",
                         value=bool(selection.size), disabled=not selection.size)
    shown = review.filter_rows(columns, classes=None if chosen == ALL_CLASSES else [chosen],
                               sources=sources, confidence=confidence,
                               fallback_only=fallback_only,
                               disagreement_only=disagreement and has_baseline,
                               item_ids=selection if on_map and selection.size else None,
                               order=order or "confidence", queue_rank=rank, among=among)
    signature = (chosen, tuple(sources), tuple(confidence), fallback_only, disagreement, order,
                 (selection.size, int(selection.sum())) if on_map else ())
    if st.session_state.get(state.REVIEW_FILTERS) != signature:   # new filters: first page
        st.session_state[state.REVIEW_FILTERS] = signature
        st.session_state[state.REVIEW_PAGE] = 1
    n_pages = max(1, -(-len(shown) // PER_PAGE))
    st.session_state[state.REVIEW_PAGE] = min(max(int(st.session_state.get(state.REVIEW_PAGE, 1)), 1),
                                              n_pages)
    p1, p2 = st.columns([1, 4])
    page = p1.number_input("Page", 1, n_pages, key=state.REVIEW_PAGE)
    rows, page, n_pages = review.page_rows(shown, page, PER_PAGE)
    p2.caption(f"{len(shown):,} image(s) match, {review.ORDERS[order or 'confidence']} · page "
               f"{page} of {n_pages}. Pick a class under a thumbnail to fix its label, or "
               "confirm it.")
    _grid(labels.table_rows(ws, columns, rows), "gallery", classes)


def _map_section(ws, emb, columns, among, classes: list[str]) -> None:
    if st.session_state.pop(WHOLE_PAGE, False):    # a write from the map: the header counts too
        st.rerun()
    coords, kind = state.map_coordinates(ws, emb)
    map_note(kind, ws, emb)
    wait_for_umap(ws, emb)
    if coords is None:
        return
    rows = np.flatnonzero(among)
    ids = columns.item_id[rows]
    points = _run_points(str(ws.folder), id(coords), columns.run_id, ws.versions(), coords,
                         columns.position[rows])
    big = len(rows) > POINTS_LIMIT
    st.caption("Draw a lasso or a box around images (toolbar, top right): the selection stays "
               "coloured, the rest turns grey, and the Gallery tab can show just these. Give them "
               "a class or confirm them below. Diamonds are labels given by hand."
               + (f" Every one of the {len(rows):,} images is in the picture; "
                  f"{min(len(rows), 3000):,} are drawn as points to hover or click, and a "
                  "lasso takes every image inside it." if big else ""))
    selection = _selection()
    selection = selection[np.isin(selection, ids)]
    given = np.isin(columns.source[rows], [labels.SOURCES.index(s) for s in labels.BY_HAND])
    names = columns.name_array()
    if big:
        colours = ws.class_colours()
        palette = [colours.get(name, "#888888") for name in columns.names]
        window = st.session_state.get(state.REVIEW_MAP_WINDOW)
        rank = _draw_order(len(rows))
        figure = density_map(points, columns.label[rows], list(columns.names), palette, ids=ids,
                             rank=rank, given=given, window=window,
                             hover_text=lambda drawn: ws.item_paths(ids[drawn]),
                             selected=np.isin(ids, selection) if selection.size else None)
    else:
        paths = np.array(ws.item_paths(ids), dtype=object)
        figure = class_map(points, ids, names[columns.label[rows]], classes, hover=paths,
                           given=given, colours=ws.class_colours(), selected=selection.tolist())
    st.plotly_chart(unchecked(figure), theme="streamlit", key=state.REVIEW_MAP,
                    on_select=partial(_on_map_select, points, ids) if big else _on_map_select,
                    selection_mode=("points", "lasso", "box"),
                    config={"scrollZoom": True, "displaylogo": False})
    root = state.dataset_root(ws)

    def thumbnail(item_id: int):
        path = ws.item_paths([item_id])[0]
        if path is None:
            return None
        row = columns.rows_of([item_id])[0]
        name = names[columns.label[row]] if row >= 0 else None
        file = str(ws.dataset_root().joinpath(*path.split("/")))
        return (state.thumbnail_jpeg(file, state.HOVER_PX, root),
                f"{path} · {name if name is not None else 'no label'}")

    hover_thumbnails(state.REVIEW_MAP, thumbnail, size=state.HOVER_PX)
    st.write(f"**{len(selection):,}** image(s) selected.")
    if len(selection) == 1:
        st.button("Open it in review", key="review_open_point", on_click=_open_in_review,
                  args=(int(selection[0]),), icon=":material/open_in_new:",
                  help="Show this image first in the Review tab, with its neighbours and why "
                       "it may be wrong.")
    a1, a2, a3, a4 = st.columns([2, 1, 1, 1])
    a1.selectbox("Class for the selection", classes, index=None, key=state.REVIEW_BULK_CLASS,
                 accept_new_options=True, placeholder="Choose or type a class")
    a2.button("Assign to selection", key="review_bulk_assign", on_click=_assign_selection,
              disabled=not selection.size, type="primary")
    a3.button("Confirm selection", key="review_bulk_confirm", on_click=_confirm_selection,
              disabled=not selection.size)
    a4.button("Clear selection", key="review_bulk_clear", on_click=_clear_selection,
              disabled=not selection.size)
    if big:
        z1, z2, _ = st.columns([1, 1, 2])
        chosen_rows = np.flatnonzero(np.isin(ids, selection))
        z1.button("Zoom to the selection", key="review_zoom", on_click=_zoom_to_selection,
                  args=(points, chosen_rows), disabled=not chosen_rows.size,
                  help="Show just the region of the selection, with more of its images drawn "
                       "as points.")
        z2.button("Whole map", key="review_whole_map", on_click=_whole_map,
                  disabled=st.session_state.get(state.REVIEW_MAP_WINDOW) is None)


@st.cache_resource(show_spinner=False, max_entries=4)
def _draw_order(n: int) -> np.ndarray:
    return draw_order(n)


@st.cache_resource(show_spinner=False, max_entries=2)
def _run_points(folder: str, map_id: int, run_id: int, versions: tuple, _coords, _positions):
    """The map positions of the run's items (one array per map and run, so the map's view
    and its drawn points are kept between reruns: `app_pages._map.view_of`)."""
    return _coords[_positions]


def _classes_tab(ws, columns, among, classes: list[str]) -> None:
    counts = review.class_counts_of(columns, classes, among)
    colours = ws.class_colours()
    table = pd.DataFrame({"class": classes, "colour": [colours.get(c, "") for c in classes],
                          "images now": [counts.get(c, 0) for c in classes]})
    st.dataframe(table, hide_index=True, width="content",
                 column_config={"class": st.column_config.TextColumn("class")})
    rename, merge, delete = st.columns(3)
    with rename.container(border=True):
        st.markdown("**Rename**")
        old = st.selectbox("Class", classes, index=None, key="review_rename_old")
        new = st.text_input("New name", key="review_rename_new", max_chars=100)
        if st.button("Rename", key="review_rename", disabled=not (old and new.strip())):
            _class_action(lambda: ws.rename_class(old, new),
                          f"Renamed '{old}' to '{new.strip()}' everywhere.")
    with merge.container(border=True):
        st.markdown("**Merge**")
        source = st.selectbox("Merge this class", classes, index=None, key="review_merge_source")
        into = st.selectbox("into", [c for c in classes if c != source], index=None,
                            key="review_merge_into")
        if st.button("Merge", key="review_merge", disabled=not (source and into)):
            _class_action(lambda: ws.merge_classes(source, into),
                          lambda moved: f"Merged '{source}' into '{into}': {moved.describe()} "
                                        "moved.")
    with delete.container(border=True):
        st.markdown("**Delete**")
        name = st.selectbox("Class", classes, index=None, key="review_delete_name")
        usage = ws.class_usage(name) if name else None
        target = None
        if usage is not None and usage.total:
            st.caption(f"'{state.escape_markdown(name)}' still labels {usage.describe()}; "
                       "choose what they become.")
            target = st.selectbox("They become", [c for c in classes if c != name], index=None,
                                  key="review_delete_into")
        if st.button("Delete", key="review_delete",
                     disabled=not name or (usage is not None and usage.total and not target)):
            _class_action(lambda: ws.delete_class(name, reassign_to=target),
                          f"Deleted '{name}'" + (f"; its images are now '{target}'." if target
                                                 else "."))


def _class_action(action, message) -> None:
    try:
        outcome = action()
    except (ValueError, StoreError) as error:
        st.error(str(error), icon=":material/warning:")
        return
    _flash("success", state.escape_markdown(message(outcome) if callable(message) else message))
    st.rerun()


def _label_next(ws, folder: str, run, emb, columns, classes: list[str]) -> None:
    st.caption("Images whose label, set by you, would help most: uncertain labels that many "
               "later labels rest on. Images you corrected or confirmed are left out.")
    n = st.slider("How many", 1, 50, 10, key="review_next_n")
    hand = columns.rows_of(review.hand_labeled_of(columns))
    exclude = tuple(np.sort(columns.position[hand[hand >= 0]]).tolist())
    suggestions = _suggestions(folder, run.run_id, emb.key, run.k, exclude, n)
    if not suggestions:
        st.info("Nothing to suggest: every image is a seed or was corrected or confirmed by hand.")
        return
    rows = _rows_at(columns, [s.point for s in suggestions])
    table = labels.table_rows(ws, columns, rows[rows >= 0]).set_index("position")
    for rank, suggestion in enumerate(suggestions, 1):
        if suggestion.point not in table.index:
            continue
        row = table.loc[suggestion.point]
        with st.container(border=True):
            c1, c2, c3 = st.columns([1, 5, 2])
            with c1:
                _thumb(row["file"])
            c2.markdown(f"**{rank}. {state.escape_markdown(row['path'])}** — now "
                        f"**{state.escape_markdown(row['label'])}** ({row['source']}, "
                        f"confidence {row['confidence']:.0%})")
            c2.caption(state.escape_markdown(suggestion.why))
            with c3:
                _class_picker("next", int(row["item_id"]), row["label"], classes,
                              f"Label of {row['path']}")


def _suspicious_seeds(ws, folder: str, run, emb, columns, classes: list[str]) -> None:
    st.caption("Seeds whose own neighbours vote for another class: a wrong seed spreads its "
               "label, so fix it here before re-running.")
    n_seeds = int((run.result.step < 0).sum())
    thorough = st.toggle(
        "Check each seed by leaving it out", key="review_seeds_thorough",
        help=f"Runs HDL once per seed ({n_seeds:,} runs) without that seed's label and lists the "
             "seeds that then get another class. Catches a wrong seed whose neighbours simply "
             "copied its label, which the quick check cannot see.")
    hand = set(review.hand_labeled_of(columns).tolist())
    with st.spinner(f"Re-labeling without each of {n_seeds:,} seeds…") if thorough else nullcontext():
        suspicious = _suspicious(folder, run.run_id, emb.key, run.k, thorough)
    rows = _rows_at(columns, [s.point for s in suspicious])
    found = [s for s, row in zip(suspicious, rows)
             if row >= 0 and int(columns.item_id[row]) not in hand]
    if not found:
        st.success("No suspicious seed: every seed keeps its class when left out."
                   if thorough else
                   "No suspicious seed: every seed agrees with the vote of its neighbours.")
        return
    st.write(f"**{len(found)}** suspicious seed(s)"
             + (f"; the {SUSPICIOUS_SHOWN} most doubtful are shown." if len(found) > SUSPICIOUS_SHOWN
                else "."))
    listed = found[:SUSPICIOUS_SHOWN]
    wanted = np.concatenate([[s.point for s in listed]]
                            + [np.asarray(s.neighbours, np.int64) for s in listed])
    wanted_rows = _rows_at(columns, wanted)
    by_position = labels.table_rows(ws, columns, np.unique(wanted_rows[wanted_rows >= 0])
                                    ).set_index("position")
    for seed in listed:
        row = by_position.loc[seed.point]
        vote = run.classes[seed.neighbour_vote] if 0 <= seed.neighbour_vote < len(run.classes) else "?"
        with st.container(border=True):
            c1, c2 = st.columns([1, 5])
            with c1:
                _thumb(row["file"], f"seed: {row['label']}")
                _class_picker("seed", int(row["item_id"]), row["label"], classes,
                              f"Label of seed {row['path']}")
            c2.markdown(_seed_verdict(seed, row["path"], row["label"], vote, thorough))
            neighbours = by_position.reindex(np.asarray(seed.neighbours))
            for column, (_, n_row) in zip(c2.columns(max(len(neighbours), 1)), neighbours.iterrows()):
                with column:
                    if isinstance(n_row["file"], str):
                        _thumb(n_row["file"], str(n_row["label"]))


def _seed_verdict(seed, path: str, own: str, vote: str, left_out: bool) -> str:
    """One sentence on a suspicious seed, its classes in bold: what says it is another class,
    with the counts (the library's `why` says the same for the command line)."""
    k = len(seed.neighbours)
    voting = int((np.asarray(seed.neighbour_labels) == seed.neighbour_vote).sum())
    kept = int(round(seed.agreement * k))
    own_md, vote_md = (f"**{state.escape_markdown(c)}**" for c in (own, vote))
    start = f"**{state.escape_markdown(path)}** is a seed of {own_md}, but "
    if left_out:
        return (f"{start}HDL without this seed's label gives it {vote_md}; {voting} of its {k} "
                f"nearest neighbours are then {vote_md}.")
    return (f"{start}{voting} of its {k} nearest neighbours ended up {vote_md}, "
            f"{f'only {kept}' if kept else 'none'} {own_md}.")


def _history(ws) -> None:
    history = ws.corrections()
    if history.empty:
        st.caption("No corrections yet.")
        return
    st.caption(f"{len(history):,} entries, newest first; undo rows record what was undone. "
               f"You are {state.actor()}.")
    shown = history.iloc[::-1].rename(columns={"actor": "who"})
    shown["who"] = shown["who"].fillna("command line")
    st.dataframe(shown[["time", "who", "kind", "path", "old_label", "new_label", "source",
                        "undone"]].head(1000), hide_index=True, key="review_history")
    st.button("Undo my last change", key="review_undo_history", on_click=_undo)


# --------------------------------------------------------------------------- the page

def main() -> None:
    ws = state.workspace()
    state.sidebar_status(ws)
    with state.user_errors("Review"):
        emb = state.need_embedding(ws)
        run = state.need_run(ws, emb)
        if pipeline.run_status(run, emb) == pipeline.STALE:
            raise pipeline.PipelineError("the latest run does not match the current images; "
                                         "run HDL again on the Label page")
        _page(ws, emb, run)


def _page(ws, emb, run) -> None:
    folder = str(ws.folder)
    columns = state.label_columns(ws, run.run_id)
    among = columns.position >= 0
    queue = state.review_queue(ws, run, emb)
    rank = None if queue is None else review.queue_columns(columns, queue.order, queue.doubt)[0]
    classes = ws.classes()
    _header(ws, run, columns, among, emb)
    _show_flash()
    # Stateful tabs: the open tab survives a correction's rerun, and only it is drawn.
    tabs = dict(zip(TABS, st.tabs(list(TABS), key=state.REVIEW_TAB, on_change="rerun")))
    if tabs["Review"].open:
        with tabs["Review"]:
            _review_tab(ws, columns, rank, queue, run)
    if tabs["Gallery"].open:
        with tabs["Gallery"]:
            _gallery(ws, columns, rank, among, classes)
    if tabs["Map"].open:
        with tabs["Map"]:
            # a fragment: a lasso reruns the map and its selection only, not the whole page
            st.fragment(_map_section)(ws, emb, columns, among, classes)
    if tabs["Classes"].open:
        with tabs["Classes"]:
            _classes_tab(ws, columns, among, classes)
    if tabs["Label next"].open:
        with tabs["Label next"]:
            _label_next(ws, folder, run, emb, columns, classes)
    if tabs["Suspicious seeds"].open:
        with tabs["Suspicious seeds"]:
            _suspicious_seeds(ws, folder, run, emb, columns, classes)
    if tabs["History"].open:
        with tabs["History"]:
            _history(ws)


if __name__ == "__main__":
    main()

"""Review: HDL's likeliest mistakes first, fixed one at a time or by a region of the map.

The review queue (`hdl_core.review_queue`) orders the images HDL labeled likeliest-wrong
first, each with its reason in words. Every correction or confirmation goes to the
workspace store at once with who made it, shows here straight away (corrections win over
the run), becomes a seed of the next run, and can be undone by the session that made it.
Only transient UI state (filters, the page, the map selection) lives in the browser session.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd
import streamlit as st

import state
from hdl_core import suggest
from hdl_core.views import gallery as review
from hdl_core.workspace import labels, pipeline
from hdl_core.workspace.store import StoreError
from pages._map import class_map, map_note, selected_ids, selection_points, wait_for_umap
from pages._hover import MAX_POINTS as MAX_HOVER_POINTS
from pages._hover import hover_thumbnails
from pages._review_keys import review_keys

PER_PAGE = 48                 # thumbnails per gallery page
COLUMNS = 8                   # thumbnails per gallery row
SUSPICIOUS_SHOWN = 20         # suspicious seeds listed at most
NEIGHBOURS_SHOWN = 5
WINDOW_TILES = 40             # images sent to the widget in one-image mode
WINDOW_BEHIND = 5             # of them, already reviewed ones kept before the cursor
GRID_TILES = 48               # images of one grid page
LARGE_PX = 256                # the one image shown large
ALL_CLASSES = "All classes"
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


def _on_map_select() -> None:
    st.session_state[state.REVIEW_SELECTION] = selected_ids(selection_points(state.REVIEW_MAP))


def _assign_selection() -> None:
    _correct(list(st.session_state.get(state.REVIEW_SELECTION) or []),
             st.session_state.get(state.REVIEW_BULK_CLASS), "bulk")


def _confirm_selection() -> None:
    _confirm(list(st.session_state.get(state.REVIEW_SELECTION) or []))


def _clear_selection() -> None:
    st.session_state[state.REVIEW_SELECTION] = []


def _undo() -> None:
    report = _write("The undo", lambda ws: ws.undo_last_correction(actor=state.actor()))
    if report is None:
        if st.session_state.get(state.REVIEW_FLASH, ("",))[0] != "error":
            _flash("info", "Nothing of yours to undo in this browser tab.")
        return
    _flash("info", state.escape_markdown(report.describe()))


def _rerun_hdl(ws, emb, run) -> None:
    """HDL again, every correction and confirmation now a seed; then show the new run."""
    graph = state.graph(str(ws.folder), emb.key, run.k)
    with st.spinner("Running HDL with your corrections as seeds…"):
        out = pipeline.run_labeling(ws, emb, state.k_intent(ws), graph=graph)
    _flash("success", f"HDL run #{out.hdl_id} done in {out.seconds:.1f} s (k = {out.k}); "
                      "every correction and confirmation was a seed of it.")
    st.rerun()


# --------------------------------------------------------------------------- cached views

@st.cache_data(show_spinner="Ordering the labels likeliest-wrong first…", max_entries=8)
def _queue(folder: str, run_id: int, emb_key: str, k: int):
    """The review queue of a run (order, doubt and the facts behind each reason)."""
    run = state.stored_run(folder, run_id)
    result = run.result
    graph = state.graph(folder, emb_key, max(k, 10))
    y = np.where(result.step < 0, result.labels, -1)
    return suggest.review_queue_with_reasons(state.embedding_at(folder, emb_key).X, y, result,
                                             graph=graph)


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
    return suggest.suspicious_seeds(graph.indices, run.result, class_names=run.classes, X=X)


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


def _header(ws, run, frame, emb) -> None:
    st.title("Review")
    st.caption(f"Run #{run.run_id} · HDL with k = {run.k} on {state.escape_markdown(emb.label)}. Labels "
               "shown are the labels now: your corrections and confirmations win over seeds, "
               "seeds over the run.")
    pending = review.pending_corrections(frame)
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Images", f"{len(frame):,}")
    c2.metric("Corrected", f"{int((frame['source'] == 'manual').sum()):,}",
              help="Labels you changed here (a correction wins over a seed).")
    c3.metric("Confirmed", f"{int((frame['source'] == 'confirmed').sum()):,}",
              help="Labels you checked and marked right; they are seeds of the next run.")
    now = review.accuracy(frame)
    if now is not None:
        before = review.accuracy(frame, "run_label")
        change = (now[0] - before[0]) * 100
        c4.metric("Accuracy now", f"{now[0]:.1%}",
                  delta=f"{change:+.1f} pts" if abs(change) >= 0.05 else None,
                  help=f"Against the ground truth of {now[1]:,} images; the change is against "
                       "this run's own labels.")
    else:
        c4.metric("Accuracy", "unknown", help="No ground truth for this dataset.")
    c5.metric("Not in the run yet", pending,
              help="Corrections and confirmations made since this run; re-run HDL to spread them.")
    b1, b2, _ = st.columns([1, 1, 2])
    if b1.button("Re-run HDL", key="review_rerun", type="primary" if pending else "secondary",
                 help="Label everything again; every correction and confirmation is a seed, so "
                      "those images keep their label."):
        _rerun_hdl(ws, emb, run)
    b2.button("Undo my last change", key="review_undo", on_click=_undo,
              help="Takes back the last correction or confirmation made in this browser tab.")


def _show_flash() -> None:
    flash = st.session_state.pop(state.REVIEW_FLASH, None)
    if flash:
        kind, message = flash
        getattr(st, kind)(message)


def _review_tab(ws, frame, queue, run) -> None:
    """The keyboard review: HDL's labels likeliest-wrong first, one image or a grid at a time."""
    todo = _queue_snapshot(frame, run.run_id)
    if not todo:
        st.success("Every label of this run was given or checked by hand.")
        return
    left, right = st.columns([3, 2], vertical_alignment="center")
    mode = left.segmented_control("View", ["one", "grid"], key=state.REVIEW_MODE,
                                  format_func={"one": "One image", "grid": "Grid"}.get,
                                  label_visibility="collapsed") or "one"
    right.button("Start again from the top", key="review_refresh", on_click=_restart_queue,
                 help="Order the labels not yet checked likeliest-wrong first again.")
    st.fragment(_keys_panel)(ws, run, queue, todo, mode)


def _keys_panel(ws, run, queue, todo: list[int], mode: str) -> None:
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
    frame = labels.label_table(ws, run.run_id, items=state.items_of(ws), with_baseline=False)
    tiles = _tiles(frame, queue, run, item_ids)
    review_keys(tiles, ws.class_colours(), mode=mode, key=state.REVIEW_KEYS,
                on_actions=_store_actions)


def _queue_snapshot(frame, run_id: int) -> list[int]:
    """The item ids to review, in queue order as it stood when this review began.

    A correction or a confirmation does not reorder what the reviewer is going through:
    the order is kept (per run) until they start again from the top.
    """
    kept = st.session_state.get(state.REVIEW_QUEUE)
    if kept and kept[0] is None:                 # an image opened from a map before the queue
        first = [i for i in kept[1][:1] if i in set(frame["item_id"].tolist())]
        st.session_state.pop(state.REVIEW_QUEUE)
        rest = _queue_snapshot(frame, run_id)
        kept = (run_id, first + [i for i in rest if i not in first])
        st.session_state[state.REVIEW_QUEUE] = kept
        return kept[1]
    if not kept or kept[0] != run_id:
        todo = frame[~frame["source"].isin(labels.BY_HAND)].sort_values("queue_rank")
        kept = (run_id, todo["item_id"].astype(int).tolist())
        st.session_state[state.REVIEW_QUEUE] = kept
        st.session_state[state.REVIEW_WINDOW] = 0
    return kept[1]


def _restart_queue() -> None:
    st.session_state.pop(state.REVIEW_QUEUE, None)
    st.session_state[state.REVIEW_WINDOW] = 0


def _tiles(frame, queue, run, item_ids: list[int]) -> list[dict]:
    """What the widget shows of each image: thumbnail, label now, why, its neighbours."""
    by_item = frame.set_index("item_id")
    by_position = frame.set_index("position")
    root = state.dataset_root(state.workspace())
    tiles = []
    for item_id in item_ids:
        row = by_item.loc[item_id]
        position = int(row["position"])
        neighbours = []
        for p in queue.nearest[position][:NEIGHBOURS_SHOWN]:
            if p in by_position.index:
                other = by_position.loc[p]
                neighbours.append((state.thumbnail_jpeg(str(other["file"]), state.THUMB_PX, root),
                                   other["label"]))
        tiles.append({"id": int(item_id), "image": state.thumbnail_jpeg(str(row["file"]), LARGE_PX, root),
                      "label": row["label"], "name": row["path"],
                      "reason": queue.reason(position, class_names=run.classes),
                      "confirmed": row["source"] == "confirmed", "neighbours": neighbours})
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
    try:
        at = ids.index(int(cursor))
    except ValueError:
        return
    st.session_state[state.REVIEW_WINDOW] = max(0, at - WINDOW_BEHIND)


def _gallery(frame, classes: list[str], has_baseline: bool) -> None:
    counts = review.class_counts(frame, classes)
    f1, f2, f3, f4 = st.columns([1, 2, 2, 1])
    chosen = f1.selectbox("Gallery of class", [ALL_CLASSES] + classes, key="review_class",
                          format_func=lambda c: (f"{c} ({len(frame):,})" if c == ALL_CLASSES
                                                 else f"{c} ({counts.get(c, 0):,})"))
    sources = f2.multiselect("Source", list(labels.SOURCES), default=list(labels.SOURCES),
                             key="review_sources",
                             help="seed: given before labeling · hdl: voted by HDL · fallback: "
                                  "bridged (no labeled neighbour) · manual: corrected by you · "
                                  "confirmed: checked by you")
    confidence = f3.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.01, key="review_confidence")
    order = f4.selectbox("Order", list(review.ORDERS), format_func=review.ORDERS.get,
                         key="review_order")
    g1, g2, g3 = st.columns(3)
    fallback_only = g1.checkbox("Fallback (bridged) only", key="review_fallback")
    disagreement = g2.checkbox("Only where kNN-DV disagrees", key="review_disagree",
                               disabled=not has_baseline,
                               help=None if has_baseline else "No kNN-DV run to compare with.")
    selection = list(st.session_state.get(state.REVIEW_SELECTION) or [])
    on_map = g3.checkbox(f"Only the {len(selection):,} selected on the map", key="review_on_map",
                         value=bool(selection), disabled=not selection)
    shown = review.filter_gallery(frame, classes=None if chosen == ALL_CLASSES else [chosen],
                                  sources=sources, confidence=confidence,
                                  fallback_only=fallback_only,
                                  disagreement_only=disagreement and has_baseline,
                                  item_ids=selection if on_map and selection else None, order=order)
    signature = (chosen, tuple(sources), tuple(confidence), fallback_only, disagreement, order,
                 tuple(selection) if on_map else ())
    if st.session_state.get(state.REVIEW_FILTERS) != signature:   # new filters: first page
        st.session_state[state.REVIEW_FILTERS] = signature
        st.session_state[state.REVIEW_PAGE] = 1
    n_pages = max(1, -(-len(shown) // PER_PAGE))
    st.session_state[state.REVIEW_PAGE] = min(max(int(st.session_state.get(state.REVIEW_PAGE, 1)), 1),
                                              n_pages)
    p1, p2 = st.columns([1, 4])
    page = p1.number_input("Page", 1, n_pages, key=state.REVIEW_PAGE)
    rows, page, n_pages = review.page_slice(shown, page, PER_PAGE)
    p2.caption(f"{len(shown):,} image(s) match, {review.ORDERS[order]} · page {page} of "
               f"{n_pages}. Pick a class under a thumbnail to fix its label, or confirm it.")
    _grid(rows, "gallery", classes)


def _map_section(ws, emb, frame, classes: list[str]) -> None:
    coords, kind = state.map_coordinates(ws, emb)
    map_note(kind, emb)
    wait_for_umap(ws, emb)
    st.caption("Draw a lasso or a box around images (toolbar, top right): the selection stays "
               "coloured, the rest turns grey, and the Gallery tab can show just these. Give them "
               "a class or confirm them below. Diamonds are labels given by hand.")
    selection = [i for i in st.session_state.get(state.REVIEW_SELECTION) or []
                 if i in set(frame["item_id"].tolist())]
    figure = class_map(coords[frame["position"].to_numpy()], frame["item_id"].to_numpy(),
                       frame["label"].to_numpy(object), classes,
                       hover=frame["path"].to_numpy(object),
                       given=frame["source"].isin(labels.BY_HAND).to_numpy(),
                       colours=ws.class_colours(), selected=selection)
    st.plotly_chart(figure, theme="streamlit", key=state.REVIEW_MAP, on_select=_on_map_select,
                    selection_mode=("points", "lasso", "box"))
    if len(frame) <= MAX_HOVER_POINTS:
        ids = tuple(frame["item_id"].astype(int))
        thumbs = state.hover_thumbs(str(ws.folder), emb.key, ids, tuple(frame["file"]))
        hover_thumbnails(state.REVIEW_MAP, thumbs, size=state.HOVER_PX,
                         captions=dict(zip(ids, frame["path"] + " · " + frame["label"].fillna("no label"))))
    st.write(f"**{len(selection):,}** image(s) selected.")
    if len(selection) == 1:
        st.button("Open it in review", key="review_open_point", on_click=state.open_in_review,
                  args=(selection[0],), icon=":material/open_in_new:",
                  help="Show this image first in the Review tab, with its neighbours and why "
                       "it may be wrong.")
    a1, a2, a3, a4 = st.columns([2, 1, 1, 1])
    a1.selectbox("Class for the selection", classes, index=None, key=state.REVIEW_BULK_CLASS,
                 accept_new_options=True, placeholder="Choose or type a class")
    a2.button("Assign to selection", key="review_bulk_assign", on_click=_assign_selection,
              disabled=not selection, type="primary")
    a3.button("Confirm selection", key="review_bulk_confirm", on_click=_confirm_selection,
              disabled=not selection)
    a4.button("Clear selection", key="review_bulk_clear", on_click=_clear_selection,
              disabled=not selection)


def _classes_tab(ws, frame, classes: list[str]) -> None:
    counts = review.class_counts(frame, classes)
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


def _label_next(folder: str, run, emb, frame, classes: list[str]) -> None:
    st.caption("Images whose label, set by you, would help most: uncertain labels that many "
               "later labels rest on. Images you corrected or confirmed are left out.")
    n = st.slider("How many", 1, 50, 10, key="review_next_n")
    exclude = tuple(review.positions_of(frame, review.hand_labeled(frame)).tolist())
    suggestions = _suggestions(folder, run.run_id, emb.key, run.k, exclude, n)
    if not suggestions:
        st.info("Nothing to suggest: every image is a seed or was corrected or confirmed by hand.")
        return
    by_position = frame.set_index("position")
    for rank, suggestion in enumerate(suggestions, 1):
        if suggestion.point not in by_position.index:
            continue
        row = by_position.loc[suggestion.point]
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


def _suspicious_seeds(folder: str, run, emb, frame, classes: list[str]) -> None:
    st.caption("Seeds whose own neighbours vote for another class: a wrong seed spreads its "
               "label, so fix it here before re-running.")
    n_seeds = int((run.result.step < 0).sum())
    thorough = st.toggle(
        "Check each seed by leaving it out", key="review_seeds_thorough",
        help=f"Runs HDL once per seed ({n_seeds:,} runs) without that seed's label and lists the "
             "seeds that then get another class. Catches a wrong seed whose neighbours simply "
             "copied its label, which the quick check cannot see.")
    hand = set(review.hand_labeled(frame).tolist())
    by_position = frame.set_index("position")
    with st.spinner(f"Re-labeling without each of {n_seeds:,} seeds…") if thorough else nullcontext():
        suspicious = _suspicious(folder, run.run_id, emb.key, run.k, thorough)
    found = [s for s in suspicious
             if s.point in by_position.index and int(by_position.loc[s.point, "item_id"]) not in hand]
    if not found:
        st.success("No suspicious seed: every seed keeps its class when left out."
                   if thorough else
                   "No suspicious seed: every seed agrees with the vote of its neighbours.")
        return
    st.write(f"**{len(found)}** suspicious seed(s)"
             + (f"; the {SUSPICIOUS_SHOWN} most doubtful are shown." if len(found) > SUSPICIOUS_SHOWN
                else "."))
    for seed in found[:SUSPICIOUS_SHOWN]:
        row = by_position.loc[seed.point]
        vote = run.classes[seed.neighbour_vote] if 0 <= seed.neighbour_vote < len(run.classes) else "?"
        with st.container(border=True):
            c1, c2 = st.columns([1, 5])
            with c1:
                _thumb(row["file"], f"seed: {row['label']}")
                _class_picker("seed", int(row["item_id"]), row["label"], classes,
                              f"Label of seed {row['path']}")
            verdict = (f"left out, HDL labels it **{state.escape_markdown(vote)}**" if thorough else
                       f"its {len(seed.neighbours)} neighbours vote **{state.escape_markdown(vote)}**")
            c2.markdown(f"**{state.escape_markdown(row['path'])}** is a seed of "
                        f"**{state.escape_markdown(row['label'])}**; {verdict} "
                        f"(only {seed.agreement:.0%} of its neighbours share its label).")
            if seed.why:
                c2.caption(state.escape_markdown(seed.why))
            neighbours = by_position.reindex(np.asarray(seed.neighbours))
            for column, (_, n_row) in zip(c2.columns(max(len(neighbours), 1)), neighbours.iterrows()):
                with column:
                    if isinstance(n_row["file"], str):
                        _thumb(n_row["file"], str(n_row["label"]))


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
    table = labels.label_table(ws, run.run_id, items=state.items_of(ws))
    queue = _queue(folder, run.run_id, emb.key, run.k)
    frame = review.with_queue(table[table["position"] >= 0].reset_index(drop=True),
                              queue.order, queue.doubt)
    classes = ws.classes()
    _header(ws, run, frame, emb)
    _show_flash()
    # Stateful tabs: the open tab survives a correction's rerun, and only it is drawn.
    tabs = dict(zip(TABS, st.tabs(list(TABS), key=state.REVIEW_TAB, on_change="rerun")))
    if tabs["Review"].open:
        with tabs["Review"]:
            _review_tab(ws, frame, queue, run)
    if tabs["Gallery"].open:
        with tabs["Gallery"]:
            _gallery(frame, classes, run.baseline_id is not None)
    if tabs["Map"].open:
        with tabs["Map"]:
            _map_section(ws, emb, frame, classes)
    if tabs["Classes"].open:
        with tabs["Classes"]:
            _classes_tab(ws, frame, classes)
    if tabs["Label next"].open:
        with tabs["Label next"]:
            _label_next(folder, run, emb, frame, classes)
    if tabs["Suspicious seeds"].open:
        with tabs["Suspicious seeds"]:
            _suspicious_seeds(folder, run, emb, frame, classes)
    if tabs["History"].open:
        with tabs["History"]:
            _history(ws)


if __name__ == "__main__":
    main()

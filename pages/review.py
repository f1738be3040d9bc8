"""Review: fix labels one at a time, by a region of the map, or where HDL suggests.

Every correction goes to the workspace store at once (`Workspace.add_correction`), shows
here straight away (corrections win over the run), becomes a seed of the next run and can
be undone. Only transient UI state (filters, the page, the map selection) lives in the
browser session.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import streamlit as st

import state
from hdl_core import suggest
from hdl_core.views import gallery as review
from hdl_core.workspace import labels, pipeline
from hdl_core.workspace.store import StoreError
from pages._map import class_map, map_note, selected_ids, selection_points, wait_for_umap

PER_PAGE = 48                 # thumbnails per gallery page
COLUMNS = 8                   # thumbnails per gallery row
SUSPICIOUS_SHOWN = 20         # suspicious seeds listed at most
PREVIEW = 16                  # thumbnails of a map selection shown before assigning
ALL_CLASSES = "All classes"
TABS = ("Gallery", "Select on the map", "Label next", "Suspicious seeds", "History")

# Transient UI state of this page (named in state.py; durable facts are in the store).
SELECTION = state.REVIEW_SELECTION
FLASH = state.REVIEW_FLASH
TAB = state.REVIEW_TAB
FILTERS = state.REVIEW_FILTERS
MAP = state.REVIEW_MAP
PAGE = state.REVIEW_PAGE
BULK_CLASS = state.REVIEW_BULK_CLASS


# --------------------------------------------------------------------------- actions

def _flash(kind: str, message: str) -> None:
    st.session_state[FLASH] = (kind, message)


def _correct(item_ids: list[int], label, source: str) -> None:
    """Write one correction batch to the store; say what happened (or why not)."""
    if not isinstance(label, str) or not label.strip():
        _flash("warning", "Choose a class (or type a new name) first.")
        return
    if not item_ids:
        _flash("warning", "Nothing is selected: draw a lasso or a box on the map first.")
        return
    try:
        written = state.workspace().add_correction(item_ids, label.strip(), source=source)
    except (ValueError, StoreError, OSError) as error:   # callbacks run outside user_errors
        _flash("error", f"The correction was not saved: {error}")
        return
    _flash("success", f"Labeled {len(written)} image(s) as '{label.strip()}'. It is saved, "
                      "counts as a seed in the next run, and can be undone.")


def _on_pick(key: str, item_id: int, shown) -> None:
    chosen = st.session_state.get(key)
    if chosen is not None and chosen != shown:
        _correct([item_id], chosen, "manual")


def _on_map_select() -> None:
    st.session_state[SELECTION] = selected_ids(selection_points(MAP))


def _assign_selection() -> None:
    _correct(list(st.session_state.get(SELECTION) or []), st.session_state.get(BULK_CLASS), "bulk")
    if st.session_state[FLASH][0] == "success":
        st.session_state[SELECTION] = []


def _clear_selection() -> None:
    st.session_state[SELECTION] = []


def _undo() -> None:
    if state.workspace().undo_last_correction():
        _flash("info", "Undid the last correction (all images it labeled).")
    else:
        _flash("info", "There is no correction left to undo.")


def _rerun_hdl(ws, emb, run) -> None:
    """HDL again with the same k, every correction now a seed; then show the new run."""
    graph = state.graph(str(ws.folder), emb.key, run.k)
    with st.spinner("Running HDL with your corrections as seeds…"):
        out = pipeline.run_labeling(ws, emb, state.k_intent(ws), graph=graph)
    _flash("success", f"HDL run #{out.hdl_id} done in {out.seconds:.1f} s (k = {out.k}); "
                      "every correction was a seed of it.")
    st.rerun()


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
    st.image(state.thumbnail_png(str(file), state.THUMB_PX), caption=caption,
             width=state.THUMB_PX)


def _tile(row, where: str, classes: list[str]) -> None:
    _thumb(row.file, f"{row.confidence:.0%} · {row.source}")
    _class_picker(where, row.item_id, row.label, classes, f"Label of {row.path}")


def _grid(rows, where: str, classes: list[str]) -> None:
    rows = list(rows.itertuples(index=False))
    for start in range(0, len(rows), COLUMNS):
        for column, row in zip(st.columns(COLUMNS), rows[start:start + COLUMNS]):
            with column:
                _tile(row, where, classes)


def _header(ws, run, frame, emb) -> None:
    st.title("Review")
    st.caption(f"Run #{run.run_id} · HDL with k = {run.k} on {emb.label}. Labels shown are the "
               "labels now: your corrections win over seeds, seeds over the run.")
    pending = review.pending_corrections(frame)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images", f"{len(frame):,}")
    c2.metric("Corrected by hand", f"{int((frame['source'] == 'manual').sum()):,}",
              help="Items whose label you set here (a correction wins over a seed).")
    now = review.accuracy(frame)
    if now is not None:
        before = review.accuracy(frame, "run_label")
        change = (now[0] - before[0]) * 100
        c3.metric("Accuracy now", f"{now[0]:.1%}",
                  delta=f"{change:+.1f} pts" if abs(change) >= 0.05 else None,
                  help=f"Against the ground truth of {now[1]:,} images; the change is against "
                       "this run's own labels.")
    else:
        c3.metric("Accuracy", "unknown", help="No ground truth for this dataset.")
    c4.metric("Not in the run yet", pending,
              help="Corrections made since this run; re-run HDL to spread them.")
    b1, b2, _ = st.columns([1, 1, 2])
    if b1.button("Re-run HDL", key="review_rerun", type="primary" if pending else "secondary",
                 help="Label everything again with the same k; every correction is a seed, "
                      "so corrected images keep their label."):
        _rerun_hdl(ws, emb, run)
    b2.button("Undo last correction", key="review_undo", on_click=_undo)


def _show_flash() -> None:
    flash = st.session_state.pop(FLASH, None)
    if flash:
        kind, message = flash
        getattr(st, kind)(message)


def _gallery(frame, classes: list[str], has_baseline: bool) -> None:
    counts = review.class_counts(frame, classes)
    f1, f2, f3 = st.columns([1, 2, 2])
    chosen = f1.selectbox("Gallery of class", [ALL_CLASSES] + classes, key="review_class",
                          format_func=lambda c: (f"{c} ({len(frame):,})" if c == ALL_CLASSES
                                                 else f"{c} ({counts.get(c, 0):,})"))
    sources = f2.multiselect("Source", list(review.SOURCES), default=list(review.SOURCES),
                             key="review_sources",
                             help="seed: given before labeling · hdl: voted by HDL · fallback: "
                                  "bridged (no labeled neighbour) · manual: corrected by you")
    confidence = f3.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.01, key="review_confidence")
    g1, g2 = st.columns(2)
    fallback_only = g1.checkbox("Fallback (bridged) only", key="review_fallback")
    disagreement = g2.checkbox("Only where kNN-DV disagrees", key="review_disagree",
                               disabled=not has_baseline,
                               help=None if has_baseline else "No kNN-DV run to compare with.")
    shown = review.filter_gallery(frame, classes=None if chosen == ALL_CLASSES else [chosen],
                                  sources=sources, confidence=confidence,
                                  fallback_only=fallback_only,
                                  disagreement_only=disagreement and has_baseline)
    signature = (chosen, tuple(sources), tuple(confidence), fallback_only, disagreement)
    if st.session_state.get(FILTERS) != signature:   # new filters: back to the first page
        st.session_state[FILTERS] = signature
        st.session_state[PAGE] = 1
    n_pages = max(1, -(-len(shown) // PER_PAGE))
    st.session_state[PAGE] = min(max(int(st.session_state.get(PAGE, 1)), 1), n_pages)
    p1, p2 = st.columns([1, 4])
    page = p1.number_input("Page", 1, n_pages, key=PAGE)
    rows, page, n_pages = review.page_slice(shown, page, PER_PAGE)
    p2.caption(f"{len(shown):,} image(s) match, lowest confidence first · page {page} of "
               f"{n_pages}. Pick a class under a thumbnail to fix its label.")
    _grid(rows, "gallery", classes)


def _map_section(ws, emb, frame, classes: list[str]) -> None:
    coords, kind = state.map_coordinates(ws, emb)
    map_note(kind, emb)
    wait_for_umap(ws, emb)
    st.caption("Draw a lasso or a box around images (toolbar, top right), then give them a "
               "class below. Diamonds are seeds and corrections.")
    figure = class_map(coords[frame["position"].to_numpy()], frame["item_id"].to_numpy(),
                       frame["label"].to_numpy(object), classes,
                       hover=frame["path"].to_numpy(object),
                       given=frame["source"].isin(labels.BY_HAND).to_numpy())
    st.plotly_chart(figure, theme="streamlit", key=MAP, on_select=_on_map_select,
                    selection_mode=("lasso", "box"))
    known = set(frame["item_id"].tolist())
    selected = [i for i in st.session_state.get(SELECTION) or [] if i in known]
    st.write(f"**{len(selected):,}** image(s) selected.")
    if selected:
        files = frame.set_index("item_id").loc[selected[:PREVIEW], "file"]
        for column, file in zip(st.columns(PREVIEW // 2) * 2, files):
            with column:
                _thumb(file)
        if len(selected) > PREVIEW:
            st.caption(f"… and {len(selected) - PREVIEW:,} more.")
    a1, a2, a3 = st.columns([2, 1, 1])
    a1.selectbox("Class for the selection", classes, index=None, key=BULK_CLASS,
                 accept_new_options=True, placeholder="Choose or type a class")
    a2.button("Assign to selection", key="review_bulk_assign", on_click=_assign_selection,
              disabled=not selected, type="primary")
    a3.button("Clear selection", key="review_bulk_clear", on_click=_clear_selection,
              disabled=not selected)


def _label_next(folder: str, run, emb, frame, classes: list[str]) -> None:
    st.caption("Images whose label, set by you, would help most: uncertain labels that many "
               "later labels rest on. Images you corrected are left out.")
    n = st.slider("How many", 1, 50, 10, key="review_next_n")
    exclude = tuple(review.positions_of(frame, review.hand_labeled(frame)).tolist())
    suggestions = _suggestions(folder, run.run_id, emb.key, run.k, exclude, n)
    if not suggestions:
        st.info("Nothing to suggest: every image is a seed or was corrected by hand.")
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
            c2.markdown(f"**{rank}. {row['path']}** — now **{row['label']}** ({row['source']}, "
                        f"confidence {row['confidence']:.0%})")
            c2.caption(suggestion.why)
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
            verdict = (f"left out, HDL labels it **{vote}**" if thorough else
                       f"its {len(seed.neighbours)} neighbours vote **{vote}**")
            c2.markdown(f"**{row['path']}** is a seed of **{row['label']}**; {verdict} "
                        f"(only {seed.agreement:.0%} of its neighbours share its label).")
            why = getattr(seed, "why", None)
            if why:
                c2.caption(why)
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
    st.caption(f"{len(history):,} entries, newest first; undo rows record what was undone.")
    st.dataframe(history.iloc[::-1][["time", "batch", "path", "old_label", "new_label", "source",
                                     "undone"]].head(1000),
                 hide_index=True, key="review_history")
    st.button("Undo last correction", key="review_undo_history", on_click=_undo)


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
    frame = table[table["position"] >= 0].reset_index(drop=True)
    baseline_known = run.baseline_id is not None
    classes = ws.classes()
    _header(ws, run, frame, emb)
    _show_flash()
    # Stateful tabs: the open tab survives a correction's rerun, and only it is drawn.
    gallery, region, label_next, seeds, history = st.tabs(list(TABS), key=TAB, on_change="rerun")
    if gallery.open:
        with gallery:
            _gallery(frame, classes, baseline_known)
    if region.open:
        with region:
            _map_section(ws, emb, frame, classes)
    if label_next.open:
        with label_next:
            _label_next(folder, run, emb, frame, classes)
    if seeds.open:
        with seeds:
            _suspicious_seeds(folder, run, emb, frame, classes)
    if history.open:
        with history:
            _history(ws)


if __name__ == "__main__":
    main()

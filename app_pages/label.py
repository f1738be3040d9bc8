"""Label: run HDL (and kNN-DV to compare), then replay the labeling round by round on a map.

The replay lives in one fragment (slider, play/pause, map, charts, the clicked point's
vote), so moving the round reruns only that fragment: the per-run arrays are prepared once
per run (`_prepared`, cached by workspace and run ids) and a move only rebuilds the map's
point groups with numpy and sends one figure. The map and the per-round charts are drawn
with `app_pages._plot.live_chart`, which redraws a chart in place: with ``st.plotly_chart``
every round was a new chart the browser built from scratch (300-400 ms of a move in
Chromium).

A run of more than `POINTS_LIMIT` images is drawn as a density picture of every point at
the round shown (labeled ones in their class colour, the rest grey) with a few thousand of
them, the seeds and the round's first level as markers (`big_map_figure`); paths are read
from the store for the points shown only. "Run HDL" starts a background job and returns.

The drawing functions are importable without running the page (bench/page_bench.py times
them): the page itself runs only as Streamlit's ``__main__`` script.
"""
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import state
from hdl_core.config import REACH_DECISIVE, REACH_SPLIT
from hdl_core.explain import vote_detail
from hdl_core.flood import flood_report
from hdl_core.views import replay as replaying
from hdl_core.variants import DESCRIPTIONS
from hdl_core.views.density import Window, draw_order
from hdl_core.workspace import pipeline
from app_pages._hover import hover_thumbnails
from app_pages._layout import wrapping_container
from app_pages._map import (DRAWN, GREY, OUTLINE, POINTS_LIMIT, class_colours, legend_name,
                            map_note, palette, picture, plotly_text, view_of, wait_for_umap)
from app_pages._plot import live_chart


PLAY_SECONDS = 0.7                   # one replay frame
PLAY_FRAMES = 40                     # a replay takes about this many frames
RANKS_SHOWN = 40                     # rank numbers are drawn for first levels up to this size
NEIGHBOURS_PER_ROW = 10
HIGHLIGHT = "#ff4b4b"                # visible on light and dark backgrounds
NEIGHBOUR_RING = "#ffa421"
MARKED_AT_MOST = 1_000               # a big map rings at most this many of a layer (seeds, round)
METRIC_PX = 140                      # a metric's width: room for "100%" and its caption
# The map and the side panel (metrics, a flood warning, the round chart) sit side by side
# while each column has BODY_REM of width; in a narrower window the panel moves under the
# map at full width (at 800 px with the sidebar open it had ~190 px: a flood warning ran a
# few words a line)
BODY_REM = 18
CHART_POINTS = 2_000                 # the per-round charts show at most this many rounds as points
CHART_CONFIG = {"displaylogo": False,              # nothing on this page selects by shape
                "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


# --------------------------------------------------------------------------- per-run data

@dataclass
class RunView:
    """One HDL run ready to replay: the precomputed `Replay` plus what the page shows about it."""

    run_id: int
    baseline_id: int | None
    replay: replaying.Replay
    classes: list[str]
    item_ids: np.ndarray
    hover: np.ndarray          # (n, 3): position, round, confidence, for the map's tooltips
    params: dict
    created: str
    colours: list[str]         # each class's colour (fixed when the class was created)
    flood: object              # hdl_core.flood.FloodReport of the run
    root: str | None = None    # the dataset folder thumbnails are confined to
    folder: str | None = None  # the workspace, where paths are read (for the points shown)
    rank: np.ndarray | None = None   # which points a big map draws as markers (draw_order)
    charts: dict = field(default_factory=dict)   # per-run charts, made once (`_kept_figure`)

    def paths(self, positions) -> list:
        """The paths of run positions, read from the store (None for an item gone since)."""
        ids = self.item_ids[np.asarray(positions, np.int64)]
        return state.workspace_at(self.folder).item_paths(ids)

    def path(self, position: int) -> str:
        found = self.paths([position])[0]
        return found if found is not None else f"#{position} (no longer in the dataset)"

    def file(self, position: int) -> str:
        from pathlib import Path, PurePosixPath
        return str(Path(self.root or ".").joinpath(*PurePosixPath(self.path(position)).parts))


def hdl_runs(ws, emb) -> list:
    """HDL runs made on the current embeddings (`RunInfo`, each knows its kNN-DV run), newest first."""
    return [run for run in ws.runs("hdl")[::-1]
            if pipeline.run_status(run, emb) != pipeline.STALE]


def prepare(ws, run_id: int, baseline_id: int | None, neighbours: np.ndarray) -> RunView:
    """Load a run (and its kNN-DV partner), align the truth and precompute its replay."""
    run = state.stored_run(str(ws.folder), run_id)       # the copy other pages read too
    result = run.result
    missing = ~np.isin(run.item_ids, ws.ok_item_ids(order="id"))
    if missing.any():
        raise pipeline.PipelineError(f"run #{run_id} labels {int(missing.sum())} images that are no "
                                     "longer in the dataset; run HDL again")
    truth_ids, truth_names = ws.truth_of_items()
    codes = None
    if truth_ids.size:
        order = np.argsort(truth_ids)
        found = np.minimum(np.searchsorted(truth_ids, run.item_ids, sorter=order), truth_ids.size - 1)
        known = truth_ids[order[found]] == run.item_ids
        names = np.full(run.item_ids.size, None, dtype=object)
        names[known] = truth_names[order[found[known]]]
        codes = replaying.truth_codes(names.tolist(), run.classes)
    baseline = None
    if baseline_id is not None:
        other = state.stored_run(str(ws.folder), baseline_id)
        if np.array_equal(other.item_ids, run.item_ids):
            baseline = other.result.labels
    replay = replaying.build_replay(result, neighbours, baseline=baseline, truth=codes)
    # float32: sent as binary; exact for positions and rounds below 16 million
    hover = np.column_stack([np.arange(replay.n), result.round,
                             result.confidence]).astype(np.float32)
    seeds = result.seed_labels
    flood = flood_report(result, seeds, class_names=run.classes,
                         variant=run.params.get("variant", "paper"))
    stored = ws.class_colours()
    fallback = palette(len(run.classes))
    colours = [stored.get(name, fallback[c]) for c, name in enumerate(run.classes)]
    return RunView(run_id, baseline_id if baseline is not None else None, replay,
                   list(run.classes), run.item_ids, hover, run.params, run.created,
                   colours, flood, str(ws.dataset_root()), str(ws.folder),
                   draw_order(replay.n) if replay.n > POINTS_LIMIT else None)


@st.cache_resource(show_spinner="Preparing the replay…", max_entries=4)
def _prepared(folder: str, emb_key: str, run_id: int, baseline_id: int | None, k: int) -> RunView:
    # a resource, not data: the arrays are read-only and copying them on every move is the cost
    # this cache is here to avoid
    graph = state.graph(folder, emb_key, k)
    return prepare(state.workspace_at(folder), run_id, baseline_id, graph.indices)


# --------------------------------------------------------------------------- drawing

def _trace(view: RunView, xy: np.ndarray, index, name: str, marker: dict, **extra) -> dict:
    """One marker trace of the map: the points `index`, with [position, round, confidence]
    as customdata so a click names the point whatever trace it hit. `name` may be a class
    name: plain text, cut for the legend, whole in the hover box."""
    return {"type": "scattergl", "mode": "markers", "name": legend_name(name),
            "x": xy[index, 0], "y": xy[index, 1], "customdata": view.hover[index],
            "marker": marker, "meta": [plotly_text(name)],
            "hovertemplate": "#%{customdata[0]:.0f} · round %{customdata[1]:.0f} · confidence "
                             "%{customdata[2]:.2f}<extra>%{meta[0]}</extra>", **extra}


def _selection_traces(view: RunView, trace, point: int) -> list[dict]:
    """The clicked point ringed, and its k neighbours (`trace` makes a map trace)."""
    ring = view.replay.neighbours[point, :view.replay.result.k]
    return [trace(ring, "its neighbours", {"color": NEIGHBOUR_RING, "size": 12,
                                           "symbol": "circle-open", "line": {"width": 2}}),
            trace(np.array([point]), "selected", {
                "color": HIGHLIGHT, "size": 18, "symbol": "circle-open", "line": {"width": 3}})]


def round_trace_name(view: RunView, r: int) -> str:
    """The map's name for round r's points: a first level (the paper's term) for the paper's
    and class-balanced HDL, a band of reach share for the default."""
    if view.params.get("variant") == "reach":
        return f"round {r}: a band of reach share"
    return f"round {r}: first level"


def map_figure(view: RunView, coords: np.ndarray, r: int, *, only: np.ndarray | None = None,
               point: int | None = None) -> dict:
    """The map at round `r` as a plotly figure dict (Scattergl traces, numpy arrays).

    Drawn bottom to top: not-yet-labeled points (grey), the labeled ones per class, seeds
    (bigger, outlined), bridged points (x), round `r`'s first level (ringed, numbered in
    its second-level order when small), and the clicked point with its k neighbours.
    Every trace carries [position, round, confidence] as customdata, so a click names the
    point whatever trace it hit.
    """
    replay, result = view.replay, view.replay.result
    layers = replaying.map_layers(replay, r, only=only)
    colours = view.colours
    by_class = class_colours(colours)
    xy = np.round(coords, 3)
    labels = result.labels
    size = 5 if only is None else 8          # a filtered map shows few points: draw them bigger

    def trace(index, name, marker, **extra):
        return _trace(view, xy, index, name, marker, **extra)

    data = [trace(layers.unlabeled, "not labeled yet", {"color": GREY, "size": size - 1},
                  hovertemplate="#%{customdata[0]:.0f} · not labeled yet<extra></extra>")]
    coloured = layers.coloured
    coloured_labels = labels[coloured]
    for c, name in enumerate(view.classes):
        members = coloured[coloured_labels == c]
        data.append(trace(members, name, {"color": colours[c], "size": size},
                          legendgroup=f"class-{c}"))
    data.append(trace(layers.seeds, "seeds", {
        "color": labels[layers.seeds], **by_class, "size": 12,
        "line": {"color": OUTLINE, "width": 1.5}},
        hovertemplate="#%{customdata[0]:.0f} · seed<extra></extra>"))
    if layers.bridged.size:
        data.append(trace(layers.bridged, "bridged (no labeled neighbour)", {
            "color": labels[layers.bridged], **by_class, "size": 11, "symbol": "x"}))
    current = layers.current
    level = trace(current, round_trace_name(view, r), {
        "color": labels[current], **by_class, "size": 9,
        "line": {"color": HIGHLIGHT, "width": 2}})
    if 0 < current.size <= RANKS_SHOWN:
        first, ranks = replaying.first_level(result, r)
        rank_of = dict(zip(first.tolist(), (ranks + 1).tolist()))
        level.update(mode="markers+text", text=[str(rank_of[p]) for p in current.tolist()],
                     textposition="top center")
    data.append(level)
    if point is not None:
        data += _selection_traces(view, trace, point)
    layout = {
        "height": 560, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "xaxis": {"visible": False}, "yaxis": {"visible": False},
        "legend": {"itemsizing": "constant", "orientation": "h", "y": -0.02, "yanchor": "top"},
        "uirevision": "label-map",
        "clickmode": "event", "hovermode": "closest",
    }
    return {"data": data, "layout": layout}


def big_map_figure(view: RunView, coords: np.ndarray, r: int, *, only: np.ndarray | None = None,
                   point: int | None = None, window: Window | None = None) -> dict:
    """`map_figure` for a run of any size: every point in a density picture at round `r`
    (labeled: class colour; not yet: grey), `DRAWN` points as markers for hover and clicks,
    the seeds, bridged points and round `r`'s first level marked (at most `MARKED_AT_MOST`
    of each, the same ones at every round), and the clicked point with its neighbours."""
    result = view.replay.result
    r = replaying.check_round(result, r)
    labeled = replaying.labeled_by_round(result, r)
    keep = None if only is None else np.asarray(only, bool)
    codes = np.where(labeled, result.labels, -1)
    window, order = view_of(coords, view.rank, window)
    xy = coords
    size = 5 if only is None else 7
    by_class = class_colours(view.colours)

    def marked(mask) -> np.ndarray:
        return order.take(MARKED_AT_MOST, mask if keep is None else mask & keep)

    def trace(index, name, marker, **extra):
        return _trace(view, xy, index, name, marker, **extra)

    drawn = order.take(DRAWN, keep)
    shown_colour = np.array(list(view.colours) + [GREY], dtype=object)[codes[drawn]]
    data = [trace(drawn, "images (a sample drawn as points)",
                  {"color": shown_colour, "size": size - 1}, showlegend=False)]
    data += [{"type": "scattergl", "mode": "markers", "x": [None], "y": [None],
              "name": legend_name(name), "marker": {"color": colour, "size": 8},
              "hoverinfo": "skip"} for name, colour in zip(view.classes, view.colours)]
    seeds = marked(result.step < 0)
    data.append(trace(seeds, "seeds", {
        "color": result.labels[seeds], **by_class, "size": 10,
        "line": {"color": OUTLINE, "width": 1.5}},
        hovertemplate="#%{customdata[0]:.0f} · seed<extra></extra>"))
    bridged = marked(result.fallback & (result.round >= 0) & (result.round <= r))
    if bridged.size:
        data.append(trace(bridged, "bridged (no labeled neighbour)", {
            "color": result.labels[bridged], **by_class, "size": 10, "symbol": "x"}))
    current = marked(result.round == r)
    data.append(trace(current, round_trace_name(view, r), {
        "color": result.labels[current], **by_class, "size": 9,
        "line": {"color": HIGHLIGHT, "width": 2}}))
    if point is not None:
        data += _selection_traces(view, trace, point)
    shown = np.flatnonzero(keep) if only is not None else None
    image = (picture(coords, codes, view.colours, window) if shown is None else
             picture(coords[shown], codes[shown], view.colours, window))
    layout = {
        "height": 560, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "xaxis": {"visible": False, "range": [window.x0, window.x1]},
        "yaxis": {"visible": False, "range": [window.y0, window.y1]},
        "legend": {"itemsizing": "constant", "orientation": "h", "y": -0.02, "yanchor": "top"},
        "uirevision": "label-map", "images": [image],
        "clickmode": "event", "hovermode": "closest",
    }
    return {"data": data, "layout": layout}


def _thumbnail(view: RunView, point: int):
    """A map point's thumbnail and caption, for the hover (`app_pages._hover`)."""
    if not 0 <= point < view.replay.n:
        return None
    path = view.path(point)
    return (state.thumbnail_jpeg(view.file(point), state.HOVER_PX, view.root), path)


def _thin(values: np.ndarray, at_most: int = CHART_POINTS) -> np.ndarray:
    """Rounds to draw in a per-round chart: every round up to `at_most`, else evenly spaced
    ones (the last included), so 77,000 rounds do not become 77,000 bars."""
    n = len(values)
    if n <= at_most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, at_most).round().astype(np.int64))


def _marked(figure: dict, r: int) -> dict:
    """`figure` (a dict kept per run) with round `r` marked by a dotted line: a new outer dict
    and layout, the traces shared, so a slider move rebuilds no trace."""
    layout = dict(figure["layout"])
    layout["shapes"] = list(layout.get("shapes", [])) + [
        {"type": "line", "x0": r, "x1": r, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain",
         "line": {"dash": "dot", "color": OUTLINE}}]
    return {"data": figure["data"], "layout": layout}


def progress_figure(view: RunView, r: int) -> dict:
    """Points labeled per round (bars) and the cumulative share labeled (line), round `r` marked."""
    return _marked(_progress_base(view), r)


def accuracy_figure(view: RunView, r: int) -> dict:
    """Accuracy of HDL's labels so far by round, with kNN-DV's (all at once) for reference."""
    return _marked(_accuracy_base(view), r)


def _kept_figure(view: RunView, kind: str, make) -> dict:
    """A chart of the run that does not change with the round, made once (kept on the view).
    Drawn with plotly.js's own defaults (no Python template: the page's theme gives the
    text colour and font, `app_pages._plot`)."""
    if kind not in view.charts:
        figure = make(view)
        figure.update_layout(template="none")
        figure.update_xaxes(automargin=True)     # room for tick labels and titles
        figure.update_yaxes(automargin=True)
        view.charts[kind] = figure.to_dict()
    return view.charts[kind]


def _progress_base(view: RunView) -> dict:
    return _kept_figure(view, "progress", _progress_chart)


def _accuracy_base(view: RunView) -> dict:
    return _kept_figure(view, "accuracy", _accuracy_chart)


def _progress_chart(view: RunView) -> go.Figure:
    replay = view.replay
    rounds = _thin(replay.per_round)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if len(rounds) == replay.n_rounds:
        fig.add_bar(x=rounds, y=replay.per_round, name="labeled in the round", secondary_y=False)
    else:                                       # too many rounds for bars: a line of a sample
        fig.add_scatter(x=rounds, y=replay.per_round[rounds], name="labeled in the round",
                          mode="lines", secondary_y=False)
    fig.add_scatter(x=rounds, y=replay.share[rounds] * 100, name="labeled so far (%)",
                      mode="lines", secondary_y=True)
    fig.update_layout(height=250, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      legend={"orientation": "h", "y": -0.38}, bargap=0.1)
    fig.update_xaxes(title_text="round")
    fig.update_yaxes(title_text="points", secondary_y=False)
    fig.update_yaxes(title_text="% of all", range=[0, 101], tickmode="auto", showgrid=False,
                     secondary_y=True)                  # its own round ticks: 0, 20, ... 100
    return fig


def _accuracy_chart(view: RunView) -> go.Figure:
    replay = view.replay
    fig = go.Figure()
    rounds = _thin(replay.accuracy)
    fig.add_scatter(x=rounds, y=replay.accuracy[rounds] * 100, mode="lines",
                      name="HDL, labels so far")
    if replay.baseline_accuracy is not None:
        fig.add_hline(y=replay.baseline_accuracy * 100, line_dash="dash", line_color=OUTLINE,
                      annotation_text="kNN-DV (all at once)")
    fig.update_layout(height=220, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis_title="round", yaxis_title="accuracy (%)", showlegend=False)
    fig.update_yaxes(autorangeoptions={"clipmin": 0, "clipmax": 100.4})   # never 101 %
    return fig


# --------------------------------------------------------------------------- page parts

VARIANT_NAMES = {"reach": "Reach-ordered HDL (the default)",
                 "balanced": "Class-balanced HDL",
                 "paper": "The paper's Algorithm 1"}
VARIANT_HELP = ("Reach-ordered HDL spreads every class's seeds over the neighbour graph (near "
                "neighbours passing on more than far ones) and "
                "labels first the images one class reaches almost alone, each by the vote of "
                "its labeled neighbours, so no class's front floods the others where classes "
                "touch (README: Labeling accuracy). Class-balanced HDL gives every class its own "
                "first level each round. The paper's Algorithm 1 labels, each round, the images "
                "with the most labeled neighbours over the whole dataset.")


def k_plan(ws, emb) -> tuple[int, str]:
    """The k and variant the next run uses, and why (Choose k's stored intent)."""
    intent = state.k_intent(ws)
    variant = pipeline.labeling_variant(ws)
    y, _ = pipeline.seed_vector(ws, emb.item_ids)
    k, choice = state.k_choice(str(ws.folder), emb.key, state.seeds_digest(y), intent, variant)
    if not intent.auto:
        why = "your override on the Choose k page"
    elif variant != "paper":
        why = f"{DESCRIPTIONS[variant]}'s own k (ten, fewer for small classes)"
    elif choice is not None and choice.reliable:
        why = "k\\* chosen from the seeds by the μ_k·I(k) rule"
    else:
        why = "the default (too few seeds for a reliable k\\*)"
    return k, f"k = {k}: {why}; noise rate e = {intent.noise_rate:.2f}"


def run_controls(ws, emb) -> None:
    """The Run HDL button with the variant and the k it will use."""
    y, classes = pipeline.seed_vector(ws, emb.item_ids)
    pipeline.require_seeds(y, classes)
    variant = pipeline.labeling_variant(ws)
    chosen = st.segmented_control("Labeling", list(VARIANT_NAMES), default=variant,
                                  format_func=VARIANT_NAMES.get, key="label_variant",
                                  help=VARIANT_HELP)
    if chosen and chosen != variant:
        pipeline.set_labeling_variant(ws, chosen)
    _, why = k_plan(ws, emb)
    left, right = st.columns([1, 3], vertical_alignment="center")
    running = state.job(ws, "labeling")
    busy = running is not None and running.running
    pressed = left.button("Run HDL", type="primary", key="label_run_button", disabled=busy,
                          help="Labels every image from the seeds (corrections included), and "
                               "runs kNN-DV on the same seeds to compare. It runs in the "
                               "background: you can leave the page meanwhile.")
    right.markdown(f"Next run: **{why}**.")
    if pressed:
        state.start_labeling(ws, emb)
        st.rerun()
    if busy:
        st.info(f"Running in the background: {state.escape_markdown(running.describe())}. The "
                "page shows the new run when it is done.", icon=":material/hourglass_top:")
    done = state.finished_job(ws, "labeling")
    if done is not None and done.error is not None:
        st.error(f"Labeling failed: {state.escape_markdown(done.error)}", icon=":material/warning:")
    elif done is not None:
        out = done.result
        result = out.result
        st.session_state.pop(state.LABEL_RUN_CHOICE, None)
        baseline = "kNN-DV included" if out.baseline_id is not None else "kNN-DV follows"
        st.success(f"HDL labeled {int((result.step >= 0).sum()):,} images in "
                   f"{result.n_rounds:,} rounds with k = {out.k} ({out.seconds:.1f} s, "
                   f"{baseline}): run #{out.hdl_id}.")


def _no_baseline(ws, run_id: int) -> str:
    """Why a run shows no kNN-DV comparison: it is still running (a big workspace's comes
    after the run), it failed, or there is none."""
    job = state.job(ws, f"baseline-{run_id}")
    if job is not None and job.running:
        return "kNN-DV, to compare with, is still running: it shows here when done."
    if job is not None and job.error is not None:
        return f"kNN-DV, to compare with, failed: {state.escape_markdown(job.error)}"
    return "No kNN-DV run to compare with."


def _describe_run(run) -> str:
    how = "chosen automatically" if run.params.get("k_auto") else "as set"
    variant = {"reach": "reach-ordered", "balanced": "class-balanced"}.get(
        run.params.get("variant"), "paper's")
    return (f"#{run.run_id} · {variant} · k = {run.k} ({how}) · {run.params.get('n_seeds', '?')} "
            f"seeds · {run.created[:19]}Z")


def _clamp_ui_state(view: RunView) -> None:
    """Reset the round, the point and play when a different run is shown; keep them in range."""
    last = max(view.replay.n_rounds - 1, 0)
    if st.session_state.get(state.LABEL_SHOWN_RUN) != view.run_id:
        st.session_state[state.LABEL_SHOWN_RUN] = view.run_id
        st.session_state[state.LABEL_ROUND] = last
        st.session_state[state.LABEL_POINT] = None
        st.session_state[state.LABEL_PLAYING] = False
    r = st.session_state.get(state.LABEL_ROUND, last)
    st.session_state[state.LABEL_ROUND] = int(min(max(r if isinstance(r, (int, np.integer)) else last, 0), last))
    point = st.session_state.get(state.LABEL_POINT)
    if point is not None and not 0 <= int(point) < view.replay.n:
        st.session_state[state.LABEL_POINT] = None


def _pick_point(point: int) -> None:
    """A click on the map (`app_pages._plot.live_chart`): the clicked point becomes the selected
    one, until another click or "Clear selection"."""
    st.session_state[state.LABEL_POINT] = int(point)


def replay_panel(ws, emb, view: RunView) -> None:
    """Slider, play/pause, map, charts and the selected point: the part a round move reruns."""
    with state.user_errors("Replaying the run"):
        coords, kind = state.map_coordinates(ws, emb)
        replay = view.replay
        last = max(replay.n_rounds - 1, 0)
        playing = bool(st.session_state.get(state.LABEL_PLAYING))
        if playing:
            step = max(1, -(-replay.n_rounds // PLAY_FRAMES))
            r = st.session_state[state.LABEL_ROUND] + step
            if r >= last:
                st.session_state[state.LABEL_ROUND] = last
                st.session_state[state.LABEL_PLAYING] = False
                st.rerun()
            st.session_state[state.LABEL_ROUND] = r

        play_col, slider_col = st.columns([2, 8], vertical_alignment="bottom")
        if last > 0:
            if play_col.button("⏸ Pause" if playing else "▶ Play", key="label_play_button"):
                if not playing and st.session_state[state.LABEL_ROUND] >= last:
                    st.session_state[state.LABEL_ROUND] = 0
                st.session_state[state.LABEL_PLAYING] = not playing
                st.rerun()     # the whole page, so the fragment's timer starts or stops
            r = slider_col.slider("Round", 0, last, key=state.LABEL_ROUND,
                                  help="At round r, every point labeled so far is coloured; round "
                                       "r's points are ringed, numbered in their vote order.")
        else:
            r = 0
            slider_col.caption("This run has a single round.")
        only = None
        if replay.disagree is not None:
            # its own row: beside the slider its label was cut short in a narrow window
            if st.checkbox("Only where HDL and kNN-DV disagree", key=state.LABEL_ONLY_DISAGREE):
                only = replay.disagree
        else:
            st.caption(_no_baseline(ws, view.run_id))

        map_col, side_col = wrapping_container("label_body", BODY_REM).columns([3, 2])
        with map_col:
            _map_note(kind, ws, emb)
            point = st.session_state.get(state.LABEL_POINT)
            if coords is not None:
                draw = big_map_figure if view.replay.n > POINTS_LIMIT else map_figure
                live_chart(draw(view, coords, r, only=only, point=point), key=state.LABEL_MAP,
                           config={**CHART_CONFIG, "scrollZoom": True}, on_click=_pick_point)
            _round_caption(view, r, only)
        with side_col:
            _side_panel(view, r)
        point = st.session_state.get(state.LABEL_POINT)
        if point is not None:
            _point_detail(view, int(point))


def _map_note(kind: str, ws, emb) -> None:
    if kind == "umap":
        st.caption("Map: UMAP of the embeddings over the same kNN graph HDL used. Click a point "
                   "to see why it got its label.")
    else:
        map_note(kind, ws, emb)


def _round_caption(view: RunView, r: int, only) -> None:
    replay, result = view.replay, view.replay.result
    if replay.n_rounds == 0:
        st.caption("Every image is a seed: there was nothing to label.")
        return
    members, bridge, max_l = replaying.round_summary(result, replay.neighbours, r)
    size = members.size
    if bridge:
        text = (f"Round {r} is a bridge: no unlabeled point had a labeled neighbour, so the one "
                "closest to a labeled point copied its label (marked x).")
    elif view.params.get("variant") == "reach":
        steps = view.params.get("spread_steps")
        over = f" for {steps} steps, more the farther they must reach" if steps else ""
        text = (f"Round {r}: {size} unlabeled point(s) in the next band of reach share (every "
                f"class's seeds spread over the neighbour graph{over}; a point's share is its top "
                "class's part of what reaches it, and rounds go from one-sided to contested). "
                "Each took the vote of its labeled neighbours, highest share first; one with no "
                "labeled neighbour yet, or whose vote was split while most of its reach came "
                "from another class, took the class that reaches it most.")
    elif view.params.get("variant") == "balanced":
        per_class = ", ".join(f"{n} {state.shown(view.classes[c], 24)}" for c, n in
                              zip(*np.unique(result.labels[members], return_counts=True)))
        text = (f"Round {r}: every class labeled its own first level, the unlabeled points whose "
                f"vote names it at that class's highest vote count ({per_class}); they were "
                "voted in the second-level order, most listed by the others first"
                + (" (numbers on the map)." if size <= RANKS_SHOWN else "."))
    else:
        text = (f"Round {r}: the first level is the {size} unlabeled point(s) with the most "
                f"labeled neighbours (L = {max_l} of k = {result.k}); they were voted in the "
                "second-level order, most listed by the others first"
                + (" (numbers on the map)." if size <= RANKS_SHOWN else "."))
    if only is not None:
        text += f" Showing the {int(only.sum())} points where HDL and kNN-DV disagree."
    st.caption(text)


def _side_panel(view: RunView, r: int) -> None:
    replay = view.replay
    if replay.n_rounds == 0:
        return
    done = int(round(replay.share[r] * replay.n))
    quiet = {"delta_color": "off", "delta_arrow": "off", "width": METRIC_PX}
    # a wrapping row: two metrics side by side where there is room, one under the other
    # in a narrow window, never a truncated number
    a = b = c = d = st.container(horizontal=True, gap="medium")
    a.metric("Labeled so far", f"{replay.share[r]:.0%}",
             f"{short_count(done)} of {short_count(replay.n)}", **quiet,
             help=f"Images carrying a label once round {r} is done, seeds included: "
                  f"{done:,} of {replay.n:,}.")
    if replay.accuracy is not None:
        so_far = replay.accuracy[r]
        b.metric("Accuracy so far", "–" if np.isnan(so_far) else f"{so_far:.1%}",
                 width=METRIC_PX, help="Of the images labeled by round r whose true class is known (seeds "
                      "excluded).")
    if replay.agreement is not None:
        c.metric("kNN-DV agreement", f"{replay.agreement:.1%}",
                 f"{int(replay.disagree.sum()):,} differ", **quiet,
                 help="Share of the non-seed images that HDL and kNN-DV label the same.")
    if replay.final_accuracy is not None:
        d.metric("Final accuracy", f"{replay.final_accuracy:.1%}",
                 None if replay.baseline_accuracy is None else
                 f"kNN-DV {replay.baseline_accuracy:.1%}", **quiet,
                 help="The whole HDL run (and kNN-DV) against the ground truth, seeds excluded.")
    if view.flood.flooded:
        st.warning(flood_text(view.flood, view.params.get("variant")), icon=":material/flood:")
    live_chart(progress_figure(view, r), key="label_progress", config=CHART_CONFIG)
    if replay.accuracy is not None:
        live_chart(accuracy_figure(view, r), key="label_accuracy", config=CHART_CONFIG)


def short_count(n: int) -> str:
    """A count that fits a metric's badge: 12,345 in full; 123.4k; 1.00M (the help has it
    in full). "1,000,000 of 1,000,000" was cut off at a million images."""
    n = int(n)
    if n < 100_000:
        return f"{n:,}"
    if n < 999_950:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.2f}M"


def flood_text(report, variant: str | None) -> str:   # noqa: ARG001 (the report names it)
    """A flood report in the page's words: what looks wrong, then what to try here."""
    lines = ["**This labeling looks like a flood.**", ""]
    lines += [f"- {state.escape_markdown(reason)}" for reason in report.reasons]
    lines += ["", "Try:", ""]       # blank lines: "Try:" is not part of the last reason
    lines += [f"- {state.escape_markdown(tip)}" for tip in report.suggestions]
    if report.seeds_to_check:
        lines.append("- Seeds that disagree with their neighbours are listed on the Review "
                     "page, under Suspicious seeds.")
    return "\n".join(lines)


def _clear_point() -> None:
    st.session_state[state.LABEL_POINT] = None


def _point_detail(view: RunView, point: int) -> None:
    """The clicked point: thumbnail, how it got its label, and its k neighbours at vote time."""
    replay, result = view.replay, view.replay.result
    names = view.classes
    detail = vote_detail(replay.neighbours, result, point)
    st.divider()
    path = view.path(point)
    st.subheader(f"Point #{point}: {state.shown(path, 80)}", anchor=False,
                   help=None if len(str(path)) <= 80 else state.escape_markdown(path))
    # a wrapping row under the title: the buttons keep their words at 800 px
    row = st.container(horizontal=True, gap="small")
    if row.button("Open in Review", key="label_open_review", icon=":material/task_alt:",
                     help="Check or correct this image on the Review page, first in its queue."):
        state.open_in_review(int(view.item_ids[point]))
        st.switch_page("app_pages/review.py")
    row.button("Clear selection", key="label_clear_point", on_click=_clear_point)
    left, right = st.columns([1, 4])
    left.image(state.thumbnail_png(view.file(point), root=view.root), width=state.THUMB_PX)
    names = [state.shown(name) for name in names]          # user's class names, as text
    label = names[result.labels[point]]
    lines = [f"**Label:** {label}"]
    if result.step[point] < 0:
        lines.append("**A seed**: given, not voted. Its neighbours are shown with their final labels.")
    else:
        lines.append(f"**Round** {result.round[point]} · **step** {result.step[point]} · "
                     f"**confidence** {result.confidence[point]:.2f}")
        if result.fallback[point]:
            source = detail.bridge_source
            lines.append(f"**Bridged:** no labeled neighbour was left, so it copied the label of "
                         f"#{source} ({state.shown(view.path(source)) if source >= 0 else 'removed since'}), "
                         "the closest labeled point.")
        elif result.n_voters[point] == 0 and not detail.counts:
            lines.append("**By reach:** none of its neighbours was labeled when its turn came, so "
                         "it took the class whose seeds reach it most over the neighbour graph.")
        elif result.n_voters[point] == 0:
            votes = ", ".join(f"{names[c]}: {n}" for c, n in
                              sorted(detail.counts.items(), key=lambda kv: -kv[1]))
            lines.append(f"**By reach:** the votes of its {sum(detail.counts.values())} labeled "
                         f"neighbours were not decisive ({votes}; a vote stands when its winner "
                         f"has more than {REACH_SPLIT:.0%} of them), and at least "
                         f"{REACH_DECISIVE:.0%} of the seeds' reach over the neighbour graph "
                         f"comes from {label}, so {label} decided.")
        else:
            votes = ", ".join(f"{names[c]}: {n}" for c, n in
                              sorted(detail.counts.items(), key=lambda kv: -kv[1]))
            lines.append(f"**Votes** of its {result.n_voters[point]} labeled neighbours: {votes}.")
            if len(detail.tied) > 1:
                lines.append("A tie, broken by the nearest labeled neighbour.")
    if replay.baseline is not None and result.step[point] >= 0:
        lines.append(f"**kNN-DV:** {names[replay.baseline[point]]}"
                     + (" (disagrees)" if replay.baseline[point] != result.labels[point] else ""))
    if replay.truth is not None and replay.truth[point] >= 0:
        truth = replay.truth[point]
        lines.append(f"**True class:** {names[truth] if truth < len(names) else 'not a run class'}"
                     + (" ✓" if truth == result.labels[point] else " ✗"))
    right.markdown("  \n".join(lines))

    st.markdown(f"**Its k = {result.k} nearest neighbours**, nearest first, "
                + ("with their final labels:" if result.step[point] < 0 else
                   "with the label each had when it voted (— : not labeled yet, no vote):"))
    captions = []
    for q, at_time in zip(detail.neighbours.tolist(), detail.neighbour_labels.tolist()):
        if result.step[point] < 0:
            captions.append(f"#{q} {names[result.labels[q]]}")
        else:
            captions.append(f"#{q} {names[at_time]}" if at_time >= 0 else f"#{q} —")
    thumbs = [state.thumbnail_png(view.file(q), root=view.root)
              for q in detail.neighbours.tolist()]
    for start in range(0, len(thumbs), NEIGHBOURS_PER_ROW):
        st.image(thumbs[start:start + NEIGHBOURS_PER_ROW], width=state.THUMB_PX,
                 caption=captions[start:start + NEIGHBOURS_PER_ROW])


def main() -> None:
    st.title("Label")
    ws = state.workspace()
    state.sidebar_status(ws)
    with state.user_errors("Labeling"):
        emb = state.need_embedding(ws)
        run_controls(ws, emb)
        runs = hdl_runs(ws, emb)
        if not runs:
            st.info("No HDL run for these embeddings yet: press **Run HDL**.")
            return
        chosen = runs[0]
        if len(runs) > 1:
            by_id = {run.run_id: run for run in runs}
            chosen = by_id[st.selectbox("Run to replay", list(by_id), key=state.LABEL_RUN_CHOICE,
                                        format_func=lambda run_id: _describe_run(by_id[run_id]))]
        else:
            st.caption(f"Run {_describe_run(chosen)}")
        view = _prepared(str(ws.folder), emb.key, chosen.run_id, chosen.baseline_id, chosen.k)
        _clamp_ui_state(view)
        playing = bool(st.session_state.get(state.LABEL_PLAYING))
        st.fragment(replay_panel, run_every=PLAY_SECONDS if playing else None)(ws, emb, view)
        hover_thumbnails(state.LABEL_MAP, lambda point: _thumbnail(view, point), size=state.HOVER_PX)
        wait_for_umap(ws, emb)
        st.page_link("app_pages/review.py", label="Next: review and correct", icon=":material/task_alt:")


if __name__ == "__main__":
    main()

"""Teach: watch HDL label a 2-D toy, one vote (or one round) at a time.

The plane is the embedding itself, so what HDL sees is what is drawn. All computation is
in `hdl_core` (with ``metric="euclidean"``: the plane's distances) and `hdl_core.views.toy`;
this page keeps the toy's settings in `st.session_state` and draws.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import state

from hdl_core import KChoice, build_knn_graph, choose_k
from hdl_core.views import toy as teach
from hdl_core.views import walkthrough

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9"]
UNLABELED = "#c4c4c4"
INK = "#222222"
# Above these sizes the plane stops writing L on points / drawing every neighbour arrow.
TEXT_MAX_POINTS = 300
ARROW_MAX_SEGMENTS = 3000
RANK_TEXT_MAX = 60

# session-state keys of this page (UI state only; named in state.py)
STEP = state.TEACH_STEP
SEEDS = state.TEACH_SEEDS
SEEDS_FOR = state.TEACH_SEEDS_FOR
RUN_ID = state.TEACH_RUN_ID
PLANE = state.TEACH_PLANE
SEED_CLASS = state.TEACH_SEED_CLASS


def class_name(c: int) -> str:
    return f"class {c}"


def colour(c: int) -> str:
    return PALETTE[c % len(PALETTE)] if c >= 0 else UNLABELED


# ---------------------------------------------------------------------------------------
# cached computation (pure; keyed by the toy's settings, the seed edits and k)

@st.cache_data(max_entries=8, show_spinner=False)
def load_toy(params: tuple):
    toy = teach.make_toy(*params)
    return toy, build_knn_graph(toy.X, min(teach.K_MAX, toy.n - 1), metric="euclidean")


@st.cache_data(max_entries=32, show_spinner="Running HDL and kNN-DV…")
def load_run(params: tuple, edits: tuple, k: int) -> teach.TeachRun:
    toy, graph = load_toy(params)
    return teach.teach_run(toy.X, seeds_of(toy, edits), toy.truth, k=k, graph=graph,
                           class_names=[class_name(c) for c in range(toy.n_classes)])


@st.cache_data(max_entries=16, show_spinner=False)
def load_k_choice(params: tuple, edits: tuple) -> KChoice:
    """k* from the seeds: what the app would choose."""
    toy, _ = load_toy(params)
    return choose_k(toy.X, seeds_of(toy, edits), k_max=teach.K_MAX, random_state=0,
                    metric="euclidean")


@st.cache_data(max_entries=8, show_spinner=False)
def load_k_truth(params: tuple) -> KChoice:
    """μ_k and P(k) as the toy's truth gives them: every point a center, with its true
    class (the app never has this; it shows what the seeds try to estimate)."""
    toy, _ = load_toy(params)
    return choose_k(toy.X, toy.truth, k_max=teach.K_MAX, sample_fraction=None,
                    metric="euclidean")


def seeds_of(toy: teach.Toy, edits: tuple) -> np.ndarray:
    y = toy.y
    for point, label in edits:
        y = teach.with_seed(y, point, label)
    return y


# ---------------------------------------------------------------------------------------
# callbacks (run before the script, so they may set widget state)

def go_to(index: int) -> None:
    st.session_state[STEP] = int(index)


def clicked_point(event) -> int | None:
    """The point index carried in `customdata` by the first clicked point, if any.

    Lines (arrows, bridges) carry no index; a click on them is not a point.
    """
    try:
        for hit in event["selection"]["points"]:
            data = hit.get("customdata")
            if isinstance(data, (list, tuple)):
                data = data[0] if data else None
            if isinstance(data, (int, float)):
                return int(data)
    except (KeyError, TypeError, IndexError):
        pass
    return None


def on_plane_select() -> None:
    point = clicked_point(st.session_state.get(PLANE))
    if point is not None:
        st.session_state[SEEDS] = {**st.session_state[SEEDS], point: st.session_state[SEED_CLASS]}


def seed_nearest(X: np.ndarray) -> None:
    point = teach.nearest_point(X, (st.session_state[state.TEACH_SEED_X],
                                    st.session_state[state.TEACH_SEED_Y]))
    st.session_state[SEEDS] = {**st.session_state[SEEDS], point: st.session_state[SEED_CLASS]}


def reset_seeds() -> None:
    st.session_state[SEEDS] = {}


# ---------------------------------------------------------------------------------------
# figures: plain trace dicts, assembled unvalidated (plotly's per-property validation
# costs more than the rest of a step)

def scatter(**props) -> dict:
    return {"type": "scatter", **props}


def figure(traces: list, layout: dict) -> go.Figure:
    return go.Figure(data=traces, layout=layout, _validate=False)


def _segments(X: np.ndarray, starts, ends, shorten: float = 0.0):
    """x, y arrays of line segments separated by gaps, each end pulled back by `shorten`."""
    a, b = X[starts], X[ends]
    b = b - shorten * (b - a)
    xs = np.full(3 * len(starts), np.nan)      # NaN: a gap between segments
    ys = np.full(3 * len(starts), np.nan)
    xs[0::3], xs[1::3] = a[:, 0], b[:, 0]
    ys[0::3], ys[1::3] = a[:, 1], b[:, 1]
    return xs, ys


def arrows(X, starts, ends, *, color, width=1.0, name="", dash=None, opacity=1.0) -> dict:
    """One trace of arrows from `starts` to `ends` (arrowheads stop short of the target)."""
    xs, ys = _segments(X, np.asarray(starts), np.asarray(ends), shorten=0.12)
    sizes = np.tile([0, 7, 0], len(starts))
    return scatter(x=xs, y=ys, mode="lines+markers", name=name, opacity=opacity,
                   line=dict(color=color, width=width, dash=dash),
                   marker=dict(symbol="arrow", angleref="previous", size=sizes, color=color),
                   hoverinfo="skip", showlegend=bool(name))


def _heads(X, starts, ends, shorten: float, length: float, angle: float = np.radians(22)):
    """x, y arrays of arrowhead triangles (closed, separated by gaps) at the ends of the
    segments `_segments` draws: `length` long in data units, `angle` off the shaft."""
    a, b = X[starts], X[ends]
    tip = b - shorten * (b - a)
    shaft = tip - a
    norm = np.linalg.norm(shaft, axis=1, keepdims=True)
    back = np.divide(-shaft, norm, out=np.zeros_like(shaft), where=norm > 0) * length
    c, s = np.cos(angle), np.sin(angle)
    left = tip + back @ np.array([[c, s], [-s, c]])
    right = tip + back @ np.array([[c, -s], [s, c]])
    xs = np.full(5 * len(starts), np.nan)       # left, tip, right, left again, gap
    ys = np.full(5 * len(starts), np.nan)
    for i, corner in enumerate((left, tip, right, left)):
        xs[i::5], ys[i::5] = corner[:, 0], corner[:, 1]
    return xs, ys


def light_arrows(X, starts, ends, *, color, width=1.0, name="", opacity=1.0) -> list[dict]:
    """`arrows` for many arrows at once: the shafts in one line path, the heads as filled
    triangles in another. Arrowhead markers are a drawn symbol each: with the ~1,500
    neighbour arrows of the default toy, Chromium drew the plane (newPlot to the next
    frame) in 245 ms with them, 107 ms with shafts alone and 174 ms with these triangles."""
    starts, ends = np.asarray(starts), np.asarray(ends)
    xs, ys = _segments(X, starts, ends, shorten=0.12)
    span = float(np.ptp(X, axis=0).max()) if len(X) else 1.0
    hx, hy = _heads(X, starts, ends, shorten=0.12, length=0.016 * (span or 1.0))
    group = name or "arrows"
    return [scatter(x=xs.astype(np.float32), y=ys.astype(np.float32), mode="lines", name=name,
                    opacity=opacity, line=dict(color=color, width=width), hoverinfo="skip",
                    legendgroup=group, showlegend=bool(name)),
            scatter(x=hx.astype(np.float32), y=hy.astype(np.float32), mode="lines",
                    fill="toself", fillcolor=color, opacity=opacity,
                    line=dict(color=color, width=0.5), hoverinfo="skip", legendgroup=group,
                    showlegend=False)]


def plane_layout(title: str, annotations=()) -> dict:
    axis = dict(showgrid=False, zeroline=False, visible=False)
    return dict(title=dict(text=title, x=0, font=dict(size=15)), height=560,
                margin=dict(l=10, r=10, t=40, b=10), uirevision="teach-plane",
                legend=dict(orientation="h", y=-0.02, yanchor="top"), plot_bgcolor="white",
                clickmode="event+select", xaxis=axis,
                yaxis=dict(axis, scaleanchor="x", scaleratio=1),
                annotations=list(annotations))


def note(X, p, text, border) -> dict:
    return dict(x=X[p, 0], y=X[p, 1], text=text, showarrow=True, arrowhead=0, ax=0, ay=-42,
                bgcolor="rgba(255,255,255,0.85)", bordercolor=border, font=dict(size=12))


def star(X, p, color, name) -> dict:
    return scatter(x=[X[p, 0]], y=[X[p, 1]], mode="markers", name=name, hoverinfo="skip",
                   customdata=[int(p)], marker=dict(symbol="star", size=17, color=color,
                                                    line=dict(color=INK, width=1.5)))


def ring(X, points, name, *, size=15, color=INK, width=2, text=None) -> dict:
    # rings sit on top of points: they carry the point index too, so a click still seeds
    points = np.asarray(points, dtype=np.int64)
    return scatter(x=X[points, 0], y=X[points, 1], mode="markers+text" if text else "markers",
                   text=text, textposition="bottom center", textfont=dict(size=10, color=INK),
                   name=name, hoverinfo="skip", customdata=points.tolist(),
                   marker=dict(symbol="circle-open", size=size, color=color,
                               line=dict(width=width)))


def point_traces(X, labels, seeds, n_classes, *, hover, text=None) -> list[dict]:
    """Unlabeled points (grey), labeled points per class, seeds as big diamonds.

    Every trace carries the point index in `customdata` (selections count within a trace),
    as a plain list: numpy arrays travel as typed-array dicts and come back so in events.
    """
    unl = np.flatnonzero((labels < 0) & ~seeds)
    traces = [scatter(
        x=X[unl, 0], y=X[unl, 1], mode="markers+text" if text is not None else "markers",
        name="unlabeled", customdata=unl.tolist(), hovertext=hover[unl], hoverinfo="text",
        text=None if text is None else text[unl], textposition="top center",
        textfont=dict(size=9, color="#555555"),
        marker=dict(color=UNLABELED, size=7, line=dict(color="#9a9a9a", width=0.5)))]
    for c in range(n_classes):
        members = np.flatnonzero((labels == c) & ~seeds)
        traces.append(scatter(
            x=X[members, 0], y=X[members, 1], mode="markers", name=class_name(c),
            customdata=members.tolist(), hovertext=hover[members], hoverinfo="text",
            marker=dict(color=colour(c), size=7, line=dict(color="white", width=0.5))))
    s = np.flatnonzero(seeds)
    traces.append(scatter(
        x=X[s, 0], y=X[s, 1], mode="markers", name="seeds", customdata=s.tolist(),
        hovertext=hover[s], hoverinfo="text",
        marker=dict(symbol="diamond", size=14, color=[colour(c) for c in labels[s]],
                    line=dict(color=INK, width=1.5))))
    return traces


def hdl_figure(toy: teach.Toy, run: teach.TeachRun, index: int, y: np.ndarray) -> go.Figure:
    """The plane at step `index`: labels known so far, L, the first level, the vote or bridge."""
    step = run.steps[index]
    X = toy.X
    neighbours = run.graph.indices[:, :run.k]
    state = walkthrough.step_state(neighbours, run.hdl, step)
    unlabeled = state.labels < 0
    traces, notes = [], []

    # every unlabeled point's k neighbour arrows while that stays readable, else the first level's
    pool = np.flatnonzero(unlabeled)
    if pool.size * run.k > ARROW_MAX_SEGMENTS:
        level = step.first_level if step.kind in ("round", "vote") else pool[:0]
        pool = level[unlabeled[level]][:ARROW_MAX_SEGMENTS // run.k]
    if pool.size:
        traces += light_arrows(X, np.repeat(pool, run.k), neighbours[pool].ravel(),
                               color="#b0b0b0", width=0.7, opacity=0.7, name="k-neighbour arrows")

    def describe(i: int) -> str:
        what = (class_name(state.labels[i]) if state.labels[i] >= 0
                else f"unlabeled, L = {state.L[i]}")
        level = (f"<br>first level #{state.rank[i] + 1}, second-level score "
                 f"{state.second_level_score[i]}" if state.rank[i] >= 0 else "")
        return (f"point {i} ({X[i, 0]:.2f}, {X[i, 1]:.2f})<br>{what}{level}"
                f"<br>truth: {class_name(toy.truth[i])}")

    hover = np.array([describe(i) for i in range(toy.n)])
    text = np.where(state.L > 0, state.L.astype(str), "") if toy.n <= TEXT_MAX_POINTS else None
    traces += point_traces(X, state.labels, y >= 0, toy.n_classes, hover=hover, text=text)

    if step.kind in ("round", "vote"):      # the round's first level, with its second-level rank
        level = step.first_level
        waiting = level[unlabeled[level]]
        rank_text = ([f"#{state.rank[p] + 1}·{state.second_level_score[p]}" for p in waiting]
                     if level.size <= RANK_TEXT_MAX else None)
        traces.append(ring(X, waiting, "first level (#rank·score)", text=rank_text))

    if step.kind == "vote":
        p = step.point
        voted = step.neighbour_labels >= 0
        for c in sorted(set(step.neighbour_labels[voted].tolist())):
            to = step.neighbours[step.neighbour_labels == c]
            traces.append(arrows(X, np.full(to.size, p), to, color=colour(c), width=2.5))
        if (~voted).any():
            to = step.neighbours[~voted]
            traces.append(arrows(X, np.full(to.size, p), to, color="#888888", width=1.2,
                                 dash="dot"))
        tally = " ".join(f"{v}×{class_name(c)}" for c, v in step.counts.items())
        notes.append(note(X, p, f"{tally} → {class_name(step.winner)}"
                          + (" (tie)" if step.is_tie else ""), colour(step.winner)))
        if step.tie_broken_by >= 0:
            traces.append(ring(X, [step.tie_broken_by], "nearest tied neighbour", size=22,
                               color=colour(step.winner), width=3))
        traces.append(star(X, p, colour(step.winner), "voting now"))
    elif step.kind == "bridge":
        p, src = step.point, step.source
        traces.append(scatter(x=X[[src, p], 0], y=X[[src, p], 1], mode="lines", name="bridge",
                              hoverinfo="skip",
                              line=dict(color=colour(step.winner), width=4, dash="dash")))
        traces.append(star(X, p, colour(step.winner), "bridged point"))
        notes.append(note(X, p, f"bridge from point {src}", colour(step.winner)))
    title = f"HDL, k = {run.k}: step {index + 1} of {len(run.steps)} ({step.kind})"
    return figure(traces, plane_layout(title, notes))


def knn_dv_figure(toy: teach.Toy, run: teach.TeachRun, y: np.ndarray) -> go.Figure:
    X = toy.X
    labels = run.knn_dv.labels
    hover = np.array([f"point {i} ({X[i, 0]:.2f}, {X[i, 1]:.2f})<br>kNN-DV: "
                      f"{class_name(labels[i])}<br>HDL: "
                      f"{class_name(run.hdl.labels[i])}<br>truth: {class_name(toy.truth[i])}"
                      for i in range(toy.n)])
    traces = point_traces(X, labels, y >= 0, toy.n_classes, hover=hover)
    traces.append(ring(X, run.differ, "HDL differs", size=16))
    return figure(traces, plane_layout(f"kNN-DV (eq. 1), k = {run.k}, same seeds"))


def k_figure(c: KChoice, truth: KChoice, k_now: int) -> go.Figure:
    line = lambda y, name, color, **style: scatter(x=c.ks, y=y, name=name, mode="lines",
                                                   line=dict(color=color, **style))
    traces = [line(c.mu, "μ_k (seeds)", PALETTE[0], width=2),
              line(c.beta, "I(k): vote-success bound", PALETTE[2], dash="dash"),
              line(c.p, "P(k) = μ_k · I (seeds)", PALETTE[4], width=3),
              line(truth.mu, "μ_k (truth)", PALETTE[0], dash="dot"),
              line(truth.p, "P(k) (truth)", PALETTE[4], dash="dot")]
    marks = [(c.k, f"k* = {c.k}", INK, "dash")] + \
        ([(k_now, f"k = {k_now}", "#888888", "solid")] if k_now != c.k else [])
    shapes = [dict(type="line", x0=x, x1=x, y0=0, y1=1, yref="paper",
                   line=dict(color=color, dash=dash)) for x, _, color, dash in marks]
    labels = [dict(x=x, y=1, yref="paper", text=text, showarrow=False, yanchor="bottom")
              for x, text, _, _ in marks]
    return figure(traces, dict(height=340, margin=dict(l=10, r=10, t=30, b=10),
                               xaxis=dict(title="k", dtick=1), yaxis=dict(range=[0, 1.05]),
                               legend=dict(orientation="h", y=-0.25), shapes=shapes,
                               annotations=labels))


def first_level_rows(step: walkthrough.Step, labels_now: np.ndarray) -> list[dict]:
    return [{"rank": r + 1, "point": int(p), "second-level score": int(score),
             "label": class_name(labels_now[p]) if labels_now[p] >= 0 else "—"}
            for r, (p, score) in enumerate(zip(step.first_level, step.second_level_score))]


# ---------------------------------------------------------------------------------------
# the page

def sidebar() -> tuple[tuple, int, bool]:
    sb = st.sidebar
    sb.header("Toy")
    kind = sb.selectbox("Shape", teach.KINDS, key="teach_kind")
    n_points = sb.slider("Points", 20, teach.MAX_POINTS, 300, step=10, key="teach_points")
    n_classes = sb.slider("Classes", 2, teach.MAX_CLASSES, 2, key="teach_classes")
    noise = sb.slider("Noise", 0.0, 0.5, 0.1, step=0.01, key="teach_noise")
    seeds = sb.slider("Seeds per class", 1, 30, 2, key="teach_seeds_per_class")
    seed = sb.number_input("Random seed", 0, 10_000, 0, key="teach_random_seed")
    sb.header("k")
    auto = sb.toggle("Auto k (argmax P(k) from the seeds)", key="teach_auto_k")
    k = sb.slider("k (neighbours per point)", 1, teach.K_MAX, 5, key="teach_k", disabled=auto)
    return (kind, int(n_points), int(n_classes), float(noise), int(seeds), int(seed)), int(k), auto


def seed_controls(toy: teach.Toy) -> None:
    sb = st.sidebar
    sb.header("Seeds")
    options = list(range(toy.n_classes)) + [-1]
    if st.session_state.get(SEED_CLASS) not in options:
        st.session_state[SEED_CLASS] = 0
    sb.selectbox("A click on a point makes it", options, key=SEED_CLASS,
                 format_func=lambda c: f"a seed of {class_name(c)}" if c >= 0 else "unlabeled")
    sb.caption("Or type a position (hover the plane to read one):")
    c1, c2 = sb.columns(2)
    c1.number_input("x", value=0.0, step=0.1, key="teach_seed_x")
    c2.number_input("y", value=0.0, step=0.1, key="teach_seed_y")
    sb.button("Apply to the point nearest (x, y)", on_click=seed_nearest, args=(toy.X,),
              key="teach_seed_at")
    sb.button("Back to the drawn seeds", on_click=reset_seeds, key="teach_seed_reset")


def navigation(steps: list) -> int:
    last = len(steps) - 1
    i = min(max(int(st.session_state[STEP]), 0), last)
    st.session_state[STEP] = i
    # one wrapping row: the buttons keep their words in a narrow window, the slider takes
    # what is left (or a line of its own)
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    cols = [row] * 6
    cols[0].button("◀◀ start", on_click=go_to, args=(0,), key="teach_reset", disabled=i == 0,
                   width="content", help="Back to the seeds, before round 1")
    cols[1].button("◀ round", on_click=go_to, args=(walkthrough.previous_round_index(steps, i),),
                   key="teach_prev_round", disabled=i == 0, width="content")
    cols[2].button("◀ step", on_click=go_to, args=(i - 1,), key="teach_prev_step",
                   disabled=i == 0, width="content")
    cols[3].button("step ▶", on_click=go_to, args=(i + 1,), key="teach_next_step",
                   disabled=i == last, width="content")
    cols[4].button("round ▶", on_click=go_to, args=(walkthrough.next_round_index(steps, i),),
                   key="teach_next_round", disabled=i == last, width="content")
    if last > 0:
        with cols[5].container(width="stretch"):
            st.slider("Step", 0, last, key=STEP, label_visibility="collapsed")
    return int(st.session_state[STEP])


def main() -> None:
    state.init_session()
    st.title("Teach: watch HDL label a 2-D toy")
    st.caption(
        "Here the plane is the embedding: HDL's neighbours are the nearest points you see. "
        "Each round, every unlabeled point counts its labeled neighbours (L); the points with "
        "the most form the first level, ordered by how many of them list each other (the "
        "second level); each then takes the majority label of its labeled neighbours, and "
        "counts as labeled for everyone after it. Step through it, or change k and watch.")
    params, k_manual, auto = sidebar()
    try:
        toy, _ = load_toy(params)
    except ValueError as err:
        st.error(f"Cannot build this toy: {err}")
        st.stop()
    if st.session_state[SEEDS_FOR] != params:      # new toy: drop edits to the old one's seeds
        st.session_state[SEEDS] = {}
        st.session_state[SEEDS_FOR] = params
    seed_controls(toy)
    if toy.note:
        st.sidebar.caption(f"Shape: {toy.note}.")
    edits = tuple(sorted(st.session_state[SEEDS].items()))
    try:
        y = seeds_of(toy, edits)
        kc = load_k_choice(params, edits)
        k = kc.k if auto else k_manual
        run = load_run(params, edits, k)
    except ValueError as err:
        st.error(f"Cannot label this toy: {err}. Place at least one seed (pick a class under "
                 f"Seeds and click a point), or go back to the drawn seeds.")
        st.stop()
    if auto:
        st.sidebar.info(f"k* = {kc.k}. {kc.reason}")

    run_id = (params, edits, k)
    if st.session_state[RUN_ID] != run_id:          # a new labeling starts at its beginning
        st.session_state[RUN_ID] = run_id
        st.session_state[STEP] = 0
    i = navigation(run.steps)
    step = run.steps[i]
    labels_now = np.where(run.hdl.step < step.shown, run.hdl.labels, -1)
    n_seeds = int((y >= 0).sum())
    shown = int((labels_now >= 0).sum())

    st.info(f"**{step.kind.capitalize()}.** {step.caption}")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(hdl_figure(toy, run, i, y), key=PLANE, on_select=on_plane_select,
                        selection_mode="points", config={"displaylogo": False})
        a, b, c = st.columns(3)
        a.metric("Labeled now", f"{shown} of {toy.n}", help=f"{n_seeds} seeds included")
        b.metric("Round", f"{step.round + 1} of {run.hdl.n_rounds}" if step.round >= 0 else "done")
        c.metric("HDL accuracy", f"{run.accuracy_hdl:.1%}",
                 help="Final HDL labels against the toy's truth, seeds left out")
        st.caption("Numbers on grey points: L, their labeled neighbours (blank: none). "
                   "Rings: the first level, #rank·second-level score. Star: the point being "
                   "labeled; thick arrows: its labeled neighbours, dotted: unlabeled ones. "
                   "Click a point to make it a seed (choose the class in the sidebar).")
    with right:
        st.plotly_chart(knn_dv_figure(toy, run, y), key="teach_knn_dv",
                        config={"displaylogo": False})
        a, b, c = st.columns(3)
        a.metric("kNN-DV accuracy", f"{run.accuracy_knn_dv:.1%}",
                 delta=f"{run.accuracy_knn_dv - run.accuracy_hdl:+.1%} vs HDL",
                 delta_color="normal")
        b.metric("Points where they differ", f"{run.differ.size}")
        c.metric("Bridges", f"{int(run.hdl.fallback.sum())}")
        st.caption("kNN-DV votes among the k nearest *seeds* only, all at once; HDL lets "
                   "each newly labeled point vote for the next. Circled: the two disagree.")

    if step.kind in ("round", "vote") and step.first_level.size:
        with st.expander(f"First level of round {step.round + 1}: {step.first_level.size} "
                         f"point(s) with L = {step.max_L}", expanded=False):
            st.dataframe(first_level_rows(step, labels_now), hide_index=True)

    st.subheader("Choosing k: μ_k, I(k) and P(k)")
    st.plotly_chart(k_figure(kc, load_k_truth(params), k), key="teach_k_chart",
                    config={"displaylogo": False})
    st.caption(
        f"μ_k: share of seeds whose k nearest seeds all share their label (eq. 2 needs it "
        f"estimated from labeled points); I(k): chance that a majority of k+1 votes is right "
        f"when each is wrong with probability e = 0.15. P(k) = μ_k · I. Dotted: the same with "
        f"every point labeled by its truth, which the app never knows. {kc.reason}")


main()

"""The one map of the embeddings that Label and Review both draw, and how it is read back.

* `palette` / `class_colours`: one colour per class, the same on every page.
* `class_map`: points coloured by their label, each carrying an id in ``customdata``.
* `selected_ids`: the one reader of a plotly selection (ids from ``customdata``, never
  ``point_index``, which counts within each trace).
* `map_note` and `wait_for_umap`: PCA is shown while UMAP computes in the background; a
  small fragment polls and redraws the page once UMAP is ready.
* `density_map` / `picture`: a map of more than `POINTS_LIMIT` points is a density picture
  of every point (`hdl_core.views.density`) with `DRAWN` of them as markers on top, and
  `shape_selection` answers a lasso or a box for every point from its outline.
* `plotly_text` / `legend_name`: file and class names as plain text in hover labels and
  legends (plotly reads them as HTML: a class named ``<a href=…>`` would be a live link),
  long names cut in the legend and shown whole on hover. Names never go into a
  ``hovertemplate`` itself, where ``%{…}`` would be read as a placeholder.

A module of app_pages/ whose name starts with ``_`` is not a page; pages import it.
"""
from __future__ import annotations

import base64
import html

import numpy as np
import streamlit as st
from plotly.colors import qualitative

import state

GREY = "rgba(140, 140, 140, 0.35)"
POINTS_LIMIT = 20_000                # up to this many points a map draws every one as a marker
DRAWN = 3_000                        # a bigger map draws this many markers over its picture
PICTURE = (900, 600)                 # pixels of the density picture (stretched to the plot)
OUTLINE = "rgba(128, 128, 128, 0.95)"
POLL_SECONDS = 2.0
MAP_HEIGHT = 520
LEGEND_CHARACTERS = 32               # a longer class name is cut in the legend, whole on hover


def plotly_text(text, limit: int | None = None) -> str:
    """A file or class name as plain text for plotly (hover labels, legends, annotations).

    Plotly renders a subset of HTML there (links, bold, line breaks), so ``&``, ``<`` and
    ``>`` become entities; with `limit` the text is cut with an ellipsis first.

    >>> plotly_text('<a href="http://x">x</a>')
    '&lt;a href="http://x"&gt;x&lt;/a&gt;'
    """
    text = " ".join(str(text).splitlines())
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 1)] + "…"
    return html.escape(text, quote=False)


def plotly_texts(texts) -> np.ndarray:
    """`plotly_text` of each entry, as an object array (hover text per point)."""
    return np.array([plotly_text(text) for text in texts], dtype=object)


def legend_name(name) -> str:
    """A class name for a legend entry: plain text, cut to `LEGEND_CHARACTERS`."""
    return plotly_text(name, LEGEND_CHARACTERS)


def palette(n_classes: int) -> list[str]:
    """One colour per class: plotly's 10, else 26 (Alphabet), repeated past that."""
    colours = qualitative.Plotly if n_classes <= 10 else qualitative.Alphabet
    return [colours[i % len(colours)] for i in range(max(n_classes, 1))]


def class_colours(colours: list[str]) -> dict:
    """Marker settings that colour a numeric class array with the class palette."""
    n = len(colours)
    scale = []
    for i, colour in enumerate(colours):
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    return {"colorscale": scale, "cmin": -0.5, "cmax": n - 0.5, "showscale": False}


def selected_ids(points) -> list[int]:
    """Ids of the selected points, read from the first entry of each point's ``customdata``.

    plotly.js hands a row of a binary customdata array back as ``{"0": .., "1": ..}``, a
    row of a list as a list, and a scalar as itself; all are read. Points without an id
    are ignored; order is kept, repeats dropped.
    """
    ids: list[int] = []
    for point in points or []:
        value = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(value, dict):
            value = value.get("0", value.get(0))
        elif isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is None or isinstance(value, bool):
            continue
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(ids))


def selection_points(key: str) -> list:
    """The points of the selection a chart with `key` reported (empty when none)."""
    event = st.session_state.get(key)
    try:
        return list(event["selection"]["points"])
    except (KeyError, TypeError):
        return []




def class_map(coords: np.ndarray, ids: np.ndarray, labels: np.ndarray, classes: list[str], *,
              hover: np.ndarray, given: np.ndarray, colours: dict | None = None,
              selected=None, height: int = MAP_HEIGHT) -> dict:
    """Points coloured by their label, one trace per class, lasso ready.

    Parameters
    ----------
    coords : ndarray (n, 2)
        Map positions of the points drawn.
    ids : ndarray (n,)
        What `selected_ids` gives back for each point (item ids on Review).
    labels : ndarray (n,) of object
        Class name per point, None for "no label".
    classes : list of str
        Class order.
    hover : ndarray (n,) of str
        Hover text (the file's path); shown as plain text, with the point's full class name.
    given : ndarray (n,) of bool
        Labels given by hand (seeds, corrections, confirmations): bigger diamonds.
    colours : dict of str to str, optional
        Each class's colour (`Workspace.class_colours`); `palette` when not given.
    selected : iterable of ids, optional
        A selection to show: those points keep their colour, the others turn grey.
    """
    fallback = palette(len(classes))
    colours = {name: (colours or {}).get(name, fallback[c]) for c, name in enumerate(classes)}
    chosen = None if not selected else np.isin(ids, np.fromiter(selected, np.int64))
    data = []
    groups = [(name, colours[name], labels == name) for name in classes]
    groups.append(("no label", "lightgrey", np.array([label is None for label in labels], bool)))
    hover_text = plotly_texts(hover)
    for name, colour, mask in groups:
        if not mask.any():
            continue
        trace = {
            "type": "scattergl", "mode": "markers", "name": legend_name(name),
            "x": coords[mask, 0], "y": coords[mask, 1], "customdata": ids[mask],
            "text": hover_text[mask] + "<br>" + plotly_text(name),
            "marker": {"color": colour, "size": np.where(given[mask], 9, 5),
                       "symbol": np.where(given[mask], "diamond", "circle")},
            "hovertemplate": "%{text}<extra></extra>"}
        if chosen is not None:
            trace["selectedpoints"] = np.flatnonzero(chosen[mask]).tolist()
            trace["unselected"] = {"marker": {"color": GREY, "opacity": 0.35}}
        data.append(trace)
    layout = {"dragmode": "lasso", "height": height, "margin": {"t": 10, "b": 10, "l": 10, "r": 10},
              "legend": {"itemsizing": "constant"}, "uirevision": "class-map",
              "xaxis": {"showticklabels": False}, "yaxis": {"showticklabels": False}}
    return {"data": data, "layout": layout}


def map_note(kind: str, ws, emb) -> None:
    """Say which map is shown: UMAP, PCA while UMAP computes, or PCA because UMAP failed."""
    if kind == "pca":
        st.caption("Map: PCA for now; the UMAP map is computing in the background and replaces "
                   "it by itself when ready.")
    elif kind == "pca-only":
        st.caption(f"Map: PCA (UMAP failed: {state.umap_problem(ws, emb)}).")
    elif kind == "computing":
        job = state.job(ws, "map")
        st.info("The map is being computed in the background"
                + (f": {job.describe()}" if job is not None and job.running else "")
                + ". It appears here by itself when ready; the rest of the page works meanwhile.",
                icon=":material/hourglass_top:")


def wait_for_umap(ws, emb) -> None:
    """While the map is PCA because UMAP is still computing: redraw the page once it is done."""
    if state.map_coordinates(ws, emb)[1] in ("pca", "computing"):
        st.fragment(_poll_umap, run_every=POLL_SECONDS)(ws, emb)


def _poll_umap(ws, emb) -> None:
    if state.map_coordinates(ws, emb)[1] not in ("pca", "computing"):
        st.rerun()


# --------------------------------------------------------------------------- big maps

def picture(coords: np.ndarray, codes: np.ndarray, colours: list[str], window) -> dict:
    """A plotly layout image: the density picture of every point in `window`, coloured by
    `codes` (indices into `colours`; -1 grey). The binning is kept per map and window
    (`hdl_core.views.density.DensityGrid`): a replay's rounds only recolour it."""
    from hdl_core.views.density import DensityGrid
    width, height = PICTURE
    key = (id(coords), window)
    kept = _GRIDS.get(key)
    if kept is None or kept[0] is not coords:
        kept = (coords, DensityGrid(coords, window, width=width, height=height))
        while len(_GRIDS) >= 4:
            _GRIDS.pop(next(iter(_GRIDS)))
        _GRIDS[key] = kept
    image = kept[1].image(codes, colours)
    return {"source": "data:image/png;base64," + base64.b64encode(image).decode("ascii"),
            "xref": "x", "yref": "y", "x": window.x0, "y": window.y1,
            "sizex": window.x1 - window.x0, "sizey": window.y1 - window.y0,
            "sizing": "stretch", "layer": "below", "opacity": 1.0}


_GRIDS: dict = {}
_VIEWS: dict = {}


def view_of(coords: np.ndarray, rank: np.ndarray, window=None):
    """The window shown (the whole map by default) and its points by draw rank
    (`hdl_core.views.density.Drawn`), kept while the map and window stay the same (every
    round of a replay, every rerun of the Review map draws the same view)."""
    from hdl_core.views.density import Drawn, Window
    key = (id(coords), id(rank), window)
    kept = _VIEWS.get(key)
    if kept is None or kept[0] is not coords or kept[1] is not rank:
        shown = window or Window.around(coords)
        kept = (coords, rank, shown, Drawn(coords, rank, shown))
        while len(_VIEWS) >= 4:
            _VIEWS.pop(next(iter(_VIEWS)))
        _VIEWS[key] = kept
    return kept[2], kept[3]


def density_map(coords: np.ndarray, codes: np.ndarray, names: list[str], colours: list[str], *,
                ids: np.ndarray, rank: np.ndarray, given: np.ndarray, window,
                hover_text, selected: np.ndarray | None = None,
                height: int = MAP_HEIGHT) -> dict:
    """A map of any size: every point in a density picture, `DRAWN` of them as markers.

    Parameters
    ----------
    coords : ndarray (n, 2)
    codes : ndarray (n,) of int
        Class index of each point into `names` / `colours`; -1: no label (grey).
    names, colours : list of str
        Class names (shown on hover, as text) and ``#RRGGBB`` colours.
    ids : ndarray (n,)
        What `selected_ids` gives back for each point.
    rank : ndarray (n,)
        `hdl_core.views.density.draw_order`: which points are drawn as markers.
    given : ndarray (n,) of bool
        Labels given by hand: drawn as bigger diamonds.
    window : hdl_core.views.density.Window or None
        The part of the map shown (None: all of it).
    hover_text : callable(rows) -> list of str
        Hover text (a file path) of the rows drawn as markers.
    selected : ndarray (n,) of bool, optional
        A selection to show: those points keep their colour, the others turn grey.
    """
    shown_codes = codes if selected is None else np.where(selected, codes, -1)
    window, order = view_of(coords, rank, window)
    rows = order.take(DRAWN)
    marker_colours = np.array(list(colours) + ["lightgrey"], dtype=object)[shown_codes[rows]]
    class_names = np.array([plotly_text(n) for n in names] + ["no label"], dtype=object)
    text = plotly_texts(hover_text(rows))
    trace = {"type": "scattergl", "mode": "markers", "name": "points drawn",
             "x": coords[rows, 0], "y": coords[rows, 1], "customdata": ids[rows],
             "text": text + "<br>" + class_names[codes[rows]],
             "marker": {"color": marker_colours, "size": np.where(given[rows], 8, 4),
                        "symbol": np.where(given[rows], "diamond", "circle"),
                        "line": {"width": 0}},
             "hovertemplate": "%{text}<extra></extra>", "showlegend": False}
    legend = [{"type": "scattergl", "mode": "markers", "x": [None], "y": [None],
               "name": legend_name(name), "marker": {"color": colour, "size": 8},
               "hoverinfo": "skip"} for name, colour in zip(names, colours)]
    layout = {"dragmode": "lasso", "height": height,
              "margin": {"t": 10, "b": 10, "l": 10, "r": 10},
              "legend": {"itemsizing": "constant"}, "uirevision": f"density-{window}",
              "images": [picture(coords, shown_codes, colours, window)],
              "xaxis": {"showticklabels": False, "range": [window.x0, window.x1],
                        "showgrid": False, "zeroline": False},
              "yaxis": {"showticklabels": False, "range": [window.y0, window.y1],
                        "showgrid": False, "zeroline": False}}
    return {"data": [trace] + legend, "layout": layout}


def shape_selection(key: str, coords: np.ndarray) -> np.ndarray | None:
    """The rows inside the lasso(s) or box(es) of the selection a chart with `key` reported,
    over every point (drawn as a marker or not); None when the selection has no shape (a
    click, or nothing)."""
    from hdl_core.views.density import in_box, in_polygon
    event = st.session_state.get(key)
    try:
        selection = event["selection"]
    except (KeyError, TypeError):
        return None
    boxes, lassos = list(selection.get("box") or []), list(selection.get("lasso") or [])
    if not boxes and not lassos:
        return None
    inside = np.zeros(len(coords), bool)
    for box in boxes:
        if len(box.get("x", [])) == 2 and len(box.get("y", [])) == 2:
            inside |= in_box(coords, box["x"], box["y"])
    for lasso in lassos:
        inside |= in_polygon(coords, lasso.get("x", []), lasso.get("y", []))
    return np.flatnonzero(inside)


def unchecked(figure):
    """`figure` (a plotly figure dict) as a `plotly.graph_objects.Figure` that plotly has not
    validated property by property.

    ``st.plotly_chart`` validates a dict by building a Figure from it: 130 ms for the demo's
    map, most of what a round-slider move cost on the server. A Figure is passed on as it
    is. The figures drawn here are validated in the tests instead (tests/test_map.py).
    A Figure given is returned unchanged.
    """
    import plotly.graph_objects as go
    if isinstance(figure, go.Figure):
        return figure
    return go.Figure(figure, _validate=False)


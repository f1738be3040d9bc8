"""app_pages/_map.py: the one map both Label and Review draw, and the one reader of its selections."""
from __future__ import annotations

import numpy as np

from app_pages import _map


def test_map_selection_is_read_from_customdata_not_point_index():
    points = [{"curve_number": 1, "point_index": 0, "customdata": 42},
              {"curve_number": 2, "point_index": 0, "customdata": [7, "extra"]},
              {"curve_number": 2, "point_index": 1},               # no id: ignored
              {"curve_number": 1, "point_index": 0, "customdata": 42},
              {"customdata": {"0": 86, "1": 92}},                  # a row of a binary array
              {"customdata": 3.0}, {"customdata": True}, {"customdata": "x"}]
    assert _map.selected_ids(points) == [42, 7, 86, 3]
    assert _map.selected_ids(None) == [] and _map.selected_ids([]) == []


def test_class_map_colours_each_class_the_same_and_carries_ids():
    coords = np.arange(10, dtype=float).reshape(5, 2)
    labels = np.array(["b", "a", None, "b", "a"], dtype=object)
    figure = _map.class_map(coords, np.array([10, 11, 12, 13, 14]), labels, ["a", "b"],
                            hover=np.array(list("vwxyz")), given=np.array([1, 0, 0, 0, 1], bool))
    by_name = {trace["name"]: trace for trace in figure["data"]}
    assert set(by_name) == {"a", "b", "no label"}
    assert by_name["a"]["customdata"].tolist() == [11, 14]
    assert by_name["b"]["customdata"].tolist() == [10, 13]
    colours = _map.palette(2)
    assert by_name["a"]["marker"]["color"] == colours[0] and by_name["b"]["marker"]["color"] == colours[1]
    assert by_name["a"]["marker"]["symbol"].tolist() == ["circle", "diamond"]


def test_every_map_and_chart_the_pages_draw_is_a_valid_plotly_figure(roots):
    """The pages hand their figures to st.plotly_chart unvalidated (`_map.unchecked`), so
    plotly's validation runs here: a misspelt property fails this test, not the browser."""
    import importlib
    import json

    import plotly.graph_objects as go
    import plotly.io as pio

    from hdl_core.auto_k import KIntent
    from hdl_core.data import load_folder
    from hdl_core.views.density import draw_order
    from hdl_core.workspace import pipeline
    from hdl_core.workspace.store import Workspace
    from tests.test_pipeline import PIXELS, write_colour_folder

    folder = roots[0] / "colours"
    write_colour_folder(folder, seeds=2, unlabeled=6)
    ws = Workspace(roots[1] / "ws")
    pipeline.import_dataset(ws, load_folder(folder))
    emb = pipeline.embed_workspace(ws, PIXELS)
    run = pipeline.run_labeling(ws, emb, KIntent.parse(2))
    label_page = importlib.import_module("app_pages.label")
    graph = pipeline.neighbour_graph(ws, emb)
    view = label_page.prepare(ws, run.hdl_id, run.baseline_id, graph.indices)
    n = view.replay.n
    coords = np.random.default_rng(0).random((n, 2))
    view.rank = draw_order(n)
    r = view.replay.n_rounds - 1
    figures = {
        "label map": label_page.map_figure(view, coords, r, point=0),
        "label map, filtered": label_page.map_figure(view, coords, 0, only=np.arange(n) % 2 == 0),
        "label big map": label_page.big_map_figure(view, coords, r),
        "progress": label_page.progress_figure(view, r),
        "class map": _map.class_map(coords, np.arange(n), np.array(["red"] * n, dtype=object),
                                    ["red"], hover=np.array(["x"] * n), given=np.zeros(n, bool)),
        "density map": _map.density_map(
            coords, np.zeros(n, int), ["red"], ["#ff0000"], ids=np.arange(n),
            rank=draw_order(n), given=np.zeros(n, bool), window=None,
            hover_text=lambda rows: ["x"] * len(rows)),
    }
    if view.replay.accuracy is not None:
        figures["accuracy"] = label_page.accuracy_figure(view, r)
    for name, figure in figures.items():
        checked = go.Figure(figure)                   # raises on any invalid property
        sent = json.loads(pio.to_json(_map.unchecked(figure), validate=False))
        assert sent == json.loads(pio.to_json(checked, validate=False)), name

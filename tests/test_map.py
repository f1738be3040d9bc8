"""pages/_map.py: the one map both Label and Review draw, and the one reader of its selections."""
from __future__ import annotations

import numpy as np

from pages import _map


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

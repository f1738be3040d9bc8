"""hdl_core.views.density: the picture of a big map, the points drawn on it, lasso and box."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hdl_core.views.density import (GREY, Window, density_image, density_rgba, draw_order,
                                    drawn_points, in_box, in_polygon)


def _brute_in_polygon(points, xs, ys):
    out = []
    for px, py in points:
        inside, j = False, len(xs) - 1
        for i in range(len(xs)):
            if (ys[i] > py) != (ys[j] > py) and px < xs[i] + (py - ys[i]) * (xs[j] - xs[i]) / (ys[j] - ys[i]):
                inside = not inside
            j = i
        out.append(inside)
    return np.array(out)


def test_lasso_selects_exactly_the_points_inside_its_outline():
    rng = np.random.default_rng(0)
    points = rng.uniform(-2, 2, (3_000, 2))
    angle = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radius = rng.uniform(0.5, 1.8, 40)                      # a ragged, non-convex lasso
    xs, ys = radius * np.cos(angle), radius * np.sin(angle)
    np.testing.assert_array_equal(in_polygon(points, xs, ys), _brute_in_polygon(points, xs, ys))
    assert not in_polygon(points, [0, 1], [0, 1]).any()     # not a polygon: nothing
    with pytest.raises(ValueError, match="as many x as y"):
        in_polygon(points, [0, 1, 2], [0, 1])


def test_box_takes_either_order_of_its_corners_and_includes_its_edges():
    points = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]])
    assert in_box(points, (1, 0), (1, 0)).tolist() == [True, True, False]


def test_drawn_points_are_the_same_lowest_ranks_in_any_view():
    rng = np.random.default_rng(1)
    coords = rng.normal(size=(10_000, 2))
    rank = draw_order(len(coords))
    assert sorted(rank.tolist()) == list(range(10_000))
    everything = drawn_points(coords, rank, 500)
    assert everything.size == 500 and np.array_equal(everything, np.sort(everything))
    window = Window(0, 3, 0, 3)
    zoomed = drawn_points(coords, rank, 500, window=window)
    assert window.contains(coords[zoomed]).all()
    # what was drawn in the whole view and lies in the window is drawn when zoomed in too
    assert set(everything[window.contains(coords[everything])]) <= set(zoomed)
    few = drawn_points(coords, rank, 10**6, window=window)
    assert few.size == window.contains(coords).sum()


def test_density_colours_a_pixel_by_its_points_classes_and_greys_unlabeled_ones():
    coords = np.array([[0.1, 0.1]] * 3 + [[0.9, 0.9]] + [[0.1, 0.9]])
    codes = np.array([0, 0, 0, 1, -1])
    rgba = density_rgba(coords, codes, ["#ff0000", "#0000ff"], Window(0, 1, 0, 1),
                        width=10, height=10)
    assert rgba.shape == (10, 10, 4)
    filled = {tuple(rgba[r, c, :3]): (r, c, rgba[r, c, 3]) for r, c in np.argwhere(rgba[..., 3] > 0)}
    grey = tuple(int(GREY[i:i + 2], 16) for i in (1, 3, 5))
    assert set(filled) == {(255, 0, 0), (0, 0, 255), grey}      # empty pixels stay clear
    red, blue, unlabeled = filled[(255, 0, 0)], filled[(0, 0, 255)], filled[grey]
    assert red[2] == 255 and 0 < blue[2] < 255                  # the densest pixel is opaque
    assert red[0] > blue[0] and red[1] < blue[1]                # top row = largest y
    assert unlabeled[0] == blue[0] and unlabeled[1] == red[1]
    picture = Image.open(io.BytesIO(density_image(coords, codes, ["#ff0000", "#0000ff"],
                                                  Window(0, 1, 0, 1), width=40, height=30)))
    assert picture.size == (40, 30) and picture.format == "PNG"


def test_window_around_ignores_points_without_a_place():
    coords = np.array([[0.0, 0.0], [np.nan, np.nan], [10.0, 5.0]])
    window = Window.around(coords, margin=0)
    assert (window.x0, window.x1, window.y0, window.y1) == (0, 10, 0, 5)


def test_a_kept_grid_recolours_exactly_as_binning_afresh():
    from hdl_core.views.density import DensityGrid
    rng = np.random.default_rng(4)
    coords = rng.normal(size=(5_000, 2))
    coords[:3] = [[np.nan, np.nan], [50.0, 50.0], [-50.0, 0.0]]       # no place, outside
    window = Window(-2, 2, -1.5, 1.5)
    grid = DensityGrid(coords, window, width=64, height=48)
    for seed in range(3):
        codes = np.random.default_rng(seed).integers(-1, 4, len(coords))
        colours = ["#ff0000", "#00ff00", "#0000ff", "#ffff00"]
        assert np.array_equal(grid.rgba(codes, colours),
                              density_rgba(coords, codes, colours, window, width=64, height=48))
    # every point in the window is counted once, edges included
    edges = np.array([[-2.0, -1.5], [2.0, 1.5], [2.0, -1.5], [0.0, 0.0]])
    rgba = density_rgba(edges, np.zeros(4, int), ["#ff0000"], window, width=4, height=3)
    assert (rgba[..., 3] > 0).sum() == 4
    assert rgba[2, 0, 3] > 0 and rgba[0, 3, 3] > 0 and rgba[2, 3, 3] > 0   # corners

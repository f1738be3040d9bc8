"""A map of a million points as a picture: density per class, points for a few, lasso by shape.

A browser cannot draw (or lasso) a million markers quickly, and a chart of a million points
is tens of megabytes on every rerun. So a big map is drawn in two layers: `density_image`
aggregates every point into pixels with datashader and colours each pixel by the classes in
it (one small WebP picture), and `drawn_points` picks the few thousand points drawn as markers on top
(for hover and clicks), the same ones at every zoom. A lasso or a box is then answered for
every point, drawn or not, from its shape: `in_polygon` and `in_box`.

Pure numpy / datashader / numba; no Streamlit.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from numba import njit

GREY = "#8c8c8c"


@dataclass(frozen=True)
class Window:
    """A rectangle of the map: x from `x0` to `x1`, y from `y0` to `y1` (x0 < x1, y0 < y1)."""

    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def around(cls, coords: np.ndarray, margin: float = 0.03) -> "Window":
        """The bounding box of `coords` (ignoring NaN), widened by `margin` of its size."""
        finite = coords[np.isfinite(coords).all(axis=1)]
        if finite.size == 0:
            return cls(-1.0, 1.0, -1.0, 1.0)
        low, high = finite.min(axis=0).astype(float), finite.max(axis=0).astype(float)
        span = np.maximum(high - low, 1e-9)
        low, high = low - margin * span, high + margin * span
        return cls(low[0], high[0], low[1], high[1])

    def contains(self, coords: np.ndarray) -> np.ndarray:
        return in_box(coords, (self.x0, self.x1), (self.y0, self.y1))


def _rgb(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def density_rgba(coords: np.ndarray, codes: np.ndarray, colours: list[str], window: Window, *,
                 width: int, height: int, min_alpha: int = 70) -> np.ndarray:
    """Every point aggregated into a `height` × `width` picture of `window`, coloured by class.

    Parameters
    ----------
    coords : ndarray (n, 2)
    codes : ndarray (n,) of int
        Index into `colours` of each point's class; -1 (no label) is drawn `GREY`.
    colours : list of str
        ``#RRGGBB`` per class.
    window : Window
    width, height : int
        Pixels.
    min_alpha : int, default 70
        Opacity of a pixel holding one point; the densest pixel is opaque (log scale).

    Returns
    -------
    ndarray (height, width, 4) of uint8
        RGBA, top row = largest y. A pixel's colour is the mean of its points' class
        colours; its opacity grows with the log of their number.
    """
    import datashader as ds
    import pandas as pd

    codes = np.asarray(codes)
    palette = [_rgb(c) for c in colours] + [_rgb(GREY)]
    n_categories = len(palette)
    category = np.where(codes < 0, n_categories - 1, codes).astype(np.int32)
    frame = pd.DataFrame({
        "x": np.asarray(coords[:, 0], np.float32), "y": np.asarray(coords[:, 1], np.float32),
        "c": pd.Categorical.from_codes(category, categories=list(range(n_categories)))})
    canvas = ds.Canvas(plot_width=int(width), plot_height=int(height),
                       x_range=(window.x0, window.x1), y_range=(window.y0, window.y1))
    counts = canvas.points(frame, "x", "y", ds.count_cat("c")).data     # (h, w, categories)
    counts = counts.reshape(-1, n_categories)
    total = counts.sum(axis=1)
    filled = np.flatnonzero(total)                  # only the pixels that hold points
    out = np.zeros((height * width, 4), np.uint8)
    if filled.size:
        mine = counts[filled].astype(np.float32)
        amount = total[filled].astype(np.float32)
        out[filled, :3] = ((mine @ np.asarray(palette, np.float32)) / amount[:, None]).clip(0, 255)
        level = np.log1p(amount) / np.log1p(amount.max())
        out[filled, 3] = min_alpha + (255 - min_alpha) * level
    return out.reshape(height, width, 4)[::-1]


def density_image(coords: np.ndarray, codes: np.ndarray, colours: list[str], window: Window, *,
                  width: int, height: int) -> bytes:
    """`density_rgba` as WebP bytes (lossy, quality 85, fastest method): about a third of a
    PNG's bytes and time for a map of a million points, made again on every change."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(density_rgba(coords, codes, colours, window, width=width, height=height),
                    "RGBA").save(buffer, format="WEBP", quality=85, method=0)
    return buffer.getvalue()


def draw_order(n: int, *, random_state: int = 0) -> np.ndarray:
    """A fixed random rank per point: `drawn_points` draws the lowest ranks in view, so the
    points drawn stay the same while the view changes (and a zoom shows more of them)."""
    rank = np.empty(n, np.int64)
    rank[np.random.default_rng(random_state).permutation(n)] = np.arange(n)
    return rank


class Drawn:
    """The points of a map in view, lowest draw rank first: built once per map and view, so
    picking the points drawn as markers (and the seeds, the round's points, ...) costs a
    mask lookup, not a pass over every coordinate.

    Parameters
    ----------
    coords : ndarray (n, 2)
    rank : ndarray (n,)
        `draw_order`.
    window : Window, optional
        Only points inside it (default: every point with a place).
    """

    def __init__(self, coords: np.ndarray, rank: np.ndarray, window: Window | None = None):
        keep = np.isfinite(coords).all(axis=1)
        if window is not None:
            keep &= window.contains(coords)
        rows = np.flatnonzero(keep)
        self.rows = rows[np.argsort(rank[rows], kind="stable")]

    def take(self, limit: int, among: np.ndarray | None = None) -> np.ndarray:
        """Up to `limit` rows in view (and in the mask `among`), lowest ranks; ascending."""
        rows = self.rows if among is None else self.rows[among[self.rows]]
        return np.sort(rows[:limit])


def drawn_points(coords: np.ndarray, rank: np.ndarray, limit: int, *,
                 window: Window | None = None, among: np.ndarray | None = None) -> np.ndarray:
    """Rows drawn as markers: those in `window` (and in the mask `among`), every one when
    there are at most `limit`, else the `limit` of lowest `rank`. Ascending row order.
    (`Drawn` keeps the ordering for repeated picks on one map and view.)"""
    return Drawn(coords, rank, window).take(limit, among)


def in_box(coords: np.ndarray, x_range, y_range) -> np.ndarray:
    """Mask of the points inside the box (edges included; either order of the ends)."""
    x0, x1 = sorted(float(v) for v in x_range)
    y0, y1 = sorted(float(v) for v in y_range)
    x, y = coords[:, 0], coords[:, 1]
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def in_polygon(coords: np.ndarray, xs, ys) -> np.ndarray:
    """Mask of the points inside the polygon with vertices (xs[i], ys[i]) (a lasso).

    Even-odd rule (a point on a crossing of the outline counts by how often it is
    enclosed), by ray casting over the points in the polygon's bounding box only.

    >>> square = ([0, 1, 1, 0], [0, 0, 1, 1])
    >>> in_polygon(np.array([[0.5, 0.5], [2.0, 0.5]]), *square).tolist()
    [True, False]
    """
    xs = np.asarray(xs, np.float64)
    ys = np.asarray(ys, np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"a polygon needs as many x as y values, got {xs.shape} and {ys.shape}")
    out = np.zeros(len(coords), bool)
    if xs.size < 3:
        return out
    candidates = np.flatnonzero(in_box(coords, (xs.min(), xs.max()), (ys.min(), ys.max())))
    if candidates.size:
        points = np.ascontiguousarray(coords[candidates], np.float64)
        out[candidates] = _inside(points, xs, ys)
    return out


@njit(cache=True)
def _inside(points, xs, ys):
    m = xs.size
    out = np.zeros(points.shape[0], np.bool_)
    for i in range(points.shape[0]):
        px = points[i, 0]
        py = points[i, 1]
        inside = False
        j = m - 1
        for e in range(m):
            if (ys[e] > py) != (ys[j] > py):
                cross = xs[e] + (py - ys[e]) * (xs[j] - xs[e]) / (ys[j] - ys[e])
                if px < cross:
                    inside = not inside
            j = e
        out[i] = inside
    return out

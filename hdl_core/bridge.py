"""Groups of labeled points with bounds: the index behind HDL's bridge search.

A bridge (`hdl.hdl_label`, when no unlabeled point has a labeled neighbour) joins the
unlabeled point nearest to any labeled point. Comparing every unlabeled point with every
labeled one is quadratic; here the labeled points are kept in groups, and a group is
compared row by row only with the unlabeled points it could hold the answer for.

Each group is summarised by its centre c, an orthonormal basis B of its main directions
(a randomized PCA of its members, up to `BASIS` of them) and two radii: Z, the largest
length of a member's offset ``l - c`` inside B, and ρ, the largest length outside it. For
any point u and any member l, with ``p = |Bᵀ(u - c)|`` and ``q = |(u - c) - BBᵀ(u - c)|``,

    |u - l|² >= max(0, p - Z)² + max(0, q - ρ)²

(Pythagoras in B and its complement, then the triangle inequality in each). On unit
vectors ``|u - l|² = 2 - 2 cos``, so the same bound serves the cosine metric. Embeddings
vary along few directions per cluster, so p and q separate groups far better than the
distance to the centre alone. The bound is computed in float32 and then loosened by a
rounding allowance, so it never exceeds the exact value; groups only decide what is
compared, and every comparison is exact (`graph.nearest_exactly`), so the answer does not
depend on how points were grouped.
"""
from __future__ import annotations

import contextlib
import math

import numba
import numpy as np

# Leaves hold at most LEAF_PER_DIRECTION x (directions + 1) members: bounding a leaf
# costs (directions + 1) dot products per point, comparing with it one per member, so
# bounds stay a few percent of comparing where they cannot prune (64 x 17 = 1088 members
# in 512-D; 256 in 3-D, where they prune well).
LEAF_PER_DIRECTION = 64
# Directions kept per group (fewer when the group has fewer members).
BASIS = 16
# Lloyd iterations when splitting a batch of newly labeled points into groups.
KMEANS_ITERATIONS = 4


def distinct_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct rows of `X` (identical bytes) by first occurrence.

    For `rows.UnitRows` the rows are compared as stored, before scaling: rows identical
    there are identical scaled, and reading them costs no division (two stored rows that
    scale to the same bytes stay two vectors, compared like any other pair).

    Returns (vector, first): ``vector[i]`` is row i's number, ``first[v]`` the first row
    with number v. Rows are told apart by a hash of their bytes, and rows sharing a hash
    are compared in full, so two rows share a number only when they are identical.
    """
    from .rows import drop_behind
    n, d = X.shape
    word = np.uint32 if X.dtype.itemsize == 4 else np.uint64

    unit = hasattr(X, "read")
    buffer = np.empty((65536, d), X.dtype) if unit else None

    def words(rows) -> np.ndarray:       # X's rows as integers
        if unit:    # `rows.UnitRows`: rows as stored (identical stored, identical scaled)
            return np.ascontiguousarray(X.read(rows, out=buffer if isinstance(rows, slice)
                                               else None, scaled=False)).view(word)
        return np.ascontiguousarray(X[rows]).view(word)

    multipliers = np.random.default_rng(2024).integers(1, 2**63, size=d,
                                                       dtype=np.uint64) | np.uint64(1)
    digest = np.empty(n, np.uint64)
    for start in range(0, n, 65536):      # wraps modulo 2^64: a hash, not a sum
        _row_digests(words(slice(start, start + 65536)), multipliers,
                     digest[start:start + 65536])
        drop_behind(X, start, start + 65536)
    _, first, inverse = np.unique(digest, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    by_first = np.argsort(first)
    rank[by_first] = np.arange(first.size)
    vector, first = rank[inverse.ravel()], first[by_first]
    copies = np.flatnonzero(first[vector] != np.arange(n))
    if copies.size:
        differs = np.zeros(copies.size, np.bool_)
        for start in range(0, copies.size, 8192):
            rows = copies[start:start + 8192]
            differs[start:start + 8192] = (words(rows) != words(first[vector[rows]])).any(axis=1)
        collided = copies[differs]           # same hash, other bytes: each its own vector
        vector[collided] = first.size + np.arange(collided.size)
        first = np.concatenate([first, collided])
    return vector, first


class LabeledGroups:
    """Labeled points in groups, each with a centre, a basis and radii (see module docs).

    Groups are only ever added: the labeled set grows while labeling and a labeled point
    never leaves it.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Every point, as the metric prepared it (float32 unit rows for cosine, float64 for
        euclidean); read, never copied whole.
    leaf_size : int, optional
        Most members of a leaf; default ``LEAF_PER_DIRECTION * (min(BASIS, d) + 1)``.

    Notes
    -----
    Leaves (the groups compared row by row) are numbered 0, 1, ... in the arrays below;
    every `add` also builds a binary tree over its points (2-means halving down to
    leaves), whose inner nodes are balls (centre, radius) that let whole subtrees be
    skipped where the data allow it.
    """

    def __init__(self, X: np.ndarray, leaf_size: int | None = None):
        self.X = X
        d = X.shape[1]
        self.leaf_size = max(1, int(leaf_size if leaf_size is not None
                                    else LEAF_PER_DIRECTION * (min(BASIS, d) + 1)))
        self.node_centre = np.empty((0, d), X.dtype)
        self.node_centre_sq = np.empty(0)
        self.node_radius = np.empty(0)
        self.node_children = np.empty((0, 2), np.int64)
        self.node_leaf = np.empty(0, np.int64)        # leaf number, -1 for an inner node
        self.roots: list[int] = []
        self.leaf_radius = np.empty(0)                # max |l - c| over a leaf's members
        self.members: list[np.ndarray] = []
        self.centres = np.empty((0, d), X.dtype)
        self.centre_sq = np.empty(0)                 # |c|², float64
        self.bases = np.empty((d, 0), X.dtype)       # every group's basis, side by side
        self.basis_start = np.zeros(1, np.int64)     # group g's columns: start[g]:start[g+1]
        self.centre_in_basis = np.empty(0)           # Bᵀc of every group, float64
        self.inner_radius = np.empty(0)              # Z
        self.outer_radius = np.empty(0)              # ρ
        self.largest_norm = 0.0

    @property
    def n_groups(self) -> int:
        return len(self.members)

    def add(self, points: np.ndarray, seed: int = 0) -> int | None:
        """Add the labeled `points` (sorted indices) as one tree; returns its root node
        (None for no points)."""
        if points.size == 0:
            return None
        # small matrix products: BLAS threads cost more than they give (tens of ms per
        # product on busy cores, against about one single-threaded)
        with _one_blas_thread():
            root = self._build(points, seed)
        self.roots.append(root)
        return root

    def _build(self, points: np.ndarray, seed: int) -> int:
        """The node for `points`: a leaf, or two halves (2-means) under a ball."""
        halves = self._kmeans(points, 2, seed) if points.size > self.leaf_size else [points]
        if len(halves) < 2:                               # small, or all one vector
            leaf = self._add_group(points, seed)
            return self._add_node(self.centres[leaf].astype(np.float64),
                                  float(self.leaf_radius[leaf]), (-1, -1), leaf)
        children = [self._build(half, seed) for half in halves]
        sizes = np.array([half.size for half in halves], np.float64)
        centre = ((sizes[:, None] * self.node_centre[children].astype(np.float64)).sum(0)
                  / sizes.sum())
        radius = max(float(np.linalg.norm(self.node_centre[c].astype(np.float64) - centre))
                     + self.node_radius[c] for c in children)
        return self._add_node(centre, radius * (1 + 1e-12), tuple(children), -1)

    def _add_node(self, centre: np.ndarray, radius: float, children, leaf: int) -> int:
        stored = centre.astype(self.X.dtype)
        # the radius around the stored (rounded) centre
        radius += float(np.linalg.norm(stored.astype(np.float64) - centre))
        self.node_centre = np.vstack([self.node_centre, stored[None]])
        self.node_centre_sq = np.append(self.node_centre_sq,
                                        float(stored.astype(np.float64) @ stored))
        self.node_radius = np.append(self.node_radius, radius)
        self.node_children = np.vstack([self.node_children, np.array(children, np.int64)])
        self.node_leaf = np.append(self.node_leaf, leaf)
        return self.node_centre.shape[0] - 1

    def _kmeans(self, points: np.ndarray, n_groups: int, seed: int) -> list[np.ndarray]:
        """`points` in `n_groups` parts by a few Lloyd iterations on a sample."""
        if n_groups == 1:
            return [points]
        rng = np.random.default_rng(seed)
        sample = points[np.sort(rng.choice(points.size, min(points.size, 32 * n_groups + 256),
                                           replace=False))]
        rows = self.X[sample]
        centres = rows[rng.choice(sample.size, n_groups, replace=False)].astype(np.float64)
        for _ in range(KMEANS_ITERATIONS):
            nearest = self._nearest_centre(rows, centres)
            for g in range(n_groups):
                mine = nearest == g
                if mine.any():
                    centres[g] = rows[mine].mean(axis=0, dtype=np.float64)
        nearest = np.concatenate([self._nearest_centre(self.X[points[i:i + 8192]], centres)
                                  for i in range(0, points.size, 8192)])
        order = np.argsort(nearest, kind="stable")            # members stay sorted
        bounds = np.searchsorted(nearest[order], np.arange(n_groups + 1))
        return [points[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    @staticmethod
    def _nearest_centre(rows: np.ndarray, centres: np.ndarray) -> np.ndarray:
        c = centres.astype(rows.dtype)
        key = rows @ c.T
        key *= -2.0
        key += np.einsum("ij,ij->i", c, c)[None, :]
        return np.argmin(key, axis=1)

    def _add_group(self, members: np.ndarray, seed: int) -> int:
        rows = self.X[members].astype(np.float64)
        centre = rows.mean(axis=0)
        offsets = rows - centre
        sq = np.einsum("ij,ij->i", offsets, offsets)
        m = min(BASIS, members.size - 1, rows.shape[1])
        if m > 0 and sq.max() > 0:
            # directions from a sample (any orthonormal basis keeps the bound valid);
            # the radii below are over every member
            sample = offsets if members.size <= 512 else offsets[
                np.random.default_rng(seed).choice(members.size, 512, replace=False)]
            basis = _main_directions(sample, m, seed)
            inside = offsets @ basis
            inner_sq = np.einsum("ij,ij->i", inside, inside)
        else:
            basis = np.empty((rows.shape[1], 0))
            inner_sq = np.zeros_like(sq)
        # the radii are maxima over members, computed in float64; widen by its rounding
        slack = 1e-12 * (1.0 + sq.max())
        self.members.append(members)
        self.centres = np.vstack([self.centres, centre.astype(self.X.dtype)[None]])
        self.centre_sq = np.append(self.centre_sq, centre @ centre)
        self.bases = np.hstack([self.bases, basis.astype(self.X.dtype)])
        self.basis_start = np.append(self.basis_start, self.basis_start[-1] + basis.shape[1])
        self.centre_in_basis = np.append(self.centre_in_basis, centre @ basis)
        self.inner_radius = np.append(self.inner_radius, math.sqrt(inner_sq.max()) + slack)
        self.outer_radius = np.append(
            self.outer_radius, math.sqrt(max(0.0, (sq - inner_sq).max())) + slack)
        self.leaf_radius = np.append(self.leaf_radius, math.sqrt(sq.max()) + slack)
        self.largest_norm = max(self.largest_norm,
                                float(np.sqrt(np.einsum("ij,ij->i", rows, rows).max())))
        return len(self.members) - 1

    def nearest_centre(self, u: np.ndarray, groups) -> np.ndarray:
        """For each row of `u`, the position in `groups` of the group with the nearest centre."""
        centres = self.centres[np.asarray(groups, np.int64)]
        key = u @ centres.T
        key *= -2.0
        key += np.einsum("ij,ij->i", centres, centres)[None, :]
        return np.argmin(key, axis=1)

    def node_bounds(self, u: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """A lower bound of ``|u_i - l|²`` over the members l under each node: the ball's,
        and for leaves the larger of it and `lower_bounds`."""
        nodes = np.asarray(nodes, np.int64)
        u_sq = np.einsum("ij,ij->i", u, u).astype(np.float64)
        dist_sq = (u_sq[:, None] + self.node_centre_sq[nodes][None, :]
                   - 2.0 * (u @ self.node_centre[nodes].T).astype(np.float64))
        eps = self._rounding(u, u_sq)
        ball = np.maximum(np.sqrt(np.maximum(dist_sq - eps, 0.0))
                          - self.node_radius[nodes][None, :], 0.0) ** 2
        leaves = np.flatnonzero(self.node_leaf[nodes] >= 0)
        if leaves.size:
            ball[:, leaves] = np.maximum(ball[:, leaves],
                                         self.lower_bounds(u, self.node_leaf[nodes[leaves]]))
        return ball

    def _rounding(self, u: np.ndarray, u_sq: np.ndarray) -> np.ndarray:
        """Allowance for the float32 products in the bounds (d·2^-24 per unit of |u||c|,
        summed over a basis); generous, since it only widens what is compared."""
        eps = (8.0 * math.sqrt(BASIS + 1) * u.shape[1] * 2.0 ** -24
               * (np.sqrt(u_sq)[:, None] + self.largest_norm) ** 2)
        return eps * 2.0 ** -29 if u.dtype == np.float64 else eps

    def lower_bounds(self, u: np.ndarray, groups: range | np.ndarray) -> np.ndarray:
        """A lower bound of ``|u_i - l|²`` over the members l of each group, (len(u), len(groups)).

        Parameters
        ----------
        u : ndarray of shape (b, d)
            Query rows, same dtype as X.
        groups : range or ndarray of int
            Group numbers.
        """
        groups = np.asarray(groups, np.int64)
        u_sq = np.einsum("ij,ij->i", u, u).astype(np.float64)
        to_centre = (u @ self.centres[groups].T).astype(np.float64)     # u·c
        dist_sq = u_sq[:, None] + self.centre_sq[groups][None, :] - 2.0 * to_centre
        inside_sq = np.zeros_like(dist_sq)
        starts, stops = self.basis_start[groups], self.basis_start[groups + 1]
        widths = stops - starts
        with_basis = np.flatnonzero(widths > 0)
        if with_basis.size:
            columns = np.concatenate([np.arange(a, b) for a, b in
                                      zip(starts[with_basis], stops[with_basis])])
            proj = (u @ self.bases[:, columns]).astype(np.float64)
            proj -= self.centre_in_basis[columns][None, :]
            proj *= proj
            offsets = np.concatenate([[0], np.cumsum(widths[with_basis])[:-1]])
            inside_sq[:, with_basis] = np.add.reduceat(proj, offsets, axis=1)
        eps = self._rounding(u, u_sq)
        inside = np.sqrt(np.maximum(inside_sq - eps, 0.0))
        outside = np.sqrt(np.maximum(dist_sq - inside_sq - 2.0 * eps, 0.0))
        a = np.maximum(inside - self.inner_radius[groups][None, :], 0.0)
        b = np.maximum(outside - self.outer_radius[groups][None, :], 0.0)
        return a * a + b * b


@numba.njit(cache=True)
def _smallest_k(key, k, out_index, out_key):
    """Per row of `key`, its k smallest entries by (value, column), ascending: one pass,
    an insertion only when an entry beats the current k-th (columns come in ascending
    order, so an equal value never displaces a lower column). On one thread, as the rest
    of the approximate search (see `ApproximateBridge`)."""
    for i in range(key.shape[0]):
        filled = 0
        for j in range(key.shape[1]):
            value = key[i, j]
            if filled == k and value >= out_key[i, k - 1]:
                continue
            pos = filled if filled < k else k - 1
            while pos > 0 and out_key[i, pos - 1] > value:
                out_key[i, pos] = out_key[i, pos - 1]
                out_index[i, pos] = out_index[i, pos - 1]
                pos -= 1
            out_key[i, pos] = value
            out_index[i, pos] = j
            if filled < k:
                filled += 1


_CONTROLLER = None
_BLAS_THREADS = 1


def _blas_controller():
    global _CONTROLLER, _BLAS_THREADS
    from threadpoolctl import ThreadpoolController
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
        _BLAS_THREADS = max([pool.num_threads for pool in _CONTROLLER.select(user_api="blas")
                             .lib_controllers] or [1])
    return _CONTROLLER


def _one_blas_thread():
    """A context in which BLAS runs on one thread (threadpoolctl, a scikit-learn dependency)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _all_blas_threads():
    """A context in which BLAS runs on as many threads as it had before any limit."""
    controller = _blas_controller()
    return controller.limit(limits=_BLAS_THREADS, user_api="blas")


@contextlib.contextmanager
def _one_faiss_thread():
    """A context in which faiss (OpenMP) runs on one thread; the count is restored after."""
    import faiss
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _main_directions(offsets: np.ndarray, m: int, seed: int) -> np.ndarray:
    """An orthonormal (d, m) basis close to the top-m principal directions of `offsets`
    (a randomized range finder with one power iteration, then the small problem solved
    through Gram matrices; any orthonormal basis keeps the bound valid, a better one only
    makes it tighter)."""
    rng = np.random.default_rng(seed)
    width = min(m + 6, offsets.shape[0], offsets.shape[1])
    sketch = offsets @ rng.standard_normal((offsets.shape[1], width))
    sketch = offsets @ (offsets.T @ sketch)
    values, vectors = np.linalg.eigh(sketch.T @ sketch)
    keep = values > values[-1] * 1e-10
    q = sketch @ (vectors[:, keep] / np.sqrt(values[keep]))          # orthonormal columns
    small = q.T @ offsets                                              # (width, d)
    values, vectors = np.linalg.eigh(small @ small.T)
    top = np.argsort(values)[::-1][:m]
    top = top[values[top] > values[top[0]] * 1e-12]
    basis, _ = np.linalg.qr(small.T @ vectors[:, top])                 # exactly orthonormal
    return basis


# --------------------------------------------------------------------------- approximate

# The approximate bridge: about LISTS_PER_SQRT · sqrt(vectors) k-means lists, each vector
# searched against the labeled members of its PROBES nearest lists (measured on 100k x
# 512-D clusters: 0.4 · sqrt(n) lists and 8 probes found the exact best pair, where 4
# probes missed more per-vector nearest pairs and 16 doubled the comparisons).
LISTS_PER_SQRT = 0.4
PROBES = 8
# k-means: a sample of this many vectors per list, this many Lloyd iterations.
SAMPLE_PER_LIST = 32
LIST_ITERATIONS = 8
# On large inputs (TWO_LEVEL_LISTS lists or more, about 60k distinct vectors) two
# shortcuts apply; smaller ones search every probe in one level, as the shortcuts lose
# pairs on data without clusters (isotropic 512-D: fewer exact bridges) and save little.
TWO_LEVEL_LISTS = 100
# 1. Lists in two levels: about sqrt(lists) coarse cells, and lists within each cell, so
# that putting a labeled vector in its list costs about 2·sqrt(lists) dot products, not
# `lists` (1M x 512-D into 400 lists: 0.33 s per 200k vectors against 0.88 s, one core). A
# waiting vector's probes are searched among all lists: a cell's centre, the mean of
# several clusters, says where a vector's own cluster is but not which clusters are
# nearest it (on 100k x 512-D clusters, probes from the 3 nearest cells found 5 of 10
# bridges exactly, all lists 11 of 11).
# 2. A waiting vector searches only the FILLED_PROBES nearest of its probed lists that hold
# labeled vectors when the search starts (and every probed list that holds none yet: the
# unlabeled clusters, filled later). On 100k x 512-D clusters: 11 of 11 bridges exact with
# 2, 6 of 11 with 1.
FILLED_PROBES = 2
# Each list compares its labeled members only with a *window*: the waiting vectors nearest
# its centre among those that search it (refilled as they get labeled), as many as keep
# members x window near PAIRS_PER_WINDOW (about 5 ms of products), and at least WINDOW.
# The nearest pair of two clusters lies between their facing edges, which the searchers
# nearest the labeled list hold. Measured in bench/bridge_bench.py (512-D clusters): every
# searcher compared cost 1.1·10^9 pairs on the first bridge at 1M; windows of 367 (100k) and
# 213 (300k) found the exact rule's labels; at 1M (windows of 64) the labels equalled those
# of the search without windows. Small inputs compare every searcher.
PAIRS_PER_WINDOW = 2**17
WINDOW = 64


@numba.njit(cache=True)
def _row_digests(words, multipliers, digest):
    """digest[i] = Σ_j words[i, j]·multipliers[j], wrapping modulo 2^64."""
    for i in range(words.shape[0]):
        h = np.uint64(0)
        for j in range(words.shape[1]):
            h += np.uint64(words[i, j]) * multipliers[j]
        digest[i] = h


class _Lists:
    """k-means lists in two levels: coarse cells, and lists within each cell.

    `nearest` puts a row in the nearest list of its nearest cell, so a row costs about
    ``cells + lists per cell`` dot products instead of one per list. Keys
    are ``-x·c`` for cosine (unit rows) and ``|x - c|²`` for euclidean: smaller is nearer,
    comparable across rows.
    """

    def __init__(self, sample: np.ndarray, n_lists: int, cosine: bool, seed: int):
        self.cosine = cosine
        n_cells = 1 if n_lists < TWO_LEVEL_LISTS else min(round(math.sqrt(n_lists)),
                                                           sample.shape[0])
        cells, cell_of = self._kmeans(sample, n_cells, seed)
        centroids, owner = [], []
        for g in range(cells.shape[0]):
            mine = sample[cell_of == g]
            if mine.shape[0] == 0:
                continue
            share = max(1, min(mine.shape[0], round(n_lists * mine.shape[0] / sample.shape[0])))
            centroids.append(self._kmeans(mine, share, seed + g)[0])
            owner.append(np.full(centroids[-1].shape[0], len(owner)))
        self.cells = np.ascontiguousarray(
            np.stack([c.mean(axis=0) for c in centroids]) if len(centroids) < cells.shape[0]
            else cells, dtype=np.float32)
        self.centroids = np.ascontiguousarray(np.concatenate(centroids), dtype=np.float32)
        self.cell_of_list = np.concatenate(owner)
        self.cell_lists = [np.flatnonzero(self.cell_of_list == g)
                           for g in range(self.cells.shape[0])]

    @property
    def n_lists(self) -> int:
        return self.centroids.shape[0]

    def _kmeans(self, rows: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss
        if k <= 1:
            centre = rows.mean(axis=0, keepdims=True)
            return centre, np.zeros(rows.shape[0], np.int64)
        kmeans = faiss.Kmeans(rows.shape[1], k, niter=LIST_ITERATIONS, seed=seed,
                              spherical=self.cosine, min_points_per_centroid=1,
                              max_points_per_centroid=rows.shape[0])
        kmeans.train(rows)
        return kmeans.centroids, kmeans.assign(rows)[1]

    def _keys(self, rows: np.ndarray, centres: np.ndarray) -> np.ndarray:
        key = rows @ centres.T
        if self.cosine:
            return np.negative(key, out=key)
        key *= -2.0
        key += np.einsum("ij,ij->i", centres, centres)[None, :]
        key += np.einsum("ij,ij->i", rows, rows)[:, None]
        return key

    def nearest(self, rows: np.ndarray, k: int,
                lists: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest of `lists` to each row (keys and list numbers, nearest first,
        ties by list number), or with `lists` None the nearest list (k = 1) among those
        of the row's nearest cell."""
        if lists is None:
            cell = np.argmin(self._keys(rows, self.cells), axis=1)
            key, found = np.empty((rows.shape[0], 1), np.float32), np.empty((rows.shape[0], 1),
                                                                             np.int64)
            by_cell = np.argsort(cell, kind="stable")
            bounds = np.searchsorted(cell[by_cell], np.arange(self.cells.shape[0] + 1))
            for g in range(self.cells.shape[0]):
                mine = by_cell[bounds[g]:bounds[g + 1]]
                if mine.size:
                    keys = self._keys(rows[mine], self.centroids[self.cell_lists[g]])
                    best = np.argmin(keys, axis=1)
                    key[mine, 0] = keys[np.arange(mine.size), best]
                    found[mine, 0] = self.cell_lists[g][best]
            return key, found
        key = self._keys(rows, self.centroids[lists])
        k = min(k, lists.size)
        top = np.empty((rows.shape[0], k), np.int64)
        top_key = np.empty((rows.shape[0], k), np.float32)
        _smallest_k(key, k, top, top_key)
        return top_key, lists[top]


class WaitingCopies:
    """Which distinct vectors still have an unlabeled copy (`waiting`), and each one's
    lowest unlabeled copy (`lowest`), kept from the points labeled since the last look
    rather than from a scan of every point at every bridge: a cursor per vector moves over
    its copies in ascending order, passing each copy once over a whole labeling.

    `vector` numbers the points' rows (`distinct_rows`), `n_vectors` of them.
    """

    def __init__(self, vector: np.ndarray, n_vectors: int):
        counts = np.bincount(vector, minlength=n_vectors)
        index = np.int32 if vector.size < 2**31 else np.int64
        self.copies = np.argsort(vector, kind="stable").astype(index, copy=False)
        self.end = np.cumsum(counts).astype(index, copy=False)
        self.cursor = self.end - counts.astype(index, copy=False)
        self.waiting = counts > 0

    def update(self, vectors: np.ndarray, labeled: np.ndarray) -> np.ndarray:
        """Take in the points of `vectors` labeled since the last call (`labeled`: every
        point labeled now); returns the vectors whose last copy got labeled here."""
        done = np.empty(vectors.size, np.int64)
        n_done = _skip_labeled_copies(vectors, labeled, self.copies, self.end, self.cursor,
                                      self.waiting, done)
        return done[:n_done]

    def lowest(self, vectors: np.ndarray) -> np.ndarray:
        """The lowest unlabeled copy of each of `vectors` (all waiting)."""
        return self.copies[self.cursor[vectors]].astype(np.int64)


@numba.njit(cache=True)
def _skip_labeled_copies(vectors, labeled, copies, end, cursor, waiting, done):
    n_done = 0
    for v in vectors:
        c = cursor[v]
        while c < end[v] and labeled[copies[c]]:
            c += 1
        cursor[v] = c
        if waiting[v] and c == end[v]:
            waiting[v] = False
            done[n_done] = v
            n_done += 1
    return n_done


class ApproximateBridge:
    """The unlabeled point nearest to a labeled point, searched in an inverted file.

    The same question as `hdl._Bridge`, answered without comparing every pair: every
    distinct vector (`distinct_rows`) is put in the nearest of about ``LISTS_PER_SQRT ·
    sqrt(vectors)`` k-means lists (faiss, trained on a sample, in two levels: `_Lists`),
    and every vector waiting for a label searches its `PROBES` nearest lists. A list's
    *window* is the waiting vectors nearest its centre among those that search it, at least
    `window` of them and more while its members x window stays below `PAIRS_PER_WINDOW`;
    each list compares its labeled members, exactly in float64
    (`graph.nearest_exactly`), with its window: a member once with the window it meets
    when labeled, a vector once with the members present when it enters the window (as
    nearer ones get labeled). Each waiting vector keeps its nearest labeled vector so
    found, so a bridge costs the comparisons since the previous one.

    The pair returned has the nearness computed exactly, and is the nearest among the
    pairs compared; a nearer pair outside those (a labeled point outside the unlabeled
    one's probed lists, or an unlabeled point outside the windows) can be missed. Ties go,
    as in the exact rule, to the lowest unlabeled index, then to the lowest labeled one,
    among the pairs compared. With one list and no window every pair is compared and the
    answer is the exact rule's.

    Parameters
    ----------
    rows : ndarray of shape (n, d), or rows.UnitRows
        Every point, as the metric prepared it; read, never copied whole.
    seed_mask : ndarray of bool, shape (n,)
        The points labeled before the first round.
    metric : {"cosine", "euclidean"}
    n_lists : int, optional
        Lists of the inverted file (about); default ``LISTS_PER_SQRT · sqrt(vectors)``.
    probes : int, default PROBES
        Lists each vector is searched in.
    window : int or None, default WINDOW
        Fewest waiting vectors each list compares its members with (more on small
        inputs, see above); None for all of them.
    seed : int, default 0
        k-means' seed and the sample's.

    Attributes
    ----------
    n_compared : int
        Unlabeled x labeled vector pairs compared exactly so far.

    Notes
    -----
    The search runs on one thread (BLAS and faiss): its products are small (a list's
    members against its window), and with another process busy on one of two cores, two
    BLAS threads made a bridge at 100k 3x slower than one (2.5 s against 0.72 s), each
    thread waiting for the other at every product. One product is large enough for
    threads to pay: the waiting vectors against every list, when the lists are built
    (100k x 400 lists x 512-D: 0.44-0.46 s on two threads against 0.72-1.07 s on one on
    an idle machine, 0.79-0.80 s against 0.73-0.98 s with another process busy on one
    of the two cores); it runs on all of BLAS's threads.
    """

    BLOCK = 4096        # unlabeled vectors, and labeled ones, compared at once
    ASSIGN_BLOCK = 32768

    def __init__(self, rows: np.ndarray, seed_mask: np.ndarray, metric: str = "cosine", *,
                 n_lists: int | None = None, probes: int = PROBES,
                 window: int | None = WINDOW, seed: int = 0):
        from .graph import get_metric
        from .rows import UnitRows
        self.metric = get_metric(metric)
        self.X = rows if isinstance(rows, UnitRows) else np.ascontiguousarray(rows)
        self.pending = np.flatnonzero(seed_mask)
        self.synced_steps = 0
        self.n_lists, self.probes, self.seed = n_lists, int(probes), int(seed)
        self.window = np.iinfo(np.int64).max if window is None else max(1, int(window))
        self.n_compared = 0
        self.primary = None     # built at the first bridge

    def _float32(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.X[self.first[vectors]], dtype=np.float32)

    def _blocks(self, vectors: np.ndarray, unscaled: bool = False):
        """(start, float32 rows, norms) of `vectors`, block by block; slices where it can.
        Rows of `rows.UnitRows` come scaled into one reused buffer (valid until the next
        block), or with `unscaled` as stored, with their norms to divide cosine keys by
        (norms None when the rows are scaled)."""
        unit = hasattr(self.X, "read")
        buffer = np.empty((self.ASSIGN_BLOCK, self.X.shape[1]), np.float32) if unit else None
        for start in range(0, vectors.size, self.ASSIGN_BLOCK):
            part = vectors[start:start + self.ASSIGN_BLOCK]
            rows = self.first[part]
            if rows[-1] - rows[0] == rows.size - 1 and self.X.dtype == np.float32:
                consecutive = slice(rows[0], rows[-1] + 1)
                if not unit:
                    yield start, self.X[consecutive], None                  # a view
                elif unscaled:
                    yield (start, self.X.read(consecutive, out=buffer, scaled=False),
                           self.X.norms[consecutive])
                else:
                    yield start, self.X.read(consecutive, out=buffer), None
            else:
                yield start, self._float32(part), None

    def _start(self, waiting: np.ndarray) -> None:
        """Lists, every vector's list, and the waiting vectors' probes."""
        n_vectors = self.first.size
        n_lists = self.n_lists if self.n_lists is not None else round(
            LISTS_PER_SQRT * math.sqrt(n_vectors))
        n_lists = int(max(1, min(n_lists, n_vectors)))
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(n_vectors, min(n_vectors, SAMPLE_PER_LIST * n_lists),
                                    replace=False))
        self.lists = _Lists(self._float32(sample), n_lists, self.metric.exact_pair == 0,
                            self.seed)
        searching = np.flatnonzero(waiting)
        probes = min(self.probes, self.lists.n_lists)
        every_list = np.arange(self.lists.n_lists)
        self.primary = np.empty(n_vectors, np.int32)
        self.probed = np.full((n_vectors, probes), -1, np.int32)
        key = np.empty((n_vectors, probes), np.float32)
        # a row's nearest lists do not depend on its length: cosine rows are read as
        # stored and only the keys that order windows are scaled
        for start, rows, norms in self._blocks(np.arange(n_vectors), unscaled=True):
            stop = start + rows.shape[0]
            self.primary[start:stop] = self.lists.nearest(rows, 1)[1][:, 0]
            mine = np.flatnonzero(waiting[start:stop])
            if mine.size:
                with _all_blas_threads():   # one large product: threads pay (see Notes)
                    got_key, got = self.lists.nearest(rows[mine], probes, lists=every_list)
                if norms is not None:
                    got_key /= norms[mine, None]
                key[start + mine], self.probed[start + mine] = got_key, got
        self.primary[searching] = self.probed[searching, 0]
        key = key[searching]
        # on large inputs a waiting vector searches its nearest FILLED_PROBES lists that
        # already hold labeled vectors, and every probed list that holds none yet
        filled = np.zeros(self.lists.n_lists, np.bool_)
        filled[self.primary[~waiting]] = True
        is_filled = filled[np.maximum(self.probed[searching], 0)]
        dropped = is_filled & (np.cumsum(is_filled, axis=1) > FILLED_PROBES) \
            & (self.lists.n_lists >= TWO_LEVEL_LISTS)
        self.probed[searching[np.nonzero(dropped)[0]], np.nonzero(dropped)[1]] = -1
        # who searches each list, nearest its centre first (ties by vector)
        lists, vectors = self.probed[searching].ravel(), np.repeat(searching, probes)
        keep = lists >= 0
        by_list = np.lexsort((vectors[keep], key.ravel()[keep], lists[keep]))
        index_dtype = np.int32 if n_vectors < 2**31 else np.int64
        self.searchers = vectors[keep][by_list].astype(index_dtype)
        self.searchers_at = np.searchsorted(lists[keep][by_list],
                                            np.arange(self.lists.n_lists + 1))
        self.window_end = np.zeros(self.lists.n_lists, np.int64)
        self.members = [np.empty(0, np.int64) for _ in range(self.lists.n_lists)]
        self.in_list = np.zeros(n_vectors, np.bool_)
        self.lowest_labeled = np.full(n_vectors, np.iinfo(np.int64).max, np.int64)
        self.best = np.full(n_vectors, np.inf)
        self.best_src = np.full(n_vectors, np.iinfo(np.int64).max, np.int64)

    def next(self, labeled: np.ndarray, order: np.ndarray) -> tuple[int, int, float]:
        """The bridge: (unlabeled point, labeled point whose label it copies, nearness),
        nearness ``-cos`` or the squared Euclidean distance as `hdl._Bridge` gives it.

        Parameters
        ----------
        labeled : ndarray of bool, shape (n,)
            Which points are labeled now.
        order : ndarray of int
            Every point labeled since the start, in the order it was labeled (seeds
            excluded); only the part past the previous call is read.
        """
        with _one_blas_thread(), _one_faiss_thread():
            return self._next(labeled, order)

    def _next(self, labeled: np.ndarray, order: np.ndarray) -> tuple[int, int, float]:
        starting = self.primary is None
        if starting:
            self.vector, self.first = distinct_rows(self.X)
            self.copies = WaitingCopies(self.vector, self.first.size)
        new = np.concatenate([self.pending, order[self.synced_steps:]])
        self.pending, self.synced_steps = new[:0], len(order)
        new_vectors = self.vector[new]
        done = self.copies.update(new_vectors, labeled)     # no copy waits any more
        waiting = self.copies.waiting                       # vectors with an unlabeled copy
        if starting:
            self._start(waiting)
            done = done[:0]             # nothing was in a window yet
        np.minimum.at(self.lowest_labeled, new_vectors, new)
        fresh = new_vectors[~self.in_list[new_vectors]]
        if self.first.size < self.vector.size:      # copies: a vector may come twice
            fresh = np.unique(fresh)
        self.in_list[fresh] = True
        changed = np.unique(np.concatenate([self.probed[done].ravel(), self.primary[fresh]]))
        self._compare_fresh(fresh, waiting)
        self._fill_windows(changed[changed >= 0], waiting)
        near = np.where(waiting, self.best, np.inf)
        if not np.isfinite(near.min()):
            self._nearest_list_with_members(np.flatnonzero(waiting))
            near = np.where(waiting, self.best, np.inf)
        tau = near.min()
        point = int(self.copies.lowest(np.flatnonzero(near == tau)).min())   # lowest unlabeled
        return point, *self._source(self.vector[point])

    def _source(self, vector: int) -> tuple[int, float]:
        """The answer's labeled point and nearness, re-checked against the members of
        every list the answer's vector searched (and its best's list): a labeled vector
        compared with it earlier may since have had a lower copy labeled."""
        from .graph import nearest_exactly
        lists = np.union1d(self.probed[vector],
                           self.primary[self.vector[self.best_src[vector]]])
        members = np.concatenate([self.members[c] for c in lists if c >= 0])
        near, src = nearest_exactly(self.metric, self.X[self.first[[vector]]],
                                    self.X[self.first[members]], self.lowest_labeled[members])
        return int(src[0]), float(near[0])

    def _window(self, c: int) -> np.ndarray:
        start = self.searchers_at[c]
        return self.searchers[start:start + self.window_end[c]]

    def _compare_fresh(self, fresh: np.ndarray, waiting: np.ndarray) -> None:
        """Each newly labeled vector against the waiting vectors in its list's window."""
        if fresh.size == 0:
            return
        lists = self.primary[fresh]
        by_list = np.argsort(lists, kind="stable")
        fresh, lists = fresh[by_list], lists[by_list]
        bounds = np.flatnonzero(np.diff(lists)) + 1
        for part in np.split(fresh, bounds):
            c = int(self.primary[part[0]])
            self.members[c] = np.concatenate([self.members[c], part])
            window = self._window(c)
            window = window[waiting[window]].astype(np.int64)
            if window.size:
                self._scan(window, part)

    def _fill_windows(self, lists: np.ndarray, waiting: np.ndarray) -> None:
        """Refill the windows of `lists` to `window` waiting vectors; each vector entering
        a window is compared with the list's members."""
        for c in lists:
            if self.members[c].size == 0:
                continue
            start, stop = self.searchers_at[c], self.searchers_at[c + 1]
            end = self.window_end[c]
            size = max(self.window, PAIRS_PER_WINDOW // self.members[c].size)
            room = size - int(np.count_nonzero(waiting[self._window(c)]))
            if room <= 0 or start + end >= stop:
                continue
            rest = self.searchers[start + end:stop]
            entering = np.flatnonzero(waiting[rest])[:room]
            self.window_end[c] = (end + int(entering[-1]) + 1 if entering.size == room
                                  else stop - start)
            if entering.size:
                self._scan(rest[entering].astype(np.int64), self.members[c])

    def _nearest_list_with_members(self, vectors: np.ndarray) -> None:
        """Where no list searched by a waiting vector holds a labeled vector: each list
        with members against the `window` waiting vectors nearest it among those that
        have it as their nearest list with members."""
        filled = np.flatnonzero([m.size > 0 for m in self.members])
        key, nearest = np.empty(vectors.size, np.float32), np.empty(vectors.size, np.int64)
        for start, rows, _ in self._blocks(vectors):
            got_key, got = self.lists.nearest(rows, 1, lists=filled)
            key[start:start + rows.shape[0]], nearest[start:start + rows.shape[0]] = \
                got_key[:, 0], got[:, 0]
        for c in np.unique(nearest):
            mine = np.flatnonzero(nearest == c)
            mine = mine[np.lexsort((vectors[mine], key[mine]))][:self.window]
            self._scan(vectors[mine], self.members[c])

    def _scan(self, vectors: np.ndarray, members: np.ndarray) -> None:
        """Compare the waiting `vectors` with the labeled `members` (vectors) exactly;
        ties go to the lowest labeled copy."""
        from .graph import nearest_exactly
        for start in range(0, vectors.size, self.BLOCK):
            block = vectors[start:start + self.BLOCK]
            rows = self.X[self.first[block]]
            for m_start in range(0, members.size, self.BLOCK):
                part = members[m_start:m_start + self.BLOCK]
                near, src = nearest_exactly(self.metric, rows, self.X[self.first[part]],
                                            self.lowest_labeled[part])
                self.n_compared += block.size * part.size
                best, best_src = self.best[block], self.best_src[block]
                better = (near < best) | ((near == best) & (src < best_src))
                self.best[block[better]] = near[better]
                self.best_src[block[better]] = src[better]

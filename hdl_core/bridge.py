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

    Returns (vector, first): ``vector[i]`` is row i's number, ``first[v]`` the first row
    with number v. Rows are told apart by a hash of their bytes, and rows sharing a hash
    are compared in full, so two rows share a number only when they are identical.
    """
    n, d = X.shape
    words = np.ascontiguousarray(X).view(np.uint32 if X.dtype.itemsize == 4 else np.uint64)
    multipliers = np.random.default_rng(2024).integers(1, 2**63, size=words.shape[1],
                                                       dtype=np.uint64) | np.uint64(1)
    digest = np.empty(n, np.uint64)
    for start in range(0, n, 8192):           # wraps modulo 2^64: a hash, not a sum
        digest[start:start + 8192] = (words[start:start + 8192].astype(np.uint64)
                                      * multipliers).sum(axis=1, dtype=np.uint64)
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
            differs[start:start + 8192] = (words[rows] != words[first[vector[rows]]]).any(axis=1)
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


_CONTROLLER = None


def _one_blas_thread():
    """A context in which BLAS runs on one thread (threadpoolctl, a scikit-learn dependency)."""
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


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
# 512-D clusters: 0.4 · sqrt(n) lists and 8 probes found the exact best pair in 0.6 s, where
# 4 probes missed more per-vector nearest pairs and 16 doubled the comparisons).
LISTS_PER_SQRT = 0.4
PROBES = 8
# k-means: a sample of this many vectors per list, this many Lloyd iterations.
SAMPLE_PER_LIST = 32
LIST_ITERATIONS = 8


class ApproximateBridge:
    """The unlabeled point nearest to a labeled point, searched in an inverted file.

    The same question as `hdl._Bridge`, answered without comparing every pair: every
    distinct vector (`distinct_rows`) is put in the k-means list nearest to it (faiss,
    ``LISTS_PER_SQRT · sqrt(vectors)`` lists trained on a sample, spherical for cosine),
    and is searched in its `PROBES` nearest lists. A labeled vector is compared, exactly
    in float64 (`graph.nearest_exactly`), with every unlabeled vector that searches its
    list, once: when it is labeled (between two bridges, or as a seed). Each unlabeled
    vector keeps its nearest labeled vector so found, so a bridge costs the comparisons
    with the points labeled since the previous one, not a new search.

    The pair returned has the nearness computed exactly, and is the nearest among the
    pairs compared; a nearer pair whose labeled point lies outside the unlabeled point's
    probed lists is missed. Ties go, as in the exact rule, to the lowest unlabeled index,
    then to the lowest labeled one, among the pairs compared.

    Parameters
    ----------
    rows : ndarray of shape (n, d)
        Every point, as the metric prepared it; read, never copied whole.
    seed_mask : ndarray of bool, shape (n,)
        The points labeled before the first round.
    metric : {"cosine", "euclidean"}
    n_lists : int, optional
        Lists of the inverted file; default ``LISTS_PER_SQRT · sqrt(vectors)``.
    probes : int, default PROBES
        Lists each vector is searched in.
    seed : int, default 0
        k-means' seed and the sample's.

    Attributes
    ----------
    n_compared : int
        Unlabeled x labeled vector pairs compared exactly so far.

    Notes
    -----
    The search runs on one thread (BLAS and faiss): its products are small (a list's
    members against the vectors searching it), and with another process busy on one of
    two cores, two BLAS threads made a bridge at 100k 3x slower than one (2.5 s against
    0.72 s), each thread waiting for the other at every product.
    """

    BLOCK = 4096        # unlabeled vectors, and labeled ones, compared at once

    def __init__(self, rows: np.ndarray, seed_mask: np.ndarray, metric: str = "cosine", *,
                 n_lists: int | None = None, probes: int = PROBES, seed: int = 0):
        from .graph import get_metric
        self.metric = get_metric(metric)
        self.X = np.ascontiguousarray(rows)
        self.pending = np.flatnonzero(seed_mask)
        self.synced_steps = 0
        self.n_lists, self.probes, self.seed = n_lists, int(probes), int(seed)
        self.n_compared = 0
        self.primary = None     # built at the first bridge

    def _float32(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.X[self.first[vectors]], dtype=np.float32)

    def _start(self) -> None:
        import faiss

        self.vector, self.first = distinct_rows(self.X)
        n_vectors, d = self.first.size, self.X.shape[1]
        cosine = self.metric.exact_pair == 0
        n_lists = self.n_lists if self.n_lists is not None else round(
            LISTS_PER_SQRT * math.sqrt(n_vectors))
        n_lists = int(max(1, min(n_lists, n_vectors)))
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(n_vectors, min(n_vectors, SAMPLE_PER_LIST * n_lists),
                                    replace=False))
        if n_lists > 1:
            kmeans = faiss.Kmeans(d, n_lists, niter=LIST_ITERATIONS, seed=self.seed,
                                  spherical=cosine, min_points_per_centroid=1,
                                  max_points_per_centroid=SAMPLE_PER_LIST)
            kmeans.train(self._float32(sample))
            centroids = kmeans.centroids
        else:
            centroids = self._float32(sample).mean(axis=0, keepdims=True)
        self.quantizer = faiss.IndexFlatIP(d) if cosine else faiss.IndexFlatL2(d)
        self.quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
        probes = min(self.probes, n_lists)
        nearest = np.empty((n_vectors, probes), np.int64)
        for start in range(0, n_vectors, 65536):
            stop = min(start + 65536, n_vectors)
            nearest[start:stop] = self.quantizer.search(
                self._float32(np.arange(start, stop)), probes)[1]
        self.probed = nearest.astype(np.int32)
        self.primary = self.probed[:, 0]
        # who searches each list: vectors by list, ascending within a list
        by_list = np.argsort(nearest.ravel(), kind="stable")
        index_dtype = np.int32 if n_vectors < 2**31 else np.int64
        self.searchers = (by_list // probes).astype(index_dtype)
        self.searchers_at = np.searchsorted(nearest.ravel()[by_list], np.arange(n_lists + 1))
        del nearest, by_list
        self.members = [np.empty(0, np.int64) for _ in range(n_lists)]   # labeled vectors
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
        if self.primary is None:
            self._start()
        new = np.concatenate([self.pending, order[self.synced_steps:]])
        self.pending, self.synced_steps = new[:0], len(order)
        new_vectors = self.vector[new]
        np.minimum.at(self.lowest_labeled, new_vectors, new)
        fresh = np.unique(new_vectors[~self.in_list[new_vectors]])
        self.in_list[fresh] = True
        unlabeled = np.flatnonzero(~labeled)
        waiting = np.zeros(self.first.size, np.bool_)
        waiting[self.vector[unlabeled]] = True
        self._compare_fresh(fresh, waiting)
        near = np.where(waiting, self.best, np.inf)
        if not np.isfinite(near.min()):
            self._nearest_list_with_members(np.flatnonzero(waiting))
            near = np.where(waiting, self.best, np.inf)
        tau = near.min()
        tied = np.zeros(self.first.size, np.bool_)
        tied[near == tau] = True
        point = int(unlabeled[np.argmax(tied[self.vector[unlabeled]])])   # lowest unlabeled
        return point, *self._source(self.vector[point])

    def _source(self, vector: int) -> tuple[int, float]:
        """The answer's labeled point and nearness, re-checked against the members of
        every list the answer's vector searched (and its best's list): a labeled vector
        compared with it earlier may since have had a lower copy labeled."""
        from .graph import nearest_exactly
        lists = np.union1d(self.probed[vector],
                           self.primary[self.vector[self.best_src[vector]]])
        members = np.concatenate([self.members[c] for c in lists])
        near, src = nearest_exactly(self.metric, self.X[self.first[[vector]]],
                                    self.X[self.first[members]], self.lowest_labeled[members])
        return int(src[0]), float(near[0])

    def _compare_fresh(self, fresh: np.ndarray, waiting: np.ndarray) -> None:
        """Each newly labeled vector against the waiting vectors that search its list."""
        if fresh.size == 0:
            return
        lists = self.primary[fresh]
        by_list = np.argsort(lists, kind="stable")
        fresh, lists = fresh[by_list], lists[by_list]
        bounds = np.flatnonzero(np.diff(lists)) + 1
        for part in np.split(fresh, bounds):
            c = int(self.primary[part[0]])
            self.members[c] = np.concatenate([self.members[c], part])
            searchers = self.searchers[self.searchers_at[c]:self.searchers_at[c + 1]]
            searchers = searchers[waiting[searchers]].astype(np.int64)
            if searchers.size:
                self._scan(searchers, part)

    def _nearest_list_with_members(self, vectors: np.ndarray) -> None:
        """Where no waiting vector's probed lists hold a labeled vector: each waiting
        vector against the members of the nearest list that has some."""
        import faiss
        filled = np.flatnonzero([m.size > 0 for m in self.members])
        index = faiss.IndexFlatIP(self.X.shape[1]) if self.metric.exact_pair == 0 \
            else faiss.IndexFlatL2(self.X.shape[1])
        index.add(self.quantizer.reconstruct_n(0, self.quantizer.ntotal)[filled])
        for start in range(0, vectors.size, self.BLOCK):
            block = vectors[start:start + self.BLOCK]
            nearest = filled[index.search(self._float32(block), 1)[1][:, 0]]
            for c in np.unique(nearest):
                self._scan(block[nearest == c], self.members[c])

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

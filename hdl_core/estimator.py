"""`HDLClassifier`: HDL as a scikit-learn semi-supervised estimator."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .auto_k import KIntent, resolve_k
from .config import DEFAULT_VARIANT
from .graph import build_knn_graph, exact_knn
from .rows import normalize_rows
from .hdl import vote
from .variants import check_variant, label_function


def _unlabeled_mask(y: np.ndarray) -> np.ndarray:
    """-1 marks unlabeled, as an int, a float or the string "-1" inside an object array."""
    if y.dtype.kind in "iuf":
        return y == -1
    return np.array([(not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))
                      and v == -1) or (isinstance(v, str) and v == "-1") for v in y], dtype=bool)


def _refuse_missing(y) -> None:
    """Refuse None / NaN in y with what to use instead: pandas users mark the unknown so,
    and scikit-learn's own message ("Input contains NaN") does not say that -1 is meant."""
    if y is None:               # scikit-learn's own check says y is required
        return
    values = np.asarray(y)
    if values.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(values.ravel()))
    elif values.dtype.kind == "O":
        missing = np.flatnonzero([v is None or (isinstance(v, (float, np.floating)) and v != v)
                                  for v in values.ravel()])
    else:                       # integers, strings, booleans hold no missing value
        return
    if missing.size:
        shown = ", ".join(str(int(i)) for i in missing[:10])
        more = f" and {missing.size - 10} more" if missing.size > 10 else ""
        raise ValueError(f"y is missing (None or NaN) at rows {shown}{more}; mark unlabeled "
                         "points with -1, as scikit-learn's semi-supervised estimators do")


class HDLClassifier(ClassifierMixin, BaseEstimator):
    """Hierarchical Dynamic Labeling as a transductive classifier.

    Parameters
    ----------
    k : "auto" or int, default="auto"
        Neighbours per point. "auto" picks k as the app and the CLI do
        (`hdl_core.auto_k.resolve_k`): with variant="reach" or "balanced" k = 10
        (`hdl_core.config.BALANCED_K`, at most n-1 and half the average class size, measured
        across bench/accuracy_bench.py); with variant="paper" `choose_k` over every labeled
        point, falling back to 3 when the seeds are too few to measure μ_k.
    variant : {"reach", "balanced", "paper"}, default="reach"
        "reach" is reach-ordered HDL (`hdl_core.reach.reach_label`): HDL's vote, in the
        order of how one-sided the seeds' reach over the graph is, so no class floods the
        others (a split vote gives way where the reach is decisive). "balanced" is class-balanced HDL (`hdl_core.balanced.balanced_label`): every
        class takes its own first level each round. "paper" is Algorithm 1 as published
        (`hdl_core.hdl.hdl_label`): one first level over all points, the unlabeled points
        with the most labeled neighbours.
    k_max : int, default=20
        Upper limit of the k search when k="auto" and variant="paper".
    noise_rate : float, default=0.15
        e in P(k) when k="auto" and variant="paper".
    graph_method : {"auto", "exact", "approx"}, default="auto"
        How the kNN graph is built.
    random_state : int or None, default=None
        Seed for the approximate graph.

    Attributes
    ----------
    classes_ : ndarray
        Class values seen among the labeled points (strings work).
    transduction_ : ndarray (n_samples,)
        Label given to every training point (seeds keep theirs).
    order_ : ndarray
        Training indices in the order HDL labeled them (seeds excluded).
    rounds_ : ndarray (n_samples,)
        Round in which each point was labeled (-1 for seeds).
    confidence_ : ndarray (n_samples,)
        Vote share of each point's label (1.0 for seeds).
    fallback_ : ndarray (n_samples,), bool
        Points labeled by a bridge.
    result_ : LabelingResult
        The whole labeling: labels, step, round, confidence, n_voters, fallback, source.
    k_ : int
        The k used.
    k_choice_ : KChoice or None
        The k search when k="auto" and variant="paper"; None otherwise.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from hdl_core import HDLClassifier
    >>> X = np.array([[1, 0], [0.9, 0.2], [0.8, 0.3], [0, 1], [0.2, 0.9], [0.3, 0.8]])
    >>> y = np.array(["a", -1, -1, "b", -1, -1], dtype=object)
    >>> HDLClassifier(k=1).fit(X, y).transduction_.tolist()
    ['a', 'a', 'a', 'b', 'b', 'b']
    >>> HDLClassifier(k=1, variant="paper").fit(X, y).transduction_.tolist()
    ['a', 'a', 'a', 'b', 'b', 'b']
    """

    def __init__(self, k="auto", *, variant=DEFAULT_VARIANT, k_max=20, noise_rate=0.15,
                 graph_method="auto", random_state=None):
        self.k = k
        self.variant = variant
        self.k_max = k_max
        self.noise_rate = noise_rate
        self.graph_method = graph_method
        self.random_state = random_state

    def fit(self, X, y):
        """Label every point of X whose y is -1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class values; -1 marks unlabeled points.

        Returns
        -------
        self
        """
        _refuse_missing(y)
        given = getattr(getattr(y, "dtype", None), "kind", None)
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        y = np.asarray(y)
        if given in ("i", "u") and y.dtype.kind == "f":
            # pandas' nullable Int64 reaches here as float64 (scikit-learn widens it in
            # case of a missing value; _refuse_missing has ruled that out): keep the
            # classes the integers they were, not 0.0, 1.0, ...
            y = y.astype(np.int64)
        unlabeled = _unlabeled_mask(y)
        if unlabeled.all():
            raise ValueError("y has no labeled point (all -1); label at least one point per class")
        check_classification_targets(y[~unlabeled])
        classes, codes = np.unique(y[~unlabeled], return_inverse=True)
        self.classes_ = classes
        y_int = np.full(y.shape[0], -1, np.int64)
        y_int[~unlabeled] = codes.ravel()
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"HDLClassifier needs at least 2 samples, got n_samples={n}")

        check_variant(self.variant)
        if isinstance(self.k, str) and self.k != "auto":
            raise ValueError(f"k must be 'auto' or a positive integer, got {self.k!r}")
        intent = KIntent.parse(self.k, noise_rate=self.noise_rate, k_max=self.k_max)
        k, self.k_choice_ = resolve_k(intent, X, y_int, variant=self.variant)
        self.k_ = k
        graph = None
        if unlabeled.any():
            graph = build_knn_graph(X, k, method=self.graph_method, random_state=self.random_state)
        result = label_function(self.variant)(X, y_int, k=k, graph=graph)
        self.result_ = result
        self.transduction_ = classes[result.labels]
        self.order_ = result.order
        self.rounds_ = result.round
        self.confidence_ = result.confidence
        self.fallback_ = result.fallback
        self._X_fit = normalize_rows(X)
        self._codes_fit = result.labels
        return self

    def _neighbour_votes(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Xn = normalize_rows(X)
        k = min(self.k_, self._X_fit.shape[0])
        nearest, _ = exact_knn(Xn, self._X_fit, k)
        return self._codes_fit[nearest], k

    def predict(self, X):
        """Class of each row of X by a vote of its k nearest transduced training points.

        Ties go to the tied class whose point is nearest, as in HDL's own votes.
        """
        winners = self.predict_proba(X).argmax(axis=1)
        return self.classes_[winners]

    def predict_proba(self, X):
        """Share of the k nearest transduced training points in each class.

        A tied vote is broken toward the nearest tied class by a 1e-9 nudge, so that
        `predict` is the argmax of these rows.
        """
        neighbour_codes, k = self._neighbour_votes(X)
        m = neighbour_codes.shape[0]
        proba = np.zeros((m, len(self.classes_)))
        rows = np.repeat(np.arange(m), neighbour_codes.shape[1])
        np.add.at(proba, (rows, neighbour_codes.ravel()), 1.0 / k)
        winners, _ = vote(neighbour_codes, len(self.classes_))
        proba[np.arange(m), winners] += 1e-9
        return proba / proba.sum(axis=1, keepdims=True)

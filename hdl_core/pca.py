"""Principal components: one deterministic PCA for the pixels encoder and the PCA map."""
from __future__ import annotations

import numpy as np


def principal_components(X, n_components: int) -> np.ndarray:
    """Centred rows of `X` projected on their top `n_components` principal axes (float64).

    Exact (eigendecomposition of the d×d covariance, cheap for tall X) and deterministic:
    each axis's sign is fixed so that its largest-magnitude loading is positive, as
    scikit-learn's ``svd_flip`` does. Fewer columns come back when X has fewer rows or
    columns than asked; the caller pads when it needs exactly `n_components`.

    >>> principal_components(np.array([[0., 0.], [2., 0.], [4., 0.]]), 1).ravel().tolist()
    [-2.0, 0.0, 2.0]
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    k = min(int(n_components), n, d)
    centred = X - X.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)
    axes = eigenvectors[:, ::-1][:, :k]                  # largest variance first
    biggest = np.abs(axes).argmax(axis=0)
    axes = axes * np.sign(axes[biggest, np.arange(k)])
    return centred @ axes

import math

import numpy as np
import pytest
from scipy.integrate import quad
from sklearn.datasets import load_digits

from hdl_core import choose_k
from hdl_core.auto_k import DEFAULT_K, vote_success_bound


def direct_mu(X, y, k):
    """μ_k by brute force: every labeled point is a center (sample_fraction=None)."""
    lab = np.flatnonzero(y >= 0)
    Xn = X[lab] / np.linalg.norm(X[lab], axis=1, keepdims=True)
    holds = 0
    for a in range(lab.size):
        d = 1 - Xn @ Xn[a]
        d[a] = np.inf
        nearest = np.argsort(d, kind="stable")[:k]
        holds += all(y[lab][nearest] == y[lab][a])
    return holds / lab.size


def test_mu_k_matches_direct_computation_with_every_center():
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(3, 6)), 80, axis=0) + 0.8 * rng.normal(size=(240, 6))
    y = np.repeat(np.arange(3), 80)
    y[rng.choice(240, 40, replace=False)] = -1
    choice = choose_k(X, y, k_max=12, sample_fraction=None)
    for k in (1, 3, 7, 11):
        assert choice.mu[k - 1] == pytest.approx(direct_mu(X, y, k))
    np.testing.assert_allclose(choice.p, choice.mu * choice.beta)
    assert choice.k == int(choice.ks[np.argmax(choice.p)])
    assert choice.reliable and list(choice.ks) == list(range(1, 12))


def test_beta_is_the_regularised_incomplete_beta_of_eq_2():
    e = 0.15
    for k in range(1, 10):
        kp = math.ceil((k + 1) / 2) - 1
        integral = quad(lambda t: t ** (k - kp) * (1 - t) ** kp, 0, 1 - e)[0]
        coeff = math.factorial(k + 1) / (math.factorial(k - kp) * math.factorial(kp))
        assert vote_success_bound([k], e)[0] == pytest.approx(coeff * integral)


def test_ties_in_p_choose_the_smallest_k():
    # perfectly separated classes: μ_k = 1 for all k; with e = 0 every I is 1 -> all tie
    X = np.repeat(np.eye(3), 40, axis=0) + 1e-3 * np.random.default_rng(1).normal(size=(120, 3))
    y = np.repeat(np.arange(3), 40)
    choice = choose_k(X, y, k_max=10, noise_rate=0.0, sample_fraction=None)
    assert (choice.p == 1).all() and choice.k == 1


def test_too_few_seeds_per_class_is_unreliable_and_falls_back_to_3():
    digits = load_digits()
    y = np.full(digits.target.size, -1)
    for c in range(10):
        y[np.flatnonzero(digits.target == c)[:3]] = c
    choice = choose_k(digits.data, y, k_max=20)
    assert not choice.reliable and choice.k == DEFAULT_K
    assert "smallest class has 3 labeled points" in choice.reason


def test_sampling_is_without_replacement_and_reproducible():
    digits = load_digits()
    a = choose_k(digits.data, digits.target, random_state=7)
    b = choose_k(digits.data, digits.target, random_state=7)
    np.testing.assert_array_equal(a.mu, b.mu)
    assert a.n_centers == math.ceil(0.1 * digits.target.size) and a.reliable


def test_digits_mu_decreases_with_k():
    digits = load_digits()
    choice = choose_k(digits.data, digits.target, sample_fraction=None)
    assert (np.diff(choice.mu) <= 0).all()   # a center that holds for k+1 holds for k
    np.testing.assert_allclose(choice.p, choice.mu * choice.beta)
    assert choice.k == choice.ks[np.argmax(choice.p)] == 4   # every digit a center: k* = 4


@pytest.mark.parametrize("kwargs, message", [
    ({"k_max": 1}, "k_max"), ({"noise_rate": 1.0}, "noise_rate"), ({"sample_fraction": 0}, "sample_fraction"),
])
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        choose_k(np.eye(3) + 0.1, np.array([0, 1, -1]), **kwargs)


def test_a_one_dimensional_x_is_named_by_its_own_shape():
    # only the labeled rows are read, but the message is about the X the caller gave
    with pytest.raises(ValueError, match=r"X must be a 2-D array .* got shape \(6,\)"):
        choose_k(np.arange(6.0), np.array([0, 1, -1, 0, 1, -1]))


def direct_mu_euclidean(X, y, k):
    """μ_k by brute force in the plane: every labeled point a center, its k nearest labeled
    points by squared distance, equal distances by ascending index, itself left out."""
    lab = np.flatnonzero(y >= 0)
    holds = 0
    for a in range(lab.size):
        d2 = ((X[lab] - X[lab[a]]) ** 2).sum(axis=1)
        nearest = [j for j in np.lexsort((np.arange(lab.size), d2)) if j != a][:k]
        holds += all(y[lab][nearest] == y[lab][a])
    return holds / lab.size


def test_mu_k_by_euclidean_distance_matches_direct_computation_ties_included():
    # whole coordinates in a small square: many equal distances and duplicates, the origin
    # among them (no direction for cosine); the class is the side of a line, some flipped
    rng = np.random.default_rng(2)
    X = rng.integers(0, 7, size=(240, 2)).astype(float)
    y = (X[:, 0] + 0.5 * X[:, 1] > 4).astype(int)
    y[rng.choice(240, 20, replace=False)] ^= 1
    y[rng.choice(240, 40, replace=False)] = -1
    choice = choose_k(X, y, k_max=12, sample_fraction=None, metric="euclidean")
    for k in range(1, 12):
        assert choice.mu[k - 1] == pytest.approx(direct_mu_euclidean(X, y, k))
    np.testing.assert_allclose(choice.p, choice.mu * choice.beta)
    assert choice.k == int(choice.ks[np.argmax(choice.p)])


def test_choose_k_refuses_an_unknown_metric():
    with pytest.raises(ValueError, match="metric must be one of 'cosine', 'euclidean'"):
        choose_k(np.eye(3) + 0.1, np.array([0, 1, -1]), metric="l2")


def test_auto_k_of_the_balanced_variant_is_ten_capped_by_class_sizes_and_needs_no_search():
    from hdl_core.auto_k import KIntent, resolve_k

    X = np.random.default_rng(0).normal(size=(40, 5))
    y = np.full(40, -1)
    y[:4] = [0, 1, 2, 3]
    # 40 points, 4 classes: 10 a class, so k at most 5; 6 points, 4 classes: k = 1
    assert resolve_k(KIntent.parse("auto"), X, y, variant="balanced") == (5, None)
    assert resolve_k(KIntent.parse("auto"), X[:6], y[:6], variant="balanced") == (1, None)
    assert resolve_k(KIntent.parse("auto"), np.vstack([X] * 5), np.r_[y, [-1] * 160],
                     variant="balanced") == (10, None)
    assert resolve_k(KIntent.parse(4), X, y, variant="balanced") == (4, None)
    k, choice = resolve_k(KIntent.parse("auto"), X, y)          # the paper's: P(k) search
    assert k == 3 and choice is not None and not choice.reliable
    with pytest.raises(ValueError, match="variant must be one of 'reach', 'balanced', 'paper', got 'fast'"):
        resolve_k(KIntent.parse("auto"), X, y, variant="fast")

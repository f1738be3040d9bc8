import numpy as np
import pytest
from sklearn.datasets import load_digits

from hdl_core import LabelingResult, balanced_label, build_knn_graph, hdl_label, reach_label
from hdl_core.flood import FloodReport, flood_report

from .test_balanced import _hard_gaussians


def _result(labels, rounds, k=3):
    """A LabelingResult built by hand: seeds have round -1, the rest in the given rounds."""
    labels = np.asarray(labels)
    rounds = np.asarray(rounds)
    order = np.argsort(np.where(rounds < 0, -1, rounds), kind="stable")
    step = np.full(labels.size, -1)
    labeled = order[rounds[order] >= 0]
    step[labeled] = np.arange(labeled.size)
    n = labels.size
    return LabelingResult(labels, step, rounds, np.ones(n), np.ones(n, int),
                          np.zeros(n, bool), np.full(n, -1), k)


def test_one_class_taking_every_round_is_reported_with_its_chain_and_the_starved_class():
    # two classes, one seed each; class 0 labels all 18 other points, one round after another
    y = np.array([0, 1] + [-1] * 18)
    labels = np.array([0, 1] + [0] * 18)
    rounds = np.array([-1, -1] + list(range(18)))
    report = flood_report(_result(labels, rounds), y, class_names=["cat", "dog"], variant="paper")
    assert report.flooded
    assert report.starved == [1] and report.flooding == []       # 95 % < 3 x 50 %
    assert report.chain_class == 0 and report.chain_rounds == (0, 17)
    assert report.chain_share == pytest.approx(1.0)
    np.testing.assert_allclose(report.unlabeled_share, [1.0, 0.0])
    text = str(report)
    assert "dog received 0.0 % of the unlabeled points but has 50 % of the seeds" in text
    assert "rounds 0-17 labeled only cat" in text
    assert any("default variant" in s for s in report.suggestions)
    assert any("Add seeds in dog" in s for s in report.suggestions)


def test_a_class_far_above_its_seed_share_is_named_with_the_numbers():
    # ten classes, one seed each; class 3 ends with 46 of 100 points
    y = np.full(100, -1)
    y[:10] = np.arange(10)
    given = np.random.default_rng(0).permutation(np.concatenate([np.tile(np.arange(10), 5),
                                                                 np.full(40, 3)]))
    labels = np.concatenate([np.arange(10), given])
    rounds = np.concatenate([np.full(10, -1), np.arange(90) // 9])   # nine points a round
    report = flood_report(_result(labels, rounds, k=10), y)
    assert report.flooded and report.flooding == [3]
    assert report.starved == [] and report.chain_class == -1
    assert report.share[3] == pytest.approx(0.46) and report.seed_share[3] == pytest.approx(0.1)
    assert "class 3 holds 46 % of the points but 10 % of the seeds (4.6x)" in report.reasons[0]
    assert any("smaller k than 10" in s for s in report.suggestions)
    assert any("Check the seeds of class 3" in s for s in report.suggestions)


@pytest.mark.parametrize("n_classes, named", [(4, "class 1, class 2, class 3 received"),
                                               (12, "class 1, class 2, class 3, class 4, "
                                                    "class 5, class 6, class 7, class 8 and 3 "
                                                    "more received")])
def test_many_starved_classes_are_one_reason_not_a_line_each(n_classes, named):
    # one class takes everything: the others are told in one sentence, with the range of
    # their shares, so the warning stays readable beside the round chart
    y = np.full(100 * n_classes, -1)
    y[:n_classes] = np.arange(n_classes)
    y[n_classes] = 1                                   # class 1 has twice the seeds
    labels = np.where(y >= 0, y, 0)
    labels[-1] = 2                                     # class 2 gets one point
    rounds = np.where(y >= 0, -1, 0)
    report = flood_report(_result(labels, rounds), y)
    assert report.starved == list(range(1, n_classes))
    starved = [r for r in report.reasons if "of the unlabeled points" in r]
    assert len(starved) == 1
    low_got = 0.0
    high_got = 100 / (y < 0).sum()
    low_seeds, high_seeds = 100 / (n_classes + 1), 200 / (n_classes + 1)
    assert starved[0].startswith(named)
    assert (f"received {low_got:.1f}-{high_got:.1f} % of the unlabeled points each but have "
            f"{low_seeds:.0f}-{high_seeds:.0f} % of the seeds each") in starved[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_fires_on_the_paper_variant_flooding_a_hard_set_and_not_on_the_default(seed):
    X, y, truth = _hard_gaussians(seed)
    graph = build_knn_graph(X, 10)
    paper = flood_report(hdl_label(X, y, k=10, graph=graph), y, variant="paper")
    default = flood_report(reach_label(X, y, k=10, graph=graph), y, variant="reach")
    balanced = flood_report(balanced_label(X, y, k=10, graph=graph), y, variant="balanced")
    assert paper.flooded and paper.flooding
    biggest = int(np.argmax(paper.share))
    assert biggest in paper.flooding
    assert not default.flooded, default.reasons
    assert not balanced.flooded, balanced.reasons
    assert not any("default variant" in s for s in default.suggestions)


def _digits_seeds(draw, per_class=3):
    """Digits with three seeds per class, drawn as the app's demo draws them (draw 0 is the
    demo's own choice: numpy's default_rng(0), classes 0..9 in turn)."""
    digits = load_digits()
    truth = digits.target
    rng = np.random.default_rng(draw)
    y = np.full(truth.size, -1)
    for c in range(10):
        y[rng.choice(np.flatnonzero(truth == c), per_class, replace=False)] = c
    return digits.data, y


def test_quiet_on_the_digits_demo_with_either_variant():
    X, y = _digits_seeds(0)
    graph = build_knn_graph(X, 10)
    for result, variant in ((hdl_label(X, y, k=3, graph=graph), "paper"),
                            (balanced_label(X, y, k=10, graph=graph), "balanced"),
                            (reach_label(X, y, k=10, graph=graph), "reach")):
        report = flood_report(result, y, variant=variant)
        assert not report.flooded, (variant, report.reasons)
        assert report.reasons == [] and report.suggestions == []
        assert str(report).startswith("No sign of a flood")


@pytest.mark.parametrize("draw", [1, 2, 3])
def test_quiet_on_other_digit_seeds_with_the_default_variant(draw):
    X, y = _digits_seeds(draw)
    report = flood_report(reach_label(X, y, k=10), y, variant="reach")
    assert not report.flooded, report.reasons


def test_names_the_class_the_paper_variant_lets_its_neighbours_eat_on_digits():
    # seeds of draw 2: paper HDL (k=3) gives the 9s' region to other digits
    X, y = _digits_seeds(2)
    truth = load_digits().target
    result = hdl_label(X, y, k=3)
    report = flood_report(result, y, variant="paper")
    assert report.flooded and report.starved == [9]
    assert ((result.labels == 9) & (y < 0)).sum() < 0.2 * (truth == 9).sum()


def test_a_run_without_unlabeled_points_is_no_flood():
    y = np.array([0, 1, 1])
    report = flood_report(_result(y, [-1, -1, -1]), y)
    assert isinstance(report, FloodReport) and not report.flooded


@pytest.mark.parametrize("kwargs, message", [
    (dict(y=np.array([1, 1, -1, -1])), "some seeds carry another label"),
    (dict(y=np.array([0, 1, -1])), "3 labels but X has 4 rows"),
    (dict(share_ratio=-1), r"share_ratio must be a number in \[0, inf\], got -1"),
    (dict(chain_share=2.0), r"chain_share must be a number in \[0, 1\], got 2.0"),
    (dict(variant="fast"), "variant must be 'reach', 'balanced', 'paper' or None, got 'fast'"),
    (dict(class_names=["a"]), "class_names has 1 names but the run has 2 classes"),
])
def test_bad_input_raises_a_value_error_naming_the_problem(kwargs, message):
    result = _result([0, 1, 0, 1], [-1, -1, 0, 0])
    args = dict(y=np.array([0, 1, -1, -1]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        flood_report(result, args.pop("y"), **args)
    with pytest.raises(ValueError, match="result must be a LabelingResult"):
        flood_report(np.zeros(4), np.array([0, 1, -1, -1]))

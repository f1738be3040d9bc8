"""Guided labeling: `influence`, `suggest_next` and `suspicious_seeds` on hand-made graphs
whose right answer is clear by construction (the demo gain is bench/suggest_bench.py)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from hdl_core import KnnGraph, build_knn_graph, hdl_label, review_queue, review_queue_with_reasons
from hdl_core.explain import influence
from hdl_core.suggest import suggest_next, suspicious_seeds

from .test_hdl import labeling_problems


def label(neighbour_lists, y, X=None):
    """HDL over explicit neighbour lists (nearest first); X only matters for bridges."""
    idx = np.array(neighbour_lists)
    if X is None:
        X = np.random.default_rng(0).normal(size=(idx.shape[0], 3))
    return idx, hdl_label(X, np.array(y), k=idx.shape[1],
                          graph=KnnGraph(idx, np.zeros(idx.shape, np.float32)))


def feeder_and_loner():
    """Seeds 0 (class 0) and 1 (class 1). Points 2 and 3 each see both seeds (a 1:1 tie,
    confidence 0.5); 4, 5 and 6 are labeled later from 3 (4 from 3, 5 from 4 and 3, 6 from
    5 and 4), nothing from 2."""
    return label([[2, 3], [2, 3],
                  [1, 0],      # 2: tie -> class 1 (seed 1 is nearer), feeds nothing
                  [0, 1],      # 3: tie -> class 0, feeds 4, 5, 6
                  [3, 5], [4, 3], [5, 4]],
                 [0, 1, -1, -1, -1, -1, -1])


def test_hand_made_graph_is_labeled_as_the_cases_below_assume():
    _, r = feeder_and_loner()
    assert r.labels.tolist() == [0, 1, 1, 0, 0, 0, 0]
    assert r.round.tolist() == [-1, -1, 0, 0, 1, 1, 2]
    np.testing.assert_allclose(r.confidence, [1, 1, 0.5, 0.5, 1, 1, 1])


def test_influence_counts_direct_and_indirect_dependents_sharing_each_vote():
    idx, r = feeder_and_loner()
    # 6 splits between its voters 5 and 4; 5 passes 1 + 0.5 on to 4 and 3 half each;
    # 4 passes all of 1 + 1.25 to 3: so 3 carries 4, 5 and 6 exactly.
    np.testing.assert_allclose(influence(idx, r), [2.5, 2.5, 0, 3, 1.25, 0.5, 0])


def test_influence_of_a_chain_counts_everything_downstream():
    # seed 0 -> a=1 -> b=2 -> c=3, and a -> d=4 (k=1: each point's one neighbour feeds it)
    idx, r = label([[1], [0], [1], [2], [1]], [0, -1, -1, -1, -1])
    np.testing.assert_allclose(influence(idx, r), [4, 3, 1, 0, 0])


def test_a_bridge_source_carries_the_component_it_bridged_to():
    # 0 (seed) <- 1; points 2 and 3 only list each other, so 2 (nearest to the labeled
    # points) is bridged from them and 3 then rests on 2.
    X = np.array([[1.0, 0.0], [1.0, 0.05], [1.0, 0.6], [1.0, 1.5]])
    idx, r = label([[1], [0], [3], [2]], [0, -1, -1, -1], X=X)
    assert r.fallback.tolist() == [False, False, True, False]
    load = influence(idx, r)
    assert load[2] == 1 and load[r.source[2]] >= 2
    top = suggest_next(idx, r, n=1)[0]
    assert top.point == 2 and top.bridged and "no labeled neighbour" in top.why


def test_uncertain_point_that_fed_many_labels_ranks_above_one_that_fed_none():
    idx, r = feeder_and_loner()
    picks = suggest_next(idx, r, n=7)
    assert [s.point for s in picks][:2] == [3, 2]      # same confidence, 3 has dependents
    assert picks[0].dependents == pytest.approx(3) and picks[1].dependents == 0
    assert picks[0].score > picks[1].score > 0
    assert "3 later labels depend on it" in picks[0].why
    assert "no later label depends on it" in picks[1].why
    assert "split vote (1 of 2" in picks[0].why and picks[0].label == 0 and picks[0].round == 0


def test_a_unanimous_label_never_outranks_an_uncertain_one_with_the_same_influence():
    idx, r = feeder_and_loner()
    load = influence(idx, r)
    assert load[2] == load[6] == 0 and r.confidence[2] < 1 == r.confidence[6]
    order = [s.point for s in suggest_next(idx, r, n=10)]
    assert order.index(2) < order.index(6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_every_uncertain_label_comes_before_every_unanimous_one(problem):
    X, y, k, graph = problem
    r = hdl_label(X, y, k=k, graph=graph)
    for spread in (True, False):
        picks = suggest_next(graph.indices, r, n=r.labels.size, spread=spread)
        # every HDL-labeled point exactly once, no seed
        assert sorted(s.point for s in picks) == np.flatnonzero(y < 0).tolist()
        unanimous = [s.confidence == 1 for s in picks]
        assert unanimous == sorted(unanimous)


def test_seeds_and_excluded_points_are_never_suggested():
    idx, r = feeder_and_loner()
    assert {s.point for s in suggest_next(idx, r, n=100)} == {2, 3, 4, 5, 6}
    # points corrected by hand since the run are passed in `exclude`
    assert [s.point for s in suggest_next(idx, r, n=100, exclude=[3, 5])] == [2, 4, 6]
    assert [s.point for s in suggest_next(idx, r, n=2, exclude=np.array([3]))] == [2, 4]


def test_n_limits_the_number_of_suggestions():
    idx, r = feeder_and_loner()
    assert suggest_next(idx, r, n=0) == []
    assert [s.point for s in suggest_next(idx, r, n=1)] == [3]
    assert len(suggest_next(idx, r, n=3)) == 3
    assert len(suggest_next(idx, r, n=50)) == 5          # only five points were labeled by HDL


def chain_of_doubts():
    """Seeds 0 (class 0) and 1 (class 1). 2 and 6 see both seeds (ties); 3 sees 2 and seed 1
    (a tie won by 2, so 3 rests on 2); 4 and 5 rest on 3. So 2 and 3 are one chain of
    uncertain labels and 6 stands alone."""
    return label([[2, 3], [6, 3],
                  [0, 1],      # 2: tie -> 0
                  [2, 1],      # 3: tie -> 0, via 2
                  [3, 5], [4, 3],
                  [1, 0]],     # 6: tie -> 1, feeds nothing
                 [0, 1, -1, -1, -1, -1, -1])


def test_suggestions_spread_over_independent_chains_first():
    idx, r = chain_of_doubts()
    assert r.labels.tolist() == [0, 1, 0, 0, 0, 0, 1]
    assert (r.confidence[[2, 3, 6]] == 0.5).all()
    by_score = [s.point for s in suggest_next(idx, r, n=3, spread=False)]
    assert by_score == [3, 2, 6]
    spread = suggest_next(idx, r, n=3)
    # 2 is what 3 rests on: labeling 3 by hand re-decides that chain, so 6 comes second
    assert [s.point for s in spread] == [3, 6, 2]
    assert [s.tied_to for s in spread] == [0, 0, 1]
    assert "tied to suggestion 1" in spread[2].why


def test_class_names_appear_in_the_reason():
    idx, r = feeder_and_loner()
    top = suggest_next(idx, r, n=1, class_names=["cat", "dog"])[0]
    assert "labeled 'cat' in round 0" in top.why


def test_bad_arguments_are_explained():
    idx, r = feeder_and_loner()
    with pytest.raises(ValueError, match="n must be"):
        suggest_next(idx, r, n=-1)
    with pytest.raises(ValueError, match="exclude holds 7"):
        suggest_next(idx, r, exclude=[7])
    with pytest.raises(ValueError, match="k=2"):
        suggest_next(idx[:, :1], r)
    with pytest.raises(ValueError, match="one row per point"):
        influence(idx[:5], r)


def two_groups(wrong_seed_lists):
    """Seeds 0 (class 0) and 1 (class 1), each with three neighbours of its own that list
    only their seed and each other; seed 2 (class 1) lists `wrong_seed_lists`."""
    return label([[3, 4, 5], [6, 7, 8], wrong_seed_lists,
                  [0, 4, 5], [0, 3, 5], [0, 3, 4],
                  [1, 7, 8], [1, 6, 8], [1, 6, 7]],
                 [0, 1, 1, -1, -1, -1, -1, -1, -1])


def test_a_seed_whose_neighbours_all_carry_another_class_is_listed_with_them():
    idx, r = two_groups([3, 4, 5])
    assert r.labels[3:].tolist() == [0, 0, 0, 1, 1, 1]
    found = suspicious_seeds(idx, r, class_names=["zero", "one"])
    assert [s.point for s in found] == [2]      # seeds 0 and 1 agree with their neighbours
    s = found[0]
    assert s.label == 1 and s.neighbour_vote == 0 and s.agreement == 0
    assert s.neighbours.tolist() == [3, 4, 5] and s.neighbour_labels.tolist() == [0, 0, 0]
    assert s.why == "seed 'one', but 3 of its 3 nearest neighbours ended up 'zero', none 'one'"


def test_a_seed_agreeing_with_its_neighbours_is_not_listed():
    idx, r = two_groups([6, 7, 8])
    assert suspicious_seeds(idx, r) == []


def test_a_tie_among_a_seeds_neighbours_goes_to_the_nearest():
    def seed_2_lists(first, second):
        # seeds 0 (class 0) and 1 (class 1) each label a pair of points; seed 2 (class 1)
        # has one neighbour of each class
        return label([[3, 4], [5, 6], [first, second], [0, 4], [0, 3], [1, 6], [1, 5]],
                     [0, 1, 1, -1, -1, -1, -1])

    idx, r = seed_2_lists(5, 3)          # nearer neighbour is class 1: agrees
    assert r.labels[3:].tolist() == [0, 0, 1, 1]
    assert suspicious_seeds(idx, r) == []
    idx, r = seed_2_lists(3, 5)          # nearer neighbour is class 0: suspicious
    found = suspicious_seeds(idx, r)
    assert [s.point for s in found] == [2] and found[0].agreement == 0.5


def copied_wrong_seed():
    """Group A: seed 0 (class 0), points 3, 4, 5, and seed 2 wrongly labeled class 1 that
    3 and 4 list first, so they copy its label; group B: seed 1 (class 1), points 6, 7, 8."""
    X = np.array([[1, 0], [0, 1], [1, 0.1], [1, 0.05], [1, 0.12], [1, 0.02],
                  [0.05, 1], [0.1, 1], [0.02, 1]])
    return X, *label([[3, 4], [6, 7], [3, 4], [2, 4], [2, 3], [3, 0], [1, 7], [1, 6], [6, 7]],
                     [0, 1, 1, -1, -1, -1, -1, -1, -1], X=X)


def test_leaving_each_seed_out_catches_a_wrong_seed_its_neighbours_copied():
    X, idx, r = copied_wrong_seed()
    assert r.labels[[3, 4, 5]].tolist() == [1, 1, 1]          # group A copied seed 2
    assert 2 not in [s.point for s in suspicious_seeds(idx, r)]
    found = suspicious_seeds(idx, r, X=X, class_names=["zero", "one"])
    # seed 0 is the only seed of class 0, so it is not checked by leaving it out
    assert [s.point for s in found] == [2]
    s = found[0]
    assert s.label == 1 and s.neighbour_vote == 0 and s.neighbour_labels.tolist() == [0, 0]
    assert "without this seed's label gives it 'zero'" in s.why


@pytest.mark.parametrize("variant", ["reach", "balanced"])
def test_leaving_a_seed_out_reruns_the_variant_that_made_the_run(variant):
    from hdl_core.variants import label_function
    X, idx, r = copied_wrong_seed()
    graph = KnnGraph(idx, np.zeros(idx.shape, np.float32))
    run = label_function(variant)(X, r.seed_labels, k=2, graph=graph)
    found = suspicious_seeds(idx, run, X=X, variant=variant)
    assert [f.point for f in found] == [2]                 # the seed group A copied
    y = run.seed_labels
    for s in np.flatnonzero(y >= 0):
        if (y == y[s]).sum() < 2:
            continue
        without = y.copy()
        without[s] = -1
        again = label_function(variant)(X, without, k=2, graph=graph).labels
        assert (s in [f.point for f in found]) == (again[s] != y[s])
    with pytest.raises(ValueError, match="variant must be one of"):
        suspicious_seeds(idx, run, X=X, variant="fast")


def test_leaving_out_a_seed_its_neighbourhood_confirms_lists_nothing():
    X, idx, r = copied_wrong_seed()
    y = r.seed_labels
    y[2] = 0                                                    # seed 2 corrected
    r = hdl_label(X, y, k=2, graph=KnnGraph(idx, np.zeros(idx.shape, np.float32)))
    assert suspicious_seeds(idx, r, X=X) == []


# ----------------------------------------------------------------------------- review queue

def crossed_border():
    """Group A = points 0-5 (truly class 0, seed 0), group B = points 6-13 (truly class 1,
    seed 13 at its far end). Each group is a chain of neighbour lists; B's near end, 6,
    lists A's point 5 first. A's front reaches 6 before B's front does, so HDL labels
    6, 7, 8 and 9 as class 0: four known mistakes, voted unanimously or from one labeled
    neighbour, while the correct point 10 has a split vote and is labeled late."""
    X = np.random.default_rng(0).normal(size=(14, 3))
    idx, r = label([[1, 2, 3], [0, 2, 3], [1, 3, 0], [2, 4, 1], [3, 5, 2], [4, 3, 6],
                    [5, 7, 8], [6, 8, 9], [7, 9, 6], [8, 10, 7], [9, 11, 8], [10, 12, 9],
                    [11, 13, 10], [12, 11, 10]],
                   [0] + [-1] * 12 + [1], X=X)
    truth = np.array([0] * 6 + [1] * 8)
    return X, idx, r, truth


def test_crossed_border_fixture_makes_the_mistakes_it_says():
    _, _, r, truth = crossed_border()
    assert np.flatnonzero(r.labels != truth).tolist() == [6, 7, 8, 9]
    # the run's own signals do not single them out: a correct point is less confident
    # than all four, and labeled later than three of them
    assert r.confidence[10] < r.confidence[[6, 7, 8, 9]].min()
    assert (r.step[10] > r.step[[6, 7, 8]]).all()


def test_review_queue_puts_the_block_of_wrong_labels_first():
    X, idx, r, _ = crossed_border()
    y = r.seed_labels
    order = review_queue(X, y, r, graph=KnnGraph(idx, np.zeros(idx.shape, np.float32)))
    assert set(order[:4].tolist()) == {6, 7, 8, 9}


def test_review_queue_reasons_name_the_neighbourhood_and_the_vote():
    X, idx, r, _ = crossed_border()
    y = r.seed_labels
    queue = review_queue_with_reasons(X, y, r, graph=KnnGraph(idx, np.zeros(idx.shape, np.float32)))
    top = int(queue.order[0])
    assert queue.alternative[top] == 1 and queue.alternative_share[top] > queue.own_share[top]
    assert queue.doubt[top] == pytest.approx(1 - queue.own_share[top], abs=1e-5)
    why = queue.reason(9, class_names=["zero", "one"])
    assert why.startswith("neighbourhood votes ") and "'one'" in why and "its own 'zero'" in why
    assert "1 of its 3 nearest neighbours is 'one'" in why
    assert "by a split vote (2 of 3)" in why and "in the last 14 % of rounds" in why
    assert queue.reasons(class_names=["zero", "one"])[list(queue.order).index(9)] == why
    assert queue.reason(0) == "seed '0' (given, not reviewed)"
    assert (queue.doubt[[0, 13]] == 0).all()


def test_review_queue_finds_most_mistakes_on_digits_among_its_first_50():
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, truth = digits.data, digits.target
    rng = np.random.default_rng(10_000)        # draw 0 of bench/review_queue_bench.py
    y = np.full(truth.size, -1)
    for c in range(10):
        y[rng.choice(np.flatnonzero(truth == c), 3, replace=False)] = c
    graph = build_knn_graph(X, 20, method="exact")
    r = hdl_label(X, y, k=3, graph=graph)
    wrong = r.labels != truth
    first = review_queue(X, y, r, graph=graph)[:50]
    least_confident = np.flatnonzero(y < 0)[np.argsort(r.confidence[y < 0], kind="stable")][:50]
    assert wrong[first].sum() >= 40 > 2 * wrong[least_confident].sum()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_review_queue_is_a_deterministic_permutation_of_the_points_hdl_labeled(problem):
    X, y, k, graph = problem
    r = hdl_label(X, y, k=k, graph=graph)
    queue = review_queue_with_reasons(X, y, r, graph=graph)
    assert sorted(queue.order.tolist()) == np.flatnonzero(y < 0).tolist()
    np.testing.assert_array_equal(review_queue(X, y, r, graph=graph), queue.order)
    assert ((queue.doubt >= 0) & (queue.doubt <= 1)).all() and (queue.doubt[y >= 0] == 0).all()
    assert (np.diff(queue.doubt[queue.order]) <= 0).all()        # most doubtful first
    assert len(queue.reasons()) == queue.order.size


def test_review_queue_builds_the_graph_when_none_is_given():
    X, y, r = two_blobs_run()
    np.testing.assert_array_equal(review_queue(X, y, r),
                                  review_queue(X, y, r, graph=build_knn_graph(X, 10)))


def two_blobs_run():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal([3, 0], 1, (30, 2)), rng.normal([0, 3], 1, (30, 2))])
    y = np.full(60, -1)
    y[[0, 30]] = [0, 1]
    return X, y, hdl_label(X, y, k=3)


def test_review_queue_explains_bad_arguments():
    X, y, r = two_blobs_run()
    with pytest.raises(ValueError, match="result must be the LabelingResult"):
        review_queue(X, y, r.labels)
    with pytest.raises(ValueError, match="X has 59 rows"):
        review_queue(X[:59], y, r)
    with pytest.raises(ValueError, match="y has 59 labels"):
        review_queue(X, y[:59], r)
    moved = y.copy()
    moved[5] = 0
    with pytest.raises(ValueError, match="point 5 is a seed .class 0. in y, but the run labeled "
                                         "it at step"):
        review_queue(X, moved, r)
    other = y.copy()
    other[0] = 1
    with pytest.raises(ValueError, match="seed 0 is class 1 in y but 0 in the run"):
        review_queue(X, other, r)
    with pytest.raises(ValueError, match="graph has 2 neighbours per point but the run used k=3"):
        review_queue(X, y, r, graph=build_knn_graph(X, 2))
    with pytest.raises(ValueError, match="graph has 30 rows but X has 60"):
        review_queue(X, y, r, graph=build_knn_graph(X[:30], 5))
    with pytest.raises(ValueError, match="graph must be the KnnGraph"):
        review_queue(X, y, r, graph=np.zeros((60, 5), int))


def test_review_reason_refuses_a_point_outside_the_run():
    X, y, r = two_blobs_run()
    queue = review_queue_with_reasons(X, y, r)
    with pytest.raises(ValueError, match=r"point must be an index 0..59, got 60"):
        queue.reason(60)

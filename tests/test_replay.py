import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from hdl_core import hdl_label
from hdl_core.explain import round_view
from hdl_core.hdl import LabelingResult
from hdl_core.views.replay import (CURRENT, LABELED, SEED, UNLABELED, accuracy_by_round, agreement,
                             build_replay, check_round, cumulative_share, disagreement,
                             first_level, labeled_by_round, labeled_per_round, map_layers,
                             point_state, truth_codes)

from .test_hdl import labeling_problems


def small_run() -> LabelingResult:
    """Six points: seeds 0 (class 0) and 1 (class 1); round 0 labels 3 then 2, round 1 labels 4,
    round 2 bridges 5 from 0."""
    return LabelingResult(
        labels=np.array([0, 1, 0, 1, 1, 0]),
        step=np.array([-1, -1, 1, 0, 2, 3]),
        round=np.array([-1, -1, 0, 0, 1, 2]),
        confidence=np.array([1.0, 1.0, 1.0, 0.5, 1.0, 0.3]),
        n_voters=np.array([0, 0, 1, 2, 1, 0]),
        fallback=np.array([False, False, False, False, False, True]),
        source=np.array([-1, -1, -1, -1, -1, 0]),
        k=2)


NEIGHBOURS = np.array([[2, 3], [3, 4], [0, 3], [1, 0], [1, 3], [4, 2]])
TRUTH = np.array([0, 1, 0, 0, 1, -1])          # point 3 is wrong, point 5's truth unknown
BASELINE = np.array([0, 1, 0, 0, 1, 1])        # kNN-DV differs on 3 and 5


def test_point_state_marks_seeds_earlier_rounds_the_current_round_and_later_ones():
    r = small_run()
    assert point_state(r, 0).tolist() == [SEED, SEED, CURRENT, CURRENT, UNLABELED, UNLABELED]
    assert point_state(r, 1).tolist() == [SEED, SEED, LABELED, LABELED, CURRENT, UNLABELED]
    assert labeled_by_round(r, 1).tolist() == [True] * 5 + [False]
    assert labeled_by_round(r, 2).all()


def test_first_level_is_the_round_in_step_order_with_ranks():
    members, ranks = first_level(small_run(), 0)
    assert members.tolist() == [3, 2] and ranks.tolist() == [0, 1]


def test_labeled_per_round_and_cumulative_share_count_seeds_once():
    r = small_run()
    assert labeled_per_round(r).tolist() == [2, 1, 1]
    np.testing.assert_allclose(cumulative_share(r), [4 / 6, 5 / 6, 1.0])


def test_accuracy_so_far_skips_seeds_and_unknown_truth():
    # round 0: 2 right, 3 wrong -> 1/2; round 1: + 4 right -> 2/3; round 2: 5 unknown -> 2/3
    np.testing.assert_allclose(accuracy_by_round(small_run(), TRUTH), [1 / 2, 2 / 3, 2 / 3])


def test_accuracy_is_nan_until_a_point_with_known_truth_is_labeled():
    truth = np.array([0, 1, -1, -1, 1, 0])
    acc = accuracy_by_round(small_run(), truth)
    assert np.isnan(acc[0]) and acc[1:].tolist() == [1.0, 1.0]


def test_truth_codes_map_unknown_to_minus_one_and_foreign_classes_past_the_end():
    assert truth_codes(["a", None, "z", "b"], ["a", "b"]).tolist() == [0, -1, 2, 1]


def test_agreement_and_disagreement_count_only_the_given_points():
    r = small_run()
    predicted = r.step >= 0
    assert disagreement(r.labels, BASELINE, predicted).tolist() == [False] * 3 + [True, False, True]
    assert agreement(r.labels, BASELINE, predicted) == 0.5
    assert agreement(r.labels, BASELINE) == pytest.approx(4 / 6)
    assert np.isnan(agreement(r.labels, BASELINE, np.zeros(6, bool)))
    with pytest.raises(ValueError, match="same embeddings"):
        disagreement(r.labels, BASELINE[:5])


def test_build_replay_collects_the_per_run_numbers():
    replay = build_replay(small_run(), NEIGHBOURS, baseline=BASELINE, truth=TRUTH)
    assert replay.per_round.tolist() == [2, 1, 1]
    assert replay.final_accuracy == pytest.approx(2 / 3)      # 2, 3, 4 scored; 3 wrong
    assert replay.baseline_accuracy == 1.0
    assert replay.agreement == 0.5 and replay.disagree.tolist() == [False] * 3 + [True, False, True]
    assert replay.seeds.tolist() == [True, True, False, False, False, False]


def test_build_replay_without_truth_or_baseline_leaves_them_out():
    replay = build_replay(small_run(), NEIGHBOURS, truth=np.full(6, -1))
    assert replay.truth is None and replay.accuracy is None and replay.final_accuracy is None
    assert replay.baseline is None and replay.disagree is None and replay.agreement is None


def test_build_replay_refuses_misaligned_inputs():
    with pytest.raises(ValueError, match="neighbours must have shape"):
        build_replay(small_run(), NEIGHBOURS[:, :1])
    with pytest.raises(ValueError, match="truth has 5 entries"):
        build_replay(small_run(), NEIGHBOURS, truth=TRUTH[:5])


def test_map_layers_at_a_middle_round():
    layers = map_layers(build_replay(small_run(), NEIGHBOURS), 1)
    assert layers.unlabeled.tolist() == [5]
    assert layers.coloured.tolist() == [2, 3, 4]
    assert layers.seeds.tolist() == [0, 1]
    assert layers.current.tolist() == [4]
    assert layers.bridged.tolist() == []


def test_map_layers_show_the_bridge_and_filter_to_a_mask():
    replay = build_replay(small_run(), NEIGHBOURS, baseline=BASELINE)
    layers = map_layers(replay, 2)
    assert layers.current.tolist() == [5] and layers.bridged.tolist() == [5]
    only = map_layers(replay, 2, only=replay.disagree)
    assert only.coloured.tolist() == [3, 5] and only.seeds.size == 0 and only.unlabeled.size == 0
    assert only.current.tolist() == [5]
    first = map_layers(replay, 0, only=replay.disagree)
    assert first.current.tolist() == [3] and first.unlabeled.tolist() == [5]


def test_rounds_outside_the_run_are_refused():
    r = small_run()
    assert check_round(r, np.int64(2)) == 2
    for bad in (-1, 3, 1.5, True):
        with pytest.raises(ValueError, match="round"):
            check_round(r, bad)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labeling_problems(geometric=True))
def test_replay_of_a_real_run_partitions_the_points_and_matches_round_view(problem):
    X, y, k, graph = problem
    result = hdl_label(X, y, k=k, graph=graph)
    replay = build_replay(result, graph.indices, truth=np.where(y >= 0, y, result.labels))
    n = y.size
    if result.n_rounds:
        assert replay.share[-1] == 1.0
        assert replay.accuracy[-1] == 1.0          # truth = the run's own labels
    for r in range(result.n_rounds):
        layers = map_layers(replay, r)
        drawn = np.concatenate([layers.unlabeled, layers.coloured, layers.seeds])
        assert np.sort(drawn).tolist() == list(range(n))       # every point exactly once
        assert set(layers.current) <= set(layers.coloured)
        assert layers.coloured.size + layers.seeds.size == round(replay.share[r] * n)
        assert first_level(result, r)[0].tolist() == round_view(graph.indices, result, r).first_level.tolist()


def test_round_summary_is_round_view_read_from_the_round_alone():
    from hdl_core import build_knn_graph, hdl_label
    from hdl_core.explain import round_view
    from hdl_core.views.replay import round_summary
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(c, 0.3, (60, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    y = np.full(len(X), -1)
    y[[0, 60]] = [0, 1]                           # the third blob has no seed: bridges
    graph = build_knn_graph(X, 4, metric="euclidean")
    result = hdl_label(X, y, k=4, graph=graph, metric="euclidean")
    assert result.fallback.any()
    for r in range(result.n_rounds):
        view = round_view(graph.indices, result, r)
        members, bridge, max_l = round_summary(result, graph.indices, r)
        assert members.tolist() == view.first_level.tolist()
        assert bridge == view.bridge and max_l == (0 if bridge else view.max_L)

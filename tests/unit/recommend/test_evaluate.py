"""Tests for atelier.recommend.evaluate: ranking metrics on hand-computed cases, intervals, the truth share."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from atelier.recommend import evaluate


def test_metrics_on_a_hand_computed_case():
    gains = sp.csr_matrix(np.array([[0, 3, 0, 1, 0], [2, 0, 0, 0, 0]], dtype=float))
    lists = np.array([[1, 0], [3, 4]])
    scores = evaluate.per_customer(lists, gains)
    # Row 0: hit at rank 1 (gain 3), miss at rank 2; ideal = 3 + 1/log2(3).
    assert np.isclose(scores.loc[0, "precision"], 0.5) and np.isclose(scores.loc[0, "recall"], 0.5)
    assert np.isclose(scores.loc[0, "ndcg"], 3 / (3 + 1 / np.log2(3)))
    assert np.isclose(scores.loc[0, "map"], 1.0 / 2)
    assert (scores.loc[1] == 0).all()


def test_perfect_list_scores_one_and_truth_share_of_the_best_list_is_one():
    gains = sp.csr_matrix(np.array([[0, 3, 2, 0]], dtype=float))
    scores = evaluate.per_customer(np.array([[1, 2]]), gains)
    assert np.allclose(scores.to_numpy(), 1.0)
    preference = np.array([[0.1, 0.5, 0.3, 0.05]])
    assert np.isclose(evaluate.truth_share(np.array([[1, 2]]), preference)[0], 1.0)
    assert np.isclose(evaluate.truth_share(np.array([[0, 3]]), preference)[0], 0.15 / 0.8)


def test_interval_covers_the_mean_and_narrows_with_more_customers():
    rng = np.random.default_rng(0)
    small, large = rng.random(50), rng.random(5000)
    mean, low, high = evaluate.interval(small, evaluate.bootstrap_indices(50, 300, 1))
    assert low < mean < high
    _, low_l, high_l = evaluate.interval(large, evaluate.bootstrap_indices(5000, 300, 1))
    assert high_l - low_l < high - low
    assert all(np.isnan(evaluate.interval(np.array([]), np.zeros((3, 0), dtype=int))))


def test_coverage_and_popularity_percentile():
    lists = np.array([[0, 1], [0, 2]])
    assert np.isclose(evaluate.coverage(lists, 6), 0.5) and evaluate.coverage(lists, 0) == 0.0
    views = np.array([100.0, 50.0, 10.0, 1.0])
    assert evaluate.popularity_percentile(np.array([[0]]), views) == 1.0

"""The recommendations report's sentences: every branch, including those the default shop never reaches."""

from __future__ import annotations

import pandas as pd
import pytest

from atelier.recommend import narrative

METHODS = ["popularity", "recent_popularity", "category_rule", "als", "item_item", "oracle"]


def _ndcg(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"ndcg": values}, index=METHODS)


@pytest.mark.parametrize(("low", "high", "word"), [
    (0.01, 0.05, "beats"), (-0.05, -0.01, "falls behind"), (-0.01, 0.02, "cannot be told apart from"),
    (float("nan"), float("nan"), "cannot be told apart from"),
])
def test_the_verdict_follows_where_the_paired_interval_lies(low, high, word):
    assert narrative.verdict({"difference": (low + high) / 2, "ci_low": low, "ci_high": high}) == word


def test_the_out_of_time_story_names_the_verdict_the_best_baseline_and_the_truth_shares():
    ndcg = _ndcg([0.16, 0.20, 0.24, 0.43, 0.44, 0.50])
    table = pd.DataFrame({"truth_share": [0.2, 0.25, 0.328, 0.68, 0.628, 1.0]}, index=METHODS)
    gain = {"difference": 0.192, "ci_low": 0.187, "ci_high": 0.198}
    text = narrative.out_of_time_story(ndcg, table, gain, "item_item", 6, simulated=True)
    assert "learned list (item_item) **beats** the favourite-category rule: NDCG@6 0.440 against 0.240" in text
    assert "a difference of +0.192 (95 % interval +0.187 to +0.198" in text
    assert "The best baseline is category_rule." in text  # the best of the three baselines, never a learned list
    assert "captures 63% of the true-best list's preference, the rule 33%" in text
    assert "the oracle's own NDCG, 0.500" in text


def test_on_the_retailer_s_own_data_the_story_says_nothing_of_the_truth():
    ndcg = _ndcg([0.30, 0.20, 0.24, 0.22, 0.21, float("nan")])
    gain = {"difference": -0.03, "ci_low": -0.05, "ci_high": -0.01}
    text = narrative.out_of_time_story(ndcg, pd.DataFrame(index=METHODS), gain, "als", 6, simulated=False)
    assert "**falls behind**" in text and "The best baseline is popularity." in text
    assert "truth" not in text and "oracle" not in text


def test_the_segment_story_names_the_largest_and_smallest_gain_and_the_oracle_gap():
    by_segment = pd.DataFrame({"category_rule": [0.2, 0.3, 0.1], "item_item": [0.5, 0.32, 0.1],
                               "oracle": [0.6, 0.62, 0.1]}, index=["Loyal", "Bargain", "cold start"])
    text = narrative.segment_story(by_segment, "item_item")
    assert "largest gain over the rule is for **Loyal** (+0.300), the smallest for **Bargain** (+0.020)" in text
    assert "widest for **Bargain** (0.300 NDCG) and narrowest for **cold start** (0.000)" in text


def test_the_segment_story_leaves_cold_starts_out_of_the_gain_and_the_oracle_out_when_it_was_not_scored():
    by_segment = pd.DataFrame({"category_rule": [0.2, 0.3, 0.0], "als": [0.25, 0.2, 0.9]},
                              index=["Loyal", "Bargain", "cold start"])
    text = narrative.segment_story(by_segment, "als")
    assert "largest gain over the rule is for **Loyal** (+0.050), the smallest for **Bargain** (-0.100)" in text
    assert "oracle" not in text

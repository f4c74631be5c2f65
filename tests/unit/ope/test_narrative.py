"""The off-policy evaluation report's sentences: every branch, including those the default data never reaches."""

from __future__ import annotations

import pandas as pd
import pytest

from atelier.ope import narrative


def _check(snipw_spread: float) -> pd.DataFrame:
    rows = {"ipw": (0.001, 0.95, 0.010), "snipw": (0.0005, 0.94, snipw_spread), "dr": (0.0, 0.95, 0.006),
            "dr_oracle": (0.0, 0.95, 0.004), "dm": (-0.02, 0.40, 0.003)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["bias", "coverage", "spread"])


@pytest.mark.parametrize(("snipw_spread", "word"), [(0.008, "less"), (0.012, "more")])
def test_the_synthetic_story_compares_the_estimators_spreads(snipw_spread, word):
    text = narrative.synthetic_story(_check(snipw_spread), 0.1234, 0.1)
    assert text.startswith("True value 0.1234 (the logger's own: 0.1000). IPW's mean error is +0.0010")
    assert f"SNIPW moves {word} than IPW (spread {snipw_spread:.4f} against 0.0100)" in text
    assert "moves 40% as much as IPW, with a fitted model 60%" in text and "DM's mean error is -0.0200" in text


def test_the_exploration_story_lists_the_pages_shown():
    facts = {"rounds": 12345, "customers": 6789, "conversions": 321, "eligible_share": 0.8,
             "shown": {"default": 9000, "personalized": 2000}}
    assert narrative.exploration_story(facts, 14, 0.5) == (
        "12,345 visits by 6,789 customers over 14 days, 321 with a purchase; 80% could be personalized. With ε = 0.5 "
        "the pages shown were: default 9,000, personalized 2,000.")


@pytest.mark.parametrize(("truth_order", "words"), [(["personalized", "default"], "the same order"),
                                                     (["default", "personalized"], "a different order")])
def test_the_findings_story_says_whether_dr_ranks_the_pages_as_the_truth_does(truth_order, words):
    found = {"covered": 7, "cases": 8, "dr_ranking": ["personalized", "default"], "true_ranking": truth_order,
             "same_ranking": truth_order == ["personalized", "default"],
             "half_width": {"default": 0.001, "personalized": 0.01}, "largest_weight": 12.4}
    text = narrative.findings_story(found)
    assert "truth in **7 of 8** cases" in text and f"({words})" in text
    assert "±0.10% (DR), each explored page only to about ±1.00%; the largest importance weight is 12." in text


def test_the_redrawn_story_places_the_recorded_log_among_the_redraws():
    redrawn = pd.DataFrame({"mean": [0.031], "truth": [0.030], "bias": [0.001], "spread": [0.002],
                            "coverage": [0.9]}, index=["ipw"])
    text = narrative.redrawn_story(redrawn, 0.035, draws=100, bootstrap_draws=30)
    assert text.startswith("Over 100 redrawn logs IPW's mean is 3.10% against the truth 3.00%")
    assert "in 90% of the first 30" in text and "estimated 3.50%: +2.5 standard deviations from the truth" in text


def _uplift(ab_low: float | None) -> pd.DataFrame:
    return pd.DataFrame({"source": ["simulator truth", "dr", "closed-loop A/B"], "relative": [0.2, 0.18, 0.25],
                         "ci_low": [None, 0.05, ab_low], "ci_high": [None, 0.3, None if ab_low is None else 0.4]})


def test_the_uplift_story_reads_each_interval():
    text = narrative.uplift_story(_uplift(0.2), 14, 0.5)
    assert "True uplift over these 14 days: **+20.0%**" in text
    assert "DR estimates +18.0% (95 % CI +5.0% to +30.0%): its interval excludes no effect and holds +15%" in text
    assert "(+20.0% to +40.0%): its interval excludes no effect and excludes +15%" in text
    assert "with 50% exploration" in text


def test_an_a_b_test_without_an_interval_is_called_undefined():
    assert "its interval is undefined. OPE paid" in narrative.uplift_story(_uplift(None), 14, 0.5)


def test_the_obd_story_counts_campaigns_covered_and_the_impressions_needed():
    real = pd.DataFrame({
        "campaign": ["all", "men", "all"], "method": ["ipw", "ipw", "snipw"], "random_clicks": [90, 30, 90],
        "covers_measured": [True, False, True], "value": [0.005, 0.004, 0.005], "ci_low": [0.004, 0.002, 0.0],
        "ci_high": [0.006, 0.006, 1.0], "bts_measured": [0.0052, 0.0, 0.0], "random_measured": [0.0035, 0.0, 0.0],
        "rounds_to_separate": [123456.0, 0.0, 0.0], "rounds_for_relative_half_width": [654321.0, 0.0, 0.0],
        "rounds": [20000, 8000, 20000]})
    text = narrative.obd_story(real, 0.1)
    assert "in **1 of 2** campaigns" in text and "only all 90, men 30 clicks" in text
    assert "spans about ±35% of the estimate" in text  # the mean of 20 % and 50 %, IPW's rows only
    assert "about 123,456 random impressions, and one within ±10% of the click rate about 654,321" in text
    assert "(the sample has 20,000;" in text

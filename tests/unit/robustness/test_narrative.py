"""The report's sentences follow their facts: every branch of atelier.robustness.narrative, including the ones the
default data never reaches (a calibrated model, a harmed group, never retraining winning, a missed drill, ...)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from atelier.robustness import narrative, trust

# --------------------------------------------------------------------------------------------
# Fairness
# --------------------------------------------------------------------------------------------
CALIBRATION = {
    "mean_score": 0.040,
    "base_rate": 0.055,
    "ratio": 0.727,
    "direction": "under",
    "groups": 4,
    "same_direction": 4,
    "every_group": True,
    "alike": True,
    "group_min": 0.70,
    "group_max": 0.78,
    "training_rate": 0.045,
    "rate_shift": "rose",
    "explained": True,
}


def disparity(flagged: list[bool], intervals: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "attribute": ["age_band", "device"],
            "metric": ["selection_rate", "auc"],
            "ratio": [0.38, 0.95],
            "ci_low": [0.31, np.nan],
            "ci_high": [0.44, np.nan],
            "interval": intervals,
            "difference": [0.088, 0.04],
            "min_group": ["18-24", "mobile"],
            "max_group": ["55+", "desktop"],
            "rule": ["ratio < 0.8", "difference > 0.05"],
            "below_threshold": flagged,
        }
    )


def test_fairness_answer_lists_the_flags_with_where_their_interval_lies():
    text = narrative.fairness_answer(disparity([True, True], ["below", ""]), CALIBRATION)
    assert text.startswith(
        "**2 of 2** attribute × metric comparisons are flagged\n- **age_band / selection rate**: ratio 0.38"
    )
    assert "(95 % CI 0.31 to 0.44: the whole interval is below the threshold)" in text
    assert "- **device / auc**: ratio 0.95, difference 0.040 (mobile vs desktop; rule: difference > 0.05)" in text
    none = narrative.fairness_answer(disparity([False, False], ["straddles", ""]), CALIBRATION)
    assert none.startswith("**0 of 2** attribute × metric comparisons are flagged.\n\nOverall")


def test_calibration_sentence_says_under_predicted_alike_only_when_it_is_so():
    text = narrative.calibration_sentence(CALIBRATION)
    assert "(calibration ratio 0.73): every group is under-predicted alike (group ratios 0.70 to 0.78)" in text
    assert (
        "the trace of the purchase rate's rise from 0.045 in the training snapshots to 0.055 in the test month" in text
    )
    assert text.endswith("should not be read as probabilities.")
    apart = narrative.calibration_sentence({**CALIBRATION, "alike": False, "explained": False})
    assert "every group is under-predicted (group ratios" in apart and "trace" not in apart
    some = narrative.calibration_sentence({**CALIBRATION, "every_group": False, "alike": False, "same_direction": 3})
    assert "3 of 4 groups are under-predicted" in some
    over = narrative.calibration_sentence({**CALIBRATION, "direction": "over", "rate_shift": "fell", "ratio": 1.3})
    assert "every group is over-predicted alike" in over and "purchase rate's fall" in over
    nobody = narrative.calibration_sentence(
        {**CALIBRATION, "groups": 0, "every_group": False, "same_direction": 0, "explained": False}
    )
    assert "0 of 0 groups are under-predicted. Targeting" in nobody


@pytest.mark.parametrize(
    ("direction", "words"),
    [
        ("calibrated", "the scores are about as high as the purchase rate."),
        ("undefined", "the calibration is undefined (no buyer)."),
    ],
)
def test_calibration_sentence_without_a_miscalibration(direction, words):
    text = narrative.calibration_sentence({**CALIBRATION, "direction": direction})
    assert text.endswith(words) and "under-predicted" not in text and "trace" not in text


def test_mitigation_sentence():
    cost = {
        "attribute": "age_band",
        "precision_single": 0.351,
        "precision_equal": 0.345,
        "recall_single": 0.640,
        "recall_equal": 0.629,
        "costs_precision": True,
    }
    assert narrative.mitigation_sentence(cost).startswith(
        "The largest cost in precision is for **age_band**: precision of "
        "the campaign 0.351 → 0.345, share of all buyers reached 0.640 → 0.629"
    )
    free = narrative.mitigation_sentence({**cost, "precision_equal": 0.36, "costs_precision": False})
    assert free.startswith("No attribute loses precision; the largest change is for **age_band**")
    assert "only grouping left is device" in narrative.mitigation_sentence(None)


def test_uplift_sentence_names_the_groups_that_include_zero_or_are_harmed():
    reading = {
        "estimated": 4,
        "benefit": ["region=north"],
        "covering": ["region=east", "gender=f"],
        "harmed": [],
        "unmatched": True,
    }
    text = narrative.uplift_sentence(reading)
    assert text.startswith(
        "Of 4 groups with an estimate, 1 benefit clearly (interval above 0), 2 have an interval that "
        "includes 0 (region=east, gender=f), and 0 are harmed (interval below 0)."
    )
    assert "appear once, as '(not in groups)'" in text
    harmed = narrative.uplift_sentence({**reading, "covering": [], "harmed": ["age_band=55+"], "unmatched": False})
    assert (
        "includes 0 (none), and 1 are harmed (interval below 0: age_band=55+)." in harmed
        and "appear once" not in harmed
    )


# --------------------------------------------------------------------------------------------
# Bad data
# --------------------------------------------------------------------------------------------
FLAGS = {
    "validate": (4, []),
    "model": (3, ["random_forest: overfitting"]),
    "replay": (2, ["events: late (7 rows)", "x"]),
}
CHECKS = {
    "injected_rows": 300,
    "missed": 0,
    "false_alarms": 0,
    "collateral_rows": 177,
    "schema_stopped": 2,
    "schema_explained": 1,
    "schema_scenarios": 2,
    "stream_balanced": True,
}


def test_pipeline_flags_one_line_per_stage():
    text = narrative.pipeline_flags(FLAGS, ["metrics/prep.json"])
    assert text.splitlines()[:3] == [
        "- **validate**: nothing flagged in 4 checks",
        "- **model**: random_forest: overfitting",
        "- **replay**: events: late (7 rows); x",
    ]
    assert text.endswith("Not found (the stage did not run here, or the table was not given): metrics/prep.json.")
    assert "Not found" not in narrative.pipeline_flags(FLAGS, [])
    assert narrative.pipeline_flags({}, []) == "No stage's own report was found to gather."


def test_data_checks_answer_counts_stopped_and_explained_shape_problems_apart():
    text = narrative.data_checks_answer(CHECKS, FLAGS)
    assert "2 of 2 shape problems stopped the stage, 1 with a message naming file, column and fix" in text
    assert "in the stream demo the books balance." in text
    assert "raised 3 flags on this run (by stage: validate 0, model 1, replay 2;" in text
    unbalanced = narrative.data_checks_answer({**CHECKS, "stream_balanced": False}, {})
    assert "books **do not balance**." in unbalanced and unbalanced.endswith(
        "No stage's own report was found to gather."
    )
    assert "stream" not in narrative.data_checks_answer({**CHECKS, "stream_balanced": None}, FLAGS)


# --------------------------------------------------------------------------------------------
# Retraining and drift
# --------------------------------------------------------------------------------------------
def schedule(outcome: str, best: list[str], against: dict | None = None) -> dict:
    gain = {"months": 9, "mean_difference": 0.0017, "ci_low": 0.0004, "ci_high": 0.003, "better_months": 7}
    return {
        "months": 9,
        "outcome": outcome,
        "best_policies": best,
        "tie_auc": 0.001,
        "against_never": {"monthly": gain, "drift": gain} if against is None else against,
        "policies": {"never": {"fits": 1}, "monthly": {"fits": 9}, "drift": {"fits": 5}},
    }


DRIFTED = {"drifted": True, "worst_is_first": True, "reading": "negligible despite drift"}


def test_retraining_answer_calls_a_tie_a_tie_and_small_gains_small():
    text = narrative.retraining_answer(schedule("small", ["drift", "monthly"]), DRIFTED)
    assert text.startswith(
        "Over 9 months, against never retraining: **monthly** +0.0017 AUC (95 % CI +0.0004 to +0.0030, "
        "better in 7 of 9 months); **drift**"
    )
    assert "The gains are small (under 0.01 AUC), so the frozen model's ranking holds: *what* predicts" in text
    assert (
        "**drift** and **monthly** tie for best (within 0.001 AUC of each other)" in text
        and "(drift 5, monthly 9)" in text
    )
    assert "Retraining pays" not in text
    calm = narrative.retraining_answer(schedule("small", ["monthly"]), {**DRIFTED, "drifted": False})
    assert "ranking holds. Best with an interval above 0: **monthly**; judge whether" in calm and "(monthly 9)" in calm


@pytest.mark.parametrize(
    ("outcome", "best", "words", "leader"),
    [
        ("pays", ["monthly"], "Retraining pays here", "Best with an interval above 0: **monthly**"),
        ("hurts", [], "Never retraining wins here", "No schedule beats never retraining consistently."),
        ("unclear", [], "no interval clears 0", "No schedule beats never retraining consistently."),
    ],
)
def test_retraining_answer_only_says_retraining_pays_when_it_does(outcome, best, words, leader):
    text = narrative.retraining_answer(schedule(outcome, best), DRIFTED)
    assert words in text and leader in text
    assert ("Retraining pays" in text) == (outcome == "pays")


def test_retraining_answer_without_a_never_baseline():
    text = narrative.retraining_answer(schedule("no baseline", ["monthly", "drift"], against={}), DRIFTED)
    assert text.startswith("With no never-retrained schedule") and text.endswith(
        "Highest mean AUC: **monthly** and **drift**."
    )
    assert "Retraining pays" not in text and "interval above 0" not in text
    assert narrative.retraining_answer(schedule("no baseline", [], against={}), DRIFTED).endswith("no gain to measure.")


EFFECT = {
    "trained_on": "2025-01-01..2025-03-01",
    "months": 9,
    "first_cutoff": "2025-04-01",
    "last_cutoff": "2025-12-01",
    "auc_first": 0.882,
    "auc_last": 0.933,
    "auc_min": 0.882,
    "auc_min_cutoff": "2025-04-01",
    "psi_first": 0.10,
    "psi_last": 0.81,
    "psi_max": 0.81,
    "psi_max_column": "recency_days",
    "psi_max_cutoff": "2025-12-01",
    "score_psi_last": 0.46,
    "compared_with": "monthly",
    "lag_mean": 0.0017,
    "lag_max": 0.0042,
    "lag_max_cutoff": "2025-11-01",
    "lag_psi_spearman": 0.63,
}


@pytest.mark.parametrize("reading", list(narrative.DRIFT_WORDS))
def test_drift_answer_words_each_reading(reading):
    text = narrative.drift_answer(EFFECT, {**DRIFTED, "reading": reading})
    assert text.endswith(narrative.DRIFT_WORDS[reading])
    assert "(Spearman of the lag with the month's PSI: +0.63)" in text and "(2025-12-01; score PSI 0.46)" in text


def test_drift_answer_says_only_what_was_measured():
    assert narrative.drift_answer(None, DRIFTED).startswith("Not measured")
    first = narrative.drift_answer(EFFECT, DRIFTED)
    assert "worst 0.882 on 2025-04-01 (its first month, when every schedule uses the same model" in first
    later = narrative.drift_answer(
        {**EFFECT, "lag_mean": None, "score_psi_last": math.nan}, {**DRIFTED, "worst_is_first": False}
    )
    assert later.endswith("worst 0.882 on 2025-04-01.") and "score PSI" not in later and "lagged" not in later
    assert "Spearman" not in narrative.drift_answer({**EFFECT, "lag_psi_spearman": None}, DRIFTED)


# --------------------------------------------------------------------------------------------
# Explanations
# --------------------------------------------------------------------------------------------
def review(ceiling: list[float]) -> trust.ChampionReview:
    rates = pd.DataFrame({"pass_rate": [0.0, 0.87], "threshold": [0.5, 0.6]}, index=["surrogate R²", "seed stability"])
    return trust.ChampionReview(
        review=pd.DataFrame(), ceiling=pd.Series(ceiling), chance=0.40, check_rates=rates, features=9, top_k=5
    )


READING = {
    "weakest": "surrogate R²",
    "fit_gap": 0.01,
    "fit_cause": "model shape",
    "fit_reachable": 0.0,
    "chance_below_bar": True,
    "chance_spearman": 0.36,
    "fit_tells": "which features",
    "with_fit": {
        "sign_agreement": (-0.15, "hardly"),
        "top_k_overlap_with_exact": (0.16, "hardly"),
        "seed_stability": (0.45, "more"),
    },
}
SUMMARY = {"verdict_shares": {"trust": 0.0, "caution": 0.6, "do not trust": 0.4}, "median_lime_score": 0.19}


def test_trust_answer_on_a_fit_no_customer_can_reach():
    text = narrative.trust_answer(review([0.19, 0.31]), READING, SUMMARY, trust.Thresholds())
    assert text.startswith(
        "0% of the explanations pass every check; the **surrogate R²** fails most (passed by 0%, bar 0.5)"
    )
    assert "keeping only the top 5 costs almost nothing (+0.01)" in text and "can be 'trusted'" in text
    assert "overlap the exact top 5 at 0.40, below the top-k bar" in text
    assert (
        "a better fit goes with no more sign agreement (-0.15), no more top-k overlap (+0.16), more seed stability "
        "(+0.45) (Spearman; a size under 0.36 is chance)"
    ) in text
    assert text.endswith(narrative.FIT_WORDS["which features"])


@pytest.mark.parametrize("tells", list(narrative.FIT_WORDS))
def test_trust_answer_when_more_features_would_help(tells):
    reading = {
        **READING,
        "fit_gap": 0.2,
        "fit_cause": "too few features",
        "fit_reachable": 0.4,
        "chance_below_bar": False,
        "fit_tells": tells,
        "with_fit": {**READING["with_fit"], "sign_agreement": (-0.5, "less")},
    }
    text = narrative.trust_answer(review([0.4, 0.6]), reading, SUMMARY, trust.Thresholds())
    assert "costs 0.20 of fit, so more features (`model.lime_top_k`) would help" in text
    assert "40% of the customers' unrestricted surrogates reach the bar (0.5)" in text and "'trusted'" not in text
    assert "at or above the top-k bar, so with this few features that check cannot tell" in text
    assert "less sign agreement (-0.50)" in text and text.endswith(narrative.FIT_WORDS[tells])


@pytest.mark.parametrize(
    ("pairs", "start"),
    [(0, "No feature pair is correlated"), (1, "1 feature pair is correlated"), (4, "4 feature pairs are correlated")],
)
def test_correlated_sentence(pairs, start):
    text = narrative.correlated_sentence(pairs, 0.8)
    assert text.startswith(start) and ("never read one of them alone" in text) == (pairs > 0)


# --------------------------------------------------------------------------------------------
# Rollback
# --------------------------------------------------------------------------------------------
CAUGHT = {
    "detected_day": 1,
    "detection_rule": "score drift",
    "auc_bad": 0.424,
    "auc_original": 0.920,
    "rollbacks": 1,
    "rolled_back_to": "v3",
    "restored_scores_identical": True,
    "auc_rule_earliest_bad": "2025-12-01",
}
MISSED = {
    "detected_day": None,
    "detection_rule": None,
    "auc_bad": 0.919,
    "auc_original": 0.920,
    "rollbacks": 0,
    "rolled_back_to": None,
    "restored_scores_identical": None,
    "auc_rule_earliest_bad": None,
}


def test_rollback_answer_says_how_each_drill_ended():
    text = narrative.rollback_answer(
        {"shuffled_labels": {"summary": CAUGHT}, "dropped_features": {"summary": MISSED}}, 30
    )
    first, second = text.strip().splitlines()
    assert first == (
        "- **shuffled_labels** (AUC 0.424 against the original's 0.920) shifted the scores: caught on day 1 by "
        "score drift, before any live day's labels could mature (30 days); rolled back to **v3**, which scores "
        "as the original bit for bit: True. In hindsight the AUC rule would have fired on 2025-12-01 at the "
        "earliest."
    )
    assert "hurt so little that neither check noticed" in second and "rolled back" not in second
    assert second.endswith("the AUC rule would not have fired, even with every label known.")


def test_rollback_answer_for_a_late_catch_a_harmful_miss_and_no_drill():
    late = narrative.rollback_answer(
        {"x": {"summary": {**CAUGHT, "detected_day": 35, "detection_rule": "AUC below 90%"}}}, 30
    )
    assert "was caught on day 35 by AUC below 90%, once labels had matured" in late
    harmful = narrative.rollback_answer({"x": {"summary": {**MISSED, "auc_bad": 0.70}}}, 30)
    assert "was **not caught** although it ranks worse" in harmful
    assert narrative.rollback_answer({}, 30).startswith("No drill on this data")

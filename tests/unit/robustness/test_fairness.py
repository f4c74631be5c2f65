"""Tests for atelier.robustness.fairness: per-group metrics, disparities, calibration and the cost of equal targeting.

Synthetic customers with known structure: a group whose scores are shifted up, groups drawn
independently of the scores, a group with a higher true propensity, conversions planted
exactly per group and arm. Small cases are counted by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, selection_rate

from atelier.core.config import ParamsError
from atelier.robustness import fairness as fair


def customers(seed: int, n: int = 20_000, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Labels from a latent propensity, scores = propensity (+ `shift` for group "B"), two independent attributes."""
    rng = np.random.default_rng(seed)
    propensity = rng.beta(2, 8, n)
    labels = (rng.random(n) < propensity).astype(int)
    groups = pd.DataFrame({"group": rng.choice(["A", "B"], n), "colour": rng.choice(["red", "blue", "green"], n)})
    scores = propensity + np.where(groups["group"] == "B", shift, 0.0)
    return labels, scores, groups


def row(table: pd.DataFrame, attribute: str, group: str, metric: str | None = None):
    found = table[
        (table["attribute"] == attribute) & ((table["group"] if "group" in table else table["metric"]) == group)
    ]
    assert len(found) == 1
    return found.iloc[0] if metric is None else found.iloc[0][metric]


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------
def test_primary_device_breaks_ties_in_device_order_and_marks_rows_without_visits():
    frame = pd.DataFrame(
        {
            "share_mobile": [0.5, np.nan, 0.0, 0.2, np.nan, 0.1],
            "share_desktop": [0.5, np.nan, 0.0, 0.3, 0.4, 0.1],
            "share_tablet": [0.0, np.nan, 0.0, 0.5, 0.4, 0.8],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    device = fair.primary_device(frame)
    assert device.tolist() == ["mobile", "no visits", "no visits", "tablet", "desktop", "tablet"]
    assert device.index.tolist() == [10, 11, 12, 13, 14, 15]
    assert fair.primary_device(frame[["share_desktop"]]).tolist() == [
        "desktop",
        "no visits",
        "no visits",
        "desktop",
        "desktop",
        "desktop",
    ]
    with pytest.raises(ValueError, match="share_mobile.*share_tablet"):
        fair.primary_device(frame.rename(columns=str.upper))


def test_group_columns_marks_missing_values_and_skips_absent_attributes():
    snapshot = pd.DataFrame(
        {
            "gender": pd.array(["female", None, "male"], dtype="string"),
            "share_mobile": [0.9, np.nan, 0.1],
            "share_desktop": [0.1, np.nan, 0.9],
            "share_tablet": [0.0, np.nan, 0.0],
        },
        index=pd.Index([1, 2, 3], name="customer_id"),
    )
    groups, skipped = fair.group_columns(snapshot)
    assert list(groups.columns) == ["gender", "device"] and skipped == ["age_band", "region"]
    assert groups["gender"].tolist() == ["female", "(missing)", "male"]
    assert groups["device"].tolist() == ["mobile", "no visits", "desktop"]
    assert groups.index.equals(snapshot.index)
    without_devices, skipped = fair.group_columns(snapshot[["gender"]])
    assert list(without_devices.columns) == ["gender"] and "device" in skipped


# --------------------------------------------------------------------------------------------
# Targeting
# --------------------------------------------------------------------------------------------
def test_selected_takes_exactly_the_rounded_share_and_breaks_ties_by_row_order():
    scores = np.array([0.2, 0.9, 0.5, 0.5, 0.5, 0.1, 0.5, 0.3])
    chosen = fair.selected(scores, 0.375)  # round(3.0) = 3: 0.9, then the first two of the tied 0.5s
    assert chosen.tolist() == [False, True, True, True, False, False, False, False]
    assert fair.target_threshold(scores, 0.375) == 0.5
    assert fair.selected(scores, 1.0).all()
    assert fair.selected(np.arange(1000.0), 0.1).sum() == 100
    assert math.isinf(fair.target_threshold(scores, 0.01))


# --------------------------------------------------------------------------------------------
# Per-group metrics
# --------------------------------------------------------------------------------------------
def test_subgroup_metrics_match_hand_counts():
    labels = np.array([1, 0, 1, 0, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.6, 0.3, 0.4])
    groups = pd.DataFrame({"side": ["L", "L", "L", "L", "R", "R", "R", "R"]})
    table = fair.subgroup_metrics(labels, scores, groups, target_share=0.25)  # targets 0.9 and 0.8, both in L
    left, right, overall = (row(table, "side", name) for name in ("L", "R", "(all)"))
    assert (left["n"], left["buyers"], left["base_rate"]) == (4, 2, 0.5)
    assert left["selection_rate"] == 0.5 and left["true_positive_rate"] == 0.5 and left["precision"] == 0.5
    assert left["auc"] == pytest.approx(0.75)  # buyer pairs above: (0.9 > 0.8, 0.9 > 0.1, 0.2 > 0.1) of 4
    assert left["calibration_ratio"] == pytest.approx(0.5 / 0.5)
    assert right["selection_rate"] == 0.0 and right["true_positive_rate"] == 0.0 and math.isnan(right["precision"])
    assert right["auc"] == 1.0 and right["calibration_ratio"] == pytest.approx(0.5 / 0.25)
    assert (
        overall["n"] == 8
        and overall["selection_rate"] == 0.25
        and overall["true_positive_rate"] == pytest.approx(1 / 3)
    )


def test_single_class_group_gets_nan_auc_without_raising():
    labels, scores, groups = customers(seed=1, n=2_000)
    groups.loc[groups["colour"] == "green", "colour"] = "none"
    labels = np.where(groups["colour"] == "none", 0, labels)
    table = fair.subgroup_metrics(labels, scores, groups, target_share=0.1)
    assert math.isnan(row(table, "colour", "none", "auc"))
    assert row(table, "colour", "none", "buyers") == 0 and math.isnan(
        row(table, "colour", "none", "true_positive_rate")
    )
    assert 0.5 < row(table, "colour", "red", "auc") < 1.0
    auc = row(fair.disparities(table, min_group_size=1), "colour", "auc")
    assert auc["undefined_groups"] == "none" and auc["groups_compared"] == 2 and not math.isnan(auc["ratio"])


def test_shifted_scores_raise_a_groups_selection_rate_and_fire_the_flag():
    labels, scores, groups = customers(seed=2, shift=0.15)
    table = fair.subgroup_metrics(labels, scores, groups, target_share=0.1)
    assert row(table, "group", "B", "selection_rate") > 2 * row(table, "group", "A", "selection_rate")
    assert row(table, "group", "B", "calibration_ratio") > row(table, "group", "A", "calibration_ratio")
    flags = fair.disparities(table)
    selection = row(flags, "group", "selection_rate")
    assert selection["below_threshold"] and selection["min_group"] == "A" and selection["max_group"] == "B"
    assert row(flags, "group", "true_positive_rate", "below_threshold")
    assert not row(flags, "group", "auc", "below_threshold")  # ranking within each group is untouched by a shift
    assert not flags.loc[flags["attribute"] == "colour", "below_threshold"].any()


def test_groups_independent_of_scores_do_not_flag_and_ratios_match_fairlearn():
    labels, scores, groups = customers(seed=3)
    table = fair.subgroup_metrics(labels, scores, groups, target_share=0.1)
    flags = fair.disparities(table)
    assert not flags["below_threshold"].any()
    assert (flags["ratio"] > 0.85).all()
    frame = MetricFrame(
        metrics=selection_rate, y_true=labels, y_pred=fair.selected(scores, 0.1), sensitive_features=groups["colour"]
    )
    assert row(flags, "colour", "selection_rate", "ratio") == pytest.approx(frame.ratio())
    assert row(flags, "colour", "selection_rate", "difference") == pytest.approx(frame.difference())


def test_groups_below_min_group_size_cannot_drive_the_ratio():
    labels, scores, groups = customers(seed=4, n=5_000)
    groups.loc[:2, "colour"] = "tiny"  # three people, all with the lowest scores
    scores[:3] = -1.0
    table = fair.subgroup_metrics(labels, scores, groups, target_share=0.1)
    kept = row(fair.disparities(table, min_group_size=50), "colour", "selection_rate")
    assert kept["excluded_groups"] == "tiny (n=3)" and kept["groups_compared"] == 3 and not kept["below_threshold"]
    driven = row(fair.disparities(table, min_group_size=1), "colour", "selection_rate")
    assert driven["min_group"] == "tiny" and driven["ratio"] == 0.0 and driven["below_threshold"]


# --------------------------------------------------------------------------------------------
# Mitigation
# --------------------------------------------------------------------------------------------
def test_equalize_selection_gives_every_group_the_share_and_keeps_the_total():
    rng = np.random.default_rng(5)
    group = np.repeat(["A", "B", "C"], [1004, 334, 74])  # per-group rounding would give 140, not 141
    scores = rng.random(len(group)) + np.where(group == "B", 0.5, 0.0)
    chosen = fair.equalize_selection(scores, group, 0.1)
    assert chosen.sum() == fair.selected(scores, 0.1).sum() == 141
    for name, size in (("A", 1004), ("B", 334), ("C", 74)):
        members = group == name
        assert abs(chosen[members].mean() - 0.1) <= 1 / size
        # within a group the top scores are taken
        assert scores[members & chosen].min() >= scores[members & ~chosen].max()


def test_mitigation_cost_shows_equal_selection_and_its_price_in_precision():
    rng = np.random.default_rng(6)
    group = rng.choice(["low", "high"], 20_000)
    propensity = np.where(group == "high", rng.beta(3, 7, 20_000), rng.beta(1, 9, 20_000))
    labels = (rng.random(20_000) < propensity).astype(int)
    cost = fair.mitigation_cost(labels, propensity, group, 0.1)
    single, equal = cost.loc["single threshold"], cost.loc["per-group thresholds"]
    assert single["selection_rate_ratio"] < 0.5 and equal["selection_rate_ratio"] > 0.99
    assert single["selected"] == equal["selected"] == 2_000
    assert (
        equal["precision"] < single["precision"]
        and equal["recall"] < single["recall"]
        and equal["lift"] < single["lift"]
    )
    assert single["lift"] == pytest.approx(single["precision"] / labels.mean())


# --------------------------------------------------------------------------------------------
# Input errors
# --------------------------------------------------------------------------------------------
def test_bad_inputs_raise_errors_that_name_the_argument():
    labels, scores, groups = customers(seed=8, n=200)
    with pytest.raises(ValueError, match="lengths differ.*'p': 199"):
        fair.subgroup_metrics(labels, scores[:-1], groups, 0.1)
    with pytest.raises(ValueError, match="y must hold only 0/1"):
        fair.subgroup_metrics(labels * 2, scores, groups, 0.1)
    with pytest.raises(ValueError, match="y must hold only 0/1"):
        fair.mitigation_cost(pd.Series(labels, dtype="Int8").where(labels > 0), scores, groups["group"], 0.1)
    with pytest.raises(ValueError, match="p must be a 1-D array of finite scores"):
        fair.selected(np.r_[scores[:-1], np.nan], 0.1)
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"share must lie in \(0, 1\]"):
            fair.equalize_selection(scores, groups["group"], share)
    with pytest.raises(ValueError, match="groups has no columns"):
        fair.subgroup_metrics(labels, scores, groups[[]], 0.1)
    with pytest.raises(ValueError, match="group has missing values"):
        fair.equalize_selection(scores, groups["group"].where(labels > 0), 0.1)
    with pytest.raises(ValueError, match="table is missing columns \\['auc'\\]"):
        fair.disparities(pd.DataFrame(columns=["attribute", "group", "n"]), metrics=("auc",))


def test_groups_with_few_buyers_cannot_drive_buyer_based_ratios():
    table = pd.DataFrame(
        {
            "attribute": ["a"] * 3,
            "group": ["x", "y", "z"],
            "n": [500, 500, 500],
            "buyers": [50, 60, 3],
            "selection_rate": [0.1, 0.1, 0.02],
            "true_positive_rate": [0.6, 0.62, 0.0],
            "auc": [0.8, 0.81, 0.5],
            "calibration_ratio": [0.9, 0.95, 0.3],
        }
    )
    kept = fair.disparities(table, min_group_size=100, min_buyers=10).set_index("metric")
    everyone = fair.disparities(table, min_group_size=100).set_index("metric")
    assert kept.at["calibration_ratio", "ratio"] > 0.9 and everyone.at["calibration_ratio", "ratio"] < 0.4
    assert kept.at["selection_rate", "below_threshold"]  # selection needs no buyers: z still counts
    assert "z (3 buyers)" in kept.at["auc", "few_buyer_groups"] and kept.at["selection_rate", "few_buyer_groups"] == ""


def test_auc_is_judged_by_its_gap_and_valueless_groups_are_never_compared():
    table = pd.DataFrame(
        {
            "attribute": ["a"] * 3,
            "group": ["x", "y", fair.NO_VISITS],
            "n": [500, 500, 500],
            "buyers": [50, 60, 40],
            "selection_rate": [0.10, 0.11, 0.0],
            "auc": [0.92, 0.76, 0.5],
        }
    )
    result = fair.disparities(table, metrics=("selection_rate", "auc"), gaps={"auc": 0.05}).set_index("metric")
    # 0.76 / 0.92 = 0.83 passes the four-fifths rule, yet a 0.16 AUC gap is large: the gap rule flags it.
    assert (
        result.at["auc", "ratio"] > 0.8
        and result.at["auc", "below_threshold"]
        and result.at["auc", "rule"] == "difference > 0.05"
    )
    # "no visits" (selection 0) is listed, not compared: the remaining ratio is 0.10 / 0.11.
    assert (
        not result.at["selection_rate", "below_threshold"]
        and "no visits (no value)" in result.at["selection_rate", "excluded_groups"]
    )


def test_ratio_intervals_cover_the_point_ratio_and_separate_a_planted_gap():
    rng = np.random.default_rng(3)
    n = 4000
    group = np.where(np.arange(n) % 2 == 0, "a", "b")
    p = rng.random(n) + np.where(group == "a", 0.3, 0.0)  # group a scores higher: selected more often
    y = (rng.random(n) < p / 2).astype(int)
    groups = pd.DataFrame({"g": group})
    intervals = fair.ratio_intervals(y, p, groups, 0.2, n_boot=200, seed=0).set_index("metric")
    point = fair.disparities(fair.subgroup_metrics(y, p, groups, 0.2)).set_index("metric")
    for metric in ("selection_rate", "true_positive_rate"):
        assert intervals.at[metric, "ci_low"] <= point.at[metric, "ratio"] <= intervals.at[metric, "ci_high"]
    assert intervals.at["selection_rate", "ci_high"] < 0.8  # the planted gap is clear, not noise
    equal = fair.ratio_intervals(y, rng.random(n), groups, 0.2, n_boot=200, seed=0).set_index("metric")
    assert equal.at["selection_rate", "ci_high"] > 0.8  # scores unrelated to the group: no clear gap


# --------------------------------------------------------------------------------------------
# Settings, and the facts the report words
# --------------------------------------------------------------------------------------------
SECTION = {
    "attributes": ["gender", "device"],
    "target_share": 0.1,
    "disparity_threshold": 0.8,
    "min_group_size": 100,
    "min_buyers": 20,
    "gaps": {"auc": 0.05},
    "uplift_min_sessions": 200,
    "bootstrap": 50,
}


def test_settings_from_params_and_their_errors():
    settings = fair.FairnessSettings.from_params(SECTION)
    assert settings.attributes == ("gender", "device") and settings.gaps == {"auc": 0.05} and settings.bootstrap == 50
    assert fair.FairnessSettings.from_params({**SECTION, "gaps": None}).gaps == {}
    with pytest.raises(ParamsError, match="robustness.fairness: missing key 'bootstrap'"):
        fair.FairnessSettings.from_params({k: v for k, v in SECTION.items() if k != "bootstrap"})
    with pytest.raises(ParamsError, match="target_share"):
        fair.FairnessSettings.from_params({**SECTION, "target_share": 0})
    with pytest.raises(ParamsError, match="disparity_threshold"):
        fair.FairnessSettings.from_params({**SECTION, "disparity_threshold": 1.2})
    with pytest.raises(ParamsError, match="min_group_size"):
        fair.FairnessSettings.from_params({**SECTION, "min_group_size": 0})


@pytest.mark.parametrize(
    ("low", "high", "where"), [(0.3, 0.6, "below"), (0.7, 0.9, "straddles"), (0.8, 0.95, "above"), (np.nan, np.nan, "")]
)
def test_interval_verdict_says_where_the_interval_lies(low, high, where):
    assert fair.interval_verdict(low, high, 0.8) == where


def test_group_disparities_add_each_ratios_interval_and_where_it_lies():
    labels, scores, groups = customers(seed=9, n=4_000, shift=0.3)
    settings = fair.FairnessSettings.from_params({**SECTION, "min_buyers": 0})
    table, disparity = fair.group_disparities(labels, scores, groups, settings, seed=0)
    assert table.equals(fair.subgroup_metrics(labels, scores, groups, 0.1))
    shifted = disparity.set_index(["attribute", "metric"]).loc[("group", "selection_rate")]
    assert shifted["below_threshold"] and shifted["interval"] == "below" and shifted["ci_high"] < 0.8
    colour = disparity.set_index(["attribute", "metric"]).loc[("colour", "selection_rate")]
    assert not colour["below_threshold"] and colour["interval"] in ("straddles", "above")
    assert (disparity.loc[disparity["metric"] == "auc", "interval"] == "").all()  # no bootstrap for a gap rule


def calibration_table(
    overall: tuple[float, float], groups: dict[str, tuple[float, float]], n: int = 500, buyers: int = 30
) -> pd.DataFrame:
    """A subgroup_metrics-shaped table: (mean score, purchase rate) overall and per group of one attribute."""
    rows = [
        {
            "attribute": "age_band",
            "group": name,
            "n": n,
            "buyers": buyers,
            "mean_score": score,
            "base_rate": rate,
            "calibration_ratio": score / rate,
        }
        for name, (score, rate) in {**groups, fair.OVERALL: overall}.items()
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("ratio", "direction"),
    [(0.73, "under"), (0.95, "calibrated"), (1.05, "calibrated"), (1.3, "over"), (np.nan, "undefined")],
)
def test_calibration_direction(ratio, direction):
    assert fair.calibration_direction(ratio) == direction


def test_calibration_reading_under_predicted_alike_after_the_purchase_rate_rose():
    table = calibration_table((0.040, 0.055), {"18-24": (0.05, 0.07), "55+": (0.03, 0.04)})
    reading = fair.calibration_reading(table, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, np.nan] * 2)
    assert reading["direction"] == "under" and reading["every_group"] and reading["alike"]
    assert reading["group_min"] == pytest.approx(0.714, abs=1e-3) and reading["group_max"] == pytest.approx(0.75)
    assert reading["training_rate"] == pytest.approx(0.1)
    assert reading["rate_shift"] == "fell" and reading["explained"] is False  # under-predicted although the rate fell
    rose = fair.calibration_reading(table, [0] * 49 + [1])
    assert rose["rate_shift"] == "rose" and rose["explained"] is True


def test_calibration_reading_when_groups_differ_or_the_scores_run_high():
    mixed = calibration_table((0.040, 0.055), {"18-24": (0.05, 0.07), "55+": (0.04, 0.04), "tiny": (0.01, 0.05)})
    mixed.loc[mixed["group"] == "tiny", "n"] = 10  # too small to count
    reading = fair.calibration_reading(mixed, [0] * 49 + [1])
    assert (reading["groups"], reading["same_direction"], reading["every_group"], reading["alike"]) == (
        2,
        1,
        False,
        False,
    )
    spread = calibration_table((0.040, 0.055), {"18-24": (0.02, 0.07), "55+": (0.06, 0.075)})
    assert fair.calibration_reading(spread, [0] * 49 + [1])["alike"] is False  # every group under, but 0.29 vs 0.80
    high = fair.calibration_reading(calibration_table((0.08, 0.05), {"a": (0.08, 0.05)}), [0] * 9 + [1])
    assert high["direction"] == "over" and high["rate_shift"] == "fell" and high["explained"] is True
    steady = fair.calibration_reading(calibration_table((0.05, 0.05), {"a": (0.05, 0.05)}), [0] * 19 + [1])
    assert steady["direction"] == "calibrated" and steady["rate_shift"] == "steady" and not steady["explained"]
    unknown = fair.calibration_reading(calibration_table((0.05, 0.05), {}), [])
    assert unknown["rate_shift"] == "unknown" and unknown["groups"] == 0 and unknown["every_group"] is False
    with pytest.raises(ValueError, match="overall row"):
        fair.calibration_reading(calibration_table((0.05, 0.05), {"a": (0.05, 0.05)}).iloc[:1], [])


def test_mitigation_costs_leave_out_device_and_name_the_largest_cost():
    rng = np.random.default_rng(6)
    n = 20_000
    groups = pd.DataFrame(
        {
            "age_band": rng.choice(["low", "high"], n),
            "region": rng.choice(["a", "b"], n),
            "device": rng.choice(["mobile", "desktop"], n),
        }
    )
    propensity = np.where(groups["age_band"] == "high", rng.beta(3, 7, n), rng.beta(1, 9, n))
    labels = (rng.random(n) < propensity).astype(int)
    costs = fair.mitigation_costs(labels, propensity, groups, 0.1)
    assert sorted(costs.index.get_level_values("attribute").unique()) == ["age_band", "region"]
    largest = fair.largest_cost(costs)
    assert largest["attribute"] == "age_band" and largest["costs_precision"] and largest["precision_loss"] > 0.01
    assert largest["precision_single"] == pytest.approx(costs.loc[("age_band", "single threshold"), "precision"])
    only_region = fair.largest_cost(costs.loc[["region"]])
    assert only_region["attribute"] == "region" and abs(only_region["precision_loss"]) < 0.01
    assert fair.mitigation_costs(labels, propensity, groups[["device"]], 0.1).empty
    assert fair.largest_cost(fair.mitigation_costs(labels, propensity, groups[["device"]], 0.1)) is None


def test_largest_cost_says_when_equal_selection_costs_no_precision():
    index = pd.MultiIndex.from_product(
        [["gender"], ["single threshold", "per-group thresholds"]], names=["attribute", "policy"]
    )
    costs = pd.DataFrame({"precision": [0.35, 0.36], "recall": [0.64, 0.65]}, index=index)
    largest = fair.largest_cost(costs)
    assert largest["costs_precision"] is False and largest["precision_loss"] == pytest.approx(-0.01)

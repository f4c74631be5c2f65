"""Tests for atelier.replay.monitor: latency, throughput, PSI drift, the drift rule and realized AUC.

Expectations come from first principles: percentiles recomputed with numpy, PSI values worked out
bin by bin, and AUCs counted pair by pair."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from sklearn.metrics import roc_auc_score

from atelier.core.config import ParamsError, load_params
from atelier.replay import monitor as mon

# --------------------------------------------------------------------------------------------
# latency and throughput
# --------------------------------------------------------------------------------------------


def test_latency_summary_matches_numpy_in_milliseconds():
    seconds = np.random.default_rng(2).lognormal(np.log(0.02), 0.6, 5000)
    summary = mon.latency_summary(seconds)
    assert summary["count"] == 5000
    assert summary["mean"] == pytest.approx(seconds.mean() * 1000)
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        assert summary[key] == pytest.approx(np.percentile(seconds, q) * 1000)
    assert summary["max"] == pytest.approx(seconds.max() * 1000)
    assert summary["p50"] < summary["p90"] < summary["p99"] < summary["max"]


def test_latency_summary_empty_and_missing():
    empty = mon.latency_summary(np.array([]))
    assert empty["count"] == 0 and math.isnan(empty["p99"])
    with pytest.raises(ValueError, match="NaN"):
        mon.latency_summary(np.array([0.01, np.nan]))


def test_latency_histogram_counts_by_hand_and_keeps_every_bin():
    table = mon.latency_histogram(np.array([0.0, 0.05, 0.1, 0.3, 0.35, 1.99, 2.0, 7.5]), width_ms=0.1, limit_ms=2.0)
    assert len(table) == 21 and table["count"].sum() == 8
    counts = dict(zip(table["bin"], table["count"]))
    assert counts["0.0-0.1 ms"] == 2 and counts["0.1-0.2 ms"] == 1 and counts["0.3-0.4 ms"] == 2  # [low, high)
    assert counts["1.9-2.0 ms"] == 1 and counts["2.0+ ms"] == 2 and counts["0.5-0.6 ms"] == 0
    assert table["high_ms"].iloc[-1] == np.inf and table["low_ms"].iloc[-1] == pytest.approx(2.0)


def test_latency_histogram_labels_sort_as_text_in_bin_order():
    # A bar chart's category axis sorts the labels as text: zero-padding keeps 2 before 10.
    for width, limit in ((0.1, 2.0), (1.0, 20.0), (0.5, 12.0)):
        labels = mon.latency_histogram(np.array([1.0]), width_ms=width, limit_ms=limit)["bin"].tolist()
        assert labels == sorted(labels)


def test_latency_histogram_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        mon.latency_histogram(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="0 or more"):
        mon.latency_histogram(np.array([-0.1]))
    with pytest.raises(ValueError, match="whole number of bins"):
        mon.latency_histogram(np.array([0.1]), width_ms=0.3, limit_ms=1.0)
    assert mon.latency_histogram(np.array([]))["count"].sum() == 0


def test_throughput():
    assert mon.throughput(1000, 4.0) == 250.0
    assert mon.throughput(0, 1.0) == 0.0
    for seconds in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="seconds must be positive"):
            mon.throughput(10, seconds)
    with pytest.raises(ValueError, match="events"):
        mon.throughput(-1, 1.0)


# --------------------------------------------------------------------------------------------
# psi
# --------------------------------------------------------------------------------------------


def test_psi_is_zero_for_identical_and_small_for_same_distribution():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=50_000)
    assert mon.psi(reference, reference) == 0.0
    assert mon.psi(reference, rng.permutation(reference)) == 0.0
    # Two samples of one distribution: PSI ~ (bins - 1) * (1/n + 1/m) ~ 0.0004 here.
    assert mon.psi(reference, rng.normal(size=50_000)) < 0.005


def test_psi_of_a_shifted_normal_is_large_and_nearly_symmetric():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=50_000), rng.normal(1.0, 1.0, size=50_000)
    forward, backward = mon.psi(a, b), mon.psi(b, a)
    # For N(0,1) vs N(mu,1) the unbinned PSI (symmetric KL) is mu^2 = 1; binning can only lose some.
    assert 0.75 < forward < 1.0
    assert forward == pytest.approx(backward, rel=0.1)
    assert mon.psi(a, rng.normal(0.5, 1.0, size=50_000)) < forward
    assert mon.psi(a, rng.normal(0.5, 1.0, size=50_000)) > 0.15


def test_psi_puts_missing_values_in_their_own_bin():
    reference = np.random.default_rng(5).normal(size=10_000)
    current = np.concatenate([reference, np.full(2500, np.nan)])  # 20% missing, the rest unchanged
    # Every value bin keeps 0.8 of its share; the NaN bin goes from epsilon to 0.2.
    expected = -0.2 * math.log(0.8) + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    assert mon.psi(reference, current) == pytest.approx(expected, rel=1e-9)
    assert mon.psi(current, current) == 0.0
    assert mon.psi(pd.Series(current, dtype="Float64"), current) == 0.0  # pandas NA counts as missing


def test_psi_gives_zeros_of_a_zero_heavy_feature_their_own_bin():
    positive = np.random.default_rng(6).exponential(3.0, 300)
    reference = np.concatenate([np.zeros(700), positive])  # 70% zeros
    current = np.concatenate([np.zeros(2700), positive])   # 90% zeros, same positive values
    assert mon.psi_cuts(reference)[0] == 0.0
    # zero bin 0.7 -> 0.9; every positive bin keeps 1/3 of its share (0.3 -> 0.1 in total)
    expected = 0.2 * math.log(0.9 / 0.7) + 0.2 * math.log(3.0)
    assert mon.psi(reference, current) == pytest.approx(expected, rel=1e-9)
    assert mon.psi(reference, reference) == 0.0


def test_psi_on_a_discrete_and_a_constant_feature():
    reference = np.repeat([0.0, 1.0, 2.0, 3.0], 1000)
    np.testing.assert_array_equal(mon.psi_cuts(reference), [0, 1, 2, 3])
    current = np.full(500, 3.0)
    eps = 1e-4
    expected = 3 * (eps - 0.25) * math.log(eps / 0.25) + 0.75 * math.log(1 / 0.25)
    assert mon.psi(reference, current) == pytest.approx(expected, rel=1e-9)
    constant = np.full(100, 5.0)
    assert mon.psi(constant, constant) == 0.0
    assert mon.psi(constant, constant + 1) > 10


def test_psi_rejects_bad_input():
    with pytest.raises(ValueError, match="bins"):
        mon.psi([1.0, 2.0], [1.0], bins=1)
    with pytest.raises(ValueError, match="values on both sides"):
        mon.psi([], [1.0])
    with pytest.raises(ValueError, match="numeric"):
        mon.psi(["a", "b"], ["a"])


# --------------------------------------------------------------------------------------------
# drift_by_period and DriftRule
# --------------------------------------------------------------------------------------------


def test_drift_by_period_shape_order_and_a_spike():
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"score": rng.normal(size=5000), "sessions_90d": rng.poisson(2.0, 5000)})
    periods = pd.period_range("2025-11-03", periods=6, freq="D")
    frames = []
    for period in periods:
        shift = 1.5 if period == periods[3] else 0.0
        frames.append(pd.DataFrame({"day": period, "score": rng.normal(shift, 1.0, 2000),
                                    "sessions_90d": rng.poisson(2.0, 2000)}))
    current = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=1)
    drift = mon.drift_by_period(reference, current, ["score", "sessions_90d"], "day")
    assert drift.shape == (6, 2)
    assert list(drift.columns) == ["score", "sessions_90d"]
    assert list(drift.index) == list(periods) and drift.index.name == "day"
    assert drift.loc[periods[3], "score"] > 1.0
    assert (drift["score"].drop(periods[3]) < 0.02).all()
    assert (drift["sessions_90d"] < 0.02).all()
    with pytest.raises(ValueError, match="missing \\['engagement_score'\\]"):
        mon.drift_by_period(reference, current, ["score", "engagement_score"], "day")


DRIFT = pd.DataFrame(
    {
        "score": [0.05, 0.30, 0.05, 0.30, 0.30, 0.05, 0.30, 0.30, 0.30, 0.30],
        "recency_days": [0.25, 0.05, 0.25, 0.05, 0.25, 0.05, 0.05, 0.05, 0.05, 0.05],
    },
    index=pd.period_range("2025-11-01", periods=10, freq="D"),
)


def test_drift_rule_fires_at_the_kth_consecutive_period():
    days = DRIFT.index
    assert mon.DriftRule(("score",), 0.2, 3).first_trigger(DRIFT) == days[8]
    assert mon.DriftRule(("score",), 0.2, 2).first_trigger(DRIFT) == days[4]
    assert mon.DriftRule(("score",), 0.2, 1).first_trigger(DRIFT) == days[1]
    assert mon.DriftRule(("score",), 0.2, 5).first_trigger(DRIFT) is None


def test_drift_rule_ignores_isolated_spikes_and_runs_split_across_columns():
    # recency_days spikes every other day and score on the days between: no column has a run of 2
    alternating = DRIFT.iloc[:5]
    assert mon.DriftRule(("recency_days",), 0.2, 2).first_trigger(alternating) is None
    assert mon.DriftRule(("score", "recency_days"), 0.2, 2).first_trigger(alternating.iloc[:4]) is None
    # the earliest column wins
    assert mon.DriftRule(("recency_days", "score"), 0.2, 2).first_trigger(DRIFT) == DRIFT.index[4]


def test_drift_rule_threshold_is_strict_and_nan_breaks_a_run():
    at_threshold = pd.DataFrame({"score": [0.2, 0.2, 0.2]})
    assert mon.DriftRule(("score",), 0.2, 1).first_trigger(at_threshold) is None
    gap = pd.DataFrame({"score": [0.3, np.nan, 0.3, 0.3]}, index=["w1", "w2", "w3", "w4"])
    assert mon.DriftRule(("score",), 0.2, 2).first_trigger(gap) == "w4"


def test_drift_rule_validation_and_params():
    rule = mon.DriftRule(["score"], 0.2, 2)  # a list is frozen into a tuple
    assert rule.columns == ("score",) and hash(rule)
    with pytest.raises(ValueError, match="missing \\['recency_days'\\]"):
        mon.DriftRule(("recency_days",), 0.2, 2).first_trigger(DRIFT[["score"]])
    with pytest.raises(ValueError, match="consecutive"):
        mon.DriftRule(("score",), 0.2, 0)
    with pytest.raises(ValueError, match="threshold"):
        mon.DriftRule(("score",), -0.1, 2)
    with pytest.raises(ValueError, match="at least one column"):
        mon.DriftRule((), 0.2, 2)
    section = load_params(REPO / "params.yaml")["replay"]["drift"]
    from_params = mon.DriftRule.from_params(section)
    assert from_params.columns == tuple(section["columns"])
    assert (from_params.threshold, from_params.consecutive) == (section["psi_threshold"], section["consecutive_days"])
    with pytest.raises(ParamsError, match="psi_threshold"):
        mon.DriftRule.from_params({k: v for k, v in section.items() if k != "psi_threshold"})


# --------------------------------------------------------------------------------------------
# realized_auc
# --------------------------------------------------------------------------------------------


def hand_made_scores() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scorings over four weeks and the orders that label them (horizon 7 days, data end 2025-01-20 12:00)."""
    t = pd.Timestamp
    scores = pd.DataFrame(
        [
            ("D", t("2025-01-01 10:00"), 0.4),   # week of Dec 30: one class only
            ("A", t("2025-01-06 10:00"), 0.9),   # week of Jan 6: label 1 (order Jan 8)
            ("B", t("2025-01-06 10:00"), 0.8),   # 0: order 1 s after the horizon; an earlier order doesn't count
            ("C", t("2025-01-06 10:00"), 0.3),   # 1: order exactly at the horizon
            ("D", t("2025-01-06 10:00"), 0.1),   # 0: never orders
            ("E", t("2025-01-06 10:00"), 0.5),   # 0: order at the scoring instant is not after it
            ("A", t("2025-01-13 09:00"), 0.7),   # week of Jan 13: 0 (A's order was before)
            ("G", t("2025-01-13 11:00"), 0.2),   # 1, mature: Jan 20 11:00 <= data end
            ("H", t("2025-01-13 13:00"), 0.9),   # would be 1, but immature: Jan 20 13:00 > data end
            ("G", t("2025-01-20 08:00"), 0.6),   # week of Jan 20: immature
        ],
        columns=["customer_id", "scored_at", "score"],
    )
    orders = pd.DataFrame(
        [
            ("A", t("2025-01-08 12:00")),
            ("B", t("2025-01-05 12:00")),
            ("B", t("2025-01-13 10:00:01")),
            ("C", t("2025-01-13 10:00")),
            ("E", t("2025-01-06 10:00")),
            ("G", t("2025-01-14 09:00")),
            ("H", t("2025-01-15 09:00")),
            ("G", t("2025-01-21 09:00")),
        ],
        columns=["customer_id", "ordered_at"],
    )
    return scores, orders


def test_realized_auc_by_hand():
    scores, orders = hand_made_scores()
    result = mon.realized_auc(scores, orders, horizon_days=7, data_end=pd.Timestamp("2025-01-20 12:00"))
    assert list(result.columns) == ["scorings", "mature_scorings", "buyers", "roc_auc", "mature_share"]
    weeks = pd.period_range("2024-12-30", periods=4, freq="W")
    assert list(result.index) == list(weeks)
    assert result["scorings"].tolist() == [1, 5, 3, 1]
    assert result["mature_scorings"].tolist() == [1, 5, 2, 0]
    assert result["buyers"].tolist() == [0, 2, 1, 0]
    assert result["mature_share"].tolist() == pytest.approx([1.0, 1.0, 2 / 3, 0.0])
    # week of Jan 6: positives 0.9, 0.3; negatives 0.8, 0.1, 0.5 -> 0.9 beats 3, 0.3 beats 1: 4 of 6 pairs
    assert result["roc_auc"].iloc[1] == pytest.approx(4 / 6)
    # week of Jan 13 (mature only): positive 0.2 < negative 0.7; H's 0.9 must not count
    assert result["roc_auc"].iloc[2] == 0.0
    assert math.isnan(result["roc_auc"].iloc[0]) and math.isnan(result["roc_auc"].iloc[3])


def test_realized_auc_by_day_and_id_types():
    scores, orders = hand_made_scores()
    daily = mon.realized_auc(scores, orders, horizon_days=7, data_end=pd.Timestamp("2025-01-20 12:00"), period="D")
    assert daily.loc[pd.Period("2025-01-06", "D"), "roc_auc"] == pytest.approx(4 / 6)
    assert daily["scorings"].sum() == len(scores)
    codes = {name: i for i, name in enumerate("ABCDEGH")}
    numeric = mon.realized_auc(scores.assign(customer_id=scores["customer_id"].map(codes).astype("int64")),
                               orders.assign(customer_id=orders["customer_id"].map(codes).astype("int32")),
                               horizon_days=7, data_end=pd.Timestamp("2025-01-20 12:00"))
    weekly = mon.realized_auc(scores, orders, horizon_days=7, data_end=pd.Timestamp("2025-01-20 12:00"))
    pd.testing.assert_frame_equal(numeric, weekly)
    with pytest.raises(ValueError, match="both are numbers or both are text"):
        mon.realized_auc(scores, orders.assign(customer_id=orders["customer_id"].map(codes)), horizon_days=7,
                         data_end=pd.Timestamp("2025-01-20 12:00"))
    with pytest.raises(ValueError, match="missing \\['ordered_at'\\]"):
        mon.realized_auc(scores, orders.rename(columns={"ordered_at": "at"}), horizon_days=7,
                         data_end=pd.Timestamp("2025-02-01"))


def test_realized_auc_matches_a_brute_force_labelling():
    rng = np.random.default_rng(10)
    start = pd.Timestamp("2025-03-03")
    n_scores, n_orders = 600, 250
    scores = pd.DataFrame({
        "customer_id": rng.integers(0, 60, n_scores),
        "scored_at": start + pd.to_timedelta(rng.integers(0, 42 * 24 * 60, n_scores), unit="min"),
        "score": rng.random(n_scores),
    })
    orders = pd.DataFrame({
        "customer_id": rng.integers(0, 60, n_orders),
        "ordered_at": start + pd.to_timedelta(rng.integers(0, 49 * 24 * 60, n_orders), unit="min"),
    })
    horizon, data_end = 7, pd.Timestamp("2025-04-07")
    by_customer = orders.groupby("customer_id")["ordered_at"].apply(list).to_dict()
    rows = []
    for row in scores.itertuples():
        end = row.scored_at + pd.Timedelta(days=horizon)
        label = any(row.scored_at < at <= end for at in by_customer.get(row.customer_id, []))
        rows.append((row.scored_at.to_period("W"), end <= data_end, label, row.score))
    truth = pd.DataFrame(rows, columns=["period", "mature", "label", "score"])
    result = mon.realized_auc(scores.sample(frac=1.0, random_state=2), orders, horizon_days=horizon, data_end=data_end)
    assert len(result) == truth["period"].nunique()
    for period, group in truth.groupby("period"):
        mature = group[group["mature"]]
        assert result.loc[period, "scorings"] == len(group)
        assert result.loc[period, "mature_scorings"] == len(mature)
        assert result.loc[period, "buyers"] == mature["label"].sum()
        if mature["label"].nunique() == 2:
            assert result.loc[period, "roc_auc"] == pytest.approx(roc_auc_score(mature["label"], mature["score"]))
        else:
            assert math.isnan(result.loc[period, "roc_auc"])
    # the last weeks are (partly) immature, the first ones fully mature
    assert result["mature_share"].iloc[0] == 1.0 and result["mature_share"].iloc[-1] == 0.0



def test_scorings_are_the_scored_decisions():
    decisions = pd.DataFrame({"customer_id": [1, 2, 3],
                              "ts": pd.to_datetime(["2025-05-01", "2025-05-02", "2025-05-03"]),
                              "propensity": [0.2, np.nan, 0.7], "banner": ["a", "b", "c"]})
    scorings = mon.scorings(decisions)
    assert scorings.columns.tolist() == ["customer_id", "scored_at", "score"]
    assert scorings["customer_id"].tolist() == [1, 3] and scorings["score"].tolist() == [0.2, 0.7]

"""Tests for atelier.replay.abtest: arm assignment, per-arm summaries, the uplift with a customer-cluster
bootstrap, sample sizes, and the replay's A/B result.

Expectations come from first principles: hash draws recomputed by hand, counts added up by hand,
simulated experiments with exactly known conversion rates, the delta-method standard error of a
ratio, the design effect of clustered sessions, and a Monte Carlo check of the power behind the
sample-size formula."""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from atelier.replay import abtest as ab

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def exact_sessions(rng: np.random.Generator, customers: int, per_customer: int,
                   rates: dict[str, float]) -> pd.DataFrame:
    """Independent sessions whose realized conversion rate in each arm is exactly `rates[arm]`.

    Each arm has `customers` customers with `per_customer` sessions; exactly rate * sessions of
    them convert, at random positions; revenue is 50 + 10 * (position mod 7) on converted ones.
    """
    frames = []
    for offset, (arm, rate) in enumerate(rates.items()):
        total = customers * per_customer
        converted = np.zeros(total, dtype=bool)
        converted[rng.choice(total, size=round(rate * total), replace=False)] = True
        frames.append(pd.DataFrame({
            "customer_id": offset * customers + np.repeat(np.arange(customers), per_customer),
            "arm": arm,
            "converted": converted,
            "revenue": np.where(converted, 50.0 + 10.0 * (np.arange(total) % 7), 0.0),
        }))
    return pd.concat(frames, ignore_index=True)


def ci_width(result: dict[str, float]) -> float:
    return result["ci_high"] - result["ci_low"]


# --------------------------------------------------------------------------------------------
# assign_arm
# --------------------------------------------------------------------------------------------


def test_assign_arm_matches_a_hand_computed_hash():
    ids = list(range(500))
    arms = ab.assign_arm(ids, seed=7, treatment_share=0.5)
    for customer_id, arm in zip(ids, arms):
        digest = hashlib.sha256(f"atelier-ab:7:{customer_id}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        assert arm == ("treatment" if draw < 0.5 else "control")
    assert set(arms) == set(ab.ARMS)


def test_assign_arm_is_deterministic_across_calls_orders_batches_and_types():
    ids = np.arange(2000)
    arms = ab.assign_arm(ids, seed=3)
    np.testing.assert_array_equal(arms, ab.assign_arm(ids, seed=3))
    shuffled = np.random.default_rng(0).permutation(ids)
    by_id = dict(zip(ids.tolist(), arms))
    assert [by_id[i] for i in shuffled.tolist()] == ab.assign_arm(shuffled, seed=3).tolist()
    batches = np.concatenate([ab.assign_arm(ids[:700], seed=3), ab.assign_arm(ids[700:], seed=3)])
    np.testing.assert_array_equal(arms, batches)
    # int, numpy int, text and a pandas Series of the same ids share arms
    np.testing.assert_array_equal(arms, ab.assign_arm([str(i) for i in ids], seed=3))
    np.testing.assert_array_equal(arms, ab.assign_arm(pd.Series(ids, dtype="int32"), seed=3))
    np.testing.assert_array_equal(arms[:50], ab.assign_arm([np.int64(i) for i in ids[:50]], seed=3))
    assert ab.assign_arm(["C-0042"], seed=3)[0] == ab.assign_arm(("x", "C-0042"), seed=3)[1]


@pytest.mark.parametrize("share", [0.5, 0.1, 0.8])
def test_assign_arm_share_is_within_binomial_tolerance(share):
    n = 100_000
    treated = np.mean(ab.assign_arm(np.arange(n), seed=11, treatment_share=share) == "treatment")
    assert abs(treated - share) < 4 * math.sqrt(share * (1 - share) / n)


def test_assign_arm_extreme_shares_and_nesting():
    ids = np.arange(5000)
    assert set(ab.assign_arm(ids, seed=1, treatment_share=0.0)) == {"control"}
    assert set(ab.assign_arm(ids, seed=1, treatment_share=1.0)) == {"treatment"}
    # Ramping the share up only moves customers from control to treatment.
    small = ab.assign_arm(ids, seed=1, treatment_share=0.2) == "treatment"
    large = ab.assign_arm(ids, seed=1, treatment_share=0.5) == "treatment"
    assert small.sum() < large.sum() and not (small & ~large).any()


def test_assign_arm_changes_with_seed_and_salt():
    ids = np.arange(20_000)
    base = ab.assign_arm(ids, seed=1)
    for other in (ab.assign_arm(ids, seed=2), ab.assign_arm(ids, seed=1, salt="another-test")):
        agreement = np.mean(base == other)
        # independent fair coins agree half the time
        assert abs(agreement - 0.5) < 4 * math.sqrt(0.25 / len(ids))


def test_assign_arm_rejects_a_share_outside_zero_one():
    with pytest.raises(ValueError, match="treatment_share"):
        ab.assign_arm([1, 2], seed=0, treatment_share=1.5)
    with pytest.raises(ValueError, match="treatment_share"):
        ab.assign_arm([1, 2], seed=0, treatment_share=-0.1)


# --------------------------------------------------------------------------------------------
# arm_summary
# --------------------------------------------------------------------------------------------


SMALL = pd.DataFrame({
    "customer_id": [1, 1, 2, 3, 3, 3, 4, 5],
    "arm": ["control", "control", "control", "treatment", "treatment", "treatment", "treatment", "treatment"],
    "converted": [True, False, False, True, True, False, False, True],
    "revenue": [40.0, 0.0, 0.0, 100.0, 20.0, 0.0, 0.0, 30.0],
})


def test_arm_summary_by_hand():
    summary = ab.arm_summary(SMALL.iloc[::-1])  # row order does not matter
    assert list(summary.index) == ["control", "treatment"]
    assert list(summary.columns) == ["sessions", "customers", "conversions", "conversion_rate", "revenue",
                                     "revenue_per_session", "average_order_value"]
    control, treatment = summary.loc["control"], summary.loc["treatment"]
    assert (control["sessions"], control["customers"], control["conversions"]) == (3, 2, 1)
    assert (treatment["sessions"], treatment["customers"], treatment["conversions"]) == (5, 3, 3)
    assert control["conversion_rate"] == pytest.approx(1 / 3)
    assert treatment["conversion_rate"] == pytest.approx(3 / 5)
    assert control["revenue"] == 40.0 and treatment["revenue"] == 150.0
    assert control["revenue_per_session"] == pytest.approx(40 / 3)
    assert treatment["revenue_per_session"] == pytest.approx(30.0)
    assert control["average_order_value"] == pytest.approx(40.0)
    assert treatment["average_order_value"] == pytest.approx(50.0)


def test_arm_summary_without_conversions_and_with_bad_input():
    none_converted = SMALL.assign(converted=False, revenue=0.0)
    assert ab.arm_summary(none_converted)["average_order_value"].isna().all()
    with pytest.raises(ValueError, match="missing \\['revenue'\\]"):
        ab.arm_summary(SMALL.drop(columns="revenue"))
    with pytest.raises(ValueError, match="revenue 0"):
        ab.arm_summary(SMALL.assign(revenue=[40.0, np.nan, 0, 100, 20, 0, 0, 30]))
    with pytest.raises(ValueError, match="holdout"):
        ab.arm_summary(SMALL.assign(arm=["holdout"] + SMALL["arm"].tolist()[1:]))


# --------------------------------------------------------------------------------------------
# uplift
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def effect_sessions() -> pd.DataFrame:
    """25,000 customers x 4 sessions per arm; conversion exactly 5% in control and 6% in treatment."""
    return exact_sessions(np.random.default_rng(5), 25_000, 4, {"control": 0.05, "treatment": 0.06})


def test_uplift_recovers_a_known_effect(effect_sessions):
    result = ab.uplift(effect_sessions, n_boot=1000, seed=1)
    assert result["control"] == pytest.approx(0.05) and result["treatment"] == pytest.approx(0.06)
    assert result["relative_uplift"] == pytest.approx(0.2)
    assert result["absolute_difference"] == pytest.approx(0.01)
    assert result["ci_low"] < 0.2 < result["ci_high"]
    assert result["ci_low"] > 0
    assert result["p_value_two_sided"] < 0.01
    assert result["n_boot"] == 1000
    # Sessions are independent here, so the interval should match the delta method:
    # var(t / c) ~ (t / c)^2 * ((1 - c) / (n c) + (1 - t) / (n t)) with n sessions per arm.
    n = 100_000
    sd = 1.2 * math.sqrt(0.95 / (n * 0.05) + 0.94 / (n * 0.06))
    assert ci_width(result) == pytest.approx(2 * 1.959964 * sd, rel=0.15)


def test_uplift_without_effect_covers_zero(effect_sessions):
    no_effect = exact_sessions(np.random.default_rng(6), 25_000, 4, {"control": 0.05, "treatment": 0.05})
    result = ab.uplift(no_effect, n_boot=500, seed=1)
    assert result["relative_uplift"] == pytest.approx(0.0, abs=1e-12)
    assert result["ci_low"] < 0 < result["ci_high"]
    assert result["p_value_two_sided"] > 0.5


def test_uplift_p_value_agrees_with_a_two_proportion_z_test():
    # 100,000 sessions per arm, treatment rate set so the pooled z statistic is about 2.
    sessions = exact_sessions(np.random.default_rng(8), 10_000, 10, {"control": 0.05, "treatment": 0.05195})
    summary = ab.arm_summary(sessions)
    c, t = summary["conversion_rate"]
    n = summary["sessions"].iloc[0]
    pooled = (c + t) / 2
    z = (t - c) / math.sqrt(pooled * (1 - pooled) * 2 / n)
    expected = 2 * (1 - NormalDist().cdf(abs(z)))
    result = ab.uplift(sessions, n_boot=2000, seed=3)
    assert 0.02 < expected < 0.08
    assert result["p_value_two_sided"] == pytest.approx(expected, abs=0.02)


def test_cluster_bootstrap_is_wider_than_a_session_bootstrap_for_correlated_sessions():
    # A tenth of customers are buyers who convert half their sessions; the rest never convert:
    # sessions of one customer are strongly correlated (the design effect is about 5).
    rng = np.random.default_rng(9)
    customers, per_customer = 8000, 10
    frames = []
    for offset, arm in enumerate(ab.ARMS):
        buyer = np.repeat(rng.random(customers) < 0.1, per_customer)
        converted = buyer & (rng.random(customers * per_customer) < 0.5)
        frames.append(pd.DataFrame({"customer_id": offset * customers + np.repeat(np.arange(customers), per_customer),
                                    "arm": arm, "converted": converted, "revenue": np.where(converted, 60.0, 0.0)}))
    sessions = pd.concat(frames, ignore_index=True)
    clustered = ab.uplift(sessions, n_boot=600, seed=4)
    naive = ab.uplift(sessions.assign(customer_id=np.arange(len(sessions))), n_boot=600, seed=4)
    assert clustered["relative_uplift"] == naive["relative_uplift"]
    # Design effect = variance of per-customer conversions / (sessions * p * (1 - p)).
    per_customer_conversions = sessions.groupby("customer_id")["converted"].sum()
    p = sessions["converted"].mean()
    design_effect = per_customer_conversions.var() / (per_customer * p * (1 - p))
    assert design_effect > 3
    ratio = ci_width(clustered) / ci_width(naive)
    assert ratio > 1.8
    assert ratio == pytest.approx(math.sqrt(design_effect), rel=0.2)


def test_uplift_is_deterministic_for_a_seed_and_ignores_row_order(effect_sessions):
    sample = effect_sessions.iloc[::20]
    first = ab.uplift(sample, n_boot=300, seed=12)
    assert ab.uplift(sample, n_boot=300, seed=12) == first
    assert ab.uplift(sample.sample(frac=1.0, random_state=0), n_boot=300, seed=12) == first
    assert ab.uplift(sample, n_boot=300, seed=13)["ci_low"] != first["ci_low"]


def test_uplift_revenue_metrics_by_hand():
    # control: revenue 40 over 3 sessions and 1 order; treatment: 150 over 5 sessions and 3 orders
    per_session = ab.uplift(SMALL, metric="revenue_per_session", n_boot=50)
    assert per_session["control"] == pytest.approx(40 / 3) and per_session["treatment"] == pytest.approx(30.0)
    assert per_session["relative_uplift"] == pytest.approx(30 / (40 / 3) - 1)
    assert per_session["absolute_difference"] == pytest.approx(30 - 40 / 3)
    order_value = ab.uplift(SMALL, metric="average_order_value", n_boot=50)
    assert order_value["relative_uplift"] == pytest.approx(50 / 40 - 1)
    # The interval is the percentile interval of the same draws: a lower level gives a nested, narrower one.
    narrower = ab.uplift(SMALL, metric="average_order_value", n_boot=50, level=0.5)
    assert order_value["ci_low"] <= narrower["ci_low"] <= narrower["ci_high"] <= order_value["ci_high"]
    assert ci_width(narrower) < ci_width(order_value)
    # Draws where the control arm resampled only customer 2 (no order) have no order value: left out.
    assert 0 < order_value["n_boot"] < 50


def test_uplift_is_undefined_when_control_has_no_conversions_and_rejects_bad_input():
    no_control_orders = SMALL.assign(converted=SMALL["arm"].eq("treatment") & SMALL["converted"])
    result = ab.uplift(no_control_orders, n_boot=50)
    assert result["control"] == 0 and math.isnan(result["relative_uplift"]) and math.isnan(result["ci_low"])
    assert result["absolute_difference"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="metric must be one of"):
        ab.uplift(SMALL, metric="click_rate")
    with pytest.raises(ValueError, match="both arms"):
        ab.uplift(SMALL[SMALL["arm"] == "control"])
    with pytest.raises(ValueError, match="level"):
        ab.uplift(SMALL, level=95)
    with pytest.raises(ValueError, match="n_boot"):
        ab.uplift(SMALL, n_boot=0)


# --------------------------------------------------------------------------------------------
# sessions_needed
# --------------------------------------------------------------------------------------------


def test_sessions_needed_matches_the_textbook_formula():
    p1, p2 = 0.05, 0.06
    z_alpha, z_power = NormalDist().inv_cdf(0.975), NormalDist().inv_cdf(0.8)
    pooled = (p1 + p2) / 2
    spread = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    by_hand = spread**2 / (p2 - p1) ** 2
    n = ab.sessions_needed(0.05, 0.2)
    assert n == math.ceil(by_hand) == 8158
    # the simpler unpooled formula gives nearly the same
    assert abs(n - (z_alpha + z_power) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2) < 10


def test_sessions_needed_delivers_the_requested_power():
    n = ab.sessions_needed(0.05, 0.2)
    rng = np.random.default_rng(21)
    trials = 40_000
    z_alpha = NormalDist().inv_cdf(0.975)

    def power(sessions: int) -> float:
        c = rng.binomial(sessions, 0.05, trials) / sessions
        t = rng.binomial(sessions, 0.06, trials) / sessions
        pooled = (c + t) / 2
        z = (t - c) / np.sqrt(pooled * (1 - pooled) * 2 / sessions)
        return float(np.mean(np.abs(z) > z_alpha))

    assert power(n) == pytest.approx(0.8, abs=0.01)
    assert power(n // 2) < 0.6


def test_sessions_needed_grows_as_the_effect_shrinks_or_the_test_tightens():
    sizes = [ab.sessions_needed(0.05, uplift) for uplift in (0.5, 0.3, 0.2, 0.1, 0.05)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    # roughly 1 / uplift^2
    assert 3.5 < sizes[3] / sizes[2] < 4.3
    assert ab.sessions_needed(0.05, 0.2, alpha=0.01) > ab.sessions_needed(0.05, 0.2)
    assert ab.sessions_needed(0.05, 0.2, power=0.9) > ab.sessions_needed(0.05, 0.2)
    assert ab.sessions_needed(0.05, -0.2) > 0


@pytest.mark.parametrize(
    ("p_control", "relative_uplift", "options", "message"),
    [
        (0.05, 0.0, {}, "relative_uplift is 0"),
        (0.0, 0.2, {}, "p_control"),
        (1.0, 0.2, {}, "p_control"),
        (1.3, 0.2, {}, "p_control"),
        (0.6, 0.8, {}, "not a probability"),
        (0.05, -1.0, {}, "not a probability"),
        (0.05, 0.2, {"alpha": 0.0}, "alpha"),
        (0.05, 0.2, {"power": 1.0}, "power"),
    ],
)
def test_sessions_needed_errors(p_control, relative_uplift, options, message):
    with pytest.raises(ValueError, match=message):
        ab.sessions_needed(p_control, relative_uplift, **options)



# --------------------------------------------------------------------------------------------
# The replay's A/B result
# --------------------------------------------------------------------------------------------
def test_measure_is_the_arm_summary_and_the_uplifts_of_the_visits():
    visits = SMALL.rename(columns={"converted": "purchased"}).assign(views=3)
    result = ab.measure(visits, seed=5, n_boot=40)
    assert result["arms"] == ab.arm_summary(SMALL).to_dict(orient="index")
    for key, metric in (("conversion", "conversion_rate"), ("revenue_per_session", "revenue_per_session"),
                        ("average_order_value", "average_order_value")):
        assert result[key] == ab.uplift(SMALL, metric=metric, n_boot=40, seed=5)


@pytest.mark.parametrize("low, high, covers", [(-0.1, 0.2, True), (0.0, 0.3, True), (0.05, 0.3, False),
                                               (-0.4, -0.01, False), (math.nan, math.nan, None)])
def test_covers_zero(low, high, covers):
    assert ab.covers_zero({"ci_low": low, "ci_high": high}) is covers


def test_sample_sizes_for_the_measured_uplift_and_the_case_studys():
    sizes = ab.sample_sizes({"control": 0.03, "relative_uplift": 0.29})
    assert sizes == {"sessions_needed_per_arm": ab.sessions_needed(0.03, 0.29),
                     "sessions_needed_for_15_percent": ab.sessions_needed(0.03, ab.CASE_STUDY_UPLIFT)}
    assert sizes["sessions_needed_per_arm"] < sizes["sessions_needed_for_15_percent"]
    for uplift in (0.0, -0.1, math.nan):  # no positive effect: no sample size detects it
        assert ab.sample_sizes({"control": 0.03, "relative_uplift": uplift})["sessions_needed_per_arm"] is None
    assert ab.sample_sizes({"control": 0.0, "relative_uplift": 0.2}) == {"sessions_needed_per_arm": None,
                                                                          "sessions_needed_for_15_percent": None}
    assert ab.sample_sizes({"control": 0.9, "relative_uplift": 0.05})["sessions_needed_for_15_percent"] is None

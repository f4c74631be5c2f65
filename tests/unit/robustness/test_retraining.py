"""Tests for atelier.robustness.retraining: monthly cutoffs, the leakage rule, censored snapshots, what retraining
buys under concept drift, the drift trigger, shared fits, determinism, the parameter errors, and the facts the
report words (outcome, best policies with ties, drift reading), on every branch."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from atelier.core.config import ParamsError
from atelier.model import candidates
from atelier.robustness import retraining

HORIZON = 30
CUTOFFS = retraining.monthly_cutoffs("2025-01-01", "2025-07-01")
SETTINGS = dataclasses.replace(
    candidates.ModelSettings.from_params(tiny_params()["model"], tiny_params()["seed"]), threads=1
)
NUMERIC, CATEGORICAL = ["a", "b", "x"], ["region"]
EPOCH = pd.Timestamp("2025-01-01")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def synthetic_snapshots(
    *,
    switch_at: str | None = "2025-04-01",
    shifted: tuple[str, ...] = (),
    censored_from: str | None = None,
    customers: int = 400,
    seed: int = 0,
) -> pd.DataFrame:
    """Monthly snapshots: buying depends on `a` before `switch_at`, on `b` from then on.

    `x` is noise that moves up by 2 at the cutoffs in `shifted` (a covariate shift for the drift rule);
    snapshots from `censored_from` on have no label, as prep writes them.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for cutoff in CUTOFFS:
        a, b, x = rng.normal(size=(3, customers))
        if cutoff in {pd.Timestamp(c) for c in shifted}:
            x = x + 2.0
        driver = b if switch_at is not None and cutoff >= pd.Timestamp(switch_at) else a
        label = rng.random(customers) < 1 / (1 + np.exp(-(-1.0 + 2.5 * driver)))
        frame = pd.DataFrame(
            {
                "cutoff": cutoff,
                "a": a,
                "b": b,
                "x": x,
                "snapshot_day": float((cutoff - EPOCH).days),
                "region": pd.Categorical(rng.choice(["north", "south"], customers)),
                "label": pd.array(label.astype("int8"), dtype="Int8"),
            },
            index=pd.Index(np.arange(customers), name="customer_id"),
        )
        if censored_from is not None and cutoff >= pd.Timestamp(censored_from):
            frame["label"] = pd.Series(pd.NA, index=frame.index, dtype="Int8")
        parts.append(frame)
    return pd.concat(parts)


def logistic() -> Pipeline:
    return candidates.tuned("logistic_regression", {"C": 1.0}, NUMERIC, CATEGORICAL, SETTINGS)


def simulate(snapshots: pd.DataFrame, make_model=logistic, numeric=NUMERIC, **overrides) -> pd.DataFrame:
    arguments = dict(horizon_days=HORIZON, window_months=2, psi_threshold=0.2, columns=["x", "score"])
    return retraining.simulate_schedules(snapshots, make_model, numeric, CATEGORICAL, **{**arguments, **overrides})


class Spy(ClassifierMixin, BaseEstimator):
    """A logistic regression that records the snapshot days it trains on and, per prediction, what it scores."""

    fits: list[tuple[float, ...]] = []
    predictions: list[tuple[tuple[float, ...], tuple[float, ...]]] = []

    def fit(self, X, y):
        self.days_ = tuple(sorted(X["snapshot_day"].unique()))
        Spy.fits.append(self.days_)
        self.model_ = LogisticRegression().fit(X.drop(columns=["snapshot_day", "region"]), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        Spy.predictions.append((self.days_, tuple(sorted(X["snapshot_day"].unique()))))
        return self.model_.predict_proba(X.drop(columns=["snapshot_day", "region"]))


def spy() -> Pipeline:
    return Pipeline([("model", Spy())])


@pytest.fixture(scope="module")
def drift_table() -> pd.DataFrame:
    return simulate(synthetic_snapshots())


def test_monthly_cutoffs_are_firsts_of_months_within_the_span():
    assert retraining.monthly_cutoffs("2025-01-15", "2025-04-01") == [pd.Timestamp(f"2025-0{m}-01") for m in (2, 3, 4)]
    assert len(retraining.monthly_cutoffs("2025-01-01", "2025-12-01")) == 12
    with pytest.raises(ParamsError, match="robustness.retraining"):
        retraining.monthly_cutoffs("2025-05-01", "2025-03-01")


def test_table_shape_and_first_evaluated_cutoff(drift_table):
    assert list(drift_table.columns) == [
        "cutoff",
        "policy",
        "trained_on",
        "model_age_months",
        "retrained",
        "trigger",
        "max_psi",
        "max_psi_column",
        "score_psi",
        "auc",
        "buyers",
        "customers",
    ]
    assert list(drift_table["policy"].unique()) == ["never", "monthly", "drift"]
    # 2025-02-01 + 30 days is 03-03: at 03-01 only January has matured, so April is the first month with two.
    first = drift_table[drift_table["cutoff"] == drift_table["cutoff"].min()]
    assert first["cutoff"].iloc[0] == pd.Timestamp("2025-04-01")
    assert (first["trained_on"] == "2025-02-01..2025-03-01").all() and first["retrained"].all()
    assert (drift_table["customers"] == 400).all()
    never = drift_table[drift_table["policy"] == "never"]
    assert never["model_age_months"].tolist() == [0, 1, 2, 3] and never["retrained"].sum() == 1


def test_monthly_retraining_beats_a_frozen_model_after_the_concept_drift(drift_table):
    auc = drift_table.pivot(index="cutoff", columns="policy", values="auc")
    late = auc.loc["2025-06-01":]  # monthly now trains on months where b drives buying
    assert (late["monthly"] > late["never"] + 0.2).all()
    assert (late["never"] < 0.62).all()  # the frozen model still ranks by a
    summary = retraining.schedule_summary(drift_table)
    assert summary.loc["monthly", "mean_auc"] > summary.loc["never", "mean_auc"]
    assert summary.loc["monthly", "last_auc"] == pytest.approx(auc["monthly"].iloc[-1])
    assert summary.loc["never", "fits"] == 1 and summary.loc["monthly", "fits"] == 4
    assert list(summary.columns) == ["mean_auc", "min_auc", "last_auc", "fits"]
    # A concept drift moves neither the features nor the score distribution: PSI rules cannot see it.
    assert summary.loc["drift", "fits"] == 1 and (drift_table["max_psi"] < 0.2).all()


def test_models_only_see_labels_complete_by_the_cutoff_they_serve():
    Spy.fits.clear()
    Spy.predictions.clear()
    table = simulate(synthetic_snapshots(), make_model=spy, numeric=NUMERIC + ["snapshot_day"])
    assert Spy.fits
    horizon = float(HORIZON)
    for trained, scored in Spy.predictions:
        if set(scored) <= set(trained):
            continue  # scoring its own training data (the drift reference)
        (day,) = scored
        assert all(t + horizon <= day for t in trained), (trained, day)
    for _, row in table.iterrows():
        last_trained = pd.Timestamp(row["trained_on"].split("..")[1])
        assert last_trained + pd.Timedelta(days=HORIZON) <= row["cutoff"]


def test_censored_snapshots_are_neither_trained_on_nor_evaluated():
    Spy.fits.clear()
    table = simulate(
        synthetic_snapshots(censored_from="2025-07-01"), make_model=spy, numeric=NUMERIC + ["snapshot_day"]
    )
    censored = float((pd.Timestamp("2025-07-01") - EPOCH).days)
    assert table["cutoff"].max() == pd.Timestamp("2025-06-01")
    assert all(censored not in days for days in Spy.fits)
    assert table["auc"].notna().all()


def test_drift_policy_retrains_exactly_when_a_psi_exceeds_the_threshold():
    table = simulate(synthetic_snapshots(switch_at=None, shifted=("2025-05-01",)))
    drift = table[table["policy"] == "drift"].set_index("cutoff")
    assert drift["retrained"].tolist() == [True, True, False, False]  # the first fit, then the planted shift
    later = drift.iloc[1:]
    assert (later["retrained"] == (later["max_psi"] > 0.2)).all()
    assert drift["trigger"].tolist() == ["", "x", "", ""]
    assert drift.loc["2025-07-01", "trained_on"] == "2025-03-01..2025-04-01"
    assert drift.loc["2025-07-01", "model_age_months"] == 2
    never = table[table["policy"] == "never"].set_index("cutoff")
    assert never.loc["2025-05-01", "max_psi"] > 0.2 and never.loc["2025-05-01", "trigger"] == ""
    assert (
        never.loc["2025-05-01", "max_psi_column"] == "x"
    )  # the planted shift, named even where nothing retrains on it
    assert (table["max_psi"] >= table["score_psi"]).all() and table["score_psi"].notna().all()
    assert simulate(synthetic_snapshots(), columns=["x"])["score_psi"].isna().all()  # the score is not monitored
    # Lowering the threshold below the noise level turns the drift policy into the monthly one.
    eager = simulate(
        synthetic_snapshots(switch_at=None, shifted=("2025-05-01",)), psi_threshold=0.0, policies=["drift"]
    )
    assert eager["retrained"].all()


def test_identical_training_windows_share_one_fit():
    calls = []

    def counting():
        calls.append(1)
        return logistic()

    table = simulate(synthetic_snapshots(switch_at=None, shifted=("2025-05-01",)), make_model=counting)
    windows = table.loc[table["retrained"], "trained_on"]
    assert len(calls) == windows.nunique() == table.loc[table["policy"] == "monthly", "retrained"].sum()
    assert table.loc[table["policy"] == "drift", "retrained"].sum() >= 2


def test_output_repeats_on_rerun_with_a_seeded_xgboost():
    def boosted():
        return candidates.tuned(
            "xgboost", {"n_estimators": 15, "max_depth": 2, "learning_rate": 0.3}, NUMERIC, CATEGORICAL, SETTINGS
        )

    snapshots = synthetic_snapshots()
    first, second = simulate(snapshots, make_model=boosted), simulate(snapshots, make_model=boosted)
    pd.testing.assert_frame_equal(first, second)
    assert first["auc"].between(0.0, 1.0).all()
    auc = first.pivot(index="cutoff", columns="policy", values="auc")
    assert auc["monthly"].iloc[-1] > auc["never"].iloc[-1] + 0.2


def test_fits_on_two_workers_give_the_same_table_as_one_by_one():
    def boosted():  # two threads in process, one in each worker: the same trees
        return candidates.tuned("xgboost", {"n_estimators": 15, "max_depth": 2, "learning_rate": 0.3}, NUMERIC,
                                CATEGORICAL, dataclasses.replace(SETTINGS, threads=2))

    snapshots = synthetic_snapshots(shifted=("2025-05-01",))
    serial = simulate(snapshots, make_model=boosted)
    pd.testing.assert_frame_equal(simulate(snapshots, make_model=boosted, workers=2), serial)
    assert serial["retrained"].sum() > 3  # several fits, made in the workers
    # without the monthly policy only the first fit is made up front; the drift policy's later fits come as needed
    drift_only = dict(policies=["never", "drift"], psi_threshold=0.1)
    drift_table = simulate(snapshots, make_model=boosted, **drift_only)
    pd.testing.assert_frame_equal(simulate(snapshots, make_model=boosted, workers=2, **drift_only), drift_table)
    assert drift_table.loc[drift_table["policy"] == "drift", "retrained"].sum() >= 2  # a later fit, made lazily


def test_errors_name_the_argument_or_parameter():
    snapshots = synthetic_snapshots()
    with pytest.raises(ParamsError, match="robustness.retraining.window_months"):
        simulate(snapshots, window_months=7)
    with pytest.raises(ParamsError, match="robustness.retraining.window_months"):
        simulate(snapshots, window_months=0)
    with pytest.raises(ParamsError, match="robustness.retraining.policies.*weekly"):
        simulate(snapshots, policies=["monthly", "weekly"])
    with pytest.raises(ParamsError, match="robustness.retraining.columns.*'recency_days'"):
        simulate(snapshots, columns=["recency_days", "score"])
    with pytest.raises(ParamsError, match="robustness.retraining.columns.*not numeric"):
        simulate(snapshots, columns=["region"])
    with pytest.raises(ParamsError, match="robustness.retraining.psi_threshold"):
        simulate(snapshots, psi_threshold=-1)
    with pytest.raises(ValueError, match="numeric/categorical"):
        simulate(snapshots.drop(columns=["b"]))
    with pytest.raises(ValueError, match=r"snapshots lack \['label'\]"):
        simulate(snapshots.drop(columns=["label"]))
    # Enough labelled snapshots but a horizon too long for any of them to mature in time.
    with pytest.raises(ParamsError, match="window_months: no cutoff"):
        simulate(snapshots, horizon_days=160, window_months=2)


def test_settings_from_params():
    section = {
        "start": "2025-01-01",
        "end": "2025-12-01",
        "window_months": 3,
        "policies": ["never", "monthly", "drift"],
        "psi_threshold": 0.2,
        "columns": ["recency_days", "score"],
    }
    settings = retraining.RetrainingSettings.from_params(section)
    assert len(settings.cutoffs) == 12 and settings.window_months == 3 and settings.columns == ("recency_days", "score")
    with pytest.raises(ParamsError, match="robustness.retraining: missing key 'columns'"):
        retraining.RetrainingSettings.from_params({k: v for k, v in section.items() if k != "columns"})
    with pytest.raises(ParamsError, match="robustness.retraining.policies"):
        retraining.RetrainingSettings.from_params({**section, "policies": ["yearly"]})


def test_policy_differences_are_paired_by_month_with_an_interval():
    cutoffs = pd.date_range("2025-01-01", periods=4, freq="MS")
    table = pd.DataFrame(
        {
            "cutoff": list(cutoffs) * 3,
            "policy": ["never"] * 4 + ["monthly"] * 4 + ["drift"] * 4,
            "auc": [0.80, 0.70, 0.90, 0.75] + [0.82, 0.72, 0.92, 0.77] + [0.81, 0.69, 0.92, 0.74],
        }
    )
    result = retraining.policy_differences(table)
    # monthly beats never by exactly 0.02 every month: a consistent gain, even though the months differ a lot.
    assert result.at["monthly", "mean_difference"] == pytest.approx(0.02) and result.at[
        "monthly", "ci_low"
    ] == pytest.approx(0.02)
    assert result.at["monthly", "better_months"] == 4
    # drift wins some months and loses others: its interval covers 0.
    assert result.at["drift", "ci_low"] < 0 < result.at["drift", "ci_high"]
    assert retraining.policy_differences(table[table["policy"] != "never"]).empty


def test_drift_effect_describes_the_frozen_model_month_by_month(drift_table):
    effect = retraining.drift_effect(drift_table)
    never = drift_table[drift_table["policy"] == "never"].set_index("cutoff")
    monthly = drift_table[drift_table["policy"] == "monthly"].set_index("cutoff")
    assert effect["policy"] == "never" and effect["months"] == 4 and effect["trained_on"] == "2025-02-01..2025-03-01"
    assert (effect["first_cutoff"], effect["last_cutoff"]) == ("2025-04-01", "2025-07-01")
    assert effect["auc_min"] == pytest.approx(never["auc"].min())
    assert pd.Timestamp(effect["auc_min_cutoff"]) == never["auc"].idxmin()
    assert effect["auc_last"] == pytest.approx(never["auc"].iloc[-1]) and effect["psi_max"] == pytest.approx(
        never["max_psi"].max()
    )
    assert effect["psi_max_column"] in {"x", "score"} and effect["score_psi_last"] == pytest.approx(
        never["score_psi"].iloc[-1]
    )
    lag = monthly["auc"] - never["auc"]
    assert effect["compared_with"] == "monthly" and effect["lag_mean"] == pytest.approx(lag.mean())
    assert effect["lag_max"] == pytest.approx(lag.max()) and effect["lag_max_cutoff"] == lag.idxmax().date().isoformat()
    assert effect["lag_max"] > 0.2  # the planted concept drift: what predicts buying changed in April
    assert effect["lag_psi_spearman"] == pytest.approx(never["max_psi"].corr(lag, method="spearman"))
    json.dumps(effect, allow_nan=False)  # plain values, ready for the metrics file


def test_drift_effect_without_the_policies_it_compares():
    table = simulate(synthetic_snapshots(), policies=["never", "drift"])
    effect = retraining.drift_effect(table)
    assert effect["months"] == 4 and effect["compared_with"] is None and effect["lag_mean"] is None
    assert effect["lag_psi_spearman"] is None
    assert retraining.drift_effect(table, frozen="monthly") is None
    with pytest.raises(ValueError, match="max_psi_column"):
        retraining.drift_effect(table.drop(columns="max_psi_column"))


def test_settings_take_null_dates_from_the_orders():
    orders = pd.DataFrame({"ordered_at": pd.to_datetime(["2023-03-15", "2023-09-20"])})
    section = {
        "start": None,
        "end": None,
        "window_months": 1,
        "policies": ["never"],
        "psi_threshold": 0.2,
        "columns": ["score"],
    }
    window = retraining.data_window(section, orders, horizon_days=30)
    assert (window["start"], window["end"]) == ("2023-05-01", "2023-08-01") and window["window_months"] == 1
    assert retraining.data_window({**section, "start": "2023-06-01"}, orders, 30)["start"] == "2023-06-01"
    settings = retraining.RetrainingSettings.from_params(section, orders, horizon_days=30)
    assert settings.cutoffs == retraining.monthly_cutoffs("2023-05-01", "2023-08-01")
    with pytest.raises(ParamsError, match="start and end are null"):
        retraining.RetrainingSettings.from_params(section)
    with pytest.raises(ValueError, match="ordered_at"):
        retraining.data_window(section, orders.iloc[:0], 30)


def test_simulate_monitors_only_the_columns_the_snapshots_have():
    section = {
        "start": "2025-01-01",
        "end": "2025-07-01",
        "window_months": 2,
        "policies": ["never", "drift"],
        "psi_threshold": 0.2,
        "columns": ["x", "sessions_90d", "score"],
    }
    settings = retraining.RetrainingSettings.from_params(section)
    table = retraining.simulate(synthetic_snapshots(), logistic, NUMERIC, CATEGORICAL, settings, HORIZON)
    assert list(table["policy"].unique()) == ["never", "drift"] and set(table["max_psi_column"]) <= {"x", "score"}
    assert table.equals(simulate(synthetic_snapshots(), policies=["never", "drift"], columns=["x", "score"]))


def test_recipe_factory_returns_a_fresh_unfitted_copy_each_time():
    class Card:
        metadata = {"name": "logistic_regression", "params": {"C": 0.5}}
        numeric, categorical = NUMERIC, CATEGORICAL

    make = retraining.recipe_factory(Card(), tiny_params()["model"], seed=0)
    first, second = make(), make()
    assert first is not second and first[-1].get_params()["C"] == 0.5
    assert not hasattr(first[-1], "coef_")


def differences(means: list[float], lows: list[float], highs: list[float]) -> pd.DataFrame:
    names = ["monthly", "drift"][: len(means)]
    return pd.DataFrame(
        {"months": 9, "mean_difference": means, "ci_low": lows, "ci_high": highs, "better_months": 5}, index=names
    )


@pytest.mark.parametrize(
    ("means", "lows", "highs", "expected"),
    [
        ([0.002, 0.0021], [0.001, 0.0005], [0.003, 0.004], "small"),  # consistent, but small
        ([0.003, -0.004], [-0.01, -0.02], [0.02, 0.01], "small"),  # small and uncertain: still small
        ([0.03, 0.002], [0.01, 0.001], [0.05, 0.003], "pays"),
        ([-0.03, 0.002], [-0.05, -0.001], [-0.01, 0.004], "hurts"),  # never retraining wins
        ([0.03, -0.03], [0.01, -0.05], [0.05, -0.01], "pays"),  # one schedule pays even if another hurts
        ([0.03, 0.004], [-0.01, -0.001], [0.07, 0.01], "unclear"),  # not small, but the interval covers 0
        ([0.03, 0.004], [float("nan"), -0.001], [float("nan"), 0.01], "unclear"),  # one month: no interval
        ([0.005], [0.001], [0.009], "small"),
    ],
)
def test_outcome_says_what_retraining_buys(means, lows, highs, expected):
    assert retraining.outcome(differences(means, lows, highs)) == expected


def test_outcome_without_a_baseline():
    assert retraining.outcome(differences([], [], [])) == "no baseline"
    assert retraining.outcome(pd.DataFrame(columns=["months", "mean_difference", "ci_low", "ci_high"])) == "no baseline"


def test_best_policies_name_a_tie_as_one():
    summary = pd.DataFrame({"mean_auc": [0.90, 0.91, 0.9105]}, index=["never", "monthly", "drift"])
    # the default data's case: drift leads monthly by 0.000007 AUC, both consistently above never
    tied = differences([0.00169, 0.001697], [0.0007, 0.0004], [0.0027, 0.003])
    assert retraining.best_policies(tied, summary) == ["drift", "monthly"]
    assert retraining.best_policies(tied, summary, tie=0.0) == ["drift"]
    assert retraining.best_policies(differences([0.02, 0.001], [0.01, 0.0005], [0.03, 0.002]), summary) == ["monthly"]
    # a consistent small gain beats a large one whose interval covers 0
    assert retraining.best_policies(differences([0.002, 0.05], [0.001, -0.01], [0.003, 0.1]), summary) == ["monthly"]
    assert retraining.best_policies(differences([0.002, 0.003], [-0.001, -0.002], [0.005, 0.008]), summary) == []
    # without the never baseline: by mean AUC, a tie named as one
    assert retraining.best_policies(differences([], [], []), summary) == ["drift", "monthly"]
    with pytest.raises(ValueError, match="tie"):
        retraining.best_policies(tied, summary, tie=-0.1)


def lag_table(lags: list[float], psi: list[float] | None = None, never: list[float] | None = None) -> pd.DataFrame:
    cutoffs = pd.date_range("2025-04-01", periods=len(lags), freq="MS")
    never = never or [0.80 + 0.01 * month for month in range(len(lags))]
    psi = psi or [0.1] * len(lags)
    frozen = pd.DataFrame({"cutoff": cutoffs, "policy": "never", "auc": never, "max_psi": psi})
    fresh = frozen.assign(policy="monthly", auc=[auc + lag for auc, lag in zip(never, lags)])
    return pd.concat([frozen, fresh], ignore_index=True)


@pytest.mark.parametrize(
    ("lags", "psi", "reading"),
    [
        ([0.001, -0.002, 0.004, 0.003], None, "negligible"),
        ([0.001, -0.002, 0.004, 0.003], [0.1, 0.3, 0.5, 0.8], "negligible despite drift"),
        ([0.02, 0.03, 0.025, 0.03], None, "recovered"),
        ([-0.02, -0.03, -0.025, -0.03], None, "frozen better"),
        ([0.05, -0.04, 0.06, -0.05], None, "noise"),
    ],
)
def test_drift_reading_says_what_drift_cost_the_frozen_model(lags, psi, reading):
    result = retraining.drift_reading(lag_table(lags, psi), psi_threshold=0.2)
    assert result["reading"] == reading and result["drifted"] == (psi is not None)


def test_drift_reading_without_a_fresh_schedule_and_the_worst_month():
    table = lag_table([0.02, 0.021, 0.02], never=[0.70, 0.80, 0.75])
    assert retraining.drift_reading(table, psi_threshold=0.2)["worst_is_first"] is True
    later = lag_table([0.01, 0.02, 0.01], never=[0.80, 0.70, 0.75])
    assert retraining.drift_reading(later, psi_threshold=0.2)["worst_is_first"] is False
    alone = table[table["policy"] == "never"]
    assert retraining.drift_reading(alone, psi_threshold=0.2)["reading"] == "not measured"
    assert retraining.drift_reading(table, psi_threshold=0.2)["reading"] == "recovered"
    assert retraining.drift_reading(table, "monthly", "never", psi_threshold=0.2)["reading"] == "frozen better"

"""Tests for atelier.rollback: degraded models, a mistaken promotion, the guard, and the rollback drill.

Everything runs on small synthetic customers and logistic regressions in tmp_path registries.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from atelier.core.config import ParamsError
from atelier.model.registry import Registry
from atelier.robustness import rollback

NUMERIC = ["recency_days", "frequency", "tenure_days", "sessions_90d"]
START = pd.Timestamp("2025-06-01")


def customers(n: int, seed: int, first_id: int = 1) -> pd.DataFrame:
    """Synthetic customers: recent, frequent customers buy more often (labels drawn from a known logit)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "recency_days": rng.exponential(40, n),
            "frequency": rng.poisson(1.5, n).astype(float),
            "tenure_days": rng.uniform(30, 900, n),
            "sessions_90d": rng.poisson(4, n).astype(float),
        },
        index=pd.Index(np.arange(first_id, first_id + n), name="customer_id"),
    )
    frame["probability"] = 1 / (1 + np.exp(-(0.5 - 0.04 * frame["recency_days"] + 0.8 * frame["frequency"] - 1.0)))
    frame["label"] = (rng.random(n) < frame["probability"]).astype(int)
    return frame


def recipe() -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )


def fitted(frame: pd.DataFrame) -> Pipeline:
    return recipe().fit(frame[NUMERIC], frame["label"])


def batches_and_orders(days: int, per_day: int = 300, seed: int = 7) -> tuple[dict, pd.DataFrame]:
    """`days` daily batches of fresh customers; buyers (drawn from the true probability) order within 1.5 days."""
    rng = np.random.default_rng(seed)
    batches, orders = {}, []
    for offset in range(days):
        day = START + pd.Timedelta(days=offset)
        people = customers(per_day, seed + offset, first_id=1 + offset * 10_000)
        scored_at = day + pd.to_timedelta(rng.uniform(0, 20, per_day), unit="h")
        batches[day] = people[NUMERIC].reset_index().assign(scored_at=scored_at)[["customer_id", "scored_at", *NUMERIC]]
        buyers = people["label"].to_numpy() == 1
        orders.append(
            pd.DataFrame(
                {
                    "customer_id": people.index[buyers],
                    "ordered_at": scored_at[buyers] + pd.to_timedelta(rng.uniform(0.1, 1.5, buyers.sum()), unit="D"),
                }
            )
        )
    return batches, pd.concat(orders, ignore_index=True)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return customers(2000, seed=1)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return customers(1500, seed=2, first_id=50_000)


@pytest.fixture
def world(tmp_path, train, holdout) -> dict:
    """A registry whose champion history is v1 -> v2 (v2, the original, fitted on everything), then a mistaken v3."""
    registry = Registry(tmp_path / "registry")
    card = {"features": NUMERIC, "metrics": {"roc_auc": 0.0}}
    for version, rows in (("v1", train.iloc[:500]), ("v2", train)):
        model = fitted(rows)
        auc = roc_auc_score(holdout["label"], model.predict_proba(holdout[NUMERIC])[:, 1])
        assert (
            registry.register(model, name="logistic_regression", metadata={**card, "metrics": {"roc_auc": auc}})
            == version
        )
        registry.set_alias("champion", version)
    reference = customers(600, seed=3, first_id=90_000)[NUMERIC]
    reference_scores = rollback.scores_of(registry, "v2", registry.load("champion"), reference)  # before the mistake
    bad = rollback.degraded_model(recipe(), train, NUMERIC, [], kind="shuffled_labels", seed=0)
    promotions_before = registry.promotions()
    bad_version = rollback.mistaken_promotion(registry, bad, registry.metadata("v2"))
    return {
        "registry": registry,
        "bad_version": bad_version,
        "reference": reference,
        "reference_scores": reference_scores,
        "promotions_before": promotions_before,
    }


def run_drill(world: dict, holdout: pd.DataFrame, guard: rollback.Guard, days: int, horizon_days: int) -> dict:
    batches, orders = batches_and_orders(days)
    return rollback.drill(
        world["registry"],
        "champion",
        world["bad_version"],
        batches,
        orders,
        original_version="v2",
        guard=guard,
        reference=world["reference"],
        reference_scores=world["reference_scores"],
        evaluation=holdout,
        horizon_days=horizon_days,
        data_end=START + pd.Timedelta(days=60),
    )


# ------------------------------------------------------------------------------------ degraded models


def test_shuffled_labels_model_is_no_better_than_chance(train, holdout):
    bad = rollback.degraded_model(recipe(), train, NUMERIC, [], kind="shuffled_labels", seed=0)
    good = rollback.degraded_model(
        recipe(), train, NUMERIC, [], kind="dropped_features", seed=0, columns=("sessions_90d",)
    )
    assert 0.35 < roc_auc_score(holdout["label"], bad.predict_proba(holdout[NUMERIC])[:, 1]) < 0.65
    # Dropping a feature the labels do not depend on leaves a working model: the harness itself is sound.
    assert roc_auc_score(holdout["label"], good.predict_proba(holdout[NUMERIC])[:, 1]) > 0.75
    assert list(bad.feature_names_in_) == NUMERIC


def test_dropped_features_model_ignores_recency_and_frequency(train, holdout):
    bad = rollback.degraded_model(recipe(), train, NUMERIC, [], kind="dropped_features", seed=0)
    changed = holdout[NUMERIC].assign(recency_days=holdout["recency_days"] * 10 + 5, frequency=0.0)
    # Invariance: the columns that were missing in training carry no weight, so changing them changes nothing.
    np.testing.assert_array_equal(bad.predict_proba(holdout[NUMERIC]), bad.predict_proba(changed))
    assert roc_auc_score(holdout["label"], bad.predict_proba(holdout[NUMERIC])[:, 1]) < 0.65
    assert list(bad.feature_names_in_) == NUMERIC


def test_degraded_model_rejects_unknown_kind_and_missing_columns(train):
    with pytest.raises(ValueError, match="unknown degradation kind 'typo'"):
        rollback.degraded_model(recipe(), train, NUMERIC, [], kind="typo", seed=0)
    with pytest.raises(ValueError, match="pass columns="):
        rollback.degraded_model(recipe(), train, ["tenure_days"], [], kind="dropped_features", seed=0)


# ------------------------------------------------------------------------------------ mistaken promotion


def test_mistaken_promotion_moves_champion_and_records_the_bypass(world):
    registry = world["registry"]
    assert world["bad_version"] == "v3" and registry.alias("champion") == "v3"
    meta = registry.metadata("v3")
    assert meta["promotion"] == rollback.BYPASS_NOTE == "promoted by mistake: bypassed promote()"
    assert meta["features"] == NUMERIC and meta["name"] == "logistic_regression"
    assert registry.promotions() == world["promotions_before"]  # the promotion rule never saw it


# ------------------------------------------------------------------------------------ the guard


def test_guard_fires_on_a_planted_score_shift_and_not_on_an_unchanged_distribution():
    rng = np.random.default_rng(0)
    reference = rng.normal(0.3, 0.1, 5000)
    day_one, day_two = START, START + pd.Timedelta(days=1)
    live = pd.DataFrame(
        {
            "customer_id": np.arange(1000),
            "scored_at": [day_one + pd.Timedelta(hours=3)] * 500 + [day_two] * 500,
            "score": np.concatenate([rng.normal(0.3, 0.1, 500), rng.normal(0.45, 0.1, 500)]),
        }
    )
    orders = pd.DataFrame({"customer_id": [1], "ordered_at": [START + pd.Timedelta(hours=5)]})
    table = rollback.check(
        rollback.Guard(0.2, 0.9, 100),
        reference,
        live,
        orders,
        data_end=day_two + pd.Timedelta(days=1),
        horizon_days=30,
        registered_auc=0.9,
    )
    assert table["day"].tolist() == [day_one, day_two]
    assert table["alert"].tolist() == ["", "score drift"]
    assert table.loc[0, "score_psi"] < 0.1 < 0.2 < table.loc[1, "score_psi"]
    assert table["realized_auc"].isna().all()  # nothing is mature 1-2 days in with a 30-day horizon


def test_realized_auc_alert_fires_only_when_labels_are_mature():
    rng = np.random.default_rng(1)
    scores = rng.random(400)
    live = pd.DataFrame({"customer_id": np.arange(400), "scored_at": START + pd.Timedelta(hours=12), "score": scores})
    buyers = np.flatnonzero(scores < 0.3)  # the model ranks buyers last: a broken model
    orders = pd.DataFrame({"customer_id": buyers, "ordered_at": START + pd.Timedelta(days=3)})
    guard = rollback.Guard(psi_threshold=0.2, min_auc_ratio=0.9, min_scorings=100)
    for days_later, expected in ((10, ""), (30, ""), (31, "AUC below 90% of registered")):
        table = rollback.check(
            guard,
            scores,
            live,
            orders,
            data_end=START + pd.Timedelta(days=days_later),
            horizon_days=30,
            registered_auc=0.8,
        )
        assert table["alert"].tolist() == [expected], days_later
        assert table["score_psi"].iloc[0] == pytest.approx(0.0)
    assert table["realized_auc"].iloc[0] < 0.1 and table["mature_scorings"].iloc[0] == 400


def test_check_of_an_empty_day_is_an_empty_table():
    empty = pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=int),
            "scored_at": pd.Series(dtype="datetime64[us]"),
            "score": pd.Series(dtype=float),
        }
    )
    orders = pd.DataFrame({"customer_id": [1], "ordered_at": [START]})
    table = rollback.check(
        rollback.Guard(0.2, 0.9, 10),
        np.random.default_rng(0).random(100),
        empty,
        orders,
        data_end=START,
        horizon_days=30,
        registered_auc=0.9,
    )
    assert table.empty and "alert" in table.columns


def test_guard_from_params_names_the_problem():
    assert rollback.Guard.from_params(
        {"psi_threshold": 0.2, "min_auc_ratio": 0.9, "min_scorings": 200}
    ) == rollback.Guard(0.2, 0.9, 200)
    with pytest.raises(ParamsError, match="missing key 'min_scorings'"):
        rollback.Guard.from_params({"psi_threshold": 0.2, "min_auc_ratio": 0.9})
    with pytest.raises(ParamsError, match="min_auc_ratio must be in"):
        rollback.Guard(0.2, 1.5, 10)


# ------------------------------------------------------------------------------------ the drill


def test_drill_rolls_back_once_to_the_original_champion_bit_for_bit(world, holdout):
    result = run_drill(world, holdout, rollback.Guard(0.2, 0.9, 50), days=5, horizon_days=30)
    timeline, summary = result["timeline"], result["summary"]
    assert list(timeline.columns) == [
        "day",
        "champion_version",
        "scorings",
        "score_psi",
        "realized_auc",
        "alert",
        "action",
    ]
    assert timeline["champion_version"].tolist() == ["v3", "v2", "v2", "v2", "v2"]
    assert timeline["action"].tolist() == ["rollback to v2", "", "", "", ""]
    assert timeline["alert"].tolist() == ["score drift", "", "", "", ""]
    assert timeline["realized_auc"].isna().all()  # the 30-day labels are not mature within the drill
    assert world["registry"].alias("champion") == "v2"
    assert summary["rollbacks"] == 1 and summary["detected_day"] == 1 and summary["detection_rule"] == "score drift"
    assert summary["rolled_back_to"] == "v2" and summary["returned_to_original"]
    assert summary["restored_scores_identical"] is True
    served = world["registry"].load("champion")
    assert np.array_equal(
        rollback.scores_of(world["registry"], "v2", served, world["reference"]), world["reference_scores"]
    )
    assert summary["auc_restored"] == summary["auc_original"] > 0.75 > summary["auc_bad"]
    # In hindsight the AUC rule would also have caught v3, but only once day 1's labels matured.
    assert summary["auc_rule_earliest_bad"] == str((START + pd.Timedelta(days=30)).date())


def test_drill_catches_it_by_realized_auc_once_labels_mature(world, holdout):
    no_psi = rollback.Guard(psi_threshold=1e9, min_auc_ratio=0.9, min_scorings=50)
    result = run_drill(world, holdout, no_psi, days=6, horizon_days=2)
    timeline, summary = result["timeline"], result["summary"]
    # Day 1's 2-day labels are all mature at the end of day 3: the bad model serves three days.
    assert timeline["champion_version"].tolist() == ["v3", "v3", "v3", "v2", "v2", "v2"]
    assert timeline["realized_auc"].isna().tolist()[:2] == [True, True]
    assert summary["detected_day"] == 3 and summary["detection_rule"] == "AUC below 90% of registered"
    assert summary["rollbacks"] == 1 and summary["restored_scores_identical"] is True


def test_drill_without_history_raises_the_registry_error(tmp_path, train, holdout):
    registry = Registry(tmp_path / "registry")
    bad = rollback.degraded_model(recipe(), train, NUMERIC, [], kind="shuffled_labels", seed=0)
    version = rollback.mistaken_promotion(registry, bad, {"features": NUMERIC, "name": "logistic_regression"})
    reference = customers(300, seed=3)[NUMERIC]
    batches, orders = batches_and_orders(2)
    with pytest.raises(ValueError, match="cannot roll back 'champion'.*no earlier version"):
        rollback.drill(
            registry,
            "champion",
            version,
            batches,
            orders,
            original_version=version,
            guard=rollback.Guard(0.2, 0.9, 50),
            reference=reference,
            reference_scores=fitted(train).predict_proba(reference)[:, 1],
            evaluation=holdout,
            horizon_days=30,
        )


def test_drill_refuses_a_champion_that_is_not_the_bad_version(world, holdout):
    world["registry"].rollback("champion")
    with pytest.raises(ValueError, match="'champion' points to v2, not v3"):
        run_drill(world, holdout, rollback.Guard(0.2, 0.9, 50), days=2, horizon_days=30)


# ------------------------------------------------------------------------------------ live batches


def test_daily_batches_are_each_days_visitors_on_their_snapshot_features():
    snapshot = customers(5, seed=4).assign(cutoff=START)
    events = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 99, 3, 2],
            "ts": pd.to_datetime(
                [
                    "2025-06-01 10:00",
                    "2025-06-01 08:00",
                    "2025-06-01 23:59",
                    "2025-06-01 12:00",
                    "2025-06-03 09:00",
                    "2025-05-31 12:00",
                ]
            ),
        }
    )
    batches = rollback.daily_batches(snapshot, events, START, days=3)
    assert list(batches) == list(pd.date_range(START, periods=3))
    first = batches[START]
    assert first["customer_id"].tolist() == [1, 2]  # 99 is not in the snapshot; the day before does not count
    assert first["scored_at"].tolist() == [pd.Timestamp("2025-06-01 08:00"), pd.Timestamp("2025-06-01 23:59")]
    assert "label" not in first.columns
    assert first["recency_days"].tolist() == snapshot.loc[[1, 2], "recency_days"].tolist()
    assert batches[START + pd.Timedelta(days=1)].empty
    assert batches[START + pd.Timedelta(days=2)]["customer_id"].tolist() == [3]
    with pytest.raises(ValueError, match="needs one snapshot"):
        rollback.daily_batches(
            pd.concat([snapshot, snapshot.assign(cutoff=START - pd.Timedelta(days=30))]), events, START, 1
        )


# ------------------------------------------------------------------------------------ settings and readings


def test_drill_settings_from_params_and_their_errors():
    section = {
        "kinds": ["shuffled_labels"],
        "days": 14,
        "psi_threshold": 0.2,
        "min_auc_ratio": 0.9,
        "min_scorings": 200,
    }
    settings = rollback.DrillSettings.from_params(section)
    assert (
        settings.kinds == ("shuffled_labels",)
        and settings.days == 14
        and settings.guard == rollback.Guard(0.2, 0.9, 200)
    )
    with pytest.raises(ParamsError, match="robustness.guard.kinds: unknown \\['broken'\\]"):
        rollback.DrillSettings.from_params({**section, "kinds": ["broken"]})
    with pytest.raises(ParamsError, match="robustness.guard.days"):
        rollback.DrillSettings.from_params({**section, "days": 1.5})
    with pytest.raises(ParamsError, match="missing key 'kinds' or 'days'"):
        rollback.DrillSettings.from_params({k: v for k, v in section.items() if k != "days"})


@pytest.mark.parametrize(
    ("detected_day", "auc_bad", "reading"),
    [
        (1, 0.42, "caught before labels"),
        (30, 0.42, "caught before labels"),  # the last day before the first labels mature
        (31, 0.42, "caught by AUC"),
        (None, 0.915, "missed, mild"),
        (None, 0.80, "missed, harmful"),
    ],
)
def test_drill_reading_says_what_the_drill_shows(detected_day, auc_bad, reading):
    summary = {"detected_day": detected_day, "auc_bad": auc_bad, "auc_original": 0.92}
    assert rollback.drill_reading(summary, horizon_days=30) == reading


def test_drill_reading_needs_a_drill_summary():
    with pytest.raises(ValueError, match="lacks \\['auc_bad', 'auc_original'\\]"):
        rollback.drill_reading({"detected_day": 1}, horizon_days=30)

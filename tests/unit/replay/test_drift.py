"""Tests for atelier.replay.drift: the visitors' reference, the daily PSI table and what it says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.replay import drift
from atelier.replay.monitor import DriftRule, drift_by_period

RULE = DriftRule(columns=("score", "recency_days"), threshold=0.2, consecutive=2)


def test_the_reference_keeps_training_rows_of_customers_who_visited_soon_after_their_cutoff():
    july, august, replay_start = pd.Timestamp("2025-07-01"), pd.Timestamp("2025-08-01"), pd.Timestamp("2025-09-01")
    snapshots = pd.DataFrame({"cutoff": [july, july, july, august, august, replay_start],
                              "recency_days": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]},
                             index=pd.Index([1, 2, 3, 1, 2, 1], name="customer_id"))
    events = pd.DataFrame({"customer_id": [1, 2, 3, 2, 1],
                           "ts": [july + pd.Timedelta(days=1), july + pd.Timedelta(days=6, hours=23),
                                  july + pd.Timedelta(days=7), august + pd.Timedelta(days=2), replay_start]})
    reference = drift.visitor_reference(snapshots, events, replay_start, None)
    # 1 and 2 visited within 7 days of July's cutoff (3 on day 7 exactly: too late); only 2 after August's.
    assert reference["recency_days"].tolist() == [1.0, 2.0, 5.0] and reference.index.tolist() == [1, 2, 2]
    assert reference["score"].isna().all()  # no champion, no scores
    every_row = drift.visitor_reference(snapshots, None, replay_start, None)
    assert len(every_row) == 5  # without events every training row stays; the replay's own snapshot never


def test_the_reference_is_scored_by_the_champion(snapshots, context):
    reference = drift.visitor_reference(snapshots, context.tables["events"], context.cutoff, context.scorer)
    assert 0 < len(reference) < len(snapshots)
    np.testing.assert_array_equal(reference["score"], context.scorer.score_frame(reference))


def test_daily_psi_compares_each_days_profiles_and_scores_with_the_reference():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"recency_days": rng.exponential(10, 2000), "score": rng.random(2000)})
    days = np.repeat(pd.to_datetime(["2025-11-01 09:00", "2025-11-02 18:30"]), 500)
    profiles = pd.DataFrame({"recency_days": np.r_[rng.exponential(10, 500), rng.exponential(40, 500)]})
    decisions = pd.DataFrame({"ts": days, "propensity": np.r_[rng.random(500), rng.random(500) ** 3]})
    table = drift.daily(reference, decisions, profiles, ("score", "recency_days", "sessions_90d"))
    assert list(table.columns) == ["score", "recency_days"]  # a column the profiles lack is left out
    assert table.index.tolist() == list(pd.to_datetime(["2025-11-01", "2025-11-02"]))
    current = profiles.assign(score=decisions["propensity"], day=decisions["ts"].dt.floor("D"))
    pd.testing.assert_frame_equal(table, drift_by_period(reference, current, ["score", "recency_days"], "day"))
    assert (table.iloc[0] < 0.1).all() and (table.iloc[1] > 0.2).all()  # the second day shifted


def test_black_friday_week_runs_from_the_tuesday_before_to_the_monday_after():
    assert drift.black_friday_week(2025) == (pd.Timestamp("2025-11-25"), pd.Timestamp("2025-12-01"))
    assert drift.black_friday_week(2024) == (pd.Timestamp("2024-11-26"), pd.Timestamp("2024-12-02"))
    inside = ["2025-11-25", "2025-11-28 23:59", "2025-12-01 12:00"]
    outside = ["2025-11-24 23:59", "2025-12-02", "2025-07-01"]
    assert all(drift.in_black_friday_week(day) for day in inside)
    assert not any(drift.in_black_friday_week(day) for day in outside)


def _psi(values: dict[str, list[float]], first_day: str = "2025-11-24") -> pd.DataFrame:
    table = pd.DataFrame(values, index=pd.date_range(first_day, periods=len(next(iter(values.values()))), freq="D"))
    table.index.name = "day"
    return table


def test_summary_names_the_trigger_the_columns_that_fired_and_the_largest_shift():
    psi = _psi({"score": [0.1, 0.25, 0.3, 0.1, 0.05, 0.1, 0.1, 0.1, 0.1],
                "recency_days": [0.1, 0.3, 0.35, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9]})
    facts = drift.summary(psi, RULE)
    assert facts["trigger"] == "2025-11-26" and facts["fired_on"] == ["score", "recency_days"]
    assert facts["trigger_in_black_friday_week"] is True
    assert facts["largest"] == {"column": "recency_days", "day": "2025-12-02", "psi": 0.9,
                                "in_black_friday_week": False}
    assert facts["max_psi"] == {"score": 0.3, "recency_days": 0.9}


def test_summary_of_a_trigger_outside_black_friday_week_on_one_column():
    psi = _psi({"score": [0.1, 0.21, 0.22], "recency_days": [0.25, 0.1, 0.3]}, first_day="2025-07-01")
    facts = drift.summary(psi, RULE)
    assert facts["trigger"] == "2025-07-03" and facts["fired_on"] == ["score"]  # recency_days' run broke on day 2
    assert facts["trigger_in_black_friday_week"] is False
    assert facts["largest"]["column"] == "recency_days" and facts["largest"]["in_black_friday_week"] is False


def test_summary_without_a_trigger_and_of_nothing():
    facts = drift.summary(_psi({"score": [0.3, 0.1, 0.3], "recency_days": [0.1, 0.1, 0.1]}), RULE)
    assert facts["trigger"] is None and facts["fired_on"] == [] and facts["trigger_in_black_friday_week"] is None
    assert facts["largest"]["psi"] == 0.3 and facts["largest"]["day"] == "2025-11-24"  # the first of equal values
    with pytest.raises(ValueError, match="empty"):
        drift.summary(_psi({"score": [], "recency_days": []}), RULE)

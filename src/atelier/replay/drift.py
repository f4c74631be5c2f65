"""Drift of the scored profiles against the champion's training data, day by day, and what it means.

The reference is the training snapshots restricted to customers who visited soon after their
cutoff (the live model scores visitors, not the whole customer base); each replayed day's scored
profiles (and scores) are compared with it by PSI (`atelier.replay.monitor`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from atelier.core.dates import black_friday
from atelier.model.champion import Champion
from atelier.replay.monitor import DriftRule, drift_by_period

#: The drift reference keeps training rows of customers who visited within this many days after their cutoff.
REFERENCE_VISIT_DAYS = 7
#: Black Friday week as the retail calendar has it: from the Tuesday before Black Friday to the Monday after.
WEEK_BEFORE_DAYS, WEEK_AFTER_DAYS = 3, 3


def visitor_reference(snapshots: pd.DataFrame, events: pd.DataFrame | None, cutoff: pd.Timestamp,
                      scorer: Champion | None) -> pd.DataFrame:
    """The training snapshots (before `cutoff`), restricted to the kind of profiles the live model scores, with scores.

    Live, the model scores visitors; a training snapshot holds every known customer, dormant ones
    included. Comparing the two would flag that difference as drift from day one, so the reference
    keeps the training rows of customers who visited within REFERENCE_VISIT_DAYS after their
    snapshot's cutoff (all rows when there are no events). `score` is NaN without a champion.
    """
    train = snapshots[snapshots["cutoff"] < cutoff]
    if events is not None and len(events):
        keep = np.zeros(len(train), dtype=bool)
        for snapshot in train["cutoff"].unique():
            week = (events["ts"] >= snapshot) & (events["ts"] < snapshot + pd.Timedelta(days=REFERENCE_VISIT_DAYS))
            soon = events[week]
            keep |= (train["cutoff"] == snapshot).to_numpy() & train.index.isin(soon["customer_id"].unique())
        train = train[keep]
    return train.assign(score=scorer.score_frame(train) if scorer is not None else np.nan)


def daily(reference: pd.DataFrame, decisions: pd.DataFrame, profiles: pd.DataFrame,
          columns: tuple[str, ...]) -> pd.DataFrame:
    """PSI per day (index `day`) of the monitored `columns` of the scored profiles (and their `score`) against
    `reference`.

    `decisions` and `profiles` are row-aligned (one profile per decision); a column the profiles
    lack is left out, except `score`, which comes from the decisions' propensity.
    """
    kept = [c for c in columns if c == "score" or c in profiles]
    current = profiles.assign(score=decisions["propensity"].to_numpy(),
                              day=pd.to_datetime(decisions["ts"]).dt.floor("D").to_numpy())
    return drift_by_period(reference, current, kept, "day")


def black_friday_week(year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day of Black Friday week in `year` (Tuesday before to Monday after)."""
    friday = black_friday(year)
    return friday - pd.Timedelta(days=WEEK_BEFORE_DAYS), friday + pd.Timedelta(days=WEEK_AFTER_DAYS)


def in_black_friday_week(day: Any) -> bool:
    """Whether `day` falls in its year's Black Friday week."""
    day = pd.Timestamp(day).normalize()
    first, last = black_friday_week(day.year)
    return bool(first <= day <= last)


def summary(psi: pd.DataFrame, rule: DriftRule) -> dict[str, Any]:
    """What the daily PSI table says under `rule`.

    trigger (the day the rule fires, as text, or None), fired_on (the columns whose run above the
    threshold completes on that day), trigger_in_black_friday_week (None without a trigger),
    max_psi per column, and largest: the column, day and PSI of the largest value in the table,
    with whether that day is in Black Friday week.
    """
    if psi.empty:
        raise ValueError("the drift table is empty: there is no scored day to summarize")
    trigger = rule.first_trigger(psi)
    fired_on: list[str] = []
    if trigger is not None:
        position = psi.index.get_loc(trigger)
        run = psi[list(rule.columns)].iloc[position - rule.consecutive + 1: position + 1].gt(rule.threshold)
        fired_on = [str(c) for c in rule.columns if run[c].all()]
    stacked = psi.stack()
    day, column = stacked.idxmax()
    return {
        "trigger": None if trigger is None else str(pd.Timestamp(trigger).date()),
        "fired_on": fired_on,
        "trigger_in_black_friday_week": None if trigger is None else in_black_friday_week(trigger),
        "max_psi": psi.max().to_dict(),
        "largest": {"column": str(column), "day": str(pd.Timestamp(day).date()), "psi": float(stacked.max()),
                    "in_black_friday_week": in_black_friday_week(day)},
    }

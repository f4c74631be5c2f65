"""The shop's calendar: daily traffic (weekly cycle x seasonal events) and store-wide discounts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.core.dates import black_friday
from atelier.data.simulate.config import SeasonalEvent, SimulationConfig

__all__ = ["black_friday", "build_calendar", "event_days", "mobile_probability"]


def event_days(event: SeasonalEvent, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Every day covered by `event` between `start` and `end`, in every year it recurs."""
    days: list[pd.Timestamp] = []
    # Anchors a year either side: an event anchored in January can start in the previous December.
    for year in range(start.year - 1, end.year + 2):
        if event.anchor == "black_friday":
            anchor = black_friday(year)
        else:
            anchor = pd.Timestamp(f"{year}-{event.anchor}")
        first = anchor + pd.Timedelta(days=event.offset_days)
        days.extend(pd.date_range(first, periods=event.days, freq="D"))
    index = pd.DatetimeIndex(days)
    return index[(index >= start) & (index <= end)]


def build_calendar(config: SimulationConfig) -> pd.DataFrame:
    """One row per simulated day: traffic multiplier, store-wide discount and the active event.

    Overlapping events multiply their traffic and the larger discount applies.
    """
    days = pd.date_range(config.start, config.end, freq="D")
    traffic = np.asarray(config.weekly)[days.day_of_week].astype(float)
    discount = np.zeros(len(days))
    event = np.full(len(days), "", dtype=object)
    for seasonal in config.events:
        covered = days.isin(event_days(seasonal, config.start, config.end))
        traffic[covered] *= seasonal.traffic
        discount[covered] = np.maximum(discount[covered], seasonal.discount)
        event[covered] = np.where(event[covered] == "", seasonal.name, event[covered] + "+" + seasonal.name)
    return pd.DataFrame(
        {"day": days, "traffic": traffic, "sale_discount": discount, "event": event.astype(str)}
    )


def mobile_probability(base_share: np.ndarray, day_index: np.ndarray, logit_per_year: float) -> np.ndarray:
    """Chance a session is on mobile: the persona's base share, drifting by `logit_per_year`."""
    base_logit = np.log(base_share / (1 - base_share))
    return 1 / (1 + np.exp(-(base_logit + logit_per_year * day_index / 365.25)))

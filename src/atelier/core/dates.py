"""Retail calendar dates every phase marks on its plots (no simulator needed: they hold for any shop)."""

from __future__ import annotations

import pandas as pd


def black_friday(year: int) -> pd.Timestamp:
    """The Friday after the fourth Thursday of November."""
    november_first = pd.Timestamp(year=year, month=11, day=1)
    first_thursday = november_first + pd.Timedelta(days=(3 - november_first.day_of_week) % 7)
    return first_thursday + pd.Timedelta(days=22)

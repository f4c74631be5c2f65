"""Tests for atelier.data.explore: the descriptive views, and the facts the report states about any shop (busy
stretches, label windows, the device mix), on hand-made data that reaches every branch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.data import explore
from atelier.data.features import sessions_table


def _daily(orders: list[float], start: str = "2025-01-01") -> pd.DataFrame:
    index = pd.date_range(start, periods=len(orders), freq="D", name="day")
    return pd.DataFrame({"orders": orders, "revenue": np.array(orders) * 50.0}, index=index)


def test_black_friday_is_the_day_after_the_fourth_thursday_of_november():
    assert [explore.black_friday(year).date().isoformat() for year in (2023, 2024, 2025, 2026)] == [
        "2023-11-24", "2024-11-29", "2025-11-28", "2026-11-27"]


def test_busy_periods_find_a_peak_and_say_when_it_holds_black_friday():
    orders = [10.0] * 60
    orders[20:30] = [40.0] * 10  # ten busy days from 2025-01-21
    busy = explore.busy_periods(_daily(orders))
    assert len(busy) == 1
    period = busy.iloc[0]
    assert period["start"] <= pd.Timestamp("2025-01-21") and period["end"] >= pd.Timestamp("2025-01-30")
    assert period["peak"] == pytest.approx(4.0) and not period["black_friday"]
    november = [10.0] * 60
    november[40:50] = [30.0] * 10  # 2025-11-21 .. 2025-11-30 holds Black Friday (11-28)
    assert explore.busy_periods(_daily(november, "2025-10-12"))["black_friday"].tolist() == [True]


def test_busy_periods_ignore_short_blips_and_flat_or_empty_data():
    blip = [10.0] * 40
    blip[20] = 200.0  # one very busy day lifts seven 7-day averages: a stretch of seven days
    assert len(explore.busy_periods(_daily(blip))) == 1
    assert len(explore.busy_periods(_daily(blip), min_days=8)) == 0  # too short
    assert explore.busy_periods(_daily([10.0] * 40)).empty
    assert explore.busy_periods(_daily([0.0] * 40)).empty  # the median day has no order
    assert list(explore.busy_periods(_daily([])).columns) == ["start", "end", "days", "peak", "black_friday"]


def test_label_windows_count_the_busy_days_of_each_window():
    periods = pd.DataFrame({"start": [pd.Timestamp("2025-07-05")], "end": [pd.Timestamp("2025-07-14")],
                            "days": [10], "peak": [2.0], "black_friday": [False]})
    summary = pd.DataFrame({"label_rate": [0.05, 0.03, np.nan]}, index=["2025-07-01", "2025-08-01", "2025-07-10"])
    windows = explore.label_windows(summary, periods, horizon_days=30)
    assert windows["busy_days"].tolist() == [10, 0, 5]
    assert explore.busy_windows_compared(windows) == {"busy": 0.05, "quiet": 0.03}  # the censored window is left out


def test_busy_windows_compared_is_none_when_the_windows_do_not_split():
    all_busy = pd.DataFrame({"label_rate": [0.05, 0.04], "busy_days": [3, 9]})
    none_busy = pd.DataFrame({"label_rate": [0.05, 0.04], "busy_days": [0, 0]})
    assert explore.busy_windows_compared(all_busy) is None and explore.busy_windows_compared(none_busy) is None
    assert explore.label_windows(pd.DataFrame({"label_rate": [0.1]}, index=["2025-01-01"]), explore.busy_periods(
        _daily([1.0] * 10)), 30)["busy_days"].tolist() == [0]  # no busy period at all


def _by_month(shares: dict[str, list[float]], conversion: dict[str, float]) -> pd.DataFrame:
    months = pd.date_range("2025-01-01", periods=len(next(iter(shares.values()))), freq="MS")
    rows = []
    for device, values in shares.items():
        for month, share in zip(months, values):
            sessions = int(share * 1000)
            rows.append((month, device, sessions, int(sessions * conversion[device])))
    frame = pd.DataFrame(rows, columns=["month", "device", "sessions", "purchases"])
    frame["share"] = frame["sessions"] / frame.groupby("month")["sessions"].transform("sum")
    frame["conversion"] = frame["purchases"] / frame["sessions"]
    return frame


def test_device_shift_and_the_rising_device():
    by_month = _by_month({"mobile": [0.5, 0.5, 0.5, 0.6, 0.7, 0.7], "desktop": [0.5, 0.5, 0.5, 0.4, 0.3, 0.3]},
                         {"mobile": 0.02, "desktop": 0.05})
    shift = explore.device_shift(by_month)
    assert shift.index.tolist() == ["mobile", "desktop"]
    assert shift.loc["mobile", "first_share"] == pytest.approx(0.5)
    assert shift.loc["mobile", "last_share"] == pytest.approx(2 / 3, abs=0.01)
    assert shift.loc["desktop", "conversion"] == pytest.approx(0.05)
    assert explore.rising_device(shift) == "mobile"


def test_no_rising_device_when_the_mix_holds_or_the_period_is_short():
    steady = _by_month({"mobile": [0.6] * 6, "desktop": [0.4] * 6}, {"mobile": 0.02, "desktop": 0.05})
    assert explore.rising_device(explore.device_shift(steady)) is None
    short = _by_month({"mobile": [0.5, 0.9], "desktop": [0.5, 0.1]}, {"mobile": 0.02, "desktop": 0.05})
    assert explore.rising_device(explore.device_shift(short)) is None  # first and last months are the same months


def _sessions(cart_adds: list[int], purchased: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"cart_adds": cart_adds, "has_purchase": purchased})


def test_cart_abandonment_counts_only_sessions_with_a_cart_add():
    assert explore.cart_abandonment(_sessions([1, 2, 0, 1], [True, False, True, False])) == pytest.approx(2 / 3)
    assert explore.cart_abandonment(_sessions([0, 0], [True, False])) is None


def test_funnel_and_daily_activity_on_the_tiny_shop(tiny_tables):
    """The data, not only the code: every step of the funnel is a subset of the one before."""
    sessions = sessions_table(tiny_tables["events"])
    steps = explore.funnel(sessions)
    assert steps.index.tolist() == ["visit", "product view", "add to cart", "purchase"]
    assert steps["sessions"].is_monotonic_decreasing and steps.loc["visit", "share of visits"] == 1.0
    daily = explore.daily_activity(tiny_tables["orders"], sessions)
    assert daily["orders"].sum() == len(tiny_tables["orders"]) and daily["sessions"].sum() == len(sessions)
    profile = explore.weekday_profile(daily)
    assert profile.index.tolist() == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def test_device_by_month_shares_sum_to_one(tiny_tables):
    by_month = explore.device_by_month(sessions_table(tiny_tables["events"]))
    assert np.allclose(by_month.groupby("month")["share"].sum(), 1.0)
    shift = explore.device_shift(by_month)
    assert shift["first_share"].sum() == pytest.approx(1.0) and shift["last_share"].sum() == pytest.approx(1.0)


def test_missing_share_and_table_overview(tiny_tables):
    frame = pd.DataFrame({"cutoff": [1, 1], "label": [0, 1], "a": [np.nan, 1.0], "b": [1.0, 2.0]})
    assert explore.missing_share(frame).to_dict() == {"a": 0.5}
    overview = explore.table_overview(tiny_tables)
    assert overview.loc["orders", "rows"] == len(tiny_tables["orders"]) and pd.isna(overview.loc["products", "from"])

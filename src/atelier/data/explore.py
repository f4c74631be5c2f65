"""Descriptive views of the shop's data: tables, funnel, seasonality, devices, missing values.

The functions that return a fact a report states (`busy_periods`, `label_windows`, `device_shift`)
compute it from the data at hand, so a sentence built on them holds for any shop, not only the
simulated one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.core.contract import TABLES
from atelier.data.features import sessions_table


def table_overview(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per table: rows, columns, and the time span it covers."""
    rows = []
    for name, frame in tables.items():
        time_column = TABLES[name].time_column if name in TABLES else None
        span = frame[time_column] if time_column and time_column in frame else None
        rows.append(
            {
                "table": name,
                "rows": len(frame),
                "columns": ", ".join(frame.columns),
                "from": span.min() if span is not None and len(span) else pd.NaT,
                "to": span.max() if span is not None and len(span) else pd.NaT,
            }
        )
    return pd.DataFrame(rows).set_index("table")


def funnel(sessions: pd.DataFrame) -> pd.DataFrame:
    """Sessions reaching each step: any visit, a product view, a cart add, a purchase."""
    steps = {
        "visit": len(sessions),
        "product view": int((sessions["views"] > 0).sum()),
        "add to cart": int((sessions["cart_adds"] > 0).sum()),
        "purchase": int(sessions["has_purchase"].sum()),
    }
    frame = pd.DataFrame({"sessions": steps})
    frame["share of visits"] = frame["sessions"] / max(len(sessions), 1)
    frame["share of previous step"] = frame["sessions"] / frame["sessions"].shift(1).fillna(frame["sessions"].iloc[0])
    frame.index.name = "step"
    return frame


def cart_abandonment(sessions: pd.DataFrame) -> float | None:
    """Share of the sessions with a cart add that end without a purchase (None when no session has a cart add)."""
    carted = sessions["cart_adds"] > 0
    if not carted.any():
        return None
    return float((carted & ~sessions["has_purchase"].astype(bool)).sum() / carted.sum())


def daily_activity(orders: pd.DataFrame, sessions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per day: orders, revenue and (with events) sessions."""
    by_day = orders.groupby(orders["ordered_at"].dt.floor("D"))
    daily = pd.DataFrame({"orders": by_day.size(), "revenue": by_day["amount"].sum()})
    if sessions is not None:
        daily = daily.join(sessions.groupby(sessions["start"].dt.floor("D")).size().rename("sessions"), how="outer")
    daily.index.name = "day"
    return daily.fillna(0).sort_index()


def weekday_profile(daily: pd.DataFrame) -> pd.DataFrame:
    """Average activity per weekday, relative to the overall daily average (1 = average day)."""
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    profile = daily.groupby(daily.index.day_of_week).mean() / daily.mean()
    profile.index = [names[i] for i in profile.index]
    return profile


def device_by_month(sessions: pd.DataFrame) -> pd.DataFrame:
    """Per month and device: sessions, share of the month's sessions, and conversion."""
    month = sessions["start"].dt.to_period("M").dt.to_timestamp()
    grouped = sessions.groupby([month.rename("month"), sessions["device"].rename("device")], observed=True)
    frame = grouped.agg(sessions=("session_id", "size"), purchases=("has_purchase", "sum")).reset_index()
    frame["share"] = frame["sessions"] / frame.groupby("month")["sessions"].transform("sum")
    frame["conversion"] = frame["purchases"] / frame["sessions"]
    return frame


def missing_share(features: pd.DataFrame) -> pd.Series:
    """Share of empty values per feature column, largest first (columns with none left out)."""
    share = features.drop(columns=[c for c in ("cutoff", "label") if c in features]).isna().mean()
    return share[share > 0].sort_values(ascending=False)


def black_friday(year: int) -> pd.Timestamp:
    """The Friday after the fourth Thursday of November of `year`."""
    first = pd.Timestamp(year=year, month=11, day=1)
    first_thursday = first + pd.Timedelta(days=(3 - first.day_of_week) % 7)
    return first_thursday + pd.Timedelta(days=22)


def busy_periods(
    daily: pd.DataFrame, column: str = "orders", threshold: float = 1.3, window_days: int = 7, min_days: int = 5
) -> pd.DataFrame:
    """Stretches of at least `min_days` days whose centred `window_days`-day average of `column` is at least
    `threshold` times the median day, busiest first.

    Columns: start, end, days, peak (the highest ratio to the median day in the stretch, the
    window's average), black_friday (whether the stretch holds that year's Black Friday). Empty when
    no stretch is that busy, or the median day has none of `column`.
    """
    columns = ["start", "end", "days", "peak", "black_friday"]
    values = daily[column].astype(float)
    median = float(values.median()) if len(values) else 0.0
    if median <= 0:
        return pd.DataFrame(columns=columns)
    ratio = values.rolling(window_days, center=True, min_periods=(window_days + 1) // 2).mean() / median
    busy = (ratio >= threshold).to_numpy()
    runs = np.cumsum(np.r_[True, busy[1:] != busy[:-1]])
    rows = []
    for run in np.unique(runs[busy]):
        days = ratio.index[runs == run]
        if len(days) >= min_days:
            fridays = {black_friday(year) for year in {days[0].year, days[-1].year}}
            holds = any(days[0] <= friday <= days[-1] for friday in fridays)
            rows.append((days[0], days[-1], len(days), float(ratio[runs == run].max()), holds))
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("peak", ascending=False, kind="stable").reset_index(drop=True)


def label_windows(summary: pd.DataFrame, periods: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """Per cutoff of `summary` (index: cutoff dates, with a label_rate column): the label rate and how many days
    of its label window, [cutoff, cutoff + horizon_days), fall in one of the busy `periods`."""
    rows = []
    for cutoff, rate in summary["label_rate"].items():
        window = pd.date_range(pd.Timestamp(cutoff), periods=horizon_days, freq="D")
        busy = sum(((window >= period.start) & (window <= period.end)).sum() for period in periods.itertuples())
        rows.append((cutoff, rate, int(busy)))
    return pd.DataFrame(rows, columns=["cutoff", "label_rate", "busy_days"]).set_index("cutoff")


def busy_windows_compared(windows: pd.DataFrame) -> dict[str, float] | None:
    """Mean label rate of the windows with busy days and of those without, or None when the windows are not
    split (all or none hold a busy day, or no label rate is known)."""
    known = windows[windows["label_rate"].notna()]
    busy = known["busy_days"] > 0
    if busy.all() or not busy.any():
        return None
    return {"busy": float(known.loc[busy, "label_rate"].mean()), "quiet": float(known.loc[~busy, "label_rate"].mean())}


def device_shift(by_month: pd.DataFrame, months: int = 3) -> pd.DataFrame:
    """Per device (from `device_by_month`): its share of sessions in the first and in the last `months` months,
    the change, and its conversion over the whole period; largest share first."""
    calendar = sorted(by_month["month"].unique())
    first, last = calendar[:months], calendar[-months:]
    totals = by_month.groupby("device", observed=True)[["sessions", "purchases"]].sum()

    def share(chosen: list) -> pd.Series:
        part = by_month[by_month["month"].isin(chosen)]
        return part.groupby("device", observed=True)["sessions"].sum() / part["sessions"].sum()

    frame = pd.DataFrame({"first_share": share(first), "last_share": share(last)}).reindex(totals.index).fillna(0.0)
    frame["change"] = frame["last_share"] - frame["first_share"]
    frame["conversion"] = totals["purchases"] / totals["sessions"]
    frame.attrs["first_months"] = (pd.Timestamp(first[0]), pd.Timestamp(first[-1]))
    frame.attrs["last_months"] = (pd.Timestamp(last[0]), pd.Timestamp(last[-1]))
    return frame.sort_values("last_share", ascending=False, kind="stable")


def rising_device(shift: pd.DataFrame, min_change: float = 0.02) -> str | None:
    """The device whose share of sessions grew most, if it grew by at least `min_change` (else None: the mix
    held, or the period is too short to compare a first and a last stretch of months)."""
    if shift.empty or shift.attrs.get("first_months") == shift.attrs.get("last_months"):
        return None
    device = str(shift["change"].idxmax())
    return device if shift.loc[device, "change"] >= min_change else None


__all__ = [
    "black_friday", "busy_periods", "busy_windows_compared", "cart_abandonment", "daily_activity",
    "device_by_month", "device_shift", "funnel", "label_windows", "missing_share", "rising_device",
    "sessions_table", "table_overview", "weekday_profile",
]

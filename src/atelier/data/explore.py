"""Descriptive views of the shop's data: tables, funnel, seasonality, devices, missing values."""

from __future__ import annotations

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


__all__ = ["table_overview", "funnel", "daily_activity", "weekday_profile", "device_by_month", "missing_share", "sessions_table"]

"""Matplotlib figures the notebooks show. Each takes a tidy frame and returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from atelier.simulate.calendar import black_friday

plt.rcParams.update({"figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3})


def funnel(steps: pd.DataFrame) -> Figure:
    """Horizontal bars: sessions reaching each funnel step, labelled with the share of visits."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh(steps.index[::-1], steps["sessions"][::-1], color="#4c72b0")
    for y, (count, share) in enumerate(zip(steps["sessions"][::-1], steps["share of visits"][::-1])):
        ax.text(count, y, f"  {count:,} ({share:.1%})", va="center")
    ax.set_xlabel("sessions")
    ax.set_xlim(0, steps["sessions"].max() * 1.3)
    ax.set_title("Session funnel")
    fig.tight_layout()
    return fig


def daily_activity(daily: pd.DataFrame, cutoffs: list[pd.Timestamp] | None = None) -> Figure:
    """Daily sessions (if any) and orders over time, weekly averages on top, Black Fridays and cutoffs marked."""
    columns = [c for c in ("sessions", "orders") if c in daily]
    fig, axes = plt.subplots(len(columns), 1, figsize=(11, 2.6 * len(columns)), sharex=True, squeeze=False)
    for ax, column in zip(axes[:, 0], columns):
        ax.plot(daily.index, daily[column], lw=0.6, color="#9aa9c4", label="daily")
        ax.plot(daily.index, daily[column].rolling(7, center=True).mean(), lw=1.6, color="#2a4d8f", label="7-day mean")
        ax.set_ylabel(column)
        for year in sorted(set(daily.index.year)):
            friday = black_friday(year)
            if daily.index.min() <= friday <= daily.index.max():
                ax.axvline(friday, color="#c44e52", ls="--", lw=1)
                ax.annotate("Black Friday", (friday, ax.get_ylim()[1]), color="#c44e52", ha="right", va="top", fontsize=8)
        for cutoff in cutoffs or []:
            ax.axvline(cutoff, color="#55a868", ls=":", lw=1)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title("Activity over time (green dotted lines: snapshot cutoffs)")
    fig.tight_layout()
    return fig


def device_trend(by_month: pd.DataFrame) -> Figure:
    """Two panels: each device's share of sessions per month, and its conversion rate."""
    fig, (share_ax, conversion_ax) = plt.subplots(1, 2, figsize=(11, 3.2))
    for device, group in by_month.groupby("device", observed=True):
        share_ax.plot(group["month"], group["share"], marker="o", ms=3, label=device)
        conversion_ax.plot(group["month"], group["conversion"], marker="o", ms=3, label=device)
    share_ax.set_title("Share of sessions")
    conversion_ax.set_title("Session conversion")
    share_ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1))
    conversion_ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1, decimals=1))
    share_ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def bar(values: pd.Series, title: str, xlabel: str = "", percent: bool = False) -> Figure:
    """A horizontal bar chart of a labelled series (e.g. missing share per feature)."""
    fig, ax = plt.subplots(figsize=(7, 0.25 * len(values) + 1))
    ax.barh(values.index[::-1].astype(str), values.to_numpy()[::-1], color="#4c72b0")
    if percent:
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    return fig


def before_after(before: pd.Series, after: pd.Series, title: str) -> Figure:
    """Histograms of a feature before and after transformation, side by side."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 2.8))
    left.hist(before.dropna(), bins=50, color="#9aa9c4")
    left.set_title(f"{title}: raw (empty values not shown)")
    right.hist(after, bins=50, color="#2a4d8f")
    right.set_title(f"{title}: imputed and scaled")
    fig.tight_layout()
    return fig

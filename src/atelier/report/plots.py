"""Matplotlib figures the notebooks show. Each takes a tidy frame and returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from atelier.core.dates import black_friday

plt.rcParams.update(
    {"figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3}
)


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
                ax.annotate(
                    "Black Friday", (friday, ax.get_ylim()[1]), color="#c44e52", ha="right", va="top", fontsize=8
                )
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


# ------------------------------------------------------------------------------------------------
# Segmentation
# ------------------------------------------------------------------------------------------------
SEGMENT_COLORS = [
    "#4c72b0",
    "#dd8452",
    "#55a868",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#8c8c8c",
    "#ccb974",
    "#64b5cd",
]


def _segment_color(segment: int) -> str:
    return SEGMENT_COLORS[int(segment) % len(SEGMENT_COLORS)]


def k_sweep(sweep: pd.DataFrame, sweep_raw: pd.DataFrame, chosen_k: int) -> Figure:
    """Silhouette, Davies-Bouldin, largest-cluster share and inertia against k, log1p vs raw features."""
    panels = [
        ("silhouette", "silhouette (higher is better)"),
        ("davies_bouldin", "Davies-Bouldin (lower is better)"),
        ("largest_share", "share of the largest cluster"),
        ("inertia", "inertia (elbow)"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    for ax, (column, title) in zip(axes, panels):
        ax.plot(sweep.index, sweep[column], marker="o", label="log1p, scaled")
        if column != "inertia":
            ax.plot(sweep_raw.index, sweep_raw[column], marker="s", ls="--", label="raw, scaled")
        ax.axvline(chosen_k, color="#8c8c8c", ls=":", lw=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("k")
    axes[2].yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def k_distance(distances, eps: float, min_samples: int) -> Figure:
    """Sorted distances to the min_samples-th neighbour, with the chosen DBSCAN eps."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(distances, lw=1.2)
    ax.axhline(eps, color="#c44e52", ls="--", lw=1, label=f"eps = {eps:.2f} (knee)")
    ax.set_xlabel("points, sorted")
    ax.set_ylabel(f"distance to neighbour {min_samples}")
    ax.legend(fontsize=8)
    ax.set_title("k-distance plot")
    fig.tight_layout()
    return fig


def segments_2d(
    coordinates, labels, names: dict[int, str], title: str, axis_labels: tuple[str, str] = ("1", "2")
) -> Figure:
    """A 2-D scatter of customers coloured by segment."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for segment in sorted(set(labels)):
        mask = labels == segment
        ax.scatter(
            coordinates[mask, 0],
            coordinates[mask, 1],
            s=4,
            alpha=0.5,
            color=_segment_color(segment),
            label=names.get(segment, str(segment)),
        )
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def segments_3d(coordinates, labels, names: dict[int, str], explained) -> Figure:
    """A 3-D PCA scatter of customers coloured by segment."""
    fig = plt.figure(figsize=(7, 5.5))
    ax = fig.add_subplot(projection="3d")
    for segment in sorted(set(labels)):
        mask = labels == segment
        ax.scatter(
            coordinates[mask, 0],
            coordinates[mask, 1],
            coordinates[mask, 2],
            s=3,
            alpha=0.4,
            color=_segment_color(segment),
            label=names.get(segment, str(segment)),
        )
    ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    ax.set_zlabel(f"PC3 ({explained[2]:.0%})")
    ax.legend(markerscale=3, fontsize=7, loc="upper left")
    ax.set_title("Segments in the first three principal components")
    fig.tight_layout()
    return fig


def pairwise(frame: pd.DataFrame, labels, names: dict[int, str]) -> Figure:
    """Pairwise scatter plots of a few features (log scale where skewed), coloured by segment."""
    columns = list(frame.columns)
    n = len(columns)
    fig, axes = plt.subplots(n, n, figsize=(2.4 * n, 2.4 * n))
    for row, y in enumerate(columns):
        for column, x in enumerate(columns):
            ax = axes[row, column]
            if row == column:
                for segment in sorted(set(labels)):
                    ax.hist(frame[x][labels == segment], bins=30, alpha=0.5, color=_segment_color(segment))
            else:
                for segment in sorted(set(labels)):
                    mask = labels == segment
                    ax.scatter(frame[x][mask], frame[y][mask], s=2, alpha=0.4, color=_segment_color(segment))
            if row == n - 1:
                ax.set_xlabel(x, fontsize=8)
            if column == 0:
                ax.set_ylabel(y, fontsize=8)
            ax.tick_params(labelsize=6)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=_segment_color(s), label=names.get(s, str(s)))
        for s in sorted(set(labels))
    ]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def stability(jaccard: pd.DataFrame, names: dict[int, str]) -> Figure:
    """Box plot of each segment's Jaccard overlap across bootstrap refits (0.75: Hennig's stability line)."""
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.boxplot([jaccard[c] for c in jaccard.columns], tick_labels=[names.get(c, str(c)) for c in jaccard.columns])
    ax.axhline(0.75, color="#c44e52", ls="--", lw=1)
    ax.set_ylabel("Jaccard with full-data segment")
    ax.set_ylim(min(0.5, float(jaccard.min().min()) - 0.05), 1.01)
    ax.set_title("Segment stability under bootstrap refits")
    plt.setp(ax.get_xticklabels(), rotation=15, ha="right", fontsize=8)
    fig.tight_layout()
    return fig


def heatmap(
    table: pd.DataFrame, title: str, fmt: str = "{:.2f}", cmap: str = "RdBu_r", center: float | None = 0.0
) -> Figure:
    """An annotated heat map of a small table (profiles, confusion tables, transitions)."""
    values = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(0.9 * table.shape[1] + 2.5, 0.45 * table.shape[0] + 1.5))
    if center is not None:
        limit = max(abs(values.min()), abs(values.max())) or 1.0
        image = ax.imshow(values, cmap=cmap, vmin=center - limit, vmax=center + limit, aspect="auto")
    else:
        image = ax.imshow(values, cmap=cmap, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index], fontsize=8)
    for (i, j), value in np.ndenumerate(values):
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7)
    ax.grid(False)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# Propensity models
# ------------------------------------------------------------------------------------------------
def model_curves(curves: dict[str, dict[str, pd.DataFrame]], oracle: dict[str, pd.DataFrame] | None = None) -> Figure:
    """ROC, precision-recall, cumulative gains, lift by decile and calibration for several models (and the oracle)."""
    fig, axes = plt.subplots(1, 5, figsize=(19, 3.8))
    series = dict(curves)
    if oracle is not None:
        series["oracle (true probability)"] = oracle
    for name, curve in series.items():
        style = {"ls": ":", "color": "black"} if name.startswith("oracle") else {}
        axes[0].plot(curve["roc"]["fpr"], curve["roc"]["tpr"], label=name, **style)
        axes[1].plot(curve["pr"]["recall"], curve["pr"]["precision"], label=name, **style)
        axes[2].plot(curve["gains"]["share_targeted"], curve["gains"]["share_of_buyers"], label=name, **style)
        axes[3].plot(curve["lift"]["decile"], curve["lift"]["lift"], marker="o", ms=3, label=name, **style)
        axes[4].plot(
            curve["calibration"]["predicted"], curve["calibration"]["observed"], marker="o", ms=3, label=name, **style
        )
    axes[0].plot([0, 1], [0, 1], color="#bbbbbb", lw=1)
    axes[2].plot([0, 1], [0, 1], color="#bbbbbb", lw=1)
    axes[3].axhline(1.0, color="#bbbbbb", lw=1)  # random targeting
    axes[3].set_xticks(range(1, 11))
    limit = max(float(c["calibration"][["predicted", "observed"]].max().max()) for c in series.values())
    axes[4].plot([0, limit], [0, limit], color="#bbbbbb", lw=1)
    for ax, (title, x, y) in zip(
        axes,
        [
            ("ROC", "false positive rate", "true positive rate"),
            ("Precision-recall", "recall", "precision"),
            ("Cumulative gains", "share of customers targeted", "share of buyers reached"),
            ("Lift by decile", "score decile (1 = highest scores)", "buyer rate / overall rate"),
            ("Calibration (deciles)", "mean predicted probability", "observed buyer rate"),
        ],
    ):
        ax.set_title(title)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def importances(table: pd.DataFrame, title: str, top: int = 15) -> Figure:
    """Side-by-side horizontal bars of several importance measures (each scaled to its maximum)."""
    shown = table.loc[table.abs().max(axis=1).sort_values(ascending=False).index[:top]]
    scaled = shown / shown.abs().max()
    fig, axes = plt.subplots(
        1, len(scaled.columns), figsize=(3.3 * len(scaled.columns), 0.3 * len(shown) + 1.2), sharey=True
    )
    axes = np.atleast_1d(axes)
    for ax, column in zip(axes, scaled.columns):
        ax.barh(scaled.index[::-1], scaled[column][::-1], color="#4c72b0")
        ax.set_title(column, fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def explanation(frame: pd.DataFrame, title: str) -> Figure:
    """One LIME explanation: each condition's push towards (green) or away from (red) an order."""
    rows = frame.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(rows) + 1.2))
    ax.barh(rows["condition"], rows["weight"], color=["#55a868" if w > 0 else "#c44e52" for w in rows["weight"]])
    ax.axvline(0, color="#666666", lw=0.8)
    ax.set_xlabel("contribution to P(order)")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# Real-time replay
# ------------------------------------------------------------------------------------------------
def uplift_sensitivity(sweep: pd.DataFrame, chosen: float) -> Figure:
    """Relative conversion uplift (with its interval) against the assumed response strength."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.fill_between(
        sweep["strength"], sweep["ci_low"], sweep["ci_high"], color="#9aa9c4", alpha=0.5, label="95 % interval"
    )
    ax.plot(sweep["strength"], sweep["relative_uplift"], marker="o", color="#2a4d8f", label="relative uplift")
    if "rule_relative_uplift" in sweep and sweep["rule_relative_uplift"].notna().any():
        ax.plot(sweep["strength"], sweep["rule_relative_uplift"], marker="s", ls="--", color="#dd8452",
                label="same arm, category rule's pages")
    ax.axhline(0, color="#666666", lw=0.8)
    ax.axhline(0.15, color="#c44e52", ls="--", lw=1, label="case study: +15 %")
    ax.axvline(chosen, color="#8c8c8c", ls=":", lw=1)
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1))
    ax.set_xlabel("assumed response strength")
    ax.set_ylabel("conversion uplift")
    ax.legend(fontsize=8)
    ax.set_title("Simulated uplift against the assumed effect")
    fig.tight_layout()
    return fig


def latency(rows: pd.DataFrame) -> Figure:
    """Histograms (log scale) of micro-batch processing time and per-event decision latency."""
    kinds = list(dict.fromkeys(rows["kind"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        values = rows.loc[rows["kind"] == kind, "milliseconds"].to_numpy()
        bins = np.logspace(np.log10(max(values.min(), 1e-3)), np.log10(values.max() + 1e-9), 40)
        ax.hist(values, bins=bins, color="#4c72b0")
        ax.set_xscale("log")
        p99 = np.percentile(values, 99)
        ax.axvline(p99, color="#c44e52", ls="--", lw=1, label=f"p99 {p99:.2f} ms")
        ax.set_title(kind.replace("_", " "))
        ax.set_xlabel("milliseconds")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def drift(table: pd.DataFrame, threshold: float, trigger=None) -> Figure:
    """PSI per day for each monitored column, with the alert threshold and the day the drift rule fired."""
    fig, ax = plt.subplots(figsize=(11, 3.4))
    for column in table.columns:
        ax.plot(table.index, table[column], marker=".", label=column)
    ax.axhline(threshold, color="#c44e52", ls="--", lw=1, label=f"threshold {threshold:g}")
    if trigger is not None:
        ax.axvline(trigger, color="#c44e52", lw=1.5)
        ax.annotate(
            "retraining triggered", (trigger, ax.get_ylim()[1]), color="#c44e52", ha="left", va="top", fontsize=8
        )
    for year in sorted({pd.Timestamp(d).year for d in table.index}):
        friday = black_friday(year)
        if pd.Timestamp(table.index.min()) <= friday <= pd.Timestamp(table.index.max()):
            ax.axvspan(
                friday - pd.Timedelta(days=3),
                friday + pd.Timedelta(days=4),
                color="#dd8452",
                alpha=0.15,
                label="Black Friday week",
            )
    ax.set_ylabel("PSI vs training")
    ax.legend(fontsize=8, ncol=3)
    ax.set_title("Drift of scored profiles against the champion's training data")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def group_rates(table: pd.DataFrame, metric: str, title: str, reference: float | None = None) -> Figure:
    """One panel per attribute: `metric` per group (a fairness.subgroup_metrics table), overall as a dashed line."""
    attributes = list(dict.fromkeys(table["attribute"]))
    fig, axes = plt.subplots(1, len(attributes), figsize=(3.2 * len(attributes), 3), sharey=True, squeeze=False)
    for ax, attribute in zip(axes[0], attributes):
        rows = table[(table["attribute"] == attribute) & (table["group"] != "(all)")]
        ax.bar(rows["group"].astype(str), rows[metric], color="#4c72b0")
        overall = table.loc[(table["attribute"] == attribute) & (table["group"] == "(all)"), metric]
        if len(overall):
            ax.axhline(float(overall.iloc[0]), color="#c44e52", ls="--", lw=1, label="all customers")
        if reference is not None:
            ax.axhline(reference, color="#55a868", ls=":", lw=1)
        ax.set_title(attribute)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    axes[0, 0].set_ylabel(metric.replace("_", " "))
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def retraining_auc(table: pd.DataFrame) -> Figure:
    """Out-of-time AUC per cutoff for each retraining policy; filled markers where the policy retrained."""
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for policy, rows in table.groupby("policy", sort=False):
        (line,) = ax.plot(rows["cutoff"], rows["auc"], marker="o", mfc="none", label=policy)
        fits = rows[rows["retrained"]]
        ax.plot(fits["cutoff"], fits["auc"], "o", color=line.get_color())
    ax.set_ylabel("out-of-time ROC AUC")
    ax.set_title("What retraining buys: AUC of the model in use at each monthly cutoff (filled = retrained then)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def rollback_timeline(timeline: pd.DataFrame, threshold: float, title: str) -> Figure:
    """Daily score PSI, coloured by the champion version that scored the day, the alert threshold and any rollback."""
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(timeline["day"], timeline["score_psi"], color="#b0b0b0", lw=1, zorder=1)
    for number, (version, rows) in enumerate(timeline.groupby("champion_version", sort=False)):
        ax.scatter(
            rows["day"],
            rows["score_psi"],
            color=("#c44e52", "#4c72b0", "#55a868")[number % 3],
            zorder=2,
            label=f"scored by {version}",
        )
    ax.axhline(threshold, color="#c44e52", ls="--", lw=1, label=f"alert threshold {threshold:g}")
    ax.set_ylim(0, max(float(np.nanmax(timeline["score_psi"].to_numpy(dtype=float), initial=0.0)), threshold) * 1.25)
    ax.set_xlim(timeline["day"].min() - pd.Timedelta(days=1), timeline["day"].max() + pd.Timedelta(days=1))
    for day, action in zip(timeline["day"], timeline["action"]):
        if action:
            ax.axvline(day, color="#55a868", lw=1.5)
            ax.annotate(
                action,
                (day, ax.get_ylim()[1]),
                xytext=(4, -4),
                textcoords="offset points",
                color="#55a868",
                ha="left",
                va="top",
                fontsize=8,
            )
    ax.set_ylabel("score PSI vs reference")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="center right")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def estimates(frame: pd.DataFrame, reference: str, title: str, reference_label: str) -> Figure:
    """Point estimates with their intervals, one row per `label`, and the `reference` value each should hit."""
    fig, ax = plt.subplots(figsize=(7.0, 0.32 * len(frame) + 1.2))
    y = np.arange(len(frame))[::-1]
    ax.errorbar(frame["value"], y, xerr=[frame["value"] - frame["ci_low"], frame["ci_high"] - frame["value"]],
                fmt="o", color="#2a4d8f", ecolor="#9aa9c4", capsize=3, label="estimate, 95 % interval")
    ax.scatter(frame[reference], y, marker="|", s=300, color="#c44e52", label=reference_label, zorder=3)
    ax.set_yticks(y, frame["label"], fontsize=8)
    ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1, decimals=1))
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title)
    fig.tight_layout()
    return fig

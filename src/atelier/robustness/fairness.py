"""Subgroup (bias) analysis of the propensity model: does it score and target every group alike?

Per-group metrics with fairlearn's MetricFrame, min/max ratios against the four-fifths rule with
bootstrap intervals, calibration by group (`calibration_reading`), and what equal targeting would
cost (per-group thresholds against a single one). Targeting means contacting the top `share` of
customers by score. Whether personalization helps every group is `group_uplift`'s question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    selection_rate,
)
from sklearn.metrics import roc_auc_score

from atelier.core.config import ParamsError

DEVICES = ("mobile", "desktop", "tablet")  # also the tie order of primary_device
MISSING = "(missing)"
OVERALL = "(all)"
BUYER_METRICS = ("true_positive_rate", "auc", "calibration_ratio")  # undefined or noisy without enough buyers
NO_VISITS = "no visits"
NO_VALUE = (MISSING, NO_VISITS)  # customers without a value of the attribute: listed, never compared
SECTION = "params.yaml robustness.fairness"


@dataclass(frozen=True)
class FairnessSettings:
    """params.yaml `robustness.fairness`: who is compared, the campaign, and the rules that flag a gap."""

    attributes: tuple[str, ...]
    target_share: float
    disparity_threshold: float
    min_group_size: int
    min_buyers: int
    gaps: dict[str, float]
    uplift_min_sessions: int
    bootstrap: int

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> FairnessSettings:
        """Settings from params.yaml's `robustness.fairness` section."""
        try:
            settings = cls(
                attributes=tuple(section["attributes"]),
                target_share=float(section["target_share"]),
                disparity_threshold=float(section["disparity_threshold"]),
                min_group_size=int(section["min_group_size"]),
                min_buyers=int(section["min_buyers"]),
                gaps={str(k): float(v) for k, v in (section["gaps"] or {}).items()},
                uplift_min_sessions=int(section["uplift_min_sessions"]),
                bootstrap=int(section["bootstrap"]),
            )
        except KeyError as missing:
            raise ParamsError(f"{SECTION}: missing key {missing}; restore it from the project's params.yaml") from None
        if not 0 < settings.target_share <= 1:
            raise ParamsError(
                f"{SECTION}.target_share: a share in (0, 1] (e.g. 0.1 for the top 10 %), got {settings.target_share}"
            )
        if not 0 < settings.disparity_threshold <= 1:
            raise ParamsError(
                f"{SECTION}.disparity_threshold: a ratio in (0, 1] (e.g. 0.8), got {settings.disparity_threshold}"
            )
        if (
            settings.min_group_size < 1
            or settings.min_buyers < 0
            or settings.uplift_min_sessions < 1
            or settings.bootstrap < 1
        ):
            raise ParamsError(
                f"{SECTION}: min_group_size, uplift_min_sessions and bootstrap must be 1 or more, min_buyers 0 or more"
            )
        return settings


# Input checks: each error names the argument and what to do.
def _labels(y: Sequence) -> np.ndarray:
    labels = pd.Series(y.to_numpy() if isinstance(y, pd.Series) else np.asarray(y))
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise ValueError(
            "y must hold only 0/1 (or True/False) labels without missing values; drop unlabelled customers first"
        )
    return labels.to_numpy(dtype=int)


def _scores(p: Sequence) -> np.ndarray:
    scores = np.asarray(p, dtype=float)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError("p must be a 1-D array of finite scores; score every customer or drop the unscored ones")
    return scores


def _same_length(**arrays: Sequence) -> None:
    lengths = {name: len(values) for name, values in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"lengths differ: {lengths}; pass one value per customer, in the same order")


def _share(share: float) -> float:
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must lie in (0, 1] (e.g. 0.1 to target the top 10%), got {share}")
    return float(share)


def _groups(group: Sequence, name: str = "group") -> np.ndarray:
    values = pd.Series(np.asarray(group, dtype=object))
    if values.isna().any():
        raise ValueError(f"{name} has missing values; label them (group_columns writes '{MISSING}')")
    return values.astype(str).to_numpy()


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------
def primary_device(frame: pd.DataFrame) -> pd.Series:
    """The device with the largest share_<device> per row; "no visits" when all shares are NaN or 0.

    Ties go to the first device in DEVICES (mobile, desktop, tablet) so the result is deterministic.
    """
    columns = [f"share_{device}" for device in DEVICES]
    present = [column for column in columns if column in frame.columns]
    if not present:
        raise ValueError(
            f"frame has none of the device-share columns {columns}; add them (features.py) or drop 'device'"
        )
    shares = np.nan_to_num(frame[present].to_numpy(dtype=float), nan=0.0)
    names = np.array([column.removeprefix("share_") for column in present], dtype=object)
    device = np.where(shares.max(axis=1) > 0, names[shares.argmax(axis=1)], NO_VISITS)
    return pd.Series(device, index=frame.index, name="device", dtype=str)


def group_columns(
    snapshot: pd.DataFrame, attributes: Sequence[str] = ("gender", "age_band", "region", "device")
) -> tuple[pd.DataFrame, list[str]]:
    """The grouping attributes per customer (index kept) and the attributes skipped as absent.

    "device" comes from primary_device; missing values become "(missing)". Shops without
    demographics simply get fewer attributes, listed in the second return value.
    """
    columns, skipped = {}, []
    for attribute in attributes:
        if (
            attribute == "device"
            and "device" not in snapshot.columns
            and any(f"share_{d}" in snapshot for d in DEVICES)
        ):
            columns[attribute] = primary_device(snapshot)
        elif attribute in snapshot.columns:
            columns[attribute] = (
                snapshot[attribute].astype(object).where(snapshot[attribute].notna(), MISSING).astype(str)
            )
        else:
            skipped.append(attribute)
    return pd.DataFrame(columns, index=snapshot.index), skipped


# --------------------------------------------------------------------------------------------
# Targeting
# --------------------------------------------------------------------------------------------
def _top(scores: np.ndarray, count_selected: int) -> np.ndarray:
    """Exactly `count_selected` highest scores; among equal scores the earlier row wins (stable sort)."""
    chosen = np.zeros(len(scores), dtype=bool)
    chosen[np.argsort(-scores, kind="stable")[:count_selected]] = True
    return chosen


def selected(p: Sequence, share: float) -> np.ndarray:
    """True for the top round(share * n) customers by score (ties: earlier row first)."""
    scores = _scores(p)
    return _top(scores, round(_share(share) * len(scores)))


def target_threshold(p: Sequence, share: float) -> float:
    """The lowest score among the targeted customers (inf when round(share * n) is 0)."""
    scores = _scores(p)
    chosen = selected(scores, share)
    return float(scores[chosen].min()) if chosen.any() else float("inf")


# --------------------------------------------------------------------------------------------
# Per-group metrics and disparities
# --------------------------------------------------------------------------------------------
def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def _auc(y_true, y_pred, scores) -> float:
    return float(roc_auc_score(y_true, scores)) if len(np.unique(y_true)) == 2 else float("nan")


_METRICS = {
    "n": count,
    "buyers": lambda y_true, y_pred: int(np.sum(y_true)),
    "base_rate": lambda y_true, y_pred: float(np.mean(y_true)),
    "mean_score": lambda y_true, y_pred, scores: float(np.mean(scores)),
    "calibration_ratio": lambda y_true, y_pred, scores: _ratio(np.mean(scores), np.mean(y_true)),
    "auc": _auc,
    "selection_rate": selection_rate,
    "true_positive_rate": lambda y_true, y_pred: _ratio(np.sum(y_pred & (y_true == 1)), np.sum(y_true)),
    "precision": lambda y_true, y_pred: _ratio(np.sum(y_pred & (y_true == 1)), np.sum(y_pred)),
}
_SCORED = ("mean_score", "calibration_ratio", "auc")


def subgroup_metrics(y: Sequence, p: Sequence, groups: pd.DataFrame, target_share: float) -> pd.DataFrame:
    """One row per (attribute, group), plus a "(all)" row per attribute with the overall values.

    Columns: n, buyers, base_rate, mean_score, calibration_ratio (mean score / base rate: 1 is
    calibrated in the large), auc (NaN for a single-class group), selection_rate (share of the
    group among the top `target_share` targeted overall), true_positive_rate (share of the
    group's buyers targeted) and precision (buyers among the group's targeted; NaN if none).
    Rows are matched by position: y, p and groups must be in the same customer order.
    """
    labels, scores = _labels(y), _scores(p)
    _same_length(y=labels, p=scores, groups=groups)
    if groups.shape[1] == 0:
        raise ValueError("groups has no columns; build it with group_columns (the data may lack every attribute)")
    chosen = selected(scores, target_share)
    rows = []
    for attribute in groups.columns:
        frame = MetricFrame(
            metrics=_METRICS,
            y_true=labels,
            y_pred=chosen,
            sensitive_features=_groups(groups[attribute], attribute),
            sample_params={name: {"scores": scores} for name in _SCORED},
        )
        table = pd.concat([frame.by_group, frame.overall.to_frame(OVERALL).T])
        rows.append(table.rename_axis("group").reset_index().assign(attribute=attribute))
    table = pd.concat(rows, ignore_index=True)[["attribute", "group", *_METRICS]]
    return table.astype({name: int if name in ("n", "buyers") else float for name in _METRICS})


def disparities(
    table: pd.DataFrame,
    metrics: Sequence[str] = ("selection_rate", "true_positive_rate", "auc", "calibration_ratio"),
    threshold: float = 0.8,
    min_group_size: int = 100,
    min_buyers: int = 0,
    gaps: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Per attribute and metric: lowest and highest group, ratio min/max, difference max - min.

    below_threshold flags ratio < `threshold` (0.8: the four-fifths rule, made for rates such as
    selection and true-positive rates). Metrics named in `gaps` are flagged by their difference
    instead (e.g. {"auc": 0.05}): a four-fifths ratio of AUCs would let 0.92 against 0.74 pass;
    the `rule` column says which test applied. Groups without a value of the attribute
    ("(missing)", "no visits") are not a group to compare and are left out. Groups with fewer
    than `min_group_size` customers are left out (excluded_groups) so a handful of people cannot
    drive a ratio; groups where the metric is undefined (NaN) are listed in undefined_groups.
    For calibration_ratio min/max compares how far groups' over- or under-estimation differs, not
    the distance from 1. Without exclusions the ratio equals MetricFrame.ratio() (between_groups).
    Metrics computed from a group's buyers (true_positive_rate, auc, calibration_ratio) also leave
    out groups with fewer than `min_buyers` buyers (listed in few_buyer_groups): 4 buyers make a
    calibration ratio noise.
    """
    missing = [column for column in ("attribute", "group", "n", *metrics) if column not in table.columns]
    if missing:
        raise ValueError(f"table is missing columns {missing}; pass the output of subgroup_metrics")
    if not 0.0 < threshold <= 1.0 or min_group_size < 1:
        raise ValueError(
            f"threshold must lie in (0, 1] and min_group_size be at least 1; got {threshold}, {min_group_size}"
        )
    gaps = dict(gaps or {})
    rows = []
    for attribute, part in table[table["group"] != OVERALL].groupby("attribute", sort=False):
        valueless = part["group"].isin(NO_VALUE).to_numpy()
        small = part[(part["n"] < min_group_size).to_numpy() | valueless]
        kept = part[(part["n"] >= min_group_size).to_numpy() & ~valueless].set_index("group")
        excluded = ", ".join(
            f"{group} ({'no value' if group in NO_VALUE else f'n={n}'})" for group, n in zip(small["group"], small["n"])
        )
        few = kept[kept["buyers"] < min_buyers] if "buyers" in kept.columns else kept.iloc[:0]
        for metric in metrics:
            by_buyers = metric in BUYER_METRICS and len(few)
            values = (kept.drop(index=few.index) if by_buyers else kept)[metric].dropna()
            low, high = (values.idxmin(), values.idxmax()) if len(values) >= 2 else (None, None)
            ratio = _ratio(values[low], values[high]) if low is not None else np.nan
            difference = values.get(high, np.nan) - values.get(low, np.nan)
            flagged = difference > gaps[metric] if metric in gaps else ratio < threshold
            rows.append(
                {
                    "attribute": attribute,
                    "metric": metric,
                    "groups_compared": len(values),
                    "min_group": low,
                    "min_value": values.get(low, np.nan),
                    "max_group": high,
                    "max_value": values.get(high, np.nan),
                    "ratio": ratio,
                    "difference": difference,
                    "below_threshold": bool(flagged),
                    "rule": f"difference > {gaps[metric]:g}" if metric in gaps else f"ratio < {threshold:g}",
                    "excluded_groups": excluded,
                    "undefined_groups": ", ".join(kept.index[kept[metric].isna()]),
                    "few_buyer_groups": ", ".join(f"{g} ({b} buyers)" for g, b in zip(few.index, few["buyers"]))
                    if by_buyers
                    else "",
                }
            )
    return pd.DataFrame(rows)


def ratio_intervals(
    y: Sequence,
    p: Sequence,
    groups: pd.DataFrame,
    target_share: float,
    *,
    n_boot: int,
    seed: int,
    min_group_size: int = 100,
    min_buyers: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Bootstrap intervals (customers resampled) for the min/max ratios of selection rate and true-positive rate.

    Each resample re-targets its own top `target_share`; the groups compared are those the full
    data compares (as in `disparities`: big enough, with a value, and for the true-positive rate
    with at least `min_buyers` buyers). Columns: attribute, metric, ci_low, ci_high. A flag is
    only clear when the whole interval lies below the threshold.
    """
    labels, scores = _labels(y), _scores(p)
    _same_length(y=labels, p=scores, groups=np.arange(len(groups)))
    rng = np.random.default_rng(seed)
    count_selected = round(_share(target_share) * len(scores))
    draws = []  # (resampled rows, who that resample targets): the same for every attribute
    for _ in range(int(n_boot)):
        draw = rng.integers(0, len(scores), len(scores))
        draws.append((draw, _top(scores[draw], count_selected)))
    rows = []
    for attribute in groups.columns:
        codes, names = pd.factorize(groups[attribute].to_numpy(dtype=str))
        size, buyers = (
            np.bincount(codes, minlength=len(names)),
            np.bincount(codes, weights=labels, minlength=len(names)),
        )
        valued = (size >= min_group_size) & ~np.isin(names, NO_VALUE)
        eligible = {"selection_rate": valued, "true_positive_rate": valued & (buyers >= min_buyers)}
        ratios: dict[str, list[float]] = {metric: [] for metric in eligible}
        for draw, chosen in draws:
            group, bought = codes[draw], labels[draw]
            n = np.bincount(group, minlength=len(names))
            hits = np.bincount(group, weights=chosen, minlength=len(names))
            reached = np.bincount(group, weights=chosen & (bought == 1), minlength=len(names))
            positives = np.bincount(group, weights=bought, minlength=len(names))
            with np.errstate(divide="ignore", invalid="ignore"):
                values = {"selection_rate": hits / n, "true_positive_rate": reached / positives}
            for metric, mask in eligible.items():
                kept = values[metric][mask]
                kept = kept[np.isfinite(kept)]
                ratios[metric].append(_ratio(kept.min(), kept.max()) if len(kept) >= 2 else np.nan)
        tail = (1 - confidence) / 2 * 100
        for metric, values in ratios.items():
            finite = np.asarray(values, dtype=float)
            finite = finite[np.isfinite(finite)]
            low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (np.nan, np.nan)
            rows.append({"attribute": attribute, "metric": metric, "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(rows)


INTERVALS = ("below", "straddles", "above", "")  #: where a ratio's interval lies against the threshold


def interval_verdict(ci_low: float, ci_high: float, threshold: float) -> str:
    """Where a bootstrap interval of a ratio lies against `threshold`: "below" (the whole interval, so the flag is
    clear), "above" (the whole interval), "straddles" (the flag could be noise), "" (no interval)."""
    if pd.isna(ci_low) or pd.isna(ci_high):
        return ""
    if ci_high < threshold:
        return "below"
    return "above" if ci_low >= threshold else "straddles"


def group_disparities(
    y: Sequence, p: Sequence, groups: pd.DataFrame, settings: FairnessSettings, *, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`subgroup_metrics` and `disparities` under the settings' rules, with each ratio's bootstrap interval
    (`ratio_intervals`: ci_low, ci_high) and where it lies against the threshold (`interval`: `interval_verdict`)."""
    table = subgroup_metrics(y, p, groups, settings.target_share)
    disparity = disparities(
        table,
        threshold=settings.disparity_threshold,
        min_group_size=settings.min_group_size,
        min_buyers=settings.min_buyers,
        gaps=settings.gaps,
    )
    intervals = ratio_intervals(
        y,
        p,
        groups,
        settings.target_share,
        n_boot=settings.bootstrap,
        seed=seed,
        min_group_size=settings.min_group_size,
        min_buyers=settings.min_buyers,
    )
    disparity = disparity.merge(intervals, on=["attribute", "metric"], how="left")
    disparity["interval"] = [
        interval_verdict(low, high, settings.disparity_threshold)
        for low, high in zip(disparity["ci_low"], disparity["ci_high"])
    ]
    return table, disparity


def calibration_direction(ratio: float, tolerance: float = 0.1) -> str:
    """Mean score against purchase rate: "under" (ratio below 1 - tolerance), "over" (above 1 + tolerance),
    "calibrated" in between, "undefined" without a ratio (no buyer)."""
    if pd.isna(ratio):
        return "undefined"
    return "under" if ratio < 1 - tolerance else ("over" if ratio > 1 + tolerance else "calibrated")


def calibration_reading(
    table: pd.DataFrame,
    training_labels: Sequence,
    *,
    min_group_size: int = 100,
    min_buyers: int = 0,
    tolerance: float = 0.1,
    gap: float = 0.2,
) -> dict[str, Any]:
    """Is the champion calibrated in the large, is every group off the same way, and did the purchase rate move?

    From `subgroup_metrics`: ratio, mean_score and base_rate overall, direction (`calibration_direction`);
    over the groups with a value, at least `min_group_size` customers and `min_buyers` buyers:
    groups, same_direction (how many are off the same way as the whole), every_group (all of
    them), group_min and group_max (their calibration ratios), alike (every group, and their
    ratios within `gap` of each other: the calibration gap rule). training_rate: the purchase rate
    of `training_labels` (the snapshots the model learned from); rate_shift: "rose", "fell" or
    "steady" from there to the test snapshot (relative change beyond `tolerance`); explained: the
    scores are off the way a moved purchase rate pushes them (low after a rise, high after a fall).
    """
    overall = table[table["group"] == OVERALL]
    if overall.empty:
        raise ValueError("calibration_reading: the table has no overall row; pass the output of subgroup_metrics")
    overall = overall.iloc[0]
    direction = calibration_direction(overall["calibration_ratio"], tolerance)
    compared = table[
        (table["group"] != OVERALL)
        & ~table["group"].isin(NO_VALUE)
        & (table["n"] >= min_group_size)
        & (table["buyers"] >= min_buyers)
    ]
    ratios = compared["calibration_ratio"].dropna()
    same = int(sum(calibration_direction(ratio, tolerance) == direction for ratio in ratios))
    labels = pd.Series(np.asarray(training_labels, dtype=float)).dropna()
    training_rate = float(labels.mean()) if len(labels) else float("nan")
    change = overall["base_rate"] / training_rate if training_rate > 0 else float("nan")
    shift = "rose" if change > 1 + tolerance else ("fell" if change < 1 - tolerance else "steady")
    return {
        "ratio": float(overall["calibration_ratio"]),
        "mean_score": float(overall["mean_score"]),
        "base_rate": float(overall["base_rate"]),
        "direction": direction,
        "groups": int(len(ratios)),
        "same_direction": same,
        "every_group": bool(len(ratios)) and same == len(ratios),
        "alike": bool(len(ratios)) and same == len(ratios) and float(ratios.max() - ratios.min()) <= gap,
        "group_min": float(ratios.min()) if len(ratios) else float("nan"),
        "group_max": float(ratios.max()) if len(ratios) else float("nan"),
        "training_rate": training_rate,
        "rate_shift": shift if not pd.isna(change) else "unknown",
        "explained": (direction, shift) in (("under", "rose"), ("over", "fell")),
    }


# --------------------------------------------------------------------------------------------
# What would equal targeting cost?
# --------------------------------------------------------------------------------------------
def equalize_selection(p: Sequence, group: Sequence, share: float) -> np.ndarray:
    """Per-group thresholds: each group's top `share`, with exactly round(share * n) selected in total.

    Group quotas share * n_g are rounded by largest remainder (ties: groups in sorted order), so
    every group's rate is within 1 / n_g of `share` and the total matches a single threshold.
    """
    scores, labels = _scores(p), _groups(group)
    _same_length(p=scores, group=labels)
    share = _share(share)
    names, sizes = np.unique(labels, return_counts=True)
    quotas = share * sizes
    counts = np.floor(quotas).astype(int)
    leftover = round(share * len(scores)) - counts.sum()
    counts[np.argsort(-(quotas - counts), kind="stable")[:leftover]] += 1
    chosen = np.zeros(len(scores), dtype=bool)
    for name, quota in zip(names, counts):
        members = np.flatnonzero(labels == name)
        chosen[members[_top(scores[members], quota)]] = True
    return chosen


def mitigation_cost(y: Sequence, p: Sequence, group: Sequence, share: float) -> pd.DataFrame:
    """Targeting quality of a single threshold vs per-group thresholds (equalize_selection).

    Per row: selected, precision, recall (share of all buyers reached), lift (precision / base
    rate), and fairlearn's selection-rate ratio (min/max over groups) and difference.
    """
    labels, scores, names = _labels(y), _scores(p), _groups(group)
    _same_length(y=labels, p=scores, group=names)
    rows = {}
    for policy, chosen in (
        ("single threshold", selected(scores, share)),
        ("per-group thresholds", equalize_selection(scores, names, share)),
    ):
        precision = _ratio(labels[chosen].sum(), chosen.sum())
        rows[policy] = {
            "selected": int(chosen.sum()),
            "precision": precision,
            "recall": _ratio(labels[chosen].sum(), labels.sum()),
            "lift": _ratio(precision, labels.mean()),
            "selection_rate_ratio": demographic_parity_ratio(labels, chosen, sensitive_features=names),
            "selection_rate_difference": demographic_parity_difference(labels, chosen, sensitive_features=names),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("policy")


def mitigation_costs(
    y: Sequence, p: Sequence, groups: pd.DataFrame, share: float, exclude: Sequence[str] = ("device",)
) -> pd.DataFrame:
    """`mitigation_cost` per attribute of `groups` except `exclude` (device is behaviour, not owed equal
    treatment), indexed by (attribute, policy); empty when no attribute is left."""
    attributes = [attribute for attribute in groups.columns if attribute not in exclude]
    if not attributes:
        return pd.DataFrame(
            columns=["selected", "precision", "recall", "lift", "selection_rate_ratio", "selection_rate_difference"],
            index=pd.MultiIndex.from_tuples([], names=["attribute", "policy"]),
        )
    return pd.concat(
        {attribute: mitigation_cost(y, p, groups[attribute], share) for attribute in attributes}, names=["attribute"]
    )


def largest_cost(costs: pd.DataFrame) -> dict[str, Any] | None:
    """The attribute whose per-group thresholds lose the most precision (`mitigation_costs`): attribute,
    precision and recall under both policies, precision_loss (single minus per-group: 0 or less means
    equal selection costs no precision for any attribute) and costs_precision (it is above 0). None when
    there is no attribute."""
    if costs.empty:
        return None
    single, equal = costs.xs("single threshold", level="policy"), costs.xs("per-group thresholds", level="policy")
    loss = single["precision"] - equal["precision"]
    worst = loss.idxmax()
    return {
        "attribute": str(worst),
        "precision_single": float(single.at[worst, "precision"]),
        "precision_equal": float(equal.at[worst, "precision"]),
        "recall_single": float(single.at[worst, "recall"]),
        "recall_equal": float(equal.at[worst, "recall"]),
        "precision_loss": float(loss[worst]),
        "costs_precision": bool(loss[worst] > 0),
    }

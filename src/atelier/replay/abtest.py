"""The A/B test of the replay: stateless arm assignment, per-arm summaries, uplift and sample size.

Control sees the default experience, treatment the personalized one. A customer's arm comes
from a salted SHA-256 hash of the customer id, so it never changes between sessions, batches or
runs. Sessions of one customer are correlated (the same taste, budget and habits), so the
uncertainty of an uplift comes from a bootstrap over customers, not over sessions: resampling
sessions would treat ten visits of one loyal buyer as ten independent pieces of evidence.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

ARMS = ("control", "treatment")

#: Each uplift metric as (numerator, denominator) of per-customer sums.
METRICS = {
    "conversion_rate": ("conversions", "sessions"),
    "revenue_per_session": ("revenue", "sessions"),
    "average_order_value": ("revenue", "conversions"),
}

SESSION_COLUMNS = ("customer_id", "arm", "converted", "revenue")

#: Bootstrap index cells drawn at once (bounds memory: ~16 MB of int64 per chunk).
_CHUNK_CELLS = 2_000_000


# --------------------------------------------------------------------------------------------
# Assignment
# --------------------------------------------------------------------------------------------
def unit_draw(key: str) -> float:
    """A uniform number in [0, 1) from SHA-256 of `key`: the top 53 bits of its first 8 bytes."""
    first_bytes = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return (first_bytes >> 11) / float(1 << 53)


def assign_arm(customer_ids: Sequence, seed: int, treatment_share: float = 0.5, salt: str = "atelier-ab") -> np.ndarray:
    """The arm of each customer: "treatment" if the hash draw of f"{salt}:{seed}:{id}" is below `treatment_share`.

    Stateless and deterministic: the same id gets the same arm in any order or batch. Ids are
    hashed as text, so 42, np.int64(42) and "42" share an arm (but 42.0 does not: keep ids
    integer or string). Raising `treatment_share` only moves customers from control to treatment.
    """
    if not 0.0 <= treatment_share <= 1.0:
        raise ValueError(f"treatment_share must lie in [0, 1], got {treatment_share}")
    ids = customer_ids.tolist() if hasattr(customer_ids, "tolist") else list(customer_ids)
    draws = np.fromiter((unit_draw(f"{salt}:{seed}:{customer_id}") for customer_id in ids), dtype=float, count=len(ids))
    return np.where(draws < treatment_share, ARMS[1], ARMS[0])


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------
def _checked_sessions(sessions: pd.DataFrame) -> pd.DataFrame:
    """The session table's needed columns, with a clear error for what is missing or undefined."""
    missing = [column for column in SESSION_COLUMNS if column not in sessions.columns]
    if missing:
        raise ValueError(f"sessions needs columns {list(SESSION_COLUMNS)}; missing {missing}")
    undefined = [column for column in SESSION_COLUMNS if sessions[column].isna().any()]
    if undefined:
        raise ValueError(
            f"sessions has missing values in {undefined}; every session needs an arm and a customer, "
            "converted must be True/False and revenue 0 for sessions without an order"
        )
    unknown = sorted(set(sessions["arm"].unique()) - set(ARMS))
    if unknown:
        raise ValueError(f"sessions has arms {unknown}; only {list(ARMS)} are allowed")
    return sessions.loc[:, list(SESSION_COLUMNS)]


def per_customer(sessions: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, customer): sessions, conversions (converted sessions) and revenue."""
    frame = _checked_sessions(sessions)
    return (
        frame.assign(converted=frame["converted"].astype(bool).astype("int64"), revenue=frame["revenue"].astype(float))
        .groupby(["arm", "customer_id"], sort=True)
        .agg(sessions=("converted", "size"), conversions=("converted", "sum"), revenue=("revenue", "sum"))
    )


def arm_summary(sessions: pd.DataFrame) -> pd.DataFrame:
    """Per arm: sessions, customers, conversions, conversion_rate, revenue, revenue_per_session, average_order_value.

    A conversion is a session with an order; average order value is revenue / conversions (NaN
    when an arm has no conversion yet).
    """
    customers = per_customer(sessions)
    summary = customers.groupby(level="arm").agg(
        sessions=("sessions", "sum"), customers=("sessions", "size"), conversions=("conversions", "sum"),
        revenue=("revenue", "sum")
    )
    summary = summary.reindex([arm for arm in ARMS if arm in summary.index])
    summary.index.name = "arm"
    summary["conversion_rate"] = summary["conversions"] / summary["sessions"]
    summary["revenue_per_session"] = summary["revenue"] / summary["sessions"]
    summary["average_order_value"] = summary["revenue"] / summary["conversions"].where(summary["conversions"] > 0)
    return summary[
        ["sessions", "customers", "conversions", "conversion_rate", "revenue", "revenue_per_session",
         "average_order_value"]
    ]


# --------------------------------------------------------------------------------------------
# Uplift with a customer-cluster bootstrap
# --------------------------------------------------------------------------------------------
def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray | float:
    """numerator / denominator with NaN where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def bootstrap_ratio(numerator: np.ndarray, denominator: np.ndarray, n_boot: int,
                    rng: np.random.Generator) -> np.ndarray:
    """sum(numerator) / sum(denominator) over `n_boot` resamples of the rows (clusters) with replacement."""
    rows = len(numerator)
    draws = np.empty(n_boot)
    per_chunk = max(1, _CHUNK_CELLS // rows)
    for start in range(0, n_boot, per_chunk):
        size = min(per_chunk, n_boot - start)
        picked = rng.integers(0, rows, size=(size, rows))
        draws[start : start + size] = _ratio(numerator[picked].sum(axis=1), denominator[picked].sum(axis=1))
    return draws


def uplift(sessions: pd.DataFrame, *, metric: str = "conversion_rate", n_boot: int = 1000, seed: int = 0,
           level: float = 0.95) -> dict[str, float]:
    """Relative uplift treatment / control - 1 of `metric`, with a customer-cluster bootstrap CI.

    Each arm's customers are resampled with replacement, keeping all their sessions. Returns
    control, treatment (the metric per arm), relative_uplift, ci_low, ci_high (percentile interval
    at `level`), absolute_difference, p_value_two_sided (twice the smaller share of draws of the
    difference at or beyond 0 on either side, capped at 1; resolution 1 / n_boot, so 0 means
    "below 1 / n_boot") and n_boot (draws in which the metric is defined in both arms). Relative
    figures are NaN when the control metric is 0 or undefined.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level}")
    customers = per_customer(sessions)
    absent = [arm for arm in ARMS if arm not in customers.index.get_level_values("arm")]
    if absent:
        raise ValueError(f"uplift needs sessions in both arms; none in {absent}")
    numerator_column, denominator_column = METRICS[metric]
    streams = np.random.SeedSequence(seed).spawn(len(ARMS))
    point, draws = {}, {}
    for arm, stream in zip(ARMS, streams):
        numerator = customers.loc[arm, numerator_column].to_numpy(dtype=float)
        denominator = customers.loc[arm, denominator_column].to_numpy(dtype=float)
        point[arm] = float(_ratio(numerator.sum(), denominator.sum()))
        draws[arm] = bootstrap_ratio(numerator, denominator, n_boot, np.random.default_rng(stream))
    control, treatment = point[ARMS[0]], point[ARMS[1]]
    defined = np.isfinite(draws[ARMS[0]]) & np.isfinite(draws[ARMS[1]]) & (draws[ARMS[0]] > 0)
    difference = draws[ARMS[1]][defined] - draws[ARMS[0]][defined]
    relative = draws[ARMS[1]][defined] / draws[ARMS[0]][defined] - 1.0
    tail = (1.0 - level) / 2.0
    if len(relative) and control > 0:
        ci_low, ci_high = (float(v) for v in np.quantile(relative, [tail, 1.0 - tail]))
        p_value = float(min(1.0, 2.0 * min(np.mean(difference <= 0), np.mean(difference >= 0))))
        relative_uplift = treatment / control - 1.0
    else:
        ci_low = ci_high = p_value = relative_uplift = math.nan
    return {
        "control": control,
        "treatment": treatment,
        "relative_uplift": relative_uplift,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "absolute_difference": treatment - control,
        "p_value_two_sided": p_value,
        "n_boot": int(defined.sum()),
    }


# --------------------------------------------------------------------------------------------
# Sample size
# --------------------------------------------------------------------------------------------
def sessions_needed(p_control: float, relative_uplift: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Sessions per arm for a two-sided two-proportion z-test to detect `relative_uplift` (normal approximation).

    n = (z_(1-alpha/2) * sqrt(2 p̄ (1 - p̄)) + z_power * sqrt(p1 (1 - p1) + p2 (1 - p2)))^2 / (p2 - p1)^2,
    with p2 = p1 (1 + relative_uplift) and p̄ their mean (pooled variance under H0, unpooled
    under H1), rounded up. It assumes independent sessions: with repeat visitors, inflate it by
    the design effect (or count customers instead).
    """
    if not 0.0 < p_control < 1.0:
        raise ValueError(f"p_control must be a probability strictly between 0 and 1, got {p_control}")
    if relative_uplift == 0:
        raise ValueError("relative_uplift is 0: no sample size detects no effect; "
                         "pass the smallest uplift worth detecting, e.g. 0.1")
    p_treatment = p_control * (1.0 + relative_uplift)
    if not 0.0 < p_treatment < 1.0:
        raise ValueError(
            f"p_control * (1 + relative_uplift) = {p_treatment:g} is not a probability strictly between 0 and 1; "
            "lower the uplift (it must stay above -1)"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1 (e.g. 0.05), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must lie strictly between 0 and 1 (e.g. 0.8), got {power}")
    pooled = (p_control + p_treatment) / 2.0
    z_alpha, z_power = norm.ppf(1.0 - alpha / 2.0), norm.ppf(power)
    spread = z_alpha * math.sqrt(2.0 * pooled * (1.0 - pooled)) + z_power * math.sqrt(
        p_control * (1.0 - p_control) + p_treatment * (1.0 - p_treatment)
    )
    return int(math.ceil(spread**2 / (p_treatment - p_control) ** 2))


# --------------------------------------------------------------------------------------------
# The replay's A/B test
# --------------------------------------------------------------------------------------------
#: The case study's reported conversion uplift: the sample size to detect it is always reported.
CASE_STUDY_UPLIFT = 0.15


def measure(visits: pd.DataFrame, seed: int, n_boot: int = 1000) -> dict[str, Any]:
    """The A/B test on the replay's visits (customer_id, arm, purchased, revenue).

    arms (`arm_summary` per arm) and the uplift of conversion, revenue_per_session and
    average_order_value, each with its customer-cluster bootstrap interval (`uplift`).
    """
    sessions = visits.assign(converted=visits["purchased"].astype(bool))[list(SESSION_COLUMNS)]
    return {
        "arms": arm_summary(sessions).to_dict(orient="index"),
        "conversion": uplift(sessions, metric="conversion_rate", n_boot=n_boot, seed=seed),
        "revenue_per_session": uplift(sessions, metric="revenue_per_session", n_boot=n_boot, seed=seed),
        "average_order_value": uplift(sessions, metric="average_order_value", n_boot=n_boot, seed=seed),
    }


def covers_zero(result: dict[str, float]) -> bool | None:
    """Whether an `uplift` result's interval includes 0 (no effect); None when the interval is undefined."""
    low, high = result["ci_low"], result["ci_high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return bool(low <= 0.0 <= high)


def sample_sizes(conversion: dict[str, float]) -> dict[str, int | None]:
    """Sessions per arm a real test would need (`sessions_needed`) to detect the measured conversion uplift
    (`sessions_needed_per_arm`; None unless it is positive) and the case study's +15 %
    (`sessions_needed_for_15_percent`).

    Either is None when the control rate leaves no room for such an effect (0, or a treatment rate of 1 or more).
    """
    def needed(relative: float) -> int | None:
        try:
            return sessions_needed(conversion["control"], relative)
        except ValueError:
            return None

    measured = conversion["relative_uplift"]
    return {"sessions_needed_per_arm": needed(measured) if math.isfinite(measured) and measured > 0 else None,
            "sessions_needed_for_15_percent": needed(CASE_STUDY_UPLIFT)}

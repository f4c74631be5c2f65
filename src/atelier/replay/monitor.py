"""Monitoring the live system: latency, throughput, feature and score drift, and realized AUC.

Drift is measured with the Population Stability Index (PSI) against a reference sample (the
training snapshot), per period of the replay; a `DriftRule` turns a run of high PSI values into a
retraining trigger. Realized AUC checks the propensity scores against what customers then did,
counting only scorings whose label window has fully passed ("mature"), so that the most recent
periods are not scored against orders that have not happened yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from atelier.core.config import ParamsError


def _require(frame: pd.DataFrame, columns: list[str] | tuple[str, ...], name: str) -> None:
    """Raise a ValueError naming the columns `frame` lacks."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} needs columns {list(columns)}; missing {missing}")


def _floats(values: Any, name: str) -> np.ndarray:
    """`values` as a 1-D float array (pandas missing values become NaN)."""
    try:
        if isinstance(values, (pd.Series, pd.Index)):
            array = values.to_numpy(dtype=float, na_value=np.nan)
        else:
            array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric (encode categories as numbers first): {error}") from None
    return array.ravel()


# --------------------------------------------------------------------------------------------
# Latency and throughput
# --------------------------------------------------------------------------------------------
def latency_summary(seconds: np.ndarray) -> dict[str, float]:
    """Latencies given in seconds, summarized in milliseconds: count, mean, p50, p90, p99, max.

    An empty window gives count 0 and NaN for the rest.
    """
    milliseconds = _floats(seconds, "latencies") * 1000.0
    if np.isnan(milliseconds).any():
        raise ValueError("latencies contain NaN; drop requests without a measured latency (or count them separately)")
    if len(milliseconds) == 0:
        return {"count": 0, "mean": np.nan, "p50": np.nan, "p90": np.nan, "p99": np.nan, "max": np.nan}
    p50, p90, p99 = np.percentile(milliseconds, [50, 90, 99])
    return {"count": int(len(milliseconds)), "mean": float(milliseconds.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "max": float(milliseconds.max())}


def latency_histogram(milliseconds: np.ndarray, *, width_ms: float = 0.1, limit_ms: float = 2.0) -> pd.DataFrame:
    """Counts of latencies (given in milliseconds) in bins of `width_ms` from 0 to `limit_ms`, plus one bin beyond.

    One row per bin, every bin listed (empty ones count 0): `bin` (a label such as "0.3-0.4 ms",
    and "2.0+ ms" for the last; the numbers are zero-padded to one width so that sorting the labels
    as text keeps the bins in order, as a bar chart's category axis does), `low_ms`, `high_ms`
    (inf for the last) and `count`. Bins are closed on the left: [low, high).
    """
    values = _floats(milliseconds, "latencies")
    if np.isnan(values).any():
        raise ValueError("latencies contain NaN; drop requests without a measured latency (or count them separately)")
    if (values < 0).any():
        raise ValueError("latencies must be 0 or more milliseconds")
    if not (width_ms > 0 and limit_ms > 0):
        raise ValueError(f"width_ms and limit_ms must be positive, got {width_ms} and {limit_ms}")
    bins = int(round(limit_ms / width_ms))
    if not math.isclose(bins * width_ms, limit_ms, rel_tol=1e-9):
        raise ValueError(f"limit_ms ({limit_ms}) must be a whole number of bins of width_ms ({width_ms})")
    edges = np.arange(bins + 1) * width_ms
    # Bin by integer division so that edges like 0.3 do not depend on floating-point rounding.
    positions = np.minimum(np.floor(values / width_ms + 1e-9).astype(np.int64), bins)
    counts = np.bincount(positions, minlength=bins + 1)
    decimals = max(0, -math.floor(math.log10(width_ms)))
    size = len(f"{limit_ms:.{decimals}f}")

    def label(number: float) -> str:
        return f"{number:0{size}.{decimals}f}"

    labels = [f"{label(low)}-{label(high)} ms" for low, high in zip(edges[:-1], edges[1:])] + [f"{label(limit_ms)}+ ms"]
    return pd.DataFrame({"bin": labels, "low_ms": edges, "high_ms": np.append(edges[1:], np.inf), "count": counts})


def throughput(events: int, seconds: float) -> float:
    """Events per second."""
    if not seconds > 0:
        raise ValueError(f"seconds must be positive to compute a throughput, got {seconds}")
    if events < 0:
        raise ValueError(f"events must be a count (0 or more), got {events}")
    return float(events) / float(seconds)


# --------------------------------------------------------------------------------------------
# Drift
# --------------------------------------------------------------------------------------------
def psi_cuts(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """Cut points of the PSI bins: the reference's interior quantiles, deduplicated.

    Bins are right-closed, (-inf, c1], (c1, c2], ..., (c_last, inf): a value repeated across
    several quantiles (the zeros of a zero-heavy feature, each level of a discrete one) collapses
    to one cut and so gets a bin of its own.
    """
    known = reference[~np.isnan(reference)]
    if len(known) == 0:
        return np.empty(0)
    levels = np.arange(1, bins) / bins
    return np.unique(np.quantile(known, levels, method="inverted_cdf"))


def _shares(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Share of `values` in each bin of `cuts`, with a last bin for NaN."""
    missing = np.isnan(values)
    positions = np.searchsorted(cuts, values[~missing], side="left")
    counts = np.bincount(positions, minlength=len(cuts) + 1).astype(float)
    return np.append(counts, missing.sum()) / len(values)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, epsilon: float = 1e-4) -> float:
    """Population Stability Index of `current` against `reference`: sum (c - r) * ln(c / r) over bins.

    Bins come from the reference's quantiles (see `psi_cuts`); values beyond the reference's
    range fall in the end bins, NaN values form a bin of their own, and an empty share counts as
    `epsilon`. 0 means identical bin shares; rules of thumb: < 0.1 stable, 0.1-0.25 moderate
    shift, > 0.25 large shift.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive (it stands in for empty shares), got {epsilon}")
    reference, current = _floats(reference, "reference"), _floats(current, "current")
    if len(reference) == 0 or len(current) == 0:
        raise ValueError(f"psi needs values on both sides; got {len(reference)} reference and {len(current)} "
                         "current values")
    cuts = psi_cuts(reference, bins)
    expected = np.maximum(_shares(reference, cuts), epsilon)
    actual = np.maximum(_shares(current, cuts), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_by_period(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], period_column: str,
                    bins: int = 10) -> pd.DataFrame:
    """PSI of each column in each period of `current` against all of `reference`.

    Rows: the periods in `current[period_column]`, sorted (rows without a period are left out);
    columns: `columns`.
    """
    _require(reference, columns, "reference")
    _require(current, [*columns, period_column], "current")
    rows = {
        period: {column: psi(reference[column], group[column], bins=bins) for column in columns}
        for period, group in current.groupby(period_column, sort=True)
    }
    drift = pd.DataFrame.from_dict(rows, orient="index", columns=list(columns))
    drift.index.name = period_column
    return drift


@dataclass(frozen=True)
class DriftRule:
    """Retrain when a listed column's PSI exceeds `threshold` in `consecutive` periods in a row."""

    columns: tuple[str, ...]
    threshold: float
    consecutive: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if not self.columns:
            raise ValueError("DriftRule needs at least one column to watch")
        if not self.threshold >= 0:
            raise ValueError(f"DriftRule threshold is a PSI and must be 0 or more (e.g. 0.2), got {self.threshold}")
        if int(self.consecutive) != self.consecutive or self.consecutive < 1:
            raise ValueError("DriftRule consecutive must be a whole number of periods, 1 or more, "
                             f"got {self.consecutive}")

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> DriftRule:
        """The rule from params.yaml's `replay.drift` section (columns, psi_threshold, consecutive_days)."""
        try:
            return cls(tuple(section["columns"]), float(section["psi_threshold"]), int(section["consecutive_days"]))
        except KeyError as missing:
            raise ParamsError(f"params.yaml replay.drift: missing key {missing}; "
                              "restore it from the project's params.yaml") from None
        except ValueError as error:
            raise ParamsError(f"params.yaml replay.drift: {error}") from None

    def first_trigger(self, drift: pd.DataFrame) -> Any | None:
        """The first period (index label of `drift`, rows in time order) at which the rule fires; None if never.

        It fires at the period completing a run of `consecutive` periods above the threshold in
        the same column; equal to the threshold or NaN (no data) does not count and breaks a run.
        """
        _require(drift, self.columns, "drift")
        above = drift[list(self.columns)].gt(self.threshold)
        # Length of the current run of Trues at each row: cumulative count since the last False.
        runs = above.cumsum() - above.cumsum().where(~above).ffill().fillna(0)
        fired = (runs >= self.consecutive).any(axis=1).to_numpy()
        return drift.index[int(np.argmax(fired))] if fired.any() else None


# --------------------------------------------------------------------------------------------
# Realized AUC
# --------------------------------------------------------------------------------------------
def scorings(decisions: pd.DataFrame) -> pd.DataFrame:
    """The scored decisions (a propensity, not NaN) as `realized_auc` reads them: customer_id, scored_at, score."""
    scored = decisions.loc[decisions["propensity"].notna().to_numpy(), ["customer_id", "ts", "propensity"]]
    return scored.rename(columns={"ts": "scored_at", "propensity": "score"})


def realized_auc(scores: pd.DataFrame, orders: pd.DataFrame, *, horizon_days: int, data_end: pd.Timestamp,
                 period: str = "W") -> pd.DataFrame:
    """ROC AUC of the scores against what customers then did, per period of scored_at.

    A scoring's label is 1 if the customer ordered in (scored_at, scored_at + horizon_days]. It
    is mature only if scored_at + horizon_days <= data_end: later scorings cannot be labelled yet
    and are left out of the AUC. Per period (pandas alias, e.g. "W" or "D"): scorings,
    mature_scorings, buyers (mature scorings with label 1), roc_auc over mature scorings (NaN
    with fewer than two classes) and mature_share.
    """
    _require(scores, ["customer_id", "scored_at", "score"], "scores")
    _require(orders, ["customer_id", "ordered_at"], "orders")
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be 1 or more, got {horizon_days}")
    numeric = {pd.api.types.is_numeric_dtype(frame["customer_id"]) for frame in (scores, orders)}
    if len(numeric) > 1:
        raise ValueError(
            f"customer_id is {scores['customer_id'].dtype} in scores but {orders['customer_id'].dtype} in orders; "
            "convert one so both are numbers or both are text"
        )
    # Shared integer codes, so ids of different widths or string types still match.
    codes, _ = pd.factorize(pd.concat([scores["customer_id"], orders["customer_id"]], ignore_index=True))
    horizon = pd.Timedelta(days=horizon_days)
    scored_at = pd.to_datetime(scores["scored_at"])
    left = pd.DataFrame({"position": np.arange(len(scores)), "customer_id": codes[: len(scores)],
                         "scored_at": scored_at.to_numpy()}).sort_values("scored_at", kind="stable")
    ordered_at = pd.to_datetime(orders["ordered_at"]).astype(left["scored_at"].dtype)
    right = pd.DataFrame({"customer_id": codes[len(scores):], "next_order_at": ordered_at.to_numpy()})
    right = right.dropna(subset=["next_order_at"]).sort_values("next_order_at", kind="stable")
    # For each scoring, the customer's first order strictly after it.
    nearest = pd.merge_asof(left, right, left_on="scored_at", right_on="next_order_at", by="customer_id",
                            direction="forward", allow_exact_matches=False).sort_values("position")
    labelled = pd.DataFrame({
        "period": scored_at.dt.to_period(period).to_numpy(),
        "mature": (scored_at + horizon <= pd.Timestamp(data_end)).to_numpy(),
        "label": (nearest["next_order_at"] <= nearest["scored_at"] + horizon).to_numpy(),
        "score": scores["score"].to_numpy(dtype=float),
    })
    rows = {}
    for label, group in labelled.groupby("period", sort=True):
        mature = group[group["mature"]]
        both_classes = mature["label"].nunique() == 2
        rows[label] = {
            "scorings": len(group),
            "mature_scorings": len(mature),
            "buyers": int(mature["label"].sum()),
            "roc_auc": float(roc_auc_score(mature["label"], mature["score"])) if both_classes else np.nan,
            "mature_share": len(mature) / len(group),
        }
    result = pd.DataFrame.from_dict(rows, orient="index",
                                    columns=["scorings", "mature_scorings", "buyers", "roc_auc", "mature_share"])
    result.index.name = "period"
    return result

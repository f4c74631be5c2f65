"""How good are the scores out of time: metrics, curves, deciles, bootstrap intervals, calibration and ranking.

Every function takes the labels `y` (0/1) and scores `p` (P(order)) of the same customers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

#: A buyer count this many standard deviations away from the count the scores expect is a real miss, not noise.
Z_LIMIT = 2.0
#: Below this p-value the Hosmer-Lemeshow test says the scores are off the diagonal.
DIAGONAL_P_VALUE = 0.01
UNDER, OVER, MATCHES = "under-predicts", "over-predicts", "matches"


def lift_at(y: np.ndarray, p: np.ndarray, share: float) -> float:
    """Buyer rate among the top `share` of scores, relative to the overall buyer rate."""
    top = np.argsort(-p, kind="stable")[: max(1, int(round(share * len(p))))]
    return float(y[top].mean() / y.mean()) if y.mean() > 0 else float("nan")


def summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score, log loss, lift at the top 10 % and the base rate."""
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))),
        "lift_top10": lift_at(y, p, 0.10),
        "base_rate": float(y.mean()),
    }


def bootstrap_interval(y: np.ndarray, p: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float], n: int,
                       seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric` over resampled rows (seeded)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() != y[rows].max():
            values.append(metric(y[rows], p[rows]))
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


#: How a paired difference compares with 0 (`Difference.verdict`).
LOWER, HIGHER, TIE = "lower", "higher", "tie"


@dataclass(frozen=True)
class Difference:
    """metric(second) - metric(first) on the same customers, with its paired bootstrap interval."""

    change: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """LOWER or HIGHER when the whole interval lies below or above 0; TIE when it covers 0."""
        return LOWER if self.high < 0 else HIGHER if self.low > 0 else TIE


def paired_difference(y: np.ndarray, first: np.ndarray, second: np.ndarray,
                      metric: Callable[[np.ndarray, np.ndarray], float], n: int, seed: int,
                      level: float = 0.95) -> Difference:
    """metric(y, second) - metric(y, first), and its percentile interval over the same resampled rows for both."""
    rng = np.random.default_rng(seed)
    changes = []
    for _ in range(n):
        rows = rng.integers(0, len(y), len(y))
        changes.append(metric(y[rows], second[rows]) - metric(y[rows], first[rows]))
    tail = (1 - level) / 2 * 100
    return Difference(change=float(metric(y, second) - metric(y, first)), low=float(np.percentile(changes, tail)),
                      high=float(np.percentile(changes, 100 - tail)))


def brier_difference(y: np.ndarray, first: np.ndarray, second: np.ndarray, n: int, seed: int) -> Difference:
    """Brier score of `second` minus that of `first` (negative: `second` is better), with its paired interval."""
    return paired_difference(y, first, second, brier_score_loss, n, seed)


def candidate_table(y: np.ndarray, scores: dict[str, np.ndarray], cv_auc: pd.Series, bootstrap: int,
                    seed: int) -> pd.DataFrame:
    """One row per candidate: `summary` out of time, the bootstrap 95 % interval of its ROC-AUC, its CV AUC."""
    table = pd.DataFrame({family: summary(y, p) for family, p in scores.items()}).T
    table["roc_auc_95ci"] = [bootstrap_interval(y, p, roc_auc_score, bootstrap, seed) for p in scores.values()]
    table["cv_auc"] = cv_auc
    return table


def oracle_summary(y: np.ndarray, truth: np.ndarray, active: np.ndarray, bootstrap: int, seed: int) -> dict[str, Any]:
    """`summary` of the true probability (the oracle), its ROC-AUC interval and its AUC on the active customers."""
    return {**summary(y, truth), "roc_auc_95ci": bootstrap_interval(y, truth, roc_auc_score, bootstrap, seed),
            "active_roc_auc": float(roc_auc_score(y[active], truth[active]))}


def subset_aucs(y: np.ndarray, scores: dict[str, np.ndarray], active: np.ndarray, active_label: str,
                oracle: np.ndarray | None = None) -> pd.DataFrame:
    """ROC-AUC of each scorer on all customers and on the active ones (the oracle last, when there is one)."""
    scorers = dict(scores) | ({"oracle (true probability)": oracle} if oracle is not None else {})
    return pd.DataFrame({name: {"all customers": float(roc_auc_score(y, p)),
                                active_label: float(roc_auc_score(y[active], p[active]))}
                         for name, p in scorers.items()}).T


def intervals_overlap(intervals: pd.Series, champion: str) -> dict[str, bool]:
    """For every other candidate: does its interval (low, high) overlap the champion's?"""
    low, high = intervals[champion]
    return {name: bool(other_low <= high and low <= other_high)
            for name, (other_low, other_high) in intervals.items() if name != champion}


def decile_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Customers ranked by score in ten equal groups: buyers, rate, lift and cumulative gains per decile."""
    order = np.argsort(-p, kind="stable")
    decile = np.empty(len(p), dtype=int)
    decile[order] = np.arange(len(p)) * 10 // len(p) + 1
    frame = pd.DataFrame({"decile": decile, "y": y, "p": p}).groupby("decile").agg(
        customers=("y", "size"), buyers=("y", "sum"), buyer_rate=("y", "mean"), mean_score=("p", "mean"))
    frame["lift"] = frame["buyer_rate"] / y.mean()
    frame["cumulative_share_of_buyers"] = frame["buyers"].cumsum() / y.sum()
    return frame


def lift_by_decile(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Lift per score decile (its buyer rate over the overall rate) and cumulative lift down to it.

    Cumulative lift at decile d is the buyer rate among the top d tenths over the overall rate: what a
    campaign reaching that far gains over targeting at random (1.0 at the last decile).
    """
    table = decile_table(y, p)
    cumulative_rate = table["buyers"].cumsum() / table["customers"].cumsum()
    return pd.DataFrame({"decile": table.index.to_numpy(), "lift": table["lift"].to_numpy(),
                         "cumulative_lift": (cumulative_rate / y.mean()).to_numpy()})


def curves(y: np.ndarray, p: np.ndarray) -> dict[str, pd.DataFrame]:
    """ROC, precision-recall, cumulative gains, lift by decile and calibration (reliability) curves as tidy frames."""
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    order = np.argsort(-p, kind="stable")
    gains = pd.DataFrame({"share_targeted": np.arange(1, len(p) + 1) / len(p),
                          "share_of_buyers": np.cumsum(y[order]) / y.sum()})
    step = max(1, len(gains) // 200)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    return {
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr}),
        "pr": pd.DataFrame({"recall": recall, "precision": precision}),
        "gains": pd.concat([gains.iloc[::step], gains.iloc[[-1]]]).drop_duplicates(),
        "lift": lift_by_decile(y, p),
        "calibration": pd.DataFrame({"predicted": predicted, "observed": observed}),
    }


@dataclass(frozen=True)
class CalibrationCheck:
    """Do the scores match the outcomes: overall (buyers against the sum of the scores) and decile by decile?

    `z`: (buyers - expected buyers) / the standard deviation of the buyer count if the scores were the true
    probabilities. `hosmer_lemeshow` and `p_value`: the chi-square test of the ten score deciles (the scores
    are taken as given, not fitted to these outcomes, so it has one degree of freedom per decile).
    """

    observed_rate: float
    mean_predicted: float
    z: float
    hosmer_lemeshow: float
    p_value: float

    @property
    def direction(self) -> str:
        """UNDER (more buyers than the scores expect), OVER (fewer) or MATCHES (within Z_LIMIT deviations)."""
        return UNDER if self.z > Z_LIMIT else OVER if self.z < -Z_LIMIT else MATCHES

    @property
    def on_diagonal(self) -> bool:
        """The deciles' rates agree with their scores (Hosmer-Lemeshow p-value at least DIAGONAL_P_VALUE)."""
        return self.p_value >= DIAGONAL_P_VALUE


def calibration_check(y: np.ndarray, p: np.ndarray, bins: int = 10) -> CalibrationCheck:
    """Calibration of `p` against the outcomes `y` (see CalibrationCheck)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    spread = float(np.sqrt(np.sum(p * (1 - p))))
    difference = y.sum() - p.sum()
    z = difference / spread if spread > 0 else (0.0 if difference == 0 else float(np.sign(difference)) * np.inf)
    statistic, degrees = 0.0, 0
    for rows in np.array_split(np.argsort(p, kind="stable"), bins):
        variance = float(np.sum(p[rows] * (1 - p[rows])))
        miss = float(y[rows].sum() - p[rows].sum())
        if variance > 0:
            statistic, degrees = statistic + miss**2 / variance, degrees + 1
        elif miss != 0:  # certain scores (0 or 1) contradicted by an outcome
            statistic, degrees = np.inf, degrees + 1
    p_value = float(scipy.stats.chi2.sf(statistic, degrees)) if degrees else 1.0
    return CalibrationCheck(observed_rate=float(y.mean()), mean_predicted=float(p.mean()), z=float(z),
                            hosmer_lemeshow=float(statistic), p_value=p_value)


#: Why the champion's probabilities are off, or that they are not (`drift_verdict`).
CALIBRATED, OFF_DIAGONAL, DRIFT, MISCALIBRATED, ORACLE_OFF, UNKNOWN = (
    "calibrated", "right on average, off the diagonal", "drift", "miscalibrated", "oracle off the diagonal",
    "no truth to tell")


def drift_verdict(champion: CalibrationCheck, oracle: CalibrationCheck | None, training_rate: float) -> str:
    """Is the champion's miss a shift of the test window (drift) or a calibration problem of the model?

    CALIBRATED: the champion's buyer count matches its scores, and decile by decile too. OFF_DIAGONAL: the
    buyer count matches, the deciles do not (a calibration problem of the model; the base rate did not move
    away from it). DRIFT: the true probability (the oracle)
    matches the outcomes while the champion misses in the direction the buyer rate moved from the training
    months to the test window (under-predicts a rise, over-predicts a fall): what the model learned was true
    of the past. MISCALIBRATED: the oracle matches, the champion misses the other way (or the rate did not
    move). ORACLE_OFF: the true probability itself does not match the outcomes. UNKNOWN: no oracle (user
    data), so a shift and a calibration problem cannot be told apart.
    """
    if champion.direction == MATCHES:
        return CALIBRATED if champion.on_diagonal else OFF_DIAGONAL
    if oracle is None:
        return UNKNOWN
    if not oracle.on_diagonal or oracle.direction != MATCHES:
        return ORACLE_OFF
    rose, fell = champion.observed_rate > training_rate, champion.observed_rate < training_rate
    if (champion.direction == UNDER and rose) or (champion.direction == OVER and fell):
        return DRIFT
    return MISCALIBRATED


def calibration_table(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Brier score, log loss and ROC-AUC of each variant of the scores (e.g. raw and calibrated), one row each."""
    return pd.DataFrame({name: summary(y, p) for name, p in scores.items()}).T[["brier", "log_loss", "roc_auc"]]


def ranking_agreement(first: pd.Series, second: pd.Series) -> dict[str, Any]:
    """Do two scorings of the same candidates (e.g. CV AUC and out-of-time AUC) rank them alike?

    Both series are indexed by candidate (higher is better). Returns each order (best first), whether
    the best is the same, whether the whole order is the same, and Kendall's tau between the two.
    """
    common = [c for c in first.index if c in second.index]
    if not common:
        raise ValueError("the two scorings share no candidate")
    a, b = first.loc[common].astype(float), second.loc[common].astype(float)
    first_order = a.sort_values(ascending=False, kind="stable").index.tolist()
    second_order = b.sort_values(ascending=False, kind="stable").index.tolist()
    tau = float(a.corr(b, method="kendall")) if len(common) > 1 else float("nan")
    return {"first_order": first_order, "second_order": second_order, "same_best": first_order[0] == second_order[0],
            "same_order": first_order == second_order, "kendall_tau": tau}

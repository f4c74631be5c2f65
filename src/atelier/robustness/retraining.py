"""Regular retraining: what refitting the champion's recipe on a schedule buys, month by month.

The robustness phase walks through a year of point-in-time snapshots (`prep.build_snapshots`, one
per monthly cutoff) and asks, at each cutoff, how well the model in use then ranks who buys within
`horizon_days` (out-of-time ROC AUC), under each retraining schedule:

  never    trained once, on the latest `window_months` matured snapshots at the first evaluated
           cutoff, then frozen
  monthly  retrained at every cutoff on the latest `window_months` matured snapshots
  drift    retrained like monthly, but only when the PSI of a monitored column on the current
           snapshot, against the training data of the model in use, exceeds the threshold
           ("score" monitors the model's own output)

The leakage rule: a model in use at cutoff c trains only on snapshots whose labels were complete
by c, that is snapshot cutoff + horizon_days <= c. Censored snapshots (label NA: the label window
runs past the data) are neither trained on nor evaluated. The first evaluated cutoff is the first
labelled one with `window_months` matured snapshots behind it. Schedules that pick the same
training snapshots share one fit.

Parameters (params.yaml `robustness.retraining`):
  start, end      first and last cutoff, e.g. "2025-01-01" and "2025-12-01" (first of each month between)
  window_months   how many matured monthly snapshots each model trains on, e.g. 3
  policies        any of [never, monthly, drift]
  psi_threshold   the drift policy retrains when a monitored PSI is above this, e.g. 0.2
  columns         numeric features to monitor, plus "score", e.g. [recency_days, sessions_90d, score]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from atelier.core.config import ParamsError
from atelier.model import propensity
from atelier.replay.monitor import psi

POLICIES = ("never", "monthly", "drift")
SECTION = "params.yaml robustness.retraining"
SCORE = "score"
Window = tuple[pd.Timestamp, ...]


def monthly_cutoffs(start: Any, end: Any) -> list[pd.Timestamp]:
    """The first of every month in [start, end]."""
    try:
        first, last = pd.Timestamp(start), pd.Timestamp(end)
    except (TypeError, ValueError) as error:
        raise ParamsError(f"{SECTION}.start and .end must be dates such as '2025-01-01': {error}") from None
    cutoffs = list(pd.date_range(first, last, freq="MS"))
    if not cutoffs:
        raise ParamsError(f"{SECTION}: no first of a month between start {first.date()} and end {last.date()}; "
                          "start must be on or before end and the span must contain a first of a month")
    return cutoffs


@dataclass(frozen=True)
class RetrainingSettings:
    """The tunables of the retraining simulation (params.yaml `robustness.retraining`)."""

    cutoffs: list[pd.Timestamp]
    window_months: int
    policies: tuple[str, ...]
    psi_threshold: float
    columns: tuple[str, ...]

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> RetrainingSettings:
        """Settings from params.yaml's `robustness.retraining` section."""
        try:
            settings = cls(cutoffs=monthly_cutoffs(section["start"], section["end"]),
                           window_months=section["window_months"], policies=tuple(section["policies"]),
                           psi_threshold=section["psi_threshold"], columns=tuple(section["columns"]))
        except KeyError as missing:
            raise ParamsError(f"{SECTION}: missing key {missing}; restore it from the project's params.yaml") from None
        _check_settings(settings.window_months, settings.policies, settings.psi_threshold, settings.columns)
        return settings


def _check_settings(window_months: Any, policies: Iterable[str], psi_threshold: Any, columns: Iterable[str]) -> None:
    if isinstance(window_months, bool) or not isinstance(window_months, (int, np.integer)) or window_months < 1:
        raise ParamsError(f"{SECTION}.window_months: a whole number of monthly snapshots, 1 or more, got {window_months!r}")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not list(policies):
        raise ParamsError(f"{SECTION}.policies: unknown {unknown} in {list(policies)}; choose among {list(POLICIES)}")
    if isinstance(psi_threshold, bool) or not isinstance(psi_threshold, (int, float)) or not psi_threshold >= 0:
        raise ParamsError(f"{SECTION}.psi_threshold: a PSI, 0 or more (e.g. 0.2), got {psi_threshold!r}")
    if not list(columns):
        raise ParamsError(f"{SECTION}.columns: name at least one column to monitor (e.g. [recency_days, score])")


def _check_snapshots(snapshots: pd.DataFrame, numeric: list[str], categorical: list[str], columns: Iterable[str]) -> None:
    missing = [c for c in ("cutoff", "label") if c not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshots lack {missing}; pass the stacked snapshots of prep.build_snapshots")
    missing = [c for c in numeric + categorical if c not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshots lack the feature columns {missing} named in numeric/categorical; "
                         "take the feature lists from propensity.features_of(snapshots, champion features)")
    watched = [c for c in columns if c != SCORE]
    absent = [c for c in watched if c not in snapshots.columns]
    if absent:
        raise ParamsError(f"{SECTION}.columns: {absent} are not columns of the snapshots; monitor numeric features or 'score'")
    textual = [c for c in watched if not pd.api.types.is_numeric_dtype(snapshots[c])]
    if textual:
        raise ParamsError(f"{SECTION}.columns: {textual} are not numeric, and PSI needs numbers; monitor numeric features or 'score'")


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def _months(since: pd.Timestamp, until: pd.Timestamp) -> int:
    return int((until.to_period("M") - since.to_period("M")).n)


def simulate_schedules(
    snapshots: pd.DataFrame,
    make_model: Callable[[], Pipeline],
    numeric: list[str],
    categorical: list[str],
    *,
    horizon_days: int,
    window_months: int,
    psi_threshold: float,
    columns: Iterable[str],
    policies: Iterable[str] = POLICIES,
    bins: int = 10,
) -> pd.DataFrame:
    """Out-of-time AUC at every evaluated cutoff for each retraining policy (one row per cutoff and policy).

    Columns: cutoff, policy, trained_on (first..last training cutoff), model_age_months (months
    since the policy last retrained), retrained, trigger (the drift policy's column with the
    largest PSI above the threshold, else ""), max_psi (largest monitored PSI of this cutoff's
    snapshot against the training data of the model carried into it; at the first cutoff, of the
    first model), max_psi_column (the column it belongs to), score_psi (that PSI for the model's
    own score; NaN when "score" is not monitored), auc, buyers and customers (labelled rows of
    the snapshot).
    """
    policies, columns = ((v,) if isinstance(v, str) else tuple(v) for v in (policies, columns))
    _check_settings(window_months, policies, psi_threshold, columns)
    _check_snapshots(snapshots, numeric, categorical, columns)
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be 1 or more (timeline.horizon_days), got {horizon_days}")
    labelled = snapshots[snapshots["label"].notna().to_numpy()]
    by_cutoff = {pd.Timestamp(c): frame for c, frame in labelled.groupby("cutoff", sort=True)}
    usable = sorted(by_cutoff)
    if len(usable) < window_months + 1:
        raise ParamsError(
            f"{SECTION}.window_months is {window_months} but the snapshots have only {len(usable)} labelled cutoffs "
            f"({[c.date().isoformat() for c in usable]}); give at least window_months + 1 (widen start..end or shorten the window)")
    horizon = pd.Timedelta(days=horizon_days)

    def matured(cutoff: pd.Timestamp) -> Window:
        """The latest `window_months` labelled snapshots whose label windows ended by `cutoff`."""
        return tuple(c for c in usable if c + horizon <= cutoff)[-window_months:]

    evaluated = [c for c in usable if len(matured(c)) == window_months]
    if not evaluated:
        raise ParamsError(f"{SECTION}.window_months: no cutoff has {window_months} snapshots whose {horizon_days}-day label "
                          "windows ended before it; widen start..end or shorten the window")
    watched = [c for c in columns if c != SCORE]
    fits: dict[Window, tuple[Pipeline, pd.DataFrame]] = {}
    scores: dict[tuple[Window, pd.Timestamp], np.ndarray] = {}
    drifts: dict[tuple[Window, pd.Timestamp], dict[str, float]] = {}

    def fitted(window: Window) -> tuple[Pipeline, pd.DataFrame]:
        """The model fitted on `window` (one fit per distinct window) and its monitored training data."""
        if window not in fits:
            train = pd.concat([by_cutoff[c] for c in window])
            model = propensity.fit(make_model(), train, numeric, categorical)
            reference = train[watched].assign(**{SCORE: propensity.predict(model, train, numeric, categorical)})
            fits[window] = (model, reference)
        return fits[window]

    def scored(window: Window, cutoff: pd.Timestamp) -> np.ndarray:
        if (window, cutoff) not in scores:
            scores[window, cutoff] = propensity.predict(fitted(window)[0], by_cutoff[cutoff], numeric, categorical)
        return scores[window, cutoff]

    def drift(window: Window, cutoff: pd.Timestamp) -> dict[str, float]:
        """PSI of each monitored column on the snapshot at `cutoff` against `window`'s training data."""
        if (window, cutoff) not in drifts:
            reference = fitted(window)[1]
            current = by_cutoff[cutoff][watched].assign(**{SCORE: scored(window, cutoff)})
            drifts[window, cutoff] = {c: psi(reference[c], current[c], bins=bins) for c in columns}
        return drifts[window, cutoff]

    rows = []
    in_use: dict[str, tuple[Window, pd.Timestamp]] = {}  # policy -> (training window, cutoff it was adopted at)
    for cutoff in evaluated:
        latest = matured(cutoff)
        for policy in policies:
            trigger = ""
            if policy not in in_use:
                retrained, values = True, drift(latest, cutoff)
            else:
                values = drift(in_use[policy][0], cutoff)
                above = {c: v for c, v in values.items() if v > psi_threshold}
                retrained = policy == "monthly" or (policy == "drift" and bool(above))
                if policy == "drift" and above:
                    trigger = max(above, key=above.get)
            if retrained:
                in_use[policy] = (latest, cutoff)
            window, adopted = in_use[policy]
            labels = by_cutoff[cutoff]["label"].astype(int).to_numpy()
            rows.append({
                "cutoff": cutoff, "policy": policy,
                "trained_on": f"{window[0].date().isoformat()}..{window[-1].date().isoformat()}",
                "model_age_months": _months(adopted, cutoff), "retrained": retrained, "trigger": trigger,
                "max_psi": max(values.values()), "max_psi_column": max(values, key=values.get),
                "score_psi": values.get(SCORE, np.nan), "auc": _auc(labels, scored(window, cutoff)),
                "buyers": int(labels.sum()), "customers": len(labels),
            })
    table = pd.DataFrame(rows)
    order = {policy: position for position, policy in enumerate(policies)}
    return table.sort_values(["policy", "cutoff"], key=lambda s: s.map(order) if s.name == "policy" else s,
                             kind="stable").reset_index(drop=True)


def schedule_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per policy (in the table's order): mean and minimum AUC, the AUC at the last evaluated cutoff, and fits."""
    missing = [c for c in ("cutoff", "policy", "auc", "retrained") if c not in table.columns]
    if missing:
        raise ValueError(f"the schedule table lacks {missing}; pass the output of simulate_schedules")
    rows = {}
    for policy, group in table.groupby("policy", sort=False):
        group = group.sort_values("cutoff")
        rows[policy] = {"mean_auc": group["auc"].mean(), "min_auc": group["auc"].min(),
                        "last_auc": group["auc"].iloc[-1], "fits": int(group["retrained"].sum())}
    summary = pd.DataFrame.from_dict(rows, orient="index", columns=["mean_auc", "min_auc", "last_auc", "fits"])
    summary.index.name = "policy"
    return summary


def policy_differences(table: pd.DataFrame, baseline: str = "never", confidence: float = 0.95) -> pd.DataFrame:
    """Each policy's AUC minus the baseline's, month by month, summarized with a t interval over the months.

    The months are the units (each a separate out-of-time test), so the interval says whether a
    policy beats the baseline consistently, not only on average. Columns: months, mean_difference,
    ci_low, ci_high, better_months (months where the policy's AUC is higher). Empty without the baseline.
    """
    from scipy import stats

    wide = table.pivot(index="cutoff", columns="policy", values="auc")
    if baseline not in wide.columns:
        return pd.DataFrame(columns=["months", "mean_difference", "ci_low", "ci_high", "better_months"])
    rows = {}
    for policy in (p for p in wide.columns if p != baseline):
        differences = (wide[policy] - wide[baseline]).dropna().to_numpy()
        n, mean = len(differences), float(differences.mean()) if len(differences) else float("nan")
        spread = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * differences.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        rows[policy] = {"months": n, "mean_difference": mean, "ci_low": mean - spread, "ci_high": mean + spread,
                        "better_months": int((differences > 0).sum())}
    return pd.DataFrame.from_dict(rows, orient="index")


def drift_effect(table: pd.DataFrame, frozen: str = "never", fresh: str = "monthly") -> dict[str, Any] | None:
    """What drift does to the model that is never retrained: its AUC month by month, the PSI it faced, and
    how far it lags a model retrained every month (`fresh`), in plain values for metrics and text.

    Keys: policy, trained_on, months, first_cutoff, last_cutoff; auc_first, auc_last, auc_min and
    auc_min_cutoff (its worst month), auc_max and auc_max_cutoff; psi_first, psi_last, psi_max,
    psi_max_cutoff and psi_max_column (the monitored column that drifted most), score_psi_last
    (None if the score is not monitored); compared_with, lag_mean, lag_max and lag_max_cutoff
    (fresh AUC minus frozen AUC; None without `fresh`), lag_psi_spearman (over the months, does
    the lag grow with the PSI? None with fewer than three months or a constant side). None when
    the table has no `frozen` policy.
    """
    missing = [c for c in ("cutoff", "policy", "trained_on", "auc", "max_psi", "max_psi_column", "score_psi") if c not in table.columns]
    if missing:
        raise ValueError(f"the schedule table lacks {missing}; pass the output of simulate_schedules")
    rows = table[table["policy"] == frozen].sort_values("cutoff").set_index("cutoff")
    if rows.empty:
        return None

    def day(stamp: Any) -> str:
        return pd.Timestamp(stamp).date().isoformat()

    def plain(value: Any) -> float | None:
        return None if pd.isna(value) else float(value)

    auc, drift = rows["auc"], rows["max_psi"]
    worst, best, drifted = auc.idxmin(), auc.idxmax(), drift.idxmax()
    effect: dict[str, Any] = {
        "policy": frozen, "trained_on": str(rows["trained_on"].iloc[0]), "months": int(len(rows)),
        "first_cutoff": day(rows.index[0]), "last_cutoff": day(rows.index[-1]),
        "auc_first": plain(auc.iloc[0]), "auc_last": plain(auc.iloc[-1]),
        "auc_min": plain(auc[worst]), "auc_min_cutoff": day(worst), "auc_max": plain(auc[best]), "auc_max_cutoff": day(best),
        "psi_first": plain(drift.iloc[0]), "psi_last": plain(drift.iloc[-1]), "psi_max": plain(drift[drifted]),
        "psi_max_cutoff": day(drifted), "psi_max_column": str(rows.at[drifted, "max_psi_column"]),
        "score_psi_last": plain(rows["score_psi"].iloc[-1]),
        "compared_with": None, "lag_mean": None, "lag_max": None, "lag_max_cutoff": None, "lag_psi_spearman": None,
    }
    other = table[table["policy"] == fresh].set_index("cutoff")["auc"] if fresh != frozen else pd.Series(dtype=float)
    lag = (other.reindex(rows.index) - auc).dropna()
    if len(lag):
        effect |= {"compared_with": fresh, "lag_mean": plain(lag.mean()), "lag_max": plain(lag.max()), "lag_max_cutoff": day(lag.idxmax())}
        paired = drift.reindex(lag.index)
        if len(lag) >= 3 and lag.nunique() > 1 and paired.nunique() > 1:
            effect["lag_psi_spearman"] = plain(paired.corr(lag, method="spearman"))
    return effect

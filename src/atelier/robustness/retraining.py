"""Regular retraining: what refitting the champion's recipe on a schedule buys, month by month.

The robustness phase walks through a year of point-in-time snapshots (`data.snapshots.build_snapshots`, one
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
  start, end      first and last cutoff, e.g. "2025-01-01" and "2025-12-01" (first of each month between);
                  null takes them from the orders (`data_window`)
  window_months   how many matured monthly snapshots each model trains on, e.g. 3
  policies        any of [never, monthly, drift]
  psi_threshold   the drift policy retrains when a monitored PSI is above this, e.g. 0.2
  columns         numeric features to monitor, plus "score", e.g. [recency_days, sessions_90d, score]

What the months say is read by `outcome` (does retraining pay, against never retraining?),
`best_policies` (which schedules lead, a tie named as one) and `drift_reading` (what drift did to
the frozen model), so the report words facts, not hopes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from atelier.core.config import ParamsError
from atelier.core.io import python_scalar
from atelier.core.parallel import ordered_map
from atelier.data.features import FeatureSettings
from atelier.data.snapshots import build_snapshots
from atelier.model import candidates
from atelier.model.champion import Champion
from atelier.replay.monitor import psi

POLICIES = ("never", "monthly", "drift")
SECTION = "params.yaml robustness.retraining"
SCORE = "score"
Window = tuple[pd.Timestamp, ...]
#: A mean AUC difference smaller than this is small: a ranking moves less than a month-to-month wobble of a
#: few thousand customers' AUC (its standard error is about 0.005 at 20,000 customers and a 5 % purchase rate).
SMALL_AUC = 0.01
#: Two schedules whose mean gains differ by less than this tie: a tenth of SMALL_AUC, far below what any
#: month's AUC can resolve, so neither is "the best".
TIE_AUC = 0.001
#: What retraining buys against never retraining (`outcome`).
OUTCOMES = ("no baseline", "small", "pays", "hurts", "unclear")
#: What drift did to the frozen model (`drift_reading`).
DRIFT_READINGS = ("not measured", "negligible", "negligible despite drift", "recovered", "frozen better", "noise")


def monthly_cutoffs(start: Any, end: Any) -> list[pd.Timestamp]:
    """The first of every month in [start, end]."""
    try:
        first, last = pd.Timestamp(start), pd.Timestamp(end)
    except (TypeError, ValueError) as error:
        raise ParamsError(f"{SECTION}.start and .end must be dates such as '2025-01-01': {error}") from None
    cutoffs = list(pd.date_range(first, last, freq="MS"))
    if not cutoffs:
        raise ParamsError(
            f"{SECTION}: no first of a month between start {first.date()} and end {last.date()}; "
            "start must be on or before end and the span must contain a first of a month"
        )
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
    def from_params(
        cls, section: dict[str, Any], orders: pd.DataFrame | None = None, horizon_days: int | None = None
    ) -> RetrainingSettings:
        """Settings from params.yaml's `robustness.retraining` section; a null start or end comes from
        `orders` and `horizon_days` (`data_window`)."""
        if section.get("start") is None or section.get("end") is None:
            if orders is None or horizon_days is None:
                raise ParamsError(
                    f"{SECTION}: start and end are null, so they come from the data; pass the orders "
                    "and timeline.horizon_days, or set both dates (e.g. '2025-01-01', '2025-12-01')"
                )
            section = data_window(section, orders, horizon_days)
        try:
            settings = cls(
                cutoffs=monthly_cutoffs(section["start"], section["end"]),
                window_months=section["window_months"],
                policies=tuple(section["policies"]),
                psi_threshold=section["psi_threshold"],
                columns=tuple(section["columns"]),
            )
        except KeyError as missing:
            raise ParamsError(f"{SECTION}: missing key {missing}; restore it from the project's params.yaml") from None
        _check_settings(settings.window_months, settings.policies, settings.psi_threshold, settings.columns)
        return settings


def data_window(section: dict[str, Any], orders: pd.DataFrame, horizon_days: int) -> dict[str, Any]:
    """`section` with a null start or end taken from the orders.

    start: the first of the month two months after the first order (a month of history at least);
    end: the last first-of-month whose label window (horizon_days) ends within the data.
    """
    if "ordered_at" not in orders.columns or orders.empty:
        raise ValueError("orders need an ordered_at column and at least one row to place the retraining window")
    ordered = pd.to_datetime(orders["ordered_at"])
    first = ordered.min().to_period("M").to_timestamp() + pd.DateOffset(months=2)
    last = (ordered.max() - pd.Timedelta(days=horizon_days)).to_period("M").to_timestamp()
    return {
        **section,
        "start": section.get("start") or str(first.date()),
        "end": section.get("end") or str(last.date()),
    }


def recipe_factory(champion: Champion, model_params: dict[str, Any], seed: int) -> Callable[[], Pipeline]:
    """A function returning an unfitted copy of the champion's recipe (family, hyperparameters, features)."""
    settings = candidates.ModelSettings.from_params(model_params, seed)
    return lambda: candidates.tuned(
        champion.metadata["name"], champion.metadata["params"], champion.numeric, champion.categorical, settings
    )


def _check_settings(window_months: Any, policies: Iterable[str], psi_threshold: Any, columns: Iterable[str]) -> None:
    if isinstance(window_months, bool) or not isinstance(window_months, (int, np.integer)) or window_months < 1:
        raise ParamsError(
            f"{SECTION}.window_months: a whole number of monthly snapshots, 1 or more, got {window_months!r}"
        )
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not list(policies):
        raise ParamsError(f"{SECTION}.policies: unknown {unknown} in {list(policies)}; choose among {list(POLICIES)}")
    if isinstance(psi_threshold, bool) or not isinstance(psi_threshold, (int, float)) or not psi_threshold >= 0:
        raise ParamsError(f"{SECTION}.psi_threshold: a PSI, 0 or more (e.g. 0.2), got {psi_threshold!r}")
    if not list(columns):
        raise ParamsError(f"{SECTION}.columns: name at least one column to monitor (e.g. [recency_days, score])")


def _check_snapshots(
    snapshots: pd.DataFrame, numeric: list[str], categorical: list[str], columns: Iterable[str]
) -> None:
    missing = [c for c in ("cutoff", "label") if c not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshots lack {missing}; pass the stacked snapshots of data.snapshots.build_snapshots")
    missing = [c for c in numeric + categorical if c not in snapshots.columns]
    if missing:
        raise ValueError(
            f"snapshots lack the feature columns {missing} named in numeric/categorical; "
            "take the feature lists from atelier.model.split.features_of(snapshots, champion features)"
        )
    watched = [c for c in columns if c != SCORE]
    absent = [c for c in watched if c not in snapshots.columns]
    if absent:
        raise ParamsError(
            f"{SECTION}.columns: {absent} are not columns of the snapshots; monitor numeric features or 'score'"
        )
    textual = [c for c in watched if not pd.api.types.is_numeric_dtype(snapshots[c])]
    if textual:
        raise ParamsError(
            f"{SECTION}.columns: {textual} are not numeric, and PSI needs numbers; monitor numeric features or 'score'"
        )


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
    workers: int = 1,
) -> pd.DataFrame:
    """Out-of-time AUC at every evaluated cutoff for each retraining policy (one row per cutoff and policy).

    Columns: cutoff, policy, trained_on (first..last training cutoff), model_age_months (months
    since the policy last retrained), retrained, trigger (the drift policy's column with the
    largest PSI above the threshold, else ""), max_psi (largest monitored PSI of this cutoff's
    snapshot against the training data of the model carried into it; at the first cutoff, of the
    first model), max_psi_column (the column it belongs to), score_psi (that PSI for the model's
    own score; NaN when "score" is not monitored), auc, buyers and customers (labelled rows of
    the snapshot).

    With `workers` > 1 the fits known to be needed (every cutoff's latest window when "monthly" runs, else the
    first) are made first, on that many processes of one thread each (the same trees as on several threads).
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
            f"({[c.date().isoformat() for c in usable]}); give at least window_months + 1 "
            "(widen start..end or shorten the window)"
        )
    horizon = pd.Timedelta(days=horizon_days)

    def matured(cutoff: pd.Timestamp) -> Window:
        """The latest `window_months` labelled snapshots whose label windows ended by `cutoff`."""
        return tuple(c for c in usable if c + horizon <= cutoff)[-window_months:]

    evaluated = [c for c in usable if len(matured(c)) == window_months]
    if not evaluated:
        raise ParamsError(
            f"{SECTION}.window_months: no cutoff has {window_months} snapshots whose {horizon_days}-day label "
            "windows ended before it; widen start..end or shorten the window"
        )
    watched = [c for c in columns if c != SCORE]
    fits: dict[Window, tuple[Pipeline, pd.DataFrame]] = {}
    scores: dict[tuple[Window, pd.Timestamp], np.ndarray] = {}
    drifts: dict[tuple[Window, pd.Timestamp], dict[str, float]] = {}

    def training(window: Window) -> pd.DataFrame:
        return pd.concat([by_cutoff[c] for c in window])

    if workers > 1:
        needed = list(dict.fromkeys(matured(c) for c in (evaluated if "monthly" in policies else evaluated[:1])))
        one_thread = partial(_fit_one_thread, make_model(), numeric, categorical, watched)
        fits.update(zip(needed, ordered_map(one_thread, [training(window) for window in needed], workers)))

    def fitted(window: Window) -> tuple[Pipeline, pd.DataFrame]:
        """The model fitted on `window` (one fit per distinct window) and its monitored training data."""
        if window not in fits:
            fits[window] = _fit_with_reference(make_model(), training(window), numeric, categorical, watched)
        return fits[window]

    def scored(window: Window, cutoff: pd.Timestamp) -> np.ndarray:
        if (window, cutoff) not in scores:
            scores[window, cutoff] = candidates.predict(fitted(window)[0], by_cutoff[cutoff], numeric, categorical)
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
            rows.append(
                {
                    "cutoff": cutoff,
                    "policy": policy,
                    "trained_on": f"{window[0].date().isoformat()}..{window[-1].date().isoformat()}",
                    "model_age_months": _months(adopted, cutoff),
                    "retrained": retrained,
                    "trigger": trigger,
                    "max_psi": max(values.values()),
                    "max_psi_column": max(values, key=values.get),
                    "score_psi": values.get(SCORE, np.nan),
                    "auc": _auc(labels, scored(window, cutoff)),
                    "buyers": int(labels.sum()),
                    "customers": len(labels),
                }
            )
    table = pd.DataFrame(rows)
    order = {policy: position for position, policy in enumerate(policies)}
    return table.sort_values(
        ["policy", "cutoff"], key=lambda s: s.map(order) if s.name == "policy" else s, kind="stable"
    ).reset_index(drop=True)


def _fit_with_reference(pipeline: Pipeline, train: pd.DataFrame, numeric: list[str], categorical: list[str],
                        watched: list[str]) -> tuple[Pipeline, pd.DataFrame]:
    """`pipeline` fitted on `train`, and the monitored columns of `train` with the fitted model's scores."""
    model = candidates.fit(pipeline, train, numeric, categorical)
    return model, train[watched].assign(**{SCORE: candidates.predict(model, train, numeric, categorical)})


def _fit_one_thread(pipeline: Pipeline, numeric: list[str], categorical: list[str], watched: list[str],
                    train: pd.DataFrame) -> tuple[Pipeline, pd.DataFrame]:
    """`_fit_with_reference` with every n_jobs of `pipeline` set to 1 (a worker process of `simulate_schedules`)."""
    # Only the n_jobs that are set: scikit-learn >= 1.8 warns when LogisticRegression is given one (it has no effect).
    jobs = [key for key, value in pipeline.get_params().items() if key.endswith("n_jobs") and value is not None]
    return _fit_with_reference(pipeline.set_params(**dict.fromkeys(jobs, 1)), train, numeric, categorical, watched)


def monthly_snapshots(
    tables: dict[str, pd.DataFrame], settings: RetrainingSettings, horizon_days: int, features: FeatureSettings,
    workers: int = 1,
) -> pd.DataFrame:
    """The point-in-time snapshots of every cutoff of `settings`, built as the prep stage builds its own (on
    `workers` processes: the same snapshots)."""
    return build_snapshots(tables, settings.cutoffs, horizon_days, features, workers=workers)


def simulate(
    snapshots: pd.DataFrame,
    make_model: Callable[[], Pipeline],
    numeric: list[str],
    categorical: list[str],
    settings: RetrainingSettings,
    horizon_days: int,
    workers: int = 1,
) -> pd.DataFrame:
    """`simulate_schedules` with the settings' policies, window and threshold (fits on `workers` processes); a
    monitored feature the snapshots lack (a shop without events has no sessions) is left out, the score is always
    kept."""
    columns = [column for column in settings.columns if column == SCORE or column in snapshots.columns]
    return simulate_schedules(
        snapshots,
        make_model,
        numeric,
        categorical,
        horizon_days=horizon_days,
        window_months=settings.window_months,
        psi_threshold=settings.psi_threshold,
        columns=columns,
        policies=settings.policies,
        workers=workers,
    )


def schedule_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per policy (in the table's order): mean and minimum AUC, the AUC at the last evaluated cutoff, and fits."""
    missing = [c for c in ("cutoff", "policy", "auc", "retrained") if c not in table.columns]
    if missing:
        raise ValueError(f"the schedule table lacks {missing}; pass the output of simulate_schedules")
    rows = {}
    for policy, group in table.groupby("policy", sort=False):
        group = group.sort_values("cutoff")
        rows[policy] = {
            "mean_auc": group["auc"].mean(),
            "min_auc": group["auc"].min(),
            "last_auc": group["auc"].iloc[-1],
            "fits": int(group["retrained"].sum()),
        }
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
        spread = (
            float(stats.t.ppf(0.5 + confidence / 2, n - 1) * differences.std(ddof=1) / np.sqrt(n))
            if n > 1
            else float("nan")
        )
        rows[policy] = {
            "months": n,
            "mean_difference": mean,
            "ci_low": mean - spread,
            "ci_high": mean + spread,
            "better_months": int((differences > 0).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def drift_effect(table: pd.DataFrame, frozen: str = "never", fresh: str = "monthly") -> dict[str, Any] | None:
    """What drift does to the model that is never retrained: its AUC month by month, the PSI it faced, and
    how far it lags a model retrained every month (`fresh`), in plain values for metrics and text.

    Keys: policy, trained_on, months, first_cutoff, last_cutoff; auc_first, auc_last, auc_min and
    auc_min_cutoff (its worst month), auc_max and auc_max_cutoff; psi_first, psi_last, psi_max,
    psi_max_cutoff and psi_max_column (the monitored column that drifted most), score_psi_last
    (NaN if the score is not monitored); compared_with, lag_mean, lag_max and lag_max_cutoff
    (fresh AUC minus frozen AUC; None without `fresh`), lag_psi_spearman (over the months, does
    the lag grow with the PSI? None with fewer than three months or a constant side). None when
    the table has no `frozen` policy.
    """
    missing = [
        c
        for c in ("cutoff", "policy", "trained_on", "auc", "max_psi", "max_psi_column", "score_psi")
        if c not in table.columns
    ]
    if missing:
        raise ValueError(f"the schedule table lacks {missing}; pass the output of simulate_schedules")
    rows = table[table["policy"] == frozen].sort_values("cutoff").set_index("cutoff")
    if rows.empty:
        return None

    def day(stamp: Any) -> str:
        return pd.Timestamp(stamp).date().isoformat()

    auc, drift = rows["auc"], rows["max_psi"]
    worst, best, drifted = auc.idxmin(), auc.idxmax(), drift.idxmax()
    value = python_scalar
    effect: dict[str, Any] = {
        "policy": frozen,
        "trained_on": str(rows["trained_on"].iloc[0]),
        "months": int(len(rows)),
        "first_cutoff": day(rows.index[0]),
        "last_cutoff": day(rows.index[-1]),
        "auc_first": value(auc.iloc[0]),
        "auc_last": value(auc.iloc[-1]),
        "auc_min": value(auc[worst]),
        "auc_min_cutoff": day(worst),
        "auc_max": value(auc[best]),
        "auc_max_cutoff": day(best),
        "psi_first": value(drift.iloc[0]),
        "psi_last": value(drift.iloc[-1]),
        "psi_max": value(drift[drifted]),
        "psi_max_cutoff": day(drifted),
        "psi_max_column": str(rows.at[drifted, "max_psi_column"]),
        "score_psi_last": value(rows["score_psi"].iloc[-1]),
        "compared_with": None,
        "lag_mean": None,
        "lag_max": None,
        "lag_max_cutoff": None,
        "lag_psi_spearman": None,
    }
    lag = _lag(table, frozen, fresh)
    if len(lag):
        effect |= {
            "compared_with": fresh,
            "lag_mean": value(lag.mean()),
            "lag_max": value(lag.max()),
            "lag_max_cutoff": day(lag.idxmax()),
        }
        paired = drift.reindex(lag.index)
        if len(lag) >= 3 and lag.nunique() > 1 and paired.nunique() > 1:
            effect["lag_psi_spearman"] = value(paired.corr(lag, method="spearman"))
    return effect


def _lag(table: pd.DataFrame, frozen: str, fresh: str) -> pd.Series:
    """`fresh` AUC minus `frozen` AUC per cutoff where both have one (empty when either policy is absent)."""
    wide = table.pivot(index="cutoff", columns="policy", values="auc")
    if frozen == fresh or frozen not in wide.columns or fresh not in wide.columns:
        return pd.Series(dtype=float)
    return (wide[fresh] - wide[frozen]).dropna()


# --------------------------------------------------------------------------------------------
# What the months say: facts the report words
# --------------------------------------------------------------------------------------------
def outcome(differences: pd.DataFrame, small: float = SMALL_AUC) -> str:
    """What retraining buys against never retraining, from `policy_differences` (one of `OUTCOMES`).

    "no baseline": no schedule was compared with never retraining (it did not run, or ran alone);
    "small": every schedule's mean difference is under `small` in size;
    "pays": a schedule gains `small` or more, with its whole interval above 0;
    "hurts": none pays, and a schedule loses `small` or more with its whole interval below 0
    (never retraining wins); "unclear": the differences are not small, but no interval clears 0.
    """
    if differences.empty:
        return "no baseline"
    mean, low, high = (differences[c].astype(float) for c in ("mean_difference", "ci_low", "ci_high"))
    if (mean.abs() < small).all():
        return "small"
    if ((mean >= small) & (low > 0)).any():
        return "pays"
    if ((mean <= -small) & (high < 0)).any():
        return "hurts"
    return "unclear"


def best_policies(differences: pd.DataFrame, summary: pd.DataFrame, tie: float = TIE_AUC) -> list[str]:
    """The schedules that lead, best first; several when their leads are within `tie` AUC (a tie is a tie).

    Against never retraining (`differences` from `policy_differences`): the schedules whose whole
    interval is above 0, within `tie` of the largest mean gain; [] when none beats never retraining
    consistently. Without that baseline (`differences` empty): by mean AUC in `summary`
    (`schedule_summary`), within `tie` of the highest.
    """
    if tie < 0:
        raise ValueError(f"tie must be 0 or more (an AUC difference), got {tie}")
    if differences.empty:
        scores = summary["mean_auc"].astype(float).dropna()
    else:
        consistent = differences[differences["ci_low"].astype(float) > 0]
        scores = consistent["mean_difference"].astype(float)
    if scores.empty:
        return []
    scores = scores.sort_values(ascending=False, kind="stable")
    return [str(policy) for policy in scores.index[scores >= scores.iloc[0] - tie]]


def drift_reading(
    table: pd.DataFrame,
    frozen: str = "never",
    fresh: str = "monthly",
    *,
    psi_threshold: float,
    small: float = SMALL_AUC,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """How far drift cost the frozen model, month by month against `fresh`: the facts behind `drift_effect`.

    reading (one of `DRIFT_READINGS`): "not measured" (no month where both ran), "negligible"
    (every month's lag under `small` in size; "negligible despite drift" when the frozen model's
    monitored PSI passed `psi_threshold` in some month), "recovered" (retraining wins the lag back
    consistently: the interval of `fresh` minus `frozen` is above 0), "frozen better" (the interval
    is below 0), "noise" (neither: the lag cannot be told apart from month-to-month noise).
    drifted: the frozen model's PSI passed the threshold; worst_is_first: its worst AUC is in its
    first month (when every schedule uses the same model: a harder month, not an older model).
    """
    rows = table[table["policy"] == frozen].sort_values("cutoff")
    drifted = bool((rows["max_psi"] > psi_threshold).any())
    worst_is_first = bool(rows["auc"].notna().any()) and rows["auc"].idxmin() == rows.index[0]
    facts = {"drifted": drifted, "worst_is_first": worst_is_first}
    lag = _lag(table, frozen, fresh)
    if lag.empty:
        return {"reading": "not measured", **facts}
    if (lag.abs() < small).all():
        return {"reading": "negligible despite drift" if drifted else "negligible", **facts}
    gain = policy_differences(table[table["policy"].isin([frozen, fresh])], baseline=frozen, confidence=confidence)
    low, high = float(gain.at[fresh, "ci_low"]), float(gain.at[fresh, "ci_high"])
    reading = "recovered" if low > 0 else ("frozen better" if high < 0 else "noise")
    return {"reading": reading, **facts}

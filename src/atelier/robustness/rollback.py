"""A rollback drill: a degraded model promoted by mistake is caught by monitoring and rolled back.

The story, end to end: a broken model (built the way such accidents happen: `degraded_model`) is
registered and pointed at by 'champion' without the promotion rule (`mistaken_promotion`); the
live period is then scored day by day with whatever 'champion' points to, a `Guard` checks each
day (`check`), and the first alert calls `Registry.rollback`, so the restored champion scores from
the next day on (`drill`).

Two checks, and they do not fire at the same speed. Score drift (PSI of the day's scores against
the previous champion's reference scores) is known the moment the day is scored. Realized AUC
needs labels, and a label ("ordered within horizon_days") is only known horizon_days later: with
a 30-day horizon the AUC check cannot see anything in the first month. The drill reports both:
what fired, when, and when the AUC check would at the earliest have fired (in hindsight).

The live batches are deliberately simple: each day's visitors (customers with events that day)
scored on their features from the snapshot at the last cutoff. The real replay scores live
profiles; the drill only needs realistic batches of who shows up on a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from atelier.core.config import ParamsError
from atelier.model import candidates
from atelier.model.registry import AUTOMATIC_FIELDS, Registry
from atelier.model.split import features_of
from atelier.replay import monitor

KINDS = ("shuffled_labels", "dropped_features")
#: Recency (days since the last visit / purchase) and frequency (orders, sessions) columns: what a
#: broken join of the activity aggregates leaves missing.
RECENCY_FREQUENCY = (
    "recency_days",
    "days_since_last_purchase",
    "frequency",
    "sessions_7d",
    "sessions_30d",
    "sessions_90d",
    "sessions_total",
)
BYPASS_NOTE = "promoted by mistake: bypassed promote()"
DAY = pd.Timedelta(days=1)


def degraded_model(
    recipe: Pipeline,
    train: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    kind: str,
    seed: int,
    columns: tuple[str, ...] = RECENCY_FREQUENCY,
) -> Pipeline:
    """The champion's recipe fitted on broken training data; it scores the same frame columns as the champion.

    * "shuffled_labels": the labels are permuted (seeded) before fitting, as when labels are joined
      to the wrong customers. The model learns noise: AUC near 0.5 on held-out data, or below it for
      flexible models (rare feature regions, the most active customers, get leaves fitted to few
      permuted labels, mostly 0s, so they tend to score below the base rate).
    * "dropped_features": `columns` (those among `numeric`) are all missing at training time, as when
      the recency/frequency aggregates silently fail to join. The model never learns to use them,
      and at scoring time, when they are present again, it ignores them (or misreads them).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown degradation kind '{kind}'; known: {list(KINDS)}")
    broken = train.copy()
    if kind == "shuffled_labels":
        broken["label"] = np.random.default_rng(seed).permutation(broken["label"].to_numpy())
    else:
        dropped = [column for column in columns if column in numeric]
        if not dropped:
            raise ValueError(
                f"dropped_features: none of {list(columns)} is a numeric feature ({numeric}); pass columns="
            )
        broken[dropped] = np.nan
    return candidates.fit(recipe, broken, numeric, categorical)


def mistaken_promotion(
    registry: Registry, model: Pipeline, metadata: dict[str, Any], *, name: str | None = None, alias: str = "champion"
) -> str:
    """Register `model` and point `alias` at it with set_alias, bypassing promote(); return the version.

    The bypass is recorded in the version's metadata ("promotion") so the accident is traceable.
    Automatic fields in `metadata` (as in a copied champion card: version, files, ...) are dropped.
    """
    caller_fields = {key: value for key, value in metadata.items() if key not in AUTOMATIC_FIELDS}
    version = registry.register(
        model, name=name or str(metadata.get("name", "degraded")), metadata={**caller_fields, "promotion": BYPASS_NOTE}
    )
    registry.set_alias(alias, version)
    return version


@dataclass(frozen=True)
class Guard:
    """Alert thresholds: score PSI against the reference, realized AUC / registered AUC, scorings needed per day."""

    psi_threshold: float
    min_auc_ratio: float
    min_scorings: int

    def __post_init__(self) -> None:
        if not self.psi_threshold >= 0:
            raise ParamsError(
                f"params.yaml robustness.guard.psi_threshold must be 0 or more (e.g. 0.2), got {self.psi_threshold}"
            )
        if not 0 < self.min_auc_ratio <= 1:
            raise ParamsError(
                f"params.yaml robustness.guard.min_auc_ratio must be in (0, 1] (e.g. 0.9), got {self.min_auc_ratio}"
            )
        if int(self.min_scorings) != self.min_scorings or self.min_scorings < 1:
            raise ParamsError(
                f"params.yaml robustness.guard.min_scorings must be a whole number, 1 or more, got {self.min_scorings}"
            )

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> Guard:
        """The guard from a params section with psi_threshold, min_auc_ratio and min_scorings."""
        try:
            return cls(float(section["psi_threshold"]), float(section["min_auc_ratio"]), int(section["min_scorings"]))
        except KeyError as missing:
            raise ParamsError(
                f"params.yaml robustness.guard: missing key {missing} (psi_threshold, min_auc_ratio, min_scorings)"
            ) from None


@dataclass(frozen=True)
class DrillSettings:
    """params.yaml `robustness.guard`: the guard, the degraded models drilled (one drill each), and the live days."""

    guard: Guard
    kinds: tuple[str, ...]
    days: int

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> DrillSettings:
        """Settings from params.yaml's `robustness.guard` section (kinds, days and the guard's thresholds)."""
        kinds, days = section.get("kinds"), section.get("days")
        if kinds is None or days is None:
            raise ParamsError(
                "params.yaml robustness.guard: missing key 'kinds' or 'days'; "
                "restore them from the project's params.yaml"
            )
        unknown = [kind for kind in kinds if kind not in KINDS]
        if unknown:
            raise ParamsError(f"params.yaml robustness.guard.kinds: unknown {unknown}; choose among {list(KINDS)}")
        if isinstance(days, bool) or int(days) != days or days < 1:
            raise ParamsError(
                f"params.yaml robustness.guard.days: a whole number of live days, 1 or more, got {days!r}"
            )
        return cls(guard=Guard.from_params(section), kinds=tuple(kinds), days=int(days))


def check(
    guard: Guard,
    reference_scores: np.ndarray,
    live: pd.DataFrame,
    orders: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    horizon_days: int,
    registered_auc: float,
) -> pd.DataFrame:
    """Per day of `live` (customer_id, scored_at, score): scorings, score_psi, realized AUC and the alert.

    score_psi compares the day's scores with `reference_scores` (monitor.psi); realized_auc uses only
    the scorings whose labels are mature by `data_end` (monitor.realized_auc). Either is NaN below
    `min_scorings`. alert: "score drift", "AUC below x% of registered", both ("; "), or "".
    """
    columns = ["day", "scorings", "score_psi", "mature_scorings", "realized_auc", "alert"]
    monitor._require(live, ["customer_id", "scored_at", "score"], "live")
    if live.empty:
        return pd.DataFrame(columns=columns)
    days = pd.to_datetime(live["scored_at"]).dt.normalize()
    realized = monitor.realized_auc(live, orders, horizon_days=horizon_days, data_end=data_end, period="D")
    realized.index = realized.index.to_timestamp()
    rows = []
    for day, group in live.groupby(days.to_numpy(), sort=True):
        day = pd.Timestamp(day)
        psi = monitor.psi(reference_scores, group["score"]) if len(group) >= guard.min_scorings else np.nan
        mature = int(realized.at[day, "mature_scorings"])
        auc = float(realized.at[day, "roc_auc"]) if mature >= guard.min_scorings else np.nan
        alerts = []
        if psi > guard.psi_threshold:
            alerts.append("score drift")
        if auc < guard.min_auc_ratio * registered_auc:
            alerts.append(f"AUC below {guard.min_auc_ratio:.0%} of registered")
        rows.append(
            {
                "day": day,
                "scorings": len(group),
                "score_psi": psi,
                "mature_scorings": mature,
                "realized_auc": auc,
                "alert": "; ".join(alerts),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def daily_batches(
    snapshot: pd.DataFrame, events: pd.DataFrame, start: pd.Timestamp, days: int
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Each day's visitors from `start` on: snapshot rows (index customer_id) of customers with events that day.

    scored_at is the customer's first event of the day; customers missing from the snapshot (new
    sign-ups after its cutoff) are left out. Columns: customer_id, scored_at, then the snapshot's.
    """
    if "cutoff" in snapshot.columns and snapshot["cutoff"].nunique() > 1:
        raise ValueError(
            "daily_batches needs one snapshot (one cutoff); select it with snapshots[snapshots['cutoff'] == cutoff]"
        )
    start = pd.Timestamp(start).normalize()
    times = pd.to_datetime(events["ts"])
    window = events.loc[(times >= start) & (times < start + days * DAY), ["customer_id"]].assign(scored_at=times)
    first = window.groupby([window["scored_at"].dt.normalize(), "customer_id"])["scored_at"].min()
    batches = {}
    for day in pd.date_range(start, periods=days, freq="D"):
        visits = first.loc[day] if day in first.index.get_level_values(0) else pd.Series(dtype="datetime64[us]")
        visits = visits[visits.index.isin(snapshot.index)]
        batch = snapshot.loc[visits.index].drop(columns=["label"], errors="ignore")
        batches[day] = batch.reset_index(names="customer_id").assign(scored_at=visits.to_numpy())[
            ["customer_id", "scored_at", *batch.columns]
        ]
    return batches


def scores_of(registry: Registry, version: str, model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """P(order) of `frame` by a registered model, on the features its metadata lists."""
    features = registry.metadata(version).get("features")
    if not features:
        raise ValueError(
            f"{registry.root / version / 'metadata.json'} lists no 'features'; register models with their feature list"
        )
    numeric, categorical = features_of(frame, list(features))
    return candidates.predict(model, frame, numeric, categorical)


def drill(
    registry: Registry,
    champion_alias: str,
    bad_version: str,
    daily_batches: dict[pd.Timestamp, pd.DataFrame],
    orders: pd.DataFrame,
    *,
    original_version: str,
    guard: Guard,
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    evaluation: pd.DataFrame,
    horizon_days: int,
    max_rollbacks: int = 1,
    data_end: pd.Timestamp | None = None,
    baseline_auc: float | None = None,
) -> dict[str, Any]:
    """Score the live days with whatever `champion_alias` points to; roll back on the first alert.

    `original_version` was the champion before the mistake and `reference_scores` its scores on
    `reference`, taken before the mistaken promotion (the PSI baseline and the bit-for-bit check of
    the restored model); `evaluation` is labelled data on which both models are compared. Each
    day's checks see only what was known at its end (labels mature by then); a rollback acts from
    the next day. After `max_rollbacks`, alerts are only recorded. The hindsight fields of the summary
    use every order up to `data_end` (default: the last order). `baseline_auc`, if given, replaces the
    AUC recorded in the registry as what the AUC check compares with: pass a healthy model's realized
    AUC on the same kind of population (a day's visitors rank harder than a whole snapshot, so the
    registered test AUC would make even a healthy champion alert). Returns {"timeline", "summary"}.
    """
    if registry.alias(champion_alias) != bad_version:
        raise ValueError(
            f"'{champion_alias}' points to {registry.alias(champion_alias)}, not {bad_version}; "
            "run mistaken_promotion first"
        )
    models: dict[str, Pipeline] = {}
    live, rows, detected, rollbacks = [], [], None, 0
    for number, day in enumerate(sorted(daily_batches), start=1):
        version = registry.alias(champion_alias)
        if version not in models:
            models[version] = registry.load(version)
        batch = daily_batches[day]
        scores = (
            scores_of(registry, version, models[version], batch) if len(batch) else np.empty(0)
        )  # a day without visitors
        live.append(batch[["customer_id", "scored_at"]].assign(score=scores, version=version))
        scored = pd.concat(live, ignore_index=True)
        table = check(
            guard,
            reference_scores,
            scored[scored["version"] == version],
            orders,
            data_end=day + DAY,
            horizon_days=horizon_days,
            registered_auc=registered_auc(registry, version) if baseline_auc is None else float(baseline_auc),
        )
        alert, action = "; ".join(dict.fromkeys(a for a in table["alert"] if a)), ""
        if alert and rollbacks < max_rollbacks:
            action, rollbacks = f"rollback to {registry.rollback(champion_alias)}", rollbacks + 1
            detected = detected or {"day": number, "date": str(day.date()), "rule": alert}
        elif alert:
            action = "alert only (rollback limit reached): page a human"
        today, known = table[table["day"] == day], table["realized_auc"].dropna()
        rows.append(
            {
                "day": day,
                "champion_version": version,
                "scorings": len(batch),
                "score_psi": float(today["score_psi"].iloc[0]) if len(today) else np.nan,
                "realized_auc": float(known.iloc[-1]) if len(known) else np.nan,
                "alert": alert,
                "action": action,
            }
        )
    timeline = pd.DataFrame(
        rows, columns=["day", "champion_version", "scorings", "score_psi", "realized_auc", "alert", "action"]
    )
    bad_days = [day for day, row in zip(sorted(daily_batches), rows) if row["champion_version"] == bad_version]
    detected = detected or {"day": None, "date": None, "rule": None}
    summary = {
        "bad_version": bad_version,
        "original_version": original_version,
        "detected_day": detected["day"],
        "detected_on": detected["date"],
        "detection_rule": detected["rule"],
        "rollbacks": rollbacks,
        "rolled_back_to": registry.alias(champion_alias) if rollbacks else None,
        "returned_to_original": registry.alias(champion_alias) == original_version,
    }
    summary.update(
        _compare(
            registry,
            champion_alias,
            bad_version,
            original_version,
            models.get(bad_version),
            rollbacks > 0,
            evaluation,
            reference,
            reference_scores,
        )
    )
    summary.update(
        _hindsight(
            registry,
            bad_version,
            original_version,
            [daily_batches[day] for day in bad_days],
            orders,
            guard,
            reference_scores,
            horizon_days,
            data_end,
            baseline_auc,
        )
    )
    return {"timeline": timeline, "summary": summary}


def registered_auc(registry: Registry, version: str) -> float:
    """The ROC AUC recorded in a version's metadata (metrics.roc_auc), NaN if none (the AUC check is then off)."""
    return float((registry.metadata(version).get("metrics") or {}).get("roc_auc", np.nan))


def _compare(
    registry: Registry,
    alias: str,
    bad_version: str,
    original_version: str,
    bad_model: Pipeline | None,
    rolled_back: bool,
    evaluation: pd.DataFrame,
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
) -> dict[str, Any]:
    """AUC on `evaluation` of the bad, the restored (None without a rollback) and the original model; and
    whether the champion now served, loaded fresh from disk, repeats the original's reference scores bit for bit."""
    labels = evaluation["label"].astype(int).to_numpy()
    auc = lambda version, model: float(roc_auc_score(labels, scores_of(registry, version, model, evaluation)))  # noqa: E731
    served_version = registry.alias(alias)
    served = registry.load(served_version)
    return {
        "auc_bad": auc(bad_version, bad_model or registry.load(bad_version)),
        "auc_restored": auc(served_version, served) if rolled_back else None,
        "auc_original": auc(original_version, registry.load(original_version)),
        "restored_scores_identical": bool(
            np.array_equal(scores_of(registry, served_version, served, reference), reference_scores)
        )
        if rolled_back
        else None,
    }


def _hindsight(
    registry: Registry,
    bad_version: str,
    original_version: str,
    bad_batches: list[pd.DataFrame],
    orders: pd.DataFrame,
    guard: Guard,
    reference_scores: np.ndarray,
    horizon_days: int,
    data_end: pd.Timestamp | None,
    baseline_auc: float | None = None,
) -> dict[str, Any]:
    """The AUC check on the bad model's live days with every order in the data (labels the drill could not see yet).

    For both models on the same rows: the mean daily realized AUC, and the day the AUC rule would
    first have fired (the first failing scoring day + horizon_days, when its labels mature).
    """
    if not bad_batches:
        return {}
    rows = pd.concat(bad_batches, ignore_index=True)
    data_end, result = (
        pd.Timestamp(data_end) if data_end is not None else pd.to_datetime(orders["ordered_at"]).max(),
        {},
    )
    for label, version in (("bad", bad_version), ("original", original_version)):
        live = rows[["customer_id", "scored_at"]].assign(
            score=scores_of(registry, version, registry.load(version), rows)
        )
        expected = registered_auc(registry, version) if baseline_auc is None else float(baseline_auc)
        table = check(
            guard, reference_scores, live, orders, data_end=data_end, horizon_days=horizon_days, registered_auc=expected
        )
        failing = table.loc[table["alert"].str.contains("AUC"), "day"]
        result[f"live_auc_{label}_hindsight"] = float(table["realized_auc"].mean())
        result[f"auc_rule_earliest_{label}"] = (
            str((failing.min() + horizon_days * DAY).date()) if len(failing) else None
        )
    return result


#: What a drill shows (`drill_reading`).
READINGS = ("caught before labels", "caught by AUC", "missed, mild", "missed, harmful")


def drill_reading(summary: dict[str, Any], horizon_days: int, small: float = 0.01) -> str:
    """What one drill's summary (`drill`) shows, one of `READINGS`.

    "caught before labels": an alert fired before the first live day's labels could mature
    (detected_day <= horizon_days), which only the score check can do; "caught by AUC": caught later;
    "missed, mild": not caught, and the bad model's AUC is within `small` of the original's (a fault
    too mild for either check); "missed, harmful": not caught although it ranks `small` or more worse.
    """
    missing = [key for key in ("detected_day", "auc_bad", "auc_original") if key not in summary]
    if missing:
        raise ValueError(f"the drill summary lacks {missing}; pass drill(...)['summary']")
    if summary["detected_day"] is not None:
        return "caught before labels" if summary["detected_day"] <= horizon_days else "caught by AUC"
    return "missed, mild" if summary["auc_original"] - summary["auc_bad"] < small else "missed, harmful"

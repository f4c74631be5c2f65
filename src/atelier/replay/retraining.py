"""Drift-triggered retraining: which snapshots a challenger may learn from, the refit, the offline comparison.

The retrain day is the trigger's day, or, if that is earlier, the first day on which a snapshot
after the replay's start has complete labels (cutoff + horizon_days). The challenger is the
champion's recipe (family, hyperparameters, features) refitted on as many monthly snapshots as the
champion was trained on, the most recent ones whose labels are complete on the retrain day
(`retraining_cutoffs`). Both models are compared out of time on the snapshot at the retrain day,
whose labels are complete only `horizon_days` later: an offline comparison. The registry side
(a copy of the project's registry, the promotion rule) is `atelier.replay.stage.retrain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from atelier.data import transform
from atelier.data.features import FeatureSettings
from atelier.data.snapshots import build_snapshots
from atelier.model import candidates
from atelier.model.split import features_of


def skip_reason(closed: bool, trigger: Any | None, has_champion: bool) -> str | None:
    """Why retraining does not run (None: it runs): an open loop, no drift trigger, or no champion to refit."""
    if not closed:
        return "open loop, so nothing was shown and no outcome was simulated to retrain on"
    if trigger is None:
        return "no drift trigger"
    if not has_champion:
        return "no champion was loaded, so there is no recipe to refit"
    return None


def retrain_day(trigger: Any, cutoff: pd.Timestamp, horizon_days: int) -> pd.Timestamp:
    """The trigger's day, or the first day a snapshot after the replay's start has complete labels, if that is later."""
    return max(pd.Timestamp(trigger).normalize(), pd.Timestamp(cutoff) + pd.Timedelta(days=int(horizon_days)))


def retraining_cutoffs(retrain_day: pd.Timestamp, horizon_days: int, count: int) -> list[pd.Timestamp]:
    """The `count` most recent monthly snapshot dates whose labels are complete on `retrain_day`, oldest first.

    A snapshot at c is labelled by the orders in [c, c + horizon_days), so its labels are known on
    the retrain day only if c + horizon_days <= retrain_day. The newest such snapshot is
    retrain_day - horizon_days; the others are a month apart before it, like the project's cutoffs.
    """
    if int(count) != count or count < 1:
        raise ValueError(f"count must be a whole number of snapshots, 1 or more, got {count}")
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be 1 or more, got {horizon_days}")
    newest = pd.Timestamp(retrain_day).normalize() - pd.Timedelta(days=int(horizon_days))
    return [newest - pd.DateOffset(months=k) for k in range(int(count) - 1, -1, -1)]


def snapshot_count(champion_metadata: dict[str, Any], cutoffs: list[pd.Timestamp]) -> int:
    """As many snapshots as the champion was trained on (its metadata, else every cutoff but the last)."""
    return len(champion_metadata.get("train_cutoffs") or sorted(cutoffs)[:-1]) or 1


@dataclass
class Plan:
    """What the challenger learns from and is judged on; `incomplete`: why it cannot be fitted yet (None: it can)."""

    trigger: pd.Timestamp
    retrain_day: pd.Timestamp
    train_cutoffs: list[pd.Timestamp]
    train: pd.DataFrame
    evaluation: pd.DataFrame
    incomplete: str | None


def plan(tables: dict[str, pd.DataFrame], trigger: Any, cutoff: pd.Timestamp, horizon_days: int, count: int,
         features: FeatureSettings, workers: int = 1) -> Plan:
    """The training and evaluation snapshots of a retraining triggered on `trigger` (`tables`: data and replay),
    built on `workers` processes (the same snapshots with 1 or more)."""
    day = retrain_day(trigger, cutoff, horizon_days)
    window = retraining_cutoffs(day, horizon_days, count)
    snapshots = build_snapshots(tables, window + [day], horizon_days, features, workers=workers)
    train, evaluation = snapshots[snapshots["cutoff"] < day], snapshots[snapshots["cutoff"] == day]
    complete = not evaluation["label"].isna().any()
    return Plan(trigger=pd.Timestamp(trigger), retrain_day=day, train_cutoffs=window, train=train,
                evaluation=evaluation,
                incomplete=None if complete else f"labels for {day.date()} are not complete within the replay")


def fit_challenger(train: pd.DataFrame, champion_metadata: dict[str, Any],
                   settings: candidates.ModelSettings) -> tuple[Pipeline, list[str]]:
    """The champion's recipe (family, hyperparameters, features) refitted on `train`, and its input columns."""
    numeric, categorical = features_of(train, list(champion_metadata["features"]))
    pipeline = candidates.tuned(champion_metadata["name"], champion_metadata["params"], numeric, categorical, settings)
    return candidates.fit(pipeline, train, numeric, categorical), numeric + categorical


def auc(model: Pipeline, evaluation: pd.DataFrame, columns: list[str], mask: np.ndarray | None = None) -> float:
    """ROC AUC of `model` on the evaluation snapshot (the rows in `mask`, if given)."""
    rows = evaluation if mask is None else evaluation[mask]
    labels = rows["label"].astype(int).to_numpy()
    return float(roc_auc_score(labels, model.predict_proba(transform.model_frame(rows[columns]))[:, 1]))


def challenger_metadata(champion_metadata: dict[str, Any], columns: list[str], plan: Plan,
                        score: float) -> dict[str, Any]:
    """What the replay's registry records about the challenger."""
    return {"params": champion_metadata["params"], "features": columns, "trigger": str(plan.trigger.date()),
            "train_cutoffs": [c.date().isoformat() for c in plan.train_cutoffs],
            "test_cutoff": plan.retrain_day.date().isoformat(), "metrics": {"out_of_time_auc": score}}


def not_retrained(plan: Plan) -> dict[str, Any]:
    """The outcome when the evaluation labels are not complete within the replay."""
    return {"retrained": False, "trigger": str(plan.trigger.date()), "retrain_day": str(plan.retrain_day.date()),
            "reason": plan.incomplete}


def outcome(plan: Plan, horizon_days: int, *, champion: tuple[str, Pipeline], challenger: tuple[str, Pipeline],
            columns: list[str], active_recency_days: int, min_delta: float, promoted: bool,
            reason: str) -> dict[str, Any]:
    """The retraining as the report and the metrics state it: both models' AUC (everyone, and active customers) and the
    promotion decision. `champion` and `challenger` are (version, model)."""
    active = (plan.evaluation["recency_days"] <= active_recency_days).to_numpy()
    everyone = np.ones(len(plan.evaluation), dtype=bool)
    horizon = pd.Timedelta(days=int(horizon_days))

    def scores(version: str, model: Pipeline) -> dict[str, Any]:
        return {"version": version, "auc": auc(model, plan.evaluation, columns, everyone),
                "active_auc": auc(model, plan.evaluation, columns, active)}

    return {
        "retrained": True, "trigger": str(plan.trigger.date()), "retrain_day": str(plan.retrain_day.date()),
        "train_cutoffs": [str(c.date()) for c in plan.train_cutoffs],
        "labels_complete_by": str((plan.train_cutoffs[-1] + horizon).date()),
        "evaluation_customers": int(len(plan.evaluation)),
        "evaluation_labels_complete_by": str((plan.retrain_day + horizon).date()),
        "champion": scores(*champion), "challenger": scores(*challenger),
        "min_delta": float(min_delta), "promoted": bool(promoted), "reason": reason, "served_live": champion[0],
    }


def verdict(outcome: dict[str, Any], replay_end: pd.Timestamp) -> dict[str, Any]:
    """The facts the report words about a retraining that ran.

    difference (challenger AUC - champion AUC), challenger_better (difference > 0), promoted, and
    days_left: whole days from the evaluation labels being complete to the last replayed day (0 or
    less: no live period is left in which to serve a winner), with last_day.
    """
    difference = outcome["challenger"]["auc"] - outcome["champion"]["auc"]
    last_day = (pd.Timestamp(replay_end) - pd.Timedelta(days=1)).normalize()
    return {"difference": float(difference), "challenger_better": bool(difference > 0),
            "promoted": bool(outcome["promoted"]), "last_day": str(last_day.date()),
            "days_left": int((last_day - pd.Timestamp(outcome["evaluation_labels_complete_by"])).days)}

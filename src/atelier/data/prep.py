"""The prep phase: point-in-time snapshots, the fitted transformer, and what the stage writes.

Outputs (declared in dvc.yaml):
  data/features/snapshots.parquet   raw features + label, one row per (cutoff, customer)
  data/features/prepared.parquet    the same rows, imputed and scaled (model-ready)
  models/prep/transformer.skops     the fitted transformer (skops, no pickle)
  models/prep/features.json         feature lists, skipped groups, training cutoffs
  metrics/prep.json                 per-cutoff sizes and label rates, missing shares, imputer convergence
  plots/prep/daily_activity.csv     orders, revenue (and sessions) per day
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from atelier.core import paths
from atelier.core.config import ParamsError
from atelier.core.io import read_json, write_json, write_parquet
from atelier.core.persist import save_skops
from atelier.data import transform
from atelier.data.features import FeatureSettings, build_snapshot, feature_groups, label_window_complete, skipped_groups


def parse_cutoffs(cutoffs: list[Any]) -> list[pd.Timestamp]:
    """Cutoffs from params as sorted, distinct timestamps (at least two: train and test)."""
    parsed = sorted({pd.Timestamp(c) for c in cutoffs})
    if len(parsed) < 2:
        raise ParamsError("params.yaml timeline.cutoffs: give at least two dates (the last is the out-of-time test)")
    return parsed


def check_cutoffs(tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp]) -> None:
    """Every cutoff must fall after the first order, or its snapshot would be empty."""
    first, last = tables["orders"]["ordered_at"].min(), tables["orders"]["ordered_at"].max()
    early = [c.date().isoformat() for c in cutoffs if c <= first]
    if early:
        raise ParamsError(
            f"params.yaml timeline.cutoffs {early} are not after the first order ({first.date()}); "
            f"your orders run from {first.date()} to {last.date()}, choose cutoffs inside that span"
        )


def build_snapshots(
    tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp], horizon_days: int, settings: FeatureSettings
) -> pd.DataFrame:
    """Stacked snapshots for every cutoff (index: customer_id; columns include cutoff and label).

    A cutoff whose label window runs past the end of the data gets an empty label (censored), not 0.
    """
    parts = []
    for cutoff in tqdm(cutoffs, desc="prep: snapshots", file=sys.stderr):
        snapshot = build_snapshot(tables, cutoff, horizon_days, settings)
        if not label_window_complete(tables, cutoff, horizon_days):
            snapshot["label"] = pd.Series(pd.NA, index=snapshot.index, dtype="Int8")
        else:
            snapshot["label"] = snapshot["label"].astype("Int8")
        parts.append(snapshot)
    return pd.concat(parts)


def training_rows(snapshots: pd.DataFrame, cutoffs: list[pd.Timestamp]) -> pd.Series:
    """True for rows of the training snapshots (every cutoff but the last, the out-of-time test)."""
    return snapshots["cutoff"] < cutoffs[-1]


def fit_transformer(snapshots: pd.DataFrame, cutoffs: list[pd.Timestamp], *, imputer: str, knn_neighbors: int,
                    knn_fit_rows: int, iterative_max_iter: int, seed: int):
    """Fit the transformer on the training snapshots only (KNN on a seeded sample of them)."""
    train = snapshots[training_rows(snapshots, cutoffs).to_numpy()]
    if imputer == "knn" and len(train) > knn_fit_rows:
        # KNN imputation compares every row with a gap to every fitted row: cap the fitted rows.
        train = train.sample(n=knn_fit_rows, random_state=seed)
    numeric, categorical = transform.split_columns(snapshots)
    unfitted = transform.build_transformer(
        numeric, categorical, imputer=imputer, knn_neighbors=knn_neighbors, iterative_max_iter=iterative_max_iter, seed=seed
    )
    return transform.fit_transformer(unfitted, train)


def cutoff_summary(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Per cutoff: customers, buyers in the label window and the label rate (empty if censored)."""
    grouped = snapshots.groupby("cutoff")
    summary = pd.DataFrame(
        {
            "customers": grouped.size(),
            "buyers_in_window": grouped["label"].sum(min_count=1),
            "label_rate": grouped["label"].mean(),
            "label_complete": grouped["label"].apply(lambda s: bool(s.notna().all())),
        }
    )
    summary.index = summary.index.strftime("%Y-%m-%d")
    return summary


def write_outputs(root: Path, snapshots: pd.DataFrame, prepared: pd.DataFrame, transformer, tables: dict[str, pd.DataFrame],
                  cutoffs: list[pd.Timestamp], imputer: str, daily: pd.DataFrame) -> dict[str, Any]:
    """Write the stage's data, transformer, feature spec, plot data and metrics; return the metrics."""
    (root / paths.PREP_PLOTS).mkdir(parents=True, exist_ok=True)
    daily.reset_index().assign(day=lambda d: d["day"].dt.strftime("%Y-%m-%d")).to_csv(
        root / paths.PREP_PLOTS / "daily_activity.csv", index=False, float_format="%.2f")
    numeric, categorical = transform.split_columns(snapshots)
    write_parquet(snapshots, root / paths.FEATURES_DIR / "snapshots.parquet")
    write_parquet(prepared.assign(cutoff=snapshots["cutoff"].to_numpy(), label=snapshots["label"].array),
                  root / paths.FEATURES_DIR / "prepared.parquet")
    save_skops(transformer, root / paths.PREP_MODEL_DIR / "transformer.skops")
    spec = {
        "numeric": numeric,
        "categorical": categorical,
        "prepared_columns": list(prepared.columns),
        "groups": feature_groups(tables),
        "skipped": skipped_groups(tables),
        "train_cutoffs": [c.date().isoformat() for c in cutoffs[:-1]],
        "test_cutoff": cutoffs[-1].date().isoformat(),
        "imputer": imputer,
    }
    write_json(spec, root / paths.PREP_MODEL_DIR / "features.json")
    summary = cutoff_summary(snapshots)
    missing = snapshots[numeric].isna().mean()
    metrics = {
        "cutoffs": summary.to_dict(orient="index"),
        "features": {"numeric": len(numeric), "categorical": len(categorical), "prepared": prepared.shape[1]},
        "skipped_groups": sorted(spec["skipped"]),
        "missing_share": {k: float(v) for k, v in missing[missing > 0].sort_index().items()},
        "prepared_all_finite": bool(np.isfinite(prepared.to_numpy(dtype=float)).all()),
        # Iterative imputation: rounds run and whether it converged before its cap (see transform.imputer_convergence).
        "imputer": {"name": imputer, **(transform.imputer_convergence(transformer) or {})},
    }
    write_json(metrics, root / paths.PREP_METRICS)
    return metrics


def load_spec(root: Path) -> dict[str, Any]:
    """The feature spec written by the prep stage."""
    return read_json(Path(root) / paths.PREP_MODEL_DIR / "features.json")

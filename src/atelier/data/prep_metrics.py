"""What the prep stage records about its outputs: the feature spec (models/prep/features.json) and the figures
of metrics/prep.json. Written by `atelier.data.stage.write_prep`; read by later phases and the robustness
report's data checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from atelier.data import transform
from atelier.data.features import feature_groups, skipped_groups
from atelier.data.snapshots import cutoff_summary


def feature_spec(
    snapshots: pd.DataFrame, prepared: pd.DataFrame, tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp],
    imputer: str,
) -> dict[str, Any]:
    """The feature lists (raw numeric and categorical, prepared columns), the feature groups the data supports
    and those it skipped, the training and test cutoffs, and the imputer."""
    numeric, categorical = transform.split_columns(snapshots)
    return {
        "numeric": numeric,
        "categorical": categorical,
        "prepared_columns": list(prepared.columns),
        "groups": feature_groups(tables),
        "skipped": skipped_groups(tables),
        "train_cutoffs": [c.date().isoformat() for c in cutoffs[:-1]],
        "test_cutoff": cutoffs[-1].date().isoformat(),
        "imputer": imputer,
    }


def prep_metrics(
    snapshots: pd.DataFrame, prepared: pd.DataFrame, transformer: Pipeline, spec: dict[str, Any]
) -> dict[str, Any]:
    """metrics/prep.json: per cutoff the customers, buyers and label rate; feature counts; skipped groups; the
    share of empty values per numeric feature (those with any); whether every prepared value is finite; the
    imputer and, when iterative, its rounds and whether it converged (`transform.imputer_convergence`)."""
    numeric = spec["numeric"]
    missing = snapshots[numeric].isna().mean()
    return {
        "cutoffs": cutoff_summary(snapshots).to_dict(orient="index"),
        "features": {"numeric": len(numeric), "categorical": len(spec["categorical"]), "prepared": prepared.shape[1]},
        "skipped_groups": sorted(spec["skipped"]),
        "missing_share": {k: float(v) for k, v in missing[missing > 0].sort_index().items()},
        "prepared_all_finite": bool(np.isfinite(prepared.to_numpy(dtype=float)).all()),
        "imputer": {"name": spec["imputer"], **(transform.imputer_convergence(transformer) or {})},
    }

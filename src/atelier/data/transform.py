"""Normalization and imputation of the feature table (saved without pickle: `save`/`load`, via skops).

The transformer is a scikit-learn Pipeline fitted on the training snapshots only:
log1p on heavy-tailed counts and amounts -> imputation (iterative or KNN, as the case study
suggests) with missing-value indicators -> standard scaling; demographics are one-hot encoded.
The indicators matter: most missing values here are *undefined*, not unknown (a customer with no
order has no average order value), and the fact of being missing is itself informative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from atelier.core.config import ParamsError
from atelier.data.features import HEAVY_TAILED
from atelier.data.snapshots import training_rows

IMPUTERS = ("iterative", "knn", "median")


@dataclass(frozen=True)
class ImputerSettings:
    """How the prep stage's transformer imputes (params.yaml `prep`, plus the seed)."""

    imputer: str = "iterative"
    knn_neighbors: int = 5
    knn_fit_rows: int = 5000
    iterative_max_iter: int = 10
    seed: int = 0

    @classmethod
    def from_params(cls, prep: dict[str, Any], seed: int) -> ImputerSettings:
        """Settings from params.yaml's `prep` section and the project's seed."""
        missing = [key for key in ("imputer", "knn_neighbors", "knn_fit_rows", "iterative_max_iter") if key not in prep]
        if missing:
            raise ParamsError(f"params.yaml prep: missing {missing}; restore them from the project's params.yaml")
        if prep["imputer"] not in IMPUTERS:
            raise ParamsError(f"params.yaml prep.imputer: '{prep['imputer']}' is not one of {IMPUTERS}")
        for key in ("knn_neighbors", "knn_fit_rows", "iterative_max_iter"):
            value = prep[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParamsError(f"params.yaml prep.{key} must be a whole number >= 1, got {value!r}")
        return cls(prep["imputer"], prep["knn_neighbors"], prep["knn_fit_rows"], prep["iterative_max_iter"], int(seed))


def split_columns(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns (bookkeeping columns like cutoff and label excluded)."""
    candidates = [c for c in features.columns if c not in ("cutoff", "label", "customer_id")]
    numeric = [c for c in candidates if pd.api.types.is_numeric_dtype(features[c])]
    categorical = [c for c in candidates if c not in numeric]
    return numeric, categorical


def build_transformer(
    numeric: list[str],
    categorical: list[str],
    *,
    imputer: str = "iterative",
    knn_neighbors: int = 5,
    iterative_max_iter: int = 10,
    seed: int = 0,
) -> Pipeline:
    """An unfitted Pipeline: log1p heavy tails -> impute (+ indicators) -> scale; one-hot categoricals."""
    if imputer == "iterative":
        # verbose=1: one line per imputation round, the progress of the slowest prep step.
        numeric_imputer = IterativeImputer(
            max_iter=iterative_max_iter, random_state=seed, add_indicator=True, keep_empty_features=True, verbose=1
        )
    elif imputer == "knn":
        numeric_imputer = KNNImputer(n_neighbors=knn_neighbors, add_indicator=True, keep_empty_features=True)
    elif imputer == "median":
        # Fast enough to refit inside every cross-validation fold and to run per event when serving.
        numeric_imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    else:
        raise ValueError(f"params.yaml prep.imputer: '{imputer}' is not one of {IMPUTERS}")
    heavy = [c for c in numeric if c in HEAVY_TAILED]
    log_heavy = ColumnTransformer(
        [("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one"), heavy)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    numeric_steps = Pipeline([("log_heavy", log_heavy), ("impute", numeric_imputer), ("scale", StandardScaler())])
    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    steps = [("numeric", numeric_steps, numeric)]
    if categorical:
        steps.append(("categorical", categorical_steps, categorical))
    columns = ColumnTransformer(
        steps,
        verbose_feature_names_out=False,
    )
    return Pipeline([("columns", columns)]).set_output(transform="pandas")


def model_frame(features: pd.DataFrame) -> pd.DataFrame:
    """The feature columns as scikit-learn expects them: categoricals as objects with NaN for gaps."""
    numeric, categorical = split_columns(features)
    frame = features[numeric + categorical].copy()
    for column in categorical:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return frame


def transform(transformer: Pipeline, features: pd.DataFrame) -> pd.DataFrame:
    """Apply a fitted transformer; keeps the index (customer_id) of `features`."""
    prepared = transformer.transform(model_frame(features))
    prepared.index = features.index
    return prepared


def fit_transformer(transformer: Pipeline, features: pd.DataFrame) -> Pipeline:
    """Fit `transformer` on `features` (the training snapshots)."""
    return transformer.fit(model_frame(features))


def fit_on_training(snapshots: pd.DataFrame, cutoffs: list[pd.Timestamp], settings: ImputerSettings) -> Pipeline:
    """The prep transformer fitted on the training snapshots only (KNN on a seeded sample of them)."""
    train = snapshots[training_rows(snapshots, cutoffs).to_numpy()]
    if settings.imputer == "knn" and len(train) > settings.knn_fit_rows:
        # KNN imputation compares every row with a gap to every fitted row: cap the fitted rows.
        train = train.sample(n=settings.knn_fit_rows, random_state=settings.seed)
    numeric, categorical = split_columns(snapshots)
    unfitted = build_transformer(
        numeric, categorical, imputer=settings.imputer, knn_neighbors=settings.knn_neighbors,
        iterative_max_iter=settings.iterative_max_iter, seed=settings.seed,
    )
    return fit_transformer(unfitted, train)


def imputer_convergence(transformer: Pipeline) -> dict[str, object] | None:
    """How the fitted iterative imputer ended: rounds run, the cap, and whether it converged.

    IterativeImputer re-predicts every gap from the other columns, round after round, and stops
    early once no imputed value moves by more than `tol` (relative to the data's scale). Stopping
    before `max_iter` means it converged; running all `max_iter` rounds means it was cut off while
    the values were still moving (scikit-learn then warns "Early stopping criterion not reached").
    None for the KNN and median imputers, which fit in one pass.
    """
    numeric = transformer.named_steps["columns"].named_transformers_.get("numeric")
    imputer = numeric.named_steps["impute"] if numeric is not None else None
    if not isinstance(imputer, IterativeImputer):
        return None
    rounds, cap = int(imputer.n_iter_), int(imputer.max_iter)
    # A stop in the very last allowed round cannot be told apart from a cut-off after the fit: count it
    # as not converged (the cautious reading).
    return {"rounds": rounds, "max_iter": cap, "converged": rounds < cap, "tol": float(imputer.tol)}


def convergence_verdict(convergence: dict[str, object] | None) -> str:
    """How imputation ended, from `imputer_convergence`: "one pass" (KNN, median), "converged" or "stopped at cap"."""
    if convergence is None:
        return "one pass"
    return "converged" if convergence["converged"] else "stopped at cap"


def imputed_versus_observed(raw: pd.DataFrame, prepared: pd.DataFrame, column: str) -> dict[str, Any]:
    """Where the imputer put the values it filled into `column`, against the observed ones (prepared scale).

    `raw` holds the features before preparation (NaN where undefined), `prepared` the same rows
    after it. `position` is "below" (the filled median under the observed lower quartile), "above"
    (over the upper quartile), "within" (in the observed middle half), or "none" when the column is
    absent, has no gap, or has nothing observed to compare with.
    """
    fact: dict[str, Any] = {"column": column, "share_missing": 0.0, "position": "none"}
    if column not in raw.columns or column not in prepared.columns:
        return fact
    gap = raw[column].isna().to_numpy()
    filled, observed = prepared[column][gap], prepared[column][~gap]
    fact["share_missing"] = float(gap.mean()) if len(gap) else 0.0
    if len(filled) == 0 or len(observed) == 0:
        return fact
    fact |= {
        "filled_median": float(filled.median()),
        "observed_median": float(observed.median()),
        "observed_lower_quartile": float(observed.quantile(0.25)),
        "observed_upper_quartile": float(observed.quantile(0.75)),
    }
    if fact["filled_median"] < fact["observed_lower_quartile"]:
        fact["position"] = "below"
    elif fact["filled_median"] > fact["observed_upper_quartile"]:
        fact["position"] = "above"
    else:
        fact["position"] = "within"
    return fact

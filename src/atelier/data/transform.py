"""Normalization and imputation of the feature table (saved without pickle: `save`/`load`, via skops).

The transformer is a scikit-learn Pipeline fitted on the training snapshots only:
log1p on heavy-tailed counts and amounts -> imputation (iterative or KNN, as the case study
suggests) with missing-value indicators -> standard scaling; demographics are one-hot encoded.
The indicators matter: most missing values here are *undefined*, not unknown (a customer with no
order has no average order value), and the fact of being missing is itself informative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from atelier.data.features import HEAVY_TAILED

IMPUTERS = ("iterative", "knn", "median")


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
    columns = ColumnTransformer(
        [("numeric", numeric_steps, numeric)] + ([("categorical", categorical_steps, categorical)] if categorical else []),
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

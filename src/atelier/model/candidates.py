"""The candidate models, their settings, the grid search, and fitting and scoring a candidate.

Every candidate is a scikit-learn Pipeline whose preprocessing is refitted inside each fold.
Hyperparameters are tuned with stratified K-fold cross-validation grouped by customer, because one
customer appears in several monthly snapshots and must not sit in a training and a validation fold
at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from atelier.core.config import ParamsError
from atelier.data import transform
from atelier.model.split import xy

#: The candidates, from the simplest to the most complex (the order they are registered in).
FAMILIES = ("logistic_regression", "random_forest", "xgboost")
#: Counts that must be at least this for the phase to mean anything (params.yaml model.<key>).
MINIMUM_COUNTS = {
    "cv_folds": 2, "threads": 1, "permutation_repeats": 1, "bootstrap": 1, "lime_customers": 1, "lime_seeds": 2,
    "lime_num_samples": 1, "lime_top_k": 1, "lime_background": 1, "lime_stability_customers": 1,
}


@dataclass(frozen=True)
class ModelSettings:
    """The tunables of the model phase (params.yaml `model`, plus the seed)."""

    cv_folds: int
    threads: int
    grids: dict[str, dict[str, list[Any]]]
    permutation_repeats: int
    prune_below: float
    prune_tolerance: float
    overfit_gap_warning: float
    bootstrap: int
    calibration: str
    promotion_min_delta: float
    active_recency_days: int
    lime_customers: int
    lime_seeds: int
    lime_num_samples: int
    lime_top_k: int
    lime_background: int
    lime_stability_customers: int
    short_history_days: int
    seed: int

    @classmethod
    def from_params(cls, section: dict[str, Any], seed: int) -> ModelSettings:
        """Settings from params.yaml's `model` section; ParamsError naming the key and the fix otherwise."""
        try:
            values = {name: section[name] for name in cls.__dataclass_fields__ if name != "seed"}
        except KeyError as missing:
            raise ParamsError(
                f"params.yaml model: missing key {missing}; restore it from the project's params.yaml"
            ) from None
        settings = cls(seed=int(seed), **values)
        unknown = set(settings.grids) - set(FAMILIES)
        if unknown:
            raise ParamsError(
                f"params.yaml model.grids: unknown candidates {sorted(unknown)}; known: {list(FAMILIES)}"
            )
        if not settings.grids:
            raise ParamsError(
                f"params.yaml model.grids: no candidate to train; give a grid for one of {list(FAMILIES)}"
            )
        if settings.calibration not in ("isotonic", "sigmoid"):
            raise ParamsError(
                f"params.yaml model.calibration: '{settings.calibration}' is neither 'isotonic' nor 'sigmoid'"
            )
        for key, least in MINIMUM_COUNTS.items():
            value = getattr(settings, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ParamsError(f"params.yaml model.{key}: {value!r} is not a whole number >= {least}; set one")
        return settings

    @property
    def families(self) -> list[str]:
        """The candidates with a grid, in registration order."""
        return [family for family in FAMILIES if family in self.grids]


def _ordinal_categoricals(numeric: list[str], categorical: list[str], numeric_step: Any) -> ColumnTransformer:
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    parts = [("numeric", numeric_step, numeric)] + ([("categorical", encoder, categorical)] if categorical else [])
    return ColumnTransformer(parts, verbose_feature_names_out=False)


def candidate(family: str, numeric: list[str], categorical: list[str], settings: ModelSettings) -> Pipeline:
    """An unfitted candidate Pipeline: its own preprocessing, then the model."""
    if family == "logistic_regression":
        # log1p on heavy tails, median imputation with missing indicators, scaling, one-hot demographics.
        prepare = transform.build_transformer(numeric, categorical, imputer="median").named_steps["columns"]
        model = LogisticRegression(max_iter=2000)
    elif family == "random_forest":
        imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
        prepare = _ordinal_categoricals(numeric, categorical, imputer)
        model = RandomForestClassifier(n_jobs=settings.threads, random_state=settings.seed, max_features="sqrt")
    elif family == "xgboost":
        # xgboost learns where undefined values should go, so no imputation.
        prepare = _ordinal_categoricals(numeric, categorical, "passthrough")
        model = XGBClassifier(n_jobs=settings.threads, random_state=settings.seed, tree_method="hist",
                              eval_metric="logloss")
    else:
        raise ParamsError(f"params.yaml model.grids: unknown candidate '{family}'; known: {list(FAMILIES)}")
    return Pipeline([("prepare", prepare), ("model", model)])


def tuned(family: str, params: dict[str, Any], numeric: list[str], categorical: list[str],
          settings: ModelSettings) -> Pipeline:
    """An unfitted candidate with the model hyperparameters `params` (e.g. the grid search's best)."""
    return candidate(family, numeric, categorical, settings).set_params(**{f"model__{k}": v for k, v in params.items()})


def model_params(pipeline: Pipeline) -> dict[str, Any]:
    """The hyperparameters of a candidate's model step (what `tuned` takes back)."""
    return {key.removeprefix("model__"): value for key, value in pipeline.get_params().items()
            if key.startswith("model__") and key.count("__") == 1}


def cv_splits(y: np.ndarray, groups: np.ndarray, settings: ModelSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold splits with every customer's rows in one fold (seeded)."""
    splitter = StratifiedGroupKFold(n_splits=settings.cv_folds, shuffle=True, random_state=settings.seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def grid_search(frame: pd.DataFrame, numeric: list[str], categorical: list[str], settings: ModelSettings,
                progress: Callable[[Iterable[str]], Iterable[str]] | None = None,
                ) -> tuple[pd.DataFrame, dict[str, GridSearchCV]]:
    """Grid search every candidate with grouped stratified CV (ROC-AUC); the CV table and fitted searches."""
    X, y, groups = xy(frame, numeric, categorical)
    splits = cv_splits(y, groups, settings)
    searches, rows = {}, []
    one_thread = replace(settings, threads=1)
    for family in progress(settings.families) if progress else settings.families:
        grid = {f"model__{name}": values for name, values in settings.grids[family].items()}
        # The folds x settings run on `threads` processes of one thread each (forests and boosted trees fit the
        # same trees on any thread count, and one thread per process keeps the CV predictions' sums in order);
        # the best setting is then refitted on all of `frame` with `threads` threads, as `fit` does.
        search = GridSearchCV(candidate(family, numeric, categorical, one_thread), grid, scoring="roc_auc", cv=splits,
                              refit=False, return_train_score=True, n_jobs=settings.threads, error_score="raise")
        with threadpool_limits(1, user_api="blas"):
            search.fit(X, y)
        best = {key.removeprefix("model__"): value for key, value in search.best_params_.items()}
        search.best_estimator_ = fit(tuned(family, best, numeric, categorical, settings), frame, numeric, categorical)
        searches[family] = search
        for _, row in pd.DataFrame(search.cv_results_).iterrows():
            rows.append({
                "candidate": family,
                "params": {k.removeprefix("model__"): v for k, v in row["params"].items()},
                "cv_auc": row["mean_test_score"], "cv_auc_sd": row["std_test_score"],
                "train_auc": row["mean_train_score"], "fit_seconds": row["mean_fit_time"],
                "rank": int(row["rank_test_score"]),
            })
    table = pd.DataFrame(rows)
    table["gap"] = table["train_auc"] - table["cv_auc"]
    return table.sort_values(["candidate", "rank"]).reset_index(drop=True), searches


def best_table(table: pd.DataFrame, settings: ModelSettings) -> pd.DataFrame:
    """The best setting of each candidate with its overfitting flag (train AUC - CV AUC above the threshold)."""
    best = table[table["rank"] == 1].drop_duplicates("candidate").set_index("candidate")
    best["overfitting"] = best["gap"] > settings.overfit_gap_warning
    columns = ["params", "cv_auc", "cv_auc_sd", "train_auc", "gap", "overfitting"]
    return best[columns].sort_values("cv_auc", ascending=False)


def fit(pipeline: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Pipeline:
    """Fit a fresh copy of `pipeline` on `frame`.

    A random forest is fitted on several threads, then set to predict on one: threads add up the
    trees' votes in whatever order they finish, so parallel predictions differ in the last bit.
    """
    X, y, _ = xy(frame, numeric, categorical)
    with threadpool_limits(1, user_api="blas"):
        fitted = clone(pipeline).fit(X, y)
    if isinstance(fitted[-1], RandomForestClassifier):
        fitted[-1].set_params(n_jobs=1)
    return fitted


def predict(pipeline: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> np.ndarray:
    """P(order) for each row of `frame` (its label, if any, is never read: censored snapshots score too)."""
    return pipeline.predict_proba(transform.model_frame(frame[numeric + categorical]))[:, 1]


def fit_best(best: pd.DataFrame, frame: pd.DataFrame, numeric: list[str], categorical: list[str],
             settings: ModelSettings) -> dict[str, Pipeline]:
    """Each candidate of `best_table` refitted with its best hyperparameters on `frame`, best CV AUC first."""
    return {family: fit(tuned(family, best.at[family, "params"], numeric, categorical, settings), frame, numeric,
                        categorical) for family in best.index}


def calibrated(pipeline: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str],
               settings: ModelSettings) -> CalibratedClassifierCV:
    """The pipeline wrapped in cross-fitted calibration (isotonic or sigmoid) on the training data."""
    X, y, groups = xy(frame, numeric, categorical)
    model = CalibratedClassifierCV(clone(pipeline), method=settings.calibration, cv=cv_splits(y, groups, settings))
    with threadpool_limits(1, user_api="blas"):
        return model.fit(X, y)


def progress_bar(description: str) -> Callable[[Iterable[str]], Iterable[str]]:
    """A tqdm wrapper for long loops (shown in the notebook and in the DVC log)."""
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=description, file=sys.stderr)

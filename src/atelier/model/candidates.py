"""The candidate models, their settings, the grid search, and fitting and scoring a candidate.

Every candidate is a scikit-learn Pipeline whose preprocessing is refitted inside each fold.
Hyperparameters are tuned with stratified K-fold cross-validation grouped by customer, because one
customer appears in several monthly snapshots and must not sit in a training and a validation fold
at once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer, roc_auc_score
from sklearn.model_selection import ParameterGrid, StratifiedGroupKFold
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


#: The hyperparameter a boosted model's smaller settings are read from its largest fit's first trees.
STAGED = {"xgboost": "n_estimators"}


@dataclass(frozen=True)
class _Fit:
    """One fit of the grid search: a family's hyperparameters on one fold, scored at `stages` (see `grid_search`)."""

    family: str
    params: dict[str, Any]
    fold: int
    stages: tuple[int, ...] = ()


def _fits(settings: ModelSettings) -> list[tuple[str, list[dict[str, Any]], list[tuple[dict[str, Any], int | None]]]]:
    """Each family's grid points (ParameterGrid order) and the fits that score them: (params fitted, stage) per point.

    A staged family fits only its largest `STAGED` value for each setting of the other hyperparameters; a
    smaller value is scored from that fit's first trees (stage = the smaller value; None: the fit itself).
    """
    plan = []
    for family in settings.families:
        points = list(ParameterGrid(settings.grids[family]))
        staged = STAGED.get(family)
        sources = []
        for point in points:
            if staged in point:
                largest = max(settings.grids[family][staged])
                sources.append(({**point, staged: largest}, None if point[staged] == largest else point[staged]))
            else:
                sources.append((point, None))
        plan.append((family, points, sources))
    return plan


def _cost(task: _Fit) -> tuple[int, float]:
    """A sort key, largest first, for dealing fits to processes: forests, then boosted trees, then the rest; within a
    family more and deeper trees first (so no slow fit is left to run alone at the end)."""
    weight = {"random_forest": 2, "xgboost": 1}.get(task.family, 0)
    size = task.params.get("n_estimators", 1) * (task.params.get("max_depth") or 32)
    return weight, size / task.params.get("min_samples_leaf", 1)


def _fit_and_score(task: _Fit, pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray,
                   fold: tuple[np.ndarray, np.ndarray]) -> dict[Any, tuple[float, float]]:
    """Fit `pipeline` with `task.params` on the fold's training rows; ROC-AUC (validation, training) per stage.

    The fit itself is scored as GridSearchCV scores it (its "roc_auc" scorer); a stage n from the predictions of
    the first n trees (`iteration_range`), which are the n-tree model's predictions bit for bit. Key "seconds": the
    fit's time.
    """
    train, test = fold
    scorer = get_scorer("roc_auc")
    with threadpool_limits(1, user_api="blas"):
        model = clone(pipeline).set_params(**{f"model__{k}": v for k, v in task.params.items()})
        began = time.time()
        model.fit(X.iloc[train], y[train])
        scores: dict[Any, tuple[float, float]] = {"seconds": (time.time() - began, 0.0)}
        scores[None] = (scorer(model, X.iloc[test], y[test]), scorer(model, X.iloc[train], y[train]))
        for stage in task.stages:
            scores[stage] = tuple(
                roc_auc_score(y[rows], model.predict_proba(X.iloc[rows], iteration_range=(0, stage))[:, 1])
                for rows in (test, train))
    return scores


def grid_search(frame: pd.DataFrame, numeric: list[str], categorical: list[str], settings: ModelSettings,
                progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> pd.DataFrame:
    """Grid search every candidate with grouped stratified CV (ROC-AUC): one row per grid point and candidate.

    The same table as scikit-learn's GridSearchCV (scoring "roc_auc", `cv_splits`, training scores) run per
    candidate: cv_auc and cv_auc_sd (mean and SD over folds), train_auc, rank within the candidate, plus gap
    (train_auc - cv_auc). Two shortcuts, both exact: every fold x setting of every candidate is dealt to
    `threads` one-thread processes in one pool, the slowest first; and a boosted candidate's smaller
    n_estimators are scored from the first trees of its largest n_estimators fit (the same trees: xgboost builds
    them one after another, deterministically), so only the largest is fitted.

    fit_seconds: the mean time over folds of the fits a grid point needed; 0 for a point scored from a larger
    fit's first trees (its cost is in the larger point's fit_seconds).
    """
    X, y, groups = xy(frame, numeric, categorical)
    splits = cv_splits(y, groups, settings)
    one_thread = replace(settings, threads=1)
    plan = _fits(settings)
    tasks = {}
    for family, _points, sources in plan:
        for params, _ in sources:
            stages = tuple(sorted({stage for fitted, stage in sources if fitted == params and stage is not None}))
            for fold in range(len(splits)):
                tasks[family, repr(params), fold] = _Fit(family, params, fold, stages)
    pipelines = {family: candidate(family, numeric, categorical, one_thread) for family in settings.families}
    # The folds x settings run on `threads` processes of one thread each (forests and boosted trees fit the same
    # trees on any thread count, and one thread per process keeps the CV predictions' sums in order).
    order = sorted(tasks.values(), key=_cost, reverse=True)
    results = Parallel(n_jobs=settings.threads, return_as="generator")(
        delayed(_fit_and_score)(task, pipelines[task.family], X, y, splits[task.fold]) for task in order)
    scored = dict(zip([(t.family, repr(t.params), t.fold) for t in order],
                      progress(results) if progress else results, strict=True))
    rows = []
    for family, points, sources in plan:
        runs = [[scored[family, repr(params), fold] for fold in range(len(splits))] for params, _ in sources]
        test = np.array([[run[stage][0] for run in folds] for folds, (_, stage) in zip(runs, sources)], dtype=float)
        train = np.array([[run[stage][1] for run in folds] for folds, (_, stage) in zip(runs, sources)], dtype=float)
        seconds = np.array([[run["seconds"][0] if stage is None else 0.0 for run in folds]
                            for folds, (_, stage) in zip(runs, sources)], dtype=float)
        # GridSearchCV's aggregation: mean and (population) SD over folds, rank "min" of the negated means.
        means, train_means, fit_means = (np.average(values, axis=1) for values in (test, train, seconds))
        sds = np.sqrt(np.average((test - means[:, np.newaxis]) ** 2, axis=1))
        ranks = rankdata(-means, method="min").astype(np.int32)
        for i, point in enumerate(points):
            rows.append({"candidate": family, "params": point, "cv_auc": means[i], "cv_auc_sd": sds[i],
                         "train_auc": train_means[i], "fit_seconds": fit_means[i], "rank": int(ranks[i])})
    table = pd.DataFrame(rows)
    table["gap"] = table["train_auc"] - table["cv_auc"]
    return table.sort_values(["candidate", "rank"]).reset_index(drop=True)


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
             settings: ModelSettings, reuse: dict[str, Pipeline] | None = None) -> dict[str, Pipeline]:
    """Each candidate of `best_table` refitted with its best hyperparameters on `frame`, best CV AUC first.

    `reuse`: candidates already fitted by `fit_best` on `frame` with the same settings (e.g. on all features, before
    pruning); one with the same hyperparameters, fitted on the same columns, is returned as it is instead of being
    fitted again (the same rows, columns, params and threads: the same model).
    """
    fitted = {}
    for family in best.index:
        params, earlier = best.at[family, "params"], (reuse or {}).get(family)
        if earlier is not None and _same_fit(earlier, params, numeric + categorical):
            fitted[family] = earlier
        else:
            fitted[family] = fit(tuned(family, params, numeric, categorical, settings), frame, numeric, categorical)
    return fitted


def _same_fit(fitted: Pipeline, params: dict[str, Any], features: list[str]) -> bool:
    """Whether `fitted` (a candidate from `fit_best`, same settings) has the hyperparameters `params` and was fitted on
    the columns `features`."""
    mine = model_params(fitted)
    return all(k in mine and mine[k] == v for k, v in params.items()) and (
        list(getattr(fitted, "feature_names_in_", [])) == list(features))


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

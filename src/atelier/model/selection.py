"""Which features matter: impurity and permutation importance, and pruning the irrelevant ones.

Permutation importance is measured out of time inside training: the best candidate is fitted on the
earlier training snapshots and shuffled column by column on the last one. Features whose AUC drop is
below `prune_below` are dropped, if dropping them costs no more than `prune_tolerance` of validation AUC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from atelier.model.candidates import ModelSettings, fit, model_params, predict, tuned
from atelier.model.explain import source_feature
from atelier.model.split import validation_split, xy

#: Why pruning was or was not applied (Pruning.outcome).
APPLIED, NOTHING_TO_DROP, TOO_COSTLY, TOO_LITTLE_DATA = "applied", "nothing to drop", "too costly", "too little data"


@dataclass(frozen=True)
class Pruning:
    """What permutation importance suggests dropping, and what dropping it does to validation AUC."""

    kept: list[str]
    dropped: list[str]
    auc_all: float
    auc_pruned: float
    applied: bool
    suggested: tuple[str, ...] = ()

    @property
    def outcome(self) -> str:
        """APPLIED, NOTHING_TO_DROP (every feature matters), TOO_COSTLY (validation AUC would fall by more than
        the tolerance) or TOO_LITTLE_DATA (no validation snapshot with buyers and non-buyers)."""
        if self.applied:
            return APPLIED
        if np.isnan(self.auc_all):
            return TOO_LITTLE_DATA
        return TOO_COSTLY if self.suggested else NOTHING_TO_DROP


def forest_importance(pipeline: Pipeline, features: list[str]) -> pd.Series:
    """The random forest's impurity importance, summed back onto source features."""
    names = pipeline.named_steps["prepare"].get_feature_names_out()
    importance = pd.Series(pipeline.named_steps["model"].feature_importances_, index=names)
    return importance.groupby([source_feature(n, features) or n for n in names]).sum().sort_values(ascending=False)


def permutation_table(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, settings: ModelSettings) -> pd.DataFrame:
    """Permutation importance (mean and SD of the ROC-AUC drop when a column is shuffled) on validation data."""
    with threadpool_limits(1, user_api="blas"):
        result = permutation_importance(pipeline, X, y, scoring="roc_auc", n_repeats=settings.permutation_repeats,
                                        random_state=settings.seed, n_jobs=1)
    table = pd.DataFrame({"importance": result.importances_mean, "sd": result.importances_std}, index=X.columns)
    return table.sort_values("importance", ascending=False)


def prune(best: Pipeline, family: str, train: pd.DataFrame, numeric: list[str], categorical: list[str],
          settings: ModelSettings) -> tuple[Pruning, pd.DataFrame]:
    """Permutation importance on the validation snapshot; drop the irrelevant features if validation AUC holds.

    Needs two training snapshots (one to fit, the last to validate); with one, nothing is pruned.
    """
    features = numeric + categorical
    early, validation = validation_split(train)
    if early.empty or validation["label"].nunique() < 2 or early["label"].nunique() < 2:
        empty = pd.DataFrame({"importance": 0.0, "sd": 0.0}, index=features)
        nothing = float("nan")
        return Pruning(kept=features, dropped=[], auc_all=nothing, auc_pruned=nothing, applied=False), empty
    fitted = fit(best, early, numeric, categorical)
    X_validation, y_validation, _ = xy(validation, numeric, categorical)
    importance = permutation_table(fitted, X_validation, y_validation, settings)
    dropped = [f for f in importance.index if importance.at[f, "importance"] < settings.prune_below]
    kept = [f for f in features if f not in dropped]
    auc_all = roc_auc_score(y_validation, fitted.predict_proba(X_validation)[:, 1])
    kept_numeric, kept_categorical = [f for f in numeric if f in kept], [f for f in categorical if f in kept]
    pruned_pipeline = tuned(family, model_params(best), kept_numeric, kept_categorical, settings)
    refit = fit(pruned_pipeline, early, kept_numeric, kept_categorical)
    auc_pruned = roc_auc_score(y_validation, predict(refit, validation, kept_numeric, kept_categorical))
    applied = bool(dropped) and auc_pruned >= auc_all - settings.prune_tolerance
    return Pruning(kept=kept if applied else features, dropped=dropped if applied else [], auc_all=float(auc_all),
                   auc_pruned=float(auc_pruned), applied=applied, suggested=tuple(dropped)), importance


def importance_views(permutation: pd.DataFrame, forest: Pipeline | None, features: list[str]) -> pd.DataFrame:
    """Permutation importance beside the fitted forest's impurity importance (when there is one), 0 where missing."""
    views = pd.DataFrame({"permutation: AUC drop (validation)": permutation["importance"]})
    if forest is not None:
        views["forest impurity"] = forest_importance(forest, features)
    return views.fillna(0)

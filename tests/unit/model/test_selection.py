"""Which features matter: impurity importance summed onto source features, permutation importance, and pruning
(with why it was or was not applied)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from atelier.model import candidates, selection
from atelier.model.split import features_of, split_by_time

from .model_shop import HORIZON, SETTINGS, medium_snapshots

pytestmark = pytest.mark.filterwarnings("ignore")  # convergence and feature-name notes from scikit-learn, xgboost


@pytest.fixture(scope="module")
def forest(split, columns):
    grid = {name: values[0] for name, values in SETTINGS.grids["random_forest"].items()}
    return candidates.fit(candidates.tuned("random_forest", grid, *columns, SETTINGS), split.train, *columns)


@pytest.fixture(scope="module")
def medium_train(tmp_path_factory) -> pd.DataFrame:
    """The medium shop's training snapshots plus a pure-noise column."""
    train = split_by_time(medium_snapshots(tmp_path_factory.mktemp("medium_shop")), HORIZON).train
    return train.assign(noise=np.random.default_rng(0).normal(size=len(train)))


def test_forest_importance_sums_preprocessed_columns_into_source_features(forest, columns):
    numeric, categorical = columns
    names = list(forest.named_steps["prepare"].get_feature_names_out())
    indicators = [n for n in names if n.startswith("missingindicator_")]
    assert indicators and len(names) > len(numeric + categorical)  # more output columns than sources
    importance = selection.forest_importance(forest, numeric + categorical)
    assert set(importance.index) <= set(numeric + categorical)
    assert importance.sum() == pytest.approx(1.0)
    assert importance.is_monotonic_decreasing
    raw = pd.Series(forest.named_steps["model"].feature_importances_, index=names)
    source = indicators[0].removeprefix("missingindicator_")
    assert importance.get(source, 0.0) == pytest.approx(raw[source] + raw[indicators[0]])


def test_importance_views_put_both_importances_side_by_side(forest, columns):
    features = columns[0] + columns[1]
    permutation = pd.DataFrame({"importance": np.linspace(0.02, 0.0, len(features)), "sd": 0.0}, index=features)
    views = selection.importance_views(permutation, forest, features)
    assert list(views.columns) == ["permutation: AUC drop (validation)", "forest impurity"]
    assert views["forest impurity"].sum() == pytest.approx(1.0) and not views.isna().any().any()
    alone = selection.importance_views(permutation, None, features)
    assert list(alone.columns) == ["permutation: AUC drop (validation)"] and len(alone) == len(features)


def test_prune_drops_a_pure_noise_column(medium_train):
    numeric, categorical = features_of(medium_train)
    assert "noise" in numeric
    best = candidates.tuned("logistic_regression", {"C": 0.1}, numeric, categorical, SETTINGS)
    pruning, importance = selection.prune(best, "logistic_regression", medium_train, numeric, categorical, SETTINGS)
    assert set(importance.index) == set(numeric + categorical)
    assert abs(importance.loc["noise", "importance"]) < 0.005  # ~0: shuffling noise costs no AUC
    assert importance["importance"].max() > 10 * SETTINGS.prune_below  # while real signals do matter
    assert pruning.applied and pruning.outcome == selection.APPLIED
    assert "noise" in pruning.dropped and "noise" not in pruning.kept
    # The contract: exactly the features below the threshold are dropped, the rest kept, in order.
    below = set(importance.index[importance["importance"] < SETTINGS.prune_below])
    assert set(pruning.dropped) == below == set(pruning.suggested)
    assert pruning.kept == [f for f in numeric + categorical if f not in below]
    assert pruning.auc_pruned >= pruning.auc_all - SETTINGS.prune_tolerance


def test_prune_keeps_everything_when_dropping_costs_too_much(split, columns):
    """A tolerance below any possible AUC change (negative) means nothing may be dropped."""
    numeric, categorical = columns
    settings = dataclasses.replace(SETTINGS, prune_tolerance=-1.0)
    best = candidates.tuned("logistic_regression", {"C": 0.1}, numeric, categorical, settings)
    pruning, importance = selection.prune(best, "logistic_regression", split.train, numeric, categorical, settings)
    assert not pruning.applied and pruning.dropped == [] and pruning.kept == numeric + categorical
    assert pruning.outcome == selection.TOO_COSTLY
    assert 0.5 < pruning.auc_all <= 1 and 0 <= pruning.auc_pruned <= 1
    suggested = set(importance.index[importance["importance"] < settings.prune_below])
    assert suggested and set(pruning.suggested) == suggested  # there were candidates to drop, and they are named


def test_prune_with_nothing_below_the_threshold_keeps_everything(split, columns):
    numeric, categorical = columns
    settings = dataclasses.replace(SETTINGS, prune_below=-1.0)  # no AUC drop is below -1
    best = candidates.tuned("logistic_regression", {"C": 0.1}, numeric, categorical, settings)
    pruning, _ = selection.prune(best, "logistic_regression", split.train, numeric, categorical, settings)
    assert pruning.outcome == selection.NOTHING_TO_DROP and pruning.suggested == () and not pruning.applied
    assert pruning.kept == numeric + categorical and pruning.auc_pruned == pytest.approx(pruning.auc_all)


def test_prune_with_a_single_training_snapshot_keeps_everything(split, columns):
    numeric, categorical = columns
    one = split.train[split.train["cutoff"] == split.train_cutoffs[-1]]
    best = candidates.tuned("xgboost", {"n_estimators": 5}, numeric, categorical, SETTINGS)
    pruning, importance = selection.prune(best, "xgboost", one, numeric, categorical, SETTINGS)
    assert not pruning.applied and pruning.outcome == selection.TOO_LITTLE_DATA
    assert pruning.kept == numeric + categorical and pruning.dropped == []
    assert np.isnan(pruning.auc_all) and np.isnan(pruning.auc_pruned)
    assert list(importance.index) == numeric + categorical and (importance["importance"] == 0).all()

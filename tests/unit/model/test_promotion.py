"""Registering the candidates and promoting a champion by the rule: what gets registered, who may replace whom,
the champion loaded back and checked, and what the choice owed to cross-validation or the test month."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from atelier.model import candidates, evaluate, promotion
from atelier.model.registry import Registry
from atelier.model.split import TimeSplit, features_of

from .model_shop import SETTINGS

pytestmark = pytest.mark.filterwarnings("ignore")  # convergence and feature-name notes from scikit-learn, xgboost


@pytest.fixture(scope="module")
def fitted(split):
    """The tiny shop's candidates with their first grid point, and the tables the promotion reads."""
    numeric, categorical = features_of(split.train)
    features = numeric + categorical
    params = {family: {name: values[0] for name, values in grid.items()} for family, grid in SETTINGS.grids.items()}
    cv_auc = {"logistic_regression": 0.7, "random_forest": 0.8, "xgboost": 0.75}
    best = pd.DataFrame({"params": params, "cv_auc": cv_auc, "gap": 0.0, "overfitting": False})
    models = candidates.fit_best(best, split.train, numeric, categorical, SETTINGS)
    y = split.test["label"].astype(int).to_numpy()
    scores = {family: candidates.predict(model, split.test, numeric, categorical) for family, model in models.items()}
    evaluation = evaluate.candidate_table(y, scores, best["cv_auc"], 10, seed=0)
    return {"best": best, "models": models, "scores": scores, "evaluation": evaluation, "features": features, "y": y}


def run(registry: Registry, fitted: dict, split: TimeSplit, best: pd.DataFrame | None = None, min_delta: float = 0.0):
    settings = dataclasses.replace(SETTINGS, promotion_min_delta=min_delta)
    return promotion.register_and_promote(registry, fitted["models"], fitted["best"] if best is None else best,
                                          fitted["evaluation"], split, fitted["features"], "hash-1", settings)


def test_every_candidate_is_registered_simplest_first_and_scored_out_of_time(tmp_path, fitted, split):
    registry = Registry(tmp_path / "registry")
    decisions = run(registry, fitted, split)
    assert [d.candidate for d in decisions] == ["v1", "v2", "v3"]
    assert [registry.metadata(v)["name"] for v in ("v1", "v2", "v3")] == list(candidates.FAMILIES)
    for decision, family in zip(decisions, candidates.FAMILIES):
        assert decision.candidate_score == pytest.approx(roc_auc_score(fitted["y"], fitted["scores"][family]))
        metadata = registry.metadata(decision.candidate)
        assert metadata["features"] == fitted["features"] and metadata["data_hash"] == "hash-1"
        assert metadata["test_cutoff"] == split.test_cutoff.date().isoformat()
        assert metadata["train_cutoffs"] == [c.date().isoformat() for c in split.train_cutoffs]
        assert metadata["metrics"]["roc_auc"] == pytest.approx(decision.candidate_score)
        assert metadata["metrics"]["cv_auc"] == fitted["best"].at[family, "cv_auc"]
    # The rule with no margin: the champion is the best test AUC among those promoted in order.
    assert decisions[0].promoted
    champion = registry.alias("champion")
    assert registry.metadata(champion)["name"] == max(fitted["scores"],
                                                      key=lambda f: roc_auc_score(fitted["y"], fitted["scores"][f]))


def test_an_overfitting_candidate_never_replaces_the_champion(tmp_path, fitted, split):
    best = fitted["best"].copy()
    best["overfitting"], best["gap"] = True, 0.05
    best.loc["logistic_regression", ["overfitting", "gap"]] = [False, 0.0]
    decisions = run(Registry(tmp_path / "registry"), fitted, split, best=best)
    assert decisions[0].promoted and not any(d.promoted for d in decisions[1:])
    assert all("failed the overfitting check (train AUC - CV AUC = 0.050 > " in d.reason for d in decisions[1:])
    assert promotion.blocked_by(best, "logistic_regression", SETTINGS) is None


def test_a_margin_nobody_reaches_keeps_the_first_champion(tmp_path, fitted, split):
    registry = Registry(tmp_path / "registry")
    decisions = run(registry, fitted, split, min_delta=1.0)
    assert [d.promoted for d in decisions] == [True, False, False] and registry.alias("champion") == "v1"


def test_verified_champion_scores_like_the_fitted_model_and_refuses_a_mismatch(tmp_path, fitted, split):
    registry = Registry(tmp_path / "registry")
    with pytest.raises(RuntimeError, match="no champion"):
        promotion.verified_champion(registry, split.test, fitted["scores"])
    run(registry, fitted, split)
    champion, scores = promotion.verified_champion(registry, split.test, fitted["scores"])
    assert champion.version == registry.alias("champion")
    np.testing.assert_allclose(scores, fitted["scores"][champion.name])
    wrong = {family: 1 - p for family, p in fitted["scores"].items()}
    with pytest.raises(RuntimeError, match="does not score like the fitted model"):
        promotion.verified_champion(registry, split.test, wrong)


def test_outcome_lists_this_run_and_earlier_runs(tmp_path, fitted, split):
    registry = Registry(tmp_path / "registry")
    first = run(registry, fitted, split)
    ranking = evaluate.ranking_agreement(fitted["best"]["cv_auc"], fitted["evaluation"]["roc_auc"])
    outcome = promotion.outcome(registry, first, ranking)
    assert outcome.registered == list(zip(["v1", "v2", "v3"], candidates.FAMILIES))
    assert outcome.earlier == [] and outcome.earlier_champion is None
    assert outcome.champion == registry.metadata(registry.alias("champion"))["name"]
    assert outcome.cv_order == ["random_forest", "xgboost", "logistic_regression"]
    before = registry.alias("champion")
    again = promotion.outcome(registry, run(registry, fitted, split), ranking)  # a rerun outside `dvc repro`
    assert again.earlier == ["v1", "v2", "v3"] and again.earlier_champion == before
    assert [version for version, _ in again.registered] == ["v4", "v5", "v6"]


@pytest.mark.parametrize(("champion", "cv_order", "test_order", "agreement", "verdict"), [
    ("xgboost", ["xgboost", "forest", "linear"], ["xgboost", "forest", "linear"], promotion.SAME_ORDER,
     promotion.CV_BEST),
    ("xgboost", ["xgboost", "forest", "linear"], ["xgboost", "linear", "forest"], promotion.SAME_BEST,
     promotion.CV_BEST),
    ("forest", ["xgboost", "forest", "linear"], ["forest", "xgboost", "linear"], promotion.OTHER_BEST,
     promotion.TEST_MONTH),
    ("linear", ["xgboost", "forest", "linear"], ["xgboost", "forest", "linear"], promotion.SAME_ORDER,
     promotion.RULE),
])
def test_outcome_agreement_and_verdict(champion, cv_order, test_order, agreement, verdict):
    outcome = promotion.Outcome(registered=[], earlier=[], earlier_champion=None, champion=champion,
                                cv_order=cv_order, test_order=test_order)
    assert outcome.agreement == agreement and outcome.verdict == verdict

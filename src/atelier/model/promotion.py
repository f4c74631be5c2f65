"""Registering the tuned candidates and promoting a champion by the rule; what the choice did and did not use.

The promotion rule: a new version becomes `champion` only if its out-of-time ROC-AUC beats the current
champion's, on the same test snapshot, by at least `promotion_min_delta`, and it passed the overfitting
check (a flagged candidate may become the first champion, never replace one). Candidates are registered
from the simplest to the most complex, as a team would build them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from atelier.data import transform
from atelier.model.candidates import FAMILIES, ModelSettings
from atelier.model.champion import Champion, from_registry
from atelier.model.registry import PromotionDecision, Registry
from atelier.model.split import TimeSplit

#: Why the champion is the champion (`Outcome.verdict`).
CV_BEST, TEST_MONTH, RULE = "cross-validation's best", "the test month's best", "the rule's order"
#: How cross-validation and the test month rank the candidates (`Outcome.agreement`).
SAME_ORDER, SAME_BEST, OTHER_BEST = "same order", "same best", "another best"


def blocked_by(best: pd.DataFrame, family: str, settings: ModelSettings) -> str | None:
    """Why `family` may not replace a champion (its overfitting flag), or None."""
    if not best.at[family, "overfitting"]:
        return None
    return (f"it failed the overfitting check (train AUC - CV AUC = {best.at[family, 'gap']:.3f} > "
            f"{settings.overfit_gap_warning})")


def registration(family: str, best: pd.DataFrame, evaluation: pd.DataFrame, split: TimeSplit, features: list[str],
                 data_hash: str) -> dict[str, Any]:
    """The metadata a candidate is registered with: params, features, data hash, cutoffs, metrics."""
    return {
        "params": best.at[family, "params"], "features": features, "data_hash": data_hash,
        "train_cutoffs": [c.date().isoformat() for c in split.train_cutoffs],
        "test_cutoff": split.test_cutoff.date().isoformat(),
        "metrics": {"cv_auc": float(best.at[family, "cv_auc"]),
                    **{k: float(v) for k, v in evaluation.loc[family].items() if k != "roc_auc_95ci"}},
    }


def register_and_promote(registry: Registry, models: dict[str, Pipeline], best: pd.DataFrame,
                         evaluation: pd.DataFrame, split: TimeSplit, features: list[str], data_hash: str,
                         settings: ModelSettings) -> list[PromotionDecision]:
    """Register every fitted candidate (simplest first) and put each to the promotion rule; the decisions in order.

    Every candidate is scored by the registry on the test snapshot after it was saved and loaded back, so
    the rule compares what the registry holds.
    """
    X_test = transform.model_frame(split.test[features])
    y_test = split.test["label"].astype(int).to_numpy()

    def out_of_time_auc(model: Pipeline) -> float:
        return float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))

    decisions = []
    for family in [f for f in FAMILIES if f in models]:
        metadata = registration(family, best, evaluation, split, features, data_hash)
        version = registry.register(models[family], name=family, metadata=metadata)
        decisions.append(registry.promote(version, out_of_time_auc, min_delta=settings.promotion_min_delta,
                                          blocked_by=blocked_by(best, family, settings)))
    return decisions


def verified_champion(registry: Registry, test: pd.DataFrame,
                      fitted_scores: dict[str, np.ndarray]) -> tuple[Champion, np.ndarray]:
    """The champion loaded back by its alias and its test scores, checked against the fitted model's scores."""
    version = registry.alias("champion")
    if version is None:
        raise RuntimeError(f"{registry.root} has no champion after the promotion rule ran")
    champion = from_registry(registry, version)
    scores = champion.pipeline.predict_proba(transform.model_frame(test[champion.features]))[:, 1]
    if not np.allclose(scores, fitted_scores[champion.name]):
        raise RuntimeError(f"the registered champion {version} ({champion.name}) does not score like the fitted "
                           "model; the registry's round trip changed the model")
    return champion, scores


@dataclass(frozen=True)
class Outcome:
    """What the promotion rule compared and what it chose, against what cross-validation alone would choose."""

    registered: list[tuple[str, str]]
    earlier: list[str]
    earlier_champion: str | None
    champion: str
    cv_order: list[str]
    test_order: list[str]

    @property
    def agreement(self) -> str:
        """SAME_ORDER, SAME_BEST (the others swap places) or OTHER_BEST: CV and the test month against each other."""
        if self.cv_order == self.test_order:
            return SAME_ORDER
        return SAME_BEST if self.cv_order[0] == self.test_order[0] else OTHER_BEST

    @property
    def verdict(self) -> str:
        """CV_BEST (the choice does not hinge on the test month), TEST_MONTH (it owes its place to the test
        month) or RULE (to the promotion margin, the overfitting check and the registration order)."""
        if self.champion == self.cv_order[0]:
            return CV_BEST
        return TEST_MONTH if self.champion == self.test_order[0] else RULE


def outcome(registry: Registry, decisions: list[PromotionDecision], ranking: dict[str, Any]) -> Outcome:
    """The promotion's outcome: this run's versions in order, versions from earlier runs (and the champion the
    first candidate met, if any), the champion's family, and the two rankings of `evaluate.ranking_agreement`."""
    this_run = [d.candidate for d in decisions]
    return Outcome(
        registered=[(version, registry.metadata(version)["name"]) for version in this_run],
        earlier=[v for v in registry.versions()["version"] if v not in this_run],
        earlier_champion=decisions[0].champion_before if decisions else None,
        champion=registry.metadata(registry.alias("champion"))["name"],
        cv_order=list(ranking["first_order"]), test_order=list(ranking["second_order"]),
    )

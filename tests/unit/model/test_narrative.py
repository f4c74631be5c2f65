"""The report's computed paragraphs: every branch, including those the default data never reaches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.model import attribution, evaluate, explain, narrative, promotion, selection

CUTOFF = pd.Timestamp("2025-11-01")
LABELS = attribution.GroupLabels(active_recency_days=90, short_history_days=90)


# --------------------------------------------------------------------------------------------
# Pruning
# --------------------------------------------------------------------------------------------
def pruning(applied: bool, suggested: tuple[str, ...], auc_all: float = 0.91) -> selection.Pruning:
    return selection.Pruning(kept=["a"], dropped=list(suggested) if applied else [], auc_all=auc_all,
                             auc_pruned=0.912, applied=applied, suggested=suggested)


def test_pruning_story_for_every_outcome():
    kept = narrative.pruning_story(pruning(True, ("noise", "spend")), 0.001)
    assert "dropping 2 feature(s): `noise`, `spend`" in kept and kept.endswith("The pruned set is kept.")
    costly = narrative.pruning_story(pruning(False, ("spend",)), 0.001)
    assert "dropping 1 feature(s): `spend`" in costly and "costs more than `prune_tolerance` (0.001)" in costly
    assert "every feature is kept" in costly
    nothing = narrative.pruning_story(pruning(False, ()), 0.001)
    assert "nothing is dropped" in nothing and "0.9100" in nothing and "suggests" not in nothing
    little = narrative.pruning_story(pruning(False, (), auc_all=float("nan")), 0.001)
    assert "needs two training snapshots" in little and "nan" not in little


# --------------------------------------------------------------------------------------------
# Promotion
# --------------------------------------------------------------------------------------------
def outcome(champion="xgboost", cv=("xgboost", "random_forest"), test=("xgboost", "random_forest"), earlier=(),
            earlier_champion=None) -> promotion.Outcome:
    registered = [(f"v{len(earlier) + i + 1}", name) for i, name in enumerate(cv)]
    return promotion.Outcome(registered=registered, earlier=list(earlier), earlier_champion=earlier_champion,
                             champion=champion, cv_order=list(cv), test_order=list(test))


def test_promotion_story_names_the_order_and_whether_earlier_runs_took_part():
    fresh = narrative.promotion_story(outcome(), CUTOFF)
    assert "**v1 xgboost → v2 random_forest**" in fresh and "no version from an earlier run" in fresh
    assert "(2025-11-01)" in fresh and "best of several tries" in fresh
    kept = narrative.promotion_story(outcome(earlier=("v1", "v2"), earlier_champion="v2"), CUTOFF)
    assert "also holds v1 and v2 from an earlier run" in kept and "compared with their champion, v2" in kept
    orphan = narrative.promotion_story(outcome(earlier=("v1",)), CUTOFF)
    assert "also holds v1 from an earlier run" in orphan and "with no champion among them" in orphan


@pytest.mark.parametrize(("champion", "test", "agreement", "verdict"), [
    ("xgboost", ("xgboost", "random_forest", "logistic"), "the same order.", "does not hinge on the test month"),
    ("xgboost", ("xgboost", "logistic", "random_forest"), "the others swap places.", "does not hinge on the test"),
    ("random_forest", ("random_forest", "xgboost", "logistic"), "**they disagree on the best**.",
     "owes its place to the test month itself"),
    ("logistic", ("xgboost", "random_forest", "logistic"), "the same order.", "owes its place to the promotion margin"),
])
def test_promotion_story_words_the_agreement_and_the_verdict(champion, test, agreement, verdict):
    story = narrative.promotion_story(outcome(champion, ("xgboost", "random_forest", "logistic"), test), CUTOFF)
    assert agreement in story and verdict in story
    assert ("Cross-validation would have picked **xgboost**" in story) == (champion != "xgboost")


def test_promotion_story_of_a_single_candidate_claims_no_best_of_several():
    story = narrative.promotion_story(outcome("xgboost", ("xgboost",), ("xgboost",)), CUTOFF)
    assert "had no rival" in story and "best of several tries" not in story and "Cross-validation" not in story


# --------------------------------------------------------------------------------------------
# The champion
# --------------------------------------------------------------------------------------------
def evaluation(*families: str) -> pd.DataFrame:
    rows = {family: {"roc_auc": 0.92 - 0.01 * i, "pr_auc": 0.43, "lift_top10": 6.4,
                     "roc_auc_95ci": (0.91 - 0.01 * i, 0.93 - 0.01 * i)} for i, family in enumerate(families)}
    return pd.DataFrame(rows).T


def subsets(*families: str) -> pd.DataFrame:
    return pd.DataFrame({"all customers": 0.92, "active (seen in 90 days)": 0.85}, index=list(families))


ORACLE = {"roc_auc": 0.935, "active_roc_auc": 0.874}


def test_champion_story_with_and_without_the_oracle():
    table = evaluation("xgboost", "random_forest")
    story = narrative.champion_story("xgboost", "v3", table, subsets("xgboost", "random_forest"), ORACLE,
                                     {"random_forest": True})
    assert "**Champion: xgboost (v3)**" in story and "**0.920** (95 % CI 0.910 to 0.930)" in story
    assert f"**{0.92 / 0.935:.1%}** of the way" in story and "0.850 (champion) and 0.874 (oracle)" in story
    assert "the random forest reaches 0.910" in story
    blind = narrative.champion_story("xgboost", "v3", table, subsets("xgboost", "random_forest"), None,
                                     {"random_forest": True})
    assert "oracle" not in blind and "of the way" not in blind


def test_champion_story_without_a_random_forest_says_so():
    story = narrative.champion_story("xgboost", "v2", evaluation("xgboost"), subsets("xgboost"), None, {})
    assert "the random forest reaches nothing: it was not a candidate" in story
    assert story.endswith("There was no other candidate to compare it with.")


@pytest.mark.parametrize(("overlap", "expected"), [
    ({"random_forest": True, "logistic": True}, "The 95 % intervals of random_forest and logistic overlap"),
    ({"random_forest": False, "logistic": False}, "No other candidate's 95 % interval overlaps"),
    ({"random_forest": True, "logistic": False}, "against it the edge is small; those of logistic do not"),
])
def test_champion_story_words_the_interval_overlap(overlap, expected):
    families = ("xgboost", "random_forest", "logistic")
    story = narrative.champion_story("xgboost", "v3", evaluation(*families), subsets(*families), ORACLE, overlap)
    assert expected in story
    assert ("a small edge is not a big one" in story) == all(overlap.values())


# --------------------------------------------------------------------------------------------
# The gap to the oracle
# --------------------------------------------------------------------------------------------
def gap_table(rows: dict[str, tuple[float, float, float, float]], gap: float = 0.015) -> pd.DataFrame:
    """rows: group -> (share of customers, share of gap, model AUC, oracle AUC)."""
    table = pd.DataFrame(rows, index=["share_of_customers", "share_of_gap", "model_auc", "oracle_auc"]).T
    table.attrs["gap"] = gap
    return table


def tables(short: tuple | None = (0.08, 0.13, 0.84, 0.92), personas: bool = True) -> dict[str, pd.DataFrame]:
    history = {LABELS.longer: (0.92, 0.87, 0.92, 0.93)} | ({LABELS.short: short} if short else {})
    activity = {LABELS.active: (0.53, 0.9, 0.85, 0.87), attribution.DORMANT: (0.47, 0.1, 0.98, 0.99)}
    made = {"activity": gap_table(activity), "history": gap_table(history)}
    if personas:
        made["persona"] = gap_table({"bargain_hunter": (0.2, 0.41, 0.79, 0.82), "new_visitor": (0.22, 0.14, 0.87, 0.94),
                                     "lapsing": (0.58, 0.45, np.nan, 0.97)})
    return made


def rise(bargain: float = 1.56, overall: float = 1.22) -> pd.DataFrame:
    frame = pd.DataFrame({"ratio": {"bargain_hunter": bargain, "all": overall, "new_visitor": 1.05, "lapsing": 0.76}})
    return frame.sort_values("ratio", ascending=False)


def test_gap_story_splits_the_gap_and_says_what_the_oracle_knows():
    story = narrative.gap_story(tables(), LABELS, rise())
    assert story.startswith("The champion is 0.0150 AUC short of the oracle.")
    assert "**90% of that gap sits with active customers** (53% of customers)" in story
    assert "champion reaches 0.850 against the oracle's 0.870" in story
    assert "Dormant customers, 47% of customers, carry 10%." in story
    assert "short history are 8% of customers and carry 13% of the gap" in story
    assert "By persona, **bargain_hunter** carries the most gap for its size: 41% of the gap for 20%" in story
    assert "widest for new_visitor (AUC 0.940 against 0.870)" in story
    assert "carry 1.6x their share of the gap" in story and "hidden rates" in story
    assert "In this simulated shop the true chance of ordering is 1.22x as high in the test window" in story
    assert "rose most for bargain_hunter (x1.56). It is also the persona carrying the most gap" in story


def test_gap_story_when_the_rise_does_not_explain_the_gap():
    story = narrative.gap_story(tables(), LABELS, rise(bargain=1.0, overall=1.0).rename(
        index={"new_visitor": "window_browser"}))
    assert "about as high in the test window as in the training windows (1.00x)" in story
    assert "rose most for window_browser (x1.05)" in story
    assert "The persona carrying the most gap for its size, bargain_hunter, saw x1.00" in story
    fell = narrative.gap_story(tables(), LABELS, rise(bargain=0.8, overall=0.8))
    assert "only 0.80x as high in the test window as in the training windows (it fell)" in fell
    everyone_fell = rise(bargain=0.8, overall=0.8).drop(index="new_visitor")
    assert "it fell least for bargain_hunter (x0.80)" in narrative.gap_story(tables(), LABELS, everyone_fell)


def test_gap_story_without_short_histories_personas_or_a_gap():
    no_short = narrative.gap_story(tables(short=None, personas=False), LABELS, None)
    assert "No test customer has a history shorter than 90 days." in no_short
    assert "persona" not in no_short and "What the oracle knows" not in no_short
    light = narrative.gap_story(tables(short=(0.3, 0.2, np.nan, np.nan), personas=False), LABELS, None)
    assert "the group has no buyers (or no non-buyers), so there is no AUC within it" in light
    assert "carry 0.7x their share of the gap, no more than their size" in light
    ahead = tables()
    ahead["activity"].attrs["gap"] = -0.002
    assert narrative.gap_story(ahead, LABELS, rise()) == (
        "The champion is not behind the oracle on this snapshot (gap -0.0020): there is no gap to attribute.")


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------
def check(z: float, p_value: float = 0.5, mean: float = 0.040) -> evaluate.CalibrationCheck:
    return evaluate.CalibrationCheck(observed_rate=0.055, mean_predicted=mean, z=z, hosmer_lemeshow=1.0,
                                     p_value=p_value)


CALIBRATION = pd.DataFrame({"brier": [0.03949, 0.03947], "log_loss": [0.13, 0.13], "roc_auc": [0.920, 0.918]},
                           index=["champion", "champion, isotonic calibration"])
DECILES = pd.DataFrame({"mean_score": [0.27], "buyer_rate": [0.35]})


TIE = evaluate.Difference(-0.00002, -0.0001, 0.00005)


def story(champion: evaluate.CalibrationCheck, oracle: evaluate.CalibrationCheck | None, training_rate: float = 0.045,
          brier: evaluate.Difference = TIE) -> str:
    return narrative.calibration_story(champion, check(11.4, mean=0.0404), oracle, training_rate, brier,
                                       CALIBRATION, DECILES, "isotonic")


@pytest.mark.parametrize(("brier", "words"), [
    (evaluate.Difference(-0.00002, -0.0001, 0.00005), "changes the Brier score by no more than noise"),
    (evaluate.Difference(-0.0002, -0.0003, -0.0001), "lowers the Brier score (0.03949 → 0.03947; 95 % interval"),
    (evaluate.Difference(0.0002, 0.0001, 0.0003), "raises the Brier score"),
])
def test_calibration_story_calls_a_tie_a_tie(brier, words):
    text = story(check(11.5), check(0.4), brier=brier)
    assert words in text and "Isotonic calibration" in text
    assert ("the calibrated variant is the one to use" in text) == (brier.verdict == evaluate.LOWER)
    assert "Mean predicted probability 0.040 (calibrated: 0.040) against an observed rate of 0.055" in text
    assert "ROC-AUC is 0.918 against the champion's 0.920" in text and "predicts 0.27 on average and 0.35" in text


def test_calibration_story_for_every_drift_verdict():
    drift = story(check(11.5), check(0.4))
    assert "The oracle, which knows what the test window holds, lies on the diagonal" in drift
    assert "under-predicts by 11.5 standard deviations" in drift and "months with fewer buyers" in drift
    assert "in the direction the buyer rate moved (0.045 in the training months, 0.055 in the test window)" in drift
    assert "That is drift, not a calibration bug" in drift
    assert "months with more buyers" in story(check(-6.0), check(0.4), training_rate=0.07)
    calibrated = story(check(0.5), check(0.4))
    assert "matches the observed one" in calibrated and "and so do its deciles (decile test p = 0.50)" in calibrated
    assert "drift" not in calibrated
    timid = story(check(0.5, p_value=0.003), None)
    assert "but its deciles do not (decile test p = 0.00)" in timid and "a calibration problem of the model" in timid
    unknown = story(check(11.5), None)
    assert "cannot be told apart" in unknown and "oracle" not in unknown
    off = story(check(11.5), check(0.4, p_value=0.001))
    assert "Even the oracle" in off and "p = 0.00" in off and "drift" not in off
    model_bug = story(check(11.5), check(0.4), training_rate=0.07)
    assert "a calibration problem of the model, not drift" in model_bug


# --------------------------------------------------------------------------------------------
# LIME
# --------------------------------------------------------------------------------------------
STABILITY = pd.DataFrame({"mean_jaccard": [0.9, 0.7], "min_jaccard": [0.8, 0.5], "top1_agreement": [1.0, 0.6]})


@pytest.mark.parametrize(("exact_of", "champion", "words"), [
    (explain.EXACT_OF_CHAMPION, "xgboost", "the champion's own, so they check LIME against the truth of this model"),
    (explain.EXACT_OF_CANDIDATE, "logistic_regression", "the xgboost candidate's, a different model"),
    (None, "logistic_regression", "there is no xgboost candidate: no exact contributions to compare"),
])
def test_lime_story_says_whose_exact_contributions_these_are(exact_of, champion, words):
    spearman = {explain.PERMUTATION_COLUMN: 0.83} | ({explain.EXACT_COLUMNS[exact_of]: 0.87} if exact_of else {})
    text = narrative.lime_story(spearman, exact_of, champion, STABILITY, top_k=5, seeds=5, explained=40,
                                fidelity=0.61, seconds=0.0123)
    assert words in text and "permutation importance 0.83" in text
    assert "Top-5 stability across 5 seeds on 2 of the 40 explained customers: mean Jaccard 0.80 (worst customer" \
           " 0.70)" in text
    assert "Surrogate R²: 0.61" in text and "about 12 ms" in text

"""The model report's computed paragraphs: each worded from facts that evaluate, attribution, promotion and explain
compute, so a sentence says only what the numbers of this run show (every branch is unit-tested).

What holds only for the simulated shop (the oracle, the personas, the true probabilities) is said only when the
truth is there, and says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from atelier.model import attribution, evaluate, explain, promotion, selection


def _names(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


def pruning_story(pruning: selection.Pruning, tolerance: float) -> str:
    """What permutation importance suggested dropping, what that did to validation AUC, and whether it was done."""
    if pruning.outcome == selection.TOO_LITTLE_DATA:
        return ("Nothing is pruned: pruning needs two training snapshots with buyers and non-buyers (one to fit, the "
                "last to validate), and there are not.")
    if pruning.outcome == selection.NOTHING_TO_DROP:
        return (f"Every feature's permutation importance reaches `prune_below`, so nothing is dropped (validation "
                f"ROC-AUC {pruning.auc_all:.4f}).")
    text = (f"Permutation importance suggests dropping {len(pruning.suggested)} feature(s): "
            f"{', '.join(f'`{feature}`' for feature in pruning.suggested)}. Validation ROC-AUC with all features: "
            f"{pruning.auc_all:.4f}; without them: {pruning.auc_pruned:.4f}. ")
    if pruning.outcome == selection.APPLIED:
        return text + "The pruned set is kept."
    return text + f"That costs more than `prune_tolerance` ({tolerance:g}), so every feature is kept."


def promotion_story(outcome: promotion.Outcome, test_cutoff: pd.Timestamp) -> str:
    """What the promotion rule compared, and whether the champion owes its place to the test month."""
    order = " → ".join(f"{version} {name}" for version, name in outcome.registered)
    text = f"The promotion rule compared this run's candidates in the order they were registered: **{order}**. "
    if not outcome.earlier:
        text += "The registry held no version from an earlier run, so no earlier champion took part. "
    elif outcome.earlier_champion is None:
        text += (f"The registry also holds {_names(outcome.earlier)} from an earlier run (the notebook ran outside "
                 "`dvc repro`), with no champion among them. ")
    else:
        text += (f"The registry also holds {_names(outcome.earlier)} from an earlier run (the notebook ran outside "
                 f"`dvc repro`), and the first candidate of this run was compared with their champion, "
                 f"{outcome.earlier_champion}. ")
    if len(outcome.cv_order) < 2:
        return text + f"The champion ({outcome.champion}) had no rival, so its headline AUC is not a best of several."
    text += (f"The champion ({outcome.champion}) is picked on the same out-of-time snapshot ({test_cutoff.date()}) "
             "that gives its headline AUC below, so that figure is the best of several tries on one month and a "
             "little optimistic. Cross-validation on the training months, which the choice did not use, ranks the "
             f"candidates {' > '.join(outcome.cv_order)}; out of time they rank {' > '.join(outcome.test_order)}: ")
    text += {promotion.SAME_ORDER: "the same order. ",
             promotion.SAME_BEST: "the same best, the others swap places. ",
             promotion.OTHER_BEST: "**they disagree on the best**. "}[outcome.agreement]
    cv_best = outcome.cv_order[0]
    return text + {
        promotion.CV_BEST: "The champion is cross-validation's best too, so the choice does not hinge on the test "
                           "month.",
        promotion.TEST_MONTH: f"Cross-validation would have picked **{cv_best}**: the champion owes its place to the "
                              "test month itself.",
        promotion.RULE: f"Cross-validation would have picked **{cv_best}**: the champion owes its place to the "
                        "promotion margin, the overfitting check and the order in which the candidates were "
                        "registered.",
    }[outcome.verdict]


def champion_story(name: str, version: str, evaluation: pd.DataFrame, subsets: pd.DataFrame,
                   oracle: dict[str, Any] | None, overlap: dict[str, bool]) -> str:
    """The champion's headline figures, how far it gets towards the oracle, and whether its lead is beyond noise.

    `subsets`: `evaluate.subset_aucs` (second column: the active customers); `overlap`: `evaluate.intervals_overlap`.
    """
    low, high = evaluation.at[name, "roc_auc_95ci"]
    auc = evaluation.at[name, "roc_auc"]
    text = (f"**Champion: {name} ({version})**, loaded back from the registry by its alias. Out-of-time ROC-AUC "
            f"**{auc:.3f}** (95 % CI {low:.3f} to {high:.3f}), PR-AUC {evaluation.at[name, 'pr_auc']:.3f}, "
            f"lift at the top 10 % {evaluation.at[name, 'lift_top10']:.1f}x. ")
    if oracle is not None:
        text += (f"The oracle reaches {oracle['roc_auc']:.3f}, so the champion gets **{auc / oracle['roc_auc']:.1%}** "
                 f"of the way. On active customers the AUCs are {subsets.at[name, subsets.columns[1]]:.3f} (champion) "
                 f"and {oracle['active_roc_auc']:.3f} (oracle). ")
    text += "The case study reports 0.85 for its random forest; here the random forest reaches " + (
        f"{evaluation.at['random_forest', 'roc_auc']:.3f}. " if "random_forest" in evaluation.index
        else "nothing: it was not a candidate. ")
    overlapping = [other for other, overlaps in overlap.items() if overlaps]
    separate = [other for other, overlaps in overlap.items() if not overlaps]
    if not overlap:
        return text + "There was no other candidate to compare it with."
    if not separate:
        return text + (f"The 95 % intervals of {_names(overlapping)} overlap the champion's: the promotion rule, not "
                       "a coin flip, decides, and a small edge is not a big one.")
    if not overlapping:
        return text + (f"No other candidate's 95 % interval overlaps the champion's ({_names(separate)} lie below "
                       "it): its lead is larger than the test month's sampling noise.")
    return text + (f"The 95 % intervals of {_names(overlapping)} overlap the champion's, so against "
                   f"{'it' if len(overlapping) == 1 else 'them'} the edge is small; those of {_names(separate)} do "
                   "not: that lead is beyond the test month's sampling noise.")


def _within(row: pd.Series) -> str:
    if np.isnan(row["model_auc"]) or np.isnan(row["oracle_auc"]):
        return "the group has no buyers (or no non-buyers), so there is no AUC within it"
    return f"within the group the champion reaches {row['model_auc']:.3f} against the oracle's {row['oracle_auc']:.3f}"


def _what_the_oracle_knows(tables: dict[str, pd.DataFrame], labels: attribution.GroupLabels,
                           rise: pd.DataFrame | None) -> str:
    history = tables["history"]
    if labels.short in history.index and history.at[labels.short, "share_of_customers"] > 0:
        ratio = attribution.over_size(history)[labels.short]
        if ratio >= attribution.OVER_SIZE:
            text = (f"Customers with a short history carry {ratio:.1f}x their share of the gap: for a customer seen "
                    "only a few times the features barely tell a keen buyer from a browser, while the oracle knows "
                    "each customer's hidden rates. ")
        else:
            text = (f"Customers with a short history carry {ratio:.1f}x their share of the gap, no more than their "
                    "size: thin histories are not where the oracle's edge lies. ")
    else:
        text = ""
    if rise is None or "persona" not in tables:
        return text
    overall = rise.at["all", "ratio"]
    rising = rise.drop(index="all")
    most = str(rising.index[0])
    top = str(attribution.over_size(tables["persona"]).index[0])
    if overall >= 1.1:
        change = f"{overall:.2f}x as high in the test window as in the training windows"
    elif overall <= 1 / 1.1:
        change = f"only {overall:.2f}x as high in the test window as in the training windows (it fell)"
    else:
        change = f"about as high in the test window as in the training windows ({overall:.2f}x)"
    moved = "rose most" if rising.at[most, "ratio"] > 1 else "fell least"
    text += (f"In this simulated shop the true chance of ordering is {change}; it {moved} for {most} "
             f"(x{rising.at[most, 'ratio']:.2f}). ")
    if most == top and rising.at[most, "ratio"] >= 1.1:
        text += ("It is also the persona carrying the most gap for its size: the oracle knows what the test window "
                 "holds for them, which no feature from the months before shows and a model fitted on those months "
                 "cannot foresee. Better features, or a model that knows the calendar, could still win there.")
    else:
        text += (f"The persona carrying the most gap for its size, {top}, saw x{rising.at[top, 'ratio']:.2f}, so a "
                 "change of the test window does not explain where the gap sits.")
    return text


def gap_story(tables: dict[str, pd.DataFrame], labels: attribution.GroupLabels, rise: pd.DataFrame | None) -> str:
    """Which customers carry the gap between the champion and the oracle, and what the oracle knows that they lack.

    `tables`: `attribution.gap_tables` (groupings "activity", "history" and, with the truth, "persona");
    `rise`: `attribution.probability_rise` by persona, or None.
    """
    activity, history = tables["activity"], tables["history"]
    gap = activity.attrs["gap"]
    if gap <= 0:
        return f"The champion is not behind the oracle on this snapshot (gap {gap:.4f}): there is no gap to attribute."
    text = f"The champion is {gap:.4f} AUC short of the oracle. "
    if labels.active in activity.index:
        row = activity.loc[labels.active]
        text += (f"**{row['share_of_gap']:.0%} of that gap sits with active customers** "
                 f"({row['share_of_customers']:.0%} of customers); {_within(row)}. ")
    if attribution.DORMANT in activity.index:
        row = activity.loc[attribution.DORMANT]
        text += f"Dormant customers, {row['share_of_customers']:.0%} of customers, carry {row['share_of_gap']:.0%}. "
    if labels.short in history.index:
        row = history.loc[labels.short]
        text += (f"Customers with a short history are {row['share_of_customers']:.0%} of customers and carry "
                 f"{row['share_of_gap']:.0%} of the gap; {_within(row)}. ")
    else:
        text += f"No test customer has a history shorter than {labels.short_history_days} days. "
    if "persona" in tables:
        personas = tables["persona"]
        top = attribution.over_size(personas).index[0]
        text += (f"By persona, **{top}** carries the most gap for its size: {personas.at[top, 'share_of_gap']:.0%} of "
                 f"the gap for {personas.at[top, 'share_of_customers']:.0%} of customers. ")
        widest = attribution.widest_gap_within(personas)
        if widest is not None:
            text += (f"Within a persona the oracle's edge is widest for {widest} (AUC "
                     f"{personas.at[widest, 'oracle_auc']:.3f} against {personas.at[widest, 'model_auc']:.3f}). ")
    knows = _what_the_oracle_knows(tables, labels, rise)
    return text + (f"\n\n**What the oracle knows and the features do not.** {knows}" if knows else "")


def calibration_story(champion: evaluate.CalibrationCheck, calibrated: evaluate.CalibrationCheck,
                      oracle: evaluate.CalibrationCheck | None, training_rate: float, brier: evaluate.Difference,
                      table: pd.DataFrame, deciles: pd.DataFrame, method: str) -> str:
    """Does calibration help, do the champion's probabilities match the outcomes, and if not: drift or a model bug?

    `brier`: the calibrated variant's Brier score minus the champion's (paired bootstrap); `table`:
    `evaluate.calibration_table` (the champion's row first, then the calibrated variant's).
    """
    text = (f"Mean predicted probability {champion.mean_predicted:.3f} (calibrated: {calibrated.mean_predicted:.3f}) "
            f"against an observed rate of {champion.observed_rate:.3f} in the test window (training months: "
            f"{training_rate:.3f}). ")
    scores = f"{table.iloc[0]['brier']:.5f} → {table.iloc[1]['brier']:.5f}"
    interval = f"95 % interval of the change {brier.low:+.5f} to {brier.high:+.5f}"
    text += {
        evaluate.LOWER: f"{method.capitalize()} calibration lowers the Brier score ({scores}; {interval}), so the "
                        "calibrated variant is the one to use for budgeting",
        evaluate.HIGHER: f"{method.capitalize()} calibration raises the Brier score ({scores}; {interval}), so the "
                         "champion is used as it is",
        evaluate.TIE: f"{method.capitalize()} calibration changes the Brier score by no more than noise ({scores}; "
                      f"{interval}, which covers 0), so the champion is used as it is",
    }[brier.verdict]
    text += (f"; the calibrated variant's ROC-AUC is {table.iloc[1]['roc_auc']:.3f} against the champion's "
             f"{table.iloc[0]['roc_auc']:.3f}. In the top decile the champion predicts "
             f"{deciles['mean_score'].iloc[0]:.2f} on average and {deciles['buyer_rate'].iloc[0]:.2f} of those "
             "customers buy. ")
    verdict = evaluate.drift_verdict(champion, oracle, training_rate)
    miss = f"{champion.direction} by {abs(champion.z):.1f} standard deviations of the buyer count"
    rates = f"{training_rate:.3f} in the training months, {champion.observed_rate:.3f} in the test window"
    moved = f"the buyer rate moved from {training_rate:.3f} in the training months to {champion.observed_rate:.3f}"
    deciles_fit = f"decile test p = {champion.p_value:.2f}"
    if verdict == evaluate.CALIBRATED:
        return text + (f"The champion's expected number of buyers matches the observed one (within "
                       f"{evaluate.Z_LIMIT:g} standard deviations) and so do its deciles ({deciles_fit}): its "
                       "probabilities can be used as they are.")
    if verdict == evaluate.OFF_DIAGONAL:
        return text + (f"The champion's expected number of buyers matches the observed one (within "
                       f"{evaluate.Z_LIMIT:g} standard deviations), but its deciles do not ({deciles_fit}): right "
                       "on average, wrong by score level, a calibration problem of the model rather than a shift "
                       "of the buyer rate.")
    if verdict == evaluate.UNKNOWN:
        return text + (f"The champion {miss}, and {moved}. Without a true probability (this is not simulated data) "
                       "a shift of the test window and a calibration problem of the model cannot be told apart.")
    assert oracle is not None
    oracle_fit = (f"its buyer count is {oracle.z:+.1f} standard deviations from what it expects, decile test "
                  f"p = {oracle.p_value:.2f}")
    if verdict == evaluate.ORACLE_OFF:
        return text + (f"Even the oracle, the simulator's true probability, is off the diagonal here ({oracle_fit}): "
                       "the test window's outcomes are not what the truth expects, so the champion's calibration "
                       "cannot be judged against it.")
    if verdict == evaluate.DRIFT:
        fewer = "fewer" if champion.direction == evaluate.UNDER else "more"
        return text + (f"The oracle, which knows what the test window holds, lies on the diagonal ({oracle_fit}); the "
                       f"champion {miss}, in the direction the buyer rate moved ({rates}): the models learned from "
                       f"months with {fewer} buyers. That is drift, not a calibration bug, and it is what the "
                       "real-time phase watches for and retrains on.")
    return text + (f"The oracle lies on the diagonal ({oracle_fit}), but the champion {miss} although {moved}, "
                   "which does not explain a miss that way: a calibration problem of the model, not drift.")


def lime_story(spearman: dict[str, float], exact_of: str | None, champion: str, stability: pd.DataFrame,
               top_k: int, seeds: int, explained: int, fidelity: float, seconds: float) -> str:
    """How far LIME agrees with the other importances, whose exact contributions those are, and its stability."""
    text = ("Rank agreement with LIME on the champion (Spearman): "
            + ", ".join(f"{method} {rho:.2f}" for method, rho in spearman.items()) + ". ")
    text += {
        explain.EXACT_OF_CHAMPION: "The exact contributions are the champion's own, so they check LIME against the "
                                   "truth of this model. ",
        explain.EXACT_OF_CANDIDATE: f"The champion is {champion}, which has no exact contributions here: the last "
                                    "column is the xgboost candidate's, a different model fitted on the same data, so "
                                    "agreement with it says whether the two models lean on the same features, not "
                                    "whether LIME is faithful to the champion. ",
        None: f"The champion is {champion} and there is no xgboost candidate: no exact contributions to compare. ",
    }[exact_of]
    return text + (f"Top-{top_k} stability across {seeds} seeds on {len(stability)} of the {explained} explained "
                   f"customers: mean Jaccard {stability['mean_jaccard'].mean():.2f} (worst customer "
                   f"{stability['mean_jaccard'].min():.2f}). Surrogate R²: {fidelity:.2f}. One explanation takes "
                   f"about {seconds * 1000:.0f} ms.")

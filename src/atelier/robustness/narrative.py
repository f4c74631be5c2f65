"""The sentences of the robustness report, each worded from the facts its section computed.

The facts come from the checks' own modules (`fairness.calibration_reading`, `retraining.outcome`,
`retraining.drift_reading`, `trust.review_reading`, `rollback.drill_reading`, ...); here they only
choose words, so a sentence never says more than its facts. Each function returns markdown; the
notebook displays it and gathers the answers at its end.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from atelier.robustness import group_uplift, retraining, rollback, trust

#: Where a ratio's bootstrap interval lies against the threshold (`fairness.interval_verdict`), in words.
INTERVAL_WORDS = {
    "below": "the whole interval is below the threshold",
    "straddles": "the interval reaches the threshold: could be noise",
    "above": "the whole interval is above the threshold",
}
OUTCOME_WORDS = {
    "no baseline": "With no never-retrained schedule (`robustness.retraining.policies`) there is no gain to measure.",
    "pays": "Retraining pays here: models trained on recent months rank consistently better.",
    "hurts": "Never retraining wins here: a retrained schedule ranks consistently worse than the frozen model.",
    "unclear": "The differences are not small, but no interval clears 0: the months disagree.",
}
DRIFT_WORDS = {
    "negligible": "neither who the customers are nor how well they can be ranked moved much.",
    "negligible despite drift": "drift moved who the customers are far more than how well they can be ranked.",
    "recovered": "drift cost it ranking quality, and retraining wins it back consistently.",
    "frozen better": "the model retrained every month ranked consistently worse than the frozen one.",
    "noise": "the lag cannot be told apart from month-to-month noise.",
}
#: The agreement columns of a review (`trust.AGREEMENT`), in words.
AGREEMENT_WORDS = {
    "sign_agreement": "sign agreement",
    "rank_correlation": "rank correlation",
    "top_k_overlap_with_exact": "top-k overlap",
    "seed_stability": "seed stability",
}
FIT_WORDS = {
    "which features": "the fit check warns about *which features*, not about direction.",
    "direction": "the fit check warns about direction, not about which features.",
    "both": "the fit check warns about both which features and their direction.",
    "neither": "the fit check says little about the other checks.",
}
DRILL_WORDS = {
    "caught before labels": "shifted the scores: caught on day {detected_day} by {detection_rule}, "
    "before any live day's labels could mature ({horizon} days)",
    "caught by AUC": "was caught on day {detected_day} by {detection_rule}, once labels had matured",
    "missed, mild": "hurt so little that neither check noticed: the other features carry much the same signal",
    "missed, harmful": "was **not caught** although it ranks worse: the guard is too loose for this fault",
}


def _names(items: list[str]) -> str:
    return ", ".join(items) or "none"


def fairness_answer(disparity: pd.DataFrame, calibration: dict[str, Any]) -> str:
    """The flagged comparisons of `fairness.group_disparities` (with where each interval lies) and what the
    overall calibration says (`fairness.calibration_reading`)."""
    flagged = disparity[disparity["below_threshold"].astype(bool)]
    lines = [
        f"\n- **{row.attribute} / {row.metric.replace('_', ' ')}**: ratio {row.ratio:.2f}"
        + (f" (95 % CI {row.ci_low:.2f} to {row.ci_high:.2f}: {INTERVAL_WORDS[row.interval]})" if row.interval else "")
        + f", difference {row.difference:.3f} ({row.min_group} vs {row.max_group}; rule: {row.rule})"
        for row in flagged.itertuples()
    ]
    return (
        f"**{len(flagged)} of {len(disparity)}** attribute × metric comparisons are flagged"
        + ("".join(lines) or ".")
        + "\n\n"
        + calibration_sentence(calibration)
    )


def calibration_sentence(reading: dict[str, Any]) -> str:
    """Overall mean score against the purchase rate, whether every group is off alike, and whether a move of the
    purchase rate since the training snapshots explains it."""
    text = (
        f"Overall the champion's mean score is {reading['mean_score']:.3f} against a purchase rate of "
        f"{reading['base_rate']:.3f} (calibration ratio {reading['ratio']:.2f}): "
    )
    off = {"under": "under-predicted", "over": "over-predicted"}.get(reading["direction"])
    if off is None:
        return text + (
            "the scores are about as high as the purchase rate."
            if reading["direction"] == "calibrated"
            else "the calibration is undefined (no buyer)."
        )
    groups = (
        f"every group is {off}" + (" alike" if reading["alike"] else "")
        if reading["every_group"]
        else f"{reading['same_direction']} of {reading['groups']} groups are {off}"
    )
    ranges = f" (group ratios {reading['group_min']:.2f} to {reading['group_max']:.2f})" if reading["groups"] else ""
    moved = {"rose": "rise", "fell": "fall"}.get(reading["rate_shift"], "move")
    cause = (
        f", the trace of the purchase rate's {moved} from {reading['training_rate']:.3f} in the training snapshots to "
        f"{reading['base_rate']:.3f} in the test month"
        if reading["explained"]
        else ""
    )
    return (
        text + groups + ranges + cause + ". Targeting by rank is unaffected, but the scores should not be read as "
        "probabilities."
    )


def mitigation_sentence(cost: dict[str, Any] | None) -> str:
    """What equal selection costs the campaign (`fairness.largest_cost`)."""
    if cost is None:
        return (
            "No attribute to equalize: the only grouping left is device, a behaviour rather than a protected attribute."
        )
    lead = (
        "The largest cost in precision is for"
        if cost["costs_precision"]
        else "No attribute loses precision; the largest change is for"
    )
    return (
        f"{lead} **{cost['attribute']}**: precision of the campaign {cost['precision_single']:.3f} → "
        f"{cost['precision_equal']:.3f}, share of all buyers reached {cost['recall_single']:.3f} → "
        f"{cost['recall_equal']:.3f}."
    )


def uplift_sentence(reading: dict[str, Any]) -> str:
    """How many groups benefit, include 0 or are harmed (`group_uplift.uplift_reading`)."""
    harmed = reading["harmed"]
    return (
        f"Of {reading['estimated']} groups with an estimate, {len(reading['benefit'])} benefit clearly "
        f"(interval above 0), {len(reading['covering'])} have an interval that includes 0 "
        f"({_names(reading['covering'])}), and {len(harmed)} are harmed "
        f"(interval below 0{': ' + ', '.join(harmed) if harmed else ''})."
        + (
            f" Visitors missing from the test snapshot (new sign-ups) appear once, as '{group_uplift.UNMATCHED}'."
            if reading["unmatched"]
            else ""
        )
    )


def pipeline_flags(flags: dict[str, tuple[int, list[str]]], missing: list[str]) -> str:
    """One line per stage of `datachecks.flags_by_stage`, and the reports not found."""
    lines = [
        f"- **{stage}**: " + ("; ".join(found) or f"nothing flagged in {checks} checks")
        for stage, (checks, found) in flags.items()
    ]
    if missing:
        lines.append(f"\nNot found (the stage did not run here, or the table was not given): {', '.join(missing)}.")
    return "\n".join(lines) or "No stage's own report was found to gather."


def data_checks_answer(checks: dict[str, Any], flags: dict[str, tuple[int, list[str]]]) -> str:
    """The bad-data demos (`stage.data_checks_metrics`) and the flags of the pipeline's own checks."""
    stream = (
        ""
        if checks["stream_balanced"] is None
        else f"; in the stream demo the books {'balance' if checks['stream_balanced'] else '**do not balance**'}"
    )
    found = sum(len(items) for _, items in flags.values())
    return (
        f"Injected **{checks['injected_rows']}** bad rows: **{checks['missed']} missed**, **{checks['false_alarms']}** "
        f"untouched rows quarantined without a cause, **{checks['collateral_rows']}** quarantined with the rows they "
        f"belong to; {checks['schema_stopped']} of {checks['schema_scenarios']} shape problems stopped the stage, "
        f"{checks['schema_explained']} with a message naming file, column and fix{stream}. "
        + (
            f"The pipeline's own checks raised {found} flags on this run (by stage: "
            + ", ".join(f"{stage} {len(items)}" for stage, (_, items) in flags.items())
            + "; a record that two sources count, such as a dead letter also in the replay's books, counts twice)."
            if flags
            else "No stage's own report was found to gather."
        )
    )


def retraining_answer(schedule: dict[str, Any], drift: dict[str, Any]) -> str:
    """What retraining buys against never retraining (`stage.retraining_metrics`), its verdict
    (`retraining.outcome`), and which schedules lead, a tie named as one (`retraining.best_policies`)."""
    gains = "; ".join(
        f"**{policy}** {row['mean_difference']:+.4f} AUC (95 % CI {row['ci_low']:+.4f} to {row['ci_high']:+.4f}, "
        f"better in {row['better_months']} of {row['months']} months)"
        for policy, row in schedule["against_never"].items()
    )
    outcome, best = schedule["outcome"], schedule["best_policies"]
    if outcome == "small":
        verdict = f"The gains are small (under {retraining.SMALL_AUC} AUC), so the frozen model's ranking holds" + (
            ": *what* predicts a purchase stayed while *who* the customers are moved." if drift["drifted"] else "."
        )
    else:
        verdict = OUTCOME_WORDS[outcome]
    fits = ", ".join(f"{policy} {schedule['policies'][policy]['fits']}" for policy in best)
    if outcome == "no baseline":
        leader = f" Highest mean AUC: {' and '.join(f'**{policy}**' for policy in best)}." if best else ""
    elif not best:
        leader = " No schedule beats never retraining consistently."
    elif len(best) == 1:
        leader = (
            f" Best with an interval above 0: **{best[0]}**; judge whether a gain that size is worth its fits ({fits})."
        )
    else:
        leader = (
            f" {' and '.join(f'**{policy}**' for policy in best)} tie for best (within {schedule['tie_auc']} AUC of "
            "each other), each with an "
            f"interval above 0; judge whether a gain that size is worth its fits ({fits})."
        )
    return (
        (f"Over {schedule['months']} months, against never retraining: {gains}. " if gains else "") + verdict + leader
    )


def drift_answer(effect: dict[str, Any] | None, drift: dict[str, Any]) -> str:
    """What drift did to the model that is never retrained (`retraining.drift_effect`, `retraining.drift_reading`)."""
    if not effect:
        return "Not measured: the retraining simulation has no 'never' schedule (`robustness.retraining.policies`)."
    score = f"; score PSI {effect['score_psi_last']:.2f}" if pd.notna(effect["score_psi_last"]) else ""
    text = (
        f"The model trained once on {effect['trained_on']} and never retrained faced monitored PSI (against its "
        f"training data) from {effect['psi_first']:.2f} ({effect['first_cutoff']}) to {effect['psi_last']:.2f} "
        f"({effect['last_cutoff']}{score}), at most {effect['psi_max']:.2f} on `{effect['psi_max_column']}` "
        f"({effect['psi_max_cutoff']}). Its out-of-time AUC ran from {effect['auc_first']:.3f} to "
        f"{effect['auc_last']:.3f} over {effect['months']} months, worst {effect['auc_min']:.3f} on "
        f"{effect['auc_min_cutoff']}"
        + (
            " (its first month, when every schedule uses the same model: a harder month, not an older model)"
            if drift["worst_is_first"]
            else ""
        )
        + "."
    )
    if effect["lag_mean"] is None:
        return text
    spearman = (
        f" (Spearman of the lag with the month's PSI: {effect['lag_psi_spearman']:+.2f})"
        if effect["lag_psi_spearman"] is not None
        else ""
    )
    return (
        text + f" Against a model retrained every month it lagged {effect['lag_mean']:+.4f} AUC on average, at most "
        f"{effect['lag_max']:+.4f} on {effect['lag_max_cutoff']}{spearman}: " + DRIFT_WORDS[drift["reading"]]
    )


def trust_answer(
    result: trust.ChampionReview, reading: dict[str, Any], summary: dict[str, Any], thresholds: trust.Thresholds
) -> str:
    """How far LIME's explanations of the champion can be trusted (`trust.review_reading`, `trust.review_summary`)."""
    weakest, rates, k, features = reading["weakest"], result.check_rates, result.top_k, result.features
    ceiling, bar = result.ceiling, thresholds.min_lime_score
    cause = (
        f"keeping only the top {k} costs almost nothing ({reading['fit_gap']:+.2f}), so what a linear story misses is "
        "the model's own shape (the steps and interactions of a tree ensemble)"
        if reading["fit_cause"] == "model shape"
        else f"keeping only the top {k} costs {reading['fit_gap']:.2f} of fit, so more features (`model.lime_top_k`) "
        "would help"
    )
    reach = (
        f"no customer's unrestricted surrogate reaches the bar ({bar:g}), so no explanation of this model can be "
        "'trusted'"
        if reading["fit_reachable"] == 0
        else f"{reading['fit_reachable']:.0%} of the customers' unrestricted surrogates reach the bar ({bar:g})"
    )
    chance = (
        "below the top-k bar"
        if reading["chance_below_bar"]
        else "at or above the top-k bar, so with this few features that check cannot tell"
    )
    adverbs = {"more": "more", "less": "less", "hardly": "no more"}
    associations = ", ".join(
        f"{adverbs[word]} {AGREEMENT_WORDS.get(column, column)} ({rho:+.2f})"
        for column, (rho, word) in reading["with_fit"].items()
    )
    return (
        f"{summary['verdict_shares']['trust']:.0%} of the explanations pass every check; the **{weakest}** fails most "
        f"(passed by {rates.at[weakest, 'pass_rate']:.0%}, bar {rates.at[weakest, 'threshold']:g}). LIME's surrogate "
        f"explains a median {summary['median_lime_score']:.0%} of the model's variation around a customer, and "
        f"{ceiling.median():.0%} (at most {ceiling.max():.0%}) with all {features} features: {cause}; {reach}. "
        f"A random pick of {k} of the {features} features would overlap the exact top {k} at {result.chance:.2f}, "
        f"{chance}. Across customers a better fit goes with {associations} (Spearman; a size under "
        f"{reading['chance_spearman']:.2f} is chance): " + FIT_WORDS[reading["fit_tells"]]
    )


def correlated_sentence(pairs: int, threshold: float) -> str:
    """How many feature pairs can split credit between them (`trust.correlated_pairs`)."""
    if not pairs:
        return f"No feature pair is correlated at |ρ| ≥ {threshold:g}."
    return (
        f"{pairs} feature pair{'s are' if pairs > 1 else ' is'} correlated at |ρ| ≥ {threshold:g}: credit can move "
        "between them without the model changing, so never read one of them alone."
    )


def rollback_answer(drills: dict[str, dict[str, Any]], horizon_days: int) -> str:
    """Per drill (`stage.run_drills`): the bad model against the original, what caught it (`rollback.drill_reading`),
    the rollback, and when the AUC rule would have fired in hindsight."""
    if not drills:
        return "No drill on this data: the drill's daily visitors come from the events table."
    lines = []
    for kind, drill in drills.items():
        summary = drill["summary"]
        shown = DRILL_WORDS[rollback.drill_reading(summary, horizon_days)].format(horizon=horizon_days, **summary)
        restored = (
            f"; rolled back to **{summary['rolled_back_to']}**, which scores as the original bit for bit: "
            f"{summary['restored_scores_identical']}"
            if summary["rollbacks"]
            else ""
        )
        hindsight = (
            f"the AUC rule would have fired on {summary['auc_rule_earliest_bad']} at the earliest"
            if summary.get("auc_rule_earliest_bad")
            else "the AUC rule would not have fired, even with every label known"
        )
        lines.append(
            f"\n- **{kind}** (AUC {summary['auc_bad']:.3f} against the original's {summary['auc_original']:.3f}) "
            f"{shown}{restored}. In hindsight {hindsight}."
        )
    return "".join(lines)

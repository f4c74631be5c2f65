"""The real-time report's findings as sentences, computed from the numbers (every branch is tested)."""

from __future__ import annotations

from typing import Any

from atelier.model.evaluate import HIGHER, LOWER, Difference
from atelier.replay import abtest
from atelier.replay.monitor import DriftRule

#: How an interval reads against 0, by `abtest.covers_zero`.
COVERS_ZERO = {True: "covering 0", False: "excluding 0", None: "undefined"}
#: How the null run's interval reads (`null_sentence`), by `abtest.covers_zero`.
NULL_WORDS = {True: "covering 0, as it must when nothing works", None: "undefined",
              False: "**excluding 0 though nothing works**: a false alarm or bias"}
#: Whether a day lies in Black Friday week (`drift.summary`).
WEEK = {True: "inside", False: "outside"}


def ab_sentence(conversion: dict[str, float], strength: float) -> str:
    """The A/B test's conversion result (`abtest.measure(...)["conversion"]`) at the assumed response strength, and
    the sessions per arm a real test would need to detect it and to detect the case study's +15 %."""
    sizes = {key: f"{count:,}" if count else None for key, count in abtest.sample_sizes(conversion).items()}
    return (
        f"**Conversion {conversion['control']:.2%} (control) vs {conversion['treatment']:.2%} (treatment): "
        f"{conversion['relative_uplift']:+.1%}, 95 % CI {conversion['ci_low']:+.1%} to {conversion['ci_high']:+.1%}, "
        f"{COVERS_ZERO[abtest.covers_zero(conversion)]}** at strength {strength:g}. Sessions per arm a real test "
        f"needs to detect it: {sizes['sessions_needed_per_arm'] or 'none (no positive uplift)'}; to detect the case "
        f"study's +15 %: {sizes['sessions_needed_for_15_percent'] or 'more than this control rate allows'}."
    )


def null_sentence(null: dict[str, Any]) -> str:
    """What the strength-0 run (`sensitivity.null_check`) says: its uplift and interval, which must cover 0."""
    if not null["run"]:
        return "*No strength-0 run: the test is not checked against a known null.*"
    return (f"At strength 0: {null['relative_uplift']:+.1%} (CI {null['ci_low']:+.1%} to {null['ci_high']:+.1%}), "
            f"{NULL_WORDS[null['covers_zero']]}.")


def learned_vs_rule_sentence(comparison: dict[str, Any], strength: float) -> str:
    """What `sensitivity.learned_vs_rule` found at the assumed strength: the learned lists convert more or less than
    the rule's pages when the whole interval lies above or below 0, neither when it covers 0 (or is undefined)."""
    if comparison["relative_difference"] is None:
        why = ("no treatment visit is in both replays" if not comparison["sessions"] else
               f"none of the {comparison['sessions']:,} paired treatment visits converted on the rule's pages")
        return f"At the assumed strength {strength:g}, {why}: the learned lists cannot be compared with the rule."
    side = Difference(comparison["relative_difference"], comparison["ci_low"], comparison["ci_high"]).verdict
    words = {HIGHER: "more", LOWER: "less"}.get(side, "neither more nor less (within the interval)")
    return (f"At the assumed strength {strength:g}, treatment visits shown the learned lists converted "
            f"{comparison['relative_difference']:+.1%} relative to the same visits shown the rule's pages (95 % "
            f"interval {comparison['ci_low']:+.1%} to {comparison['ci_high']:+.1%}, {comparison['sessions']:,} "
            f"paired sessions): the learned lists convert {words} in the simulated shop.")


def timing_sentence(timing: dict[str, Any], micro_batch_events: int, window_minutes: float) -> str:
    """`speed.measure`'s figures: micro-batch throughput, a window's batch cost, per-event latency against the
    target."""
    throughput, batch, target = timing["throughput"], timing["batch"], timing["target"]
    met = {True: "met", False: "missed", None: "not measured"}[target["met"]]
    return (
        f"Micro-batch throughput (the first {throughput['records']:,} of {throughput['recorded']:,} recorded records,"
        f" in batches of {micro_batch_events:,}, no LIME): **{throughput['records_per_second']:,.0f} records/s** on "
        f"one core. A closed-loop window holds {window_minutes:g} minutes of traffic: its batch costs p50 "
        f"{batch['p50']:.1f} ms. Per event, from a session's first event arriving to its decision: p50 "
        f"{target['p50']:.2f} ms, p99 **{target['p99']:.2f} ms**; the {target['target_ms']:g} ms target is **{met}**."
    )


def spark_sentence(on_spark: dict[str, Any], master: str) -> str:
    """The recorded stream on Spark (`stage.spark_stream`): throughput, latency, and whether its books and decisions
    match the embedded engine's."""
    same = "identical to" if on_spark["books"] == on_spark["embedded_books"] else "**different from**"
    return (
        f"Spark ({master}, session start {on_spark['session_seconds']:.1f} s): {on_spark['books'].received:,} records "
        f"in {on_spark['batches']} micro-batches, {on_spark['records_per_second']:,.0f} records/s, micro-batch "
        f"latency p50 {on_spark['p50_ms']:,.0f} ms, p99 {on_spark['p99_ms']:,.0f} ms. Books {same} the embedded "
        f"engine's; {on_spark['decisions']:,} decisions (embedded {on_spark['embedded_decisions']:,})."
    )


def drift_sentence(facts: dict[str, Any], rule: DriftRule) -> str:
    """`drift.summary` under `rule`: whether and when the rule fires, and the largest shift, each placed against
    Black Friday week."""
    trigger, largest = facts["trigger"], facts["largest"]
    fired = (f"**fires on {trigger}** ({', '.join(facts['fired_on'])}), "
             f"{WEEK[facts['trigger_in_black_friday_week']]} Black Friday week; " if trigger else "never fires; ")
    return (f"The rule (PSI above {rule.threshold:g} on {rule.consecutive} days running) {fired}the largest shift: "
            f"{largest['column']} (PSI {largest['psi']:.2f}) on {largest['day']}, "
            f"{WEEK[largest['in_black_friday_week']]} Black Friday week.")


def retraining_sentence(outcome: dict[str, Any], facts: dict[str, Any] | None) -> str:
    """A drift-triggered retraining (`stage.retrain`, read by `retraining.verdict` as `facts`), or why it did not
    run: when, on what, whether its labels came in time to serve a winner, the AUCs and the promotion."""
    if facts is None:
        return f"*Retraining not run: {outcome['reason']}.*"
    timely = (f"{facts['days_left']} day(s) before the replay's last day. " if facts["days_left"] > 0
              else "too late to serve a winner within the replay. ")
    return (
        f"Retrained as of {outcome['retrain_day']} on the snapshots of {', '.join(outcome['train_cutoffs'])}. Labels "
        f"to compare on are complete on {outcome['evaluation_labels_complete_by']}, {timely}AUC "
        f"{outcome['champion']['auc']:.4f} (champion) vs {outcome['challenger']['auc']:.4f} (challenger), "
        f"{facts['difference']:+.4f} for a margin of {outcome['min_delta']:g}: promoted "
        f"**{['no', 'yes'][facts['promoted']]}**."
    )

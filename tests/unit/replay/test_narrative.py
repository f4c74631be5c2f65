"""The real-time report's sentences (atelier.replay.narrative): every branch, including those the default shop
never reaches."""

from __future__ import annotations

import pandas as pd
import pytest

from atelier.replay import narrative, sensitivity
from atelier.replay.engine import Counters
from atelier.replay.monitor import DriftRule


def _conversion(control: float, treatment: float, low: float, high: float) -> dict[str, float]:
    return {"control": control, "treatment": treatment, "relative_uplift": treatment / control - 1, "ci_low": low,
            "ci_high": high}


def test_the_ab_sentence_gives_the_uplift_its_interval_and_the_sessions_a_real_test_needs():
    text = narrative.ab_sentence(_conversion(0.028, 0.0344, 0.137, 0.332), 0.5)
    assert text.startswith("**Conversion 2.80% (control) vs 3.44% (treatment): +22.9%, 95 % CI +13.7% to +33.2%, "
                           "excluding 0** at strength 0.5.")
    assert "needs to detect it: " in text and "none (no positive uplift)" not in text
    assert "more than this control rate allows" not in text


def test_the_ab_sentence_without_a_positive_uplift_or_an_interval():
    text = narrative.ab_sentence(_conversion(0.03, 0.029, float("nan"), float("nan")), 0.0)
    assert "undefined** at strength 0." in text and "needs to detect it: none (no positive uplift);" in text


def test_the_ab_sentence_when_the_control_rate_leaves_no_room_for_the_case_study_s_uplift():
    text = narrative.ab_sentence(_conversion(0.9, 0.95, -0.02, 0.1), 1.0)
    assert "covering 0** at strength 1." in text
    assert text.endswith("to detect the case study's +15 %: more than this control rate allows.")


def _timing(met: bool | None) -> dict:
    return {"throughput": {"records": 200_000, "recorded": 581_584, "records_per_second": 107_494.2},
            "batch": {"p50": 9.61}, "target": {"p50": 1.049, "p99": 3.2, "target_ms": 10.0, "met": met}}


@pytest.mark.parametrize(("met", "word"), [(True, "met"), (False, "missed"), (None, "not measured")])
def test_the_timing_sentence_says_whether_the_latency_target_is_met(met, word):
    text = narrative.timing_sentence(_timing(met), 10_000, 60)
    assert text.startswith("Micro-batch throughput (the first 200,000 of 581,584 recorded records, in batches of "
                           "10,000, no LIME): **107,494 records/s** on one core.")
    assert "holds 60 minutes of traffic: its batch costs p50 9.6 ms" in text
    assert text.endswith(f"p50 1.05 ms, p99 **3.20 ms**; the 10 ms target is **{word}**.")


@pytest.mark.parametrize(("embedded", "words"), [(5, "identical to"), (4, "**different from**")])
def test_the_spark_sentence_compares_the_books_with_the_embedded_engine(embedded, words):
    books = Counters(received=5, applied=5)
    on_spark = {"session_seconds": 6.04, "books": books, "embedded_books": Counters(received=5, applied=embedded),
                "batches": 3, "records_per_second": 1234.5, "p50_ms": 850.2, "p99_ms": 2100.7, "decisions": 1200,
                "embedded_decisions": 1200}
    text = narrative.spark_sentence(on_spark, "local[2]")
    assert text.startswith("Spark (local[2], session start 6.0 s): 5 records in 3 micro-batches, 1,234 records/s")
    assert f"Books {words} the embedded engine's; 1,200 decisions (embedded 1,200)." in text


def _drift(trigger: str | None) -> dict:
    return {"trigger": trigger, "fired_on": ["sessions_90d"] if trigger else [],
            "trigger_in_black_friday_week": None if trigger is None else True,
            "largest": {"column": "engagement_score", "psi": 0.4567, "day": "2025-12-20",
                        "in_black_friday_week": False}}


def test_the_drift_sentence_when_the_rule_fires_and_when_it_never_does():
    rule = DriftRule(threshold=0.2, consecutive=2, columns=("sessions_90d",))
    fired = narrative.drift_sentence(_drift("2025-11-29"), rule)
    assert fired == ("The rule (PSI above 0.2 on 2 days running) **fires on 2025-11-29** (sessions_90d), inside "
                     "Black Friday week; the largest shift: engagement_score (PSI 0.46) on 2025-12-20, outside Black "
                     "Friday week.")
    assert "running) never fires; the largest shift" in narrative.drift_sentence(_drift(None), rule)


def _outcome() -> dict:
    return {"retrain_day": "2025-11-30", "train_cutoffs": ["2025-09-01", "2025-10-01"],
            "evaluation_labels_complete_by": "2025-12-20", "champion": {"auc": 0.91}, "challenger": {"auc": 0.915},
            "min_delta": 0.002, "promoted": True}


def test_the_retraining_sentence_says_why_it_did_not_run():
    assert narrative.retraining_sentence({"reason": "the drift rule never fired"}, None) == (
        "*Retraining not run: the drift rule never fired.*")


@pytest.mark.parametrize(("days_left", "timely"), [(11, "11 day(s) before the replay's last day. "),
                                                   (0, "too late to serve a winner within the replay. ")])
def test_the_retraining_sentence_says_whether_a_winner_could_still_be_served(days_left, timely):
    facts = {"difference": 0.005, "promoted": days_left > 0, "days_left": days_left}
    text = narrative.retraining_sentence(_outcome(), facts)
    assert text.startswith("Retrained as of 2025-11-30 on the snapshots of 2025-09-01, 2025-10-01. Labels to compare "
                           f"on are complete on 2025-12-20, {timely}AUC 0.9100 (champion) vs 0.9150 (challenger)")
    assert text.endswith(f"+0.0050 for a margin of 0.002: promoted **{'yes' if days_left > 0 else 'no'}**.")


@pytest.mark.parametrize(("low", "high", "covers", "words"), [
    (-0.17, 0.26, True, "covering 0, as it must when nothing works"),
    (0.02, 0.30, False, "**excluding 0 though nothing works**: a false alarm or bias"),
    (float("nan"), float("nan"), None, "undefined"),
])
def test_the_null_sentence_reads_the_strength_zero_interval(low, high, covers, words):
    null = {"run": True, "relative_uplift": 0.024, "ci_low": low, "ci_high": high, "covers_zero": covers}
    assert narrative.null_sentence(null).endswith(f"{words}.")
    assert narrative.null_sentence(null).startswith("At strength 0: +2.4% (CI ")


def test_without_a_strength_zero_run_the_null_sentence_says_the_test_is_unchecked():
    null = sensitivity.null_check(pd.DataFrame({"strength": [0.5], "relative_uplift": [0.1], "ci_low": [0.0],
                                                "ci_high": [0.2]}))
    assert narrative.null_sentence(null) == "*No strength-0 run: the test is not checked against a known null.*"


@pytest.mark.parametrize(("low", "high", "words"), [
    (0.05, 0.18, "more"), (-0.2, -0.01, "less"), (-0.05, 0.16, "neither more nor less (within the interval)"),
    (float("nan"), float("nan"), "neither more nor less (within the interval)"),
])
def test_the_learned_vs_rule_sentence_follows_the_interval(low, high, words):
    comparison = {"sessions": 7069, "relative_difference": 0.115, "ci_low": low, "ci_high": high}
    text = narrative.learned_vs_rule_sentence(comparison, 0.5)
    assert text.startswith("At the assumed strength 0.5, treatment visits shown the learned lists converted +11.5%")
    assert "7,069 paired sessions" in text
    assert text.endswith(f"the learned lists convert {words} in the simulated shop.")


@pytest.mark.parametrize(("sessions", "why"), [
    (0, "no treatment visit is in both replays"),
    (40, "none of the 40 paired treatment visits converted on the rule's pages"),
])
def test_the_learned_vs_rule_sentence_says_why_there_is_no_comparison(sessions, why):
    comparison = {"sessions": sessions, "relative_difference": None, "ci_low": None, "ci_high": None}
    assert narrative.learned_vs_rule_sentence(comparison, 1.0) == (
        f"At the assumed strength 1, {why}: the learned lists cannot be compared with the rule.")

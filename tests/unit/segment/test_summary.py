"""The report's closing answers, worded from the metrics: every verdict on both sides."""

from __future__ import annotations

import copy

from atelier.segment import naming, summary

METRICS = {
    "k": 3,
    "model_version": "seg-0123456789ab",
    "sizes": {"High-Value Loyal": 20, "Lapsing": 50, "Shorter tenure": 30},
    "quality": {"silhouette": 0.3466, "davies_bouldin": 1.152},
    "stability": {"ari_mean": 0.99, "ari_min": 0.98,
                  "jaccard_mean": {"High-Value Loyal": 0.99, "Lapsing": 0.97, "Shorter tenure": 0.9}},
    "truth": {"ari": 0.128, "nmi": 0.183},
}
MEANINGS = {"High-Value Loyal": "spends and orders far above average", "Lapsing": "not seen for a long time",
            "Shorter tenure": naming.FALLBACK_MEANING}


def test_answers_on_simulated_data():
    answers = summary.answers(METRICS, MEANINGS)
    assert list(answers.index) == ["How many segments?", "How good?", "How stable?", "How close to the truth?",
                                   "What is each one?", "Where are they stored?"]
    assert answers["How many segments?"] == "3, 100 customers: Lapsing 50%; Shorter tenure 30%; High-Value Loyal 20%"
    assert answers["How good?"] == ("Silhouette 0.35, well below the case study's 0.6; Davies-Bouldin 1.15 "
                                    "(lower is better)")
    assert answers["How stable?"] == ("Bootstrap ARI 0.990 on average (lowest 0.980); weakest segment: Shorter "
                                      "tenure (mean Jaccard 0.90, at or above the 0.75 line)")
    assert answers["How close to the truth?"] == ("Adjusted Rand index 0.13, NMI 0.18 against the simulator's "
                                                  "hidden personas")
    assert answers["What is each one?"].startswith(
        "Lapsing: not seen for a long time; Shorter tenure: no rule fits, so it is named after its strongest")
    assert "seg-0123456789ab" in answers["Where are they stored?"]
    assert "data/segments/attributes.sqlite" in answers["Where are they stored?"]


def test_answers_on_user_data_with_a_good_silhouette_and_an_unstable_segment():
    metrics = copy.deepcopy(METRICS)
    metrics["truth"] = None
    metrics["quality"]["silhouette"] = 0.64
    metrics["stability"]["jaccard_mean"]["Lapsing"] = 0.6
    answers = summary.answers(metrics, MEANINGS)
    assert answers["How close to the truth?"] == "No ground truth on the retailer's own data"
    assert answers["How good?"].startswith("Silhouette 0.64, above the case study's 0.6")
    assert answers["How stable?"].endswith("weakest segment: Lapsing (mean Jaccard 0.60, below the 0.75 line)")
    metrics["quality"]["silhouette"] = 0.55
    assert "just below" in summary.answers(metrics, MEANINGS)["How good?"]

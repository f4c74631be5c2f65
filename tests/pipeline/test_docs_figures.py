"""Figures quoted in README.md and docs/solutions.md are tied to the committed metrics/*.json.

Each entry names a sentence of a document with a `{}` where the figure stands, the metrics file and key
it comes from, and how it is printed there. A rebuild that moves a number fails here until the text
follows (or the entry does, if the sentence was rewritten).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import REPO

from atelier.core.io import read_json


def _percent(value: float) -> str:
    return f"{100 * value:.0f}"


def _one_decimal_percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _signed_percent(value: float) -> str:
    return f"{100 * value:+.0f}"


def _thousands(value: float) -> str:
    return f"{value:,.0f}"


Format = str | Callable[[Any], str]
#: (document, text around the figure with {} where it stands, metrics file, dotted key, format)
FIGURES: list[tuple[str, str, str, str, Format]] = [
    ("README.md", "session conversion {} %", "simulate", "realism.session_conversion", _one_decimal_percent),
    ("README.md", "cart abandonment {} %", "simulate", "realism.cart_abandonment", _percent),
    ("README.md", "{} % of buyers order once", "simulate", "realism.single_order_buyer_share", _percent),
    (
        "README.md",
        "the top 10 % of customers bring {} % of revenue",
        "simulate",
        "realism.spend_top_decile_share",
        _percent,
    ),
    ("README.md", "mobile brings {} % of sessions", "simulate", "realism.devices.mobile.session_share", _percent),
    (
        "README.md",
        "the {} customers known at the last cutoff",
        "simulate",
        "truth.labels.2025-11-01.customers",
        _thousands,
    ),
    ("README.md", "gives a silhouette of **{}**", "segment", "quality.silhouette", "{:.2f}"),
    ("README.md", "Davies-Bouldin index of {}", "segment", "quality.davies_bouldin", "{:.2f}"),
    ("README.md", "stable (bootstrap ARI {}", "segment", "stability.ari_mean", "{:.2f}"),
    ("README.md", "the agreement is\nmodest (ARI {})", "segment", "truth.ari", "{:.2f}"),
    ("README.md", "| **XGBoost (champion)** | **{} (", "model", "test.xgboost.roc_auc", "{:.3f}"),
    ("README.md", "| logistic regression | {} (", "model", "test.logistic_regression.roc_auc", "{:.3f}"),
    ("README.md", "| random forest | {} (", "model", "test.random_forest.roc_auc", "{:.3f}"),
    ("README.md", "| oracle (true probabilities) | {} (", "model", "oracle.roc_auc", "{:.3f}"),
    (
        "README.md",
        "The champion reaches {} % of the oracle AUC",
        "model",
        "oracle.champion_ratio",
        _one_decimal_percent,
    ),
    ("README.md", "| favourite-category rule (the old policy) | {} (", "recommend", "methods.category_rule.ndcg.mean",
     "{:.3f}"),
    ("README.md", "| ALS (implicit) | {} (", "recommend", "methods.als.ndcg.mean", "{:.3f}"),
    ("README.md", "| oracle (true-best list) | {} (", "recommend", "methods.oracle.ndcg.mean", "{:.3f}"),
    ("README.md", "| **{}, chosen** |", "recommend", "learned",
     {"item_item": "item-item cosine (implicit)", "als": "ALS (implicit)"}.get),
    ("README.md", "rule by **{} NDCG**", "recommend", "gain_over_rule.difference", "{:+.3f}"),
    ("README.md", "scored on what the\n{} customers known then", "recommend", "customers_evaluated", _thousands),
    ("README.md", "conversion goes from {} %", "replay", "ab_test.conversion.control", _one_decimal_percent),
    ("README.md", "**{} %\n(95 % CI", "replay", "ab_test.conversion.relative_uplift", _signed_percent),
    ("README.md", "(95 % CI {} %", "replay", "ab_test.conversion.ci_low", _signed_percent),
    (
        "README.md",
        "about {} per arm for the case\nstudy's +15 %",
        "replay",
        "ab_test.sessions_needed_for_15_percent",
        lambda n: f"{round(n, -3):,.0f}",
    ),
    ("README.md", "the challenger's AUC {}", "replay", "retraining.challenger.auc", "{:.4f}"),
    ("README.md", "against the champion's {}", "replay", "retraining.champion.auc", "{:.4f}"),
    ("docs/solutions.md", "0.941 against {} in cross-validation", "model", "cv.random_forest.auc", "{:.3f}"),
    ("docs/solutions.md", "v3 xgboost {}", "model", "test.xgboost.roc_auc", "{:.4f}"),
    ("docs/solutions.md", "v1 logistic regression {}", "model", "test.logistic_regression.roc_auc", "{:.4f}"),
]


def _lookup(document: dict, dotted: str) -> Any:
    node: Any = document
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize(
    ("document", "text", "metrics", "key", "fmt"), FIGURES, ids=[f"{d}:{k}" for d, _, _, k, _ in FIGURES]
)
def test_a_quoted_figure_matches_the_metrics(document, text, metrics, key, fmt):
    value = _lookup(read_json(REPO / "metrics" / f"{metrics}.json"), key)
    figure = fmt(value) if callable(fmt) else fmt.format(value)
    expected = text.format(figure)
    body = (REPO / document).read_text(encoding="utf-8")
    assert expected in body, (
        f"{document} should quote metrics/{metrics}.json {key} = {value} as {figure!r} in "
        f"{expected!r}; update the text (or this entry if the sentence was rewritten)"
    )


def test_the_check_can_fail():
    body = (REPO / "README.md").read_text(encoding="utf-8")
    assert "gives a silhouette of **0.99**" not in body

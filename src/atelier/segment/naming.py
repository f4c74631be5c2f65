"""Segment names, earned by visible rules that hold in relative and in absolute terms.

Relative: each rule scores a segment from its centroid in standard deviations (the z-profile), so
it compares segments with the average customer. That alone would call the segment with the
shortest tenure "new" even in a shop where nobody is new. So each rule also carries requirements
in the segment's own units (a "New Visitors" segment's typical member joined within 90 days).
A segment gets the rule that fits it best (each name used once, by an optimal assignment) only if
the score reaches the rule's minimum *and* every requirement holds; otherwise it is named, in
words, after its strongest differences from the average customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.pipeline import Pipeline

from atelier.segment.cluster import prepare, preprocessed_columns
from atelier.segment.profile import centroid_z

#: "New": the typical member (median) joined within this many days.
NEW_WITHIN_DAYS = 90
#: "Lapsing" and "Dormant": the typical member has not been seen (no visit, order or signup) for this many days.
UNSEEN_FOR_DAYS = 90
#: "High-Value": the typical member spent at least this multiple of what the shop's typical buyer spent.
HIGH_SPEND_MULTIPLE = 1.5
#: "Loyal": the typical member has ordered at least this many times.
REPEAT_ORDERS = 2
#: "Bargain": at least this share of the typical member's orders carried a discount.
MOSTLY_DISCOUNTED = 0.5
#: "Visits often": the typical member visited at least this many times in the last 90 days (once a month).
FREQUENT_VISITS_90D = 3
#: "Rarely buys": at most this share of the members has ever ordered.
RARELY_BUYS = 0.2
#: "Has not browsed": at most this share of the members has a product view on record.
RARELY_BROWSED = 0.5


@dataclass(frozen=True)
class Requirement:
    """A fact in the segment's own units that a name needs, e.g. "median tenure_days <= 90".

    `statistic` is "median" (of the members' defined values) or "share above zero" (of the members
    whose value is above 0; undefined counts as not). With `times_buyers_median`, the threshold is a
    multiple of the median over the whole shop's customers whose value is above 0 (e.g. the typical
    buyer's spend), so it scales with the shop.
    """

    feature: str
    statistic: Literal["median", "share above zero"]
    at_most: bool
    threshold: float
    times_buyers_median: bool = False

    def __post_init__(self) -> None:
        if self.statistic not in ("median", "share above zero"):
            raise ValueError(f"Requirement statistic must be 'median' or 'share above zero', not {self.statistic!r}")

    def value(self, members: pd.DataFrame) -> float:
        """The statistic over the members (NaN if the feature is absent or nothing is defined)."""
        if self.feature not in members.columns or members.empty:
            return float("nan")
        values = members[self.feature].astype(float)
        if self.statistic == "median":
            return float(values.median())
        return float((values > 0).mean())

    def limit(self, shop: pd.DataFrame) -> float:
        """The threshold this shop's segments are held to."""
        if not self.times_buyers_median:
            return float(self.threshold)
        if self.feature not in shop.columns:
            return float("nan")
        values = shop[self.feature].astype(float)
        return float(self.threshold * values[values > 0].median())

    def holds(self, members: pd.DataFrame, shop: pd.DataFrame) -> bool:
        """True if the members meet the requirement; False if not, or if it cannot be measured."""
        value, limit = self.value(members), self.limit(shop)
        if np.isnan(value) or np.isnan(limit):
            return False
        return bool(value <= limit if self.at_most else value >= limit)

    def text(self) -> str:
        """The requirement in words, e.g. "median tenure_days ≤ 90"."""
        sign = "≤" if self.at_most else "≥"
        if self.statistic == "share above zero":
            return f"share with {self.feature} > 0 {sign} {self.threshold:.0%}"
        if self.times_buyers_median:
            return f"median {self.feature} {sign} {self.threshold:g} × the shop's median over {self.feature} > 0"
        return f"median {self.feature} {sign} {self.threshold:g}"

    def evidence(self, members: pd.DataFrame, shop: pd.DataFrame) -> str:
        """What the members have against what they need, e.g. "median tenure_days 612 (needs ≤ 90)"."""
        sign = "≤" if self.at_most else "≥"
        value, limit = self.value(members), self.limit(shop)
        if self.statistic == "share above zero":
            return f"share with {self.feature} > 0 {value:.0%} (needs {sign} {limit:.0%})"
        return f"median {self.feature} {_number(value)} (needs {sign} {_number(limit)})"


def _number(value: float) -> str:
    """A value as the report prints it: whole units from 100 on, three significant digits below."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


@dataclass(frozen=True)
class NamingRule:
    """A segment name and the evidence that earns it: a score from the z-profile, and requirements in units."""

    name: str
    meaning: str
    weights: dict[str, float]
    minimum: float
    requires: tuple[Requirement, ...] = field(default=())

    def score(self, z: pd.Series) -> float:
        """Weighted sum of the profile's z-values; -inf if a feature it needs is absent."""
        if any(feature not in z.index for feature in self.weights):
            return float("-inf")
        return float(sum(weight * z[feature] for feature, weight in self.weights.items()))

    def holds(self, members: pd.DataFrame, shop: pd.DataFrame) -> bool:
        """True if every requirement holds for the members (in original units), given the whole shop."""
        return all(requirement.holds(members, shop) for requirement in self.requires)

    def failures(self, members: pd.DataFrame, shop: pd.DataFrame) -> list[str]:
        """The evidence of each requirement the members miss."""
        return [r.evidence(members, shop) for r in self.requires if not r.holds(members, shop)]


#: The naming rules, visible to readers (the notebook prints them). Each segment gets the rule
#: that fits it best, every name at most once (an optimal assignment), and only if its score
#: reaches the rule's minimum and its requirements hold; otherwise it is named after its traits.
NAMING_RULES: tuple[NamingRule, ...] = (
    NamingRule(
        "High-Value Loyal", "spends and orders far above average", {"monetary": 0.5, "frequency": 0.5}, 0.8,
        (Requirement("frequency", "median", False, REPEAT_ORDERS),
         Requirement("monetary", "median", False, HIGH_SPEND_MULTIPLE, times_buyers_median=True)),
    ),
    NamingRule(
        "Bargain Hunters", "buys, and mostly on discount", {"discount_share": 0.7, "frequency": 0.3}, 0.6,
        (Requirement("frequency", "median", False, 1),
         Requirement("discount_share", "median", False, MOSTLY_DISCOUNTED)),
    ),
    NamingRule(
        "Window Browsers", "visits often and views a lot, rarely buys",
        {"sessions_90d": 0.4, "views_per_session": 0.3, "frequency": -0.3}, 0.5,
        (Requirement("sessions_90d", "median", False, FREQUENT_VISITS_90D),
         Requirement("frequency", "share above zero", True, RARELY_BUYS)),
    ),
    NamingRule(
        "New Visitors", "joined recently", {"tenure_days": -1.0}, 0.6,
        (Requirement("tenure_days", "median", True, NEW_WITHIN_DAYS),),
    ),
    NamingRule(
        "Dormant Sign-ups", "registered but has not browsed: no visits on record",
        {"views_per_session": -0.6, "sessions_90d": -0.2, "frequency": -0.2}, 0.8,
        (Requirement("views_per_session", "share above zero", True, RARELY_BROWSED),
         Requirement("recency_days", "median", False, UNSEEN_FOR_DAYS)),
    ),
    NamingRule(
        "Lapsing", "not seen for a long time", {"recency_days": 1.0, "sessions_90d": -0.3}, 0.6,
        (Requirement("recency_days", "median", False, UNSEEN_FOR_DAYS),),
    ),
)

#: What a fallback name means, wherever names are explained.
FALLBACK_MEANING = "no rule fits, so it is named after its strongest differences from the average customer"
#: How a fallback name words a feature that is higher or lower than average (unknown features: "higher x y").
TRAIT_WORDS: dict[str, tuple[str, str]] = {
    "recency_days": ("seen less recently", "seen more recently"),
    "tenure_days": ("longer tenure", "shorter tenure"),
    "frequency": ("more orders", "fewer orders"),
    "monetary": ("higher spend", "lower spend"),
    "avg_order_value": ("larger orders", "smaller orders"),
    "sessions_90d": ("more visits", "fewer visits"),
    "views_per_session": ("more views per visit", "fewer views per visit"),
    "cart_adds": ("more cart adds", "fewer cart adds"),
    "discount_share": ("more discounted orders", "fewer discounted orders"),
    "share_mobile": ("more mobile visits", "fewer mobile visits"),
    "engagement_score": ("more engaged", "less engaged"),
}


def trait(feature: str, z: float) -> str:
    """One trait in words: how the segment differs from the average customer on `feature`."""
    words = TRAIT_WORDS.get(feature)
    if words is None:
        readable = feature.replace("_", " ")
        words = (f"higher {readable}", f"lower {readable}")
    return words[0] if z > 0 else words[1]


def strongest(z: pd.Series, top: int) -> pd.Series:
    """The `top` largest deviations of a z-profile, by absolute value (ties keep the column order)."""
    return z.reindex(z.abs().sort_values(ascending=False, kind="stable").index)[:top]


def trait_name(z: pd.Series, top: int = 2) -> str:
    """A fallback name from the strongest deviations from the average customer, e.g. "Longer tenure, lower spend"."""
    traits = [trait(str(feature), float(value)) for feature, value in strongest(z[z != 0], top).items()]
    text = ", ".join(traits) or "like the average customer"
    return text[:1].upper() + text[1:]


def name_segments(
    z_profiles: pd.DataFrame, frame: pd.DataFrame, labels: np.ndarray, rules: tuple[NamingRule, ...] = NAMING_RULES
) -> pd.DataFrame:
    """Name each segment by the best-fitting rule that holds (each name used once); show the evidence.

    `z_profiles`: one row per segment (index: segment id), its centroid in SDs (`profile.centroid_z`).
    `frame`: the clustered features in original units (undefined values as NaN), one row per customer,
    with `labels` its segment ids; the requirements are checked on each segment's members against the
    whole frame. Returns one row per segment: name, why (the rule's meaning, or why no rule fits),
    score, evidence (the z-values a rule used and its requirements met, or the strongest traits).
    """
    labels = np.asarray(labels)
    members = {segment: frame[labels == segment] for segment in z_profiles.index}
    scores = np.array([[rule.score(z) for rule in rules] for _, z in z_profiles.iterrows()])
    holds = np.array([[rule.holds(members[segment], frame) for rule in rules] for segment in z_profiles.index])
    minimums = np.array([rule.minimum for rule in rules])
    eligible = np.isfinite(scores) & (scores >= minimums) & holds
    # Name as many segments as possible first, then prefer the better fits: a pair that is not
    # eligible (under the rule's minimum, or failing a requirement) must not win the assignment either.
    gain = np.where(eligible, 1_000.0 + np.where(eligible, scores, 0.0), 0.0)
    rows, columns = linear_sum_assignment(-gain)
    chosen = {row: column for row, column in zip(rows, columns) if eligible[row, column]}
    records = []
    for position, (segment, z) in enumerate(z_profiles.iterrows()):
        rule_index = chosen.get(position)
        if rule_index is not None:
            rule = rules[rule_index]
            facts = [f"{feature} z={z[feature]:+.2f}" for feature in rule.weights]
            facts += [requirement.evidence(members[segment], frame) for requirement in rule.requires]
            records.append({"segment": segment, "name": rule.name, "why": rule.meaning,
                            "score": scores[position, rule_index], "evidence": "; ".join(facts)})
        else:
            finite = scores[position][np.isfinite(scores[position])]
            why = _why_no_rule(scores[position], holds[position], members[segment], frame, rules)
            evidence = "; ".join(f"{feature} z={value:+.2f}" for feature, value in strongest(z, 3).items())
            records.append({"segment": segment, "name": trait_name(z), "why": why,
                            "score": float(finite.max()) if len(finite) else float("nan"), "evidence": evidence})
    named = pd.DataFrame(records).set_index("segment")
    # Two fallback names can coincide; names are keys downstream, so number the repeats.
    repeat = named.groupby("name").cumcount()
    named["name"] = named["name"].where(repeat == 0, named["name"] + " #" + (repeat + 1).astype(str))
    return named


def _why_no_rule(
    scores: np.ndarray, holds: np.ndarray, members: pd.DataFrame, shop: pd.DataFrame, rules: tuple[NamingRule, ...]
) -> str:
    """Why a segment got a fallback name, from its best-scoring rule."""
    if not np.isfinite(scores).any():
        return "no rule fits: the data lacks the features every rule needs"
    best = int(np.nanargmax(np.where(np.isfinite(scores), scores, -np.inf)))
    rule = rules[best]
    if scores[best] < rule.minimum:
        return f"no rule fits: the best, {rule.name}, scores {scores[best]:.2f} (needs {rule.minimum:g})"
    if not holds[best]:
        return (f"no rule fits: {rule.name} fits the z-profile but not in absolute terms: "
                + "; ".join(rule.failures(members, shop)))
    return f"no rule left: its best, {rule.name}, went to another segment (each name is used once)"


def rules_table(rules: tuple[NamingRule, ...] = NAMING_RULES) -> pd.DataFrame:
    """The rules as a reader sees them: meaning, score formula, minimum score, and the requirements in units."""
    return pd.DataFrame(
        [
            {
                "name": rule.name,
                "meaning": rule.meaning,
                "score": " + ".join(f"{weight:g}·z({feature})" for feature, weight in rule.weights.items()),
                "minimum": rule.minimum,
                "and in absolute terms": "; ".join(requirement.text() for requirement in rule.requires) or "-",
            }
            for rule in rules
        ]
    ).set_index("name")


def describe(names: dict[int, str], rules: tuple[NamingRule, ...] = NAMING_RULES) -> dict[str, str]:
    """What each name means: the rule's meaning for a rule's name, else that it is a fallback name.

    `names` maps segment id -> the name the segment carries (e.g. inherited at a refit); why a given
    segment has no rule's name is in `name_segments`' `why` column.
    """
    meanings = {rule.name: rule.meaning for rule in rules}
    return {name: meanings.get(name, FALLBACK_MEANING) for name in names.values()}


def name_segmenter(segmenter: Pipeline, frame: pd.DataFrame, log1p: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """`name_segments` for a fitted segmenter and the frame it was fitted on (its K-Means labels, its z-profiles)."""
    labels = segmenter.named_steps["kmeans"].labels_
    z_profiles = centroid_z(prepare(segmenter, frame), labels, preprocessed_columns(list(frame.columns), log1p))
    return name_segments(z_profiles, frame, labels)

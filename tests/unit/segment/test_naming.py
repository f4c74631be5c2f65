"""Segment names: relative scores on z-profiles, requirements in the segment's own units, and fallback names in words.

Relative logic is tested with the requirements switched off (`RELATIVE`); the requirements are tested on
small frames in original units, each rule on both sides, including a shop where nobody is new.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from atelier.segment import cluster, naming
from atelier.segment.naming import NAMING_RULES, Requirement

from .segment_shop import FAST

RULES = {rule.name: rule for rule in NAMING_RULES}
#: The rules with their absolute requirements switched off: relative scores alone decide.
RELATIVE = tuple(dataclasses.replace(rule, requires=()) for rule in NAMING_RULES)
RULE_FEATURES = ["monetary", "frequency", "discount_share", "sessions_90d", "views_per_session", "tenure_days",
                 "recency_days"]

#: One hand-built z-profile per rule: strong on that rule's own features, zero elsewhere.
#: Each rule's score on its own segment is its largest score anywhere and above its minimum.
PROFILE_FOR = {
    "High-Value Loyal": {"monetary": 2.0, "frequency": 2.0},
    "Bargain Hunters": {"discount_share": 2.0},
    "Window Browsers": {"sessions_90d": 2.0, "views_per_session": 2.0},
    "New Visitors": {"tenure_days": -2.0},
    "Dormant Sign-ups": {"views_per_session": -2.0, "sessions_90d": -2.0},
    "Lapsing": {"recency_days": 2.0},
}

#: Two members per rule whose original units meet that rule's requirements (a shop of six segments).
MEMBERS_FOR = {
    "High-Value Loyal": {"frequency": [4, 6], "monetary": [900.0, 1100.0], "recency_days": [5, 9],
                         "tenure_days": [800, 900], "sessions_90d": [12, 20], "views_per_session": [6, 7],
                         "discount_share": [0.2, 0.3]},
    "Bargain Hunters": {"frequency": [1, 2], "monetary": [60.0, 90.0], "recency_days": [40, 60],
                        "tenure_days": [500, 700], "sessions_90d": [1, 2], "views_per_session": [5, 6],
                        "discount_share": [0.5, 1.0]},
    "Window Browsers": {"frequency": [0, 0], "monetary": [0.0, 0.0], "recency_days": [3, 8],
                        "tenure_days": [300, 400], "sessions_90d": [6, 9], "views_per_session": [9, 11],
                        "discount_share": [np.nan, np.nan]},
    "New Visitors": {"frequency": [0, 1], "monetary": [0.0, 40.0], "recency_days": [2, 10],
                     "tenure_days": [10, 40], "sessions_90d": [2, 3], "views_per_session": [5, 5],
                     "discount_share": [np.nan, 0.0]},
    "Dormant Sign-ups": {"frequency": [0, 0], "monetary": [0.0, 0.0], "recency_days": [200, 300],
                         "tenure_days": [200, 300], "sessions_90d": [0, 0], "views_per_session": [np.nan, np.nan],
                         "discount_share": [np.nan, np.nan]},
    "Lapsing": {"frequency": [0, 0], "monetary": [0.0, 0.0], "recency_days": [150, 250],
                "tenure_days": [600, 700], "sessions_90d": [0, 1], "views_per_session": [4, 5],
                "discount_share": [np.nan, np.nan]},
}


def z_table(profiles: list[dict[str, float]], columns: list[str] = RULE_FEATURES, index=None) -> pd.DataFrame:
    return pd.DataFrame([{c: p.get(c, 0.0) for c in columns} for p in profiles], index=index)


def members_of(names: list[str], index: list[int] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """A shop whose segment `index[i]` holds the two members built for rule `names[i]`; with its labels."""
    index = list(range(len(names))) if index is None else index
    parts = [pd.DataFrame(MEMBERS_FOR[name]).astype(float) for name in names]
    labels = np.concatenate([[segment] * len(part) for segment, part in zip(index, parts)])
    return pd.concat(parts, ignore_index=True), labels


def name_relative(z: pd.DataFrame) -> pd.DataFrame:
    """Names by relative scores alone (one placeholder member per segment)."""
    frame = pd.DataFrame(0.0, index=range(len(z)), columns=list(z.columns))
    return naming.name_segments(z, frame, np.asarray(z.index), RELATIVE)


# --------------------------------------------------------------------------------------------
# Relative scores and the assignment
# --------------------------------------------------------------------------------------------
def test_hand_built_profiles_fit_their_rule_best():
    """The construction the naming tests rely on: each profile's own rule wins its row and its column."""
    z = z_table(list(PROFILE_FOR.values()))
    scores = np.array([[rule.score(row) for rule in NAMING_RULES] for _, row in z.iterrows()])
    order = [rule.name for rule in NAMING_RULES]
    for i, j in enumerate(order.index(name) for name in PROFILE_FOR):
        assert scores[i, j] >= NAMING_RULES[j].minimum
        assert scores[i, j] == scores[i].max() == scores[:, j].max()


def test_rule_score_by_hand():
    rule = naming.NamingRule("X", "x", {"a": 0.5, "b": -2.0}, 0.1)
    assert rule.score(pd.Series({"a": 2.0, "b": 0.25, "c": 9.0})) == pytest.approx(0.5)
    assert rule.score(pd.Series({"a": 2.0})) == float("-inf")


def test_name_segments_each_rule_wins_its_segment():
    segments = [10, 11, 12, 13, 14, 15]
    shuffled = list(PROFILE_FOR)[::-1]  # segment order unrelated to rule order
    z = z_table([PROFILE_FOR[name] for name in shuffled], index=segments)
    frame, labels = members_of(shuffled, segments)
    named = naming.name_segments(z, frame, labels)
    assert list(named.index) == segments
    assert named["name"].tolist() == shuffled  # every requirement holds for the members built for it
    for segment, name in zip(segments, shuffled):
        row = named.loc[segment]
        assert row["why"] == RULES[name].meaning
        assert row["score"] == pytest.approx(RULES[name].score(z.loc[segment]))
        for feature in RULES[name].weights:
            assert f"{feature} z={z.loc[segment, feature]:+.2f}" in row["evidence"]
    assert named.loc[10 + shuffled.index("New Visitors"), "evidence"] == (
        "tenure_days z=-2.00; median tenure_days 25 (needs ≤ 90)")


def test_name_segments_below_every_minimum_gets_a_fallback_name_in_words():
    weak = {"recency_days": 0.3, "sessions_90d": -0.25, "monetary": 0.1, "tenure_days": 0.05}
    z = z_table([PROFILE_FOR["High-Value Loyal"], weak])
    scores = [rule.score(z.loc[1]) for rule in NAMING_RULES]
    assert all(s < rule.minimum for s, rule in zip(scores, NAMING_RULES))  # the construction
    named = name_relative(z)
    assert named.loc[0, "name"] == "High-Value Loyal"
    assert named.loc[1, "name"] == "Seen less recently, fewer visits" == naming.trait_name(z.loc[1])
    assert named.loc[1, "evidence"] == "recency_days z=+0.30; sessions_90d z=-0.25; monetary z=+0.10"
    assert named.loc[1, "why"] == "no rule fits: the best, Lapsing, scores 0.38 (needs 0.6)"
    assert named.loc[1, "score"] == pytest.approx(max(scores))


def test_name_segments_never_chooses_a_rule_missing_a_feature():
    columns = [c for c in RULE_FEATURES if c != "discount_share"]
    z = z_table(list(PROFILE_FOR.values()), columns=columns)
    z.loc[1, "frequency"] = 0.7  # Bargain Hunters would score 0.21 from frequency alone, were discount_share known
    named = name_relative(z)
    assert "Bargain Hunters" not in set(named["name"])
    assert named.loc[1, "name"] == "More orders" == naming.trait_name(z.loc[1])
    assert named["name"].is_unique
    assert [named.loc[i, "name"] for i in (0, 2, 3, 4, 5)] == [n for n in PROFILE_FOR if n != "Bargain Hunters"]


def test_name_segments_without_any_rule_feature():
    z = z_table([{"share_mobile": 1.0}, {"share_mobile": -1.0}], columns=["share_mobile", "engagement_score"])
    named = name_relative(z)
    assert named["name"].tolist() == ["More mobile visits", "Fewer mobile visits"]
    assert set(named["why"]) == {"no rule fits: the data lacks the features every rule needs"}
    assert named["score"].isna().all()


def test_name_segments_more_segments_than_rules():
    extra = [{"share_mobile": 1.5, "avg_order_value": -1.0}, {"engagement_score": -1.2, "cart_adds": 0.9}]
    columns = RULE_FEATURES + ["share_mobile", "avg_order_value", "engagement_score", "cart_adds"]
    named = name_relative(z_table(list(PROFILE_FOR.values()) + extra, columns=columns))
    assert len(named) == 8 and named["name"].is_unique
    assert named["name"].iloc[:6].tolist() == list(PROFILE_FOR)
    assert named.loc[6, "name"] == "More mobile visits, smaller orders"
    assert named.loc[7, "name"] == "Less engaged, more cart adds"


def test_name_segments_fallback_names_are_unique():
    """Two leftover segments (more segments than rules) with the same two strongest traits."""
    extra = [{"share_mobile": 1.5, "cart_adds": -1.0}, {"share_mobile": 0.9, "cart_adds": -0.8}]
    named = name_relative(z_table(list(PROFILE_FOR.values()) + extra, columns=RULE_FEATURES + ["share_mobile",
                                                                                                "cart_adds"]))
    assert named.loc[6, "name"] == "More mobile visits, fewer cart adds"
    assert named.loc[7, "name"] == "More mobile visits, fewer cart adds #2"


def test_name_segments_clear_fit_keeps_its_name():
    """Default rules, k=5: a clear Window Browsers segment must not lose its name to a segment that cannot earn it."""
    profiles = [
        {"monetary": 3.0, "frequency": 3.0, "discount_share": -1.0},  # strong High-Value Loyal
        # a long-tenured, full-price moderate spender: High-Value Loyal 1.0 (taken by segment 0), Bargain -1.95,
        # New Visitors -3.0, Window Browsers -0.15: below every spare rule's minimum, so it gets a fallback name
        {"monetary": 1.5, "frequency": 0.5, "discount_share": -3.0, "tenure_days": 3.0},
        PROFILE_FOR["Window Browsers"],  # Window Browsers 1.4 >= 0.5; no other segment reaches 0.5 on it
        PROFILE_FOR["Dormant Sign-ups"],
        PROFILE_FOR["Lapsing"],
    ]
    named = name_relative(z_table(profiles))
    assert named.loc[2, "name"] == "Window Browsers", named["name"].tolist()
    # Hungarian on raw scores: 1 -> Window Browsers (-0.15) + 2 -> a spare rule (0) beats
    # 2 -> Window Browsers (1.4) + 1 -> its best spare rule (-1.95): three names where four are possible.
    assert named.loc[1, "name"] == "Fewer discounted orders, longer tenure"  # a tie keeps the column order
    assert named.loc[1, "why"] == (
        "no rule left: its best, High-Value Loyal, went to another segment (each name is used once)")


# --------------------------------------------------------------------------------------------
# Requirements in the segment's own units
# --------------------------------------------------------------------------------------------
def test_requirement_median_and_share_by_hand():
    members = pd.DataFrame({"tenure_days": [10.0, 50.0, 400.0, np.nan], "frequency": [0.0, 2.0, np.nan, 1.0]})
    new = Requirement("tenure_days", "median", True, 90)
    assert new.value(members) == 50.0  # undefined skipped
    assert new.holds(members, members) and new.text() == "median tenure_days ≤ 90"
    assert new.evidence(members, members) == "median tenure_days 50 (needs ≤ 90)"
    buyers = Requirement("frequency", "share above zero", True, 0.2)
    assert buyers.value(members) == 0.5  # 2 of 4 ordered; undefined counts as not
    assert not buyers.holds(members, members)
    assert buyers.text() == "share with frequency > 0 ≤ 20%"
    assert buyers.evidence(members, members) == "share with frequency > 0 50% (needs ≤ 20%)"


def test_requirement_relative_to_the_shops_buyers():
    shop = pd.DataFrame({"monetary": [0.0, 0.0, 0.0, 100.0, 100.0, 120.0, 300.0, 400.0]})
    high = Requirement("monetary", "median", False, 1.5, times_buyers_median=True)
    assert high.limit(shop) == 1.5 * 120.0  # the median of the five who spent, not of all eight
    assert high.holds(shop.iloc[[6, 7]], shop) and not high.holds(shop.iloc[[4, 5]], shop)
    assert high.text() == "median monetary ≥ 1.5 × the shop's median over monetary > 0"
    assert high.evidence(shop.iloc[[6, 7]], shop) == "median monetary 350 (needs ≥ 180)"


def test_requirement_that_cannot_be_measured_does_not_hold():
    members = pd.DataFrame({"frequency": [1.0, 2.0], "discount_share": [np.nan, np.nan]})
    assert not Requirement("tenure_days", "median", True, 90).holds(members, members)  # feature absent
    assert not Requirement("discount_share", "median", False, 0.5).holds(members, members)  # nothing defined
    assert not Requirement("frequency", "median", False, 1).holds(members.iloc[:0], members)  # no members
    assert not Requirement("monetary", "median", False, 1.5, times_buyers_median=True).holds(members, members)
    with pytest.raises(ValueError, match="'median' or 'share above zero'"):
        Requirement("frequency", "mean", False, 1)


REQUIREMENT_CASES = [(rule.name, position) for rule in NAMING_RULES for position in range(len(rule.requires))]


@pytest.mark.parametrize("name, position", REQUIREMENT_CASES, ids=[f"{n}-{p}" for n, p in REQUIREMENT_CASES])
def test_every_requirement_holds_for_its_members_and_fails_just_past_its_threshold(name, position):
    """Both sides of each rule's requirements, on the two members built for the rule, within the six-segment shop."""
    shop, labels = members_of(list(MEMBERS_FOR))
    segment = list(MEMBERS_FOR).index(name)
    members = shop[labels == segment]
    rule = RULES[name]
    assert rule.holds(members, shop) and rule.failures(members, shop) == []
    requirement = rule.requires[position]
    limit = requirement.limit(shop)
    # Move every member to just past the limit on the wrong side (for a share: to all or none above zero).
    broken = members.copy()
    if requirement.statistic == "median":
        broken[requirement.feature] = limit + 1.0 if requirement.at_most else limit - 1e-6 * max(1.0, limit)
    else:
        broken[requirement.feature] = 1.0 if requirement.at_most else 0.0
    shop_after = pd.concat([shop[labels != segment], broken]) if requirement.times_buyers_median else shop
    assert not requirement.holds(broken, shop_after)
    assert not rule.holds(broken, shop_after)
    assert rule.failures(broken, shop_after) == [requirement.evidence(broken, shop_after)]


def test_a_shop_where_nobody_is_new_has_no_new_visitors():
    """The newest segment leads New Visitors by z-score, but its typical member joined over a year ago."""
    z = z_table([{"tenure_days": -2.0}, {"tenure_days": 1.0, "recency_days": 2.0}])
    established = pd.DataFrame({"tenure_days": [400.0, 420.0, 900.0, 950.0], "recency_days": [5.0, 9.0, 200.0, 260.0],
                                "sessions_90d": [3.0, 4.0, 0.0, 0.0]})
    labels = np.array([0, 0, 1, 1])
    named = naming.name_segments(z, established, labels)
    assert named.loc[0, "name"] == "Shorter tenure"
    assert named.loc[0, "why"] == ("no rule fits: New Visitors fits the z-profile but not in absolute terms: "
                                   "median tenure_days 410 (needs ≤ 90)")
    assert named.loc[1, "name"] == "Lapsing"
    recent = established.assign(tenure_days=[20.0, 45.0, 900.0, 950.0])
    assert naming.name_segments(z, recent, labels).loc[0, "name"] == "New Visitors"


@pytest.mark.parametrize(
    "name, change, trait",
    [
        ("High-Value Loyal", {"monetary": [70.0, 80.0]}, "Higher spend"),  # tops the shop relatively, spends little
        ("High-Value Loyal", {"frequency": [1, 1]}, "Higher spend"),  # big single orders: not loyal
        ("Bargain Hunters", {"discount_share": [0.2, 0.3]}, "More discounted orders"),
        ("Window Browsers", {"sessions_90d": [1, 2]}, "More visits"),
        ("Window Browsers", {"frequency": [1, 2], "monetary": [30.0, 50.0]}, "More visits"),
        ("Dormant Sign-ups", {"views_per_session": [3.0, 4.0]}, "Fewer visits"),
        ("Dormant Sign-ups", {"recency_days": [10, 20]}, "Fewer visits"),
        ("Lapsing", {"recency_days": [20, 30]}, "Seen less recently"),
    ],
)
def test_a_relative_leader_that_fails_in_absolute_terms_gets_a_fallback_name(name, change, trait):
    index = list(PROFILE_FOR).index(name)
    z = z_table(list(PROFILE_FOR.values()))
    frame, labels = members_of(list(PROFILE_FOR))
    values = pd.DataFrame(MEMBERS_FOR[name]).assign(**change).astype(float)
    frame.loc[labels == index, list(values.columns)] = values.to_numpy()
    named = naming.name_segments(z, frame, labels)
    assert named.loc[index, "name"].startswith(trait), named.loc[index, "name"]
    assert named.loc[index, "why"].startswith(f"no rule fits: {name} fits the z-profile but not in absolute terms")
    others = [i for i in range(len(PROFILE_FOR)) if i != index]
    assert named.loc[others, "name"].tolist() == [n for n in PROFILE_FOR if n != name]


def test_a_segment_that_fails_its_best_rule_can_earn_the_next_one():
    """Newest and not seen for long: New Visitors by z, but joined long ago; Dormant Sign-ups holds in units."""
    z = z_table([{"tenure_days": -3.0, "views_per_session": -1.5, "sessions_90d": -1.0}, PROFILE_FOR["Lapsing"]])
    frame = pd.DataFrame({"tenure_days": [300.0, 320.0, 700.0, 800.0], "recency_days": [300.0, 320.0, 150.0, 200.0],
                          "views_per_session": [np.nan, np.nan, 5.0, 6.0], "sessions_90d": [0.0, 0.0, 0.0, 1.0],
                          "frequency": [0.0, 0.0, 0.0, 0.0]})
    named = naming.name_segments(z, frame, np.array([0, 0, 1, 1]))
    assert named["name"].tolist() == ["Dormant Sign-ups", "Lapsing"]
    assert named.loc[0, "score"] == pytest.approx(RULES["Dormant Sign-ups"].score(z.loc[0]))


# --------------------------------------------------------------------------------------------
# Words, tables and the fitted segmenter
# --------------------------------------------------------------------------------------------
def test_trait_words():
    z = pd.Series({"a_b": 0.2, "monetary": -1.5, "recency_days": -0.9, "frequency": 0.1})
    assert naming.trait_name(z) == "Lower spend, seen more recently"
    assert naming.trait_name(z, top=3) == "Lower spend, seen more recently, higher a b"  # unknown: its words
    assert naming.trait("tenure_days", 0.4) == "longer tenure" and naming.trait("tenure_days", -0.4) == "shorter tenure"
    assert set(naming.TRAIT_WORDS) == set(FAST.features)  # every default feature has words
    assert naming.trait_name(pd.Series({"monetary": 0.0, "frequency": 0.5})) == "More orders"  # no difference, no word
    assert naming.trait_name(pd.Series({"monetary": 0.0})) == "Like the average customer"


def test_rules_table_shows_scores_minimums_and_requirements():
    table = naming.rules_table()
    assert list(table.index) == [rule.name for rule in NAMING_RULES]
    assert table.loc["High-Value Loyal", "score"] == "0.5·z(monetary) + 0.5·z(frequency)"
    assert table.loc["New Visitors", "and in absolute terms"] == f"median tenure_days ≤ {naming.NEW_WITHIN_DAYS}"
    assert table.loc["Lapsing", "minimum"] == 0.6
    assert naming.rules_table(RELATIVE).loc["Lapsing", "and in absolute terms"] == "-"


def test_describe_gives_meanings_of_rule_names_and_says_what_a_fallback_name_is():
    assert naming.describe({0: "Lapsing", 1: "Longer tenure, lower spend"}) == {
        "Lapsing": RULES["Lapsing"].meaning, "Longer tenure, lower spend": naming.FALLBACK_MEANING}
    assert naming.describe({0: "Lapsing"}, RELATIVE[:2]) == {"Lapsing": naming.FALLBACK_MEANING}  # not a rule here


def test_name_segmenter_names_a_fitted_segmenter_from_its_own_labels():
    """Two groups, new-and-active against long-gone: the segmenter's two segments get the two names."""
    rng = np.random.default_rng(1)
    new = pd.DataFrame({"tenure_days": rng.uniform(5, 40, 60), "recency_days": rng.uniform(0, 10, 60),
                        "sessions_90d": rng.integers(2, 6, 60).astype(float)})
    gone = pd.DataFrame({"tenure_days": rng.uniform(600, 900, 60), "recency_days": rng.uniform(150, 400, 60),
                         "sessions_90d": np.zeros(60)})
    frame = pd.concat([new, gone], ignore_index=True)
    settings = dataclasses.replace(FAST, k=2, log1p=("tenure_days", "recency_days"))
    segmenter = cluster.fit_segmenter(frame, settings)
    named = naming.name_segmenter(segmenter, frame, settings.log1p)
    labels = segmenter.named_steps["kmeans"].labels_
    assert named.loc[labels[0], "name"] == "New Visitors" and named.loc[labels[-1], "name"] == "Lapsing"

"""Tests for atelier.replay.policy: the assortment, the personalized page, every fallback, shown shares, the
vectorized rules against the one-visit rules, and replayed decisions recomputed from their logged profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.replay.policy import (
    COMPLETE_THE_LOOK,
    DEFAULT_BANNER,
    Assortment,
    PolicySettings,
    choose,
    decide,
    default_experience,
    shown_shares,
    top_categories,
)


@pytest.fixture(scope="module")
def toy_assortment() -> Assortment:
    """Three categories of five products; views make the popularity order known in advance."""
    products = pd.DataFrame({"product_id": np.arange(1, 16), "category": ["coats"] * 5 + ["hats"] * 5 + ["shoes"] * 5})
    views = {3: 5, 1: 5, 2: 1, 7: 9, 6: 2, 11: 4, 15: 4, 12: 8}  # ties break by product id
    events = pd.DataFrame({"product_id": [p for p,
                                          n in views.items() for _ in range(n)]}).assign(event_type="product_view")
    events = pd.concat([events, pd.DataFrame({"product_id": [5] * 50, "event_type": "add_to_cart"})], ignore_index=True)
    return Assortment.from_tables(products, events)


POLICY = PolicySettings(recommendations=6, high_propensity=0.3, banners={"Bargain Hunters": "sale"})


def test_assortment_ranks_products_by_views(toy_assortment):
    assert toy_assortment.categories == ["coats", "hats", "shoes"]
    assert toy_assortment.top(3, "coats").tolist() == [1, 3, 2]  # add_to_cart events are not views
    assert toy_assortment.top(5, "hats").tolist() == [7, 6, 8, 9, 10]
    assert toy_assortment.top(4).tolist() == [7, 12, 1, 3]
    assert toy_assortment.top(3, "gloves").tolist() == []


def test_personalized_products_come_two_thirds_from_the_favourite_and_one_third_from_the_runner_up(toy_assortment):
    common = dict(arm="treatment", known=True, segment="Bargain Hunters", assortment=toy_assortment, settings=POLICY)
    chosen = choose(favourite="shoes", runner_up="coats", propensity=0.1, **common)
    assert chosen["experience"] == "personalized" and chosen["reason"] == "personalized"
    assert chosen["products"].tolist() == [12, 11, 15, 13, 1, 3]
    assert toy_assortment.categories_of(chosen["products"]) == ["shoes"] * 4 + ["coats"] * 2
    assert chosen["banner"] == "sale" and chosen["banner_category"] == "shoes"
    assert len(set(chosen["products"].tolist())) == len(chosen["products"])
    assert choose(favourite="shoes", runner_up="coats", propensity=0.3, **common)["banner"] == COMPLETE_THE_LOOK
    assert choose(favourite="shoes", runner_up="coats", propensity=0.2999, **common)["banner"] == "sale"
    unknown_segment = dict(common, segment="Mystery Shoppers")
    assert choose(favourite="shoes", runner_up="coats", propensity=0.1, **unknown_segment)["banner"] == DEFAULT_BANNER
    alone = choose(favourite="hats", runner_up=None, propensity=0.1, **common)
    assert alone["products"].tolist() == [7, 6, 8, 9, 10] and len(set(alone["products"].tolist())) == 5


def test_every_fallback_shows_the_default(toy_assortment):
    default = default_experience(toy_assortment, POLICY)
    common = dict(segment="Bargain Hunters", assortment=toy_assortment, settings=POLICY)
    cases = {
        "control": dict(arm="control", known=True, favourite="shoes", runner_up="coats", propensity=0.9),
        "cold_start": dict(arm="treatment", known=False, favourite=None, runner_up=None, propensity=np.nan),
        "model_unavailable": dict(arm="treatment", known=True, favourite="shoes", runner_up="coats", propensity=None),
        "missing_features": dict(arm="treatment", known=True, favourite="shoes", runner_up="coats", propensity=np.nan),
    }
    for reason, case in cases.items():
        chosen = choose(**case, **common)
        assert chosen["reason"] == reason and chosen["experience"] == "default"
        assert chosen["banner"] == DEFAULT_BANNER and chosen["banner_category"] is None
        assert chosen["products"].tolist() == default["products"].tolist() == [7, 12, 1, 3, 11, 15]
    no_views = choose(arm="treatment", known=True, favourite=None, runner_up=None, propensity=0.5, **common)
    assert no_views["reason"] == "cold_start"


def test_top_categories_and_shown_shares(toy_assortment):
    profiles = pd.DataFrame({"affinity_coats": [0.2, np.nan, 0.5, 0.0], "affinity_hats": [0.3, np.nan, 0.5, 0.0],
                             "affinity_shoes": [0.5, np.nan, 0.0, 1.0]})
    first, second = top_categories(profiles, toy_assortment.categories)
    assert first.tolist() == ["shoes", None, "coats", "shoes"]
    assert second.tolist() == ["hats", None, "hats", None]  # customer 4 viewed only shoes: no runner-up
    decisions = decide(profiles, arm=np.array(["treatment"] * 4), propensity=np.array([0.1, 0.1, 0.5, 0.1]),
                       segments=np.array(["Bargain Hunters"] * 4, dtype=object),
                       known=np.array([True, True, True, True]),
                       assortment=toy_assortment, settings=POLICY)
    assert decisions["reason"].tolist() == ["personalized", "cold_start", "personalized", "personalized"]
    assert decisions["banner"].tolist() == ["sale", DEFAULT_BANNER, COMPLETE_THE_LOOK, "sale"]
    shares = shown_shares(decisions, toy_assortment, toy_assortment.categories)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    # shoes x4 + banner shoes, hats x2 -> 5/7, 2/7; the default: hats 2, shoes 3 (12, 11, 15), coats 2 (1, 3), of 6
    np.testing.assert_allclose(shares[0], [0, 2 / 7, 5 / 7])
    np.testing.assert_allclose(shares[1], [2 / 6, 1 / 6, 3 / 6])
    np.testing.assert_allclose(shares[2], [5 / 7, 2 / 7, 0])


def test_vectorized_decide_equals_choose_row_by_row(toy_assortment):
    """`decide` (batches) and `choose` (one visit, the per-event path) are the same rules."""
    rng = np.random.default_rng(3)
    n = 300
    shares = rng.dirichlet(np.ones(3), n)
    shares[rng.random(n) < 0.2] = np.nan  # no views
    shares[rng.random(n) < 0.2, 1:] = 0.0  # one category only
    profiles = pd.DataFrame(shares, columns=[f"affinity_{c}" for c in toy_assortment.categories])
    arm = rng.choice(["control", "treatment"], n)
    known = rng.random(n) > 0.1
    segments = rng.choice(["Bargain Hunters", "Lapsing", "nobody"], n).astype(object)
    for propensity in (None, np.where(rng.random(n) < 0.1, np.nan, rng.random(n))):
        batch = decide(profiles, arm=arm, propensity=propensity, segments=segments, known=known,
                       assortment=toy_assortment, settings=POLICY)
        first, second = top_categories(profiles, toy_assortment.categories)
        for i in range(n):
            one = choose(arm=arm[i], known=bool(known[i]), favourite=first[i], runner_up=second[i],
                         propensity=None if propensity is None else propensity[i], segment=segments[i],
                         assortment=toy_assortment, settings=POLICY)
            row = batch.iloc[i]
            assert (row["experience"], row["reason"], row["banner"]) == (one["experience"], one["reason"],
                                                                         one["banner"])
            assert (row["banner_category"] if isinstance(row["banner_category"],
                                                         str) else None) == one["banner_category"]
            assert list(row["products"]) == list(one["products"])
            both_missing = np.isnan(row["propensity"]) and np.isnan(one["propensity"])
            assert both_missing or row["propensity"] == one["propensity"]


def test_replayed_decisions_follow_the_policy_on_their_logged_profiles(strong_run, context):
    loop = strong_run[0]
    decisions, profiles = loop.frames("decisions"), loop.frames("profiles")
    assert decisions["session_id"].tolist() == profiles["session_id"].tolist()
    assert decisions["segment"].tolist() == [context.segments[c] for c in decisions["customer_id"]]
    categories = context.assortment.categories
    affinity = profiles[[f"affinity_{c}" for c in categories]].to_numpy()
    banners, n = context.settings.policy.banners, context.settings.policy.recommendations
    personalized = np.flatnonzero((decisions["reason"] == "personalized").to_numpy())
    assert len(personalized) > 20
    assert set(decisions.iloc[personalized]["banner"]) - {COMPLETE_THE_LOOK} - set(banners.values()) == {DEFAULT_BANNER}
    for i in personalized:
        row = decisions.iloc[i]
        order = np.argsort(-affinity[i], kind="stable")
        favourite = categories[order[0]]
        runner_up = categories[order[1]] if affinity[i][order[1]] > 0 else None  # only a category actually viewed
        assert row["banner_category"] == favourite
        from_runner_up = n // 3 if runner_up is not None else 0
        expected = (context.assortment.top(n - from_runner_up, favourite).tolist()
                    + (context.assortment.top(from_runner_up, runner_up).tolist() if runner_up else []))
        assert list(row["products"]) == expected and len(set(expected)) == len(expected)
        high = context.settings.policy.high_propensity
        banner = COMPLETE_THE_LOOK if row["propensity"] >= high else banners.get(row["segment"], DEFAULT_BANNER)
        assert row["banner"] == banner
    np.testing.assert_allclose(loop.personalizer.scorer.score_frame(profiles.iloc[personalized]),
                               decisions.iloc[personalized]["propensity"], rtol=1e-6)
    shares = shown_shares(decisions, context.assortment, context.world.categories)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


@pytest.mark.parametrize("change, message", [
    ({"banners": None}, r"replay.policy: missing keys \['banners'\]"),
    ({"recommendations": 0}, "replay.policy.recommendations: must be a whole number of products"),
    ({"high_propensity": 1.5}, "replay.policy.high_propensity: must be a probability"),
    ({"banners": ["sale"]}, "replay.policy.banners: must map segment names to banner themes"),
])
def test_policy_settings_errors_name_the_key(change, message):
    section = {"recommendations": 6, "high_propensity": 0.3, "banners": {"Lapsing": "we_miss_you"}, **change}
    section = {key: value for key, value in section.items() if value is not None}
    with pytest.raises(ParamsError, match=message):
        PolicySettings.from_params(section)
    assert PolicySettings.from_params({"recommendations": 6, "high_propensity": 0.3,
                                       "banners": {1: 2}}).banners == {"1": "2"}

"""Tests for the learned lists in the replay: the treatment arm shows them, the simulated shop scores what is shown
by the true per-product taste, bad inputs have defined answers inside the loop, and the paired comparison."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from atelier.data.simulate.truth import product_preference
from atelier.recommend.serve import ListRecommender
from atelier.replay import sensitivity
from atelier.replay.explore import Exploration
from atelier.replay.policy import Assortment

from .replay_shop import active_customer, variant, visits_at


def test_relevance_follows_the_true_taste_and_counts_unknown_products_as_zero(context):
    world = context.world
    positions = np.arange(min(20, len(world.sessions)))
    rows = world.sessions.customer_row[positions]
    preference = product_preference(world.world, world.population, rows)
    product_ids = world.world.catalog["product_id"].to_numpy()
    best = [product_ids[np.argsort(-p)[:6]] for p in preference]
    worst = [product_ids[np.argsort(p)[:6]] for p in preference]
    none = np.full(len(positions), None)
    high, low = world.relevance(positions, best, none), world.relevance(positions, worst, none)
    assert (high > low).all() and (high <= 1).all() and (low >= 0).all()
    assert np.allclose(world.relevance(positions, [np.array([10**9])] * len(positions), none), 0.0)
    assert np.allclose(world.relevance(positions, [np.array([], dtype=np.int64)] * len(positions), none), 0.0)
    favourite = np.asarray(world.categories, dtype=object)[world.population.affinity[rows].argmax(axis=1)]
    assert np.allclose(world.relevance(positions, [np.array([], dtype=np.int64)] * len(positions), favourite), 1.0)


@pytest.fixture(scope="module")
def learned_context(context):
    """Everyone treated; one active customer has a hand-made learned list with a product the shop does not sell."""
    customer = active_customer(context)
    products = context.tables["products"]["product_id"].to_numpy()
    lists = pd.DataFrame({"customer_id": customer, "rank": [1, 2, 3], "product_id": [products[-1], 10**9, products[3]]})
    treated = variant(context, treatment_share=1.0)
    return dataclasses.replace(treated, recommender=ListRecommender.from_frame(lists, products[:6])), customer


def test_treatment_shows_the_learned_list_in_the_batch_and_per_event_paths(learned_context):
    context, customer = learned_context
    personalizer = context.personalizer(context.initial_state())
    decisions = personalizer.decide(visits_at([customer, customer], context.cutoff), context.cutoff)
    row = decisions.iloc[0]
    assert row["experience"] == "personalized"
    products = context.tables["products"]["product_id"].to_numpy()
    assert row["products"][:2].tolist() == [products[-1], products[3]] and row["list_source"] == "learned_filled"
    one = personalizer.decide_one(customer, 1, int(context.cutoff.value // 1000))
    assert one["products"].tolist() == row["products"].tolist() and one["list_source"] == row["list_source"]
    rule = context.personalizer(context.initial_state(), learned=False)
    assert rule.decide(visits_at([customer], context.cutoff), context.cutoff).iloc[0]["list_source"] == "rule"


def test_an_empty_catalogue_gives_empty_pages_and_the_loop_runs_on(learned_context):
    context, _ = learned_context
    empty = Assortment.from_tables(pd.DataFrame({"product_id": pd.Series(dtype="int64"),
                                                 "category": pd.Series(dtype="str")}), None)
    loop = dataclasses.replace(context, assortment=empty).closed_loop(1.0).run(until=12, progress=False)
    visits, decisions = loop.frames("visits"), loop.frames("decisions")
    assert len(visits) > 0 and decisions["products"].map(len).eq(0).all()
    assert np.allclose(visits["relevance"], 0.0) and np.allclose(visits["multiplier"], 1.0)


def paired_visits(purchased: list[bool]) -> pd.DataFrame:
    n = len(purchased)
    return pd.DataFrame({"session_id": np.arange(n), "customer_id": np.arange(n) % 50, "arm": "treatment",
                         "purchased": purchased, "revenue": 0.0})


def test_learned_vs_rule_is_paired_and_its_interval_tells_a_real_difference_from_none():
    rng = np.random.default_rng(0)
    base = rng.random(2000) < 0.2
    same = sensitivity.learned_vs_rule(paired_visits(list(base)), paired_visits(list(base)), seed=1, n_boot=200)
    assert same["relative_difference"] == 0.0 and same["ci_low"] <= 0 <= same["ci_high"]
    better = base | (rng.random(2000) < 0.05)
    up = sensitivity.learned_vs_rule(paired_visits(list(better)), paired_visits(list(base)), seed=1, n_boot=200)
    assert up["ci_low"] > 0 and up["sessions"] == 2000
    assert sensitivity.learned_vs_rule(paired_visits([]), paired_visits([]), seed=1)["sessions"] == 0


def test_exploration_offers_the_learned_list_as_its_personalized_candidate(learned_context):
    context, customer = learned_context
    visits = visits_at([customer], context.cutoff)
    learned = context.personalizer(context.initial_state()).decide(visits, context.cutoff).iloc[0]["products"]
    for exploration in (Exploration(0.0), Exploration(0.0, base="personalized")):
        explorer = context.personalizer(context.initial_state(), exploration=exploration)
        row = explorer.decide(visits, context.cutoff).iloc[0]
        assert row["action"] == "personalized" and row["action_probability"] == 1.0
        assert row["products"].tolist() == learned.tolist()
    rule = context.personalizer(context.initial_state(), learned=False, exploration=Exploration(0.0))
    assert rule.decide(visits, context.cutoff).iloc[0]["products"].tolist() != learned.tolist()

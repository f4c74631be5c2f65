"""Tests for the simulator's per-product taste: views follow each customer's view shares, hidden style matters,
and the true preference (the oracle's scores) is what the views and cart adds follow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import tiny_params

from atelier.core.config import ParamsError
from atelier.data.simulate.config import TIERS, config_from_params
from atelier.data.simulate.truth import product_preference
from atelier.data.simulate.world import (
    STREAM_CUSTOMERS,
    build_world,
    draw_population,
    pick_products,
    stream,
    style_weights,
    view_shares,
)


@pytest.fixture(scope="module")
def shop():
    config = config_from_params(tiny_params()["simulate"])
    world = build_world(config, 3)
    return world, draw_population(config, 0, 50, stream(3, STREAM_CUSTOMERS, 0))


def test_view_shares_are_distributions_that_keep_the_category_and_tier_mix(shop):
    world, population = shop
    shares = view_shares(world, population, np.arange(len(population)))
    assert np.allclose(shares.sum(axis=1), 1.0)
    category = world.catalog["group"].to_numpy() // len(TIERS)
    by_category = np.stack([shares[:, category == c].sum(axis=1) for c in range(category.max() + 1)], axis=1)
    assert np.allclose(by_category, population.affinity)  # style moves views within a group, never across


def test_picked_products_follow_the_customers_view_shares(shop):
    world, population = shop
    customer = 4
    within = style_weights(world, population.style[[customer]])[0]
    group = int(world.catalog["group"].iloc[0])
    members = np.flatnonzero(world.catalog["group"].to_numpy() == group)
    n = 40_000
    rng = np.random.default_rng(0)
    picked = pick_products(world, population, np.full(n, customer), np.full(n, group), rng.random(n))
    assert set(np.unique(picked)) <= set(members)
    observed = np.bincount(picked, minlength=len(world.catalog))[members] / n
    assert np.abs(observed - within[members]).max() < 0.01


def test_style_changes_who_prefers_what_and_strength_zero_leaves_only_popularity(shop):
    world, population = shop
    preference = product_preference(world, population)
    top = np.argsort(-preference, axis=1)[:, :6]
    assert len({tuple(sorted(row)) for row in top}) > len(population) // 2  # personal, not one bestseller list
    flat = dataclasses.replace(world, config=dataclasses.replace(world.config, style_strength=0.0))
    within = style_weights(flat, population.style)
    assert np.allclose(within, within[0]) and np.allclose(within[0], world.catalog["popularity"].to_numpy())


def test_style_settings_are_checked():
    params = tiny_params()["simulate"]
    for key, value in (("style_dims", 0), ("style_strength", -1.0)):
        broken = {**params, "catalog": {**params["catalog"], key: value}}
        with pytest.raises(ParamsError, match=f"catalog.{key}"):
            config_from_params(broken)

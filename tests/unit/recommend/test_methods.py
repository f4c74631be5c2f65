"""Tests for atelier.recommend.methods and interactions: a tiny shop where taste is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.recommend import interactions, methods

CUTOFF = pd.Timestamp("2025-03-01")


def tiny_events() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Customers 1-40 like products 1-5 (category a), 41-80 like 6-10 (category b); customer 81 has no history."""
    rng = np.random.default_rng(0)
    rows = []
    for customer in range(1, 81):
        liked = np.arange(1, 6) if customer <= 40 else np.arange(6, 11)
        for product in rng.choice(liked, 3, replace=False):
            rows.append((customer, CUTOFF - pd.Timedelta(days=int(rng.integers(1, 60))), "product_view", product))
    rows.append((1, CUTOFF - pd.Timedelta(days=1), "product_view", 999))  # a product unknown to the catalogue
    rows.append((1, CUTOFF + pd.Timedelta(days=1), "purchase", 2))  # after the cutoff
    events = pd.DataFrame(rows, columns=["customer_id", "ts", "event_type", "product_id"])
    return events, np.arange(1, 82), np.arange(1, 11), np.array(["a"] * 5 + ["b"] * 5)


def test_matrix_keeps_only_known_events_before_the_cutoff_and_gains_after_it():
    events, customers, products, _ = tiny_events()
    encoded = interactions.EncodedEvents.encode(events, customers, products)
    data = interactions.build(encoded, CUTOFF, customers, products, {"product_view": 1.0}, 30.0)
    assert data.weighted.shape == (81, 10) and data.weighted.sum() < 240 and data.views.sum() == 240
    assert not data.has_history[-1] and data.has_history[:-1].all()
    assert np.isclose(interactions.unknown_share(events, products), 1 / len(events))
    gains = interactions.horizon_gains(encoded, CUTOFF, 30, data.weighted.shape, {"purchase": 3.0})
    assert gains.nnz == 1 and gains[0, 1] == 3.0


def test_learned_methods_recommend_within_the_customers_taste_and_cold_starts_get_the_fallback():
    events, customers, products, category = tiny_events()
    data = interactions.build(interactions.EncodedEvents.encode(events, customers, products), CUTOFF, customers,
                              products, {"product_view": 1.0}, 30.0)
    fallback = methods.ranked(data.recent, 3)
    als = methods.with_cold_start(methods.als_lists(*methods.fit_als(
        data, methods.AlsSettings(4, 0.1, 10.0, 15), 0, 1), 3), data.has_history, fallback)
    similarity = methods.fit_item_item(data, 5, 1)
    item_item = methods.item_item_lists(data.weighted, similarity, 3)
    for lists in (als, item_item):
        assert (lists[:40] < 5).mean() > 0.9 and (lists[40:80] >= 5).mean() > 0.9
    assert als[80].tolist() == fallback.tolist()
    rule = methods.category_rule(data, category, 3)
    assert (rule[:40] < 5).all() and (rule[40:80] >= 5).all()
    assert rule[80].tolist() == methods.ranked(data.views, 3).tolist()


def test_lists_are_as_long_as_the_catalogue_allows_and_ties_are_reproducible():
    assert methods.top_k(np.array([[1.0, 1.0, 0.0]]), 6).tolist() == [[0, 1, 2]]
    assert methods.non_personal(np.array([0.0, 2.0]), 2, 1).tolist() == [[1], [1]]

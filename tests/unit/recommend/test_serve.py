"""Tests for atelier.recommend.serve: every bad input has a defined answer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.recommend.serve import ListRecommender

CATALOGUE = np.arange(1, 21)


def recommender() -> ListRecommender:
    frame = pd.DataFrame({"customer_id": [7, 7, 7, 9, 9], "rank": [2, 1, 3, 1, 2], "product_id": [5, 4, 99, 3, 2]})
    return ListRecommender.from_frame(frame, fallback=np.array([10, 11, 12, 13]))


def test_known_customer_gets_their_ranked_list():
    page, source = recommender().page(9, CATALOGUE, 2)
    assert page.tolist() == [3, 2] and source == "learned"


def test_unknown_product_is_skipped_and_the_page_filled_from_the_fallback():
    page, source = recommender().page(7, CATALOGUE, 4)
    assert page.tolist() == [4, 5, 10, 11] and source == "learned_filled"  # 99 is not in the catalogue


def test_customer_without_history_or_with_a_bad_id_gets_the_fallback():
    for customer in (12345, None, "not-an-id"):
        page, source = recommender().page(customer, CATALOGUE, 3)
        assert page.tolist() == [10, 11, 12] and source == "fallback"


def test_catalogue_smaller_than_k_gives_the_whole_catalogue_and_empty_gives_nothing():
    page, source = recommender().page(9, np.array([2, 3, 17]), 6)
    assert sorted(page.tolist()) == [2, 3, 17] and page.tolist()[:2] == [3, 2] and source == "learned_filled"
    page, source = recommender().page(9, np.array([], dtype=np.int64), 6)
    assert page.size == 0 and source == "empty_catalogue"

"""Serving the learned lists: one customer's page in microseconds, with a defined answer for every bad input.

- a customer with no list (no history at the cutoff, or unknown): the fallback (recency-weighted bestsellers);
- a listed product no longer in the catalogue (unknown to the page): skipped, the page is filled from the fallback
  and then from the catalogue's own order;
- a catalogue smaller than k: the whole catalogue, in that order; an empty catalogue: an empty page.
Each answer carries its reason, so fallbacks can be counted; nothing raises inside the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Why a page holds what it holds.
SOURCES = ("learned", "learned_filled", "fallback", "empty_catalogue")


@dataclass(frozen=True)
class ListRecommender:
    """Lists per customer (ranked product ids) and the fallback list."""

    lists: dict[int, np.ndarray]
    fallback: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, fallback: np.ndarray) -> ListRecommender:
        """From `customer_id, rank, product_id` rows (data/recommend/lists.parquet)."""
        ordered = frame.sort_values(["customer_id", "rank"], kind="stable")
        ids = ordered["customer_id"].to_numpy()
        products = ordered["product_id"].to_numpy(np.int64)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=int)
        ends = np.r_[starts[1:], len(ids)]
        return cls(lists={int(ids[s]): products[s:e] for s, e in zip(starts, ends)},
                   fallback=np.asarray(fallback, dtype=np.int64))

    def page(self, customer_id: object, catalogue: np.ndarray, k: int) -> tuple[np.ndarray, str]:
        """Up to k product ids from `catalogue` (ids in the shop's order) for the customer, and the source."""
        catalogue = np.asarray(catalogue, dtype=np.int64)
        if len(catalogue) == 0 or k <= 0:
            return catalogue[:0], "empty_catalogue"
        try:
            listed = self.lists.get(int(customer_id))
        except (TypeError, ValueError):
            listed = None
        source = "fallback" if listed is None else "learned"
        wanted = self.fallback if listed is None else listed
        available = wanted[np.isin(wanted, catalogue)]
        if len(available) >= min(k, len(catalogue)):
            return available[:k], source
        filled = pd.unique(np.concatenate([available, self.fallback[np.isin(self.fallback, catalogue)], catalogue]))
        return filled[: min(k, len(catalogue))], "learned_filled" if listed is not None else source

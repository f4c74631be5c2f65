"""The customer x product interaction matrix before a cutoff, and what each customer did in the horizon after it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    """Events before `cutoff` as a sparse customer x product matrix of decayed, event-type-weighted counts.

    Rows follow `customers` (every known customer, with or without events), columns follow `products`.
    """

    cutoff: pd.Timestamp
    customers: np.ndarray
    products: np.ndarray
    weighted: sp.csr_matrix  # sum over events of weight[type] x 0.5 ** (age_days / half_life)
    views: np.ndarray  # per product: product views before the cutoff (the popularity baselines)
    recent: np.ndarray  # per product: decayed weighted interactions (recency-weighted popularity)

    @property
    def has_history(self) -> np.ndarray:
        """Customers with at least one interaction before the cutoff (the others are cold starts)."""
        return np.diff(self.weighted.indptr) > 0


def _codes(values: pd.Series, universe: np.ndarray) -> np.ndarray:
    """Position of each value in `universe` (-1 when absent)."""
    return pd.Index(universe).get_indexer(values.to_numpy())


@dataclass(frozen=True)
class EncodedEvents:
    """Events as arrays: customer row, product column (-1 when unknown), event type, seconds since the epoch."""

    row: np.ndarray
    col: np.ndarray
    event_type: np.ndarray
    seconds: np.ndarray

    @classmethod
    def encode(cls, events: pd.DataFrame, customers: np.ndarray, products: np.ndarray) -> EncodedEvents:
        return cls(row=_codes(events["customer_id"], customers),
                   col=_codes(events["product_id"].astype("float64"), products),
                   event_type=events["event_type"].astype(str).to_numpy(),
                   seconds=events["ts"].to_numpy("datetime64[s]").astype(np.int64))

    def weights(self, weights: dict[str, float]) -> np.ndarray:
        weight = np.zeros(len(self.row))
        for name, value in weights.items():
            weight[self.event_type == name] = float(value)
        return weight


def _seconds(when: pd.Timestamp) -> int:
    return int(np.datetime64(when, "s").astype(np.int64))


def build(events: EncodedEvents, cutoff: pd.Timestamp, customers: np.ndarray, products: np.ndarray,
          weights: dict[str, float], half_life_days: float) -> Interactions:
    """The matrix of `events` strictly before `cutoff`; events of unknown customers or products, or of types
    without a weight, are left out (the caller counts them with `unknown_share`)."""
    before = events.seconds < _seconds(cutoff)
    weight = events.weights(weights)
    keep = before & (events.row >= 0) & (events.col >= 0) & (weight > 0)
    age_days = (_seconds(cutoff) - events.seconds[keep]) / 86_400
    decayed = weight[keep] * 0.5 ** (age_days / half_life_days)
    matrix = sp.csr_matrix((decayed, (events.row[keep], events.col[keep])), shape=(len(customers), len(products)),
                           dtype=np.float64)
    matrix.sum_duplicates()
    is_view = before & (events.event_type == "product_view") & (events.col >= 0)
    views = np.bincount(events.col[is_view], minlength=len(products)).astype(float)
    return Interactions(cutoff=cutoff, customers=np.asarray(customers), products=np.asarray(products),
                        weighted=matrix, views=views, recent=np.asarray(matrix.sum(axis=0)).ravel())


def unknown_share(events: pd.DataFrame, products: np.ndarray) -> float:
    """Share of events naming a product outside `products` (they cannot enter the matrix)."""
    if len(events) == 0:
        return 0.0
    return float((_codes(events["product_id"].astype("float64"), products) < 0).mean())


def horizon_gains(events: EncodedEvents, cutoff: pd.Timestamp, horizon_days: int, shape: tuple[int, int],
                  gains: dict[str, float]) -> sp.csr_matrix:
    """What each customer did with each product in [cutoff, cutoff + horizon): the largest gain of its events
    (e.g. view 1, cart 2, purchase 3): the graded relevance the offline metrics score lists against."""
    begin = _seconds(cutoff)
    gain = events.weights(gains)
    keep = ((events.seconds >= begin) & (events.seconds < begin + horizon_days * 86_400) & (events.row >= 0)
            & (events.col >= 0) & (gain > 0))
    frame = pd.DataFrame({"row": events.row[keep], "col": events.col[keep], "gain": gain[keep]})
    best = frame.groupby(["row", "col"], sort=True)["gain"].max().reset_index()
    return sp.csr_matrix((best["gain"].to_numpy(), (best["row"].to_numpy(), best["col"].to_numpy())), shape=shape)

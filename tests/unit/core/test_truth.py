"""Reading the simulator's truth: aligned to the customers asked for, and None when there is no truth (user data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.core import paths, truth
from atelier.core.config import load_params


def test_no_truth_on_user_data(tmp_path):
    assert truth.personas(tmp_path, pd.Index([1, 2, 3])) is None
    assert truth.order_probability(tmp_path, pd.Timestamp("2025-05-01"), pd.Index([1, 2], name="customer_id")) is None


def test_personas_aligned_with_customers(tiny_root):
    stored = pd.read_parquet(tiny_root / paths.TRUTH_CUSTOMERS, columns=["customer_id", "persona"])
    chosen = stored["customer_id"].iloc[[5, 0, 17, 3]].tolist()
    customers = pd.Index(chosen + [10**9], name="customer_id")  # plus one id the truth does not know
    personas = truth.personas(tiny_root, customers)
    assert personas is not None and list(personas.index) == list(customers)
    lookup = dict(zip(stored["customer_id"], stored["persona"]))
    assert personas.iloc[:4].tolist() == [lookup[c] for c in chosen]
    assert pd.isna(personas.iloc[4])
    known = set(load_params(tiny_root / "params.yaml")["simulate"]["personas"])
    assert set(truth.personas(tiny_root, pd.Index(stored["customer_id"]))) <= known


def test_order_probability_is_aligned_to_the_customers_and_the_cutoff(tiny_root):
    stored = pd.read_parquet(tiny_root / paths.TRUTH_ORDER_PROBABILITY)
    cutoffs = sorted(stored["cutoff"].unique())
    last = cutoffs[-1]
    expected = stored[stored["cutoff"] == last].set_index("customer_id")["p_true"]
    customers = pd.Index(expected.index[:50], name="customer_id")
    p = truth.order_probability(tiny_root, last, customers)
    assert p.index.equals(customers) and p.between(0, 1).all()
    np.testing.assert_array_equal(p.to_numpy(), expected.loc[customers].to_numpy())
    # Another order of customers (and an unknown one) gets the same values in that order (NaN if unknown).
    shuffled = pd.Index(list(customers[::-1][:20]) + [10**9], name="customer_id")
    q = truth.order_probability(tiny_root, last, shuffled)
    assert q.index.equals(shuffled)
    np.testing.assert_array_equal(q.iloc[:20].to_numpy(), expected.loc[shuffled[:20]].to_numpy())
    assert np.isnan(q.iloc[-1])
    # A different cutoff gives that cutoff's probabilities (the truth differs between months).
    earlier = truth.order_probability(tiny_root, cutoffs[0], customers)
    assert not np.allclose(earlier.fillna(-1), p)

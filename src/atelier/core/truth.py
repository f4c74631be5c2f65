"""Reading what only the simulator knows (data/truth/): for comparing results with the truth, never as a model input.

Every reader returns None when there is no truth (the project runs on a retailer's own files), so
callers skip the comparison instead of failing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from atelier.core import paths


def personas(root: Path, customers: pd.Index) -> pd.Series | None:
    """The simulator's hidden persona per customer (aligned to `customers`; NaN for unknown ids), or None for user
    data."""
    path = Path(root) / paths.TRUTH_CUSTOMERS
    if not path.exists():
        return None
    return (
        pd.read_parquet(path, columns=["customer_id", "persona"]).set_index("customer_id")["persona"].reindex(customers)
    )


def order_probability(root: Path, cutoff: pd.Timestamp, customers: pd.Index) -> pd.Series | None:
    """The simulator's exact P(order in the horizon after `cutoff`) per customer, or None for user data.

    For scoring models against the ceiling (the oracle AUC) only.
    """
    path = Path(root) / paths.TRUTH_ORDER_PROBABILITY
    if not path.exists():
        return None
    truth = pd.read_parquet(path)
    truth = truth[truth["cutoff"] == cutoff].set_index("customer_id")["p_true"]
    return truth.reindex(customers)

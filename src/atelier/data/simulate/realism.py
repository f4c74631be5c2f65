"""Is the simulated shop believable? Funnel, repeat-buying, spend and device figures.

Targets (tested in tests/unit/data/test_simulate.py, reported in metrics/simulate.json):
session-to-purchase conversion about 1.5-4 %, cart abandonment 60-80 %, 40-60 % of buyers ordering
once in the period, heavy-tailed spend, mobile sessions outnumbering desktop but converting less.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.data.simulate.config import DEVICES


def session_counts(sessions: pd.DataFrame) -> pd.DataFrame:
    """Sessions, sessions with a cart add and purchasing sessions, per device."""
    counts = sessions.assign(with_cart=sessions["cart_adds"] > 0).groupby("device", observed=False).agg(
        sessions=("session_id", "size"), with_cart=("with_cart", "sum"), purchased=("purchased", "sum")
    )
    return counts.reindex(list(DEVICES), fill_value=0).astype(np.int64)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = all equal, near 1 = one holds everything)."""
    values = np.sort(np.asarray(values, dtype=float))
    if len(values) == 0 or values.sum() == 0:
        return 0.0
    ranks = np.arange(1, len(values) + 1)
    return float((2 * (ranks * values).sum()) / (len(values) * values.sum()) - (len(values) + 1) / len(values))


def realism_metrics(device_counts: pd.DataFrame, orders: pd.DataFrame) -> dict:
    """Funnel, repeat-buying, spend concentration and device figures for the whole period."""
    total = device_counts.sum()
    orders_per_buyer = orders.groupby("customer_id").size()
    spend = orders.groupby("customer_id")["amount"].sum().to_numpy()
    top_decile = np.sort(spend)[::-1][: max(1, len(spend) // 10)]
    by_device = {
        device: {
            "session_share": row.sessions / max(total.sessions, 1),
            "conversion": row.purchased / max(row.sessions, 1),
        }
        for device, row in device_counts.iterrows()
    }
    return {
        "session_conversion": total.purchased / max(total.sessions, 1),
        "cart_abandonment": 1 - total.purchased / max(total.with_cart, 1),
        "single_order_buyer_share": float((orders_per_buyer == 1).mean()) if len(orders_per_buyer) else 0.0,
        "orders_per_buyer_mean": float(orders_per_buyer.mean()) if len(orders_per_buyer) else 0.0,
        "spend_top_decile_share": float(top_decile.sum() / spend.sum()) if spend.sum() else 0.0,
        "spend_gini": gini(spend),
        "spend_mean_over_median": float(spend.mean() / np.median(spend)) if len(spend) else 0.0,
        "order_value_median": float(orders["amount"].median()) if len(orders) else 0.0,
        "order_value_p99": float(orders["amount"].quantile(0.99)) if len(orders) else 0.0,
        "devices": by_device,
    }


def label_check(
    orders: pd.DataFrame, customers: pd.DataFrame, probabilities: pd.DataFrame, horizon_days: int
) -> dict:
    """Per cutoff: share of customers (joined before it) who ordered in the horizon vs the mean true chance.

    The two should agree within sampling error: a direct check that the truth matches the data.
    """
    checks = {}
    joined = customers.set_index("customer_id")["signup_at"]
    for cutoff, group in probabilities.groupby("cutoff"):
        cutoff = pd.Timestamp(cutoff)
        known = group[group["customer_id"].map(joined).lt(cutoff).to_numpy()]
        ordered_at = orders["ordered_at"]
        window = orders[(ordered_at >= cutoff) & (ordered_at < cutoff + pd.Timedelta(days=horizon_days))]
        ordered = known["customer_id"].isin(window["customer_id"])
        p = known["p_true"].to_numpy()
        checks[cutoff.date().isoformat()] = {
            "customers": len(known),
            "ordered_share": float(ordered.mean()),
            "true_probability_mean": float(p.mean()),
            "standard_error": float(np.sqrt((p * (1 - p)).sum()) / max(len(p), 1)),
        }
    return checks

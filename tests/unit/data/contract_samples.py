"""Small contract tables for the validate tests: every cell text, as read from a CSV, and all valid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.data.validate import ValidationResult, validate_tables

VALID_FROM = pd.Timestamp("2000-01-01")
VALID_UNTIL = pd.Timestamp("2026-01-01")


def sample_orders() -> pd.DataFrame:
    """Five good orders, every cell text (as read from a CSV)."""
    return pd.DataFrame(
        {
            "customer_id": ["1", "2", "3", "1", "2"],
            "order_id": ["100", "101", "102", "103", "104"],
            "ordered_at": [
                "2025-01-05T10:00:00",
                "2025-01-06T11:30:00Z",
                "2025-02-01 09:15:00+02:00",
                "2025-03-01",
                "2025-03-02T23:59:59.5",
            ],
            "amount": ["49.90", "10", "0", "120.5", "7.25"],
            "quantity": ["1", "2", None, "3", "1"],
            "product_id": ["10", None, "11", "12", "10"],
            "discount": [None, "0", "5.5", None, "1"],
            "session_id": ["1000", "1001", None, "1003", "1004"],
            "channel": ["web", "app", "web", "web", "app"],  # an extra column
        }
    )


def sample_events() -> pd.DataFrame:
    """Six events in three sessions, with an unknown event type and device (both kept)."""
    return pd.DataFrame(
        {
            "event_id": ["1", "2", "3", "4", "5", "6"],
            "customer_id": ["1", "1", "2", "2", "3", "3"],
            "session_id": ["1000", "1000", "1001", "1001", "1002", "1002"],
            "ts": [
                "2025-01-05T09:50:00",
                "2025-01-05T09:55:00",
                "2025-01-06T11:00:00",
                "2025-01-06T11:20:00",
                "2025-02-01T07:00:00",
                "2025-02-01T07:05:00",
            ],
            "event_type": ["product_view", "add_to_cart", "product_view", "wishlist", " product_view ", "purchase"],
            "product_id": ["10", "10", "11", None, "12", "12"],
            "device": ["mobile", "mobile", "desktop", "desktop", "smart_tv", None],
            "dwell_seconds": ["30", "12.5", None, "4", "0", "8"],
        }
    )


def sample_customers() -> pd.DataFrame:
    """Three customers, one without a signup date."""
    return pd.DataFrame(
        {
            "customer_id": ["1", "2", "3"],
            "signup_at": ["2024-01-01", None, "2023-06-30T12:00:00Z"],
            "age_band": ["25-34", " 35-44 ", ""],
            "gender": ["female", "male", None],
            "region": ["north", "south", "east"],
        }
    )


def sample_products() -> pd.DataFrame:
    """Three products."""
    return pd.DataFrame(
        {
            "product_id": ["10", "11", "12"],
            "category": ["dresses", "shoes", "tops"],
            "price": ["59.9", "89", "19.5"],
            "price_tier": ["mid", "premium", "budget"],
        }
    )


def sample_tables() -> dict[str, pd.DataFrame]:
    """All four contract tables."""
    return {
        "orders": sample_orders(),
        "events": sample_events(),
        "customers": sample_customers(),
        "products": sample_products(),
    }


def validated(raw: dict[str, pd.DataFrame], **kwargs) -> ValidationResult:
    """validate_tables with the tests' bounds, checking the accounting identity of every table."""
    options = dict(valid_from=VALID_FROM, valid_until=VALID_UNTIL, max_bad_value_share=0.5)
    options.update(kwargs)
    result = validate_tables(raw, **options)
    for name, entry in result.report["tables"].items():  # the accounting identity, every time
        assert entry["rows_in"] == len(raw[name]) == entry["rows_valid"] + entry["rows_quarantined"]
        assert entry["rows_valid"] == len(result.tables[name])
        assert entry["rows_quarantined"] == len(result.quarantine[name])
    return result


def reasons_by_row(result: ValidationResult, table: str) -> dict[int, str]:
    """source_row -> reason for one table's quarantine."""
    quarantine = result.quarantine[table]
    return dict(zip(quarantine["source_row"].tolist(), quarantine["reason"].tolist()))


def valid_tables() -> dict[str, pd.DataFrame]:
    """A small valid shop (60 customers, 400 orders, 300 sessions of 4 events), typed as validate leaves it."""
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2025-01-01")
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, 61),
            "signup_at": start - pd.to_timedelta(rng.integers(1, 900, 60), unit="D"),
            "region": rng.choice(["north", "south"], 60),
        }
    )
    products = pd.DataFrame(
        {
            "product_id": np.arange(1, 11),
            "category": rng.choice(["dresses", "shoes"], 10),
            "price": rng.uniform(10, 90, 10).round(2),
        }
    )
    orders = pd.DataFrame(
        {
            "customer_id": rng.integers(1, 61, 400),
            "order_id": np.arange(1, 401),
            "ordered_at": start + pd.to_timedelta(np.sort(rng.integers(0, 180 * 86_400_000, 400)), unit="ms"),
            "amount": rng.uniform(5, 200, 400).round(2),
            "quantity": rng.integers(1, 4, 400),
        }
    )
    session_start = start + pd.to_timedelta(np.sort(rng.integers(0, 180 * 86_400, 300)), unit="s")
    events = pd.DataFrame(
        {
            "event_id": np.arange(1, 1201),
            "customer_id": np.repeat(rng.integers(1, 61, 300), 4),
            "session_id": np.repeat(np.arange(1, 301), 4),
            "ts": np.repeat(session_start, 4) + pd.to_timedelta(np.tile(np.arange(4) * 30, 300), unit="s"),
            "event_type": rng.choice(["product_view", "add_to_cart", "purchase"], 1200, p=[0.8, 0.15, 0.05]),
            "product_id": rng.integers(1, 11, 1200),
            "device": rng.choice(["mobile", "desktop"], 1200),
            "dwell_seconds": rng.uniform(1, 90, 1200).round(1),
        }
    )
    raw = {"orders": orders, "events": events, "customers": customers, "products": products}
    result = validate_tables(
        raw, valid_from=pd.Timestamp("2000-01-01"), valid_until=pd.Timestamp.now(), max_bad_value_share=0.5
    )
    assert all(len(q) == 0 for q in result.quarantine.values())
    return result.tables

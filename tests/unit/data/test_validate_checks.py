"""Tests for atelier.data.validate.checks: every contract check, one bad cell at a time."""

from __future__ import annotations

import pandas as pd
import pytest

from atelier.core.contract import DataContractError

from .contract_samples import (
    reasons_by_row,
    sample_events,
    sample_orders,
    sample_products,
    sample_tables,
    validated,
)

ORDER_CASES = [
    # (column, bad value, reason text, reason class)
    ("customer_id", None, "missing customer_id", "missing customer_id"),
    ("amount", None, "missing amount", "missing amount"),
    ("amount", "abc", "amount is not a number: 'abc'", "unparseable amount"),
    ("amount", "-5", "amount is negative", "amount is negative"),
    ("ordered_at", "31/02/2025", "ordered_at is not an ISO 8601 timestamp: '31/02/2025'", "unparseable ordered_at"),
    ("ordered_at", "1999-12-31T23:00:00", "ordered_at is before valid_from 2000-01-01", "timestamp before valid_from"),
    ("ordered_at", "2026-03-01", "ordered_at is after valid_until 2026-01-01", "timestamp after valid_until"),
    ("quantity", "2.5", "quantity is not a whole number: '2.5'", "unparseable quantity"),
    ("quantity", "0", "quantity must be >= 1", "quantity must be >= 1"),
    ("discount", "-1", "discount is negative", "discount is negative"),
]


@pytest.mark.parametrize(("column", "value", "text", "reason_class"), ORDER_CASES)
def test_bad_order_cell_is_quarantined(column, value, text, reason_class):
    orders = sample_orders()
    orders.loc[2, column] = value
    result = validated({"orders": orders})
    assert reasons_by_row(result, "orders") == {3: text}
    assert result.report["tables"]["orders"]["reasons"] == {reason_class: 1}
    assert 102 not in result.tables["orders"]["order_id"].tolist()
    quarantined = result.quarantine["orders"].iloc[0]
    assert quarantined["order_id"] == "102"
    assert (pd.isna(quarantined[column]) if value is None else quarantined[column] == value)


def test_future_timestamp_when_valid_until_is_now():
    orders = sample_orders()
    orders.loc[0, "ordered_at"] = "2999-01-01"
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    result = validated({"orders": orders}, valid_until=now)
    assert reasons_by_row(result, "orders") == {1: f"ordered_at is after {now:%Y-%m-%d %H:%M} (in the future)"}
    assert result.report["tables"]["orders"]["reasons"] == {"timestamp in the future": 1}


def test_duplicate_key_keeps_first_occurrence():
    orders = sample_orders()
    orders.loc[3, "order_id"] = "101"
    orders.loc[4, "order_id"] = "101"
    result = validated({"orders": orders})
    assert reasons_by_row(result, "orders") == {
        4: "duplicate order_id (first occurrence kept)",
        5: "duplicate order_id (first occurrence kept)",
    }
    assert result.report["tables"]["orders"]["reasons"] == {"duplicate order_id": 2}
    kept = result.tables["orders"]
    assert kept.loc[kept["order_id"] == 101, "amount"].tolist() == [10.0]  # the first one


def test_non_positive_price_is_quarantined():
    products = sample_products()
    products.loc[1, "price"] = "0"
    result = validated({"orders": sample_orders(), "products": products})
    assert reasons_by_row(result, "products") == {2: "price must be > 0"}
    # product 11 is gone, so the order of product 11 is quarantined as unknown
    assert reasons_by_row(result, "orders") == {3: "unknown product_id (not in products)"}


def test_unknown_customer_and_product():
    raw = sample_tables()
    raw["orders"].loc[0, "customer_id"] = "99"
    raw["events"].loc[1, "product_id"] = "77"
    raw["events"].loc[3, "product_id"] = None  # a missing optional product is fine
    result = validated(raw)
    assert reasons_by_row(result, "orders") == {1: "unknown customer_id (not in customers)"}
    assert reasons_by_row(result, "events") == {2: "unknown product_id (not in products)"}
    assert result.report["tables"]["orders"]["reasons"] == {"unknown customer_id": 1}
    assert result.report["tables"]["events"]["reasons"] == {"unknown product_id": 1}


def test_orders_of_a_quarantined_customer_are_unknown():
    raw = sample_tables()
    raw["customers"].loc[2, "signup_at"] = "not a date"
    result = validated(raw)
    assert reasons_by_row(result, "customers") == {3: "signup_at is not an ISO 8601 timestamp: 'not a date'"}
    assert reasons_by_row(result, "orders") == {3: "unknown customer_id (not in customers)"}
    assert set(reasons_by_row(result, "events")) == {5, 6}


def test_session_shared_by_several_customers():
    events = sample_events()
    events.loc[3, "customer_id"] = "3"  # session 1001 now has customers 2 and 3
    result = validated({"orders": sample_orders(), "events": events})
    assert reasons_by_row(result, "events") == {
        3: "session_id shared by several customers",
        4: "session_id shared by several customers",
    }
    assert result.report["tables"]["events"]["reasons"] == {"session_id shared by several customers": 2}


def test_unparseable_value_is_not_also_reported_missing():
    orders = sample_orders()
    orders.loc[0, "amount"] = "12,50"
    result = validated({"orders": orders})
    assert reasons_by_row(result, "orders") == {1: "amount is not a number: '12,50'"}


def _error(raw, **kwargs) -> str:
    with pytest.raises(DataContractError) as caught:
        validated(raw, sources={name: f"data/mine/{name}.csv" for name in raw}, **kwargs)
    return str(caught.value)


def test_missing_required_column():
    message = _error({"orders": sample_orders().drop(columns="amount")})
    assert "data/mine/orders.csv" in message and "'amount'" in message
    assert "Add it (amount paid, after discounts) or rename your column to 'amount'" in message


def test_missing_required_column_suggests_near_name():
    message = _error({"orders": sample_orders().rename(columns={"amount": " Amount"})})
    assert "found ' Amount': rename it to 'amount'" in message


def test_missing_required_column_in_optional_table():
    message = _error({"orders": sample_orders(), "products": sample_products().drop(columns="category")})
    assert "data/mine/products.csv" in message and "'category'" in message and "rename" in message


def test_wrong_type_column():
    orders = sample_orders()
    orders["amount"] = ["cheap", "dear", "cheap", "10", "free"]
    message = _error({"orders": orders})
    assert "data/mine/orders.csv" in message and "'amount'" in message and "wrong type" in message
    assert "'cheap', 'dear', 'free'" in message and "Expected a number" in message


def test_bad_share_at_the_threshold_is_quarantined_not_fatal():
    orders = sample_orders()
    orders.loc[[0, 1], "ordered_at"] = ["soon", "later"]  # 2 of 5 non-empty values: 40% < 50%
    result = validated({"orders": orders})
    assert result.report["tables"]["orders"]["reasons"] == {"unparseable ordered_at": 2}
    message = _error({"orders": orders}, max_bad_value_share=0.3)
    assert "'ordered_at'" in message and "ISO 8601" in message


def test_empty_orders():
    message = _error({"orders": sample_orders().iloc[0:0]})
    assert "data/mine/orders.csv" in message and "no rows" in message


def test_a_column_named_like_a_quarantine_column_is_refused():
    for name in ("reason", "reason_classes", "source_row"):
        message = _error({"orders": sample_orders().assign(**{name: "x"})})
        assert f"column '{name}' is reserved" in message and f"input_{name}" in message


def test_a_missing_value_is_reported_beside_another_columns_unparseable_value():
    orders = sample_orders()
    orders.loc[1, ["amount", "customer_id"]] = ["x", None]
    result = validated({"orders": orders})
    assert reasons_by_row(result, "orders") == {2: "missing customer_id; amount is not a number: 'x'"}
    assert result.report["tables"]["orders"]["reasons"] == {"missing customer_id": 1, "unparseable amount": 1}

"""Tests for atelier.data.features: hand-computed feature values, the leakage rule, the label, and the
batch/streaming contract (`customer_state` + `finalize`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.data import features as F
from atelier.data import leakage
from atelier.data.features import (
    FeatureSettings,
    before_cutoff,
    build_features,
    build_snapshot,
    customer_state,
    feature_catalog,
    feature_groups,
    finalize,
    label_window_complete,
    purchase_label,
    skipped_groups,
)

SETTINGS = FeatureSettings()  # windows 7/30/90 days, half-life 14 days, weights view 1, cart 3, purchase 10
CUTOFF = pd.Timestamp("2025-03-01")
MINUTE = 1 / 1440  # in days
HOUR = 1 / 24


# --------------------------------------------------------------------------------------------
# A hand-made shop (dtypes as atelier.validate produces them)
# --------------------------------------------------------------------------------------------
def _ts(*values) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), format="ISO8601"), dtype="datetime64[us]")


def _text(values, kind: str = "string") -> pd.Series:
    return pd.Series(values, dtype=kind)


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": np.array([1, 2, 3, 4], dtype="int64"),
            "customer_id": np.array([1, 1, 1, 6], dtype="int64"),
            "ordered_at": _ts("2025-01-10", "2025-02-15", "2025-02-20T12:00", "2024-12-01T12:00"),
            "amount": [100.0, 50.0, 30.0, 20.0],
            "quantity": pd.array([1, 2, 1, 1], dtype="Int64"),
            "discount": [10.0, np.nan, 0.0, np.nan],
            "session_id": pd.array([None, None, None, None], dtype="Int64"),
        }
    )


# (event_id, customer, session, ts, type, product, device, dwell)
_EVENT_ROWS = [
    # customer 1, session 10 (mobile): starts exactly at cutoff - 7 days; cart add and purchase
    (1, 1, 10, "2025-02-22T00:00", "product_view", 1, "mobile", 30.0),
    (2, 1, 10, "2025-02-22T00:05", "add_to_cart", 1, "mobile", 10.0),
    (3, 1, 10, "2025-02-22T00:10", "purchase", 1, "mobile", 5.0),
    # customer 1, session 11 (desktop first, then mobile): one hour before cutoff - 7 days; cart, no purchase
    (4, 1, 11, "2025-02-21T23:00", "product_view", 2, "desktop", 20.0),
    (5, 1, 11, "2025-02-21T23:01", "product_view", 1, "mobile", np.nan),
    (6, 1, 11, "2025-02-21T23:02", "add_to_cart", 2, "mobile", 0.0),
    (12, 1, 11, "2025-02-21T23:03", "add_to_cart", 1, "mobile", np.nan),  # a second cart add, same session
    # customer 1, session 12 (tablet): exactly cutoff - 90 days
    (7, 1, 12, "2024-12-01T00:00", "product_view", 3, "tablet", 40.0),
    # customer 1, session 13 (desktop): just outside 90 days; an event type the features do not weigh
    (8, 1, 13, "2024-11-30T23:00", "wishlist", None, "desktop", 15.0),
    # customer 2 (signup unknown): two sessions, both with a cart add, neither with a purchase
    (9, 2, 20, "2025-02-01T00:00", "product_view", 2, "desktop", 60.0),
    (10, 2, 20, "2025-02-01T00:02", "add_to_cart", 2, "desktop", np.nan),
    (11, 2, 21, "2025-02-15T00:00", "add_to_cart", 3, "mobile", np.nan),
]


def _events(kind: str = "category", rows=_EVENT_ROWS) -> pd.DataFrame:
    events = pd.DataFrame(
        {
            "event_id": np.array([r[0] for r in rows], dtype="int64"),
            "customer_id": np.array([r[1] for r in rows], dtype="int64"),
            "session_id": np.array([r[2] for r in rows], dtype="int64"),
            "ts": _ts(*[r[3] for r in rows]),
            "event_type": _text([r[4] for r in rows], kind),
            "product_id": pd.array([r[5] for r in rows], dtype="Int64"),
            "device": _text([r[6] for r in rows], kind),
            "dwell_seconds": [r[7] for r in rows],
        }
    )
    # Rows out of time order: the features must not depend on row order.
    return events.iloc[::-1].reset_index(drop=True)


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": np.array([1, 2, 3, 4, 5], dtype="int64"),
            "signup_at": _ts("2024-01-01", None, "2025-02-20", "2025-03-01", "2025-04-01"),
            "age_band": _text(["25-34", "35-44", "18-24", "45-54", "55+"]),
            "gender": _text(["female", "male", "female", "male", "female"]),
            "region": _text(["north", "south", "east", "west", "capital"]),
        }
    )


def _products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": np.array([1, 2, 3], dtype="int64"),
            "category": _text(["dresses", "shoes", "tops"]),
            "price_tier": _text(["mid", "budget", "premium"]),
            "price": [50.0, 30.0, 90.0],
        }
    )


def _tables(kind: str = "category") -> dict[str, pd.DataFrame]:
    return {"orders": _orders(), "events": _events(kind), "customers": _customers(), "products": _products()}


def _decay(weight: float, age_days: float) -> float:
    return weight * 2 ** (-age_days / 14)


# Hand-derived features of the hand-made shop at CUTOFF (2025-03-01).
EXPECTED_COLUMNS = [
    "recency_days", "frequency", "monetary", "avg_order_value", "days_since_last_purchase", "tenure_days",
    "discount_share", "sessions_7d", "sessions_30d", "sessions_90d", "sessions_total", "avg_session_duration",
    "views_per_session", "cart_adds", "cart_abandonment_rate", "engagement_score", "share_mobile", "share_desktop",
    "share_tablet", "affinity_dresses", "affinity_shoes", "affinity_tops", "age_band", "gender", "region",
]
NAN = float("nan")
EXPECTED = {
    1: {
        # last activity: the purchase event at 2025-02-22 00:10 (after the last order on 02-20 12:00)
        "recency_days": 7 - 10 * MINUTE,
        "frequency": 3, "monetary": 180, "avg_order_value": 60,
        "days_since_last_purchase": 8.5,
        "tenure_days": 425,  # signup 2024-01-01 (366 + 31 + 28 days)
        "discount_share": 1 / 3,  # only the first order has a discount > 0 (NaN and 0 are no discount)
        "sessions_7d": 1, "sessions_30d": 2, "sessions_90d": 3, "sessions_total": 4,
        "avg_session_duration": (45 + 20 + 40 + 15) / 4,
        "views_per_session": 4 / 4,
        "cart_adds": 3,
        "cart_abandonment_rate": 0.5,  # per session: 10 carted and bought, 11 carted (twice) only
        "engagement_score": _decay(1, 7) + _decay(3, 7 - 5 * MINUTE) + _decay(10, 7 - 10 * MINUTE)
        + _decay(1, 7 + HOUR) + _decay(1, 7 + HOUR - MINUTE) + _decay(3, 7 + HOUR - 2 * MINUTE)
        + _decay(3, 7 + HOUR - 3 * MINUTE)
        + _decay(1, 90),
        "share_mobile": 1 / 4, "share_desktop": 2 / 4, "share_tablet": 1 / 4,
        "affinity_dresses": 2 / 4, "affinity_shoes": 1 / 4, "affinity_tops": 1 / 4,
        "age_band": "25-34", "gender": "female", "region": "north",
    },
    2: {
        "recency_days": 14, "frequency": 0, "monetary": 0, "avg_order_value": NAN,
        "days_since_last_purchase": NAN,
        "tenure_days": 28,  # no signup date: first activity 2025-02-01
        "discount_share": NAN,
        "sessions_7d": 0, "sessions_30d": 2, "sessions_90d": 2, "sessions_total": 2,
        "avg_session_duration": 60 / 2, "views_per_session": 1 / 2, "cart_adds": 2,
        "cart_abandonment_rate": 1.0,
        "engagement_score": _decay(1, 28) + _decay(3, 28 - 2 * MINUTE) + _decay(3, 14),
        "share_mobile": 0.5, "share_desktop": 0.5, "share_tablet": 0.0,
        "affinity_dresses": 0.0, "affinity_shoes": 1.0, "affinity_tops": 0.0,
        "age_band": "35-44", "gender": "male", "region": "south",
    },
    3: {  # signed up 2025-02-20, never active
        "recency_days": 9, "frequency": 0, "monetary": 0, "avg_order_value": NAN,
        "days_since_last_purchase": NAN, "tenure_days": 9, "discount_share": NAN,
        "sessions_7d": 0, "sessions_30d": 0, "sessions_90d": 0, "sessions_total": 0,
        "avg_session_duration": NAN, "views_per_session": NAN, "cart_adds": 0, "cart_abandonment_rate": NAN,
        "engagement_score": 0.0, "share_mobile": NAN, "share_desktop": NAN, "share_tablet": NAN,
        "affinity_dresses": NAN, "affinity_shoes": NAN, "affinity_tops": NAN,
        "age_band": "18-24", "gender": "female", "region": "east",
    },
    6: {  # one order on 2024-12-01 12:00, not in the customers table, no events
        "recency_days": 89.5, "frequency": 1, "monetary": 20, "avg_order_value": 20,
        "days_since_last_purchase": 89.5, "tenure_days": 89.5, "discount_share": 0.0,
        "sessions_7d": 0, "sessions_30d": 0, "sessions_90d": 0, "sessions_total": 0,
        "avg_session_duration": NAN, "views_per_session": NAN, "cart_adds": 0, "cart_abandonment_rate": NAN,
        "engagement_score": 0.0, "share_mobile": NAN, "share_desktop": NAN, "share_tablet": NAN,
        "affinity_dresses": NAN, "affinity_shoes": NAN, "affinity_tops": NAN,
        "age_band": None, "gender": None, "region": None,
    },
}


def _assert_value(actual, expected, where: str) -> None:
    if isinstance(expected, str):
        assert actual == expected, where
    elif expected is None:
        assert pd.isna(actual), f"{where}: expected empty, got {actual!r}"
    elif isinstance(expected, float) and math.isnan(expected):
        assert pd.isna(actual), f"{where}: expected NaN, got {actual!r}"
    else:
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), where


# --------------------------------------------------------------------------------------------
# 1. Hand-computed values
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["category", "string"])
def test_hand_computed_features(kind):
    frame = build_features(_tables(kind), CUTOFF, SETTINGS)
    assert list(frame.columns) == EXPECTED_COLUMNS
    assert list(frame.index) == [1, 2, 3, 6]  # 4 signs up at the cutoff and 5 after it: not known yet
    assert frame.index.name == "customer_id"
    for customer, values in EXPECTED.items():
        for column, expected in values.items():
            _assert_value(frame.at[customer, column], expected, f"customer {customer}, {column}")


def test_numeric_features_are_float_and_demographics_text():
    frame = build_features(_tables(), CUTOFF, SETTINGS)
    for column in EXPECTED_COLUMNS:
        if column in F.DEMOGRAPHICS:
            assert pd.api.types.is_string_dtype(frame[column]), column
        else:
            assert frame[column].dtype == np.float64, column


def test_session_window_boundaries_are_inclusive_at_the_start():
    """A session starting exactly at cutoff - w counts in the w-day window; one 1 µs earlier does not."""
    rows = [
        (1, 1, 1, "2025-02-22T00:00:00", "product_view", 1, "mobile", 1.0),  # cutoff - 7d
        (2, 1, 2, "2025-01-29T23:59:59.999999", "product_view", 1, "mobile", 1.0),  # cutoff - 30d - 1µs
        (3, 1, 3, "2025-01-30T00:00:00", "product_view", 1, "mobile", 1.0),  # cutoff - 30d
        (4, 1, 4, "2024-11-30T23:59:59.999999", "product_view", 1, "mobile", 1.0),  # cutoff - 90d - 1µs
        (5, 1, 5, "2025-02-28T23:59:59.999999", "product_view", 1, "mobile", 1.0),  # 1µs before the cutoff
    ]
    tables = {"orders": _orders().iloc[:0], "events": _events(rows=rows)}
    row = build_features(tables, CUTOFF, SETTINGS).loc[1]
    # 7d: sessions 1 and 5; 30d: + session 3 (session 2 is 1µs too early); 90d: + session 2; session 4 is outside.
    assert (row["sessions_7d"], row["sessions_30d"], row["sessions_90d"], row["sessions_total"]) == (2, 3, 4, 5)


def test_session_device_is_the_device_of_its_first_event():
    # Session 11's first event (by time, though it is not first in row order) is on desktop,
    # its later ones on mobile: one desktop session.
    sessions = F.sessions_table(_events())
    assert sessions.set_index("session_id").loc[11, "device"] == "desktop"
    assert sessions.set_index("session_id").loc[11, "start"] == pd.Timestamp("2025-02-21T23:00")


def test_session_with_unknown_device_counts_only_towards_the_total():
    rows = [
        (1, 1, 1, "2025-02-20", "product_view", 1, "smart_tv", 1.0),
        (2, 1, 2, "2025-02-21", "product_view", 1, None, 1.0),
        (3, 1, 3, "2025-02-22", "product_view", 1, "tablet", 1.0),
    ]
    row = build_features({"orders": _orders().iloc[:0], "events": _events(rows=rows)}, CUTOFF, SETTINGS).loc[1]
    assert row["sessions_total"] == 3
    assert (row["share_mobile"], row["share_desktop"], row["share_tablet"]) == (0.0, 0.0, pytest.approx(1 / 3))


def test_engagement_weights_and_half_life_come_from_settings():
    settings = FeatureSettings(session_windows_days=(5,), half_life_days=7.0,
                               engagement_weights={"product_view": 2.0, "wishlist": 4.0})
    frame = build_features(_tables(), CUTOFF, settings)
    # customer 2: views at age 28 days; cart adds now weigh 0
    assert frame.at[2, "engagement_score"] == pytest.approx(2 * 2 ** (-28 / 7))
    # customer 1: views at ages 7, 7d+1h, 7d+1h-1min, 90 days; the wishlist event at 90 days + 1 hour
    expected = 2 * (2 ** (-7 / 7) + 2 ** (-(7 + HOUR) / 7) + 2 ** (-(7 + HOUR - MINUTE) / 7) + 2 ** (-90 / 7)) \
        + 4 * 2 ** (-(90 + HOUR) / 7)
    assert frame.at[1, "engagement_score"] == pytest.approx(expected)
    assert [c for c in frame.columns if c.startswith("sessions_") and c.endswith("d")] == ["sessions_5d"]


def test_feature_settings_from_params():
    settings = FeatureSettings.from_params(
        {"session_windows_days": [3, 60], "half_life_days": 7, "engagement_weights": {"product_view": 2}}
    )
    assert settings == FeatureSettings((3, 60), 7.0, {"product_view": 2.0})


@pytest.mark.parametrize(("change", "fragment"), [
    ({"session_windows_days": []}, "prep.session_windows_days must be a list of whole days"),
    ({"session_windows_days": [7, 0]}, "prep.session_windows_days must be a list of whole days"),
    ({"half_life_days": 0}, "prep.half_life_days must be a number of days > 0"),
    ({"half_life_days": "14"}, "prep.half_life_days"),
    ({"engagement_weights": {"purchase": "ten"}}, "prep.engagement_weights must map event types to numbers"),
    ({"engagement_weights": [1.0]}, "prep.engagement_weights"),
])
def test_feature_settings_name_the_bad_key(change, fragment):
    section = {"session_windows_days": [7], "half_life_days": 14, "engagement_weights": {"purchase": 10}} | change
    with pytest.raises(ParamsError, match="params.yaml prep") as caught:
        FeatureSettings.from_params(section)
    assert fragment in str(caught.value)
    with pytest.raises(ParamsError, match=r"missing \['half_life_days'\]"):
        FeatureSettings.from_params({"session_windows_days": [7], "engagement_weights": {}})


def test_views_of_products_missing_from_the_catalog_are_not_in_affinities():
    rows = [
        (1, 1, 1, "2025-02-20", "product_view", 1, "mobile", 1.0),
        (2, 1, 1, "2025-02-20T00:01", "product_view", 99, "mobile", 1.0),  # not in products
        (3, 1, 1, "2025-02-20T00:02", "product_view", 2, "mobile", 1.0),
        (4, 1, 1, "2025-02-20T00:03", "product_view", 2, "mobile", 1.0),
    ]
    tables = {"orders": _orders().iloc[:0], "events": _events(rows=rows), "products": _products()}
    row = build_features(tables, CUTOFF, SETTINGS).loc[1]
    assert row["views_per_session"] == 4
    assert (row["affinity_dresses"], row["affinity_shoes"], row["affinity_tops"]) == (
        pytest.approx(1 / 3), pytest.approx(2 / 3), 0.0)


# --------------------------------------------------------------------------------------------
# 2. Leakage
# --------------------------------------------------------------------------------------------
def _with_future_rows(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The hand-made shop plus rows at exactly the cutoff or later (and a customer who signs up later)."""
    future = dict(tables)
    orders = pd.DataFrame(
        {
            "order_id": np.array([10, 11, 12], dtype="int64"),
            "customer_id": np.array([1, 3, 7], dtype="int64"),
            "ordered_at": _ts("2025-03-01", "2025-03-01T00:00:00.000001", "2025-03-10"),
            "amount": [999.0, 5.0, 7.0],
            "quantity": pd.array([1, 1, 1], dtype="Int64"),
            "discount": [50.0, 1.0, 0.0],
            "session_id": pd.array([None, None, None], dtype="Int64"),
        }
    )
    future["orders"] = pd.concat([tables["orders"], orders], ignore_index=True)
    kind = "category" if isinstance(tables["events"]["event_type"].dtype, pd.CategoricalDtype) else "string"
    future["events"] = _events(kind, _EVENT_ROWS + [
        (20, 1, 10, "2025-03-01", "purchase", 1, "mobile", 500.0),  # continues session 10, at the cutoff
        (21, 1, 30, "2025-03-01", "add_to_cart", 2, "desktop", 9.0),  # a new session at the cutoff
        (22, 3, 31, "2025-03-02", "product_view", 3, "tablet", 9.0),
        (23, 7, 32, "2025-03-09", "product_view", 3, "mobile", 9.0),
    ])
    customers = pd.DataFrame(
        {
            "customer_id": np.array([7], dtype="int64"),
            "signup_at": _ts("2025-03-05"),
            "age_band": _text(["18-24"]), "gender": _text(["male"]), "region": _text(["north"]),
        }
    )
    future["customers"] = pd.concat([tables["customers"], customers], ignore_index=True)
    return future


@pytest.mark.parametrize("kind", ["category", "string"])
def test_rows_at_or_after_the_cutoff_never_change_features(kind):
    base = build_features(_tables(kind), CUTOFF, SETTINGS)
    future_tables = _with_future_rows(_tables(kind))
    assert len(future_tables["orders"]) == 7 and len(future_tables["events"]) == 16
    with_future = build_features(future_tables, CUTOFF, SETTINGS)
    pd.testing.assert_frame_equal(with_future, base, check_exact=True)
    # ...whereas one microsecond later the rows at the old cutoff are in the past and do count
    later = build_features(future_tables, CUTOFF + pd.Timedelta(microseconds=1), SETTINGS)
    assert later.at[1, "frequency"] == 4 and later.at[1, "monetary"] == 1179
    assert later.at[1, "sessions_total"] == 5


def test_customers_who_sign_up_at_or_after_the_cutoff_are_absent():
    frame = build_features(_tables(), CUTOFF, SETTINGS)
    assert 4 not in frame.index and 5 not in frame.index
    later = build_features(_tables(), pd.Timestamp("2025-03-01T00:00:01"), SETTINGS)
    assert 4 in later.index and 5 not in later.index
    assert later.at[4, "tenure_days"] == pytest.approx(1 / 86_400)


def test_before_cutoff_cuts_each_table_and_keeps_products():
    tables = _with_future_rows(_tables())
    cut = before_cutoff(tables, CUTOFF)
    assert (cut["orders"]["ordered_at"] < CUTOFF).all() and len(cut["orders"]) == 4
    assert (cut["events"]["ts"] < CUTOFF).all() and len(cut["events"]) == 12
    assert sorted(cut["customers"]["customer_id"]) == [1, 2, 3]  # 2 has no signup date: kept
    assert cut["products"] is tables["products"]
    assert len(tables["orders"]) == 7  # the input is not modified


def test_features_on_simulated_data_ignore_the_future(tiny_tables):
    cutoff = pd.Timestamp("2025-04-01")
    base = build_features(tiny_tables, cutoff, SETTINGS)
    # Scramble everything at or after the cutoff: amounts, event types, devices, dwell.
    scrambled = dict(tiny_tables)
    orders = tiny_tables["orders"].copy()
    late = orders["ordered_at"] >= cutoff
    orders.loc[late, "amount"] = orders.loc[late, "amount"] * 17 + 3
    orders.loc[late, "customer_id"] = orders.loc[late, "customer_id"].to_numpy()[::-1]
    scrambled["orders"] = orders
    events = tiny_tables["events"].copy()
    late = (events["ts"] >= cutoff).to_numpy()
    assert late.sum() > 1000
    events.loc[late, "event_type"] = "purchase"
    events.loc[late, "device"] = "tablet"
    events.loc[late, "dwell_seconds"] = 1e6
    scrambled["events"] = events
    pd.testing.assert_frame_equal(build_features(scrambled, cutoff, SETTINGS), base, check_exact=True)
    pd.testing.assert_frame_equal(build_features(before_cutoff(tiny_tables, cutoff), cutoff, SETTINGS), base,
                                  check_exact=True)


def test_scramble_after_cutoff_with_text_ids_and_no_future_still_adds_rows():
    tables = _tables()
    tables["orders"] = tables["orders"].astype({"order_id": "string"})
    scrambled, summary = leakage.scramble_after_cutoff(tables, CUTOFF, seed=0)
    assert summary.loc["orders", "rows_changed"] == 0 and summary.loc["orders", "rows_added"] == 20
    added = scrambled["orders"]["order_id"].iloc[4:]
    assert added.str.startswith("scrambled-orders-").all() and scrambled["orders"]["order_id"].is_unique
    assert summary.loc["customers", "rows_changed"] == 2  # customers 4 and 5 sign up at or after the cutoff
    assert scrambled["events"]["event_type"].dtype == "category"
    pd.testing.assert_frame_equal(build_features(scrambled, CUTOFF, SETTINGS), build_features(tables, CUTOFF, SETTINGS),
                                  check_exact=True)


def test_purchase_label_window_is_cutoff_inclusive_and_end_exclusive():
    horizon = 30
    end = CUTOFF + pd.Timedelta(days=horizon)
    us = pd.Timedelta(microseconds=1)
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, 7, dtype="int64"),
            "customer_id": np.array([1, 2, 3, 4, 5, 5], dtype="int64"),
            "ordered_at": pd.Series([CUTOFF - us, CUTOFF, end - us, end, CUTOFF + pd.Timedelta(days=3),
                                     CUTOFF + pd.Timedelta(days=4)], dtype="datetime64[us]"),
            "amount": [1.0] * 6,
        }
    )
    label = purchase_label(orders, CUTOFF, horizon)
    assert sorted(label.index) == [2, 3, 5]  # 1 is before, 4 at the window's end; 5 twice but once
    assert (label == 1).all() and label.dtype == np.int8 and label.name == "label"
    assert label.index.name == "customer_id"
    assert purchase_label(orders, CUTOFF, 1).index.tolist() == [2]


# --------------------------------------------------------------------------------------------
# 3. Batch state + finalize at a later time == batch features at that time (when nothing happened)
# --------------------------------------------------------------------------------------------
def _without_span(tables: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables with every row timestamped in [start, end) removed (customers who signed up then too)."""
    quiet = dict(tables)
    orders = tables["orders"]
    quiet["orders"] = orders[~orders["ordered_at"].between(start, end, inclusive="left")]
    events = tables["events"]
    quiet["events"] = events[~events["ts"].between(start, end, inclusive="left")]
    customers = tables["customers"]
    quiet["customers"] = customers[~customers["signup_at"].between(start, end, inclusive="left")]
    return quiet


def _advance(tables: dict[str, pd.DataFrame], c1: pd.Timestamp, c2: pd.Timestamp) -> pd.DataFrame:
    known = before_cutoff(tables, c1)
    state = customer_state(known, c1, SETTINGS)
    customers = known["customers"]
    state = state.reindex(state.index.union(pd.Index(customers["customer_id"], name="customer_id"))).sort_index()
    return finalize(state, c2, SETTINGS, customers)


@pytest.mark.parametrize("days", [0, 3, 10, 45, 120])
def test_finalize_later_equals_batch_features_when_nothing_happened_in_between_hand(days):
    c1, c2 = CUTOFF, CUTOFF + pd.Timedelta(days=days)
    tables = _without_span(_tables(), c1, c2)  # drops customer 4 (signup at c1) when days > 0
    batch = build_features(tables, c2, SETTINGS)
    streamed = _advance(tables, c1, c2)
    pd.testing.assert_frame_equal(streamed, batch, rtol=1e-12)


def test_finalize_advances_time_by_hand():
    c2 = CUTOFF + pd.Timedelta(days=10)
    tables = _without_span(_tables(), CUTOFF, c2)
    row = _advance(tables, CUTOFF, c2).loc[1]
    assert row["recency_days"] == pytest.approx(17 - 10 * MINUTE)
    assert row["days_since_last_purchase"] == pytest.approx(18.5)
    assert row["tenure_days"] == pytest.approx(435)
    # c2 - 7d = 03-04, c2 - 30d = 02-09, c2 - 90d = 2024-12-11: session 12 has left the 90-day window
    assert (row["sessions_7d"], row["sessions_30d"], row["sessions_90d"], row["sessions_total"]) == (0, 2, 2, 4)
    assert row["engagement_score"] == pytest.approx(EXPECTED[1]["engagement_score"] * 2 ** (-10 / 14))
    assert row["frequency"] == 3 and row["cart_abandonment_rate"] == 0.5


@pytest.mark.parametrize("c2", ["2025-05-01", "2025-07-20"])
def test_finalize_later_equals_batch_features_on_simulated_data(tiny_tables, c2):
    c1, c2 = pd.Timestamp("2025-04-01"), pd.Timestamp(c2)
    tables = _without_span(tiny_tables, c1, c2)
    batch = build_features(tables, c2, SETTINGS)
    streamed = _advance(tables, c1, c2)
    assert len(batch) > 300 and (batch["engagement_score"] > 0).sum() > 100
    pd.testing.assert_frame_equal(streamed, batch, rtol=1e-10)
    # and it is not trivially so: finalizing at c1 gives different values
    assert not np.allclose(_advance(tables, c1, c1)["recency_days"], batch["recency_days"], equal_nan=True)


# --------------------------------------------------------------------------------------------
# 4. Which groups the data supports
# --------------------------------------------------------------------------------------------
ORDERS_COLUMNS = ["recency_days", "frequency", "monetary", "avg_order_value", "days_since_last_purchase",
                  "tenure_days", "discount_share"]


def test_orders_only():
    tables = {"orders": _orders()}
    frame = build_features(tables, CUTOFF, SETTINGS)
    assert list(frame.columns) == ORDERS_COLUMNS
    assert list(frame.index) == [1, 6]
    assert frame.at[1, "recency_days"] == pytest.approx(8.5)  # no events: last activity is the last order
    assert frame.at[1, "tenure_days"] == pytest.approx(50)  # first order 2025-01-10
    assert frame.at[6, "avg_order_value"] == 20
    assert feature_groups(tables) == {"orders": True, "events": False, "dwell": False, "device": False,
                                      "categories": False, "demographics": False}
    skipped = skipped_groups(tables)
    assert sorted(skipped) == ["categories", "demographics", "device", "dwell", "events"]
    assert "events table" in skipped["events"]
    assert "dwell_seconds" in skipped["dwell"]
    assert "device" in skipped["device"]
    assert "products" in skipped["categories"] and "product_id" in skipped["categories"]
    assert "customers" in skipped["demographics"]
    assert set(feature_catalog(list(frame.columns), SETTINGS)["group"]) == {"orders"}


def test_orders_without_discount_column_have_no_discount_share():
    frame = build_features({"orders": _orders().drop(columns=["discount"])}, CUTOFF, SETTINGS)
    assert list(frame.columns) == [c for c in ORDERS_COLUMNS if c != "discount_share"]


def test_orders_and_customers_include_customers_without_activity():
    tables = {"orders": _orders(), "customers": _customers()}
    frame = build_features(tables, CUTOFF, SETTINGS)
    # Customer 2 has no signup date and no activity before the cutoff: nothing says they existed yet.
    assert list(frame.index) == [1, 3, 6]
    assert list(frame.columns) == ORDERS_COLUMNS + ["age_band", "gender", "region"]
    assert frame.at[3, "frequency"] == 0 and pd.isna(frame.at[3, "avg_order_value"])
    assert frame.at[3, "recency_days"] == pytest.approx(9) and frame.at[3, "tenure_days"] == pytest.approx(9)
    assert frame.at[1, "tenure_days"] == pytest.approx(425)  # signup, not the first order
    assert sorted(skipped_groups(tables)) == ["categories", "device", "dwell", "events"]


def test_customers_without_demographic_columns_give_no_demographics_group():
    tables = {"orders": _orders(), "customers": _customers()[["customer_id", "signup_at"]]}
    assert feature_groups(tables)["demographics"] is False
    assert list(build_features(tables, CUTOFF, SETTINGS).columns) == ORDERS_COLUMNS


def test_events_without_optional_columns():
    events = _events().drop(columns=["dwell_seconds", "device", "product_id"])
    tables = {"orders": _orders(), "events": events, "products": _products()}
    groups = feature_groups(tables)
    assert groups == {"orders": True, "events": True, "dwell": False, "device": False, "categories": False,
                      "demographics": False}
    frame = build_features(tables, CUTOFF, SETTINGS)
    assert list(frame.columns) == ORDERS_COLUMNS + [
        "sessions_7d", "sessions_30d", "sessions_90d", "sessions_total", "views_per_session", "cart_adds",
        "cart_abandonment_rate", "engagement_score"]
    assert frame.at[1, "sessions_total"] == 4 and frame.at[2, "cart_abandonment_rate"] == 1.0
    assert set(feature_catalog(list(frame.columns), SETTINGS)["group"]) == {"orders", "events"}


def test_all_groups_present_and_catalog_covers_every_feature():
    tables = _tables()
    assert all(feature_groups(tables).values()) and skipped_groups(tables) == {}
    frame = build_features(tables, CUTOFF, SETTINGS)
    catalog = feature_catalog(["cutoff", *frame.columns, "label"], SETTINGS)
    assert list(catalog["feature"]) == list(frame.columns)  # bookkeeping columns left out
    groups = catalog.set_index("feature")["group"]
    assert groups["sessions_30d"] == "events" and groups["avg_session_duration"] == "dwell"
    assert groups["share_tablet"] == "device" and groups["affinity_shoes"] == "categories"
    assert groups["region"] == "demographics" and groups["tenure_days"] == "orders"
    assert set(groups) == set(feature_groups(tables))
    meaning = catalog.set_index("feature")["meaning"]
    assert "half-life 14 days" in meaning["engagement_score"]
    assert "30 days" in meaning["sessions_30d"] and "shoes" in meaning["affinity_shoes"]


# --------------------------------------------------------------------------------------------
# 5. Label window completeness and snapshots
# --------------------------------------------------------------------------------------------
def test_label_window_complete():
    horizon = 30
    last_day = CUTOFF + pd.Timedelta(days=horizon - 1)  # the window's last day starts here
    orders = _orders()
    at = lambda t: {"orders": pd.concat([orders, orders.iloc[[0]].assign(ordered_at=pd.Timestamp(t))],  # noqa: E731
                                        ignore_index=True)}
    assert label_window_complete(at(last_day), CUTOFF, horizon) is True
    assert label_window_complete(at(last_day + pd.Timedelta(hours=23)), CUTOFF, horizon) is True
    assert label_window_complete(at(last_day - pd.Timedelta(microseconds=1)), CUTOFF, horizon) is False
    assert label_window_complete({"orders": orders}, CUTOFF, horizon) is False
    assert label_window_complete({"orders": orders}, pd.Timestamp("2025-01-01"), 10) is True
    # events reaching the window's last day complete it too
    tables = {"orders": orders, "events": _events().assign(ts=pd.Timestamp(last_day).as_unit("us"))}
    assert label_window_complete(tables, CUTOFF, horizon) is True
    # an empty events table does not break it
    assert label_window_complete({"orders": orders, "events": _events().iloc[:0]}, CUTOFF, horizon) is False


def test_build_snapshot():
    tables = _with_future_rows(_tables())
    snapshot = build_snapshot(tables, CUTOFF, 7, SETTINGS)
    features = build_features(tables, CUTOFF, SETTINGS)
    assert list(snapshot.columns) == ["cutoff", *features.columns, "label"]
    assert (snapshot["cutoff"] == CUTOFF).all()
    assert snapshot["label"].dtype == np.int8
    # orders in [03-01, 03-08): customers 1 (at the cutoff) and 3; customer 7 (03-10) is not known yet anyway
    assert snapshot["label"].to_dict() == {1: 1, 2: 0, 3: 1, 6: 0}
    pd.testing.assert_frame_equal(snapshot.drop(columns=["cutoff", "label"]), features)
    assert build_snapshot(tables, CUTOFF, 1, SETTINGS)["label"].to_dict() == {1: 1, 2: 0, 3: 1, 6: 0}
    assert build_snapshot(tables, CUTOFF, 20, SETTINGS)["label"].sum() == 2


def test_snapshot_on_simulated_data_matches_orders(tiny_tables):
    cutoff, horizon = pd.Timestamp("2025-04-01"), 30
    snapshot = build_snapshot(tiny_tables, cutoff, horizon, SETTINGS)
    orders = tiny_tables["orders"]
    in_window = orders[(orders["ordered_at"] >= cutoff) & (orders["ordered_at"] < pd.Timestamp("2025-05-01"))]
    known_buyers = set(in_window["customer_id"]) & set(snapshot.index)
    assert set(snapshot.index[snapshot["label"] == 1]) == known_buyers
    assert len(known_buyers) > 0
    customers = tiny_tables["customers"]
    assert set(snapshot.index) == set(customers.loc[customers["signup_at"] < cutoff, "customer_id"]) | set(
        orders.loc[orders["ordered_at"] < cutoff, "customer_id"]) | set(
        tiny_tables["events"].loc[tiny_tables["events"]["ts"] < cutoff, "customer_id"])

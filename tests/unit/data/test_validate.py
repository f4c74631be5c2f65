"""Tests for atelier.validate: typing, quarantine reasons, column-level errors, the stage body."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.core.io import read_parquet
from atelier.data.validate import (
    DEMO_PROBLEMS,
    DataContractError,
    ValidationResult,
    corrupt_sample,
    find_table_files,
    quality_table,
    quarantine_demo,
    read_tables,
    run,
    validate_tables,
)

VALID_FROM = pd.Timestamp("2000-01-01")
VALID_UNTIL = pd.Timestamp("2026-01-01")


def _orders() -> pd.DataFrame:
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


def _events() -> pd.DataFrame:
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


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["1", "2", "3"],
            "signup_at": ["2024-01-01", None, "2023-06-30T12:00:00Z"],
            "age_band": ["25-34", " 35-44 ", ""],
            "gender": ["female", "male", None],
            "region": ["north", "south", "east"],
        }
    )


def _products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": ["10", "11", "12"],
            "category": ["dresses", "shoes", "tops"],
            "price": ["59.9", "89", "19.5"],
            "price_tier": ["mid", "premium", "budget"],
        }
    )


def _all() -> dict[str, pd.DataFrame]:
    return {"orders": _orders(), "events": _events(), "customers": _customers(), "products": _products()}


def _validate(raw: dict[str, pd.DataFrame], **kwargs) -> ValidationResult:
    options = dict(valid_from=VALID_FROM, valid_until=VALID_UNTIL, max_bad_value_share=0.5)
    options.update(kwargs)
    result = validate_tables(raw, **options)
    for name, entry in result.report["tables"].items():  # the accounting identity, every time
        assert entry["rows_in"] == len(raw[name]) == entry["rows_valid"] + entry["rows_quarantined"]
        assert entry["rows_valid"] == len(result.tables[name])
        assert entry["rows_quarantined"] == len(result.quarantine[name])
    return result


def _reasons(result: ValidationResult, table: str) -> dict[int, str]:
    """source_row -> reason for one table's quarantine."""
    quarantine = result.quarantine[table]
    return dict(zip(quarantine["source_row"].tolist(), quarantine["reason"].tolist()))


# --------------------------------------------------------------------------------------------
# Clean data


def test_clean_data_passes_with_values_unchanged():
    raw = _all()
    result = _validate(raw)
    assert all(e["rows_quarantined"] == 0 for e in result.report["tables"].values())
    orders = result.tables["orders"]
    assert orders["customer_id"].dtype == "int64" and orders["order_id"].dtype == "int64"
    assert orders["customer_id"].tolist() == [1, 2, 3, 1, 2]
    assert orders["amount"].dtype == "float64"
    assert orders["amount"].tolist() == [49.90, 10.0, 0.0, 120.5, 7.25]
    assert orders["quantity"].dtype == "Int64"
    assert orders["quantity"].tolist() == [1, 2, pd.NA, 3, 1]
    assert orders["discount"].isna().tolist() == [True, False, False, True, False]
    assert orders["ordered_at"].dtype == "datetime64[us]"
    assert orders["ordered_at"].tolist() == [
        pd.Timestamp("2025-01-05 10:00:00"),
        pd.Timestamp("2025-01-06 11:30:00"),
        pd.Timestamp("2025-02-01 07:15:00"),  # +02:00 converted to UTC
        pd.Timestamp("2025-03-01 00:00:00"),
        pd.Timestamp("2025-03-02 23:59:59.5"),
    ]
    # extra columns are kept as read and listed
    assert orders["channel"].tolist() == ["web", "app", "web", "web", "app"]
    assert result.report["tables"]["orders"]["extra_columns"] == ["channel"]
    # text: stripped, empty -> missing
    assert result.tables["events"]["event_type"].tolist()[4] == "product_view"
    customers = result.tables["customers"]
    assert customers["age_band"].tolist()[:2] == ["25-34", "35-44"] and pd.isna(customers["age_band"][2])
    assert str(customers["age_band"].dtype) == "string"
    assert result.report["ordered_at_range"] == ["2025-01-05T10:00:00", "2025-03-02T23:59:59.500000"]


def test_other_event_types_and_devices_are_kept_and_counted():
    result = _validate(_all())
    events = result.tables["events"]
    assert "wishlist" in events["event_type"].tolist() and "smart_tv" in events["device"].tolist()
    assert result.report["event_types"] == {"product_view": 3, "add_to_cart": 1, "purchase": 1, "wishlist": 1}
    assert result.report["devices"] == {"mobile": 2, "desktop": 2, "smart_tv": 1, "(missing)": 1}


def test_orders_only_validates():
    result = _validate({"orders": _orders()})
    assert result.report["tables_present"] == ["orders"]
    assert result.report["tables_missing"] == ["events", "customers", "products"]
    assert result.report["tables"]["orders"]["rows_valid"] == 5
    assert result.report["event_types"] == {} and result.report["devices"] == {}


# --------------------------------------------------------------------------------------------
# Row-level problems: one bad cell each


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
    orders = _orders()
    orders.loc[2, column] = value
    result = _validate({"orders": orders})
    assert _reasons(result, "orders") == {3: text}
    assert result.report["tables"]["orders"]["reasons"] == {reason_class: 1}
    assert 102 not in result.tables["orders"]["order_id"].tolist()
    quarantined = result.quarantine["orders"].iloc[0]
    assert quarantined["order_id"] == "102"
    assert (pd.isna(quarantined[column]) if value is None else quarantined[column] == value)


def test_future_timestamp_when_valid_until_is_now():
    orders = _orders()
    orders.loc[0, "ordered_at"] = "2999-01-01"
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    result = _validate({"orders": orders}, valid_until=now)
    assert _reasons(result, "orders") == {1: f"ordered_at is after {now:%Y-%m-%d %H:%M} (in the future)"}
    assert result.report["tables"]["orders"]["reasons"] == {"timestamp in the future": 1}


def test_duplicate_key_keeps_first_occurrence():
    orders = _orders()
    orders.loc[3, "order_id"] = "101"
    orders.loc[4, "order_id"] = "101"
    result = _validate({"orders": orders})
    assert _reasons(result, "orders") == {
        4: "duplicate order_id (first occurrence kept)",
        5: "duplicate order_id (first occurrence kept)",
    }
    assert result.report["tables"]["orders"]["reasons"] == {"duplicate order_id": 2}
    kept = result.tables["orders"]
    assert kept.loc[kept["order_id"] == 101, "amount"].tolist() == [10.0]  # the first one


def test_non_positive_price_is_quarantined():
    products = _products()
    products.loc[1, "price"] = "0"
    result = _validate({"orders": _orders(), "products": products})
    assert _reasons(result, "products") == {2: "price must be > 0"}
    # product 11 is gone, so the order of product 11 is quarantined as unknown
    assert _reasons(result, "orders") == {3: "unknown product_id (not in products)"}


def test_unknown_customer_and_product():
    raw = _all()
    raw["orders"].loc[0, "customer_id"] = "99"
    raw["events"].loc[1, "product_id"] = "77"
    raw["events"].loc[3, "product_id"] = None  # a missing optional product is fine
    result = _validate(raw)
    assert _reasons(result, "orders") == {1: "unknown customer_id (not in customers)"}
    assert _reasons(result, "events") == {2: "unknown product_id (not in products)"}
    assert result.report["tables"]["orders"]["reasons"] == {"unknown customer_id": 1}
    assert result.report["tables"]["events"]["reasons"] == {"unknown product_id": 1}


def test_orders_of_a_quarantined_customer_are_unknown():
    raw = _all()
    raw["customers"].loc[2, "signup_at"] = "not a date"
    result = _validate(raw)
    assert _reasons(result, "customers") == {3: "signup_at is not an ISO 8601 timestamp: 'not a date'"}
    assert _reasons(result, "orders") == {3: "unknown customer_id (not in customers)"}
    assert set(_reasons(result, "events")) == {5, 6}


def test_session_shared_by_several_customers():
    events = _events()
    events.loc[3, "customer_id"] = "3"  # session 1001 now has customers 2 and 3
    result = _validate({"orders": _orders(), "events": events})
    assert _reasons(result, "events") == {
        3: "session_id shared by several customers",
        4: "session_id shared by several customers",
    }
    assert result.report["tables"]["events"]["reasons"] == {"session_id shared by several customers": 2}


def test_several_problems_in_one_row_are_joined():
    raw = _all()
    raw["orders"].loc[1, ["customer_id", "amount", "quantity"]] = ["42", "-3", "0"]
    raw["orders"].loc[4, "order_id"] = "101"
    result = _validate(raw)
    reasons = _reasons(result, "orders")
    assert reasons[2] == "amount is negative; quantity must be >= 1; unknown customer_id (not in customers)"
    assert reasons[5] == "duplicate order_id (first occurrence kept)"
    assert result.report["tables"]["orders"]["reasons"] == {
        "amount is negative": 1,
        "duplicate order_id": 1,
        "quantity must be >= 1": 1,
        "unknown customer_id": 1,
    }
    table = quality_table(result.report)
    assert list(table.columns) == ["table", "reason", "rows"]
    assert len(table) == 4 and set(table["table"]) == {"orders"} and table["rows"].sum() == 4


def test_unparseable_value_is_not_also_reported_missing():
    orders = _orders()
    orders.loc[0, "amount"] = "12,50"
    result = _validate({"orders": orders})
    assert _reasons(result, "orders") == {1: "amount is not a number: '12,50'"}


def test_quarantine_keeps_original_text_and_accounting_holds():
    raw = _all()
    raw["events"].loc[0, "dwell_seconds"] = "-2"
    raw["events"].loc[5, "ts"] = "yesterday"
    raw["events"].loc[2, "event_type"] = "   "
    result = _validate(raw)
    quarantine = result.quarantine["events"]
    assert quarantine["source_row"].tolist() == [1, 3, 6]
    assert quarantine["reason"].tolist() == ["dwell_seconds is negative", "missing event_type", "ts is not an ISO 8601 timestamp: 'yesterday'"]
    assert quarantine["ts"].tolist()[2] == "yesterday" and quarantine["dwell_seconds"].tolist()[0] == "-2"
    assert all(str(quarantine[c].dtype) == "string" for c in raw["events"].columns)
    assert result.tables["events"]["event_id"].tolist() == [2, 4, 5]


# --------------------------------------------------------------------------------------------
# Types: ids and timestamps


def test_integer_ids_everywhere_stay_int64():
    raw = {name: frame.copy() for name, frame in _all().items()}
    raw["orders"]["customer_id"] = raw["orders"]["customer_id"].astype("int64")
    raw["customers"]["customer_id"] = raw["customers"]["customer_id"].astype("int64")
    result = _validate(raw)
    assert result.report["id_types"]["customer_id"] == "int64"
    for name in ("orders", "events", "customers"):
        assert result.tables[name]["customer_id"].dtype == "int64"
    assert result.tables["orders"]["product_id"].dtype == "Int64"  # optional, may be missing


def test_a_text_id_in_one_table_makes_the_entity_text_everywhere():
    raw = _all()
    raw["customers"]["customer_id"] = ["C1", "2", "3"]
    raw["orders"]["customer_id"] = raw["orders"]["customer_id"].astype("int64")  # integer-typed here
    result = _validate(raw)
    assert result.report["id_types"]["customer_id"] == "string"
    for name in ("orders", "events", "customers"):
        assert str(result.tables[name]["customer_id"].dtype) == "string"
    # the join works on text: customers 2 and 3 match, customer 1 is now "C1" so it is unknown
    assert result.tables["orders"]["customer_id"].tolist() == ["2", "3", "2"]
    assert set(_reasons(result, "orders")) == {1, 4}
    assert set(_reasons(result, "events")) == {1, 2}
    assert result.report["id_types"]["order_id"] == "int64"  # other entities are unaffected


def test_csv_keeps_leading_zeros(tmp_path):
    orders = _orders()
    orders["customer_id"] = ["0012", "2", "3", "0012", "2"]
    orders.to_csv(tmp_path / "orders.csv", index=False)
    result = _validate(read_tables(tmp_path))
    assert result.tables["orders"]["customer_id"].tolist() == ["0012", "2", "3", "0012", "2"]
    assert str(result.tables["orders"]["customer_id"].dtype) == "string"


def test_float_ids_from_parquet_with_missing_values_become_integers():
    orders = _orders()
    orders["product_id"] = [10.0, np.nan, 11.0, 12.0, 10.0]
    result = _validate({"orders": orders, "products": _products()})
    assert result.tables["orders"]["product_id"].tolist() == [10, pd.NA, 11, 12, 10]
    assert result.tables["products"]["product_id"].dtype == "int64"


def test_timezone_aware_input_is_converted_to_naive_utc():
    orders = _orders()
    orders["ordered_at"] = pd.to_datetime(
        ["2025-01-05T10:00:00+01:00", "2025-01-06T00:30:00-05:00", "2025-02-01T00:00:00+00:00",
         "2025-03-01T12:00:00+05:30", "2025-03-02T00:00:00Z"], utc=True,
    ).tz_convert("Europe/Paris")
    result = _validate({"orders": orders})
    ordered_at = result.tables["orders"]["ordered_at"]
    assert ordered_at.dtype == "datetime64[us]" and ordered_at.dt.tz is None
    assert ordered_at.tolist() == [
        pd.Timestamp("2025-01-05 09:00"), pd.Timestamp("2025-01-06 05:30"), pd.Timestamp("2025-02-01 00:00"),
        pd.Timestamp("2025-03-01 06:30"), pd.Timestamp("2025-03-02 00:00"),
    ]


# --------------------------------------------------------------------------------------------
# Column-level problems stop with DataContractError


def _error(raw, **kwargs) -> str:
    with pytest.raises(DataContractError) as caught:
        _validate(raw, sources={name: f"data/mine/{name}.csv" for name in raw}, **kwargs)
    return str(caught.value)


def test_missing_required_column():
    message = _error({"orders": _orders().drop(columns="amount")})
    assert "data/mine/orders.csv" in message and "'amount'" in message
    assert "Add it (amount paid, after discounts) or rename your column to 'amount'" in message


def test_missing_required_column_suggests_near_name():
    message = _error({"orders": _orders().rename(columns={"amount": " Amount"})})
    assert "found ' Amount': rename it to 'amount'" in message


def test_missing_required_column_in_optional_table():
    message = _error({"orders": _orders(), "products": _products().drop(columns="category")})
    assert "data/mine/products.csv" in message and "'category'" in message and "rename" in message


def test_wrong_type_column():
    orders = _orders()
    orders["amount"] = ["cheap", "dear", "cheap", "10", "free"]
    message = _error({"orders": orders})
    assert "data/mine/orders.csv" in message and "'amount'" in message and "wrong type" in message
    assert "'cheap', 'dear', 'free'" in message and "Expected a number" in message


def test_bad_share_at_the_threshold_is_quarantined_not_fatal():
    orders = _orders()
    orders.loc[[0, 1], "ordered_at"] = ["soon", "later"]  # 2 of 5 non-empty values: 40% < 50%
    result = _validate({"orders": orders})
    assert result.report["tables"]["orders"]["reasons"] == {"unparseable ordered_at": 2}
    message = _error({"orders": orders}, max_bad_value_share=0.3)
    assert "'ordered_at'" in message and "ISO 8601" in message


def test_empty_orders():
    message = _error({"orders": _orders().iloc[0:0]})
    assert "data/mine/orders.csv" in message and "no rows" in message


def test_missing_orders_table(tmp_path):
    _products().to_csv(tmp_path / "products.csv", index=False)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataContractError, match=r"no orders\.csv or orders\.parquet") as caught:
        find_table_files(tmp_path)
    assert str(tmp_path) in str(caught.value) and "notes.txt" in str(caught.value)
    assert "data.path" in str(caught.value)


def test_missing_folder(tmp_path):
    with pytest.raises(DataContractError, match="does not exist") as caught:
        find_table_files(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(caught.value) and "data.path" in str(caught.value)


def test_both_formats_for_one_table(tmp_path):
    _orders().to_csv(tmp_path / "orders.csv", index=False)
    _orders().to_parquet(tmp_path / "orders.parquet")
    with pytest.raises(DataContractError, match="orders.parquet and orders.csv") as caught:
        find_table_files(tmp_path)
    assert str(tmp_path) in str(caught.value) and "Keep one" in str(caught.value)


def test_ragged_csv_is_a_contract_error(tmp_path):
    (tmp_path / "orders.csv").write_text("customer_id,order_id,ordered_at,amount\n1,2,2025-01-01,3,4\n")
    with pytest.raises(DataContractError, match="orders.csv"):
        read_tables(tmp_path)


def _broken_parquet(kind: str, folder: Path) -> bytes:
    if kind == "garbage":
        return np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes()
    if kind == "csv renamed":
        return _orders().to_csv(index=False).encode()
    _orders().to_parquet(folder / "whole.parquet")
    whole = (folder / "whole.parquet").read_bytes()
    (folder / "whole.parquet").unlink()
    return whole[: len(whole) // 2]  # "truncated": an interrupted copy


@pytest.mark.parametrize("table", ["orders", "events"])
@pytest.mark.parametrize("kind", ["garbage", "csv renamed", "truncated"])
def test_unreadable_parquet_is_a_contract_error_naming_the_file_and_the_fix(tmp_path, table, kind):
    _all()["orders"].to_parquet(tmp_path / "orders.parquet")
    (tmp_path / f"{table}.parquet").write_bytes(_broken_parquet(kind, tmp_path))
    with pytest.raises(DataContractError) as caught:
        read_tables(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / table}.parquet: could not be read as Parquet (")
    assert "Export it again as Parquet, or as CSV" in message and "Data contract" in message
    assert "\n" not in message and "Traceback" not in message
    assert message.count(str(tmp_path)) == 1  # pyarrow's own copy of the path is dropped


def test_empty_parquet_file_is_a_contract_error(tmp_path):
    (tmp_path / "orders.parquet").write_bytes(b"")
    with pytest.raises(DataContractError, match=r"orders\.parquet: the file is empty \(0 bytes\)") as caught:
        read_tables(tmp_path)
    assert "Export it" in str(caught.value)


def test_csv_that_is_not_utf8_text_is_a_contract_error(tmp_path):
    (tmp_path / "orders.csv").write_bytes(b"customer_id,order_id,ordered_at,amount\n1,2,2025-01-01,\xff\xfe\n")
    with pytest.raises(DataContractError) as caught:
        read_tables(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'orders.csv'}: could not be read as a comma-separated UTF-8 file")
    assert "UTF8" in message and "Export it as CSV" in message and "\n" not in message


def test_table_path_that_is_a_folder_is_a_contract_error(tmp_path):
    (tmp_path / "orders.csv").mkdir()
    with pytest.raises(DataContractError, match=r"orders\.csv: could not be opened .*not a folder"):
        read_tables(tmp_path)


def test_run_stops_on_an_unreadable_parquet_with_the_contract_message(tmp_path):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    (folder / "orders.parquet").write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(DataContractError, match=r"data/mine/orders\.parquet: could not be read as Parquet"):
        run(_params(), tmp_path)


# --------------------------------------------------------------------------------------------
# Files: CSV and Parquet


def test_csv_and_parquet_inputs_give_the_same_tables(tmp_path):
    csv_dir, parquet_dir = tmp_path / "csv", tmp_path / "parquet"
    csv_dir.mkdir()
    parquet_dir.mkdir()
    raw = _all()
    raw["orders"].loc[1, "amount"] = "-1"
    typed_products = _products().astype({"product_id": "int64", "price": "float64"})
    for name, frame in raw.items():
        frame.to_csv(csv_dir / f"{name}.csv", index=False)
    for name, frame in {**raw, "products": typed_products}.items():
        frame.to_parquet(parquet_dir / f"{name}.parquet")
    from_csv = read_tables(csv_dir)
    assert all(str(from_csv[name][c].dtype) == "str" for name in from_csv for c in from_csv[name].columns)
    assert from_csv["orders"]["quantity"].isna().sum() == 1  # empty cell -> missing
    from_parquet = read_tables(parquet_dir)
    assert from_parquet["products"]["price"].dtype == "float64"
    a, b = _validate(from_csv), _validate(from_parquet)
    for name in raw:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_dtype=True)
    assert _reasons(a, "orders") == _reasons(b, "orders") == {2: "amount is negative"}


# --------------------------------------------------------------------------------------------
# The stage


def _params(path: str = "data/mine", source: str = "files", valid_until=None) -> dict:
    return {
        "data": {"source": source, "path": path},
        "validate": {"valid_from": "2000-01-01", "valid_until": valid_until, "max_bad_value_share": 0.5},
    }


def test_run_writes_tables_quarantine_and_metrics(tmp_path, capsys):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    raw = _all()
    raw["orders"].loc[0, "amount"] = "-1"
    for name in ("orders", "events", "customers"):
        raw[name].to_csv(folder / f"{name}.csv", index=False)
    raw["products"].to_parquet(folder / "products.parquet")
    (folder / "README.txt").write_text("notes")
    # stale outputs from an earlier input that had a table this one lacks
    for sub in ("validated", "quarantine"):
        (tmp_path / "data" / sub).mkdir(parents=True)
        (tmp_path / "data" / sub / "returns.parquet").write_bytes(b"stale")

    result = run(_params(), tmp_path)

    validated = sorted(p.name for p in (tmp_path / "data" / "validated").iterdir())
    quarantined = sorted(p.name for p in (tmp_path / "data" / "quarantine").iterdir())
    expected = ["customers.parquet", "events.parquet", "orders.parquet", "products.parquet"]
    assert validated == expected and quarantined == expected
    orders = read_parquet(tmp_path / "data" / "validated" / "orders.parquet")
    assert orders["order_id"].tolist() == [101, 102, 103, 104]
    assert orders["ordered_at"].dtype == "datetime64[us]"
    bad = read_parquet(tmp_path / "data" / "quarantine" / "orders.parquet")
    assert bad["reason"].tolist() == ["amount is negative"] and bad["source_row"].tolist() == [1]
    assert len(read_parquet(tmp_path / "data" / "quarantine" / "events.parquet")) == 0
    metrics = json.loads((tmp_path / "metrics" / "validate.json").read_text())
    assert metrics["tables"]["orders"] == {
        "file": "data/mine/orders.csv", "rows_in": 5, "rows_valid": 4, "rows_quarantined": 1,
        "reasons": {"amount is negative": 1}, "extra_columns": ["channel"],
    }
    assert metrics["tables"]["products"]["file"] == "data/mine/products.parquet"
    assert metrics["not_read"] == ["README.txt"]
    assert metrics["tables_missing"] == []
    assert metrics == json.loads(json.dumps(result.report, default=str))
    out = capsys.readouterr().out
    assert "orders" in out and "amount is negative" in out and "README.txt" in out

    # a second run without products removes its outputs
    (folder / "products.parquet").unlink()
    run(_params(), tmp_path)
    assert not (tmp_path / "data" / "validated" / "products.parquet").exists()
    assert not (tmp_path / "data" / "quarantine" / "products.parquet").exists()
    metrics = json.loads((tmp_path / "metrics" / "validate.json").read_text())
    assert metrics["tables_missing"] == ["products"]


def test_run_rejects_bad_params(tmp_path):
    with pytest.raises(ParamsError, match="data.source"):
        run(_params(source="excel"), tmp_path)
    with pytest.raises(ParamsError, match="data.source: files"):
        run(_params(source="simulate", path="data/mine"), tmp_path)
    with pytest.raises(ParamsError, match="data.path"):
        run({"data": {"source": "files"}}, tmp_path)


def test_run_with_missing_simulated_data_says_to_simulate(tmp_path):
    with pytest.raises(DataContractError, match="simulate stage"):
        run(_params(source="simulate", path="data/simulated"), tmp_path)


def test_run_stops_when_no_order_is_valid(tmp_path):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    orders = _orders()
    orders["amount"] = "-1"
    orders.to_csv(folder / "orders.csv", index=False)
    with pytest.raises(DataContractError, match="no order passed validation") as caught:
        run(_params(), tmp_path)
    assert "data/mine/orders.csv" in str(caught.value)
    # the quarantine is still written so the user can see why
    assert len(read_parquet(tmp_path / "data" / "quarantine" / "orders.parquet")) == 5


def test_csv_only_empty_cells_are_missing(tmp_path):
    _orders().to_csv(tmp_path / "orders.csv", index=False)
    customers = _customers()
    customers["region"] = ["NA", "None", None]  # "NA" (North America) is a value, not a gap
    customers.to_csv(tmp_path / "customers.csv", index=False)
    result = _validate(read_tables(tmp_path))
    region = result.tables["customers"]["region"]
    assert region.tolist()[:2] == ["NA", "None"] and pd.isna(region.tolist()[2])


# --------------------------------------------------------------------------------------------
# The quarantine demonstration (known bad rows in a small copy of clean data)


def _demo(tables, **overrides):
    arguments = dict(seed=5, orders=120, per_problem=3, valid_from="2000-01-01", valid_until=None, max_bad_value_share=0.5)
    return quarantine_demo(tables, **{**arguments, **overrides})


def test_quarantine_demo_catches_every_injected_problem_and_nothing_else(tiny_tables):
    before = {name: frame.copy() for name, frame in tiny_tables.items()}
    check, result = _demo(tiny_tables)
    for name, frame in before.items():  # the validated tables are not touched
        pd.testing.assert_frame_equal(tiny_tables[name], frame)
    problems = check[check["problem"] != "none (untouched rows)"]
    assert set(problems["problem"]) == {p for _, p, _, _ in DEMO_PROBLEMS}  # every class the demo knows
    assert (problems["injected"] == 3).all() and (problems["quarantined"] == 3).all()
    untouched = check[check["problem"] == "none (untouched rows)"].set_index("table")
    assert (untouched["quarantined"] == 0).all() and untouched.loc["orders", "injected"] == 120 - 3 * 10
    reasons = quality_table(result.report)
    orders_reasons = dict(zip(reasons.loc[reasons["table"] == "orders", "reason"], reasons.loc[reasons["table"] == "orders", "rows"]))
    assert orders_reasons == {
        "missing customer_id": 3, "missing order_id": 3, "amount is negative": 3, "unparseable amount": 3,
        "duplicate order_id": 3, "timestamp in the future": 3, "timestamp before valid_from": 3,
        "quantity must be >= 1": 3, "discount is negative": 3, "unknown customer_id": 3,
    }
    assert result.report["tables"]["customers"]["rows_quarantined"] == 9
    assert result.report["tables"]["orders"]["rows_in"] == 120 and "events" not in result.report["tables"]


def test_corrupt_sample_is_seeded_and_breaks_each_row_once(tiny_tables):
    copy, manifest = corrupt_sample(tiny_tables, seed=1, orders=50, per_problem=2, valid_from="2000-01-01")
    again, _ = corrupt_sample(tiny_tables, seed=1, orders=50, per_problem=2, valid_from="2000-01-01")
    other, _ = corrupt_sample(tiny_tables, seed=2, orders=50, per_problem=2, valid_from="2000-01-01")
    for name in ("orders", "customers"):
        pd.testing.assert_frame_equal(copy[name], again[name])
    assert not copy["orders"]["order_id"].equals(other["orders"]["order_id"])
    for name, group in manifest.groupby("table"):
        positions = [p for rows in group["positions"] for p in rows]
        assert len(positions) == len(set(positions)) == 2 * len(group), name
    # customers: those of the sampled orders first, then spares; only spares are broken (no order loses its customer)
    n_referenced = len(copy["customers"]) - 4 * 2
    broken = [p for rows in manifest.loc[manifest["table"] == "customers", "positions"] for p in rows]
    assert min(broken) >= n_referenced


def test_quarantine_demo_on_orders_alone_skips_what_needs_customers(tiny_tables):
    orders = tiny_tables["orders"].drop(columns=["quantity", "discount"])
    check, result = _demo({"orders": orders}, per_problem=2, valid_until="2025-12-31")
    assert "unknown customer" not in set(check["problem"]) and "quantity of 0" not in set(check["problem"])
    assert set(check["table"]) == {"orders"}
    assert (check["quarantined"] == check["injected"].where(check["problem"] != "none (untouched rows)", 0)).all()
    assert "timestamp after valid_until" in result.report["tables"]["orders"]["reasons"]  # a bound in the past: named


def test_corrupt_sample_needs_enough_rows(tiny_tables):
    with pytest.raises(ValueError, match="too few"):
        corrupt_sample(tiny_tables, seed=0, orders=10, per_problem=3, valid_from="2000-01-01")

"""Tests for atelier.data.validate.tables: the whole validation, its settings and its quarantine."""

from __future__ import annotations

import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.data.validate import ValidationSettings, class_counts

from .contract_samples import sample_orders, sample_tables, validated


def test_clean_data_passes_with_values_unchanged():
    raw = sample_tables()
    result = validated(raw)
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
    result = validated(sample_tables())
    events = result.tables["events"]
    assert "wishlist" in events["event_type"].tolist() and "smart_tv" in events["device"].tolist()
    assert result.report["event_types"] == {"product_view": 3, "add_to_cart": 1, "purchase": 1, "wishlist": 1}
    assert result.report["devices"] == {"mobile": 2, "desktop": 2, "smart_tv": 1, "(missing)": 1}


def test_orders_only_validates():
    result = validated({"orders": sample_orders()})
    assert result.report["tables_present"] == ["orders"]
    assert result.report["tables_missing"] == ["events", "customers", "products"]
    assert result.report["tables"]["orders"]["rows_valid"] == 5
    assert result.report["event_types"] == {} and result.report["devices"] == {}


def test_quarantine_keeps_original_text_and_accounting_holds():
    raw = sample_tables()
    raw["events"].loc[0, "dwell_seconds"] = "-2"
    raw["events"].loc[5, "ts"] = "yesterday"
    raw["events"].loc[2, "event_type"] = "   "
    result = validated(raw)
    quarantine = result.quarantine["events"]
    assert quarantine["source_row"].tolist() == [1, 3, 6]
    assert quarantine["reason"].tolist() == [
        "dwell_seconds is negative",
        "missing event_type",
        "ts is not an ISO 8601 timestamp: 'yesterday'",
    ]
    assert quarantine["ts"].tolist()[2] == "yesterday" and quarantine["dwell_seconds"].tolist()[0] == "-2"
    assert all(str(quarantine[c].dtype) == "string" for c in raw["events"].columns)
    assert result.tables["events"]["event_id"].tolist() == [2, 4, 5]


def test_quarantine_lists_the_classes_validate_json_counts():
    raw = sample_tables()
    raw["orders"].loc[1, ["customer_id", "amount"]] = ["42", "-3"]
    raw["orders"].loc[3, "amount"] = "abc"
    result = validated(raw)
    quarantine = result.quarantine["orders"]
    assert quarantine["reason_classes"].tolist() == [
        ["amount is negative", "unknown customer_id"],
        ["unparseable amount"],
    ]
    counted = class_counts(quarantine["reason_classes"]).to_dict()
    assert counted == result.report["tables"]["orders"]["reasons"]
    assert list(quarantine.columns[-3:]) == ["reason", "reason_classes", "source_row"]


def test_an_empty_quarantine_has_the_quarantine_columns():
    quarantine = validated({"orders": sample_orders()}).quarantine["orders"]
    assert quarantine.empty and {"reason", "reason_classes", "source_row"} <= set(quarantine.columns)


def test_validation_settings_from_params():
    now = pd.Timestamp("2025-06-01 12:00")
    settings = ValidationSettings.from_params(
        {"valid_from": "2000-01-01", "valid_until": None, "max_bad_value_share": 0.5}, now=now
    )
    assert settings == ValidationSettings(pd.Timestamp("2000-01-01"), now, 0.5)
    aware = ValidationSettings.from_params(
        {"valid_from": "2000-01-01T01:00:00+01:00", "valid_until": "2026-01-01", "max_bad_value_share": 1}
    )
    assert aware.valid_from == pd.Timestamp("2000-01-01") and aware.valid_until == pd.Timestamp("2026-01-01")


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"valid_from": "2000-01-01", "valid_until": None}, "missing ['max_bad_value_share']"),
        ({"valid_from": "not a date", "valid_until": None, "max_bad_value_share": 0.5}, "must be dates"),
        ({"valid_from": "2000-01-01", "valid_until": None, "max_bad_value_share": 1.5}, "number in [0, 1]"),
        ({"valid_from": "2000-01-01", "valid_until": None, "max_bad_value_share": True}, "number in [0, 1]"),
    ],
)
def test_validation_settings_name_the_key_and_the_fix(section, fragment):
    with pytest.raises(ParamsError, match="params.yaml validate") as caught:
        ValidationSettings.from_params(section)
    assert fragment in str(caught.value)


def test_validate_tables_refuses_what_is_not_a_contract_table_and_bad_bounds():
    with pytest.raises(ValueError, match="not contract tables"):
        validated({"orders": sample_orders(), "returns": sample_orders()})
    with pytest.raises(ValueError, match="before valid_from"):
        validated({"orders": sample_orders()}, valid_from=pd.Timestamp("2030-01-01"))

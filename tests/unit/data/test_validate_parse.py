"""Tests for atelier.data.validate.parse: values and ids typed the same way whatever the input format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.data.validate.parse import (
    clean_text,
    id_types,
    integer_like,
    parse_integer,
    parse_number,
    parse_timestamp,
    string_ids,
    to_naive_utc,
)

from .contract_samples import reasons_by_row, sample_orders, sample_products, sample_tables, validated


def test_integer_ids_everywhere_stay_int64():
    raw = {name: frame.copy() for name, frame in sample_tables().items()}
    raw["orders"]["customer_id"] = raw["orders"]["customer_id"].astype("int64")
    raw["customers"]["customer_id"] = raw["customers"]["customer_id"].astype("int64")
    result = validated(raw)
    assert result.report["id_types"]["customer_id"] == "int64"
    for name in ("orders", "events", "customers"):
        assert result.tables[name]["customer_id"].dtype == "int64"
    assert result.tables["orders"]["product_id"].dtype == "Int64"  # optional, may be missing


def test_a_text_id_in_one_table_makes_the_entity_text_everywhere():
    raw = sample_tables()
    raw["customers"]["customer_id"] = ["C1", "2", "3"]
    raw["orders"]["customer_id"] = raw["orders"]["customer_id"].astype("int64")  # integer-typed here
    result = validated(raw)
    assert result.report["id_types"]["customer_id"] == "string"
    for name in ("orders", "events", "customers"):
        assert str(result.tables[name]["customer_id"].dtype) == "string"
    # the join works on text: customers 2 and 3 match, customer 1 is now "C1" so it is unknown
    assert result.tables["orders"]["customer_id"].tolist() == ["2", "3", "2"]
    assert set(reasons_by_row(result, "orders")) == {1, 4}
    assert set(reasons_by_row(result, "events")) == {1, 2}
    assert result.report["id_types"]["order_id"] == "int64"  # other entities are unaffected


def test_float_ids_from_parquet_with_missing_values_become_integers():
    orders = sample_orders()
    orders["product_id"] = [10.0, np.nan, 11.0, 12.0, 10.0]
    result = validated({"orders": orders, "products": sample_products()})
    assert result.tables["orders"]["product_id"].tolist() == [10, pd.NA, 11, 12, 10]
    assert result.tables["products"]["product_id"].dtype == "int64"


def test_timezone_aware_input_is_converted_to_naive_utc():
    orders = sample_orders()
    orders["ordered_at"] = pd.to_datetime(
        ["2025-01-05T10:00:00+01:00", "2025-01-06T00:30:00-05:00", "2025-02-01T00:00:00+00:00",
         "2025-03-01T12:00:00+05:30", "2025-03-02T00:00:00Z"], utc=True,
    ).tz_convert("Europe/Paris")
    result = validated({"orders": orders})
    ordered_at = result.tables["orders"]["ordered_at"]
    assert ordered_at.dtype == "datetime64[us]" and ordered_at.dt.tz is None
    assert ordered_at.tolist() == [
        pd.Timestamp("2025-01-05 09:00"), pd.Timestamp("2025-01-06 05:30"), pd.Timestamp("2025-02-01 00:00"),
        pd.Timestamp("2025-03-01 06:30"), pd.Timestamp("2025-03-02 00:00"),
    ]


def test_parse_number_flags_text_and_infinities_but_not_gaps():
    parsed, bad = parse_number(pd.Series(["1.5", " 2 ", None, "inf", "abc", "NaN"], dtype=object))
    assert bad.tolist() == [False, False, False, True, True, True]
    assert parsed.iloc[:2].tolist() == [1.5, 2.0] and parsed.iloc[2:].isna().all()


def test_parse_integer_flags_fractions():
    parsed, bad = parse_integer(pd.Series(["3", "2.5", None, "4.0"], dtype=object))
    assert bad.tolist() == [False, True, False, False]
    assert str(parsed.dtype) == "Int64" and parsed.tolist() == [3, pd.NA, pd.NA, 4]


def test_parse_timestamp_converts_offsets_to_naive_utc_and_flags_other_formats():
    parsed, bad = parse_timestamp(pd.Series(["2025-01-01T10:00:00+02:00", "01/02/2025", None], dtype=object))
    assert bad.tolist() == [False, True, False]
    assert parsed.iloc[0] == pd.Timestamp("2025-01-01 08:00") and str(parsed.dtype) == "datetime64[us]"


def test_integer_like_ids():
    assert integer_like(pd.Series(["1", "22", None], dtype=object))
    assert not integer_like(pd.Series(["0012", "2"], dtype=object))  # leading zeros stay text
    assert integer_like(pd.Series([1.0, np.nan]))
    assert not integer_like(pd.Series([1.5]))
    assert not integer_like(pd.Series([True, False]))
    assert string_ids(pd.Series([1.0, np.nan, 3.0])).tolist() == ["1", pd.NA, "3"]


def test_id_types_is_per_entity_across_tables():
    kinds = id_types({"orders": pd.DataFrame({"customer_id": ["1"], "order_id": ["A1"]}),
                      "customers": pd.DataFrame({"customer_id": [1]})})
    assert kinds == {"customer_id": "int64", "order_id": "string"}


def test_to_naive_utc():
    assert to_naive_utc("2025-01-01T12:00:00+01:00") == pd.Timestamp("2025-01-01 11:00")
    assert to_naive_utc(pd.Timestamp("2025-01-01 11:00")) == pd.Timestamp("2025-01-01 11:00")


@pytest.mark.parametrize("categories", [["view", " cart ", "", "  ", "purchase"], ["a"], [1, 2, 3]])
def test_clean_text_of_a_categorical_equals_converting_every_row(categories):
    """Dictionary-encoded text (read as a categorical) is cleaned per category and spread by code: the result must
    be what converting, stripping and blanking every row gives, missing values included."""
    rng = np.random.default_rng(3)
    codes = rng.integers(-1, len(categories), 2000)  # -1: missing
    values = pd.Series(pd.Categorical.from_codes(codes, categories=categories), index=np.arange(2000) * 3, name="c")
    row_by_row = values.astype("string").str.strip()
    expected = row_by_row.mask(row_by_row == "")
    cleaned = clean_text(values)
    pd.testing.assert_series_equal(cleaned, expected, check_exact=True)
    assert cleaned.isna().sum() >= (codes == -1).sum() > 0

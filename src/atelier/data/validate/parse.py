"""Parsing input columns into their contract types, vectorized.

Each value parser returns the typed column and a mask of the values that did not parse (they go to
quarantine with their original text). Ids get one type per entity across tables, so joins work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Entities whose id columns share one type across tables, so joins work.
ID_ENTITIES: dict[str, tuple[tuple[str, str], ...]] = {
    "customer_id": (("orders", "customer_id"), ("events", "customer_id"), ("customers", "customer_id")),
    "product_id": (("orders", "product_id"), ("events", "product_id"), ("products", "product_id")),
    "session_id": (("orders", "session_id"), ("events", "session_id")),
    "order_id": (("orders", "order_id"),),
    "event_id": (("events", "event_id"),),
}
#: A text id that can be held as int64 without changing it ("0012" or "+5" cannot: they stay text).
INTEGER_TEXT = r"-?(?:0|[1-9][0-9]{0,17})"
INT64_MAX = np.iinfo(np.int64).max


def to_naive_utc(value: Any) -> pd.Timestamp:
    """A timestamp as naive UTC (as validate compares them): aware values converted, naive ones taken as UTC."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def clean_text(values: pd.Series) -> pd.Series:
    """Pandas "string" dtype, stripped, with empty strings as missing.

    A categorical column of text (Parquet's dictionary-encoded strings) is cleaned once per category, then spread
    over the rows by code: the same values as converting every row, without converting millions of repeated
    strings. (Other categoricals convert row by row, as before: pandas spells their missing-holding numbers "1.0".)"""
    if isinstance(values.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(values.cat.categories.dtype):
        categories = clean_text(pd.Series(values.cat.categories))
        rows = categories.array.take(values.cat.codes.to_numpy(), allow_fill=True)  # code -1 (missing) -> NA
        return pd.Series(rows, index=values.index, name=values.name)
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def parse_timestamp(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Naive UTC datetime64[us]; aware values are converted to UTC, naive ones taken as UTC."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if getattr(values.dtype, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[us]"), np.zeros(len(values), dtype=bool)
    text = clean_text(values)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    parsed = parsed.dt.tz_localize(None).astype("datetime64[us]")
    bad = (text.notna() & parsed.isna()).to_numpy(dtype=bool)
    return parsed, bad


def parse_number(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """float64; text that is not a number, NaN/inf spelled out, and infinities are unparseable."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        present = values.notna().to_numpy(dtype=bool)
        parsed = values.astype("float64")
    else:
        text = clean_text(values)
        present = text.notna().to_numpy(dtype=bool)
        try:
            parsed = text.astype("float64")  # fast path: every value is a number
        except (ValueError, TypeError):
            parsed = pd.to_numeric(text, errors="coerce").astype("float64")
    array = parsed.to_numpy(dtype="float64", copy=True)
    finite = np.isfinite(array)
    bad = present & ~finite
    array[~finite] = np.nan
    return pd.Series(array, index=values.index, name=values.name), bad


def parse_integer(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Int64 (nullable); numbers with a fractional part are unparseable."""
    number, bad = parse_number(values)
    array = number.to_numpy(copy=True)
    present = ~np.isnan(array)
    whole = present & (np.floor(array) == array) & (np.abs(array) < 2.0**63)
    bad = bad | (present & ~whole)
    array[~whole] = 0
    parsed = pd.Series(pd.arrays.IntegerArray(array.astype("int64"), ~whole), index=values.index, name=values.name)
    return parsed, bad


#: The value parser of each contract kind that can fail to parse.
PARSERS = {"timestamp": parse_timestamp, "number": parse_number, "integer": parse_integer}


def integer_like(values: pd.Series) -> bool:
    """Whether an id column holds only integers (all-missing columns do not decide either way)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return False
    if pd.api.types.is_integer_dtype(dtype):
        if pd.api.types.is_unsigned_integer_dtype(dtype) and len(values) and values.max() > INT64_MAX:
            return False
        return True
    if pd.api.types.is_float_dtype(dtype):
        array = values.dropna().to_numpy(dtype="float64")
        return bool(np.all(np.isfinite(array) & (np.floor(array) == array) & (np.abs(array) < 2.0**53)))
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        text = clean_text(values).dropna()
        return bool(text.str.fullmatch(INTEGER_TEXT).all())
    return False


def integer_ids(values: pd.Series) -> pd.Series:
    """An integer-like id column as Int64."""
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_float_dtype(values.dtype):
        return values.astype("Int64")
    return clean_text(values).astype("Int64")


def string_ids(values: pd.Series) -> pd.Series:
    """An id column as pandas "string": integers without ".0", text stripped, "" missing."""
    dtype = values.dtype
    if pd.api.types.is_integer_dtype(dtype):
        return values.astype("string")
    if pd.api.types.is_float_dtype(dtype):
        out = values.astype("string")
        array = values.to_numpy(dtype="float64")
        whole = np.isfinite(array) & (np.floor(array) == array) & (np.abs(array) < 2.0**53)
        if whole.any():
            out[whole] = values[whole].astype("Int64").astype("string")
        return out
    return clean_text(values)


def id_types(raw: dict[str, pd.DataFrame]) -> dict[str, str]:
    """For each entity present: "int64" if its id is integer in every table that has it, else "string"."""
    kinds: dict[str, str] = {}
    for entity, places in ID_ENTITIES.items():
        columns = [raw[t][c] for t, c in places if t in raw and c in raw[t].columns]
        if columns:
            kinds[entity] = "int64" if all(integer_like(column) for column in columns) else "string"
    return kinds

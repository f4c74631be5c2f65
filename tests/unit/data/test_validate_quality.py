"""Tests for atelier.data.validate.quality: the quality table, rows per reason class, the terminal summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.data.validate import class_counts, quality_table, row_counts, summary_text

from .contract_samples import sample_tables, validated

REPORT = {
    "tables": {
        "orders": {"rows_in": 10, "rows_valid": 7, "rows_quarantined": 3,
                   "reasons": {"amount is negative": 1, "missing customer_id": 2}},
        "events": {"rows_in": 5, "rows_valid": 5, "rows_quarantined": 0, "reasons": {}},
    },
    "tables_missing": ["customers", "products"],
    "not_read": ["notes.txt"],
}


def test_quality_table_is_tidy_and_largest_first_per_table():
    table = quality_table(REPORT)
    assert table.to_dict(orient="list") == {
        "table": ["orders", "orders"], "reason": ["missing customer_id", "amount is negative"], "rows": [2, 1]}
    assert quality_table({"tables": {}}).empty


def test_row_counts_per_table():
    counts = row_counts(REPORT)
    assert counts.loc["orders"].tolist() == [10, 7, 3] and counts.loc["events", "rows_quarantined"] == 0
    assert list(counts.columns) == ["rows_in", "rows_valid", "rows_quarantined"]


def test_class_counts_counts_each_class_of_a_row_once_and_skips_rows_not_quarantined():
    classes = pd.Series([["b", "a"], None, np.array(["a"]), ["c"], np.nan], dtype=object)
    counts = class_counts(classes)
    assert counts.to_dict() == {"a": 2, "b": 1, "c": 1} and counts.index.tolist() == ["a", "b", "c"]
    assert class_counts(pd.Series([], dtype=object)).empty


def test_class_counts_of_a_quarantine_match_the_report():
    raw = sample_tables()
    raw["orders"].loc[0, "amount"] = "-1"
    raw["orders"].loc[1, ["amount", "customer_id"]] = ["x", None]
    result = validated(raw)
    counted = class_counts(result.quarantine["orders"]["reason_classes"]).to_dict()
    assert counted == result.report["tables"]["orders"]["reasons"] == {
        "amount is negative": 1, "missing customer_id": 1, "unparseable amount": 1}


def test_summary_text_names_tables_top_reasons_and_what_was_not_read():
    text = summary_text(REPORT, "data/mine")
    assert text.splitlines()[0] == "validate: data/mine"
    assert "missing customer_id" in text and "not given: customers, products" in text and "not read: notes.txt" in text

"""Tests for atelier.data.validate.issues: a row's problems joined into one reason and a list of classes."""

from __future__ import annotations

import numpy as np

from atelier.data.validate import quality_table
from atelier.data.validate.issues import Issues

from .contract_samples import reasons_by_row, sample_tables, validated


def test_several_problems_in_one_row_are_joined():
    raw = sample_tables()
    raw["orders"].loc[1, ["customer_id", "amount", "quantity"]] = ["42", "-3", "0"]
    raw["orders"].loc[4, "order_id"] = "101"
    result = validated(raw)
    reasons = reasons_by_row(result, "orders")
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


def test_issues_join_texts_in_order_and_list_each_class_once():
    issues = Issues(5)
    issues.add(np.array([3, 1]), "b text", "class b", order=20)
    issues.add(np.array([1]), "a text", "class a", order=10)
    issues.add(np.array([1]), "a again", "class a", order=11)  # another text of the same class
    issues.add(np.array([], dtype=int), "never", "class c", order=0)  # no rows: nothing recorded
    frame, counts = issues.reasons()
    assert frame.index.tolist() == [1, 3]
    assert frame["reason"].tolist() == ["a text; a again; b text", "b text"]
    assert frame["reason_classes"].tolist() == [["class a", "class b"], ["class b"]]
    assert counts == {"class a": 1, "class b": 2}  # rows per class, a row counted once per class
    assert issues.mask().tolist() == [False, True, False, True, False]


def test_no_issue_gives_an_empty_frame():
    frame, counts = Issues(3).reasons()
    assert frame.empty and list(frame.columns) == ["reason", "reason_classes"] and counts == {}


def test_an_unparseable_value_holding_the_separator_stays_one_class():
    raw = sample_tables()
    raw["orders"].loc[0, "amount"] = "1; missing 2"
    result = validated(raw)
    row = result.quarantine["orders"].iloc[0]
    assert row["reason"] == "amount is not a number: '1; missing 2'" and row["reason_classes"] == ["unparseable amount"]

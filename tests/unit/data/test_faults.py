"""Tests for atelier.data.faults: the fault catalog, its injection into valid tables, and the scorecard of what
validation's quarantine caught (the in-memory demonstration of notebook 01)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.data.faults import FAULTS, KINDS, UNTOUCHED, demonstrate, inject, scorecard, scorecard_totals
from atelier.data.validate import ValidationSettings

from .contract_samples import valid_tables

PER_PROBLEM = 10
VALID_FROM = pd.Timestamp("2000-01-01")
BOUNDS = ValidationSettings(VALID_FROM, pd.Timestamp.now(tz="UTC").tz_localize(None), 0.5)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return valid_tables()


# --------------------------------------------------------------------------------------------
# The catalog


def test_the_catalog_is_data_every_fault_of_a_known_kind_on_a_contract_column():
    from atelier.core.contract import TABLES

    assert len({(fault.table, fault.problem) for fault in FAULTS}) == len(FAULTS)
    for fault in FAULTS:
        assert fault.kind in KINDS and fault.caught_as
        assert fault.column in [column.name for column in TABLES[fault.table].columns]
    assert {fault.kind for fault in FAULTS} == set(KINDS)  # every kind is used


# --------------------------------------------------------------------------------------------
# inject


def test_inject_corrupts_a_copy_on_disjoint_seeded_rows(tables):
    before = {name: frame.copy() for name, frame in tables.items()}
    corrupted, manifest = inject(tables, seed=1, per_problem=PER_PROBLEM, valid_from=VALID_FROM)
    for name in tables:
        pd.testing.assert_frame_equal(tables[name], before[name])  # the input is untouched
        assert len(corrupted[name]) == len(tables[name])
    assert set(manifest["table"]) == {"orders", "events"}
    assert len(manifest) == len(FAULTS)
    assert (manifest["rows_injected"] == PER_PROBLEM).all()
    for _, group in manifest.groupby("table"):
        rows = [r for positions in group["positions"] for r in positions]
        assert len(rows) == len(set(rows)) == PER_PROBLEM * len(group)
    again = inject(tables, seed=1, per_problem=PER_PROBLEM, valid_from=VALID_FROM)[1]
    assert again["positions"].tolist() == manifest["positions"].tolist()
    assert (
        inject(tables, seed=2, per_problem=PER_PROBLEM, valid_from=VALID_FROM)[1]["positions"].tolist()
        != manifest["positions"].tolist()
    )


def test_inject_without_optional_tables_skips_their_problems(tables):
    corrupted, manifest = inject({"orders": tables["orders"]}, seed=1, per_problem=5, valid_from=VALID_FROM)
    assert set(manifest["table"]) == {"orders"}
    assert "unknown customer" not in set(manifest["problem"])  # needs the customers table


@pytest.mark.parametrize("per_problem", [0, -3, 2.5, True])
def test_inject_rejects_bad_per_problem(tables, per_problem):
    with pytest.raises(ValueError, match="per_problem"):
        inject(tables, seed=1, per_problem=per_problem, valid_from=VALID_FROM)


def test_inject_says_when_the_table_is_too_small(tables):
    with pytest.raises(ValueError, match="orders: 400 rows are available.*lower per_problem"):
        inject(tables, seed=1, per_problem=60, valid_from=VALID_FROM)


def test_inject_needs_orders():
    with pytest.raises(ValueError, match="orders"):
        inject({"events": pd.DataFrame()}, seed=1, per_problem=1, valid_from=VALID_FROM)


def test_inject_breaks_each_row_the_way_its_fault_says(tables):
    corrupted, manifest = inject(tables, seed=1, per_problem=PER_PROBLEM, valid_from=VALID_FROM)
    rows = {(m.table, m.problem): list(m.positions) for m in manifest.itertuples()}
    orders, events = corrupted["orders"], corrupted["events"]
    assert orders["customer_id"].iloc[rows[("orders", "missing customer_id")]].isna().all()
    assert (orders["amount"].iloc[rows[("orders", "negative amount")]].astype(float) < 0).all()
    assert (
        pd.to_datetime(orders["ordered_at"].iloc[rows[("orders", "timestamp before valid_from")]]) < VALID_FROM
    ).all()
    assert (
        pd.to_datetime(orders["ordered_at"].iloc[rows[("orders", "timestamp in the future")]]) > pd.Timestamp.now()
    ).all()
    assert orders["amount"].iloc[rows[("orders", "unparseable amount")]].map(type).eq(str).all()
    assert (
        not orders["customer_id"]
        .iloc[rows[("orders", "unknown customer")]]
        .isin(tables["customers"]["customer_id"])
        .any()
    )
    duplicated = orders["order_id"].iloc[rows[("orders", "duplicate order_id")]]
    assert duplicated.isin(orders["order_id"].drop(index=rows[("orders", "duplicate order_id")])).all()
    assert (events["dwell_seconds"].iloc[rows[("events", "negative dwell_seconds")]] < 0).all()
    assert events["event_type"].iloc[rows[("events", "missing event_type")]].isna().all()
    assert (
        manifest["caught_as"].map(len).gt(0).all() and manifest["expected_catcher"].str.startswith("validate: ").all()
    )


# --------------------------------------------------------------------------------------------
# scorecard


def test_scorecard_counts_caught_missed_and_false_alarms():
    corrupted = {"orders": pd.DataFrame({"order_id": range(6)})}
    manifest = pd.DataFrame(
        [("negative amount", "orders", "amount", 2, "validate: amount >= 0", ("amount is negative",), (0, 1))],
        columns=["problem", "table", "column", "rows_injected", "expected_catcher", "caught_as", "positions"],
    )
    quarantine = {
        "orders": pd.DataFrame(
            {
                "reason_classes": [["amount is negative"], ["missing customer_id"], ["duplicate order_id"]],
                "source_row": [1, 2, 5],  # row 0 caught right, row 1 caught for another reason, row 4 untouched
            }
        )
    }
    card = scorecard(corrupted, manifest, quarantine)
    fault, control = card.iloc[0], card.iloc[1]
    assert (fault["injected"], fault["caught"], fault["missed"]) == (2, 1, 1)
    assert fault["caught_by"] == "validate: amount >= 0"
    assert fault["counted_as"] == "amount is negative; missing customer_id"
    assert control["problem"] == UNTOUCHED and (control["injected"], control["caught"]) == (4, 1)
    assert pd.isna(control["missed"]) and control["counted_as"] == "duplicate order_id"
    assert scorecard_totals(card) == {
        "faults": 1,
        "untouched_rows": 4,
        "injected_rows": 2,
        "missed": 1,
        "false_alarms": 1,
        "collateral_rows": 0,
    }


def test_a_fault_caught_for_no_reason_of_its_own_is_missed():
    corrupted = {"orders": pd.DataFrame({"order_id": range(3)})}
    manifest = pd.DataFrame(
        [("negative amount", "orders", "amount", 1, "validate: amount >= 0", ("amount is negative",), (2,))],
        columns=["problem", "table", "column", "rows_injected", "expected_catcher", "caught_as", "positions"],
    )
    nothing = {
        "orders": pd.DataFrame(
            {"reason_classes": pd.Series([], dtype=object), "source_row": pd.Series([], dtype="int64")}
        )
    }
    card = scorecard(corrupted, manifest, nothing)
    assert card.iloc[0]["caught"] == 0 and card.iloc[0]["missed"] == 1 and card.iloc[0]["caught_by"] == ""


# --------------------------------------------------------------------------------------------
# The demonstration of notebook 01 (in memory)


def test_demonstrate_catches_every_orders_fault_and_nothing_else(tiny_tables):
    before = {name: frame.copy() for name, frame in tiny_tables.items()}
    card, result = demonstrate(tiny_tables, BOUNDS, seed=5, per_problem=3)
    for name, frame in before.items():  # the validated tables are not touched
        pd.testing.assert_frame_equal(tiny_tables[name], frame)
    faults = card[card["missed"].notna()]
    assert set(faults["problem"]) == {fault.problem for fault in FAULTS if fault.table == "orders"}
    assert (faults["injected"] == 3).all() and (faults["caught"] == 3).all() and (faults["missed"] == 0).all()
    controls = card[card["missed"].isna()].set_index("table")
    assert set(controls.index) == {"orders", "customers", "products"}  # events are left out
    assert (controls["caught"] == 0).all()
    assert controls.loc["orders", "injected"] == len(tiny_tables["orders"]) - 3 * len(faults)
    assert "events" not in result.report["tables"]
    assert result.report["tables"]["orders"]["reasons"] == {
        "missing customer_id": 3,
        "amount is negative": 3,
        "unparseable amount": 3,
        "duplicate order_id": 3,
        "timestamp in the future": 3,
        "timestamp before valid_from": 3,
        "unknown customer_id": 3,
    }


def test_demonstrate_on_orders_alone_with_a_bound_in_the_past(tiny_tables):
    bounds = ValidationSettings(VALID_FROM, pd.Timestamp("2025-12-31"), 0.5)
    card, result = demonstrate({"orders": tiny_tables["orders"]}, bounds, seed=1, per_problem=2)
    assert "unknown customer" not in set(card["problem"])  # needs a customers table
    assert set(card["table"]) == {"orders"} and card["missed"].dropna().eq(0).all()
    assert "timestamp after valid_until" in result.report["tables"]["orders"]["reasons"]  # a bound in the past: named
    assert scorecard_totals(card)["false_alarms"] == 0


def test_the_same_seed_breaks_the_same_rows(tiny_tables):
    first = demonstrate(tiny_tables, BOUNDS, seed=2, per_problem=2)[1].quarantine["orders"]
    again = demonstrate(tiny_tables, BOUNDS, seed=2, per_problem=2)[1].quarantine["orders"]
    other = demonstrate(tiny_tables, BOUNDS, seed=3, per_problem=2)[1].quarantine["orders"]
    assert first["source_row"].tolist() == again["source_row"].tolist() != other["source_row"].tolist()
    assert np.array_equal(first["source_row"], np.sort(first["source_row"]))

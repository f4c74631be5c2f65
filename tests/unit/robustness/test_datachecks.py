"""Tests for atelier.robustness.datachecks: every injected problem is caught as expected, nothing else is, and the
reports of caught data are gathered correctly (the fault catalog itself: tests/unit/data/test_faults.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from atelier.core import paths
from atelier.data import faults, validate
from atelier.replay.engine import EngineSettings
from atelier.robustness import datachecks
from atelier.robustness.datachecks import (
    gather_reports,
    run_demo,
    schema_demo,
    schema_scenarios,
    stream_demo,
)

from ..data.contract_samples import valid_tables

PARAMS = {"validate": {"valid_from": "2000-01-01", "valid_until": None, "max_bad_value_share": 0.5}}
PER_PROBLEM = 10
SETTINGS = EngineSettings(watermark_delay_seconds=120, allowed_lateness_seconds=600)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return valid_tables()


@pytest.fixture(scope="module")
def demo(tables, tmp_path_factory) -> pd.DataFrame:
    return run_demo(tables, PARAMS, tmp_path_factory.mktemp("demo"), seed=3, per_problem=PER_PROBLEM)


# --------------------------------------------------------------------------------------------
# run_demo: validate on the CSV copy


def test_every_injected_row_problem_is_caught_with_its_reason(demo):
    problems = demo[~demo["problem"].str.startswith("none")]
    assert len(problems) == 12
    assert (problems["injected"] == PER_PROBLEM).all()
    assert (problems["caught"] == PER_PROBLEM).all(), demo.to_string()
    assert (problems["missed"] == 0).all()
    assert problems["caught_by"].str.startswith("validate: ").all()
    counted = dict(zip(problems["table"] + "/" + problems["problem"], problems["counted_as"]))
    assert counted["orders/unparseable amount"] == "unparseable amount"
    assert counted["orders/timestamp in the future"] == "timestamp in the future"
    assert counted["orders/unknown customer"] == "unknown customer_id"  # orders have no session cascade
    # An event of an unknown customer also makes its session shared by two customers.
    assert counted["events/unknown customer"] == "session_id shared by several customers; unknown customer_id"


def test_no_untouched_row_is_quarantined_and_collateral_is_explained(demo):
    controls = demo[demo["problem"].str.startswith("none")].set_index("table")
    assert set(controls.index) == {"orders", "events", "customers", "products"}
    assert (controls["caught"] == 0).all(), demo.to_string()
    collateral = demo.set_index(["table", "problem"])["also_quarantined"]
    # Each unknown-customer event sits in its own 4-event session: the 3 others go with it.
    assert collateral[("events", "unknown customer")] == 3 * PER_PROBLEM
    assert collateral.drop(("events", "unknown customer")).eq(0).all()
    event_faults = sum(fault.table == "events" for fault in faults.FAULTS)
    assert controls.loc["events", "injected"] == 1200 - event_faults * PER_PROBLEM


def test_a_csv_written_in_parts_on_two_workers_has_the_same_bytes(tmp_path):
    rows = 80_000  # 4 columns: pandas formats 25,000 rows at a time, so 4 chunks, 2 per worker
    stamps = pd.Timestamp("2025-03-01") + pd.to_timedelta(np.arange(rows) * 7, unit="s")
    # Dates only up to row 40,000: pandas writes its first chunk as dates and its second with times; parts split
    # at row 40,000 (half the rows, not a chunk boundary) would write rows 25,000-39,999 as dates.
    stamps = stamps.where(np.arange(rows) >= 40_000, stamps.normalize())
    frame = pd.DataFrame({"id": pd.array(np.arange(rows), dtype=object), "ts": stamps,
                          "amount": np.where(np.arange(rows) % 97 == 0, np.nan, np.arange(rows) / 3),
                          "text": pd.array(["a,b", None, "c\"d", "e"] * (rows // 4), dtype=object)})
    frame.to_csv(tmp_path / "plain.csv", index=False)
    datachecks.write_csv(frame, tmp_path / "parts.csv", workers=2)
    datachecks.write_csv(frame, tmp_path / "one.csv", workers=1)
    plain = (tmp_path / "plain.csv").read_bytes()
    assert (tmp_path / "parts.csv").read_bytes() == plain == (tmp_path / "one.csv").read_bytes()
    assert plain.count(b"\n") == rows + 1 and b"\n0,2025-03-01,," in plain and b"\n25000,2025-03-03 00:00:00," in plain
    datachecks.write_csv(frame.iloc[:10], tmp_path / "small.csv", workers=2)  # one chunk: written in process
    assert (tmp_path / "small.csv").read_bytes() == frame.iloc[:10].to_csv(index=False).encode()


def test_orders_and_customers_with_text_ids(tables, tmp_path):
    """No events (so no events problems), and customer ids that are text: the same problems are caught."""
    as_text = lambda ids: "C" + ids.astype(str).str.zfill(4)  # noqa: E731
    shop = {
        "orders": tables["orders"].assign(customer_id=as_text(tables["orders"]["customer_id"])),
        "customers": tables["customers"].assign(customer_id=as_text(tables["customers"]["customer_id"])),
    }
    demo = run_demo(shop, PARAMS, tmp_path, seed=4, per_problem=5)
    assert demo["table"].tolist() == ["orders"] * 8 + ["customers"]
    assert demo["missed"].dropna().eq(0).all() and demo["caught"].iloc[:7].eq(5).all()
    assert demo.loc[demo["problem"].str.startswith("none"), "caught"].eq(0).all()


def test_schema_scenarios_stop_validation_naming_file_column_and_fix(tables, tmp_path):
    names = []
    for name, corrupted, fragment in schema_scenarios(tables):
        names.append(name)
        with pytest.raises(validate.DataContractError, match="'amount'") as error:
            validate.validate_tables(corrupted, **datachecks._bounds(PARAMS))
        assert fragment in str(error.value) and "orders table" in str(error.value)
    assert names == ["orders.amount missing", "orders.amount is text"]
    report = schema_demo(tables, PARAMS, tmp_path)
    assert report[["stopped", "names_file", "names_column", "names_fix"]].all().all(), report["message"].tolist()


# --------------------------------------------------------------------------------------------
# stream_demo


def test_stream_demo_counts_each_problem_exactly_and_the_books_balance(tables):
    counts, books = stream_demo(tables["events"], seed=5, per_problem=PER_PROBLEM, settings=SETTINGS)
    assert (counts["counted"] == PER_PROBLEM).all(), counts.to_string()
    assert (counts["missed"] == 0).all()
    n = len(tables["events"])
    assert books == {
        "received": n + PER_PROBLEM,
        "applied": n - 3 * PER_PROBLEM,
        "duplicates": PER_PROBLEM,
        "late": PER_PROBLEM,
        "malformed": 2 * PER_PROBLEM,
        "balanced": True,
    }


def test_stream_demo_rejects_bad_arguments(tables):
    with pytest.raises(ValueError, match="EngineSettings"):
        stream_demo(tables["events"], seed=1, per_problem=2, settings={"watermark_delay_seconds": 1})
    with pytest.raises(ValueError, match="contract columns"):
        stream_demo(tables["events"].drop(columns="ts"), seed=1, per_problem=2, settings=SETTINGS)
    with pytest.raises(ValueError, match="too few"):
        stream_demo(tables["events"].head(100), seed=1, per_problem=2, settings=SETTINGS)


# --------------------------------------------------------------------------------------------
# gather_reports


def _quarantine(classes: list[list[str]]) -> pd.DataFrame:
    """A quarantine table as validate writes it: the reason for people, the classes validate.json counts."""
    return pd.DataFrame(
        {
            "order_id": [str(i) for i in range(len(classes))],
            "reason": pd.Series(["; ".join(c) for c in classes], dtype="string"),
            "reason_classes": pd.Series(classes, dtype=object),
            "source_row": np.arange(1, len(classes) + 1),
        }
    )


def test_gather_reports_counts_each_reason_of_each_source(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "data" / "quarantine").mkdir(parents=True)
    (tmp_path / "data" / "replay").mkdir()
    report = {
        "tables": {
            "orders": {"reasons": {"missing customer_id": 2, "amount is negative": 1}},
            "customers": {"reasons": {}},
        }
    }
    (tmp_path / "metrics" / "validate.json").write_text(json.dumps(report))
    _quarantine([["missing customer_id", "amount is negative"], ["missing customer_id"]]).to_parquet(
        tmp_path / "data/quarantine/orders.parquet"
    )
    _quarantine([]).to_parquet(tmp_path / "data/quarantine/customers.parquet")
    pd.DataFrame(
        {"record": ["event", "event", "order"], "reason": ["missing customer_id", "late: older", "late: older"]}
    ).to_parquet(tmp_path / "data/replay/dead_letters.parquet")
    books = {"received": 20, "applied": 15, "duplicates": 2, "late": 2, "malformed": 1, "balanced": True}
    (tmp_path / "metrics" / "replay.json").write_text(json.dumps({"books": books}))

    reports = gather_reports(tmp_path)
    assert list(reports.columns) == ["stage", "table", "reason", "rows", "flagged", "source"]
    assert reports.attrs["missing"] == ["metrics/prep.json", "metrics/model.json"]
    rows = {(s, t, r, src): n for s, t, r, n, _, src in reports.itertuples(index=False)}
    assert rows[("validate", "orders", "missing customer_id", "metrics/validate.json")] == 2
    assert rows[("validate", "orders", "missing customer_id", "data/quarantine/orders.parquet")] == 2
    assert rows[("validate", "orders", "amount is negative", "data/quarantine/orders.parquet")] == 1
    assert rows[("replay", "events", "missing customer_id", "data/replay/dead_letters.parquet")] == 1
    assert rows[("replay", "orders", "late: older", "data/replay/dead_letters.parquet")] == 1
    assert rows[("replay", "stream", "duplicates", "metrics/replay.json (books)")] == 2
    assert reports.loc[reports["source"].str.endswith("(books)"), "rows"].tolist() == [20, 15, 2, 2, 1]
    # The quarantine files and validate.json agree.
    by_source = reports[reports["stage"] == "validate"].groupby("source")["rows"].sum()
    assert by_source.nunique() == 1
    # A count above 0 is a problem found; the stream's received and applied totals are not.
    flagged = reports.set_index(["source", "reason"])["flagged"]
    assert (
        flagged[("metrics/validate.json", "missing customer_id")]
        and not flagged[("metrics/validate.json", "nothing quarantined")]
    )
    assert (
        not flagged[("metrics/replay.json (books)", "received")]
        and not flagged[("metrics/replay.json (books)", "applied")]
    )
    assert flagged[("metrics/replay.json (books)", "malformed")]
    totals = reports["reason"].isin(["received", "applied"]) & (reports["stage"] == "replay")
    assert (reports["flagged"] == ((reports["rows"] > 0) & ~totals)).all()
    assert reports["flagged"].sum() == 10  # 2 reasons by two validate sources, 3 dead-letter groups, 3 books counters


def test_gather_reports_needs_the_quarantine_reason_classes(tmp_path):
    path = tmp_path / paths.QUARANTINE_DIR / "orders.parquet"
    path.parent.mkdir(parents=True)
    _quarantine([["missing customer_id"]]).drop(columns="reason_classes").to_parquet(path)  # an older validate's file
    with pytest.raises(validate.DataContractError, match="no 'reason_classes' column.*dvc repro validate"):
        gather_reports(tmp_path)


def test_gather_reports_skips_and_lists_missing_sources(tmp_path):
    (tmp_path / "metrics").mkdir()
    report = {"tables": {"orders": {"reasons": {}}}}
    (tmp_path / "metrics" / "validate.json").write_text(json.dumps(report))
    reports = gather_reports(tmp_path)
    assert reports[["table", "reason", "rows"]].values.tolist() == [["orders", "nothing quarantined", 0]]
    assert reports.attrs["missing"] == [
        "data/quarantine/orders.parquet",
        "metrics/prep.json",
        "metrics/model.json",
        "data/replay/dead_letters.parquet",
        "metrics/replay.json (books)",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gather_reports(empty).attrs["missing"] == [
        "metrics/validate.json",
        "data/quarantine/*.parquet",
        "metrics/prep.json",
        "metrics/model.json",
        "data/replay/dead_letters.parquet",
        "metrics/replay.json (books)",
    ]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gather_reports(tmp_path / "nowhere")


def test_gather_reports_reads_an_empty_dead_letter_file(tmp_path):
    path = tmp_path / paths.DEAD_LETTERS_FILE
    path.parent.mkdir(parents=True)
    pd.DataFrame({"reason": pd.Series(dtype="string")}).to_parquet(path)  # what a replay without dead letters writes
    table = gather_reports(tmp_path)
    assert not (table["stage"] == "replay").any() or table.loc[table["stage"] == "replay", "rows"].sum() == 0


def test_gather_reports_covers_the_prep_and_model_stages(tmp_path):
    (tmp_path / "metrics").mkdir()
    prep = {
        "cutoffs": {
            "2025-03-01": {"customers": 40, "label_complete": True},
            "2025-02-01": {"customers": 30, "label_complete": True},
            "2025-04-01": {"customers": 50, "label_complete": False},
        },
        "skipped_groups": ["device", "dwell"],
        "missing_share": {"avg_order_value": 0.7},
        "prepared_all_finite": False,
        "imputer": {"name": "iterative", "rounds": 10, "max_iter": 10, "converged": False, "tol": 0.001},
    }
    model = {
        "cv": {
            "xgboost": {"auc": 0.9, "train_auc": 0.91, "gap": 0.01, "overfitting": False},
            "random_forest": {"auc": 0.9, "train_auc": 0.95, "gap": 0.05, "overfitting": True},
        }
    }
    (tmp_path / "metrics" / "prep.json").write_text(json.dumps(prep))
    (tmp_path / "metrics" / "model.json").write_text(json.dumps(model))

    reports = gather_reports(tmp_path)
    assert "metrics/prep.json" not in reports.attrs["missing"] and "metrics/model.json" not in reports.attrs["missing"]
    assert reports["stage"].tolist() == ["prep"] * 7 + ["model"] * 2  # pipeline order; no validate or replay here
    prep_rows = reports[reports["stage"] == "prep"]
    assert (prep_rows["source"] == "metrics/prep.json").all()
    # One row per cutoff, in date order: a censored label window flags every customer of its snapshot.
    labels = prep_rows.iloc[:3]
    assert labels["table"].tolist() == ["snapshot 2025-02-01", "snapshot 2025-03-01", "snapshot 2025-04-01"]
    assert labels["rows"].tolist() == [0, 0, 50] and labels["flagged"].tolist() == [False, False, True]
    assert "censored" in labels["reason"].iloc[2]
    # Skipped groups, an imputer cut off at its cap and non-finite values are yes/no checks: flagged, with no row count.
    others = prep_rows.iloc[3:]
    assert others["reason"].tolist() == [
        "feature group 'device' skipped for lack of data",
        "feature group 'dwell' skipped for lack of data",
        "iterative imputer stopped at its cap (10 of 10 rounds)",
        "non-finite prepared values",
    ]
    assert others["rows"].isna().all() and others["flagged"].all()
    # Missing feature values are by design (imputed), not a caught problem: no row for them.
    assert not reports["reason"].str.contains("avg_order_value").any()
    model_rows = reports[reports["stage"] == "model"].set_index("table")
    assert model_rows.loc["random_forest", "flagged"] and not model_rows.loc["xgboost", "flagged"]
    assert model_rows.loc["random_forest", "reason"] == "overfitting (train AUC - CV AUC = 0.050)"
    assert model_rows.loc["xgboost", "reason"] == "no overfitting (train AUC - CV AUC = 0.010)"
    assert model_rows["rows"].isna().all() and (model_rows["source"] == "metrics/model.json").all()


def test_gather_reports_says_when_prep_found_nothing(tmp_path):
    (tmp_path / "metrics").mkdir()
    prep = {
        "cutoffs": {"2025-03-01": {"customers": 40, "label_complete": True}},
        "skipped_groups": [],
        "prepared_all_finite": True,
        "imputer": {"name": "iterative", "rounds": 4, "max_iter": 10, "converged": True, "tol": 0.001},
    }
    (tmp_path / "metrics" / "prep.json").write_text(json.dumps(prep))
    reports = gather_reports(tmp_path)
    assert reports[["reason", "flagged"]].values.tolist() == [
        ["label window complete", False],
        ["no feature group skipped", False],
        ["iterative imputer converged (4 of 10 rounds)", False],
        ["every prepared value finite", False],
    ]
    knn = {**prep, "imputer": {"name": "knn"}}  # one-pass imputers have nothing to converge: no row
    (tmp_path / "metrics" / "prep.json").write_text(json.dumps(knn))
    assert not gather_reports(tmp_path)["table"].eq("imputer").any()
    assert reports.attrs["missing"][-3:] == [
        "metrics/model.json",
        "data/replay/dead_letters.parquet",
        "metrics/replay.json (books)",
    ]


# --------------------------------------------------------------------------------------------
# flags_by_stage


def test_flags_by_stage_lists_each_stages_flags_with_their_rows():
    caught = pd.DataFrame(
        {
            "stage": ["validate", "validate", "model", "replay", "replay"],
            "table": ["orders", "events", "random_forest", "events", "stream"],
            "reason": ["nothing quarantined", "nothing quarantined", "overfitting", "late", "malformed"],
            "rows": pd.array([0, 0, pd.NA, 1, 2_500], dtype="Int64"),
            "flagged": [False, False, True, True, True],
        }
    )
    flags = datachecks.flags_by_stage(caught)
    assert list(flags) == ["validate", "model", "replay"]  # the table's order, not alphabetical
    assert flags["validate"] == (2, []) and flags["model"] == (1, ["random_forest: overfitting"])
    assert flags["replay"] == (2, ["events: late (1 row)", "stream: malformed (2,500 rows)"])
    assert datachecks.flags_by_stage(caught.iloc[:0]) == {}

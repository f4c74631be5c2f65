"""Tests for atelier.data.stage: what the simulate, validate and prep stages read and write."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import tiny_params
from sklearn.exceptions import ConvergenceWarning

from atelier.core import paths
from atelier.core.config import ParamsError
from atelier.core.contract import DataContractError
from atelier.core.io import read_json, read_parquet
from atelier.core.persist import load_skops, save_skops
from atelier.data import explore, transform
from atelier.data.features import FeatureSettings, sessions_table
from atelier.data.snapshots import Timeline, build_snapshots
from atelier.data.stage import (
    finish_training,
    load_feature_spec,
    load_validated,
    load_validation_report,
    run_simulate,
    run_validate,
    snapshot_at_test,
    start_training,
    write_prep,
)
from atelier.data.transform import ImputerSettings

from .contract_samples import sample_orders, sample_tables

SETTINGS = FeatureSettings()
CUTOFFS = [pd.Timestamp("2025-04-01"), pd.Timestamp("2025-05-01")]  # the tiny shop's data ends 2025-06-30
HORIZON = 30
IMPUTE = ImputerSettings("iterative", knn_neighbors=5, knn_fit_rows=500, iterative_max_iter=3, seed=0)


# --------------------------------------------------------------------------------------------
# simulate


def test_cutoff_whose_label_window_leaves_the_period_is_rejected_before_touching_outputs(tmp_path):
    params = tiny_params()  # simulates 2025-01-01 .. 2025-06-30
    params["timeline"]["cutoffs"] = ["2025-04-01", "2025-06-15"]
    sentinel = tmp_path / "data" / "simulated" / "keep.txt"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("previous output")
    with pytest.raises(ParamsError, match=r"timeline\.cutoffs: 2025-06-15 \+ 30 days is outside the simulated period"):
        run_simulate(params, tmp_path)
    assert sentinel.exists()


def test_unknown_data_source_is_rejected(tmp_path):
    params = tiny_params()
    params["data"]["source"] = "database"
    with pytest.raises(ParamsError, match="'database' is neither 'simulate' nor 'files'"):
        run_simulate(params, tmp_path)


def test_files_source_skips_simulation(tmp_path):
    stale = tmp_path / "data" / "simulated" / "events.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    params = tiny_params()
    params["data"]["source"] = "files"
    metrics = run_simulate(params, tmp_path)
    assert metrics["skipped"] is True
    for folder in (tmp_path / "data" / "simulated", tmp_path / "data" / "truth"):
        assert [p.name for p in folder.iterdir()] == ["SKIPPED.md"]
        assert "data.source is 'files'" in (folder / "SKIPPED.md").read_text(encoding="utf-8")
    assert not list(tmp_path.rglob("*.parquet"))
    written = json.loads((tmp_path / "metrics" / "simulate.json").read_text(encoding="utf-8"))
    assert written["skipped"] is True


# --------------------------------------------------------------------------------------------
# validate


def _params(path: str = "data/mine", source: str = "files", valid_until=None) -> dict:
    return {
        "data": {"source": source, "path": path},
        "validate": {"valid_from": "2000-01-01", "valid_until": valid_until, "max_bad_value_share": 0.5},
        "timeline": {"cutoffs": ["2025-01-20", "2025-02-01"], "horizon_days": 7},  # the sample orders: Jan 5 - Mar 2
    }


def test_run_writes_tables_quarantine_and_metrics(tmp_path, capsys):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    raw = sample_tables()
    raw["orders"].loc[0, "amount"] = "-1"
    for name in ("orders", "events", "customers"):
        raw[name].to_csv(folder / f"{name}.csv", index=False)
    raw["products"].to_parquet(folder / "products.parquet")
    (folder / "README.txt").write_text("notes")
    # stale outputs from an earlier input that had a table this one lacks
    for sub in ("validated", "quarantine"):
        (tmp_path / "data" / sub).mkdir(parents=True)
        (tmp_path / "data" / sub / "returns.parquet").write_bytes(b"stale")

    result = run_validate(_params(), tmp_path)

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
    run_validate(_params(), tmp_path)
    assert not (tmp_path / "data" / "validated" / "products.parquet").exists()
    assert not (tmp_path / "data" / "quarantine" / "products.parquet").exists()
    metrics = json.loads((tmp_path / "metrics" / "validate.json").read_text())
    assert metrics["tables_missing"] == ["products"]


def test_run_rejects_bad_params(tmp_path):
    with pytest.raises(ParamsError, match="data.source"):
        run_validate(_params(source="excel"), tmp_path)
    with pytest.raises(ParamsError, match="data.source: files"):
        run_validate(_params(source="simulate", path="data/mine"), tmp_path)
    with pytest.raises(ParamsError, match="data.path"):
        run_validate({"data": {"source": "files"}}, tmp_path)


def test_run_with_missing_simulated_data_says_to_simulate(tmp_path):
    with pytest.raises(DataContractError, match="simulate stage"):
        run_validate(_params(source="simulate", path="data/simulated"), tmp_path)


def test_run_stops_when_no_order_is_valid(tmp_path):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    orders = sample_orders()
    orders["amount"] = "-1"
    orders.to_csv(folder / "orders.csv", index=False)
    with pytest.raises(DataContractError, match="no order passed validation") as caught:
        run_validate(_params(), tmp_path)
    assert "data/mine/orders.csv" in str(caught.value)
    # the quarantine is still written so the user can see why
    assert len(read_parquet(tmp_path / "data" / "quarantine" / "orders.parquet")) == 5


def test_run_stops_on_an_unreadable_parquet_with_the_contract_message(tmp_path):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    (folder / "orders.parquet").write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(DataContractError, match=r"data/mine/orders\.parquet: could not be read as Parquet"):
        run_validate(_params(), tmp_path)


def test_quarantine_files_hold_typed_reason_classes_even_when_empty(tmp_path):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    raw = sample_tables()
    raw["orders"].loc[0, ["amount", "customer_id"]] = ["-1", "99"]
    for name, frame in raw.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    run_validate(_params(), tmp_path)
    for name in ("orders", "events"):
        path = tmp_path / paths.QUARANTINE_DIR / f"{name}.parquet"
        assert str(pq.read_schema(path).field("reason_classes").type) == "list<element: string>"
    orders = read_parquet(tmp_path / paths.QUARANTINE_DIR / "orders.parquet")
    assert [list(classes) for classes in orders["reason_classes"]] == [["amount is negative", "unknown customer_id"]]
    assert load_validation_report(tmp_path)["tables"]["orders"]["reasons"] == {
        "amount is negative": 1, "unknown customer_id": 1}


def test_load_validated_reads_what_validate_wrote(tmp_path):
    with pytest.raises(DataContractError, match="run the validate stage first"):
        load_validated(tmp_path)
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    for name, frame in sample_tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    result = run_validate(_params(), tmp_path)
    tables = load_validated(tmp_path)
    assert set(tables) == {"orders", "events", "customers", "products"}
    assert {str(tables["events"][column].dtype) for column in ("event_type", "device")} == {"category"}
    pd.testing.assert_frame_equal(tables["orders"], result.tables["orders"])


# --------------------------------------------------------------------------------------------
# prep


@pytest.fixture(scope="module")
def written(tiny_tables, tmp_path_factory):
    """write_prep on the tiny shop with a third, censored cutoff (the test snapshot)."""
    cutoffs = [*CUTOFFS, pd.Timestamp("2025-06-15")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshots = build_snapshots(tiny_tables, cutoffs, HORIZON, SETTINGS)
        transformer = transform.fit_on_training(snapshots, cutoffs, IMPUTE)
        prepared = transform.transform(transformer, snapshots)
    daily = explore.daily_activity(tiny_tables["orders"], sessions_table(tiny_tables["events"]))
    root = tmp_path_factory.mktemp("prep_outputs")
    metrics = write_prep(root, snapshots, prepared, transformer, tiny_tables, cutoffs, "iterative", daily)
    return {
        "root": root,
        "metrics": metrics,
        "snapshots": snapshots,
        "prepared": prepared,
        "cutoffs": cutoffs,
        "daily": daily,
    }


def test_write_prep_snapshots_and_prepared(written):
    root, snapshots, prepared = written["root"], written["snapshots"], written["prepared"]
    back = read_parquet(root / paths.FEATURES_DIR / "snapshots.parquet")
    pd.testing.assert_frame_equal(back, snapshots, check_exact=True)
    back_prepared = read_parquet(root / paths.FEATURES_DIR / "prepared.parquet")
    assert list(back_prepared.columns) == [*prepared.columns, "cutoff", "label"]
    pd.testing.assert_frame_equal(back_prepared[list(prepared.columns)], prepared, check_exact=True)
    np.testing.assert_array_equal(back_prepared["cutoff"].to_numpy(), snapshots["cutoff"].to_numpy())
    # label values survive (empty where censored)
    np.testing.assert_array_equal(
        back_prepared["label"].to_numpy(dtype=float, na_value=np.nan),
        snapshots["label"].to_numpy(dtype=float, na_value=np.nan),
    )


def test_write_prep_prepared_label_keeps_its_dtype(written):
    back_prepared = read_parquet(written["root"] / paths.FEATURES_DIR / "prepared.parquet")
    assert back_prepared["label"].dtype == written["snapshots"]["label"].dtype  # Int8, as in snapshots.parquet


def test_write_prep_transformer_file(written):
    loaded = load_skops(written["root"] / paths.PREP_MODEL_DIR / "transformer.skops")
    pd.testing.assert_frame_equal(
        transform.transform(loaded, written["snapshots"]), written["prepared"], check_exact=True
    )


def test_write_prep_feature_spec(written):
    spec = load_feature_spec(written["root"])
    numeric, categorical = transform.split_columns(written["snapshots"])
    assert spec["train_cutoffs"] == ["2025-04-01", "2025-05-01"]
    assert spec["test_cutoff"] == "2025-06-15"
    assert spec["numeric"] == numeric and spec["categorical"] == categorical
    assert spec["prepared_columns"] == list(written["prepared"].columns)
    assert spec["imputer"] == "iterative"
    assert spec["skipped"] == {} and all(spec["groups"].values())


def test_write_prep_metrics(written):
    root, snapshots, metrics = written["root"], written["snapshots"], written["metrics"]
    on_disk = read_json(root / paths.PREP_METRICS)
    assert set(on_disk["cutoffs"]) == {"2025-04-01", "2025-05-01", "2025-06-15"}
    for cutoff in written["cutoffs"]:
        entry = on_disk["cutoffs"][cutoff.date().isoformat()]
        labels = snapshots.loc[(snapshots["cutoff"] == cutoff).to_numpy(), "label"]
        assert entry["customers"] == len(labels)
        if labels.notna().all():
            assert entry["label_complete"] is True
            assert entry["label_rate"] == pytest.approx(float(labels.astype(float).mean()), abs=1e-6)
            assert entry["buyers_in_window"] == int(labels.sum())
        else:
            assert entry["label_complete"] is False
            assert entry["label_rate"] is None and entry["buyers_in_window"] is None
    numeric, categorical = transform.split_columns(snapshots)
    assert on_disk["features"] == {
        "numeric": len(numeric),
        "categorical": len(categorical),
        "prepared": written["prepared"].shape[1],
    }
    assert on_disk["prepared_all_finite"] is True and on_disk["skipped_groups"] == []
    # IMPUTE caps the iterative imputer at 3 rounds: too few on this data, and the metrics say so
    assert on_disk["imputer"] == {"name": "iterative", "rounds": 3, "max_iter": 3, "converged": False, "tol": 1e-3}
    gaps = snapshots[numeric].isna().mean()
    assert set(on_disk["missing_share"]) == set(gaps[gaps > 0].index)
    for column, share in on_disk["missing_share"].items():
        assert share == pytest.approx(gaps[column], abs=1e-6)
    assert json.loads(json.dumps(metrics, default=str))["features"] == on_disk["features"]


def test_write_prep_daily_activity(written):
    daily = pd.read_csv(written["root"] / paths.PREP_PLOTS / "daily_activity.csv")
    assert list(daily.columns) == ["day", "orders", "revenue", "sessions"]
    assert len(daily) == len(written["daily"])
    assert daily["day"].iloc[0] == written["daily"].index[0].strftime("%Y-%m-%d")
    assert daily["orders"].sum() == written["daily"]["orders"].sum()


def test_write_prep_orders_only_lists_skipped_groups(tiny_tables, tmp_path):
    tables = {"orders": tiny_tables["orders"]}
    snapshots = build_snapshots(tables, CUTOFFS, HORIZON, SETTINGS)
    transformer = transform.fit_on_training(snapshots, CUTOFFS, replace(IMPUTE, imputer="iterative"))
    prepared = transform.transform(transformer, snapshots)
    metrics = write_prep(
        tmp_path,
        snapshots,
        prepared,
        transformer,
        tables,
        CUTOFFS,
        "iterative",
        explore.daily_activity(tables["orders"]),
    )
    assert metrics["skipped_groups"] == ["categories", "demographics", "device", "dwell", "events"]
    spec = load_feature_spec(tmp_path)
    assert spec["categorical"] == [] and "events" in spec["skipped"]
    assert metrics["prepared_all_finite"] is True


def test_training_chain_on_another_process_gives_the_snapshots_and_transformer_of_the_sequential_stage(
        tiny_root, tiny_tables, tmp_path):
    """The notebook's overlap (training snapshots and the imputer fit started on another process, the test snapshot
    built meanwhile, then stacked) equals building every snapshot and fitting in one go, as the stage did before."""
    params = tiny_params()
    timeline = Timeline.from_params(params["timeline"])
    settings, imputation = FeatureSettings.from_params(params["prep"]), ImputerSettings.from_params(params["prep"], 7)
    compute = {"engine": "embedded"}
    running = start_training(tiny_root, tiny_tables, timeline, settings, compute, imputation)
    test = snapshot_at_test(tiny_root, tiny_tables, timeline, settings, compute)
    with pytest.warns(ConvergenceWarning, match="Early stopping criterion not reached"):  # 3 rounds: cut off
        training, transformer = finish_training(running)
    stacked = pd.concat([training, test])
    sequential = build_snapshots(tiny_tables, timeline.cutoffs, timeline.horizon_days, settings)
    pd.testing.assert_frame_equal(stacked, sequential, check_exact=True)
    expected = transform.fit_on_training(sequential, timeline.cutoffs, imputation)
    pd.testing.assert_frame_equal(transform.transform(transformer, stacked), transform.transform(expected, sequential),
                                  check_exact=True)
    assert transform.imputer_convergence(transformer) == transform.imputer_convergence(expected)
    # the transformer file the stage saves is byte for byte the one of a fit in this process
    assert save_skops(transformer, tmp_path / "a.skops").read_bytes() == save_skops(
        expected, tmp_path / "b.skops").read_bytes()


def test_training_chain_refuses_cutoffs_before_the_data_before_starting(tiny_root, tiny_tables):
    timeline = Timeline.from_params({"cutoffs": ["2024-01-01", "2025-04-01"], "horizon_days": 30})
    with pytest.raises(ParamsError, match="not after the first order"):
        start_training(tiny_root, tiny_tables, timeline, FeatureSettings(), None, ImputerSettings())

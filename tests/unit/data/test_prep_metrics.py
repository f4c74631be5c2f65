"""Tests for atelier.data.prep_metrics: the feature spec and metrics/prep.json's figures, from frames."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from atelier.data import transform
from atelier.data.features import FeatureSettings
from atelier.data.prep_metrics import feature_spec, prep_metrics
from atelier.data.snapshots import build_snapshots
from atelier.data.transform import ImputerSettings

CUTOFFS = [pd.Timestamp("2025-04-01"), pd.Timestamp("2025-05-01")]


@pytest.fixture(scope="module")
def prepared_orders_only(tiny_tables):
    tables = {"orders": tiny_tables["orders"]}
    snapshots = build_snapshots(tables, CUTOFFS, 30, FeatureSettings())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformer = transform.fit_on_training(snapshots, CUTOFFS, ImputerSettings("median"))
    return tables, snapshots, transformer, transform.transform(transformer, snapshots)


def test_feature_spec_lists_features_groups_and_cutoffs(prepared_orders_only):
    tables, snapshots, _, prepared = prepared_orders_only
    spec = feature_spec(snapshots, prepared, tables, CUTOFFS, "median")
    assert spec["train_cutoffs"] == ["2025-04-01"] and spec["test_cutoff"] == "2025-05-01"
    assert spec["categorical"] == [] and spec["numeric"] == transform.split_columns(snapshots)[0]
    assert spec["prepared_columns"] == list(prepared.columns) and spec["imputer"] == "median"
    assert spec["groups"]["orders"] and not spec["groups"]["events"] and "events" in spec["skipped"]


def test_prep_metrics_of_a_one_pass_imputer_have_no_rounds(prepared_orders_only):
    tables, snapshots, transformer, prepared = prepared_orders_only
    spec = feature_spec(snapshots, prepared, tables, CUTOFFS, "median")
    metrics = prep_metrics(snapshots, prepared, transformer, spec)
    assert metrics["imputer"] == {"name": "median"}
    assert metrics["skipped_groups"] == sorted(spec["skipped"])
    assert metrics["features"] == {"numeric": len(spec["numeric"]), "categorical": 0, "prepared": prepared.shape[1]}
    assert set(metrics["cutoffs"]) == {"2025-04-01", "2025-05-01"}
    assert metrics["missing_share"] == {}  # orders alone: every customer known has ordered, so nothing is undefined
    gappy = snapshots.copy()
    gappy.iloc[:3, gappy.columns.get_loc("avg_order_value")] = np.nan
    shares = prep_metrics(gappy, prepared, transformer, spec)["missing_share"]
    assert shares == {"avg_order_value": pytest.approx(3 / len(gappy))}  # features without a gap are left out


def test_prep_metrics_flag_non_finite_prepared_values(prepared_orders_only):
    tables, snapshots, transformer, prepared = prepared_orders_only
    spec = feature_spec(snapshots, prepared, tables, CUTOFFS, "median")
    broken = prepared.copy()
    broken.iloc[0, 0] = np.inf
    assert prep_metrics(snapshots, prepared, transformer, spec)["prepared_all_finite"] is True
    assert prep_metrics(snapshots, broken, transformer, spec)["prepared_all_finite"] is False

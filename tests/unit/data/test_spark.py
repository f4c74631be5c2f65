"""Batch features on Spark equal the embedded ones exactly: columns, dtypes and values (real local Spark)."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt
import pytest
from tests.conftest import tiny_params

from atelier.data import spark as data_spark
from atelier.data import stage as data_stage
from atelier.data.features import FeatureSettings
from atelier.data.snapshots import build_snapshots


def _timeline():
    timeline = tiny_params()["timeline"]
    return [pd.Timestamp(c) for c in timeline["cutoffs"]], timeline["horizon_days"]


def test_spark_snapshots_identical_to_embedded(spark, tiny_root, tiny_tables):
    cutoffs, horizon = _timeline()
    settings = FeatureSettings.from_params(tiny_params()["prep"])
    embedded = build_snapshots(tiny_tables, cutoffs, horizon, settings)
    frames, templates, products = data_stage.spark_tables(spark, tiny_root)
    result, template = data_spark.snapshot_frame(frames, templates, products, cutoffs, horizon, settings, 3)
    on_spark = data_spark.collect_snapshots(result, template)
    assert list(on_spark.columns) == list(embedded.columns)
    assert on_spark.dtypes.to_dict() == embedded.dtypes.to_dict()
    pdt.assert_frame_equal(on_spark, embedded, check_exact=True)  # engagement_score included: same order of sums


def test_compute_snapshots_follows_the_engine_param(spark, tiny_root, tiny_tables):
    params = tiny_params()
    cutoffs, horizon = _timeline()
    settings = FeatureSettings.from_params(params["prep"])
    spark_params = {"engine": "spark", "spark": {"master": "local[2]", "shuffle_partitions": 2}}
    on_spark = data_stage.compute_snapshots(tiny_root, tiny_tables, cutoffs, horizon, settings, spark_params)
    embedded = data_stage.compute_snapshots(tiny_root, tiny_tables, cutoffs, horizon, settings, params["compute"])
    pdt.assert_frame_equal(on_spark, embedded, check_exact=True)


def test_censored_label_window_is_decided_over_all_partitions(spark, tiny_root, tiny_tables):
    """The last cutoff's label window runs past the data: every partition must leave its labels empty."""
    cutoffs, _ = _timeline()
    late = [*cutoffs, pd.Timestamp("2025-06-20")]
    settings = FeatureSettings.from_params(tiny_params()["prep"])
    frames, templates, products = data_stage.spark_tables(spark, tiny_root)
    result, template = data_spark.snapshot_frame(frames, templates, products, late, 30, settings, 4)
    on_spark = data_spark.collect_snapshots(result, template)
    last = on_spark[on_spark["cutoff"] == late[-1]]
    assert len(last) and last["label"].isna().all()
    pdt.assert_frame_equal(on_spark, build_snapshots(tiny_tables, late, 30, settings), check_exact=True)


@pytest.mark.parametrize(("dtype", "expected"), [("int64", "bigint"), ("Int8", "tinyint"), ("float64", "double"),
                                                 ("string", "string"), ("datetime64[us]", "timestamp"),
                                                 ("bool", "boolean")])
def test_spark_type(dtype, expected):
    assert data_spark.spark_type(pd.Series(dtype=dtype).dtype) == expected

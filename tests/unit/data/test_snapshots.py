"""Tests for atelier.data.snapshots: cutoffs and the timeline, snapshots stacked over cutoffs, their summary."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.data.features import FeatureSettings, purchase_label
from atelier.data.snapshots import (
    Timeline,
    build_snapshots,
    check_cutoffs,
    cutoff_summary,
    parse_cutoffs,
    training_rows,
)

SETTINGS = FeatureSettings()
CUTOFFS = [pd.Timestamp("2025-04-01"), pd.Timestamp("2025-05-01")]  # the tiny shop's data ends 2025-06-30
HORIZON = 30


@pytest.fixture(scope="module")
def snapshots(tiny_tables) -> pd.DataFrame:
    return build_snapshots(tiny_tables, CUTOFFS, HORIZON, SETTINGS)


def test_training_rows(snapshots):
    rows = training_rows(snapshots, CUTOFFS)
    assert rows.sum() == (snapshots["cutoff"] == CUTOFFS[0]).sum()
    assert not rows[(snapshots["cutoff"] == CUTOFFS[-1]).to_numpy()].any()


def test_parse_cutoffs_sorts_and_dedups():
    parsed = parse_cutoffs(["2025-05-01", "2025-04-01", "2025-05-01", datetime.date(2025, 4, 1)])
    assert parsed == [pd.Timestamp("2025-04-01"), pd.Timestamp("2025-05-01")]
    assert all(isinstance(c, pd.Timestamp) for c in parsed)
    with pytest.raises(ParamsError, match="at least two"):
        parse_cutoffs(["2025-04-01", "2025-04-01"])
    with pytest.raises(ParamsError, match="timeline.cutoffs"):
        parse_cutoffs(["2025-04-01"])


def test_check_cutoffs(tiny_tables):
    orders = tiny_tables["orders"]["ordered_at"]
    first, last = orders.min(), orders.max()
    check_cutoffs(tiny_tables, CUTOFFS)  # fine
    check_cutoffs(tiny_tables, [first + pd.Timedelta(microseconds=1), pd.Timestamp("2030-01-01")])
    with pytest.raises(ParamsError) as error:
        check_cutoffs(tiny_tables, [pd.Timestamp("2024-06-01"), *CUTOFFS])
    message = str(error.value)
    assert "2024-06-01" in message and "2025-04-01" not in message
    assert first.date().isoformat() in message and last.date().isoformat() in message
    with pytest.raises(ParamsError):
        check_cutoffs(tiny_tables, [first, *CUTOFFS])  # an order at the cutoff is not before it


def test_build_snapshots_labels_and_censoring(tiny_tables):
    cutoffs = [*CUTOFFS, pd.Timestamp("2025-06-15")]  # 06-15 + 30 days runs past the data's end (06-30)
    snapshots = build_snapshots(tiny_tables, cutoffs, HORIZON, SETTINGS)
    assert str(snapshots["label"].dtype) == "Int8"
    assert list(snapshots["cutoff"].unique()) == cutoffs
    for cutoff in CUTOFFS:
        part = snapshots[snapshots["cutoff"] == cutoff]
        buyers = purchase_label(tiny_tables["orders"], cutoff, HORIZON)
        expected = buyers.reindex(part.index, fill_value=0)
        assert part["label"].notna().all()
        np.testing.assert_array_equal(part["label"].to_numpy(dtype=int), expected.to_numpy(dtype=int))
    censored = snapshots[snapshots["cutoff"] == cutoffs[-1]]
    assert len(censored) > 0 and censored["label"].isna().all()

    summary = cutoff_summary(snapshots)
    assert list(summary.index) == ["2025-04-01", "2025-05-01", "2025-06-15"]
    assert summary["label_complete"].tolist() == [True, True, False]
    assert summary["customers"].tolist() == [int((snapshots["cutoff"] == c).sum()) for c in cutoffs]
    for cutoff in CUTOFFS:
        part = snapshots[snapshots["cutoff"] == cutoff]
        key = cutoff.date().isoformat()
        assert summary.at[key, "buyers_in_window"] == int(part["label"].sum())
        assert summary.at[key, "label_rate"] == pytest.approx(part["label"].astype(float).mean())
    assert pd.isna(summary.at["2025-06-15", "label_rate"]) and pd.isna(summary.at["2025-06-15", "buyers_in_window"])


def test_two_workers_build_the_same_snapshots_as_one(tiny_tables):
    cutoffs = [*CUTOFFS, pd.Timestamp("2025-05-15"), pd.Timestamp("2025-06-15")]  # the last one censored
    serial = build_snapshots(tiny_tables, cutoffs, HORIZON, SETTINGS)
    parallel = build_snapshots(tiny_tables, cutoffs, HORIZON, SETTINGS, workers=2)
    pd.testing.assert_frame_equal(parallel, serial)  # stacked in the cutoffs' order, though built interleaved
    assert list(parallel["cutoff"].unique()) == cutoffs and parallel["label"].isna().any()


def test_timeline_from_params():
    timeline = Timeline.from_params({"cutoffs": ["2025-05-01", "2025-04-01"], "horizon_days": 30})
    assert timeline.cutoffs == CUTOFFS and timeline.horizon_days == 30
    assert timeline.train_cutoffs == CUTOFFS[:1] and timeline.test_cutoff == CUTOFFS[-1]


@pytest.mark.parametrize(("section", "fragment"), [
    ({"cutoffs": ["2025-04-01", "2025-05-01"]}, "missing ['horizon_days']"),
    ({"cutoffs": ["2025-04-01", "2025-05-01"], "horizon_days": 0}, "horizon_days must be a whole number"),
    ({"cutoffs": ["2025-04-01", "2025-05-01"], "horizon_days": "30"}, "horizon_days must be a whole number"),
    ({"cutoffs": "2025-04-01", "horizon_days": 30}, "cutoffs must be a list of dates"),
    ({"cutoffs": ["2025-04-01", "someday"], "horizon_days": 30}, "cutoffs must be a list of dates"),
    ({"cutoffs": ["2025-04-01"], "horizon_days": 30}, "at least two"),
])
def test_timeline_names_the_bad_key(section, fragment):
    with pytest.raises(ParamsError, match="params.yaml timeline") as caught:
        Timeline.from_params(section)
    assert fragment in str(caught.value)


def test_snapshots_of_the_tiny_shop_grow_with_the_customers_known(snapshots):
    """The data, not only the code: a later snapshot knows at least the customers of an earlier one."""
    first, last = (set(snapshots.index[snapshots["cutoff"] == cutoff]) for cutoff in CUTOFFS)
    assert first <= last and len(first) > 100

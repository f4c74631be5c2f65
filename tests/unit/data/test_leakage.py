"""Tests for atelier.data.leakage: the future is rewritten, features do not move, and the check can fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.data import leakage as F
from atelier.data.features import FeatureSettings, build_features, purchase_label
from atelier.data.leakage import leakage_check
from atelier.data.snapshots import build_snapshots

SETTINGS = FeatureSettings()


def test_scramble_after_cutoff_rewrites_only_the_future(tiny_tables):
    cutoff = pd.Timestamp("2025-04-01")
    scrambled, summary = F.scramble_after_cutoff(tiny_tables, cutoff, seed=3)
    assert list(summary.index) == ["orders", "events", "customers"]
    for name, time_column, key in (("orders", "ordered_at", "order_id"), ("events", "ts", "event_id"),
                                   ("customers", "signup_at", "customer_id")):
        original, new = tiny_tables[name], scrambled[name]
        late = (original[time_column] >= cutoff).to_numpy(dtype=bool, na_value=False)
        entry = summary.loc[name]
        assert entry["rows_before_cutoff"] == (~late).sum() and entry["rows_changed"] == late.sum() > 0
        assert entry["rows_added"] >= 20 and len(new) == len(original) + entry["rows_added"]
        assert (new.dtypes == original.dtypes).all() and new[key].is_unique
        # the past is untouched, row for row; everything else is at or after the cutoff, one row exactly at it
        past = original[~late].reset_index(drop=True)
        pd.testing.assert_frame_equal(new.iloc[: len(past)].reset_index(drop=True), past, check_exact=True)
        future = new.iloc[len(past):]
        assert (future[time_column] >= cutoff).all() and (future[time_column] == cutoff).any()
    # values really changed: every later order costs more than it did, and now and then belongs to someone else
    before = tiny_tables["orders"].set_index("order_id")
    after = scrambled["orders"].set_index("order_id").loc[before.index[before["ordered_at"] >= cutoff]]
    assert (after["amount"] > before.loc[after.index, "amount"]).all()
    assert (after["customer_id"] != before.loc[after.index, "customer_id"]).mean() > 0.5
    assert scrambled["products"] is tiny_tables["products"]
    again, _ = F.scramble_after_cutoff(tiny_tables, cutoff, seed=3)
    other, _ = F.scramble_after_cutoff(tiny_tables, cutoff, seed=4)
    pd.testing.assert_frame_equal(again["events"], scrambled["events"])
    assert not other["orders"]["amount"].equals(scrambled["orders"]["amount"])


def test_features_ignore_a_rewritten_future_and_the_check_can_fail(tiny_tables):
    cutoff = pd.Timestamp("2025-04-01")
    base = build_features(tiny_tables, cutoff, SETTINGS)
    scrambled, _ = F.scramble_after_cutoff(tiny_tables, cutoff, seed=3)
    pd.testing.assert_frame_equal(build_features(scrambled, cutoff, SETTINGS), base, check_exact=True)
    assert len(F.customers_with_different_features(base, build_features(scrambled, cutoff, SETTINGS))) == 0
    # the label looks after the cutoff, so it moves
    labels = [
        purchase_label(t["orders"], cutoff, 30).reindex(base.index, fill_value=0) for t in (tiny_tables, scrambled)
    ]
    assert (labels[0] != labels[1]).sum() > 0
    # control: the same rewrite starting one day before the cutoff does reach the features
    leaky, _ = F.scramble_after_cutoff(tiny_tables, cutoff - pd.Timedelta(days=1), seed=3)
    moved = F.customers_with_different_features(base, build_features(leaky, cutoff, SETTINGS))
    assert len(moved) > 10


def test_customers_with_different_features():
    base = pd.DataFrame(
        {"a": [1.0, np.nan, 3.0], "b": pd.array(["x", None, "z"], dtype="string")},
        index=pd.Index([1, 2, 3], name="customer_id"),
    )
    assert F.customers_with_different_features(base, base.copy()).empty  # missing equals missing
    other = base.copy()
    other.loc[3, "a"] = 3.5
    other.loc[2, "b"] = "y"
    other.loc[4] = [1.0, "x"]
    assert F.customers_with_different_features(base, other).tolist() == [2, 3, 4]
    assert F.customers_with_different_features(base, base.drop(columns="b")).tolist() == [1, 2, 3]


def test_leakage_check_reports_the_rewrite_the_labels_and_the_control(tiny_tables):
    cutoff = pd.Timestamp("2025-04-01")
    check = leakage_check(tiny_tables, cutoff, SETTINGS, horizon_days=30, seed=3)
    assert check.cutoff == cutoff and check.customers == len(build_features(tiny_tables, cutoff, SETTINGS))
    assert list(check.rewrite.index) == ["orders", "events", "customers"] and check.rewrite["rows_added"].gt(0).all()
    assert check.labels_changed > 0 and check.control_changed > 10


def test_leakage_check_stops_on_a_feature_that_peeks_past_the_cutoff(tiny_tables, monkeypatch):
    real = F.build_features

    def peeking(tables, cutoff, settings):
        features = real(tables, cutoff, settings)
        future_orders = tables["orders"]["ordered_at"] >= cutoff  # reads the future: a leak
        return features.assign(frequency=features["frequency"] + future_orders.sum())

    monkeypatch.setattr(F, "build_features", peeking)
    with pytest.raises(AssertionError, match="frequency"):
        leakage_check(tiny_tables, pd.Timestamp("2025-04-01"), SETTINGS, horizon_days=30, seed=3)


def test_leakage_check_on_the_prep_snapshot_is_the_check_on_features_built_again(tiny_tables):
    """The notebook hands the test cutoff's snapshot to the check (its features are not built twice): same result,
    and a feature that peeks past the cutoff is still caught."""
    cutoff = pd.Timestamp("2025-04-01")
    snapshot = build_snapshots(tiny_tables, [cutoff], 30, SETTINGS)
    alone = leakage_check(tiny_tables, cutoff, SETTINGS, horizon_days=30, seed=3)
    given = leakage_check(tiny_tables, cutoff, SETTINGS, horizon_days=30, seed=3, snapshot=snapshot)
    pd.testing.assert_frame_equal(given.rewrite, alone.rewrite, check_exact=True)
    assert (given.customers, given.labels_changed, given.control_changed) == (
        alone.customers, alone.labels_changed, alone.control_changed)
    peeked = snapshot.assign(frequency=snapshot["frequency"] + 1)  # as if the snapshot had counted a later order
    with pytest.raises(AssertionError):
        leakage_check(tiny_tables, cutoff, SETTINGS, horizon_days=30, seed=3, snapshot=peeked)

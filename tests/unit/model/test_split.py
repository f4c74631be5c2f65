"""The out-of-time split and its leakage rule, the roles of the cutoffs, and the model's input columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.data.features import build_features, build_snapshot
from atelier.data.snapshots import build_snapshots
from atelier.model import split as time_split

from .model_shop import CUTOFFS, FEATURES, HORIZON, tiny_snapshots


@pytest.fixture(scope="module")
def snapshots(tiny_tables) -> pd.DataFrame:
    return tiny_snapshots(tiny_tables)


@pytest.fixture(scope="module")
def split(snapshots) -> time_split.TimeSplit:
    return time_split.split_by_time(snapshots, HORIZON)


# --------------------------------------------------------------------------------------------
# The time split and the leakage rule
# --------------------------------------------------------------------------------------------
def test_split_trains_on_every_earlier_cutoff_and_tests_on_the_last(snapshots, split):
    assert split.test_cutoff == CUTOFFS[-1]
    assert split.train_cutoffs == CUTOFFS[:-1]
    assert set(split.train["cutoff"]) == set(CUTOFFS[:-1])
    assert set(split.test["cutoff"]) == {CUTOFFS[-1]}
    # A partition of the snapshots: nothing lost, nothing duplicated.
    assert len(split.train) + len(split.test) == len(snapshots)
    for cutoff in CUTOFFS[:-1]:
        assert (split.train["cutoff"] == cutoff).sum() == (snapshots["cutoff"] == cutoff).sum()
    assert (split.test["cutoff"] == CUTOFFS[-1]).sum() == (snapshots["cutoff"] == CUTOFFS[-1]).sum()


def test_split_does_not_depend_on_row_order(snapshots, split):
    shuffled = time_split.split_by_time(snapshots.sample(frac=1.0, random_state=0), HORIZON)
    assert shuffled.test_cutoff == split.test_cutoff and shuffled.train_cutoffs == split.train_cutoffs
    assert len(shuffled.train) == len(split.train) and len(shuffled.test) == len(split.test)


def test_label_window_reaching_exactly_the_test_cutoff_is_allowed_one_day_more_is_not(snapshots):
    # 2025-04-01 + 30 days = 2025-05-01, the test cutoff: the window [cutoff, cutoff + 30 d) ends in time.
    time_split.split_by_time(snapshots, 30)
    with pytest.raises(ParamsError) as error:
        time_split.split_by_time(snapshots, 31)
    message = str(error.value)
    assert "timeline.cutoffs" in message and "horizon_days" in message
    assert "2025-04-01" in message  # the offending training snapshot is named


def test_training_cutoff_too_close_to_the_test_cutoff_raises(tiny_tables):
    close = [pd.Timestamp("2025-03-01"), pd.Timestamp("2025-04-01"), pd.Timestamp("2025-04-15")]
    snapshots = build_snapshots(tiny_tables, close, HORIZON, FEATURES)
    assert snapshots["label"].notna().all()  # the labels are complete: only the overlap is wrong
    with pytest.raises(ParamsError, match=r"timeline\.cutoffs.*horizon_days"):
        time_split.split_by_time(snapshots, HORIZON)


def test_censored_labels_raise(tiny_tables):
    # The data ends 2025-06-30: a 30-day window after 2025-06-15 is not observed to its end.
    late = [pd.Timestamp("2025-03-01"), pd.Timestamp("2025-04-01"), pd.Timestamp("2025-06-15")]
    snapshots = build_snapshots(tiny_tables, late, HORIZON, FEATURES)
    assert snapshots.loc[snapshots["cutoff"] == late[-1], "label"].isna().all()
    with pytest.raises(ParamsError) as error:
        time_split.split_by_time(snapshots, HORIZON)
    message = str(error.value)
    assert "timeline.cutoffs" in message and "horizon_days" in message and "2025-06-15" in message


def test_a_single_cutoff_cannot_be_split(snapshots):
    with pytest.raises(ParamsError, match="timeline.cutoffs"):
        time_split.split_by_time(snapshots[snapshots["cutoff"] == CUTOFFS[0]], HORIZON)


def _append_after(tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables plus orders, events and customers at and after `cutoff` (earlier activity shifted past it)."""
    grown = dict(tables)
    orders, events, customers = tables["orders"], tables["events"], tables["customers"]
    # Orders: the 40 latest orders before the cutoff, copied to [cutoff, cutoff + 10 d], the first exactly at it.
    recent = orders[orders["ordered_at"] < cutoff].nlargest(40, "ordered_at").copy()
    recent["ordered_at"] = cutoff + pd.to_timedelta(np.arange(len(recent)) * 6, unit="h")
    recent["order_id"] = orders["order_id"].max() + 1 + np.arange(len(recent))
    recent["amount"] = recent["amount"] * 10
    grown["orders"] = pd.concat([orders, recent], ignore_index=True)
    # Events: the week before the cutoff replayed in the week after it (starting exactly at the cutoff).
    week = events[(events["ts"] >= cutoff - pd.Timedelta(days=7)) & (events["ts"] < cutoff)].copy()
    week["ts"] = week["ts"] - week["ts"].min() + cutoff
    week["event_id"] = events["event_id"].max() + 1 + np.arange(len(week))
    week["session_id"] = week["session_id"] + events["session_id"].max()
    grown["events"] = pd.concat([events, week], ignore_index=True)
    # Customers: two who sign up at and after the cutoff.
    new = customers.iloc[:2].copy()
    new["customer_id"] = customers["customer_id"].max() + 1 + np.arange(2)
    new["signup_at"] = [cutoff, cutoff + pd.Timedelta(days=3)]
    grown["customers"] = pd.concat([customers, new], ignore_index=True)
    return grown


def test_training_features_ignore_data_appended_after_their_cutoff(tiny_tables):
    cutoff = CUTOFFS[1]  # a training snapshot
    before = build_snapshot(tiny_tables, cutoff, HORIZON, FEATURES)
    after = build_snapshot(_append_after(tiny_tables, cutoff), cutoff, HORIZON, FEATURES)
    pd.testing.assert_frame_equal(before.drop(columns="label"), after.drop(columns="label"))
    # The appended orders did land in the label window (so the test is not vacuous): only the label saw them.
    assert (after["label"] >= before["label"]).all()
    assert (after["label"] > before["label"]).sum() > 0


def test_training_features_equal_features_from_data_cut_at_the_cutoff(tiny_tables, snapshots):
    for cutoff in CUTOFFS[:-1]:
        cut = dict(tiny_tables)
        cut["orders"] = tiny_tables["orders"][tiny_tables["orders"]["ordered_at"] < cutoff]
        cut["events"] = tiny_tables["events"][tiny_tables["events"]["ts"] < cutoff]
        cut["customers"] = tiny_tables["customers"][~(tiny_tables["customers"]["signup_at"] >= cutoff)]
        known_then = build_features(cut, cutoff, FEATURES)
        stored = snapshots[snapshots["cutoff"] == cutoff].drop(columns=["cutoff", "label"])
        pd.testing.assert_frame_equal(stored, known_then)


def test_cutoff_roles_count_buyers_per_snapshot_and_mark_the_test(snapshots, split):
    roles = time_split.cutoff_roles(snapshots, split)
    assert list(roles.index) == CUTOFFS
    assert roles["role"].tolist() == [time_split.TRAINING] * 2 + [time_split.TEST]
    for cutoff in CUTOFFS:
        labels = snapshots.loc[snapshots["cutoff"] == cutoff, "label"]
        assert roles.at[cutoff, "customers"] == len(labels) and roles.at[cutoff, "buyers"] == labels.sum()
        assert roles.at[cutoff, "label_rate"] == pytest.approx(labels.mean())


def test_validation_split_holds_out_the_last_training_cutoff(split):
    early, validation = time_split.validation_split(split.train)
    assert set(validation["cutoff"]) == {split.train_cutoffs[-1]}
    assert set(early["cutoff"]) == set(split.train_cutoffs[:-1])
    assert len(early) + len(validation) == len(split.train)


# --------------------------------------------------------------------------------------------
# Feature columns and model input
# --------------------------------------------------------------------------------------------
def test_features_of_excludes_bookkeeping_and_respects_keep(split):
    numeric, categorical = time_split.features_of(split.train)
    assert not {"cutoff", "label", "customer_id"} & set(numeric + categorical)
    assert set(categorical) == {"age_band", "gender", "region"}
    assert all(pd.api.types.is_numeric_dtype(split.train[c]) for c in numeric)
    keep = ["region", "frequency", "recency_days", "not_a_feature"]
    kept_numeric, kept_categorical = time_split.features_of(split.train, keep)
    assert kept_numeric == [c for c in numeric if c in keep] == ["recency_days", "frequency"]  # original order kept
    assert kept_categorical == ["region"]


def test_xy_gives_model_frame_labels_and_customer_groups(split):
    numeric, categorical = time_split.features_of(split.train)
    X, y, groups = time_split.xy(split.train, numeric, categorical)
    assert list(X.columns) == numeric + categorical and len(X) == len(split.train)
    assert y.tolist() == split.train["label"].astype(int).tolist() and set(np.unique(y)) == {0, 1}
    assert (groups == split.train.index.to_numpy()).all()
    assert all(X[c].dtype == object for c in categorical)

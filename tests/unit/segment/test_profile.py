"""Profiles in original units, centroids in SDs, and what the descriptive columns say about the segments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.segment import profile


def test_profiles_and_centroid_z_by_hand():
    snapshot = pd.DataFrame({"monetary": [10.0, 30.0, np.nan, 5.0], "frequency": [1, 3, 2, 0], "other": list("abcd")})
    labels = np.array([1, 1, 0, 0])
    table = profile.profiles(snapshot, labels, ["monetary", "frequency"])
    assert table.columns.tolist() == [(profile.SIZE, "customers"), (profile.SIZE, "share"),
                                      (profile.CLUSTERED, "monetary"), (profile.CLUSTERED, "frequency")]
    assert table[profile.SIZE, "customers"].tolist() == [2, 2] and table[profile.SIZE, "share"].tolist() == [0.5, 0.5]
    assert table.loc[1, (profile.CLUSTERED, "monetary")] == 20.0
    assert table.loc[0, (profile.CLUSTERED, "monetary")] == 5.0  # NaN skipped
    assert table.loc[0, (profile.CLUSTERED, "frequency")] == 1.0

    X = np.array([[1.0, -1.0], [3.0, 1.0], [0.0, 2.0], [-2.0, 0.0]])
    z = profile.centroid_z(X, labels, ["monetary", "frequency"])
    assert z.loc[1].tolist() == [2.0, 0.0] and z.loc[0].tolist() == [-1.0, 1.0]


def test_descriptive_columns_are_device_and_category_shares_not_clustered_on():
    snapshot = pd.DataFrame({"frequency": [1.0], "share_mobile": [0.5], "share_desktop": [0.3], "share_tablet": [0.2],
                             "affinity_tops": [0.6], "affinity_shoes": [0.4], "discount_share": [0.1],
                             "region": ["north"], "share_label": ["a"]})
    assert profile.descriptive_columns(snapshot, ["frequency", "share_mobile", "discount_share"]) == [
        "share_desktop", "share_tablet", "affinity_tops", "affinity_shoes"]
    assert profile.descriptive_columns(snapshot[["frequency", "region"]], ["frequency"]) == []  # orders only: none


def test_profiles_mark_descriptive_columns_and_profile_them_in_original_units():
    snapshot = pd.DataFrame({"frequency": [1.0, 3.0, 0.0, 2.0], "share_desktop": [0.2, np.nan, 1.0, 0.0],
                             "affinity_tops": [0.1, 0.3, 0.5, 0.9]})
    labels = np.array([0, 0, 1, 1])
    table = profile.profiles(snapshot, labels, ["frequency"], ["share_desktop", "affinity_tops", "frequency"])
    assert table[profile.CLUSTERED].columns.tolist() == ["frequency"]
    assert table[profile.DESCRIPTIVE].columns.tolist() == ["share_desktop", "affinity_tops"]  # clustered stays so
    assert table.loc[0, (profile.DESCRIPTIVE, "share_desktop")] == 0.2  # undefined (no visits) skipped
    assert table.loc[1, (profile.DESCRIPTIVE, "share_desktop")] == 0.5
    assert table.loc[:, (profile.DESCRIPTIVE, "affinity_tops")].tolist() == pytest.approx([0.2, 0.7])
    # Profiling descriptive columns does not change the clustered part.
    pd.testing.assert_frame_equal(table[[profile.SIZE, profile.CLUSTERED]],
                                  profile.profiles(snapshot, labels, ["frequency"]))


def profile_with(descriptive: dict[str, list[float]]) -> pd.DataFrame:
    """A three-segment profile table (segments named) with the given descriptive columns."""
    segments = pd.Index(["Loyal", "Browsers", "Lapsing"], name="segment")
    size = pd.DataFrame({"customers": [10, 20, 30], "share": [1 / 6, 1 / 3, 1 / 2]}, index=segments)
    parts = {profile.SIZE: size, profile.CLUSTERED: pd.DataFrame({"frequency": [3.0, 0.1, 0.0]}, index=segments)}
    if descriptive:
        parts[profile.DESCRIPTIVE] = pd.DataFrame(descriptive, index=segments)
    return pd.concat(parts, axis=1)


def test_descriptive_ranges_by_hand():
    table = profile_with({"affinity_tops": [0.12, 0.13, 0.125], "share_desktop": [0.3, 0.1, 0.6],
                          "affinity_shoes": [0.2, 0.1, 0.12], "share_tablet": [0.05, 0.1, 0.07]})
    ranges = profile.descriptive_ranges(table)
    assert list(ranges.index) == ["share_desktop", "share_tablet", "affinity_shoes", "affinity_tops"]
    assert ranges["kind"].tolist() == ["device", "device", "category", "category"]
    assert ranges.loc["share_desktop", ["lowest", "lowest_segment", "highest", "highest_segment"]].tolist() == [
        0.1, "Browsers", 0.6, "Lapsing"]
    assert ranges.loc["affinity_tops", "spread"] == pytest.approx(0.01)


def test_category_contrast_flat_varies_and_none():
    flat = profile.category_contrast(profile.descriptive_ranges(profile_with(
        {"affinity_tops": [0.12, 0.13, 0.125], "affinity_shoes": [0.5, 0.52, 0.49]})))
    assert flat.kind == "flat" and flat.categories == 2 and flat.widest == "affinity_shoes"
    assert flat.widest_spread == pytest.approx(0.03)
    varies = profile.category_contrast(profile.descriptive_ranges(profile_with(
        {"affinity_tops": [0.1, 0.3, 0.125], "share_desktop": [0.0, 1.0, 0.5]})))
    assert (varies.kind, varies.widest) == ("varies", "affinity_tops") and varies.widest_spread == pytest.approx(0.2)
    devices_only = profile.descriptive_ranges(profile_with({"share_desktop": [0.0, 1.0, 0.5]}))
    assert profile.category_contrast(devices_only).kind == "none" and len(devices_only) == 1
    nothing = profile.descriptive_ranges(profile_with({}))
    none = profile.category_contrast(nothing)
    assert nothing.empty and (none.kind, none.categories, none.widest) == ("none", 0, None)

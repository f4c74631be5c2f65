"""Tests for atelier.robustness.group_uplift: the replay's A/B uplift per customer group, recovered from conversions
planted exactly per group and arm, and what the report reads from it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from atelier.robustness import group_uplift
from atelier.robustness.fairness import FairnessSettings

from .test_fairness import SECTION  # the fairness section both modules read


def planted_visits(
    rng: np.random.Generator, first_id: int, customers_per_arm: int, rates: dict[str, float]
) -> pd.DataFrame:
    """Five sessions per customer; exactly rate * sessions convert in each arm."""
    frames = []
    for offset, (arm, rate) in enumerate(rates.items()):
        total = customers_per_arm * 5
        purchased = np.zeros(total, dtype=bool)
        purchased[rng.choice(total, size=round(rate * total), replace=False)] = True
        ids = first_id + offset * customers_per_arm + np.repeat(np.arange(customers_per_arm), 5)
        frames.append(
            pd.DataFrame({"customer_id": ids, "arm": arm, "purchased": purchased, "revenue": purchased * 60.0})
        )
    return pd.concat(frames, ignore_index=True)


def test_uplift_by_group_recovers_a_planted_effect_in_one_group_only():
    rng = np.random.default_rng(7)
    visits = pd.concat(
        [
            planted_visits(rng, 0, 400, {"control": 0.10, "treatment": 0.20}),
            planted_visits(rng, 1_000, 400, {"control": 0.10, "treatment": 0.10}),
            planted_visits(rng, 2_000, 4, {"control": 0.10, "treatment": 0.50}),
            planted_visits(rng, 9_000, 40, {"control": 0.10, "treatment": 0.10}),
        ]
    )
    groups = pd.DataFrame(
        {"region": np.repeat(["north", "south", "west"], [800, 800, 8])},
        index=np.r_[np.arange(800), 1_000 + np.arange(800), 2_000 + np.arange(8)],
    )
    result = group_uplift.uplift_by_group(visits, groups, "region", n_boot=200, seed=0, min_sessions=100).set_index(
        "group"
    )
    assert list(result.index) == ["(not in groups)", "north", "south", "west"]
    north, south, west = result.loc["north"], result.loc["south"], result.loc["west"]
    assert north["relative_uplift"] == pytest.approx(1.0) and north["ci_low"] > 0.3
    assert south["relative_uplift"] == pytest.approx(0.0) and south["ci_low"] < 0 < south["ci_high"]
    assert (north["sessions_control"], north["customers"]) == (2_000, 800)
    assert math.isnan(west["relative_uplift"]) and "fewer than 100 sessions" in west["note"]


def test_uplift_table_and_reading_count_each_kind_of_group():
    rng = np.random.default_rng(11)
    visits = pd.concat(
        [
            planted_visits(rng, 0, 400, {"control": 0.10, "treatment": 0.20}),
            planted_visits(rng, 1_000, 400, {"control": 0.10, "treatment": 0.10}),
            planted_visits(rng, 2_000, 400, {"control": 0.20, "treatment": 0.10}),
            planted_visits(rng, 9_000, 40, {"control": 0.10, "treatment": 0.10}),
        ]
    )
    groups = pd.DataFrame(
        {"region": np.repeat(["north", "south", "west"], 800), "gender": "f"},
        index=np.r_[np.arange(800), 1_000 + np.arange(800), 2_000 + np.arange(800)],
    )
    settings = FairnessSettings.from_params({**SECTION, "uplift_min_sessions": 100, "bootstrap": 200})
    by_group = group_uplift.uplift_table(visits, groups, settings, seed=0)
    assert (
        by_group["group"] == group_uplift.UNMATCHED
    ).sum() == 1  # the unmatched visitors appear once, not per attribute
    assert by_group.loc[by_group["group"] == group_uplift.UNMATCHED, "attribute"].item() == "(any)"
    reading = group_uplift.uplift_reading(by_group)
    assert reading["benefit"] == ["region=north"] and reading["harmed"] == ["region=west"]
    assert reading["covering"] == ["region=south", "gender=f"] and reading["estimated"] == 4 and reading["unmatched"]
    assert group_uplift.uplift_reading(by_group[by_group["group"] != group_uplift.UNMATCHED])["unmatched"] is False


def test_bad_inputs_raise_errors_that_name_the_argument():
    groups = pd.DataFrame({"group": ["A", "B"]}, index=[1, 2])
    with pytest.raises(ValueError, match="attribute 'gender' is not a column of groups"):
        group_uplift.uplift_by_group(
            pd.DataFrame(columns=["customer_id", "arm", "purchased", "revenue"]), groups, "gender"
        )
    with pytest.raises(ValueError, match="visits is missing columns \\['revenue'\\]"):
        group_uplift.uplift_by_group(pd.DataFrame(columns=["customer_id", "arm", "purchased"]), groups, "group")
    with pytest.raises(ValueError, match="min_sessions must be at least 1"):
        group_uplift.uplift_by_group(
            pd.DataFrame(columns=["customer_id", "arm", "purchased", "revenue"]), groups, "group", min_sessions=0
        )

"""Tests for atelier.replay.world: the response model of the simulated shop, through closed-loop replays that
share their random numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atelier.replay import abtest

from .replay_shop import STRONG


def test_personalization_is_more_relevant_and_raises_the_chance_to_buy(strong_run):
    visits = strong_run[0].frames("visits")
    by_arm = visits.groupby("arm")
    assert by_arm["relevance"].mean()["treatment"] > by_arm["relevance"].mean()["control"]
    assert by_arm["multiplier"].mean()["treatment"] > 1
    default = visits[visits["experience"] == "default"]
    assert (default["multiplier"] == 1.0).all() and (default["relevance"] == default["baseline_relevance"]).all()
    assert (visits.loc[visits["arm"] == "control", "multiplier"] == 1.0).all()
    personalized = visits[visits["experience"] == "personalized"]
    assert len(personalized) > 20
    np.testing.assert_allclose(personalized["multiplier"],
                               np.exp(STRONG * (personalized["relevance"] - personalized["baseline_relevance"])),
                               rtol=1e-12)


def test_common_random_numbers_make_the_response_monotone(strong_run, null_run):
    """Same arrivals and draws: control visits are identical at strengths 2 and 0; a treatment visit with a
    multiplier above 1 buys whenever it bought at strength 0, one below 1 only if it bought at strength 0."""
    strong, null = strong_run[0].frames("visits"), null_run.frames("visits")
    assert strong["session_id"].tolist() == null["session_id"].tolist()
    same = ["session_id", "customer_id", "day", "device", "views", "cart_adds", "purchased", "revenue"]
    control = (strong["arm"] == "control").to_numpy()
    pd.testing.assert_frame_equal(strong.loc[control, same], null.loc[control, same])
    pd.testing.assert_frame_equal(strong[["views", "cart_adds"]], null[["views", "cart_adds"]])
    up = (strong["multiplier"] > 1).to_numpy()
    down = (strong["multiplier"] < 1).to_numpy()
    assert not (null["purchased"].to_numpy() & up & ~strong["purchased"].to_numpy()).any()
    assert not (strong["purchased"].to_numpy() & down & ~null["purchased"].to_numpy()).any()
    assert strong.loc[~control, "purchased"].sum() >= null.loc[~control, "purchased"].sum()


def test_at_strength_zero_what_is_shown_changes_nothing(null_run, all_control_run, context):
    visits, control = null_run.frames("visits"), all_control_run.frames("visits")
    assert (visits["multiplier"] == 1.0).all()
    assert (visits["experience"] == "personalized").any()  # something other than the default was shown
    same = ["session_id", "customer_id", "day", "device", "views", "cart_adds", "purchased", "revenue"]
    pd.testing.assert_frame_equal(visits[same], control[same])
    result = abtest.measure(visits, context.settings.seed, n_boot=300)["conversion"]
    assert result["ci_low"] <= 0 <= result["ci_high"]

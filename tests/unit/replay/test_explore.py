"""Exploration with logged propensities: off by default (the replay's results do not move), a logged
distribution that sums to 1 and matches what was shown, draws that follow it, and the same draws on a rerun."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.replay.explore import ACTIONS, Exploration, from_params

DAYS_OF_WINDOWS = 36  # six days of the tiny shop's 4-hour windows


@pytest.fixture(scope="module")
def explored(context):
    return context.closed_loop(exploration=Exploration(0.6)).run(until=DAYS_OF_WINDOWS, progress=False)


@pytest.fixture(scope="module")
def plain(context):
    return context.closed_loop().run(until=DAYS_OF_WINDOWS, progress=False)


def test_exploration_is_off_by_default_and_logs_nothing(context, plain):
    assert context.closed_loop().personalizer.exploration is None
    decisions = plain.frames("decisions")
    assert len(decisions) > 100 and "action_probability" not in decisions and "action" not in decisions


def test_exploring_with_epsilon_zero_shows_exactly_what_the_policy_shows(context, plain):
    quiet = context.closed_loop(exploration=Exploration(0.0)).run(until=DAYS_OF_WINDOWS, progress=False)
    mine, theirs = quiet.frames("decisions"), plain.frames("decisions")
    for column in ("banner", "banner_category", "experience", "session_id"):
        assert mine[column].tolist() == theirs[column].tolist()
    assert all(np.array_equal(a, b) for a, b in zip(mine["products"], theirs["products"]))
    assert quiet.frames("visits")["purchased"].tolist() == plain.frames("visits")["purchased"].tolist()
    assert (mine["action_probability"][mine["eligible"]] == 1.0).all()


def test_the_logged_distribution_matches_what_was_shown(explored, context):
    decisions = explored.frames("decisions")
    probabilities = decisions[[f"p_{a}" for a in ACTIONS]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    shown = decisions["action"].map({a: i for i, a in enumerate(ACTIONS)}).to_numpy()
    assert np.allclose(probabilities[np.arange(len(decisions)), shown], decisions["action_probability"])
    # Not personalizable: the default page for sure; personalizable: every page possible.
    ineligible = ~decisions["eligible"].to_numpy(dtype=bool)
    assert ineligible.any() and (decisions.loc[ineligible, "action"] == "default").all()
    assert (probabilities[~ineligible] > 0).all()
    # The control-arm visits' base page is the default (prob 1 - 0.6 + 0.15), the treatment arm's the personalized.
    control = decisions["eligible"] & (decisions["arm"] == "control")
    assert np.allclose(decisions.loc[control, "p_default"], 0.55)
    top = context.assortment.top(context.settings.policy.recommendations)
    default_rows = decisions["action"] == "default"
    assert all(np.array_equal(p, top) for p in decisions.loc[default_rows, "products"])
    assert decisions.loc[default_rows, "banner_category"].isna().all()
    favourite = decisions["action"] == "favourite_only"
    cats = [set(context.assortment.categories_of(p)) for p in decisions.loc[favourite, "products"]]
    assert all(c == {b} for c, b in zip(cats, decisions.loc[favourite, "banner_category"]))


def test_draws_follow_the_logged_probabilities(explored):
    decisions = explored.frames("decisions")
    eligible = decisions[decisions["eligible"].astype(bool)]
    for action in ACTIONS:
        expected = eligible[f"p_{action}"].sum()
        observed = (eligible["action"] == action).sum()
        assert abs(observed - expected) < 4 * np.sqrt(expected), action


def test_the_same_seed_gives_the_same_draws_and_a_rerun_the_same_log(context, explored):
    again = context.closed_loop(exploration=Exploration(0.6)).run(until=DAYS_OF_WINDOWS, progress=False)
    pd.testing.assert_series_equal(again.frames("decisions")["action"], explored.frames("decisions")["action"])
    exploration = Exploration(0.5)
    uniform = np.zeros((2_000, len(ACTIONS)))
    uniform[:] = 1 / len(ACTIONS)
    sessions = np.arange(2_000)
    assert np.array_equal(exploration.draw(uniform, sessions, 1), exploration.draw(uniform, sessions, 1))
    assert not np.array_equal(exploration.draw(uniform, sessions, 1), exploration.draw(uniform, sessions, 2))


def test_a_forced_base_policy_serves_every_eligible_visit(context):
    forced = context.closed_loop(exploration=Exploration(0.0, base="discovery")).run(until=12, progress=False)
    decisions = forced.frames("decisions")
    eligible = decisions["eligible"].astype(bool)
    assert eligible.any() and (decisions.loc[eligible, "action"] == "discovery").all()
    assert (decisions.loc[~eligible, "action"] == "default").all()


def test_distribution_rows():
    exploration = Exploration(0.4, base=None)
    found = exploration.distribution(np.array([0, 1]), np.array([True, False]))
    assert np.allclose(found, [[0.7, 0.1, 0.1, 0.1], [1.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize(("section", "message"), [
    ({"epsilon": 1.5}, "between 0 and 1"),
    ({"epsilon": True}, "between 0 and 1"),
    ({"epsilon": 0.2, "base": "everything"}, "must be one of"),
    ({"epsilon": 0.2, "temperature": 1}, "unknown keys"),
])
def test_bad_settings_are_refused(section, message):
    with pytest.raises(ParamsError, match=message):
        from_params(section)


def test_no_section_or_no_epsilon_means_off():
    assert from_params(None) is None and from_params({"epsilon": None}) is None
    assert from_params({"epsilon": 0.3}) == Exploration(0.3)

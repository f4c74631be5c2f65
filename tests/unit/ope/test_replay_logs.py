"""Off-policy evaluation on the tiny shop's exploratory replay: logs joined to outcomes, evaluation policies,
the reward model, the settings, and the table's columns against truth runs of the same visits."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from atelier.core.config import ParamsError, load_params
from atelier.ope import analysis, estimators, replay_logs
from atelier.replay.explore import ACTIONS, Exploration

WINDOWS = 42  # seven days of the tiny shop's 4-hour windows


@pytest.fixture(scope="module")
def ope_section() -> dict:
    section = copy.deepcopy(load_params(REPO / "params.yaml")["ope"])
    section["estimators"].update(n_boot=100, dm_refits=5)
    section["replay"].update(days=7)
    return section


@pytest.fixture(scope="module")
def settings(ope_section) -> analysis.OpeSettings:
    return analysis.OpeSettings.from_params(ope_section, 11)


@pytest.fixture(scope="module")
def runs(replay_context):
    explored = replay_context.closed_loop(exploration=Exploration(0.8)).run(until=WINDOWS, progress=False)
    truths = {}
    for name in ACTIONS:
        visits = replay_context.closed_loop(exploration=Exploration(0.0, base=name)).run(
            until=WINDOWS, progress=False).frames("visits")
        truths[name] = float(visits["purchased"].mean())
    return explored.frames("decisions"), explored.frames("visits"), truths


@pytest.fixture(scope="module")
def replay_context(context):
    """The replay tests' tiny shop with everyone on the default page (the shop before personalization)."""
    return dataclasses.replace(context, settings=dataclasses.replace(context.settings, treatment_share=0.0))


def test_rounds_join_each_decision_to_its_outcome(runs):
    decisions, visits, _ = runs
    rounds = replay_logs.logged_rounds(decisions, visits)
    assert len(rounds) == len(decisions) and rounds["purchased"].isin([0.0, 1.0]).all()
    log = replay_logs.bandit_log(rounds)
    assert log.logger.shape == (len(rounds), len(ACTIONS)) and len(set(log.cluster)) < len(rounds)


def test_logs_without_propensities_or_outcomes_are_refused(runs):
    decisions, visits, _ = runs
    with pytest.raises(ValueError, match="run the replay with exploration on"):
        replay_logs.logged_rounds(decisions.drop(columns="action_probability"), visits)
    with pytest.raises(ValueError, match="have no visit outcome"):
        replay_logs.logged_rounds(decisions, visits.iloc[5:])
    rounds = replay_logs.logged_rounds(decisions, visits)
    with pytest.raises(ValueError, match="unknown logged actions"):
        replay_logs.bandit_log(rounds.assign(action="popup"))


def test_evaluation_policies_apply_only_where_the_shop_can_personalize(runs):
    decisions, visits, _ = runs
    rounds = replay_logs.logged_rounds(decisions, visits)
    policy = replay_logs.policy("discovery", rounds)
    assert np.allclose(policy.sum(axis=1), 1)
    eligible = rounds["eligible"].to_numpy(dtype=bool)
    assert (policy[eligible, 3] == 1).all() and (policy[~eligible, 0] == 1).all()
    with pytest.raises(ValueError, match="unknown evaluation policy"):
        replay_logs.policy("banner_blast", rounds)


def test_the_reward_model_predicts_every_page_for_every_visit(runs):
    decisions, visits, _ = runs
    rounds = replay_logs.logged_rounds(decisions, visits)
    log = replay_logs.bandit_log(rounds)
    assert replay_logs.features(rounds).shape == (len(rounds), len(ACTIONS), len(ACTIONS) + 4)
    q = estimators.crossfit(replay_logs.reward_model(rounds, log), len(log), 2, 0, log.cluster)
    assert q.shape == (len(rounds), len(ACTIONS)) and ((q > 0) & (q < 1)).all()
    # One class only (no purchase at all): the model falls back to the mean.
    nothing = replay_logs.reward_model(rounds.assign(purchased=0.0), replay_logs.bandit_log(
        rounds.assign(purchased=0.0)))(np.arange(len(rounds)))
    assert (nothing == 0).all()


def test_the_replay_table_compares_every_estimate_with_its_truth(runs, settings):
    decisions, visits, truths = runs
    rounds = replay_logs.logged_rounds(decisions, visits)
    table, facts = analysis.replay_table(rounds, truths, {"default": 0.01, "personalized": 0.02}, settings)
    assert len(table) == len(settings.targets) * 5  # four estimators and the clipped IPW per policy
    assert np.allclose(table["error"], table["value"] - table["truth"])
    weighted = table[table["method"].isin(["ipw", "snipw", "dr"])]
    assert (weighted["ci_low"] <= weighted["value"]).all() and (weighted["value"] <= weighted["ci_high"]).all()
    assert (table["ci_low"] < table["ci_high"]).all()
    assert table.loc[table["policy"] == "favourite_only", "ab_measured"].isna().all()
    assert facts["rounds"] == len(rounds) and sum(facts["shown"].values()) == len(rounds)
    clipped = table[table["method"].str.startswith("ipw_clip")]
    assert (clipped["max_weight"] <= settings.clip).all()
    # The default page was the base of the logger: its estimates rest on most rounds (large ESS).
    dr = table[table["method"] == "dr"].set_index("policy")
    assert dr.loc["default", "ess"] > dr.loc["discovery", "ess"]
    found = analysis.replay_findings(table, truths)
    assert found["cases"] == 3 * len(settings.targets) and 0 <= found["covered"] <= found["cases"]


def test_the_uplift_table_has_the_three_sources(runs, settings):
    decisions, visits, truths = runs
    rounds = replay_logs.logged_rounds(decisions, visits)
    ab = {"relative_uplift": 0.1, "ci_low": -0.2, "ci_high": 0.4}
    uplift = analysis.replay_uplift(rounds, truths, ab, settings)
    assert uplift["source"].tolist() == ["ipw", "snipw", "dr", "closed-loop A/B", "simulator truth"]
    truth = truths["personalized"] / truths["default"] - 1
    assert uplift.iloc[-1]["relative"] == pytest.approx(truth)


def test_the_ab_reference_reads_the_same_days(settings):
    visits = pd.DataFrame({"customer_id": [1, 2, 3, 4, 5, 6], "arm": ["control", "treatment"] * 3,
                           "purchased": [True, False, False, True, True, True], "revenue": 0.0,
                           "day": [10, 10, 11, 11, 30, 30]})
    measured, uplift = analysis.ab_reference(visits, days=7, first_day=10, seed=0, n_boot=20)
    assert measured == {"default": 0.5, "personalized": 0.5} and uplift["relative_uplift"] == 0.0


@pytest.mark.parametrize(("path", "value", "message"), [
    (("replay", "exploration"), {"epsilon": 0.0}, "must be above 0"),
    (("replay", "exploration"), None, "must be above 0"),
    (("replay", "targets"), ["default", "popup"], "unknown policies"),
    (("replay", "days"), 0, "days must be a whole number"),
    (("estimators", "folds"), 1, "folds must be a whole number"),
    (("estimators", "clip"), -1, "clip must be a positive number"),
    (("obd", "distribution"), "guess", "is not one of"),
])
def test_bad_settings_name_the_key(ope_section, path, value, message):
    section = copy.deepcopy(ope_section)
    section[path[0]][path[1]] = value
    with pytest.raises(ParamsError, match=message):
        analysis.OpeSettings.from_params(section, 0)
    del section[path[0]]
    with pytest.raises(ParamsError, match="missing or malformed key"):
        analysis.OpeSettings.from_params(section, 0)


def test_without_a_simulated_shop_the_metrics_and_plots_hold_only_the_real_logs(settings, tmp_path):
    from atelier.ope import stage as ope_stage

    real = pd.DataFrame({"campaign": ["all"], "method": ["ipw"], "value": [0.005], "ci_low": [0.003],
                         "ci_high": [0.008], "bts_measured": [0.004]})
    synthetic_check = pd.DataFrame({"bias": [0.0]}, index=pd.Index(["ipw"], name="method"))
    metrics = analysis.metrics(synthetic=synthetic_check, replay=None, facts=None, uplift=None, obd_estimates=real,
                               reconstruction=pd.DataFrame(), settings=settings)
    assert metrics["replay"] is None and metrics["headline"]["personalized_dr"] == {}
    assert metrics["headline"]["bts_all_ipw"]["value"] == 0.005
    frames = analysis.plot_frames(None, real)
    assert frames["replay_estimates"] is None and frames["obd_estimates"]["label"].tolist() == ["all · ipw"]
    written = ope_stage.write(tmp_path, metrics, frames)
    assert written.exists()
    assert pd.read_csv(tmp_path / "plots" / "ope" / "replay_estimates.csv").empty
    assert len(pd.read_csv(tmp_path / "plots" / "ope" / "obd_estimates.csv")) == 1


def test_interval_verdicts():
    uplift = pd.DataFrame({"source": ["dr", "closed-loop A/B", "simulator truth"], "relative": [0.2, 0.3, 0.25],
                           "ci_low": [-0.1, 0.16, np.nan], "ci_high": [0.5, 0.6, np.nan]})
    assert analysis.interval_verdicts(uplift) == {"dr": "cannot exclude no effect and holds +15%",
                                                  "closed-loop A/B": "excludes no effect and excludes +15%"}


def test_redrawn_logs_measure_the_estimators_on_the_replays_potential_outcomes(runs, settings):
    decisions, visits, truths = runs
    rounds = replay_logs.logged_rounds(decisions, visits)
    # Potential outcomes where every visit converts under "personalized" only: IPW is then unbiased for 1 on
    # eligible visits and the truth is known.
    outcomes = pd.DataFrame({a: 0.0 for a in ACTIONS}, index=rounds["session_id"])
    outcomes["personalized"] = 1.0
    truth = {"personalized": float(rounds["eligible"].mean())}
    found = analysis.redrawn_logs(rounds, outcomes, truth, settings, draws=40, bootstrap_draws=5)
    assert set(found.index) == {"ipw", "snipw"}
    assert abs(found.loc["ipw", "bias"]) < 3 * found.loc["ipw", "spread"] / np.sqrt(40)
    assert 0 <= found.loc["ipw", "coverage"] <= 1
    with pytest.raises(ValueError, match="truth run of every page"):
        analysis.redrawn_logs(rounds, outcomes.drop(columns="discovery"), truth, settings, draws=2, bootstrap_draws=1)
    with pytest.raises(ValueError, match="no outcome in the truth runs"):
        analysis.redrawn_logs(rounds, outcomes.iloc[3:], truth, settings, draws=2, bootstrap_draws=1)

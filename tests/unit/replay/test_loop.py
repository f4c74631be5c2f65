"""Tests for atelier.replay.loop: the settings, the closed loop's restart from a checkpoint, stable arms, the
personalizer's fallbacks and scoring (batch and per-event), and the decisions subscription."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.data.features import microseconds
from atelier.data.transform import model_frame
from atelier.model import candidates
from atelier.model.champion import Champion, try_load_champion
from atelier.model.split import features_of
from atelier.replay.abtest import assign_arm
from atelier.replay.loop import ReplaySettings
from atelier.replay.policy import DEFAULT_BANNER

from .replay_shop import (
    HALF,
    STRONG,
    WINDOW_MINUTES,
    WINDOWS,
    assert_same_frames,
    assert_same_replay,
    noise,
    plain,
    variant,
    visits_at,
)

# --------------------------------------------------------------------------------------------
# Durability: a restarted loop ends where an uninterrupted one does
# --------------------------------------------------------------------------------------------


def _restart(ctx, strength: float, folder):
    """Run (checkpointing) to the first window from HALF on with records in flight; a fresh loop restored
    from that checkpoint runs to WINDOWS. Returns it and the number of records in flight at the checkpoint."""
    first = ctx.closed_loop(strength)
    first.run(until=HALF, checkpoint_dir=folder, progress=False)
    while len(first.pending) == 0 and first.window < WINDOWS - 8:
        first.run(until=first.window + 1, checkpoint_dir=folder, progress=False)
    stopped, in_flight = first.window, len(first.pending)
    second = ctx.closed_loop(strength)
    second.restore(folder, ctx.features, ctx.tables["products"], ctx.tables["customers"])
    assert second.window == stopped
    return second.run(until=WINDOWS, progress=False), in_flight


def test_closed_loop_restart_from_a_checkpoint_is_equivalent(context, tmp_path):
    """No corrupted records (see the next test): late records, duplicates and records in flight at the checkpoint."""
    ctx = variant(context, noise=noise(malformed=0.0), window_minutes=WINDOW_MINUTES, checkpoint_every_windows=24)
    uninterrupted = ctx.closed_loop(STRONG).run(until=WINDOWS, progress=False)
    restarted, in_flight = _restart(ctx, STRONG, tmp_path / "checkpoint")
    books = uninterrupted.processor.counters
    assert in_flight > 0 and books.duplicates > 0 and books.late > 0
    assert (uninterrupted.frames("decisions")["reason"] == "personalized").any()
    assert_same_replay(uninterrupted, restarted, context)


def test_closed_loop_restart_is_equivalent_on_the_noisy_network(strong_run, noisy, context, tmp_path):
    uninterrupted = strong_run[0]
    assert uninterrupted.processor.counters.malformed > 0
    restarted, _ = _restart(noisy, STRONG, tmp_path / "checkpoint")
    assert_same_replay(uninterrupted, restarted, context)


# --------------------------------------------------------------------------------------------
# A/B assignment
# --------------------------------------------------------------------------------------------


def test_arms_are_stable_across_the_replay_and_across_loops(strong_run, null_run, all_control_run, context):
    decisions = strong_run[0].frames("decisions")
    assert decisions.groupby("customer_id")["arm"].nunique().max() == 1
    assert decisions["customer_id"].duplicated().any()  # repeat visitors exist, so stability is tested
    other = null_run.frames("decisions")
    assert other["session_id"].tolist() == decisions["session_id"].tolist()
    assert other["arm"].tolist() == decisions["arm"].tolist()
    assert decisions["arm"].tolist() == assign_arm(decisions["customer_id"].to_numpy(), context.settings.seed,
                                                   context.settings.treatment_share).tolist()
    visits = strong_run[0].frames("visits")
    assert visits["arm"].tolist() == decisions["arm"].tolist()
    assert set(all_control_run.frames("decisions")["arm"]) == {"control"}


def test_treatment_share_is_near_the_setting(context):
    customers = context.tables["customers"]["customer_id"].to_numpy()
    for share in (0.5, 0.2):
        arms = assign_arm(customers, context.settings.seed, share)
        observed = float(np.mean(arms == "treatment"))
        assert abs(observed - share) < 4 * np.sqrt(share * (1 - share) / len(customers))
    smaller = assign_arm(customers, context.settings.seed, 0.2) == "treatment"
    larger = assign_arm(customers, context.settings.seed, 0.5) == "treatment"
    assert not (smaller & ~larger).any()  # raising the share only moves customers into treatment


# --------------------------------------------------------------------------------------------
# Fallbacks
# --------------------------------------------------------------------------------------------


def test_unknown_customers_get_the_default_experience_as_cold_start(context, start_state):
    unknown = np.arange(10**7, 10**7 + 200)
    assert not any(start_state.known(c) for c in unknown)
    arms = assign_arm(unknown, context.settings.seed, context.settings.treatment_share)
    deciding = context.personalizer(start_state)
    decisions = deciding.decide(visits_at(unknown, context.cutoff), context.cutoff)
    treated = decisions[arms == "treatment"]
    assert len(treated) > 50 and set(treated["reason"]) == {"cold_start"}
    assert set(decisions.loc[arms == "control", "reason"]) == {"control"}
    assert set(decisions["experience"]) == {"default"} and set(decisions["banner"]) == {DEFAULT_BANNER}
    top = context.assortment.top(context.settings.policy.recommendations).tolist()
    assert all(list(p) == top for p in decisions["products"])
    one = deciding.decide_one(int(treated["customer_id"].iloc[0]), 1, int(microseconds(context.cutoff)))
    assert one["reason"] == "cold_start" and list(one["products"]) == top


def test_without_a_model_treatment_customers_get_model_unavailable(context, start_state, known_customers):
    deciding = dataclasses.replace(context, scorer=None).personalizer(start_state)
    decisions = deciding.decide(visits_at(known_customers, context.cutoff), context.cutoff)
    treatment = (decisions["arm"] == "treatment").to_numpy()
    assert set(decisions.loc[treatment, "reason"]) == {"model_unavailable"}
    assert set(decisions.loc[~treatment, "reason"]) == {"control"}
    assert decisions["propensity"].isna().all() and set(decisions["experience"]) == {"default"}
    ones = [deciding.decide_one(c, 0, int(microseconds(context.cutoff)))["reason"] for c in known_customers]
    assert ones == decisions["reason"].tolist()


@pytest.fixture(scope="module")
def scorer_needing_more(snapshots, model_settings) -> Champion:
    """A fast XGBoost champion that needs a feature the live profile does not have."""
    numeric, _ = features_of(snapshots)
    extra = snapshots.assign(loyalty_points=np.arange(len(snapshots)) % 7.0)
    features = numeric + ["loyalty_points"]
    pipeline = candidates.fit(candidates.tuned("xgboost", {"n_estimators": 5, "max_depth": 2}, features, [],
                                               model_settings),
                              extra, features, [])
    scorer = Champion(pipeline, version="v9", metadata={"name": "xgboost", "features": features})
    assert scorer.fast
    return scorer


def test_a_profile_without_the_models_features_gets_missing_features(context, start_state, known_customers,
                                                                     scorer_needing_more):
    deciding = dataclasses.replace(context, scorer=scorer_needing_more).personalizer(start_state)
    decisions = deciding.decide(visits_at(known_customers, context.cutoff), context.cutoff)
    treatment = (decisions["arm"] == "treatment").to_numpy()
    assert set(decisions.loc[treatment, "reason"]) == {"missing_features"}
    assert set(decisions.loc[~treatment, "reason"]) == {"control"}
    assert set(decisions["banner"]) == {DEFAULT_BANNER}


def test_decide_one_falls_back_to_missing_features_too(context, start_state, known_customers, scorer_needing_more):
    deciding = dataclasses.replace(context, scorer=scorer_needing_more).personalizer(start_state)
    treated = [c for c in known_customers if deciding.arms(np.array([c]))[0] == "treatment"]
    assert deciding.decide_one(treated[0], 0, int(microseconds(context.cutoff)))["reason"] == "missing_features"


def test_control_customers_always_get_the_default(strong_run):
    decisions = strong_run[0].frames("decisions")
    control = decisions[decisions["arm"] == "control"]
    assert len(control) > 20 and set(control["reason"]) == {"control"} and set(control["experience"]) == {"default"}
    treatment = decisions[decisions["arm"] == "treatment"]
    assert "control" not in set(treatment["reason"])


def test_load_champion_on_a_missing_or_corrupt_registry_returns_the_reason(registry_dir, tmp_path):
    scorer, reason = try_load_champion(tmp_path / "nowhere")
    assert scorer is None and "champion" in reason
    corrupt = tmp_path / "corrupt"
    shutil.copytree(registry_dir, corrupt)
    (corrupt / "v1" / "booster.ubj").write_bytes(b"not a booster")
    scorer, reason = try_load_champion(corrupt)
    assert scorer is None and reason.startswith("ValueError") and "sha256" in reason
    broken = tmp_path / "broken_aliases"
    shutil.copytree(registry_dir, broken)
    (broken / "aliases.json").write_text("{ not json", encoding="utf-8")
    scorer, reason = try_load_champion(broken)
    assert scorer is None and isinstance(reason, str) and reason
    dangling = tmp_path / "dangling"
    shutil.copytree(registry_dir, dangling)
    shutil.rmtree(dangling / "v1")
    scorer, reason = try_load_champion(dangling)
    assert scorer is None and "unknown version 'v1'" in reason


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def test_fast_path_scores_like_the_pipeline(scorer, snapshots, context, start_state):
    assert scorer.fast and scorer.features == scorer.numeric
    expected = scorer.pipeline.predict_proba(model_frame(snapshots[scorer.features]))[:, 1]
    assert snapshots[scorer.features].isna().any().any()  # undefined features are part of the test
    np.testing.assert_allclose(scorer.score_frame(snapshots), expected, rtol=1e-6, atol=1e-7)
    live = start_state.features(sorted(start_state._ids), context.cutoff + pd.Timedelta(days=1))
    expected = scorer.pipeline.predict_proba(model_frame(live[scorer.features]))[:, 1]
    np.testing.assert_allclose(scorer.score_frame(live), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scorer.score_matrix(live[scorer.numeric].to_numpy()), expected, rtol=1e-6, atol=1e-7)


def test_logistic_regression_has_no_fast_path_but_scores_through_its_pipeline(snapshots, model_settings):
    numeric, categorical = features_of(snapshots)
    assert categorical  # demographics: what the fast path cannot take
    pipeline = candidates.fit(candidates.candidate("logistic_regression", numeric, categorical, model_settings),
                              snapshots,
                              numeric, categorical)
    scorer = Champion(pipeline, version="v2",
                      metadata={"name": "logistic_regression", "features": numeric + categorical})
    assert scorer.fast is False
    expected = candidates.predict(pipeline, snapshots, numeric, categorical)
    np.testing.assert_array_equal(scorer.score_frame(snapshots), expected)
    assert 0 < expected.min() and expected.max() < 1
    with pytest.raises(ValueError, match="no fast path"):
        scorer.score_matrix(snapshots[scorer.numeric].to_numpy())


def test_decide_one_agrees_with_decide(context, start_state, known_customers):
    deciding = context.personalizer(start_state)
    at = context.cutoff + pd.Timedelta(hours=3)
    decisions = deciding.decide(visits_at(known_customers, at), at)
    assert (decisions["reason"] == "personalized").sum() > 20
    for row, customer in zip(decisions.itertuples(index=False), known_customers):
        one = deciding.decide_one(customer, row.session_id, int(microseconds(at)))
        assert (one["arm"], one["reason"], one["experience"], one["banner"]) == (row.arm, row.reason, row.experience,
                                                                                 row.banner)
        assert plain(one["banner_category"]) == plain(row.banner_category)
        assert list(one["products"]) == list(row.products)
        np.testing.assert_allclose(one["propensity"], row.propensity, rtol=1e-6)


def test_decide_one_works_with_a_champion_without_a_fast_path(context, start_state, known_customers, snapshots,
                                                              model_settings):
    numeric, categorical = features_of(snapshots)
    pipeline = candidates.fit(candidates.candidate("logistic_regression", numeric, categorical, model_settings),
                              snapshots,
                              numeric, categorical)
    champion = Champion(pipeline, version="v2", metadata={"name": "lr", "features": numeric + categorical})
    deciding = dataclasses.replace(context, scorer=champion).personalizer(start_state)
    decisions = deciding.decide(visits_at(known_customers, context.cutoff), context.cutoff)
    personalized = decisions[decisions["reason"] == "personalized"]
    row = personalized.iloc[0]
    one = deciding.decide_one(row["customer_id"], row["session_id"], int(microseconds(context.cutoff)))
    assert one["reason"] == "personalized"
    np.testing.assert_allclose(one["propensity"], row["propensity"], rtol=1e-9)


# --------------------------------------------------------------------------------------------
# The decisions subscription
# --------------------------------------------------------------------------------------------


def test_subscribers_receive_every_decision_once_in_order(strong_run):
    loop, published, _ = strong_run
    received = pd.concat(published, ignore_index=True)
    assert_same_frames(received, loop.frames("decisions"))
    assert not received["session_id"].duplicated().any()
    assert received["ts"].is_monotonic_increasing
    assert received["session_id"].tolist() == loop.frames("visits")["session_id"].tolist()
    positions = loop.world.visits_between(loop.windows()[0], loop.windows()[WINDOWS])
    assert len(received) == len(positions)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
def test_settings_from_the_params_section(params):
    settings = ReplaySettings.from_params(params["replay"], 7)
    section = params["replay"]
    assert settings.seed == 7 and settings.window_minutes == section["window_minutes"]
    assert settings.sensitivity_strengths == tuple(section["sensitivity_strengths"])
    assert settings.noise.lateness_seconds == section["watermark_delay_seconds"] + section["allowed_lateness_seconds"]
    assert settings.drift.columns == tuple(section["drift"]["columns"]) and settings.policy.recommendations == 6
    assert (settings.workers, settings.throughput_batches) == (section["workers"], section["throughput_batches"])


@pytest.mark.parametrize("change, message", [
    ({"window_minutes": None}, r"missing keys \['window_minutes'\]"),
    ({"window_minutes": 0}, "replay.window_minutes: must be positive"),
    ({"window_minutes": "an hour"}, "replay.window_minutes: 'an hour' is not"),
    ({"late_share": 1.5}, "replay.late_share: a share must lie between 0 and 1"),
    ({"allowed_lateness_seconds": -1}, "replay.allowed_lateness_seconds: must be 0 or more"),
    ({"micro_batch_events": 0}, "replay.micro_batch_events: must be a whole number, 1 or more"),
    ({"throughput_batches": 0}, "replay.throughput_batches: must be a whole number, 1 or more"),
    ({"explain_sample": 2.5}, "replay.explain_sample: must be a whole number"),
    ({"sensitivity_strengths": 0.5}, "replay.sensitivity_strengths: must be a list"),
    ({"sensitivity_strengths": [0.0, "strong"]}, "replay.sensitivity_strengths: must be a list"),
    ({"drift": {"columns": ["score"], "psi_threshold": 0.2}}, "replay.drift: missing key"),
    ({"policy": {"recommendations": 6, "high_propensity": 0.3}}, r"replay.policy: missing keys \['banners'\]"),
])
def test_settings_errors_name_the_key_and_the_fix(params, change, message):
    section = {**params["replay"], **change}
    section = {key: value for key, value in section.items() if value is not None}
    with pytest.raises(ParamsError, match=message):
        ReplaySettings.from_params(section, 42)


def test_same_profiles_tells_stores_apart(noisy):
    first, second = noisy.closed_loop().run(until=24, progress=False), noisy.closed_loop().run(until=24, progress=False)
    customers = first.frames("decisions")["customer_id"].unique()
    assert len(customers) > 5 and first.same_profiles(second, customers, first.windows()[24])
    assert not first.same_profiles(noisy.closed_loop(), customers, first.windows()[24])

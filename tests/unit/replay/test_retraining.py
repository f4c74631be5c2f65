"""Tests for drift-triggered retraining: atelier.replay.retraining (which snapshots, the refit, the outcome) and
atelier.replay.stage.retrain (a copy of the registry, the promotion rule, the project's registry untouched)."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import pandas as pd
import pytest

from atelier.core import paths
from atelier.model import candidates
from atelier.model.champion import try_load_champion
from atelier.model.registry import Registry
from atelier.model.split import features_of
from atelier.replay import retraining, stage

from .replay_shop import TRAIN_CUTOFFS


def _folder_digest(folder) -> dict[str, str]:
    """Every file under `folder` with the sha256 of its bytes (to prove a folder was left untouched)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def retrain_project(tmp_path_factory, context, snapshots, model_settings):
    """A project folder whose registry holds a champion registered as the model stage does (name, params,
    features, train_cutoffs), and the replay context pointing at it."""
    root = tmp_path_factory.mktemp("retrain_project")
    numeric, _ = features_of(snapshots)
    hyper = {"n_estimators": 20, "max_depth": 2, "learning_rate": 0.1}
    pipeline = candidates.fit(candidates.tuned("xgboost", hyper, numeric, [], model_settings), snapshots, numeric, [])
    registry = Registry(root / paths.REGISTRY_DIR)
    registry.set_alias("champion", registry.register(pipeline, name="xgboost", metadata={
        "params": hyper, "features": numeric, "train_cutoffs": [c.date().isoformat() for c in TRAIN_CUTOFFS],
        "test_cutoff": context.cutoff.date().isoformat()}))
    champion, problem = try_load_champion(root / paths.REGISTRY_DIR)
    assert problem is None
    return dataclasses.replace(context, root=root, scorer=champion)


@pytest.fixture(scope="module")
def forced_retraining(retrain_project, model_settings):
    """A retraining forced by a drift trigger ten days into the replay (before any new labels are complete)."""
    ctx = retrain_project
    before = _folder_digest(ctx.root / paths.REGISTRY_DIR)
    result = stage.retrain(ctx, model_settings, ctx.tables, ctx.cutoff + pd.Timedelta(days=10))
    return ctx, before, result


def test_forced_retraining_registers_a_challenger_in_the_replays_own_registry(forced_retraining):
    ctx, before, result = forced_retraining
    assert result["retrained"] is True
    project, replay = Registry(ctx.root / paths.REGISTRY_DIR), Registry(ctx.root / paths.REPLAY_REGISTRY_DIR)
    assert _folder_digest(ctx.root / paths.REGISTRY_DIR) == before, "the project's registry must not change"
    assert result["challenger"]["version"] in set(replay.versions()["version"])
    assert result["challenger"]["version"] not in set(project.versions()["version"])
    assert project.alias("champion") == result["champion"]["version"] == result["served_live"]
    metadata = replay.metadata(result["challenger"]["version"])
    assert metadata["train_cutoffs"] == result["train_cutoffs"] and metadata["test_cutoff"] == result["retrain_day"]
    assert metadata["params"] == project.metadata(result["champion"]["version"])["params"]  # the champion's recipe


def test_retraining_trains_only_on_snapshots_whose_labels_are_complete_on_the_retrain_day(forced_retraining):
    ctx, _, result = forced_retraining
    retrain_day = pd.Timestamp(result["retrain_day"])
    horizon = pd.Timedelta(days=ctx.horizon_days)
    # The trigger came before the first new snapshot's labels were complete: retraining waits for them.
    assert retrain_day == ctx.cutoff + horizon
    train = [pd.Timestamp(c) for c in result["train_cutoffs"]]
    assert len(train) == len(TRAIN_CUTOFFS)  # as many snapshots as the champion trained on
    assert all(c + horizon <= retrain_day for c in train), "a training label window ends after the retrain day"
    assert train[-1] + horizon == retrain_day  # the most recent such snapshot: retraining on recent data
    assert train[-1] > max(TRAIN_CUTOFFS)  # newer than anything the champion saw
    assert pd.Timestamp(result["labels_complete_by"]) <= retrain_day


def test_retraining_records_its_promotion_decision_with_both_aucs(forced_retraining):
    ctx, _, result = forced_retraining
    replay = Registry(ctx.root / paths.REPLAY_REGISTRY_DIR)
    champion, challenger = result["champion"], result["challenger"]
    assert 0.5 < champion["auc"] <= 1 and 0.5 < challenger["auc"] <= 1
    assert result["promoted"] == (challenger["auc"] >= champion["auc"] + result["min_delta"] - 1e-12)
    record = replay.promotions()[-1]
    assert record["candidate"] == challenger["version"] and record["champion_before"] == champion["version"]
    assert record["promoted"] == result["promoted"] and record["reason"] == result["reason"]
    assert record["candidate_score"] == pytest.approx(challenger["auc"], abs=1e-6)  # the registry stores 6 places
    assert record["champion_score"] == pytest.approx(champion["auc"], abs=1e-6)
    assert replay.alias("champion") == (challenger["version"] if result["promoted"] else champion["version"])


def test_retraining_waits_when_the_evaluation_labels_are_not_complete(retrain_project, model_settings, tmp_path):
    ctx = dataclasses.replace(retrain_project, root=tmp_path)
    shutil.copytree(retrain_project.root / paths.REGISTRY_DIR, tmp_path / paths.REGISTRY_DIR)
    late = ctx.world.end() - pd.Timedelta(days=5)  # its snapshot's labels would run past the end of the data
    result = stage.retrain(ctx, model_settings, ctx.tables, late)
    assert result["retrained"] is False and "not complete" in result["reason"]
    assert not (tmp_path / paths.REPLAY_REGISTRY_DIR).exists()


@pytest.mark.parametrize("retrain_day, expected", [
    ("2025-12-01", ["2025-08-01", "2025-09-01", "2025-10-01", "2025-11-01"]),  # the default replay's
    ("2025-12-10 15:00", ["2025-08-10", "2025-09-10", "2025-10-10", "2025-11-10"]),  # a later trigger moves the window
    ("2026-03-02", ["2025-10-31", "2025-11-30", "2025-12-31", "2026-01-31"]),  # month ends stay month ends
])
def test_retraining_cutoffs_are_the_most_recent_with_complete_labels(retrain_day, expected):
    cutoffs = retraining.retraining_cutoffs(pd.Timestamp(retrain_day), 30, 4)
    assert [c.date().isoformat() for c in cutoffs] == expected
    assert all(c + pd.Timedelta(days=30) <= pd.Timestamp(retrain_day) for c in cutoffs)
    with pytest.raises(ValueError, match="count"):
        retraining.retraining_cutoffs(pd.Timestamp(retrain_day), 30, 0)


@pytest.mark.parametrize("closed, trigger, champion, reason", [
    (False, None, True, "open loop"),
    (True, None, True, "no drift trigger"),
    (True, "2025-05-10", False, "no champion"),
    (True, "2025-05-10", True, None),
])
def test_skip_reason_says_why_retraining_does_not_run(closed, trigger, champion, reason):
    found = retraining.skip_reason(closed, trigger, champion)
    assert found is None if reason is None else found.startswith(reason)


def test_retrain_without_a_trigger_a_closed_loop_or_a_champion_runs_nothing(retrain_project, model_settings, tmp_path):
    ctx = dataclasses.replace(retrain_project, root=tmp_path)
    shutil.copytree(retrain_project.root / paths.REGISTRY_DIR, tmp_path / paths.REGISTRY_DIR)
    cases = [(ctx, None, "no drift trigger"), (dataclasses.replace(ctx, world=None), "2025-05-10", "open loop"),
             (dataclasses.replace(ctx, scorer=None), "2025-05-10", "no champion")]
    for context, trigger, reason in cases:
        outcome = stage.retrain(context, model_settings, None, trigger)
        assert set(outcome) == {"retrained", "reason"} and outcome["retrained"] is False
        assert outcome["reason"].startswith(reason)
    assert not (ctx.root / paths.REPLAY_REGISTRY_DIR).exists()


def test_the_retrain_day_waits_for_the_first_complete_labels_after_the_start():
    start = pd.Timestamp("2025-11-01")
    assert retraining.retrain_day("2025-11-27 14:00", start, 30) == pd.Timestamp("2025-12-01")
    assert retraining.retrain_day("2025-12-09 14:00", start, 30) == pd.Timestamp("2025-12-09")


def test_as_many_snapshots_as_the_champion_trained_on():
    cutoffs = [pd.Timestamp(c) for c in ("2025-09-01", "2025-07-01", "2025-08-01")]
    assert retraining.snapshot_count({"train_cutoffs": ["a", "b", "c", "d"]}, cutoffs) == 4
    assert retraining.snapshot_count({}, cutoffs) == 2  # every cutoff but the last (the out-of-time test)
    assert retraining.snapshot_count({"train_cutoffs": []}, cutoffs[:1]) == 1


def _outcome(champion_auc: float, challenger_auc: float, complete_by: str, promoted: bool) -> dict:
    return {"champion": {"auc": champion_auc}, "challenger": {"auc": challenger_auc},
            "evaluation_labels_complete_by": complete_by, "promoted": promoted}


def test_verdict_of_a_retraining():
    end = pd.Timestamp("2026-01-01")  # the replay's last day is 2025-12-31
    late = retraining.verdict(_outcome(0.9294, 0.9301, "2025-12-31", False), end)
    assert late["days_left"] == 0 and late["last_day"] == "2025-12-31" and late["challenger_better"] is True
    assert late["difference"] == pytest.approx(0.0007) and late["promoted"] is False
    early = retraining.verdict(_outcome(0.80, 0.75, "2025-12-11", True), end)
    assert early["days_left"] == 20 and early["challenger_better"] is False and early["promoted"] is True


def test_the_outcome_of_a_forced_retraining_reads_as_its_verdict(forced_retraining):
    ctx, _, result = forced_retraining
    facts = retraining.verdict(result, ctx.end)
    assert facts["difference"] == pytest.approx(result["challenger"]["auc"] - result["champion"]["auc"])
    last_day = pd.Timestamp(facts["last_day"])
    assert last_day == ctx.end - pd.Timedelta(days=1)
    assert facts["days_left"] == (last_day - pd.Timestamp(result["evaluation_labels_complete_by"])).days


def test_the_retraining_snapshots_are_the_same_built_on_one_process_or_two(retrain_project):
    ctx = retrain_project
    arguments = (ctx.tables, ctx.cutoff + pd.Timedelta(days=10), ctx.cutoff, ctx.horizon_days, 2, ctx.features)
    one, two = retraining.plan(*arguments, workers=1), retraining.plan(*arguments, workers=2)
    assert len(one.train) > 0 and one.train_cutoffs == two.train_cutoffs
    pd.testing.assert_frame_equal(one.train, two.train)
    pd.testing.assert_frame_equal(one.evaluation, two.evaluation)

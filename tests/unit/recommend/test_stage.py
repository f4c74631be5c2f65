"""Tests for atelier.recommend.stage on the tiny simulated shop: the grid never sees the test cutoff, the oracle
is the ceiling of the truth share, outputs are written without pickle and repeat byte for byte."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params

from atelier.core import paths
from atelier.core.config import ParamsError
from atelier.recommend import stage


def settings_of(params: dict) -> stage.RecommendSettings:
    section = {**params["recommend"], "factors": [4], "neighbours": [10], "bootstrap": 50, "iterations": 5,
               "workers": 1}
    return stage.RecommendSettings.from_params(section, params["replay"]["policy"]["recommendations"], params["seed"])


@pytest.fixture(scope="module")
def evaluated(tiny_root):
    params = tiny_params()
    settings = settings_of(params)
    inputs = stage.load_inputs(tiny_root, params)
    grid = stage.grid_search(inputs, settings)
    choice = stage.choose(grid, settings)
    return params, settings, inputs, grid, choice, stage.evaluate_test(inputs, settings, choice)


def test_validation_and_test_cutoffs_are_the_last_two_and_the_grid_covers_every_point(evaluated):
    params, settings, inputs, grid, choice, _ = evaluated
    cutoffs = sorted(pd.Timestamp(c) for c in params["timeline"]["cutoffs"])
    assert (inputs.validation_cutoff, inputs.test_cutoff) == (cutoffs[-2], cutoffs[-1])
    assert len(grid) == len(settings.weights) * (len(settings.factors) * len(settings.regularization)
                                                 + len(settings.neighbours))
    assert choice.learned in stage.LEARNED and grid["validation_ndcg"].between(0, 1).all()


def test_two_workers_give_the_grid_of_one(evaluated):
    params, settings, inputs, grid, *_ = evaluated
    assert settings.workers == 1 and len(settings.weights) >= 2
    parallel = stage.grid_search(inputs, dataclasses.replace(settings, workers=2))
    pd.testing.assert_frame_equal(parallel.drop(columns="seconds"), grid.drop(columns="seconds"), check_exact=True)


def test_oracle_has_the_full_truth_share_and_every_method_is_scored_with_an_interval(evaluated):
    *_, result = evaluated
    truth = result.table[result.table["metric"] == "truth_share"].set_index("method")
    assert truth.loc["oracle", "mean"] == pytest.approx(1.0)
    assert (truth["mean"] <= 1 + 1e-9).all() and (truth.drop("oracle")["mean"] < 1).all()
    ndcg = result.table[result.table["metric"] == "ndcg"]
    assert set(ndcg["method"]) == {*stage.BASELINES, *stage.LEARNED, "oracle"}
    assert ((ndcg["ci_low"] <= ndcg["mean"]) & (ndcg["mean"] <= ndcg["ci_high"])).all()


def test_outputs_load_without_pickle_and_repeat_byte_for_byte(evaluated, tmp_path):
    params, settings, inputs, grid, choice, result = evaluated
    segments = stage.segment_table(inputs, result, settings.seed)
    metrics = stage.metrics(inputs, result, choice, grid)
    first = stage.write_outputs(tmp_path / "a", result=result, choice=choice, settings=settings, grid=grid,
                                segments=segments, metrics=metrics)
    again = stage.evaluate_test(inputs, settings, choice)
    second = stage.write_outputs(tmp_path / "b", result=again, choice=choice, settings=settings, grid=grid,
                                 segments=segments, metrics=stage.metrics(inputs, again, choice, grid))
    assert first == second
    for name in (paths.RECOMMEND_METRICS, paths.RECOMMEND_LISTS, paths.RECOMMEND_MODEL_DIR / first / "als.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with np.load(tmp_path / "a" / paths.RECOMMEND_MODEL_DIR / first / "als.npz", allow_pickle=False) as arrays:
        assert arrays["user_factors"].shape[1] == choice.als.factors
    aliases = json.loads((tmp_path / "a" / paths.RECOMMEND_MODEL_DIR / "aliases.json").read_text())
    assert aliases == {"champion": first}
    lists = pd.read_parquet(tmp_path / "a" / paths.RECOMMEND_LISTS)
    assert lists.groupby("customer_id").size().eq(settings.k).all()


def test_user_data_has_no_oracle_and_bad_settings_are_named(tiny_root):
    params = {**tiny_params(), "data": {"source": "files", "path": "data/simulated"}}
    assert not stage.load_inputs(tiny_root, params).simulated
    with pytest.raises(ParamsError, match="recommend.weights"):
        stage.RecommendSettings.from_params({**params["recommend"], "weights": {}}, 6, 0)
    with pytest.raises(ParamsError, match="missing keys"):
        stage.RecommendSettings.from_params({"weights": {"a": {"product_view": 1}}}, 6, 0)


def test_without_events_nothing_is_learned_and_the_replay_gets_no_recommender(tmp_path):
    from atelier.replay.stage import load_recommender

    (tmp_path / paths.RECOMMEND_MODEL_DIR).mkdir(parents=True)
    (tmp_path / paths.RECOMMEND_MODEL_DIR / "aliases.json").write_text('{"champion": "rec-old"}')
    inputs = stage.load_inputs(tmp_path, tiny_params())  # no validated tables at all
    assert inputs.missing == stage.SKIPPED and not inputs.simulated
    stage.write_skipped(tmp_path, inputs.missing)
    assert json.loads((tmp_path / paths.RECOMMEND_METRICS).read_text()) == {"skipped": stage.SKIPPED}
    assert pd.read_parquet(tmp_path / paths.RECOMMEND_LISTS).empty
    assert load_recommender(tmp_path) is None


def test_grid_started_early_on_other_processes_gives_the_grid_of_one(evaluated, tiny_root):
    """`start_grid` (processes reading the inputs themselves) then `grid_search` with them: the one-process grid;
    with one worker nothing is started and the grid is scored here."""
    params, settings, inputs, grid, *_ = evaluated
    two = dataclasses.replace(settings, workers=2)
    started = stage.start_grid(tiny_root, params, two)
    assert len(started) == 1
    overlapped = stage.grid_search(inputs, two, started)
    pd.testing.assert_frame_equal(overlapped.drop(columns="seconds"), grid.drop(columns="seconds"), check_exact=True)
    assert stage.start_grid(tiny_root, params, settings) == []
    alone = stage.grid_search(inputs, settings, [])
    pd.testing.assert_frame_equal(alone.drop(columns="seconds"), grid.drop(columns="seconds"), check_exact=True)


@pytest.mark.parametrize("item_item_weighting", ["balanced", "views"])
def test_item_item_on_another_weighting_is_fitted_once_on_that_weighting(evaluated, item_item_weighting):
    """`fit_all` with item-item's own weighting: its lists and similarity are those of item-item fitted on that
    weighting's matrix alone (cold starts: the ALS weighting's fallback), the other methods those of the ALS one."""
    params, settings, inputs, grid, choice, _ = evaluated
    both = stage.fit_all(inputs, inputs.test_cutoff, settings, "balanced", choice.als, choice.neighbours,
                         item_item_weighting)
    same = stage.fit_all(inputs, inputs.test_cutoff, settings, "balanced", choice.als, choice.neighbours)
    own = stage.fit_all(inputs, inputs.test_cutoff, settings, item_item_weighting, choice.als, choice.neighbours)
    for method in ("popularity", "recent_popularity", "category_rule", "als"):
        np.testing.assert_array_equal(both.lists[method], same.lists[method])
    history = own.data.has_history
    np.testing.assert_array_equal(both.lists["item_item"][history], own.lists["item_item"][history])
    assert (both.lists["item_item"][~history] == same.fallback).all()
    assert (both.similarity != own.similarity).nnz == 0

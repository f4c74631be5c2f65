"""The champion wrapper every phase scores with: loaded by alias, the fast path equal to the Pipeline's answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.model import candidates
from atelier.model.champion import Champion, load_champion, try_load_champion
from atelier.model.registry import Registry


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"recency_days": rng.exponential(30, n), "frequency": rng.poisson(2, n).astype(float),
                          "gender": rng.choice(["female", "male"], n)})
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(frame["recency_days"] / 30 - frame["frequency"]))).astype(int)
    return frame


def _fitted(family: str, numeric: list[str], categorical: list[str]):
    settings = candidates.ModelSettings.from_params(
        {"cv_folds": 2, "threads": 1, "grids": {family: {}}, "permutation_repeats": 1, "prune_below": 0.0,
         "prune_tolerance": 0.0, "overfit_gap_warning": 0.03, "bootstrap": 10, "calibration": "isotonic",
         "promotion_min_delta": 0.0, "active_recency_days": 90, "short_history_days": 90, "lime_customers": 1,
         "lime_seeds": 2, "lime_stability_customers": 1, "lime_num_samples": 10, "lime_background": 10,
         "lime_top_k": 1}, seed=0)
    return candidates.fit(candidates.candidate(family, numeric, categorical, settings), _frame(), numeric, categorical)


def test_the_fast_path_gives_the_pipelines_probabilities():
    numeric = ["recency_days", "frequency"]
    champion = Champion(_fitted("xgboost", numeric, []), version="v1",
                        metadata={"name": "xgboost", "features": numeric})
    assert champion.fast and champion.name == "xgboost" and champion.categorical == []
    frame = _frame(50, seed=1)
    np.testing.assert_allclose(champion.score_frame(frame), champion.score(frame), rtol=1e-6)
    assert champion.score_vector(frame[numeric].to_numpy()[0]) == pytest.approx(champion.score(frame)[0], rel=1e-6)


def test_a_champion_with_demographics_has_no_fast_path():
    numeric, categorical = ["recency_days", "frequency"], ["gender"]
    champion = Champion(_fitted("logistic_regression", numeric, categorical), version="v2",
                        metadata={"name": "logistic_regression", "features": numeric + categorical})
    assert not champion.fast and champion.numeric == numeric and champion.categorical == categorical
    frame = _frame(30, seed=2)
    np.testing.assert_array_equal(champion.score_frame(frame), champion.score(frame))
    with pytest.raises(ValueError, match="no fast path"):
        champion.score_matrix(frame[numeric].to_numpy())


def test_load_champion_by_alias_and_the_reasons_it_cannot(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the model stage first"):
        load_champion(tmp_path / "registry")
    assert try_load_champion(tmp_path / "registry")[0] is None
    numeric = ["recency_days", "frequency"]
    registry = Registry(tmp_path / "registry")
    version = registry.register(_fitted("xgboost", numeric, []), name="xgboost", metadata={"features": numeric})
    registry.set_alias("champion", version)
    champion = load_champion(tmp_path / "registry")
    assert champion.version == version and champion.features == numeric
    loaded, problem = try_load_champion(tmp_path / "registry", alias="challenger")
    assert loaded is None and "no 'challenger' alias" in problem

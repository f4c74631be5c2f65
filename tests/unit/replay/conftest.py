"""Fixtures of the replay tests, built once per run: the tiny shop's replay context with a registered champion,
the recorded stream after the cutoff, and closed-loop replays on a noisy network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params

from atelier.data.features import FeatureSettings
from atelier.data.snapshots import build_snapshots
from atelier.model import candidates
from atelier.model.champion import Champion, try_load_champion
from atelier.model.registry import Registry
from atelier.model.split import features_of
from atelier.replay.abtest import assign_arm
from atelier.replay.context import ReplayContext
from atelier.replay.engine import to_records
from atelier.replay.loop import ClosedLoop
from atelier.replay.state import StreamingState

from .replay_shop import (
    SEGMENT_NAMES,
    STRONG,
    TRAIN_CUTOFFS,
    WINDOW_MINUTES,
    WINDOWS,
    context_of,
    noise,
    run_window_by_window,
    variant,
)


@pytest.fixture(scope="session")
def params() -> dict:
    return tiny_params()


@pytest.fixture(scope="session")
def feature_settings(params) -> FeatureSettings:
    return FeatureSettings.from_params(params["prep"])


@pytest.fixture(scope="session")
def snapshots(tiny_tables, params, feature_settings) -> pd.DataFrame:
    """The tiny shop's training snapshots (labels complete)."""
    return build_snapshots(tiny_tables, TRAIN_CUTOFFS, int(params["timeline"]["horizon_days"]), feature_settings)


@pytest.fixture(scope="session")
def model_settings(params) -> candidates.ModelSettings:
    return candidates.ModelSettings.from_params(params["model"], params["seed"])


@pytest.fixture(scope="session")
def registry_dir(tmp_path_factory, snapshots, model_settings):
    """A registry whose champion is a small XGBoost on the numeric features (the scorer's fast path)."""
    numeric, _ = features_of(snapshots)
    pipeline = candidates.fit(candidates.tuned("xgboost", {"n_estimators": 20, "max_depth": 2, "learning_rate": 0.1},
                                               numeric, [], model_settings), snapshots, numeric, [])
    folder = tmp_path_factory.mktemp("replay_models") / "registry"
    registry = Registry(folder)
    registry.set_alias("champion", registry.register(pipeline, name="xgboost", metadata={"features": numeric}))
    return folder


@pytest.fixture(scope="session")
def scorer(registry_dir) -> Champion:
    loaded, problem = try_load_champion(registry_dir)
    assert problem is None and loaded is not None
    # Predictions do not depend on the thread count; one thread keeps tiny calls fast (two cost ~20 ms a call here).
    loaded._booster.set_param({"nthread": 1})
    return loaded


@pytest.fixture(scope="session")
def context(tiny_root, params, scorer) -> ReplayContext:
    """The replay context of the tiny shop, with the registered champion and hand-made segments."""
    loaded = context_of(tiny_root, params)
    assert loaded.closed and loaded.world is not None
    loaded.scorer, loaded.model_problem = scorer, None
    ids = loaded.tables["customers"]["customer_id"].tolist()
    loaded.segments = {c: SEGMENT_NAMES[i % len(SEGMENT_NAMES)] for i, c in enumerate(ids)}
    return loaded


@pytest.fixture(scope="session")
def noisy(context) -> ReplayContext:
    """The context on a much noisier network, in hourly windows."""
    return variant(context, noise=noise(), window_minutes=WINDOW_MINUTES, checkpoint_every_windows=24)


@pytest.fixture(scope="session")
def strong_run(noisy) -> tuple:
    """Four days at response strength 2 on the noisy network, window by window: (loop, published decisions, books)."""
    return run_window_by_window(noisy, STRONG)


@pytest.fixture(scope="session")
def null_run(noisy) -> ClosedLoop:
    """The same four days at strength 0 (showing anything changes nothing)."""
    return noisy.closed_loop(0.0).run(until=WINDOWS, progress=False)


@pytest.fixture(scope="session")
def all_control_run(noisy) -> ClosedLoop:
    """Strength 0 with everyone in control."""
    return variant(noisy, treatment_share=0.0).closed_loop(0.0).run(until=WINDOWS, progress=False)


@pytest.fixture(scope="session")
def base_records(context) -> pd.DataFrame:
    """Two days of the recorded shop after the cutoff (sessions that start after it), as one stream in time order."""
    events, orders = context.tables["events"], context.tables["orders"]
    end = context.cutoff + pd.Timedelta(days=2)
    first = events.groupby("session_id")["ts"].transform("min")
    events = events[(first >= context.cutoff) & (events["ts"] < end)]
    orders = orders[(orders["ordered_at"] >= context.cutoff) & (orders["ordered_at"] < end)]
    records = to_records(events, orders).sort_values(["ts", "record", "id"], kind="stable").reset_index(drop=True)
    assert (records["record"] == "event").sum() > 200 and (records["record"] == "order").sum() >= 1
    return records


@pytest.fixture(scope="session")
def start_state(context) -> StreamingState:
    """The profile store at the cutoff (read only: tests that update a store make their own)."""
    return context.initial_state()


@pytest.fixture(scope="session")
def known_customers(context, start_state) -> np.ndarray:
    """Customers with state and product views before the cutoff, both arms represented."""
    ids = np.array(sorted(c for c in start_state._ids))
    views = start_state.features(ids, context.cutoff)["views_per_session"].to_numpy()
    chosen = ids[np.nan_to_num(views) > 0][:120]
    arms = assign_arm(chosen, context.settings.seed, context.settings.treatment_share)
    assert (arms == "treatment").sum() > 20 and (arms == "control").sum() > 20
    return chosen

"""Test data shared by the model phase's tests: the tiny shop's snapshots, a 2,000-customer shop for effects too
small to see in the tiny one, and hand-made scores. Plain functions: each test module wraps what it needs in its
own (module-scoped) fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from conftest import tiny_params

from atelier.data import stage as data_stage
from atelier.data.features import FeatureSettings
from atelier.data.snapshots import build_snapshots
from atelier.model import candidates

FEATURES = FeatureSettings()
HORIZON = 30
CUTOFFS = [pd.Timestamp(c) for c in tiny_params()["timeline"]["cutoffs"]]  # 03-01, 04-01, 05-01; data ends 06-30
SETTINGS = candidates.ModelSettings.from_params(tiny_params()["model"], tiny_params()["seed"])


def tiny_snapshots(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The tiny shop's snapshots at its three cutoffs."""
    return build_snapshots(tables, CUTOFFS, HORIZON, FEATURES)


def medium_snapshots(root: Path) -> pd.DataFrame:
    """Snapshots of a 2,000-customer version of the tiny shop, simulated into `root`.

    The tiny shop's validation snapshot has ~16 buyers, too few for a permutation importance as small as
    prune_below to be distinguishable from chance; here it has ~90.
    """
    params = tiny_params()
    params["simulate"].update(n_customers=2000, chunk_customers=2000)
    data_stage.run_simulate(params, root)
    data_stage.run_validate(params, root)
    return build_snapshots(data_stage.load_validated(root), CUTOFFS, HORIZON, FEATURES)


def scores_of(model, frame: pd.DataFrame, columns: tuple[list[str], list[str]]) -> np.ndarray:
    numeric, categorical = columns
    return candidates.predict(model, frame, numeric, categorical)


def perfect(n: int = 100, buyers: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Buyers first with the highest scores: a perfect ranking."""
    y = np.r_[np.ones(buyers, dtype=int), np.zeros(n - buyers, dtype=int)]
    return y, np.linspace(0.99, 0.01, n)


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from uniform scores: the scores are the true probabilities."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return (rng.random(n) < p).astype(int), p

"""The registered champion, loaded by its alias and ready to score: one wrapper for every phase that uses it.

A scikit-learn Pipeline costs ~2 ms per single-row call in overhead. For the champion Atelier
usually registers (XGBoost behind a ColumnTransformer that passes numbers through), `score_frame`
feeds the numbers straight to the booster (`inplace_predict`, ~0.1-0.2 ms) and gives the same
probabilities; any other model is scored through its Pipeline. `score` always goes through the
Pipeline (the path the model stage measured the champion on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from xgboost import DMatrix, XGBClassifier

from atelier.data import transform
from atelier.data.features import DEMOGRAPHICS
from atelier.model.registry import Registry


@dataclass
class Champion:
    """A registered model ready to score: its version, metadata, input features, and a fast path when there is one."""

    pipeline: Pipeline
    version: str
    metadata: dict[str, Any]
    features: list[str] = field(init=False)
    numeric: list[str] = field(init=False)
    categorical: list[str] = field(init=False)
    fast: bool = field(init=False)

    def __post_init__(self) -> None:
        self.features = list(self.metadata["features"])
        self.numeric = [f for f in self.features if f not in DEMOGRAPHICS]
        self.categorical = [f for f in self.features if f in DEMOGRAPHICS]
        prepare, model = self.pipeline[:-1], self.pipeline[-1]
        self.fast = (
            isinstance(model, XGBClassifier)
            and len(prepare) == 1
            and isinstance(prepare[0], ColumnTransformer)
            # The declared transformers (a fitted ColumnTransformer stores "passthrough" as a FunctionTransformer).
            and [(name, step) for name, step, _ in prepare[0].transformers] == [("numeric", "passthrough")]
            and list(prepare[0].transformers[0][2]) == self.numeric == self.features
        )
        self._booster = model.get_booster() if self.fast else None
        if self._booster is not None:
            # One row at a time: OpenMP threads cost more to start than the prediction itself (same results).
            self._booster.set_param({"nthread": 1})

    @property
    def name(self) -> str:
        """The model family (logistic_regression, random_forest, xgboost)."""
        return str(self.metadata["name"])

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """P(order) for the rows of a snapshot-shaped frame, through the Pipeline."""
        return self.pipeline.predict_proba(transform.model_frame(frame[self.numeric + self.categorical]))[:, 1]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, 2) class probabilities of the raw feature columns, as LIME's explainer calls it."""
        return self.pipeline.predict_proba(transform.model_frame(frame))

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """P(order) for each row of a feature frame (columns: at least the features), by the fast path if any."""
        if self.fast:
            return self.score_matrix(frame[self.numeric].to_numpy(dtype=np.float32))
        return self.pipeline.predict_proba(transform.model_frame(frame[self.features]))[:, 1]

    def score_vector(self, values: np.ndarray) -> float:
        """P(order) for one profile given as its `features` values (numbers; the fast path when there is one)."""
        if self.fast:
            return float(self.score_matrix(values)[0])
        return float(self.score_frame(pd.DataFrame([values], columns=self.features))[0])

    def score_matrix(self, values: np.ndarray) -> np.ndarray:
        """P(order) for rows of numeric features in `numeric` order (fast path only)."""
        if not self.fast:
            raise ValueError(f"{self.name} {self.version} has no fast path; use score_frame")
        rows = np.asarray(values, dtype=np.float32).reshape(-1, len(self.numeric))
        return np.asarray(self._booster.inplace_predict(rows))


    def contributions_vector(self, values: np.ndarray) -> np.ndarray:
        """xgboost's exact contributions (log-odds) of one profile given as its `numeric` values, then the bias
        (fast path only; `atelier.model.explain.xgboost_contributions` is the general route and agrees)."""
        if not self.fast:
            raise ValueError(f"{self.name} {self.version} has no fast path; use explain.xgboost_contributions")
        rows = np.asarray(values, dtype=np.float32).reshape(-1, len(self.numeric))
        return np.asarray(self._booster.predict(DMatrix(rows, nthread=1), pred_contribs=True))[0].astype(float)


def from_registry(registry: Registry, version: str) -> Champion:
    """A registered version as a Champion."""
    return Champion(registry.load(version), version=version, metadata=registry.metadata(version))


def load_champion(registry_dir: Path, alias: str = "champion") -> Champion:
    """The model behind `alias` in the registry at `registry_dir`; FileNotFoundError naming the stage to run if none."""
    registry = Registry(registry_dir)
    version = registry.alias(alias)
    if version is None:
        raise FileNotFoundError(f"{registry.root} has no '{alias}'; run the model stage first (dvc repro model)")
    return from_registry(registry, version)


def try_load_champion(registry_dir: Path, alias: str = "champion") -> tuple[Champion | None, str | None]:
    """The champion, or (None, why) if it cannot be loaded: callers fall back to the default experience."""
    try:
        registry = Registry(registry_dir)
        version = registry.alias(alias)
        if version is None:
            return None, f"no '{alias}' alias in {registry_dir}"
        return from_registry(registry, version), None
    except Exception as problem:  # noqa: BLE001 - any failure to load means: serve the default experience
        return None, f"{type(problem).__name__}: {problem}"

"""Scoring live profiles with the registered champion, fast enough to run at every visit.

A scikit-learn Pipeline costs ~2 ms per single-row call in overhead. For the champion Atelier
usually registers (XGBoost behind a ColumnTransformer that passes numbers through), the scorer
feeds the numbers straight to the booster (`inplace_predict`, ~0.1-0.2 ms) and gives the same
probabilities; any other model is scored through its Pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from atelier import transform
from atelier.registry import Registry


@dataclass
class Scorer:
    """A champion ready to score: its version, input features, and a fast path when there is one."""

    pipeline: Pipeline
    version: str
    name: str
    features: list[str]
    numeric: list[str] = field(init=False)
    fast: bool = field(init=False)

    def __post_init__(self) -> None:
        prepare, model = self.pipeline[:-1], self.pipeline[-1]
        self.numeric = [f for f in self.features if f not in ("age_band", "gender", "region")]
        self.fast = (
            isinstance(model, XGBClassifier)
            and len(prepare) == 1
            and isinstance(prepare[0], ColumnTransformer)
            # The declared transformers (a fitted ColumnTransformer stores "passthrough" as a FunctionTransformer).
            and [(name, transformer) for name, transformer, _ in prepare[0].transformers] == [("numeric", "passthrough")]
            and list(prepare[0].transformers[0][2]) == self.numeric == self.features
        )
        self._booster = model.get_booster() if self.fast else None
        if self._booster is not None:
            # One row at a time: OpenMP threads cost more to start than the prediction itself (same results).
            self._booster.set_param({"nthread": 1})

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """P(order) for each row of a feature frame (columns: at least the scorer's features)."""
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
        return np.asarray(self._booster.inplace_predict(np.asarray(values, dtype=np.float32).reshape(-1, len(self.numeric))))


def load_champion(registry_dir: Path, alias: str = "champion") -> tuple[Scorer | None, str | None]:
    """The champion as a Scorer, or (None, why) if it cannot be loaded: callers fall back to the default."""
    try:
        registry = Registry(registry_dir)
        version = registry.alias(alias)
        if version is None:
            return None, f"no '{alias}' alias in {registry_dir}"
        metadata = registry.metadata(version)
        return Scorer(registry.load(alias), version=version, name=metadata["name"], features=list(metadata["features"])), None
    except Exception as problem:  # noqa: BLE001 - any failure to load means: serve the default experience
        return None, f"{type(problem).__name__}: {problem}"

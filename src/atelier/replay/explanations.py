"""Why this banner? LIME on the champion for a seeded sample of the replay's scored decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from atelier.model import explain
from atelier.model.champion import Champion
from atelier.replay.context import ReplayContext

#: LIME perturbs rows drawn from this many (seeded) reference profiles, with this many samples per explanation.
BACKGROUND_ROWS = 2000
PERTURBATIONS = 2000
TOP_FEATURES = 5
#: The columns of an explanation (`TabularExplainer.explain`) and of the line per explained decision.
ROW_COLUMNS = ["feature", "condition", "value", "weight"]
LINE_COLUMNS = ["session_id", "banner", "segment", "why", "milliseconds"]


def value_text(value: Any) -> str | None:
    """A feature value as shown in an explanation: numbers rounded for humans, categories as they are."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)


@dataclass
class Explanations:
    """LIME's explanations of decisions: `rows` (session_id, feature, condition, value as text, weight) and `lines`,
    one per explained decision (session_id, banner, segment, the readable sentence `why`, LIME's `milliseconds`)."""

    rows: pd.DataFrame
    lines: pd.DataFrame

    def __len__(self) -> int:
        """How many decisions are explained."""
        return len(self.lines)

    def stored(self) -> pd.DataFrame:
        """The rows with their decision's sentence and latency (what data/replay/explanations.parquet holds)."""
        return self.rows.merge(self.lines[["session_id", "why", "milliseconds"]], on="session_id")


def explain_decisions(context: ReplayContext, decisions: pd.DataFrame, profiles: pd.DataFrame, reference: pd.DataFrame,
                      n: int) -> Explanations:
    """LIME on the champion for a seeded sample of `n` scored decisions: why this customer got this score (and banner).

    `profiles` are the live profiles behind the decisions (row-aligned); LIME perturbs rows of
    `reference` (the champion's training profiles). Empty without a champion or a scored decision,
    or with n = 0.
    """
    scorer = context.scorer
    scored = decisions.index[decisions["propensity"].notna().to_numpy()] if len(decisions) else decisions.index
    if scorer is None or len(scored) == 0 or n <= 0:
        return Explanations(pd.DataFrame(columns=[*ROW_COLUMNS, "session_id"]), pd.DataFrame(columns=LINE_COLUMNS))
    features = scorer.features
    seed = context.settings.seed
    explainer = lime_explainer(scorer, reference, seed)
    chosen = np.sort(np.random.default_rng(seed).choice(len(scored), size=min(n, len(scored)), replace=False))
    rows, lines = [], []
    for offset, position in enumerate(scored[chosen]):
        decision = decisions.loc[position]
        table, why = lime_explanation(explainer, profiles.loc[position, features], seed=seed + offset)
        rows.append(table.assign(session_id=decision["session_id"]))
        lines.append({"session_id": decision["session_id"], "banner": decision["banner"],
                      "segment": decision["segment"],
                      "why": f"Banner '{decision['banner']}' (segment {decision['segment']}). " + why,
                      "milliseconds": table.attrs["seconds"] * 1000})
    return Explanations(pd.concat(rows, ignore_index=True), pd.DataFrame(lines, columns=LINE_COLUMNS))


def lime_explainer(scorer: Champion, reference: pd.DataFrame, seed: int) -> explain.TabularExplainer:
    """LIME on the champion, perturbing a seeded sample of `BACKGROUND_ROWS` rows of `reference` (training profiles)."""
    features = scorer.features
    background = reference[features].sample(n=min(BACKGROUND_ROWS, len(reference)), random_state=seed)

    def predict_proba(frame: pd.DataFrame) -> np.ndarray:
        score = scorer.score_frame(frame)
        return np.column_stack([1 - score, score])

    return explain.TabularExplainer(background, [f for f in features if f in scorer.numeric],
                                    [f for f in features if f not in scorer.numeric], predict_proba,
                                    num_samples=PERTURBATIONS)


def lime_explanation(explainer: explain.TabularExplainer, profile: pd.Series, *, seed: int) -> tuple[pd.DataFrame, str]:
    """One profile explained: the top `TOP_FEATURES` rows (values as text) and the readable sentence."""
    table = explainer.explain(profile, seed=seed, num_features=TOP_FEATURES)
    # Values mix numbers and categories (e.g. gender): stored as text, so the Parquet column has one type.
    shown = table.assign(value=table["value"].map(value_text).astype("string"))
    return shown, explain.readable(table, top=TOP_FEATURES)

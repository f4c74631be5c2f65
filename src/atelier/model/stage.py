"""What the `model` stage reads and writes, and the metrics it records (metrics/model.json).

Reads: the prep snapshots, the simulator's truth (true order probability and personas, when the data is
simulated) and the segment attributes. Writes: the registry (models/registry), the champion's scores
(Parquet and the attribute database, beside the segments), the champion's curves as plot data and the metrics.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atelier.core import attributes, paths, truth
from atelier.core.io import write_json, write_parquet
from atelier.model.registry import PromotionDecision, Registry, data_hash
from atelier.model.selection import Pruning
from atelier.model.split import TimeSplit, split_by_time


@dataclass(frozen=True)
class ModelInputs:
    """The snapshots split out of time and, for simulated data, what only the simulator knows about them.

    `oracle`: the true P(order) of each test customer (the test snapshot's rows, in order); `personas`: each test
    customer's hidden persona; `oracle_training`: the true P(order) and persona of each training row. All three
    are None for user data.
    """

    snapshots: pd.DataFrame
    split: TimeSplit
    oracle: np.ndarray | None
    personas: pd.Series | None
    oracle_training: pd.DataFrame | None

    @property
    def simulated(self) -> bool:
        """Whether the simulator's truth is there (statements about the simulated shop can be checked)."""
        return self.oracle is not None


def load_inputs(root: Path, horizon_days: int) -> ModelInputs:
    """Read the snapshots, split them out of time, and read the truth for the test and training snapshots."""
    root = Path(root)
    snapshots = pd.read_parquet(root / paths.SNAPSHOTS_FILE)
    split = split_by_time(snapshots, horizon_days)
    test_truth = truth.order_probability(root, split.test_cutoff, split.test.index)
    if test_truth is None:
        return ModelInputs(snapshots=snapshots, split=split, oracle=None, personas=None, oracle_training=None)
    training = []
    for cutoff in split.train_cutoffs:
        customers = split.train.index[split.train["cutoff"] == cutoff]
        training.append(pd.DataFrame({"p_true": truth.order_probability(root, cutoff, customers).to_numpy(),
                                      "persona": truth.personas(root, customers).to_numpy()}))
    return ModelInputs(snapshots=snapshots, split=split, oracle=test_truth.to_numpy(),
                       personas=truth.personas(root, split.test.index),
                       oracle_training=pd.concat(training, ignore_index=True))


def registry(root: Path) -> Registry:
    """The stage's registry (models/registry): rebuilt on every `dvc repro`, since it is one of the stage's outputs."""
    return Registry(Path(root) / paths.REGISTRY_DIR)


def training_data_hash(root: Path) -> str:
    """The hash of the snapshots the candidates were trained on (recorded with every registered version)."""
    return data_hash([Path(root) / paths.SNAPSHOTS_FILE])


@dataclass(frozen=True)
class RollbackRehearsal:
    """A rollback rehearsed on a scratch copy of the registry: the champion before and after, or why not."""

    before: str | None
    after: str | None
    after_name: str | None
    problem: str | None


def rehearse_rollback(root: Path) -> RollbackRehearsal:
    """Roll the champion back on a scratch copy of the registry (the stage's registry stays as the rule left it)."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = registry(root).copy_to(Path(scratch) / "registry")
        before = copy.alias("champion")
        try:
            after = copy.rollback("champion")
        except ValueError as nothing_to_roll_back:
            return RollbackRehearsal(before=before, after=None, after_name=None, problem=str(nothing_to_roll_back))
        return RollbackRehearsal(before=before, after=after, after_name=copy.metadata(after)["name"], problem=None)


def _plain_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else float(v)) for k, v in row.items()}


def metrics(*, champion: tuple[str, str], split: TimeSplit, best: pd.DataFrame, evaluation: pd.DataFrame,
            subsets: pd.DataFrame, oracle: dict[str, Any] | None, gap_tables: dict[str, pd.DataFrame] | None,
            pruning: Pruning, kept: list[str], calibration: str, calibration_table: pd.DataFrame,
            stability: pd.DataFrame, spearman: dict[str, float], exact_of: str | None, ranking: dict[str, Any],
            decisions: list[PromotionDecision]) -> dict[str, Any]:
    """metrics/model.json from the phase's results.

    `champion`: (family, version); `subsets`: `evaluate.subset_aucs` (its second column is the active
    customers'); `oracle`: `evaluate.oracle_summary` or None; `calibration_table`: the champion's row, then its
    calibrated variant's; `stability`: `TabularExplainer.stability`; `spearman`: LIME against the other methods.
    """
    name, version = champion
    families = list(evaluation.index)
    oracle_metrics = None
    if oracle is not None:
        oracle_metrics = {
            **_plain_values(oracle),
            "champion_ratio": float(evaluation.at[name, "roc_auc"] / oracle["roc_auc"]),
            "gap_share": {grouping: {str(group): float(share) for group, share in table["share_of_gap"].items()}
                          for grouping, table in (gap_tables or {}).items()},
        }
    return {
        "champion": {"name": name, "version": version},
        "test_cutoff": split.test_cutoff.date().isoformat(),
        "test": {family: _plain_values(evaluation.loc[family].to_dict()) for family in families},
        "active_roc_auc": {family: float(subsets.at[family, subsets.columns[1]]) for family in families},
        "oracle": oracle_metrics,
        "cv": {family: {"auc": float(best.at[family, "cv_auc"]), "train_auc": float(best.at[family, "train_auc"]),
                        "gap": float(best.at[family, "gap"]), "overfitting": bool(best.at[family, "overfitting"])}
               for family in best.index},
        "features": {"kept": kept, "dropped": pruning.dropped, "validation_auc_all": pruning.auc_all,
                     "validation_auc_pruned": pruning.auc_pruned},
        "calibration": {"method": calibration, "brier": float(calibration_table.iloc[0]["brier"]),
                        "brier_calibrated": float(calibration_table.iloc[1]["brier"])},
        "lime": {"stability_mean_jaccard": float(stability["mean_jaccard"].mean()),
                 "stability_customers": len(stability), "spearman": spearman, "exact_contributions_of": exact_of},
        "selection": {"cv_order": ranking["first_order"], "test_order": ranking["second_order"],
                      "same_order": ranking["same_order"]},
        "promotions": [{"candidate": d.candidate, "promoted": d.promoted, "candidate_score": d.candidate_score}
                       for d in decisions],
    }


def scores_frame(test: pd.DataFrame, scores: np.ndarray, version: str, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The champion's score for every customer of the test snapshot, with the model version and the scoring time."""
    return pd.DataFrame({"customer_id": test.index, "propensity": scores, "model_version": version,
                         "scored_at": cutoff.isoformat()})


def write_outputs(root: Path, *, scores: pd.DataFrame, champion_curves: dict[str, pd.DataFrame],
                  metrics: dict[str, Any]) -> pd.DataFrame:
    """Write the scores (Parquet + attribute database), the champion's curves and the metrics; the stored attributes.

    Returns the attribute view (`customer_attributes`: segment and propensity per customer) as it was stored.
    """
    root = Path(root)
    write_parquet(scores, root / paths.SCORES_FILE)
    attributes.write_propensity(root / paths.SEGMENT_ATTRIBUTES, root / paths.PROPENSITY_ATTRIBUTES, scores)
    (root / paths.MODEL_PLOTS).mkdir(parents=True, exist_ok=True)
    for name, curve in champion_curves.items():
        curve.to_csv(root / paths.MODEL_PLOTS / f"{name}.csv", index=False, float_format="%.6f")
    write_json(metrics, root / paths.MODEL_METRICS)
    return attributes.read_table(root / paths.PROPENSITY_ATTRIBUTES, "customer_attributes")

"""The robustness phase as a stage: what it reads, the steps that tie the checks to the project, what it writes.

The checks themselves live in their own modules (`fairness`, `datachecks`, `retraining`, `trust`,
`rollback`); this module loads the pipeline's outputs for them and writes the phase's results:
metrics/robustness.json, plot data under plots/robustness/, and a scratch registry
(models/robustness_registry) for the rollback drill, so the project's registry is never touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.metrics import roc_auc_score

from atelier.core import paths
from atelier.core.io import write_json
from atelier.model import propensity
from atelier.model.champion import Champion, from_registry
from atelier.model.registry import Registry
from atelier.robustness import rollback

PLOT_COLUMNS = {
    "retraining": ["cutoff", "never", "monthly", "drift"],  # AUC per policy (wide: one line each in `dvc plots show`)
    "fairness": ["group", "selection_rate", "true_positive_rate", "auc"],  # group as "attribute=value"
}


def test_snapshot(snapshots: pd.DataFrame) -> pd.DataFrame:
    """The out-of-time snapshot (the last cutoff), labelled rows only."""
    last = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
    return last[last["label"].notna().to_numpy()]


def recipe_factory(champion: Champion, model_params: dict[str, Any], seed: int):
    """A function returning an unfitted copy of the champion's recipe (family, hyperparameters, features)."""
    settings = propensity.ModelSettings.from_params(model_params, seed)
    return lambda: propensity.tuned(champion.metadata["name"], champion.metadata["params"], champion.numeric,
                                    champion.categorical, settings)


def retraining_section(section: dict[str, Any], tables: dict[str, pd.DataFrame], horizon_days: int) -> dict[str, Any]:
    """params.yaml `robustness.retraining` with a null start or end taken from the data.

    start: the first of the month two months after the first order (a month of history at least);
    end: the last first-of-month whose label window (horizon_days) ends within the data.
    """
    ordered = pd.to_datetime(tables["orders"]["ordered_at"])
    first = ordered.min().to_period("M").to_timestamp() + pd.DateOffset(months=2)
    last = (ordered.max() - pd.Timedelta(days=horizon_days)).to_period("M").to_timestamp()
    return {**section, "start": section.get("start") or str(first.date()), "end": section.get("end") or str(last.date())}


def drill_registry(root: Path, kind: str) -> Registry:
    """A fresh copy of the project's registry for one rollback drill (one folder per kind, kept for inspection)."""
    return Registry(Path(root) / paths.REGISTRY_DIR).copy_to(Path(root) / paths.DRILL_REGISTRY_DIR / kind)


def run_drill(root: Path, kind: str, snapshots: pd.DataFrame, events: pd.DataFrame, orders: pd.DataFrame, *,
              guard: rollback.Guard, days: int, horizon_days: int, model_params: dict[str, Any], seed: int) -> dict[str, Any]:
    """One rollback drill on a fresh registry copy: a `kind` of degraded model promoted by mistake, then `days` live days.

    The reference for both checks is the healthy champion on the visitors of the `days` days
    after the previous cutoff, scored on that cutoff's snapshot (the same shape as the live
    batches): its scores are the PSI baseline, and its AUC against those customers' labels
    (complete by the last cutoff) is the AUC a healthy model reaches on a day's visitors. That
    snapshot is one the champion trained on, so the baseline is in-sample; the report compares it
    with the champion's realized AUC on the live days in hindsight.
    """
    cutoffs = sorted(pd.Timestamp(c) for c in snapshots["cutoff"].unique())
    if len(cutoffs) < 2:
        raise ValueError("the rollback drill needs two cutoffs: the previous one gives the healthy reference")
    previous, last = cutoffs[-2], cutoffs[-1]
    registry = drill_registry(root, kind)
    original = registry.alias("champion")
    champion = from_registry(registry, original)
    metadata, model = champion.metadata, champion.pipeline
    train = snapshots[snapshots["cutoff"] < last]
    earlier = snapshots[snapshots["cutoff"] == previous]
    reference_days = min(days, max(1, (last - previous).days))  # the reference never reaches into the live period
    reference = pd.concat(rollback.daily_batches(earlier, events, previous, reference_days).values(), ignore_index=True)
    reference_scores = rollback.scores_of(registry, original, model, reference)
    reference_labels = earlier.loc[reference["customer_id"], "label"]
    labelled = reference_labels.notna().to_numpy()
    both = labelled.any() and reference_labels[labelled].nunique() == 2
    # None (censored labels, or no buyer among the reference visitors) leaves the AUC check on the registered AUC.
    baseline_auc = float(roc_auc_score(reference_labels[labelled].astype(int), reference_scores[labelled])) if both else None
    recipe = recipe_factory(champion, model_params, seed)()
    bad = rollback.degraded_model(recipe, train, champion.numeric, champion.categorical, kind=kind, seed=seed)
    # The bad card keeps the recipe but not the original's measured metrics: they were never measured for it.
    card = {key: value for key, value in metadata.items() if key != "metrics"}
    bad_version = rollback.mistaken_promotion(registry, bad, {**card, "degradation": kind})
    batches = rollback.daily_batches(snapshots[snapshots["cutoff"] == last], events, last, days)
    result = rollback.drill(registry, "champion", bad_version, batches, orders, original_version=original, guard=guard,
                            reference=reference, reference_scores=reference_scores, evaluation=test_snapshot(snapshots),
                            horizon_days=horizon_days, baseline_auc=baseline_auc)
    result["summary"]["baseline_auc"] = baseline_auc
    result["summary"]["kind"] = kind
    return result


def write_outputs(root: Path, metrics: dict[str, Any], plots: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """metrics/robustness.json and the plot files (every declared output exists, empty if there is nothing in it)."""
    root = Path(root)
    drills = root / paths.DRILL_REGISTRY_DIR
    if not drills.is_dir() or not any(drills.iterdir()):  # a declared output exists even when no drill ran
        drills.mkdir(parents=True, exist_ok=True)
        (drills / "NOT_RUN.txt").write_text("No rollback drill ran on this data (it needs an events table); "
                                            "reports/05_robustness.html says why.\n", encoding="utf-8")
    (root / paths.ROBUSTNESS_PLOTS).mkdir(parents=True, exist_ok=True)
    for name, columns in PLOT_COLUMNS.items():
        frame = plots.get(name, pd.DataFrame(columns=columns)).reindex(columns=columns)
        frame.to_csv(root / paths.ROBUSTNESS_PLOTS / f"{name}.csv", index=False, float_format="%.6f")
    write_json(metrics, root / paths.ROBUSTNESS_METRICS)
    return metrics

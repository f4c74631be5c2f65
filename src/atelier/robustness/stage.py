"""The robustness phase as a stage: its settings, everything it reads and writes, and its metrics.

The checks themselves are pure functions in their own modules (`fairness`, `datachecks`,
`retraining`, `trust`, `rollback`). This module reads what they need (the validated tables, the
snapshots, the champion, the replay's visits; `datachecks.gather_reports` reads the other stages'
reports), runs what touches files (the bad-data demos validate CSV copies in a scratch folder;
each rollback drill works on its own copy of the registry), builds metrics/robustness.json
(`metrics`) and the plot data (`plot_frames`), and writes them (`write_outputs`). The project's
registry is never touched: the drills' copies live under models/robustness_registry/<kind>.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from atelier.core import paths
from atelier.core.config import ParamsError
from atelier.core.io import read_parquet, write_json
from atelier.data import stage as data_stage
from atelier.data.features import FeatureSettings
from atelier.model.champion import Champion, from_registry, load_champion
from atelier.model.registry import Registry
from atelier.replay.engine import EngineSettings
from atelier.robustness import datachecks, fairness, retraining, rollback, trust

PLOT_COLUMNS = {
    "retraining": ["cutoff", "never", "monthly", "drift"],  # AUC per policy (wide: one line each in `dvc plots show`)
    "fairness": ["group", "selection_rate", "true_positive_rate", "auc"],  # group as "attribute=value"
}
#: Events the stream demo replays (the first ones of the table): enough for every injected problem, and quick.
STREAM_DEMO_EVENTS = 20_000


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Everything the robustness stage is tuned by: the sections dvc.yaml declares for it, validated."""

    seed: int
    source: str
    horizon_days: int
    features: FeatureSettings
    validate: dict[str, Any]  #: params.yaml `validate`, as the bad-data demos validate with it
    engine: EngineSettings
    model: dict[str, Any]  #: params.yaml `model`: the champion's recipe is refitted with it
    fairness: fairness.FairnessSettings
    retraining: dict[str, Any]  #: params.yaml `robustness.retraining` (null dates come from the data)
    explain: trust.ExplainSettings
    drill: rollback.DrillSettings
    per_problem: int
    workers: int = 1  #: params.yaml robustness.workers: processes for independent work (results do not depend on it)

    @classmethod
    def from_params(
        cls,
        *,
        seed: int,
        data: dict[str, Any],
        timeline: dict[str, Any],
        prep: dict[str, Any],
        validate: dict[str, Any],
        replay: dict[str, Any],
        model: dict[str, Any],
        robustness: dict[str, Any],
    ) -> Settings:
        """The settings from the params sections the stage declares (dvc.yaml stage `robustness`)."""
        sections = {
            "data": (data, ["source"]),
            "timeline": (timeline, ["horizon_days"]),
            "prep": (prep, ["session_windows_days", "half_life_days", "engagement_weights"]),
            "validate": (validate, ["valid_from", "valid_until", "max_bad_value_share"]),
            "replay": (replay, ["watermark_delay_seconds", "allowed_lateness_seconds"]),
            "model": (model, ["lime_top_k", "lime_num_samples", "lime_background"]),
            "robustness": (robustness, ["fairness", "retraining", "injection", "explainability", "guard"]),
        }
        for name, (section, keys) in sections.items():
            missing = [key for key in keys if key not in (section or {})]
            if missing:
                raise ParamsError(
                    f"params.yaml {name}: missing {missing}; restore them from the project's params.yaml "
                    f"(and declare {name} in dvc.yaml stage robustness)"
                )
        horizon_days, per_problem = timeline["horizon_days"], robustness["injection"].get("per_problem")
        if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days < 1:
            raise ParamsError(
                f"params.yaml timeline.horizon_days: a whole number of days, 1 or more, got {horizon_days!r}"
            )
        if isinstance(per_problem, bool) or not isinstance(per_problem, int) or per_problem < 1:
            raise ParamsError(
                "params.yaml robustness.injection.per_problem: rows per injected problem, 1 or more, "
                f"got {per_problem!r}"
            )
        workers = robustness.get("workers", 1)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ParamsError(f"params.yaml robustness.workers: a number of processes, 1 or more, got {workers!r}")
        if robustness["retraining"].get("start") is not None and robustness["retraining"].get("end") is not None:
            retraining.RetrainingSettings.from_params(
                robustness["retraining"]
            )  # fail early; null dates wait for the data
        return cls(
            seed=int(seed),
            source=str(data["source"]),
            horizon_days=horizon_days,
            features=FeatureSettings.from_params(prep),
            validate=dict(validate),
            engine=EngineSettings(float(replay["watermark_delay_seconds"]), float(replay["allowed_lateness_seconds"])),
            model=dict(model),
            fairness=fairness.FairnessSettings.from_params(robustness["fairness"]),
            retraining=dict(robustness["retraining"]),
            explain=trust.ExplainSettings.from_params(robustness["explainability"]),
            drill=rollback.DrillSettings.from_params(robustness["guard"]),
            per_problem=per_problem,
            workers=workers,
        )

    @property
    def top_k(self) -> int:
        """LIME's top k (params.yaml model.lime_top_k)."""
        return int(self.model["lime_top_k"])


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """What the phase reads from the earlier stages."""

    tables: dict[str, pd.DataFrame]  #: the validated tables
    snapshots: pd.DataFrame  #: the point-in-time snapshots of the prep stage
    champion: Champion  #: the registered champion
    test: pd.DataFrame  #: the out-of-time snapshot (the last cutoff), labelled rows only
    train: pd.DataFrame  #: the snapshots before it
    visits: pd.DataFrame | None  #: the replay's A/B visits; None unless the replay ran closed loop (simulated data)


def test_snapshot(snapshots: pd.DataFrame) -> pd.DataFrame:
    """The out-of-time snapshot (the last cutoff), labelled rows only."""
    last = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
    return last[last["label"].notna().to_numpy()]


def load_inputs(root: Path, settings: Settings) -> Inputs:
    """Project `root`'s validated tables, snapshots, champion and (closed loop only) the replay's visits."""
    root = Path(root)
    snapshots = read_parquet(root / paths.SNAPSHOTS_FILE)
    closed_loop = settings.source == "simulate" and (root / paths.VISITS_FILE).exists()
    return Inputs(
        tables=data_stage.load_validated(root),
        snapshots=snapshots,
        champion=load_champion(root / paths.REGISTRY_DIR),
        test=test_snapshot(snapshots),
        train=snapshots[snapshots["cutoff"] < snapshots["cutoff"].max()],
        visits=read_parquet(root / paths.VISITS_FILE) if closed_loop else None,
    )


# --------------------------------------------------------------------------------------------
# The steps that read or write files
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BadDataDemos:
    """Known bad data through the real checks (`datachecks`): rows, shapes and stream records."""

    rows: pd.DataFrame  #: `datachecks.run_demo`
    schema: pd.DataFrame  #: `datachecks.schema_demo`
    stream: pd.DataFrame  #: `datachecks.stream_demo`; empty without events
    books: dict[str, Any]  #: the stream demo's books; {} without events
    seconds: float  #: how long the row and schema demos took


def bad_data_demos(tables: dict[str, pd.DataFrame], settings: Settings) -> BadDataDemos:
    """Inject bad rows, broken shapes and bad stream records into copies of `tables`; the CSV copies the
    validator reads live in a scratch folder that is removed afterwards."""
    params = {"validate": settings.validate}
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        rows = datachecks.run_demo(tables, params, Path(scratch), seed=settings.seed, per_problem=settings.per_problem,
                                   workers=settings.workers)
        schema = datachecks.schema_demo(tables, params, Path(scratch))
        seconds = time.perf_counter() - started
    stream, books = pd.DataFrame(), {}
    if "events" in tables:
        stream, books = datachecks.stream_demo(
            tables["events"].iloc[:STREAM_DEMO_EVENTS], settings.seed, settings.per_problem, settings.engine
        )
    return BadDataDemos(rows=rows, schema=schema, stream=stream, books=books, seconds=seconds)


@dataclass(frozen=True)
class RetrainingRun:
    """The retraining simulation (`retraining.simulate` over the monthly snapshots) and what it was run with."""

    settings: retraining.RetrainingSettings  #: the window, policies and threshold
    schedules: pd.DataFrame  #: one row per cutoff and policy (`retraining.simulate_schedules`)
    seconds: float  #: how long the snapshots and the schedules took


def retraining_run(root: Path, settings: Settings, model_params: dict[str, Any]) -> RetrainingRun:
    """The retraining simulation on project `root`'s validated tables and champion, which it reads itself: the
    notebook starts it in a worker process (`core.parallel.start`) and goes on with the other sections meanwhile.
    `model_params`: params.yaml's `model` section (the champion's recipe is refitted with its threads and seed)."""
    root = Path(root)
    tables = data_stage.load_validated(root)
    champion = load_champion(root / paths.REGISTRY_DIR)
    started = time.perf_counter()
    window = retraining.RetrainingSettings.from_params(settings.retraining, tables["orders"], settings.horizon_days)
    monthly = retraining.monthly_snapshots(tables, window, settings.horizon_days, settings.features,
                                           settings.workers)
    schedules = retraining.simulate(monthly, retraining.recipe_factory(champion, model_params, settings.seed),
                                    champion.numeric, champion.categorical, window, settings.horizon_days,
                                    settings.workers)
    return RetrainingRun(settings=window, schedules=schedules, seconds=time.perf_counter() - started)


def drill_registry(root: Path, kind: str) -> Registry:
    """A fresh copy of the project's registry for one rollback drill (one folder per kind, kept for inspection)."""
    return Registry(Path(root) / paths.REGISTRY_DIR).copy_to(Path(root) / paths.DRILL_REGISTRY_DIR / kind)


def run_drill(
    root: Path,
    kind: str,
    snapshots: pd.DataFrame,
    events: pd.DataFrame,
    orders: pd.DataFrame,
    *,
    guard: rollback.Guard,
    days: int,
    horizon_days: int,
    model_params: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """One rollback drill on a fresh registry copy: a `kind` of degraded model promoted by mistake, then `days`
    live days.

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
    baseline_auc = (
        float(roc_auc_score(reference_labels[labelled].astype(int), reference_scores[labelled])) if both else None
    )
    recipe = retraining.recipe_factory(champion, model_params, seed)()
    bad = rollback.degraded_model(recipe, train, champion.numeric, champion.categorical, kind=kind, seed=seed)
    # The bad card keeps the recipe but not the original's measured metrics: they were never measured for it.
    card = {key: value for key, value in metadata.items() if key != "metrics"}
    bad_version = rollback.mistaken_promotion(registry, bad, {**card, "degradation": kind})
    batches = rollback.daily_batches(snapshots[snapshots["cutoff"] == last], events, last, days)
    result = rollback.drill(
        registry,
        "champion",
        bad_version,
        batches,
        orders,
        original_version=original,
        guard=guard,
        reference=reference,
        reference_scores=reference_scores,
        evaluation=test_snapshot(snapshots),
        horizon_days=horizon_days,
        baseline_auc=baseline_auc,
    )
    result["summary"]["baseline_auc"] = baseline_auc
    result["summary"]["kind"] = kind
    return result


def run_drills(root: Path, inputs: Inputs, settings: Settings) -> dict[str, dict[str, Any]]:
    """Every drill of `settings.drill.kinds`, by kind; {} without an events table (the live days' visitors come
    from it)."""
    if "events" not in inputs.tables:
        return {}
    events, drill = inputs.tables["events"][["customer_id", "ts"]], settings.drill
    return {
        kind: run_drill(
            root,
            kind,
            inputs.snapshots,
            events,
            inputs.tables["orders"],
            guard=drill.guard,
            days=drill.days,
            horizon_days=settings.horizon_days,
            model_params=settings.model,
            seed=settings.seed,
        )
        for kind in drill.kinds
    }


# --------------------------------------------------------------------------------------------
# Metrics and plot data
# --------------------------------------------------------------------------------------------
def fairness_metrics(
    settings: fairness.FairnessSettings,
    skipped: list[str],
    disparity: pd.DataFrame | None = None,
    costs: pd.DataFrame | None = None,
    uplift: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """metrics["fairness"]: the ratios, flags and intervals of `disparity` (`fairness.group_disparities`), the price of
    equal selection per attribute (`fairness.mitigation_costs`) and the uplift groups covering 0 or harmed
    (`group_uplift.uplift_reading`; None without the A/B test). Without `disparity` (no attribute): nothing compared."""
    if disparity is None:
        return {"skipped_attributes": list(skipped), "flagged": [], "ratios": {}}
    key = [f"{attribute}.{metric}" for attribute, metric in zip(disparity["attribute"], disparity["metric"])]
    mitigation = {}
    for attribute in [] if costs is None else costs.index.get_level_values("attribute").unique():
        single, equal = costs.loc[(attribute, "single threshold")], costs.loc[(attribute, "per-group thresholds")]
        mitigation[attribute] = {
            "precision_single": float(single["precision"]),
            "precision_equal": float(equal["precision"]),
            "recall_single": float(single["recall"]),
            "recall_equal": float(equal["recall"]),
        }
    return {
        "target_share": settings.target_share,
        "threshold": settings.disparity_threshold,
        "skipped_attributes": list(skipped),
        "ratios": {k: (None if pd.isna(ratio) else float(ratio)) for k, ratio in zip(key, disparity["ratio"])},
        "flagged": [k for k, flagged in zip(key, disparity["below_threshold"]) if flagged],
        "ratio_ci": {
            k: [float(low), float(high)]
            for k, low, high in zip(key, disparity["ci_low"], disparity["ci_high"])
            if pd.notna(low)
        },
        "mitigation": mitigation,
        "uplift_groups_covering_zero": len(uplift["covering"]) if uplift else None,
        "uplift_groups_harmed": len(uplift["harmed"]) if uplift else None,
    }


def data_checks_metrics(demos: BadDataDemos, caught: pd.DataFrame) -> dict[str, Any]:
    """metrics["data_checks"]: what the demos injected and what was caught, missed or quarantined with it; how many
    shape problems stopped the stage, and how many of those named file, column and fix; what the pipeline's own
    checks found (`datachecks.gather_reports`: every check's row count, None for a yes/no check, and the flags)."""
    rows, schema = demos.rows, demos.schema
    injected = rows["missed"].notna()  # the control rows (untouched) have no `missed`
    explained = schema["stopped"] & schema["names_file"] & schema["names_column"] & schema["names_fix"]
    keys = [
        f"{stage}.{table}.{reason}" for stage, table, reason in zip(caught["stage"], caught["table"], caught["reason"])
    ]
    return {
        "injected_rows": int(rows.loc[injected, "injected"].sum()),
        "missed": int(rows["missed"].fillna(0).sum()),
        "false_alarms": int(rows.loc[~injected, "caught"].sum()),
        "collateral_rows": int(rows["also_quarantined"].sum()),
        "schema_stopped": int(schema["stopped"].sum()),
        "schema_explained": int(explained.sum()),
        "schema_scenarios": int(len(schema)),
        "stream_balanced": demos.books.get("balanced") if demos.books else None,
        "stages_checked": [str(stage) for stage in caught["stage"].unique()],
        "caught_in_pipeline": {
            key: (None if pd.isna(count) else int(count)) for key, count in zip(keys, caught["rows"])
        },
        "flagged_in_pipeline": sorted({key for key, flagged in zip(keys, caught["flagged"]) if flagged}),
    }


def retraining_metrics(schedules: pd.DataFrame, *, tie: float = retraining.TIE_AUC) -> dict[str, Any]:
    """metrics["retraining"]: per policy its mean, minimum and last AUC and fits; each policy against never
    retraining (mean difference, interval, better months); what that says (`retraining.outcome`); the schedules
    that lead, ties named together (`retraining.best_policies`); months evaluated; and `retraining.drift_effect`."""
    counts = ("fits", "months", "better_months")

    def plain(row: pd.Series) -> dict[str, Any]:
        return {key: (int(value) if key in counts else float(value)) for key, value in row.items()}

    summary, differences = retraining.schedule_summary(schedules), retraining.policy_differences(schedules)
    return {
        "policies": {policy: plain(row) for policy, row in summary.iterrows()},
        "against_never": {policy: plain(row) for policy, row in differences.iterrows()},
        "outcome": retraining.outcome(differences),
        "best_policies": retraining.best_policies(differences, summary, tie),
        "tie_auc": tie,
        "months": int(schedules["cutoff"].nunique()),
        "drift_effect": retraining.drift_effect(schedules),
    }


def explanation_metrics(
    result: trust.ChampionReview | None, thresholds: trust.Thresholds, correlated_pairs: int, champion_name: str
) -> dict[str, Any]:
    """metrics["explanations"]: `trust.review_summary` with the correlated pairs and the two yardsticks (the surrogate
    ceiling, the chance overlap); {"skipped": why} when the champion has no exact contributions to compare with."""
    if result is None:
        return {
            "skipped": f"the champion is {champion_name}; exact contributions need {' or '.join(trust.EXACT_FAMILIES)}"
        }
    return {
        **trust.review_summary(result.review, thresholds),
        "correlated_pairs": int(correlated_pairs),
        "surrogate_ceiling_median": float(result.ceiling.median()),
        "surrogate_ceiling_max": float(result.ceiling.max()),
        "chance_top_k_overlap": float(result.chance),
    }


def rollback_metrics(drills: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """metrics["rollback"]: each drill's summary by kind, without undefined (NaN) numbers."""
    return {
        kind: {
            key: value for key, value in result["summary"].items() if not isinstance(value, float) or np.isfinite(value)
        }
        for kind, result in drills.items()
    }


def metrics(
    champion: str,
    *,
    fairness: dict[str, Any],
    data_checks: dict[str, Any],
    retraining: dict[str, Any],
    explanations: dict[str, Any],
    rollback: dict[str, Any],
) -> dict[str, Any]:
    """metrics/robustness.json: the champion's version and each section's metrics (built by the functions above)."""
    return {
        "champion": champion,
        "fairness": fairness,
        "data_checks": data_checks,
        "retraining": retraining,
        "explanations": explanations,
        "rollback": rollback,
    }


def plot_frames(groups: pd.DataFrame | None, schedules: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The plot data: per group (as "attribute=value") its rates and AUC (from `fairness.subgroup_metrics`; none
    without groups), and per evaluated cutoff each policy's AUC."""
    frames = {
        "retraining": schedules.pivot(index="cutoff", columns="policy", values="auc")
        .reset_index()
        .assign(cutoff=lambda frame: frame["cutoff"].dt.date.astype(str))
    }
    if groups is not None:
        frames["fairness"] = groups[groups["group"] != fairness.OVERALL].assign(
            group=lambda t: t["attribute"] + "=" + t["group"]
        )
    return frames


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def write_outputs(root: Path, metrics: dict[str, Any], plots: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """metrics/robustness.json and the plot files (every declared output exists, empty if there is nothing in it)."""
    root = Path(root)
    drills = root / paths.DRILL_REGISTRY_DIR
    if not drills.is_dir() or not any(drills.iterdir()):  # a declared output exists even when no drill ran
        drills.mkdir(parents=True, exist_ok=True)
        (drills / "NOT_RUN.txt").write_text(
            "No rollback drill ran on this data (it needs an events table); reports/07_robustness.html says why.\n",
            encoding="utf-8",
        )
    (root / paths.ROBUSTNESS_PLOTS).mkdir(parents=True, exist_ok=True)
    for name, columns in PLOT_COLUMNS.items():
        frame = plots.get(name, pd.DataFrame(columns=columns)).reindex(columns=columns)
        frame.to_csv(root / paths.ROBUSTNESS_PLOTS / f"{name}.csv", index=False, float_format="%.6f")
    write_json(metrics, root / paths.ROBUSTNESS_METRICS)
    return metrics

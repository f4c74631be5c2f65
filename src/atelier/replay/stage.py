"""The `replay` stage's reading and writing: what the replay loads, the registry it retrains into, what it writes.

Everything else in `atelier.replay` works in memory on what `load_context` returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atelier.core import attributes, paths
from atelier.core.config import ParamsError
from atelier.core.io import write_json, write_parquet
from atelier.data.features import FeatureSettings, before_cutoff
from atelier.data.simulate.config import config_from_params
from atelier.data.snapshots import parse_cutoffs
from atelier.data.stage import load_validated
from atelier.model import candidates
from atelier.model.champion import try_load_champion
from atelier.model.registry import Registry
from atelier.recommend.serve import ListRecommender
from atelier.replay import abtest, drift, retraining
from atelier.replay.context import ReplayContext, id_floor
from atelier.replay.explanations import Explanations
from atelier.replay.loop import ClosedLoop, ReplaySettings
from atelier.replay.policy import Assortment
from atelier.replay.sensitivity import COLUMNS as SENSITIVITY_COLUMNS
from atelier.replay.world import ReplayWorld

#: The plot files the stage declares, and their columns.
PLOT_COLUMNS = {
    "uplift_sensitivity": SENSITIVITY_COLUMNS,
    "latency": ["kind", "milliseconds"],
    "latency_histogram": ["bin", "low_ms", "high_ms", "count"],
    "drift": ["day", "score", "recency_days", "sessions_90d", "engagement_score"],
}


def load_context(root: Path, settings: ReplaySettings, features: FeatureSettings, timeline: dict[str, Any], *,
                 source: str, simulate: dict[str, Any]) -> ReplayContext:
    """Read the validated data, the champion (by alias), the segments and, for simulated data, the world's truth.

    `timeline` is params.yaml's section (cutoffs, horizon_days); the replay starts at the last
    cutoff. The loop is closed (the simulated shop reacts to what it is shown) when `source` is
    "simulate" and data/truth exists; `simulate` (params.yaml's section) then rebuilds its world.
    """
    root = Path(root)
    cutoffs = parse_cutoffs(timeline["cutoffs"])
    horizon_days = timeline["horizon_days"]
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days < 1:
        raise ParamsError("params.yaml timeline.horizon_days: must be a whole number of days, 1 or more, "
                          f"got {horizon_days!r}")
    tables = load_validated(root)
    scorer, problem = try_load_champion(root / paths.REGISTRY_DIR)
    segments_path = root / paths.SEGMENTS_FILE
    segments = (pd.read_parquet(segments_path).set_index("customer_id")["segment_name"].to_dict()
                if segments_path.exists() else {})
    products = tables.get("products")
    if products is None:
        products = pd.DataFrame({"product_id": pd.Series(dtype="int64"), "category": pd.Series(dtype="string")})
    cutoff = max(cutoffs)
    context = ReplayContext(
        root=root, settings=settings, features=features, cutoffs=cutoffs, horizon_days=horizon_days, tables=tables,
        scorer=scorer, model_problem=problem, segments=segments,
        assortment=Assortment.from_tables(products, before_cutoff(tables, cutoff).get("events")),
    )
    context.recommender = load_recommender(root)
    if source == "simulate" and (root / paths.TRUTH_CUSTOMERS).exists():
        truth = pd.read_parquet(root / paths.TRUTH_CUSTOMERS)
        context.world = ReplayWorld.build(config_from_params(simulate), settings.seed, truth, cutoff,
                                          tables["customers"], id_floor=id_floor(tables))
    return context


def load_recommender(root: Path) -> ListRecommender | None:
    """The recommend stage's lists and the champion's fallback list, or None when the stage has not run (the
    treatment arm then shows the favourite-category rule's pages)."""
    aliases = Path(root) / paths.RECOMMEND_MODEL_DIR / "aliases.json"
    if not (Path(root) / paths.RECOMMEND_LISTS).exists() or not aliases.exists():
        return None
    version = json.loads(aliases.read_text(encoding="utf-8"))["champion"]
    with np.load(Path(root) / paths.RECOMMEND_MODEL_DIR / version / "als.npz", allow_pickle=False) as arrays:
        fallback = arrays["fallback"]
    return ListRecommender.from_frame(pd.read_parquet(Path(root) / paths.RECOMMEND_LISTS), fallback)


def reference_profiles(context: ReplayContext) -> pd.DataFrame:
    """The champion's training profiles of customers who visited soon after their cutoff, scored
    (`drift.visitor_reference` on data/features/snapshots.parquet)."""
    snapshots = pd.read_parquet(context.root / paths.SNAPSHOTS_FILE)
    return drift.visitor_reference(snapshots, context.tables.get("events"), context.cutoff, context.scorer)


def restored_loop(context: ReplayContext) -> ClosedLoop:
    """A fresh closed loop continued from the checkpoint the replay saved last."""
    tables = context.tables
    return context.closed_loop().restore(
        context.root / paths.REPLAY_CHECKPOINT_DIR, context.features, tables.get("products"), tables.get("customers")
    )


def retrain(context: ReplayContext, settings: candidates.ModelSettings, tables: dict[str, pd.DataFrame] | None,
            trigger: Any | None) -> dict[str, Any]:
    """Drift-triggered retraining (`atelier.replay.retraining`) through a copy of the registry and its promotion rule.

    `tables` are the data with the replay's records (`ReplayContext.with_replay`); its snapshots are built on
    `replay.workers` processes (the same snapshots as one after another). The challenger is
    registered in models/replay_registry/ (a copy of the project's registry, which is left
    untouched) and promoted there only if it wins out of time by the promotion margin. The live loop
    is not changed: it served the champion it started with throughout. Without a trigger, in an open
    loop or without a champion nothing runs, and the outcome says why (`retraining.skip_reason`).
    """
    skipped = retraining.skip_reason(context.closed, trigger, context.scorer is not None)
    if skipped is not None:
        return {"retrained": False, "reason": skipped}
    champion = context.scorer
    source = Registry(context.root / paths.REGISTRY_DIR)
    metadata = source.metadata(champion.version)
    count = retraining.snapshot_count(metadata, context.cutoffs)
    plan = retraining.plan(tables, trigger, context.cutoff, context.horizon_days, count, context.features,
                           workers=context.settings.workers)
    if plan.incomplete is not None:
        return retraining.not_retrained(plan)
    challenger, columns = retraining.fit_challenger(plan.train, metadata, settings)
    registry = source.copy_to(context.root / paths.REPLAY_REGISTRY_DIR)

    def out_of_time(model: Any) -> float:
        return retraining.auc(model, plan.evaluation, columns)

    recorded = retraining.challenger_metadata(metadata, columns, plan, out_of_time(challenger))
    version = registry.register(challenger, name=metadata["name"], metadata=recorded)
    decision = registry.promote(version, out_of_time, min_delta=settings.promotion_min_delta)
    return retraining.outcome(plan, context.horizon_days, champion=(champion.version, champion.pipeline),
                              challenger=(version, challenger), columns=columns,
                              active_recency_days=settings.active_recency_days, min_delta=settings.promotion_min_delta,
                              promoted=decision.promoted, reason=decision.reason)


def metrics(context: ReplayContext, *, books: dict[str, Any], decisions: pd.DataFrame, ab: dict[str, Any] | None,
            sweep: pd.DataFrame | None, parity: dict[str, Any] | None, drift_summary: dict[str, Any] | None,
            realized: pd.DataFrame | None, retraining_outcome: dict[str, Any],
            explained: Explanations | None, learned_vs_rule: dict[str, Any] | None = None) -> dict[str, Any]:
    """metrics/replay.json: the books, the decisions by reason and banner, the A/B test with its sample sizes, the
    sensitivity sweep, parity, drift (trigger and largest PSI per column), realized AUC per week, the retraining and
    the number of explained decisions. What the open loop cannot measure is None."""
    return {
        "closed_loop": bool(context.closed),
        "books": books,
        "decisions": {"total": len(decisions),
                      "by_reason": decisions["reason"].value_counts().to_dict() if len(decisions) else {},
                      "by_banner": decisions["banner"].value_counts().to_dict() if len(decisions) else {}},
        "ab_test": None if ab is None else {
            **{key: ab[key] for key in ("conversion", "revenue_per_session", "average_order_value", "arms")},
            **abtest.sample_sizes(ab["conversion"]), "response_strength": context.settings.response_strength},
        "sensitivity": None if sweep is None else sweep.to_dict(orient="records"),
        "recommender": "learned" if context.recommender is not None else "category_rule",
        "learned_vs_rule": learned_vs_rule,
        "parity": parity,  # its largest difference is unrounded text (metrics round floats to 6 places)
        "drift": None if drift_summary is None else {key: drift_summary[key] for key in ("trigger", "max_psi")},
        "realized_auc": None if realized is None else (
            realized.reset_index().assign(period=lambda d: d["period"].astype(str)).to_dict(orient="records")),
        "retraining": retraining_outcome,
        "explanations": 0 if explained is None else len(explained),
    }


def decisions_for_storage(decisions: pd.DataFrame) -> pd.DataFrame:
    """Decisions with products as plain lists (Parquet-friendly)."""
    if "products" not in decisions:
        return decisions
    return decisions.assign(products=decisions["products"].map(lambda p: [int(x) for x in p]))


def write(root: Path, context: ReplayContext, *, decisions: pd.DataFrame, dead_letters: pd.DataFrame,
          visits: pd.DataFrame | None = None, explained: Explanations | None = None, sweep: pd.DataFrame | None = None,
          timing: dict[str, Any] | None = None, psi: pd.DataFrame | None = None, metrics: dict[str, Any]) -> Path:
    """Everything the stage writes: data/replay/*.parquet, the user-attribute database, the plot CSVs (every declared
    file, empty when there is nothing to plot), models/replay_registry/ (a note when nothing was retrained) and
    metrics/replay.json, whose path it returns. `timing` is `speed.measure`'s result (the latency plots)."""
    root = Path(root)
    frames = {"decisions": decisions_for_storage(decisions),
              "dead_letters": (dead_letters.astype({"customer_id": "string"}) if len(dead_letters)
                               else pd.DataFrame({"reason": pd.Series(dtype="string")}))}
    if visits is not None:
        frames["visits"] = visits
    if explained is not None and len(explained):
        frames["explanations"] = explained.stored()
    for name, frame in frames.items():
        write_parquet(frame.reset_index(drop=True), root / paths.REPLAY_DIR / f"{name}.parquet")
    write_attributes(root, decisions, context.end)
    plots = {"uplift_sensitivity": sweep, "latency": None if timing is None else timing["rows"],
             "latency_histogram": None if timing is None else timing["bins"],
             "drift": None if psi is None else psi.reset_index().assign(day=lambda d: d["day"].astype(str))}
    (root / paths.REPLAY_PLOTS).mkdir(parents=True, exist_ok=True)
    for name, columns in PLOT_COLUMNS.items():
        frame = pd.DataFrame(columns=columns) if plots[name] is None else plots[name]
        frame.to_csv(root / paths.REPLAY_PLOTS / f"{name}.csv", index=False, float_format="%.6f")
    registry = root / paths.REPLAY_REGISTRY_DIR
    if not registry.exists() or not any(registry.iterdir()):
        registry.mkdir(parents=True, exist_ok=True)
        (registry / "NOT_RETRAINED.md").write_text("The replay did not retrain (no drift trigger, or open loop): "
                                                   "see metrics/replay.json, `retraining`.\n", encoding="utf-8")
    return write_json(metrics, root / paths.REPLAY_METRICS)


def write_attributes(root: Path, decisions: pd.DataFrame, as_of: pd.Timestamp) -> Path:
    """The user-attribute database after the replay: the model stage's copy plus each customer's live profile."""
    columns = ["customer_id", "ts", "propensity", "banner", "experience", "arm"]
    latest = (decisions.sort_values("ts", kind="stable").groupby("customer_id").last().reset_index()
              if len(decisions) else pd.DataFrame(columns=columns))
    root = Path(root)
    return attributes.write_live_profiles(root / paths.PROPENSITY_ATTRIBUTES, root / paths.REPLAY_ATTRIBUTES, latest,
                                          as_of)


def spark_stream(context: ReplayContext, records: pd.DataFrame, spark_params: dict[str, Any]) -> dict[str, Any]:
    """The recorded stream through Spark Structured Streaming (`atelier.replay.spark`), next to the embedded engine:
    both books, the decisions each made, Spark's micro-batch latency (p50/p99 ms) and records per second. Spark
    works in data/replay/spark/ (input files, checkpoint, per-batch Parquet outputs)."""
    import time

    import numpy as np

    from atelier.core import spark as spark_engine
    from atelier.replay.engine import FrameSource, MemorySink, MicroBatchEngine, StreamProcessor
    from atelier.replay.spark import SparkStreamingEngine

    settings = spark_engine.SparkSettings.from_params(spark_params)
    began = time.perf_counter()
    session = spark_engine.build_session(settings)
    started = time.perf_counter() - began
    state = context.initial_state()
    embedded = MicroBatchEngine(StreamProcessor(state, context.settings.engine),
                                decide=context.personalizer(state).decide)
    embedded_sink, spark_sink = MemorySink(), MemorySink()
    embedded_books = embedded.run(FrameSource(records, context.settings.micro_batch_events), embedded_sink)
    engine = SparkStreamingEngine(session, context.settings.engine, context.initial_state(),
                                  context.root / paths.REPLAY_DIR / "spark",
                                  decide_with=lambda live: context.personalizer(live).decide)
    books = engine.run(FrameSource(records, context.settings.micro_batch_events), spark_sink)
    milliseconds = np.asarray(engine.batch_seconds, dtype=float) * 1000
    return {"session_seconds": started, "books": books, "embedded_books": embedded_books,
            "decisions": len(spark_sink.frames("decisions")),
            "embedded_decisions": len(embedded_sink.frames("decisions")),
            "batches": len(milliseconds), "p50_ms": float(np.percentile(milliseconds, 50)),
            "p99_ms": float(np.percentile(milliseconds, 99)), "seconds": engine.seconds,
            "records_per_second": books.received / engine.seconds}

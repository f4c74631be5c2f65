"""Assembling the real-time phase from the project's outputs, and what the `replay` stage writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atelier.core import attributes, paths
from atelier.core import config as config_module
from atelier.core.io import write_json, write_parquet
from atelier.data import validate
from atelier.data.features import FeatureSettings, before_cutoff, customer_state
from atelier.model.champion import Champion, try_load_champion
from atelier.replay import abtest
from atelier.replay.engine import StreamProcessor
from atelier.replay.loop import ClosedLoop, Personalizer, ReplaySettings
from atelier.replay.policy import Assortment
from atelier.replay.state import StreamingState
from atelier.replay.world import ReplayWorld

#: The plot files the stage declares, and their columns.
PLOT_COLUMNS = {
    "uplift_sensitivity": ["strength", "visits", "control", "treatment", "relative_uplift", "ci_low", "ci_high"],
    "latency": ["kind", "milliseconds"],
    "latency_histogram": ["bin", "low_ms", "high_ms", "count"],
    "drift": ["day", "score", "recency_days", "sessions_90d", "engagement_score"],
}
#: Streamed features that may differ from the batch ones in the last bits, and by how much at most:
#: the decayed engagement sum (its terms are decayed and added in a different order; see atelier.replay.state).
#: Every other feature must be identical.
DECAYED_FEATURES = ("engagement_score",)
PARITY_TOLERANCE = 1e-9


@dataclass
class ReplayContext:
    """Everything the replay reads, loaded once: data, champion, segments, settings."""

    root: Path
    params: dict[str, Any]
    settings: ReplaySettings
    features: FeatureSettings
    horizon_days: int
    cutoff: pd.Timestamp
    tables: dict[str, pd.DataFrame]
    scorer: Champion | None
    model_problem: str | None
    segments: dict[Any, str]
    assortment: Assortment
    closed: bool
    world: ReplayWorld | None = field(default=None)

    @property
    def past(self) -> dict[str, pd.DataFrame]:
        """The tables as known at the cutoff (the replay starts from there)."""
        return before_cutoff(self.tables, self.cutoff)


def load_context(root: Path, params: dict[str, Any]) -> ReplayContext:
    """Read the validated data, the champion (by alias), the segments and the settings."""
    root = Path(root)
    get = config_module.get
    cutoff = max(pd.Timestamp(c) for c in get(params, "timeline.cutoffs"))
    tables = validate.load_validated(root)
    scorer, problem = try_load_champion(root / paths.REGISTRY_DIR)
    segments_path = root / paths.SEGMENTS_FILE
    segments = (pd.read_parquet(segments_path).set_index("customer_id")["segment_name"].to_dict() if segments_path.exists() else {})
    products = tables.get("products")
    if products is None:
        products = pd.DataFrame({"product_id": pd.Series(dtype="int64"), "category": pd.Series(dtype="string")})
    closed = get(params, "data.source") == "simulate" and (root / paths.TRUTH_CUSTOMERS).exists()
    context = ReplayContext(
        root=root, params=params, settings=ReplaySettings.from_params(get(params, "replay"), get(params, "seed")),
        features=FeatureSettings.from_params(get(params, "prep")), horizon_days=int(get(params, "timeline.horizon_days")),
        cutoff=cutoff, tables=tables, scorer=scorer, model_problem=problem, segments=segments,
        assortment=Assortment.from_tables(products, before_cutoff(tables, cutoff).get("events")), closed=closed,
    )
    if closed:
        context.world = ReplayWorld.build(params, root, cutoff, tables["customers"], id_floor=id_floor(tables))
    return context


def id_floor(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """The largest session and order ids in the data (replayed ids start above them)."""
    sessions = [tables["events"]["session_id"].max()] if "events" in tables else []
    if "session_id" in tables["orders"]:
        sessions.append(tables["orders"]["session_id"].max())
    return {"session": int(np.nanmax([s for s in sessions if pd.notna(s)] or [0])),
            "order": int(pd.to_numeric(tables["orders"]["order_id"], errors="coerce").max())}


def initial_state(context: ReplayContext) -> StreamingState:
    """The profile store at the cutoff, from the batch state (the same definitions as prep)."""
    past = context.past
    return StreamingState.from_batch(customer_state(past, context.cutoff, context.features), context.cutoff, context.features,
                                     products=context.tables.get("products"), customers=context.tables.get("customers"))


def personalizer(context: ReplayContext, state: StreamingState, scorer: Champion | None | bool = True) -> Personalizer:
    """The decision maker on `state` (scorer=True: the champion; None: as if the model failed to load)."""
    return Personalizer(state=state, scorer=context.scorer if scorer is True else scorer, segments=context.segments,
                        assortment=context.assortment, policy=context.settings.policy, seed=context.settings.seed,
                        treatment_share=context.settings.treatment_share)


def closed_loop(context: ReplayContext, strength: float | None = None) -> ClosedLoop:
    """A fresh closed loop from the cutoff (its own profile store and processor)."""
    if context.world is None:
        raise ValueError("the closed loop needs the simulated world (data.source: simulate)")
    state = initial_state(context)
    return ClosedLoop(world=context.world, personalizer=personalizer(context, state),
                      processor=StreamProcessor(state, context.settings.engine), settings=context.settings,
                      strength=context.settings.response_strength if strength is None else float(strength))


def ab_result(visits: pd.DataFrame, seed: int, n_boot: int = 1000) -> dict[str, Any]:
    """Conversion, revenue per visit and order value per arm, with customer-clustered bootstrap uplifts."""
    sessions = visits.assign(converted=visits["purchased"].astype(bool))[["customer_id", "arm", "converted", "revenue"]]
    summary = abtest.arm_summary(sessions)
    return {
        "arms": summary.to_dict(orient="index"),
        "conversion": abtest.uplift(sessions, metric="conversion_rate", n_boot=n_boot, seed=seed),
        "revenue_per_session": abtest.uplift(sessions, metric="revenue_per_session", n_boot=n_boot, seed=seed),
        "average_order_value": abtest.uplift(sessions, metric="average_order_value", n_boot=n_boot, seed=seed),
    }


def write_attributes(root: Path, decisions: pd.DataFrame, as_of: pd.Timestamp) -> Path:
    """The user-attribute database after the replay: the model stage's copy plus each customer's live profile."""
    columns = ["customer_id", "ts", "propensity", "banner", "experience", "arm"]
    latest = (decisions.sort_values("ts", kind="stable").groupby("customer_id").last().reset_index()
              if len(decisions) else pd.DataFrame(columns=columns))
    return attributes.write_live_profiles(Path(root) / paths.PROPENSITY_ATTRIBUTES, Path(root) / paths.REPLAY_ATTRIBUTES,
                                          latest, as_of)


def decisions_for_storage(decisions: pd.DataFrame) -> pd.DataFrame:
    """Decisions with products as plain lists (Parquet-friendly)."""
    if "products" not in decisions:
        return decisions
    return decisions.assign(products=decisions["products"].map(lambda p: [int(x) for x in p]))


def write_outputs(root: Path, frames: dict[str, pd.DataFrame], metrics: dict[str, Any], plots: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Decisions, visits, explanations, dead letters (Parquet), plot data (CSV) and metrics/replay.json."""
    root = Path(root)
    for name, frame in frames.items():
        write_parquet(frame.reset_index(drop=True), root / paths.REPLAY_DIR / f"{name}.parquet")
    (root / paths.REPLAY_PLOTS).mkdir(parents=True, exist_ok=True)
    for name, columns in PLOT_COLUMNS.items():  # every declared plot file exists, empty when there is nothing to plot
        frame = plots.get(name, pd.DataFrame(columns=columns))
        frame.to_csv(root / paths.REPLAY_PLOTS / f"{name}.csv", index=False, float_format="%.6f")
    registry = root / paths.REPLAY_REGISTRY_DIR
    if not registry.exists() or not any(registry.iterdir()):
        registry.mkdir(parents=True, exist_ok=True)
        (registry / "NOT_RETRAINED.md").write_text("The replay did not retrain (no drift trigger, or open loop): "
                                                   "see metrics/replay.json, `retraining`.\n", encoding="utf-8")
    write_json(metrics, root / paths.REPLAY_METRICS)
    return metrics


# --------------------------------------------------------------------------------------------
# Checks and analyses the report runs on a finished loop
# --------------------------------------------------------------------------------------------
def with_replay(context: ReplayContext, events: pd.DataFrame, orders: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The data before the cutoff plus what the replay produced (the world's own records, before any network noise)."""
    past = context.past
    tables = dict(past)
    replay_events = events[[c for c in past["events"].columns if c in events]].astype({"event_type": "category", "device": "category"})
    tables["events"] = pd.concat([past["events"].astype({"event_type": "category", "device": "category"}), replay_events],
                                 ignore_index=True)
    tables["orders"] = pd.concat([past["orders"], orders[[c for c in past["orders"].columns if c in orders]]], ignore_index=True)
    tables["customers"] = context.tables["customers"]
    return tables


def parity_check(context: ReplayContext, tables: dict[str, pd.DataFrame], until: pd.Timestamp) -> pd.DataFrame:
    """Stream every replayed record before `until` into a fresh profile store; compare with the batch features at `until`.

    Returns, per feature, the largest absolute difference and whether every value is identical.
    """
    from atelier.data.features import build_features

    state = initial_state(context)
    after = {name: frame for name, frame in tables.items()}
    events = after["events"][(after["events"]["ts"] >= context.cutoff) & (after["events"]["ts"] < until)]
    orders = after["orders"][(after["orders"]["ordered_at"] >= context.cutoff) & (after["orders"]["ordered_at"] < until)]
    for start in range(0, len(events), 20_000):  # in chunks, as a stream would deliver them
        state.apply(events.iloc[start: start + 20_000], None)
    state.apply(None, orders)
    batch = build_features(tables, until, context.features)
    streamed = state.features(batch.index, until)
    rows = []
    for column in batch.columns:
        left, right = batch[column], streamed[column]
        if pd.api.types.is_numeric_dtype(left):
            difference = np.nanmax(np.abs(left.to_numpy(float) - right.to_numpy(float))) if len(left) else 0.0
            same = bool(np.array_equal(left.to_numpy(float), right.to_numpy(float), equal_nan=True))
        else:
            difference, same = np.nan, bool(left.astype(object).equals(right.astype(object)))
        rows.append({"feature": column, "max_abs_difference": difference, "identical": same})
    return pd.DataFrame(rows).set_index("feature")


def parity_summary(parity: pd.DataFrame) -> dict[str, Any]:
    """The verdict on a `parity_check` table, as the report and metrics state it.

    features, identical (how many), differing (names of the non-identical features), the largest
    absolute difference as text, unrounded (Python's shortest round-trip form: metrics round floats to
    6 places, which would turn 5.7e-14 into 0.0), and `holds`: only DECAYED_FEATURES differ, each by less than PARITY_TOLERANCE.
    """
    differing = [str(f) for f in parity.index[~parity["identical"].to_numpy(bool)]]
    difference = parity["max_abs_difference"].to_numpy(float)
    largest = float(np.nanmax(difference)) if np.isfinite(difference).any() else 0.0
    within = all(f in DECAYED_FEATURES and parity.loc[f, "max_abs_difference"] < PARITY_TOLERANCE for f in differing)
    return {"features": int(len(parity)), "identical": int(len(parity) - len(differing)), "differing": differing,
            "max_abs_difference": repr(largest), "tolerance": f"{PARITY_TOLERANCE:.0e}", "holds": bool(within)}


#: The drift reference keeps training rows of customers who visited within this many days after their cutoff.
REFERENCE_VISIT_DAYS = 7


def reference_profiles(context: ReplayContext) -> pd.DataFrame:
    """The champion's training data, restricted to the kind of profiles the live model scores, with scores.

    Live, the model scores visitors; a training snapshot holds every known customer, dormant ones
    included. Comparing the two would flag that difference as drift from day one, so the reference
    keeps the training rows of customers who visited within REFERENCE_VISIT_DAYS after the cutoff.
    """
    snapshots = pd.read_parquet(context.root / paths.SNAPSHOTS_FILE)
    train = snapshots[snapshots["cutoff"] < context.cutoff]
    events = context.tables.get("events")
    if events is not None and len(events):
        keep = np.zeros(len(train), dtype=bool)
        for cutoff in train["cutoff"].unique():
            soon = events[(events["ts"] >= cutoff) & (events["ts"] < cutoff + pd.Timedelta(days=REFERENCE_VISIT_DAYS))]
            keep |= (train["cutoff"] == cutoff).to_numpy() & train.index.isin(soon["customer_id"].unique())
        train = train[keep]
    return train.assign(score=context.scorer.score_frame(train) if context.scorer is not None else np.nan)


def drift_table(context: ReplayContext, decisions: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
    """PSI per day of the monitored columns (features at decision time, and the score) against training."""
    from atelier.replay.monitor import drift_by_period

    columns = [c for c in context.settings.drift["columns"] if c == "score" or c in profiles]
    current = profiles.assign(score=decisions["propensity"].to_numpy(), day=pd.to_datetime(decisions["ts"]).dt.floor("D").to_numpy())
    return drift_by_period(reference_profiles(context), current, columns, "day")


def retraining_cutoffs(retrain_day: pd.Timestamp, horizon_days: int, count: int) -> list[pd.Timestamp]:
    """The `count` most recent monthly snapshot dates whose labels are complete on `retrain_day`, oldest first.

    A snapshot at c is labelled by the orders in [c, c + horizon_days), so its labels are known on
    the retrain day only if c + horizon_days <= retrain_day. The newest such snapshot is
    retrain_day - horizon_days; the others are a month apart before it, like the project's cutoffs.
    """
    if int(count) != count or count < 1:
        raise ValueError(f"count must be a whole number of snapshots, 1 or more, got {count}")
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be 1 or more, got {horizon_days}")
    newest = pd.Timestamp(retrain_day).normalize() - pd.Timedelta(days=int(horizon_days))
    return [newest - pd.DateOffset(months=k) for k in range(int(count) - 1, -1, -1)]


def retrain(context: ReplayContext, tables: dict[str, pd.DataFrame], trigger: pd.Timestamp) -> dict[str, Any]:
    """Drift-triggered retraining on recent data, through a copy of the registry and its promotion rule.

    The retrain day is the trigger's day, or, if that is earlier, the first day on which a snapshot
    after the replay's start has complete labels (cutoff + horizon_days). The challenger is the
    champion's recipe (family, hyperparameters, features) refitted on as many monthly snapshots as
    the champion was trained on, the most recent ones whose labels are complete on the retrain day
    (`retraining_cutoffs`). Both models are then compared out of time on the snapshot at the
    retraining day, whose labels are complete only `horizon_days` later: an offline comparison.
    The challenger is registered in models/replay_registry/ (a copy of the project's registry,
    which is left untouched) and promoted there only if it wins by the promotion margin. The live
    loop is not changed: it served the champion it started with throughout.
    """
    from sklearn.metrics import roc_auc_score

    from atelier.data import prep
    from atelier.model import propensity
    from atelier.model.registry import Registry

    cutoffs = sorted({pd.Timestamp(c) for c in config_module.get(context.params, "timeline.cutoffs")})
    retrain_day = max(pd.Timestamp(trigger).normalize(), context.cutoff + pd.Timedelta(days=context.horizon_days))
    champion = context.scorer
    registry_source = Registry(context.root / paths.REGISTRY_DIR)
    metadata = registry_source.metadata(champion.version)
    count = len(metadata.get("train_cutoffs") or cutoffs[:-1]) or 1  # as many snapshots as the champion trained on
    window = retraining_cutoffs(retrain_day, context.horizon_days, count)
    snapshots = prep.build_snapshots(tables, window + [retrain_day], context.horizon_days, context.features)
    train, evaluation = snapshots[snapshots["cutoff"] < retrain_day], snapshots[snapshots["cutoff"] == retrain_day]
    if evaluation["label"].isna().any():
        return {"retrained": False, "trigger": str(pd.Timestamp(trigger).date()), "retrain_day": str(retrain_day.date()),
                "reason": f"labels for {retrain_day.date()} are not complete within the replay"}
    numeric, categorical = propensity.features_of(train, list(metadata["features"]))
    settings = propensity.ModelSettings.from_params(config_module.get(context.params, "model"), config_module.get(context.params, "seed"))
    challenger = propensity.fit(propensity.tuned(metadata["name"], metadata["params"], numeric, categorical, settings),
                                train, numeric, categorical)
    registry = registry_source.copy_to(context.root / paths.REPLAY_REGISTRY_DIR)
    y = evaluation["label"].astype(int).to_numpy()
    X = evaluation[numeric + categorical]
    out_of_time = lambda model: float(roc_auc_score(y, model.predict_proba(propensity.transform.model_frame(X))[:, 1]))  # noqa: E731
    version = registry.register(challenger, name=metadata["name"], metadata={
        "params": metadata["params"], "features": numeric + categorical, "trigger": str(pd.Timestamp(trigger).date()),
        "train_cutoffs": [c.date().isoformat() for c in window], "test_cutoff": retrain_day.date().isoformat(),
        "metrics": {"out_of_time_auc": out_of_time(challenger)}})
    decision = registry.promote(version, out_of_time, min_delta=settings.promotion_min_delta)
    active = (evaluation["recency_days"] <= settings.active_recency_days).to_numpy()
    def auc(model, mask):  # noqa: E306
        return float(roc_auc_score(y[mask], model.predict_proba(propensity.transform.model_frame(X[mask]))[:, 1]))
    everyone = np.ones(len(y), dtype=bool)
    return {
        "retrained": True, "trigger": str(pd.Timestamp(trigger).date()), "retrain_day": str(retrain_day.date()),
        "train_cutoffs": [str(c.date()) for c in window],
        "labels_complete_by": str((window[-1] + pd.Timedelta(days=context.horizon_days)).date()),
        "evaluation_customers": int(len(y)),
        "evaluation_labels_complete_by": str((retrain_day + pd.Timedelta(days=context.horizon_days)).date()),
        "champion": {"version": champion.version, "auc": auc(champion.pipeline, everyone), "active_auc": auc(champion.pipeline, active)},
        "challenger": {"version": version, "auc": auc(challenger, everyone), "active_auc": auc(challenger, active)},
        "min_delta": float(settings.promotion_min_delta),
        "promoted": bool(decision.promoted), "reason": decision.reason,
        "served_live": champion.version,
    }


def explain_decisions(context: ReplayContext, decisions: pd.DataFrame, profiles: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LIME on the champion for a seeded sample of scored decisions: why this customer got this score (and banner).

    Returns the explanation rows (session_id, feature, condition, value, weight) and one line per
    explained decision (session_id, the readable sentence, latency in milliseconds).
    """
    from atelier.model import explain

    scored = decisions.index[decisions["propensity"].notna().to_numpy()]
    if context.scorer is None or len(scored) == 0 or n <= 0:
        return pd.DataFrame(), pd.DataFrame()
    features = context.scorer.features
    reference = reference_profiles(context)[features]
    background = reference.sample(n=min(2000, len(reference)), random_state=context.settings.seed)

    def predict_proba(frame: pd.DataFrame) -> np.ndarray:
        score = context.scorer.score_frame(frame)
        return np.column_stack([1 - score, score])

    explainer = explain.TabularExplainer(background, [f for f in features if f in context.scorer.numeric],
                                         [f for f in features if f not in context.scorer.numeric], predict_proba, num_samples=2000)
    rng = np.random.default_rng(context.settings.seed)
    chosen = np.sort(rng.choice(len(scored), size=min(n, len(scored)), replace=False))
    rows, lines = [], []
    for offset, position in enumerate(scored[chosen]):
        decision = decisions.loc[position]
        table = explainer.explain(profiles.loc[position, features], seed=context.settings.seed + offset, num_features=5)
        # Values mix numbers and categories (e.g. gender): stored as text, so the Parquet column has one type.
        rows.append(table.assign(session_id=decision["session_id"], value=table["value"].map(_value_text).astype("string")))
        lines.append({"session_id": decision["session_id"], "banner": decision["banner"], "segment": decision["segment"],
                      "why": f"Banner '{decision['banner']}' (segment {decision['segment']}). " + explain.readable(table, top=5),
                      "milliseconds": table.attrs["seconds"] * 1000})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(lines)


def _value_text(value: Any) -> str | None:
    """A feature value as shown in an explanation: numbers rounded for humans, categories as they are."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)


def per_event_latency(context: ReplayContext, records: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Replay recorded records one at a time: time from a session's first event arriving to its decision.

    Each record is admitted on its own (checks, duplicate, lateness); when it starts a session the
    personalizer decides on the profile as of that event (the fast path), and only then is the
    record applied to the profile. Returns one row per decision with the latency in milliseconds.
    """
    import time

    from atelier.data.features import microseconds

    state = initial_state(context)
    processor = StreamProcessor(state, context.settings.engine)
    deciding = personalizer(context, state)
    started, latencies = set(), []
    for record in records.head(limit).to_dict(orient="records"):
        began = time.perf_counter()
        verdict = processor.admit(record)
        if verdict == "clean" and record["record"] == "event" and record["session_id"] not in started:
            deciding.decide_one(record["customer_id"], record["session_id"], int(microseconds(pd.Timestamp(record["ts"]))))
            latencies.append({"session_id": record["session_id"], "milliseconds": (time.perf_counter() - began) * 1000})
            started.add(record["session_id"])
        if verdict == "clean":
            processor.apply_one(record)
    return pd.DataFrame(latencies)


def sensitivity(context: ReplayContext, strengths: tuple[float, ...], days: int, n_boot: int = 300) -> pd.DataFrame:
    """Conversion uplift (with its interval) for each assumed response strength, over the first `days` days."""
    rows = []
    for strength in strengths:
        loop = closed_loop(context, strength)
        loop.run(until=int(days * 24 * 60 / context.settings.window_minutes), progress=False)
        visits = loop.frames("visits")
        result = ab_result(visits, context.settings.seed, n_boot=n_boot)["conversion"]
        rows.append({"strength": strength, "visits": len(visits), "control": result["control"], "treatment": result["treatment"],
                     "relative_uplift": result["relative_uplift"], "ci_low": result["ci_low"], "ci_high": result["ci_high"]})
    return pd.DataFrame(rows)


def open_loop(context: ReplayContext) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """User data: replay their own events and orders after the cutoff; log decisions (nothing is shown, no A/B)."""
    from atelier.replay.engine import FrameSource, MemorySink, MicroBatchEngine, to_records

    state = initial_state(context)
    deciding = personalizer(context, state)
    events = context.tables.get("events")
    after_events = events[events["ts"] >= context.cutoff] if events is not None else None
    after_orders = context.tables["orders"][context.tables["orders"]["ordered_at"] >= context.cutoff]
    records = to_records(after_events, after_orders).sort_values("ts", kind="stable")
    sink = MemorySink()
    engine = MicroBatchEngine(StreamProcessor(state, context.settings.engine), decide=lambda starts, as_of: deciding.decide(starts, as_of))
    counters = engine.run(FrameSource(records, context.settings.micro_batch_events), sink)
    return sink.frames("decisions"), sink.frames("dead_letters"), counters


def micro_batch_throughput(context: ReplayContext, records: pd.DataFrame) -> dict[str, float]:
    """Replay a recorded stream (in arrival order) through the micro-batch engine, deciding every session.

    A fresh profile store from the cutoff; batches of `micro_batch_events`; no LIME. Returns the
    records, decisions, processing seconds and records per second.
    """
    import time

    from atelier.replay.engine import FrameSource, MemorySink, MicroBatchEngine

    state = initial_state(context)
    deciding = personalizer(context, state)
    engine = MicroBatchEngine(StreamProcessor(state, context.settings.engine),
                              decide=lambda starts, as_of: deciding.decide(starts, as_of))
    sink = MemorySink()
    began = time.perf_counter()
    counters = engine.run(FrameSource(records, context.settings.micro_batch_events), sink)
    seconds = time.perf_counter() - began
    return {"records": counters.received, "decisions": len(sink.frames("decisions")), "seconds": seconds,
            "records_per_second": counters.received / seconds, "balanced": counters.balanced()}

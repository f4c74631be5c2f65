"""How fast the decision path is: micro-batch throughput and per-event latency on a recorded stream.

Both replay the closed loop's own records as the network delivered them (delays, duplicates,
corruption), through a fresh profile store from the cutoff. Timings depend on the machine: they
go to the report and the plot files, never to the metrics (which must repeat exactly).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.parallel import start
from atelier.data.features import microseconds
from atelier.data.simulate.world import stream
from atelier.replay.context import ReplayContext
from atelier.replay.engine import FrameSource, MemorySink, MicroBatchEngine, StreamProcessor, to_records
from atelier.replay.monitor import latency_histogram, latency_summary
from atelier.replay.world import arrivals

#: Random streams of the recorded network noise (apart from the closed loop's own).
THROUGHPUT_STREAM, LATENCY_STREAM = 98, 99
#: The per-event target: a session's first event arriving -> its decision, at the 99th percentile.
TARGET_MS = 2.0
#: The per-event latency histogram: bins of this width up to the target, and one beyond.
BIN_MS = 0.1
#: Records of the first day replayed one at a time for the per-event latency (about 400 decisions at default size).
LATENCY_RECORDS = 3000


def network_stream(context: ReplayContext, events: pd.DataFrame, orders: pd.DataFrame, key: int,
                   until: pd.Timestamp | None = None) -> pd.DataFrame:
    """The records (events and orders, only those before `until` if given) as the network delivers them, in arrival
    order, with noise drawn from stream `key` of the seed."""
    if until is not None:
        events, orders = events[events["ts"] < until], orders[orders["ordered_at"] < until]
    records = to_records(events, orders)
    return arrivals(records, context.settings.noise, stream(context.settings.seed, key)).drop(columns="arrival")


def micro_batch_throughput(context: ReplayContext, records: pd.DataFrame) -> dict[str, Any]:
    """Replay a recorded stream (in arrival order) through the micro-batch engine, deciding every session.

    A fresh profile store from the cutoff; batches of `micro_batch_events`; no LIME. Returns the
    records, decisions, processing seconds, records per second and whether the books balance.
    """
    state = context.initial_state()
    deciding = context.personalizer(state)
    engine = MicroBatchEngine(StreamProcessor(state, context.settings.engine), decide=deciding.decide)
    sink = MemorySink()
    began = time.perf_counter()
    counters = engine.run(FrameSource(records, context.settings.micro_batch_events), sink)
    seconds = time.perf_counter() - began
    return {"records": counters.received, "decisions": len(sink.frames("decisions")), "seconds": seconds,
            "records_per_second": counters.received / seconds, "balanced": counters.balanced()}


def per_event_latency(context: ReplayContext, records: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """Replay recorded records one at a time: time from a session's first event arriving to its decision.

    Each record is admitted on its own (checks, duplicate, lateness); when it starts a session the
    personalizer decides on the profile as of that event (the fast path), and only then is the
    record applied to the profile. Returns one row per decision: session_id, milliseconds.
    """
    state = context.initial_state()
    processor = StreamProcessor(state, context.settings.engine)
    deciding = context.personalizer(state)
    started, latencies = set(), []
    for record in records.head(len(records) if limit is None else limit).to_dict(orient="records"):
        began = time.perf_counter()
        verdict = processor.admit(record)
        if verdict == "clean" and record["record"] == "event" and record["session_id"] not in started:
            deciding.decide_one(record["customer_id"], record["session_id"],
                                int(microseconds(pd.Timestamp(record["ts"]))))
            latencies.append({"session_id": record["session_id"], "milliseconds": (time.perf_counter() - began) * 1000})
            started.add(record["session_id"])
        if verdict == "clean":
            processor.apply_one(record)
    return pd.DataFrame(latencies, columns=["session_id", "milliseconds"])


def latency_target(milliseconds: np.ndarray, target_ms: float = TARGET_MS) -> dict[str, Any]:
    """Whether per-event latencies (in milliseconds) meet the target at the 99th percentile.

    p50, p99, within_target (share of decisions faster than the target), target_ms and met
    (p99 at or below the target); with no latency at all, the shares are NaN and met is None.
    """
    values = np.asarray(milliseconds, dtype=float)
    if len(values) == 0:
        return {"p50": np.nan, "p99": np.nan, "within_target": np.nan, "target_ms": float(target_ms), "met": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "within_target": float(np.mean(values < target_ms)),
            "target_ms": float(target_ms), "met": bool(p99 <= target_ms)}


def latency_bins(milliseconds: np.ndarray, target_ms: float = TARGET_MS) -> pd.DataFrame:
    """Per-event latencies in BIN_MS bins up to the target and one beyond (plots/replay/latency_histogram.csv)."""
    return latency_histogram(np.asarray(milliseconds, dtype=float), width_ms=BIN_MS, limit_ms=target_ms)


def latency_rows(batch_seconds: list[float], per_event: pd.DataFrame) -> pd.DataFrame:
    """Every timing as a row (kind, milliseconds): the closed loop's micro-batches, then the per-event decisions."""
    rows = ([{"kind": "micro_batch", "milliseconds": s * 1000} for s in batch_seconds]
            + [{"kind": "per_event_decision", "milliseconds": m} for m in per_event["milliseconds"]])
    return pd.DataFrame(rows, columns=["kind", "milliseconds"])


def measure(context: ReplayContext, events: pd.DataFrame, orders: pd.DataFrame,
            batch_seconds: list[float]) -> dict[str, Any]:
    """The replay's speed: micro-batch throughput on the first `throughput_batches` micro-batches of its recorded
    stream (a steady rate without replaying the whole period a second time), per-event latency on the first
    `LATENCY_RECORDS` records of its first day (a few hundred decisions: enough for a p99, a fraction of the time).

    throughput (`micro_batch_throughput`, with `recorded`: the records of the whole recorded stream), batch
    (`monitor.latency_summary` of the closed loop's `batch_seconds`), target (`latency_target` of the per-event
    latencies), rows (`latency_rows`) and bins (`latency_bins`).
    """
    recorded = network_stream(context, events, orders, THROUGHPUT_STREAM)
    measured = recorded.head(context.settings.throughput_batches * context.settings.micro_batch_events)
    throughput = {**micro_batch_throughput(context, measured), "recorded": len(recorded)}
    first_day = network_stream(context, events, orders, LATENCY_STREAM, until=context.cutoff + pd.Timedelta(days=1))
    per_event = per_event_latency(context, first_day, limit=LATENCY_RECORDS)
    milliseconds = per_event["milliseconds"].to_numpy(float)
    return {"throughput": throughput, "batch": latency_summary(np.asarray(batch_seconds, dtype=float)),
            "target": latency_target(milliseconds), "rows": latency_rows(batch_seconds, per_event),
            "bins": latency_bins(milliseconds)}


def start_measure(context: ReplayContext, events: pd.DataFrame, orders: pd.DataFrame,
                  batch_seconds: list[float]) -> Future[dict[str, Any]]:
    """`measure` in a worker process of its own while the caller goes on (the report checks parity meanwhile):
    `.result()` waits for it and returns what `measure` returns (or raises its error)."""
    return start(measure, context.for_worker(), events, orders, list(batch_seconds))

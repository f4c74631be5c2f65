"""The replay's stream on Spark Structured Streaming: the `Engine` interface of `atelier.replay.engine`.

The recorded stream (arrival order, duplicates, late and malformed records included) is written as
one Parquet file per micro-batch and read by Spark's file source, one file per trigger:

1. `mapInPandas` marks malformed records with the embedded reasons (`engine.malformed_reasons`) and
   gives the others an event time;
2. `withWatermark(event time, watermark delay + allowed lateness)`: Spark's watermark is then exactly
   the embedded lateness floor (newest applied time minus both delays); the event-time column is
   dropped before the state operator, so Spark drops nothing silently — every late record reaches the
   processor, is counted and dead-lettered with its reason. A stream-static left join then brings each
   record its customer's profile at the cutoff (read only the first time the customer shows up);
3. `groupBy(bucket).transformWithStateInPandas` (RocksDB state store): customers are hashed into buckets
   (16 per shuffle partition) and each bucket's rows go through one embedded `StreamProcessor.classify`
   and `commit`, so the books, dead letters and profiles follow the same rules. The state is a map keyed
   by customer id holding one value per customer: the live profile (`StreamingState.profiles`, JSON),
   the record ids seen within the watermark (de-duplication; ids older than the watermark are dropped
   when the value is written back) and the sessions already decided. Grouping by single customer gave
   the same results at ~15 ms of pandas overhead per customer and micro-batch; a bucket pays it once and
   then one state read and one write per customer (each a round trip between Python and the JVM);
4. `foreachBatch` (the sink): the sessions that started in the batch are decided on the driver with
   the champion, on the profiles as they stood before the batch (like the embedded engine), and
   decisions, dead letters, profiles and the books are written to Parquet per batch id (idempotent
   when a batch is replayed after a restart). The query's checkpoint makes a stopped query continue.

Spark's file source and writers need files, so this module does its own I/O under `workdir`
(input files, checkpoint, per-batch outputs) — the one exception to "only stage.py does I/O".
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atelier.data.spark import to_spark_pandas
from atelier.replay.engine import (
    Counters,
    EngineSettings,
    Sink,
    Source,
    StreamProcessor,
    malformed_reasons,
    session_starts,
)
from atelier.replay.state import StreamingState

#: Columns the engine adds (PySpark's Arrow transfer renames columns that start with an underscore).
ARRIVAL, EVENT_TIME, REASON = "arrival_number", "event_time_checked", "malformed_reason"
PROFILE = "initial_profile"
#: The grouping key: a bucket of customers (customer id modulo BUCKETS_PER_PARTITION x shuffle partitions), or
#: NO_CUSTOMER for a record without one (dead-lettered, no state).
GROUP, NO_CUSTOMER, BUCKETS_PER_PARTITION = "group_key", -1, 16
MICROSECONDS = 1_000_000
OUTPUT_SCHEMA = ("kind string, arrival long, customer_id long, session_id long, ts long, reason string, "
                 "profile string, received long, applied long, duplicates long, late long, malformed long, "
                 "newest long")
COUNT_FIELDS = ("received", "applied", "duplicates", "late", "malformed")
KINDS = ("decisions", "dead_letters", "profiles", "books")
Decide = Callable[[pd.DataFrame, pd.Timestamp], pd.DataFrame | None]


def _row(kind: str, **values: Any) -> dict[str, Any]:
    return {"kind": kind, **values}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = [part.split()[0] for part in OUTPUT_SCHEMA.split(", ")]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("kind", "reason", "profile"):
        frame[column] = frame[column].astype(object)
    for column in columns:
        if column not in ("kind", "reason", "profile"):
            frame[column] = frame[column].astype("Int64")
    return frame


def integer_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding whole numbers and gaps (a corrupted record lost its customer id) as nullable integers,
    so Spark keys customers by a long (and a missing id by null), not by a double."""
    out = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_object_dtype(values.dtype):
            present = values.dropna()
            if len(present) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
                out[column] = values.astype("Int64")
    return frame.assign(**out) if out else frame


def stream_template(records: pd.DataFrame) -> pd.DataFrame:
    """The recorded stream's columns and dtypes (empty), as the processor rebuilds each customer's rows."""
    return records.head(0)


def restore(rows: pd.DataFrame, template: pd.DataFrame) -> pd.DataFrame:
    """Spark's rows back in the recorded stream's dtypes (ids with a missing value stay nullable/object)."""
    out = {}
    for column, dtype in template.dtypes.items():
        values = rows[column]
        if isinstance(dtype, pd.CategoricalDtype):
            out[column] = values.astype("category")
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            out[column] = pd.to_datetime(values).astype(dtype)
        elif pd.api.types.is_object_dtype(dtype):
            out[column] = pd.Series([None if pd.isna(v) else (int(v) if isinstance(v, (int, np.integer, float))
                                     and float(v).is_integer() else v) for v in values], dtype=object)
        elif pd.api.types.is_integer_dtype(dtype) and values.isna().any():
            out[column] = values.astype("Int64")
        else:
            out[column] = values.astype(dtype)
    return pd.DataFrame(out).reset_index(drop=True)


def mark_malformed(template: pd.DataFrame) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """`mapInPandas`: the embedded malformed reasons, and an event time only for well-formed records."""
    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            records = restore(frame, template)
            reasons = malformed_reasons(records)
            well = np.equal(reasons, None)
            yield frame.assign(**{REASON: pd.Series(reasons, dtype=object),
                                  EVENT_TIME: pd.to_datetime(frame["ts"]).where(pd.Series(well))})
    return run


def _stateful_processor_class() -> type:
    from pyspark.sql.streaming import StatefulProcessor

    class ProfileProcessor(StatefulProcessor):
        """Per bucket of customers: classify (duplicates, late, malformed), decide which sessions start, apply, and keep
        each customer's state (profile, recent record ids, sessions started) in a map keyed by customer id."""

        def __init__(self, settings: EngineSettings, template: pd.DataFrame, blank: StreamingState) -> None:
            self.settings, self.template, self.blank = settings, template, blank

        def init(self, handle: Any) -> None:
            # One value per customer, read once and written once per micro-batch (each state call is a round trip to
            # the JVM); the customers of a bucket are processed together, so pandas' fixed costs are paid per bucket.
            self.customers = handle.getMapState("customers", "customer_id long",
                                                "profile string, seen string, started string")
            self.lateness = int((self.settings.watermark_delay_seconds + self.settings.allowed_lateness_seconds)
                                * MICROSECONDS)

        def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
            frames = list(rows)
            batch = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            batch = batch.sort_values(ARRIVAL, kind="stable").reset_index(drop=True)
            keyed = not (pd.isna(key[0]) or int(key[0]) == NO_CUSTOMER)
            ids = batch["customer_id"].dropna().astype("int64") if keyed else pd.Series(dtype="int64")
            initial = batch.loc[ids.index, PROFILE].groupby(ids.to_numpy()).first() if len(ids) else pd.Series()
            before: dict[int, str | None] = {}
            seen: dict[int, dict[int, int]] = {}
            started: dict[int, set[int]] = {}
            for customer in sorted(set(ids.tolist())):
                stored = self.customers.getValue((customer,))
                if stored is not None:
                    before[customer] = stored[0]
                    seen[customer] = {int(k): int(t) for k, t in json.loads(stored[1]).items()}
                    started[customer] = set(json.loads(stored[2]))
                else:  # first time in the stream: the profile store at the cutoff (joined to its records), if any
                    profile = initial.get(customer)
                    before[customer] = None if profile is None or pd.isna(profile) else str(profile)
                    seen[customer], started[customer] = {}, set()
            records = restore(batch, self.template)
            records[ARRIVAL] = batch[ARRIVAL].to_numpy()
            watermark = timerValues.getCurrentWatermarkInMs()
            state = self.blank
            state.reset()
            newest = None if watermark <= 0 else watermark * 1000 + self.lateness
            known = {c: json.loads(p) for c, p in before.items() if p is not None}
            if known or newest is not None:
                state.load_profiles(known, newest)
            processor = StreamProcessor(state, self.settings)
            if newest is not None:
                processor.newest = newest
            processor.seen = {k: t for records_seen in seen.values() for k, t in records_seen.items()}
            classified = processor.classify(records)
            out: list[dict[str, Any]] = []
            for arrived, reason in zip(classified.dead_letters[ARRIVAL].tolist(),
                                       classified.dead_letters["reason"].tolist()):
                out.append(_row("dead", arrival=int(arrived), reason=str(reason)))
            clean = classified.clean
            if keyed and "session_id" in clean:
                for start in session_starts(clean, set().union(*started.values())).itertuples(index=False):
                    customer = int(start.customer_id)
                    begun = int(pd.Timestamp(start.ts).value // 1000)
                    out.append(_row("visit", arrival=int(getattr(start, ARRIVAL)), customer_id=customer,
                                    session_id=int(start.session_id), ts=begun, profile=before[customer]))
                    started[customer].add(int(start.session_id))
            processor.commit(classified)
            counters = processor.counters
            applied_newest = int(classified.ts.max()) if len(classified.ts) else None
            if keyed and len(clean):
                # Ids older than the lateness floor can no longer come back as duplicates (they would be late).
                floor = watermark * 1000 if watermark > 0 else None
                owners = clean["customer_id"].astype("int64").tolist()
                for owner, record, ts in zip(owners, classified.keys, classified.ts.tolist()):
                    seen[owner][int(record)] = int(ts)
                changed = sorted(set(owners))
                profiles = state.profiles(changed)
                for customer in changed:
                    recent = {str(k): t for k, t in seen[customer].items() if floor is None or t >= floor}
                    after = json.dumps(profiles[customer])
                    self.customers.updateValue((customer,), (after, json.dumps(recent),
                                                             json.dumps(sorted(started[customer]))))
                    out.append(_row("profile", customer_id=customer, profile=after))
            out.append(_row("count", newest=applied_newest, **{f: getattr(counters, f) for f in COUNT_FIELDS}))
            return iter([_frame(out)])  # computed now, while the state API is on this key (not lazily)

        def close(self) -> None:
            pass

    return ProfileProcessor


@dataclass
class SparkStreamingEngine:
    """Spark Structured Streaming behind the replay's `Engine` interface (see the module docstring).

    `initial`: the profile store at the cutoff (its customers become the query's initial state);
    `decide_with(state)` gives the decision function on a profile store (`ReplayContext.personalizer(state).decide`),
    or None to make no decisions; `workdir`: input files, checkpoint and outputs (emptied by `run`).
    """

    spark: Any
    settings: EngineSettings
    initial: StreamingState
    workdir: Path
    decide_with: Callable[[StreamingState], Decide] | None = None
    batch_seconds: list[float] = field(default_factory=list)

    # ---- files -----------------------------------------------------------------------------
    @property
    def input_dir(self) -> Path:
        return Path(self.workdir) / "input"

    def write_batches(self, batches: Iterator[pd.DataFrame], first: int = 1, arrival: int = 0) -> tuple[int, int]:
        """Write batches as input files first, first+1, ... (arrival numbers from `arrival`); returns the next file
        number and arrival number. File times increase with the number, so the file source reads them in order."""
        self.input_dir.mkdir(parents=True, exist_ok=True)
        number = first
        for batch in batches:
            frame = batch.reset_index(drop=True)
            frame = integer_ids(frame).assign(**{ARRIVAL: np.arange(arrival, arrival + len(frame), dtype=np.int64)})
            path = self.input_dir / f"batch-{number:07d}.parquet"
            to_spark_pandas(frame.astype({c: "string" for c in frame.columns
                                          if isinstance(frame[c].dtype, pd.CategoricalDtype)})).to_parquet(path)
            stamp = int(time.time()) - 86_400 + number  # within the file source's maxFileAge (7 days)
            os.utime(path, (stamp, stamp))
            arrival += len(frame)
            number += 1
        return number, arrival

    def _output(self, kind: str, batch_id: int, frame: pd.DataFrame) -> None:
        folder = Path(self.workdir) / "output" / kind
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / f"batch-{batch_id:07d}.parquet")

    def outputs(self, kind: str) -> pd.DataFrame:
        """Everything written so far of one kind (decisions, dead_letters, profiles, books), in batch order."""
        folder = Path(self.workdir) / "output" / kind
        parts = [pd.read_parquet(p).assign(batch=int(p.stem.split("-")[1]))
                 for p in sorted(folder.glob("batch-*.parquet"))] if folder.exists() else []
        parts = [p for p in parts if len(p)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    # ---- the query ---------------------------------------------------------------------------
    def process(self, template: pd.DataFrame, partitions: int | None = None) -> None:
        """Run the query over every input file not processed yet (Trigger.AvailableNow), from the checkpoint."""
        from pyspark.sql import functions as F

        spark = self.spark
        records = spark.read.parquet(str(sorted(self.input_dir.glob("batch-*.parquet"))[-1])).schema
        initial = Path(self.workdir) / "initial_profiles.parquet"
        if not initial.exists():  # the profile store at the cutoff, joined to the stream by customer (stream-static)
            profiles = self.initial.profiles()
            pd.DataFrame({"customer_id": pd.Series(list(profiles), dtype="int64"),
                          PROFILE: pd.Series([json.dumps(p) for p in profiles.values()], dtype=object)}
                         ).to_parquet(initial)
        lateness = self.settings.watermark_delay_seconds + self.settings.allowed_lateness_seconds
        schema = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in records.fields)
        stream = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(self.input_dir))
        marked = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in stream.schema.fields)
        marked += f", `{REASON}` string, `{EVENT_TIME}` timestamp"
        stream = (stream.mapInPandas(mark_malformed(template), marked)
                  .withWatermark(EVENT_TIME, f"{int(lateness * 1000)} milliseconds")
                  .drop(EVENT_TIME, REASON)
                  .join(F.broadcast(spark.read.parquet(str(initial))), on="customer_id", how="left"))
        processor = _stateful_processor_class()(self.settings, template, self.initial.empty_like(master_data=False))
        # Records that lost their customer id are grouped under NO_CUSTOMER, not under a null key: state updates of
        # other customers processed next to a null grouping key were lost (PySpark 4.3, seen in the parity test).
        buckets = BUCKETS_PER_PARTITION * int(partitions or spark.conf.get("spark.sql.shuffle.partitions"))
        stream = stream.withColumn(GROUP, F.coalesce(F.pmod(F.col("customer_id"), F.lit(buckets)), F.lit(NO_CUSTOMER)))
        result = stream.groupBy(GROUP).transformWithStateInPandas(
            processor, OUTPUT_SCHEMA, "Append", "EventTime")
        query = (result.writeStream.foreachBatch(self._sink_batch)
                 .option("checkpointLocation", str(Path(self.workdir) / "checkpoint"))
                 .trigger(availableNow=True).start())
        query.awaitTermination()
        self.progress = list(query.recentProgress)
        self.batch_seconds.extend(p["durationMs"].get("triggerExecution", 0) / 1000 for p in self.progress
                                  if p.get("numInputRows", 0) > 0)

    def _sink_batch(self, frame: Any, batch_id: int) -> None:
        """foreachBatch: decisions on the profiles before the batch, then every output to Parquet by batch id."""
        rows = frame.toPandas()
        kinds = rows["kind"]
        books = rows[kinds == "count"]
        visits = rows[kinds == "visit"].sort_values("arrival", kind="stable")
        decisions = pd.DataFrame()
        if self.decide_with is not None and len(visits):
            state = self.initial.empty_like()
            known = {int(c): json.loads(p) for c, p in zip(visits["customer_id"], visits["profile"])
                     if isinstance(p, str)}
            state.load_profiles(known, self._newest_before(batch_id))
            table = pd.DataFrame({"customer_id": visits["customer_id"].astype("int64").to_numpy(),
                                  "session_id": visits["session_id"].astype("int64").to_numpy(),
                                  "ts": pd.to_datetime(visits["ts"].astype("int64").to_numpy(), unit="us")})
            decided = self.decide_with(state)(table, pd.Timestamp(table["ts"].max()))
            if decided is not None:
                decisions = decided
        self._output("decisions", batch_id, _storable(decisions))
        self._output("dead_letters", batch_id, rows[kinds == "dead"][["arrival", "reason"]].reset_index(drop=True))
        self._output("profiles", batch_id, rows[kinds == "profile"][["customer_id", "profile"]].reset_index(drop=True))
        self._output("books", batch_id, books[[*COUNT_FIELDS, "newest"]].astype("Int64").reset_index(drop=True))

    def _newest_before(self, batch_id: int) -> int:
        """The newest applied time of all batches before `batch_id` (from their books; the cutoff before any)."""
        books = self.outputs("books")
        newest = self.initial.newest
        if len(books):
            earlier = pd.to_numeric(books.loc[books["batch"] < batch_id, "newest"]).dropna()
            if len(earlier):
                newest = max(newest, int(earlier.max()))
        return newest

    # ---- the Engine interface -------------------------------------------------------------------
    def run(self, source: Source, sink: Sink) -> Counters:
        """Write the source's batches, run the query to the end, emit decisions and dead letters; return the books."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        parts = list(source.batches())
        self.write_batches(iter(parts), first=1)
        records = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        began = time.perf_counter()
        self.process(stream_template(records))
        self.seconds = time.perf_counter() - began
        return self.emit(records, sink)

    def emit(self, records: pd.DataFrame, sink: Sink) -> Counters:
        """The outputs to the sink (decisions, dead letters with the original records, in order) and the books;
        checks that every record written reached the processor (none dropped silently)."""
        decisions = self.outputs("decisions")
        if len(decisions):
            sink.emit("decisions", decisions.drop(columns="batch"))
        dead = self.outputs("dead_letters")
        if len(dead):
            dead = dead.sort_values(["batch", "arrival"], kind="stable")
            rows = records.iloc[dead["arrival"].astype("int64").to_numpy()].reset_index(drop=True)
            sink.emit("dead_letters", rows.assign(reason=dead["reason"].to_numpy()))
        counters = self.books()
        if counters.received != len(records):
            raise RuntimeError(f"Spark processed {counters.received} of {len(records)} records: some were dropped "
                               f"before the processor ({len(getattr(self, 'progress', []))} micro-batches ran)")
        return counters

    def books(self) -> Counters:
        """The books summed over every batch's processors."""
        books = self.outputs("books")
        if not len(books):
            return Counters()
        return Counters(**{f: int(pd.to_numeric(books[f]).sum()) for f in COUNT_FIELDS})

    def final_state(self) -> StreamingState:
        """The profile store at the end: the initial profiles overlaid with each customer's latest."""
        state = self.initial.empty_like()
        profiles = self.initial.profiles()
        latest = self.outputs("profiles")
        if len(latest):
            latest = latest.drop_duplicates("customer_id", keep="last")
            profiles.update({int(c): json.loads(p) for c, p in zip(latest["customer_id"], latest["profile"])})
        books = self.outputs("books")
        newest = pd.to_numeric(books["newest"]).dropna() if len(books) else pd.Series(dtype=float)
        state.load_profiles(profiles, int(newest.max()) if len(newest) else None)
        return state


def _storable(decisions: pd.DataFrame) -> pd.DataFrame:
    if "products" in decisions:
        decisions = decisions.assign(products=decisions["products"].map(lambda p: [int(x) for x in p]))
    return decisions.reset_index(drop=True)

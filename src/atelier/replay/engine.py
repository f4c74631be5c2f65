"""The embedded stream processor: source -> processor -> sink, in micro-batches or one record at a time.

Records are clickstream events and orders in one stream (column `record`: "event" or "order"),
in *arrival* order. The processor keeps a **watermark** (the newest event time seen minus
`watermark_delay_seconds`); a record older than the watermark by more than
`allowed_lateness_seconds` is **late** and goes to the dead-letter output with its reason, as does
a **malformed** record. A record whose id was already seen is a **duplicate** and is dropped.
Everything else updates the per-customer `StreamingState`. The books always balance:

    received = applied + duplicates + late + malformed

`Engine` is the small interface a different engine (e.g. Spark Structured Streaming) would
implement; `MicroBatchEngine` is the embedded default.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from atelier.core.io import python_scalar
from atelier.data.features import microseconds
from atelier.replay.state import StreamingState

RECORD_KINDS = ("event", "order")
EVENT_COLUMNS = ("event_id", "customer_id", "session_id", "ts", "event_type", "product_id", "device", "dwell_seconds")
ORDER_COLUMNS = ("order_id", "customer_id", "ordered_at", "amount", "quantity", "discount", "session_id")
MICROSECONDS = 1_000_000
LATE_REASON = "late: older than the watermark by more than the allowed lateness"


@dataclass(frozen=True)
class EngineSettings:
    """Watermark and lateness (params.yaml `replay`)."""

    watermark_delay_seconds: float
    allowed_lateness_seconds: float


@dataclass
class Counters:
    """The stream's books: every record received is applied, a duplicate, late or malformed."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: int = 0

    def balanced(self) -> bool:
        return self.received == self.applied + self.duplicates + self.late + self.malformed


def to_records(events: pd.DataFrame | None, orders: pd.DataFrame | None) -> pd.DataFrame:
    """Events and orders as one stream of records (`record`, `id`, `ts` and the tables' columns)."""
    parts = []
    if events is not None and len(events):
        parts.append((events, {"record": "event", "id": events["event_id"]}))
    if orders is not None and len(orders):
        parts.append((orders, {"record": "order", "id": orders["order_id"], "ts": orders["ordered_at"]}))
    if not parts:
        return pd.DataFrame(columns=["record", "id", "customer_id", "ts"])
    records = _stacked([{**{c: frame[c] for c in frame.columns}, **added} for frame, added in parts])
    if records is None:  # a column type `_stacked` leaves to pandas
        records = pd.concat([frame.assign(**added) for frame, added in parts], ignore_index=True)
    for column in ("event_type", "device"):  # categories stay cheap to look up (concat with orders made them objects)
        if column in records:
            records[column] = records[column].astype("category")
    return records


def stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """`pd.concat(frames, ignore_index=True)`, column by column where the types allow (see `_stacked`)."""
    stacked = _stacked([{column: frame[column] for column in frame.columns} for frame in frames])
    return pd.concat(frames, ignore_index=True) if stacked is None else stacked


def _stacked_column(parts: list[pd.Series | str | None], sizes: list[int]) -> Any:
    """One column of the parts stacked as `pd.concat` stacks them, for the plain types the simulator writes (numbers,
    times, categories, text; a column missing from a part is NaN, NaT or a missing category there); None for
    any other type. A text value stands for a whole column of it."""
    present = [part for part in parts if isinstance(part, pd.Series)]
    dtype = present[0].dtype if present else pd.StringDtype(na_value=np.nan)
    if any(part.dtype != dtype for part in present):
        return None
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Categorical.from_codes(np.concatenate([
            part.cat.codes.to_numpy() if part is not None else np.full(n, -1, dtype=np.int8)
            for part, n in zip(parts, sizes)]), dtype=dtype)
    if dtype == pd.StringDtype(na_value=np.nan) and all(part is not None for part in parts):
        return pd.array(np.concatenate([part.to_numpy(dtype=object) if isinstance(part, pd.Series)
                                        else np.full(n, part, dtype=object) for part, n in zip(parts, sizes)]),
                        dtype=dtype)
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iufM" or any(isinstance(part, str) for part in parts):
        return None
    if len(present) == len(parts):
        return np.concatenate([part.to_numpy() for part in present])
    # A column missing from a part is NaT there, or NaN in a float column (as concat makes it).
    fill, dtype = (np.datetime64("NaT"), dtype) if dtype.kind == "M" else (np.nan, np.dtype(float))
    return np.concatenate([part.to_numpy().astype(dtype) if part is not None else np.full(n, fill, dtype=dtype)
                           for part, n in zip(parts, sizes)])


def _stacked(parts: list[dict[str, pd.Series | str]]) -> pd.DataFrame | None:
    """The parts' columns (each part a dict of equal-length Series or text constants) stacked as
    `pd.concat([pd.DataFrame(part) for part in parts], ignore_index=True)` does, built column by column (a few
    times faster on the replay's small frames); None if a column has a type `_stacked_column` does not handle."""
    sizes = [next(len(v) for v in part.values() if isinstance(v, pd.Series)) for part in parts]
    columns = list(dict.fromkeys(c for part in parts for c in part))
    stacked = {}
    for column in columns:
        values = _stacked_column([part.get(column) for part in parts], sizes)
        if values is None:
            return None
        stacked[column] = values
    return pd.DataFrame(stacked)


def malformed_reasons(batch: pd.DataFrame) -> np.ndarray:
    """Why each record is malformed (None when it is fine): missing keys or impossible values."""
    reasons = np.full(len(batch), None, dtype=object)

    def flag(mask: np.ndarray, reason: str) -> None:
        reasons[mask & np.equal(reasons, None)] = reason

    kind = batch["record"].to_numpy()
    events, orders = kind == "event", kind == "order"
    flag(~(events | orders), "unknown record kind")
    flag(batch["id"].isna().to_numpy(), "missing id")
    flag(batch["customer_id"].isna().to_numpy(), "missing customer_id")
    flag(batch["ts"].isna().to_numpy(), "missing or unparseable timestamp")
    if "event_type" in batch:
        flag(events & batch["event_type"].isna().to_numpy(), "missing event_type")
    if "session_id" in batch:
        flag(events & batch["session_id"].isna().to_numpy(), "missing session_id")
    if "dwell_seconds" in batch:
        dwell = batch["dwell_seconds"].to_numpy(dtype=float, na_value=np.nan)
        flag(events & (dwell < 0), "negative dwell_seconds")
    if "amount" in batch:
        amount = pd.to_numeric(batch["amount"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        flag(orders & ~(amount >= 0), "missing or negative amount")
    return reasons


def record_key(kind: str, record_id: Any) -> Any:
    """The de-duplication key of one record: id * 2 + kind for integer ids, else (kind, id)."""
    if isinstance(record_id, (int, np.integer)) and not isinstance(record_id, bool):
        return int(record_id) * 2 + RECORD_KINDS.index(kind)
    return (kind, record_id)


def record_keys(batch: pd.DataFrame) -> np.ndarray:
    """`record_key` for a batch: an int64 array when every id is an integer, else an object array of keys."""
    ids = batch["id"]
    if pd.api.types.is_integer_dtype(ids.dtype) and not ids.isna().any():
        return ids.to_numpy(dtype=np.int64) * 2 + (batch["record"].to_numpy() == "order").astype(np.int64)
    keys = np.empty(len(batch), dtype=object)
    keys[:] = [record_key(kind, record_id) if kind in RECORD_KINDS else (kind, record_id)
               for kind, record_id in zip(batch["record"].tolist(), ids.tolist())]
    return keys


def malformed_reason(record: dict[str, Any]) -> str | None:
    """The scalar twin of `malformed_reasons` for one record (the per-event path); tests keep them in step."""
    def missing(key: str) -> bool:
        value = record.get(key)
        return value is None or (not isinstance(value, str) and pd.isna(value))

    kind = record.get("record")
    if kind not in RECORD_KINDS:
        return "unknown record kind"
    for key, reason in (("id", "missing id"), ("customer_id", "missing customer_id"),
                        ("ts", "missing or unparseable timestamp")):
        if missing(key):
            return reason
    if kind == "event":
        if "event_type" in record and missing("event_type"):
            return "missing event_type"
        if "session_id" in record and missing("session_id"):
            return "missing session_id"
        dwell = record.get("dwell_seconds")
        if dwell is not None and not pd.isna(dwell) and dwell < 0:
            return "negative dwell_seconds"
    if kind == "order" and "amount" in record:
        amount = pd.to_numeric(record.get("amount"), errors="coerce")
        if pd.isna(amount) or amount < 0:
            return "missing or negative amount"
    return None


@dataclass
class Classified:
    """A batch sorted by the processor, before anything is applied."""

    clean: pd.DataFrame
    dead_letters: pd.DataFrame
    keys: list[Any]
    ts: np.ndarray
    received: int
    duplicates: int
    late: int
    malformed: int


@dataclass
class BatchResult:
    """What one micro-batch did."""

    applied: pd.DataFrame
    dead_letters: pd.DataFrame
    duplicates: int
    seconds: float


@dataclass
class StreamProcessor:
    """Watermark, de-duplication, dead-lettering and state updates, one micro-batch at a time."""

    state: StreamingState
    settings: EngineSettings
    counters: Counters = field(default_factory=Counters)
    newest: int = np.iinfo(np.int64).min  # newest event time seen (microseconds)
    seen: dict[Any, int] = field(default_factory=dict)  # record_key -> event time, while it can still be a duplicate

    @property
    def watermark(self) -> int:
        """The newest event time minus the watermark delay (microseconds); very negative before any record."""
        if self.newest == np.iinfo(np.int64).min:
            return self.newest
        return self.newest - int(self.settings.watermark_delay_seconds * MICROSECONDS)

    def _lateness_floor(self) -> int:
        if self.newest == np.iinfo(np.int64).min:
            return self.newest
        return self.watermark - int(self.settings.allowed_lateness_seconds * MICROSECONDS)

    def classify(self, batch: pd.DataFrame) -> Classified:
        """Sort a batch (in arrival order) into clean, duplicate, late and malformed records; change nothing yet."""
        batch = batch.reset_index(drop=True)
        reasons = malformed_reasons(batch)
        malformed = ~np.equal(reasons, None)
        keys = record_keys(batch)
        if keys.dtype != object:  # integer ids: vectorized
            seen = np.fromiter(self.seen.keys(), dtype=np.int64, count=len(self.seen))
            duplicate = np.zeros(len(batch), dtype=bool)
            usable = ~malformed  # a corrupted copy does not make a later clean copy a duplicate
            duplicate[usable] = pd.Series(keys[usable]).duplicated().to_numpy() | np.isin(keys[usable], seen)
        else:
            first_time, duplicate = set(), np.zeros(len(batch), dtype=bool)
            for position, key in enumerate(keys.tolist()):
                if malformed[position]:
                    continue  # a corrupted copy does not make a later clean copy a duplicate
                duplicate[position] = key in self.seen or key in first_time
                first_time.add(key)
        ts = np.where(malformed, 0, microseconds(batch["ts"].where(pd.Series(~malformed))))
        late = ~malformed & ~duplicate & (ts < self._lateness_floor())
        applied = ~(malformed | duplicate | late)
        out = malformed | late
        dead = batch[out].assign(reason=np.where(malformed[out], reasons[out], LATE_REASON))
        return Classified(clean=batch[applied], dead_letters=dead, keys=keys[applied].tolist(), ts=ts[applied],
                          received=len(batch), duplicates=int(duplicate.sum()), late=int(late.sum()),
                          malformed=int(malformed.sum()))

    def admit(self, record: dict[str, Any]) -> str:
        """One record on the per-event path: "clean", "duplicate", "late" or "malformed" (the books are kept)."""
        self.counters.received += 1
        if malformed_reason(record) is not None:
            self.counters.malformed += 1
            return "malformed"
        key = record_key(record["record"], record["id"])
        if key in self.seen:
            self.counters.duplicates += 1
            return "duplicate"
        ts = int(microseconds(pd.Timestamp(record["ts"])))
        if ts < self._lateness_floor():
            self.counters.late += 1
            return "late"
        self.seen[key] = ts
        self.newest = max(self.newest, ts)
        self.counters.applied += 1
        return "clean"

    def apply_one(self, record: dict[str, Any]) -> None:
        """Update the profile state with one admitted record."""
        frame = pd.DataFrame([record])
        if record["record"] == "event":
            self.state.apply(frame[[c for c in EVENT_COLUMNS if c in frame]], None)
        else:
            columns = [c for c in ORDER_COLUMNS if c in frame or c == "ordered_at"]
            self.state.apply(None, frame.assign(ordered_at=frame["ts"])[columns])

    def commit(self, classified: Classified) -> None:
        """Apply the clean records to the profile state and update the watermark, ids and books."""
        clean = classified.clean
        if len(clean):
            # The state reads only the event and order columns it knows: no need to select them first.
            kind = clean["record"].to_numpy()
            events, orders = clean[kind == "event"], clean[kind == "order"]
            self.state.apply(events if len(events) else None,
                             orders.assign(ordered_at=orders["ts"]) if len(orders) else None)
            self.seen.update(zip(classified.keys, classified.ts.tolist()))
            self.newest = max(self.newest, int(classified.ts.max()))
            if len(self.seen) > 4 * max(len(clean), 1000):
                # Ids older than the lateness floor can no longer come back as duplicates: they would be late.
                floor = self._lateness_floor()
                self.seen = {key: when for key, when in self.seen.items() if when >= floor}
        self.counters.received += classified.received
        self.counters.applied += len(clean)
        self.counters.duplicates += classified.duplicates
        self.counters.late += classified.late
        self.counters.malformed += classified.malformed

    def process(self, batch: pd.DataFrame) -> BatchResult:
        """Classify and apply one batch; returns the applied and dead-lettered rows."""
        began = time.perf_counter()
        classified = self.classify(batch)
        self.commit(classified)
        return BatchResult(applied=classified.clean, dead_letters=classified.dead_letters,
                           duplicates=classified.duplicates, seconds=time.perf_counter() - began)

    def checkpoint(self, path: Path) -> None:
        """The processor's own state (watermark, recent ids, counters) next to the profile state's checkpoint."""
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS processor (key TEXT PRIMARY KEY, value TEXT)")
            connection.execute("DELETE FROM processor")
            connection.executemany("INSERT INTO processor VALUES (?, ?)", [
                ("newest", str(int(self.newest))), ("counters", pd.Series(asdict(self.counters)).to_json()),
            ])
            connection.execute("CREATE TABLE IF NOT EXISTS processor_seen (key TEXT PRIMARY KEY, ts INTEGER)")
            connection.execute("DELETE FROM processor_seen")
            connection.executemany("INSERT INTO processor_seen VALUES (?, ?)",
                                   [(json.dumps(key if isinstance(key, int) else [key[0], python_scalar(key[1])]), when)
                                    for key, when in self.seen.items()])
        connection.close()

    def restore(self, path: Path) -> None:
        """Reload what `checkpoint` wrote (the profile state is restored separately)."""
        with sqlite3.connect(path) as connection:
            values = dict(connection.execute("SELECT key, value FROM processor").fetchall())
            self.seen = {(lambda k: k if isinstance(k, int) else tuple(k))(json.loads(key)): when
                         for key, when in connection.execute("SELECT key, ts FROM processor_seen")}
        connection.close()
        self.newest = int(values["newest"])
        counters = pd.read_json(pd.io.common.StringIO(values["counters"]), typ="series")
        self.counters = Counters(**counters.astype(int).to_dict())


class Source(Protocol):
    """Anything that yields batches of records in arrival order."""

    def batches(self) -> Iterator[pd.DataFrame]: ...


class Sink(Protocol):
    """Anything that receives the processor's outputs by kind ("dead_letters", "decisions", ...)."""

    def emit(self, kind: str, frame: pd.DataFrame) -> None: ...


class Engine(Protocol):
    """A stream engine: reads a source, processes, writes to a sink, keeps the books."""

    def run(self, source: Source, sink: Sink) -> Counters: ...


@dataclass
class FrameSource:
    """A recorded stream replayed in fixed-size batches (in arrival order)."""

    records: pd.DataFrame
    batch_size: int

    def batches(self) -> Iterator[pd.DataFrame]:
        for start in range(0, len(self.records), self.batch_size):
            yield self.records.iloc[start: start + self.batch_size]


@dataclass
class MemorySink:
    """Collects every output in memory (tests, notebooks); `frames(kind)` concatenates them."""

    outputs: dict[str, list[pd.DataFrame]] = field(default_factory=dict)

    def emit(self, kind: str, frame: pd.DataFrame) -> None:
        self.outputs.setdefault(kind, []).append(frame)

    def frames(self, kind: str) -> pd.DataFrame:
        parts = self.outputs.get(kind, [])
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def session_starts(clean: pd.DataFrame, started: set) -> pd.DataFrame:
    """The first clean event (in arrival order) of each session in a batch that has not started before."""
    events = clean[clean["record"] == "event"]
    sessions = events["session_id"].to_numpy()
    fresh = np.fromiter((sid not in started for sid in sessions), dtype=bool, count=len(sessions))
    return events[fresh].drop_duplicates("session_id")


@dataclass
class MicroBatchEngine:
    """The embedded engine: each batch is classified, applied, and the new sessions in it get a decision.

    `decide(sessions, as_of)` receives the sessions that start in the batch (customer_id, session_id,
    ts) and the batch's newest time, and returns decisions (or None to make none).
    """

    processor: StreamProcessor
    decide: Callable[[pd.DataFrame, pd.Timestamp], pd.DataFrame | None] | None = None
    batch_seconds: list[float] = field(default_factory=list)
    started_sessions: set = field(default_factory=set)

    def run(self, source: Source, sink: Sink) -> Counters:
        for batch in source.batches():
            began = time.perf_counter()
            classified = self.processor.classify(batch)
            if self.decide is not None and "session_id" in classified.clean:  # orders alone start no sessions
                starts = session_starts(classified.clean, self.started_sessions)
                if len(starts):
                    # Decided on the profile as it stood before this batch: the micro-batch's latency.
                    decisions = self.decide(starts[["customer_id", "session_id", "ts"]],
                                            pd.Timestamp(starts["ts"].max()))
                    self.started_sessions.update(starts["session_id"].tolist())
                    if decisions is not None:
                        sink.emit("decisions", decisions)
            self.processor.commit(classified)
            sink.emit("dead_letters", classified.dead_letters)
            self.batch_seconds.append(time.perf_counter() - began)
        return self.processor.counters


def summary(counters: Counters) -> dict[str, Any]:
    """The books as a plain dict, with the balance check."""
    return {**asdict(counters), "balanced": counters.balanced()}

"""The closed loop through the service: the replay's `ClosedLoop`, with the service deciding and ingesting.

`RemotePersonalizer` and `RemoteProcessor` stand in for the replay's personalizer and stream processor:
the loop's windows, the simulated visitors (who react to what they are shown) and the network noise are
the replay's own (`atelier.replay.loop.ClosedLoop`, `atelier.replay.world`); only the decisions come
from `GET /api/customers/{id}/page` and the records go to `POST /api/events`.

When the service's clock stands after the simulated day (a service started from the end of the replay),
visits, records and ids are moved forward by whole days and a fixed id offset, so that the replayed day
arrives as new traffic rather than as late duplicates; a service started from the cutoff
(`--from-cutoff`) receives the replay's own first days unchanged.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from atelier.replay.engine import BatchResult, Counters
from atelier.replay.loop import ClosedLoop
from atelier.replay.policy import Assortment
from atelier.replay.world import EVENTS_PER_SESSION_LIMIT

#: Session and order ids move by this much when the day is shifted (event ids by this times EVENTS_PER_SESSION_LIMIT).
ID_SHIFT = 10**10
BOOK_KEYS = ("received", "applied", "duplicates", "late", "malformed")
#: The decision columns, in the replay's order (`Personalizer.decide`).
DECISION_COLUMNS = ["session_id", "customer_id", "ts", "decided_at", "arm", "segment", "experience", "reason",
                    "banner", "banner_category", "products", "propensity", "list_source"]


@dataclass(frozen=True)
class Shift:
    """How the replayed day is moved: by `days` whole days, ids by `ids` (all zero: the replay's own records)."""

    days: int = 0
    ids: int = 0

    @classmethod
    def between(cls, service_now: pd.Timestamp, watermark: pd.Timestamp | None, start: pd.Timestamp) -> Shift:
        """No shift for a service that has seen nothing after `start` and whose clock is within a day of it (one
        started from the cutoff); else whole days past its clock, and ids moved by ID_SHIFT."""
        if (watermark is None or watermark < start) and service_now <= start + pd.Timedelta(days=1):
            return cls()
        return cls(days=math.ceil((service_now - start) / pd.Timedelta(days=1)), ids=ID_SHIFT)

    @property
    def delta(self) -> pd.Timedelta:
        return pd.Timedelta(days=self.days)


def _json_value(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    return value


def records_payload(batch: pd.DataFrame, shift: Shift) -> list[dict[str, Any]]:
    """A batch of stream records as the service's JSON records (times, session, event and order ids shifted)."""
    columns = ["record", "id", "customer_id", "ts", "session_id", "event_type", "product_id", "device", "dwell_seconds",
               "amount", "quantity", "discount"]
    frame = batch[[c for c in columns if c in batch]].copy()
    frame["ts"] = frame["ts"] + shift.delta
    payload = []
    for row in frame.to_dict(orient="records"):
        record = {k: _json_value(v) for k, v in row.items()}
        if shift.ids:
            step = shift.ids * EVENTS_PER_SESSION_LIMIT if record["record"] == "event" else shift.ids
            record["id"] = record["id"] + step
            if record.get("session_id") is not None:
                record["session_id"] += shift.ids
        if record["record"] == "order":
            record.pop("event_type", None), record.pop("product_id", None), record.pop("device", None)
            record.pop("dwell_seconds", None)
        else:
            record.pop("amount", None), record.pop("quantity", None), record.pop("discount", None)
        payload.append(record)
    return payload


@dataclass
class RemotePersonalizer:
    """Decides each visit by asking the service for the visitor's page (as of the window's start)."""

    http: Any  # an httpx.Client (or FastAPI's TestClient) on the service
    assortment: Assortment
    shift: Shift
    last_profiles: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: list[float] = field(default_factory=list)

    def decide(self, visits: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        rows = []
        at = (pd.Timestamp(as_of) + self.shift.delta).isoformat()
        for visit in visits.itertuples(index=False):
            began = time.perf_counter()
            response = self.http.get(f"/api/customers/{int(visit.customer_id)}/page",
                                     params={"session_id": int(visit.session_id) + self.shift.ids, "at": at})
            response.raise_for_status()
            page = response.json()
            self.seconds.append(time.perf_counter() - began)
            rows.append({"session_id": visit.session_id, "customer_id": visit.customer_id, "ts": visit.ts,
                         "decided_at": as_of, "arm": page["arm"], "segment": page["segment"],
                         "experience": page["experience"], "reason": page["reason"], "banner": page["banner"],
                         "banner_category": page["banner_category"],
                         "products": np.array([p["product_id"] for p in page["products"]], dtype=np.int64),
                         "propensity": np.nan if page["propensity"] is None else page["propensity"],
                         "list_source": page["list_source"]})
        return pd.DataFrame(rows, columns=DECISION_COLUMNS)


@dataclass
class RemoteProcessor:
    """Sends each batch of arrived records to the service; keeps the books the service reports."""

    http: Any
    shift: Shift
    batch_limit: int
    initial: Counters = field(default_factory=Counters)  # the service's books before the loop began
    counters: Counters = field(default_factory=Counters)  # what this loop's records did to them

    def process(self, batch: pd.DataFrame) -> BatchResult:
        began = time.perf_counter()
        batch = batch.reset_index(drop=True)
        payload = records_payload(batch, self.shift)
        applied, dead, duplicates = [], [], 0
        for start in range(0, len(payload), self.batch_limit):
            response = self.http.post("/api/events", json={"records": payload[start: start + self.batch_limit]})
            if response.status_code not in (200, 422) or "verdicts" not in response.json():
                raise RuntimeError(f"the service refused a batch: {response.status_code} {response.text[:300]}")
            body = response.json()
            for offset, verdict in enumerate(body["verdicts"]):
                position = start + offset
                if verdict["verdict"] == "applied":
                    applied.append(position)
                elif verdict["verdict"] == "duplicate":
                    duplicates += 1
                else:
                    dead.append((position, verdict["reason"]))
            self.counters = Counters(**{k: body["books"][k] - getattr(self.initial, k) for k in BOOK_KEYS})
        dead_letters = batch.loc[[p for p, _ in dead]].assign(reason=[r for _, r in dead])
        return BatchResult(applied=batch.loc[applied], dead_letters=dead_letters, duplicates=duplicates,
                           seconds=time.perf_counter() - began)


def remote_loop(local: ClosedLoop, http: Any, batch_limit: int) -> ClosedLoop:
    """`local` (a fresh closed loop of the replay) with the service deciding and ingesting in its place."""
    books = http.get("/api/books").json()
    now = pd.Timestamp(http.get("/health").json()["now"])
    shift = Shift.between(now, None if books["watermark"] is None else pd.Timestamp(books["watermark"]),
                          local.world.start)
    local.personalizer = RemotePersonalizer(http, local.personalizer.assortment, shift)
    local.processor = RemoteProcessor(http, shift, batch_limit, initial=Counters(**{k: books[k] for k in BOOK_KEYS}))
    return local


def summary(loop: ClosedLoop, days: float, seconds: float) -> dict[str, Any]:
    """What the closed loop through the service did: visits, decisions by reason, orders, revenue by arm, books."""
    decisions, visits = loop.frames("decisions"), loop.frames("visits")
    by_arm = ({arm: {"visits": int(len(part)), "orders": int((part["revenue"] > 0).sum()),
                     "conversion": float((part["revenue"] > 0).mean()), "revenue": float(part["revenue"].sum())}
               for arm, part in visits.groupby("arm")} if len(visits) else {})
    latencies = np.array(loop.personalizer.seconds) * 1000 if loop.personalizer.seconds else np.array([np.nan])
    books = loop.processor.counters
    return {"days": days, "visits": int(len(decisions)), "seconds": round(seconds, 2),
            "shifted_days": loop.personalizer.shift.days,
            "by_reason": decisions["reason"].value_counts().to_dict() if len(decisions) else {},
            "by_arm": by_arm,
            "page_ms": {"p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99))},
            "books": {"received": books.received, "applied": books.applied, "duplicates": books.duplicates,
                      "late": books.late, "malformed": books.malformed, "balanced": books.balanced()},
            "dead_letters": int(len(loop.frames("dead_letters")))}

"""The personalization service in memory: the replay's profile store, stream processor and personalizer behind
the calls of the web app, plus the per-customer feeds its server-sent events read.

Nothing here is new decision logic. A live page is `Personalizer.decide_one` (the replay's per-event fast path:
profile -> champion score -> policy, with the same fallback reasons); a page asked for at a given time (a
replayed visit) is `Personalizer.decide` for that visit, exactly what the replay's closed loop decides; an
ingested batch goes through `StreamProcessor.process` (watermark, allowed lateness, de-duplication, dead
letters, balanced books) exactly as a micro-batch of the replay does; the top contributions are xgboost's
exact per-feature contributions (`Champion.contributions_vector`, which agrees with
`atelier.model.explain.xgboost_contributions`) and a LIME explanation uses the replay's explainer.

Time: the service runs on the simulated shop's clock, which starts where the profiles end (the newest record
the processor has seen) and advances with the wall clock; records may carry their own time (a replay), and
pages may be asked for at a given time (the closed-loop client, which replays a recorded day).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.config import ParamsError
from atelier.core.io import python_scalar
from atelier.data import transform
from atelier.data.features import microseconds
from atelier.model import explain
from atelier.model.champion import Champion
from atelier.replay.engine import LATE_REASON, Counters, StreamProcessor, malformed_reason
from atelier.replay.explanations import lime_explainer, lime_explanation
from atelier.replay.loop import Personalizer

#: What a page's `reason` can be (the policy's fallback reasons; `atelier.replay.policy.choose`).
REASONS = ("personalized", "control", "cold_start", "missing_features", "model_unavailable")
#: Verdicts of an ingested record (the stream processor's books).
VERDICTS = ("applied", "duplicate", "late", "malformed")
#: Ids the service hands out itself (page sessions, clicks, new visitors) start here, far above the shop's.
SERVICE_ID_BASE = 10**12
NEW_VISITOR_BASE = 10**9


@dataclass(frozen=True)
class ServeSettings:
    """params.yaml `serve`: where to listen and the service's limits."""

    host: str
    port: int
    max_body_bytes: int
    max_batch_records: int
    feed_history: int
    max_feeds: int
    watch_seconds: float
    examples_per_segment: int
    top_contributions: int

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> ServeSettings:
        """Settings from params.yaml's `serve` section; a ParamsError names the key at fault."""
        counts = ("port", "max_body_bytes", "max_batch_records", "feed_history", "max_feeds", "examples_per_segment",
                  "top_contributions")
        missing = [key for key in ("host", "watch_seconds", *counts) if key not in section]
        if missing:
            raise ParamsError(f"params.yaml serve: missing keys {missing}; restore them from the project's params.yaml")
        for key in counts:
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParamsError(f"params.yaml serve.{key}: must be a whole number, 1 or more, got {value!r}")
        if not 1 <= section["port"] <= 65535:
            raise ParamsError(f"params.yaml serve.port: must be a TCP port (1-65535), got {section['port']!r}")
        watch = section["watch_seconds"]
        if isinstance(watch, bool) or not isinstance(watch, (int, float)) or not watch > 0:
            raise ParamsError(f"params.yaml serve.watch_seconds: must be a positive number of seconds, got {watch!r}")
        if not isinstance(section["host"], str) or not section["host"]:
            raise ParamsError(f"params.yaml serve.host: must be an address such as 127.0.0.1, got {section['host']!r}")
        return cls(host=section["host"], watch_seconds=float(watch), **{key: int(section[key]) for key in counts})


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def plain(value: Any) -> Any:
    """A value as JSON: numpy scalars as Python ones, NaN/NA as None, arrays as lists."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if value is None or (not isinstance(value, (str, list, dict)) and pd.isna(value)):
        return None
    value = python_scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Feed:
    """One customer's stream of pages: the last `history` pages with their event ids, and the open listeners."""

    session_id: int
    history: deque = field(default_factory=deque)
    last_id: int = 0
    listeners: set = field(default_factory=set)


class Feeds:
    """The customers someone watches: each gets a new page (an event with an increasing id) whenever their profile
    changes, kept for `history` events so a reconnecting browser resumes after `Last-Event-ID`."""

    def __init__(self, history: int, max_feeds: int) -> None:
        self.history = history
        self.max_feeds = max_feeds
        self._feeds: OrderedDict[int, Feed] = OrderedDict()

    def __contains__(self, customer_id: int) -> bool:
        return customer_id in self._feeds

    def __len__(self) -> int:
        return len(self._feeds)

    def watched(self) -> list[int]:
        return list(self._feeds)

    def open(self, customer_id: int, session_id: int) -> Feed:
        """The customer's feed (created if new; the least recently opened one without listeners goes when full)."""
        feed = self._feeds.get(customer_id)
        if feed is None:
            feed = self._feeds[customer_id] = Feed(session_id=session_id, history=deque(maxlen=self.history))
            idle = [c for c, f in self._feeds.items() if not f.listeners and c != customer_id]
            while len(self._feeds) > self.max_feeds and idle:
                del self._feeds[idle.pop(0)]
        self._feeds.move_to_end(customer_id)
        return feed

    def get(self, customer_id: int) -> Feed | None:
        return self._feeds.get(customer_id)

    def publish(self, customer_id: int, page: dict[str, Any]) -> int:
        """Append a page to the customer's feed and hand it to every listener; returns its event id."""
        feed = self._feeds[customer_id]
        feed.last_id += 1
        feed.history.append((feed.last_id, page))
        for listener in list(feed.listeners):
            listener(feed.last_id, page)
        return feed.last_id

    def since(self, customer_id: int, last_id: int) -> list[tuple[int, dict[str, Any]]]:
        """The pages after event `last_id` still in the history (all of them if the id is older than the history)."""
        feed = self._feeds.get(customer_id)
        return [] if feed is None else [(i, page) for i, page in feed.history if i > last_id]


@dataclass
class Model:
    """The champion the service scores with, or why there is none."""

    champion: Champion | None
    problem: str | None

    @property
    def version(self) -> str | None:
        return None if self.champion is None else self.champion.version


class Service:
    """Pages, ingestion, books and feeds on one profile store (see the module docstring)."""

    def __init__(self, *, personalizer: Personalizer, processor: StreamProcessor, products: pd.DataFrame,
                 model_problem: str | None, settings: ServeSettings, start_us: int,
                 reference: Callable[[], pd.DataFrame] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if personalizer.state is not processor.state:
            raise ValueError("the personalizer and the stream processor must share one profile store")
        self.personalizer = personalizer
        self.processor = processor
        self.settings = settings
        self.model = Model(personalizer.scorer, None if personalizer.scorer is not None else
                           (model_problem or "no champion loaded"))
        # The product cards, built once (a page shows six of them).
        self._cards = {int(row["product_id"]): {k: plain(v) for k, v in row.items()}
                       for row in products.to_dict(orient="records")}
        self.feeds = Feeds(settings.feed_history, settings.max_feeds)
        self.refused_requests = 0  # requests refused as a whole (422, 413): nothing of them reached the stream
        self.dead_letters: deque = deque(maxlen=100)  # the latest refused records, with their reasons
        self._reference = reference
        self._explainer: Any = None
        self._monotonic = monotonic
        self._started = monotonic()
        self._clock_base = max(int(start_us), int(processor.newest)) + 1
        self._next_id = SERVICE_ID_BASE
        self._next_visitor = NEW_VISITOR_BASE

    # ------------------------------------------------------------------ time and ids
    def now_us(self) -> int:
        """The shop's clock (microseconds): where the profiles ended plus the wall time since the start, and never
        behind the newest record applied."""
        elapsed = int((self._monotonic() - self._started) * 1_000_000)
        return max(self._clock_base + elapsed, self.processor.newest + 1)

    def fresh_id(self) -> int:
        """A new id for a page session or a click (never one the shop uses)."""
        self._next_id += 1
        return self._next_id

    def new_visitor(self) -> int:
        """A customer id the shop has never seen, in the personalized arm (so the page shows personalization)."""
        while True:
            self._next_visitor += 1
            candidate = self._next_visitor
            if not self.personalizer.state.known(candidate) and self.personalizer.arms(np.array([candidate]))[0] \
                    == "treatment":
                return candidate

    # ------------------------------------------------------------------ model lifecycle
    def set_model(self, champion: Champion | None, problem: str | None) -> None:
        """Serve with another champion (promotion, rollback) or with none (pages fall back: model_unavailable)."""
        self.personalizer.scorer = champion
        self.model = Model(champion, None if champion is not None else (problem or "no champion loaded"))
        self._explainer = None

    def readiness(self) -> dict[str, Any]:
        """Ready means: personalized pages can be served (a champion is loaded)."""
        if self.model.champion is None:
            return {"ready": False, "reason": "model_unavailable", "detail": self.model.problem}
        return {"ready": True, "model": {"version": self.model.version, "name": self.model.champion.name}}

    # ------------------------------------------------------------------ pages
    def page(self, customer_id: int, session_id: int | None = None, at_us: int | None = None) -> dict[str, Any]:
        """What the shop shows this customer now: the replay's decision plus the profile, contributions, products."""
        at = self.now_us() if at_us is None else int(at_us)
        session = self.fresh_id() if session_id is None else int(session_id)
        as_of = pd.Timestamp(at, unit="us")
        known = self.personalizer.state.known(customer_id)
        if at_us is None:  # a live page: the replay's per-event fast path
            decision = self.personalizer.decide_one(customer_id, session, at)
            behind = self.personalizer.state.features([customer_id], as_of).iloc[0] if known else None
        else:  # a replayed visit: exactly what the replay's closed loop decides for it
            visit = pd.DataFrame({"customer_id": [customer_id], "session_id": [session],
                                  "ts": np.array([as_of], dtype="datetime64[us]")})
            decision = self.personalizer.decide(visit, as_of).iloc[0]
            behind = self.personalizer.last_profiles.drop(columns=["customer_id", "session_id"]).iloc[0]
        profile = {k: plain(v) for k, v in behind.to_dict().items()} if known else None
        propensity = plain(decision["propensity"])
        return {
            "customer_id": customer_id, "session_id": session, "at": as_of.isoformat(),
            "arm": decision["arm"], "segment": self.personalizer.segments.get(customer_id, "unsegmented"),
            "known": known, "experience": decision["experience"], "reason": decision["reason"],
            "banner": decision["banner"], "banner_category": plain(decision["banner_category"]),
            "products": [self.product(p) for p in np.asarray(decision["products"]).tolist()],
            "list_source": plain(decision["list_source"]),  # learned (als / item_item / fallback), rule or default
            "propensity": propensity, "model_version": self.model.version, "profile": profile,
            "contributions": self.contributions(profile) if profile is not None and propensity is not None else [],
        }

    def product(self, product_id: int) -> dict[str, Any]:
        """A product card: id, category, price tier and price (as the products table has them)."""
        return self._cards[product_id]

    def contributions(self, profile: dict[str, Any]) -> list[dict[str, Any]]:
        """The largest exact contributions (log-odds) of the champion to this profile's score (xgboost only)."""
        champion = self.model.champion
        if champion is None or champion.name != "xgboost":
            return []
        if champion.fast:
            vector = np.array([np.nan if profile[f] is None else profile[f] for f in champion.numeric], dtype=float)
            values = dict(zip(champion.numeric, champion.contributions_vector(vector)[:-1].tolist()))
        else:
            frame = transform.model_frame(pd.DataFrame([{f: profile[f] for f in champion.features}]))
            values = explain.xgboost_contributions(champion.pipeline, frame).iloc[0].drop("bias").to_dict()
        top = sorted(values, key=lambda f: -abs(values[f]))[: self.settings.top_contributions]
        return [{"feature": str(f), "value": profile[f], "contribution": float(values[f])} for f in top]

    def explanation(self, customer_id: int) -> dict[str, Any]:
        """LIME on the champion for this customer's live profile (the replay's explainer); heavy: seconds."""
        champion = self.model.champion
        if champion is None:
            return {"customer_id": customer_id, "reason": "model_unavailable", "detail": self.model.problem,
                    "explanation": None}
        if not self.personalizer.state.known(customer_id):
            return {"customer_id": customer_id, "reason": "cold_start", "explanation": None}
        if self._explainer is None:
            if self._reference is None:
                return {"customer_id": customer_id, "reason": "no_reference_profiles", "explanation": None}
            self._explainer = lime_explainer(champion, self._reference(), seed=self.personalizer.seed)
        profile = self.personalizer.state.features([customer_id], pd.Timestamp(self.now_us(), unit="us"))
        table, why = lime_explanation(self._explainer, profile.iloc[0][champion.features], seed=self.personalizer.seed)
        return {"customer_id": customer_id, "reason": "explained", "model_version": champion.version, "why": why,
                "weights": [{k: plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]}

    # ------------------------------------------------------------------ ingestion
    def ingest(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Records through the replay's stream processor: a batch as one micro-batch (classified first, then applied
        at once), a single record on the replay's per-event path (`admit`, then `apply_one`).

        Returns the verdict of each record (applied / duplicate / late / malformed with its reason), the books
        after the batch, and the customers whose profile changed (their feeds get a new page).
        """
        if len(records) == 1:
            return self._ingest_one(records[0])
        batch = records_frame(records)
        result = self.processor.process(batch)
        verdicts: list[dict[str, Any]] = [{"verdict": "duplicate"} for _ in records]
        for position in result.applied.index.tolist():
            verdicts[position] = {"verdict": "applied"}
        dead = result.dead_letters
        for position, reason in zip(dead.index.tolist(), dead["reason"].tolist()):
            verdicts[position] = self._dead(records[position], reason)
        changed = sorted({int(c) for c in result.applied["customer_id"].tolist()})
        return {"verdicts": verdicts, "changed": changed, "books": self.books()}

    def _ingest_one(self, record: dict[str, Any]) -> dict[str, Any]:
        """One record, as the replay's per-event path handles it (O(1): no batch bookkeeping)."""
        record = {**record, "ts": None if record.get("ts") is None else pd.Timestamp(record["ts"]),
                  f"{record['record']}_id": record["id"]}
        verdict = self.processor.admit(record)
        if verdict == "clean":
            self.processor.apply_one(record)
            answer, changed = {"verdict": "applied"}, [int(record["customer_id"])]
        elif verdict == "duplicate":
            answer, changed = {"verdict": "duplicate"}, []
        else:
            answer = self._dead(record, LATE_REASON if verdict == "late" else malformed_reason(record))
            changed = []
        return {"verdicts": [answer], "changed": changed, "books": self.books()}

    def _dead(self, record: dict[str, Any], reason: str | None) -> dict[str, Any]:
        """A refused record's verdict; it joins the latest dead letters the books show."""
        self.dead_letters.append({"id": record.get("id"), "record": record.get("record"),
                                  "customer_id": record.get("customer_id"), "reason": reason})
        return {"verdict": "late" if reason == LATE_REASON else "malformed", "reason": reason}

    def click(self, customer_id: int, session_id: int, kind: str, product_id: int,
              dwell_seconds: float | None) -> dict[str, Any]:
        """A shopper's action on the page (a product view or an add to cart), stamped by the shop's clock."""
        if product_id not in self._cards:
            raise ValueError(f"product_id {product_id} is not in the shop's products")
        record = {"record": "event", "id": self.fresh_id(), "customer_id": customer_id, "session_id": session_id,
                  "ts": pd.Timestamp(self.now_us(), unit="us"), "event_type": kind, "product_id": product_id,
                  "device": "desktop", "dwell_seconds": dwell_seconds}
        return self.ingest([record])

    def books(self) -> dict[str, Any]:
        """The stream's books (received = applied + duplicates + late + malformed) and the requests refused whole."""
        counters: Counters = self.processor.counters
        return {"received": counters.received, "applied": counters.applied, "duplicates": counters.duplicates,
                "late": counters.late, "malformed": counters.malformed, "balanced": counters.balanced(),
                "refused_requests": self.refused_requests,
                "watermark": None if self.processor.newest == np.iinfo(np.int64).min
                else pd.Timestamp(self.processor.watermark, unit="us").isoformat(),
                "recent_dead_letters": list(self.dead_letters)[-20:]}

    # ------------------------------------------------------------------ feeds
    def refresh(self, customers: list[int]) -> dict[int, int]:
        """A new page on the feed of each watched customer among `customers`; returns customer -> event id."""
        published = {}
        for customer in customers:
            feed = self.feeds.get(customer)
            if feed is not None:
                published[customer] = self.feeds.publish(customer, self.page(customer, feed.session_id))
        return published

    def examples(self) -> dict[str, Any]:
        """Customers to try on the shop page: the first few of each segment who have a profile with product views
        and are in the personalized arm, and a new visitor."""
        state, personalizer = self.personalizer.state, self.personalizer
        by_segment: dict[str, list[int]] = {}
        for customer, segment in sorted(personalizer.segments.items()):
            chosen = by_segment.setdefault(segment, [])
            if len(chosen) >= self.settings.examples_per_segment or not state.known(customer):
                continue
            if personalizer.arms(np.array([customer]))[0] != "treatment":
                continue
            views = state.features([customer], pd.Timestamp(self.now_us(), unit="us"))["views_per_session"].iloc[0]
            if pd.notna(views) and views > 0:
                chosen.append(int(customer))
        return {"segments": {s: ids for s, ids in sorted(by_segment.items()) if ids},
                "new_visitor": self.new_visitor()}


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Validated records as the stream frame the replay's processor reads (`to_records`' columns and types)."""
    frame = pd.DataFrame(records)
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[us]")
    for column in ("event_type", "device"):
        if column in frame:
            frame[column] = frame[column].astype("category")
    if "product_id" in frame:
        frame["product_id"] = frame["product_id"].astype("Int64")
    for column in ("id", "customer_id", "session_id"):
        if column in frame and not frame[column].isna().any():
            frame[column] = frame[column].astype("int64")
    kind = frame["record"].to_numpy()
    frame["event_id"] = frame["id"].where(kind == "event")
    frame["order_id"] = frame["id"].where(kind == "order")
    return frame


def to_microseconds(when: Any) -> int:
    """A timestamp (text or Timestamp) as int64 microseconds since the epoch."""
    return int(microseconds(pd.Timestamp(when)))

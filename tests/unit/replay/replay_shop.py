"""The replay tests' shared pieces: the tiny shop's replay context, a noisier network, and comparisons.

Expectations in these tests come from construction: records duplicated, delayed, corrupted by hand
(or by the network model with exactly known corruption), the watermark worked out in microseconds,
a per-event run and a micro-batch run of the same stream, an uninterrupted replay against one
stopped, checkpointed and finished by a fresh loop, common random numbers between replays that
differ only in the response strength or the arm split, and decisions recomputed from the logged
profiles.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import tiny_params

from atelier.data.features import FeatureSettings
from atelier.replay import stage
from atelier.replay.context import ReplayContext
from atelier.replay.engine import StreamProcessor, to_records
from atelier.replay.loop import ClosedLoop, ReplaySettings
from atelier.replay.state import StreamingState
from atelier.replay.world import NoiseSettings

TRAIN_CUTOFFS = [pd.Timestamp("2025-03-01"), pd.Timestamp("2025-04-01")]
#: The closed-loop replays use hourly windows (a late record then usually arrives a window after newer ones):
#: four days of windows, restarted around the middle.
WINDOW_MINUTES = 60
WINDOWS = 96
HALF = WINDOWS // 2
#: The response strength of the "strong" replays (params.yaml assumes 0.5; a clear effect on tiny data needs more).
STRONG = 2.0
LATE_REASON = "late: older than the watermark by more than the allowed lateness"
#: Segment names given to the tiny customers (no segment stage ran): the banner mapping's names plus one it lacks.
SEGMENT_NAMES = ["High-Value Loyal", "Bargain Hunters", "Window Browsers", "Lapsing", "Dormant Sign-ups",
                 "Mystery Shoppers"]


def context_of(root: Path, params: dict) -> ReplayContext:
    """`stage.load_context` on a project folder, with the settings built from `params` as the notebook builds them."""
    return stage.load_context(root, ReplaySettings.from_params(params["replay"], params["seed"]),
                              FeatureSettings.from_params(params["prep"]), params["timeline"],
                              source=params["data"]["source"], simulate=params["simulate"])


def noise(*, late: float = 0.05, duplicate: float = 0.15, malformed: float = 0.03) -> NoiseSettings:
    """A much noisier network than params.yaml's (so every path shows up in a few days of tiny data).

    A late record is delayed by 1.5-2.5 x `lateness_seconds` (params.yaml: watermark delay + allowed lateness)."""
    engine = tiny_params()["replay"]
    lateness = float(engine["watermark_delay_seconds"]) + float(engine["allowed_lateness_seconds"])
    return NoiseSettings(network_delay_seconds=2.0, late_share=late, duplicate_share=duplicate,
                         malformed_share=malformed,
                         lateness_seconds=lateness)


def variant(context: ReplayContext, **settings) -> ReplayContext:
    """The context with other replay settings (the shared context is never changed)."""
    return dataclasses.replace(context, settings=dataclasses.replace(context.settings, **settings))


def run_window_by_window(context: ReplayContext, strength: float) -> tuple:
    """A closed loop run one window at a time; the books after each window and every decision it published."""
    loop = context.closed_loop(strength)
    published: list[pd.DataFrame] = []
    loop.on_decisions = published.append
    books = []
    for window in range(WINDOWS):
        loop.run(until=window + 1, progress=False)
        dead = loop.frames("dead_letters")
        books.append((dataclasses.replace(loop.processor.counters), len(dead)))
    return loop, published, books


def fresh(context: ReplayContext) -> tuple[StreamingState, StreamProcessor]:
    """A profile store at the cutoff and a processor on it."""
    state = context.initial_state()
    return state, StreamProcessor(state, context.settings.engine)


def all_customers(context: ReplayContext, *states: StreamingState) -> list:
    """Every customer of the shop and of the given states."""
    ids = set(context.tables["customers"]["customer_id"].tolist())
    for state in states:
        ids.update(state._ids)
    return sorted(ids)


def assert_same_profiles(left: StreamingState, right: StreamingState, customers: list, as_of: pd.Timestamp, *,
                         exact: bool = False) -> None:
    """Every feature of every customer identical (NaN equal to NaN). The decayed engagement sum depends on how
    records were grouped into calls in its last bits (see atelier.replay.state): unless `exact`, rtol 1e-12."""
    assert len(left) == len(right)
    a, b = left.features(customers, as_of), right.features(customers, as_of)
    loose = [] if exact else ["engagement_score"]
    pd.testing.assert_frame_equal(a.drop(columns=loose), b.drop(columns=loose), check_exact=True)
    if loose:
        pd.testing.assert_frame_equal(a[loose], b[loose], check_exact=False, rtol=1e-12, atol=0)


def plain(value):
    """An output cell in a comparable form: arrays as tuples, every kind of missing as None."""
    if isinstance(value, (np.ndarray, list)):
        return tuple(np.asarray(value).tolist())
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """Object and string columns cell by cell through `plain` (None and NaN both mean missing); others untouched."""
    frame = frame.reset_index(drop=True).copy()
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column].dtype):
            frame[column] = pd.Series([plain(v) for v in frame[column]], dtype=object)
    return frame


def assert_same_frames(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(normalized(left), normalized(right), check_exact=True)


def assert_same_replay(left: ClosedLoop, right: ClosedLoop, context: ReplayContext) -> None:
    """Two loops that ran the same windows produced the same outputs, books and profiles."""
    for kind in ("decisions", "visits", "dead_letters", "events", "orders", "profiles"):
        assert_same_frames(left.frames(kind), right.frames(kind))
    assert_same_frames(left.pending, right.pending)
    assert left.processor.counters == right.processor.counters
    assert left.processor.newest == right.processor.newest and left.processor.seen == right.processor.seen
    end = left.windows()[WINDOWS]
    assert_same_profiles(left.personalizer.state, right.personalizer.state,
                         all_customers(context, left.personalizer.state, right.personalizer.state), end, exact=True)


def event_rows(rows: list[dict]) -> pd.DataFrame:
    """Event records (the stream's shape) from dicts with customer_id, session_id, ts, event_id (+ optional fields)."""
    frame = pd.DataFrame([{"event_type": "product_view", "device": "mobile", "dwell_seconds": 12.0,
                           **row} for row in rows])
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[us]")
    columns = ["event_id", "customer_id", "session_id", "ts", "event_type", "product_id", "device", "dwell_seconds"]
    return to_records(frame[columns], None)


def visits_at(customers, at) -> pd.DataFrame:
    """Visits (customer_id, session_id, ts) of `customers`, all starting at `at`."""
    return pd.DataFrame({"customer_id": np.asarray(customers), "session_id": np.arange(len(customers)) + 10**8,
                         "ts": np.array([at] * len(customers), dtype="datetime64[us]")})


def active_customer(context: ReplayContext) -> int:
    """A customer with plenty of history before the cutoff (known to the state, with views)."""
    events = context.past["events"]
    return int(events["customer_id"].value_counts().index[0])


def a_product(context: ReplayContext) -> int:
    return int(context.tables["products"]["product_id"].iloc[0])

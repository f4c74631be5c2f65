"""The service's pure pieces: feeds (history, eviction, resume), loopback detection, JSON values, the clock."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from atelier.serve.service import Feeds, is_loopback, plain, records_frame


def test_feeds_keep_a_bounded_history_and_evict_the_oldest_idle_feed():
    feeds = Feeds(history=2, max_feeds=2)
    heard = []
    feeds.open(1, session_id=10).listeners.add(lambda i, page: heard.append((i, page["n"])))
    for n in range(3):
        feeds.publish(1, {"n": n})
    assert heard == [(1, 0), (2, 1), (3, 2)]
    assert [i for i, _ in feeds.since(1, 0)] == [2, 3]  # the history holds the last two: older ones are gone
    assert feeds.since(1, 3) == [] and feeds.since(99, 0) == []
    feeds.open(2, session_id=20)
    feeds.open(3, session_id=30)  # full: the idle feed 2 goes, feed 1 has a listener and stays
    assert feeds.watched() == [1, 3] and 2 not in feeds and len(feeds) == 2
    assert feeds.open(1, session_id=11).session_id == 10  # reopening keeps the feed (and its session)


def test_loopback_and_json_values():
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert plain(np.int64(3)) == 3 and isinstance(plain(np.int64(3)), int)
    assert plain(np.nan) is None and plain(pd.NA) is None and plain(None) is None and plain(math.inf) is None
    assert plain(np.array([1, 2])) == [1, 2] and plain("x") == "x"


def test_records_frame_has_the_stream_columns_and_types():
    frame = records_frame([
        {"record": "event", "id": 1, "customer_id": 5, "ts": pd.Timestamp("2025-05-01 10:00"), "session_id": 2,
         "event_type": "product_view", "product_id": 3, "device": "mobile", "dwell_seconds": 1.0},
        {"record": "order", "id": 7, "customer_id": None, "ts": None, "session_id": None, "amount": 9.5},
    ])
    assert str(frame["ts"].dtype) == "datetime64[us]" and frame["ts"].isna().tolist() == [False, True]
    assert frame["event_id"].tolist()[0] == 1 and pd.isna(frame["event_id"].tolist()[1])
    assert frame["order_id"].tolist()[1] == 7 and str(frame["event_type"].dtype) == "category"
    assert frame["customer_id"].tolist()[0] == 5 and frame["customer_id"].isna().tolist()[1]


def test_the_clock_starts_where_the_profiles_end_and_never_runs_behind_the_stream(make_service):
    ticks = iter([0.0, 0.0, 2.0, 2.0])
    service = make_service(monotonic=lambda: next(ticks))
    start = service.now_us()
    assert service.now_us() == start + 2_000_000  # two seconds of wall time later
    service.processor.newest = start + 10**9  # a record from the future arrived: the clock follows it
    assert service.now_us() == start + 10**9 + 1

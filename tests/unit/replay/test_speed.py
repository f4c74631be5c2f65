"""Tests for atelier.replay.speed: the recorded stream, the per-event path, micro-batch throughput and the
latency target."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from atelier.replay import speed


@pytest.fixture(scope="module")
def replayed(strong_run):
    """The strong replay's own events and orders (four days after the cutoff)."""
    loop = strong_run[0]
    return loop.frames("events"), loop.frames("orders"), loop.batch_seconds


def test_the_network_stream_is_seeded_and_cut_before_until(context, replayed):
    events, orders, _ = replayed
    first = speed.network_stream(context, events, orders, speed.THROUGHPUT_STREAM)
    pd.testing.assert_frame_equal(first, speed.network_stream(context, events, orders, speed.THROUGHPUT_STREAM))
    assert "arrival" not in first and len(first) >= len(events) + len(orders)  # duplicates are delivered too
    other = speed.network_stream(context, events, orders, speed.LATENCY_STREAM)
    assert not first["id"].equals(other["id"])  # another stream: other delays, other duplicates
    until = context.cutoff + pd.Timedelta(days=1)
    day = speed.network_stream(context, events, orders, speed.LATENCY_STREAM, until=until)
    assert 0 < len(day) < len(first) and (day["ts"] < until).all()
    assert set(day["id"]) == set(events.loc[events["ts"] < until,
                                            "event_id"]) | set(orders.loc[orders["ordered_at"] < until, "order_id"])


def test_per_event_latency_decides_each_session_once(context, base_records):
    latencies = speed.per_event_latency(context, base_records, limit=300)
    events = base_records.head(300)
    assert sorted(latencies["session_id"]) == sorted(events.loc[events["record"] == "event", "session_id"].unique())
    assert (latencies["milliseconds"] > 0).all()
    everything = speed.per_event_latency(context, base_records)
    assert everything["session_id"].nunique() == base_records.loc[base_records["record"] == "event",
                                                                  "session_id"].nunique()


def test_micro_batch_throughput_decides_every_clean_session_and_keeps_the_books(context, replayed):
    events, orders, _ = replayed
    stream = speed.network_stream(context, events, orders, speed.THROUGHPUT_STREAM)
    result = speed.micro_batch_throughput(context, stream)
    assert result["records"] == len(stream) and result["balanced"] is True
    clean_events = stream[(stream["record"] == "event") & stream["customer_id"].notna()]
    assert result["decisions"] == clean_events["session_id"].nunique()
    assert result["records_per_second"] == pytest.approx(result["records"] / result["seconds"])


@pytest.mark.parametrize("milliseconds, met, within", [
    ([0.5, 0.7, 1.9, 1.2], True, 1.0),
    ([0.5] * 98 + [2.5, 3.0], False, 0.98),  # the 99th percentile lies between the two slow ones
    ([2.0] * 10, True, 0.0),  # at the target meets it, but none is under it
])
def test_latency_target_by_hand(milliseconds, met, within):
    result = speed.latency_target(np.array(milliseconds))
    assert result["met"] is met and result["within_target"] == pytest.approx(within)
    assert result["p99"] == pytest.approx(np.percentile(milliseconds, 99)) and result["target_ms"] == speed.TARGET_MS


def test_latency_target_without_latencies_says_nothing_was_measured():
    result = speed.latency_target(np.array([]))
    assert result["met"] is None and np.isnan(result["p99"]) and np.isnan(result["within_target"])


def test_latency_bins_and_rows():
    bins = speed.latency_bins(np.array([0.05, 0.15, 1.99, 2.0, 7.0]))
    assert len(bins) == round(speed.TARGET_MS / speed.BIN_MS) + 1 and bins["count"].sum() == 5
    assert bins["count"].iloc[0] == 1 and bins["count"].iloc[-1] == 2  # 2.0 and 7.0: at or beyond the target
    rows = speed.latency_rows([0.002, 0.003], pd.DataFrame({"session_id": [1], "milliseconds": [0.4]}))
    assert rows.to_dict(orient="list") == {"kind": ["micro_batch", "micro_batch", "per_event_decision"],
                                           "milliseconds": [2.0, 3.0, 0.4]}


def test_measure_gathers_every_timing(context, replayed):
    events, orders, batch_seconds = replayed
    timing = speed.measure(context, events, orders, batch_seconds)
    assert set(timing) == {"throughput", "batch", "target", "rows", "bins"}
    recorded = speed.network_stream(context, events, orders, speed.THROUGHPUT_STREAM)
    assert timing["throughput"]["recorded"] == len(recorded) and timing["throughput"]["balanced"]
    assert timing["throughput"]["records"] == min(len(recorded), context.settings.throughput_batches
                                                  * context.settings.micro_batch_events)
    per_event = timing["rows"][timing["rows"]["kind"] == "per_event_decision"]
    assert (timing["rows"]["kind"] == "micro_batch").sum() == len(batch_seconds) == timing["batch"]["count"]
    assert timing["bins"]["count"].sum() == len(per_event) > 0
    first_day = events[events["ts"] < context.cutoff + pd.Timedelta(days=1)]
    assert len(per_event) <= first_day["session_id"].nunique()


def test_throughput_is_timed_on_the_first_micro_batches_of_the_recorded_stream(context, replayed):
    events, orders, batch_seconds = replayed
    recorded = speed.network_stream(context, events, orders, speed.THROUGHPUT_STREAM)
    short = dataclasses.replace(context, settings=dataclasses.replace(context.settings, micro_batch_events=100,
                                                                       throughput_batches=2))
    assert len(recorded) > 200
    throughput = speed.measure(short, events, orders, batch_seconds)["throughput"]
    assert throughput["records"] == 200 < throughput["recorded"] == len(recorded)
    assert throughput == {**speed.micro_batch_throughput(short, recorded.head(200)), "recorded": len(recorded),
                          "seconds": throughput["seconds"], "records_per_second": throughput["records_per_second"]}


def test_the_measurement_started_in_another_process_measures_the_same_stream(context, replayed):
    events, orders, batch_seconds = replayed
    here = speed.measure(context, events, orders, batch_seconds)
    there = speed.start_measure(context, events, orders, batch_seconds).result()
    timed = ("seconds", "records_per_second")
    assert {k: v for k, v in there["throughput"].items() if k not in timed} == {
        k: v for k, v in here["throughput"].items() if k not in timed}
    pd.testing.assert_frame_equal(there["rows"][["kind"]], here["rows"][["kind"]])  # the same decisions timed
    assert there["batch"] == here["batch"]  # the closed loop's own batches

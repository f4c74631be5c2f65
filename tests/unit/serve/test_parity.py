"""One set of logic: the replay's closed loop run through the HTTP API makes exactly the in-process replay's
decisions, dead letters and books for the same records (the tiny shop's first two days, noisy network)."""

from __future__ import annotations

import dataclasses

import pandas as pd
from fastapi.testclient import TestClient

from atelier.serve import client as remote
from atelier.serve.app import create_app
from atelier.serve.stage import static_dir

from ..replay.replay_shop import assert_same_frames, noise, variant


def test_the_first_two_days_through_the_service_give_the_replays_decisions(context, make_service, serve_settings):
    noisy = variant(context, noise=noise(), window_minutes=60)  # hourly windows; duplicates, late and corrupt records
    windows = 48  # two days: the tiny shop has ~25 visits a day
    in_process = noisy.closed_loop().run(until=windows, progress=False)
    service = make_service()
    service.processor.settings = noisy.settings.engine
    with TestClient(create_app(service, static_dir=static_dir())) as http:
        through = remote.remote_loop(noisy.closed_loop(), http, serve_settings.max_batch_records)
        assert through.personalizer.shift == remote.Shift()  # a service at the cutoff gets the replay's own records
        through.run(until=windows, progress=False)
    decisions = in_process.frames("decisions")
    assert len(decisions) > 30 and decisions["reason"].nunique() >= 3
    assert_same_frames(through.frames("decisions"), decisions)
    assert_same_frames(through.frames("visits"), in_process.frames("visits"))
    dead = in_process.frames("dead_letters")
    assert len(dead) > 0 and set(dead["reason"]) >= {"missing customer_id"}
    assert_same_frames(through.frames("dead_letters")[dead.columns], dead)
    assert dataclasses.asdict(through.processor.counters) == dataclasses.asdict(in_process.processor.counters)
    assert through.processor.counters.duplicates > 0 and through.processor.counters.balanced()
    # The service's profiles are the in-process ones, record for record.
    end = in_process.windows()[windows]
    customers = sorted(in_process.personalizer.state._ids)
    pd.testing.assert_frame_equal(service.personalizer.state.features(customers, end),
                                  in_process.personalizer.state.features(customers, end), check_exact=True)


def test_a_service_past_the_day_gets_it_shifted_to_new_days_and_ids():
    start = pd.Timestamp("2025-05-01")
    assert remote.Shift.between(start + pd.Timedelta(hours=3), None, start) == remote.Shift()
    shift = remote.Shift.between(pd.Timestamp("2025-07-01 00:05"), pd.Timestamp("2025-07-01"), start)
    assert shift == remote.Shift(days=62, ids=remote.ID_SHIFT)
    batch = pd.DataFrame({"record": ["event", "order"], "id": [55, 9], "customer_id": [1, 2], "session_id": [5, 5],
                          "ts": pd.to_datetime(["2025-05-01 10:00", "2025-05-01 11:00"]),
                          "event_type": ["product_view", None], "product_id": [3, None], "device": ["mobile", None],
                          "dwell_seconds": [1.0, None], "amount": [None, 20.0]})
    sent = remote.records_payload(batch, shift)
    assert sent[0] == {"record": "event", "id": 55 + remote.ID_SHIFT * 10_000, "customer_id": 1,
                       "ts": "2025-07-02T10:00:00", "session_id": 5 + remote.ID_SHIFT, "event_type": "product_view",
                       "product_id": 3, "device": "mobile", "dwell_seconds": 1.0}
    assert sent[1] == {"record": "order", "id": 9 + remote.ID_SHIFT, "customer_id": 2, "ts": "2025-07-02T11:00:00",
                       "session_id": 5 + remote.ID_SHIFT, "amount": 20.0}

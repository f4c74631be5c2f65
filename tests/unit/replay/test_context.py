"""Tests for atelier.replay.context: what the replay works on, and the loops built from it."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from atelier.data.features import customer_state
from atelier.replay.context import id_floor
from atelier.replay.state import StreamingState

from .replay_shop import all_customers, assert_same_profiles


def test_the_replay_starts_at_the_last_cutoff_and_ends_with_the_simulated_period(context, params):
    assert context.closed and context.cutoff == pd.Timestamp(params["timeline"]["cutoffs"][-1])
    assert context.end == pd.Timestamp(params["simulate"]["end"]) + pd.Timedelta(days=1)
    assert (context.past["orders"]["ordered_at"] < context.cutoff).all()
    assert (context.past["events"]["ts"] < context.cutoff).all()


def test_without_the_simulated_world_the_loop_is_open_and_ends_at_the_cutoff(context):
    open_context = dataclasses.replace(context, world=None)
    assert not open_context.closed and open_context.end == context.cutoff
    with pytest.raises(ValueError, match="simulated world"):
        open_context.closed_loop()


def test_the_open_loop_decides_every_visit_in_the_records_after_the_cutoff(context):
    decisions, dead_letters, counters = dataclasses.replace(context, world=None).open_loop()
    events, orders = context.tables["events"], context.tables["orders"]
    after = events[events["ts"] >= context.cutoff]
    assert counters.balanced() and counters.received == len(after) + int((orders["ordered_at"] >= context.cutoff).sum())
    assert counters.applied == counters.received and len(dead_letters) == 0  # the validated data is clean
    assert sorted(decisions["session_id"]) == sorted(after["session_id"].unique())
    assert set(decisions["reason"]) <= {"personalized", "control", "cold_start"}


def test_with_replay_adds_the_replayed_records_to_the_data_before_the_cutoff(context, strong_run):
    loop = strong_run[0]
    events, orders = loop.frames("events"), loop.frames("orders")
    tables = context.with_replay(events, orders)
    past = context.past
    assert len(tables["events"]) == len(past["events"]) + len(events)
    assert len(tables["orders"]) == len(past["orders"]) + len(orders)
    assert list(tables["events"].columns) == list(past["events"].columns)
    # replayed ids never collide with the recorded ones
    assert tables["events"]["event_id"].is_unique and tables["orders"]["order_id"].is_unique
    assert tables["customers"] is context.tables["customers"]


def test_id_floor_is_the_largest_session_and_order_id():
    tables = {"events": pd.DataFrame({"session_id": [3, 9, 4]}),
              "orders": pd.DataFrame({"order_id": [5, 12], "session_id": [11, None]})}
    assert id_floor(tables) == {"session": 11, "order": 12}
    assert id_floor({"orders": pd.DataFrame({"order_id": ["7", "x"]})}) == {"session": 0, "order": 7}


def test_the_store_at_the_cutoff_is_built_once_and_every_caller_gets_a_copy_of_its_own(context):
    fresh = dataclasses.replace(context)  # a context that has built nothing yet
    assert fresh._start is None
    first = fresh.initial_state()
    built = fresh._start
    second = fresh.initial_state()
    assert fresh._start is built and len({id(first), id(second), id(built)}) == 3
    scratch = StreamingState.from_batch(customer_state(context.past, context.cutoff, context.features), context.cutoff,
                                        context.features, products=context.tables["products"],
                                        customers=context.tables["customers"])
    customers, later = all_customers(context, scratch), context.cutoff + pd.Timedelta(days=2)
    assert_same_profiles(first, scratch, customers, later, exact=True)
    events = context.tables["events"]
    first.apply(events[(events["ts"] >= context.cutoff) & (events["ts"] < later)], None)  # one copy moves on...
    assert not first.features(customers, later).equals(scratch.features(customers, later))
    assert_same_profiles(fresh.initial_state(), scratch, customers, later, exact=True)  # ...the next is as built
    assert_same_profiles(second, scratch, customers, later, exact=True)


def test_the_context_for_a_worker_leaves_the_history_out_and_replays_the_same(context):
    light = context.for_worker()
    assert "events" not in light.tables and set(light.tables) == set(context.tables) - {"events"}
    assert light._start is context._start is not None  # the store at the cutoff, built once, carried along
    mine = context.closed_loop().run(until=24, progress=False)
    theirs = light.closed_loop().run(until=24, progress=False)
    for kind in ("visits", "decisions", "events"):
        pd.testing.assert_frame_equal(theirs.frames(kind), mine.frames(kind))

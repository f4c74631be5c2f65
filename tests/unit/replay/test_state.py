"""Tests for atelier.replay.state: the streaming feature state must reproduce the batch features.

The key guarantee: replaying every record up to T through `StreamingState` yields exactly
`build_features(tables, T)` — in one call or many, shuffled, out of order, from a cutoff or from
nothing — plus sessions spanning the cutoff, late earliest events, the fast path, checkpoints,
bounded memory and a throughput floor.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params, write_params

from atelier.data import features as F
from atelier.data import stage as data_stage
from atelier.data.features import (
    AMOUNT_SCALE,
    DWELL_SCALE,
    MICROSECONDS_PER_DAY,
    FeatureSettings,
    before_cutoff,
    build_features,
    customer_state,
    microseconds,
    sessions_table,
)
from atelier.replay import parity
from atelier.replay.state import StreamingState

CUTOFF = pd.Timestamp("2025-04-01")


STOPS = [pd.Timestamp("2025-04-10"), pd.Timestamp("2025-05-01"), pd.Timestamp("2025-06-15")]


SIM_START = pd.Timestamp("2025-01-01")


DECAYED = set(parity.DECAYED_FEATURES)


@pytest.fixture(scope="module")
def settings(tiny_root) -> FeatureSettings:
    return FeatureSettings.from_params(tiny_params()["prep"])


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def assert_batch_parity(streamed: pd.DataFrame, batch: pd.DataFrame) -> None:
    """Every feature identical (NaN equal to NaN), except the decayed ones: absolute difference below 1e-9."""
    assert list(streamed.columns) == list(batch.columns)
    exact = [c for c in batch.columns if c not in DECAYED]
    pd.testing.assert_frame_equal(streamed[exact], batch[exact], check_exact=True)
    for column in sorted(DECAYED):
        left, right = streamed[column].to_numpy(float), batch[column].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(left), np.isnan(right))
        difference = np.abs(left - right)[~np.isnan(left)]
        assert difference.max(initial=0.0) < parity.TOLERANCE, f"{column} differs by {difference.max():.2e}"


def check(state: StreamingState, tables: dict, as_of: pd.Timestamp, settings: FeatureSettings) -> pd.DataFrame:
    batch = build_features(tables, as_of, settings)
    streamed = state.features(batch.index, as_of)
    assert_batch_parity(streamed, batch)
    return streamed


def start_state(tables: dict, cutoff: pd.Timestamp, settings: FeatureSettings, **kwargs) -> StreamingState:
    state = customer_state(before_cutoff(tables, cutoff), cutoff, settings)
    return StreamingState.from_batch(state, cutoff, settings, products=tables["products"],
                                     customers=tables["customers"],
                                     **kwargs)


def between(tables: dict, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    events, orders = tables["events"], tables["orders"]
    return (events[(events["ts"] >= start) & (events["ts"] < end)],
            orders[(orders["ordered_at"] >= start) & (orders["ordered_at"] < end)])


def micro_batches(events: pd.DataFrame, orders: pd.DataFrame, size: int, rng: np.random.Generator | None = None,
                  delayed: int = 0) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Records in time order cut into batches of ~`size`; optionally shuffled within batches and with
    `delayed` random events moved 1-12 batches later (never past the last batch)."""
    timeline = np.concatenate([microseconds(events["ts"]), microseconds(orders["ordered_at"])])
    batch_of = np.empty(len(timeline), dtype=np.int64)
    batch_of[np.argsort(timeline, kind="stable")] = np.arange(len(timeline)) // size
    event_batch, order_batch = batch_of[: len(events)], batch_of[len(events):]
    last = int(batch_of.max()) if len(batch_of) else 0
    if delayed and rng is not None:
        late = rng.choice(len(events), size=min(delayed, len(events)), replace=False)
        event_batch[late] = np.minimum(event_batch[late] + rng.integers(1, 13, size=len(late)), last)
    batches = []
    for b in range(last + 1):
        e, o = events[event_batch == b], orders[order_batch == b]
        if rng is not None:
            e = e.sample(frac=1, random_state=rng)
            o = o.sample(frac=1, random_state=rng)
        batches.append((e, o))
    return batches


def replay(state: StreamingState, tables: dict, start: pd.Timestamp, stops: list[pd.Timestamp], settings, *,
           size: int | None = None, rng: np.random.Generator | None = None, delayed: int = 0) -> None:
    """Apply the records of [start, stop) for each stop and check parity at every stop."""
    previous = start
    for stop in stops:
        events, orders = between(tables, previous, stop)
        if size is None:
            state.apply(events, orders)
        else:
            for e, o in micro_batches(events, orders, size, rng, delayed):
                state.apply(e, o)
        check(state, tables, stop, settings)
        previous = stop


def internals(state: StreamingState) -> dict:
    n = len(state)
    return {"ids": list(state._ids), "arrays": {k: v[:n].copy() for k, v in state._a.items()},
            "views": state._views[:n].copy(), "starts": [list(s) for s in state._starts],
            "sessions": {k: list(v) for k, v in state._sessions.items()}, "heap": list(state._heap),
            "seq": state._seq, "newest": state._newest}


def assert_same_internals(a: dict, b: dict) -> None:
    assert a["ids"] == b["ids"]
    assert a["arrays"].keys() == b["arrays"].keys()
    for key in a["arrays"]:
        np.testing.assert_array_equal(a["arrays"][key], b["arrays"][key], err_msg=key)
        assert a["arrays"][key].dtype == b["arrays"][key].dtype
    np.testing.assert_array_equal(a["views"], b["views"])
    for key in ("starts", "sessions", "heap", "seq", "newest"):
        assert a[key] == b[key], key


def add_events(tables: dict, rows: list[tuple]) -> tuple[dict, pd.DataFrame]:
    """A copy of the tables with extra events (customer, session, ts, event_type, product, device, dwell)."""
    events = tables["events"]
    first_id = int(events["event_id"].max()) + 1
    extra = pd.DataFrame({
        "event_id": np.arange(first_id, first_id + len(rows), dtype="int64"),
        "customer_id": np.array([r[0] for r in rows], dtype="int64"),
        "session_id": np.array([r[1] for r in rows], dtype="int64"),
        "ts": pd.Series(pd.to_datetime([r[2] for r in rows]), dtype="datetime64[us]"),
        "event_type": pd.Categorical([r[3] for r in rows], dtype=events["event_type"].dtype),
        "product_id": pd.array([r[4] for r in rows], dtype="Int64"),
        "device": pd.Categorical([r[5] for r in rows], dtype=events["device"].dtype),
        "dwell_seconds": np.array([r[6] for r in rows], dtype=float),
    })
    extended = dict(tables)
    extended["events"] = pd.concat([events, extra], ignore_index=True).sort_values(["ts", "event_id"], kind="stable")
    extended["events"] = extended["events"].reset_index(drop=True)
    assert extended["events"].dtypes.equals(events.dtypes)
    return extended, extra


def quiet_customers(tables: dict, start: pd.Timestamp, end: pd.Timestamp, count: int) -> list[int]:
    """Customers with events (so they have state) but no events or orders in [start, end)."""
    events, orders = tables["events"], tables["orders"]
    busy = set(events.loc[(events["ts"] >= start) & (events["ts"] < end), "customer_id"])
    busy |= set(orders.loc[(orders["ordered_at"] >= start) & (orders["ordered_at"] < end), "customer_id"])
    active = events.loc[events["ts"] < start, "customer_id"].value_counts().index
    return [int(c) for c in active if c not in busy][:count]


# --------------------------------------------------------------------------------------------
# 1. Parity with the batch driver
# --------------------------------------------------------------------------------------------


def test_parity_one_call_per_stop(tiny_tables, settings):
    state = start_state(tiny_tables, CUTOFF, settings)
    replay(state, tiny_tables, CUTOFF, STOPS, settings)


def test_parity_small_shuffled_batches(tiny_tables, settings):
    state = start_state(tiny_tables, CUTOFF, settings)
    replay(state, tiny_tables, CUTOFF, STOPS, settings, size=97, rng=np.random.default_rng(1))


def test_parity_out_of_order_batches(tiny_tables, settings):
    # a few hundred events per segment arrive up to 12 batches late (some are a session's earliest event)
    state = start_state(tiny_tables, CUTOFF, settings)
    replay(state, tiny_tables, CUTOFF, STOPS, settings, size=60, rng=np.random.default_rng(2), delayed=300)


def test_parity_from_nothing(tiny_tables, settings):
    # from the batch state of an empty cutoff, and from the plain constructor: everything comes from the stream
    empty = start_state(tiny_tables, SIM_START, settings)
    assert len(empty) == 0
    replay(empty, tiny_tables, SIM_START, STOPS, settings, size=500, rng=np.random.default_rng(3), delayed=200)
    plain = StreamingState(settings, products=tiny_tables["products"], customers=tiny_tables["customers"])
    replay(plain, tiny_tables, SIM_START, STOPS[1:], settings)
    assert len(plain) == len(empty)


def test_unknown_customers_get_registered_customer_defaults(tiny_tables, settings):
    state = start_state(tiny_tables, CUTOFF, settings)
    batch = build_features(tiny_tables, CUTOFF, settings)
    inactive = [c for c in batch.index if not state.known(c)]
    assert inactive, "the tiny shop has registered customers without activity"
    assert_batch_parity(state.features(inactive, CUTOFF), batch.loc[inactive])
    # a customer in no table at all: zeros and empties, no demographics
    nobody = state.features([10**9], CUTOFF).iloc[0]
    assert nobody["frequency"] == 0 and np.isnan(nobody["recency_days"]) and pd.isna(nobody["region"])


def test_streamed_sums_are_exact_in_integer_units(tiny_tables, settings):
    # order-independent by construction: the same totals whatever order the records came in
    events, orders = between(tiny_tables, SIM_START, STOPS[-1])
    state = StreamingState(settings, products=tiny_tables["products"], customers=tiny_tables["customers"])
    for e, o in micro_batches(events, orders, 50, np.random.default_rng(4), delayed=500):
        state.apply(e, o)
    got = state.features(sorted(set(events["customer_id"])), STOPS[-1])
    cents = pd.Series(np.rint(orders["amount"].to_numpy() * 100).astype(np.int64), index=orders.index)
    monetary = (cents.groupby(orders["customer_id"]).sum() / 100).reindex(got.index, fill_value=0.0)
    milliseconds = pd.Series(np.rint(events["dwell_seconds"].fillna(0).to_numpy() * 1000).astype(np.int64),
                             index=events.index).groupby(events["customer_id"]).sum()
    duration = (milliseconds / 1000).reindex(got.index) / got["sessions_total"]
    assert (AMOUNT_SCALE, DWELL_SCALE) == (100, 1000)
    np.testing.assert_array_equal(got["monetary"].to_numpy(), monetary.to_numpy())
    np.testing.assert_array_equal(got["avg_session_duration"].to_numpy(), duration.to_numpy())


def test_unsupported_state_column_is_refused(tiny_tables, settings):
    state = customer_state(before_cutoff(tiny_tables, CUTOFF), CUTOFF, settings).assign(wishlist_adds=1)
    with pytest.raises(ValueError, match="wishlist_adds"):
        StreamingState.from_batch(state, CUTOFF, settings, products=tiny_tables["products"])


# --------------------------------------------------------------------------------------------
# 2. Sessions spanning the cutoff
# --------------------------------------------------------------------------------------------


def test_sessions_spanning_the_cutoff_continue(tiny_tables, settings):
    minute = pd.Timedelta(minutes=1)
    x, y = quiet_customers(tiny_tables, CUTOFF - 60 * minute, STOPS[0], 2)
    s = int(tiny_tables["events"]["session_id"].max()) + 1
    tables, _ = add_events(tiny_tables, [
        # x: a view before the cutoff, then a cart add and a purchase after it: one session, purchased
        (x, s, CUTOFF - 10 * minute, "product_view", 1, "mobile", 30.0),
        (x, s, CUTOFF + 2 * minute, "add_to_cart", 1, "desktop", 5.0),
        (x, s, CUTOFF + 5 * minute, "purchase", 1, "desktop", 5.0),
        # y: a cart add before the cutoff, the purchase after it: an abandoned cart becomes a purchased one
        (y, s + 1, CUTOFF - 20 * minute, "add_to_cart", 2, "tablet", 12.5),
        (y, s + 1, CUTOFF + 1 * minute, "purchase", 2, "tablet", 3.5),
    ])
    state = start_state(tables, CUTOFF, settings)
    events, orders = between(tables, CUTOFF, STOPS[0])
    state.apply(events, orders)
    streamed = check(state, tables, STOPS[0], settings)
    before = build_features(tables, CUTOFF, settings)
    assert streamed.loc[x, "sessions_total"] == before.loc[x, "sessions_total"]  # not a new session
    assert streamed.loc[x, "share_mobile"] == before.loc[x, "share_mobile"]  # still a mobile session
    assert before.loc[y, "cart_abandonment_rate"] > streamed.loc[y, "cart_abandonment_rate"]
    # without the open-session bookkeeping the same stream double-counts the spanning sessions
    blind_state = customer_state(before_cutoff(tables, CUTOFF), CUTOFF, settings)
    blind_state = blind_state.drop(columns=[c for c in blind_state if c.startswith("open_session_")])
    blind = StreamingState.from_batch(blind_state, CUTOFF, settings, products=tables["products"],
                                      customers=tables["customers"])
    blind.apply(events, orders)
    assert blind.features([x], STOPS[0]).loc[x, "sessions_total"] == streamed.loc[x, "sessions_total"] + 1


def test_overlapping_session_spanning_the_cutoff(tiny_tables, settings):
    minute = pd.Timedelta(minutes=1)
    (x,) = quiet_customers(tiny_tables, CUTOFF - 60 * minute, STOPS[0], 1)
    s = int(tiny_tables["events"]["session_id"].max()) + 1
    tables, _ = add_events(tiny_tables, [
        (x, s, CUTOFF - 30 * minute, "product_view", 1, "mobile", 30.0),
        (x, s + 1, CUTOFF - 20 * minute, "product_view", 2, "desktop", 30.0),  # the latest session, closed
        (x, s, CUTOFF + 10 * minute, "product_view", 3, "mobile", 30.0),  # the earlier one continues
    ])
    state = start_state(tables, CUTOFF, settings)
    state.apply(*between(tables, CUTOFF, STOPS[0]))
    check(state, tables, STOPS[0], settings)


# --------------------------------------------------------------------------------------------
# 3. A session's earliest event arriving late
# --------------------------------------------------------------------------------------------


def test_late_earliest_event_moves_start_and_device(tiny_tables, settings):
    stop = STOPS[1]
    hour = pd.Timedelta(hours=1)
    boundary = stop - 7 * F.DAY  # the 7-day window's edge
    (x,) = quiet_customers(tiny_tables, boundary - 2 * F.DAY, boundary + 2 * F.DAY, 1)
    s = int(tiny_tables["events"]["session_id"].max()) + 1
    tables, extra = add_events(tiny_tables, [
        (x, s, boundary - hour, "product_view", 1, "desktop", 20.0),  # the earliest event: outside 7 days
        (x, s, boundary + hour, "product_view", 2, "mobile", 20.0),
        (x, s, boundary + 2 * hour, "add_to_cart", 2, "mobile", 4.0),
    ])
    earliest = extra["event_id"].iloc[0]
    state = start_state(tables, CUTOFF, settings)
    events, orders = between(tables, CUTOFF, stop)
    state.apply(events[events["event_id"] != earliest], orders)
    batch = build_features(tables, stop, settings)
    early = state.features([x], stop).loc[x]
    # without its earliest event the session looks recent and mobile
    assert early["sessions_7d"] == batch.loc[x, "sessions_7d"] + 1
    assert early["share_mobile"] > batch.loc[x, "share_mobile"]
    state.apply(events[events["event_id"] == earliest], None)
    streamed = check(state, tables, stop, settings)
    assert streamed.loc[x, "sessions_total"] == early["sessions_total"]
    assert state._sessions[s][1] == microseconds(boundary - hour)


# --------------------------------------------------------------------------------------------
# 4. The per-event fast path
# --------------------------------------------------------------------------------------------


def test_feature_vector_matches_features(tiny_tables, settings):
    state = start_state(tiny_tables, CUTOFF, settings)
    state.apply(*between(tiny_tables, CUTOFF, STOPS[1]))
    customers = state._ids
    table = state.features(customers, STOPS[1])
    columns = [c for c in table.columns if table[c].dtype.kind == "f"]
    assert len(columns) > 25
    for as_of in (STOPS[1], STOPS[1] + pd.Timedelta(days=3, seconds=7), STOPS[1] + pd.Timedelta(days=95)):
        expected = state.features(customers, as_of)[columns].to_numpy()
        as_of_us = int(microseconds(as_of))
        got = np.vstack([state.feature_vector(c, as_of_us, columns) for c in customers])
        np.testing.assert_array_equal(got, expected)
    subset = ["affinity_shoes", "recency_days", "engagement_score"]
    np.testing.assert_array_equal(state.feature_vector(customers[0], as_of_us, subset),
                                  state.features([customers[0]], as_of)[subset].to_numpy()[0])
    assert state.feature_vector(10**9, as_of_us, columns) is None
    assert not state.known(10**9) and state.known(customers[0])
    # timing (reported, not asserted)
    calls = customers * (4000 // len(customers) + 1)
    began = time.perf_counter()
    for c in calls:
        state.feature_vector(c, as_of_us, columns)
    per_call = (time.perf_counter() - began) / len(calls)
    began = time.perf_counter()
    for c in customers[:200]:
        state.features([c], as_of)
    per_frame = (time.perf_counter() - began) / 200
    print(f"\nfeature_vector: {per_call * 1e6:.1f} us/call for {len(columns)} columns "
          f"(features() for one customer: {per_frame * 1e6:.0f} us)")


# --------------------------------------------------------------------------------------------
# 5. Checkpoint and restore
# --------------------------------------------------------------------------------------------


def test_checkpoint_restore_continues_identically(tiny_tables, settings, tmp_path):
    rng = np.random.default_rng(5)
    state = start_state(tiny_tables, CUTOFF, settings)
    batches = micro_batches(*between(tiny_tables, CUTOFF, STOPS[-1]), 80, rng, delayed=300)
    middle = len(batches) // 2
    for e, o in batches[:middle]:
        state.apply(e, o)
    path = tmp_path / "profiles.sqlite"
    state.checkpoint(path)
    state.checkpoint(path)  # overwriting is atomic: a temporary file renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profiles.sqlite"]
    restored = StreamingState.restore(path, settings, products=tiny_tables["products"],
                                      customers=tiny_tables["customers"])
    assert_same_internals(internals(restored), internals(state))
    for e, o in batches[middle:]:
        state.apply(e, o)
        restored.apply(e, o)
    assert_same_internals(internals(restored), internals(state))
    ids = build_features(tiny_tables, STOPS[-1], settings).index
    pd.testing.assert_frame_equal(restored.features(ids, STOPS[-1]), state.features(ids, STOPS[-1]), check_exact=True)
    check(restored, tiny_tables, STOPS[-1], settings)
    with pytest.raises(ValueError, match="settings"):
        StreamingState.restore(path, FeatureSettings(half_life_days=7.0), products=tiny_tables["products"])


def test_text_ids_and_text_columns(tiny_tables, settings, tmp_path):
    # ids as text (the contract allows it), event_type and device as plain strings; through a checkpoint
    tables = dict(tiny_tables)
    for name, columns in {"events": ["event_id", "customer_id", "session_id"], "orders": ["order_id", "customer_id"],
                          "customers": ["customer_id"]}.items():
        frame = tables[name].copy()
        for column in columns:
            frame[column] = column[0] + frame[column].astype(str)
        tables[name] = frame
    tables["events"] = tables["events"].astype({"event_type": object, "device": "string"})
    state = start_state(tables, CUTOFF, settings)
    batches = micro_batches(*between(tables, CUTOFF, STOPS[0]), 70, np.random.default_rng(7), delayed=150)
    for e, o in batches[: len(batches) // 2]:
        state.apply(e, o)
    state.checkpoint(tmp_path / "profiles.sqlite")
    restored = StreamingState.restore(tmp_path / "profiles.sqlite", settings, products=tables["products"],
                                      customers=tables["customers"])
    for e, o in batches[len(batches) // 2:]:
        state.apply(e, o)
        restored.apply(e, o)
    assert_same_internals(internals(restored), internals(state))
    assert all(isinstance(c, str) for c in restored._ids)
    check(restored, tables, STOPS[0], settings)


# --------------------------------------------------------------------------------------------
# 6. Bounded memory
# --------------------------------------------------------------------------------------------


def test_pruning_keeps_only_the_longest_window(tiny_tables, settings):
    state = start_state(tiny_tables, CUTOFF, settings)
    replay(state, tiny_tables, CUTOFF, STOPS, settings, size=200, rng=np.random.default_rng(6), delayed=100)
    events = tiny_tables["events"][tiny_tables["events"]["ts"] < STOPS[-1]]
    horizon = state._newest - max(settings.session_windows_days) * MICROSECONDS_PER_DAY
    assert state._newest == microseconds(events["ts"].max())
    sessions = sessions_table(events)
    sessions["start_us"] = microseconds(sessions["start"])
    recent = sessions[sessions["start_us"] >= horizon]
    expected = recent.sort_values("start_us").groupby("customer_id")["start_us"].apply(list).to_dict()
    for customer, row in state._index.items():
        assert state._starts[row] == expected.get(customer, []), customer
    # session bookkeeping: exactly the sessions in the longest window the state knows of (those with events
    # after the cutoff and those still open at it); the heap no bigger than needed
    open_ids = customer_state(before_cutoff(tiny_tables, CUTOFF), CUTOFF, settings)["open_session_ids"].dropna()
    at_cutoff = {int(sid) for ids in open_ids for sid in ids}
    streamed = set(events.loc[events["ts"] >= CUTOFF, "session_id"]) | at_cutoff
    assert set(state._sessions) == set(recent["session_id"]) & streamed
    assert len(state._heap) <= 2 * len(recent)
    assert sum(map(len, state._starts)) == len(recent) < len(sessions)  # something was pruned
    # and the features at later times still match the batch (what was pruned could never count again)
    check(state, before_cutoff(tiny_tables, STOPS[-1]), STOPS[-1] + pd.Timedelta(days=40), settings)


# --------------------------------------------------------------------------------------------
# 7. Throughput
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def larger_tables(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("larger_shop")
    params = tiny_params()
    params["simulate"].update(n_customers=3000, chunk_customers=3000)
    write_params(params, root)
    data_stage.run_simulate(params, root)
    data_stage.run_validate(params, root)
    return data_stage.load_validated(root)


#: Far below what the state applies on one core (~70,000 events/s in batches of 1,000, on a loaded two-core
#: machine), and far above a path that touches every record in Python: that is the regression this guards.
MIN_EVENTS_PER_SECOND = 10_000


def test_throughput_stays_far_above_a_record_by_record_path(larger_tables, settings):
    tables = larger_tables
    cutoff = pd.Timestamp(tiny_params()["timeline"]["cutoffs"][-1])
    end = tables["events"]["ts"].max() + pd.Timedelta(microseconds=1)
    state = start_state(tables, cutoff, settings)
    batches = micro_batches(*between(tables, cutoff, end), 1000)
    n_events = sum(len(e) for e, _ in batches)
    assert n_events > 50_000 and len(batches) > 50
    began = time.perf_counter()
    for e, o in batches:
        state.apply(e, o)
    seconds = time.perf_counter() - began
    assert n_events / seconds > MIN_EVENTS_PER_SECOND, f"{n_events / seconds:,.0f} events/s in batches of 1,000"
    check(state, tables, end, settings)  # and fast did not mean wrong

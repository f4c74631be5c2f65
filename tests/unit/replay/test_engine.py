"""Tests for atelier.replay.engine: records, de-duplication, the watermark and dead letters, the books, the
per-event and micro-batch paths, the processor's checkpoint and the micro-batch engine."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from atelier.data.features import microseconds
from atelier.replay.engine import (
    EVENT_COLUMNS,
    Counters,
    FrameSource,
    MemorySink,
    MicroBatchEngine,
    StreamProcessor,
    malformed_reason,
    malformed_reasons,
    to_records,
)
from atelier.replay.world import arrivals

from .replay_shop import (
    LATE_REASON,
    a_product,
    active_customer,
    all_customers,
    assert_same_frames,
    assert_same_profiles,
    event_rows,
    fresh,
    noise,
)

# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def test_to_records_stacks_events_and_orders_with_their_ids_and_times(tiny_tables):
    events, orders = tiny_tables["events"].head(50), tiny_tables["orders"].head(7)
    records = to_records(events, orders)
    assert len(records) == 57 and records["record"].value_counts().to_dict() == {"event": 50, "order": 7}
    assert records.loc[records["record"] == "event", "id"].tolist() == events["event_id"].tolist()
    assert records.loc[records["record"] == "order", "id"].tolist() == orders["order_id"].tolist()
    assert records.loc[records["record"] == "order", "ts"].tolist() == orders["ordered_at"].tolist()
    assert len(to_records(None, None)) == 0


# --------------------------------------------------------------------------------------------
# De-duplication and the books
# --------------------------------------------------------------------------------------------


def test_a_record_twice_in_one_batch_is_applied_once(context, base_records):
    records = base_records.iloc[:200]
    views = records.index[(records["record"] == "event") & (records["event_type"] == "product_view")][[3, 40]]
    reference_state, reference = fresh(context)
    reference.process(records)
    state, processor = fresh(context)
    result = processor.process(pd.concat([records, records.loc[views]]))
    assert processor.counters == Counters(received=202, applied=200, duplicates=2, late=0, malformed=0)
    assert len(result.applied) == 200 and result.duplicates == 2 and len(result.dead_letters) == 0
    as_of = context.cutoff + pd.Timedelta(days=3)
    customers = all_customers(context, state, reference_state)
    assert_same_profiles(state, reference_state, customers, as_of)
    # The check can fail: a product view applied twice does change the profile.
    doubled = context.initial_state()
    doubled.apply(records.loc[records["record"] == "event", list(EVENT_COLUMNS)], None)
    doubled.apply(records.loc[views, list(EVENT_COLUMNS)], None)
    changed = records.loc[views[0], "customer_id"]
    assert (doubled.features([changed], as_of)["views_per_session"].iloc[0]
            != state.features([changed], as_of)["views_per_session"].iloc[0])


def test_a_record_again_in_a_later_batch_is_a_duplicate(context, base_records):
    records = base_records.iloc[:200]
    reference_state, reference = fresh(context)
    reference.process(records)
    state, processor = fresh(context)
    processor.process(records.iloc[:100])
    again = pd.concat([records.iloc[100:], records.iloc[[5, 17, 99]]])
    result = processor.process(again)
    assert result.duplicates == 3 and len(result.applied) == 100
    assert processor.counters == Counters(received=203, applied=200, duplicates=3, late=0, malformed=0)
    assert_same_profiles(state, reference_state, all_customers(context, state), context.cutoff + pd.Timedelta(days=3))
    assert processor.seen == reference.seen and processor.newest == reference.newest


def test_books_balance_after_every_batch_of_a_noisy_stream(context, base_records):
    """Without late records the outcome is known exactly: corrupted copies are malformed, the rest applied once."""
    delivered = arrivals(base_records, noise(late=0.0, duplicate=0.2, malformed=0.05), np.random.default_rng(11))
    corrupted = delivered["customer_id"].isna().to_numpy()
    assert corrupted.sum() > 5 and len(delivered) > len(base_records) + 50
    state, processor = fresh(context)
    received, applied_keys = 0, set()
    for batch in FrameSource(delivered.drop(columns="arrival"), 37).batches():
        before = dataclasses.replace(processor.counters)
        result = processor.process(batch)
        received += len(batch)
        books = processor.counters
        assert books.balanced() and books.received == received
        assert len(result.dead_letters) == (books.late - before.late) + (books.malformed - before.malformed)
        keys = set(zip(result.applied["record"], result.applied["id"]))
        assert len(keys) == len(result.applied) and not keys & applied_keys
        applied_keys |= keys
    clean_keys = set(zip(delivered.loc[~corrupted, "record"], delivered.loc[~corrupted, "id"]))
    assert processor.counters == Counters(received=len(delivered), applied=len(clean_keys), late=0,
                                          malformed=int(corrupted.sum()),
                                          duplicates=int((~corrupted).sum()) - len(clean_keys))
    assert applied_keys == clean_keys and len(processor.seen) == len(clean_keys)


def test_books_balance_after_every_window_of_the_closed_loop(strong_run):
    loop, _, books = strong_run
    for counters, dead_letters in books:
        assert counters.balanced()
        assert dead_letters == counters.late + counters.malformed
    final = loop.processor.counters
    assert final.duplicates > 0 and final.malformed > 0 and final.late > 0  # the noisy network exercised every path
    assert len(loop.processor.seen) == final.applied  # each applied id once
    dead = loop.frames("dead_letters")
    assert set(dead["reason"]) == {"missing customer_id", LATE_REASON}
    assert dead.loc[dead["reason"] == "missing customer_id", "customer_id"].isna().all()


def test_a_clean_copy_after_a_corrupted_one_in_the_same_batch_is_applied(context, base_records):
    record = base_records.iloc[[0]]
    corrupted = record.assign(customer_id=pd.Series([None], dtype=object, index=record.index))
    _, per_event = fresh(context)
    verdicts = [per_event.admit(r) for r in pd.concat([corrupted, record]).to_dict(orient="records")]
    assert verdicts == ["malformed", "clean"]
    _, processor = fresh(context)
    processor.process(pd.concat([corrupted, record], ignore_index=True))
    assert processor.counters == Counters(received=2, applied=1, duplicates=0, late=0, malformed=1)


# --------------------------------------------------------------------------------------------
# Lateness and dead letters
# --------------------------------------------------------------------------------------------


def test_watermark_and_allowed_lateness(context):
    """Watermark = newest - delay (120 s); older than the watermark by more than the allowed lateness (600 s): late."""
    delay, allowed = context.settings.engine.watermark_delay_seconds, context.settings.engine.allowed_lateness_seconds
    customer, product = active_customer(context), a_product(context)
    now = context.cutoff + pd.Timedelta(hours=10)
    as_of = now + pd.Timedelta(hours=1)
    state, processor = fresh(context)
    assert processor.watermark == np.iinfo(np.int64).min  # nothing seen yet: nothing is late
    processor.process(event_rows([{"event_id": 1, "customer_id": customer, "session_id": 10**9, "ts": now,
                                   "product_id": product}]))
    now_us = int(microseconds(now))
    assert processor.watermark == now_us - int(delay * 1_000_000)

    before = state.features([customer], as_of)
    late = event_rows([{"event_id": 2, "customer_id": customer, "session_id": 10**9 + 1,
                        "ts": now - pd.Timedelta(seconds=delay + allowed + 1),
                        "product_id": product}])
    result = processor.process(late)
    assert len(result.applied) == 0 and result.dead_letters["reason"].tolist() == [LATE_REASON]
    assert result.dead_letters["id"].tolist() == [2]
    pd.testing.assert_frame_equal(state.features([customer], as_of), before)
    assert processor.counters.late == 1 and processor.newest == now_us

    on_time = event_rows([{"event_id": 3, "customer_id": customer, "session_id": 10**9 + 2,
                           "ts": now - pd.Timedelta(seconds=delay + allowed),
                           "product_id": product}])
    result = processor.process(on_time)
    assert len(result.applied) == 1 and len(result.dead_letters) == 0
    after = state.features([customer], as_of)
    assert after["sessions_total"].iloc[0] == before["sessions_total"].iloc[0] + 1
    assert processor.counters == Counters(received=3, applied=2, duplicates=0, late=1, malformed=0)

    # The per-event path draws the same line.
    _, single = fresh(context)
    records = pd.concat([event_rows([{"event_id": 1, "customer_id": customer, "session_id": 10**9, "ts": now,
                                      "product_id": product}]),
                         late, on_time]).to_dict(orient="records")
    assert [single.admit(r) for r in records] == ["clean", "late", "clean"]


MALFORMED_CASES = [
    ("event", "customer_id", None, "missing customer_id"),
    ("event", "ts", pd.NaT, "missing or unparseable timestamp"),
    ("event", "dwell_seconds", -3.0, "negative dwell_seconds"),
    ("order", "amount", -5.0, "missing or negative amount"),
    ("order", "amount", None, "missing or negative amount"),
    ("event", "record", "click", "unknown record kind"),
    ("event", "id", None, "missing id"),
    ("event", "session_id", None, "missing session_id"),
    ("event", "event_type", None, "missing event_type"),
    ("order", "customer_id", None, "missing customer_id"),
]


@pytest.mark.parametrize("kind, column, value, reason", MALFORMED_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in MALFORMED_CASES])
def test_malformed_records_are_dead_lettered_with_their_reason(context, kind, column, value, reason):
    customer, product = active_customer(context), a_product(context)
    at = context.cutoff + pd.Timedelta(hours=5)
    events = pd.DataFrame({"event_id": [7, 8], "customer_id": customer, "session_id": [10**9, 10**9 + 1],
                           "ts": np.array([at, at + pd.Timedelta(minutes=1)], dtype="datetime64[us]"),
                           "event_type": "product_view", "product_id": product, "device": "desktop",
                           "dwell_seconds": 30.0})
    orders = pd.DataFrame({"order_id": [5], "customer_id": customer,
                           "ordered_at": np.array([at + pd.Timedelta(minutes=2)],
                                                                                             dtype="datetime64[us]"),
                           "amount": 80.0, "quantity": 1, "discount": 0.0, "session_id": 10**9 + 1})
    records = to_records(events, orders)
    position = int(np.flatnonzero(records["record"].to_numpy() == kind)[-1])
    bad = records.astype({column: object}) if column not in ("ts",) else records.copy()
    bad.loc[position, column] = value
    good = records.drop(index=position)

    reference_state, reference = fresh(context)
    reference.process(good)
    state, processor = fresh(context)
    result = processor.process(bad)
    assert result.dead_letters["reason"].tolist() == [reason]
    assert processor.counters == Counters(received=3, applied=2, duplicates=0, late=0, malformed=1)
    as_of = at + pd.Timedelta(hours=1)
    assert_same_profiles(state, reference_state, [customer], as_of)
    assert malformed_reason(bad.loc[position].to_dict()) == reason
    _, single = fresh(context)
    assert single.admit(bad.loc[position].to_dict()) == "malformed" and single.counters.malformed == 1


def _random_batch(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Records with a mix of good and bad values of every checked field (some optional columns left out)."""
    def pick(options, p=None):
        return [options[i] for i in rng.choice(len(options), size=n, p=p)]

    at = pd.Timestamp("2025-05-01")
    frame = pd.DataFrame({
        "record": pick(["event", "order", "click", None], [0.45, 0.4, 0.1, 0.05]),
        "id": pick([1, 2, 3, None, np.nan], [0.3, 0.3, 0.3, 0.05, 0.05]),
        "customer_id": pick([11, 12, None, np.nan], [0.45, 0.45, 0.05, 0.05]),
        "ts": pd.Series(pick([at, at + pd.Timedelta(hours=1), pd.NaT, None], [0.45, 0.45, 0.05, 0.05])),
        "event_type": pick(["product_view", "purchase", None], [0.5, 0.4, 0.1]),
        "session_id": pick([100, 200, None], [0.45, 0.45, 0.1]),
        "dwell_seconds": pick([10.0, 0.0, -0.5, -0.0, np.nan], [0.4, 0.2, 0.2, 0.1, 0.1]),
        "amount": pick([25.0, 0.0, -1.0, np.nan, None, "12.5", "abc", "-3"],
                       [0.3, 0.1, 0.15, 0.1, 0.05, 0.1, 0.1, 0.1]),
    })
    for optional in ("event_type", "session_id", "dwell_seconds", "amount"):
        if rng.random() < 0.25:
            frame = frame.drop(columns=optional)
    if rng.random() < 0.5:
        frame = frame.astype(object)  # the same values held as Python objects
    return frame


def test_scalar_and_vectorized_malformed_checks_agree_on_random_records():
    rng = np.random.default_rng(2025)
    seen_reasons = set()
    for _ in range(60):
        batch = _random_batch(rng, 50)
        vectorized = malformed_reasons(batch).tolist()
        scalar = [malformed_reason(record) for record in batch.to_dict(orient="records")]
        assert vectorized == scalar, batch.assign(vectorized=vectorized, scalar=scalar)[
            [v != s for v, s in zip(vectorized, scalar)]].to_string()
        seen_reasons.update(vectorized)
    assert seen_reasons >= {None, "unknown record kind", "missing id", "missing customer_id",
                            "missing or unparseable timestamp",
                            "missing event_type", "missing session_id", "negative dwell_seconds",
                            "missing or negative amount"}


# --------------------------------------------------------------------------------------------
# The per-event path and the micro-batch path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size, late_share", [(1, 0.05), (64, 0.0)])
def test_per_event_path_reaches_the_micro_batch_state_and_books(context, base_records, batch_size, late_share):
    """One record per batch matches the per-event path exactly, late records included; bigger batches
    match it whenever nothing is late (their watermark moves once per batch)."""
    delivered = arrivals(base_records, noise(late=late_share), np.random.default_rng(5)).drop(columns="arrival")
    batch_state, batched = fresh(context)
    dead = [batched.process(batch).dead_letters for batch in FrameSource(delivered, batch_size).batches()]
    event_state, single = fresh(context)
    verdicts = []
    for record in delivered.to_dict(orient="records"):
        verdicts.append(single.admit(record))
        if verdicts[-1] == "clean":
            single.apply_one(record)
    assert batched.counters == single.counters and batched.counters.balanced()
    books = batched.counters
    assert books.duplicates > 0 and books.malformed > 0 and (books.late > 0) == (late_share > 0)
    assert batched.seen == single.seen and batched.newest == single.newest
    dead_ids = pd.concat(dead)["id"].tolist()
    records = delivered.to_dict(orient="records")
    assert dead_ids == [r["id"] for r, v in zip(records, verdicts) if v in ("late", "malformed")]
    assert_same_profiles(batch_state, event_state, all_customers(context, batch_state, event_state),
                         context.cutoff + pd.Timedelta(days=2, hours=1))


# --------------------------------------------------------------------------------------------
# Durability
# --------------------------------------------------------------------------------------------


def test_processor_checkpoint_round_trips_watermark_ids_and_books(context, base_records, tmp_path):
    delivered = arrivals(base_records, noise(), np.random.default_rng(3)).drop(columns="arrival")
    first, second = delivered.iloc[: len(delivered) // 2], delivered.iloc[len(delivered) // 2:]
    state, processor = fresh(context)
    for batch in FrameSource(first, 50).batches():
        processor.process(batch)
    state.checkpoint(tmp_path / "profiles.sqlite")
    processor.checkpoint(tmp_path / "processor.sqlite")

    restored_state = type(state).restore(tmp_path / "profiles.sqlite", context.features,
                                         products=context.tables["products"],
                                         customers=context.tables["customers"])
    restored = StreamProcessor(restored_state, context.settings.engine)
    restored.restore(tmp_path / "processor.sqlite")
    assert restored.newest == processor.newest and restored.watermark == processor.watermark
    assert restored.seen == processor.seen and len(restored.seen) == processor.counters.applied
    assert restored.counters == processor.counters

    # Both continue identically, replays of ids from before the checkpoint included.
    replays = first.iloc[::7]
    for batch in FrameSource(pd.concat([second, replays]), 50).batches():
        a, b = processor.process(batch), restored.process(batch)
        assert_same_frames(a.dead_letters, b.dead_letters)
        assert a.duplicates == b.duplicates
    assert restored.counters == processor.counters and restored.counters.duplicates >= len(replays)
    assert_same_profiles(restored_state, state, all_customers(context, state), context.cutoff + pd.Timedelta(days=3))


# --------------------------------------------------------------------------------------------
# The micro-batch engine
# --------------------------------------------------------------------------------------------


def test_micro_batch_engine_decides_each_session_once_before_its_events(context, base_records):
    delivered = arrivals(base_records, noise(late=0.0), np.random.default_rng(9)).drop(columns="arrival")
    state = context.initial_state()
    deciding = context.personalizer(state)
    logged: list[pd.DataFrame] = []

    def decide(starts: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        decisions = deciding.decide(starts, as_of)
        logged.append(deciding.last_profiles[["session_id", "customer_id", "sessions_total"]].assign(batch=len(logged)))
        return decisions

    initial = state.features(all_customers(context, state), context.cutoff)["sessions_total"]
    sink = MemorySink()
    engine = MicroBatchEngine(StreamProcessor(state, context.settings.engine), decide=decide)
    counters = engine.run(FrameSource(delivered, 15), sink)
    assert counters.balanced() and counters.late == 0 and counters.malformed > 0 and counters.duplicates > 0
    decisions = sink.frames("decisions")
    clean = delivered[delivered["customer_id"].notna() & (delivered["record"] == "event")]
    assert sorted(decisions["session_id"]) == sorted(clean["session_id"].unique())
    assert not decisions["session_id"].duplicated().any()
    assert len(sink.frames("dead_letters")) == counters.malformed

    profiles = pd.concat(logged, ignore_index=True)
    assert profiles["batch"].nunique() > 10
    profiles["customer_id"] = profiles["customer_id"].astype("int64")
    for row in profiles.itertuples(index=False):
        mine = profiles[profiles["customer_id"] == row.customer_id]
        earlier = int((mine["batch"] < row.batch).sum())  # sessions of this customer applied before this batch
        assert row.sessions_total == initial.loc[row.customer_id] + earlier
    final = state.features(all_customers(context, state),
                           context.cutoff + pd.Timedelta(days=2, hours=1))["sessions_total"]
    per_customer = profiles.groupby("customer_id").size()
    np.testing.assert_array_equal(final.loc[per_customer.index], initial.loc[per_customer.index] + per_customer)


def test_summary_is_the_books_with_their_balance():
    from atelier.replay.engine import summary

    assert summary(Counters(received=10, applied=7, duplicates=1, late=1, malformed=1)) == {
        "received": 10, "applied": 7, "duplicates": 1, "late": 1, "malformed": 1, "balanced": True}
    assert summary(Counters(received=10, applied=7, duplicates=1, late=1, malformed=0))["balanced"] is False


def test_stack_builds_what_concat_builds_and_falls_back_to_it():
    from atelier.replay.engine import stack

    kinds = pd.CategoricalDtype(["view", "cart"])
    top = pd.DataFrame({"id": [1, 2], "kind": pd.Categorical(["cart", "view"], dtype=kinds),
                        "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]).as_unit("us"),
                        "record": pd.Series(["event", "event"], dtype="str"), "dwell": [1.5, np.nan]},
                       index=[7, 3])
    bottom = pd.DataFrame({"id": [3], "record": pd.Series(["order"], dtype="str"), "amount": [9.5],
                           "quantity": [2], "at": pd.to_datetime(["2024-01-03"]).as_unit("us")})
    for frames in ([top, bottom], [bottom, top], [top], [top.astype({"id": object}), bottom],
                   [top, bottom.astype({"record": object})]):
        stacked, expected = stack(frames), pd.concat(frames, ignore_index=True)
        pd.testing.assert_frame_equal(stacked, expected, check_exact=True)
        assert stacked.columns.dtype == expected.columns.dtype

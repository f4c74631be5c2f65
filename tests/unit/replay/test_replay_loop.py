"""Tests for the real-time replay: the stream processor (atelier.replay.engine), the policy, the scorer,
the personalizer and the closed loop (atelier.replay.loop) on the tiny simulated shop.

Expectations come from construction: records duplicated, delayed, corrupted by hand (or by the
network model with exactly known corruption), the watermark worked out in microseconds, a per-event
run and a micro-batch run of the same stream, an uninterrupted replay against one stopped,
checkpointed and finished by a fresh loop, common random numbers between replays that differ only
in the response strength or the arm split, and policy decisions recomputed from the logged profiles.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params

from atelier.core import paths
from atelier.data import prep, transform
from atelier.data.features import FeatureSettings, microseconds
from atelier.model import propensity
from atelier.model.champion import Champion, try_load_champion
from atelier.model.registry import Registry
from atelier.replay import stage
from atelier.replay.abtest import assign_arm
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
from atelier.replay.policy import (
    COMPLETE_THE_LOOK,
    DEFAULT_BANNER,
    Assortment,
    PolicySettings,
    choose,
    decide,
    default_experience,
    shown_shares,
    top_categories,
)
from atelier.replay.world import NoiseSettings, arrivals

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
SEGMENT_NAMES = ["High-Value Loyal", "Bargain Hunters", "Window Browsers", "Lapsing", "Dormant Sign-ups", "Mystery Shoppers"]


def noise(*, late: float = 0.05, duplicate: float = 0.15, malformed: float = 0.03) -> NoiseSettings:
    """A much noisier network than params.yaml's (so every path shows up in a few days of tiny data).

    A late record is delayed by 1.5-2.5 x `lateness_seconds` (params.yaml: watermark delay + allowed lateness)."""
    engine = tiny_params()["replay"]
    return NoiseSettings(network_delay_seconds=2.0, late_share=late, duplicate_share=duplicate, malformed_share=malformed,
                         lateness_seconds=float(engine["watermark_delay_seconds"]) + float(engine["allowed_lateness_seconds"]))


# --------------------------------------------------------------------------------------------
# Fixtures: a champion (XGBoost on the numeric features, registered), the replay context, replays
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def params() -> dict:
    return tiny_params()


@pytest.fixture(scope="module")
def feature_settings(params) -> FeatureSettings:
    return FeatureSettings.from_params(params["prep"])


@pytest.fixture(scope="module")
def snapshots(tiny_tables, params, feature_settings) -> pd.DataFrame:
    return prep.build_snapshots(tiny_tables, TRAIN_CUTOFFS, int(params["timeline"]["horizon_days"]), feature_settings)


@pytest.fixture(scope="module")
def model_settings(params) -> propensity.ModelSettings:
    return propensity.ModelSettings.from_params(params["model"], params["seed"])


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory, snapshots, model_settings):
    """A registry whose champion is a small XGBoost on the numeric features (the scorer's fast path)."""
    numeric, _ = propensity.features_of(snapshots)
    pipeline = propensity.fit(propensity.tuned("xgboost", {"n_estimators": 20, "max_depth": 2, "learning_rate": 0.1},
                                               numeric, [], model_settings), snapshots, numeric, [])
    folder = tmp_path_factory.mktemp("replay_models") / "registry"
    registry = Registry(folder)
    registry.set_alias("champion", registry.register(pipeline, name="xgboost", metadata={"features": numeric}))
    return folder


@pytest.fixture(scope="module")
def scorer(registry_dir) -> Champion:
    loaded, problem = try_load_champion(registry_dir)
    assert problem is None and loaded is not None
    # Predictions do not depend on the thread count; one thread keeps tiny calls fast (two cost ~20 ms a call here).
    loaded._booster.set_param({"nthread": 1})
    return loaded


@pytest.fixture(scope="module")
def context(tiny_root, params, scorer):
    """The replay context of the tiny shop, with the registered champion and hand-made segments."""
    ctx = stage.load_context(tiny_root, params)
    assert ctx.closed and ctx.world is not None
    ctx.scorer, ctx.model_problem = scorer, None
    ids = ctx.tables["customers"]["customer_id"].tolist()
    ctx.segments = {c: SEGMENT_NAMES[i % len(SEGMENT_NAMES)] for i, c in enumerate(ids)}
    return ctx


def variant(context, **settings):
    """The context with other replay settings (the module's context is never changed)."""
    return dataclasses.replace(context, settings=dataclasses.replace(context.settings, **settings))


@pytest.fixture(scope="module")
def noisy(context):
    return variant(context, noise=noise(), window_minutes=WINDOW_MINUTES, checkpoint_every_windows=24)


def _run_window_by_window(ctx, strength: float) -> tuple:
    """A closed loop run one window at a time; the books after each window and every decision it published."""
    loop = stage.closed_loop(ctx, strength)
    published: list[pd.DataFrame] = []
    loop.on_decisions = published.append
    books = []
    for window in range(WINDOWS):
        loop.run(until=window + 1, progress=False)
        dead = loop.frames("dead_letters")
        books.append((dataclasses.replace(loop.processor.counters), len(dead)))
    return loop, published, books


@pytest.fixture(scope="module")
def strong_run(noisy):
    """Four days at response strength 2 on the noisy network."""
    return _run_window_by_window(noisy, STRONG)


@pytest.fixture(scope="module")
def null_run(noisy):
    """The same four days at strength 0 (showing anything changes nothing)."""
    loop = stage.closed_loop(noisy, 0.0)
    return loop.run(until=WINDOWS, progress=False)


@pytest.fixture(scope="module")
def all_control_run(noisy):
    """Strength 0 with everyone in control."""
    loop = stage.closed_loop(variant(noisy, treatment_share=0.0), 0.0)
    return loop.run(until=WINDOWS, progress=False)


@pytest.fixture(scope="module")
def base_records(context) -> pd.DataFrame:
    """Two days of the recorded shop after the cutoff (sessions that start after it), as one stream in time order."""
    events, orders = context.tables["events"], context.tables["orders"]
    end = context.cutoff + pd.Timedelta(days=2)
    first = events.groupby("session_id")["ts"].transform("min")
    events = events[(first >= context.cutoff) & (events["ts"] < end)]
    orders = orders[(orders["ordered_at"] >= context.cutoff) & (orders["ordered_at"] < end)]
    records = to_records(events, orders).sort_values(["ts", "record", "id"], kind="stable").reset_index(drop=True)
    assert (records["record"] == "event").sum() > 200 and (records["record"] == "order").sum() >= 1
    return records


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def fresh(context) -> tuple:
    state = stage.initial_state(context)
    return state, StreamProcessor(state, context.settings.engine)


def all_customers(context, *states) -> list:
    ids = set(context.tables["customers"]["customer_id"].tolist())
    for state in states:
        ids.update(state._ids)
    return sorted(ids)


def assert_same_profiles(left, right, customers, as_of, *, exact: bool = False) -> None:
    """Every feature of every customer identical (NaN equal to NaN). The decayed engagement sum depends on how
    records were grouped into calls in its last bits (see atelier.replay.state), so unless `exact` it gets rtol 1e-12."""
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


def event_rows(rows: list[dict]) -> pd.DataFrame:
    """Event records (the stream's shape) from dicts with customer_id, session_id, ts, event_id (+ optional fields)."""
    frame = pd.DataFrame([{"event_type": "product_view", "device": "mobile", "dwell_seconds": 12.0, **row} for row in rows])
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[us]")
    return to_records(frame[["event_id", "customer_id", "session_id", "ts", "event_type", "product_id", "device", "dwell_seconds"]],
                      None)


def active_customer(context) -> int:
    """A customer with plenty of history before the cutoff (known to the state, with views)."""
    events = context.past["events"]
    return int(events["customer_id"].value_counts().index[0])


def a_product(context) -> int:
    return int(context.tables["products"]["product_id"].iloc[0])


# --------------------------------------------------------------------------------------------
# to_records
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
# 1. De-duplication and the books
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
    doubled = stage.initial_state(context)
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
# 2. Lateness and dead letters
# --------------------------------------------------------------------------------------------
def test_watermark_and_allowed_lateness(context):
    """Watermark = newest - delay (120 s); older than the watermark by more than the allowed lateness (600 s) is late."""
    delay, allowed = context.settings.engine.watermark_delay_seconds, context.settings.engine.allowed_lateness_seconds
    customer, product = active_customer(context), a_product(context)
    now = context.cutoff + pd.Timedelta(hours=10)
    as_of = now + pd.Timedelta(hours=1)
    state, processor = fresh(context)
    assert processor.watermark == np.iinfo(np.int64).min  # nothing seen yet: nothing is late
    processor.process(event_rows([{"event_id": 1, "customer_id": customer, "session_id": 10**9, "ts": now, "product_id": product}]))
    now_us = int(microseconds(now))
    assert processor.watermark == now_us - int(delay * 1_000_000)

    before = state.features([customer], as_of)
    late = event_rows([{"event_id": 2, "customer_id": customer, "session_id": 10**9 + 1, "ts": now - pd.Timedelta(seconds=delay + allowed + 1),
                        "product_id": product}])
    result = processor.process(late)
    assert len(result.applied) == 0 and result.dead_letters["reason"].tolist() == [LATE_REASON]
    assert result.dead_letters["id"].tolist() == [2]
    pd.testing.assert_frame_equal(state.features([customer], as_of), before)
    assert processor.counters.late == 1 and processor.newest == now_us

    on_time = event_rows([{"event_id": 3, "customer_id": customer, "session_id": 10**9 + 2, "ts": now - pd.Timedelta(seconds=delay + allowed),
                           "product_id": product}])
    result = processor.process(on_time)
    assert len(result.applied) == 1 and len(result.dead_letters) == 0
    after = state.features([customer], as_of)
    assert after["sessions_total"].iloc[0] == before["sessions_total"].iloc[0] + 1
    assert processor.counters == Counters(received=3, applied=2, duplicates=0, late=1, malformed=0)

    # The per-event path draws the same line.
    _, single = fresh(context)
    records = pd.concat([event_rows([{"event_id": 1, "customer_id": customer, "session_id": 10**9, "ts": now, "product_id": product}]),
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


@pytest.mark.parametrize("kind, column, value, reason", MALFORMED_CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in MALFORMED_CASES])
def test_malformed_records_are_dead_lettered_with_their_reason(context, kind, column, value, reason):
    customer, product = active_customer(context), a_product(context)
    at = context.cutoff + pd.Timedelta(hours=5)
    events = pd.DataFrame({"event_id": [7, 8], "customer_id": customer, "session_id": [10**9, 10**9 + 1],
                           "ts": np.array([at, at + pd.Timedelta(minutes=1)], dtype="datetime64[us]"),
                           "event_type": "product_view", "product_id": product, "device": "desktop", "dwell_seconds": 30.0})
    orders = pd.DataFrame({"order_id": [5], "customer_id": customer, "ordered_at": np.array([at + pd.Timedelta(minutes=2)],
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
        "amount": pick([25.0, 0.0, -1.0, np.nan, None, "12.5", "abc", "-3"], [0.3, 0.1, 0.15, 0.1, 0.05, 0.1, 0.1, 0.1]),
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
    assert seen_reasons >= {None, "unknown record kind", "missing id", "missing customer_id", "missing or unparseable timestamp",
                            "missing event_type", "missing session_id", "negative dwell_seconds", "missing or negative amount"}


# --------------------------------------------------------------------------------------------
# 3. The per-event path and the micro-batch path
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
    assert dead_ids == [r["id"] for r, v in zip(delivered.to_dict(orient="records"), verdicts) if v in ("late", "malformed")]
    assert_same_profiles(batch_state, event_state, all_customers(context, batch_state, event_state),
                         context.cutoff + pd.Timedelta(days=2, hours=1))


# --------------------------------------------------------------------------------------------
# 4. Durability
# --------------------------------------------------------------------------------------------
def test_processor_checkpoint_round_trips_watermark_ids_and_books(context, base_records, tmp_path):
    delivered = arrivals(base_records, noise(), np.random.default_rng(3)).drop(columns="arrival")
    first, second = delivered.iloc[: len(delivered) // 2], delivered.iloc[len(delivered) // 2:]
    state, processor = fresh(context)
    for batch in FrameSource(first, 50).batches():
        processor.process(batch)
    state.checkpoint(tmp_path / "profiles.sqlite")
    processor.checkpoint(tmp_path / "processor.sqlite")

    restored_state = type(state).restore(tmp_path / "profiles.sqlite", context.features, products=context.tables["products"],
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


def _restart(ctx, strength: float, folder):
    """Run (checkpointing) to the first window from HALF on with records in flight; a fresh loop restored
    from that checkpoint runs to WINDOWS. Returns it and the number of records in flight at the checkpoint."""
    first = stage.closed_loop(ctx, strength)
    first.run(until=HALF, checkpoint_dir=folder, progress=False)
    while len(first.pending) == 0 and first.window < WINDOWS - 8:
        first.run(until=first.window + 1, checkpoint_dir=folder, progress=False)
    stopped, in_flight = first.window, len(first.pending)
    second = stage.closed_loop(ctx, strength)
    second.restore(folder, ctx.features, ctx.tables["products"], ctx.tables["customers"])
    assert second.window == stopped
    return second.run(until=WINDOWS, progress=False), in_flight


def assert_same_replay(left, right, context) -> None:
    for kind in ("decisions", "visits", "dead_letters", "events", "orders", "profiles"):
        assert_same_frames(left.frames(kind), right.frames(kind))
    assert_same_frames(left.pending, right.pending)
    assert left.processor.counters == right.processor.counters
    assert left.processor.newest == right.processor.newest and left.processor.seen == right.processor.seen
    end = left.windows()[WINDOWS]
    assert_same_profiles(left.personalizer.state, right.personalizer.state,
                         all_customers(context, left.personalizer.state, right.personalizer.state), end, exact=True)


def test_closed_loop_restart_from_a_checkpoint_is_equivalent(context, tmp_path):
    """No corrupted records (see the next test): late records, duplicates and records in flight at the checkpoint."""
    ctx = variant(context, noise=noise(malformed=0.0), window_minutes=WINDOW_MINUTES, checkpoint_every_windows=24)
    uninterrupted = stage.closed_loop(ctx, STRONG).run(until=WINDOWS, progress=False)
    restarted, in_flight = _restart(ctx, STRONG, tmp_path / "checkpoint")
    assert in_flight > 0 and uninterrupted.processor.counters.duplicates > 0 and uninterrupted.processor.counters.late > 0
    assert (uninterrupted.frames("decisions")["reason"] == "personalized").any()
    assert_same_replay(uninterrupted, restarted, context)


def test_closed_loop_restart_is_equivalent_on_the_noisy_network(strong_run, noisy, context, tmp_path):
    uninterrupted = strong_run[0]
    assert uninterrupted.processor.counters.malformed > 0
    restarted, _ = _restart(noisy, STRONG, tmp_path / "checkpoint")
    assert_same_replay(uninterrupted, restarted, context)


# --------------------------------------------------------------------------------------------
# 5. A/B assignment
# --------------------------------------------------------------------------------------------
def test_arms_are_stable_across_the_replay_and_across_loops(strong_run, null_run, all_control_run, context):
    decisions = strong_run[0].frames("decisions")
    assert decisions.groupby("customer_id")["arm"].nunique().max() == 1
    assert decisions["customer_id"].duplicated().any()  # repeat visitors exist, so stability is tested
    other = null_run.frames("decisions")
    assert other["session_id"].tolist() == decisions["session_id"].tolist()
    assert other["arm"].tolist() == decisions["arm"].tolist()
    assert decisions["arm"].tolist() == assign_arm(decisions["customer_id"].to_numpy(), context.settings.seed,
                                                   context.settings.treatment_share).tolist()
    visits = strong_run[0].frames("visits")
    assert visits["arm"].tolist() == decisions["arm"].tolist()
    assert set(all_control_run.frames("decisions")["arm"]) == {"control"}


def test_treatment_share_is_near_the_setting(context):
    customers = context.tables["customers"]["customer_id"].to_numpy()
    for share in (0.5, 0.2):
        arms = assign_arm(customers, context.settings.seed, share)
        observed = float(np.mean(arms == "treatment"))
        assert abs(observed - share) < 4 * np.sqrt(share * (1 - share) / len(customers))
    smaller = assign_arm(customers, context.settings.seed, 0.2) == "treatment"
    larger = assign_arm(customers, context.settings.seed, 0.5) == "treatment"
    assert not (smaller & ~larger).any()  # raising the share only moves customers into treatment


# --------------------------------------------------------------------------------------------
# 6. The response model
# --------------------------------------------------------------------------------------------
def test_personalization_is_more_relevant_and_raises_the_chance_to_buy(strong_run):
    visits = strong_run[0].frames("visits")
    by_arm = visits.groupby("arm")
    assert by_arm["relevance"].mean()["treatment"] > by_arm["relevance"].mean()["control"]
    assert by_arm["multiplier"].mean()["treatment"] > 1
    default = visits[visits["experience"] == "default"]
    assert (default["multiplier"] == 1.0).all() and (default["relevance"] == default["baseline_relevance"]).all()
    assert (visits.loc[visits["arm"] == "control", "multiplier"] == 1.0).all()
    personalized = visits[visits["experience"] == "personalized"]
    assert len(personalized) > 20
    np.testing.assert_allclose(personalized["multiplier"],
                               np.exp(STRONG * (personalized["relevance"] - personalized["baseline_relevance"])), rtol=1e-12)


def test_common_random_numbers_make_the_response_monotone(strong_run, null_run):
    """Same arrivals and draws: control visits are identical at strengths 2 and 0; a treatment visit with a
    multiplier above 1 buys whenever it bought at strength 0, one below 1 only if it bought at strength 0."""
    strong, null = strong_run[0].frames("visits"), null_run.frames("visits")
    assert strong["session_id"].tolist() == null["session_id"].tolist()
    same = ["session_id", "customer_id", "day", "device", "views", "cart_adds", "purchased", "revenue"]
    control = (strong["arm"] == "control").to_numpy()
    pd.testing.assert_frame_equal(strong.loc[control, same], null.loc[control, same])
    pd.testing.assert_frame_equal(strong[["views", "cart_adds"]], null[["views", "cart_adds"]])
    up = (strong["multiplier"] > 1).to_numpy()
    down = (strong["multiplier"] < 1).to_numpy()
    assert not (null["purchased"].to_numpy() & up & ~strong["purchased"].to_numpy()).any()
    assert not (strong["purchased"].to_numpy() & down & ~null["purchased"].to_numpy()).any()
    assert strong.loc[~control, "purchased"].sum() >= null.loc[~control, "purchased"].sum()


def test_at_strength_zero_what_is_shown_changes_nothing(null_run, all_control_run, context):
    visits, control = null_run.frames("visits"), all_control_run.frames("visits")
    assert (visits["multiplier"] == 1.0).all()
    assert (visits["experience"] == "personalized").any()  # something other than the default was shown
    same = ["session_id", "customer_id", "day", "device", "views", "cart_adds", "purchased", "revenue"]
    pd.testing.assert_frame_equal(visits[same], control[same])
    result = stage.ab_result(visits, context.settings.seed, n_boot=300)["conversion"]
    assert result["ci_low"] <= 0 <= result["ci_high"]


# --------------------------------------------------------------------------------------------
# 7. Fallbacks
# --------------------------------------------------------------------------------------------
def _visits(customers, at) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": np.asarray(customers), "session_id": np.arange(len(customers)) + 10**8,
                         "ts": np.array([at] * len(customers), dtype="datetime64[us]")})


@pytest.fixture(scope="module")
def start_state(context):
    return stage.initial_state(context)


@pytest.fixture(scope="module")
def known_customers(context, start_state) -> np.ndarray:
    """Customers with state and product views before the cutoff, both arms represented."""
    ids = np.array(sorted(c for c in start_state._ids))
    views = start_state.features(ids, context.cutoff)["views_per_session"].to_numpy()
    chosen = ids[np.nan_to_num(views) > 0][:120]
    arms = assign_arm(chosen, context.settings.seed, context.settings.treatment_share)
    assert (arms == "treatment").sum() > 20 and (arms == "control").sum() > 20
    return chosen


def test_unknown_customers_get_the_default_experience_as_cold_start(context, start_state):
    unknown = np.arange(10**7, 10**7 + 200)
    assert not any(start_state.known(c) for c in unknown)
    arms = assign_arm(unknown, context.settings.seed, context.settings.treatment_share)
    deciding = stage.personalizer(context, start_state)
    decisions = deciding.decide(_visits(unknown, context.cutoff), context.cutoff)
    treated = decisions[arms == "treatment"]
    assert len(treated) > 50 and set(treated["reason"]) == {"cold_start"}
    assert set(decisions.loc[arms == "control", "reason"]) == {"control"}
    assert set(decisions["experience"]) == {"default"} and set(decisions["banner"]) == {DEFAULT_BANNER}
    top = context.assortment.top(context.settings.policy.recommendations).tolist()
    assert all(list(p) == top for p in decisions["products"])
    one = deciding.decide_one(int(treated["customer_id"].iloc[0]), 1, int(microseconds(context.cutoff)))
    assert one["reason"] == "cold_start" and list(one["products"]) == top


def test_without_a_model_treatment_customers_get_model_unavailable(context, start_state, known_customers):
    deciding = stage.personalizer(context, start_state, scorer=None)
    decisions = deciding.decide(_visits(known_customers, context.cutoff), context.cutoff)
    treatment = (decisions["arm"] == "treatment").to_numpy()
    assert set(decisions.loc[treatment, "reason"]) == {"model_unavailable"}
    assert set(decisions.loc[~treatment, "reason"]) == {"control"}
    assert decisions["propensity"].isna().all() and set(decisions["experience"]) == {"default"}
    ones = [deciding.decide_one(c, 0, int(microseconds(context.cutoff)))["reason"] for c in known_customers]
    assert ones == decisions["reason"].tolist()


@pytest.fixture(scope="module")
def scorer_needing_more(snapshots, model_settings) -> Champion:
    """A fast XGBoost champion that needs a feature the live profile does not have."""
    numeric, _ = propensity.features_of(snapshots)
    extra = snapshots.assign(loyalty_points=np.arange(len(snapshots)) % 7.0)
    features = numeric + ["loyalty_points"]
    pipeline = propensity.fit(propensity.tuned("xgboost", {"n_estimators": 5, "max_depth": 2}, features, [], model_settings),
                              extra, features, [])
    scorer = Champion(pipeline, version="v9", metadata={"name": "xgboost", "features": features})
    assert scorer.fast
    return scorer


def test_a_profile_without_the_models_features_gets_missing_features(context, start_state, known_customers, scorer_needing_more):
    deciding = stage.personalizer(context, start_state, scorer=scorer_needing_more)
    decisions = deciding.decide(_visits(known_customers, context.cutoff), context.cutoff)
    treatment = (decisions["arm"] == "treatment").to_numpy()
    assert set(decisions.loc[treatment, "reason"]) == {"missing_features"}
    assert set(decisions.loc[~treatment, "reason"]) == {"control"}
    assert set(decisions["banner"]) == {DEFAULT_BANNER}


def test_decide_one_falls_back_to_missing_features_too(context, start_state, known_customers, scorer_needing_more):
    deciding = stage.personalizer(context, start_state, scorer=scorer_needing_more)
    treated = [c for c in known_customers if deciding.arms(np.array([c]))[0] == "treatment"]
    assert deciding.decide_one(treated[0], 0, int(microseconds(context.cutoff)))["reason"] == "missing_features"


def test_control_customers_always_get_the_default(strong_run):
    decisions = strong_run[0].frames("decisions")
    control = decisions[decisions["arm"] == "control"]
    assert len(control) > 20 and set(control["reason"]) == {"control"} and set(control["experience"]) == {"default"}
    treatment = decisions[decisions["arm"] == "treatment"]
    assert "control" not in set(treatment["reason"])


def test_load_champion_on_a_missing_or_corrupt_registry_returns_the_reason(registry_dir, tmp_path):
    scorer, reason = try_load_champion(tmp_path / "nowhere")
    assert scorer is None and "champion" in reason
    corrupt = tmp_path / "corrupt"
    shutil.copytree(registry_dir, corrupt)
    (corrupt / "v1" / "booster.ubj").write_bytes(b"not a booster")
    scorer, reason = try_load_champion(corrupt)
    assert scorer is None and reason.startswith("ValueError") and "sha256" in reason
    broken = tmp_path / "broken_aliases"
    shutil.copytree(registry_dir, broken)
    (broken / "aliases.json").write_text("{ not json", encoding="utf-8")
    scorer, reason = try_load_champion(broken)
    assert scorer is None and isinstance(reason, str) and reason
    dangling = tmp_path / "dangling"
    shutil.copytree(registry_dir, dangling)
    shutil.rmtree(dangling / "v1")
    scorer, reason = try_load_champion(dangling)
    assert scorer is None and "unknown version 'v1'" in reason


# --------------------------------------------------------------------------------------------
# 8. Scoring
# --------------------------------------------------------------------------------------------
def test_fast_path_scores_like_the_pipeline(scorer, snapshots, context, start_state):
    assert scorer.fast and scorer.features == scorer.numeric
    expected = scorer.pipeline.predict_proba(transform.model_frame(snapshots[scorer.features]))[:, 1]
    assert snapshots[scorer.features].isna().any().any()  # undefined features are part of the test
    np.testing.assert_allclose(scorer.score_frame(snapshots), expected, rtol=1e-6, atol=1e-7)
    live = start_state.features(sorted(start_state._ids), context.cutoff + pd.Timedelta(days=1))
    expected = scorer.pipeline.predict_proba(transform.model_frame(live[scorer.features]))[:, 1]
    np.testing.assert_allclose(scorer.score_frame(live), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scorer.score_matrix(live[scorer.numeric].to_numpy()), expected, rtol=1e-6, atol=1e-7)


def test_logistic_regression_has_no_fast_path_but_scores_through_its_pipeline(snapshots, model_settings):
    numeric, categorical = propensity.features_of(snapshots)
    assert categorical  # demographics: what the fast path cannot take
    pipeline = propensity.fit(propensity.candidate("logistic_regression", numeric, categorical, model_settings), snapshots,
                              numeric, categorical)
    scorer = Champion(pipeline, version="v2", metadata={"name": "logistic_regression", "features": numeric + categorical})
    assert scorer.fast is False
    expected = propensity.predict(pipeline, snapshots, numeric, categorical)
    np.testing.assert_array_equal(scorer.score_frame(snapshots), expected)
    assert 0 < expected.min() and expected.max() < 1
    with pytest.raises(ValueError, match="no fast path"):
        scorer.score_matrix(snapshots[scorer.numeric].to_numpy())


def test_decide_one_agrees_with_decide(context, start_state, known_customers):
    deciding = stage.personalizer(context, start_state)
    at = context.cutoff + pd.Timedelta(hours=3)
    decisions = deciding.decide(_visits(known_customers, at), at)
    assert (decisions["reason"] == "personalized").sum() > 20
    for row, customer in zip(decisions.itertuples(index=False), known_customers):
        one = deciding.decide_one(customer, row.session_id, int(microseconds(at)))
        assert (one["arm"], one["reason"], one["experience"], one["banner"]) == (row.arm, row.reason, row.experience, row.banner)
        assert plain(one["banner_category"]) == plain(row.banner_category)
        assert list(one["products"]) == list(row.products)
        np.testing.assert_allclose(one["propensity"], row.propensity, rtol=1e-6)


def test_decide_one_works_with_a_champion_without_a_fast_path(context, start_state, known_customers, snapshots, model_settings):
    numeric, categorical = propensity.features_of(snapshots)
    pipeline = propensity.fit(propensity.candidate("logistic_regression", numeric, categorical, model_settings), snapshots,
                              numeric, categorical)
    deciding = stage.personalizer(context, start_state, scorer=Champion(pipeline, version="v2", metadata={"name": "lr", "features": numeric + categorical}))
    decisions = deciding.decide(_visits(known_customers, context.cutoff), context.cutoff)
    personalized = decisions[decisions["reason"] == "personalized"]
    row = personalized.iloc[0]
    one = deciding.decide_one(row["customer_id"], row["session_id"], int(microseconds(context.cutoff)))
    assert one["reason"] == "personalized"
    np.testing.assert_allclose(one["propensity"], row["propensity"], rtol=1e-9)


# --------------------------------------------------------------------------------------------
# 9. The policy
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_assortment() -> Assortment:
    """Three categories of five products; views make the popularity order known in advance."""
    products = pd.DataFrame({"product_id": np.arange(1, 16), "category": ["coats"] * 5 + ["hats"] * 5 + ["shoes"] * 5})
    views = {3: 5, 1: 5, 2: 1, 7: 9, 6: 2, 11: 4, 15: 4, 12: 8}  # ties break by product id
    events = pd.DataFrame({"product_id": [p for p, n in views.items() for _ in range(n)]}).assign(event_type="product_view")
    events = pd.concat([events, pd.DataFrame({"product_id": [5] * 50, "event_type": "add_to_cart"})], ignore_index=True)
    return Assortment.from_tables(products, events)


POLICY = PolicySettings(recommendations=6, high_propensity=0.3, banners={"Bargain Hunters": "sale"})


def test_assortment_ranks_products_by_views(toy_assortment):
    assert toy_assortment.categories == ["coats", "hats", "shoes"]
    assert toy_assortment.top(3, "coats").tolist() == [1, 3, 2]  # add_to_cart events are not views
    assert toy_assortment.top(5, "hats").tolist() == [7, 6, 8, 9, 10]
    assert toy_assortment.top(4).tolist() == [7, 12, 1, 3]
    assert toy_assortment.top(3, "gloves").tolist() == []


def test_personalized_products_come_two_thirds_from_the_favourite_and_one_third_from_the_runner_up(toy_assortment):
    common = dict(arm="treatment", known=True, segment="Bargain Hunters", assortment=toy_assortment, settings=POLICY)
    chosen = choose(favourite="shoes", runner_up="coats", propensity=0.1, **common)
    assert chosen["experience"] == "personalized" and chosen["reason"] == "personalized"
    assert chosen["products"].tolist() == [12, 11, 15, 13, 1, 3]
    assert toy_assortment.categories_of(chosen["products"]) == ["shoes"] * 4 + ["coats"] * 2
    assert chosen["banner"] == "sale" and chosen["banner_category"] == "shoes"
    assert len(set(chosen["products"].tolist())) == len(chosen["products"])
    assert choose(favourite="shoes", runner_up="coats", propensity=0.3, **common)["banner"] == COMPLETE_THE_LOOK
    assert choose(favourite="shoes", runner_up="coats", propensity=0.2999, **common)["banner"] == "sale"
    unknown_segment = dict(common, segment="Mystery Shoppers")
    assert choose(favourite="shoes", runner_up="coats", propensity=0.1, **unknown_segment)["banner"] == DEFAULT_BANNER
    alone = choose(favourite="hats", runner_up=None, propensity=0.1, **common)
    assert alone["products"].tolist() == [7, 6, 8, 9, 10] and len(set(alone["products"].tolist())) == 5


def test_every_fallback_shows_the_default(toy_assortment):
    default = default_experience(toy_assortment, POLICY)
    common = dict(segment="Bargain Hunters", assortment=toy_assortment, settings=POLICY)
    cases = {
        "control": dict(arm="control", known=True, favourite="shoes", runner_up="coats", propensity=0.9),
        "cold_start": dict(arm="treatment", known=False, favourite=None, runner_up=None, propensity=np.nan),
        "model_unavailable": dict(arm="treatment", known=True, favourite="shoes", runner_up="coats", propensity=None),
        "missing_features": dict(arm="treatment", known=True, favourite="shoes", runner_up="coats", propensity=np.nan),
    }
    for reason, case in cases.items():
        chosen = choose(**case, **common)
        assert chosen["reason"] == reason and chosen["experience"] == "default"
        assert chosen["banner"] == DEFAULT_BANNER and chosen["banner_category"] is None
        assert chosen["products"].tolist() == default["products"].tolist() == [7, 12, 1, 3, 11, 15]
    no_views = choose(arm="treatment", known=True, favourite=None, runner_up=None, propensity=0.5, **common)
    assert no_views["reason"] == "cold_start"


def test_top_categories_and_shown_shares(toy_assortment):
    profiles = pd.DataFrame({"affinity_coats": [0.2, np.nan, 0.5, 0.0], "affinity_hats": [0.3, np.nan, 0.5, 0.0],
                             "affinity_shoes": [0.5, np.nan, 0.0, 1.0]})
    first, second = top_categories(profiles, toy_assortment.categories)
    assert first.tolist() == ["shoes", None, "coats", "shoes"]
    assert second.tolist() == ["hats", None, "hats", None]  # customer 4 viewed only shoes: no runner-up
    decisions = decide(profiles, arm=np.array(["treatment"] * 4), propensity=np.array([0.1, 0.1, 0.5, 0.1]),
                       segments=np.array(["Bargain Hunters"] * 4, dtype=object), known=np.array([True, True, True, True]),
                       assortment=toy_assortment, settings=POLICY)
    assert decisions["reason"].tolist() == ["personalized", "cold_start", "personalized", "personalized"]
    assert decisions["banner"].tolist() == ["sale", DEFAULT_BANNER, COMPLETE_THE_LOOK, "sale"]
    shares = shown_shares(decisions, toy_assortment, toy_assortment.categories)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    # shoes x4 + banner shoes, hats x2 -> 5/7, 2/7; the default: hats 2, shoes 3 (12, 11, 15), coats 2 (1, 3)... out of 6
    np.testing.assert_allclose(shares[0], [0, 2 / 7, 5 / 7])
    np.testing.assert_allclose(shares[1], [2 / 6, 1 / 6, 3 / 6])
    np.testing.assert_allclose(shares[2], [5 / 7, 2 / 7, 0])


def test_replayed_decisions_follow_the_policy_on_their_logged_profiles(strong_run, context):
    loop = strong_run[0]
    decisions, profiles = loop.frames("decisions"), loop.frames("profiles")
    assert decisions["session_id"].tolist() == profiles["session_id"].tolist()
    assert decisions["segment"].tolist() == [context.segments[c] for c in decisions["customer_id"]]
    categories = context.assortment.categories
    affinity = profiles[[f"affinity_{c}" for c in categories]].to_numpy()
    banners, n = context.settings.policy.banners, context.settings.policy.recommendations
    personalized = np.flatnonzero((decisions["reason"] == "personalized").to_numpy())
    assert len(personalized) > 20
    assert set(decisions.iloc[personalized]["banner"]) - {COMPLETE_THE_LOOK} - set(banners.values()) == {DEFAULT_BANNER}
    for i in personalized:
        row = decisions.iloc[i]
        order = np.argsort(-affinity[i], kind="stable")
        favourite = categories[order[0]]
        runner_up = categories[order[1]] if affinity[i][order[1]] > 0 else None  # only a category actually viewed
        assert row["banner_category"] == favourite
        from_runner_up = n // 3 if runner_up is not None else 0
        expected = (context.assortment.top(n - from_runner_up, favourite).tolist()
                    + (context.assortment.top(from_runner_up, runner_up).tolist() if runner_up else []))
        assert list(row["products"]) == expected and len(set(expected)) == len(expected)
        high = context.settings.policy.high_propensity
        banner = COMPLETE_THE_LOOK if row["propensity"] >= high else banners.get(row["segment"], DEFAULT_BANNER)
        assert row["banner"] == banner
    np.testing.assert_allclose(loop.personalizer.scorer.score_frame(profiles.iloc[personalized]),
                               decisions.iloc[personalized]["propensity"], rtol=1e-6)
    shares = shown_shares(decisions, context.assortment, context.world.categories)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


# --------------------------------------------------------------------------------------------
# 10. The decisions subscription
# --------------------------------------------------------------------------------------------
def test_subscribers_receive_every_decision_once_in_order(strong_run):
    loop, published, _ = strong_run
    received = pd.concat(published, ignore_index=True)
    assert_same_frames(received, loop.frames("decisions"))
    assert not received["session_id"].duplicated().any()
    assert received["ts"].is_monotonic_increasing
    assert received["session_id"].tolist() == loop.frames("visits")["session_id"].tolist()
    positions = loop.world.visits_between(loop.windows()[0], loop.windows()[WINDOWS])
    assert len(received) == len(positions)


# --------------------------------------------------------------------------------------------
# 11. The micro-batch engine
# --------------------------------------------------------------------------------------------
def test_micro_batch_engine_decides_each_session_once_before_its_events(context, base_records):
    delivered = arrivals(base_records, noise(late=0.0), np.random.default_rng(9)).drop(columns="arrival")
    state = stage.initial_state(context)
    deciding = stage.personalizer(context, state)
    logged: list[pd.DataFrame] = []

    def decide(starts: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        decisions = deciding.decide(starts, as_of)
        logged.append(deciding.last_profiles[["session_id", "customer_id", "sessions_total"]].assign(batch=len(logged)))
        return decisions

    initial = state.features(all_customers(context, state), context.cutoff)["sessions_total"]
    sink = MemorySink()
    counters = MicroBatchEngine(StreamProcessor(state, context.settings.engine), decide=decide).run(FrameSource(delivered, 15), sink)
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
    final = state.features(all_customers(context, state), context.cutoff + pd.Timedelta(days=2, hours=1))["sessions_total"]
    per_customer = profiles.groupby("customer_id").size()
    np.testing.assert_array_equal(final.loc[per_customer.index], initial.loc[per_customer.index] + per_customer)


def test_per_event_latency_decides_each_session_once(context, base_records):
    latencies = stage.per_event_latency(context, base_records, limit=300)
    events = base_records.head(300)
    assert sorted(latencies["session_id"]) == sorted(events.loc[events["record"] == "event", "session_id"].unique())
    assert (latencies["milliseconds"] > 0).all()


def test_vectorized_decide_equals_choose_row_by_row(toy_assortment):
    """`decide` (batches) and `choose` (one visit, the per-event path) are the same rules."""
    rng = np.random.default_rng(3)
    n = 300
    shares = rng.dirichlet(np.ones(3), n)
    shares[rng.random(n) < 0.2] = np.nan  # no views
    shares[rng.random(n) < 0.2, 1:] = 0.0  # one category only
    profiles = pd.DataFrame(shares, columns=[f"affinity_{c}" for c in toy_assortment.categories])
    arm = rng.choice(["control", "treatment"], n)
    known = rng.random(n) > 0.1
    segments = rng.choice(["Bargain Hunters", "Lapsing", "nobody"], n).astype(object)
    for propensity in (None, np.where(rng.random(n) < 0.1, np.nan, rng.random(n))):
        batch = decide(profiles, arm=arm, propensity=propensity, segments=segments, known=known,
                       assortment=toy_assortment, settings=POLICY)
        first, second = top_categories(profiles, toy_assortment.categories)
        for i in range(n):
            one = choose(arm=arm[i], known=bool(known[i]), favourite=first[i], runner_up=second[i],
                         propensity=None if propensity is None else propensity[i], segment=segments[i],
                         assortment=toy_assortment, settings=POLICY)
            row = batch.iloc[i]
            assert (row["experience"], row["reason"], row["banner"]) == (one["experience"], one["reason"], one["banner"])
            assert (row["banner_category"] if isinstance(row["banner_category"], str) else None) == one["banner_category"]
            assert list(row["products"]) == list(one["products"])
            assert (np.isnan(row["propensity"]) and np.isnan(one["propensity"])) or row["propensity"] == one["propensity"]


def test_explanation_values_mixing_numbers_and_categories_are_stored_as_text(tmp_path):
    values = pd.Series([3.14159, "female", np.nan, 12, None], dtype=object)
    text = values.map(stage._value_text).astype("string")
    assert text.tolist()[:2] == ["3.142", "female"] and text.isna().tolist() == [False, False, True, False, True]
    stage.write_outputs(tmp_path, {"explanations": pd.DataFrame({"feature": ["a"] * 5, "value": text})}, {}, {})
    assert pd.read_parquet(tmp_path / paths.REPLAY_DIR / "explanations.parquet")["value"].tolist()[1] == "female"


# --------------------------------------------------------------------------------------------
# 12. Drift-triggered retraining
# --------------------------------------------------------------------------------------------
def _folder_digest(folder) -> dict[str, str]:
    """Every file under `folder` with the sha256 of its bytes (to prove a folder was left untouched)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def retrain_project(tmp_path_factory, context, snapshots, model_settings):
    """A project folder whose registry holds a champion registered as the model stage does (name, params,
    features, train_cutoffs), and the replay context pointing at it."""
    root = tmp_path_factory.mktemp("retrain_project")
    numeric, _ = propensity.features_of(snapshots)
    hyper = {"n_estimators": 20, "max_depth": 2, "learning_rate": 0.1}
    pipeline = propensity.fit(propensity.tuned("xgboost", hyper, numeric, [], model_settings), snapshots, numeric, [])
    registry = Registry(root / paths.REGISTRY_DIR)
    registry.set_alias("champion", registry.register(pipeline, name="xgboost", metadata={
        "params": hyper, "features": numeric, "train_cutoffs": [c.date().isoformat() for c in TRAIN_CUTOFFS],
        "test_cutoff": context.cutoff.date().isoformat()}))
    champion, problem = try_load_champion(root / paths.REGISTRY_DIR)
    assert problem is None
    return dataclasses.replace(context, root=root, scorer=champion)


@pytest.fixture(scope="module")
def forced_retraining(retrain_project):
    """A retraining forced by a drift trigger ten days into the replay (before any new labels are complete)."""
    ctx = retrain_project
    before = _folder_digest(ctx.root / paths.REGISTRY_DIR)
    result = stage.retrain(ctx, ctx.tables, ctx.cutoff + pd.Timedelta(days=10))
    return ctx, before, result


def test_forced_retraining_registers_a_challenger_in_the_replays_own_registry(forced_retraining):
    ctx, before, result = forced_retraining
    assert result["retrained"] is True
    project, replay = Registry(ctx.root / paths.REGISTRY_DIR), Registry(ctx.root / paths.REPLAY_REGISTRY_DIR)
    assert _folder_digest(ctx.root / paths.REGISTRY_DIR) == before, "the project's registry must not change"
    assert result["challenger"]["version"] in set(replay.versions()["version"])
    assert result["challenger"]["version"] not in set(project.versions()["version"])
    assert project.alias("champion") == result["champion"]["version"] == result["served_live"]
    metadata = replay.metadata(result["challenger"]["version"])
    assert metadata["train_cutoffs"] == result["train_cutoffs"] and metadata["test_cutoff"] == result["retrain_day"]
    assert metadata["params"] == project.metadata(result["champion"]["version"])["params"]  # the champion's recipe


def test_retraining_trains_only_on_snapshots_whose_labels_are_complete_on_the_retrain_day(forced_retraining):
    ctx, _, result = forced_retraining
    retrain_day = pd.Timestamp(result["retrain_day"])
    horizon = pd.Timedelta(days=ctx.horizon_days)
    # The trigger came before the first new snapshot's labels were complete: retraining waits for them.
    assert retrain_day == ctx.cutoff + horizon
    train = [pd.Timestamp(c) for c in result["train_cutoffs"]]
    assert len(train) == len(TRAIN_CUTOFFS)  # as many snapshots as the champion trained on
    assert all(c + horizon <= retrain_day for c in train), "a training label window ends after the retrain day"
    assert train[-1] + horizon == retrain_day  # the most recent such snapshot: retraining on recent data
    assert train[-1] > max(TRAIN_CUTOFFS)  # newer than anything the champion saw
    assert pd.Timestamp(result["labels_complete_by"]) <= retrain_day


def test_retraining_records_its_promotion_decision_with_both_aucs(forced_retraining):
    ctx, _, result = forced_retraining
    replay = Registry(ctx.root / paths.REPLAY_REGISTRY_DIR)
    champion, challenger = result["champion"], result["challenger"]
    assert 0.5 < champion["auc"] <= 1 and 0.5 < challenger["auc"] <= 1
    assert result["promoted"] == (challenger["auc"] >= champion["auc"] + result["min_delta"] - 1e-12)
    record = replay.promotions()[-1]
    assert record["candidate"] == challenger["version"] and record["champion_before"] == champion["version"]
    assert record["promoted"] == result["promoted"] and record["reason"] == result["reason"]
    assert record["candidate_score"] == pytest.approx(challenger["auc"], abs=1e-6)  # the registry stores 6 places
    assert record["champion_score"] == pytest.approx(champion["auc"], abs=1e-6)
    assert replay.alias("champion") == (challenger["version"] if result["promoted"] else champion["version"])


def test_retraining_waits_when_the_evaluation_labels_are_not_complete(retrain_project, tmp_path):
    ctx = dataclasses.replace(retrain_project, root=tmp_path)
    shutil.copytree(retrain_project.root / paths.REGISTRY_DIR, tmp_path / paths.REGISTRY_DIR)
    late = ctx.world.end() - pd.Timedelta(days=5)  # its snapshot's labels would run past the end of the data
    result = stage.retrain(ctx, ctx.tables, late)
    assert result["retrained"] is False and "not complete" in result["reason"]
    assert not (tmp_path / paths.REPLAY_REGISTRY_DIR).exists()


@pytest.mark.parametrize("retrain_day, expected", [
    ("2025-12-01", ["2025-08-01", "2025-09-01", "2025-10-01", "2025-11-01"]),  # the default replay's
    ("2025-12-10 15:00", ["2025-08-10", "2025-09-10", "2025-10-10", "2025-11-10"]),  # a later trigger moves the window
    ("2026-03-02", ["2025-10-31", "2025-11-30", "2025-12-31", "2026-01-31"]),  # month ends stay month ends
])
def test_retraining_cutoffs_are_the_most_recent_with_complete_labels(retrain_day, expected):
    cutoffs = stage.retraining_cutoffs(pd.Timestamp(retrain_day), 30, 4)
    assert [c.date().isoformat() for c in cutoffs] == expected
    assert all(c + pd.Timedelta(days=30) <= pd.Timestamp(retrain_day) for c in cutoffs)
    with pytest.raises(ValueError, match="count"):
        stage.retraining_cutoffs(pd.Timestamp(retrain_day), 30, 0)

"""The replay's stream on Spark Structured Streaming equals the embedded engine: books, dead letters, profiles,
decisions; and a stopped query continues from its checkpoint to the same end state (real local Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.replay import parity
from atelier.replay.engine import FrameSource, MemorySink, MicroBatchEngine, StreamProcessor, to_records
from atelier.replay.spark import SparkStreamingEngine
from atelier.replay.world import NoiseSettings, arrivals

BATCH = 150


@pytest.fixture(scope="module")
def recorded(strong_run):
    """The strong replay's records as a noisy network delivered them: duplicates, malformed records, and late ones
    delayed by a day or more (the tiny shop's traffic is thin: a micro-batch of BATCH records spans hours)."""
    loop = strong_run[0]
    network = NoiseSettings(network_delay_seconds=2.0, late_share=0.05, duplicate_share=0.1, malformed_share=0.03,
                            lateness_seconds=86_400.0)
    records = arrivals(to_records(loop.frames("events"), loop.frames("orders")), network, np.random.default_rng(7))
    return records.drop(columns="arrival")


@pytest.fixture(scope="module")
def embedded(noisy, recorded):
    state = noisy.initial_state()
    engine = MicroBatchEngine(StreamProcessor(state, noisy.settings.engine), decide=noisy.personalizer(state).decide)
    sink = MemorySink()
    counters = engine.run(FrameSource(recorded, BATCH), sink)
    return counters, sink, state


@pytest.fixture(scope="module")
def on_spark(spark, noisy, recorded, tmp_path_factory):
    engine = SparkStreamingEngine(spark, noisy.settings.engine, noisy.initial_state(),
                                  tmp_path_factory.mktemp("spark_stream"),
                                  decide_with=lambda state: noisy.personalizer(state).decide)
    sink = MemorySink()
    counters = engine.run(FrameSource(recorded, BATCH), sink)
    return counters, sink, engine


def test_the_fixture_has_every_kind_of_bad_record(embedded):
    counters = embedded[0]
    assert counters.duplicates > 0 and counters.late > 0 and counters.malformed > 0 and counters.balanced()


def test_identical_books(embedded, on_spark):
    assert on_spark[0] == embedded[0]
    assert on_spark[0].balanced()


def test_identical_dead_letters(embedded, on_spark):
    columns = ["record", "id", "reason"]
    left = embedded[1].frames("dead_letters")[columns].reset_index(drop=True)
    right = on_spark[1].frames("dead_letters")[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(left.astype(str), right.astype(str))


def test_identical_final_profiles(embedded, on_spark, noisy):
    state, final = embedded[2], on_spark[2].final_state()
    customers = sorted(set(state._ids))
    assert sorted(final._ids) == customers
    as_of = pd.Timestamp(state.newest, unit="us") + pd.Timedelta(seconds=1)
    left, right = state.features(customers, as_of), final.features(customers, as_of)
    assert list(left.columns) == list(right.columns) and left.dtypes.equals(right.dtypes)
    differing = []
    for column in left.columns:
        if column in parity.DECAYED_FEATURES:
            same = np.allclose(right[column], left[column], rtol=0, atol=parity.TOLERANCE, equal_nan=True)
        else:
            same = right[column].equals(left[column])
        if not same:
            first = left.index[~(left[column].eq(right[column]) | (left[column].isna() & right[column].isna()))][0]
            differing.append((column, first, left.loc[first].to_dict(), right.loc[first].to_dict()))
    assert not differing, differing[:2]


def test_identical_decisions(embedded, on_spark):
    left = embedded[1].frames("decisions").reset_index(drop=True)
    right = on_spark[1].frames("decisions").reset_index(drop=True)
    assert len(left) > 50 and list(right.columns) == list(left.columns)
    for column in left.columns:
        if column == "products":
            assert [list(map(int, p)) for p in left[column]] == [list(map(int, p)) for p in right[column]]
        elif column == "propensity":
            np.testing.assert_allclose(right[column].to_numpy(float), left[column].to_numpy(float), rtol=0,
                                       atol=parity.TOLERANCE)
        else:
            assert left[column].astype(str).tolist() == right[column].astype(str).tolist(), column


@pytest.mark.slow
def test_a_stopped_query_restarts_from_its_checkpoint(spark, noisy, recorded, on_spark, tmp_path):
    """Stop after three micro-batches, restart with a new query on the same checkpoint: the same end state."""
    batches = list(FrameSource(recorded, BATCH).batches())
    first = SparkStreamingEngine(spark, noisy.settings.engine, noisy.initial_state(), tmp_path,
                                 decide_with=lambda state: noisy.personalizer(state).decide)
    number, arrival = first.write_batches(iter(batches[:3]))
    first.process(recorded.head(0))
    assert first.books().received == sum(len(b) for b in batches[:3])
    second = SparkStreamingEngine(spark, noisy.settings.engine, noisy.initial_state(), tmp_path,
                                  decide_with=lambda state: noisy.personalizer(state).decide)
    second.write_batches(iter(batches[3:]), number, arrival)
    second.process(recorded.head(0))
    sink = MemorySink()
    assert second.emit(recorded, sink) == on_spark[0]
    pd.testing.assert_frame_equal(sink.frames("decisions").drop(columns="products"),
                                  on_spark[1].frames("decisions").drop(columns="products"))
    customers = sorted(set(on_spark[2].final_state()._ids))
    as_of = noisy.cutoff + pd.Timedelta(days=5)
    pd.testing.assert_frame_equal(second.final_state().features(customers, as_of),
                                  on_spark[2].final_state().features(customers, as_of))

"""Tests for atelier.core.spark: the engine switch, Spark settings, the Java check and the warning filter."""

from __future__ import annotations

import warnings

import pytest

from atelier.core import spark as spark_engine
from atelier.core.config import ParamsError


def test_engine_defaults_to_embedded_and_refuses_unknown_names():
    assert spark_engine.engine(None) == "embedded"
    assert spark_engine.engine({"engine": "spark"}) == "spark"
    with pytest.raises(ParamsError, match="compute.engine must be one of"):
        spark_engine.engine({"engine": "flink"})


@pytest.mark.parametrize(("section", "message"), [
    ({"master": ""}, "master URL"), ({"shuffle_partitions": 0}, "shuffle_partitions"),
    ({"shuffle_partitions": True}, "shuffle_partitions"), ({"state_store": "memory"}, "state_store"),
    ({"cores": 2}, "unknown keys"),
])
def test_spark_settings_refuse_bad_values(section, message):
    with pytest.raises(ParamsError, match=message):
        spark_engine.SparkSettings.from_params(section)


def test_spark_settings_and_session_config():
    settings = spark_engine.SparkSettings.from_params({"master": "spark://host:7077", "shuffle_partitions": 8})
    config = spark_engine.session_config(settings)
    assert settings.state_store == "rocksdb" and config["spark.sql.shuffle.partitions"] == "8"
    assert config["spark.sql.streaming.stateStore.providerClass"].endswith("RocksDBStateStoreProvider")
    assert config["spark.sql.session.timeZone"] == "UTC"


@pytest.mark.parametrize(("text", "major"), [('openjdk version "17.0.15" 2025-04-15', 17),
                                             ('java version "1.8.0_402"', 8), ('openjdk version "21" 2023', 21),
                                             ("no version here", None)])
def test_java_major(text, major):
    assert spark_engine.java_major(text) == major


def test_java_problem_names_the_install_line_when_java_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert spark_engine.JAVA_INSTALL in spark_engine.java_problem()


def test_only_the_known_pandas3_warnings_are_filtered():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spark_engine.filter_known_warnings()
        for message in spark_engine.PANDAS3_WARNINGS:
            warnings.warn(message, FutureWarning, stacklevel=1)
        warnings.warn(spark_engine.PANDAS3_WARNINGS[0] + " And something new.", FutureWarning, stacklevel=1)
        warnings.warn("PySpark does not yet fully support pandas >= 4.0.0.", FutureWarning, stacklevel=1)
    assert len(caught) == 2


def test_worker_filter_carries_every_known_message():
    text = spark_engine.worker_warning_filter()
    assert all(f"ignore:{message}" in text for message in spark_engine.PANDAS3_WARNINGS)

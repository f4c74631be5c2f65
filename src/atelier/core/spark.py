"""The engine switch (params.yaml `compute.engine: embedded | spark`) and the Spark session (`compute.spark`).

`engine: embedded` (the default) runs features and the stream in-process with pandas/numpy;
`engine: spark` runs them on Apache Spark (local mode on a laptop, a cluster when `spark.master`
points at one). Spark needs Java 17+: `java_problem` says what to install when it is missing.
PySpark's own pandas-3 deprecation warning is filtered by its exact message only, so any new
warning still shows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from atelier.core.config import ParamsError

ENGINES = ("embedded", "spark")
JAVA_INSTALL = "apt-get install openjdk-17-jre-headless"
#: State store providers by their params.yaml name.
STATE_STORES = {
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
}
#: PySpark 4 (toPandas / Arrow conversion) still passes an argument pandas 3 deprecates; the exact message, anchored.
PANDAS3_WARNINGS = (
    "PySpark does not yet fully support pandas >= 3.0.0. Some features may not work correctly. "
    "It is recommended to use pandas < 3.0.0 for now.",
    "The copy keyword is deprecated and will be removed in a future version. Copy-on-Write is active in pandas "
    "since 3.0 which utilizes a lazy copy mechanism that defers copies until necessary. "
    "Use .copy() to make an eager copy if necessary.",
)


def engine(compute: dict[str, Any] | None) -> str:
    """params.yaml `compute.engine` ("embedded" when absent), checked."""
    value = (compute or {}).get("engine", "embedded")
    if value not in ENGINES:
        raise ParamsError(f"params.yaml compute.engine must be one of {list(ENGINES)}, got {value!r}")
    return value


@dataclass(frozen=True)
class SparkSettings:
    """params.yaml `compute.spark`: where Spark runs and the few settings that matter on one machine."""

    master: str = "local[2]"
    shuffle_partitions: int = 4
    state_store: str = "rocksdb"
    driver_memory: str = "2g"
    app_name: str = "atelier"

    @classmethod
    def from_params(cls, section: dict[str, Any] | None) -> SparkSettings:
        """Settings from params.yaml's `compute.spark` section (absent keys keep their defaults)."""
        section = dict(section or {})
        unknown = sorted(set(section) - {"master", "shuffle_partitions", "state_store", "driver_memory", "app_name"})
        if unknown:
            raise ParamsError(f"params.yaml compute.spark: unknown keys {unknown}")
        settings = cls(**section)
        if not isinstance(settings.master, str) or not settings.master:
            raise ParamsError(f"params.yaml compute.spark.master must be a master URL, got {settings.master!r}")
        partitions = settings.shuffle_partitions
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ParamsError(f"params.yaml compute.spark.shuffle_partitions must be whole, >= 1, got {partitions!r}")
        if settings.state_store not in STATE_STORES:
            raise ParamsError(f"params.yaml compute.spark.state_store must be one of {list(STATE_STORES)}, "
                              f"got {settings.state_store!r}")
        return settings


def java_problem() -> str | None:
    """None when a Java 17+ runtime answers `java -version`; else what is wrong and the install line."""
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")
                        if os.environ.get("JAVA_HOME") else None) or shutil.which("java")
    if java is None:
        return f"Spark needs Java 17 or newer and no `java` was found: {JAVA_INSTALL}"
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError) as error:
        return f"`java -version` failed ({error}): {JAVA_INSTALL}"
    version = java_major(shown)
    if version is None or version < 17:
        return f"Spark needs Java 17 or newer, found {shown.splitlines()[0] if shown else 'nothing'}: {JAVA_INSTALL}"
    return None


def java_major(version_text: str) -> int | None:
    """The major version in `java -version`'s output ('openjdk version "17.0.15"' -> 17, '"1.8.0"' -> 8)."""
    for line in version_text.splitlines():
        if "version" in line and '"' in line:
            number = line.split('"')[1]
            parts = number.split(".")
            try:
                return int(parts[1]) if parts[0] == "1" else int(parts[0].split("-")[0])
            except (ValueError, IndexError):
                return None
    return None


def filter_known_warnings() -> None:
    """Silence PySpark's known pandas-3 deprecation warnings by their exact messages (nothing else)."""
    for message in PANDAS3_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message) + r"\Z")


def worker_warning_filter() -> str:
    """The same filter for Spark's Python workers (PYTHONWARNINGS: literal message prefixes, whole messages here)."""
    return ",".join(f"ignore:{message}" for message in PANDAS3_WARNINGS)


def session_config(settings: SparkSettings) -> dict[str, str]:
    """The Spark configuration Atelier sets (UTC session time, Arrow transfers, the state store)."""
    return {
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.default.parallelism": str(settings.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.streaming.stateStore.providerClass": STATE_STORES[settings.state_store],
        "spark.driver.memory": settings.driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "false",  # fixed partitioning: the same plan every run
        "spark.python.worker.reuse": "true",
        "spark.executorEnv.PYTHONWARNINGS": worker_warning_filter(),
    }


def build_session(settings: SparkSettings, extra: dict[str, str] | None = None) -> Any:
    """A SparkSession for `settings` (the running one if it exists), with the workers on this interpreter;
    `extra`: more Spark settings (e.g. a benchmark's event log)."""
    problem = java_problem()
    if problem is not None:
        raise RuntimeError(problem)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    filter_known_warnings()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    for key, value in {**session_config(settings), **(extra or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark

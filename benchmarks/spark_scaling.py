"""Benchmark: feature snapshots embedded vs Spark, and the Spark session start; time and peak memory.

    python benchmarks/spark_scaling.py --engine spark --customers 100000
    python benchmarks/spark_scaling.py --engine embedded --data data/validated   # the pipeline's own tables

Simulates `--customers` customers with the project's params (unless `--data` names a folder of validated tables),
then builds every cutoff's snapshot with the chosen engine. Spark (`compute.spark` in params.yaml, default
local[2]) writes the snapshots to Parquet instead of collecting them, as it would at scale. Prints one JSON line;
`benchmarks/run.py` runs it in a fresh process so peak memory is its own. Spark's JVM and Python workers are child
processes: `peak_tree_rss_mb` is the largest sum of the resident memory of this process and all its descendants,
sampled every 0.2 s (for both engines), and Spark's event log gives the bytes its tasks spilled to disk.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from tree_memory import TreeMemory  # benchmarks/ (this script's folder)

from atelier.core import spark as spark_engine
from atelier.core.config import load_params
from atelier.data import spark as data_spark
from atelier.data.features import FeatureSettings
from atelier.data.simulate import config_from_params
from atelier.data.snapshots import build_snapshots
from atelier.data.stage import simulate_shop

REPO = Path(__file__).resolve().parents[1]


def spilled_bytes(event_logs: Path) -> dict[str, int]:
    """Memory and disk bytes spilled by all tasks, from Spark's event log (SparkListenerTaskEnd task metrics)."""
    totals = {"memory_bytes_spilled": 0, "disk_bytes_spilled": 0}
    for log in event_logs.rglob("*"):
        if not log.is_file():
            continue
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if '"SparkListenerTaskEnd"' not in line:
                continue
            metrics = json.loads(line).get("Task Metrics") or {}
            totals["memory_bytes_spilled"] += int(metrics.get("Memory Bytes Spilled", 0))
            totals["disk_bytes_spilled"] += int(metrics.get("Disk Bytes Spilled", 0))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=spark_engine.ENGINES, default="spark")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--data", type=Path, help="a folder of validated tables (skips the simulation)")
    parser.add_argument("--driver-memory", help="Spark's driver (JVM heap) memory, e.g. 1g (default: params.yaml)")
    parser.add_argument("--shuffle-partitions", type=int,
                        help="partitions of customers (default: params.yaml); each Python task holds 1/partitions")
    arguments = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    cutoffs = [pd.Timestamp(c) for c in params["timeline"]["cutoffs"]]
    horizon = int(params["timeline"]["horizon_days"])
    settings = FeatureSettings.from_params(params["prep"])
    scratch = Path(tempfile.mkdtemp(prefix="atelier-spark-bench-"))
    folder = arguments.data
    if folder is None:
        params["simulate"]["n_customers"] = arguments.customers
        folder = scratch / "data"
        simulate_shop(config_from_params(params["simulate"]), int(params["seed"]), cutoffs, horizon, folder,
                      scratch / "truth", progress=False)
    paths = {name: folder / f"{name}.parquet" for name in ("orders", "events", "customers", "products")}
    result = {"benchmark": "spark_scaling", "engine": arguments.engine,
              "customers": pq.read_metadata(paths["customers"]).num_rows,
              "events": pq.read_metadata(paths["events"]).num_rows}
    memory = TreeMemory()
    began = time.perf_counter()
    if arguments.engine == "embedded":
        tables = {name: pd.read_parquet(path) for name, path in paths.items()}
        for column in ("event_type", "device"):
            tables["events"][column] = tables["events"][column].astype("category")
        rows = len(build_snapshots(tables, cutoffs, horizon, settings))
        seconds = time.perf_counter() - began
    else:
        if arguments.driver_memory:
            params["compute"]["spark"]["driver_memory"] = arguments.driver_memory
        if arguments.shuffle_partitions:
            params["compute"]["spark"]["shuffle_partitions"] = arguments.shuffle_partitions
        spark_settings = spark_engine.SparkSettings.from_params(params["compute"]["spark"])
        events_dir = scratch / "event-log"
        events_dir.mkdir()
        session = spark_engine.build_session(spark_settings, {"spark.eventLog.enabled": "true",
                                                              "spark.eventLog.dir": events_dir.as_uri()})
        result["session_seconds"] = round(time.perf_counter() - began, 2)
        began = time.perf_counter()
        frames = {name: session.read.parquet(str(paths[name])) for name in ("orders", "events", "customers")}
        templates = {name: pq.read_schema(paths[name]).empty_table().to_pandas() for name in frames}
        snapshots, _ = data_spark.snapshot_frame(frames, templates, pd.read_parquet(paths["products"]), cutoffs,
                                                 horizon, settings, spark_settings.shuffle_partitions)
        snapshots.write.mode("overwrite").parquet(str(scratch / "snapshots"))
        rows = session.read.parquet(str(scratch / "snapshots")).count()
        seconds = time.perf_counter() - began
        result.update(master=spark_settings.master, driver_memory=spark_settings.driver_memory,
                      shuffle_partitions=spark_settings.shuffle_partitions)
        session.stop()  # flushes the event log
        result.update(spilled_bytes(events_dir))
    result.update(snapshot_rows=rows, seconds=round(seconds, 2),
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  peak_child_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
                  peak_tree_rss_mb=memory.stop())
    shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

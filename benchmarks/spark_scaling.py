"""Benchmark: feature snapshots embedded vs Spark, and the Spark session start; time and peak memory.

    python benchmarks/spark_scaling.py --engine spark --customers 100000
    python benchmarks/spark_scaling.py --engine embedded --data data/validated   # the pipeline's own tables

Simulates `--customers` customers with the project's params (unless `--data` names a folder of validated tables),
then builds every cutoff's snapshot with the chosen engine. Spark (`compute.spark` in params.yaml, default
local[2]) writes the snapshots to Parquet instead of collecting them, as it would at scale. Prints one JSON line;
`benchmarks/run.py` runs it in a fresh process so peak memory is its own (Spark's JVM and Python workers are child
processes: their peak is reported separately, as the largest child).
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

from atelier.core import spark as spark_engine
from atelier.core.config import load_params
from atelier.data import spark as data_spark
from atelier.data.features import FeatureSettings
from atelier.data.simulate import config_from_params
from atelier.data.snapshots import build_snapshots
from atelier.data.stage import simulate_shop

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=spark_engine.ENGINES, default="spark")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--data", type=Path, help="a folder of validated tables (skips the simulation)")
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
    began = time.perf_counter()
    if arguments.engine == "embedded":
        tables = {name: pd.read_parquet(path) for name, path in paths.items()}
        for column in ("event_type", "device"):
            tables["events"][column] = tables["events"][column].astype("category")
        rows = len(build_snapshots(tables, cutoffs, horizon, settings))
    else:
        spark_settings = spark_engine.SparkSettings.from_params(params["compute"]["spark"])
        session = spark_engine.build_session(spark_settings)
        result["session_seconds"] = round(time.perf_counter() - began, 2)
        began = time.perf_counter()
        frames = {name: session.read.parquet(str(paths[name])) for name in ("orders", "events", "customers")}
        templates = {name: pq.read_schema(paths[name]).empty_table().to_pandas() for name in frames}
        snapshots, _ = data_spark.snapshot_frame(frames, templates, pd.read_parquet(paths["products"]), cutoffs,
                                                 horizon, settings, spark_settings.shuffle_partitions)
        snapshots.write.mode("overwrite").parquet(str(scratch / "snapshots"))
        rows = session.read.parquet(str(scratch / "snapshots")).count()
        result["master"] = spark_settings.master
    result.update(snapshot_rows=rows, seconds=round(time.perf_counter() - began, 2),
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  peak_child_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
    shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

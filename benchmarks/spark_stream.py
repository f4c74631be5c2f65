"""Benchmark: the replay's recorded stream through Spark Structured Streaming at default size.

    python benchmarks/spark_stream.py            # the whole replay (14 days at default size)
    python benchmarks/spark_stream.py --days 1   # its first day only

Needs the model and recommend stages' outputs (`dvc repro replay`) and Java 17+. Runs the closed loop once to
record the stream the network delivered (arrival order, duplicates, late and malformed records), then streams it
through the embedded engine and through Spark (`compute.spark` in params.yaml, default local[2]) in micro-batches of
`replay.micro_batch_events` records. Prints one JSON line: records/s, micro-batch latency p50/p99, Spark session
start, and whether the books and the number of decisions are the embedded engine's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import warnings
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

from atelier.core.config import load_params  # noqa: E402
from atelier.data.features import FeatureSettings  # noqa: E402
from atelier.replay import speed, stage  # noqa: E402
from atelier.replay.loop import ReplaySettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, help="stream only the first DAYS days of the replay")
    arguments = parser.parse_args()
    warnings.filterwarnings("ignore")
    params = load_params(REPO / "params.yaml")
    context = stage.load_context(REPO, ReplaySettings.from_params(params["replay"], params["seed"]),
                                 FeatureSettings.from_params(params["prep"]), params["timeline"],
                                 source=params["data"]["source"], simulate=params["simulate"])
    loop = context.closed_loop().run(progress=False)
    until = context.cutoff + pd.Timedelta(days=arguments.days) if arguments.days else None
    records = speed.network_stream(context, loop.frames("events"), loop.frames("orders"), speed.THROUGHPUT_STREAM,
                                   until=until)
    began = time.perf_counter()
    result = stage.spark_stream(context, records, params["compute"]["spark"])
    print(json.dumps({
        "benchmark": "spark_stream",
        "master": params["compute"]["spark"]["master"],
        "days": arguments.days or (context.end - context.cutoff).days,
        "records": result["books"].received,
        "micro_batch_size": context.settings.micro_batch_events,
        "micro_batches": result["batches"],
        "records_per_second": round(result["records_per_second"]),
        "micro_batch_p50_ms": round(result["p50_ms"]),
        "micro_batch_p99_ms": round(result["p99_ms"]),
        "session_start_seconds": round(result["session_seconds"], 1),
        "books": asdict(result["books"]),
        "books_identical_to_embedded": result["books"] == result["embedded_books"],
        "decisions": result["decisions"],
        "decisions_embedded": result["embedded_decisions"],
        "seconds_with_embedded_and_session": round(time.perf_counter() - began, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()

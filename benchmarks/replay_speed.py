"""Benchmark: the real-time replay's speed at default size.

    python benchmarks/replay_speed.py

Needs the model stage's output (`dvc repro model`). Runs the closed loop once to record a stream,
then measures (issue 5 targets in brackets):
  - micro-batch throughput of the processor on that stream, no LIME      [>= 200,000 events/s, one core]
  - per-event latency, a session's first event arriving -> its decision  [p99 <= 2 ms]
  - one LIME explanation of a decision                                    [<= 50 ms]
  - peak memory of the whole run. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from atelier.core.config import load_params  # noqa: E402
from atelier.data.features import FeatureSettings  # noqa: E402
from atelier.replay import explanations, monitor, speed, stage  # noqa: E402
from atelier.replay.loop import ReplaySettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    warnings.filterwarnings("ignore")
    params = load_params(REPO / "params.yaml")
    context = stage.load_context(REPO, ReplaySettings.from_params(params["replay"], params["seed"]),
                                 FeatureSettings.from_params(params["prep"]), params["timeline"],
                                 source=params["data"]["source"], simulate=params["simulate"])
    began = time.perf_counter()
    loop = context.closed_loop().run(progress=False)
    loop_seconds = time.perf_counter() - began
    events, orders = loop.frames("events"), loop.frames("orders")
    recorded = speed.network_stream(context, events, orders, speed.THROUGHPUT_STREAM)
    throughput = speed.micro_batch_throughput(context, recorded)
    first_day = speed.network_stream(context, events, orders, speed.LATENCY_STREAM,
                                     until=context.cutoff + pd.Timedelta(days=1))
    per_event = speed.per_event_latency(context, first_day)
    latency = monitor.latency_summary(per_event["milliseconds"].to_numpy() / 1000)
    explained = explanations.explain_decisions(context, loop.frames("decisions"), loop.frames("profiles"),
                                               stage.reference_profiles(context), 30).lines
    print(json.dumps({
        "benchmark": "replay_speed",
        "visits": int(len(loop.frames("visits"))),
        "closed_loop_seconds": round(loop_seconds, 1),
        "micro_batch_records": throughput["records"],
        "micro_batch_size": context.settings.micro_batch_events,
        "micro_batch_records_per_second": round(throughput["records_per_second"]),
        "per_event_decisions": int(latency["count"]),
        "per_event_p50_ms": round(latency["p50"], 3),
        "per_event_p99_ms": round(latency["p99"], 3),
        "lime_p50_ms": round(float(np.median(explained["milliseconds"])), 1),
        "lime_p99_ms": round(float(np.percentile(explained["milliseconds"], 99)), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()

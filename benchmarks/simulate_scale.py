"""Benchmark: simulate N customers (default 1,000,000) with the project's params; time, events/s, peak memory.

    python benchmarks/simulate_scale.py --customers 1000000

Prints one JSON line; `benchmarks/run.py` runs it in a fresh process so peak memory is its own.
The target (issue 2): one million customers must work on a 24 GB machine.
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

from atelier.core.config import load_params
from atelier.data.simulate import config_from_params
from atelier.data.stage import simulate_shop

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the data here instead of a temporary folder")
    arguments = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    params["simulate"]["n_customers"] = arguments.customers
    config = config_from_params(params["simulate"])
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    began = time.perf_counter()
    metrics = simulate_shop(
        config,
        int(params["seed"]),
        [pd.Timestamp(c) for c in params["timeline"]["cutoffs"]],
        int(params["timeline"]["horizon_days"]),
        folder / "data",
        folder / "truth",
    )
    seconds = time.perf_counter() - began
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    result = {
        "benchmark": "simulate_scale",
        "customers": arguments.customers,
        "chunk_customers": config.chunk_customers,
        "sessions": metrics["sessions"],
        "events": metrics["events"],
        "orders": metrics["orders"],
        "seconds": round(seconds, 2),
        "events_per_second": round(metrics["events"] / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "disk_mb": round(disk / 2**20),
        "session_conversion": round(metrics["realism"]["session_conversion"], 4),
    }
    if arguments.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

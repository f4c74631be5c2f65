"""Benchmark: batch scoring with the registered champion (loaded by alias), rows per second.

    python benchmarks/model_scoring.py --rows 1000000

Needs the model stage's output (`dvc repro model`). The test snapshot is tiled up to --rows. Two
figures per thread count (1 and 2, the machine's cores): end to end from the raw feature frame (the
champion Pipeline's predict_proba) and the model alone on already-prepared numbers. Target (issue 4):
at least one million rows per second on 2 cores. OpenMP reads OMP_NUM_THREADS once, at start, so
this script sets it to 2 before importing anything that starts OpenMP (benchmarks/run.py otherwise
pins every benchmark to one thread); `n_jobs` then picks 1 or 2 threads per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "2"  # before numpy/xgboost start their thread pools

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from atelier.core import paths
from atelier.data import transform  # noqa: E402
from atelier.model.registry import Registry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def best_of(function, repeats: int = 3) -> float:
    """The fastest of a few timed runs (seconds)."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    arguments = parser.parse_args()
    registry_dir = REPO / paths.REGISTRY_DIR
    if not (registry_dir / "aliases.json").exists():
        sys.exit(f"{registry_dir} has no champion: run `dvc repro model` first")
    registry = Registry(registry_dir)
    version = registry.alias("champion")
    metadata = registry.metadata(version)
    champion = registry.load("champion")
    snapshots = pd.read_parquet(REPO / paths.SNAPSHOTS_FILE)
    test = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
    frame = transform.model_frame(test[metadata["features"]])
    repeats = -(-arguments.rows // len(frame))
    batch = pd.concat([frame] * repeats, ignore_index=True).iloc[: arguments.rows]
    prepared = np.asarray(champion[:-1].transform(batch), dtype=np.float32)
    figures = {}
    for threads in (1, 2):
        if "n_jobs" in champion[-1].get_params():
            champion[-1].set_params(n_jobs=threads)
        end_to_end = best_of(lambda: champion.predict_proba(batch))
        model_only = best_of(lambda: champion[-1].predict_proba(prepared))
        figures[f"threads_{threads}"] = {
            "end_to_end_seconds": round(end_to_end, 3),
            "end_to_end_rows_per_second": round(len(batch) / end_to_end),
            "model_only_seconds": round(model_only, 3),
            "model_only_rows_per_second": round(len(batch) / model_only),
        }
    print(json.dumps({
        "benchmark": "model_scoring",
        "champion": f"{metadata['name']} {version}",
        "rows": len(batch),
        **figures,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()

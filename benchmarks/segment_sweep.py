"""Benchmark: the segmentation k sweep (k 2..10, n_init 100) on the default-size latest snapshot.

    python benchmarks/segment_sweep.py

Needs the prep stage's output (`dvc repro prep`). Target (issue 3): the full k sweep with
n_init=100 on the default 20,000 customers within 60 s on 2 cores. Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd

from atelier.core import paths
from atelier.core.config import load_params
from atelier.segment import cluster
from atelier.segment.settings import SegmentSettings, available_features

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    snapshots_file = REPO / paths.SNAPSHOTS_FILE
    if not snapshots_file.exists():
        sys.exit(f"{snapshots_file} is missing: run `dvc repro prep` first")
    params = load_params(REPO / "params.yaml")
    settings = SegmentSettings.from_params(params["segmentation"], params["seed"])
    snapshots = pd.read_parquet(snapshots_file)
    latest = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
    used, _ = available_features(latest, settings)
    frame = latest[used]
    X = cluster.build_preprocessor(used, settings.log1p).fit_transform(frame.to_numpy(dtype=float))
    began = time.perf_counter()
    sweep = cluster.k_sweep(X, settings)
    seconds = time.perf_counter() - began
    print(json.dumps({
        "benchmark": "segment_sweep",
        "customers": len(frame),
        "features": len(used),
        "k_range": [settings.k_min, settings.k_max],
        "n_init": settings.n_init,
        "silhouette_sample": settings.silhouette_sample,
        "threads": settings.threads,
        "seconds": round(seconds, 2),
        "seconds_per_k": round(seconds / len(sweep), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "best_k_by_silhouette": int(sweep["silhouette"].idxmax()),
    }))


if __name__ == "__main__":
    main()

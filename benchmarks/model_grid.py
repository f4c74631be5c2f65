"""Benchmark: the propensity grid search (all candidates, params.yaml grids) at the default size.

    python benchmarks/model_grid.py

Needs the prep stage's output (`dvc repro prep`). Target (issue 4): the full grid search at
default size within 3 minutes on 2 cores. Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from atelier.core import paths
from atelier.core.config import load_params
from atelier.model import candidates
from atelier.model.split import features_of, split_by_time

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    snapshots_file = REPO / paths.SNAPSHOTS_FILE
    if not snapshots_file.exists():
        sys.exit(f"{snapshots_file} is missing: run `dvc repro prep` first")
    params = load_params(REPO / "params.yaml")
    settings = candidates.ModelSettings.from_params(params["model"], params["seed"])
    split = split_by_time(pd.read_parquet(snapshots_file), int(params["timeline"]["horizon_days"]))
    numeric, categorical = features_of(split.train)
    began = time.perf_counter()
    table = candidates.grid_search(split.train, numeric, categorical, settings)
    seconds = time.perf_counter() - began
    per_candidate = table.groupby("candidate")["fit_seconds"].sum() * settings.cv_folds
    print(json.dumps({
        "benchmark": "model_grid",
        "training_rows": len(split.train),
        "features": len(numeric) + len(categorical),
        "settings_scored": len(table),
        "settings_fitted": int((table["fit_seconds"] > 0).sum()),  # the others are read from a larger fit's trees
        "cv_folds": settings.cv_folds,
        "threads": settings.threads,
        "seconds": round(seconds, 1),
        "fit_seconds_by_candidate": {k: round(v, 1) for k, v in per_candidate.items()},
        "best_cv_auc": round(float(table["cv_auc"].max()), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()

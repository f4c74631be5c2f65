"""Run every benchmark in its own process and print (and save) their figures.

    python benchmarks/run.py                 # all benchmarks at their default sizes
    python benchmarks/run.py --quick         # smaller sizes, to check they still run

Results go to benchmarks/results/<name>.json (not committed; quote them in your closing notes).
Benchmarks measure speed and memory; tests never assert timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: name -> (script, full-size arguments, quick arguments)
BENCHMARKS = {
    "simulate_scale": ("simulate_scale.py", ["--customers", "1000000"], ["--customers", "50000"]),
    "segment_sweep": ("segment_sweep.py", [], []),
    "model_grid": ("model_grid.py", [], []),
    "model_scoring": ("model_scoring.py", ["--rows", "1000000"], ["--rows", "100000"]),
    "replay_speed": ("replay_speed.py", [], []),
    "serve_load": ("serve_load.py", [], ["--quick"]),
    "spark_scaling": ("spark_scaling.py", ["--customers", "100000"], ["--customers", "20000"]),
    "spark_stream": ("spark_stream.py", [], ["--days", "1"]),
    "recommend": ("recommend.py", [], []),
    "ope_estimators": ("ope_estimators.py", ["--rounds", "1000000"], ["--rounds", "100000"]),
    "stage_budget": ("stage_budget.py", ["--no-fail"], ["--no-fail", "--params", "params.quick.yaml",
                                                         "--budget-key", "quick"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run at small sizes")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {sorted(BENCHMARKS)})")
    arguments = parser.parse_args()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for name in arguments.names or sorted(BENCHMARKS):
        script, full, quick = BENCHMARKS[name]
        print(f"== {name} ==", file=sys.stderr, flush=True)
        completed = subprocess.run([sys.executable, str(HERE / script), *(quick if arguments.quick else full)],
                                   env=env, check=True, stdout=subprocess.PIPE, text=True)
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        (results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: each pipeline stage's wall time, CPU time and peak memory from a clean run, against a budget.

    python benchmarks/stage_budget.py                          # the default size, every stage (make budget)
    python benchmarks/stage_budget.py --params params.quick.yaml --budget-key quick   # the quick run's size
    python benchmarks/stage_budget.py --keep /tmp/run          # keep the workspace to look at

The project's sources are copied to a temporary workspace (`atelier.report.workspace`, a DVC project of
its own: the project's data, models and reports are untouched) and each stage runs there in the order
`dvc repro` runs them (`dvc repro --single-item <stage>`, DVC's own work included). A stage's peak
memory is the largest total of its processes alive together (the DVC command, the stage, the notebook's
kernel and the worker processes they start; sampled every 0.2 s, `tree_memory.TreeMemory`). The figures are
compared with benchmarks/stage_budget.json; a stage over its wall-time or memory budget is marked OVER
and the exit code is 1, so a regression shows up. Wall time depends on what else runs on the machine:
the CPU time column says how much of it was the stage's own work. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from tree_memory import TreeMemory  # benchmarks/ (this script's folder)

from atelier.report import workspace

REPO = Path(__file__).resolve().parents[1]
BUDGET_FILE = Path(__file__).resolve().parent / "stage_budget.json"


def stage_order(root: Path) -> list[str]:
    """The stages in an order `dvc repro` could run them (from `dvc dag --dot`; ties in dvc.yaml's order)."""
    lines = workspace.dvc(root, "dag", "--dot", capture=True).stdout.splitlines()
    nodes = [line.strip().strip('";') for line in lines if line.strip().endswith('";') and "->" not in line]
    edges = [tuple(part.strip().strip('";') for part in line.split("->")) for line in lines if "->" in line]
    order: list[str] = []
    while len(order) < len(nodes):
        ready = [n for n in nodes if n not in order and all(a in order for a, b in edges if b == n)]
        if not ready:
            raise RuntimeError(f"dvc dag has a cycle among {sorted(set(nodes) - set(order))}")
        order.append(ready[0])
    return order


def run_stage(root: Path, stage: str) -> dict[str, float]:
    """Run one stage (upstream already done); its wall seconds, CPU seconds and peak memory (MB)."""
    with tempfile.TemporaryFile("w+") as log:
        began = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--single-item", stage], cwd=root,
                                   env=workspace.environment(root), stdout=log, stderr=subprocess.STDOUT)
        memory = TreeMemory(process.pid)  # the stage, its kernel and their worker processes, summed
        _, status, usage = os.wait4(process.pid, 0)  # the stage's own resource usage, its processes included
        wall = time.perf_counter() - began
        peak = memory.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            log.seek(0)
            raise SystemExit(f"stage {stage} failed:\n{log.read()[-3000:]}")
    reaped = usage.ru_utime + usage.ru_stime  # the processes the stage waited for
    return {"wall_seconds": round(wall, 1), "cpu_seconds": round(max(reaped, memory.cpu_seconds()), 1),
            "peak_memory_mb": max(peak, round(usage.ru_maxrss / 1024))}


def compare(figures: dict[str, dict[str, float]], budget: dict[str, dict[str, float]]) -> list[str]:
    """The stages over budget (wall time or peak memory), as 'stage: what' sentences."""
    over = []
    for stage, measured in figures.items():
        allowed = budget.get(stage, {})
        for key in ("wall_seconds", "peak_memory_mb"):
            if key in allowed and measured[key] > allowed[key]:
                over.append(f"{stage}: {key} {measured[key]:g} > budget {allowed[key]:g}")
    return over


def table(figures: dict[str, dict[str, float]], budget: dict[str, dict[str, float]]) -> str:
    """The figures beside their budget, one line per stage, and the total."""
    lines = [f"{'stage':<12}{'wall s':>9}{'budget':>9}{'CPU s':>9}{'peak MB':>9}{'budget':>9}"]
    for stage, m in figures.items():
        b = budget.get(stage, {})
        flag = " OVER" if compare({stage: m}, budget) else ""
        lines.append(f"{stage:<12}{m['wall_seconds']:>9.1f}{b.get('wall_seconds', float('nan')):>9.0f}"
                     f"{m['cpu_seconds']:>9.1f}{m['peak_memory_mb']:>9.0f}{b.get('peak_memory_mb', float('nan')):>9.0f}"
                     f"{flag}")
    total = sum(m["wall_seconds"] for m in figures.values())
    lines.append(f"{'total':<12}{total:>9.1f}{budget.get('total', {}).get('wall_seconds', float('nan')):>9.0f}"
                 f"{sum(m['cpu_seconds'] for m in figures.values()):>9.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, help="a file laid over params.yaml (e.g. params.quick.yaml)")
    parser.add_argument("--budget-key", default="default", help="which budget in stage_budget.json (default, quick)")
    parser.add_argument("--stages", nargs="*", help="stop after these stages have run (default: all)")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a stage is over budget")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary folder)")
    arguments = parser.parse_args()
    override = yaml.safe_load((REPO / arguments.params).read_text(encoding="utf-8")) if arguments.params else {}
    budget = json.loads(BUDGET_FILE.read_text(encoding="utf-8"))[arguments.budget_key]
    with tempfile.TemporaryDirectory(prefix="atelier-budget-") as scratch:
        root = workspace.prepare(REPO, arguments.keep or Path(scratch) / "atelier", override)
        order = stage_order(root)
        wanted = set(arguments.stages or order)
        figures: dict[str, dict[str, float]] = {}
        for stage in order:
            if wanted <= set(figures):
                break
            print(f"== {stage} ==", file=sys.stderr, flush=True)
            figures[stage] = run_stage(root, stage)
    over = compare(figures, budget)
    total = sum(m["wall_seconds"] for m in figures.values())
    if "total" in budget and set(figures) == set(order) and total > budget["total"]["wall_seconds"]:
        over.append(f"total: wall_seconds {total:g} > budget {budget['total']['wall_seconds']:g}")
    print(table(figures, budget), file=sys.stderr)
    for line in over:
        print(f"OVER BUDGET {line}", file=sys.stderr)
    print(json.dumps({"benchmark": "stage_budget", "budget": arguments.budget_key, "stages": figures,
                      "total_wall_seconds": round(total, 1), "over_budget": over}))
    sys.exit(1 if over and not arguments.no_fail else 0)


if __name__ == "__main__":
    main()

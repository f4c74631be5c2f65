"""benchmarks/stage_budget.py: the stage order, one stage's measured figures, and the budget comparison."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, tiny_params

from atelier.report import workspace

sys.path.insert(0, str(REPO / "benchmarks"))
import stage_budget  # noqa: E402
from tree_memory import TreeMemory  # noqa: E402


def test_the_budget_file_covers_every_stage():
    budget = json.loads(stage_budget.BUDGET_FILE.read_text(encoding="utf-8"))
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"])
    assert set(budget["default"]) == stages | {"total"}
    assert all(limits["wall_seconds"] > 0 for limits in budget["default"].values())


def test_over_budget_stages_are_named():
    figures = {"prep": {"wall_seconds": 50.0, "cpu_seconds": 40.0, "peak_memory_mb": 900},
               "model": {"wall_seconds": 130.0, "cpu_seconds": 200.0, "peak_memory_mb": 2500}}
    budget = {"prep": {"wall_seconds": 60, "peak_memory_mb": 1000}, "model": {"wall_seconds": 120}}
    assert stage_budget.compare(figures, budget) == ["model: wall_seconds 130 > budget 120"]
    lines = stage_budget.table(figures, budget).splitlines()
    assert lines[2].startswith("model") and lines[2].endswith("OVER") and not lines[1].endswith("OVER")
    assert lines[-1].split()[:2] == ["total", "180.0"]


@pytest.mark.slow
def test_a_clean_workspace_gives_the_stage_order_and_one_stage_s_figures(tmp_path):
    params = tiny_params()
    root = workspace.prepare(REPO, tmp_path / "atelier", {key: params[key] for key in ("simulate", "timeline")})
    order = stage_budget.stage_order(root)
    assert order[:3] == ["simulate", "validate", "prep"] and order[-1] == "index"
    assert order.index("segment") < order.index("model") < order.index("replay") < order.index("robustness")
    project_metrics = (REPO / "metrics" / "simulate.json").read_bytes()
    figures = stage_budget.run_stage(root, "simulate")
    assert (root / "metrics" / "simulate.json").is_file()
    assert (REPO / "metrics" / "simulate.json").read_bytes() == project_metrics, "the project's outputs untouched"
    assert 0 < figures["cpu_seconds"] and 0 < figures["wall_seconds"] < 600
    assert 50 < figures["peak_memory_mb"] < 8000  # a Python process with pandas loaded, counted in MB


def test_tree_memory_sums_the_processes_alive_together():
    """Two children of 150 MB each, alive together under one parent: the tree's peak is their sum (no single
    process reaches 200 MB, which is all a per-process peak would show)."""
    child = ("import time; block = bytearray(150 * 2**20); time.sleep(2); end = time.process_time() + 1\n"
             "while time.process_time() < end: pass")
    parent = subprocess.Popen([sys.executable, "-c", f"""
import subprocess, sys
children = [subprocess.Popen([sys.executable, "-c", {child!r}]) for _ in range(2)]
for process in children:
    process.wait()
"""])
    memory = TreeMemory(parent.pid, every=0.05)
    parent.wait(timeout=60)
    assert memory.stop() > 300
    assert memory.cpu_seconds() >= 1.5  # each child spent a second of CPU after its sleep

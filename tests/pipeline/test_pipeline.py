"""`dvc repro` in a fresh copy of the project at tiny parameters, as a new user would run it.

The build itself is the shared `built_project` fixture (`make repro` on a fresh copy, once per test run); that the
same parameters give byte-identical metrics from scratch is checked by tests/pipeline/test_readme_commands.py,
whose `make quick` rebuilds everything in quick/ at the same parameters and compares.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_project, tiny_params, write_params

from atelier.core.io import read_json

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """The environment stage commands run in: this interpreter's `python` and `dvc` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("ATELIER_ROOT", None)
    return env


def _run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


ALL_STAGES = {"simulate", "validate", "prep", "segment", "model", "recommend", "replay", "obd", "ope", "robustness",
              "index"}
REPORTS = ("01_data_prep", "02_segmentation", "03_propensity_model", "04_recommendations", "05_realtime_replay",
           "06_off_policy_evaluation", "07_robustness")


def _metrics(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((root / "metrics").glob("*.json"))}


def _descendants(root: Path) -> dict[str, set[str]]:
    """Each stage's downstream stages, from the edges `dvc dag --dot` draws."""
    edges = [
        line.replace('"', "").replace(";", "").split("->")
        for line in _run(["dvc", "dag", "--dot"], root).stdout.splitlines()
        if "->" in line
    ]
    children: dict[str, set[str]] = {}
    for parent, child in edges:
        children.setdefault(parent.strip(), set()).add(child.strip())

    def below(stage: str) -> set[str]:  # noqa: E306
        return set().union(*({child} | below(child) for child in children.get(stage, set())))

    return {stage: below(stage) for stage in ALL_STAGES}


def test_make_repro_builds_the_pipeline_and_then_reruns_nothing(built_project, built_log, tmp_path):
    built = built_project
    params = tiny_params()
    assert _stages_run(built_log) == ALL_STAGES
    simulated = read_json(built / "metrics" / "simulate.json")
    assert simulated["customers"] == 400 and simulated["events"] > 0
    assert read_json(built / "metrics" / "validate.json")["tables"]["orders"]["rows_quarantined"] == 0
    assert sorted(read_json(built / "metrics" / "prep.json")["cutoffs"]) == params["timeline"]["cutoffs"]
    assert read_json(built / "metrics" / "replay.json")["books"]["balanced"] is True
    assert read_json(built / "metrics" / "robustness.json")["data_checks"]["missed"] == 0
    index = (built / "reports" / "index.html").read_text(encoding="utf-8")
    for report in REPORTS:
        assert (built / "reports" / f"{report}.html").stat().st_size > 10_000
        assert (built / "reports" / f"{report}.story.html").stat().st_size > 10_000
        assert f'href="{report}.html"' in index and f'href="{report}.story.html"' in index

    root = copy_project(built, tmp_path / "atelier")
    second = _run(["dvc", "repro"], root)
    assert _stages_run(second.stdout) == set()
    assert "Data and pipelines are up to date" in second.stdout

    # Which stages a parameter change touches: `--dry` lists the stages whose own params changed
    # (nothing upstream); DVC then reruns those and, as their outputs change, what lies below them.
    downstream = _descendants(root)
    assert downstream["segment"] == {"model", "recommend", "replay", "ope", "robustness", "index"}
    assert downstream["simulate"] == ALL_STAGES - {"simulate", "obd"}
    expectations = [
        (("segmentation", "k"), 4, {"segment"}),
        (("model", "promotion_min_delta"), 0.5, {"model", "replay", "robustness"}),
        (("replay", "response_strength"), 0.0, {"replay", "ope"}),
        (("prep", "half_life_days"), 7, {"prep", "replay", "ope", "robustness"}),
        (("ope", "estimators", "clip"), 5, {"ope"}),
        (("robustness", "fairness", "target_share"), 0.3, {"robustness"}),
        (("recommend", "half_life_days"), 7, {"recommend"}),
    ]
    for keys, value, stages in expectations:
        changed = copy.deepcopy(params)
        section = changed
        for key in keys[:-1]:
            section = section[key]
        section[keys[-1]] = value
        write_params(changed, root)
        assert _stages_run(_run(["dvc", "repro", "--dry"], root).stdout) == stages, ".".join(keys)
    write_params(params, root)


def test_orders_only_csv_runs_end_to_end(orders_only_project):
    root = orders_only_project
    assert read_json(root / "metrics" / "simulate.json")["skipped"] is True
    validated = read_json(root / "metrics" / "validate.json")
    assert validated["tables_present"] == ["orders"]
    assert validated["tables"]["orders"]["rows_quarantined"] == 1
    assert validated["tables"]["orders"]["reasons"] == {"amount is negative": 1}
    prep = read_json(root / "metrics" / "prep.json")
    assert {"events", "device", "categories", "demographics"} <= set(prep["skipped_groups"])
    first_order_day = {c: c % 20 for c in range(1, 61)}  # a customer is known once they have ordered
    for cutoff, entry in prep["cutoffs"].items():
        known = sum(
            1
            for day in first_order_day.values()
            if pd.Timestamp("2025-01-01 10:30") + pd.Timedelta(days=day) < pd.Timestamp(cutoff)
        )
        assert entry["customers"] == known
    html = (root / "reports" / "01_data_prep.html").read_text(encoding="utf-8")
    assert "Feature groups skipped for lack of data" in html
    segments = read_json(root / "metrics" / "segment.json")
    assert (
        segments["truth"] is None
        and sum(segments["sizes"].values()) == prep["cutoffs"][max(prep["cutoffs"])]["customers"]
    )
    assert read_json(root / "metrics" / "model.json")["oracle"] is None
    assert read_json(root / "metrics" / "recommend.json")["skipped"].startswith("no events or products table")
    replay = read_json(root / "metrics" / "replay.json")
    assert replay["closed_loop"] is False and replay["ab_test"] is None and replay["books"]["balanced"] is True
    robust = read_json(root / "metrics" / "robustness.json")
    assert robust["fairness"]["flagged"] == [] and robust["rollback"] == {} and robust["data_checks"]["missed"] == 0
    assert "not built yet" not in (root / "reports" / "index.html").read_text(encoding="utf-8")


def test_bad_input_stops_with_a_clear_message_and_no_traceback(tmp_path):
    root = tmp_path / "project"
    (root / "mydata").mkdir(parents=True)
    (root / "mydata" / "orders.csv").write_text(
        "customer_id,order_id,ordered_at,total\nC1,O1,2025-01-01,10\n", encoding="utf-8"
    )
    params = tiny_params()
    params["data"].update(source="files", path="mydata")
    write_params(params, root)
    result = _run([sys.executable, "-m", "atelier", "validate"], root, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "orders.csv" in result.stderr and "'amount'" in result.stderr


def test_params_error_names_the_key(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    params = tiny_params()
    params["data"]["source"] = "database"
    write_params(params, root)
    result = _run([sys.executable, "-m", "atelier", "simulate"], root, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.source" in result.stderr and "database" in result.stderr
    assert yaml.safe_load((root / "params.yaml").read_text())["data"]["source"] == "database"

"""The phase notebooks execute at tiny parameters and say what they did (papermill, as the stage runs them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from atelier import stages, validate
from atelier.features import purchase_label
from atelier.io import read_json
from conftest import REPO

pytestmark = pytest.mark.slow


def _project_copy(source_root: Path, destination: Path) -> Path:
    """A runnable project folder: the tiny data and params plus this repo's notebooks and dvc.yaml."""
    shutil.copytree(source_root, destination)
    shutil.copytree(REPO / "notebooks", destination / "notebooks")
    shutil.copy(REPO / "dvc.yaml", destination / "dvc.yaml")
    return destination


def _rendered_text(executed: Path) -> str:
    """Everything a reader sees: markdown sources and text/markdown outputs."""
    notebook = nbformat.read(executed, as_version=4)
    parts = []
    for cell in notebook.cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"cell failed: {output.get('evalue')}"
            data = output.get("data", {})
            parts.append(data.get("text/markdown", "") + data.get("text/plain", "") + output.get("text", ""))
    return "\n".join(parts)


def test_prep_notebook_runs_and_writes_consistent_outputs(tiny_root, tmp_path):
    root = _project_copy(tiny_root, tmp_path / "project")
    executed = stages.execute("prep", root)

    text = _rendered_text(executed)
    assert "identical whether or not data after the cutoff is present" in text
    assert "All feature groups are available" in text
    assert (root / "reports" / "01_data_prep.html").read_text(encoding="utf-8").count("The leakage rule") >= 1

    metrics = read_json(root / "metrics" / "prep.json")
    snapshots = pd.read_parquet(root / "data" / "features" / "snapshots.parquet")
    orders = validate.load_validated(root)["orders"]
    for cutoff, entry in metrics["cutoffs"].items():
        rows = snapshots[snapshots["cutoff"] == pd.Timestamp(cutoff)]
        buyers = purchase_label(orders, pd.Timestamp(cutoff), 30)
        assert entry["customers"] == len(rows)
        assert entry["buyers_in_window"] == int(buyers.index.isin(rows.index).sum())
    assert metrics["prepared_all_finite"] is True
    assert metrics["skipped_groups"] == []
    spec = read_json(root / "models" / "prep" / "features.json")
    assert spec["train_cutoffs"] == ["2025-04-01"] and spec["test_cutoff"] == "2025-05-01"
    prepared = pd.read_parquet(root / "data" / "features" / "prepared.parquet")
    assert list(prepared.columns[:-2]) == spec["prepared_columns"] and len(prepared) == len(snapshots)


def test_prep_notebook_on_orders_alone_says_what_it_skipped(tiny_root, tmp_path):
    root = _project_copy(tiny_root, tmp_path / "project")
    for table in ("events", "customers", "products"):
        (root / "data" / "validated" / f"{table}.parquet").unlink()
    executed = stages.execute("prep", root)

    text = _rendered_text(executed)
    assert "Feature groups skipped for lack of data" in text
    assert "No events table: the funnel needs clickstream data" in text
    assert "No device column in the events" in text
    metrics = read_json(root / "metrics" / "prep.json")
    assert set(metrics["skipped_groups"]) == {"events", "dwell", "device", "categories", "demographics"}
    snapshots = pd.read_parquet(root / "data" / "features" / "snapshots.parquet")
    assert "sessions_total" not in snapshots and "frequency" in snapshots

"""The phase notebooks execute at tiny parameters and say what they did (papermill, as the stage runs them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import REPO, tiny_params

from atelier.core import attributes, paths
from atelier.core.io import read_json
from atelier.data import validate
from atelier.data.features import purchase_label
from atelier.model.registry import Registry
from atelier.report import notebook as stages
from atelier.segment import cluster as segment

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


def _upstream(root: Path, *names: str) -> None:
    """Run the stages a notebook test needs, unless an earlier test already did (their metrics exist)."""
    for name in names:
        if not (root / "metrics" / f"{name}.json").exists():
            stages.execute(name, root)


@pytest.fixture(scope="module")
def prepped_root(tiny_root, tmp_path_factory) -> Path:
    """A tiny project after the prep notebook ran (shared by the prep and segment tests)."""
    root = _project_copy(tiny_root, tmp_path_factory.mktemp("prepped") / "project")
    stages.execute("prep", root)
    return root


@pytest.fixture(scope="module")
def orders_only_root(tiny_root, tmp_path_factory) -> Path:
    """A tiny project whose validated data is orders alone, after the prep notebook ran."""
    root = _project_copy(tiny_root, tmp_path_factory.mktemp("orders_only") / "project")
    for table in ("events", "customers", "products"):
        (root / "data" / "validated" / f"{table}.parquet").unlink()
    for entry in (root / "data" / "truth").iterdir():  # user data: no ground truth
        entry.unlink()
    stages.execute("prep", root)
    return root


def test_prep_notebook_runs_and_writes_consistent_outputs(prepped_root):
    root = prepped_root
    executed = root / "reports" / "01_data_prep.ipynb"

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
    cutoffs = tiny_params()["timeline"]["cutoffs"]
    assert spec["train_cutoffs"] == cutoffs[:-1] and spec["test_cutoff"] == cutoffs[-1]
    prepared = pd.read_parquet(root / "data" / "features" / "prepared.parquet")
    assert list(prepared.columns[:-2]) == spec["prepared_columns"] and len(prepared) == len(snapshots)


def test_prep_notebook_on_orders_alone_says_what_it_skipped(orders_only_root):
    root = orders_only_root
    executed = root / "reports" / "01_data_prep.ipynb"

    text = _rendered_text(executed)
    assert "Feature groups skipped for lack of data" in text
    assert "No events table: the funnel needs clickstream data" in text
    assert "No device column in the events" in text
    metrics = read_json(root / "metrics" / "prep.json")
    assert set(metrics["skipped_groups"]) == {"events", "dwell", "device", "categories", "demographics"}
    snapshots = pd.read_parquet(root / "data" / "features" / "snapshots.parquet")
    assert "sessions_total" not in snapshots and "frequency" in snapshots


def test_segment_notebook_runs_and_stores_what_it_reports(prepped_root):
    root = prepped_root
    executed = stages.execute("segment", root)

    text = _rendered_text(executed)
    assert "Reading the sweep" in text and "ARI against personas" in text
    metrics = read_json(root / "metrics" / "segment.json")
    assert metrics["k"] == 5 and sum(metrics["sizes"].values()) == len(
        pd.read_parquet(root / "data" / "features" / "snapshots.parquet").query("cutoff == cutoff.max()"))
    assert metrics["truth"] is not None and -1 <= metrics["truth"]["ari"] <= 1
    stored = attributes.read_table(root / paths.SEGMENT_ATTRIBUTES, "customer_segments")
    assert stored["segment_name"].value_counts().to_dict() == metrics["sizes"]
    assert set(stored["model_version"]) == {metrics["model_version"]}
    assert metrics["model_version"] == segment.model_version(root / paths.SEGMENT_MODEL_DIR / "segmenter.skops")
    sweep = pd.read_csv(root / paths.SEGMENT_PLOTS / "k_sweep.csv")
    assert list(sweep["k"]) == [2, 3, 4, 5, 6] and {"silhouette", "silhouette_raw"} <= set(sweep.columns)


def test_segment_notebook_on_orders_alone_skips_the_truth(orders_only_root):
    executed = stages.execute("segment", orders_only_root)
    text = _rendered_text(executed)
    assert "there is no ground truth to compare with: skipped" in text
    assert "Not available in this data (skipped)" in text
    metrics = read_json(orders_only_root / "metrics" / "segment.json")
    assert metrics["truth"] is None and "sessions_90d" in metrics["skipped_features"]


def test_model_notebook_registers_a_champion_that_scores_like_it_reports(prepped_root):
    root = prepped_root
    stages.execute("segment", root)  # the model stage carries the segment attributes forward
    executed = stages.execute("model", root)

    text = _rendered_text(executed)
    assert "Champion:" in text and "The oracle reaches" in text and "When not to trust an explanation" in text
    metrics = read_json(root / "metrics" / "model.json")
    champion = metrics["champion"]
    registry = Registry(root / "models" / "registry")
    assert registry.alias("champion") == champion["version"]
    assert registry.metadata(champion["version"])["name"] == champion["name"]
    decided = [p for p in metrics["promotions"] if p["promoted"]]
    assert decided[-1]["candidate"] == champion["version"]
    assert 0 < metrics["oracle"]["champion_ratio"] <= 1.2
    stored = attributes.read_table(root / paths.PROPENSITY_ATTRIBUTES, "customer_attributes")
    snapshots = pd.read_parquet(root / "data" / "features" / "snapshots.parquet")
    latest = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
    assert len(stored) == len(latest) and stored["segment_name"].notna().all()
    assert set(stored["propensity_model"]) == {champion["version"]}
    assert {p.name for p in (root / "plots" / "model").glob("*.csv")} == {"roc.csv", "pr.csv", "gains.csv", "lift.csv", "calibration.csv"}


def test_model_notebook_on_orders_alone_has_no_oracle(orders_only_root):
    stages.execute("segment", orders_only_root)
    text = _rendered_text(stages.execute("model", orders_only_root))
    assert "there is no true probability, so no oracle AUC" in text
    assert read_json(orders_only_root / "metrics" / "model.json")["oracle"] is None


def test_replay_notebook_balances_its_books_and_measures_the_test(prepped_root):
    root = prepped_root
    _upstream(root, "segment", "model")
    executed = stages.execute("replay", root)

    text = _rendered_text(executed)
    assert "This is a simulation." in text and "features identical" in text
    metrics = read_json(root / "metrics" / "replay.json")
    books = metrics["books"]
    assert books["balanced"] and books["received"] == books["applied"] + books["duplicates"] + books["late"] + books["malformed"]
    assert books["duplicates"] > 0
    parity = metrics["parity"]  # only the decayed engagement score may differ, in the last bits
    assert parity["holds"] and set(parity["differing"]) <= {"engagement_score"} and float(parity["max_abs_difference"]) < 1e-9
    assert parity["identical"] == parity["features"] - len(parity["differing"])
    ab = metrics["ab_test"]["conversion"]
    assert ab["ci_low"] <= ab["relative_uplift"] <= ab["ci_high"]
    assert {row["strength"] for row in metrics["sensitivity"]} == {0.0, 0.5}
    decisions = pd.read_parquet(root / "data" / "replay" / "decisions.parquet")
    assert len(decisions) == metrics["decisions"]["total"] and decisions["session_id"].is_unique
    assert set(decisions["reason"]) <= {"personalized", "control", "cold_start", "missing_features", "model_unavailable"}
    assert (root / "data" / "replay" / "checkpoint" / "profiles.sqlite").exists()


def test_replay_notebook_on_orders_alone_runs_open_loop(orders_only_root):
    root = orders_only_root
    _upstream(root, "segment", "model")
    text = _rendered_text(stages.execute("replay", root))
    assert "the replay is **open loop**" in text
    metrics = read_json(root / "metrics" / "replay.json")
    assert metrics["closed_loop"] is False and metrics["ab_test"] is None and metrics["books"]["balanced"]


def test_robustness_notebook_checks_fairness_bad_data_retraining_and_rollback(prepped_root):
    root = prepped_root
    _upstream(root, "segment", "model", "replay")
    text = _rendered_text(stages.execute("robustness", root))
    assert "Is the model fair across groups?" in text and "## Try this" in text
    metrics = read_json(root / "metrics" / "robustness.json")
    checks = metrics["data_checks"]
    assert checks["injected_rows"] > 0 and checks["missed"] == 0 and checks["false_alarms"] == 0
    assert checks["schema_stopped"] == checks["schema_scenarios"] == 2 and checks["stream_balanced"] is True
    assert set(metrics["retraining"]["policies"]) == {"never", "monthly", "drift"}
    assert metrics["retraining"]["policies"]["never"]["fits"] == 1
    drill = metrics["rollback"]["shuffled_labels"]
    assert drill["bad_version"] != drill["original_version"]
    # caught on its first day; the rollback returns to the original champion, scoring bit for bit as before
    assert drill["detected_day"] == 1 and drill["detection_rule"] == "score drift"
    assert drill["rolled_back_to"] == drill["original_version"] and drill["restored_scores_identical"] is True
    assert drill["returned_to_original"] is True and drill["rollbacks"] == 1
    explanations = metrics["explanations"]
    if "skipped" not in explanations:  # an xgboost champion: every explanation got a verdict
        assert sum(explanations["verdict_shares"].values()) == pytest.approx(1.0)
    # The drill works on a copy: the project's registry still has its champion.
    assert read_json(root / "models" / "registry" / "aliases.json")["champion"]["current"] == metrics["champion"]


def test_robustness_notebook_on_orders_alone_says_what_it_skips(orders_only_root):
    root = orders_only_root
    _upstream(root, "segment", "model", "replay")
    text = _rendered_text(stages.execute("robustness", root))
    assert "nothing to check" in text and "the drill's daily visitors come from the events table" in text
    metrics = read_json(root / "metrics" / "robustness.json")
    assert metrics["fairness"]["flagged"] == [] and metrics["rollback"] == {}
    assert metrics["data_checks"]["missed"] == 0

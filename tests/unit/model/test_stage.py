"""What the model stage reads (snapshots and the simulator's truth) and writes (scores, attribute database, plot
data, metrics), the metrics dict it records, and the rollback it rehearses on a scratch registry."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from atelier.core import attributes, paths
from atelier.core.io import write_parquet
from atelier.model import evaluate, explain, selection, stage
from atelier.model.registry import PromotionDecision, Registry, data_hash
from atelier.model.split import split_by_time

from .model_shop import HORIZON, synthetic, tiny_snapshots


@pytest.fixture(scope="module")
def project(tiny_root, tiny_tables, tmp_path_factory):
    """A project folder with the tiny shop's snapshots and, in a copy, its truth."""
    user = tmp_path_factory.mktemp("user_data")
    write_parquet(tiny_snapshots(tiny_tables), user / paths.SNAPSHOTS_FILE)  # indexed by customer_id
    simulated = tmp_path_factory.mktemp("simulated")
    shutil.copytree(user, simulated, dirs_exist_ok=True)
    shutil.copytree(tiny_root / paths.TRUTH_DIR, simulated / paths.TRUTH_DIR)
    return {"user": user, "simulated": simulated}


def test_load_inputs_reads_the_truth_of_every_snapshot(project):
    inputs = stage.load_inputs(project["simulated"], HORIZON)
    split = inputs.split
    assert inputs.simulated and len(inputs.oracle) == len(split.test) and len(inputs.personas) == len(split.test)
    assert list(inputs.personas.index) == list(split.test.index)
    assert len(inputs.oracle_training) == len(split.train) and list(inputs.oracle_training) == ["p_true", "persona"]
    assert not np.isnan(inputs.oracle).any() and inputs.oracle_training["persona"].notna().all()
    assert inputs.snapshots["cutoff"].nunique() == len(split.train_cutoffs) + 1


def test_the_simulators_true_probability_matches_the_labels(project):
    """A data test: the truth the oracle reads is what the labels were drawn from (it lies on the diagonal)."""
    inputs = stage.load_inputs(project["simulated"], HORIZON)
    y = np.r_[inputs.split.train["label"].astype(int), inputs.split.test["label"].astype(int)]
    p = np.r_[inputs.oracle_training["p_true"], inputs.oracle]
    check = evaluate.calibration_check(y, p)
    assert check.direction == evaluate.MATCHES and check.on_diagonal
    assert roc_auc_score(y, p) > 0.75  # and it ranks buyers far better than chance


def test_load_inputs_without_truth_is_user_data(project):
    inputs = stage.load_inputs(project["user"], HORIZON)
    assert not inputs.simulated and inputs.oracle is None and inputs.personas is None
    assert inputs.oracle_training is None and len(inputs.split.test) > 0


def test_training_data_hash_is_the_snapshots_hash(project):
    root = project["user"]
    assert stage.training_data_hash(root) == data_hash([root / paths.SNAPSHOTS_FILE])
    # The same snapshots elsewhere hash the same: the hash names the data, not where the project lives.
    assert stage.training_data_hash(root) == stage.training_data_hash(project["simulated"])
    assert stage.registry(root).root == root / paths.REGISTRY_DIR


def test_write_outputs_writes_scores_plots_and_metrics(tmp_path):
    y, p = synthetic(500, 11)
    curves = evaluate.curves(y, p)
    test = pd.DataFrame(index=pd.Index(range(1, 501), name="customer_id"))
    scores = stage.scores_frame(test, p, "v3", pd.Timestamp("2025-05-01"))
    assert list(scores.columns) == ["customer_id", "propensity", "model_version", "scored_at"]
    assert set(scores["scored_at"]) == {"2025-05-01T00:00:00"} and set(scores["model_version"]) == {"v3"}
    metrics = {"champion": {"name": "xgboost", "version": "v3"}, "test": evaluate.summary(y, p)}
    view = stage.write_outputs(tmp_path, scores=scores, champion_curves=curves, metrics=metrics)
    stored = pd.read_parquet(tmp_path / paths.SCORES_FILE)
    assert len(stored) == 500 and np.allclose(stored["propensity"], p)
    assert view.equals(attributes.read_table(tmp_path / paths.PROPENSITY_ATTRIBUTES, "customer_attributes"))
    assert len(view) == 500 and view["customer_id"].is_unique and set(view["propensity_model"]) == {"v3"}
    expected_columns = {"roc": ["fpr", "tpr"], "pr": ["recall", "precision"],
                        "gains": ["share_targeted", "share_of_buyers"], "lift": ["decile", "lift", "cumulative_lift"],
                        "calibration": ["predicted", "observed"]}
    for name, wanted in expected_columns.items():
        csv = pd.read_csv(tmp_path / paths.MODEL_PLOTS / f"{name}.csv")
        assert list(csv.columns) == wanted and len(csv) == len(curves[name])
        assert np.allclose(csv.to_numpy(), curves[name].to_numpy(), atol=1e-6)
    written = json.loads((tmp_path / paths.MODEL_METRICS).read_text())
    assert written["champion"] == {"name": "xgboost", "version": "v3"}
    assert written["test"]["roc_auc"] == pytest.approx(roc_auc_score(y, p))


# --------------------------------------------------------------------------------------------
# metrics/model.json
# --------------------------------------------------------------------------------------------
@pytest.fixture()
def results(tiny_tables):
    split = split_by_time(tiny_snapshots(tiny_tables), HORIZON)
    families = ["xgboost", "logistic_regression"]
    best = pd.DataFrame({"params": [{}, {}], "cv_auc": [0.8, 0.7], "train_auc": [0.85, 0.71], "gap": [0.05, 0.01],
                         "overfitting": [True, False]}, index=families)
    evaluation = pd.DataFrame({"roc_auc": [0.82, 0.75], "brier": [0.05, 0.06],
                               "roc_auc_95ci": [(0.8, 0.84), (0.7, 0.8)], "cv_auc": [0.8, 0.7]}, index=families)
    subsets = pd.DataFrame({"all customers": [0.82, 0.75, 0.9], "active": [0.7, 0.65, 0.8]},
                           index=[*families, "oracle (true probability)"])
    gap = pd.DataFrame({"share_of_gap": [0.75, 0.25]}, index=pd.Index(["active", "dormant"], name="activity"))
    return dict(
        champion=("xgboost", "v2"), split=split, best=best, evaluation=evaluation, subsets=subsets,
        oracle={"roc_auc": 0.9, "roc_auc_95ci": (0.88, 0.92), "active_roc_auc": 0.8}, gap_tables={"activity": gap},
        pruning=selection.Pruning(kept=["a"], dropped=["b"], auc_all=0.8, auc_pruned=float("nan"), applied=True),
        kept=["a"], calibration="isotonic",
        calibration_table=pd.DataFrame({"brier": [0.05, 0.049]}, index=["champion", "calibrated"]),
        stability=pd.DataFrame({"mean_jaccard": [1.0, 0.5, 0.6]}),
        spearman={explain.PERMUTATION_COLUMN: 0.5}, exact_of=explain.EXACT_OF_CHAMPION,
        ranking={"first_order": families, "second_order": families, "same_order": True},
        decisions=[PromotionDecision("v1", None, True, 0.75, None, 0.002, "first"),
                   PromotionDecision("v2", "v1", True, 0.82, 0.75, 0.002, "better")],
    )


def test_metrics_record_what_the_report_found(results):
    metrics = stage.metrics(**results)
    assert metrics["champion"] == {"name": "xgboost", "version": "v2"}
    assert metrics["test_cutoff"] == results["split"].test_cutoff.date().isoformat()
    assert metrics["test"]["xgboost"] == {"roc_auc": 0.82, "brier": 0.05, "roc_auc_95ci": [0.8, 0.84], "cv_auc": 0.8}
    assert metrics["active_roc_auc"] == {"xgboost": 0.7, "logistic_regression": 0.65}  # candidates only
    assert metrics["oracle"]["champion_ratio"] == pytest.approx(0.82 / 0.9)
    assert metrics["oracle"]["roc_auc_95ci"] == [0.88, 0.92]
    assert metrics["oracle"]["gap_share"] == {"activity": {"active": 0.75, "dormant": 0.25}}
    assert metrics["cv"]["xgboost"] == {"auc": 0.8, "train_auc": 0.85, "gap": 0.05, "overfitting": True}
    assert metrics["features"]["dropped"] == ["b"] and np.isnan(metrics["features"]["validation_auc_pruned"])
    assert metrics["calibration"] == {"method": "isotonic", "brier": 0.05, "brier_calibrated": 0.049}
    assert metrics["lime"] == {"stability_mean_jaccard": pytest.approx(0.7), "stability_customers": 3,
                               "spearman": {explain.PERMUTATION_COLUMN: 0.5}, "exact_contributions_of": "champion"}
    assert metrics["selection"] == {"cv_order": ["xgboost", "logistic_regression"],
                                    "test_order": ["xgboost", "logistic_regression"], "same_order": True}
    assert metrics["promotions"] == [{"candidate": "v1", "promoted": True, "candidate_score": 0.75},
                                     {"candidate": "v2", "promoted": True, "candidate_score": 0.82}]


def test_metrics_of_user_data_have_no_oracle(results):
    assert stage.metrics(**(results | {"oracle": None, "gap_tables": None}))["oracle"] is None


# --------------------------------------------------------------------------------------------
# Rolling back on a scratch copy
# --------------------------------------------------------------------------------------------
def fitted(model):
    X = pd.DataFrame({"x": np.r_[np.zeros(20), np.ones(20)]})
    return model.fit(X, np.r_[np.zeros(20, dtype=int), np.ones(20, dtype=int)])


def test_rehearse_rollback_leaves_the_stage_registry_alone(tmp_path):
    registry = stage.registry(tmp_path)
    first = registry.register(fitted(DummyClassifier()), name="dummy", metadata={})
    registry.set_alias("champion", first)
    nothing = stage.rehearse_rollback(tmp_path)
    assert nothing.before == first and nothing.after is None and "no earlier version" in nothing.problem
    second = registry.register(fitted(LogisticRegression()), name="logistic_regression", metadata={})
    registry.set_alias("champion", second)
    rehearsal = stage.rehearse_rollback(tmp_path)
    assert (rehearsal.before, rehearsal.after, rehearsal.problem) == (second, first, None)
    assert rehearsal.after_name == "dummy"
    assert Registry(tmp_path / paths.REGISTRY_DIR).alias("champion") == second  # the stage's registry is unchanged

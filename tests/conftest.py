"""Shared fixtures: a tiny version of the project's parameters and a tiny simulated, validated shop."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
import yaml

from atelier.core.config import load_params
from atelier.data import stage as data_stage

REPO = Path(__file__).resolve().parents[1]


def tiny_params() -> dict:
    """The project's params.yaml shrunk to a few hundred customers over six months (runs in seconds)."""
    params = copy.deepcopy(load_params(REPO / "params.yaml"))
    params["simulate"].update(n_customers=400, n_products=48, start="2025-01-01", end="2025-06-30", chunk_customers=400)
    params["timeline"].update(cutoffs=["2025-03-01", "2025-04-01", "2025-05-01"], horizon_days=30)
    params["prep"].update(iterative_max_iter=3, knn_fit_rows=500)
    params["segmentation"].update(
        k_range=[2, 6],
        n_init=5,
        silhouette_sample=None,
        stability_boot=3,
        stability_n_init=2,
        dbscan_min_samples=10,
        hdbscan_min_cluster_size=20,
        density_sample=300,
        tsne_sample=200,
    )
    params["replay"].update(
        window_minutes=240,
        micro_batch_events=500,
        sensitivity_strengths=[0.0, 0.5],
        sensitivity_days=7,
        explain_sample=3,
        checkpoint_every_windows=30,
    )
    params["model"].update(
        cv_folds=2,
        bootstrap=20,
        permutation_repeats=2,
        lime_customers=5,
        lime_seeds=2,
        lime_num_samples=200,
        grids={
            "logistic_regression": {"C": [0.1]},
            "random_forest": {"n_estimators": [20], "max_depth": [4], "min_samples_leaf": [5]},
            "xgboost": {"n_estimators": [20], "max_depth": [2], "learning_rate": [0.1]},
        },
    )
    params["robustness"]["fairness"].update(min_group_size=10, min_buyers=3, uplift_min_sessions=20, bootstrap=50)
    params["robustness"]["retraining"].update(start="2025-02-01", end="2025-06-01", window_months=1)
    params["robustness"]["explainability"].update(customers=4, seeds=2)
    params["robustness"]["injection"].update(per_problem=3)
    params["robustness"]["guard"].update(days=7, min_scorings=5)
    return params


def write_params(params: dict, folder: Path) -> Path:
    """Write `params` as folder/params.yaml."""
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A project folder with tiny params, simulated data and validated tables (built once per test run)."""
    root = tmp_path_factory.mktemp("tiny_project")
    params = tiny_params()
    write_params(params, root)
    data_stage.run_simulate(params, root)
    data_stage.run_validate(params, root)
    return root


@pytest.fixture(scope="session")
def tiny_tables(tiny_root) -> dict:
    """The tiny shop's validated tables."""
    return data_stage.load_validated(tiny_root)


#: Set (to 1) in CI: a test that needs Spark then fails when Java is missing instead of being skipped.
REQUIRE_SPARK_ENV = "ATELIER_REQUIRE_SPARK"


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole test run (the JVM starts once); skipped when Java is missing,
    unless $ATELIER_REQUIRE_SPARK is set (CI), where that is a failure."""
    import os

    from atelier.core import spark as spark_engine

    problem = spark_engine.java_problem()
    if problem is not None:
        if os.environ.get(REQUIRE_SPARK_ENV):
            pytest.fail(f"{REQUIRE_SPARK_ENV} is set but Spark cannot start: {problem}")
        pytest.skip(spark_engine.JAVA_INSTALL)
    session = spark_engine.build_session(spark_engine.SparkSettings(master="local[2]", shuffle_partitions=2))
    yield session
    session.stop()


# ---- Debian's Chromium through Playwright (the shop page and the landing page are checked in a real browser) ----
CHROMIUM = "/usr/bin/chromium"
INSTALL = "Chromium is missing: apt-get update && apt-get install -y chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def find_chromium(system: str = CHROMIUM) -> str:
    """Debian's Chromium; without it the test is skipped with the install line, or fails when CI requires it."""
    executable = system if os.access(system, os.X_OK) else shutil.which("chromium")
    if executable is None:
        if os.environ.get("ATELIER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ATELIER_REQUIRE_BROWSER=1 but {INSTALL}")
        pytest.skip(INSTALL)
    return executable


@pytest.fixture
def chromium():
    executable = find_chromium()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=ARGS)
        yield browser
        browser.close()

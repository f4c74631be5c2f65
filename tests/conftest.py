"""Shared fixtures: a tiny version of the project's parameters, a tiny simulated, validated shop, and the whole
project built at those parameters by `make repro` (once per test run, whatever the number of xdist workers)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from atelier.core import paths
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
        window_minutes=720,  # two windows a day (as make quick): the default hourly windows cost seconds here
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
    params["ope"]["replay"].update(days=7)  # a week of exploration and truth runs (the default: two)
    params["ope"]["estimators"].update(n_boot=100, dm_refits=5)
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


# ---- The project as a new user builds it: a fresh copy, `make repro` with nothing of the project's on PATH ----
#: The label of `make quick` in `built_project` (its params.quick.yaml adds only this: the same parameters).
QUICK_LABEL = "Quick run (test): the tiny parameters again"
#: A new user's shell: the system's directories only (no .venv, no dvc).
BARE_PATH = "/usr/bin:/bin"


def bare_bash(script: str, root: Path, timeout: int = 3000) -> subprocess.CompletedProcess:
    """Run `script` in bash in `root` with a new user's environment (BARE_PATH, a committer for git)."""
    env = {"PATH": BARE_PATH, "HOME": os.environ.get("HOME", str(root)), "LANG": "C.UTF-8",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def fresh_copy(destination: Path) -> Path:
    """The files a clone would have (tracked, plus new files not ignored), in a new git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for name in ("dvc.lock",):  # a fresh user run starts from no recorded state
        (destination / name).unlink(missing_ok=True)
    wheel = REPO / paths.OBD_WHEEL  # the `obd` stage's pinned download: reused (it verifies it) instead of fetched
    if wheel.exists():
        (destination / paths.OBD_WHEEL).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, destination / paths.OBD_WHEEL)
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)
    return destination


def link_venv(root: Path) -> None:
    """Link the project's .venv into a copy (what `make repro` would build there; pip install is not tested).

    Refused when the environment is older than requirements.lock or pyproject.toml: `make` in the copy would then
    reinstall into the linked environment and point its editable install at the copy, which the test run deletes.
    """
    stamp = REPO / ".venv" / ".installed"
    stale = [name for name in ("requirements.lock", "pyproject.toml")
             if not stamp.exists() or (REPO / name).stat().st_mtime > stamp.stat().st_mtime]
    if stale:
        raise RuntimeError(f"{REPO / '.venv'} is older than {', '.join(stale)}: run `make venv` first, then the tests")
    (root / ".venv").symlink_to(REPO / ".venv")


def copy_project(source: Path, destination: Path) -> Path:
    """A copy of a built project (its git repo, DVC cache and outputs; .venv stays a link) to change freely."""
    return Path(shutil.copytree(source, destination, symlinks=True))


def orders_csv(path: Path) -> None:
    """A hand-made orders file: 60 customers with their own rhythm, some stopping early, plus one bad row.

    Customer ids are text ("C001"), and odd customers' timestamps carry a +01:00 offset.
    """
    import pandas as pd

    lines = ["customer_id,order_id,ordered_at,amount"]
    order_id = 1
    for customer in range(1, 61):
        offset = "+01:00" if customer % 2 else ""
        gap, first, last = 7 + customer % 30, customer % 20, 40 + 3 * customer
        for day in range(first, min(last, 181), gap):
            when = pd.Timestamp("2025-01-01 10:30") + pd.Timedelta(days=day, hours=customer % 9)
            lines.append(
                f"C{customer:03d},O{order_id:05d},{when.isoformat()}{offset},{10 + 3.5 * (customer % 12) + day % 7:.2f}"
            )
            order_id += 1
    lines.append("C001,O99999,2025-03-03T12:00:00,-5.00")  # a refund booked as an order: quarantined
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _shared_folder(tmp_path_factory, worker_id: str) -> Path:
    """The folder every xdist worker of this test run shares (each worker's own basetemp is inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def _build_once(shared: Path, name: str, build: Callable[[Path], subprocess.CompletedProcess]) -> Path:
    """Build the shared project `name` with `build(folder)` unless it is built already (under a file lock, so the
    first to ask builds and the others wait); the file recording how the build went."""
    record = shared / name / "build.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not record.exists():
            result = build(shared / name / "atelier")
            record.write_text(json.dumps({"returncode": result.returncode, "stdout": result.stdout,
                                          "stderr": result.stderr}), encoding="utf-8")
    return record


def _shared_build(tmp_path_factory, worker_id: str, name: str, build: Callable[[Path], subprocess.CompletedProcess],
                  ) -> Path:
    """A project built once per test run by `build(folder)` and shared by the xdist workers: its folder (how the
    build went is in build.json beside it). A failed build fails every test that asked for it."""
    shared = _shared_folder(tmp_path_factory, worker_id)
    outcome = json.loads(_build_once(shared, name, build).read_text(encoding="utf-8"))
    if outcome["returncode"] != 0:
        pytest.fail(f"building the shared project '{name}' failed:\n{outcome['stderr'][-6000:]}\n"
                    f"{outcome['stdout'][-2000:]}")
    return shared / name / "atelier"


def _make_repro_on_a_fresh_copy(folder: Path) -> subprocess.CompletedProcess:
    root = fresh_copy(folder)
    write_params(tiny_params(), root)
    (root / paths.QUICK_PARAMS_FILE).write_text(yaml.safe_dump({"run_label": QUICK_LABEL}), encoding="utf-8")
    link_venv(root)
    committed = bare_bash("git add -A && git commit -qm 'a clone'", root)
    return bare_bash("make repro", root) if committed.returncode == 0 else committed


@pytest.fixture(scope="session")
def built_project(tmp_path_factory, worker_id) -> Path:
    """A fresh copy of the project at tiny parameters, committed to git, after `make repro` run as the README
    prints it (bash, BARE_PATH; the project's .venv linked in, as `make repro` would build it).

    Built once per test run and shared by the xdist workers. Read it, never change it: a test that changes
    files works on `copy_project`. `make repro`'s output is in `built_log`.
    """
    return _shared_build(tmp_path_factory, worker_id, "built", _make_repro_on_a_fresh_copy)


@pytest.fixture(scope="session")
def built_log(built_project) -> str:
    """What `make repro` printed on stdout while building `built_project`."""
    return json.loads((built_project.parent / "build.json").read_text(encoding="utf-8"))["stdout"]


def _dvc_repro_on_orders_alone(folder: Path) -> subprocess.CompletedProcess:
    root = fresh_copy(folder)
    (root / "mydata").mkdir()
    orders_csv(root / "mydata" / "orders.csv")
    params = tiny_params()
    params["data"].update(source="files", path="mydata")
    write_params(params, root)
    link_venv(root)
    return bare_bash(".venv/bin/dvc repro", root)


@pytest.fixture(scope="session")
def orders_only_project(tmp_path_factory, worker_id) -> Path:
    """A fresh copy whose data is one hand-made orders CSV (`orders_csv`: no events, customers, products or
    truth; text ids, mixed UTC offsets, one refund), after `.venv/bin/dvc repro` (bare PATH) at tiny parameters.

    Built once per test run and shared by the xdist workers; read it, never change it.
    """
    return _shared_build(tmp_path_factory, worker_id, "orders_only", _dvc_repro_on_orders_alone)


#: The shared builds and the fixtures that read them.
SHARED_BUILDS = {"built": ("built_project", "built_log"), "orders_only": ("orders_only_project",)}


@pytest.fixture(scope="session", autouse=True)
def _shared_builds_start_in_the_background(request, tmp_path_factory, worker_id) -> Iterator[None]:
    """Start the shared builds the selected tests need in background threads as the session begins, so each
    worker goes on with other tests meanwhile instead of waiting at the first test that needs one. (Each build
    happens once: a thread that finds it under way or done just returns.) The session waits for its threads
    before it ends, so a build is never left half done."""
    needed = {name for name, fixtures in SHARED_BUILDS.items()
              if any(set(fixtures) & set(getattr(item, "fixturenames", ())) for item in request.session.items)}
    builders = {"built": _make_repro_on_a_fresh_copy, "orders_only": _dvc_repro_on_orders_alone}
    shared = _shared_folder(tmp_path_factory, worker_id)
    threads = [threading.Thread(target=_build_once, args=(shared, name, builders[name]), daemon=True)
               for name in sorted(needed)]
    for thread in threads:
        thread.start()
    yield
    for thread in threads:
        thread.join()


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

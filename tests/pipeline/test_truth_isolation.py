"""No model input reads the simulator's ground truth (issue 2, §2: "No model input may read it").

The truth (`data/truth/`: each customer's persona and hidden traits, the true chance of ordering,
the catalog's popularity and the calendar) exists so later phases can score themselves: the ARI of
segments against personas, the oracle AUC. Those evaluation reads are allowed. What must never
happen is the truth reaching a feature: the prep stage does not depend on it, its code does not
name it, and the tables it writes hold none of its columns.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, tiny_params

from atelier.core import paths
from atelier.core.io import read_json
from atelier.data import transform
from atelier.data.features import FeatureSettings
from atelier.data.snapshots import build_snapshots, parse_cutoffs
from atelier.report import notebook

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
TRUTH_DIR = paths.TRUTH_DIR.as_posix()
#: The code that turns validated tables into model inputs (features, snapshots, the fitted transformer).
MODEL_INPUT_CODE = [
    "src/atelier/data/features.py",
    "src/atelier/data/snapshots.py",
    "src/atelier/data/transform.py",
    "src/atelier/data/explore.py",
    "src/atelier/data/leakage.py",
    "src/atelier/data/prep_metrics.py",
    "src/atelier/data/faults.py",
]
PREP_NOTEBOOK = REPO / "notebooks" / "01_data_prep.ipynb"
#: Words that only the truth's readers need.
TRUTH_WORDS = re.compile(r"\btruth\b|\bpersonas?\b|\bp_true\b|\border_probability\b|TRUTH_DIR", re.IGNORECASE)


def test_truth_words_pattern_can_fail():
    assert TRUTH_WORDS.search('pd.read_parquet(root / "data/truth/customers.parquet")')
    assert TRUTH_WORDS.search("frame['persona']") and TRUTH_WORDS.search("x = p_true.mean()")
    assert not TRUTH_WORDS.search("why it matters for personalization")


@pytest.mark.parametrize("stage", ["validate", "prep"])
def test_stages_that_make_model_inputs_do_not_depend_on_the_truth(stage):
    deps = [str(dep) for dep in DVC["stages"][stage].get("deps", [])]
    assert deps, f"stage {stage} lists no deps"
    leaks = [dep for dep in deps if dep.rstrip("/") == TRUTH_DIR or dep.startswith(TRUTH_DIR + "/")]
    assert not leaks, f"dvc.yaml stage '{stage}' depends on the ground truth: {leaks}"
    # and the folder they read is not the truth either (validate reads data.path)
    assert "truth" not in " ".join(deps).replace("${data.path}", tiny_params()["data"]["path"])


def test_the_simulator_writes_its_truth_under_the_folder_this_test_guards():
    assert DVC["stages"]["simulate"]["outs"] == ["data/simulated", TRUTH_DIR]


@pytest.mark.parametrize("path", MODEL_INPUT_CODE)
def test_model_input_code_does_not_name_the_truth(path):
    source = (REPO / path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    assert not any(name.startswith("atelier.data.simulate") for name in imported), f"{path} imports the simulator"
    found = sorted({match.group(0) for match in TRUTH_WORDS.finditer(source)})
    assert not found, f"{path} names the ground truth: {found}"


def test_prep_notebook_code_does_not_name_the_truth():
    notebook = nbformat.read(PREP_NOTEBOOK, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "start_training(" in code and "snapshot_at_test(" in code  # the right notebook (it builds the snapshots)
    found = sorted({match.group(0) for match in TRUTH_WORDS.finditer(code)})
    assert not found, f"{PREP_NOTEBOOK.name} code names the ground truth: {found}"


# --------------------------------------------------------------------------------------------
# The tables: built the way the prep stage builds them, on the tiny simulated shop


@pytest.fixture(scope="module")
def truth(tiny_root) -> dict[str, pd.DataFrame]:
    folder = tiny_root / TRUTH_DIR
    tables = {path.stem: pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}
    assert {"customers", "order_probability"} <= set(tables)
    return tables


@pytest.fixture(scope="module")
def model_inputs(tiny_tables) -> dict[str, pd.DataFrame]:
    params = tiny_params()
    cutoffs = parse_cutoffs(params["timeline"]["cutoffs"])
    snapshots = build_snapshots(
        tiny_tables, cutoffs, params["timeline"]["horizon_days"], FeatureSettings.from_params(params["prep"])
    )
    transformer = transform.fit_on_training(snapshots, cutoffs, transform.ImputerSettings("median", 5, 500, 3, 0))
    return {"snapshots": snapshots, "prepared": transform.transform(transformer, snapshots)}


def _truth_only_columns(truth: dict[str, pd.DataFrame], public: set[str]) -> set[str]:
    """Columns of the truth tables that the shop's own data does not have (keys and shared columns removed)."""
    return {c for frame in truth.values() for c in frame.columns} - public - {"cutoff"}


def test_truth_has_the_columns_this_test_looks_for(truth):
    columns = {c for frame in truth.values() for c in frame.columns}
    assert {"persona", "p_true", "churn_day", "visit_rate_per_month"} <= columns


def test_simulated_data_holds_no_truth_column(tiny_root, truth):
    data = {path.stem: pd.read_parquet(path) for path in (tiny_root / "data" / "simulated").glob("*.parquet")}
    public = {c for frame in data.values() for c in frame.columns}
    leaked = public & (
        _truth_only_columns(truth, set()) - {"customer_id", "product_id", "category", "price_tier", "price"}
    )
    assert not leaked, f"simulated (public) tables carry ground-truth columns: {sorted(leaked)}"


@pytest.mark.parametrize("table", ["snapshots", "prepared"])
def test_model_inputs_hold_no_truth_column(model_inputs, truth, tiny_tables, table):
    public = {c for frame in tiny_tables.values() for c in frame.columns}
    # Category affinities share their names with the truth's: the features are observed view shares.
    features_named_like_truth = {c for c in model_inputs["snapshots"].columns if c.startswith("affinity_")}
    truth_only = _truth_only_columns(truth, public) - features_named_like_truth
    assert {"persona", "p_true"} <= truth_only
    columns = set(model_inputs[table].columns)
    assert not columns & truth_only, f"{table} holds ground-truth columns: {sorted(columns & truth_only)}"
    # nor encoded (one-hot or missing-value indicators carry the source column's name)
    encoded = [c for c in columns for name in truth_only if c.startswith(f"{name}_") or c.endswith(f"_{name}")]
    assert not encoded, f"{table} holds encoded ground-truth columns: {sorted(encoded)}"


def test_affinity_features_are_observed_shares_not_the_true_affinities(model_inputs, truth, tiny_tables):
    snapshots = model_inputs["snapshots"]
    latest = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
    hidden = truth["customers"].set_index("customer_id")
    columns = [c for c in latest.columns if c.startswith("affinity_")]
    assert columns and set(columns) <= set(hidden.columns)
    observed = latest[columns].dropna()
    true = hidden.loc[observed.index, columns]
    assert len(observed) > 50
    assert np.allclose(observed.sum(axis=1), 1)  # shares of each customer's product views
    assert (np.isclose(observed.to_numpy(), true.to_numpy())).mean() < 0.01  # nearly never the hidden value
    # and the truth's values are what a view-count share cannot be: continuous, never exactly 0 or 1
    assert ((true.to_numpy() > 0) & (true.to_numpy() < 1)).all()


# --------------------------------------------------------------------------------------------
# By behaviour: scramble the truth, rebuild the model inputs and the champion, nothing moves


def _scrambled_truth(root: Path, seed: int) -> None:
    """Permute every column of every truth table across its rows: the same values, attached to other customers."""
    rng = np.random.default_rng(seed)
    for path in sorted((root / TRUTH_DIR).glob("*.parquet")):
        frame = pd.read_parquet(path)
        for column in frame.columns:
            if column not in ("customer_id", "product_id", "cutoff"):
                frame[column] = frame[column].to_numpy()[rng.permutation(len(frame))]
        frame.to_parquet(path)


@pytest.mark.slow
def test_prep_and_model_give_the_same_inputs_and_scores_whatever_the_truth_says(tiny_root, built_project, tmp_path):
    """The strongest form of 'no model input reads the truth': change the truth and nothing the models use changes.

    The oracle comparison (which does read the truth) moves, as it should; the snapshots and the champion's scores
    do not. The run on the truth as simulated is `make repro`'s in the shared `built_project` (same parameters).
    """
    scrambled = shutil.copytree(tiny_root, tmp_path / "scrambled")
    shutil.copytree(REPO / "notebooks", scrambled / "notebooks")
    shutil.copy(REPO / "dvc.yaml", scrambled / "dvc.yaml")
    _scrambled_truth(scrambled, seed=7)
    for stage in ("prep", "segment", "model"):
        notebook.execute(stage, scrambled)
    original = built_project
    truth_read = pd.read_parquet(original / paths.TRUTH_ORDER_PROBABILITY)["p_true"]
    assert not np.array_equal(truth_read, pd.read_parquet(scrambled / paths.TRUTH_ORDER_PROBABILITY)["p_true"])
    pd.testing.assert_frame_equal(
        pd.read_parquet(scrambled / paths.SNAPSHOTS_FILE),
        pd.read_parquet(original / paths.SNAPSHOTS_FILE),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(scrambled / paths.SCORES_FILE).drop(columns="model_version"),
        pd.read_parquet(original / paths.SCORES_FILE).drop(columns="model_version"),
        check_exact=True,
    )
    champions = [read_json(root / paths.MODEL_METRICS)["champion"]["name"] for root in (original, scrambled)]
    assert champions[0] == champions[1]

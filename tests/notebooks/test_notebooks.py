"""The phase notebooks execute at tiny parameters and say what they did (papermill, as the stage runs them).

The reports read here are those the pipeline wrote in the shared builds: `built_project` (the simulated shop)
and `orders_only_project` (one hand-made orders CSV: no events, customers, products or truth).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import REPO, tiny_params
from sklearn.metrics import roc_auc_score

from atelier.core import attributes, paths, truth
from atelier.core.io import read_json
from atelier.data import stage as data_stage
from atelier.data.features import purchase_label
from atelier.model import explain
from atelier.model.registry import Registry
from atelier.report import notebook as stages
from atelier.segment import agreement as segment_agreement
from atelier.segment import stage as segment_stage

pytestmark = pytest.mark.slow


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


def _report(root: Path, stage: str) -> Path:
    """The executed notebook of a stage in a built project."""
    return root / paths.REPORT_DIR / f"{paths.NOTEBOOK_STAGES[stage]}.ipynb"


def test_prep_notebook_runs_and_writes_consistent_outputs(built_project):
    root = built_project
    executed = _report(root, "prep")

    text = _rendered_text(executed)
    assert "identical whether or not data after the cutoff is present" in text
    assert "All feature groups are available" in text
    assert (root / "reports" / "01_data_prep.html").read_text(encoding="utf-8").count("The leakage rule") >= 1
    # The quarantine demonstration: every broken row caught with its reason class, no untouched row.
    caught = re.search(r"Of the (\d+) rows broken in (\d+) ways, (\d+) were quarantined.*; (\d+) of the", text)
    assert caught and caught[1] == caught[3] and caught[4] == "0" and int(caught[2]) >= 7
    # Sentences computed from the data, whichever way it goes.
    assert "Orders peak on" in text and ("Busy stretches, busiest first" in text or "No stretch is that busy" in text)
    assert "Visits shift towards" in text or "The device mix holds" in text
    assert re.search(r"filled average order value with (small|typical|large) values", text)

    metrics = read_json(root / "metrics" / "prep.json")
    snapshots = pd.read_parquet(root / "data" / "features" / "snapshots.parquet")
    orders = data_stage.load_validated(root)["orders"]
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


def test_prep_notebook_on_orders_alone_says_what_it_skipped(orders_only_project):
    root = orders_only_project
    executed = _report(root, "prep")

    text = _rendered_text(executed)
    assert "Feature groups skipped for lack of data" in text
    assert "No events table: the funnel needs clickstream data" in text
    assert "No device column in the events" in text
    assert "No average order value was filled in here" in text  # every customer known from orders alone has ordered
    assert "unknown customer_id" not in text  # that fault needs a customers table to be unknown to
    metrics = read_json(root / "metrics" / "prep.json")
    assert set(metrics["skipped_groups"]) == {"events", "dwell", "device", "categories", "demographics"}
    snapshots = pd.read_parquet(root / "data" / "features" / "snapshots.parquet")
    assert "sessions_total" not in snapshots and "frequency" in snapshots


def test_segment_notebook_runs_and_stores_what_it_reports(built_project):
    root = built_project
    executed = _report(root, "segment")

    text = _rendered_text(executed)
    assert "Reading the sweep" in text and "ARI against personas" in text
    assert "Mixed:" not in text  # fallback names are words, not column names
    metrics = read_json(root / "metrics" / "segment.json")
    latest = pd.read_parquet(root / "data" / "features" / "snapshots.parquet").query("cutoff == cutoff.max()")
    assert metrics["k"] == 5 and sum(metrics["sizes"].values()) == len(latest)
    stored = attributes.read_table(root / paths.SEGMENT_ATTRIBUTES, "customer_segments")
    assert stored["segment_name"].value_counts().to_dict() == metrics["sizes"]
    assert set(stored["model_version"]) == {metrics["model_version"]}
    assert metrics["model_version"] == segment_stage.model_version(root / paths.SEGMENT_MODEL_DIR / "segmenter.skops")
    # The ARI in the metrics is the stored segments' agreement with the simulator's personas, and the report
    # words it by that number.
    personas = segment_stage.load_personas(root, pd.Index(stored["customer_id"].astype(latest.index.dtype)))
    truth = segment_agreement.truth_agreement(stored["segment_id"].to_numpy(), personas.reset_index(drop=True))
    assert metrics["truth"] == pytest.approx(truth, abs=1e-6)
    assert f"the segments {segment_agreement.recovery(truth['ari'])} recover the personas" in text
    assert f"ARI against personas: **{truth['ari']:.2f}**" in text
    sweep = pd.read_csv(root / paths.SEGMENT_PLOTS / "k_sweep.csv")
    assert list(sweep["k"]) == [2, 3, 4, 5, 6] and {"silhouette", "silhouette_raw"} <= set(sweep.columns)
    assert metrics["sweep_best_k"]["log1p"] == sweep.loc[sweep["silhouette"].idxmax(), "k"]


def test_segment_notebook_on_orders_alone_skips_the_truth(orders_only_project):
    executed = _report(orders_only_project, "segment")
    text = _rendered_text(executed)
    assert "there is no ground truth to compare with: skipped" in text
    assert "Not available in this data (skipped)" in text
    assert not re.search(r"ARI against personas: \*\*-?\d", text)  # the sentence's code is there, its output is not
    metrics = read_json(orders_only_project / "metrics" / "segment.json")
    assert metrics["truth"] is None and "sessions_90d" in metrics["skipped_features"]
    # Without events, rules that need visit features cannot name a segment.
    assert not {"Window Browsers", "Dormant Sign-ups"} & set(metrics["sizes"])


def test_model_notebook_registers_a_champion_that_scores_like_it_reports(built_project):
    root = built_project
    executed = _report(root, "model")

    text = _rendered_text(executed)
    assert "Champion:" in text and "The oracle reaches" in text and "When not to trust an explanation" in text
    metrics = read_json(root / "metrics" / "model.json")
    champion = metrics["champion"]
    registry = Registry(root / "models" / "registry")
    assert registry.alias("champion") == champion["version"]
    assert registry.metadata(champion["version"])["name"] == champion["name"]
    decided = [p for p in metrics["promotions"] if p["promoted"]]
    assert decided[-1]["candidate"] == champion["version"]
    stored = attributes.read_table(root / paths.PROPENSITY_ATTRIBUTES, "customer_attributes")
    snapshots = pd.read_parquet(root / "data" / "features" / "snapshots.parquet")
    latest = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
    assert len(stored) == len(latest) and stored["segment_name"].notna().all()
    assert set(stored["propensity_model"]) == {champion["version"]}
    plots = {p.name for p in (root / "plots" / "model").glob("*.csv")}
    assert plots == {"roc.csv", "pr.csv", "gains.csv", "lift.csv", "calibration.csv"}
    # The headline AUCs, recomputed from what the stage stored: the champion's scores and the simulator's truth.
    labels = latest["label"].astype(int)
    scores = stored.set_index("customer_id")["propensity"].reindex(labels.index.astype(str))
    champion_auc = metrics["test"][champion["name"]]["roc_auc"]
    assert champion_auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    oracle_auc = roc_auc_score(labels, truth.order_probability(root, latest["cutoff"].iloc[0], latest.index))
    assert metrics["oracle"]["roc_auc"] == pytest.approx(oracle_auc, abs=1e-6)
    assert metrics["oracle"]["champion_ratio"] == pytest.approx(champion_auc / oracle_auc, abs=1e-5)
    # LIME is compared with the other methods, never with itself; the exact contributions are named for their model.
    exact_of = explain.exact_contributions_source(champion["name"], metrics["test"])
    assert metrics["lime"]["exact_contributions_of"] == exact_of
    assert set(metrics["lime"]["spearman"]) == {explain.PERMUTATION_COLUMN, explain.EXACT_COLUMNS[exact_of]}


def test_model_notebook_on_orders_alone_has_no_oracle(orders_only_project):
    text = _rendered_text(_report(orders_only_project, "model"))
    assert "there is no true probability, so no oracle AUC" in text
    assert "no oracle and no gap to attribute" in text and "In this simulated shop" not in text
    assert "lies on the diagonal" not in text  # without the truth, no claim about drift against the oracle
    assert read_json(orders_only_project / "metrics" / "model.json")["oracle"] is None


def test_replay_notebook_balances_its_books_and_measures_the_test(built_project):
    from atelier.replay.policy import REASONS

    root = built_project
    executed = _report(root, "replay")

    text = _rendered_text(executed)
    assert "This is a simulation." in text
    # What the report says is in its outputs (the code cells hold every wording, chosen or not).
    cells = nbformat.read(executed, as_version=4).cells
    said = "\n".join(out.get("data", {}).get("text/markdown", "") for cell in cells for out in cell.get("outputs", []))
    assert "features identical" in said and "**balanced**" in said
    metrics = read_json(root / "metrics" / "replay.json")
    books = metrics["books"]
    outcomes = books["applied"] + books["duplicates"] + books["late"] + books["malformed"]
    assert books["balanced"] and books["received"] == outcomes
    assert books["duplicates"] > 0
    parity = metrics["parity"]  # only the decayed engagement score may differ, in the last bits
    assert parity["holds"] and set(parity["differing"]) <= {"engagement_score"}
    assert float(parity["max_abs_difference"]) < 1e-9
    assert parity["identical"] == parity["features"] - len(parity["differing"]) and "Parity **holds**" in said
    # The A/B result is the stored visits' conversion per arm, and the sentence says whether its interval covers 0.
    visits = pd.read_parquet(root / paths.VISITS_FILE)
    rates = visits.groupby("arm")["purchased"].mean()
    ab = metrics["ab_test"]["conversion"]
    assert (ab["control"], ab["treatment"]) == pytest.approx((rates["control"], rates["treatment"]), abs=1e-6)
    assert ab["relative_uplift"] == pytest.approx(rates["treatment"] / rates["control"] - 1, abs=1e-5)
    covering = ab["ci_low"] <= 0 <= ab["ci_high"]
    assert (f"{ab['relative_uplift']:+.1%}, 95 % CI" in said) and (("covering 0**" in said) == covering)
    # The sensitivity sweep has a strength-0 run, and the sentence under it says what its interval does.
    null = next(row for row in metrics["sensitivity"] if row["strength"] == 0.0)
    assert {row["strength"] for row in metrics["sensitivity"]} == {0.0, 0.5}
    assert ("as it must when nothing works" in said) == (null["ci_low"] <= 0 <= null["ci_high"])
    # The closed loop's windows are the setting's, not a fixed hour.
    assert f"window holds {tiny_params()['replay']['window_minutes']:g} minutes of traffic" in said
    drift = metrics["drift"]
    assert (f"**fires on {drift['trigger']}**" in said) if drift["trigger"] else ("never fires" in said)
    retraining = metrics["retraining"]
    assert ("Retraining not run" in said) != retraining["retrained"]
    decisions = pd.read_parquet(root / "data" / "replay" / "decisions.parquet")
    assert len(decisions) == metrics["decisions"]["total"] and decisions["session_id"].is_unique
    assert set(decisions["reason"]) <= set(REASONS)
    assert (root / "data" / "replay" / "checkpoint" / "profiles.sqlite").exists()
    assert "live store's: **True**" in said


def test_replay_notebook_on_orders_alone_runs_open_loop(orders_only_project):
    root = orders_only_project
    text = _rendered_text(_report(root, "replay"))
    assert "the replay is **open loop**" in text and "Retraining not run: open loop" in text
    metrics = read_json(root / "metrics" / "replay.json")
    assert metrics["closed_loop"] is False and metrics["ab_test"] is None and metrics["books"]["balanced"]
    assert metrics["retraining"] == {"retrained": False, "reason": metrics["retraining"]["reason"]}
    assert metrics["decisions"]["total"] == len(pd.read_parquet(root / "data" / "replay" / "decisions.parquet"))


def test_robustness_notebook_checks_fairness_bad_data_retraining_and_rollback(built_project):
    from atelier.robustness import retraining

    root = built_project
    text = _rendered_text(_report(root, "robustness"))
    assert "Is the model fair across groups?" in text and "## Try this" in text
    metrics = read_json(root / "metrics" / "robustness.json")
    checks = metrics["data_checks"]
    assert checks["injected_rows"] > 0 and checks["missed"] == 0 and checks["false_alarms"] == 0
    assert checks["schema_stopped"] == checks["schema_explained"] == checks["schema_scenarios"] == 2
    assert checks["stream_balanced"] is True
    retrained = metrics["retraining"]
    assert set(retrained["policies"]) == {"never", "monthly", "drift"} and retrained["policies"]["never"]["fits"] == 1
    assert retrained["outcome"] in retraining.OUTCOMES and set(retrained["best_policies"]) <= set(retrained["policies"])
    # The verdict follows the months, whichever way they go: "pays" only when a schedule gains clearly.
    assert ("Retraining pays here" in text) == (retrained["outcome"] == "pays")
    assert ("tie for best" in text) == (len(retrained["best_policies"]) > 1)
    drill = metrics["rollback"]["shuffled_labels"]
    assert drill["bad_version"] != drill["original_version"]
    # caught on its first day; the rollback returns to the original champion, scoring bit for bit as before
    assert drill["detected_day"] == 1 and drill["detection_rule"] == "score drift"
    assert drill["rolled_back_to"] == drill["original_version"] and drill["restored_scores_identical"] is True
    assert drill["returned_to_original"] is True and drill["rollbacks"] == 1
    assert "caught on day 1 by score drift, before any live day's labels could mature" in text
    explanations = metrics["explanations"]
    if "skipped" not in explanations:  # an xgboost champion: every explanation got a verdict
        assert sum(explanations["verdict_shares"].values()) == pytest.approx(1.0)
    else:
        assert "How far to trust an explanation?** Not reviewed" in text
    # The drill works on a copy: the project's registry still has its champion.
    assert read_json(root / "models" / "registry" / "aliases.json")["champion"]["current"] == metrics["champion"]


def test_robustness_notebook_parameters_are_the_stage_sections_with_params_yaml_values():
    from atelier.core.config import load_params

    notebook = nbformat.read(REPO / "notebooks" / "07_robustness.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(cell.source, {}, values)  # the cell only assigns literals
    declared = stages.declared_params("robustness", REPO)
    assert values == stages.notebook_parameters(declared, load_params(REPO / "params.yaml"))


def test_robustness_notebook_on_orders_alone_says_what_it_skips(orders_only_project):
    root = orders_only_project
    text = _rendered_text(_report(root, "robustness"))
    assert "nothing to check" in text and "the drill's daily visitors come from the events table" in text
    assert "the stream demo needs an events table" in text
    metrics = read_json(root / "metrics" / "robustness.json")
    assert metrics["fairness"]["flagged"] == [] and metrics["rollback"] == {}
    assert metrics["data_checks"]["missed"] == 0 and metrics["data_checks"]["stream_balanced"] is None

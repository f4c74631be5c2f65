"""Tests for atelier.replay.stage: what the replay reads (settings errors included), the metrics it builds and
everything it writes."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from atelier.core import paths
from atelier.core.config import ParamsError
from atelier.core.io import read_json
from atelier.replay import drift, explanations, stage
from atelier.replay.monitor import DriftRule

from .replay_shop import context_of


def test_load_context_closes_the_loop_only_for_simulated_data_with_its_truth(tiny_root, params, tmp_path):
    assert context_of(tiny_root, params).closed
    files = {**params, "data": {**params["data"], "source": "files"}}
    assert not context_of(tiny_root, files).closed
    shutil.copytree(tiny_root, tmp_path / "project")
    shutil.rmtree(tmp_path / "project" / paths.TRUTH_DIR)
    assert not context_of(tmp_path / "project", params).closed


@pytest.mark.parametrize("timeline, message", [
    ({"cutoffs": ["2025-05-01"], "horizon_days": 30}, "timeline.cutoffs"),
    ({"cutoffs": ["2025-04-01", "2025-05-01"], "horizon_days": 0}, "timeline.horizon_days"),
    ({"cutoffs": ["2025-04-01", "2025-05-01"], "horizon_days": "30"}, "timeline.horizon_days"),
])
def test_load_context_names_the_timeline_key_at_fault(tiny_root, params, timeline, message):
    with pytest.raises(ParamsError, match=message):
        context_of(tiny_root, {**params, "timeline": timeline})


def test_load_context_without_a_champion_says_why(tiny_root, params):
    loaded = context_of(tiny_root, params)  # the tiny project has no registry
    assert loaded.scorer is None and "champion" in loaded.model_problem and loaded.segments == {}


def _decisions() -> pd.DataFrame:
    return pd.DataFrame({"session_id": [1, 2, 3], "customer_id": [7, 8, 7],
                         "reason": ["control", "personalized", "control"],
                         "banner": ["bestsellers", "sale", "bestsellers"],
                         "ts": pd.to_datetime(["2025-05-01 10:00", "2025-05-01 11:00", "2025-05-02 09:00"]),
                         "propensity": [0.1, 0.4, 0.2], "experience": ["default", "personalized", "default"],
                         "arm": ["control", "treatment", "control"], "products": [np.array([1, 2])] * 3})


def _visits() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2, 3, 4, 5, 6], "arm": ["control", "treatment"] * 3,
                         "purchased": [True, True, False, True, False, False], "revenue": [50.0, 80.0, 0, 40.0, 0, 0]})


def test_metrics_of_a_closed_loop(context):
    from atelier.replay import abtest

    ab = abtest.measure(_visits(), seed=1, n_boot=20)
    sweep = pd.DataFrame({"strength": [0.0], "visits": [6], "control": [0.5], "treatment": [0.5],
                          "relative_uplift": [0.0],
                          "ci_low": [-0.5], "ci_high": [0.5]})
    psi = pd.DataFrame({"score": [0.1, 0.3, 0.3], "recency_days": [0.1, 0.1, 0.1]},
                       index=pd.Index(pd.date_range("2025-05-01", periods=3), name="day"))
    realized = pd.DataFrame({"roc_auc": [0.8]},
                            index=pd.Index(pd.period_range("2025-05-01", periods=1, freq="W"), name="period"))
    lines = pd.DataFrame({"session_id": [2], "banner": ["sale"], "segment": ["x"], "why": ["..."],
                          "milliseconds": [3.0]})
    metrics = stage.metrics(context, books={"balanced": True}, decisions=_decisions(), ab=ab, sweep=sweep,
                            parity={"holds": True}, drift_summary=drift.summary(psi, DriftRule(("score",), 0.2, 2)),
                            realized=realized, retraining_outcome={"retrained": False, "reason": "no drift trigger"},
                            explained=explanations.Explanations(pd.DataFrame(), lines))
    assert metrics["closed_loop"] is True and metrics["explanations"] == 1
    assert metrics["decisions"] == {"total": 3, "by_reason": {"control": 2, "personalized": 1},
                                    "by_banner": {"bestsellers": 2, "sale": 1}}
    assert set(metrics["ab_test"]) == {"conversion", "revenue_per_session", "average_order_value", "arms",
                                       "sessions_needed_per_arm", "sessions_needed_for_15_percent", "response_strength"}
    sizes = abtest.sample_sizes(ab["conversion"])
    assert {key: metrics["ab_test"][key] for key in sizes} == sizes
    assert metrics["drift"] == {"trigger": "2025-05-03", "max_psi": {"score": 0.3, "recency_days": 0.1}}
    assert metrics["realized_auc"] == [{"period": "2025-04-28/2025-05-04", "roc_auc": 0.8}]
    assert metrics["sensitivity"] == sweep.to_dict(orient="records")


def test_metrics_of_an_open_loop_leave_out_what_it_cannot_measure(context):
    open_context = dataclasses.replace(context, world=None)
    metrics = stage.metrics(open_context, books={"balanced": True}, decisions=pd.DataFrame(), ab=None, sweep=None,
                            parity=None, drift_summary=None, realized=None,
                            retraining_outcome={"retrained": False, "reason": "open loop"}, explained=None)
    assert metrics["closed_loop"] is False and metrics["decisions"] == {"total": 0, "by_reason": {}, "by_banner": {}}
    assert [metrics[k] for k in ("ab_test", "sensitivity", "parity", "drift", "realized_auc")] == [None] * 5
    assert metrics["explanations"] == 0


def test_write_puts_every_declared_output_in_place(context, tmp_path):
    metrics = {"closed_loop": True, "books": {"balanced": True}}
    written = stage.write(tmp_path, context, decisions=_decisions(), dead_letters=pd.DataFrame(), visits=_visits(),
                          metrics=metrics)
    assert written == tmp_path / paths.REPLAY_METRICS and read_json(written) == metrics
    for name, columns in stage.PLOT_COLUMNS.items():  # nothing to plot: every declared file exists, with its header
        assert pd.read_csv(tmp_path / paths.REPLAY_PLOTS / f"{name}.csv").columns.tolist() == columns
    stored = pd.read_parquet(tmp_path / paths.REPLAY_DIR / "decisions.parquet")
    assert stored["products"].map(list).tolist() == [[1, 2]] * 3
    assert pd.read_parquet(tmp_path / paths.DEAD_LETTERS_FILE).columns.tolist() == ["reason"]
    assert len(pd.read_parquet(tmp_path / paths.VISITS_FILE)) == 6
    assert not (tmp_path / paths.REPLAY_DIR / "explanations.parquet").exists()
    assert (tmp_path / paths.REPLAY_REGISTRY_DIR / "NOT_RETRAINED.md").exists()
    assert (tmp_path / paths.REPLAY_ATTRIBUTES).exists()


def test_write_stores_the_plot_data_it_is_given(context, tmp_path):
    psi = pd.DataFrame({"score": [0.1], "recency_days": [0.2], "sessions_90d": [0.0], "engagement_score": [0.3]},
                       index=pd.Index(pd.to_datetime(["2025-05-01"]), name="day"))
    timing = {"rows": pd.DataFrame({"kind": ["micro_batch"], "milliseconds": [1.5]}),
              "bins": pd.DataFrame({"bin": ["0.0-0.1 ms"], "low_ms": [0.0], "high_ms": [0.1], "count": [4]})}
    stage.write(tmp_path, context, decisions=_decisions(), dead_letters=pd.DataFrame(), psi=psi, timing=timing,
                metrics={})
    assert (tmp_path / paths.REPLAY_PLOTS / "drift.csv").read_text().splitlines() == [
        "day,score,recency_days,sessions_90d,engagement_score", "2025-05-01,0.100000,0.200000,0.000000,0.300000"]
    assert pd.read_csv(tmp_path / paths.REPLAY_PLOTS / "latency_histogram.csv")["count"].tolist() == [4]


def test_the_reference_profiles_come_from_the_snapshots_file(context, snapshots, tmp_path):
    (tmp_path / paths.SNAPSHOTS_FILE).parent.mkdir(parents=True)
    snapshots.to_parquet(tmp_path / paths.SNAPSHOTS_FILE)
    reference = stage.reference_profiles(dataclasses.replace(context, root=tmp_path))
    expected = drift.visitor_reference(snapshots, context.tables["events"], context.cutoff, context.scorer)
    pd.testing.assert_frame_equal(reference, expected)


def test_a_loop_restored_from_the_stages_checkpoint_continues_with_the_same_profiles(context, tmp_path):
    ctx = dataclasses.replace(context, root=tmp_path)
    loop = ctx.closed_loop().run(until=12, checkpoint_dir=tmp_path / paths.REPLAY_CHECKPOINT_DIR, progress=False)
    restored = stage.restored_loop(ctx)
    customers = loop.frames("decisions")["customer_id"].unique()
    assert restored.window == loop.window == 12 and len(customers) > 10
    assert restored.same_profiles(loop, customers, loop.windows()[12])
    assert not restored.same_profiles(ctx.closed_loop(), customers, loop.windows()[12])  # a fresh store is behind

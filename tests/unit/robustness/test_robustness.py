"""The robustness stage's own glue: its outputs always exist, and it never writes to the project's registry."""

from __future__ import annotations

import pandas as pd

from atelier.core import paths
from atelier.core.io import read_json
from atelier.robustness import stage as rb


def test_write_outputs_creates_every_declared_output_even_without_a_drill(tmp_path):
    rb.write_outputs(tmp_path, {"champion": "v1"}, {"retraining": pd.DataFrame({"cutoff": ["2025-01-01"], "never": [0.8]})})
    assert read_json(tmp_path / paths.ROBUSTNESS_METRICS) == {"champion": "v1"}
    written = pd.read_csv(tmp_path / paths.ROBUSTNESS_PLOTS / "retraining.csv")
    assert written.columns.tolist() == rb.PLOT_COLUMNS["retraining"] and written["never"].tolist() == [0.8]
    assert written["monthly"].isna().all()  # a policy that did not run is an empty column, not a missing one
    assert pd.read_csv(tmp_path / paths.ROBUSTNESS_PLOTS / "fairness.csv").columns.tolist() == rb.PLOT_COLUMNS["fairness"]
    assert "needs an events table" in (tmp_path / paths.DRILL_REGISTRY_DIR / "NOT_RUN.txt").read_text()


def test_write_outputs_keeps_a_drill_registry_that_has_content(tmp_path):
    (tmp_path / paths.DRILL_REGISTRY_DIR).mkdir(parents=True)
    (tmp_path / paths.DRILL_REGISTRY_DIR / "aliases.json").write_text("{}")
    rb.write_outputs(tmp_path, {}, {})
    assert sorted(p.name for p in (tmp_path / paths.DRILL_REGISTRY_DIR).iterdir()) == ["aliases.json"]


def test_test_snapshot_is_the_last_cutoff_without_censored_rows():
    snapshots = pd.DataFrame({"cutoff": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-02-01"]),
                              "label": pd.array([1, 0, pd.NA], dtype="Int8")}, index=[1, 1, 2])
    test = rb.test_snapshot(snapshots)
    assert test.index.tolist() == [1] and (test["cutoff"] == pd.Timestamp("2025-02-01")).all()


def test_retraining_window_comes_from_the_data_when_not_given():
    tables = {"orders": pd.DataFrame({"ordered_at": pd.to_datetime(["2023-03-15", "2023-09-20"])})}
    section = rb.retraining_section({"start": None, "end": None, "window_months": 1}, tables, horizon_days=30)
    assert (section["start"], section["end"]) == ("2023-05-01", "2023-08-01") and section["window_months"] == 1
    given = rb.retraining_section({"start": "2023-06-01", "end": None}, tables, horizon_days=30)
    assert given["start"] == "2023-06-01"

"""The segment stage's I/O: snapshots in, segmenters, assignments, attribute database, plot data and metrics out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atelier.core import attributes, paths
from atelier.core.io import write_parquet
from atelier.core.persist import load_skops, save_skops
from atelier.segment import cluster, quality, recluster, stage

from .segment_shop import BLOB_COLUMNS, FAST, fitted_blobs, heavy_frame

CURRENT, PREVIOUS = pd.Timestamp("2025-05-01"), pd.Timestamp("2025-04-01")


def snapshots_of(frame: pd.DataFrame) -> stage.Snapshots:
    """`frame` as the current snapshot, and its first half as the previous one."""
    return stage.Snapshots(current=frame, previous=frame.iloc[: len(frame) // 2], current_cutoff=CURRENT,
                           previous_cutoff=PREVIOUS)


def write_snapshots(root: Path, cutoffs: list[str]) -> None:
    rows = [{"customer_id": customer, "cutoff": pd.Timestamp(cutoff), "frequency": float(customer)}
            for cutoff in cutoffs for customer in range(3)]
    write_parquet(pd.DataFrame(rows).set_index("customer_id"), root / paths.SNAPSHOTS_FILE)


def test_load_snapshots_takes_the_last_two_cutoffs(tmp_path):
    write_snapshots(tmp_path, ["2025-03-01", "2025-05-01", "2025-04-01"])
    snapshots = stage.load_snapshots(tmp_path)
    assert (snapshots.current_cutoff, snapshots.previous_cutoff) == (CURRENT, PREVIOUS)
    assert set(snapshots.current["cutoff"]) == {CURRENT} and set(snapshots.previous["cutoff"]) == {PREVIOUS}
    assert snapshots.current.index.name == "customer_id" and len(snapshots.current) == 3
    assert snapshots.days_between == 30 and snapshots.period == "2025-04-01 to 2025-05-01"


def test_load_snapshots_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"snapshots.parquet is missing: run the prep stage"):
        stage.load_snapshots(tmp_path)
    write_snapshots(tmp_path, ["2025-05-01"])
    with pytest.raises(ValueError, match=r"holds 1 cutoff\(s\).*params.yaml timeline.cutoffs"):
        stage.load_snapshots(tmp_path)


def test_load_personas_is_none_without_truth(tmp_path):
    assert stage.load_personas(tmp_path, pd.Index([1, 2])) is None
    truth = pd.DataFrame({"customer_id": [2, 1], "persona": ["lapsing", "loyal"]})
    write_parquet(truth, tmp_path / paths.TRUTH_CUSTOMERS)
    personas = stage.load_personas(tmp_path, pd.Index([1, 2, 3]))
    assert personas.iloc[:2].tolist() == ["loyal", "lapsing"] and pd.isna(personas.iloc[2])  # aligned to the ids


def test_assignments_one_row_per_customer():
    table = stage.assignments(pd.Index([7, 8, 9], name="customer_id"), np.array([1, 0, 1]), {0: "A", 1: "B"})
    assert table.to_dict(orient="list") == {"customer_id": [7, 8, 9], "segment_id": [1, 0, 1],
                                            "segment_name": ["B", "A", "B"]}


def test_model_version_is_content_derived(tmp_path):
    frame, _, segmenter, _, _ = fitted_blobs()
    first = save_skops(segmenter, tmp_path / "a.skops")
    again = save_skops(cluster.fit_segmenter(frame, FAST), tmp_path / "b.skops")  # an identical refit
    other_k = save_skops(cluster.fit_segmenter(frame, FAST, k=3), tmp_path / "c.skops")
    version = stage.model_version(first)
    assert version.startswith("seg-") and len(version) == 16 and int(version[4:], 16) >= 0
    assert first.read_bytes() == again.read_bytes()
    assert stage.model_version(again) == version
    assert stage.model_version(other_k) != version
    (tmp_path / "renamed.bin").write_bytes(first.read_bytes())
    assert stage.model_version(tmp_path / "renamed.bin") == version  # the name does not matter, the bytes do


def test_skops_reload_is_byte_stable_and_predicts_the_same(tmp_path):
    frame = heavy_frame()
    settings = dataclasses.replace(FAST, k=3, log1p=("monetary", "recency_days"))
    segmenter = cluster.fit_segmenter(frame, settings)  # includes the log1p FunctionTransformer
    path = save_skops(segmenter, tmp_path / "segmenter.skops")
    reloaded = load_skops(path)
    resaved = save_skops(reloaded, tmp_path / "resaved.skops")
    assert path.read_bytes() == resaved.read_bytes()
    assert stage.model_version(path) == stage.model_version(resaved)
    np.testing.assert_array_equal(cluster.assign(reloaded, frame), cluster.assign(segmenter, frame))
    np.testing.assert_array_equal(cluster.prepare(reloaded, frame), cluster.prepare(segmenter, frame))


def metrics_inputs() -> dict:
    """Hand-made inputs of `stage.metrics`, small enough to check every value by hand."""
    labels = np.array([0, 0, 1, 1, 1, 2])
    names = {0: "Lapsing", 1: "Window Browsers", 2: "High-Value Loyal"}
    comparison = pd.DataFrame({"silhouette": [0.25, 0.35], "davies_bouldin": [1.3, 1.2], "largest_share": [0.3, 0.35],
                               "smallest_share": [0.03, 0.1], "sizes": [[3, 2, 1], [3, 2, 1]]},
                              index=["raw, scaled", "log1p, scaled"], dtype=object)
    trap = {"k": 2, "k_log_best": 3, "trap": True, "silhouette_raw": 0.5}
    density = {name: {"clusters": 2, "noise_share": 0.01, "ari_vs_kmeans_all": 0.3, "labels": np.zeros(3)}
               for name in ("dbscan", "hdbscan")}
    inherited = pd.DataFrame({"old_segment": [1, 0, 2], "distance": [0.1, 0.2, 0.6], "inherited name": ["a", "b", "c"],
                              "name by today's rules": ["a", "x", "c"]})
    moves = pd.DataFrame([[4, 1], [0, 5]], index=["Lapsing", "Window Browsers"], columns=["Lapsing", "Window Browsers"])
    return dict(k=3, features=["frequency", "monetary"], skipped_features=["sessions_90d"],
                quality={"silhouette": 0.4, "davies_bouldin": 1.1, "largest_share": 0.5, "smallest_share": 1 / 6,
                         "sizes": [2, 3, 1]},
                labels=labels, names=names, comparison=comparison, trap=trap, aris=np.array([0.9, 0.8]),
                jaccard=pd.DataFrame({0: [1.0, 0.8], 1: [0.9, 0.9], 2: [0.5, 0.7]}), density=density,
                truth_agreement={"ari": 0.1, "nmi": 0.2}, snapshots=snapshots_of(pd.DataFrame({"a": [1, 2]})),
                inherited=inherited, moves=moves)


def test_metrics_by_hand():
    metrics = stage.metrics(**metrics_inputs())
    assert metrics == {
        "k": 3,
        "features": ["frequency", "monetary"],
        "skipped_features": ["sessions_90d"],
        "fitted_on": "2025-05-01",
        "quality": {"silhouette": 0.4, "davies_bouldin": 1.1, "largest_share": 0.5, "smallest_share": 1 / 6},
        "sizes": {"High-Value Loyal": 1, "Lapsing": 2, "Window Browsers": 3},
        "sweep_best_k": {"log1p": 3, "raw": 2},
        "raw_vs_log": {"raw, scaled": {"silhouette": 0.25, "largest_share": 0.3},
                       "log1p, scaled": {"silhouette": 0.35, "largest_share": 0.35}},
        "silhouette_trap": {"k": 2, "k_log_best": 3, "trap": True, "silhouette_raw": 0.5},
        "stability": {"ari_mean": pytest.approx(0.85), "ari_min": 0.8,
                      "jaccard_mean": {"Lapsing": pytest.approx(0.9), "Window Browsers": 0.9,
                                       "High-Value Loyal": pytest.approx(0.6)}},
        "density": {name: {"clusters": 2, "noise_share": 0.01, "ari_vs_kmeans_all": 0.3}
                    for name in ("dbscan", "hdbscan")},
        "truth": {"ari": 0.1, "nmi": 0.2},
        "recluster": {"previous_cutoff": "2025-04-01", "names_agree": 2, "mean_match_distance": pytest.approx(0.3),
                      "kept_segment_share": 0.9},
    }
    json.dumps(metrics)  # plain values only: write_json needs no numpy
    assert stage.metrics(**{**metrics_inputs(), "truth_agreement": None})["truth"] is None


def test_write_outputs(tmp_path):
    frame, _, segmenter, X, labels = fitted_blobs()
    previous = cluster.fit_segmenter(frame, FAST, k=3)
    names = {0: "North", 1: "South", 2: "East", 3: "West"}
    assignments = stage.assignments(pd.Index(np.arange(len(frame)) + 100), labels, names)
    sweep = cluster.k_sweep(X, dataclasses.replace(FAST, k_min=2, k_max=4))
    kept = quality.cluster_quality(X, labels, seed=0)
    metrics = stage.write_outputs(
        tmp_path, segmenter=segmenter, previous=previous, assignments=assignments, snapshots=snapshots_of(frame),
        sweep=sweep, sweep_raw=sweep, metrics={"k": 4, "features": BLOB_COLUMNS, "quality": kept,
                                               "fitted_on": "2025-05-01"})
    model_file = tmp_path / paths.SEGMENTER_FILE
    version = stage.model_version(model_file)
    assert metrics["model_version"] == version and metrics["fitted_on"] == "2025-05-01"
    assert json.loads((tmp_path / paths.SEGMENT_METRICS).read_text())["model_version"] == version
    description = json.loads((tmp_path / paths.SEGMENTER_DESCRIPTION_FILE).read_text())
    assert description["k"] == 4 and description["names"] == {str(k): v for k, v in names.items()}
    assert (description["fitted_on"], description["previous_cutoff"]) == (CURRENT.isoformat(), PREVIOUS.isoformat())
    np.testing.assert_array_equal(cluster.assign(load_skops(model_file), frame), labels)
    assert load_skops(tmp_path / paths.SEGMENTER_PREVIOUS_FILE).named_steps["kmeans"].n_clusters == 3
    stored = stage.read_stored(tmp_path)
    assert len(stored) == len(frame) and set(stored["model_version"]) == {version}
    assert stored.equals(attributes.read_table(tmp_path / paths.SEGMENT_ATTRIBUTES, "customer_segments"))
    models = attributes.read_table(tmp_path / paths.SEGMENT_ATTRIBUTES, "segment_models")
    assert models.loc[0, "features"] == ",".join(BLOB_COLUMNS) and models.loc[0, "silhouette"] == pytest.approx(
        kept["silhouette"])
    parquet = pd.read_parquet(tmp_path / paths.SEGMENTS_FILE)
    assert len(parquet) == len(frame) and set(parquet["model_version"]) == {version}
    assert set(parquet["updated_at"]) == {CURRENT}
    csv = pd.read_csv(tmp_path / paths.SEGMENT_K_SWEEP_PLOT)
    assert csv["k"].tolist() == [2, 3, 4] and "silhouette_raw" in csv.columns
    assert all((tmp_path / path).is_file() for path in (paths.SEGMENT_ATTRIBUTES, paths.SEGMENTS_FILE,
                                                        paths.SEGMENTER_FILE))


def test_write_outputs_is_byte_stable(tmp_path):
    frame, _, segmenter, X, labels = fitted_blobs()
    sweep = cluster.k_sweep(X, dataclasses.replace(FAST, k_min=2, k_max=3))
    for run in ("first", "second"):
        stage.write_outputs(tmp_path / run, segmenter=segmenter, previous=segmenter,
                            assignments=stage.assignments(frame.index, labels, {i: str(i) for i in range(4)}),
                            snapshots=snapshots_of(frame), sweep=sweep, sweep_raw=sweep,
                            metrics={"k": 4, "features": BLOB_COLUMNS,
                                     "quality": quality.cluster_quality(X, labels, 0)})
    for path in (paths.SEGMENT_METRICS, paths.SEGMENTS_FILE, paths.SEGMENTER_FILE, paths.SEGMENT_K_SWEEP_PLOT):
        assert (tmp_path / "first" / path).read_bytes() == (tmp_path / "second" / path).read_bytes(), path


def test_kept_share_in_metrics_counts_customers_who_kept_their_name():
    moves = recluster.transitions(pd.Series(["A", "B", "B"], index=[1, 2, 3]),
                                  pd.Series(["A", "A", "B"], index=[1, 2, 3]))
    metrics = stage.metrics(**{**metrics_inputs(), "moves": moves})
    assert metrics["recluster"]["kept_segment_share"] == pytest.approx(2 / 3)

"""Silhouette, Davies-Bouldin and sizes read together: the trap, the sweep's reading, the case study's 0.6."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import silhouette_score

from atelier.segment import cluster, quality

from .segment_shop import FAST, fitted_blobs


def sweep_table(silhouettes: list[float], largest: list[float], smallest: list[float] | None = None) -> pd.DataFrame:
    """A hand-built k_sweep table for k = 2, 3, ..."""
    smallest = smallest or [0.05] * len(silhouettes)
    return pd.DataFrame({"silhouette": silhouettes, "largest_share": largest, "smallest_share": smallest,
                         "davies_bouldin": [1.0] * len(silhouettes)},
                        index=pd.Index(range(2, 2 + len(silhouettes)), name="k"))


def test_sampled_silhouette_is_seeded():
    X, labels = fitted_blobs()[3], fitted_blobs()[4]
    noisy = labels.copy()
    noisy[::7] = (noisy[::7] + 1) % 4
    a = quality.silhouette(X, noisy, 100, seed=3)
    assert a == quality.silhouette(X, noisy, 100, seed=3)
    assert a == pytest.approx(silhouette_score(X, noisy, sample_size=100, random_state=3))
    assert a != quality.silhouette(X, noisy, 100, seed=4)  # a different sample, a different estimate
    # a sample at least as large as the data is the exact score
    assert quality.silhouette(X, noisy, len(X), seed=3) == pytest.approx(silhouette_score(X, noisy))
    assert np.isnan(quality.silhouette(X, np.zeros(len(X), dtype=int), None, seed=0))


def test_cluster_quality_by_construction():
    X, labels = fitted_blobs()[3], fitted_blobs()[4].copy()
    labels[labels == 3] = 2  # merge two blobs: sizes 100, 100, 200
    result = quality.cluster_quality(X, labels, seed=0)
    assert sorted(result["sizes"]) == [100, 100, 200]
    assert result["largest_share"] == 0.5 and result["smallest_share"] == 0.25
    assert result["silhouette"] == pytest.approx(silhouette_score(X, labels))
    single = quality.cluster_quality(X, np.zeros(len(X), dtype=int), seed=0)
    assert single["sizes"] == [len(X)] and np.isnan(single["silhouette"]) and np.isnan(single["davies_bouldin"])


@pytest.mark.parametrize(
    "value, standing",
    [(0.75, "above"), (0.6000001, "above"), (0.6, "just below"), (0.55, "just below"), (0.5, "well below"),
     (0.35, "well below"), (-0.2, "well below")],
)
def test_against_case_study(value, standing):
    assert quality.against_case_study(value) == standing


def test_side_by_side_pairs_log_and_raw_columns():
    log, raw = sweep_table([0.4, 0.3], [0.7, 0.5]), sweep_table([0.5, 0.2], [0.9, 0.6])
    table = quality.side_by_side(log, raw)
    assert list(table.columns) == ["silhouette", "silhouette (raw)", "davies_bouldin", "davies_bouldin (raw)",
                                   "largest_share", "largest_share (raw)"]
    assert table.loc[2, "silhouette (raw)"] == 0.5 and table.loc[3, "largest_share"] == 0.5


def test_silhouette_trap_raw_best_from_one_giant_cluster():
    log = sweep_table([0.42, 0.31, 0.34, 0.35], [0.74, 0.51, 0.37, 0.35])
    raw = sweep_table([0.46, 0.32, 0.35, 0.25], [0.88, 0.76, 0.62, 0.31], [0.12, 0.08, 0.03, 0.03])
    trap = quality.silhouette_trap(log, raw)
    assert trap["trap"] is True
    assert (trap["k"], trap["silhouette_raw"], trap["largest_share_raw"], trap["smallest_share_raw"]) == (
        2, 0.46, 0.88, 0.12)
    assert (trap["silhouette_log_same_k"], trap["largest_share_log_same_k"]) == (0.42, 0.74)
    assert (trap["k_log_best"], trap["silhouette_log_best"], trap["largest_share_log_best"]) == (2, 0.42, 0.74)
    json.dumps(trap)  # plain values: it goes into the metrics


@pytest.mark.parametrize(
    "raw_silhouettes, raw_largest, expected_k",
    [
        ([0.30, 0.46, 0.20], [0.90, 0.50, 0.40], 3),  # raw's best is balanced: no giant cluster
        ([0.40, 0.20, 0.20], [0.90, 0.50, 0.40], 2),  # giant cluster, but log features score higher
    ],
    ids=["balanced", "log-scores-higher"],
)
def test_silhouette_trap_absent(raw_silhouettes, raw_largest, expected_k):
    log = sweep_table([0.42, 0.35, 0.30], [0.60, 0.40, 0.30])
    trap = quality.silhouette_trap(log, sweep_table(raw_silhouettes, raw_largest))
    assert trap["trap"] is False and trap["k"] == expected_k


def test_silhouette_trap_threshold_and_undefined_silhouettes():
    log = sweep_table([0.30, float("nan")], [0.60, 0.40])
    raw = sweep_table([float("nan"), 0.50], [0.95, 0.70])
    assert quality.silhouette_trap(log, raw)["k"] == 3  # NaN silhouettes are skipped
    assert quality.silhouette_trap(log, raw, giant_share=0.70)["trap"] is True
    assert quality.silhouette_trap(log, raw, giant_share=0.71)["trap"] is False
    with pytest.raises(ValueError, match="silhouette"):
        quality.silhouette_trap(log, sweep_table([float("nan")] * 2, [1.0, 1.0]))


def test_silhouette_trap_on_heavy_tails():
    rng = np.random.default_rng(5)
    n = 600
    frame = pd.DataFrame({"monetary": rng.lognormal(0, 2.5, n), "frequency": rng.lognormal(0, 2.0, n)})
    settings = dataclasses.replace(FAST, k_min=2, k_max=5, log1p=("monetary", "frequency"))
    log_matrix = cluster.build_preprocessor(list(frame), settings.log1p).fit_transform(frame.to_numpy())
    raw_matrix = cluster.build_preprocessor(list(frame), settings.log1p, log_transform=False).fit_transform(
        frame.to_numpy())
    trap = quality.silhouette_trap(cluster.k_sweep(log_matrix, settings), cluster.k_sweep(raw_matrix, settings))
    assert trap["trap"] is True and trap["largest_share_raw"] > 0.9 and trap["silhouette_raw"] > trap[
        "silhouette_log_best"]


@pytest.mark.parametrize("k, best_vs_kept", [(2, 0), (3, -1)])
def test_read_sweep_best_k_against_the_kept_k(k, best_vs_kept):
    sweep = sweep_table([0.42, 0.31, 0.34, 0.35, 0.33], [0.74, 0.51, 0.37, 0.35, 0.30], [0.26, 0.2, 0.1, 0.08, 0.04])
    reading = quality.read_sweep(sweep, k)
    assert (reading.best_k, reading.best_silhouette, reading.best_largest_share) == (2, 0.42, 0.74)
    assert reading.best_vs_kept == best_vs_kept
    assert reading.plateau_from == k  # the range starts at the kept k when it lies under PLATEAU_FROM_K
    assert reading.plateau_to == 6
    assert reading.kept_silhouette == sweep.loc[k, "silhouette"]


def test_read_sweep_plateau_from_k4_and_the_kept_k_above_the_best():
    sweep = sweep_table([0.20, 0.31, 0.34, 0.352, 0.349, 0.33], [0.74, 0.51, 0.37, 0.35, 0.30, 0.3],
                        [0.26, 0.2, 0.1, 0.08, 0.04, 0.03])
    reading = quality.read_sweep(sweep, 6)
    assert reading.best_k == 5 and reading.best_vs_kept == -1
    assert (reading.plateau_from, reading.plateau_to) == (4, 7)
    assert (reading.plateau_low, reading.plateau_high) == (0.33, 0.352)
    assert reading.plateau_smallest_share == 0.03
    assert reading.kept_gap == pytest.approx(0.352 - 0.349) and not reading.kept_is_plateau_best
    assert quality.read_sweep(sweep, 4).best_vs_kept == 1
    tie = quality.read_sweep(sweep.assign(silhouette=[0.20, 0.31, 0.34, 0.3502, 0.35, 0.33]), 6)
    assert tie.kept_is_plateau_best and tie.kept_gap == pytest.approx(0.0002)  # equal at three decimals


def test_read_sweep_needs_the_kept_k_and_a_silhouette():
    sweep = sweep_table([0.4, 0.3], [0.7, 0.5])
    with pytest.raises(ValueError, match="not the kept k=5"):
        quality.read_sweep(sweep, 5)
    with pytest.raises(ValueError, match="silhouette"):
        quality.read_sweep(sweep.assign(silhouette=float("nan")), 2)

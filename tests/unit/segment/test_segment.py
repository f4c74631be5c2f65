"""Tests for atelier.segment: settings, the preprocessing + K-Means segmenter, the k sweep, density
alternatives, bootstrap stability, rule-based names, re-clustering with stable ids, the SQLite
attribute store, content-derived model versions and the stage's outputs.

Expectations come from construction: well-separated blobs with known labels, hand-built z-profiles,
heavy-tailed columns, and small tables whose answers can be counted by hand.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score

from atelier.core import attributes, paths
from atelier.core.config import ParamsError, load_params
from atelier.core.persist import load_skops, save_skops
from atelier.segment import cluster as seg

SECTION = load_params(REPO / "params.yaml")["segmentation"]

#: Small, fast settings for synthetic data (no log1p unless a test asks for it).
FAST = dataclasses.replace(
    seg.SegmentSettings.from_params(SECTION, seed=7),
    log1p=(), k=4, k_min=2, k_max=7, n_init=5, silhouette_sample=None, stability_boot=8, stability_n_init=3,
    dbscan_min_samples=10, dbscan_eps=None, hdbscan_min_cluster_size=20, density_sample=1000, tsne_sample=100,
)

BLOB_COLUMNS = ["frequency", "monetary", "sessions_90d"]


def blobs(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Four well-separated, equally sized Gaussian blobs in three dimensions, with their true labels."""
    X, y = make_blobs(n_samples=n, centers=4, n_features=3, cluster_std=0.6, center_box=(-15, 15), random_state=seed)
    return pd.DataFrame(X, columns=BLOB_COLUMNS), y


@pytest.fixture(scope="module")
def blob_fit():
    """Blobs, their true labels, the segmenter fitted on them, its preprocessed matrix and labels."""
    frame, truth = blobs()
    segmenter = seg.fit_segmenter(frame, FAST)
    return frame, truth, segmenter, seg.prepare(segmenter, frame), segmenter.named_steps["kmeans"].labels_


# --------------------------------------------------------------------------------------------
# Settings and features
# --------------------------------------------------------------------------------------------
def test_settings_from_the_real_params_section():
    settings = seg.SegmentSettings.from_params(SECTION, seed=42)
    assert settings.features == tuple(SECTION["features"])
    assert settings.log1p == tuple(SECTION["log1p"])
    assert (settings.k, settings.k_min, settings.k_max) == (SECTION["k"], *SECTION["k_range"])
    assert settings.k_min <= settings.k <= settings.k_max
    assert settings.seed == 42
    assert settings.dbscan_eps is None or isinstance(settings.dbscan_eps, float)
    assert set(settings.log1p) <= set(settings.features)


@pytest.mark.parametrize(
    "change",
    [{"k": 11, "k_range": [2, 10]}, {"k": 1, "k_range": [1, 10]}, {"k": 5, "k_range": [6, 10]}, {"k": 5, "k_range": [2, 4]}],
    ids=["k-above-range", "k-below-two", "k-below-range", "range-below-k"],
)
def test_settings_reject_k_outside_range(change):
    with pytest.raises(ParamsError, match="params.yaml segmentation"):
        seg.SegmentSettings.from_params({**SECTION, **change}, seed=0)


def test_settings_reject_log1p_feature_not_in_features():
    section = {**SECTION, "log1p": [*SECTION["log1p"], "shoe_size"]}
    with pytest.raises(ParamsError, match="params.yaml segmentation") as error:
        seg.SegmentSettings.from_params(section, seed=0)
    assert "shoe_size" in str(error.value)


def test_settings_nullable_values():
    settings = seg.SegmentSettings.from_params({**SECTION, "silhouette_sample": None, "dbscan_eps": 0.5}, seed=1)
    assert settings.silhouette_sample is None and settings.dbscan_eps == 0.5


def test_available_features_lists_present_and_missing_in_configured_order():
    settings = seg.SegmentSettings.from_params(SECTION, seed=0)
    snapshot = pd.DataFrame(columns=["monetary", "customer_id", "recency_days", "frequency"])
    present, missing = seg.available_features(snapshot, settings)
    assert present == [f for f in settings.features if f in {"monetary", "recency_days", "frequency"}]
    assert missing == [f for f in settings.features if f not in {"monetary", "recency_days", "frequency"}]
    assert "customer_id" not in present + missing


@pytest.mark.parametrize("columns", [[], ["frequency"], ["frequency", "customer_id", "not_a_feature"]])
def test_available_features_needs_two(columns):
    settings = seg.SegmentSettings.from_params(SECTION, seed=0)
    with pytest.raises(ParamsError, match=r"params.yaml segmentation.features.*at least two"):
        seg.available_features(pd.DataFrame(columns=columns), settings)


# --------------------------------------------------------------------------------------------
# The preprocessor
# --------------------------------------------------------------------------------------------
def heavy_frame(n: int = 200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "recency_days": rng.integers(0, 200, n).astype(float),
        "share_mobile": rng.uniform(0, 1, n),
        "monetary": rng.lognormal(3, 1.5, n),
        "discount_share": rng.uniform(0, 1, n),
    })
    frame.loc[rng.choice(n, 20, replace=False), "monetary"] = np.nan
    frame.loc[rng.choice(n, 15, replace=False), "discount_share"] = np.nan
    return frame


def test_preprocessor_logs_only_configured_columns_fills_nan_and_standardizes():
    frame = heavy_frame()
    features, log1p = list(frame.columns), ("monetary", "recency_days", "not_present")
    out = seg.build_preprocessor(features, log1p).fit_transform(frame.to_numpy(dtype=float))
    columns = seg.preprocessed_columns(features, log1p)
    assert columns == ["recency_days", "monetary", "share_mobile", "discount_share"]

    filled = frame.fillna(0.0)
    expected = pd.DataFrame({c: np.log1p(filled[c]) if c in log1p else filled[c] for c in columns})
    expected = (expected - expected.mean()) / expected.std(ddof=0)
    np.testing.assert_allclose(out, expected.to_numpy(), atol=1e-10)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-10)
    assert not np.isnan(out).any()


def test_preprocessor_without_log_transform_only_fills_and_scales():
    frame = heavy_frame()
    features = list(frame.columns)
    out = seg.build_preprocessor(features, ("monetary",), log_transform=False).fit_transform(frame.to_numpy(dtype=float))
    filled = frame.fillna(0.0)
    np.testing.assert_allclose(out, ((filled - filled.mean()) / filled.std(ddof=0)).to_numpy(), atol=1e-10)


def test_preprocessed_columns_match_the_output_order():
    """Shift each input column by its own offset: exactly one output column moves, by a known amount."""
    frame = heavy_frame().fillna(1.0)
    features, log1p = list(frame.columns), ("discount_share", "monetary")
    preprocessor = seg.build_preprocessor(features, log1p).fit(frame.to_numpy(dtype=float))
    columns = seg.preprocessed_columns(features, log1p)
    scale = preprocessor.named_steps["scale"].scale_
    base = pd.DataFrame([frame.median()])
    before = preprocessor.transform(base.to_numpy(dtype=float))[0]
    for position, feature in enumerate(features):
        offset = 10.0 * (position + 1)
        shifted = base.copy()
        shifted[feature] += offset
        after = preprocessor.transform(shifted.to_numpy(dtype=float))[0]
        moved = np.flatnonzero(~np.isclose(after, before))
        out_position = columns.index(feature)
        assert moved.tolist() == [out_position], feature
        value = float(base[feature].iloc[0])
        change = np.log1p(value + offset) - np.log1p(value) if feature in log1p else offset
        assert after[out_position] - before[out_position] == pytest.approx(change / scale[out_position])


def test_fit_segmenter_prepare_and_assign_agree(blob_fit):
    frame, _, segmenter, X, labels = blob_fit
    np.testing.assert_allclose(X, segmenter.named_steps["prepare"].transform(frame.to_numpy()))
    np.testing.assert_array_equal(seg.assign(segmenter, frame), labels)
    assert segmenter.named_steps["kmeans"].n_clusters == FAST.k
    assert seg.fit_segmenter(frame, FAST, k=3).named_steps["kmeans"].n_clusters == 3


# --------------------------------------------------------------------------------------------
# Recovery, stability and determinism
# --------------------------------------------------------------------------------------------
def test_segmenter_recovers_known_blobs(blob_fit):
    _, truth, _, _, labels = blob_fit
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    assert np.bincount(labels).tolist() == [100] * 4


def test_bootstrap_stability_high_on_blobs_and_lower_without_structure(blob_fit):
    _, _, _, X, labels = blob_fit
    aris, jaccard = seg.bootstrap_stability(X, labels, FAST)
    assert aris.shape == (FAST.stability_boot,)
    assert jaccard.shape == (FAST.stability_boot, 4) and list(jaccard.columns) == [0, 1, 2, 3]
    assert aris.mean() > 0.95
    assert (jaccard.mean() > 0.9).all()

    cloud = pd.DataFrame(np.random.default_rng(0).normal(size=(400, 2)), columns=["frequency", "monetary"])
    cloud_segmenter = seg.fit_segmenter(cloud, FAST)
    cloud_aris, cloud_jaccard = seg.bootstrap_stability(
        seg.prepare(cloud_segmenter, cloud), cloud_segmenter.named_steps["kmeans"].labels_, FAST)
    assert cloud_aris.mean() < aris.mean() - 0.1
    assert cloud_jaccard.to_numpy().min() < jaccard.to_numpy().min() - 0.1


def test_bootstrap_stability_is_seeded():
    """On a structureless cloud refits differ from sample to sample, so only the seed makes them repeat."""
    X = np.random.default_rng(2).normal(size=(300, 2))
    labels = KMeans(n_clusters=4, n_init=3, random_state=0).fit(X).labels_
    first = seg.bootstrap_stability(X, labels, FAST, k=4)
    second = seg.bootstrap_stability(X, labels, FAST, k=4)
    np.testing.assert_array_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert len(np.unique(first[0])) > 1  # the refits really differ from one another
    other_seed = seg.bootstrap_stability(X, labels, dataclasses.replace(FAST, seed=FAST.seed + 100), k=4)
    assert not np.array_equal(first[0], other_seed[0])


def test_bootstrap_progress_sees_every_refit(blob_fit):
    _, _, _, X, labels = blob_fit
    seen = []

    def progress(items):
        for item in items:
            seen.append(item)
            yield item

    aris, _ = seg.bootstrap_stability(X, labels, FAST, progress=progress)
    assert seen == list(range(FAST.stability_boot)) and len(aris) == FAST.stability_boot


def test_jaccard_by_cluster_by_hand():
    reference = np.array([0, 0, 0, 1, 1, 1])
    other = np.array([5, 5, 1, 1, 1, 1])
    # cluster 0 = {0,1,2}: best is 5 = {0,1} -> 2/3; cluster 1 = {3,4,5}: best is 1 = {2,3,4,5} -> 3/4
    np.testing.assert_allclose(seg.jaccard_by_cluster(reference, other), [2 / 3, 3 / 4])
    np.testing.assert_allclose(seg.jaccard_by_cluster(reference, 7 - reference), [1.0, 1.0])


def test_fit_segmenter_is_deterministic():
    frame, _ = blobs(seed=5)
    first, second = seg.fit_segmenter(frame, FAST), seg.fit_segmenter(frame, FAST)
    np.testing.assert_array_equal(first.named_steps["kmeans"].labels_, second.named_steps["kmeans"].labels_)
    np.testing.assert_array_equal(first.named_steps["kmeans"].cluster_centers_, second.named_steps["kmeans"].cluster_centers_)


def test_truth_agreement_ignores_label_ids():
    personas = pd.Series(["loyal", "loyal", "bargain", "bargain", "browser", "browser"])
    perfect = seg.truth_agreement(np.array([2, 2, 0, 0, 1, 1]), personas)
    assert perfect == {"ari": pytest.approx(1.0), "nmi": pytest.approx(1.0)}
    worse = seg.truth_agreement(np.array([0, 1, 0, 1, 0, 1]), personas)
    assert worse["ari"] < 0.5 and worse["nmi"] < 0.5


# --------------------------------------------------------------------------------------------
# How many segments: the k sweep and quality
# --------------------------------------------------------------------------------------------
def test_k_sweep_on_blobs(blob_fit):
    _, _, _, X, _ = blob_fit
    seen = []
    sweep = seg.k_sweep(X, FAST, progress=lambda ks: seen.extend(ks) or ks)
    assert list(sweep.index) == list(range(FAST.k_min, FAST.k_max + 1)) == seen
    assert {"inertia", "silhouette", "davies_bouldin", "smallest_share", "largest_share"} <= set(sweep.columns)
    assert (np.diff(sweep["inertia"].to_numpy()) < 0).all()
    assert sweep["silhouette"].idxmax() == 4
    assert sweep["davies_bouldin"].idxmin() == 4
    assert sweep.loc[4, "smallest_share"] == sweep.loc[4, "largest_share"] == 0.25  # four blobs of 100
    assert (sweep.loc[3, "smallest_share"], sweep.loc[3, "largest_share"]) == (0.25, 0.5)  # two blobs merged
    assert (sweep["smallest_share"] <= sweep["largest_share"]).all()


def test_k_sweep_exact_silhouette_equals_sklearn(blob_fit):
    _, _, _, X, _ = blob_fit
    settings = dataclasses.replace(FAST, k_min=3, k_max=4)
    sweep = seg.k_sweep(X, settings)
    for k in (3, 4):
        labels = KMeans(n_clusters=k, n_init=settings.n_init, random_state=settings.seed).fit(X).labels_
        assert sweep.loc[k, "silhouette"] == pytest.approx(silhouette_score(X, labels), abs=1e-12)


def test_sampled_silhouette_is_seeded(blob_fit):
    _, _, _, X, labels = blob_fit
    noisy = labels.copy()
    noisy[::7] = (noisy[::7] + 1) % 4
    a = seg.silhouette(X, noisy, 100, seed=3)
    assert a == seg.silhouette(X, noisy, 100, seed=3)
    assert a == pytest.approx(silhouette_score(X, noisy, sample_size=100, random_state=3))
    assert a != seg.silhouette(X, noisy, 100, seed=4)  # a different sample, a different estimate
    # a sample at least as large as the data is the exact score
    assert seg.silhouette(X, noisy, len(X), seed=3) == pytest.approx(silhouette_score(X, noisy))
    assert np.isnan(seg.silhouette(X, np.zeros(len(X), dtype=int), None, seed=0))

    settings = dataclasses.replace(FAST, k_min=3, k_max=5, silhouette_sample=150)
    pd.testing.assert_frame_equal(seg.k_sweep(X, settings), seg.k_sweep(X, settings))


def test_cluster_quality_by_construction(blob_fit):
    _, _, _, X, labels = blob_fit
    labels = labels.copy()
    labels[labels == 3] = 2  # merge two blobs: sizes 100, 100, 200
    quality = seg.cluster_quality(X, labels, seed=0)
    assert sorted(quality["sizes"]) == [100, 100, 200]
    assert quality["largest_share"] == 0.5 and quality["smallest_share"] == 0.25
    assert quality["silhouette"] == pytest.approx(silhouette_score(X, labels))
    single = seg.cluster_quality(X, np.zeros(len(X), dtype=int), seed=0)
    assert single["sizes"] == [len(X)] and np.isnan(single["silhouette"]) and np.isnan(single["davies_bouldin"])


def test_compare_transforms_heavy_tail_makes_one_giant_raw_cluster():
    rng = np.random.default_rng(11)
    n = 400
    frame = pd.DataFrame({"monetary": rng.lognormal(0, 2.5, n), "frequency": rng.normal(size=n)})
    settings = dataclasses.replace(FAST, k=3, log1p=("monetary",))
    table = seg.compare_transforms(frame, settings)
    assert list(table.index) == ["raw, scaled", "log1p, scaled"]
    raw, logged = table.loc["raw, scaled"], table.loc["log1p, scaled"]
    assert raw["largest_share"] > logged["largest_share"]
    assert raw["smallest_share"] < logged["smallest_share"]
    for row in (raw, logged):
        assert sum(row["sizes"]) == n and len(row["sizes"]) == 3
        assert list(row["sizes"]) == sorted(row["sizes"], reverse=True)
        assert row["largest_share"] == pytest.approx(row["sizes"][0] / n)


def sweep_table(silhouettes: list[float], largest: list[float], smallest: list[float] | None = None) -> pd.DataFrame:
    """A hand-built k_sweep table for k = 2, 3, ..."""
    smallest = smallest or [0.05] * len(silhouettes)
    return pd.DataFrame({"silhouette": silhouettes, "largest_share": largest, "smallest_share": smallest},
                        index=pd.Index(range(2, 2 + len(silhouettes)), name="k"))


def test_silhouette_trap_raw_best_from_one_giant_cluster():
    log = sweep_table([0.42, 0.31, 0.34, 0.35], [0.74, 0.51, 0.37, 0.35])
    raw = sweep_table([0.46, 0.32, 0.35, 0.25], [0.88, 0.76, 0.62, 0.31], [0.12, 0.08, 0.03, 0.03])
    trap = seg.silhouette_trap(log, raw)
    assert trap["trap"] is True
    assert (trap["k"], trap["silhouette_raw"], trap["largest_share_raw"], trap["smallest_share_raw"]) == (2, 0.46, 0.88, 0.12)
    assert (trap["silhouette_log_same_k"], trap["largest_share_log_same_k"]) == (0.42, 0.74)
    assert (trap["k_log_best"], trap["silhouette_log_best"], trap["largest_share_log_best"]) == (2, 0.42, 0.74)
    json.dumps(trap)  # plain values: it goes into the metrics


@pytest.mark.parametrize(
    "raw_silhouettes, raw_largest, expected_k",
    [
        ([0.30, 0.46, 0.20], [0.90, 0.50, 0.40], 3),  # raw's best is balanced: no giant cluster
        ([0.40, 0.20, 0.20], [0.90, 0.50, 0.40], 2),  # giant cluster, but log features score higher: silhouette does not mislead
    ],
    ids=["balanced", "log-scores-higher"],
)
def test_silhouette_trap_absent(raw_silhouettes, raw_largest, expected_k):
    log = sweep_table([0.42, 0.35, 0.30], [0.60, 0.40, 0.30])
    trap = seg.silhouette_trap(log, sweep_table(raw_silhouettes, raw_largest))
    assert trap["trap"] is False and trap["k"] == expected_k


def test_silhouette_trap_threshold_and_undefined_silhouettes():
    log = sweep_table([0.30, float("nan")], [0.60, 0.40])
    raw = sweep_table([float("nan"), 0.50], [0.95, 0.70])
    assert seg.silhouette_trap(log, raw)["k"] == 3  # NaN silhouettes are skipped
    assert seg.silhouette_trap(log, raw, giant_share=0.70)["trap"] is True
    assert seg.silhouette_trap(log, raw, giant_share=0.71)["trap"] is False
    with pytest.raises(ValueError, match="silhouette"):
        seg.silhouette_trap(log, sweep_table([float("nan")] * 2, [1.0, 1.0]))


def test_silhouette_trap_on_heavy_tails():
    rng = np.random.default_rng(5)
    n = 600
    frame = pd.DataFrame({"monetary": rng.lognormal(0, 2.5, n), "frequency": rng.lognormal(0, 2.0, n)})
    settings = dataclasses.replace(FAST, k_min=2, k_max=5, log1p=("monetary", "frequency"))
    log = seg.k_sweep(seg.build_preprocessor(list(frame), settings.log1p).fit_transform(frame.to_numpy()), settings)
    raw = seg.k_sweep(seg.build_preprocessor(list(frame), settings.log1p, log_transform=False).fit_transform(frame.to_numpy()), settings)
    trap = seg.silhouette_trap(log, raw)
    assert trap["trap"] is True and trap["largest_share_raw"] > 0.9 and trap["silhouette_raw"] > trap["silhouette_log_best"]


# --------------------------------------------------------------------------------------------
# Density-based alternatives
# --------------------------------------------------------------------------------------------
def test_seeded_sample():
    rows = seg.seeded_sample(1000, 50, seed=9)
    assert len(rows) == 50 == len(np.unique(rows)) and (np.diff(rows) > 0).all()
    assert rows.min() >= 0 and rows.max() < 1000
    np.testing.assert_array_equal(rows, seg.seeded_sample(1000, 50, seed=9))
    assert not np.array_equal(rows, seg.seeded_sample(1000, 50, seed=10))
    np.testing.assert_array_equal(seg.seeded_sample(30, 50, seed=9), np.arange(30))
    np.testing.assert_array_equal(seg.seeded_sample(30, 30, seed=9), np.arange(30))


def test_k_distances_by_hand():
    X = np.array([[0.0], [1.0], [3.0], [10.0]])
    # 2nd nearest neighbour counting the point itself: the nearest other point (1, 1, 2, 7)
    np.testing.assert_allclose(seg.k_distances(X, 2), [1.0, 1.0, 2.0, 7.0])
    # 3rd counting itself: the second nearest other point (0: 3, 1: 2, 3: 3, 10: 9), sorted
    np.testing.assert_allclose(seg.k_distances(X, 3), [2.0, 3.0, 3.0, 9.0])


def test_knee_at_the_bend():
    flat, steep = np.linspace(0.0, 1.0, 80), np.linspace(6.0, 100.0, 20)
    values = np.concatenate([flat, steep])
    assert seg.knee(values) == pytest.approx(1.0)  # the last point of the flat part
    # the bend moves with the curve
    values = np.concatenate([np.linspace(0.0, 0.5, 30), np.linspace(5.0, 50.0, 70)])
    assert seg.knee(values) == pytest.approx(0.5)
    assert seg.knee(np.full(10, 2.0)) == 2.0  # flat curve: no division by zero


def test_density_clusterings_find_the_blobs(blob_fit):
    _, truth, _, X, labels = blob_fit
    result = seg.density_clusterings(X, labels, FAST)
    np.testing.assert_array_equal(result["sample_rows"], np.arange(len(X)))  # density_sample >= rows
    assert result["eps"] == pytest.approx(seg.knee(seg.k_distances(X, FAST.dbscan_min_samples)))
    for name in ("dbscan", "hdbscan"):
        assert result[name]["clusters"] == 4, name
        assert result[name]["noise_share"] < 0.1, name
        assert result[name]["ari_vs_kmeans_all"] > 0.85, name
        assert result[name]["ari_vs_kmeans_clustered"] == pytest.approx(1.0), name


def test_density_clusterings_uses_seeded_sample_and_fixed_eps(blob_fit):
    _, _, _, X, labels = blob_fit
    settings = dataclasses.replace(FAST, density_sample=200, dbscan_eps=0.4)
    result = seg.density_clusterings(X, labels, settings)
    np.testing.assert_array_equal(result["sample_rows"], seg.seeded_sample(len(X), 200, settings.seed))
    assert result["eps"] == 0.4
    assert len(result["dbscan"]["labels"]) == 200 == len(result["k_distances"])


def test_density_composition_by_hand():
    labels = np.array([0, 0, 0, 1, 1, -1, 0, 1])
    segments = np.array(["Loyal", "Loyal", "Bargain", "Lapsing", "Lapsing", "Loyal", "Loyal", "Browsers"])
    buyers = np.array([True, True, True, False, False, True, True, False])
    table = seg.density_composition(labels, segments, buyers, minimum=0.3)
    assert table.index.tolist() == [0, 1, -1]  # noise last
    assert table["customers"].tolist() == [4, 3, 1] and table["share"].tolist() == [0.5, 0.375, 0.125]
    assert table["buyer_share"].tolist() == [1.0, 0.0, 1.0]
    assert table.loc[0, "main_segments"] == "Loyal 75%"  # Bargain (25%) is under the minimum
    assert table.loc[1, "main_segments"] == "Lapsing 67%, Browsers 33%"
    assert seg.separates_buyers(table)
    unknown = seg.density_composition(labels, segments)
    assert unknown["buyer_share"].isna().all() and not seg.separates_buyers(unknown)


def test_separates_buyers_needs_pure_clusters_of_both_kinds():
    def composition(shares):
        return pd.DataFrame({"buyer_share": shares}, index=pd.Index(range(len(shares)), name="cluster"))
    assert seg.separates_buyers(composition([0.98, 0.01]))
    assert not seg.separates_buyers(composition([0.98, 0.60]))  # one mixed cluster
    assert not seg.separates_buyers(composition([0.98, 0.99]))  # buyers only
    assert not seg.separates_buyers(composition([0.0]))  # one cluster
    with_noise = pd.DataFrame({"buyer_share": [1.0, 0.0, 0.5]}, index=pd.Index([0, 1, -1], name="cluster"))
    assert seg.separates_buyers(with_noise)  # noise is not a cluster


# --------------------------------------------------------------------------------------------
# Profiles and names
# --------------------------------------------------------------------------------------------
RULE_FEATURES = ["monetary", "frequency", "discount_share", "sessions_90d", "views_per_session", "tenure_days", "recency_days"]

#: One hand-built z-profile per rule: strong on that rule's own features, zero elsewhere.
#: Each rule's score on its own segment is its largest score anywhere and above its minimum.
PROFILE_FOR = {
    "High-Value Loyal": {"monetary": 2.0, "frequency": 2.0},
    "Bargain Hunters": {"discount_share": 2.0},
    "Window Browsers": {"sessions_90d": 2.0, "views_per_session": 2.0},
    "New Visitors": {"tenure_days": -2.0},
    "Dormant Sign-ups": {"views_per_session": -2.0, "sessions_90d": -2.0},
    "Lapsing": {"recency_days": 2.0},
}


def z_table(profiles: list[dict[str, float]], columns: list[str] = RULE_FEATURES, index=None) -> pd.DataFrame:
    return pd.DataFrame([{c: p.get(c, 0.0) for c in columns} for p in profiles], index=index)


def test_hand_built_profiles_fit_their_rule_best():
    """The construction the naming tests rely on: each profile's own rule wins its row and its column."""
    z = z_table(list(PROFILE_FOR.values()))
    scores = np.array([[rule.score(row) for rule in seg.NAMING_RULES] for _, row in z.iterrows()])
    order = [rule.name for rule in seg.NAMING_RULES]
    own = [order.index(name) for name in PROFILE_FOR]
    for i, j in enumerate(own):
        assert scores[i, j] >= seg.NAMING_RULES[j].minimum
        assert scores[i, j] == scores[i].max() == scores[:, j].max()


def test_rule_score_by_hand():
    rule = seg.NamingRule("X", "x", {"a": 0.5, "b": -2.0}, 0.1)
    assert rule.score(pd.Series({"a": 2.0, "b": 0.25, "c": 9.0})) == pytest.approx(0.5)
    assert rule.score(pd.Series({"a": 2.0})) == float("-inf")


def test_name_segments_each_rule_wins_its_segment():
    segments = [10, 11, 12, 13, 14, 15]
    shuffled = list(PROFILE_FOR)[::-1]  # segment order unrelated to rule order
    z = z_table([PROFILE_FOR[name] for name in shuffled], index=segments)
    named = seg.name_segments(z)
    assert list(named.index) == segments
    assert named["name"].tolist() == shuffled
    assert named["name"].is_unique
    rules = {rule.name: rule for rule in seg.NAMING_RULES}
    for segment, name in zip(segments, shuffled):
        row = named.loc[segment]
        assert row["why"] == rules[name].meaning
        assert row["score"] == pytest.approx(rules[name].score(z.loc[segment]))
        for feature in rules[name].weights:
            assert f"{feature} z={z.loc[segment, feature]:+.2f}" in row["evidence"]
    assert named.loc[shuffled.index("High-Value Loyal") + 10, "evidence"] == "monetary z=+2.00, frequency z=+2.00"


def test_name_segments_below_every_minimum_is_mixed():
    weak = {"recency_days": 0.3, "sessions_90d": -0.25, "monetary": 0.1, "tenure_days": 0.05}
    z = z_table([PROFILE_FOR["High-Value Loyal"], weak])
    scores = [rule.score(z.loc[1]) for rule in seg.NAMING_RULES]
    assert all(s < rule.minimum for s, rule in zip(scores, seg.NAMING_RULES))  # the construction
    named = seg.name_segments(z)
    assert named.loc[0, "name"] == "High-Value Loyal"
    assert named.loc[1, "name"] == "Mixed: high recency_days, low sessions_90d"
    assert named.loc[1, "name"] == f"Mixed: {seg.trait_name(z.loc[1])}"
    assert named.loc[1, "evidence"] == "high recency_days, low sessions_90d, high monetary"
    assert named.loc[1, "why"] == "no rule fits well"
    assert named.loc[1, "score"] == pytest.approx(max(scores))


def test_name_segments_never_chooses_a_rule_missing_a_feature():
    columns = [c for c in RULE_FEATURES if c != "discount_share"]
    z = z_table(list(PROFILE_FOR.values()), columns=columns)
    z.loc[1, "frequency"] = 0.7  # Bargain Hunters would score 0.21 from frequency alone, were discount_share known
    named = seg.name_segments(z)
    assert "Bargain Hunters" not in set(named["name"])
    assert named.loc[1, "name"].startswith("Mixed: ")
    assert named["name"].is_unique
    others = [name for name in PROFILE_FOR if name != "Bargain Hunters"]
    assert [named.loc[i, "name"] for i in (0, 2, 3, 4, 5)] == others


def test_name_segments_more_segments_than_rules():
    extra = [{"share_mobile": 1.5, "avg_order_value": -1.0}, {"engagement_score": -1.2, "cart_adds": 0.9}]
    columns = RULE_FEATURES + ["share_mobile", "avg_order_value", "engagement_score", "cart_adds"]
    z = z_table(list(PROFILE_FOR.values()) + extra, columns=columns)
    named = seg.name_segments(z)
    assert len(named) == 8
    assert named["name"].is_unique
    assert named["name"].iloc[:6].tolist() == list(PROFILE_FOR)
    assert named.loc[6, "name"] == "Mixed: high share_mobile, low avg_order_value"
    assert named.loc[7, "name"] == "Mixed: low engagement_score, high cart_adds"


def test_name_segments_mixed_names_are_unique():
    """Two leftover segments (more segments than rules) with the same two strongest traits."""
    extra = [{"share_mobile": 1.5, "cart_adds": -1.0}, {"share_mobile": 0.9, "cart_adds": -0.8}]
    columns = RULE_FEATURES + ["share_mobile", "cart_adds"]
    named = seg.name_segments(z_table(list(PROFILE_FOR.values()) + extra, columns=columns))
    assert named["name"].is_unique, named["name"].tolist()


def test_name_segments_clear_fit_keeps_its_name():
    """Default rules, k=5: a clear Window Browsers segment must not lose its name to a segment that cannot earn it."""
    profiles = [
        {"monetary": 3.0, "frequency": 3.0, "discount_share": -1.0},  # strong High-Value Loyal
        # a long-tenured, full-price moderate spender: High-Value Loyal 1.0 (taken by segment 0), Bargain -1.95,
        # New Visitors -3.0, Window Browsers -0.15: below every spare rule's minimum, so it should be "Mixed"
        {"monetary": 1.5, "frequency": 0.5, "discount_share": -3.0, "tenure_days": 3.0},
        PROFILE_FOR["Window Browsers"],  # Window Browsers 1.4 >= 0.5; no other segment reaches 0.5 on it
        PROFILE_FOR["Dormant Sign-ups"],
        PROFILE_FOR["Lapsing"],
    ]
    named = seg.name_segments(z_table(profiles))
    assert named.loc[2, "name"] == "Window Browsers", named["name"].tolist()
    # Hungarian on raw scores: 1 -> Window Browsers (-0.15) + 2 -> a spare rule (0) beats
    # 2 -> Window Browsers (1.4) + 1 -> its best spare rule (-1.95): three names where four are possible.
    assert named["name"].str.startswith("Mixed: ").sum() == 1


def test_trait_name():
    z = pd.Series({"a": 0.2, "b": -1.5, "c": 0.9, "d": -0.1})
    assert seg.trait_name(z) == "low b, high c"
    assert seg.trait_name(z, top=3) == "low b, high c, high a"


def test_profiles_and_centroid_z_by_hand():
    snapshot = pd.DataFrame({"monetary": [10.0, 30.0, np.nan, 5.0], "frequency": [1, 3, 2, 0], "other": list("abcd")})
    labels = np.array([1, 1, 0, 0])
    table = seg.profiles(snapshot, labels, ["monetary", "frequency"])
    assert table.columns.tolist() == [(seg.SIZE, "customers"), (seg.SIZE, "share"),
                                      (seg.CLUSTERED, "monetary"), (seg.CLUSTERED, "frequency")]
    assert table[seg.SIZE, "customers"].tolist() == [2, 2] and table[seg.SIZE, "share"].tolist() == [0.5, 0.5]
    assert table.loc[1, (seg.CLUSTERED, "monetary")] == 20.0 and table.loc[0, (seg.CLUSTERED, "monetary")] == 5.0  # NaN skipped
    assert table.loc[0, (seg.CLUSTERED, "frequency")] == 1.0

    X = np.array([[1.0, -1.0], [3.0, 1.0], [0.0, 2.0], [-2.0, 0.0]])
    z = seg.centroid_z(X, labels, ["monetary", "frequency"])
    assert z.loc[1].tolist() == [2.0, 0.0] and z.loc[0].tolist() == [-1.0, 1.0]


def test_descriptive_columns_are_device_and_category_shares_not_clustered_on():
    snapshot = pd.DataFrame({"frequency": [1.0], "share_mobile": [0.5], "share_desktop": [0.3], "share_tablet": [0.2],
                             "affinity_tops": [0.6], "affinity_shoes": [0.4], "discount_share": [0.1], "region": ["north"],
                             "share_label": ["a"]})
    assert seg.descriptive_columns(snapshot, ["frequency", "share_mobile", "discount_share"]) == [
        "share_desktop", "share_tablet", "affinity_tops", "affinity_shoes"]
    assert seg.descriptive_columns(snapshot[["frequency", "region"]], ["frequency"]) == []  # orders only: none


def test_profiles_mark_descriptive_columns_and_profile_them_in_original_units():
    snapshot = pd.DataFrame({"frequency": [1.0, 3.0, 0.0, 2.0], "share_desktop": [0.2, np.nan, 1.0, 0.0],
                             "affinity_tops": [0.1, 0.3, 0.5, 0.9]})
    labels = np.array([0, 0, 1, 1])
    table = seg.profiles(snapshot, labels, ["frequency"], ["share_desktop", "affinity_tops", "frequency"])
    assert table[seg.CLUSTERED].columns.tolist() == ["frequency"]
    assert table[seg.DESCRIPTIVE].columns.tolist() == ["share_desktop", "affinity_tops"]  # a clustered column stays clustered
    assert table.loc[0, (seg.DESCRIPTIVE, "share_desktop")] == 0.2  # undefined (no visits) skipped
    assert table.loc[1, (seg.DESCRIPTIVE, "share_desktop")] == 0.5
    assert table.loc[:, (seg.DESCRIPTIVE, "affinity_tops")].tolist() == pytest.approx([0.2, 0.7])
    assert table[seg.SIZE, "customers"].tolist() == [2, 2]
    # Profiling descriptive columns does not change the clustered part.
    pd.testing.assert_frame_equal(table[[seg.SIZE, seg.CLUSTERED]], seg.profiles(snapshot, labels, ["frequency"]))


# --------------------------------------------------------------------------------------------
# Re-clustering with stable ids
# --------------------------------------------------------------------------------------------
def test_match_segments_undoes_a_known_permutation(tmp_path, blob_fit):
    frame, _, old, _, labels = blob_fit
    permutation = np.array([2, 0, 3, 1])  # new cluster j has old cluster permutation[j]'s centre
    new = load_skops(save_skops(old, tmp_path / "copy.skops"))  # an independent copy
    new.named_steps["kmeans"].cluster_centers_ = old.named_steps["kmeans"].cluster_centers_[permutation]
    new_labels = seg.assign(new, frame)
    np.testing.assert_array_equal(permutation[new_labels], labels)
    matching = seg.match_segments(old, new, frame)
    assert matching.index.name == "new_segment"
    assert matching["old_segment"].to_dict() == {j: int(permutation[j]) for j in range(4)}
    assert (matching["distance"] < 1e-9).all()
    np.testing.assert_array_equal(seg.relabel(new_labels, matching), labels)


def test_match_segments_after_refit_with_another_seed_and_row_order(blob_fit):
    frame, _, old, _, labels = blob_fit
    order = np.random.default_rng(1).permutation(len(frame))
    new = seg.fit_segmenter(frame.iloc[order], dataclasses.replace(FAST, seed=1))
    new_labels = seg.assign(new, frame)
    assert adjusted_rand_score(labels, new_labels) == pytest.approx(1.0)
    assert not np.array_equal(new_labels, labels)  # the ids really are permuted (else the test proves nothing)
    matching = seg.match_segments(old, new, frame)
    relabelled = seg.relabel(new_labels, matching)
    np.testing.assert_array_equal(relabelled, labels)
    assert sorted(matching["old_segment"]) == [0, 1, 2, 3]
    assert (matching["distance"] < 1e-6).all()


def test_match_segments_follows_clusters_that_moved(blob_fit):
    frame, _, old, _, labels = blob_fit
    shifted = frame + np.array([0.8, -0.6, 0.5])  # each blob moves a little (blob sd 0.6, gaps ~10)
    new = seg.fit_segmenter(shifted, dataclasses.replace(FAST, seed=99))
    new_labels = seg.assign(new, shifted)
    matching = seg.match_segments(old, new, shifted)
    np.testing.assert_array_equal(seg.relabel(new_labels, matching), labels)
    # each match's distance is the shift measured in the old model's scaled space
    scale = old.named_steps["prepare"].named_steps["scale"].scale_
    expected = np.linalg.norm(np.array([0.8, -0.6, 0.5]) / scale)
    np.testing.assert_allclose(matching["distance"], expected, rtol=1e-6)


def test_transitions_counts_only_customers_in_both():
    previous = pd.Series(["A", "A", "B", "B", "C"], index=[1, 2, 3, 4, 5])
    current = pd.Series(["B", "A", "B", "A", "C"], index=[2, 3, 4, 6, 7])
    moves = seg.transitions(previous, current)
    assert int(moves.to_numpy().sum()) == 3  # customers 2 (A->B), 3 (B->A), 4 (B->B)
    assert moves.loc["A", "B"] == 1 and moves.loc["B", "A"] == 1 and moves.loc["B", "B"] == 1
    assert moves.loc["A", "A"] == 0
    assert "C" not in moves.index and "C" not in moves.columns
    assert moves.index.name == "previous" and moves.columns.name == "current"


# --------------------------------------------------------------------------------------------
# The SQLite attribute store and model versions
# --------------------------------------------------------------------------------------------


def test_model_version_is_content_derived(tmp_path, blob_fit):
    frame, _, segmenter, _, _ = blob_fit
    first = save_skops(segmenter, tmp_path / "a.skops")
    again = save_skops(seg.fit_segmenter(frame, FAST), tmp_path / "b.skops")  # an identical refit
    other_k = save_skops(seg.fit_segmenter(frame, FAST, k=3), tmp_path / "c.skops")
    version = seg.model_version(first)
    assert version.startswith("seg-") and len(version) == 16 and int(version[4:], 16) >= 0
    assert first.read_bytes() == again.read_bytes()
    assert seg.model_version(again) == version
    assert seg.model_version(other_k) != version
    (tmp_path / "renamed.bin").write_bytes(first.read_bytes())
    assert seg.model_version(tmp_path / "renamed.bin") == version  # the name does not matter, the bytes do


def test_skops_reload_is_byte_stable_and_predicts_the_same(tmp_path):
    frame = heavy_frame()
    settings = dataclasses.replace(FAST, k=3, log1p=("monetary", "recency_days"))
    segmenter = seg.fit_segmenter(frame, settings)  # includes the log1p FunctionTransformer
    path = save_skops(segmenter, tmp_path / "segmenter.skops")
    reloaded = load_skops(path)
    resaved = save_skops(reloaded, tmp_path / "resaved.skops")
    assert path.read_bytes() == resaved.read_bytes()
    assert seg.model_version(path) == seg.model_version(resaved)
    np.testing.assert_array_equal(seg.assign(reloaded, frame), seg.assign(segmenter, frame))
    np.testing.assert_array_equal(seg.prepare(reloaded, frame), seg.prepare(segmenter, frame))


# --------------------------------------------------------------------------------------------
# Personas, pictures and the stage's outputs
# --------------------------------------------------------------------------------------------


def test_embed_pca(blob_fit):
    _, _, _, X, _ = blob_fit
    coordinates, explained = seg.embed_pca(X)
    assert coordinates.shape == (len(X), 3) and explained.shape == (3,)
    assert (np.diff(explained) <= 0).all() and explained.sum() == pytest.approx(1.0)  # 3 of 3 dimensions
    two, _ = seg.embed_pca(X[:, :2])
    assert two.shape == (len(X), 2)  # never more components than columns
    np.testing.assert_allclose(coordinates.mean(axis=0), 0, atol=1e-10)


def test_embed_tsne_is_seeded(blob_fit):
    _, _, _, X, _ = blob_fit
    rows = seg.seeded_sample(len(X), 80, seed=0)
    first = seg.embed_tsne(X, rows, seed=0)
    assert first.shape == (80, 2)
    np.testing.assert_array_equal(first, seg.embed_tsne(X, rows, seed=0))


def test_write_outputs(tmp_path, blob_fit):
    frame, _, segmenter, X, labels = blob_fit
    previous = seg.fit_segmenter(frame, FAST, k=3)
    names = {0: "North", 1: "South", 2: "East", 3: "West"}
    assignments = pd.DataFrame({"customer_id": np.arange(len(frame)) + 100, "segment_id": labels,
                                "segment_name": [names[label] for label in labels]})
    sweep = seg.k_sweep(X, dataclasses.replace(FAST, k_min=2, k_max=4))
    quality = seg.cluster_quality(X, labels, seed=0)
    metrics = seg.write_outputs(
        tmp_path, segmenter=segmenter, previous=previous, assignments=assignments,
        fitted_on=pd.Timestamp("2025-05-01"), previous_cutoff=pd.Timestamp("2025-04-01"), features=BLOB_COLUMNS,
        sweep=sweep, sweep_raw=sweep, metrics={"k": 4, "quality": quality})
    model_file = tmp_path / paths.SEGMENT_MODEL_DIR / "segmenter.skops"
    version = seg.model_version(model_file)
    assert metrics["model_version"] == version and metrics["fitted_on"] == "2025-05-01"
    assert json.loads((tmp_path / paths.SEGMENT_METRICS).read_text())["model_version"] == version
    description = json.loads((tmp_path / paths.SEGMENT_MODEL_DIR / "segmenter.json").read_text())
    assert description["k"] == 4 and description["names"] == {str(k): v for k, v in names.items()}
    np.testing.assert_array_equal(seg.assign(load_skops(model_file), frame), labels)
    assert load_skops(tmp_path / paths.SEGMENT_MODEL_DIR / "segmenter_previous.skops").named_steps["kmeans"].n_clusters == 3
    stored = attributes.read_table(tmp_path / paths.SEGMENT_ATTRIBUTES, "customer_segments")
    assert len(stored) == len(frame) and set(stored["model_version"]) == {version}
    parquet = pd.read_parquet(tmp_path / paths.SEGMENTS_DIR / "segments.parquet")
    assert len(parquet) == len(frame) and set(parquet["model_version"]) == {version}
    csv = pd.read_csv(tmp_path / paths.SEGMENT_PLOTS / "k_sweep.csv")
    assert csv["k"].tolist() == [2, 3, 4] and "silhouette_raw" in csv.columns
    # The paths the report names are the paths written.
    assert {paths.SEGMENT_ATTRIBUTES, paths.SEGMENTS_FILE, paths.SEGMENTER_FILE} == {
        Path("data/segments/attributes.sqlite"), Path("data/segments/segments.parquet"), Path("models/segment/segmenter.skops")}
    assert all((tmp_path / path).is_file() for path in (paths.SEGMENT_ATTRIBUTES, paths.SEGMENTS_FILE, paths.SEGMENTER_FILE))

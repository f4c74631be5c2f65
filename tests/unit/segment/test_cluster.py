"""The segmenter (fill -> log1p -> scale -> K-Means), the k sweep, raw against log features, and skewness."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from atelier.core.persist import save_skops
from atelier.segment import cluster, stability

from .segment_shop import FAST, blobs, fitted_blobs, heavy_frame


def test_preprocessor_logs_only_configured_columns_fills_nan_and_standardizes():
    frame = heavy_frame()
    features, log1p = list(frame.columns), ("monetary", "recency_days", "not_present")
    out = cluster.build_preprocessor(features, log1p).fit_transform(frame.to_numpy(dtype=float))
    columns = cluster.preprocessed_columns(features, log1p)
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
    out = cluster.build_preprocessor(features, ("monetary",), log_transform=False).fit_transform(frame.to_numpy())
    filled = frame.fillna(0.0)
    np.testing.assert_allclose(out, ((filled - filled.mean()) / filled.std(ddof=0)).to_numpy(), atol=1e-10)


def test_preprocessed_columns_match_the_output_order():
    """Shift each input column by its own offset: exactly one output column moves, by a known amount."""
    frame = heavy_frame().fillna(1.0)
    features, log1p = list(frame.columns), ("discount_share", "monetary")
    preprocessor = cluster.build_preprocessor(features, log1p).fit(frame.to_numpy(dtype=float))
    columns = cluster.preprocessed_columns(features, log1p)
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


def test_skewness_before_and_after_log1p_flags_heavy_tails():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"monetary": rng.lognormal(2, 1.5, 2000), "recency_days": rng.uniform(0, 100, 2000),
                          "share_mobile": rng.lognormal(0, 2, 2000)})
    frame.loc[:99, "monetary"] = np.nan  # undefined counts as 0, as in the segmenter
    table = cluster.skewness(frame, ("monetary", "recency_days"))
    assert list(table.index) == ["monetary", "recency_days"]  # only log1p columns, in frame order
    assert table.loc["monetary", "raw skewness"] == pytest.approx(frame["monetary"].fillna(0).skew())
    assert table.loc["monetary", "skewness after log1p"] == pytest.approx(np.log1p(frame["monetary"].fillna(0)).skew())
    raw = table["raw skewness"]
    assert raw["monetary"] > cluster.HEAVY_SKEWNESS > abs(raw["recency_days"])
    assert table["heavy-tailed"].tolist() == [True, False]
    assert table.loc["monetary", "skewness after log1p"] < table.loc["monetary", "raw skewness"]


def test_fit_segmenter_prepare_and_assign_agree():
    frame, _, segmenter, X, labels = fitted_blobs()
    np.testing.assert_allclose(X, segmenter.named_steps["prepare"].transform(frame.to_numpy()))
    np.testing.assert_array_equal(cluster.assign(segmenter, frame), labels)
    assert segmenter.named_steps["kmeans"].n_clusters == FAST.k
    assert cluster.fit_segmenter(frame, FAST, k=3).named_steps["kmeans"].n_clusters == 3
    assert cluster.fit_segmenter(frame, FAST, n_init=2).named_steps["kmeans"].n_init == 2


def test_segmenter_recovers_known_blobs():
    _, truth, _, _, labels = fitted_blobs()
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    assert np.bincount(labels).tolist() == [100] * 4


def test_fit_segmenter_is_deterministic():
    frame, _ = blobs(seed=5)
    first, second = cluster.fit_segmenter(frame, FAST), cluster.fit_segmenter(frame, FAST)
    np.testing.assert_array_equal(first.named_steps["kmeans"].labels_, second.named_steps["kmeans"].labels_)
    np.testing.assert_array_equal(first.named_steps["kmeans"].cluster_centers_,
                                  second.named_steps["kmeans"].cluster_centers_)


def test_k_sweep_on_blobs():
    X = fitted_blobs()[3]
    seen = []
    sweep = cluster.k_sweep(X, FAST, progress=lambda ks: seen.extend(ks) or ks)
    assert list(sweep.index) == list(range(FAST.k_min, FAST.k_max + 1)) == seen
    assert {"inertia", "silhouette", "davies_bouldin", "smallest_share", "largest_share"} <= set(sweep.columns)
    assert (np.diff(sweep["inertia"].to_numpy()) < 0).all()
    assert sweep["silhouette"].idxmax() == 4
    assert sweep["davies_bouldin"].idxmin() == 4
    assert sweep.loc[4, "smallest_share"] == sweep.loc[4, "largest_share"] == 0.25  # four blobs of 100
    assert (sweep.loc[3, "smallest_share"], sweep.loc[3, "largest_share"]) == (0.25, 0.5)  # two blobs merged
    assert (sweep["smallest_share"] <= sweep["largest_share"]).all()


def test_k_sweep_exact_silhouette_equals_sklearn():
    X = fitted_blobs()[3]
    settings = dataclasses.replace(FAST, k_min=3, k_max=4)
    sweep = cluster.k_sweep(X, settings)
    for k in (3, 4):
        labels = KMeans(n_clusters=k, n_init=settings.n_init, random_state=settings.seed).fit(X).labels_
        assert sweep.loc[k, "silhouette"] == pytest.approx(silhouette_score(X, labels), abs=1e-12)


def test_parallel_workers_give_the_same_results():
    """The k sweep and the bootstrap refits on two worker processes: byte for byte what one process gives."""
    X = fitted_blobs()[3]
    one, two = dataclasses.replace(FAST, silhouette_sample=150), dataclasses.replace(FAST, silhouette_sample=150,
                                                                                    workers=2)
    pd.testing.assert_frame_equal(cluster.k_sweep(X, one), cluster.k_sweep(X, two), check_exact=True)
    unstructured = np.random.default_rng(3).normal(size=(300, 3))  # no clusters: every refit differs a little
    labels = KMeans(n_clusters=4, n_init=2, random_state=0).fit(unstructured).labels_
    (aris_one, jaccard_one), (aris_two, jaccard_two) = (
        stability.bootstrap_stability(unstructured, labels, settings) for settings in (one, two))
    assert aris_one.std() > 0
    np.testing.assert_array_equal(aris_one, aris_two)
    pd.testing.assert_frame_equal(jaccard_one, jaccard_two, check_exact=True)


def test_k_sweep_with_sampled_silhouettes_repeats():
    X = fitted_blobs()[3]
    settings = dataclasses.replace(FAST, k_min=3, k_max=5, silhouette_sample=150)
    pd.testing.assert_frame_equal(cluster.k_sweep(X, settings), cluster.k_sweep(X, settings))


def test_compare_transforms_heavy_tail_makes_one_giant_raw_cluster():
    rng = np.random.default_rng(11)
    n = 400
    frame = pd.DataFrame({"monetary": rng.lognormal(0, 2.5, n), "frequency": rng.normal(size=n)})
    settings = dataclasses.replace(FAST, k=3, log1p=("monetary",))
    table = cluster.compare_transforms(frame, settings)
    assert list(table.index) == ["raw, scaled", "log1p, scaled"]
    raw, logged = table.loc["raw, scaled"], table.loc["log1p, scaled"]
    assert raw["largest_share"] > logged["largest_share"]
    assert raw["smallest_share"] < logged["smallest_share"]
    for row in (raw, logged):
        assert sum(row["sizes"]) == n and len(row["sizes"]) == 3
        assert list(row["sizes"]) == sorted(row["sizes"], reverse=True)
        assert row["largest_share"] == pytest.approx(row["sizes"][0] / n)


@pytest.mark.parametrize("k", [3, 7])  # inside the sweep's range, and outside it (added as tasks)
def test_k_sweeps_give_the_two_sweeps_and_the_comparison_of_separate_calls(k):
    """One pool for both sweeps and the comparison, on 1 or 2 processes: what `k_sweep` twice and
    `compare_transforms` give, byte for byte."""
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"monetary": rng.lognormal(0, 2.5, 300), "frequency": rng.normal(size=300),
                          "recency_days": rng.exponential(30, 300)})
    settings = dataclasses.replace(FAST, k=k, k_min=2, k_max=5, log1p=("monetary", "recency_days"),
                                   silhouette_sample=150)
    features = list(frame.columns)
    X = cluster.prepare(cluster.fit_segmenter(frame, settings), frame)
    X_raw = cluster.build_preprocessor(features, settings.log1p, log_transform=False).fit_transform(
        frame.to_numpy(dtype=float))
    expected = (cluster.k_sweep(X, settings), cluster.k_sweep(X_raw, settings),
                cluster.compare_transforms(frame, settings))
    for workers in (1, 2):
        got = cluster.k_sweeps(X, X_raw, dataclasses.replace(settings, workers=workers))
        for table, wanted in zip((got.log, got.raw, got.comparison), expected, strict=True):
            pd.testing.assert_frame_equal(table, wanted, check_exact=True)


def test_the_segmenter_assembled_from_the_sweep_is_the_one_fit_segmenter_fits_byte_for_byte(tmp_path):
    """The kept k's K-Means comes back from the sweep's process; with the preprocessor fitted alone, it saves to the
    same bytes (the same model version) as `fit_segmenter`, and assigns the same segments."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"monetary": rng.lognormal(0, 2.5, 400), "frequency": rng.poisson(2.0, 400).astype(float),
                          "recency_days": rng.exponential(30, 400)})
    frame.loc[::7, "monetary"] = np.nan  # undefined values are filled by the preprocessor
    settings = dataclasses.replace(FAST, k=4, k_min=2, k_max=5, log1p=("monetary", "recency_days"), workers=2)
    preprocessor = cluster.fit_preprocessor(frame, settings)
    X = preprocessor.transform(frame.to_numpy(dtype=float))
    X_raw = cluster.build_preprocessor(list(frame.columns), settings.log1p, log_transform=False).fit_transform(
        frame.to_numpy(dtype=float))
    assembled = cluster.with_kmeans(preprocessor, cluster.k_sweeps(X, X_raw, settings).kmeans)
    fitted = cluster.fit_segmenter(frame, settings)
    save_skops(assembled, tmp_path / "assembled.skops")
    save_skops(fitted, tmp_path / "fitted.skops")
    assert (tmp_path / "assembled.skops").read_bytes() == (tmp_path / "fitted.skops").read_bytes()
    np.testing.assert_array_equal(cluster.assign(assembled, frame), cluster.assign(fitted, frame))
    np.testing.assert_array_equal(cluster.prepare(assembled, frame), X)

"""Bootstrap stability: refits agree on real structure, disagree on a structureless cloud, and repeat with the seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans

from atelier.segment import cluster, stability

from .segment_shop import FAST, fitted_blobs


def test_bootstrap_stability_high_on_blobs_and_lower_without_structure():
    _, _, _, X, labels = fitted_blobs()
    aris, jaccard = stability.bootstrap_stability(X, labels, FAST)
    assert aris.shape == (FAST.stability_boot,)
    assert jaccard.shape == (FAST.stability_boot, 4) and list(jaccard.columns) == [0, 1, 2, 3]
    assert aris.mean() > 0.95
    assert (jaccard.mean() > 0.9).all()

    cloud = pd.DataFrame(np.random.default_rng(0).normal(size=(400, 2)), columns=["frequency", "monetary"])
    cloud_segmenter = cluster.fit_segmenter(cloud, FAST)
    cloud_aris, cloud_jaccard = stability.bootstrap_stability(
        cluster.prepare(cloud_segmenter, cloud), cloud_segmenter.named_steps["kmeans"].labels_, FAST)
    assert cloud_aris.mean() < aris.mean() - 0.1
    assert cloud_jaccard.to_numpy().min() < jaccard.to_numpy().min() - 0.1


def test_bootstrap_stability_is_seeded():
    """On a structureless cloud refits differ from sample to sample, so only the seed makes them repeat."""
    X = np.random.default_rng(2).normal(size=(300, 2))
    labels = KMeans(n_clusters=4, n_init=3, random_state=0).fit(X).labels_
    first = stability.bootstrap_stability(X, labels, FAST, k=4)
    second = stability.bootstrap_stability(X, labels, FAST, k=4)
    np.testing.assert_array_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert len(np.unique(first[0])) > 1  # the refits really differ from one another
    other_seed = stability.bootstrap_stability(X, labels, dataclasses.replace(FAST, seed=FAST.seed + 100), k=4)
    assert not np.array_equal(first[0], other_seed[0])


def test_bootstrap_progress_sees_every_refit():
    _, _, _, X, labels = fitted_blobs()
    seen = []

    def progress(items):
        for item in items:
            seen.append(item)
            yield item

    aris, _ = stability.bootstrap_stability(X, labels, FAST, progress=progress)
    assert seen == list(range(FAST.stability_boot)) and len(aris) == FAST.stability_boot


def test_jaccard_by_cluster_by_hand():
    reference = np.array([0, 0, 0, 1, 1, 1])
    other = np.array([5, 5, 1, 1, 1, 1])
    # cluster 0 = {0,1,2}: best is 5 = {0,1} -> 2/3; cluster 1 = {3,4,5}: best is 1 = {2,3,4,5} -> 3/4
    np.testing.assert_allclose(stability.jaccard_by_cluster(reference, other), [2 / 3, 3 / 4])
    np.testing.assert_allclose(stability.jaccard_by_cluster(reference, 7 - reference), [1.0, 1.0])


def test_summarize_all_stable():
    aris = np.array([0.99, 0.97, 0.98])
    jaccard = pd.DataFrame({"Loyal": [0.99, 0.97, 0.98], "Browsers": [0.9, 0.8, 0.85]})
    summary = stability.summarize(aris, jaccard)
    assert summary.refits == 3 and summary.ari_mean == pytest.approx(0.98) and summary.ari_min == 0.97
    assert summary.weakest == "Browsers" and summary.weakest_jaccard == pytest.approx(0.85)
    assert summary.unstable == ()


def test_summarize_names_the_segments_under_the_line_weakest_first():
    jaccard = pd.DataFrame({0: [0.9, 0.9], 1: [0.5, 0.7], 2: [0.74, 0.74], 3: [0.75, 0.75]})
    summary = stability.summarize(np.array([0.6, 0.8]), jaccard)
    assert summary.weakest == 1 and summary.unstable == (1, 2)  # 0.75 itself is on the stable side
    assert stability.summarize(np.array([0.6, 0.8]), jaccard, line=0.5).unstable == ()
    tie = stability.summarize(np.array([1.0]), pd.DataFrame({"b": [0.8], "a": [0.8]}))
    assert tie.weakest == "b"  # ties: the first column, as idxmin

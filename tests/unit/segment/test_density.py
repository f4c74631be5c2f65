"""DBSCAN and HDBSCAN beside K-Means: the k-distance knee, what each density cluster holds, and what it means."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from atelier.segment import density
from atelier.segment.sample import seeded_sample

from .segment_shop import FAST, fitted_blobs


def test_k_distances_by_hand():
    X = np.array([[0.0], [1.0], [3.0], [10.0]])
    # 2nd nearest neighbour counting the point itself: the nearest other point (1, 1, 2, 7)
    np.testing.assert_allclose(density.k_distances(X, 2), [1.0, 1.0, 2.0, 7.0])
    # 3rd counting itself: the second nearest other point (0: 3, 1: 2, 3: 3, 10: 9), sorted
    np.testing.assert_allclose(density.k_distances(X, 3), [2.0, 3.0, 3.0, 9.0])


def test_knee_at_the_bend():
    flat, steep = np.linspace(0.0, 1.0, 80), np.linspace(6.0, 100.0, 20)
    assert density.knee(np.concatenate([flat, steep])) == pytest.approx(1.0)  # the last point of the flat part
    # the bend moves with the curve
    assert density.knee(np.concatenate([np.linspace(0.0, 0.5, 30), np.linspace(5.0, 50.0, 70)])) == pytest.approx(0.5)
    assert density.knee(np.full(10, 2.0)) == 2.0  # flat curve: no division by zero


def test_density_clusterings_find_the_blobs():
    _, _, _, X, labels = fitted_blobs()
    result = density.density_clusterings(X, labels, FAST)
    np.testing.assert_array_equal(result["sample_rows"], np.arange(len(X)))  # density_sample >= rows
    assert result["eps"] == pytest.approx(density.knee(density.k_distances(X, FAST.dbscan_min_samples)))
    for name in density.METHODS:
        assert result[name]["clusters"] == 4, name
        assert result[name]["noise_share"] < 0.1, name
        assert result[name]["ari_vs_kmeans_all"] > 0.85, name
        assert result[name]["ari_vs_kmeans_clustered"] == pytest.approx(1.0), name
    table = density.summary(result)
    assert list(table.index) == ["dbscan", "hdbscan"] and table.loc["hdbscan", "clusters"] == 4
    assert list(table.columns) == ["clusters", "noise_share", "ari_vs_kmeans_all", "ari_vs_kmeans_clustered"]


def test_density_clusterings_uses_seeded_sample_and_fixed_eps():
    _, _, _, X, labels = fitted_blobs()
    settings = dataclasses.replace(FAST, density_sample=200, dbscan_eps=0.4)
    result = density.density_clusterings(X, labels, settings)
    np.testing.assert_array_equal(result["sample_rows"], seeded_sample(len(X), 200, settings.seed))
    assert result["eps"] == 0.4
    assert len(result["dbscan"]["labels"]) == 200 == len(result["k_distances"])


def test_buyers_from_order_counts():
    frame = pd.DataFrame({"frequency": [0.0, 2.0, np.nan, 1.0], "monetary": [0.0, 50.0, 0.0, 9.0]})
    assert density.buyers(frame).tolist() == [False, True, False, True]
    assert density.buyers(frame[["monetary"]]) is None


def test_density_composition_by_hand():
    labels = np.array([0, 0, 0, 1, 1, -1, 0, 1])
    segments = np.array(["Loyal", "Loyal", "Bargain", "Lapsing", "Lapsing", "Loyal", "Loyal", "Browsers"])
    buyers = np.array([True, True, True, False, False, True, True, False])
    table = density.density_composition(labels, segments, buyers, minimum=0.3)
    assert table.index.tolist() == [0, 1, -1]  # noise last
    assert table["customers"].tolist() == [4, 3, 1] and table["share"].tolist() == [0.5, 0.375, 0.125]
    assert table["buyer_share"].tolist() == [1.0, 0.0, 1.0]
    assert table.loc[0, "main_segments"] == "Loyal 75%"  # Bargain (25%) is under the minimum
    assert table.loc[1, "main_segments"] == "Lapsing 67%; Browsers 33%"
    assert density.separates_buyers(table)
    unknown = density.density_composition(labels, segments)
    assert unknown["buyer_share"].isna().all() and not density.separates_buyers(unknown)


def test_separates_buyers_needs_pure_clusters_of_both_kinds():
    def composition(shares):
        return pd.DataFrame({"buyer_share": shares}, index=pd.Index(range(len(shares)), name="cluster"))
    assert density.separates_buyers(composition([0.98, 0.01]))
    assert not density.separates_buyers(composition([0.98, 0.60]))  # one mixed cluster
    assert not density.separates_buyers(composition([0.98, 0.99]))  # buyers only
    assert not density.separates_buyers(composition([0.0]))  # one cluster
    with_noise = pd.DataFrame({"buyer_share": [1.0, 0.0, 0.5]}, index=pd.Index([0, 1, -1], name="cluster"))
    assert density.separates_buyers(with_noise)  # noise is not a cluster


def results_of(dbscan: list[int], hdbscan: list[int], rows: list[int] | None = None) -> dict:
    """Hand-made `density_clusterings` output: the two methods' labels on the sample rows."""
    def method(labels):
        labels = np.asarray(labels)
        return {"labels": labels, "clusters": len(set(labels[labels >= 0]))}
    return {"sample_rows": np.arange(len(dbscan)) if rows is None else np.asarray(rows),
            "dbscan": method(dbscan), "hdbscan": method(hdbscan)}


BUYERS = np.array([True, True, True, False, False, False])
SEGMENTS = np.array(["A", "A", "B", "C", "C", "D"])


def test_compositions_stack_both_methods_on_their_sample():
    results = results_of([0, 0, 1], [0, -1, 0], rows=[0, 3, 5])
    stacked = density.compositions(results, SEGMENTS, BUYERS)
    assert stacked.index.names == ["method", "cluster (-1 = noise)"]
    assert stacked.loc[("dbscan", 0), "main_segments"] == "A 50%; C 50%"  # rows 0 and 3
    assert stacked.loc[("dbscan", 1), "buyer_share"] == 0.0  # row 5
    assert stacked.loc[("hdbscan", -1), "customers"] == 1


@pytest.mark.parametrize(
    "dbscan, hdbscan, kind, clusters, continuum",
    [
        ([0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, -1], "ordered vs not", 2, True),
        ([0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], "one or two clouds", 2, True),  # dbscan's split is not by buying
        ([0, 0, 0, 0, 0, 0], [-1, -1, -1, -1, -1, -1], "one or two clouds", 1, True),
        ([-1] * 6, [-1] * 6, "no dense region", 0, False),
        ([0, 0, 1, 2, 2, 2], [0, 0, 0, 1, 1, 1], "several regions", 3, False),
        ([0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 2], "several regions", 3, False),  # pure, but three clusters
    ],
)
def test_structure_names_what_the_density_methods_found(dbscan, hdbscan, kind, clusters, continuum):
    results = results_of(dbscan, hdbscan)
    shape = density.structure(results, density.compositions(results, SEGMENTS, BUYERS), BUYERS)
    assert (shape.kind, shape.clusters, shape.continuum) == (kind, clusters, continuum)
    assert shape.buyer_share == 0.5


def test_structure_without_order_counts_cannot_see_the_buyer_split():
    results = results_of([0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1])
    shape = density.structure(results, density.compositions(results, SEGMENTS, None), None)
    assert shape.kind == "one or two clouds" and shape.buyer_share is None

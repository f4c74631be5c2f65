"""Pictures of the segments: PCA, seeded t-SNE and the pairwise features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.segment import embed
from atelier.segment.sample import seeded_sample

from .segment_shop import fitted_blobs


def test_embed_pca():
    X = fitted_blobs()[3]
    coordinates, explained = embed.embed_pca(X)
    assert coordinates.shape == (len(X), 3) and explained.shape == (3,)
    assert (np.diff(explained) <= 0).all() and explained.sum() == pytest.approx(1.0)  # 3 of 3 dimensions
    two, _ = embed.embed_pca(X[:, :2])
    assert two.shape == (len(X), 2)  # never more components than columns
    np.testing.assert_allclose(coordinates.mean(axis=0), 0, atol=1e-10)


def test_embed_tsne_is_seeded_on_a_seeded_sample():
    X = fitted_blobs()[3]
    rows, first = embed.embed_tsne(X, 80, seed=0)
    np.testing.assert_array_equal(rows, seeded_sample(len(X), 80, seed=0))
    assert first.shape == (80, 2)
    np.testing.assert_array_equal(first, embed.embed_tsne(X, 80, seed=0)[1])
    all_rows, _ = embed.embed_tsne(X[:20], 80, seed=0)  # fewer rows than the sample: all of them
    np.testing.assert_array_equal(all_rows, np.arange(20))


def test_pairwise_features_log_the_columns_present():
    frame = pd.DataFrame({"monetary": [0.0, np.e - 1, np.nan], "recency_days": [0.0, 1.0, 3.0], "other": [1, 2, 3]})
    pairs = embed.pairwise_features(frame)
    assert list(pairs.columns) == ["log1p recency_days", "log1p monetary"]  # PAIRWISE order; absent ones skipped
    assert pairs["log1p monetary"].tolist() == pytest.approx([0.0, 1.0, 0.0])  # undefined spend as 0


def test_tsne_started_on_another_process_gives_the_arrays_of_the_call_here():
    X = fitted_blobs()[3]
    running = embed.start_tsne(X, 80, seed=0)
    rows, coordinates = embed.embed_tsne(X, 80, seed=0)
    started_rows, started = running.result()
    np.testing.assert_array_equal(started_rows, rows)
    np.testing.assert_array_equal(started, coordinates)

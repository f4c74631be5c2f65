"""Test data shared by the segment phase's tests: fast settings, well-separated blobs, heavy-tailed columns.

Expectations come from construction: blobs with known labels, hand-built z-profiles and small tables
whose answers can be counted by hand.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pandas as pd
from conftest import REPO
from sklearn.datasets import make_blobs
from sklearn.pipeline import Pipeline

from atelier.core.config import load_params
from atelier.segment import cluster
from atelier.segment.settings import SegmentSettings

SECTION = load_params(REPO / "params.yaml")["segmentation"]

#: Small, fast settings for synthetic data (no log1p unless a test asks for it).
FAST = dataclasses.replace(
    SegmentSettings.from_params(SECTION, seed=7),
    log1p=(), k=4, k_min=2, k_max=7, n_init=5, silhouette_sample=None, stability_boot=8, stability_n_init=3,
    dbscan_min_samples=10, dbscan_eps=None, hdbscan_min_cluster_size=20, density_sample=1000, tsne_sample=100,
    workers=1,  # in process; test_parallel_workers_give_the_same_results runs the worker processes
)

BLOB_COLUMNS = ["frequency", "monetary", "sessions_90d"]


def blobs(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Four well-separated, equally sized Gaussian blobs in three dimensions, with their true labels."""
    X, y = make_blobs(n_samples=n, centers=4, n_features=3, cluster_std=0.6, center_box=(-15, 15), random_state=seed)
    return pd.DataFrame(X, columns=BLOB_COLUMNS), y


@cache
def fitted_blobs() -> tuple[pd.DataFrame, np.ndarray, Pipeline, np.ndarray, np.ndarray]:
    """Blobs, their true labels, the segmenter fitted on them, its preprocessed matrix and labels (fitted once)."""
    frame, truth = blobs()
    segmenter = cluster.fit_segmenter(frame, FAST)
    return frame, truth, segmenter, cluster.prepare(segmenter, frame), segmenter.named_steps["kmeans"].labels_


def heavy_frame(n: int = 200, seed: int = 3) -> pd.DataFrame:
    """A uniform, a lognormal (with gaps) and a share column (with gaps): what the preprocessor must handle."""
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

"""Are the segments stable? Refit K-Means on bootstrap samples and see whether each segment survives."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from atelier.core.parallel import ordered_map
from atelier.segment.settings import SegmentSettings

#: Hennig's rule of thumb: a cluster whose mean Jaccard under resampling stays at or above this is stable.
STABLE_JACCARD = 0.75


def jaccard_by_cluster(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """For each reference cluster, the best Jaccard overlap with any cluster of `other` (same rows)."""
    scores = []
    for cluster in np.unique(reference):
        members = reference == cluster
        best = 0.0
        for candidate in np.unique(other):
            mates = other == candidate
            union = np.logical_or(members, mates).sum()
            best = max(best, np.logical_and(members, mates).sum() / union if union else 0.0)
        scores.append(best)
    return np.asarray(scores)


def _refit(sample: tuple[int, np.ndarray], X: np.ndarray, labels: np.ndarray, k: int,
           settings: SegmentSettings) -> tuple[float, np.ndarray]:
    """One bootstrap refit (`sample`: its number and rows): its ARI with `labels` and each cluster's Jaccard."""
    refit, rows = sample
    with threadpool_limits(settings.threads):
        model = KMeans(n_clusters=k, n_init=settings.stability_n_init, random_state=settings.seed + 1 + refit)
        model.fit(X[rows])
    refit_labels = model.predict(X)
    return adjusted_rand_score(labels, refit_labels), jaccard_by_cluster(labels, refit_labels)


def bootstrap_stability(
    X: np.ndarray,
    labels: np.ndarray,
    settings: SegmentSettings,
    k: int | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Refit K-Means on bootstrap samples; compare each refit's labels of all rows with `labels`.

    The refits are independent: they run on `settings.workers` processes, with the same results as one by one.
    Returns the adjusted Rand index per refit and the Jaccard overlap per (refit, cluster): a
    cluster that keeps a Jaccard above ~0.75 under resampling is stable (Hennig's rule of thumb).
    """
    k = k or settings.k
    rng = np.random.default_rng(settings.seed)
    refits = range(settings.stability_boot)
    # The samples are drawn in order, as one refit after the other would draw them.
    samples = [(refit, rng.integers(0, len(X), len(X))) for refit in (progress(refits) if progress else refits)]
    results = ordered_map(partial(_refit, X=X, labels=labels, k=k, settings=settings), samples, settings.workers)
    aris = [ari for ari, _ in results]
    jaccards = [jaccard for _, jaccard in results]
    return np.asarray(aris), pd.DataFrame(jaccards, columns=np.unique(labels))


@dataclass(frozen=True)
class StabilitySummary:
    """The bootstrap's headline: overall agreement, the weakest segment, and the segments under the line.

    Segments are named as `jaccard`'s columns are (segment ids, or names after `jaccard.rename(columns=names)`).
    """

    refits: int
    ari_mean: float
    ari_min: float
    weakest: Hashable
    weakest_jaccard: float
    #: Segments whose mean Jaccard is under `STABLE_JACCARD`, weakest first (empty when all are stable).
    unstable: tuple[Hashable, ...]


def summarize(aris: np.ndarray, jaccard: pd.DataFrame, line: float = STABLE_JACCARD) -> StabilitySummary:
    """Summarize `bootstrap_stability`'s output (`line`: the mean Jaccard a stable segment keeps)."""
    means = jaccard.mean().sort_values(kind="stable")
    return StabilitySummary(
        refits=len(aris),
        ari_mean=float(aris.mean()),
        ari_min=float(aris.min()),
        weakest=means.index[0],
        weakest_jaccard=float(means.iloc[0]),
        unstable=tuple(means.index[means < line]),
    )

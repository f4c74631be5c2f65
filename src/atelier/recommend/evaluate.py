"""Offline ranking metrics of top-k lists against what customers did after the cutoff, with bootstrap intervals
over customers, and the share of the true-best list's preference a list captures (the simulator's truth)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

METRICS = ("precision", "recall", "ndcg", "map")


def per_customer(lists: np.ndarray, gains: sp.csr_matrix) -> pd.DataFrame:
    """precision@k, recall@k, NDCG@k (graded gains) and AP@k for each row of `lists` (rows of `gains`; every row
    must have at least one relevant product). k is the list length."""
    k = lists.shape[1]
    dense = np.asarray(gains.todense())
    relevant = dense > 0
    n_relevant = relevant.sum(axis=1)
    hit_gain = np.take_along_axis(dense, lists, axis=1)
    hits = hit_gain > 0
    discount = 1 / np.log2(np.arange(2, k + 2))
    ideal = -np.sort(-dense, axis=1)[:, :k]
    ndcg = (hit_gain * discount).sum(axis=1) / (ideal * discount[: ideal.shape[1]]).sum(axis=1)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    average_precision = (precision_at * hits).sum(axis=1) / np.minimum(n_relevant, k)
    return pd.DataFrame({"precision": hits.sum(axis=1) / k, "recall": hits.sum(axis=1) / n_relevant,
                         "ndcg": ndcg, "map": average_precision})


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Resampled row positions (resamples x n), shared by every method so their intervals are paired."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def interval(values: np.ndarray, indices: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % percentile-bootstrap interval of the mean of `values`."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    means = values[indices].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def summary(scores: dict[str, pd.DataFrame], indices: np.ndarray) -> pd.DataFrame:
    """One row per method and metric: mean, ci_low, ci_high."""
    rows = [(method, metric, *interval(frame[metric].to_numpy(), indices))
            for method, frame in scores.items() for metric in frame.columns]
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "ci_low", "ci_high"])


def paired_difference(a: np.ndarray, b: np.ndarray, indices: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b over the same customers, with its bootstrap interval."""
    return interval(np.asarray(a, float) - np.asarray(b, float), indices)


def coverage(lists: np.ndarray, n_products: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    return float(len(np.unique(lists)) / n_products) if n_products else 0.0


def popularity_percentile(lists: np.ndarray, views: np.ndarray) -> float:
    """Mean popularity percentile (0 least, 1 most viewed before the cutoff) of the recommended products."""
    percentile = pd.Series(views).rank(pct=True).to_numpy()
    return float(percentile[lists].mean())


def truth_share(lists: np.ndarray, preference: np.ndarray) -> np.ndarray:
    """Per customer: the true preference of the list as a share of the true-best list's (1 = the oracle's list)."""
    k = lists.shape[1]
    best = -np.sort(-preference, axis=1)[:, :k].sum(axis=1)
    return np.take_along_axis(preference, lists, axis=1).sum(axis=1) / best


def by_group(values: pd.DataFrame, group: np.ndarray, metric: str, indices_seed: int, resamples: int) -> pd.DataFrame:
    """Mean and bootstrap interval of `metric` for each method (columns of `values`) within each group."""
    rows = []
    for name in sorted(pd.unique(group)):
        members = np.flatnonzero(group == name)
        indices = bootstrap_indices(len(members), resamples, indices_seed)
        for method in values.columns:
            rows.append((str(name), method, len(members), *interval(values[method].to_numpy()[members], indices)))
    return pd.DataFrame(rows, columns=["group", "method", "customers", metric, "ci_low", "ci_high"])

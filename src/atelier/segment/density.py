"""Are there natural clusters? DBSCAN and HDBSCAN find only dense regions separated by sparse ones.

K-Means always returns k groups; the density methods say whether the data has islands at all, or
connected clouds that K-Means merely partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN, HDBSCAN
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from atelier.segment.sample import seeded_sample
from atelier.segment.settings import SegmentSettings

#: The two density methods, in the order the report shows them.
METHODS = ("dbscan", "hdbscan")
#: A density cluster is "all buyers" (or "no buyers") when at least this share of it is (or is not).
PURITY = 0.95


def k_distances(X: np.ndarray, min_samples: int) -> np.ndarray:
    """Each point's distance to its `min_samples`-th nearest neighbour (itself included), sorted ascending."""
    distances, _ = NearestNeighbors(n_neighbors=min_samples).fit(X).kneighbors(X)
    return np.sort(distances[:, -1])


def knee(values: np.ndarray) -> float:
    """The knee of a sorted curve: the point farthest from the chord joining its ends."""
    x = np.linspace(0, 1, len(values))
    span = values[-1] - values[0]
    y = (values - values[0]) / span if span > 0 else np.zeros_like(values)
    return float(values[int(np.argmax(x - y))])


def density_clusterings(X: np.ndarray, kmeans_labels: np.ndarray, settings: SegmentSettings) -> dict[str, Any]:
    """DBSCAN (eps from the k-distance knee unless set) and HDBSCAN on a seeded sample, compared with K-Means."""
    rows = seeded_sample(len(X), settings.density_sample, settings.seed)
    sample, reference = X[rows], kmeans_labels[rows]
    # On very small data the neighbourhood sizes cannot exceed the sample.
    min_samples = max(2, min(settings.dbscan_min_samples, len(sample) - 1))
    min_cluster_size = max(2, min(settings.hdbscan_min_cluster_size, len(sample) // 2))
    distances = k_distances(sample, min_samples)
    eps = settings.dbscan_eps if settings.dbscan_eps is not None else knee(distances)
    eps = eps if eps > 0 else float(np.finfo(float).eps)
    results: dict[str, Any] = {"sample_rows": rows, "k_distances": distances, "eps": eps, "min_samples": min_samples}
    models = {
        "dbscan": DBSCAN(eps=eps, min_samples=min_samples),
        "hdbscan": HDBSCAN(min_cluster_size=min_cluster_size, copy=True),
    }
    for name, model in models.items():
        labels = model.fit_predict(sample)
        clustered = labels >= 0
        results[name] = {
            "labels": labels,
            "clusters": int(len(set(labels[clustered]))),
            "noise_share": float(1 - clustered.mean()),
            "ari_vs_kmeans_all": float(adjusted_rand_score(reference, labels)),
            "ari_vs_kmeans_clustered": (
                float(adjusted_rand_score(reference[clustered], labels[clustered])) if clustered.any() else float("nan")
            ),
        }
    return results


def summary(results: dict[str, Any]) -> pd.DataFrame:
    """One row per method: clusters found, noise share, and agreement with K-Means (all rows; clustered rows only)."""
    keys = ("clusters", "noise_share", "ari_vs_kmeans_all", "ari_vs_kmeans_clustered")
    return pd.DataFrame.from_dict({name: {key: results[name][key] for key in keys} for name in METHODS},
                                  orient="index")  # row-wise, so `clusters` stays an integer column


def buyers(frame: pd.DataFrame) -> np.ndarray | None:
    """Whether each customer has ordered (frequency above 0), or None when the data has no frequency column."""
    return (frame["frequency"].fillna(0) > 0).to_numpy() if "frequency" in frame else None


def density_composition(
    labels: np.ndarray, segments: np.ndarray, buyers: np.ndarray | None = None, minimum: float = 0.1
) -> pd.DataFrame:
    """What each density cluster is made of: size, share of buyers, and its main K-Means segments.

    `labels` are DBSCAN/HDBSCAN labels (-1 = noise), `segments` the K-Means segment name of the
    same rows, `buyers` whether each row has ordered (None if unknown). A segment is listed if it
    holds at least `minimum` of the cluster, largest first, separated by semicolons (a fallback name
    holds a comma). Index: cluster id, noise (-1) last.
    """
    frame = pd.DataFrame({"cluster": np.asarray(labels), "segment": np.asarray(segments)})
    records = []
    for cluster in sorted(frame["cluster"].unique(), key=lambda c: (c < 0, c)):
        members = frame["cluster"] == cluster
        mix = frame.loc[members, "segment"].value_counts(normalize=True)
        mix = mix[mix >= minimum]
        buyer_share = float(np.asarray(buyers)[members.to_numpy()].mean()) if buyers is not None else float("nan")
        records.append(
            {
                "cluster": int(cluster),
                "customers": int(members.sum()),
                "share": float(members.mean()),
                "buyer_share": buyer_share,
                "main_segments": "; ".join(f"{name} {share:.0%}" for name, share in mix.items()),
            }
        )
    return pd.DataFrame(records).set_index("cluster")


def compositions(results: dict[str, Any], segment_names: np.ndarray, buyers: np.ndarray | None) -> pd.DataFrame:
    """`density_composition` of both methods on their sample, stacked (index: method, cluster)."""
    rows = results["sample_rows"]
    sampled_buyers = None if buyers is None else np.asarray(buyers)[rows]
    tables = {
        name: density_composition(results[name]["labels"], segment_names[rows], sampled_buyers) for name in METHODS
    }
    return pd.concat(tables, names=["method", "cluster (-1 = noise)"])


def separates_buyers(composition: pd.DataFrame, purity: float = PURITY) -> bool:
    """True if every density cluster (noise aside) is almost all buyers or all non-buyers, and both kinds occur."""
    clusters = composition.loc[composition.index >= 0, "buyer_share"]
    if clusters.isna().any() or len(clusters) < 2:
        return False
    buying, not_buying = clusters >= purity, clusters <= 1 - purity
    return bool((buying | not_buying).all() and buying.any() and not_buying.any())


@dataclass(frozen=True)
class DensityStructure:
    """What the density methods found, in one word, and what it means for K-Means."""

    #: "no dense region": both methods call everything noise; "ordered vs not": both find exactly two
    #: clusters, one of buyers and one of customers without an order; "one or two clouds": neither finds
    #: more than two clusters; "several regions": at least one finds three or more.
    kind: Literal["no dense region", "ordered vs not", "one or two clouds", "several regions"]
    #: The most clusters either method found.
    clusters: int
    #: Share of the density sample with an order (None when the data has no order counts).
    buyer_share: float | None
    #: True when customers form connected clouds: K-Means partitions them rather than finding islands.
    continuum: bool


def structure(results: dict[str, Any], stacked: pd.DataFrame, buyers: np.ndarray | None) -> DensityStructure:
    """Classify the density findings (`results` from `density_clusterings`, `stacked` from `compositions`)."""
    counts = [results[name]["clusters"] for name in METHODS]
    most = max(counts)
    split = all(count == 2 and separates_buyers(stacked.loc[name]) for name, count in zip(METHODS, counts))
    if most == 0:
        kind = "no dense region"
    elif split:
        kind = "ordered vs not"
    elif most <= 2:
        kind = "one or two clouds"
    else:
        kind = "several regions"
    buyer_share = None if buyers is None else float(np.asarray(buyers)[results["sample_rows"]].mean())
    return DensityStructure(kind, most, buyer_share, kind in ("ordered vs not", "one or two clouds"))

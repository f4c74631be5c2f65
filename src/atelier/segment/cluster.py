"""Segmentation: behavioural cohorts with K-Means, checked every way we can, named by visible rules.

The segmenter is one scikit-learn Pipeline (fill undefined values -> log1p on heavy tails ->
standard scaling -> K-Means), saved with skops. Around it: a k sweep (silhouette, Davies-Bouldin,
inertia), density-based alternatives (DBSCAN, HDBSCAN), bootstrap stability, agreement with the
simulator's hidden personas, profiles in original units, rule-based names, a SQLite attribute
store, and re-clustering that keeps names stable by matching new clusters to old ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import DBSCAN, HDBSCAN, KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    adjusted_rand_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from atelier.core import attributes, paths
from atelier.core.config import ParamsError


@dataclass(frozen=True)
class SegmentSettings:
    """The tunables of the segmentation phase (params.yaml `segmentation`, plus the seed)."""

    features: tuple[str, ...]
    log1p: tuple[str, ...]
    k: int
    k_min: int
    k_max: int
    n_init: int
    silhouette_sample: int | None
    stability_boot: int
    stability_n_init: int
    dbscan_min_samples: int
    dbscan_eps: float | None
    hdbscan_min_cluster_size: int
    density_sample: int
    tsne_sample: int
    threads: int
    seed: int

    @classmethod
    def from_params(cls, section: dict[str, Any], seed: int) -> SegmentSettings:
        """Settings from params.yaml's `segmentation` section."""
        try:
            k_min, k_max = (int(v) for v in section["k_range"])
            return cls._checked(section, seed, k_min, k_max)
        except KeyError as missing:
            raise ParamsError(
                f"params.yaml segmentation: missing key {missing}; restore it from the project's params.yaml"
            ) from None

    @classmethod
    def _checked(cls, section: dict[str, Any], seed: int, k_min: int, k_max: int) -> SegmentSettings:
        settings = cls(
            features=tuple(section["features"]),
            log1p=tuple(section["log1p"]),
            k=int(section["k"]),
            k_min=k_min,
            k_max=k_max,
            n_init=int(section["n_init"]),
            silhouette_sample=None if section["silhouette_sample"] is None else int(section["silhouette_sample"]),
            stability_boot=int(section["stability_boot"]),
            stability_n_init=int(section["stability_n_init"]),
            dbscan_min_samples=int(section["dbscan_min_samples"]),
            dbscan_eps=None if section["dbscan_eps"] is None else float(section["dbscan_eps"]),
            hdbscan_min_cluster_size=int(section["hdbscan_min_cluster_size"]),
            density_sample=int(section["density_sample"]),
            tsne_sample=int(section["tsne_sample"]),
            threads=int(section["threads"]),
            seed=int(seed),
        )
        if not 2 <= settings.k_min <= settings.k <= settings.k_max:
            raise ParamsError(
                f"params.yaml segmentation: need 2 <= k_range[0] <= k <= k_range[1], got k={settings.k}, "
                f"k_range=[{settings.k_min}, {settings.k_max}]"
            )
        unknown = set(settings.log1p) - set(settings.features)
        if unknown:
            raise ParamsError(f"params.yaml segmentation.log1p lists {sorted(unknown)}, which are not in segmentation.features")
        return settings


# --------------------------------------------------------------------------------------------
# Features and the segmenter
# --------------------------------------------------------------------------------------------
def available_features(snapshot: pd.DataFrame, settings: SegmentSettings) -> tuple[list[str], list[str]]:
    """The configured features present in the snapshot, and those missing (e.g. with orders only)."""
    present = [f for f in settings.features if f in snapshot.columns]
    missing = [f for f in settings.features if f not in snapshot.columns]
    if len(present) < 2:
        raise ParamsError(
            f"params.yaml segmentation.features: only {present} exist in the prep snapshots; "
            "clustering needs at least two (add features the data has, e.g. frequency, monetary, recency_days)"
        )
    return present, missing


def build_preprocessor(features: list[str], log1p: tuple[str, ...] | list[str], *, log_transform: bool = True) -> Pipeline:
    """Fill undefined values with 0 -> log1p on heavy-tailed columns (if `log_transform`) -> scale.

    Undefined values here (average order value with no order, device share with no visit) mean
    "none of it", so 0 is the honest fill for clustering; recency and tenure are always defined.
    """
    heavy = [f for f in features if f in log1p] if log_transform else []
    steps: list[tuple[str, Any]] = [
        ("fill", SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True)),
    ]
    if heavy:
        positions = [features.index(f) for f in heavy]
        steps.append(
            (
                "log1p",
                ColumnTransformer(
                    [("heavy", FunctionTransformer(np.log1p), positions)], remainder="passthrough"
                ),
            )
        )
    steps.append(("scale", StandardScaler()))
    return Pipeline(steps)


def preprocessed_columns(features: list[str], log1p: tuple[str, ...] | list[str]) -> list[str]:
    """Column order after the preprocessor (log-transformed columns first, as ColumnTransformer puts them)."""
    heavy = [f for f in features if f in log1p]
    return heavy + [f for f in features if f not in heavy]


def fit_segmenter(frame: pd.DataFrame, settings: SegmentSettings, k: int | None = None, *, log_transform: bool = True,
                  n_init: int | None = None) -> Pipeline:
    """Fit preprocessing + K-Means (n_init initializations, seeded) on `frame`'s feature columns."""
    features = list(frame.columns)
    segmenter = Pipeline(
        [
            ("prepare", build_preprocessor(features, settings.log1p, log_transform=log_transform)),
            ("kmeans", KMeans(n_clusters=k or settings.k, n_init=n_init or settings.n_init, random_state=settings.seed)),
        ]
    )
    with threadpool_limits(settings.threads):
        return segmenter.fit(frame.to_numpy(dtype=float))


def prepare(segmenter: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The preprocessed matrix the segmenter's K-Means sees."""
    return segmenter.named_steps["prepare"].transform(frame.to_numpy(dtype=float))


def assign(segmenter: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Segment id of each row of `frame`."""
    return segmenter.predict(frame.to_numpy(dtype=float))


# --------------------------------------------------------------------------------------------
# How many segments, and how good
# --------------------------------------------------------------------------------------------
def silhouette(X: np.ndarray, labels: np.ndarray, sample: int | None, seed: int) -> float:
    """Silhouette score: exact if `sample` is None or >= rows, else on a fixed seeded sample."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    if sample is None or sample >= len(X):
        return float(silhouette_score(X, labels))
    return float(silhouette_score(X, labels, sample_size=sample, random_state=seed))


def k_sweep(X: np.ndarray, settings: SegmentSettings, progress: Callable | None = None) -> pd.DataFrame:
    """K-Means for every k in the range: inertia, silhouette, Davies-Bouldin and the smallest cluster's share."""
    rows = []
    ks = range(settings.k_min, settings.k_max + 1)
    for k in progress(ks) if progress else ks:
        with threadpool_limits(settings.threads):
            model = KMeans(n_clusters=k, n_init=settings.n_init, random_state=settings.seed).fit(X)
        sizes = np.bincount(model.labels_, minlength=k)
        rows.append(
            {
                "k": k,
                "inertia": float(model.inertia_),
                "silhouette": silhouette(X, model.labels_, settings.silhouette_sample, settings.seed),
                "davies_bouldin": float(davies_bouldin_score(X, model.labels_)),
                "smallest_share": float(sizes.min() / sizes.sum()),
                "largest_share": float(sizes.max() / sizes.sum()),
            }
        )
    return pd.DataFrame(rows).set_index("k")


def cluster_quality(X: np.ndarray, labels: np.ndarray, seed: int, sample: int | None = None) -> dict[str, Any]:
    """Silhouette, Davies-Bouldin and cluster sizes of one labelling."""
    sizes = pd.Series(labels).value_counts().sort_index()
    return {
        "silhouette": silhouette(X, labels, sample, seed),
        "davies_bouldin": float(davies_bouldin_score(X, labels)) if len(sizes) > 1 else float("nan"),
        "sizes": [int(s) for s in sizes.to_numpy()],
        "largest_share": float(sizes.max() / sizes.sum()),
        "smallest_share": float(sizes.min() / sizes.sum()),
    }


def compare_transforms(frame: pd.DataFrame, settings: SegmentSettings) -> pd.DataFrame:
    """The same K-Means on scaled raw features and on log1p-then-scaled features: quality and sizes.

    A high silhouette from one giant cluster plus a few outliers is a trap, not a segmentation:
    read the silhouette together with the cluster sizes.
    """
    rows = {}
    for name, log_transform in (("raw, scaled", False), ("log1p, scaled", True)):
        segmenter = fit_segmenter(frame, settings, log_transform=log_transform)
        X = prepare(segmenter, frame)
        quality = cluster_quality(X, segmenter.named_steps["kmeans"].labels_, settings.seed, settings.silhouette_sample)
        rows[name] = {
            "silhouette": quality["silhouette"],
            "davies_bouldin": quality["davies_bouldin"],
            "largest_share": quality["largest_share"],
            "smallest_share": quality["smallest_share"],
            "sizes": sorted(quality["sizes"], reverse=True),
        }
    return pd.DataFrame(rows).T


def silhouette_trap(sweep: pd.DataFrame, sweep_raw: pd.DataFrame, giant_share: float = 0.75) -> dict[str, Any]:
    """Where raw scaling gets its best silhouette, how lopsided that split is, and whether it is the trap.

    `sweep` (log1p features) and `sweep_raw` (raw features) are `k_sweep` tables over the same k.
    The trap: raw features reach a silhouette at least as high as the best log1p one, but only
    because one cluster holds `giant_share` or more of the customers. A reader who picks features
    and k by silhouette alone falls into it; the cluster sizes give it away. On data without
    heavy tails it need not appear, and then `trap` is False.
    """
    raw_scores, log_scores = sweep_raw["silhouette"].dropna(), sweep["silhouette"].dropna()
    if raw_scores.empty or log_scores.empty:
        raise ValueError("silhouette_trap needs at least one defined silhouette in each sweep (k_sweep with k >= 2)")
    k_raw, k_log = int(raw_scores.idxmax()), int(log_scores.idxmax())
    raw, log_same_k, log_best = sweep_raw.loc[k_raw], sweep.loc[k_raw], sweep.loc[k_log]
    trap = bool(raw["silhouette"] >= log_best["silhouette"] and raw["largest_share"] >= giant_share)
    return {
        "k": k_raw,
        "silhouette_raw": float(raw["silhouette"]),
        "largest_share_raw": float(raw["largest_share"]),
        "smallest_share_raw": float(raw["smallest_share"]),
        "silhouette_log_same_k": float(log_same_k["silhouette"]),
        "largest_share_log_same_k": float(log_same_k["largest_share"]),
        "k_log_best": k_log,
        "silhouette_log_best": float(log_best["silhouette"]),
        "largest_share_log_best": float(log_best["largest_share"]),
        "giant_share": float(giant_share),
        "trap": trap,
    }


# --------------------------------------------------------------------------------------------
# Density-based alternatives
# --------------------------------------------------------------------------------------------
def seeded_sample(n_rows: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of `size` rows (all rows if there are fewer)."""
    if size >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=size, replace=False))


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
            "ari_vs_kmeans_clustered": float(adjusted_rand_score(reference[clustered], labels[clustered])) if clustered.any() else float("nan"),
        }
    return results


def density_composition(labels: np.ndarray, segments: np.ndarray, buyers: np.ndarray | None = None,
                        minimum: float = 0.1) -> pd.DataFrame:
    """What each density cluster is made of: size, share of buyers, and its main K-Means segments.

    `labels` are DBSCAN/HDBSCAN labels (-1 = noise), `segments` the K-Means segment name of the
    same rows, `buyers` whether each row has ordered (None if unknown). A segment is listed if it
    holds at least `minimum` of the cluster, largest first. Index: cluster id, noise (-1) last.
    """
    frame = pd.DataFrame({"cluster": np.asarray(labels), "segment": np.asarray(segments)})
    records = []
    for cluster in sorted(frame["cluster"].unique(), key=lambda c: (c < 0, c)):
        members = frame["cluster"] == cluster
        mix = frame.loc[members, "segment"].value_counts(normalize=True)
        mix = mix[mix >= minimum]
        records.append({
            "cluster": int(cluster),
            "customers": int(members.sum()),
            "share": float(members.mean()),
            "buyer_share": float(np.asarray(buyers)[members.to_numpy()].mean()) if buyers is not None else float("nan"),
            "main_segments": ", ".join(f"{name} {share:.0%}" for name, share in mix.items()),
        })
    return pd.DataFrame(records).set_index("cluster")


def separates_buyers(composition: pd.DataFrame, purity: float = 0.95) -> bool:
    """True if every density cluster (noise aside) is almost all buyers or almost all non-buyers, and both kinds occur."""
    clusters = composition.loc[composition.index >= 0, "buyer_share"]
    if clusters.isna().any() or len(clusters) < 2:
        return False
    buying, not_buying = clusters >= purity, clusters <= 1 - purity
    return bool((buying | not_buying).all() and buying.any() and not_buying.any())


# --------------------------------------------------------------------------------------------
# Stability and truth
# --------------------------------------------------------------------------------------------
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


def bootstrap_stability(X: np.ndarray, labels: np.ndarray, settings: SegmentSettings, k: int | None = None,
                        progress: Callable | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Refit K-Means on bootstrap samples; compare each refit's labels of all rows with `labels`.

    Returns the adjusted Rand index per refit and the Jaccard overlap per (refit, cluster): a
    cluster that keeps a Jaccard above ~0.75 under resampling is stable (Hennig's rule of thumb).
    """
    k = k or settings.k
    rng = np.random.default_rng(settings.seed)
    aris, jaccards = [], []
    refits = range(settings.stability_boot)
    for refit in progress(refits) if progress else refits:
        rows = rng.integers(0, len(X), len(X))
        with threadpool_limits(settings.threads):
            model = KMeans(n_clusters=k, n_init=settings.stability_n_init, random_state=settings.seed + 1 + refit).fit(X[rows])
        refit_labels = model.predict(X)
        aris.append(adjusted_rand_score(labels, refit_labels))
        jaccards.append(jaccard_by_cluster(labels, refit_labels))
    return np.asarray(aris), pd.DataFrame(jaccards, columns=np.unique(labels))


def truth_agreement(labels: np.ndarray, personas: pd.Series) -> dict[str, Any]:
    """Adjusted Rand index and normalized mutual information of segments against hidden personas."""
    return {
        "ari": float(adjusted_rand_score(personas, labels)),
        "nmi": float(normalized_mutual_info_score(personas, labels)),
    }


# --------------------------------------------------------------------------------------------
# Profiles and names
# --------------------------------------------------------------------------------------------
#: Snapshot columns that describe a segment without being clustered on: device shares and
#: category affinities (each customer's share of product views per category).
DESCRIPTIVE_PREFIXES: tuple[str, ...] = ("share_", "affinity_")
#: The column groups of a profile table (its first column level).
SIZE, CLUSTERED, DESCRIPTIVE = "size", "clustered on", "descriptive (not clustered on)"


def descriptive_columns(snapshot: pd.DataFrame, clustered: list[str]) -> list[str]:
    """Numeric device-share and category-affinity columns of the snapshot that were not clustered on."""
    return [c for c in snapshot.columns
            if c.startswith(DESCRIPTIVE_PREFIXES) and c not in clustered and pd.api.types.is_numeric_dtype(snapshot[c])]


def profiles(snapshot: pd.DataFrame, labels: np.ndarray, columns: list[str], descriptive: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Per segment: size, share and the mean of each column in original units (undefined values skipped).

    `columns` are the features clustered on; `descriptive` are columns profiled only to describe
    the segments (e.g. device shares, category affinities), never used to form them. The columns
    carry two levels: the group (`SIZE`, `CLUSTERED`, `DESCRIPTIVE`) and the column name.
    """
    descriptive = [c for c in descriptive if c not in columns]
    frame = snapshot[[*columns, *descriptive]].astype(float).assign(segment=labels)
    grouped = frame.groupby("segment")
    means = grouped.mean()
    size = pd.DataFrame({"customers": grouped.size(), "share": grouped.size() / len(frame)})
    return pd.concat({SIZE: size, CLUSTERED: means[columns], DESCRIPTIVE: means[descriptive]}, axis=1)


def centroid_z(X: np.ndarray, labels: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Each segment's mean of the preprocessed (log1p, scaled) features: how far from average, in SDs."""
    return pd.DataFrame(X, columns=columns).groupby(labels).mean()


@dataclass(frozen=True)
class NamingRule:
    """A segment name and the evidence that earns it: a score from the segment's z-profile."""

    name: str
    meaning: str
    weights: dict[str, float]
    minimum: float

    def score(self, z: pd.Series) -> float:
        """Weighted sum of the profile's z-values; -inf if a feature it needs is absent."""
        if any(feature not in z.index for feature in self.weights):
            return float("-inf")
        return float(sum(weight * z[feature] for feature, weight in self.weights.items()))


#: The naming rules, visible to readers (the notebook prints them). Each segment gets the rule
#: that fits it best, every name at most once (an optimal assignment), and only if its score
#: reaches the rule's minimum; otherwise it is named after its strongest traits.
NAMING_RULES: tuple[NamingRule, ...] = (
    NamingRule("High-Value Loyal", "spends and orders far above average", {"monetary": 0.5, "frequency": 0.5}, 0.8),
    NamingRule("Bargain Hunters", "buys, and mostly on discount", {"discount_share": 0.7, "frequency": 0.3}, 0.6),
    NamingRule("Window Browsers", "visits often and views a lot, rarely buys",
               {"sessions_90d": 0.4, "views_per_session": 0.3, "frequency": -0.3}, 0.5),
    NamingRule("New Visitors", "joined recently", {"tenure_days": -1.0}, 0.6),
    NamingRule("Dormant Sign-ups", "registered but has not browsed: no visits on record",
               {"views_per_session": -0.6, "sessions_90d": -0.2, "frequency": -0.2}, 0.8),
    NamingRule("Lapsing", "not seen for a long time", {"recency_days": 1.0, "sessions_90d": -0.3}, 0.6),
)


def trait_name(z: pd.Series, top: int = 2) -> str:
    """A descriptive fallback name from the strongest deviations, e.g. 'high views_per_session, low recency_days'."""
    strongest = z.reindex(z.abs().sort_values(ascending=False).index)[:top]
    return ", ".join(f"{'high' if value > 0 else 'low'} {feature}" for feature, value in strongest.items())


def name_segments(z_profiles: pd.DataFrame, rules: tuple[NamingRule, ...] = NAMING_RULES) -> pd.DataFrame:
    """Name each segment by the best-fitting rule (each name used once); show the score behind it.

    Returns one row per segment: name, rule meaning, score, and the z-values the rule used.
    """
    scores = np.array([[rule.score(z) for rule in rules] for _, z in z_profiles.iterrows()])
    minimums = np.array([rule.minimum for rule in rules])
    eligible = np.isfinite(scores) & (scores >= minimums)
    # Name as many segments as possible first, then prefer the better fits: a pair under a
    # rule's minimum can never earn the name, so it must not win the assignment either.
    gain = np.where(eligible, 1_000.0 + np.where(eligible, scores, 0.0), 0.0)
    rows, columns = linear_sum_assignment(-gain)
    chosen = {row: column for row, column in zip(rows, columns) if eligible[row, column]}
    records = []
    for position, (segment, z) in enumerate(z_profiles.iterrows()):
        rule_index = chosen.get(position)
        if rule_index is not None:
            rule = rules[rule_index]
            evidence = ", ".join(f"{f} z={z[f]:+.2f}" for f in rule.weights)
            records.append({"segment": segment, "name": rule.name, "why": rule.meaning,
                            "score": scores[position, rule_index], "evidence": evidence})
        else:
            best = scores[position][np.isfinite(scores[position])]
            records.append({"segment": segment, "name": f"Mixed: {trait_name(z)}", "why": "no rule fits well",
                            "score": float(best.max()) if len(best) else float("nan"), "evidence": trait_name(z, top=3)})
    named = pd.DataFrame(records).set_index("segment")
    # Two fallback names can coincide; names are keys downstream, so number the repeats.
    repeat = named.groupby("name").cumcount()
    named["name"] = named["name"].where(repeat == 0, named["name"] + " #" + (repeat + 1).astype(str))
    return named


# --------------------------------------------------------------------------------------------
# Re-clustering with stable names
# --------------------------------------------------------------------------------------------
def match_segments(old: Pipeline, new: Pipeline, new_frame: pd.DataFrame) -> pd.DataFrame:
    """Map each new cluster to an old one (Hungarian matching on centroids in the old model's space).

    New clusters' centroids are the means of their members after the *old* preprocessing, so both
    sets of centroids live in the same space. Returns new_segment -> old_segment with the distance.
    """
    old_space = prepare(old, new_frame)
    new_labels = assign(new, new_frame)
    new_centroids = pd.DataFrame(old_space).groupby(new_labels).mean()
    old_centroids = old.named_steps["kmeans"].cluster_centers_
    distance = np.linalg.norm(new_centroids.to_numpy()[:, None, :] - old_centroids[None, :, :], axis=2)
    rows, columns = linear_sum_assignment(distance)
    return pd.DataFrame(
        {"old_segment": columns, "distance": distance[rows, columns]}, index=pd.Index(new_centroids.index[rows], name="new_segment")
    )


def relabel(labels: np.ndarray, matching: pd.DataFrame) -> np.ndarray:
    """New labels rewritten with the matched old segment ids."""
    mapping = matching["old_segment"].to_dict()
    return np.array([mapping[label] for label in labels])


# --------------------------------------------------------------------------------------------
# Storing segments as user attributes
# --------------------------------------------------------------------------------------------
def model_version(path: Path) -> str:
    """A content-derived version of a saved model file: 'seg-' and 12 hex digits of its SHA-256."""
    return "seg-" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# Pictures of the segments
# --------------------------------------------------------------------------------------------
def embed_pca(X: np.ndarray, components: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """PCA coordinates of every row and the share of variance each component explains."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(components, X.shape[1])).fit(X)
    return pca.transform(X), pca.explained_variance_ratio_


def embed_tsne(X: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE coordinates of the rows `rows` (seeded; t-SNE shows neighbourhoods, not distances)."""
    from sklearn.manifold import TSNE

    # Perplexity must stay below the number of points; 30 is the usual value for large samples.
    perplexity = float(min(30, max(2, (len(rows) - 1) // 3)))
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(X[rows])


# --------------------------------------------------------------------------------------------
# The stage's inputs and outputs
# --------------------------------------------------------------------------------------------


def transitions(previous: pd.Series, current: pd.Series) -> pd.DataFrame:
    """Customers in both snapshots: counts from each previous segment (rows) to each current one (columns)."""
    both = previous.index.intersection(current.index)
    return pd.crosstab(previous.loc[both].rename("previous"), current.loc[both].rename("current"))


def write_outputs(root: Path, *, segmenter: Pipeline, previous: Pipeline, assignments: pd.DataFrame,
                  fitted_on: pd.Timestamp, previous_cutoff: pd.Timestamp, features: list[str],
                  sweep: pd.DataFrame, sweep_raw: pd.DataFrame, metrics: dict[str, Any]) -> dict[str, Any]:
    """Save the segmenters (skops), the assignments (Parquet and SQLite), the k sweep and the metrics.

    `assignments` has customer_id, segment_id, segment_name. Returns the metrics, with the model version.
    """
    from atelier.core.io import write_json, write_parquet
    from atelier.core.persist import save_skops

    root = Path(root)
    model_path = save_skops(segmenter, root / paths.SEGMENTER_FILE)
    save_skops(previous, root / paths.SEGMENT_MODEL_DIR / "segmenter_previous.skops")
    version = model_version(model_path)
    quality = metrics["quality"]
    model = {"model_version": version, "fitted_on": fitted_on.isoformat(), "k": segmenter.named_steps["kmeans"].n_clusters,
             "features": features, "silhouette": quality["silhouette"], "davies_bouldin": quality["davies_bouldin"]}
    write_json({**model, "previous_cutoff": previous_cutoff.isoformat(),
                "names": assignments.drop_duplicates("segment_id").set_index("segment_id")["segment_name"].sort_index().to_dict()},
               root / paths.SEGMENT_MODEL_DIR / "segmenter.json")
    stored = assignments.assign(model_version=version, updated_at=fitted_on)
    write_parquet(stored, root / paths.SEGMENTS_FILE)
    attributes.write_segments(root / paths.SEGMENT_ATTRIBUTES, assignments, model)
    (root / paths.SEGMENT_PLOTS).mkdir(parents=True, exist_ok=True)
    sweep.join(sweep_raw.add_suffix("_raw")).reset_index().to_csv(root / paths.SEGMENT_PLOTS / "k_sweep.csv", index=False, float_format="%.6f")
    metrics = {"model_version": version, "fitted_on": fitted_on.date().isoformat(), **metrics}
    write_json(metrics, root / paths.SEGMENT_METRICS)
    return metrics

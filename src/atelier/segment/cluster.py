"""The segmenter: one scikit-learn Pipeline (fill undefined values -> log1p on heavy tails -> scale -> K-Means).

Also the k sweep beside it, and the same K-Means on raw features, to show why the log transform matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import davies_bouldin_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from atelier.core.parallel import ordered_map
from atelier.segment.quality import cluster_quality, silhouette
from atelier.segment.settings import SegmentSettings

#: A raw skewness above this marks a heavy right tail (a few customers far out, most near zero).
HEAVY_SKEWNESS = 1.0


def build_preprocessor(
    features: list[str], log1p: tuple[str, ...] | list[str], *, log_transform: bool = True
) -> Pipeline:
    """Fill undefined values with 0 -> log1p on heavy-tailed columns (if `log_transform`) -> scale.

    Undefined values here (average order value with no order, device share with no visit) mean
    "none of it", so 0 is the honest fill for clustering; recency and tenure are always defined.
    """
    heavy = [feature for feature in features if feature in log1p] if log_transform else []
    steps: list[tuple[str, Any]] = [
        ("fill", SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True)),
    ]
    if heavy:
        positions = [features.index(feature) for feature in heavy]
        steps.append(
            ("log1p", ColumnTransformer([("heavy", FunctionTransformer(np.log1p), positions)], remainder="passthrough"))
        )
    steps.append(("scale", StandardScaler()))
    return Pipeline(steps)


def preprocessed_columns(features: list[str], log1p: tuple[str, ...] | list[str]) -> list[str]:
    """Column order after the preprocessor (log-transformed columns first, as ColumnTransformer puts them)."""
    heavy = [feature for feature in features if feature in log1p]
    return heavy + [feature for feature in features if feature not in heavy]


def skewness(frame: pd.DataFrame, log1p: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Skewness of each log1p column of `frame` before and after log1p (undefined as 0), and whether it is heavy."""
    columns = [column for column in frame.columns if column in log1p]
    filled = frame[columns].fillna(0)
    table = pd.DataFrame({"raw skewness": filled.skew(), "skewness after log1p": np.log1p(filled).skew()})
    return table.assign(**{"heavy-tailed": table["raw skewness"] > HEAVY_SKEWNESS})


def fit_segmenter(
    frame: pd.DataFrame,
    settings: SegmentSettings,
    k: int | None = None,
    *,
    log_transform: bool = True,
    n_init: int | None = None,
) -> Pipeline:
    """Fit preprocessing + K-Means (n_init initializations, seeded) on `frame`'s feature columns."""
    features = list(frame.columns)
    kmeans = KMeans(n_clusters=k or settings.k, n_init=n_init or settings.n_init, random_state=settings.seed)
    segmenter = Pipeline(
        [("prepare", build_preprocessor(features, settings.log1p, log_transform=log_transform)), ("kmeans", kmeans)]
    )
    with threadpool_limits(settings.threads):
        return segmenter.fit(frame.to_numpy(dtype=float))


def fit_preprocessor(frame: pd.DataFrame, settings: SegmentSettings) -> Pipeline:
    """The segmenter's preprocessing alone (fill, log1p, scale), fitted on `frame`: what `fit_segmenter` fits before
    its K-Means."""
    return build_preprocessor(list(frame.columns), settings.log1p).fit(frame.to_numpy(dtype=float))


def with_kmeans(preprocessor: Pipeline, kmeans: KMeans) -> Pipeline:
    """The segmenter from a fitted preprocessor and a K-Means fitted on its output (as `k_sweeps` returns the kept
    k's): the same Pipeline, byte for byte once saved, as `fit_segmenter` on the same frame and settings."""
    return Pipeline([("prepare", preprocessor), ("kmeans", kmeans)])


def prepare(segmenter: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The preprocessed matrix the segmenter's K-Means sees."""
    return segmenter.named_steps["prepare"].transform(frame.to_numpy(dtype=float))


def assign(segmenter: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Segment id of each row of `frame`."""
    return segmenter.predict(frame.to_numpy(dtype=float))


def _sweep_row(k: int, X: np.ndarray, settings: SegmentSettings, keep_model: bool = False) -> dict[str, Any]:
    """One k of the sweep: K-Means (seeded, `settings.threads` threads) and its quality figures (and, if
    `keep_model`, the fitted K-Means under "model")."""
    with threadpool_limits(settings.threads):
        model = KMeans(n_clusters=k, n_init=settings.n_init, random_state=settings.seed).fit(X)
    sizes = np.bincount(model.labels_, minlength=k)
    return ({"model": model} if keep_model else {}) | {
        "k": k,
        "inertia": float(model.inertia_),
        "silhouette": silhouette(X, model.labels_, settings.silhouette_sample, settings.seed),
        "davies_bouldin": float(davies_bouldin_score(X, model.labels_)),
        "smallest_share": float(sizes.min() / sizes.sum()),
        "largest_share": float(sizes.max() / sizes.sum()),
        "sizes": [int(size) for size in sizes if size],
    }


def _sweep_task(task: tuple[str, int], X: np.ndarray, X_raw: np.ndarray, settings: SegmentSettings) -> dict[str, Any]:
    """One (matrix, k) point of `k_sweeps`: "log" is the log1p matrix, "raw" the raw one (the fitted K-Means is kept
    for the log matrix at `settings.k`: the segmentation we keep)."""
    keep = task == ("log", settings.k)
    return _sweep_row(task[1], X if task[0] == "log" else X_raw, settings, keep_model=keep)


def k_sweep(
    X: np.ndarray, settings: SegmentSettings, progress: Callable[[Iterable[int]], Iterable[int]] | None = None
) -> pd.DataFrame:
    """K-Means for every k in the range: inertia, silhouette, Davies-Bouldin and the smallest cluster's share.

    The k are independent: they run on `settings.workers` processes, with the same results as one by one.
    """
    ks = range(settings.k_min, settings.k_max + 1)
    rows = ordered_map(partial(_sweep_row, X=X, settings=settings), progress(ks) if progress else ks,
                       settings.workers)
    return pd.DataFrame(rows).drop(columns="sizes").set_index("k")


class Sweeps(NamedTuple):
    """What `k_sweeps` returns: the two sweeps, the comparison at the kept k, and the kept k's fitted K-Means."""

    log: pd.DataFrame
    raw: pd.DataFrame
    comparison: pd.DataFrame
    kmeans: KMeans


def k_sweeps(X: np.ndarray, X_raw: np.ndarray, settings: SegmentSettings) -> Sweeps:
    """`k_sweep` on the log1p matrix `X` and on the raw one `X_raw`, and `compare_transforms` at `settings.k`, from
    one pool of K-Means fits: the same tables as the three calls, each fit done once. Also the log point's K-Means
    at `settings.k`, which is the segmenter's own (`with_kmeans`): the kept segmentation is not fitted again.

    Every (matrix, k) point is one task on `settings.workers` processes, the slowest (largest k) first so no
    process is left with a long fit at the end; `compare_transforms`'s two K-Means are the sweeps' points at
    `settings.k` (the same fit of the same matrix), and are added as tasks when `settings.k` is outside the range.
    """
    ks = list(range(settings.k_min, settings.k_max + 1))
    tasks = [(matrix, k) for k in sorted({*ks, settings.k}, reverse=True) for matrix in ("raw", "log")]
    rows = dict(zip(tasks, ordered_map(partial(_sweep_task, X=X, X_raw=X_raw, settings=settings), tasks,
                                       settings.workers)))
    kmeans = rows[("log", settings.k)].pop("model")
    sweeps = [pd.DataFrame([rows[(matrix, k)] for k in ks]).drop(columns="sizes").set_index("k")
              for matrix in ("log", "raw")]
    comparison = pd.DataFrame({name: _compared(rows[(matrix, settings.k)])
                               for name, matrix in (("raw, scaled", "raw"), ("log1p, scaled", "log"))}).T
    return Sweeps(sweeps[0], sweeps[1], comparison, kmeans)


def _compared(row: dict[str, Any]) -> dict[str, Any]:
    """A `compare_transforms` row from a sweep point."""
    return {"silhouette": row["silhouette"], "davies_bouldin": row["davies_bouldin"],
            "largest_share": row["largest_share"], "smallest_share": row["smallest_share"],
            "sizes": sorted(row["sizes"], reverse=True)}


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

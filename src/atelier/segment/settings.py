"""The segmentation phase's settings: params.yaml `segmentation` (plus the seed), validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

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
    #: Worker processes for the k sweep and the bootstrap refits (independent fits: the results do not depend on it).
    workers: int = 1

    @classmethod
    def from_params(cls, section: dict[str, Any], seed: int) -> SegmentSettings:
        """Settings from params.yaml's `segmentation` section (the whole section, as the notebook receives it)."""
        try:
            k_min, k_max = (int(value) for value in section["k_range"])
            return cls._checked(section, seed, k_min, k_max)
        except KeyError as missing:
            raise ParamsError(
                f"params.yaml segmentation: missing key {missing}; restore it from the project's params.yaml "
                "(and declare it under the segment stage's params in dvc.yaml)"
            ) from None
        except (TypeError, ValueError) as problem:
            if isinstance(problem, ParamsError):
                raise
            raise ParamsError(
                f"params.yaml segmentation: {problem}; k, k_range (two integers), n_init, the sample sizes and "
                "threads and workers are integers, dbscan_eps a number or null"
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
            workers=int(section["workers"]),
        )
        if settings.workers < 1 or settings.threads < 1:
            raise ParamsError(
                f"params.yaml segmentation: threads and workers must be at least 1, got threads={settings.threads}, "
                f"workers={settings.workers}"
            )
        if not 2 <= settings.k_min <= settings.k <= settings.k_max:
            raise ParamsError(
                f"params.yaml segmentation: need 2 <= k_range[0] <= k <= k_range[1], got k={settings.k}, "
                f"k_range=[{settings.k_min}, {settings.k_max}]"
            )
        unknown = set(settings.log1p) - set(settings.features)
        if unknown:
            raise ParamsError(
                f"params.yaml segmentation.log1p lists {sorted(unknown)}, which are not in segmentation.features; "
                "add them to features or remove them from log1p"
            )
        return settings


def available_features(snapshot: pd.DataFrame, settings: SegmentSettings) -> tuple[list[str], list[str]]:
    """The configured features present in the snapshot, and those missing (e.g. with orders only)."""
    present = [feature for feature in settings.features if feature in snapshot.columns]
    missing = [feature for feature in settings.features if feature not in snapshot.columns]
    if len(present) < 2:
        raise ParamsError(
            f"params.yaml segmentation.features: only {present} exist in the prep snapshots; "
            "clustering needs at least two (add features the data has, e.g. frequency, monetary, recency_days)"
        )
    return present, missing
